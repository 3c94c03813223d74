//! The claim RPCs of scancache's own service (`Claim`, `Renew`, `Release`,
//! `AwaitRelease`) over real HTTP: the server's backend's own claims behind them in both
//! codecs, bad input refused with clear errors, the long poll held outside the
//! concurrency bound and the request timeout and capped by the server, and a server
//! whose claims are off.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cache_core::{Cache, CacheOptions, Claimed};
use cache_server::{Config, Token, proto::scancache as ps};
use cache_testkit::{conformance::blob_id, http};
use prost::Message;
use serde_json::{Value, json};

use crate::protocol::Served;

const NATIVE: &str = "/twirp/scancache.cache.v1.Cache";

fn memory() -> Arc<dyn Cache> {
    Arc::new(cache_mem::MemCache::new(&CacheOptions::default()))
}

/// A call in JSON.
fn call_json(port: u16, method: &str, body: &Value) -> http::Response {
    http::post(
        port,
        &format!("{NATIVE}/{method}"),
        "application/json",
        &[],
        body.to_string().as_bytes(),
    )
    .unwrap()
}

/// A call in protobuf, which must succeed.
fn call_pb<R: Message + Default>(port: u16, method: &str, req: &impl Message) -> R {
    let resp = http::post(
        port,
        &format!("{NATIVE}/{method}"),
        "application/protobuf",
        &[],
        &req.encode_to_vec(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{method}: {}", resp.text());
    R::decode(&resp.body[..]).unwrap()
}

/// Whether the backend itself finds `n` claimed (a granted claim is released again).
async fn busy_in_backend(cache: &dyn Cache, n: u64) -> bool {
    match cache
        .claim(&[blob_id(n)], Duration::from_secs(30))
        .await
        .unwrap()
        .pop()
    {
        Some(Claimed::Owned(c)) => {
            cache.release(&[c]).await.unwrap();
            false
        }
        _ => true,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn metric_line(port: u16, line: &str) -> bool {
    http::get(port, "/metrics")
        .unwrap()
        .text()
        .lines()
        .any(|l| l == line)
}

/// `Claim` takes the backend's own claims (JSON and protobuf alike); `Renew` and
/// `Release` take the tokens back; `AwaitRelease` waits until `Release` ends the claim;
/// the forwarded claims and waits are counted.
#[test]
fn claim_rpcs_are_the_backends_own_claims_in_both_codecs() {
    let cache = memory();
    let s = Served::start(cache.clone(), Config::default());
    let rt = runtime();
    let (one, two, three) = (
        blob_id(1).to_string(),
        blob_id(2).to_string(),
        blob_id(3).to_string(),
    );
    let resp = call_json(
        s.port,
        "Claim",
        &json!({"ids": [one, two], "lease_ms": "30000"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let claims = resp.json()["claims"].as_array().unwrap().clone();
    let tokens: Vec<String> = claims
        .iter()
        .map(|c| c["token"].as_str().expect("owned").to_owned())
        .collect();
    assert!(tokens.iter().all(|t| !t.is_empty()), "{claims:?}");
    assert!(
        rt.block_on(busy_in_backend(&*cache, 1)),
        "the backend holds no claim"
    );

    let answer: ps::ClaimResponse = call_pb(
        s.port,
        "Claim",
        &ps::ClaimRequest {
            ids: vec![two.clone(), three.clone()],
            lease_ms: 30_000,
        },
    );
    assert_eq!(
        answer.claims[0].token, None,
        "a live claim was granted twice"
    );
    let token3 = answer.claims[1].token.clone().expect("owned");

    let resp = call_json(
        s.port,
        "Renew",
        &json!({"claims": [{"id": one, "token": tokens[0]}], "lease_ms": 60000}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());

    // A waiter is answered when the owner releases.
    let port = s.port;
    let id3 = three.clone();
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let answer: ps::AwaitReleaseResponse = call_pb(
            port,
            "AwaitRelease",
            &ps::AwaitReleaseRequest {
                id: id3,
                timeout_ms: 10_000,
            },
        );
        (answer.released, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiter.is_finished(), "AwaitRelease did not wait");
    let released_at = Instant::now();
    let _: ps::Nothing = call_pb(
        s.port,
        "Release",
        &ps::ReleaseRequest {
            claims: vec![ps::ClaimToken {
                id: three.clone(),
                token: token3,
            }],
        },
    );
    let (released, _) = waiter.join().unwrap();
    assert!(released);
    assert!(released_at.elapsed() < Duration::from_secs(2));
    assert!(!rt.block_on(busy_in_backend(&*cache, 3)));

    let resp = call_json(
        s.port,
        "Release",
        &json!({"claims": [{"id": one, "token": tokens[0]}, {"id": two, "token": tokens[1]}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(!rt.block_on(busy_in_backend(&*cache, 1)));
    assert!(!rt.block_on(busy_in_backend(&*cache, 2)));
    // A key nobody claims is released at once.
    let resp = call_json(
        s.port,
        "AwaitRelease",
        &json!({"id": one, "timeout_ms": 5000}),
    );
    assert_eq!(resp.json()["released"], true, "{}", resp.text());

    for line in [
        "scancache_server_forwarded_claims_total 3",
        "scancache_server_forwarded_claims_busy_total 1",
        "scancache_server_forwarded_claim_waits_total 2",
        "scancache_server_forwarded_claim_wait_timeouts_total 0",
        r#"scancache_server_requests_total{method="Claim",code="ok"} 2"#,
        r#"scancache_server_requests_total{method="AwaitRelease",code="ok"} 2"#,
    ] {
        assert!(
            metric_line(s.port, line),
            "{line} not in:\n{}",
            http::get(s.port, "/metrics").unwrap().text()
        );
    }
}

/// Invalid IDs, leases out of bounds and malformed tokens get `invalid_argument` naming
/// the field, a body of the wrong shape `malformed`, a missing token `unauthenticated`;
/// none of them claims or releases anything.
#[test]
fn bad_claim_requests_get_clear_errors_and_change_nothing() {
    let cache = memory();
    let s = Served::start(cache.clone(), Config::default());
    let rt = runtime();
    let good = blob_id(1).to_string();
    let held = rt
        .block_on(cache.claim(&[blob_id(9)], Duration::from_secs(30)))
        .unwrap();
    assert!(matches!(held[0], Claimed::Owned(_)));
    let long_token = "x".repeat(300);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "Claim",
            json!({"ids": ["sha256:x"], "lease_ms": 1000}),
            "invalid_argument",
            "ids[0]",
        ),
        (
            "Claim",
            json!({"ids": [good], "lease_ms": 0}),
            "invalid_argument",
            "lease_ms: a lease must be at least 1 ms",
        ),
        (
            "Claim",
            json!({"ids": [good]}),
            "invalid_argument",
            "lease_ms: a lease must be at least 1 ms",
        ),
        (
            "Claim",
            json!({"ids": [good], "lease_ms": "86400001"}),
            "invalid_argument",
            "longer than the longest lease",
        ),
        (
            "Claim",
            json!({"ids": [good], "lease_ms": "18446744073709551615"}),
            "invalid_argument",
            "longest lease",
        ),
        (
            "Claim",
            json!({"ids": [good], "lease_ms": "soon"}),
            "malformed",
            "lease_ms",
        ),
        (
            "Claim",
            json!({"ids": good, "lease_ms": 1000}),
            "malformed",
            "ids",
        ),
        (
            "Renew",
            json!({"claims": [{"id": good, "token": ""}], "lease_ms": 1000}),
            "invalid_argument",
            "claims[0].token: the token is empty",
        ),
        (
            "Renew",
            json!({"claims": [{"id": good, "token": "a b"}], "lease_ms": 1000}),
            "invalid_argument",
            "claims[0].token: the token holds a byte that is not printable",
        ),
        (
            "Renew",
            json!({"claims": [{"id": good, "token": long_token}], "lease_ms": 1000}),
            "invalid_argument",
            "300 bytes",
        ),
        (
            "Renew",
            json!({"claims": [{"id": good, "token": "t"}], "lease_ms": 0}),
            "invalid_argument",
            "lease_ms",
        ),
        (
            "Release",
            json!({"claims": [{"id": "nope", "token": "t"}]}),
            "invalid_argument",
            "claims[0].id: ",
        ),
        (
            "Release",
            json!({"claims": [{"id": blob_id(9).to_string(), "token": "0\n"}]}),
            "invalid_argument",
            "claims[0].token",
        ),
        (
            "AwaitRelease",
            json!({"id": "sha256:zz", "timeout_ms": 10}),
            "invalid_argument",
            "id: ",
        ),
        (
            "AwaitRelease",
            json!({"timeout_ms": 10}),
            "invalid_argument",
            "id: ",
        ),
        (
            "AwaitRelease",
            json!({"id": good, "timeout_ms": -1}),
            "malformed",
            "timeout_ms",
        ),
    ];
    for (method, body, code, msg) in cases {
        let resp = call_json(s.port, method, &body);
        let answer = resp.json();
        assert_eq!(answer["code"], code, "{method} {body}: {answer}");
        let text = answer["msg"].as_str().unwrap();
        assert!(
            text.contains(msg),
            "{method} {body}: {text:?} lacks {msg:?}"
        );
    }
    // A protobuf body that is not the message.
    let resp = http::post(
        s.port,
        &format!("{NATIVE}/Claim"),
        "application/protobuf",
        &[],
        b"\xff\xff\xff",
    )
    .unwrap();
    assert_eq!(
        resp.twirp_code().as_deref(),
        Some("malformed"),
        "{}",
        resp.text()
    );
    assert!(
        !rt.block_on(busy_in_backend(&*cache, 1)),
        "a refused Claim claimed"
    );
    assert!(
        rt.block_on(busy_in_backend(&*cache, 9)),
        "a refused Release released"
    );
    assert!(
        metric_line(s.port, "scancache_server_forwarded_claims_total 0"),
        "a refused Claim was counted"
    );

    // Behind the token like every RPC.
    let config = Config {
        token: Some(Token::new("s3cret")),
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    for method in ["Claim", "Renew", "Release", "AwaitRelease"] {
        let resp = call_json(s.port, method, &json!({}));
        assert_eq!(
            resp.twirp_code().as_deref(),
            Some("unauthenticated"),
            "{method}"
        );
    }
}

/// A waiting `AwaitRelease` gives its slot back and outlives the request timeout, so
/// the owner's `Release` gets through with one slot; the server's cap ends a wait that
/// asks for more.
#[test]
fn an_await_release_frees_its_slot_outlives_the_timeout_and_is_capped() {
    let config = Config {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    let id = blob_id(1).to_string();
    let answer: ps::ClaimResponse = call_pb(
        s.port,
        "Claim",
        &ps::ClaimRequest {
            ids: vec![id.clone()],
            lease_ms: 30_000,
        },
    );
    let token = answer.claims[0].token.clone().expect("owned");
    let port = s.port;
    let wait_id = id.clone();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || {
        call_json(
            port,
            "AwaitRelease",
            &json!({"id": wait_id, "timeout_ms": 10000}),
        )
    });
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !waiter.is_finished(),
        "AwaitRelease ended before the release"
    );
    let resp = call_json(
        s.port,
        "Release",
        &json!({"claims": [{"id": id, "token": token}]}),
    );
    assert_eq!(
        resp.status,
        200,
        "the owner's Release did not get through: {}",
        resp.text()
    );
    let resp = waiter.join().unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["released"], true);
    assert!(started.elapsed() >= Duration::from_millis(700));

    // The server's cap ends a wait that asks for a minute.
    let config = Config {
        max_await: Duration::from_millis(500),
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    let id = blob_id(2).to_string();
    let _: ps::ClaimResponse = call_pb(
        s.port,
        "Claim",
        &ps::ClaimRequest {
            ids: vec![id.clone()],
            lease_ms: 60_000,
        },
    );
    let started = Instant::now();
    let resp = call_json(
        s.port,
        "AwaitRelease",
        &json!({"id": id, "timeout_ms": 60000}),
    );
    let took = started.elapsed();
    assert_eq!(resp.json()["released"], false, "{}", resp.text());
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(metric_line(
        s.port,
        "scancache_server_forwarded_claim_wait_timeouts_total 1"
    ));
}

/// With claims off (`--lease-timeout 0`), `Claim` grants every key with a claim that
/// holds nothing (an empty token) and `AwaitRelease` answers at once.
#[test]
fn a_server_with_claims_off_grants_every_claim_holding_nothing() {
    let config = Config {
        lease: None,
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    let id = blob_id(1).to_string();
    for _ in 0..2 {
        let resp = call_json(s.port, "Claim", &json!({"ids": [id], "lease_ms": 30000}));
        assert_eq!(
            resp.json()["claims"],
            json!([{"token": ""}]),
            "{}",
            resp.text()
        );
    }
    let started = Instant::now();
    let resp = call_json(
        s.port,
        "AwaitRelease",
        &json!({"id": id, "timeout_ms": 10000}),
    );
    assert_eq!(resp.json()["released"], true);
    assert!(started.elapsed() < Duration::from_secs(2));
}
