//! Scans container image archives layer by layer through a `cache_core::Cache`: reads
//! manifests and configs, computes keys, analyses only the layers the cache is missing.
//!
//! Not implemented yet: this crate is filled by the image-scan issue. It exposes nothing
//! until then, so nothing can mistake it for a working scanner.

#![deny(missing_docs)]
