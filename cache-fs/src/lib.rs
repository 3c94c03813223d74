//! The file-system backend of scancache: [`FsCache`], a scan cache in LMDB (via `heed`)
//! under `<cache-dir>/fanal/`, shared safely by any number of processes, with TTL, an LRU
//! size bound and a `gc` that really returns disk space. It implements
//! [`cache_core::Cache`]; keys are cache IDs and values the JSON documents of
//! [`cache_core`], so it is not a general key-value store.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! use cache_core::{ArtifactId, BlobId, BlobInfo, Cache, CacheOptions};
//! use cache_fs::FsCache;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cache = FsCache::open(dir.path(), &CacheOptions::default()).unwrap();
//! let digest = |n: u8| format!("sha256:{}", format!("{n:02x}").repeat(32));
//! let image: ArtifactId = digest(1).parse().unwrap();
//! let layer: BlobId = digest(2).parse().unwrap();
//! let other: BlobId = digest(3).parse().unwrap();
//!
//! let info = BlobInfo {
//!     schema_version: BlobInfo::SCHEMA_VERSION,
//!     ..Default::default()
//! };
//! cache.put_blob(&layer, &info).await.unwrap();
//! assert_eq!(cache.get_blob(&layer).await.unwrap(), Some(info));
//!
//! // The stored layer is not missing; the other layer and the image record are.
//! let missing = cache
//!     .missing_blobs(&image, &[layer.clone(), other.clone()])
//!     .await
//!     .unwrap();
//! assert!(missing.artifact);
//! assert_eq!(missing.blobs, [other]);
//! # });
//! ```
//!
//! # Design
//!
//! LMDB readers never block and never wait for writers; writers are serialised by LMDB
//! for the length of one transaction. No process holds a lock for its lifetime, so there
//! is no "in use by another process" failure. A commit that returned is durable, a killed
//! writer's transaction simply never happened, and reader slots of dead processes are
//! reclaimed on open. Each mechanism is described in the module that owns it:
//!
//! - `cache`: the `Cache` trait on top of the store;
//! - `store`: the environment of one directory, its transactions and reopening it after
//!   the file was replaced; `registry`: one store per directory per process;
//! - `growth`: the map grows on `MDB_MAP_FULL` and follows `MDB_MAP_RESIZED`;
//! - `entry`: the databases, entry operations, LRU eviction and running totals; `value`:
//!   the stored value format;
//! - `touch`: reads never write; access stamps are written with the next write;
//! - `store::compact`: gc and clear swap in a compacted copy of the file, guarded by the
//!   swap gate (`gate`);
//! - `claims`: the single-flight's claims, as `flock`ed lock files under
//!   `fanal/claims-v1/` (outside LMDB: a claim must end when its owner dies).
//!
//! The cache semantics (TTL, size bound, gc) are specified in `docs/semantics.md`, and
//! the files under `fanal/` in `docs/cache-dir.md`.

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod claims;
mod config;
mod entry;
mod gate;
mod growth;
mod registry;
mod store;
mod touch;
mod value;

pub use cache::FsCache;
pub use config::FsConfig;
