//! The integration tests of cache-server, as one test binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod convert;
mod protocol;
