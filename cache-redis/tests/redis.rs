//! Behaviour specific to the Redis backend, against real `redis-server` processes: round
//! trips, key layout, TTLs, `clear` on big and shared databases, recovery after a restart,
//! and every configuration and connection error (bounded in time, never leaking a password).

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use cache_core::{
    Cache, CacheOptions, Claim, ClaimOptions, Claimed, EntryKey, Error, RawEntry, Waited, codec,
};
use cache_redis::{RedisCache, RedisConfig};
use cache_testkit::conformance::{artifact_id, blob_id, sample_artifact, sample_blob};
use cache_testkit::redis::{self as support, RedisServer, ServerOptions, Tls};
use redis::aio::MultiplexedConnection;

/// Every failure case must answer within this.
const BOUND: Duration = Duration::from_secs(5);

/// Starts a plain server, or returns from the test when Redis tests are skipped.
macro_rules! server {
    () => {
        server!(ServerOptions::default())
    };
    ($options:expr) => {{
        if !support::require_redis() {
            return;
        }
        RedisServer::start($options)
    }};
}

fn quick(url: String) -> RedisConfig {
    let mut c = RedisConfig::new(url);
    c.connect_timeout = Duration::from_secs(1);
    c.command_timeout = Duration::from_secs(1);
    c
}

async fn connect(config: RedisConfig) -> cache_core::Result<RedisCache> {
    RedisCache::connect(config, &CacheOptions::default()).await
}

/// Runs `f`, failing the test if it takes longer than `limit`.
async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"));
    assert!(start.elapsed() <= limit);
    out
}

/// The error of a connect that must fail, within [`BOUND`].
async fn connect_err(config: RedisConfig) -> Error {
    let err = within(BOUND, connect(config))
        .await
        .expect_err("connect must fail");
    // Shown with --nocapture, to read what users will see.
    eprintln!("error: {err}");
    err
}

/// A direct connection for checking what the server holds.
async fn admin(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `INFO` as a map; `cmdstat_<name>` entries are reduced to their call count.
async fn info(conn: &mut MultiplexedConnection) -> HashMap<String, u64> {
    let text: String = redis::cmd("INFO")
        .arg("everything")
        .query_async(conn)
        .await
        .unwrap();
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.trim().split_once(':')?;
            let v = match v.strip_prefix("calls=") {
                Some(rest) => rest.split(',').next()?,
                None => v,
            };
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, key: &str) -> u64 {
    after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0)
}

/// Calls of every command except `INFO` between two snapshots.
fn commands_except_info(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after
        .keys()
        .filter(|k| k.starts_with("cmdstat_") && *k != "cmdstat_info")
        .map(|k| delta(before, after, k))
        .sum()
}

fn blob_key(n: u64) -> String {
    format!("fanal::blob::{}", blob_id(n))
}

/// `missing_blobs` for 100 IDs is one pipeline: the server sees exactly 101 `GETRANGE`
/// calls and nothing else, delivered in a single read event.
///
/// How the round trip is proven: `INFO stats` counts `total_reads_processed`, one per
/// socket read that delivered client data. The only other client is the one taking the
/// snapshots, whose second `INFO` costs one read. A client doing one round trip per ID
/// must wait for each reply before sending the next command, so the server would need at
/// least 101 reads; the same measurement of 100 `get_blob` calls shows exactly that, so
/// the counter really tells the two apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_blobs_is_one_round_trip() {
    let server = server!();
    let cache = connect(quick(server.url(0))).await.unwrap();
    let ids: Vec<_> = (0..100).map(blob_id).collect();
    for id in ids.iter().step_by(2) {
        cache.put_blob(id, &sample_blob(1, 2)).await.unwrap();
    }
    cache
        .put_artifact(&artifact_id(1), &sample_artifact(1))
        .await
        .unwrap();
    let mut admin = admin(&server.url(0)).await;

    let before = info(&mut admin).await;
    let missing = cache.missing_blobs(&artifact_id(1), &ids).await.unwrap();
    let after = info(&mut admin).await;
    assert!(!missing.artifact);
    assert_eq!(
        missing.blobs,
        ids.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>()
    );
    assert_eq!(delta(&before, &after, "cmdstat_getrange"), 101);
    assert_eq!(commands_except_info(&before, &after), 101, "{after:?}");
    assert_eq!(
        delta(&before, &after, "total_reads_processed"),
        2,
        "one read for the whole pipeline, one for the second INFO"
    );

    // get_blobs is one MGET.
    let before = info(&mut admin).await;
    let got = cache.get_blobs(&ids).await.unwrap();
    let after = info(&mut admin).await;
    assert_eq!(got.iter().filter(|d| d.is_some()).count(), 50);
    assert_eq!(delta(&before, &after, "cmdstat_mget"), 1);
    assert_eq!(commands_except_info(&before, &after), 1);

    // The control: one get per ID is one read (round trip) per ID.
    let before = info(&mut admin).await;
    for id in &ids {
        cache.get_blob(id).await.unwrap();
    }
    let after = info(&mut admin).await;
    assert_eq!(delta(&before, &after, "total_reads_processed"), 101);
}

/// Entries are stored under the reference tool's keys as plain JSON, with the TTL as a
/// Redis expiry; documents the reference tool wrote count as current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_layout_values_and_ttl() {
    let server = server!();
    let mut admin = admin(&server.url(0)).await;
    let with_ttl = RedisCache::connect(
        quick(server.url(0)),
        &CacheOptions {
            ttl: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    with_ttl
        .put_blob(&blob_id(1), &sample_blob(1, 2))
        .await
        .unwrap();
    with_ttl
        .put_artifact(&artifact_id(1), &sample_artifact(1))
        .await
        .unwrap();
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(blob_key(1))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        raw,
        codec::encode(&sample_blob(1, 2)),
        "plain JSON, no header"
    );
    for key in [blob_key(1), format!("fanal::artifact::{}", artifact_id(1))] {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!((55_000..=60_000).contains(&pttl), "{key}: PTTL {pttl}");
    }

    let no_ttl = connect(quick(server.url(0))).await.unwrap();
    no_ttl
        .put_blob(&blob_id(2), &sample_blob(2, 1))
        .await
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(blob_key(2))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(pttl, -1, "no TTL means no expiry");

    // A document as the reference tool writes it (SchemaVersion first) is current; the
    // same document with other spacing counts as missing (judged by its prefix).
    let go_written = r#"{"SchemaVersion":2,"Size":5818880,"DiffID":"sha256:5317","OS":{"Family":"alpine","Name":"3.10.4"}}"#;
    let spaced = r#"{ "SchemaVersion": 2 }"#;
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(blob_key(3))
        .arg(go_written)
        .ignore()
        .cmd("SET")
        .arg(blob_key(4))
        .arg(spaced)
        .ignore()
        .query_async(&mut admin)
        .await
        .unwrap();
    let m = no_ttl
        .missing_blobs(&artifact_id(9), &[blob_id(3), blob_id(4)])
        .await
        .unwrap();
    assert_eq!(m.blobs, vec![blob_id(4)]);
    assert_eq!(
        no_ttl.get_blob(&blob_id(3)).await.unwrap().unwrap().size,
        5_818_880
    );
}

/// `import` applies each entry's own expiry and deletes entries that already expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_uses_each_entrys_expiry() {
    let server = server!();
    let mut admin = admin(&server.url(0)).await;
    let cache = connect(quick(server.url(0))).await.unwrap();
    cache
        .put_blob(&blob_id(2), &sample_blob(2, 1))
        .await
        .unwrap();
    let value = codec::encode(&sample_blob(1, 1));
    cache
        .import(&[
            RawEntry {
                key: EntryKey::blob(&blob_id(1)),
                value: value.clone(),
                expires_at: Some(SystemTime::now() + Duration::from_secs(100)),
            },
            RawEntry {
                key: EntryKey::blob(&blob_id(2)),
                value,
                expires_at: Some(SystemTime::now() - Duration::from_secs(1)),
            },
        ])
        .await
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(blob_key(1))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!((95_000..=100_000).contains(&pttl), "PTTL {pttl}");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(blob_key(2))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(exists, 0, "an already expired import removes the key");
}

/// `clear` removes `fanal::*` keys only: other keys in the same database survive, and
/// neither `FLUSHDB` nor `KEYS` is ever sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_keeps_unrelated_keys() {
    let server = server!();
    let mut admin = admin(&server.url(0)).await;
    let cache = connect(quick(server.url(0))).await.unwrap();
    for n in 0..20 {
        cache
            .put_blob(&blob_id(n), &sample_blob(n, 1))
            .await
            .unwrap();
    }
    cache
        .put_artifact(&artifact_id(1), &sample_artifact(1))
        .await
        .unwrap();
    let unrelated = [
        "session:42",
        "fanal",
        "fanal:blob:x",
        "fanalblob::x",
        "other::fanal::blob::x",
    ];
    for k in unrelated {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg("keep")
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("HSET")
        .arg("a-hash")
        .arg("f")
        .arg("v")
        .query_async(&mut admin)
        .await
        .unwrap();
    let before = info(&mut admin).await;
    cache.clear().await.unwrap();
    let after = info(&mut admin).await;
    for k in unrelated.iter().chain(&["a-hash"]) {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(*k)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(exists, 1, "{k} must survive clear");
    }
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut admin).await.unwrap();
    assert_eq!(size, unrelated.len() as i64 + 1);
    for forbidden in ["cmdstat_flushdb", "cmdstat_flushall", "cmdstat_keys"] {
        assert_eq!(delta(&before, &after, forbidden), 0, "{forbidden}");
    }
    assert!(delta(&before, &after, "cmdstat_scan") >= 1);
}

/// `clear`, `stats` and `list` work on a database with 100,000 scan-cache keys and more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_handles_100k_keys() {
    const N: u64 = 100_000;
    let server = server!();
    let mut admin = admin(&server.url(0)).await;
    let value = codec::encode(&sample_blob(0, 0));
    for chunk in (0..N).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for &n in chunk {
            pipe.cmd("SET").arg(blob_key(n)).arg(&value).ignore();
        }
        let _: () = pipe.query_async(&mut admin).await.unwrap();
    }
    let mut pipe = redis::pipe();
    for n in 0..1000 {
        pipe.cmd("SET")
            .arg(format!("unrelated:{n}"))
            .arg("x")
            .ignore();
    }
    let _: () = pipe.query_async(&mut admin).await.unwrap();

    let mut config = quick(server.url(0));
    config.command_timeout = Duration::from_secs(5);
    let cache = connect(config).await.unwrap();
    let stats = cache.stats().await.unwrap();
    assert_eq!(stats.blobs, N);
    assert_eq!(stats.bytes, N * value.len() as u64);

    let start = Instant::now();
    cache.clear().await.unwrap();
    let took = start.elapsed();
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut admin).await.unwrap();
    assert_eq!(size, 1000, "only the unrelated keys are left");
    assert_eq!(cache.stats().await.unwrap().blobs, 0);
    eprintln!("cleared {N} keys in {took:?}");
}

/// When the server dies, operations fail with `Unavailable` within the timeout; when it is
/// back on the same port, the same cache works again without being recreated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_recovers_after_restart() {
    let mut server = server!();
    let cache = connect(quick(server.url(0))).await.unwrap();
    cache
        .put_blob(&blob_id(1), &sample_blob(1, 1))
        .await
        .unwrap();

    server.kill();
    let err = within(BOUND, cache.get_blob(&blob_id(1)))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", server.port())),
        "{err}"
    );
    let err = within(BOUND, cache.put_blob(&blob_id(2), &sample_blob(2, 1)))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");

    server.restart();
    // The dataset is gone (no persistence), but the pool reconnects by itself.
    assert_eq!(
        within(BOUND, cache.get_blob(&blob_id(1))).await.unwrap(),
        None
    );
    cache
        .put_blob(&blob_id(3), &sample_blob(3, 1))
        .await
        .unwrap();
    assert!(cache.get_blob(&blob_id(3)).await.unwrap().is_some());

    // A restart while the pooled connections are idle but not yet re-checked: the first
    // request on a dropped connection is retried on a fresh one.
    server.restart();
    let m = within(BOUND, cache.missing_blobs(&artifact_id(1), &[blob_id(3)]))
        .await
        .unwrap();
    assert_eq!(m.blobs, vec![blob_id(3)]);
}

/// `put_blob` of blobs `0..16` from 16 concurrent tasks.
async fn put_burst(cache: &Arc<RedisCache>) -> Vec<cache_core::Result<()>> {
    let tasks: Vec<_> = (0..16u64)
        .map(|n| {
            let cache = Arc::clone(cache);
            tokio::spawn(async move { cache.put_blob(&blob_id(n), &sample_blob(n, 1)).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

/// Concurrent commands share pooled connections rather than taking one each: 16 tasks
/// putting and getting at once leave far fewer than 16 connections open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_connections() {
    let server = server!();
    let cache = Arc::new(connect(quick(server.url(0))).await.unwrap());
    for _ in 0..5 {
        assert!(put_burst(&cache).await.iter().all(Result::is_ok));
        let gets: Vec<_> = (0..16u64)
            .map(|n| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move { cache.get_blob(&blob_id(n)).await })
            })
            .collect();
        for g in gets {
            assert!(g.await.unwrap().unwrap().is_some());
        }
    }
    let clients = info(&mut admin(&server.url(0)).await).await["connected_clients"];
    // One is the admin connection; each task holding its own would make it 17. Sharing
    // makes it 2 unless checkouts overlapped (a thread preempted mid-checkout).
    assert!(
        clients <= 9,
        "{clients} connections for 16 concurrent tasks"
    );
}

/// After a restart, a burst of concurrent requests on dropped connections all succeed:
/// each is retried once, and no retry lands on a connection made before the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_recover_after_restart() {
    let mut server = server!();
    let cache = Arc::new(connect(quick(server.url(0))).await.unwrap());
    assert!(put_burst(&cache).await.iter().all(Result::is_ok));

    server.restart();
    for result in within(BOUND, put_burst(&cache)).await {
        result.unwrap();
    }
    assert_eq!(cache.stats().await.unwrap().blobs, 16);
}

/// `n` stale blob entries (schema version 1), each with its own bytes.
fn stale_blobs(n: u64) -> Vec<RawEntry> {
    (0..n)
        .map(|i| RawEntry {
            key: EntryKey::blob(&blob_id(i)),
            value: format!(r#"{{"SchemaVersion":1,"N":{i}}}"#).into_bytes(),
            expires_at: None,
        })
        .collect()
}

/// The script `gc` removes entries with, run directly: it unlinks a key only while the key
/// holds the value whose SHA-1 it is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_script_unlinks_only_unchanged_values() {
    use sha1::{Digest as _, Sha1};
    const SCRIPT: &str = include_str!("../src/unlink_if_unchanged.lua");
    let server = server!();
    let mut conn = admin(&server.url(0)).await;
    let sha1 = |v: &str| hex::encode(Sha1::digest(v.as_bytes()));
    let mut run = async |key: &str, sha1: &str| -> i64 {
        redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(key)
            .arg(sha1)
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    let mut set = admin(&server.url(0)).await;
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("k1")
        .arg("judged")
        .ignore()
        .cmd("SET")
        .arg("k2")
        .arg("rewritten")
        .ignore()
        .cmd("RPUSH")
        .arg("k3")
        .arg("a list")
        .ignore()
        .query_async(&mut set)
        .await
        .unwrap();
    assert_eq!(run("k1", &sha1("judged")).await, 1, "unchanged: removed");
    assert_eq!(run("k2", &sha1("judged")).await, 0, "rewritten: kept");
    assert_eq!(run("k3", &sha1("a list")).await, 0, "not a string: kept");
    assert_eq!(run("k4", &sha1("judged")).await, 0, "missing");
    let exists: Vec<bool> = redis::pipe()
        .exists("k1")
        .exists("k2")
        .exists("k3")
        .query_async(&mut set)
        .await
        .unwrap();
    assert_eq!(exists, [false, true, true]);
}

/// `gc` removes a stale entry only while it still holds the value `gc` judged: entries a
/// scanner rewrites while `gc` runs keep their fresh documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_entries_rewritten_while_it_runs() {
    const N: u64 = 4000;
    let server = server!();
    let cache = Arc::new(connect(quick(server.url(0))).await.unwrap());
    cache.import(&stale_blobs(N)).await.unwrap();

    let writer = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            // Backwards, to meet gc (which walks in SCAN order) in the middle.
            for i in (0..N).rev() {
                cache
                    .put_blob(&blob_id(i), &sample_blob(i, 1))
                    .await
                    .unwrap();
            }
        })
    };
    let report = cache.gc().await.unwrap();
    writer.await.unwrap();

    // Every entry was rewritten, so each must hold a current document now, whether gc
    // reached it before, during or after the rewrite.
    for i in 0..N {
        let doc = cache.get_blob(&blob_id(i)).await.unwrap();
        assert!(
            doc.is_some_and(|d| d.is_current()),
            "blob {i} was lost (gc removed {} entries)",
            report.stale
        );
    }
    // How far the two overlapped varies from run to run; shown with --nocapture.
    eprintln!("gc removed {} of {N} stale entries", report.stale);
}

/// Where the server refuses scripts (an ACL user without `EVAL`), `gc` still removes
/// stale entries, without the check for concurrent rewrites.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_works_without_script_permission() {
    let server = server!();
    let mut admin = admin(&server.url(0)).await;
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "noeval",
                "on",
                ">n0evalpw",
                "~*",
                "&*",
                "+@all",
                "-eval",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    let cache = connect(quick(server.url_with_auth("noeval", "n0evalpw", 0)))
        .await
        .unwrap();
    let eval_refused = redis::cmd("EVAL")
        .arg("return 1")
        .arg(0)
        .query_async::<i64>(
            &mut redis::Client::open(server.url_with_auth("noeval", "n0evalpw", 0))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(eval_refused.code(), Some("NOPERM"), "{eval_refused}");

    // Several SCAN batches: the first refusal switches the rest to plain UNLINK.
    cache.import(&stale_blobs(2500)).await.unwrap();
    cache
        .put_blob(&blob_id(100_000), &sample_blob(100_000, 1))
        .await
        .unwrap();
    let report = cache.gc().await.unwrap();
    assert_eq!(report.stale, 2500);
    // Only the first batch tried scripts: fewer refused EVALs than stale entries.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .unwrap();
    let rejected: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_eval:"))
        .and_then(|l| l.split(',').find_map(|f| f.strip_prefix("rejected_calls=")))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO commandstats counts the refused EVALs");
    assert!(0 < rejected && rejected < 2500, "{rejected} refused EVALs");
    assert_eq!(cache.stats().await.unwrap().blobs, 1);
}

/// A server with `EVAL` renamed away answers "unknown command"; `gc` falls back too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_works_without_the_eval_command() {
    let server = server!(ServerOptions {
        extra_args: ["--rename-command", "EVAL", ""].map(String::from).to_vec(),
        ..Default::default()
    });
    let cache = connect(quick(server.url(0))).await.unwrap();
    cache.import(&stale_blobs(10)).await.unwrap();
    let report = cache.gc().await.unwrap();
    assert_eq!(report.stale, 10);
    assert_eq!(cache.stats().await.unwrap().blobs, 0);
}

/// Pointed at a read-only replica, writes fail with one short line naming the cause,
/// also when a whole pipeline of them fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_replica_fail_in_one_line() {
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let master_port = nowhere.local_addr().unwrap().port().to_string();
    drop(nowhere);
    let server = server!(ServerOptions {
        extra_args: ["--replicaof", "127.0.0.1", &master_port]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    let cache = connect(quick(server.url(0))).await.unwrap();
    let err = cache
        .put_blob(&blob_id(1), &sample_blob(1, 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read only replica"), "{err}");

    let err = cache
        .import(&stale_blobs(300))
        .await
        .unwrap_err()
        .to_string();
    eprintln!("error: {err}");
    assert!(err.contains("300 commands of a pipeline failed"), "{err}");
    assert!(
        err.contains("read only replica") && !err.contains('\n'),
        "{err}"
    );
    assert!(err.len() < 400, "{} characters: {err}", err.len());
}

/// A frozen server (accepts nothing, answers nothing) makes commands fail with a timeout
/// error within the command timeout; the cache works again once the server thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresponsive_server_times_out() {
    let server = server!();
    let mut config = quick(server.url(0));
    config.command_timeout = Duration::from_millis(500);
    let cache = connect(config).await.unwrap();
    server.pause();
    let start = Instant::now();
    let err = within(BOUND, cache.get_blob(&blob_id(1)))
        .await
        .unwrap_err();
    server.resume();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        within(BOUND, cache.get_blob(&blob_id(1))).await.unwrap(),
        None
    );
}

/// Nothing listening, or a listener that never answers: a clear error within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_or_silent() {
    let port = support::free_port();
    let err = connect_err(quick(format!("redis://:hunter2@127.0.0.1:{port}/0"))).await;
    let msg = err.to_string();
    assert!(err.is_unavailable(), "{msg}");
    assert!(
        msg.contains(&format!("redis://****@127.0.0.1:{port}/0")),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");

    // The kernel accepts connections to a listening socket nobody serves.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let start = Instant::now();
    let err = connect_err(quick(format!("redis://:hunter2@127.0.0.1:{port}"))).await;
    let msg = err.to_string();
    assert!(err.is_unavailable(), "{msg}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

/// Malformed URLs are configuration errors that say what is wrong, without the password.
#[tokio::test]
async fn bad_urls() {
    let cases = [
        ("", "is not a Redis URL"),
        ("localhost:6379", "is not a Redis URL"),
        ("http://u:hunter2@h", "is not a Redis URL"),
        ("redis://", "has no host"),
        ("redis://:hunter2@", "has no host"),
        ("redis://:hunter2@h:notaport", "invalid port"),
        ("redis://:hunter2@h:99999/0", "invalid port"),
        ("redis://:hunter2@h:6379/x", "invalid database"),
        ("redis://user:hun/ter2@h", "percent-encode"),
        ("rediss://:hunter2@h/0#insecure", "fragment"),
        (
            "redis://:hunter2@h/0?protocol=resp9",
            "not a valid Redis URL",
        ),
    ];
    for (url, want) in cases {
        let err = connect_err(quick(url.to_owned())).await;
        let msg = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{url}: {msg}");
        assert!(msg.contains(want), "{url}: {msg}");
        assert!(
            !msg.contains("hunter2") && !msg.contains("ter2"),
            "{url}: password leaked: {msg}"
        );
    }
}

/// Wrong or missing passwords fail clearly (`Error::Denied`) without showing the
/// password; the right password and an ACL user work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication() {
    let server = server!(ServerOptions {
        password: Some("s3rverpw".into()),
        acl_user: Some(("alice".into(), "al1cepw".into())),
        ..Default::default()
    });
    // A refused password is a misconfiguration, not an outage.
    let err = connect_err(quick(server.url(0))).await;
    assert!(err.is_denied() && !err.is_outage(), "{err}");
    assert!(err.to_string().contains("NOAUTH"), "{err}");

    for (user, pw) in [
        ("", "wrong-pass-123"),
        ("alice", "wrong-pass-123"),
        ("bob", "s3rverpw"),
    ] {
        let err = connect_err(quick(server.url_with_auth(user, pw, 0))).await;
        let msg = err.to_string();
        assert!(err.is_denied(), "{msg}");
        assert!(
            msg.contains("WRONGPASS") || msg.to_lowercase().contains("auth"),
            "{msg}"
        );
        assert!(
            !msg.contains(pw) && msg.contains("redis://****@127.0.0.1"),
            "{msg}"
        );
    }

    for (user, pw) in [
        ("", "s3rverpw"),
        ("default", "s3rverpw"),
        ("alice", "al1cepw"),
    ] {
        let cache = connect(quick(server.url_with_auth(user, pw, 3)))
            .await
            .unwrap();
        assert_eq!(
            cache.location(),
            format!("redis://****@127.0.0.1:{}/3", server.port())
        );
        assert!(!format!("{cache:?}").contains(pw));
        cache
            .put_blob(&blob_id(1), &sample_blob(1, 1))
            .await
            .unwrap();
        assert!(cache.get_blob(&blob_id(1)).await.unwrap().is_some());
    }
}

/// A database index the server does not have is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_database_index() {
    let server = server!();
    let err = connect_err(quick(server.url(support::DATABASES + 10))).await;
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string().contains("DB index is out of range"),
        "{err}"
    );
}

/// TLS client against a plain server, and plain client against a TLS server: clear
/// errors, no hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mismatch_both_ways() {
    let plain = server!();
    let err = connect_err(quick(format!("rediss://127.0.0.1:{}/0", plain.port()))).await;
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
    let mut with_flag = quick(plain.url(0));
    with_flag.tls = true;
    assert!(connect_err(with_flag).await.is_unavailable());

    let tls = server!(ServerOptions {
        tls: Tls::ServerOnly,
        ..Default::default()
    });
    let err = connect_err(quick(format!("redis://127.0.0.1:{}/0", tls.port()))).await;
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("require TLS"), "{err}");
}

/// The TLS setups: a CA alone verifies the server; the `tls` option upgrades a `redis://`
/// URL; system roots do not trust the test CA; a mutual-TLS server refuses a client
/// without a certificate and accepts one with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_setups() {
    let server = server!(ServerOptions {
        tls: Tls::ServerOnly,
        ..Default::default()
    });
    let certs = server.certs.clone().unwrap();

    let mut ca_only = quick(server.url(1));
    ca_only.ca = Some(certs.ca.clone());
    let cache = connect(ca_only).await.unwrap();
    cache
        .put_blob(&blob_id(1), &sample_blob(1, 1))
        .await
        .unwrap();

    let mut flag = quick(format!("redis://127.0.0.1:{}/1", server.port()));
    flag.tls = true;
    flag.ca = Some(certs.ca.clone());
    let cache = connect(flag).await.unwrap();
    assert!(cache.get_blob(&blob_id(1)).await.unwrap().is_some());

    // Without the CA the server is checked against the system roots, which do not know
    // it: a refused certificate, a misconfiguration rather than an outage.
    let err = connect_err(quick(server.url(1))).await;
    assert!(err.is_denied(), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let mutual = server!(ServerOptions {
        tls: Tls::Mutual,
        ..Default::default()
    });
    let certs = mutual.certs.clone().unwrap();
    let mut no_client_cert = quick(mutual.url(0));
    no_client_cert.ca = Some(certs.ca.clone());
    // Under TLS 1.3 the server refuses a missing client certificate after the client
    // has finished its handshake: the client sees a broken connection, which it cannot
    // tell from an outage, so this one stays `Unavailable` (with the TLS hint).
    let err = connect_err(no_client_cert.clone()).await;
    assert!(err.is_denied() || err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("client certificate"), "{err}");

    let mut full = no_client_cert;
    full.cert = Some(certs.client_cert.clone());
    full.key = Some(certs.client_key.clone());
    let cache = connect(full).await.unwrap();
    cache
        .put_blob(&blob_id(2), &sample_blob(2, 1))
        .await
        .unwrap();
}

/// Bad TLS files are configuration errors naming the file, reported before connecting.
#[tokio::test]
async fn bad_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let certs = support::Certs::generate(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let missing = dir.path().join("does-not-exist.pem");
    // Nothing listens here: errors must come from the files, before any connection.
    let url = format!("rediss://127.0.0.1:{}/0", support::free_port());

    let check = |ca: Option<&PathBuf>,
                 cert: Option<&PathBuf>,
                 key: Option<&PathBuf>,
                 names: &PathBuf,
                 want: &str| {
        let mut c = quick(url.clone());
        c.ca = ca.cloned();
        c.cert = cert.cloned();
        c.key = key.cloned();
        let (names, want) = (names.clone(), want.to_owned());
        async move {
            let err = connect_err(c).await;
            let msg = err.to_string();
            assert!(!err.is_unavailable(), "must fail before connecting: {msg}");
            assert!(
                msg.contains(&names.display().to_string()),
                "must name {}: {msg}",
                names.display()
            );
            assert!(msg.contains(&want), "{msg}");
        }
    };
    check(
        None,
        Some(&certs.client_cert),
        None,
        &certs.client_cert,
        "without its private key",
    )
    .await;
    check(
        None,
        None,
        Some(&certs.client_key),
        &certs.client_key,
        "without its client certificate",
    )
    .await;
    check(
        Some(&missing),
        None,
        None,
        &missing,
        "cannot read Redis TLS CA file",
    )
    .await;
    check(Some(&garbage), None, None, &garbage, "no PEM certificate").await;
    check(
        Some(&certs.client_key),
        None,
        None,
        &certs.client_key,
        "no PEM certificate",
    )
    .await;
    check(
        Some(&certs.ca),
        Some(&garbage),
        Some(&certs.client_key),
        &garbage,
        "no PEM certificate",
    )
    .await;
    check(
        Some(&certs.ca),
        Some(&certs.client_cert),
        Some(&certs.ca),
        &certs.ca,
        "no PEM private key",
    )
    .await;
    check(
        Some(&certs.ca),
        Some(&certs.client_cert),
        Some(&missing),
        &missing,
        "cannot read Redis TLS private key",
    )
    .await;
    let unreadable_dir = dir.path().to_path_buf();
    check(
        Some(&unreadable_dir),
        None,
        None,
        &unreadable_dir,
        "cannot read Redis TLS CA file",
    )
    .await;
}

/// After `close`, operations fail with a clear error instead of reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_cache_refuses_work() {
    let server = server!();
    let cache = connect(quick(server.url(0))).await.unwrap();
    cache.close().await.unwrap();
    let err = cache.get_blob(&blob_id(1)).await.unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    assert_eq!(cache.backend_name(), "redis");
}

/// A user limited to exactly the commands docs/redis.md lists (no `CLIENT`, so the
/// handshake's `CLIENT SETINFO` is refused and ignored) can do everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_the_documented_acl_can_do_everything() {
    let server = server!();
    let acl = "on >scanner-pw ~fanal::* -@all +get +set +mget +getrange +strlen +pttl +scan \
               +unlink +ping +select +eval +pexpire";
    let mut args = vec!["ACL", "SETUSER", "scanner"];
    args.extend(acl.split_whitespace());
    assert_eq!(server.cli(&args), "OK");
    let cache = connect(quick(server.url_with_auth("scanner", "scanner-pw", 2)))
        .await
        .unwrap();
    exercise_every_operation(&cache).await;
}

/// Puts, gets, `missing_blobs`, every walk, `gc` and `clear` on `cache`.
async fn exercise_every_operation(cache: &RedisCache) {
    cache
        .put_artifact(&artifact_id(1), &sample_artifact(1))
        .await
        .unwrap();
    for n in 0..20 {
        cache
            .put_blob(&blob_id(n), &sample_blob(n, 1))
            .await
            .unwrap();
    }
    cache
        .import(&[RawEntry {
            key: EntryKey::blob(&blob_id(100)),
            value: br#"{"SchemaVersion":1}"#.to_vec(),
            expires_at: None,
        }])
        .await
        .unwrap();
    let ids: Vec<_> = (0..20).map(blob_id).collect();
    let m = cache.missing_blobs(&artifact_id(1), &ids).await.unwrap();
    assert!(!m.artifact && m.blobs.is_empty());
    assert!(
        cache
            .get_blobs(&ids)
            .await
            .unwrap()
            .iter()
            .all(Option::is_some)
    );
    let stats = cache.stats().await.unwrap();
    assert_eq!(stats.artifacts, 1);
    assert_eq!(stats.blobs, 21);
    assert_eq!(cache.gc().await.unwrap().stale, 1);
    cache.delete_blobs(&ids[..2]).await.unwrap();
    // Claims: granted, busy, renewed, waited for, released, and removed by `clear`.
    let lease = Duration::from_secs(30);
    let claims = cache
        .claim(&[blob_id(50), blob_id(51)], lease)
        .await
        .unwrap();
    let owned: Vec<Claim> = claims.into_iter().filter_map(Claimed::owned).collect();
    assert_eq!(owned.len(), 2);
    assert_eq!(
        cache.claim(&[blob_id(50)], lease).await.unwrap(),
        [Claimed::Busy]
    );
    cache.renew(&owned, lease).await.unwrap();
    assert!(
        !cache
            .await_release(&blob_id(50), Duration::from_millis(50))
            .await
            .unwrap()
    );
    cache.release(&owned[..1]).await.unwrap();
    assert!(
        cache
            .await_release(&blob_id(50), Duration::from_secs(5))
            .await
            .unwrap()
    );
    cache.clear().await.unwrap();
    assert_eq!(cache.stats().await.unwrap(), Default::default());
    assert!(
        matches!(
            cache.claim(&[blob_id(51)], lease).await.unwrap()[..],
            [Claimed::Owned(_)]
        ),
        "clear left a claim"
    );
    cache.clear().await.unwrap();
}

/// Without `EVAL`, claims still work: renewing and releasing let the lease run out
/// instead (one warning), and a waiter wakes as soon as the result is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scripts_claims_run_out_after_their_lease() {
    let server = server!();
    let acl = "on >scanner-pw ~fanal::* -@all +get +set +mget +getrange +strlen +pttl +scan \
               +unlink +ping +select";
    let mut args = vec!["ACL", "SETUSER", "scanner"];
    args.extend(acl.split_whitespace());
    assert_eq!(server.cli(&args), "OK");
    let cache = connect(quick(server.url_with_auth("scanner", "scanner-pw", 2)))
        .await
        .unwrap();
    let lease = Duration::from_millis(600);
    let Some(Claimed::Owned(claim)) = cache.claim(&[blob_id(1)], lease).await.unwrap().pop() else {
        panic!("not granted");
    };
    let keys = server.cli(&["-n", "2", "KEYS", "fanal::claim::*"]);
    assert_eq!(keys.trim(), format!("fanal::claim::{}", blob_id(1)));
    cache
        .renew(std::slice::from_ref(&claim), lease)
        .await
        .unwrap();
    cache.release(std::slice::from_ref(&claim)).await.unwrap();
    assert_eq!(
        cache.claim(&[blob_id(1)], lease).await.unwrap(),
        [Claimed::Busy]
    );
    let started = Instant::now();
    let options = ClaimOptions::with_lease(Duration::from_secs(10));
    let waited = cache.wait_for(&blob_id(1), &options).await.unwrap();
    assert!(matches!(waited, Waited::TakenOver(_)), "{waited:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A stored result wakes a waiter although the claim is still live.
    let Some(Claimed::Owned(_held)) = cache
        .claim(&[blob_id(2)], Duration::from_secs(60))
        .await
        .unwrap()
        .pop()
    else {
        panic!("not granted");
    };
    let wait = {
        let cache = Arc::new(cache);
        let waiter = Arc::clone(&cache);
        let task =
            tokio::spawn(async move { waiter.wait_for(&blob_id(2), &options).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(200)).await;
        cache
            .put_blob(&blob_id(2), &sample_blob(2, 1))
            .await
            .unwrap();
        task
    };
    let started = Instant::now();
    assert_eq!(wait.await.unwrap(), Waited::Stored);
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// `?protocol=resp3` works, with a password and a database: the client library's `HELLO`
/// authenticates, and our handshake adds the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_urls_work() {
    let server = server!(ServerOptions {
        password: Some("pw3".into()),
        ..Default::default()
    });
    let url = format!("{}?protocol=resp3", server.url_with_auth("", "pw3", 5));
    let cache = connect(quick(url)).await.unwrap();
    cache
        .put_blob(&blob_id(1), &sample_blob(1, 1))
        .await
        .unwrap();
    assert!(cache.get_blob(&blob_id(1)).await.unwrap().is_some());
    let keys: Vec<String> = server
        .cli(&["-n", "5", "KEYS", "fanal::*"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(keys, [blob_key(1)], "stored in database 5");
    exercise_every_operation(&cache).await;
}
