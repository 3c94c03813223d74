//! The in-memory scan cache of scancache: [`MemCache`], one process's cache, discarded
//! when the process ends. Entries are the same JSON bytes the other backends store, held
//! in a concurrent [`moka`] cache; each entry keeps its own expiry (so the TTL and
//! imported expiries are honoured), and an optional size bound charges each entry its
//! bytes plus a fixed overhead and evicts the least recently used. It knows nothing about
//! disks, networks or images, and shares nothing between processes.
//!
//! ```
//! use std::time::Duration;
//!
//! use cache_core::{ArtifactId, BlobId, BlobInfo, Cache, CacheOptions};
//! use cache_mem::MemCache;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let cache = MemCache::new(&CacheOptions {
//!     ttl: Some(Duration::from_secs(3600)),
//!     max_size: Some(64 << 20),
//!     ..CacheOptions::default()
//! });
//! let image: ArtifactId =
//!     "sha256:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1".parse()?;
//! let layers: Vec<BlobId> = ["b1", "b2"]
//!     .iter()
//!     .map(|n| format!("sha256:{}", n.repeat(32)).parse())
//!     .collect::<Result<_, _>>()?;
//!
//! // Nothing stored yet: the image record and both layers are missing.
//! let missing = cache.missing_blobs(&image, &layers).await?;
//! assert!(missing.artifact);
//! assert_eq!(missing.blobs, layers);
//!
//! let blob = BlobInfo {
//!     schema_version: BlobInfo::SCHEMA_VERSION,
//!     diff_id: "sha256:…".into(),
//!     ..BlobInfo::default()
//! };
//! cache.put_blob(&layers[0], &blob).await?;
//! assert_eq!(cache.get_blob(&layers[0]).await?, Some(blob));
//! assert_eq!(cache.get_blob(&layers[1]).await?, None); // a miss is not an error
//! assert_eq!(cache.missing_blobs(&image, &layers).await?.blobs, [layers[1].clone()]);
//! # Ok::<(), cache_core::Error>(())
//! # }).unwrap();
//! ```

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cache;

pub use cache::MemCache;
