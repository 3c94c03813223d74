//! One module per subcommand.

pub mod cache;
pub mod clean;
pub mod image;
pub mod import_trivy;
pub mod server;
