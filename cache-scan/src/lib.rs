//! Scans container image archives layer by layer through a scan cache.
//!
//! [`scan`] reads an image archive — a docker-save tar (classic, or Docker ≥ 25's
//! OCI-style save; plain, gzip- or zstd-compressed as a whole), an OCI image layout as a
//! tar or a directory — and returns a [`Report`]: the image's OS and installed packages,
//! each with the layer that provided it. Every layer's analysis is cached in any
//! [`cache_core::Cache`] as a [`cache_core::BlobInfo`] under a key from
//! [`cache_core::calc_key`] (the layer's diffID, every analyser's name and version, and
//! the options that change results), so a layer is analysed once and reused by every
//! image that shares it.
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
//! `status.d/*`) and apk (`lib/apk/db/installed`); their versions are [`ANALYSERS`].
//!
//! This crate does not print (progress goes to a [`Progress`] hook, logs to `tracing`),
//! parse command lines, pick a cache backend or find vulnerabilities.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cache_scan::ScanError> {
//! use cache_core::CacheOptions;
//! let cache = cache_mem::MemCache::new(&CacheOptions::default());
//! let report = cache_scan::scan(
//!     std::path::Path::new("samples/debian.tar"),
//!     &cache,
//!     &cache_scan::ScanOptions::default(),
//! )
//! .await?;
//! print!("{}", report.to_table());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod analyser;
mod apply;
mod archive;
mod codec;
mod error;
mod image;
mod layer;
mod options;
mod plan;
mod report;
mod run;
mod scan;
mod tarfmt;

pub use analyser::ANALYSERS;
pub use error::{Result, ScanError};
pub use options::{DEFAULT_MAX_DB_SIZE, DEFAULT_MAX_LAYER_SIZE, LayerWork, Progress, ScanOptions};
pub use report::{LayerCounts, REPORT_SCHEMA_VERSION, Report, ReportPackage};
pub use scan::{ImageKeys, cache_key, image_keys_of, scan};
