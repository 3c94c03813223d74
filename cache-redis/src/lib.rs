//! The Redis scan cache of scancache: [`RedisCache`], one cache shared by many scanners
//! on many machines, configured by a [`RedisConfig`] (URL, TLS files, pool size,
//! timeouts). It stores the JSON documents as plain strings under the reference scanner's
//! key layout (`fanal::artifact::<id>`, `fanal::blob::<id>`), lets Redis expire them
//! (`SET … PX`), answers `missing_blobs` in one round trip for any number of layers, and
//! never shows a password; it knows nothing about images, files on disk or command lines.
//!
//! It runs on one server, on a Redis Cluster (`redis://h1:7000,redis://h2:7001,…`: keys
//! keep the reference layout and spread over every master; each batch goes as one
//! pipeline per master, all at once) and on a master found through Redis Sentinel
//! (`redis+sentinel://s1:26379,…/MASTER[/db]`, followed through failovers). The key
//! design choice: every operation is a batch of single-key commands behind one
//! topology-agnostic interface, so a warm rescan costs 3 round trips on one server and 4
//! on a cluster or through sentinels, handshake included.
//!
//! ```
//! use cache_core::{BlobId, BlobInfo, Cache, CacheOptions};
//! use cache_redis::{RedisCache, RedisConfig};
//! use cache_testkit::redis::{RedisServer, ServerOptions, require_redis};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! if !require_redis() {
//!     return Ok(()); // redis-server is not installed and the tests are told to skip.
//! }
//! // A throwaway server for this example, with a password; use your own URL instead.
//! let server = RedisServer::start(ServerOptions {
//!     password: Some("s3cret".into()),
//!     ..Default::default()
//! });
//! let url = server.url_with_auth("", "s3cret", 0); // redis://:s3cret@127.0.0.1:<port>/0
//! let cache = RedisCache::connect(RedisConfig::new(url), &CacheOptions::default()).await?;
//! assert!(cache.location().starts_with("redis://****@127.0.0.1:"));
//!
//! let id: BlobId =
//!     "sha256:b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1".parse()?;
//! let blob = BlobInfo {
//!     schema_version: BlobInfo::SCHEMA_VERSION,
//!     ..BlobInfo::default()
//! };
//! cache.put_blob(&id, &blob).await?; // SET fanal::blob::sha256:b1b1… {"SchemaVersion":2}
//! assert_eq!(cache.get_blob(&id).await?, Some(blob));
//! cache.close().await?;
//! # Ok::<(), cache_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! The key layout, the values, the topologies, and the commands each operation sends (and
//! so the ACL a user needs) are documented in the repository's `docs/redis.md`. Modules:
//! `node` (a pool of multiplexed connections to one server, with a one-round-trip
//! handshake), `topology` (where a batch goes), `cluster` (slot map, redirections),
//! `sentinel` (master discovery, failover), `config` (URLs), `tls` (rustls only).

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod cluster;
mod config;
mod node;
mod sentinel;
mod tls;
mod topology;

pub use crate::cache::RedisCache;
pub use crate::config::RedisConfig;
