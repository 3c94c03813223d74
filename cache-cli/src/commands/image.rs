//! `scancache image`: scans an image archive through the cache and prints the report.

use std::{
    io::{self, IsTerminal, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result};
use cache_core::Cache;
use cache_scan::{LayerWork, Progress, ScanOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{ImageArgs, ReportFormat};

/// Runs `image` against an open backend.
pub async fn run(args: &ImageArgs, cache: &dyn Cache, quiet: bool) -> Result<()> {
    let bar = (!quiet && io::stderr().is_terminal()).then(|| Arc::new(Bar::new()));
    let options = ScanOptions {
        image: args.image.clone(),
        verify_layers: args.verify_layers,
        max_db_size: cache_core::parse_size(&args.max_db_size)?,
        progress: bar.clone().map(|b| b as Arc<dyn Progress>),
        ..ScanOptions::default()
    };
    let report = cache_scan::scan(&args.input, cache, &options).await;
    if let Some(bar) = &bar {
        bar.0.finish_and_clear();
    }
    let report = report.with_context(|| format!("cannot scan {}", args.input.display()))?;
    // cache-scan logs the per-image summary (layers analysed and reused) itself.
    let mut text = Vec::new();
    match args.format {
        ReportFormat::Table => text.extend_from_slice(report.to_table().as_bytes()),
        ReportFormat::Json => {
            report.write_json(&mut text)?;
            if text.last() != Some(&b'\n') {
                text.push(b'\n');
            }
        }
    }
    match &args.output {
        None => {
            let mut out = io::stdout().lock();
            out.write_all(&text)?;
            out.flush()?;
        }
        Some(path) => write_atomically(path, &text)?,
    }
    Ok(())
}

/// Writes a file through a temp file in the same directory and a rename, so readers
/// never see half a report and a failure leaves no partial file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write the report in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A progress bar over the archive bytes of the layers being read.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} layers {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        Bar(bar)
    }
}

impl Progress for Bar {
    fn start(&self, layers: usize, bytes: u64) {
        self.0.set_length(bytes);
        self.0.set_message(format!("0/{layers}"));
        self.0.set_position(0);
        self.0
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }

    fn bytes_read(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn layer_finished(&self, _diff_id: &str, _work: LayerWork) {
        let msg = self.0.message();
        if let Some((done, total)) = msg.split_once('/') {
            let done: usize = done.parse().unwrap_or(0) + 1;
            self.0.set_message(format!("{done}/{total}"));
        }
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
