//! Benchmark of the remote backend (`--cache-backend http://…`, crate `cache-remote`)
//! against the same backend used directly, measured in the same run.
//!
//! ```text
//! cargo build --release -p cache-cli --bin scancache --example bench_remote
//! target/release/examples/bench_remote [--quick]
//!   (or cargo xtask bench [--quick] remote)
//! ```
//!
//! A real `scancache server` process (the release binary) serves a backend; this process
//! reaches it through `RemoteCache` over loopback HTTP/1.1 with keep-alive, and opens the
//! same backend directly for the baseline (the fs cache directory the server uses — LMDB
//! is shared between processes — or the same Redis database). Backends: fs, and Redis
//! when `redis-server` is installed.
//!
//! - **warm rescan**: `cache_scan::scan` of an image of 60 layers whose every layer is
//!   cached (`missing_blobs`, then one read of every layer), through the server and
//!   directly, in alternation so both see the same load; ms per scan.
//! - **get_blobs throughput, 16 tasks**: 16 tasks each calling `get_blobs` of 10 layer
//!   results (the image's base layer's document, a few KiB, stored under 1,000 IDs),
//!   through the server and directly; layer results per second. Target: the remote
//!   backend keeps at least 0.3× the backend's own throughput.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use cache_core::{BlobId, Cache, CacheOptions, Digest};
use cache_fixtures::{bulk_images, docker_save};
use cache_remote::{RemoteCache, RemoteConfig};
use cache_scan::ScanOptions;
use cache_testkit::{
    bench::{Figure, Spread},
    http::ScancacheServer,
    redis::{RedisServer, ServerOptions},
};

/// The allocator the `scancache` binary uses, so the client side costs what it costs
/// there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TASKS: usize = 16;
const IDS_PER_CALL: usize = 10;
const STORED_IDS: usize = 1_000;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scancache = cache_testkit::bench::scancache_binary();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.tar");
    std::fs::write(&image, docker_save(&[&bulk_images(1, 60)[0]])).unwrap();
    let (reps, calls) = if quick { (5, 100) } else { (21, 600) };

    let redis = redis_available().then(|| RedisServer::start(ServerOptions::default()));
    let mut backends = vec![("fs", None)];
    if let Some(redis) = &redis {
        backends.push(("redis", Some(redis.url(0))));
    } else {
        eprintln!("bench_remote: redis-server not found; Redis figures skipped");
    }
    for (name, url) in backends {
        let cache_dir = dir.path().join(format!("{name}-cache"));
        let mut global: Vec<String> = vec!["--cache-dir".into(), cache_dir.display().to_string()];
        if let Some(url) = &url {
            global.extend(["--cache-backend".into(), url.clone()]);
        }
        let args: Vec<&str> = global.iter().map(String::as_str).collect();
        let mut server = ScancacheServer::start(&scancache, &args, &[], &[]);
        runtime.block_on(async {
            let remote: Arc<dyn Cache> = Arc::new(
                RemoteCache::new(&RemoteConfig::new(server.url()), &CacheOptions::default())
                    .unwrap(),
            );
            let direct: Arc<dyn Cache> = match &url {
                None => {
                    Arc::new(cache_fs::FsCache::open(&cache_dir, &CacheOptions::default()).unwrap())
                }
                Some(url) => Arc::new(
                    cache_redis::RedisCache::connect(
                        cache_redis::RedisConfig::new(url.clone()),
                        &CacheOptions::default(),
                    )
                    .await
                    .unwrap(),
                ),
            };
            rescan(name, &image, &remote, &direct, reps).await;
            throughput(name, &remote, &direct, calls, reps.min(7)).await;
            direct.close().await.unwrap();
        });
        server.stop();
    }
}

/// Warm rescans of `image`, through the server and directly, in alternation.
async fn rescan(
    name: &str,
    image: &Path,
    remote: &Arc<dyn Cache>,
    direct: &Arc<dyn Cache>,
    reps: usize,
) {
    let options = ScanOptions::default();
    let cold = cache_scan::scan(image, remote.as_ref(), &options)
        .await
        .unwrap();
    assert_eq!(
        cold.layers.analysed, 60,
        "the first scan stores every layer"
    );
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for rep in 0..=reps {
        for (cache, out) in [(remote, &mut ours), (direct, &mut base)] {
            let t = Instant::now();
            let report = cache_scan::scan(image, cache.as_ref(), &options)
                .await
                .unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(report.layers.cached, 60, "a warm rescan reads every layer");
            if rep > 0 {
                out.push(ms);
            }
        }
    }
    Figure {
        name: &format!("{name}: warm rescan of 60 layers via server"),
        unit: "ms",
        spread: Spread::of(ours),
        baseline: Some((
            &format!("the same rescan on {name} directly"),
            Spread::of(base),
        )),
        target: None,
        note: Some("loopback, keep-alive connection up; lower is better"),
    }
    .report();
}

/// `get_blobs` of [`IDS_PER_CALL`] IDs from [`TASKS`] tasks, `calls` calls each:
/// results per second, through the server and directly, in alternation.
async fn throughput(
    name: &str,
    remote: &Arc<dyn Cache>,
    direct: &Arc<dyn Cache>,
    calls: usize,
    reps: usize,
) {
    // The image's largest stored result (its base layer: a package database), under
    // many IDs.
    let mut largest: Option<(u64, BlobId)> = None;
    direct
        .list(Some(cache_core::EntryKind::Blob), &mut |m| {
            if largest.as_ref().is_none_or(|(size, _)| m.size > *size) {
                largest = Some((m.size, BlobId::from(m.key.id)));
            }
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    let (size, id) = largest.unwrap();
    let doc = direct.get_blob(&id).await.unwrap().unwrap();
    let ids: Vec<BlobId> = (0..STORED_IDS)
        .map(|i| {
            let mut bytes = [0xB5; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            BlobId::from(Digest::from_sha256(bytes))
        })
        .collect();
    let blobs: Vec<(BlobId, _)> = ids.iter().map(|id| (id.clone(), doc.clone())).collect();
    direct.put_blobs(&blobs).await.unwrap();
    let ids = Arc::new(ids);
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for rep in 0..=reps {
        for (cache, out) in [(remote, &mut ours), (direct, &mut base)] {
            let per_s = run_tasks(cache, &ids, calls).await;
            if rep > 0 {
                out.push(per_s);
            }
        }
    }
    Figure {
        name: &format!("{name}: get_blobs via server, 16 tasks"),
        unit: "blobs/s",
        spread: Spread::of(ours),
        baseline: Some((&format!("{name} directly, 16 tasks"), Spread::of(base))),
        target: Some(">= 0.3"),
        note: Some(&format!(
            "each call {IDS_PER_CALL} results of {size} bytes, decoded; ratio = throughput share"
        )),
    }
    .report();
}

/// Results per second of [`TASKS`] tasks making `calls` `get_blobs` calls each.
async fn run_tasks(cache: &Arc<dyn Cache>, ids: &Arc<Vec<BlobId>>, calls: usize) -> f64 {
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (cache, ids) = (Arc::clone(cache), Arc::clone(ids));
        set.spawn(async move {
            for call in 0..calls {
                let start = (task * 97 + call * IDS_PER_CALL) % (ids.len() - IDS_PER_CALL);
                let got = cache
                    .get_blobs(&ids[start..start + IDS_PER_CALL])
                    .await
                    .unwrap();
                assert!(got.iter().all(Option::is_some));
            }
        });
    }
    while set.join_next().await.is_some() {}
    let elapsed = t.elapsed().max(Duration::from_micros(1));
    (TASKS * calls * IDS_PER_CALL) as f64 / elapsed.as_secs_f64()
}

fn redis_available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("redis-server").is_file()))
}
