//! The Redis backend through Redis Sentinel, against real masters, replicas and
//! sentinels: the whole conformance suite (plain, and mutual TLS with passwords on both
//! the data nodes and the sentinels), failovers by command and by killing the master, and
//! the errors of a wrong sentinel setup.
//!
//! The conformance suite shares one setup per TLS mode and gives each cache its own
//! database; each failover test has a setup of its own.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use cache_core::{BlobId, Cache, CacheOptions};
use cache_redis::{RedisCache, RedisConfig};
use cache_testkit::{
    conformance::{artifact_id, blob_id, sample_blob},
    redis::{
        self as support, DATABASES, MASTER_NAME, RedisServer, SentinelOptions, SentinelSetup,
        ServerOptions, Tls,
    },
};

/// A configuration for `setup` at `url`: its TLS files (TLS to the data nodes too), its
/// sentinels' password; quick to fail.
fn config(setup: &SentinelSetup, url: String, sentinel_password: Option<&str>) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    if let Some(certs) = setup.certs() {
        config.ca = Some(certs.ca.clone());
        config.cert = Some(certs.client_cert.clone());
        config.key = Some(certs.client_key.clone());
    }
    config.sentinel_password = sentinel_password.map(str::to_owned);
    config.connect_timeout = Duration::from_secs(2);
    config.command_timeout = Duration::from_secs(2);
    config
}

/// The options of the shared setups.
fn shared_options(tls: Tls) -> SentinelOptions {
    match tls {
        Tls::Off => SentinelOptions {
            replicas: 0,
            ..Default::default()
        },
        _ => SentinelOptions {
            replicas: 0,
            tls,
            password: Some("data-pw".into()),
            sentinel_password: Some("sentinel-pw".into()),
            ..Default::default()
        },
    }
}

/// Makes caches through a shared setup's sentinel, each on a database of its own.
struct Factory {
    tls: Tls,
}

impl Factory {
    fn new(tls: Tls) -> Option<Factory> {
        support::require_redis().then_some(Factory { tls })
    }

    fn setup(&self) -> &'static SentinelSetup {
        static PLAIN: OnceLock<SentinelSetup> = OnceLock::new();
        static TLS: OnceLock<SentinelSetup> = OnceLock::new();
        let cell = if self.tls == Tls::Off { &PLAIN } else { &TLS };
        cell.get_or_init(|| SentinelSetup::start(shared_options(self.tls)))
    }
}

#[async_trait]
impl cache_testkit::Factory for Factory {
    async fn create(&self, options: CacheOptions) -> Arc<dyn Cache> {
        static NEXT_DB: AtomicU32 = AtomicU32::new(1);
        let db = NEXT_DB.fetch_add(1, Ordering::SeqCst);
        assert!(db < DATABASES, "test server has only {DATABASES} databases");
        let setup = tokio::task::block_in_place(|| self.setup());
        let password = shared_options(self.tls).sentinel_password;
        let config = config(setup, setup.url(db), password.as_deref());
        Arc::new(RedisCache::connect(config, &options).await.unwrap())
    }
}

cache_testkit::conformance_tests!(match Factory::new(Tls::Off) {
    Some(f) => f,
    None => return,
});

/// The same suite over mutual TLS to the sentinels (`rediss+sentinel://`) and to the
/// data nodes (the CA and client certificate), with a password on each.
mod mutual_tls {
    use super::*;

    cache_testkit::conformance_tests!(match Factory::new(Tls::Mutual) {
        Some(f) => f,
        None => return,
    });
}

/// Runs `op` every 50 ms until it has failed and then succeeded again (or `limit`
/// passes), and returns the failures and the time from the first failure to the first
/// success after it.
async fn until_recovered<F, Fut>(limit: Duration, mut op: F) -> (Vec<String>, Duration)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = cache_core::Result<()>>,
{
    let start = Instant::now();
    let mut errors = Vec::new();
    let mut first_failure = None;
    for n in 0.. {
        assert!(
            start.elapsed() < limit,
            "no recovery within {limit:?}: {errors:?}"
        );
        match op(n).await {
            Ok(()) => {
                if let Some(at) = first_failure {
                    return (errors, Instant::now().duration_since(at));
                }
            }
            Err(e) => {
                first_failure.get_or_insert_with(Instant::now);
                errors.push(e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

/// After `SENTINEL FAILOVER`, writes reach the new master within seconds, through the
/// same cache: no connection stays on the demoted master (which answers `READONLY`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_by_command_moves_writes_to_the_new_master() {
    if !support::require_redis() {
        return;
    }
    let setup = SentinelSetup::start(SentinelOptions::default());
    let cache = Arc::new(
        RedisCache::connect(config(&setup, setup.url(0), None), &CacheOptions::default())
            .await
            .unwrap(),
    );
    cache
        .put_blob(&blob_id(1), &sample_blob(1, 1))
        .await
        .unwrap();
    let old = setup.master_port();
    let new = tokio::task::block_in_place(|| setup.failover());
    assert_ne!(old, new);
    // Until the sentinels demote it, the old master still accepts writes; the cache
    // must move to the new one by itself within a few seconds.
    let new_master = setup.servers.iter().find(|s| s.port() == new).unwrap();
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut n = 100;
    loop {
        n += 1;
        match cache.put_blob(&blob_id(n), &sample_blob(n, 1)).await {
            Ok(()) => {
                let key = format!("fanal::blob::{}", blob_id(n));
                if new_master.cli(&["EXISTS", &key]) == "1" {
                    break;
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{failures:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "writes reach the new master {:?} after the sentinels name it ({} failures: {failures:?})",
        start.elapsed(),
        failures.len()
    );
    for e in &failures {
        assert!(!e.contains('\n'), "{e}");
    }
    // Written before the failover, replicated, readable from the new master.
    assert!(cache.get_blob(&blob_id(1)).await.unwrap().is_some());
}

/// A killed master: operations fail with one line naming the master (and the sentinel
/// that named it) until the sentinels promote the replica, then succeed through the same
/// cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_without_restarting() {
    if !support::require_redis() {
        return;
    }
    let mut setup = SentinelSetup::start(SentinelOptions::default());
    let cache = Arc::new(
        RedisCache::connect(config(&setup, setup.url(0), None), &CacheOptions::default())
            .await
            .unwrap(),
    );
    let ids: Vec<BlobId> = (0..60).map(blob_id).collect();
    for id in &ids {
        cache.put_blob(id, &sample_blob(1, 1)).await.unwrap();
    }
    let old = setup.master_port();
    setup.server_at(old).kill();
    let (errors, outage) = until_recovered(Duration::from_secs(30), |n| {
        let cache = Arc::clone(&cache);
        let ids = ids.clone();
        async move {
            cache.missing_blobs(&artifact_id(1), &ids).await?;
            cache.put_blob(&blob_id(1000 + n), &sample_blob(n, 1)).await
        }
    })
    .await;
    eprintln!(
        "unavailable for {outage:?}: {} failed attempts, e.g. {:?}",
        errors.len(),
        errors.first()
    );
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains(&format!("master 127.0.0.1:{old}")), "{e}");
    }
    assert_ne!(setup.master_port(), old);
}

/// The sentinels' own mistakes, each one line: a master name no sentinel knows, no
/// sentinel reachable, a data node given as a sentinel, a missing sentinel password.
/// A sentinel that is down is skipped when another answers, and the sentinels may be
/// given as `redis://` URLs with a master name instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_errors_and_forms() {
    if !support::require_redis() {
        return;
    }
    let setup = SentinelSetup::start(SentinelOptions {
        replicas: 0,
        sentinel_password: Some("s-pw".into()),
        ..Default::default()
    });
    let sentinel = setup.sentinels[0].port();
    let dead = support::free_port();
    let connect = |url: String, master_name: Option<&str>, password: Option<&str>| {
        let mut c = config(&setup, url, password);
        c.master_name = master_name.map(str::to_owned);
        async move { RedisCache::connect(c, &CacheOptions::default()).await }
    };
    let err_of = |r: cache_core::Result<RedisCache>| {
        let e = r.unwrap_err().to_string();
        eprintln!("error: {e}");
        assert!(!e.contains('\n') && !e.contains("s-pw"), "{e}");
        e
    };

    let ok = connect(
        format!("redis+sentinel://127.0.0.1:{dead},127.0.0.1:{sentinel}/{MASTER_NAME}/4"),
        None,
        Some("s-pw"),
    )
    .await
    .unwrap();
    ok.put_blob(&blob_id(1), &sample_blob(1, 1)).await.unwrap();
    let same = connect(
        format!("redis://127.0.0.1:{sentinel}/4"),
        Some(MASTER_NAME),
        Some("s-pw"),
    )
    .await
    .unwrap();
    assert!(same.get_blob(&blob_id(1)).await.unwrap().is_some());

    let e = err_of(
        connect(
            format!("redis+sentinel://127.0.0.1:{sentinel}/nosuch"),
            None,
            Some("s-pw"),
        )
        .await,
    );
    assert!(
        e.contains(&format!(
            "sentinel 127.0.0.1:{sentinel}: knows no master named \"nosuch\""
        )),
        "{e}"
    );

    let e = err_of(
        connect(
            format!("redis+sentinel://127.0.0.1:{dead}/{MASTER_NAME}"),
            None,
            None,
        )
        .await,
    );
    assert!(
        e.contains("no sentinel named the master")
            && e.contains(&format!("sentinel 127.0.0.1:{dead}: cannot connect")),
        "{e}"
    );

    let e = err_of(
        connect(
            format!("redis+sentinel://127.0.0.1:{sentinel}/{MASTER_NAME}"),
            None,
            None,
        )
        .await,
    );
    assert!(e.contains("NOAUTH"), "{e}");

    let data = RedisServer::start(ServerOptions::default());
    let e = err_of(
        connect(
            format!("redis+sentinel://127.0.0.1:{}/{MASTER_NAME}", data.port()),
            None,
            None,
        )
        .await,
    );
    assert!(e.contains("is this a sentinel?"), "{e}");

    let e = err_of(
        connect(
            format!("redis+sentinel://127.0.0.1:{sentinel}/{MASTER_NAME}"),
            Some("other"),
            Some("s-pw"),
        )
        .await,
    );
    assert!(e.contains("differs from the master"), "{e}");
}
