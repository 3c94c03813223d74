//! Turns the global options into a cache backend (`Arc<dyn Cache>`): memory by default
//! for `fs`, `rootfs` and `sbom`, fs for every other command.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Result, anyhow, bail};
use cache_core::{
    BackendSpec, Cache, CacheOptions, Setting, default_cache_dir, parse_size, parse_ttl,
};
use cache_remote::RemoteConfig;

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
    /// Parses and checks the global options; `default_backend` is the command's backend
    /// when neither `--cache-backend` nor its variable names one.
    pub fn from_opts(g: &GlobalOpts, default_backend: &str) -> Result<Self> {
        let backend = g.cache_backend.as_deref().unwrap_or(default_backend);
        let spec = BackendSpec::parse_with(backend, g.redis_master_name.as_deref())
            .map_err(|e| flagged(e, None))?;
        match &spec {
            BackendSpec::Redis { url } => {
                redis_config(url, g)
                    .validate()
                    .map_err(|e| flagged(e, Some(&spec)))?;
            }
            BackendSpec::Remote { url } => {
                remote_config(url, g)
                    .validate()
                    .map_err(|e| flagged(e, Some(&spec)))?;
            }
            BackendSpec::Fs | BackendSpec::Memory => {}
        }
        let max_size =
            parse_size(&g.cache_max_size).map_err(|e| with_flag(e, "--cache-max-size"))?;
        let max_document_size =
            parse_size(&g.max_document_size).map_err(|e| with_flag(e, "--max-document-size"))?;
        let options = CacheOptions {
            ttl: parse_ttl(&g.cache_ttl).map_err(|e| flagged(e, None))?,
            max_size: Some(max_size).filter(|&n| n > 0),
            max_document_size: Some(max_document_size).filter(|&n| n > 0),
            ttl_refresh: g.cache_ttl_refresh,
        };
        if let BackendSpec::Remote { .. } = &spec {
            for (set, flag) in [
                (options.ttl.is_some(), "--cache-ttl"),
                (options.max_size.is_some(), "--cache-max-size"),
                (options.ttl_refresh, "--cache-ttl-refresh"),
            ] {
                if set {
                    bail!(
                        "{flag} cannot be used with a remote backend ({spec}): the server \
                         applies its own; start the server with {flag}"
                    );
                }
            }
        }
        let cache_dir = g.cache_dir.clone().unwrap_or_else(default_cache_dir);
        Ok(Settings {
            spec,
            cache_dir,
            options,
        })
    }
}

/// The Redis configuration the global options give for `url`.
fn redis_config(url: &str, g: &GlobalOpts) -> cache_redis::RedisConfig {
    cache_redis::RedisConfig {
        master_name: g.redis_master_name.clone(),
        sentinel_password: g.redis_sentinel_password.clone(),
        tls: g.redis_tls,
        ca: g.redis_ca.clone(),
        cert: g.redis_cert.clone(),
        key: g.redis_key.clone(),
        ..cache_redis::RedisConfig::new(url)
    }
}

/// The client settings of the scancache server at `url`, from the global options.
pub fn remote_config(url: &str, g: &GlobalOpts) -> RemoteConfig {
    RemoteConfig {
        token: g.token.clone(),
        token_header: g.token_header.clone(),
        admin_token: g.admin_token.clone(),
        ca: g.server_ca.clone(),
        ..RemoteConfig::new(url)
    }
}

/// Opens the selected backend, naming it in the error.
pub async fn open(settings: &Settings, g: &GlobalOpts) -> Result<Arc<dyn Cache>> {
    open_cache(settings, g)
        .await
        .map_err(|e| opening(e, settings))
}

/// The error of a backend that did not open, with the flag of an invalid setting named.
pub fn opening(e: cache_core::Error, settings: &Settings) -> anyhow::Error {
    flagged(e, Some(&settings.spec)).context(format!("cannot open the {} cache", settings.spec))
}

/// Opens the selected backend; the library's error as it is, for a caller that tells an
/// outage from a misconfiguration.
pub async fn open_cache(
    settings: &Settings,
    g: &GlobalOpts,
) -> Result<Arc<dyn Cache>, cache_core::Error> {
    let redis_opts = g.redis_tls
        || g.redis_ca.is_some()
        || g.redis_cert.is_some()
        || g.redis_key.is_some()
        || g.redis_master_name.is_some()
        || g.redis_sentinel_password.is_some();
    match &settings.spec {
        BackendSpec::Memory => {
            warn_unused_redis_options(redis_opts);
            warn_unused_refresh(settings);
            Ok(Arc::new(cache_mem::MemCache::new(&settings.options)) as Arc<dyn Cache>)
        }
        BackendSpec::Fs => {
            warn_unused_redis_options(redis_opts);
            warn_unused_refresh(settings);
            cache_fs::FsCache::open(&settings.cache_dir, &settings.options)
                .map(|c| Arc::new(c) as Arc<dyn Cache>)
        }
        BackendSpec::Redis { url } => {
            if settings.options.ttl_refresh && settings.options.ttl.is_none() {
                tracing::warn!("--cache-ttl-refresh does nothing without --cache-ttl");
            }
            cache_redis::RedisCache::connect(redis_config(url, g), &settings.options)
                .await
                .map(|c| Arc::new(c) as Arc<dyn Cache>)
        }
        BackendSpec::Remote { url } => {
            warn_unused_redis_options(redis_opts);
            cache_remote::RemoteCache::new(&remote_config(url, g), &settings.options)
                .map(|c| Arc::new(c) as Arc<dyn Cache>)
        }
    }
}

fn warn_unused_refresh(settings: &Settings) {
    if settings.options.ttl_refresh {
        tracing::warn!(
            "--cache-ttl-refresh is ignored: only Redis refreshes expiries on reads; fs and \
             memory record reads for cache gc --unused-for"
        );
    }
}

fn warn_unused_redis_options(given: bool) {
    if given {
        tracing::warn!(
            "--redis-tls/--redis-ca/--redis-cert/--redis-key/--redis-master-name/\
             --redis-sentinel-password are ignored: the backend is not Redis"
        );
    }
}

/// The global option that sets a setting the libraries name in their errors, for the
/// backend in use.
fn flag_of(setting: Setting, spec: Option<&BackendSpec>) -> Option<&'static str> {
    let remote = matches!(spec, Some(BackendSpec::Remote { .. }));
    Some(match setting {
        Setting::Backend => "--cache-backend",
        Setting::Ttl => "--cache-ttl",
        Setting::TlsCa if remote => "--server-ca",
        Setting::TlsCa => "--redis-ca",
        Setting::TlsCert => "--redis-cert",
        Setting::TlsKey => "--redis-key",
        Setting::MasterName => "--redis-master-name",
        _ => return None,
    })
}

/// A library error, with an invalid setting named by the flag that set it for the
/// backend `spec` (when known).
pub fn flagged(e: cache_core::Error, spec: Option<&BackendSpec>) -> anyhow::Error {
    match e.config_parts().and_then(|(s, _)| flag_of(s, spec)) {
        Some(flag) => with_flag(e, flag),
        None => e.into(),
    }
}

/// A library error about an invalid setting, named by `flag`.
pub fn with_flag(e: cache_core::Error, flag: &str) -> anyhow::Error {
    match e.config_parts() {
        Some((_, reason)) => anyhow!("invalid {flag}: {reason}"),
        None => e.into(),
    }
}
