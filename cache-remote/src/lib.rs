//! scancache as a client of a cache server, over HTTP(S).
//!
//! - [`RemoteCache`]: a [`cache_core::Cache`] whose storage primitives are RPCs of a
//!   `scancache server`'s own service (`scancache.cache.v1.Cache`, carrying the stored
//!   bytes unchanged), so any front end — `scancache image`, the `cache` commands,
//!   another `scancache server` — can use a shared cache service as its backend
//!   (`--cache-backend http(s)://host:port`). The server's backend stores the entries,
//!   applies its TTL and size bound, and holds the single-flight's claims (the service's
//!   `Claim`, `Renew`, `Release` and `AwaitRelease`), so scans through one server wait
//!   for each other's layers.
//! - [`ReferenceClient`]: the reference scanner's own client protocol (`MissingBlobs`,
//!   `PutBlob`, `PutArtifact`, `Scan`), against `scancache server` or the reference's
//!   `trivy server`, for `scancache image --server`; [`UploadCache`] is its upload-only
//!   view for `cache-scan`'s upload flow.
//!
//! Both share one [`Transport`] per process (per CA): a pooled hyper client with
//! keep-alive, HTTP/1.1 and HTTP/2 (ALPN over TLS), rustls with the system's roots or a
//! private CA ([`RemoteConfig::ca`]), timeouts, and one retry policy for every call
//! ([`retry_delay`]: a connection that failed or broke, or a 503, is retried with
//! backoff within about 1.5 s; anything else is final). Failures become cache-core's
//! errors by kind ([`Failure::into_error`]): an unreachable server is
//! `Error::Unavailable`, a refused token or certificate `Error::Denied`.
//!
//! The crate reuses the server crate's messages and conversions (`cache_server::proto`,
//! `cache_server::convert`), so both ends read the wire through the same code. It never
//! logs a token. The contract is the repository's `docs/remote.md`.
//!
//! ```no_run
//! # async fn demo() -> cache_core::Result<()> {
//! use cache_core::Cache;
//! let mut config = cache_remote::RemoteConfig::new("http://cache.internal:4954");
//! config.token = Some("s3cret".into());
//! let cache = cache_remote::RemoteCache::new(&config, &cache_core::CacheOptions::default())?;
//! let stats = cache.stats().await?; // the server's own counts
//! # let _ = stats;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod config;
mod reference;
mod transport;

pub use cache::{MAX_AWAIT_CALL, MAX_BATCH_BYTES, RemoteCache};
pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TOKEN_HEADER,
    Endpoint, RemoteConfig,
};
pub use reference::{ReferenceClient, UploadCache};
pub use transport::{Call, Failure, MAX_RESPONSE_BYTES, Transport, retry_delay};
