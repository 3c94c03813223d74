//! One module per subcommand, and the report writer the scanning commands share.

pub mod cache;
pub mod clean;
pub mod image;
pub mod report;
pub mod sbom;
pub mod tree;
