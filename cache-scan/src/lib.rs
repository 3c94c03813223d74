//! Scans container image archives layer by layer through a scan cache.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cache_scan::ScanError> {
//! use std::path::Path;
//!
//! use cache_scan::ScanOptions;
//!
//! let sample = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/debian.tar"));
//! let cache = cache_mem::MemCache::new(&cache_core::CacheOptions::default());
//! let report = cache_scan::scan(sample, &cache, &ScanOptions::default()).await?;
//! let os = report.os.as_ref().expect("an OS is detected");
//! assert_eq!((os.family.as_str(), os.name.as_str()), ("debian", "12.11"));
//! assert!(report.packages.iter().any(|p| p.package.name == "curl"));
//! assert_eq!(report.layers.analysed, 2);
//!
//! // The second scan of the image reads no layer: both results come from the cache.
//! let again = cache_scan::scan(sample, &cache, &ScanOptions::default()).await?;
//! assert_eq!((again.layers.analysed, again.layers.cached), (0, 2));
//! assert_eq!(again.packages, report.packages);
//! # Ok(())
//! # }
//! ```
//!
//! [`scan()`] reads an image archive — a docker-save tar (classic, or Docker ≥ 25's
//! OCI-style save; plain, gzip- or zstd-compressed as a whole), an OCI image layout as a
//! tar or a directory — and returns a [`Report`]: the image's OS, installed OS packages
//! and language applications, each package with its PURL, its licenses and the layer
//! that provided it. Every layer's analysis is cached in any
//! [`cache_core::Cache`] as a [`cache_core::BlobInfo`] under a key from
//! [`cache_core::calc_key`] (the layer's diffID, every analyser's name and version, and
//! the options that change results; see `docs/keys.md`), so a layer is analysed once and
//! reused by every image that shares it. `docs/scanning.md` describes the scan flow,
//! the inputs, the analysers and the report format.
//!
//! The central design choice is that **a warm scan reads no layer**: a tar archive is
//! indexed by walking its headers and seeking past entry data, the manifest and config
//! are read, and one `missing_blobs` call decides what to analyse. Layers that must be
//! analysed are streamed in a single pass that hashes the stored bytes (OCI blob digest),
//! decompresses them (gzip or zstd, detected by magic bytes), hashes the result (diffID)
//! and feeds the analysers — nothing is extracted to disk and no layer is held in
//! memory. A layer whose content does not match its digests is an error and nothing is
//! cached for it, so a shared cache never holds a result under a diffID the content does
//! not have. [`ScanOptions::verify_layers`] extends the check to cached layers.
//!
//! Analysers: OS release files (`os-release`, `alpine-release`, `debian_version`), the
//! Alpine repository (`etc/apk/repositories`), dpkg (`var/lib/dpkg/status`,
//! `status.d/*`), apk (`lib/apk/db/installed`), Debian copyright files, and language
//! packages — Python metadata, `package.json`, Go and Rust ELF executables, Java
//! archives, gemspecs, Composer, conda and .NET files — taken by the reference scanner's
//! rules, each file within a cap, a bad one skipped with a warning; their versions are
//! [`ANALYSERS`] (`docs/analysers.md`). [`apply()`] combines the layers' results as the
//! image shows them (a server answering scans calls it too), [`purl()`] names each
//! package, and [`sbom`] turns a report into CycloneDX or SPDX.
//!
//! [`upload()`] is the other half of a scan against a server that builds the report
//! itself (the reference client's flow): only the missing layers are analysed and
//! stored, nothing is read back; [`upload_tree()`] and [`sbom::upload_sbom()`] do the
//! same for a directory and an SBOM. [`BestEffort`] wraps a cache so that it never stops a
//! scan: after an outage the scan goes on without it.
//!
//! This crate does not print (progress goes to a [`Progress`] hook, logs to `tracing`),
//! parse command lines, pick a cache backend or find vulnerabilities.

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod analyser;
mod apply;
mod archive;
mod best_effort;
mod codec;
mod error;
mod flight;
#[doc(hidden)]
pub mod fuzzing;
mod glob;
mod image;
mod layer;
mod limits;
mod options;
mod plan;
mod purl;
mod report;
mod run;
pub mod sbom;
mod scan;
mod tarfmt;
mod tree;
mod upload;
mod walk;

pub use analyser::{ANALYSERS, FS_ANALYSERS, lockfile::MAX_LOCKFILE};
pub use apply::{
    AGGREGATED_TYPES, Applied, AppliedEntry, AppliedSecret, EntryKind, LayerView, apply,
};
pub use best_effort::{BestEffort, OnOutage};
pub use error::{Result, ScanError};
pub use glob::Glob;
pub use limits::{Limit, ScanCounters};
pub use options::{
    DEFAULT_MAX_DB_SIZE, DEFAULT_MAX_LAYER_SIZE, DEFAULT_MAX_LAYERS,
    DEFAULT_MAX_PACKAGES_PER_LAYER, LayerWork, Progress, ScanOptions,
};
pub use purl::purl;
pub use report::{
    ArtifactType, LayerCounts, LayerSource, REPORT_RENDERING, REPORT_SCHEMA_VERSION, Report,
    ReportApplication, ReportPackage,
};
pub use scan::{ImageKeys, cache_key, image_keys_of, scan};
pub use tree::{ListedTree, TreeKind, TreeOptions, list_tree, scan_tree, tree_key_of, upload_tree};
pub use upload::{TargetSource, Uploaded, UploadedTarget, upload};
