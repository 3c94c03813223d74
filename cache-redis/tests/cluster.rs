//! The Redis backend on real Redis Clusters: the whole conformance suite over plain TCP
//! and over mutual TLS (cluster bus and replication on TLS too), then what is particular
//! to a cluster — keys spread over every master under the reference layout, one round
//! trip per batch, admin walks over every master, clear errors, a resharding in the
//! middle of scans, and a killed master whose replica takes over.
//!
//! Clusters take seconds to create, so this binary starts a few and shares them:
//! two plain and two TLS 3-master clusters for the conformance suite and the light tests
//! (a test leases one, flushed, for itself, and holds it to its end; a case that makes two
//! caches leases two), and one cluster of its own for each test that reshards or kills.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashSet,
    ops::ControlFlow,
    sync::{Arc, Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use cache_core::{BlobId, Cache, CacheOptions, EntryKind, Error};
use cache_redis::{RedisCache, RedisConfig};
use cache_testkit::{
    conformance::{artifact_id, blob_id, sample_artifact, sample_blob},
    redis::{self as support, RedisCluster, RedisServer, ServerOptions, Tls},
};

/// Clusters of each TLS mode kept for the conformance suite and the light tests.
const POOLED: usize = 2;

/// A few clusters, each used by one test at a time.
struct Pool {
    clusters: Vec<RedisCluster>,
    free: Mutex<Vec<bool>>,
    freed: Condvar,
}

/// One cluster, flushed, for as long as the lease lives.
struct Lease {
    pool: &'static Pool,
    index: usize,
}

impl Pool {
    fn get(tls: Tls) -> &'static Pool {
        static PLAIN: OnceLock<Pool> = OnceLock::new();
        static TLS: OnceLock<Pool> = OnceLock::new();
        let cell = if tls == Tls::Off { &PLAIN } else { &TLS };
        cell.get_or_init(|| {
            let clusters = std::thread::scope(|s| {
                let started: Vec<_> = (0..POOLED)
                    .map(|_| s.spawn(move || RedisCluster::start(3, 0, tls)))
                    .collect();
                started.into_iter().map(|h| h.join().unwrap()).collect()
            });
            Pool {
                clusters,
                free: Mutex::new(vec![true; POOLED]),
                freed: Condvar::new(),
            }
        })
    }

    /// Waits for a free cluster and flushes it.
    fn lease(&'static self) -> Lease {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(index) = free.iter().position(|f| *f) {
                free[index] = false;
                drop(free);
                self.clusters[index].flushall();
                return Lease { pool: self, index };
            }
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Lease {
    fn cluster(&self) -> &RedisCluster {
        &self.pool.clusters[self.index]
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        free[self.index] = true;
        self.pool.freed.notify_all();
    }
}

/// A configuration for `cluster` (its TLS files where it speaks TLS), quick to fail.
fn config(cluster: &RedisCluster, urls: String) -> RedisConfig {
    let mut config = RedisConfig::new(urls);
    if let Some(certs) = cluster.certs() {
        config.ca = Some(certs.ca.clone());
        config.cert = Some(certs.client_cert.clone());
        config.key = Some(certs.client_key.clone());
    }
    config.connect_timeout = Duration::from_secs(2);
    config.command_timeout = Duration::from_secs(2);
    config
}

async fn connect(cluster: &RedisCluster) -> RedisCache {
    RedisCache::connect(config(cluster, cluster.urls()), &CacheOptions::default())
        .await
        .unwrap()
}

/// Makes caches on leased clusters, one cluster per cache; the leases end with the test.
struct Factory {
    tls: Tls,
    leases: Mutex<Vec<Lease>>,
}

impl Factory {
    fn new(tls: Tls) -> Option<Factory> {
        support::require_redis().then(|| Factory {
            tls,
            leases: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl cache_testkit::Factory for Factory {
    async fn create(&self, options: CacheOptions) -> Arc<dyn Cache> {
        let tls = self.tls;
        let lease = tokio::task::block_in_place(|| Pool::get(tls).lease());
        let cache = RedisCache::connect(config(lease.cluster(), lease.cluster().urls()), &options)
            .await
            .unwrap();
        self.leases.lock().unwrap().push(lease);
        Arc::new(cache)
    }
}

cache_testkit::conformance_tests!(match Factory::new(Tls::Off) {
    Some(f) => f,
    None => return,
});

/// The same suite on a cluster that speaks mutual TLS to clients, on its bus and for
/// replication.
mod mutual_tls {
    use super::*;

    cache_testkit::conformance_tests!(match Factory::new(Tls::Mutual) {
        Some(f) => f,
        None => return,
    });
}

/// A plain pooled cluster for a light test, or a return when Redis tests are skipped.
macro_rules! lease {
    () => {{
        if !support::require_redis() {
            return;
        }
        tokio::task::block_in_place(|| Pool::get(Tls::Off).lease())
    }};
}

fn blob_key(n: u64) -> String {
    format!("fanal::blob::{}", blob_id(n))
}

/// Entries keep the reference layout (no hash tags), spread over every master, and read
/// back through an ordinary cluster client (`redis-cli -c`) as the plain JSON documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_keep_the_reference_layout_on_every_master() {
    let lease = lease!();
    let cluster = lease.cluster();
    let cache = connect(cluster).await;
    for n in 0..60 {
        cache
            .put_blob(&blob_id(n), &sample_blob(n, 2))
            .await
            .unwrap();
    }
    cache
        .put_artifact(&artifact_id(1), &sample_artifact(1))
        .await
        .unwrap();
    for i in cluster.master_indices() {
        let keys: u64 = cluster.nodes()[i].cli(&["DBSIZE"]).parse().unwrap();
        assert!(keys > 5, "master {i} holds only {keys} of 61 keys");
    }
    assert_eq!(cluster.key_count(), 61);
    for n in [0, 17, 59] {
        let raw = cluster.cli(&["GET", &blob_key(n)]);
        let doc: cache_core::BlobInfo = serde_json::from_str(&raw).unwrap();
        assert_eq!(doc, sample_blob(n, 2));
    }
    let artifact = cluster.cli(&["GET", &format!("fanal::artifact::{}", artifact_id(1))]);
    assert!(artifact.starts_with("{\"SchemaVersion\":1"), "{artifact}");
}

/// `missing_blobs` for 300 IDs sends one pipeline to each master: each sees its share of
/// the 301 `GETRANGE`s, read in one go (`total_reads_processed` grows by one for the
/// pipeline and one for the `INFO` that measures it; a client that waited for each answer
/// would cost a read per command).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_blobs_is_one_pipeline_per_master() {
    let lease = lease!();
    let cluster = lease.cluster();
    let cache = connect(cluster).await;
    let ids: Vec<BlobId> = (0..300).map(blob_id).collect();
    for id in ids.iter().step_by(3) {
        cache.put_blob(id, &sample_blob(1, 1)).await.unwrap();
    }
    let masters = cluster.master_indices();
    let mut admins = Vec::new();
    for &i in &masters {
        let url = format!("redis://127.0.0.1:{}", cluster.nodes()[i].port());
        let client = redis::Client::open(url).unwrap();
        admins.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    // `total_reads_processed` and the `GETRANGE` calls, from one `INFO` (one read).
    async fn stats(conn: &mut redis::aio::MultiplexedConnection) -> (u64, u64) {
        let text: String = redis::cmd("INFO")
            .arg("everything")
            .query_async(conn)
            .await
            .unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.strip_prefix("calls=").unwrap_or(v))
                .and_then(|v| v.split(',').next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("total_reads_processed:"), field("cmdstat_getrange:"))
    }
    let mut before = Vec::new();
    for conn in &mut admins {
        before.push(stats(conn).await);
    }
    let missing = cache.missing_blobs(&artifact_id(3), &ids).await.unwrap();
    assert!(missing.artifact);
    assert_eq!(missing.blobs.len(), 200);
    let mut probes = 0;
    for ((&i, conn), (reads, getranges)) in masters.iter().zip(&mut admins).zip(before) {
        let (reads_now, getranges_now) = stats(conn).await;
        let calls = getranges_now - getranges;
        assert!(calls > 50, "master {i}: {calls} probes");
        // One read for the whole pipeline, one for the INFO that measures it.
        assert_eq!(reads_now - reads, 2, "master {i}: reads for {calls} probes");
        probes += calls;
    }
    assert_eq!(probes, 301);
}

/// `list`, `stats`, `export`, `gc` and `clear` cover the keys of every master, each key
/// once; `clear` leaves other keys alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_walks_cover_every_master() {
    let lease = lease!();
    let cluster = lease.cluster();
    let cache = connect(cluster).await;
    let stale: Vec<cache_core::RawEntry> = (0..100)
        .map(|n| cache_core::RawEntry {
            key: cache_core::EntryKey::blob(&blob_id(10_000 + n)),
            value: br#"{"SchemaVersion":1}"#.to_vec(),
            expires_at: None,
        })
        .collect();
    cache.import(&stale).await.unwrap();
    for n in 0..5 {
        cache
            .put_artifact(&artifact_id(n), &sample_artifact(n))
            .await
            .unwrap();
    }
    let docs: Vec<cache_core::RawEntry> = (0..2500)
        .map(|n| cache_core::RawEntry {
            key: cache_core::EntryKey::blob(&blob_id(n)),
            value: cache_core::codec::encode(&sample_blob(n, 1)),
            expires_at: None,
        })
        .collect();
    cache.import(&docs).await.unwrap();
    for k in ["session:1", "other:2", "fanal:blob:x"] {
        assert_eq!(cluster.cli(&["SET", k, "keep"]), "OK");
    }
    let stats = cache.stats().await.unwrap();
    assert_eq!((stats.artifacts, stats.blobs), (5, 2600));
    let mut listed = HashSet::new();
    cache
        .list(Some(EntryKind::Blob), &mut |m| {
            assert!(listed.insert(m.key.id.clone()), "{} listed twice", m.key.id);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2600);
    let mut exported = 0;
    cache
        .export(None, &mut |_| {
            exported += 1;
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(exported, 2605);
    let report = cache.gc().await.unwrap();
    assert_eq!(report.stale, 100);
    assert_eq!(cache.stats().await.unwrap().blobs, 2500);
    cache.clear().await.unwrap();
    assert_eq!(cache.stats().await.unwrap(), Default::default());
    assert_eq!(cluster.key_count(), 3, "only the unrelated keys are left");
    assert_eq!(cluster.cli(&["GET", "session:1"]), "keep");
}

/// A user limited to exactly the commands docs/redis.md lists for a cluster can do
/// everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_the_documented_acl_can_do_everything() {
    let lease = lease!();
    let cluster = lease.cluster();
    let acl = "on >scanner-pw ~fanal::* -@all +get +set +mget +getrange +strlen +pttl +scan \
               +unlink +ping +eval +cluster|slots +cluster|info +asking +role";
    let mut args = vec!["ACL", "SETUSER", "scanner"];
    args.extend(acl.split_whitespace());
    for node in cluster.nodes() {
        assert_eq!(node.cli(&args), "OK");
    }
    let urls = cluster
        .urls()
        .replace("redis://", "redis://scanner:scanner-pw@");
    let cache = RedisCache::connect(config(cluster, urls), &CacheOptions::default())
        .await
        .unwrap();
    let ids: Vec<BlobId> = (0..60).map(blob_id).collect();
    for id in &ids {
        cache.put_blob(id, &sample_blob(1, 1)).await.unwrap();
    }
    cache
        .import(&[cache_core::RawEntry {
            key: cache_core::EntryKey::blob(&blob_id(99)),
            value: br#"{"SchemaVersion":1}"#.to_vec(),
            expires_at: None,
        }])
        .await
        .unwrap();
    assert!(
        cache
            .missing_blobs(&artifact_id(1), &ids)
            .await
            .unwrap()
            .blobs
            .is_empty()
    );
    assert!(
        cache
            .get_blobs(&ids)
            .await
            .unwrap()
            .iter()
            .all(Option::is_some)
    );
    assert_eq!(cache.stats().await.unwrap().blobs, 61);
    assert_eq!(cache.gc().await.unwrap().stale, 1);
    cache.clear().await.unwrap();
    assert_eq!(cluster.key_count(), 0);
    for node in cluster.nodes() {
        assert_eq!(node.cli(&["ACL", "DELUSER", "scanner"]), "1");
    }
}

/// Any reachable node is enough: seeds that are down are skipped. When none answers, or
/// the nodes are not a cluster, one line says so, naming the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_and_connection_errors() {
    let lease = lease!();
    let cluster = lease.cluster();
    let dead = support::free_port();
    let urls = format!("redis://127.0.0.1:{dead},{}", cluster.urls_of(&[1]));
    let cache = RedisCache::connect(config(cluster, urls), &CacheOptions::default())
        .await
        .unwrap();
    cache
        .put_blob(&blob_id(1), &sample_blob(1, 1))
        .await
        .unwrap();
    assert!(
        cache
            .location()
            .starts_with(&format!("redis://127.0.0.1:{dead},redis://"))
    );

    let dead2 = support::free_port();
    let urls = format!("redis://:hunter2@127.0.0.1:{dead},redis://127.0.0.1:{dead2}");
    let err = RedisCache::connect(config(cluster, urls), &CacheOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(err.is_unavailable(), "{msg}");
    assert!(msg.contains("no node of the cluster answered"), "{msg}");
    assert!(
        msg.contains(&format!("node 127.0.0.1:{dead}: cannot connect")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("node 127.0.0.1:{dead2}: cannot connect")),
        "{msg}"
    );
    assert!(!msg.contains("hunter2") && !msg.contains('\n'), "{msg}");

    // A list of servers that are not cluster nodes.
    let plain = RedisServer::start(ServerOptions::default());
    let urls = format!("{},{}", plain.url(0), plain.url(0));
    let err = RedisCache::connect(RedisConfig::new(urls), &CacheOptions::default())
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(
        err.to_string().contains("is not a Redis Cluster node"),
        "{err}"
    );

    // A database other than 0, or mixed TLS modes: refused before connecting.
    for (urls, want) in [
        (
            format!("{}/1,{}/1", cluster.urls_of(&[0]), cluster.urls_of(&[1])),
            "only database 0",
        ),
        (
            format!("{},rediss://127.0.0.1:{dead}", cluster.urls_of(&[0])),
            "same TLS mode",
        ),
    ] {
        let err = RedisCache::connect(RedisConfig::new(urls), &CacheOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Config { .. }) && err.to_string().contains(want),
            "{err}"
        );
    }

    // One URL of a cluster node is one server: the first redirection says what to do.
    let single = RedisCache::connect(
        RedisConfig::new(cluster.urls_of(&[0])),
        &CacheOptions::default(),
    )
    .await
    .unwrap();
    let ids: Vec<BlobId> = (0..60).map(blob_id).collect();
    let err = single
        .missing_blobs(&artifact_id(1), &ids)
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(
        err.to_string()
            .contains("give the cluster's nodes as a comma-separated list"),
        "{err}"
    );
}

/// `redis-cli --cluster reshard` moves 3000 slots (and their keys) between masters while
/// scans run: every `missing_blobs`, `get_blobs` and put succeeds with the right answer
/// (keys mid-migration answer `ASK`, moved slots `MOVED`, and both are followed), and the
/// walk afterwards counts every entry once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_succeed_during_resharding() {
    if !support::require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3, 0, Tls::Off);
    let cache = Arc::new(connect(&cluster).await);
    const N: u64 = 3000;
    let docs: Vec<cache_core::RawEntry> = (0..N)
        .map(|n| cache_core::RawEntry {
            key: cache_core::EntryKey::blob(&blob_id(n)),
            value: cache_core::codec::encode(&sample_blob(n, 1)),
            expires_at: None,
        })
        .collect();
    cache.import(&docs).await.unwrap();
    let (from, to) = (cluster.node_id(0), cluster.node_id(1));
    let seed = format!("127.0.0.1:{}", cluster.nodes()[0].port());
    let reshard = std::thread::scope(|s| {
        let resharding = s.spawn(|| {
            cluster.cluster_cli(&[
                "reshard",
                &seed,
                "--cluster-from",
                &from,
                "--cluster-to",
                &to,
                "--cluster-slots",
                "3000",
                "--cluster-yes",
                "--cluster-pipeline",
                "5",
            ])
        });
        let scans = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let mut scans = 0u64;
                let mut next = N;
                while !resharding.is_finished() {
                    let ids: Vec<BlobId> = (scans * 37 % N..)
                        .take(60)
                        .map(|n| blob_id(n % N))
                        .collect();
                    let missing = cache.missing_blobs(&artifact_id(1), &ids).await.unwrap();
                    assert!(
                        missing.blobs.is_empty(),
                        "scan {scans}: {:?} missing",
                        missing.blobs.len()
                    );
                    let got = cache.get_blobs(&ids).await.unwrap();
                    assert!(got.iter().all(Option::is_some), "scan {scans}");
                    cache
                        .put_blob(&blob_id(next), &sample_blob(next, 1))
                        .await
                        .unwrap();
                    assert!(cache.get_blob(&blob_id(next)).await.unwrap().is_some());
                    next += 1;
                    scans += 1;
                }
                (scans, next)
            })
        });
        (resharding.join().unwrap(), scans)
    });
    let (out, (scans, next)) = reshard;
    assert!(
        out.status.success(),
        "reshard failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!("{scans} scans during the resharding");
    assert!(scans >= 3, "only {scans} scans ran during the resharding");
    let redirected: u64 = cluster
        .master_indices()
        .iter()
        .flat_map(|&i| cluster.nodes()[i].info("errorstats"))
        .filter(|(k, _)| k == "errorstat_MOVED" || k == "errorstat_ASK")
        .filter_map(|(_, v)| v.strip_prefix("count=")?.parse::<u64>().ok())
        .sum();
    assert!(
        redirected > 0,
        "no MOVED or ASK was answered: the test proved nothing"
    );
    assert_eq!(cache.stats().await.unwrap().blobs, next);
}

/// A master is killed; its replica takes over after the node timeout. Meanwhile
/// operations fail with one clear line (the node that is gone, or the cluster being
/// down); then they succeed again through the same cache, and the data written before
/// is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_clearly_then_its_replica_takes_over() {
    if !support::require_redis() {
        return;
    }
    let mut cluster = RedisCluster::start(3, 1, Tls::Off);
    let cache = connect(&cluster).await;
    let ids: Vec<BlobId> = (0..100).map(blob_id).collect();
    for id in &ids {
        cache.put_blob(id, &sample_blob(1, 1)).await.unwrap();
    }
    // Every write reached the replicas before the kill.
    cluster.wait_for_replication(Duration::from_secs(10));
    let killed = cluster.nodes()[0].port();
    cluster.node_mut(0).kill();
    let start = Instant::now();
    let mut errors = Vec::new();
    let mut connect_error = None;
    let mut n = 10_000;
    let recovered = loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no recovery: {errors:?}"
        );
        n += 1;
        let result = async {
            let missing = cache.missing_blobs(&artifact_id(1), &ids).await?;
            cache.put_blob(&blob_id(n), &sample_blob(n, 1)).await?;
            cache.get_blob(&blob_id(n)).await.map(|b| (missing, b))
        }
        .await;
        match result {
            Ok((missing, blob)) => {
                assert!(
                    missing.blobs.is_empty(),
                    "{} blobs lost",
                    missing.blobs.len()
                );
                assert!(blob.is_some());
                if !errors.is_empty() {
                    break start.elapsed();
                }
            }
            Err(e) => {
                let e = e.to_string();
                // While the cluster says it is down, a new cache refuses to start, saying
                // why in one line.
                if e.contains("cluster is down") && connect_error.is_none() {
                    let seeds = cluster.urls_of(&[1, 2]);
                    if let Err(e) =
                        RedisCache::connect(config(&cluster, seeds), &CacheOptions::default()).await
                    {
                        connect_error = Some(e.to_string());
                    }
                }
                errors.push(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "recovered after {recovered:?}; {} failed attempts: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(!errors.is_empty(), "the kill went unnoticed");
    assert!(
        errors.iter().any(|e| e.contains("cluster is down")),
        "the cluster never said it was down: {errors:?}"
    );
    if let Some(e) = &connect_error {
        eprintln!("connecting meanwhile: {e}");
        assert!(e.contains("cluster_state:fail") && !e.contains('\n'), "{e}");
    }
    for e in &errors {
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains(&format!("127.0.0.1:{killed}")) || e.contains("cluster is down"),
            "{e}"
        );
    }
}
