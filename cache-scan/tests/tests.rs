//! Integration tests of cache-scan: end-to-end scans of archives built in code, bad
//! input, and the committed samples. One binary (see `autotests = false`).

#![allow(clippy::unwrap_used, missing_docs)]

mod bad_input;
mod flight;
mod flow;
mod formats;
mod lang;
mod limits;
mod samples;
mod tree;
mod util;
