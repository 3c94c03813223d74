//! The file-system scan cache of scancache: [`FsCache`], LMDB (via `heed`) under
//! `<cache-dir>/fanal/`, shared safely by any number of processes, with TTL, an LRU size
//! bound and a `gc` that really returns disk space.
//!
//! It stores serialized results; it knows nothing about images, layers or analysers, and
//! it is not a general key-value store: keys are cache IDs, values are the JSON documents
//! of [`cache_core`].
//!
//! # Design
//!
//! - **Layout.** `fanal/data.mdb` and `fanal/lock.mdb` (LMDB), plus `fanal/gc.lock` (the
//!   compaction gate). Databases `artifacts-v1` and `blobs-v1` map an ID
//!   (`sha256:<hex>`) to a value: a 16-byte header (expiry, last access, the document's
//!   schema version; see the `value` module) followed by the document bytes exactly as
//!   given. `lru-v1` indexes entries by last access for eviction, `meta-v1` keeps running
//!   totals. The `-v1` suffix is the layout version: another layout gets other databases.
//! - **Many processes.** LMDB readers never block and never wait for writers; writers
//!   are serialised by LMDB for the length of one transaction. No process holds a lock
//!   for its lifetime, and there is no "in use by another process" failure.
//! - **Crash safety.** A commit that returned is durable (LMDB's default synchronous
//!   commits), a killed writer's transaction simply never happened, and reader slots of
//!   dead processes are reclaimed on open.
//! - **Map growth.** On `MDB_MAP_FULL` the map grows (doubling up to 1 GiB steps) and the
//!   transaction is retried; on `MDB_MAP_RESIZED` (another process grew it) the new size
//!   is adopted. Both happen with no transaction of the process active.
//! - **TTL and size bound.** Expired entries read as missing and are removed by `gc`.
//!   With `max_size`, each put evicts least recently used entries in its own
//!   transaction. Reads never write: access stamps are minute-granular and written in
//!   batches with the process's next write.
//! - **gc and clear.** Both delete in short transactions, then write a compacted copy of
//!   the file beside it and rename it over `data.mdb` while no writer is active in any
//!   process (a shared/exclusive file lock taken per write, exclusive for the swap; and,
//!   only when writers kept changing the file during two copies in a row, for a third
//!   copy as well, which then holds up writers but not readers). Every process notices
//!   the new file before its next operation and reopens; one that still maps the old file
//!   meanwhile reads a consistent snapshot, and the old file's space returns when its
//!   last user moves on. Compactions of one process run one at a time; each writes its
//!   own uniquely named copy and holds a lock on it, so a copy is removed as abandoned
//!   only when its writer is gone.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! use cache_core::{Cache, CacheOptions};
//! let dir = tempfile::tempdir().unwrap();
//! let cache = cache_fs::FsCache::open(dir.path(), &CacheOptions::default()).unwrap();
//! assert_eq!(cache.backend_name(), "fs");
//! assert_eq!(cache.stats().await.unwrap().blobs, 0);
//! # });
//! ```

#![deny(missing_docs)]

mod cache;
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
