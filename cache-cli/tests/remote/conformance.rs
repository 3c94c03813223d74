//! The conformance suite through the remote backend, against real `scancache server`
//! processes with fs, memory and Redis behind them.
//!
//! Every cache a case asks for is a server process of its own, started with the case's
//! TTL, size bound and document size cap (the server applies them; the remote backend
//! has no TTL or bound, and is given no cap of its own here, so that the server's
//! refusal of an oversize document is what the cap's case checks): a fresh,
//! empty cache that no other case shares. A server starts in a few tens of
//! milliseconds, so the 87 cases stay within seconds; the Redis cases share one
//! `redis-server` per case, a database per server. The claim cases run against the
//! server's own claims: the remote backend forwards them (`Claim`, `Renew`, `Release`,
//! `AwaitRelease`) to the server's backend.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use cache_core::{Cache, CacheOptions};
use cache_remote::{RemoteCache, RemoteConfig};
use cache_testkit::{
    http::ScancacheServer,
    redis::{RedisServer, ServerOptions, require_redis},
};
use tempfile::TempDir;

use crate::support::{ADMIN, Behind, TOKEN, backend_args, start_server};

/// Makes remote caches, each over a server of its own with `behind` behind it.
pub struct Remote {
    behind: Behind,
    dir: TempDir,
    redis: Option<RedisServer>,
    next: AtomicU32,
    servers: Mutex<Vec<ScancacheServer>>,
}

impl Remote {
    /// `None` when Redis tests are explicitly skipped (`require_redis`).
    pub fn new(behind: Behind) -> Option<Remote> {
        let redis = match behind {
            Behind::Redis => {
                if !require_redis() {
                    return None;
                }
                Some(RedisServer::start(ServerOptions::default()))
            }
            _ => None,
        };
        Some(Remote {
            behind,
            dir: tempfile::tempdir().unwrap(),
            redis,
            next: AtomicU32::new(0),
            servers: Mutex::new(Vec::new()),
        })
    }
}

/// The server options that give a cache `options`.
fn option_args(options: &CacheOptions) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(ttl) = options.ttl {
        assert_eq!(ttl.subsec_nanos(), 0, "a TTL of whole seconds");
        args.extend(["--cache-ttl".into(), format!("{}s", ttl.as_secs())]);
    }
    if let Some(max) = options.max_size {
        args.extend(["--cache-max-size".into(), max.to_string()]);
    }
    let cap = options.max_document_size.unwrap_or(0);
    args.extend(["--max-document-size".into(), cap.to_string()]);
    args
}

#[async_trait]
impl cache_testkit::Factory for Remote {
    async fn create(&self, options: CacheOptions) -> Arc<dyn Cache> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let mut global = backend_args(
            self.behind,
            &self.dir.path().join(n.to_string()),
            self.redis.as_ref(),
            n,
        );
        global.extend(option_args(&options));
        let server = tokio::task::block_in_place(|| start_server(&global));
        let config = RemoteConfig {
            token: Some(TOKEN.into()),
            admin_token: Some(ADMIN.into()),
            request_timeout: Duration::from_secs(30),
            ..RemoteConfig::new(server.url())
        };
        let client_options = CacheOptions {
            max_document_size: None,
            ..CacheOptions::default()
        };
        let cache = RemoteCache::new(&config, &client_options).unwrap();
        self.servers.lock().unwrap().push(server);
        Arc::new(cache)
    }
}

mod fs {
    use super::*;
    cache_testkit::conformance_tests!(Remote::new(Behind::Fs).unwrap());
}

mod memory {
    use super::*;
    cache_testkit::conformance_tests!(Remote::new(Behind::Memory).unwrap());
}

mod redis {
    use super::*;
    cache_testkit::conformance_tests!(match Remote::new(Behind::Redis) {
        Some(f) => f,
        None => return,
    });
}
