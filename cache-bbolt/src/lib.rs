//! A read-only reader of bbolt database files: [`Db::open`] checks the file's meta pages,
//! [`Db::walk`] visits every bucket and every key/value pair in it. It knows nothing about
//! what the keys and values mean, and nothing about scancache.
//!
//! bbolt is the B+tree key/value store many Go programs keep their data in (the reference
//! scanner keeps its fs scan cache in one, `fanal/fanal.db`). This crate reads such a file
//! without Go and without trusting it:
//!
//! - **Read-only.** The file is opened for reading and locked shared, as bbolt's own
//!   read-only handles lock it, so a program writing it at the same time is detected
//!   ([`Error::Locked`]) instead of read half-written. Nothing is ever written.
//! - **Nothing trusted.** The page size comes from a valid meta page; both meta pages are
//!   checked (magic number, version, FNV-1a checksum) and the valid one with the higher
//!   transaction ID is used. Every page reference is checked against the pages in use and
//!   the file's size, every page's label and kind against what refers to it, every count,
//!   position and length against the page holding it, keys are checked to be in order,
//!   a page reached twice (a cycle) and a tree deeper than [`MAX_DEPTH`] are errors. A
//!   damaged file is an [`Error`] naming the file and the problem — never a panic, a read
//!   outside the file, or an endless walk. There is no `unsafe` and no memory map: pages
//!   are read with positioned reads, one at a time, so memory stays at a few pages
//!   whatever the file's size.
//! - **Complete.** Branch and leaf pages, values spanning overflow pages, and nested
//!   buckets both in pages of their own and inline (a small bucket stored inside its
//!   parent's leaf, as bbolt writes buckets under a quarter page).
//!
//! The format, byte by byte, is described in the `layout` module, which owns it.
//!
//! ```
//! use std::ops::ControlFlow;
//!
//! use cache_bbolt::{Db, Item};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("empty.db");
//! # std::fs::write(&path, cache_testkit::trivy::empty_bbolt(4096))?;
//! let db = Db::open(&path)?;
//! assert_eq!(db.page_size(), 4096);
//! let (mut buckets, mut bytes) = (Vec::new(), 0);
//! let stats = db.walk(&mut |entry| {
//!     match entry.item {
//!         Item::Value(value) => bytes += value.len(),
//!         Item::Bucket(_) => buckets.push(entry.key.to_vec()),
//!     }
//!     ControlFlow::Continue(())
//! })?;
//! // An empty database: its root bucket is one empty leaf page.
//! assert!(buckets.is_empty());
//! assert_eq!((bytes, stats.values, stats.leaf_pages), (0, 0, 1));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod db;
mod error;
mod layout;

pub use db::{BucketKind, Db, Entry, Item, MAX_DEPTH, WalkStats};
pub use error::{Error, Result};
