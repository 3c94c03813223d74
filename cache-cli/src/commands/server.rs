//! `scancache server`: the scan cache as a Twirp service for the reference scanner's
//! clients (library: `cache-server`).

use std::sync::Arc;

use anyhow::{Context, Result};
use cache_core::Cache;
use cache_server::{Config, ServerState, Token};

use crate::cli::{GlobalOpts, ServerArgs};

/// Runs the server over an open backend until SIGINT or SIGTERM.
pub async fn run(args: &ServerArgs, cache: Arc<dyn Cache>, g: &GlobalOpts) -> Result<()> {
    let config = Config {
        path_prefix: args.path_prefix.clone(),
        token: g.token.clone().filter(|t| !t.is_empty()).map(Token::new),
        token_header: g.token_header.parse().context("invalid --token-header")?,
        admin_token: g
            .admin_token
            .clone()
            .filter(|t| !t.is_empty())
            .map(Token::new),
        max_request_size: args.max_request_size,
        request_timeout: args.request_timeout,
        max_concurrent_requests: args.max_concurrent_requests as usize,
        serve_metrics: args.metrics_listen.is_none(),
        lease: g.lease_timeout.0,
        max_await: cache_server::DEFAULT_MAX_AWAIT,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(cache_server::load_tls(cert, key)?),
        _ => None,
    };
    let state = ServerState::new(cache.clone(), config);
    let listener = cache_server::bind(args.listen).await?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    let metrics_task = match args.metrics_listen {
        Some(maddr) => {
            let mlistener = cache_server::bind(maddr).await?;
            let app = cache_server::metrics_router(state.clone());
            let task = tokio::spawn(cache_server::serve(
                mlistener,
                app,
                None,
                std::future::pending(),
                std::time::Duration::ZERO,
            ));
            tracing::info!("metrics on http://{maddr}/metrics");
            Some(task)
        }
        None => None,
    };
    if state.config().token.is_none() {
        tracing::warn!("no --token: the server accepts requests from anyone who can reach {addr}");
    }
    if state.config().admin_token.is_none() {
        tracing::info!(
            "no --admin-token: the admin RPCs of the scancache service (rm, gc, clear, export, \
             import) are refused"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let prefix = state.prefix();
    tracing::info!(
        "scancache server {} listening on {scheme}://{addr} (Twirp under {}), cache {} at {}",
        env!("CARGO_PKG_VERSION"),
        if prefix.is_empty() { "/" } else { prefix },
        cache.backend_name(),
        cache.location()
    );
    let app = cache_server::router(state.clone());
    let stopped = cache_server::serve(
        listener,
        app,
        tls,
        cache_server::shutdown_signal(),
        args.shutdown_grace,
    )
    .await?;
    if let Some(task) = metrics_task {
        task.abort();
    }
    let drained = if stopped.drained {
        ""
    } else {
        " (some requests were still running after --shutdown-grace)"
    };
    tracing::info!(
        "scancache server stopped{drained}: {}",
        state.metrics().summary()
    );
    Ok(())
}
