//! Round trips of a warm rescan, counted by the clock through a proxy that delays every
//! packet: on one server, on a cluster and through sentinels.
//!
//! A warm rescan of a 60-layer image is what `cache-scan` does when every layer is
//! cached: connect, `missing_blobs` (the artifact's probe with the blobs'), and one
//! `get_blobs`. Through [`DelayProxy`] each round trip costs `2 × DELAY`, while the work on
//! either side takes a few milliseconds, so `elapsed / (2 × DELAY)`, rounded, is the
//! number of round trips — counted once the TCP connection is up (the proxy accepts
//! locally at once), with the Redis handshake included. The bounds: 3 on one server
//! (handshake; probes; reads), 4 on a cluster or through sentinels (one more to learn the
//! topology). Over TLS the TLS handshake adds its own round trip, which is not counted.

#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cache_core::{BlobId, Cache, CacheOptions};
use cache_redis::{RedisCache, RedisConfig};
use cache_testkit::{
    conformance::{artifact_id, blob_id, sample_artifact, sample_blob},
    proxy::DelayProxy,
    redis::{
        self as support, RedisCluster, RedisServer, SentinelOptions, ServerOptions, Tls,
        start_sentinel,
    },
};

/// The delay of each packet in each direction.
const DELAY: Duration = Duration::from_millis(100);

/// Layers of the image.
const LAYERS: u64 = 60;

fn ids() -> Vec<BlobId> {
    (0..LAYERS).map(blob_id).collect()
}

/// Stores the image's artifact and blobs through `url` (not through the proxy).
async fn prefill(url: String) {
    let cache = RedisCache::connect(RedisConfig::new(url), &CacheOptions::default())
        .await
        .unwrap();
    let cache = Arc::new(cache);
    for id in ids() {
        cache.put_blob(&id, &sample_blob(1, 3)).await.unwrap();
    }
    cache
        .put_artifact(&artifact_id(1), &sample_artifact(1))
        .await
        .unwrap();
}

/// Round trips of a warm rescan through `url` (which goes through proxies).
async fn warm_rescan(url: String) -> f64 {
    let ids = ids();
    let start = Instant::now();
    let cache = RedisCache::connect(RedisConfig::new(url), &CacheOptions::default())
        .await
        .unwrap();
    let missing = cache.missing_blobs(&artifact_id(1), &ids).await.unwrap();
    let blobs = cache.get_blobs(&ids).await.unwrap();
    let elapsed = start.elapsed();
    assert!(!missing.artifact && missing.blobs.is_empty(), "{missing:?}");
    assert!(blobs.iter().all(Option::is_some));
    elapsed.as_secs_f64() / (2.0 * DELAY.as_secs_f64())
}

/// Asserts `measured` round trips (a fraction, from the clock) are `want`.
fn check(topology: &str, measured: f64, want: u32) {
    eprintln!("warm rescan of {LAYERS} layers, {topology}: {measured:.2} round trips");
    assert!(
        measured.round() as u32 == want,
        "{topology}: {measured:.2} round trips, want {want}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_rescan_on_one_server_is_3_round_trips() {
    if !support::require_redis() {
        return;
    }
    let server = RedisServer::start(ServerOptions {
        password: Some("pw".into()),
        ..Default::default()
    });
    prefill(server.url_with_auth("", "pw", 3)).await;
    let proxy = DelayProxy::start(server.port(), DELAY);
    // A password and a database: AUTH and SELECT are part of the handshake's one trip.
    let url = format!("redis://:pw@127.0.0.1:{}/3", proxy.port());
    check("one server", warm_rescan(url).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_rescan_on_a_cluster_is_4_round_trips() {
    if !support::require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3, 0, Tls::Off);
    prefill(cluster.urls()).await;
    // Every node announces its proxy's port, so the slot map sends clients through the
    // proxies too.
    let proxies: Vec<DelayProxy> = cluster
        .nodes()
        .iter()
        .map(|n| DelayProxy::start(n.port(), DELAY))
        .collect();
    for (node, proxy) in cluster.nodes().iter().zip(&proxies) {
        let port = proxy.port().to_string();
        assert_eq!(
            node.cli(&["CONFIG", "SET", "cluster-announce-port", &port]),
            "OK"
        );
    }
    let announced = |n: &RedisServer| {
        let slots = n.cli(&["CLUSTER", "SLOTS"]);
        proxies
            .iter()
            .all(|p| slots.contains(&p.port().to_string()))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.nodes().iter().all(announced) {
        assert!(
            Instant::now() < deadline,
            "the nodes do not announce the proxies' ports"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seeds: Vec<String> = proxies
        .iter()
        .map(|p| format!("redis://127.0.0.1:{}", p.port()))
        .collect();
    check(
        "cluster of 3 masters",
        warm_rescan(seeds.join(",")).await,
        4,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_rescan_through_sentinel_is_4_round_trips() {
    if !support::require_redis() {
        return;
    }
    let master = RedisServer::start(ServerOptions::default());
    prefill(master.url(2)).await;
    let master_proxy = DelayProxy::start(master.port(), DELAY);
    // The sentinel knows the master by its proxy's address, and so names that.
    let sentinel = start_sentinel(
        master_proxy.port(),
        &SentinelOptions {
            replicas: 0,
            ..Default::default()
        },
        None,
    );
    let sentinel_proxy = DelayProxy::start(sentinel.port(), DELAY);
    let url = format!(
        "redis+sentinel://127.0.0.1:{}/{}/2",
        sentinel_proxy.port(),
        support::MASTER_NAME
    );
    check("sentinel", warm_rescan(url).await, 4);
}
