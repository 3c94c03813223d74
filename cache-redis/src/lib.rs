//! The Redis scan cache of scancache: [`RedisCache`], one cache shared by many scanners on
//! many machines, configured by a [`RedisConfig`].
//!
//! Entries use the reference scanner's layout, so both tools can share one Redis:
//! `fanal::artifact::<ArtifactId>` and `fanal::blob::<BlobId>` hold the JSON documents as
//! plain strings, with no header. Every put applies the configured TTL (`SET … PX`), and
//! expired keys are dropped by Redis itself.
//!
//! The key design choice is [`cache_core::Cache::missing_blobs`]: it costs **one round
//! trip** for any number of layers. It pipelines one `GETRANGE key 0 N` per entry, which
//! transfers at most the first few bytes of each document, and compares them with the
//! canonical prefix `{"SchemaVersion":<current>` followed by `,` or `}` (our writer and the
//! reference tool both put `SchemaVersion` first). A document written in another shape counts
//! as missing and is simply analysed and written again; getters still judge full values with
//! `cache_core::codec`.
//!
//! Admin operations walk keys with `SCAN MATCH fanal::*` (never `KEYS`), pipelining the
//! per-key commands of each batch, and [`cache_core::Cache::clear`] unlinks only `fanal::*`
//! keys (never `FLUSHDB`), so other data in the same database survives.
//!
//! Connections come from a pool (deadpool, with deadpool-redis making the connections).
//! TLS uses rustls only: `rediss://` or [`RedisConfig::tls`] verifies the server against
//! the system roots, [`RedisConfig::ca`] alone against that CA, and a CA plus a client
//! certificate and key is mutual TLS. Passwords never appear in errors or logs: addresses
//! are shown through [`cache_core::mask_url`] and every message from the Redis client is
//! scrubbed of the password before it is shown.
//!
//! This crate knows nothing about images, files on disk or command lines.
//!
//! ```no_run
//! # async fn demo() -> cache_core::Result<()> {
//! use cache_core::{Cache, CacheOptions};
//! use cache_redis::{RedisCache, RedisConfig};
//!
//! let config = RedisConfig::new("redis://:secret@cache.example.org:6379/2");
//! let cache = RedisCache::connect(config, &CacheOptions::default()).await?;
//! assert_eq!(cache.location(), "redis://****@cache.example.org:6379/2");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod cache;
mod cluster;
mod config;
mod node;
mod sentinel;
mod tls;
mod topology;

pub use crate::cache::RedisCache;
pub use crate::config::RedisConfig;
