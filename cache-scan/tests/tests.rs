//! Integration tests of cache-scan: end-to-end scans of archives built in code, bad
//! input, and the committed samples. One binary (see `autotests = false`).

#![allow(clippy::unwrap_used, missing_docs)]

mod bad_input;
mod flow;
mod formats;
mod limits;
mod samples;
mod util;
