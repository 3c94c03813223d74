//! The protocol's messages, as the reference scanner's client (v0.76) speaks them:
//! `trivy.common`, `trivy.cache.v1` and `trivy.scanner.v1`, with their field names and
//! numbers, derived with `prost` (no `protoc`, no build script), each with its JSON form
//! ([`json`]); and [`scancache`], scancache's own cache service (`scancache.cache.v1`).
//!
//! Field numbers were checked against the file descriptors embedded in the v0.76
//! binary, which has fields the older published `.proto` files lack (`Package` 25–27,
//! `BlobInfo.crypto_assets`, `Result.crypto_assets`).

pub mod cache;
pub mod common;
pub mod json;
pub mod scancache;
pub mod scanner;

pub use json::{Json, JsonError};
