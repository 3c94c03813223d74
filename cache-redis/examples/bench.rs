//! Throughput and latency of the Redis backend against `redis-benchmark` on the same
//! server, in the same run.
//!
//! `cargo run --release -p cache-redis --example bench -- [--quick]`
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

use cache_core::{BlobId, BlobInfo, Cache, CacheOptions, Digest, Os, Package, PackageInfo, codec};
use cache_redis::{RedisCache, RedisConfig};

const TASKS: usize = 16;

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

fn blob_id(n: u64) -> BlobId {
    let mut bytes = [0xbe; 32];
    bytes[24..].copy_from_slice(&n.to_be_bytes());
    BlobId::from(Digest::from_sha256(bytes))
}

/// A blob document of about 10 KB.
fn doc() -> BlobInfo {
    let packages = (0..55)
        .map(|i| Package {
            id: format!("package-{i}@1.2.3-r{i}"),
            name: format!("package-{i}"),
            version: "1.2.3".into(),
            release: format!("r{i}"),
            arch: "x86_64".into(),
            licenses: vec!["MIT".into()],
            maintainer: "Someone <someone@example.org>".into(),
            analyzed_by: "apk".into(),
            ..Default::default()
        })
        .collect();
    BlobInfo {
        schema_version: BlobInfo::SCHEMA_VERSION,
        diff_id: format!("sha256:{}", "d".repeat(64)),
        os: Some(Os {
            family: "alpine".into(),
            name: "3.20.0".into(),
            ..Default::default()
        }),
        package_infos: vec![PackageInfo {
            file_path: "lib/apk/db/installed".into(),
            packages,
            ..Default::default()
        }],
        ..Default::default()
    }
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

/// Median of `rounds` timings of `f`.
async fn median<F: AsyncFnMut()>(rounds: usize, mut f: F) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        f().await;
        times.push(start.elapsed());
    }
    times.sort();
    times[rounds / 2]
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let requests = if quick { 20_000 } else { 100_000 };
    let rounds = if quick { 11 } else { 51 };
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_server(dir.path());

    let (bench_set, bench_get) = redis_benchmark(port, requests);
    let _ = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "flushall"])
        .output();

    let cache = Arc::new(
        RedisCache::connect(
            RedisConfig::new(format!("redis://127.0.0.1:{port}/0")),
            &CacheOptions::default(),
        )
        .await
        .unwrap(),
    );
    let doc = Arc::new(doc());
    let size = codec::encode(&*doc).len();
    let per_task = requests / TASKS;
    let put = {
        let doc = Arc::clone(&doc);
        throughput(&cache, per_task, move |c, n| {
            let doc = Arc::clone(&doc);
            async move { c.put_blob(&blob_id(n), &doc).await.unwrap() }
        })
        .await
    };
    let get = throughput(&cache, per_task, |c, n| async move {
        assert!(c.get_blob(&blob_id(n)).await.unwrap().is_some());
    })
    .await;

    // The JSON work the cache does per operation on top of the Redis command, for reading
    // the ratios: redis-benchmark moves bytes and never encodes or decodes.
    let bytes = codec::encode(&*doc);
    let start = Instant::now();
    for _ in 0..1000 {
        let _ = codec::encode(&*doc);
    }
    let encode = start.elapsed() / 1000;
    let start = Instant::now();
    for _ in 0..1000 {
        let _: BlobInfo = codec::decode("bench", &bytes).unwrap();
    }
    let decode = start.elapsed() / 1000;

    println!("document size: {size} bytes, {TASKS} concurrent tasks, {requests} requests");
    println!("JSON per document (one thread): encode {encode:?}, decode {decode:?}");
    println!();
    println!(
        "{:<22} {:>12} {:>16} {:>7}",
        "operation", "ops/s", "redis-benchmark", "ratio"
    );
    println!(
        "{:<22} {:>12.0} {:>16.0} {:>7.2}",
        "put_blob (SET)",
        put,
        bench_set,
        put / bench_set
    );
    println!(
        "{:<22} {:>12.0} {:>16.0} {:>7.2}",
        "get_blob (GET)",
        get,
        bench_get,
        get / bench_get
    );
    println!();

    println!(
        "{:<22} {:>14} {:>16} {:>9}",
        "missing_blobs", "pipeline", "one GET per ID", "speedup"
    );
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
        let pipelined = median(rounds, async || {
            cache.missing_blobs(&artifact, &ids).await.unwrap();
        })
        .await;
        let one_by_one = median(rounds, async || {
            for id in &ids {
                let doc = cache.get_blob(id).await.unwrap();
                let _current = doc.is_some_and(|d| d.is_current());
            }
        })
        .await;
        println!(
            "{:<22} {:>14?} {:>16?} {:>8.1}x",
            format!("{n} IDs"),
            pipelined,
            one_by_one,
            one_by_one.as_secs_f64() / pipelined.as_secs_f64()
        );
    }
}
