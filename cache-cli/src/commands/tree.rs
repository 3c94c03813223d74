//! `scancache fs` and `scancache rootfs`: scan a directory through the cache and print
//! the report; or, with `--server`, upload its analysis and have the server build the
//! report.

use anyhow::{Context, Result};
use cache_core::Cache;
use cache_scan::{TreeKind, TreeOptions};

use super::on_server;
use crate::{
    backend::{self, Settings},
    cli::{GlobalOpts, TreeArgs},
    server_report::Subject,
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

/// Runs `fs` or `rootfs` against an open backend.
pub async fn run(args: &TreeArgs, kind: TreeKind, cache: &dyn Cache) -> Result<()> {
    let report = cache_scan::scan_tree(&args.path, cache, &options(args, kind))
        .await
        .with_context(|| format!("cannot scan {}", args.path.display()))?;
    super::report::write(&report, args.format, args.output.as_deref())
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
    let request = on_server::Request {
        target: &target,
        artifact_id: uploaded.key.to_string(),
        blob_ids: vec![uploaded.key.to_string()],
        include_dev_deps: args.include_dev_deps,
    };
    on_server::scan_and_write(
        &client,
        &request,
        Subject::Target(&uploaded),
        &args.remote,
        args.format,
        args.output.as_deref(),
    )
    .await
}
