//! `scancache sbom`: read a CycloneDX or SPDX JSON document back into a report; or, with
//! `--server`, upload its reading and have the server build the report.

use anyhow::{Context, Result};
use cache_core::Cache;

use super::on_server;
use crate::cli::{GlobalOpts, SbomArgs};

/// Runs `sbom` against an open backend.
pub async fn run(args: &SbomArgs, cache: &dyn Cache) -> Result<()> {
    let report = cache_scan::sbom::scan_sbom(&args.file, cache)
        .await
        .with_context(|| format!("cannot read the SBOM {}", args.file.display()))?;
    super::report::write(&report, args.format, args.output.as_deref())
}

/// Runs `sbom --server URL`, the reference client's flow: the document read and
/// checked, `MissingBlobs` for its key, `PutBlob` of its reading when the server lacks
/// it, then `Scan`, whose answer is printed. No local cache is used (the document is
/// read whole to find its key anyway).
pub async fn run_on_server(args: &SbomArgs, g: &GlobalOpts) -> Result<()> {
    if let Some(e) = on_server::sbom_with_server(args.format) {
        return Err(e);
    }
    if g.cache_backend.is_some() {
        tracing::warn!("--cache-backend is not used with sbom --server: the server's cache is");
    }
    let url = args.remote.server.as_deref().unwrap_or_default();
    let client = on_server::client(url, g)?;
    let upload_cache = on_server::upload_cache(&client, g)?;
    let target = args.file.display().to_string();
    let uploaded = cache_scan::sbom::upload_sbom(&args.file, &upload_cache)
        .await
        .with_context(|| {
            format!(
                "cannot read the SBOM {target} through {}",
                client.location()
            )
        })?;
    on_server::scan_uploaded_and_write(
        &client,
        &target,
        &uploaded,
        false,
        &args.remote,
        args.format,
        args.output.as_deref(),
    )
    .await
}
