//! scancache server (WIP).
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod config;
pub mod convert;
mod error;
mod layers;
mod license;
pub mod metrics;
pub mod proto;
mod scan;
mod serve;
mod service;
mod time;
pub mod twirp;

pub use config::{
    Config, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_REQUEST_SIZE, DEFAULT_PATH_PREFIX,
    DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TOKEN_HEADER, Token, normalize_prefix,
};
pub use error::{Error, Result};
pub use scan::NO_VULN_DB;
pub use serve::{Stopped, bind, load_tls, serve, shutdown_signal};
pub use service::{ServerState, metrics_router, router};
