//! `scancache image`: scans an image archive through the cache and prints the report.

use std::{
    io::{self, IsTerminal},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use anyhow::{Context, Result};
use cache_core::{Cache, ClaimOptions};
use cache_scan::{LayerWork, Limit, Progress, ScanOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{ImageArgs, Lease};

/// Runs `image` against an open backend.
pub async fn run(args: &ImageArgs, cache: &dyn Cache, quiet: bool, lease: Lease) -> Result<()> {
    let bar = (!quiet && io::stderr().is_terminal()).then(|| Arc::new(Bar::new()));
    let options = ScanOptions {
        image: args.image.clone(),
        verify_layers: args.verify_layers,
        max_db_size: args.max_db_size,
        max_packages_per_layer: args.max_packages_per_layer,
        max_layers: args.max_layers,
        progress: bar.clone().map(|b| b as Arc<dyn Progress>),
        claims: lease.0.map(ClaimOptions::with_lease),
        ..ScanOptions::default()
    };
    let report = cache_scan::scan(&args.input, cache, &options).await;
    if let Some(bar) = &bar {
        bar.bar.finish_and_clear();
    }
    let report = report
        .map_err(with_raise_hint)
        .with_context(|| format!("cannot scan {}", args.input.display()))?;
    // cache-scan logs the per-image summary (layers analysed and reused) itself.
    super::report::write(&report, args.format, args.output.as_deref())
}

/// A scan error that crossed a cap, with the option that raises it.
fn with_raise_hint(e: cache_scan::ScanError) -> anyhow::Error {
    let flag = match e.limit() {
        Some(Limit::PackagesPerLayer) => "--max-packages-per-layer",
        Some(Limit::DocumentSize) => "--max-document-size",
        Some(Limit::Layers) => "--max-layers",
        _ => return e.into(),
    };
    anyhow::anyhow!("{e}; raise it with {flag}")
}

/// A progress bar over the archive bytes of the layers being read.
struct Bar {
    bar: ProgressBar,
    layers: AtomicUsize,
    done: AtomicUsize,
}

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
        Bar {
            bar,
            layers: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }
}

impl Progress for Bar {
    fn start(&self, layers: usize, bytes: u64) {
        self.layers.store(layers, Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{layers}"));
        self.bar.set_position(0);
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }

    fn bytes_read(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn layer_finished(&self, _diff_id: &str, _work: LayerWork) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let layers = self.layers.load(Ordering::Relaxed);
        self.bar.set_message(format!("{done}/{layers}"));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
