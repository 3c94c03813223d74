//! The Redis scan cache of scancache: keys compatible with the reference scanner
//! (`fanal::blob::<id>`), one round trip per `missing_blobs`, TLS and mutual TLS.
//!
//! Not implemented yet: this crate is filled by the cache-redis issue. It exposes nothing
//! until then, so nothing can mistake it for a working backend.

#![deny(missing_docs)]
