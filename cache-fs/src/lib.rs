//! The file-system scan cache of scancache: LMDB (via `heed`) under `<cache-dir>/fanal/`,
//! shared safely by many processes, with TTL, a size bound and a real gc.
//!
//! Not implemented yet: this crate is filled by the cache-fs issue. It exposes nothing
//! until then, so nothing can mistake it for a working backend.

#![deny(missing_docs)]
