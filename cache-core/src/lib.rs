//! The core of scancache: cache keys, the stored documents, the [`Cache`] trait every
//! backend implements, and the parsing every front end shares.
//!
//! A scan cache stores the analysis of each container image layer as a [`BlobInfo`]
//! under a [`BlobId`], and a small [`ArtifactInfo`] per image under an [`ArtifactId`].
//! Both IDs come from [`calc_key`], which mixes the layer's diffID (or the image ID) with
//! the version of every analyser, so a changed analyser never reuses an old result.
//!
//! This crate knows nothing about LMDB, Redis, image archives or command lines: backends
//! (`cache-fs`, `cache-mem`, `cache-redis`) implement [`Cache`], `cache-scan` uses it, and
//! `cache-cli` picks a backend at run time from a [`BackendSpec`] and holds it as an
//! `Arc<dyn Cache>`.
//!
//! Documents are compatible with the reference scanner's JSON: PascalCase fields, empty
//! fields omitted, and unknown fields kept in `extra` so nothing is lost on a round trip.
//!
//! ```
//! use cache_core::{BlobId, BlobInfo};
//! let id: BlobId = "sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0"
//!     .parse()
//!     .unwrap();
//! assert!("sha256:XYZ".parse::<BlobId>().is_err());
//! let doc: BlobInfo = serde_json::from_str(r#"{"SchemaVersion":2,"Future":1}"#).unwrap();
//! assert!(doc.is_current());
//! assert_eq!(serde_json::to_string(&doc).unwrap(), r#"{"SchemaVersion":2,"Future":1}"#);
//! # let _ = id;
//! ```
//!
//! The conformance suite that every backend runs lives in the `cache-testkit` crate.

#![deny(missing_docs)]

mod cache;
mod calc;
pub mod codec;
mod config;
mod error;
mod key;
mod model;
pub mod rules;
mod topology;

pub use cache::{
    Cache, EntryMeta, GcReport, Missing, RawEntry, Stats, Visitor, Walk, Walked, kind_matches,
};
pub use calc::calc_key;
pub use config::{
    BackendSpec, CacheOptions, default_cache_dir, default_cache_dir_from, mask_url, parse_size,
    parse_ttl,
};
pub use error::{Error, Result, Setting};
pub use key::{ArtifactId, BlobId, Digest, EntryKey, EntryKind};
pub use model::{
    ArtifactInfo, BlobInfo, Document, Extra, Os, Package, PackageInfo, Repository,
    schema_version_of,
};
pub use topology::{ClusterSpec, RedisTopology, SENTINEL_PORT, SentinelSpec};
