//! `scancache fs` and `scancache rootfs`: scan a directory through the cache and print
//! the report.

use anyhow::{Context, Result};
use cache_core::Cache;
use cache_scan::{TreeKind, TreeOptions};

use crate::cli::TreeArgs;

/// Runs `fs` or `rootfs` against an open backend.
pub async fn run(args: &TreeArgs, kind: TreeKind, cache: &dyn Cache) -> Result<()> {
    let options = TreeOptions {
        skip_dirs: args.skip_dirs.clone(),
        skip_files: args.skip_files.clone(),
        include_dev_deps: args.include_dev_deps,
        max_db_size: args.max_db_size,
        ..TreeOptions::new(kind)
    };
    let report = cache_scan::scan_tree(&args.path, cache, &options)
        .await
        .with_context(|| format!("cannot scan {}", args.path.display()))?;
    super::report::write(&report, args.format, args.output.as_deref())
}
