//! `scancache fs` and `scancache rootfs`: scan a directory through the cache and print
//! the report (a stored one when the tree is unchanged); or, with `--server`, upload its analysis and have the server build the
//! report.

use anyhow::{Context, Result};
use cache_core::{BlobId, Cache, Digest, report};
use cache_scan::{LayerCounts, TreeKind, TreeOptions};
use clap::ValueEnum;

use super::on_server;
use crate::{
    backend::{self, Settings},
    cli::{GlobalOpts, ReportFormat, TreeArgs},
};

fn options(args: &TreeArgs, kind: TreeKind) -> TreeOptions {
    TreeOptions {
        skip_dirs: args.skip_dirs.clone(),
        skip_files: args.skip_files.clone(),
        include_dev_deps: args.include_dev_deps,
        max_db_size: args.max_db_size,
        ..TreeOptions::new(kind)
    }
}

/// Runs `fs` or `rootfs` against an open backend, through the report cache: the tree's
/// key from its metadata, then the stored report of that key and these output options;
/// on a hit its bytes are written as they are (no stored result decoded, no report
/// built), on a miss the scan runs as always and its report is stored for next time
/// (docs/targets.md, "Stored reports").
pub async fn run(args: &TreeArgs, kind: TreeKind, cache: &dyn Cache) -> Result<()> {
    let started = std::time::Instant::now();
    let scanning = || format!("cannot scan {}", args.path.display());
    let tree = cache_scan::list_tree(&args.path, &options(args, kind))
        .await
        .with_context(scanning)?;
    let report_id = report_key(tree.key(), args, kind)?;
    if let Some(id) = &report_id {
        match cache.get_report(id).await {
            Ok(Some(bytes)) => {
                tracing::debug!(report = %id, blob = %tree.key(), "stored report found");
                super::report::write_bytes(&bytes, args.output.as_deref())?;
                // The summary of a scan whose one layer came from the cache.
                tracing::info!(
                    path = %args.path.display(),
                    target = kind.as_str(),
                    analysed = 0,
                    cached = 1,
                    stored_report = true,
                    bytes = bytes.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "scanned directory"
                );
                return Ok(());
            }
            Ok(None) => tracing::debug!(report = %id, "no stored report"),
            Err(e) => tracing::warn!("ignoring the stored report {id}: {e}"),
        }
    }
    let mut report = tree.scan(cache).await.with_context(scanning)?;
    let bytes = super::report::render(&report, args.format)?;
    super::report::write_bytes(&bytes, args.output.as_deref())?;
    // A memory cache ends with this process, so no later scan could read the report.
    let Some(id) = report_id.filter(|_| cache.backend_name() != "memory") else {
        return Ok(());
    };
    // What a rescan that finds the result prints: the same bytes, except that a table
    // counts the one layer as cached rather than analysed.
    let stored = if args.format == ReportFormat::Table && report.layers.analysed > 0 {
        report.layers = LayerCounts {
            total: 1,
            cached: 1,
            ..LayerCounts::default()
        };
        super::report::render(&report, args.format)?
    } else {
        bytes
    };
    store_report(cache, &id, &stored).await;
    Ok(())
}

/// Stores a rendered report; the report is already written, so a failure is a warning
/// (the next scan rebuilds it) and a report over the document size cap is not stored.
async fn store_report(cache: &dyn Cache, id: &Digest, bytes: &[u8]) {
    match cache.put_report(id, bytes).await {
        Ok(()) => tracing::debug!(report = %id, bytes = bytes.len(), "report stored"),
        Err(e) if e.is_document_too_large() => {
            tracing::debug!(report = %id, "report not stored: {e}");
        }
        Err(e) => tracing::warn!("cannot store the report {id}: {e}"),
    }
}

/// The key of the stored report of a directory scan: the tree's blob key and every
/// option that changes the bytes written (docs/keys.md, "Keys of stored reports");
/// `None` for an output that differs on every run (an SBOM without `SOURCE_DATE_EPOCH`,
/// whose time and serial number are new each time).
fn report_key(tree: &BlobId, args: &TreeArgs, kind: TreeKind) -> Result<Option<Digest>> {
    let epoch = match args.format {
        ReportFormat::Table | ReportFormat::Json => String::new(),
        ReportFormat::Cyclonedx | ReportFormat::SpdxJson => {
            match super::report::source_date_epoch() {
                Some(e) => e,
                None => return Ok(None),
            }
        }
    };
    let format = args
        .format
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let name = args.path.display().to_string();
    let skip_dirs = args.skip_dirs.join("\0");
    let skip_files = args.skip_files.join("\0");
    let max_db_size = args.max_db_size.to_string();
    let rendering = cache_scan::REPORT_RENDERING.to_string();
    let options = [
        ("command", kind.as_str()),
        ("artifact-name", name.as_str()),
        ("format", format.as_str()),
        ("include-dev-deps", bool_str(args.include_dev_deps)),
        ("skip-dirs", skip_dirs.as_str()),
        ("skip-files", skip_files.as_str()),
        ("max-db-size", max_db_size.as_str()),
        ("source-date-epoch", epoch.as_str()),
        ("scancache-version", env!("CARGO_PKG_VERSION")),
        ("report-rendering", rendering.as_str()),
    ];
    Ok(Some(report::report_key(tree.digest(), options)?))
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Runs `fs --server URL` or `rootfs --server URL`, the reference client's flow: the
/// tree's key from its metadata, `MissingBlobs`, and only when the server lacks the
/// result, the result — from the local cache the backend options select, else analysed
/// here (and stored there) — uploaded with `PutBlob`; then `Scan`, whose answer is
/// printed. Nothing is written on this side before the answer is complete.
pub async fn run_on_server(
    args: &TreeArgs,
    kind: TreeKind,
    settings: &Settings,
    g: &GlobalOpts,
) -> Result<()> {
    if let Some(e) = on_server::sbom_with_server(args.format) {
        return Err(e);
    }
    let url = args.remote.server.as_deref().unwrap_or_default();
    let client = on_server::client(url, g)?;
    let upload_cache = on_server::upload_cache(&client, g)?;
    let local = backend::open(settings, g).await?;
    let target = args.path.display().to_string();
    let uploaded = cache_scan::upload_tree(
        &args.path,
        &upload_cache,
        local.as_ref(),
        &options(args, kind),
    )
    .await;
    let closed = local.close().await;
    let uploaded =
        uploaded.with_context(|| format!("cannot scan {target} through {}", client.location()))?;
    closed?;
    on_server::scan_uploaded_and_write(
        &client,
        &target,
        &uploaded,
        args.include_dev_deps,
        &args.remote,
        args.format,
        args.output.as_deref(),
    )
    .await
}
