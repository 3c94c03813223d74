//! One module per subcommand, and the report writer the scanning commands share.

pub mod cache;
pub mod clean;
pub mod image;
pub mod import_trivy;
pub mod on_server;
pub mod report;
pub mod sbom;
pub mod server;
pub mod tree;
