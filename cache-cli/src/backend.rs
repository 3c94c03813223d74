//! Turns the global options into a cache backend (`Arc<dyn Cache>`), fs by default.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use cache_core::{BackendSpec, Cache, CacheOptions, default_cache_dir, parse_size, parse_ttl};

use crate::cli::GlobalOpts;

/// The parsed cache settings of one invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which backend.
    pub spec: BackendSpec,
    /// The cache directory (used by the fs backend and `clean`).
    pub cache_dir: PathBuf,
    /// TTL and size bound.
    pub options: CacheOptions,
}

impl Settings {
    /// Parses and checks the global options.
    pub fn from_opts(g: &GlobalOpts) -> Result<Self> {
        let spec = BackendSpec::parse(&g.cache_backend)?;
        if let BackendSpec::Redis { url } = &spec {
            cache_redis::RedisConfig::new(url.clone()).validate()?;
        }
        let options = CacheOptions {
            ttl: parse_ttl(&g.cache_ttl)?,
            max_size: Some(parse_size("--cache-max-size", &g.cache_max_size)?).filter(|&n| n > 0),
        };
        let cache_dir = g.cache_dir.clone().unwrap_or_else(default_cache_dir);
        Ok(Settings {
            spec,
            cache_dir,
            options,
        })
    }
}

/// Opens the selected backend.
pub async fn open(settings: &Settings, g: &GlobalOpts) -> Result<Arc<dyn Cache>> {
    let tls_opts =
        g.redis_tls || g.redis_ca.is_some() || g.redis_cert.is_some() || g.redis_key.is_some();
    let cache: Result<Arc<dyn Cache>> = match &settings.spec {
        BackendSpec::Memory => {
            warn_unused_tls(tls_opts);
            Ok(Arc::new(cache_mem::MemCache::new(&settings.options)) as Arc<dyn Cache>)
        }
        BackendSpec::Fs => {
            warn_unused_tls(tls_opts);
            cache_fs::FsCache::open(&settings.cache_dir, &settings.options)
                .map(|c| Arc::new(c) as Arc<dyn Cache>)
                .map_err(Into::into)
        }
        BackendSpec::Redis { url } => {
            let config = cache_redis::RedisConfig {
                tls: g.redis_tls,
                ca: g.redis_ca.clone(),
                cert: g.redis_cert.clone(),
                key: g.redis_key.clone(),
                ..cache_redis::RedisConfig::new(url.clone())
            };
            match cache_redis::RedisCache::connect(config, &settings.options).await {
                Ok(c) => Ok(Arc::new(c) as Arc<dyn Cache>),
                Err(e) => Err(e.into()),
            }
        }
    };
    cache.with_context(|| format!("cannot open the {} cache", settings.spec))
}

fn warn_unused_tls(given: bool) {
    if given {
        tracing::warn!(
            "--redis-tls/--redis-ca/--redis-cert/--redis-key are ignored: the backend is not Redis"
        );
    }
}
