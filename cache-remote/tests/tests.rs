//! The integration tests of cache-remote, as one test binary. Everything else the
//! remote backend does is tested end to end from the command line, against
//! `scancache server` processes (`cache-cli/tests/remote`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod older_server;
