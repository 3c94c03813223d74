//! The in-memory scan cache of scancache: [`MemCache`], one process's cache that is
//! discarded when the process ends.
//!
//! Entries are kept as the same JSON bytes the other backends store, in a concurrent
//! [`moka`] cache: each entry carries its own expiry (so TTLs and imported expiries are
//! honoured), and an optional size bound weighs entries by stored bytes and evicts the
//! least recently used. This crate knows nothing about disks, networks or images.
//!
//! ```
//! # tokio_test_block_on(async {
//! use cache_core::{Cache, CacheOptions};
//! let cache = cache_mem::MemCache::new(&CacheOptions::default());
//! assert_eq!(cache.stats().await.unwrap().blobs, 0);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

#![deny(missing_docs)]

mod cache;

pub use cache::MemCache;
