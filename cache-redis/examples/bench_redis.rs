//! Throughput and latency of the Redis backend against `redis-benchmark` on the same
//! server, in the same run.
//!
//! `cargo run --release -p cache-redis --example bench_redis -- [--quick]` (or
//! `cargo xtask bench redis`)
//!
//! Starts its own `redis-server`s on free loopback ports (killed at the end), then
//! measures:
//! - `put_blob` / `get_blob` of ~10 KB documents with 16 concurrent tasks, as a ratio to
//!   `redis-benchmark -t set,get -d 10240 -c 16` (target: at least 0.5);
//! - `missing_blobs` latency for 10, 100 and 1000 IDs, against the same lookups done with
//!   one `GET` per ID;
//! - on a 3-master Redis Cluster, in the same repetitions: `missing_blobs` for 1000 IDs
//!   against one server (target: at most 2×) and `get_blob` with 16 tasks against one
//!   server (target: at least 0.8×);
//! - the unavailability a scanner loop (a warm rescan of 60 layers every 10 ms) sees
//!   when a cluster master is killed, when a sentinel-managed master is killed, and
//!   across `SENTINEL FAILOVER`: from its first failed rescan to its first good one;
//! - the round trips of a warm rescan of 60 layers through a proxy that delays every
//!   packet by 50 ms each way, on one server, a cluster and through a sentinel.

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
    conformance::{artifact_id, blob_id, sample_artifact, sample_blob},
    proxy::DelayProxy,
    redis::{
        MASTER_NAME, RedisCluster, RedisServer, SentinelOptions, SentinelSetup, ServerOptions, Tls,
        start_sentinel,
    },
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
    let cluster = RedisCluster::start(3, 0, Tls::Off);

    let connect = |url: String| async move {
        Arc::new(
            RedisCache::connect(RedisConfig::new(url), &CacheOptions::default())
                .await
                .unwrap(),
        )
    };
    let cache = connect(format!("redis://127.0.0.1:{port}/0")).await;
    let clustered = connect(cluster.urls()).await;
    let doc = Arc::new(sample_blob(1, PACKAGES));
    let size = codec::encode(&*doc).len();
    let per_task = requests / TASKS;
    println!("document: {size} bytes; {TASKS} concurrent tasks; {requests} requests x {reps}");

    let (mut set, mut get, mut put, mut got) = (vec![], vec![], vec![], vec![]);
    let (mut cluster_put, mut cluster_got) = (vec![], vec![]);
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
        cluster.flushall();
        for (target, puts, gets) in [
            (&cache, &mut put, &mut got),
            (&clustered, &mut cluster_put, &mut cluster_got),
        ] {
            let d = Arc::clone(&doc);
            puts.push(
                throughput(target, per_task, move |c, n| {
                    let doc = Arc::clone(&d);
                    async move { c.put_blob(&blob_id(n), &doc).await.unwrap() }
                })
                .await,
            );
            gets.push(
                throughput(target, per_task, |c, n| async move {
                    assert!(c.get_blob(&blob_id(n)).await.unwrap().is_some());
                })
                .await,
            );
        }
        raw_get.push(raw_throughput(&raw, per_task).await);
    }
    Figure {
        name: "put_blob 10KB, 16 tasks",
        unit: "ops/s",
        spread: Spread::of(put.clone()),
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
    Figure {
        name: "cluster get_blob 10KB, 16 tasks",
        unit: "ops/s",
        spread: Spread::of(cluster_got),
        baseline: Some(("get_blob on one server, same run", Spread::of(got))),
        target: Some(">= 0.8"),
        note: Some("3 masters on the same 2 cores; each get goes to its key's master"),
    }
    .report();
    Figure {
        name: "cluster put_blob 10KB, 16 tasks",
        unit: "ops/s",
        spread: Spread::of(cluster_put),
        baseline: Some(("put_blob on one server, same run", Spread::of(put))),
        target: None,
        note: None,
    }
    .report();

    let artifact = cache_core::ArtifactId::from(blob_id(u64::MAX).digest().clone());
    let mut single_1000 = None;
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
        if n == 1000 {
            single_1000 = Some((ids, pipelined));
        }
    }
    let (ids, _) = single_1000.expect("measured");
    // One server and the cluster in alternation, so that both see the same load.
    let (mut single, mut on_cluster) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        let t = Instant::now();
        cache.missing_blobs(&artifact, &ids).await.unwrap();
        let one = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let missing = clustered.missing_blobs(&artifact, &ids).await.unwrap();
        let three = t.elapsed().as_secs_f64() * 1e6;
        assert_eq!(missing.blobs.len(), 500);
        if round > 0 {
            single.push(one);
            on_cluster.push(three);
        }
    }
    let (single, on_cluster) = (Spread::of(single), Spread::of(on_cluster));
    Figure {
        name: "cluster missing_blobs 1000 IDs",
        unit: "us/call",
        spread: on_cluster,
        baseline: Some((
            "missing_blobs 1000 IDs on one server, measured in alternation",
            single,
        )),
        target: Some("<= 2"),
        note: Some("one pipeline per master, all three sent at once"),
    }
    .report();
    drop(clustered);
    drop(cluster);

    unavailability().await;
    round_trips().await;
}

/// A warm rescan of a 60-layer image, as `cache-scan` does it.
async fn rescan(cache: &RedisCache, ids: &[BlobId]) -> cache_core::Result<()> {
    let missing = cache.missing_blobs(&artifact_id(1), ids).await?;
    assert!(
        missing.blobs.is_empty(),
        "{} layers lost",
        missing.blobs.len()
    );
    cache.get_blobs(ids).await.map(drop)
}

/// Stores a 60-layer image; returns its layers.
async fn image(cache: &RedisCache) -> Vec<BlobId> {
    let ids: Vec<BlobId> = (0..60).map(blob_id).collect();
    for id in &ids {
        cache.put_blob(id, &sample_blob(1, 3)).await.unwrap();
    }
    cache
        .put_artifact(&artifact_id(1), &sample_artifact(1))
        .await
        .unwrap();
    ids
}

/// Runs warm rescans every 10 ms while `fail` runs on another thread, until one has
/// failed and a later one succeeded, or until 3 s after `fail` returned without any
/// failure; returns the milliseconds from the first failure to the first success after
/// it (0 when none failed), and the number of failed rescans.
async fn outage(cache: &RedisCache, ids: &[BlobId], fail: impl FnOnce() + Send) -> (f64, usize) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            fail();
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let start = Instant::now();
                let mut first_failure = None;
                let mut quiet_since: Option<Instant> = None;
                let mut failures = 0;
                loop {
                    assert!(start.elapsed() < Duration::from_secs(60), "no recovery");
                    match rescan(cache, ids).await {
                        Ok(()) => {
                            if let Some(at) = first_failure {
                                let ms = Instant::now().duration_since(at).as_secs_f64() * 1e3;
                                return (ms, failures);
                            }
                        }
                        Err(_) => {
                            failures += 1;
                            first_failure.get_or_insert_with(Instant::now);
                        }
                    }
                    if done.load(std::sync::atomic::Ordering::Acquire) && first_failure.is_none() {
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(3) {
                            return (0.0, 0);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
    })
}

/// The unavailability a scanner loop sees across failovers.
async fn unavailability() {
    let report = |name: &str, ms: f64, failures: usize, note: &str| {
        println!("{name}: {failures} failed rescans");
        Figure {
            name,
            unit: "ms",
            spread: Spread::of(vec![ms]),
            baseline: None,
            target: None,
            note: Some(note),
        }
        .report();
    };

    let mut cluster = RedisCluster::start(3, 1, Tls::Off);
    let cache = RedisCache::connect(RedisConfig::new(cluster.urls()), &CacheOptions::default())
        .await
        .unwrap();
    let ids = image(&cache).await;
    cluster.wait_for_replication(Duration::from_secs(10));
    let master = cluster.node_mut(0);
    let (ms, failures) = outage(&cache, &ids, || master.kill()).await;
    report(
        "cluster: a master killed",
        ms,
        failures,
        "first failed to first good rescan; cluster-node-timeout 1000 ms",
    );
    drop(cluster);

    let setup = SentinelSetup::start(SentinelOptions::default());
    let cache = RedisCache::connect(RedisConfig::new(setup.url(0)), &CacheOptions::default())
        .await
        .unwrap();
    let ids = image(&cache).await;
    let (ms, failures) = outage(&cache, &ids, || {
        setup.failover();
    })
    .await;
    report(
        "sentinel: SENTINEL FAILOVER",
        ms,
        failures,
        "first failed to first good rescan (0 when none failed)",
    );
    drop(cache);
    drop(setup);

    // A setup of its own: the sentinels do not fail the same master over twice in a row.
    let mut setup = SentinelSetup::start(SentinelOptions::default());
    let cache = RedisCache::connect(RedisConfig::new(setup.url(0)), &CacheOptions::default())
        .await
        .unwrap();
    let ids = image(&cache).await;
    let old = setup.master_port();
    let replica = setup.servers.iter().find(|s| s.port() != old).unwrap();
    while replica.cli(&["EXISTS", &format!("fanal::blob::{}", blob_id(59))]) != "1" {
        std::thread::sleep(Duration::from_millis(10));
    }
    let master = setup.server_at(old);
    let (ms, failures) = outage(&cache, &ids, || master.kill()).await;
    report(
        "sentinel: the master killed",
        ms,
        failures,
        "first failed to first good rescan; down-after-milliseconds 1000",
    );
}

/// Round trips of a warm rescan of 60 layers through a proxy delaying every packet.
async fn round_trips() {
    const DELAY: Duration = Duration::from_millis(50);
    async fn measure(url: String) -> f64 {
        let ids: Vec<BlobId> = (0..60).map(blob_id).collect();
        let start = Instant::now();
        let cache = RedisCache::connect(RedisConfig::new(url), &CacheOptions::default())
            .await
            .unwrap();
        rescan(&cache, &ids).await.unwrap();
        start.elapsed().as_secs_f64() / (2.0 * DELAY.as_secs_f64())
    }
    let report = |name: &str, trips: f64, target: &str| {
        Figure {
            name,
            unit: "round trips",
            spread: Spread::of(vec![trips]),
            baseline: None,
            target: Some(target),
            note: Some("warm rescan of 60 layers (connect, missing_blobs, get_blobs) through a proxy delaying each packet 50 ms each way: elapsed / 100 ms"),
        }
        .report();
    };

    let server = RedisServer::start(ServerOptions::default());
    let direct = RedisCache::connect(RedisConfig::new(server.url(1)), &CacheOptions::default())
        .await
        .unwrap();
    image(&direct).await;
    let proxy = DelayProxy::start(server.port(), DELAY);
    let trips = measure(format!("redis://127.0.0.1:{}/1", proxy.port())).await;
    report("round trips, warm rescan: one server", trips, "<= 3");

    let sentinel = start_sentinel(
        proxy.port(),
        &SentinelOptions {
            replicas: 0,
            ..Default::default()
        },
        None,
    );
    let sentinel_proxy = DelayProxy::start(sentinel.port(), DELAY);
    let url = format!(
        "redis+sentinel://127.0.0.1:{}/{MASTER_NAME}/1",
        sentinel_proxy.port()
    );
    report(
        "round trips, warm rescan: sentinel",
        measure(url).await,
        "<= 4",
    );

    let cluster = RedisCluster::start(3, 0, Tls::Off);
    let direct = RedisCache::connect(RedisConfig::new(cluster.urls()), &CacheOptions::default())
        .await
        .unwrap();
    image(&direct).await;
    let proxies: Vec<DelayProxy> = cluster
        .nodes()
        .iter()
        .map(|n| DelayProxy::start(n.port(), DELAY))
        .collect();
    for (node, proxy) in cluster.nodes().iter().zip(&proxies) {
        node.cli(&[
            "CONFIG",
            "SET",
            "cluster-announce-port",
            &proxy.port().to_string(),
        ]);
    }
    while !cluster.nodes().iter().all(|n| {
        let slots = n.cli(&["CLUSTER", "SLOTS"]);
        proxies
            .iter()
            .all(|p| slots.contains(&p.port().to_string()))
    }) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let seeds: Vec<String> = proxies
        .iter()
        .map(|p| format!("redis://127.0.0.1:{}", p.port()))
        .collect();
    report(
        "round trips, warm rescan: cluster",
        measure(seeds.join(",")).await,
        "<= 4",
    );
}
