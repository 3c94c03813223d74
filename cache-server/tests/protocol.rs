//! The Twirp protocol of the service, over real HTTP on a free loopback port (the
//! library's router served in-process, so each test picks its backend and settings):
//! both codecs, every error path, the body cap, the token, a client that disconnects
//! mid-upload, the deadline and the concurrency bound, health and metrics, and a Redis
//! backend that goes away and comes back.

use std::{
    io::Write,
    net::TcpStream,
    sync::Arc,
    time::{Duration, Instant},
};

use cache_core::{Cache, CacheOptions};
use cache_server::{
    Config, ServerState, Token,
    proto::{
        cache::{MissingBlobsRequest, MissingBlobsResponse},
        scanner::{ScanOptions, ScanRequest},
    },
};
use cache_testkit::{
    conformance::{artifact_id, blob_id},
    http::{self, Response},
    redis::{RedisServer, ServerOptions, require_redis},
};
use prost::Message;
use serde_json::json;

const CACHE: &str = "/twirp/trivy.cache.v1.Cache";
const PROTOBUF: &str = "application/protobuf";
const JSON: &str = "application/json";

/// The library's router served on a free port by a runtime of its own.
pub(crate) struct Served {
    pub(crate) port: u16,
    pub(crate) state: ServerState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    pub(crate) fn start(cache: Arc<dyn Cache>, config: Config) -> Served {
        let state = ServerState::new(cache, config);
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = cache_server::router(state.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let stop = async {
                    let _ = stop_rx.await;
                };
                cache_server::serve(listener, app, None, stop, Duration::from_secs(5))
                    .await
                    .unwrap();
            });
        });
        Served {
            port: port_rx.recv().unwrap(),
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn post(&self, method: &str, content_type: &str, body: &[u8]) -> Response {
        http::post(
            self.port,
            &format!("{CACHE}/{method}"),
            content_type,
            &[],
            body,
        )
        .unwrap()
    }

    /// Sends a scan request in protobuf.
    pub(crate) fn scan_pb(&self, req: &ScanRequest) -> Response {
        http::post(
            self.port,
            "/twirp/trivy.scanner.v1.Scanner/Scan",
            PROTOBUF,
            &[],
            &req.encode_to_vec(),
        )
        .unwrap()
    }

    fn blob_count(&self) -> u64 {
        let cache = self.state.cache().clone();
        block_on(async move { cache.stats().await.unwrap().blobs })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn memory() -> Arc<dyn Cache> {
    Arc::new(cache_mem::MemCache::new(&CacheOptions::default()))
}

fn put_blob_json(id: &str) -> Vec<u8> {
    json!({
        "diff_id": id,
        "blob_info": {"schema_version": 2, "diff_id": "sha256:00", "size": "10", "os": {"family": "alpine", "name": "3.20.3"}}
    })
    .to_string()
    .into_bytes()
}

fn missing_pb(ids: &[String]) -> Vec<u8> {
    MissingBlobsRequest {
        artifact_id: artifact_id(1).to_string(),
        blob_ids: ids.to_vec(),
    }
    .encode_to_vec()
}

/// Asserts a Twirp error answer: status, code, and a message containing `msg`.
fn check_error(resp: &Response, status: u16, code: &str, msg: &str) {
    assert_eq!(
        resp.status,
        status,
        "{} {:?} (wanted {code}: {msg})",
        resp.text(),
        resp.headers
    );
    assert_eq!(resp.header("content-type"), Some(JSON));
    let body = resp.json();
    assert_eq!(body["code"], code, "{body}");
    let text = body["msg"].as_str().unwrap();
    assert!(text.contains(msg), "{text:?} lacks {msg:?}");
}

#[test]
fn cache_rpcs_speak_protobuf_and_json() {
    let s = Served::start(memory(), Config::default());
    let (a, b) = (blob_id(1).to_string(), blob_id(2).to_string());

    // PutBlob in JSON: the answer is JSON (an empty message).
    let resp = s.post("PutBlob", JSON, &put_blob_json(&a));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some(JSON));
    assert_eq!(resp.json(), json!({}));

    // MissingBlobs in protobuf sees it; the answer is protobuf.
    let resp = s.post(
        "MissingBlobs",
        PROTOBUF,
        &missing_pb(&[a.clone(), b.clone()]),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some(PROTOBUF));
    let answer = MissingBlobsResponse::decode(&resp.body[..]).unwrap();
    assert!(answer.missing_artifact);
    assert_eq!(answer.missing_blob_ids, std::slice::from_ref(&b));

    // The same in JSON with lowerCamel names: proto names come back, unset ones too.
    let body = json!({"artifactId": artifact_id(1).to_string(), "blobIds": [a.clone()]});
    let resp = s.post("MissingBlobs", JSON, body.to_string().as_bytes());
    assert_eq!(
        resp.json(),
        json!({"missing_artifact": true, "missing_blob_ids": []})
    );

    // PutArtifact, then DeleteBlobs.
    let body = json!({"artifact_id": artifact_id(1).to_string(), "artifact_info": {"schema_version": 1, "os": "linux", "created": "2024-01-02T03:04:05Z"}});
    assert_eq!(
        s.post("PutArtifact", JSON, body.to_string().as_bytes())
            .status,
        200
    );
    let stored = block_on(s.state.cache().get_artifact(&artifact_id(1)))
        .unwrap()
        .unwrap();
    assert_eq!(stored.created, "2024-01-02T03:04:05Z");
    let body = json!({"blob_ids": [a.clone()]});
    assert_eq!(
        s.post("DeleteBlobs", JSON, body.to_string().as_bytes())
            .status,
        200
    );
    let resp = s.post(
        "MissingBlobs",
        PROTOBUF,
        &missing_pb(std::slice::from_ref(&a)),
    );
    let answer = MissingBlobsResponse::decode(&resp.body[..]).unwrap();
    assert!(!answer.missing_artifact);
    assert_eq!(answer.missing_blob_ids, [a]);
}

#[test]
fn bad_requests_get_twirp_errors_and_store_nothing() {
    let s = Served::start(memory(), Config::default());
    let id = blob_id(1).to_string();
    let ok_json = put_blob_json(&id);
    let put = format!("{CACHE}/PutBlob");
    let missing = format!("{CACHE}/MissingBlobs");
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        ("GET", &put, vec![], vec![], 404, "bad_route", "only POST"),
        (
            "POST",
            "/twirp/trivy.cache.v1.Cache/Nope",
            vec![("Content-Type", JSON)],
            ok_json.clone(),
            404,
            "bad_route",
            "no handler",
        ),
        (
            "POST",
            "/elsewhere/trivy.cache.v1.Cache/PutBlob",
            vec![("Content-Type", JSON)],
            ok_json.clone(),
            404,
            "bad_route",
            "no handler",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", "text/plain")],
            ok_json.clone(),
            404,
            "bad_route",
            "unexpected Content-Type",
        ),
        (
            "POST",
            &put,
            vec![],
            ok_json.clone(),
            404,
            "bad_route",
            "unexpected Content-Type",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", PROTOBUF)],
            vec![0xff, 0xff, 0xff],
            400,
            "malformed",
            "protobuf",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", JSON)],
            b"{not json".to_vec(),
            400,
            "malformed",
            "json",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", JSON)],
            b"[1]".to_vec(),
            400,
            "malformed",
            "expected an object",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", JSON)],
            json!({"diff_id": id, "blob_info": {"size": "ten"}})
                .to_string()
                .into_bytes(),
            400,
            "malformed",
            "blob_info.size",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", JSON)],
            json!({"diff_id": 7}).to_string().into_bytes(),
            400,
            "malformed",
            "diff_id",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", JSON)],
            put_blob_json("sha256:XYZ"),
            400,
            "invalid_argument",
            "diff_id: invalid ID",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", JSON)],
            json!({"diff_id": id}).to_string().into_bytes(),
            400,
            "invalid_argument",
            "blob_info is required",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", JSON), ("Content-Encoding", "br")],
            ok_json.clone(),
            400,
            "malformed",
            "Content-Encoding",
        ),
        (
            "POST",
            &put,
            vec![("Content-Type", JSON), ("Content-Encoding", "gzip")],
            ok_json.clone(),
            400,
            "malformed",
            "gzip",
        ),
        (
            "POST",
            &missing,
            vec![("Content-Type", JSON)],
            json!({"artifact_id": artifact_id(1).to_string(), "blob_ids": [id, "nope"]})
                .to_string()
                .into_bytes(),
            400,
            "invalid_argument",
            "blob_ids[1]: invalid ID",
        ),
    ];
    for (method, path, headers, body, status, code, msg) in &cases {
        let resp = http::request(s.port, method, path, headers, body).unwrap();
        check_error(&resp, *status, code, msg);
    }
    let resp = http::request(s.port, "GET", &put, &[], &[]).unwrap();
    assert_eq!(
        resp.json()["meta"]["twirp_invalid_route"],
        format!("GET {put}")
    );
    assert_eq!(s.blob_count(), 0, "a bad request stored something");
    // The same body, well formed, is stored.
    assert_eq!(s.post("PutBlob", JSON, &ok_json).status, 200);
    assert_eq!(s.blob_count(), 1);
}

#[test]
fn bodies_over_the_cap_are_refused_compressed_or_not() {
    let config = Config {
        max_request_size: 4096,
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    let id = blob_id(1).to_string();
    // A body that is valid but too large: padding in a field the server keeps.
    let big = |n: usize| {
        json!({"diff_id": id, "blob_info": {"schema_version": 2, "created_by": "x".repeat(n)}})
            .to_string()
            .into_bytes()
    };
    let put = format!("{CACHE}/PutBlob");
    // Declared too large: refused from the Content-Length alone.
    let resp = s.post("PutBlob", JSON, &big(5000));
    check_error(
        &resp,
        400,
        "invalid_argument",
        "larger than the limit of 4096 bytes",
    );
    // Chunked, with no declared length: cut off while read.
    let body = big(5000);
    let chunked = format!("{:x}\r\n", body.len()).into_bytes();
    let mut raw = chunked;
    raw.extend_from_slice(&body);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let resp = raw_request(s.port, &put, &[("Transfer-Encoding", "chunked")], &raw);
    check_error(&resp, 400, "invalid_argument", "larger than the limit");
    // Small compressed, too large decompressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&big(100_000)).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 4096);
    let resp = http::post(s.port, &put, JSON, &[("Content-Encoding", "gzip")], &gz).unwrap();
    check_error(&resp, 400, "invalid_argument", "larger than the limit");
    assert_eq!(s.blob_count(), 0);
    // Under the cap, compressed: stored.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&big(1000)).unwrap();
    let resp = http::post(
        s.port,
        &put,
        JSON,
        &[("Content-Encoding", "gzip")],
        &gz.finish().unwrap(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(s.blob_count(), 1);
}

/// A document over the backend's own size cap is refused by the reference's `PutBlob`
/// (`invalid_argument`, the document named in the message and in `meta`) and nothing is
/// stored under its key; one under it is stored.
#[test]
fn documents_over_the_backends_cap_are_refused_by_put_blob() {
    let cache: Arc<dyn Cache> = Arc::new(cache_mem::MemCache::new(&CacheOptions {
        max_document_size: Some(600),
        ..CacheOptions::default()
    }));
    let s = Served::start(cache, Config::default());
    let id = blob_id(1).to_string();
    let put = |n: usize| {
        let body =
            json!({"diff_id": id, "blob_info": {"schema_version": 2, "created_by": "x".repeat(n)}});
        s.post("PutBlob", JSON, body.to_string().as_bytes())
    };
    let resp = put(1000);
    check_error(
        &resp,
        400,
        "invalid_argument",
        "more than the document size cap of 600 bytes",
    );
    let body = resp.json();
    assert_eq!(body["meta"]["document_id"], id, "{body}");
    assert_eq!(body["meta"]["document_kind"], "blob", "{body}");
    assert_eq!(body["meta"]["document_limit"], "600", "{body}");
    assert_eq!(s.blob_count(), 0);
    let resp = put(10);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(s.blob_count(), 1);
}

/// Sends a request whose body is given raw (e.g. already chunked).
fn raw_request(port: u16, path: &str, headers: &[(&str, &str)], raw_body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {JSON}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(raw_body).unwrap();
    http::read_response(&mut stream).unwrap()
}

#[test]
fn the_token_is_required_on_every_rpc_and_nothing_else() {
    let config = Config {
        token: Some(Token::new("s3cret")),
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    let body = put_blob_json(&blob_id(1).to_string());
    let put = format!("{CACHE}/PutBlob");
    let resp = http::post(s.port, &put, JSON, &[], &body).unwrap();
    check_error(
        &resp,
        401,
        "unauthenticated",
        "missing token (header trivy-token)",
    );
    for wrong in ["s3cre", "s3cret2", "S3CRET", "x"] {
        let resp = http::post(s.port, &put, JSON, &[("Trivy-Token", wrong)], &body).unwrap();
        check_error(&resp, 401, "unauthenticated", "invalid token");
        assert!(
            !resp.text().contains("s3cret"),
            "the answer shows the token"
        );
    }
    // Unknown routes under the prefix are behind the token too.
    let resp = http::post(s.port, &format!("{CACHE}/Nope"), JSON, &[], &body).unwrap();
    assert_eq!(resp.twirp_code().as_deref(), Some("unauthenticated"));
    let scan = "/twirp/trivy.scanner.v1.Scanner/Scan";
    let resp = http::post(s.port, scan, JSON, &[], b"{}").unwrap();
    assert_eq!(resp.twirp_code().as_deref(), Some("unauthenticated"));
    assert_eq!(s.blob_count(), 0);
    // Health, readiness, version and metrics need no token.
    for path in ["/healthz", "/readyz", "/version", "/metrics"] {
        assert_eq!(http::get(s.port, path).unwrap().status, 200, "{path}");
    }
    let resp = http::post(s.port, &put, JSON, &[("trivy-token", "s3cret")], &body).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(s.blob_count(), 1);
}

#[test]
fn a_client_that_disconnects_mid_upload_stores_nothing() {
    let s = Served::start(memory(), Config::default());
    let body = put_blob_json(&blob_id(1).to_string());
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        stream,
        "POST {CACHE}/PutBlob HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    drop(stream);
    // The server counts the failed request, stores nothing and keeps serving.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s
        .state
        .metrics()
        .encode()
        .contains(r#"requests_total{method="PutBlob",code="malformed"} 1"#)
    {
        assert!(Instant::now() < deadline, "{}", s.state.metrics().encode());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.blob_count(), 0);
    assert_eq!(s.post("PutBlob", JSON, &body).status, 200);
    assert_eq!(s.blob_count(), 1);
}

#[test]
fn requests_beyond_the_concurrency_bound_wait_within_the_deadline() {
    // A backend whose lookups take 1.5 s; one request at a time; 500 ms per request.
    let slow = cache_testkit::Delegate::new(cache_mem::MemCache::new(&CacheOptions::default()))
        .on_missing_blobs(|_, blobs| {
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(1500)));
            Ok(cache_core::Missing {
                artifact: true,
                blobs: blobs.to_vec(),
            })
        });
    let config = Config {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let s = Served::start(Arc::new(slow), config);
    let port = s.port;
    let first = std::thread::spawn(move || {
        http::post(
            port,
            &format!("{CACHE}/MissingBlobs"),
            PROTOBUF,
            &[],
            &missing_pb(&[]),
        )
        .unwrap()
    });
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let second = s.post("MissingBlobs", PROTOBUF, &missing_pb(&[]));
    check_error(&second, 408, "deadline_exceeded", "longer than 0.5 s");
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "the second request was not bounded by the deadline"
    );
    // The first held the only slot; its lookup blocked it past the deadline.
    let first = first.join().unwrap();
    assert!(matches!(first.status, 200 | 408), "{}", first.text());
}

#[test]
fn health_version_metrics_and_the_path_prefix() {
    let config = Config {
        path_prefix: "/scan/api/".into(),
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    assert_eq!(http::get(s.port, "/healthz").unwrap().text(), "ok");
    let ready = http::get(s.port, "/readyz").unwrap();
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready"));
    let version = http::get(s.port, "/version").unwrap().json();
    assert_eq!(version["Version"], env!("CARGO_PKG_VERSION"));
    // Twirp routes live under the prefix only.
    let body = missing_pb(&[blob_id(1).to_string(), blob_id(2).to_string()]);
    let resp = http::post(
        s.port,
        "/scan/api/trivy.cache.v1.Cache/MissingBlobs",
        PROTOBUF,
        &[],
        &body,
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = http::post(
        s.port,
        &format!("{CACHE}/MissingBlobs"),
        PROTOBUF,
        &[],
        &body,
    )
    .unwrap();
    assert_eq!(resp.twirp_code().as_deref(), Some("bad_route"));
    let put = put_blob_json(&blob_id(1).to_string());
    let resp = http::post(
        s.port,
        "/scan/api/trivy.cache.v1.Cache/PutBlob",
        JSON,
        &[],
        &put,
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let resp = http::post(
        s.port,
        "/scan/api/trivy.cache.v1.Cache/MissingBlobs",
        PROTOBUF,
        &[],
        &body,
    )
    .unwrap();
    assert_eq!(resp.status, 200);

    let metrics = http::get(s.port, "/metrics").unwrap();
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text();
    for line in [
        r#"scancache_server_requests_total{method="MissingBlobs",code="ok"} 2"#,
        r#"scancache_server_requests_total{method="other",code="bad_route"} 1"#,
        r#"scancache_server_requests_total{method="PutBlob",code="ok"} 1"#,
        "scancache_server_missing_blobs_hits_total 1",
        "scancache_server_missing_blobs_misses_total 3",
        "scancache_server_put_blobs_total 1",
        "scancache_server_backend_errors_total 0",
        "scancache_server_requests_in_flight 0",
        r#"scancache_server_request_duration_seconds_count{method="MissingBlobs"} 2"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    let received = text
        .lines()
        .find_map(|l| l.strip_prefix("scancache_server_received_bytes_total "))
        .unwrap();
    // Bodies as read: the bad route's body never was.
    assert_eq!(
        received.parse::<usize>().unwrap(),
        2 * body.len() + put.len()
    );
    let summary = s.state.metrics().summary();
    assert!(summary.starts_with("4 requests (1 failed)"), "{summary}");
}

#[test]
fn scanning_for_vulnerabilities_is_refused_with_the_scanners_to_use() {
    let s = Served::start(memory(), Config::default());
    let req = ScanRequest {
        target: "app.tar".into(),
        artifact_id: artifact_id(1).to_string(),
        blob_ids: vec![blob_id(1).to_string()],
        options: Some(ScanOptions {
            scanners: vec!["vuln".into(), "secret".into()],
            ..ScanOptions::default()
        }),
    };
    let resp = http::post(
        s.port,
        "/twirp/trivy.scanner.v1.Scanner/Scan",
        PROTOBUF,
        &[],
        &req.encode_to_vec(),
    )
    .unwrap();
    check_error(&resp, 412, "failed_precondition", cache_server::NO_VULN_DB);
}

#[test]
fn a_backend_that_goes_away_is_unavailable_until_it_returns() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start(ServerOptions::default());
    let cache = block_on(cache_redis::RedisCache::connect(
        cache_redis::RedisConfig::new(redis.url(0)),
        &CacheOptions::default(),
    ))
    .unwrap();
    let s = Served::start(Arc::new(cache), Config::default());
    let body = missing_pb(&[blob_id(1).to_string()]);
    assert_eq!(s.post("MissingBlobs", PROTOBUF, &body).status, 200);
    assert_eq!(http::get(s.port, "/readyz").unwrap().status, 200);

    redis.kill();
    let resp = s.post("MissingBlobs", PROTOBUF, &body);
    check_error(&resp, 503, "unavailable", "unavailable");
    let resp = s.post("PutBlob", JSON, &put_blob_json(&blob_id(1).to_string()));
    check_error(&resp, 503, "unavailable", "unavailable");
    // Readiness fails once its one-second answer has aged.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = http::get(s.port, "/readyz").unwrap();
        if ready.status == 503 {
            assert!(ready.text().starts_with("not ready: "), "{}", ready.text());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed ready with Redis gone"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Healthy (alive) all along.
    assert_eq!(http::get(s.port, "/healthz").unwrap().status, 200);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = s.post("MissingBlobs", PROTOBUF, &body);
        let ready = http::get(s.port, "/readyz").unwrap();
        if resp.status == 200 && ready.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {} {}",
            resp.text(),
            ready.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = s.state.metrics().encode();
    assert!(
        !text.contains("scancache_server_backend_errors_total 0"),
        "{text}"
    );
    assert!(
        text.contains(r#"requests_total{method="MissingBlobs",code="unavailable"}"#),
        "{text}"
    );
}

/// Serves a backend whose lookups take `lookup`, starts one request, asks the server to
/// stop while it is in flight, and returns the answer and how the server stopped.
fn stop_during_a_request(
    lookup: Duration,
    grace: Duration,
) -> (Option<Response>, cache_server::Stopped, Duration) {
    let slow = cache_testkit::Delegate::new(cache_mem::MemCache::new(&CacheOptions::default()))
        .on_missing_blobs(move |_, blobs| {
            // A slow backend, without stalling the runtime's timers.
            tokio::task::block_in_place(|| std::thread::sleep(lookup));
            Ok(cache_core::Missing {
                artifact: true,
                blobs: blobs.to_vec(),
            })
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let state = ServerState::new(Arc::new(slow), Config::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(cache_server::serve(
            listener,
            cache_server::router(state),
            None,
            async {
                let _ = stop_rx.await;
            },
            grace,
        ));
        let client = tokio::task::spawn_blocking(move || {
            http::post(
                port,
                &format!("{CACHE}/MissingBlobs"),
                PROTOBUF,
                &[],
                &missing_pb(&[]),
            )
            .ok()
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let stopping = Instant::now();
        stop_tx.send(()).unwrap();
        let stopped = server.await.unwrap().unwrap();
        let took = stopping.elapsed();
        // New connections are refused once it stopped.
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        (client.await.unwrap(), stopped, took)
    })
}

#[test]
fn shutdown_lets_requests_in_flight_finish_within_the_grace_period() {
    let (answer, stopped, took) =
        stop_during_a_request(Duration::from_millis(600), Duration::from_secs(5));
    assert!(stopped.drained);
    assert!(
        took >= Duration::from_millis(300),
        "the shutdown did not wait ({took:?})"
    );
    let answer = answer.expect("the request in flight was cut off");
    assert_eq!(answer.status, 200, "{}", answer.text());
    // A request that outlives the grace period does not hold the shutdown.
    let (answer, stopped, took) =
        stop_during_a_request(Duration::from_millis(1500), Duration::from_millis(200));
    assert!(!stopped.drained, "{:?} {took:?}", answer.map(|a| a.text()));
    assert!(
        took < Duration::from_millis(1200),
        "shutdown waited {took:?}"
    );
}

/// `PutBlob`s of the blobs `ids`, each from a thread of its own, all at once; each must
/// succeed.
fn put_blobs_at_once(port: u16, ids: std::ops::Range<u64>) {
    let threads: Vec<_> = ids
        .map(|n| {
            std::thread::spawn(move || {
                let body = put_blob_json(&blob_id(n).to_string());
                http::post(port, &format!("{CACHE}/PutBlob"), JSON, &[], &body).unwrap()
            })
        })
        .collect();
    for t in threads {
        let resp = t.join().unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
}

#[test]
fn concurrent_uploads_are_committed_together_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let fs = cache_fs::FsCache::open(dir.path(), &CacheOptions::default()).unwrap();
    let s = Served::start(Arc::new(fs), Config::default());
    put_blobs_at_once(s.port, 0..64);
    assert_eq!(s.blob_count(), 64);
    let ids: Vec<String> = (0..64).map(|n| blob_id(n).to_string()).collect();
    let resp = s.post("MissingBlobs", PROTOBUF, &missing_pb(&ids));
    let answer = MissingBlobsResponse::decode(&resp.body[..]).unwrap();
    assert!(
        answer.missing_blob_ids.is_empty(),
        "{:?}",
        answer.missing_blob_ids
    );
}

/// Group commit is for backends whose every write is a costly commit (LMDB); on memory
/// (and Redis, which pipelines by itself) each upload is written at once, alone.
#[test]
fn only_backends_that_group_writes_get_a_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let fs = cache_fs::FsCache::open(dir.path(), &CacheOptions::default()).unwrap();
    assert!(fs.groups_writes());
    let mem = cache_mem::MemCache::new(&CacheOptions::default());
    assert!(!mem.groups_writes());
    let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = writes.clone();
    let watched = cache_testkit::Delegate::new(mem)
        .on_write(move |entries| seen.lock().unwrap().push(entries.len()));
    let s = Served::start(Arc::new(watched), Config::default());
    put_blobs_at_once(s.port, 0..16);
    assert_eq!(*writes.lock().unwrap(), vec![1; 16]);
    assert_eq!(s.blob_count(), 16);
}

#[test]
fn a_document_over_the_cap_fails_its_own_request_only() {
    // A cap that the small blob fits and the large one does not.
    let options = CacheOptions {
        max_document_size: Some(2_000),
        ..CacheOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let fs = cache_fs::FsCache::open(dir.path(), &options).unwrap();
    let s = Served::start(Arc::new(fs), Config::default());
    let port = s.port;
    let big_id = blob_id(1).to_string();
    let big = json!({
        "diff_id": big_id,
        "blob_info": {
            "schema_version": 2, "diff_id": "sha256:00", "size": "10",
            "os": {"family": "alpine", "name": "x".repeat(4_000)}
        }
    })
    .to_string()
    .into_bytes();
    // Sent together with fitting uploads, so they may share a group commit.
    let small: Vec<_> = (2..10u64)
        .map(|n| {
            std::thread::spawn(move || {
                let body = put_blob_json(&blob_id(n).to_string());
                http::post(port, &format!("{CACHE}/PutBlob"), JSON, &[], &body).unwrap()
            })
        })
        .collect();
    let resp = s.post("PutBlob", JSON, &big);
    check_error(
        &resp,
        400,
        "invalid_argument",
        "document size cap of 2000 bytes",
    );
    for t in small {
        let resp = t.join().unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(s.blob_count(), 8, "only the fitting blobs are stored");
    let metrics = s.state.metrics().encode();
    assert!(
        metrics.contains("scancache_server_documents_over_cap_total 1"),
        "{metrics}"
    );
}

/// `MissingBlobs` as JSON for `ids`, answered with the IDs reported missing.
fn missing_json(port: u16, ids: &[String]) -> (u16, Vec<String>) {
    let body = json!({"artifact_id": artifact_id(1).to_string(), "blob_ids": ids}).to_string();
    let resp = http::post(
        port,
        &format!("{CACHE}/MissingBlobs"),
        JSON,
        &[],
        body.as_bytes(),
    )
    .unwrap();
    let missing = resp.json()["missing_blob_ids"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (resp.status, missing)
}

/// A client that asks for a layer another client is uploading waits for its `PutBlob`
/// without holding a slot (the upload gets through with one slot) and past the request
/// timeout, then is answered without the layer; when the uploader never comes, the lease
/// runs out and the waiter gets the layer.
#[test]
fn a_held_missing_blobs_frees_its_slot_and_outlives_the_timeout() {
    let config = Config {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_millis(300),
        lease: Some(Duration::from_secs(10)),
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    let id = blob_id(1).to_string();
    assert_eq!(
        missing_json(s.port, std::slice::from_ref(&id)),
        (200, vec![id.clone()])
    );
    let port = s.port;
    let ids = vec![id.clone()];
    let started = Instant::now();
    let waiter = std::thread::spawn(move || missing_json(port, &ids));
    std::thread::sleep(Duration::from_millis(700));
    assert!(!waiter.is_finished(), "the second caller was not held");
    let put = s.post("PutBlob", JSON, &put_blob_json(&id));
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(waiter.join().unwrap(), (200, vec![]));
    assert!(started.elapsed() >= Duration::from_millis(700));
    let metrics = http::get(s.port, "/metrics").unwrap().text();
    assert!(
        metrics.contains("scancache_server_claim_waits_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scancache_server_claims_total 1"),
        "{metrics}"
    );

    // An uploader that never comes: the waiter is answered with the layer at the lease's
    // end, and owns it.
    let config = Config {
        lease: Some(Duration::from_millis(600)),
        ..Config::default()
    };
    let s = Served::start(memory(), config);
    let id = blob_id(2).to_string();
    assert_eq!(
        missing_json(s.port, std::slice::from_ref(&id)).1,
        vec![id.clone()]
    );
    let started = Instant::now();
    assert_eq!(
        missing_json(s.port, std::slice::from_ref(&id)).1,
        vec![id.clone()]
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let metrics = http::get(s.port, "/metrics").unwrap().text();
    assert!(
        metrics.contains("scancache_server_claim_takeovers_total 1"),
        "{metrics}"
    );
}
