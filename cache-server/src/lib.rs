//! The scan cache as a service: the reference scanner's client/server protocol (Twirp)
//! over any [`cache_core::Cache`], so that unmodified `trivy image --server URL` clients
//! share a scancache backend.
//!
//! [`router`] builds the whole service from a [`ServerState`] (the cache and a
//! [`Config`]) as an axum `Router`; `scancache server` and the tests start the same one,
//! served by [`serve()`] (plain or TLS, graceful shutdown). Cross-cutting concerns are
//! middleware layers (module `layers`): the token, the body cap, the deadline, the bound on
//! concurrent requests, metrics and request logs. Handlers are thin: decode ([`twirp`]),
//! convert ([`convert`]), call the cache, encode. The protocol's messages live in
//! [`proto`], derived with `prost` and checked against the v0.76 client's descriptors,
//! each with its proto3 JSON form.
//!
//! The service has no vulnerability database: `Scan` applies the layers with
//! `cache_scan::apply` (the code `scancache image` uses) and reports packages,
//! configuration checks, secrets and licenses, and refuses the `vuln` scanner with
//! [`NO_VULN_DB`]. It does not pick a backend, parse command lines or install a log
//! subscriber. The contract is `docs/server.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cache_server::Error> {
//! use std::sync::Arc;
//! let cache = Arc::new(cache_mem::MemCache::new(&Default::default()));
//! let state = cache_server::ServerState::new(cache, cache_server::Config::default());
//! let listener = cache_server::bind("127.0.0.1:4954".parse().unwrap()).await?;
//! let app = cache_server::router(state);
//! cache_server::serve(listener, app, None, cache_server::shutdown_signal(), std::time::Duration::from_secs(10)).await?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod batch;
mod config;
pub mod convert;
mod error;
mod flight;
mod layers;
mod license;
pub mod metrics;
pub mod native;
pub mod proto;
mod scan;
mod serve;
mod service;
mod time;
pub mod twirp;

pub use config::{
    ADMIN_TOKEN_HEADER, Config, DEFAULT_MAX_AWAIT, DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_REQUEST_SIZE, DEFAULT_PATH_PREFIX, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_TOKEN_HEADER, Token, normalize_prefix,
};
pub use error::{Error, Result};
pub use scan::NO_VULN_DB;
pub use serve::{Stopped, bind, load_tls, serve, shutdown_signal};
pub use service::{ServerState, metrics_router, router};
