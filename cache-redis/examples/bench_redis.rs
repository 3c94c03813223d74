//! Throughput and latency of the Redis backend against `redis-benchmark` on the same
//! server, in the same run.
//!
//! `cargo run --release -p cache-redis --example bench_redis -- [--quick]` (or
//! `cargo xtask bench redis`)
//!
//! Starts its own `redis-server` on a free loopback port (killed at the end), then measures:
//! - `put_blob` / `get_blob` of ~10 KB documents with 16 concurrent tasks, as a ratio to
//!   `redis-benchmark -t set,get -d 10240 -c 16` (target: at least 0.5);
//! - `missing_blobs` latency for 10, 100 and 1000 IDs, against the same lookups done with
//!   one `GET` per ID.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark binary: fail loudly.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use cache_core::{BlobId, Cache, CacheOptions, codec};
use cache_redis::{RedisCache, RedisConfig};
use cache_testkit::{
    bench::{Figure, Spread, time_async},
    conformance::{blob_id, sample_blob},
};

/// The allocator the `scancache` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TASKS: usize = 16;

/// Packages per document: about 10 KB of JSON.
const PACKAGES: usize = 70;

/// Kills the server when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &std::path::Path) -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_ne!(port, 6379);
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir", &dir.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server not found: apt-get install redis-server");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, port)
}

/// Runs `redis-benchmark` and returns requests per second for SET and GET.
fn redis_benchmark(port: u16, requests: usize) -> (f64, f64) {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set,get"])
        .args([
            "-d",
            "10240",
            "-c",
            &TASKS.to_string(),
            "-n",
            &requests.to_string(),
        ])
        .args(["--csv", "-q"])
        .output()
        .expect("redis-benchmark not found: apt-get install redis-tools");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("\"{name}\"")))
            .and_then(|l| l.split(',').nth(1))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or_else(|| panic!("no {name} in redis-benchmark output:\n{text}"))
    };
    (rps("SET"), rps("GET"))
}

/// Ops per second of `op` run `per_task` times in each of [`TASKS`] tasks.
async fn throughput<F, Fut>(cache: &Arc<RedisCache>, per_task: usize, op: F) -> f64
where
    F: Fn(Arc<RedisCache>, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let cache = Arc::clone(cache);
            let op = op.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    op(Arc::clone(&cache), (t * per_task + i) as u64).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (TASKS * per_task) as f64 / start.elapsed().as_secs_f64()
}

/// Ops per second of raw `GET`s of the stored blobs, [`TASKS`] tasks sharing one
/// multiplexed connection.
async fn raw_throughput(conn: &redis::aio::MultiplexedConnection, per_task: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let mut conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let key = format!("fanal::blob::{}", blob_id((t * per_task + i) as u64));
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert!(v.is_some());
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (TASKS * per_task) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let requests = if quick { 20_000 } else { 100_000 };
    let reps = if quick { 3 } else { 5 };
    let rounds = if quick { 11 } else { 51 };
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_server(dir.path());

    let cache = Arc::new(
        RedisCache::connect(
            RedisConfig::new(format!("redis://127.0.0.1:{port}/0")),
            &CacheOptions::default(),
        )
        .await
        .unwrap(),
    );
    let doc = Arc::new(sample_blob(1, PACKAGES));
    let size = codec::encode(&*doc).len();
    let per_task = requests / TASKS;
    println!("document: {size} bytes; {TASKS} concurrent tasks; {requests} requests x {reps}");

    let (mut set, mut get, mut put, mut got) = (vec![], vec![], vec![], vec![]);
    // The same GETs through the redis crate itself (one multiplexed connection, no pool,
    // no decoding), to tell the client library's cost from ours.
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();
    let mut raw_get = vec![];
    for _ in 0..reps {
        let (s, g) = redis_benchmark(port, requests);
        set.push(s);
        get.push(g);
        let _ = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "flushall"])
            .output();
        let d = Arc::clone(&doc);
        put.push(
            throughput(&cache, per_task, move |c, n| {
                let doc = Arc::clone(&d);
                async move { c.put_blob(&blob_id(n), &doc).await.unwrap() }
            })
            .await,
        );
        got.push(
            throughput(&cache, per_task, |c, n| async move {
                assert!(c.get_blob(&blob_id(n)).await.unwrap().is_some());
            })
            .await,
        );
        raw_get.push(raw_throughput(&raw, per_task).await);
    }
    Figure {
        name: "put_blob 10KB, 16 tasks",
        unit: "ops/s",
        spread: Spread::of(put),
        baseline: Some(("redis-benchmark SET -d 10240 -c 16", Spread::of(set))),
        target: Some(">= 0.5"),
        note: Some("ours also JSON-encodes each document"),
    }
    .report();
    Figure {
        name: "get_blob 10KB, 16 tasks",
        unit: "ops/s",
        spread: Spread::of(got.clone()),
        baseline: Some(("redis-benchmark GET -d 10240 -c 16", Spread::of(get))),
        target: Some(">= 0.5"),
        note: Some("ours also JSON-decodes each document"),
    }
    .report();

    Figure {
        name: "get_blob 10KB, 16 tasks (vs redis crate)",
        unit: "ops/s",
        spread: Spread::of(got.clone()),
        baseline: Some((
            "raw GET of the same keys via the redis crate, no decoding",
            Spread::of(raw_get),
        )),
        target: None,
        note: Some("separates the client library's cost from pooling and JSON decoding"),
    }
    .report();

    let artifact = cache_core::ArtifactId::from(blob_id(u64::MAX).digest().clone());
    for n in [10usize, 100, 1000] {
        // Half of the IDs are stored (the first half of the benchmark's puts).
        let ids: Vec<BlobId> = (0..n as u64)
            .map(|i| {
                if i % 2 == 0 {
                    blob_id(i)
                } else {
                    blob_id(u64::MAX - 1 - i)
                }
            })
            .collect();
        let pipelined = time_async(rounds, 1, || async {
            cache.missing_blobs(&artifact, &ids).await.unwrap();
        })
        .await;
        let one_by_one = time_async(rounds, 1, || async {
            for id in &ids {
                let doc = cache.get_blob(id).await.unwrap();
                let _current = doc.is_some_and(|d| d.is_current());
            }
        })
        .await;
        Figure {
            name: &format!("missing_blobs {n} IDs"),
            unit: "us/call",
            spread: pipelined,
            baseline: Some(("one GET per ID", one_by_one)),
            target: None,
            note: Some("one pipelined round trip of GETRANGE vs n round trips"),
        }
        .report();
    }
}
