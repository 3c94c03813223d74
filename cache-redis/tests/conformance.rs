//! The shared conformance suite against real `redis-server` processes: over plain TCP, and
//! again over mutual TLS.
//!
//! Each test gets its own server (started on first use, killed when the test ends, also
//! when it fails) and each cache it creates gets its own database on that server, so
//! concurrently running tests never share data.

#![allow(clippy::unwrap_used)]

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU32, Ordering},
};

use async_trait::async_trait;
use cache_core::{Cache, CacheOptions};
use cache_redis::{RedisCache, RedisConfig};
use cache_testkit::redis::{self as support, DATABASES, RedisServer, ServerOptions, Tls};

/// Makes caches on a server of its own, one fresh database per cache.
struct Factory {
    tls: Tls,
    server: Mutex<Option<RedisServer>>,
    next_db: AtomicU32,
}

impl Factory {
    /// `None` when Redis tests are skipped (see `support::require_redis`).
    fn new(tls: Tls) -> Option<Factory> {
        support::require_redis().then(|| Factory {
            tls,
            server: Mutex::new(None),
            next_db: AtomicU32::new(0),
        })
    }

    fn config(&self, db: u32) -> RedisConfig {
        let mut guard = self.server.lock().unwrap();
        let server = guard.get_or_insert_with(|| {
            RedisServer::start(ServerOptions {
                tls: self.tls,
                ..Default::default()
            })
        });
        let mut config = RedisConfig::new(server.url(db));
        if let Some(certs) = &server.certs {
            config.ca = Some(certs.ca.clone());
            if self.tls == Tls::Mutual {
                config.cert = Some(certs.client_cert.clone());
                config.key = Some(certs.client_key.clone());
            }
        }
        config
    }
}

#[async_trait]
impl cache_testkit::Factory for Factory {
    async fn create(&self, options: CacheOptions) -> Arc<dyn Cache> {
        let db = self.next_db.fetch_add(1, Ordering::SeqCst);
        assert!(db < DATABASES, "test server has only {DATABASES} databases");
        let config = self.config(db);
        Arc::new(RedisCache::connect(config, &options).await.unwrap())
    }
}

// The factory expression returns from the test early (after printing SKIPPED) when Redis
// tests are explicitly skipped.
cache_testkit::conformance_tests!(match Factory::new(Tls::Off) {
    Some(f) => f,
    None => return,
});

/// The same suite over mutual TLS: the server requires a client certificate signed by the
/// test CA, and the client verifies the server against that CA.
mod mutual_tls {
    use super::*;

    cache_testkit::conformance_tests!(match Factory::new(Tls::Mutual) {
        Some(f) => f,
        None => return,
    });
}
