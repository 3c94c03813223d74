//! The core of scancache: cache IDs and [`calc_key`], the stored documents
//! ([`ArtifactInfo`], [`BlobInfo`]) and their encoding, stored reports ([`report`]), the [`Cache`] trait with the
//! rules every backend shares ([`rules`]), and the parsing every front end shares
//! (backend specs, TTLs, sizes). It stores nothing itself and knows nothing about LMDB,
//! Redis, image archives or command lines: backends (`cache-fs`, `cache-mem`,
//! `cache-redis`) implement [`Cache`], `cache-scan` uses it, and `cache-cli` picks a
//! backend at run time from a [`BackendSpec`] and holds it as an `Arc<dyn Cache>`.
//!
//! ```
//! use cache_core::{BlobId, BlobInfo, EntryKind, calc_key, codec};
//!
//! // IDs are validated once, when parsed: `sha256:` and 64 lowercase hex digits.
//! let diff_id = "sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0";
//! assert!(diff_id.parse::<BlobId>().is_ok());
//! assert!("sha256:5317F9".parse::<BlobId>().is_err());
//!
//! // A layer's cache key mixes its diffID with every analyser's version and the options
//! // that change results (a golden vector of docs/keys.md).
//! let key = calc_key(diff_id, [("apk", 1), ("dpkg", 1), ("os-release", 1)], [])?;
//! assert_eq!(
//!     key.as_str(),
//!     "sha256:d227c9ae4756dc4b2741b6b414ecf62ec55cf02beb76b04ca4ba0a3b9ad6660e"
//! );
//! let id = BlobId::from(key);
//!
//! // Documents decode like Go's encoding/json and keep the fields they do not model.
//! let stored = br#"{"SchemaVersion":2,"Size":null,"FromTheFuture":[1]}"#;
//! let doc: BlobInfo = codec::decode(id.as_str(), stored)?;
//! assert!(doc.is_current() && codec::is_current(EntryKind::Blob, stored));
//! assert_eq!(codec::encode(&doc), br#"{"SchemaVersion":2,"FromTheFuture":[1]}"#);
//!
//! // Bytes that are not a document are a corrupt entry, named by its ID.
//! let err = codec::decode::<BlobInfo>(id.as_str(), b"{not json").unwrap_err();
//! assert!(err.is_corrupt() && err.to_string().contains(id.as_str()));
//! # Ok::<(), cache_core::Error>(())
//! ```
//!
//! The contract these types implement is written down in the repository's `docs/`:
//! `keys.md` (IDs and `calc_key`), `documents.md` (the documents) and `semantics.md`
//! (what every backend does). The conformance suite that checks every backend against
//! it lives in the `cache-testkit` crate.

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod calc;
pub mod claim;
pub mod codec;
mod config;
mod error;
mod key;
mod model;
pub mod report;
pub mod rules;
mod topology;

pub use cache::{
    Cache, EntryMeta, GcReport, Missing, RawEntry, Stats, UNREAD_AGES, Visitor, Walk, Walked,
    kind_matches,
};
pub use calc::calc_key;
pub use claim::{Claim, ClaimOptions, Claimed, DEFAULT_LEASE, Waited};
pub use config::{
    BackendSpec, CacheOptions, DEFAULT_MAX_DOCUMENT_SIZE, default_cache_dir,
    default_cache_dir_from, mask_url, parse_size, parse_ttl,
};
pub use error::{Error, Result, Setting};
pub use key::{ArtifactId, BlobId, Digest, EntryKey, EntryKind};
pub use model::{
    Application, ArtifactInfo, BlobInfo, Document, Extra, LicenseFile, LicenseFinding, Os, Package,
    PackageInfo, PkgIdentifier, Repository, schema_version_of,
};
pub use rules::GcOptions;
pub use topology::{ClusterSpec, RedisTopology, SENTINEL_PORT, SentinelSpec};
