//! `scancache sbom`: read a CycloneDX or SPDX JSON document back into a report.

use anyhow::{Context, Result};
use cache_core::Cache;

use crate::cli::SbomArgs;

/// Runs `sbom` against an open backend.
pub async fn run(args: &SbomArgs, cache: &dyn Cache) -> Result<()> {
    let report = cache_scan::sbom::scan_sbom(&args.file, cache)
        .await
        .with_context(|| format!("cannot read the SBOM {}", args.file.display()))?;
    super::report::write(&report, args.format, args.output.as_deref())
}
