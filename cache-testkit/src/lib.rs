//! Test scaffolding shared by the scancache workspace; never a dependency of a production
//! crate (it is not published).
//!
//! - [`conformance`]: the conformance suite every backend runs against its real thing,
//!   through [`conformance_tests!`] and a [`Factory`] of fresh caches.
//! - [`Delegate`]: a cache that forwards to a real backend except where a test replaces a
//!   call (a cache that fails, or forgets what it stored).
//! - [`redis`]: throwaway `redis-server` processes (plain, TLS, mutual TLS, passwords,
//!   ACL users) on free loopback ports, killed on drop; Redis Clusters and Sentinel
//!   setups made of them.
//! - [`proxy`]: a TCP proxy that delays every packet, to count a client's round trips
//!   by the clock.
//! - [`trivy`]: the reference scanner's real binary — finding it, an empty vulnerability
//!   database, throwaway `trivy server` processes.
//! - [`bbolt`]: bbolt files built page by page, and helpers to damage them.
//! - [`bench`](mod@bench): the figure format of `cargo xtask bench` and timing helpers
//!   for the benchmark programs.
//! - [`tmpfs`]: small tmpfs mounts, for full disks and read-only file systems.
//!
//! ```
//! use cache_testkit::conformance::{blob_id, sample_blob};
//! assert_ne!(blob_id(1), blob_id(2));
//! assert_eq!(sample_blob(1, 3).package_infos[0].packages.len(), 3);
//! ```

#![deny(missing_docs)]
// Test code: a failed unwrap is a failed test, and a test's helpers may report on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod bbolt;
pub mod bench;
pub mod conformance;
mod delegate;
pub mod http;
pub mod proxy;
pub mod redis;
pub mod tmpfs;
pub mod trivy;

pub use conformance::Factory;
pub use delegate::Delegate;
