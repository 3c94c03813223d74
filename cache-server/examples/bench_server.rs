//! Benchmark of `scancache server` (run by `cargo xtask bench server`).
//!
//! 16 concurrent clients send protobuf `MissingBlobs` (100 IDs, all stored) and `PutBlob`
//! (a 10 KB blob) requests over kept-alive HTTP/1.1 connections, to:
//! - the real `scancache server` process (target/release/scancache, which xtask builds)
//!   on the memory, fs and Redis backends, against the same operations called directly
//!   on the same kind of backend by 16 tasks in this process;
//! - the reference's own `trivy server --skip-db-update` on its fs backend (bbolt) and on
//!   Redis, against scancache server on fs (LMDB) and on the same kind of Redis: its
//!   throughput and its p99 latency.
//!
//! It also reads the scancache server's peak RSS (VmHWM) after the load. Throughput is
//! operations per second (higher is better), latency milliseconds (lower is better).
//! `--quick` runs one short repetition of each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use cache_core::{ArtifactId, BlobId, BlobInfo, Cache, CacheOptions, Digest};
use cache_server::proto::{
    cache::{self as pc, MissingBlobsRequest, PutBlobRequest},
    common as pb,
};
use cache_testkit::{
    bench::{Figure, Spread},
    http::ScancacheServer,
    redis::{RedisServer, ServerOptions},
    trivy::{TrivyServer, require_trivy},
};
use prost::Message;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: usize = 16;
const IDS: usize = 100;

/// How long and how often each figure is measured.
#[derive(Clone, Copy)]
struct Plan {
    duration: Duration,
    reps: usize,
}

fn id(n: u64) -> Digest {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[8] = 0xbe;
    Digest::from_sha256(bytes)
}

/// A blob of about 10 KB as protobuf: an OS package database of 40 packages.
fn blob_message() -> pc::BlobInfo {
    let packages = (0..40)
        .map(|i| pb::Package {
            id: format!("package-{i}@1.{i}.0-r0"),
            name: format!("package-{i}"),
            version: format!("1.{i}.0-r0"),
            arch: "x86_64".into(),
            src_name: format!("package-{i}"),
            src_version: format!("1.{i}.0-r0"),
            licenses: vec!["MIT".into()],
            maintainer: "Maintainer Name <maintainer@example.org>".into(),
            depends_on: vec![format!("package-{}@1.0.0-r0", (i + 1) % 40)],
            digest: format!("sha1:{:040x}", i),
            installed_files: vec![format!("usr/lib/package-{i}/lib.so")],
            analyzed_by: "apk".into(),
            ..pb::Package::default()
        })
        .collect();
    pc::BlobInfo {
        schema_version: 2,
        os: Some(pb::Os {
            family: "alpine".into(),
            name: "3.20.3".into(),
            ..pb::Os::default()
        }),
        package_infos: vec![pb::PackageInfo {
            file_path: "lib/apk/db/installed".into(),
            packages,
        }],
        diff_id: format!("sha256:{:064x}", 7),
        size: 5_000_000,
        created_by: "ADD file:base in /".into(),
        ..pc::BlobInfo::default()
    }
}

/// The IDs a PutBlob of client `c`, call `n` writes: 64 per client, overwritten in turn,
/// so the stores (and the memory backend's RSS) do not grow with the number of calls.
fn put_id(c: usize, n: u64) -> u64 {
    1_000_000 + (c as u64) * 1000 + n % 64
}

/// Runs `op(client, n)` from `CLIENTS` tasks for `duration`; returns operations per
/// second and every operation's latency in milliseconds.
async fn load<F, Fut>(duration: Duration, op: F) -> (f64, Vec<f64>)
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    op(c, n).await;
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    (all.len() as f64 / elapsed, all)
}

fn p99(mut latencies: Vec<f64>) -> f64 {
    latencies.sort_by(f64::total_cmp);
    latencies
        .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

/// Throughput and p99 over `reps` repetitions (after one short warm-up).
async fn measure<F, Fut>(plan: Plan, op: F) -> (Spread, Spread)
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    load(plan.duration / 4, op.clone()).await;
    let mut rates = Vec::new();
    let mut tails = Vec::new();
    for _ in 0..plan.reps {
        let (rate, lat) = load(plan.duration, op.clone()).await;
        rates.push(rate);
        tails.push(p99(lat));
    }
    (Spread::of(rates), Spread::of(tails))
}

/// One kept-alive HTTP/1.1 connection of the load generator, with its read buffer.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// One Twirp endpoint under load.
///
/// The load generator is a minimal HTTP/1.1 client (one request written in one piece,
/// the answer read by its `Content-Length`, connections kept alive and reused), so that
/// the load itself takes as little as it can of the cores it shares with the server.
#[derive(Clone)]
struct Endpoint {
    addr: std::net::SocketAddr,
    idle: Arc<std::sync::Mutex<Vec<Conn>>>,
}

impl Endpoint {
    fn new(base: String) -> Endpoint {
        let addr = base
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("not an http://IP:PORT address: {base}"));
        Endpoint {
            addr,
            idle: Arc::new(std::sync::Mutex::new(Vec::new())),
        }
    }

    async fn call(&self, method: &str, body: Bytes) {
        let mut request = format!(
            "POST /twirp/trivy.cache.v1.Cache/{method} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/protobuf\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let idle = self.idle.lock().unwrap().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let stream = tokio::net::TcpStream::connect(self.addr)
                    .await
                    .expect("cannot connect to the server");
                stream.set_nodelay(true).unwrap();
                Conn {
                    stream,
                    buf: Vec::with_capacity(4096),
                }
            }
        };
        let (status, answer) = conn.exchange(&request).await;
        assert!(
            status == 200,
            "{method}: {status} {}",
            String::from_utf8_lossy(&answer)
        );
        self.idle.lock().unwrap().push(conn);
    }

    /// Puts the blob `blob` (its `PutBlobRequest` field 2, encoded once by [`encoded_blob`])
    /// under the ID `id`: the request is the ID's field followed by those bytes (protobuf
    /// fields may come in any order), so a request costs this client no re-encoding.
    async fn put(&self, id: u64, blob: &Bytes) {
        let mut body = PutBlobRequest {
            diff_id: BlobId::from(self::id(id)).to_string(),
            blob_info: None,
        }
        .encode_to_vec();
        body.extend_from_slice(blob);
        self.call("PutBlob", body.into()).await;
    }
}

impl Conn {
    /// Writes `request` and reads the answer: its status and body. The answer must have
    /// a `Content-Length` (both servers give one to every Twirp answer).
    async fn exchange(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        use tokio::io::AsyncWriteExt as _;
        self.stream
            .write_all(request)
            .await
            .expect("request failed");
        self.buf.clear();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).expect("answer head");
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("not an HTTP answer: {head:?}"));
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or_else(|| panic!("an answer without Content-Length: {head:?}"));
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.fill().await;
                }
                assert_eq!(self.buf.len(), total, "bytes after the answer");
                return (status, self.buf[end + 4..].to_vec());
            }
            self.fill().await;
        }
    }

    async fn fill(&mut self) {
        use tokio::io::AsyncReadExt as _;
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .expect("answer failed");
        assert!(n > 0, "the server closed the connection");
    }
}

/// The `blob_info` field of a `PutBlobRequest` holding `blob`, encoded.
fn encoded_blob(blob: pc::BlobInfo) -> Bytes {
    PutBlobRequest {
        diff_id: String::new(),
        blob_info: Some(blob),
    }
    .encode_to_vec()
    .into()
}

/// The MissingBlobs request every benchmark sends: 100 stored blobs.
fn missing_request() -> Bytes {
    MissingBlobsRequest {
        artifact_id: ArtifactId::from(id(0)).to_string(),
        blob_ids: (1..=IDS as u64)
            .map(|n| BlobId::from(id(n)).to_string())
            .collect(),
    }
    .encode_to_vec()
    .into()
}

/// Throughput and p99 of both RPCs against one server or backend, and the CPU time the
/// processes on the path spent per call, when their PIDs are known.
struct ServerFigures {
    missing: (Spread, Spread),
    put: (Spread, Spread),
    /// The server's CPU per MissingBlobs (µs).
    missing_cpu: Option<f64>,
    put_cpu: Option<PutCpu>,
}

/// CPU time per PutBlob (µs) of each process on the path.
struct PutCpu {
    /// The server's; 0 for direct calls.
    server: f64,
    /// This process's: the load generator's, or the direct caller's.
    caller: f64,
    /// redis-server's; 0 off Redis.
    redis: f64,
}

/// The processes whose CPU time a benchmark reads besides its own.
#[derive(Clone, Copy)]
struct Watched {
    /// The scancache server (none for the reference's server and for direct calls).
    server: Option<u32>,
    /// redis-server (none off Redis).
    redis: Option<u32>,
}

/// The CPU seconds the threads of a process have run so far (from each thread's
/// `schedstat`, in nanoseconds, rather than the 10 ms ticks of `stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: f64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum();
    ns / 1e9
}

/// Runs `rounds` rounds of `CLIENTS` concurrent `op(client, round)` calls; answers each
/// of `pids`' CPU time per call (µs), in their order.
async fn cpu_per_call<F, Fut>(pids: &[u32], rounds: usize, op: F) -> Vec<f64>
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let before: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    for round in 0..rounds {
        let batch: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(op(c, round as u64)))
            .collect();
        for t in batch {
            t.await.unwrap();
        }
    }
    let calls = (rounds * CLIENTS) as f64;
    pids.iter()
        .zip(before)
        .map(|(&p, b)| (cpu_seconds(p) - b) * 1e6 / calls)
        .collect()
}

/// The IDs the CPU measurement of PutBlob writes (apart from the throughput's).
fn cpu_put_id(c: usize, round: u64) -> u64 {
    put_id(c, 5000 + round)
}

async fn bench_endpoint(plan: Plan, ep: &Endpoint, watched: Watched) -> ServerFigures {
    let blob = encoded_blob(blob_message());
    for n in 1..=IDS as u64 {
        ep.put(n, &blob).await;
    }
    let body = missing_request();
    let e = ep.clone();
    let one = move |body: Bytes| {
        let e = e.clone();
        async move { e.call("MissingBlobs", body).await }
    };
    let missing_cpu = match watched.server {
        Some(server) => {
            let per = cpu_per_call(&[server], 500, |_, _| one(body.clone())).await;
            Some(per[0])
        }
        None => None,
    };
    let missing = measure(plan, move |_, _| one(body.clone())).await;
    let put_one = |c: usize, round: u64| {
        let (e, blob) = (ep.clone(), blob.clone());
        async move { e.put(cpu_put_id(c, round), &blob).await }
    };
    let put_cpu = match watched.server {
        Some(server) => {
            let me = std::process::id();
            let pids: Vec<u32> = [server, me].into_iter().chain(watched.redis).collect();
            let per = cpu_per_call(&pids, 1000, put_one).await;
            Some(PutCpu {
                server: per[0],
                caller: per[1],
                redis: per.get(2).copied().unwrap_or(0.0),
            })
        }
        None => None,
    };
    let e = ep.clone();
    let put = measure(plan, move |c, n| {
        let (e, blob) = (e.clone(), blob.clone());
        async move { e.put(put_id(c, n), &blob).await }
    })
    .await;
    ServerFigures {
        missing,
        put,
        missing_cpu,
        put_cpu,
    }
}

async fn bench_direct(plan: Plan, cache: Arc<dyn Cache>, redis: Option<u32>) -> ServerFigures {
    let doc = BlobInfo::from(blob_message());
    for n in 1..=IDS as u64 {
        cache.put_blob(&BlobId::from(id(n)), &doc).await.unwrap();
    }
    let artifact = ArtifactId::from(id(0));
    let ids: Arc<Vec<BlobId>> = Arc::new((1..=IDS as u64).map(|n| BlobId::from(id(n))).collect());
    let c = cache.clone();
    let missing = measure(plan, move |_, _| {
        let (c, ids, artifact) = (c.clone(), ids.clone(), artifact.clone());
        async move {
            let m = c.missing_blobs(&artifact, &ids).await.unwrap();
            assert!(m.blobs.is_empty());
        }
    })
    .await;
    let doc = Arc::new(doc);
    let put_one = |client: usize, round: u64| {
        let (c, doc) = (cache.clone(), doc.clone());
        async move {
            c.put_blob(&BlobId::from(id(cpu_put_id(client, round))), &doc)
                .await
                .unwrap();
        }
    };
    let pids: Vec<u32> = [std::process::id()].into_iter().chain(redis).collect();
    let per = cpu_per_call(&pids, 1000, put_one).await;
    let put_cpu = PutCpu {
        server: 0.0,
        caller: per[0],
        redis: per.get(1).copied().unwrap_or(0.0),
    };
    let c = cache.clone();
    let put = measure(plan, move |client, n| {
        let (c, doc) = (c.clone(), doc.clone());
        async move {
            c.put_blob(&BlobId::from(id(put_id(client, n))), &doc)
                .await
                .unwrap();
        }
    })
    .await;
    ServerFigures {
        missing,
        put,
        missing_cpu: None,
        put_cpu: Some(put_cpu),
    }
}

/// The load against a running scancache server (on Redis when `redis` is its PID): its
/// figures and then its peak RSS.
async fn bench_ours(
    plan: Plan,
    server: &ScancacheServer,
    redis: Option<u32>,
) -> (ServerFigures, f64) {
    let watched = Watched {
        server: Some(server.pid()),
        redis,
    };
    let figures = bench_endpoint(plan, &Endpoint::new(server.url()), watched).await;
    (figures, peak_rss_mb(server.pid()))
}

/// The load against the reference's running server (whose CPU is not read).
async fn bench_reference(plan: Plan, reference: &TrivyServer) -> ServerFigures {
    let watched = Watched {
        server: None,
        redis: None,
    };
    bench_endpoint(plan, &Endpoint::new(reference.url()), watched).await
}

/// The scancache binary xtask built.
fn scancache_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/scancache");
    assert!(
        bin.is_file(),
        "{} is missing: run through `cargo xtask bench server`, which builds it",
        bin.display()
    );
    bin
}

/// Peak resident set size of a process in MB (VmHWM).
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

fn report_vs_direct(
    backend: &str,
    ours: &ServerFigures,
    direct: &ServerFigures,
    with_target: bool,
) {
    let server_cpu = [
        ("MissingBlobs(100)", ours.missing_cpu),
        ("PutBlob(10KB)", ours.put_cpu.as_ref().map(|c| c.server)),
    ];
    for (rpc, us) in server_cpu {
        let Some(us) = us else { continue };
        Figure {
            name: &format!("{backend}: server CPU per {rpc}"),
            unit: "us/op",
            spread: Spread::of(vec![us]),
            baseline: None,
            target: None,
            note: Some("CPU time of the server process's threads over a fixed number of calls"),
        }
        .report();
    }
    if let (Some(ours), Some(direct)) = (&ours.put_cpu, &direct.put_cpu) {
        Figure {
            name: &format!("{backend}: CPU per PutBlob(10KB), server and backend"),
            unit: "us/op",
            spread: Spread::of(vec![ours.server + ours.redis]),
            baseline: Some((
                "direct calls: caller and backend",
                Spread::of(vec![direct.caller + direct.redis]),
            )),
            target: None,
            note: Some(
                "the server plus redis-server (if any) vs the calling process plus redis-server; \
                 the load generator's own CPU (next figure) left out; ratio = cost multiple",
            ),
        }
        .report();
        Figure {
            name: &format!("{backend}: load generator CPU per PutBlob(10KB)"),
            unit: "us/op",
            spread: Spread::of(vec![ours.caller]),
            baseline: None,
            target: None,
            note: Some(
                "this process sending the requests and reading the answers, on the same cores",
            ),
        }
        .report();
    }
    let names = [
        format!("{backend}: MissingBlobs(100) via server"),
        format!("{backend}: PutBlob(10KB) via server"),
    ];
    let base = format!("direct {backend} calls");
    for ((name, (ours, _)), ((direct, _), target)) in names
        .iter()
        .zip([&ours.missing, &ours.put])
        .zip([(&direct.missing, ">= 0.3"), (&direct.put, ">= 0.5")])
    {
        Figure {
            name,
            unit: "ops/s",
            spread: *ours,
            baseline: Some((&base, *direct)),
            target: with_target.then_some(target),
            note: Some("16 concurrent protobuf clients vs 16 tasks calling the backend; ratio = throughput share"),
        }
        .report();
    }
}

fn report_vs_trivy(kind: &str, ours: &ServerFigures, trivy: &ServerFigures) {
    let base = format!("trivy server ({kind})");
    for (rpc, (o, t)) in [
        ("MissingBlobs(100)", (&ours.missing, &trivy.missing)),
        ("PutBlob(10KB)", (&ours.put, &trivy.put)),
    ] {
        Figure {
            name: &format!("{kind}: {rpc} throughput vs reference"),
            unit: "ops/s",
            spread: o.0,
            baseline: Some((&base, t.0)),
            target: Some(">= 2"),
            note: None,
        }
        .report();
        Figure {
            name: &format!("{kind}: {rpc} p99 vs reference"),
            unit: "ms",
            spread: o.1,
            baseline: Some((&base, t.1)),
            target: Some("< 1"),
            note: None,
        }
        .report();
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only memory|fs|redis|trivy` (repeatable) runs only those parts, for profiling one.
    let args: Vec<String> = std::env::args().collect();
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].as_str())
        .collect();
    let part = |name: &str| only.is_empty() || only.contains(&name);
    let plan = if quick {
        Plan {
            duration: Duration::from_millis(500),
            reps: 1,
        }
    } else {
        Plan {
            duration: Duration::from_millis(1500),
            reps: 3,
        }
    };
    let bin = scancache_bin();
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(ServerOptions::default());
    let options = CacheOptions::default();
    let mut rss = Vec::new();

    // Memory: no target.
    if part("memory") {
        let server = ScancacheServer::start(&bin, &["-q", "--cache-backend", "memory"], &[], &[]);
        let (ours_mem, mb) = bench_ours(plan, &server, None).await;
        rss.push(("memory", mb));
        drop(server);
        let direct = bench_direct(plan, Arc::new(cache_mem::MemCache::new(&options)), None).await;
        report_vs_direct("memory", &ours_mem, &direct, false);
    }

    // fs (LMDB).
    let mut ours_fs = None;
    if part("fs") {
        let server_dir = dir.path().join("server-fs");
        let server = ScancacheServer::start(
            &bin,
            &["-q", "--cache-dir", &server_dir.display().to_string()],
            &[],
            &[],
        );
        let (ours, mb) = bench_ours(plan, &server, None).await;
        rss.push(("fs", mb));
        drop(server);
        let direct_fs = cache_fs::FsCache::open(&dir.path().join("direct-fs"), &options).unwrap();
        let direct = bench_direct(plan, Arc::new(direct_fs), None).await;
        report_vs_direct("fs", &ours, &direct, true);
        ours_fs = Some(ours);
    }

    // Redis: the server on database 1, direct calls on database 2.
    let mut ours_redis = None;
    if part("redis") {
        let server =
            ScancacheServer::start(&bin, &["-q", "--cache-backend", &redis.url(1)], &[], &[]);
        let (ours, mb) = bench_ours(plan, &server, Some(redis.pid())).await;
        rss.push(("redis", mb));
        drop(server);
        let direct_redis =
            cache_redis::RedisCache::connect(cache_redis::RedisConfig::new(redis.url(2)), &options)
                .await
                .unwrap();
        let direct = bench_direct(plan, Arc::new(direct_redis), Some(redis.pid())).await;
        report_vs_direct("redis", &ours, &direct, true);
        ours_redis = Some(ours);
    }

    for (backend, mb) in &rss {
        Figure {
            name: &format!("{backend}: server peak RSS under load"),
            unit: "MB",
            spread: Spread::of(vec![*mb]),
            baseline: None,
            target: Some("<= 64 MB"),
            note: Some("VmHWM of the scancache server process after both loads"),
        }
        .report();
    }

    // The reference's own server: bbolt, and the same kind of Redis (database 3).
    if !part("trivy") {
        return;
    }
    match require_trivy() {
        Some(trivy) => {
            if let Some(ours) = &ours_fs {
                let reference = TrivyServer::start(&trivy, &[]);
                let trivy_fs = bench_reference(plan, &reference).await;
                drop(reference);
                report_vs_trivy("fs (LMDB vs bbolt)", ours, &trivy_fs);
            }
            if let Some(ours) = &ours_redis {
                let reference = TrivyServer::start(&trivy, &["--cache-backend", &redis.url(3)]);
                let trivy_redis = bench_reference(plan, &reference).await;
                drop(reference);
                report_vs_trivy("redis", ours, &trivy_redis);
            }
        }
        None => println!("trivy is not installed: the reference server figures are skipped"),
    }
}
