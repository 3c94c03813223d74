//! `scancache image`: scans an image archive through the cache and prints the report; or,
//! with `--server`, has a server build the report.

use std::{
    io::{self, IsTerminal},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use anyhow::{Context, Result};
use cache_core::{BackendSpec, Cache, ClaimOptions};
use cache_scan::{BestEffort, LayerWork, Limit, Progress, ScanOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::on_server;
use crate::{
    backend::{self, Settings},
    cli::{GlobalOpts, ImageArgs, Lease},
    server_report::Subject,
};

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

/// Runs `image` on the selected backend as an accelerator: when the cache cannot be
/// opened, or fails during the scan, with an outage (unreachable, failing, unreadable,
/// corrupt, full), the scan goes on without it — every layer analysed and verified,
/// nothing stored — after one warning naming the cause and the fix. A misconfiguration
/// (a refused password, token or certificate, an invalid setting) still fails.
pub async fn run_best_effort(args: &ImageArgs, settings: &Settings, g: &GlobalOpts) -> Result<()> {
    let spec = settings.spec.clone();
    let dir = settings.cache_dir.clone();
    let warn = move |e: &cache_core::Error| tracing::warn!("{}", outage_warning(e, &spec, &dir));
    match backend::open_cache(settings, g).await {
        Ok(cache) => {
            let best = BestEffort::new(cache.as_ref(), Box::new(warn));
            let result = run(args, &best, g.quiet, g.lease_timeout).await;
            let closed = cache.close().await;
            result?;
            match closed {
                Err(e) if !(e.is_outage() && best.is_down()) => Err(e.into()),
                _ => Ok(()),
            }
        }
        Err(e) if e.is_outage() => {
            warn(&e);
            run(args, &BestEffort::without_cache(), g.quiet, g.lease_timeout).await
        }
        Err(e) => Err(backend::opening(e, settings)),
    }
}

/// The one warning of a scan that goes on without its cache: what happened, what it
/// means, and how to mend it.
fn outage_warning(e: &cache_core::Error, spec: &BackendSpec, dir: &Path) -> String {
    let cause = e.to_string();
    let fix = match spec {
        BackendSpec::Fs if cause.contains("scancache clean") => String::new(),
        BackendSpec::Fs if matches!(e, cache_core::Error::Io { .. }) => format!(
            "; check that {} is readable and writable by this user and its disk has free \
             space, or use another --cache-dir",
            dir.display()
        ),
        BackendSpec::Fs => {
            "; if the cache is damaged, `scancache clean --scan-cache` removes it".to_owned()
        }
        BackendSpec::Redis { .. } => {
            "; check that Redis is running and reachable at that address".to_owned()
        }
        BackendSpec::Remote { .. } => {
            "; check that the scancache server is running and reachable at that address".to_owned()
        }
        BackendSpec::Memory => String::new(),
    };
    format!(
        "the scan cache is unavailable, scanning without it (every layer analysed, nothing \
         stored): {cause}{fix} (--cache-required makes this an error)"
    )
}

/// Runs `image --server URL`: the reference client's flow against `scancache server` or
/// the reference's `trivy server` — `MissingBlobs`, the missing layers analysed here and
/// uploaded (`PutBlob`), `PutArtifact`, then `Scan` — and prints the report the server
/// built. Nothing is written on this side before the server's answer is complete.
pub async fn run_on_server(args: &ImageArgs, g: &GlobalOpts) -> Result<()> {
    let url = args.remote.server.as_deref().unwrap_or_default();
    if let Some(e) = on_server::sbom_with_server(args.format) {
        return Err(e);
    }
    if g.cache_backend.is_some() {
        tracing::warn!("--cache-backend is not used with --server: the server's cache is");
    }
    let client = on_server::client(url, g)?;
    let bar = (!g.quiet && io::stderr().is_terminal()).then(|| Arc::new(Bar::new()));
    let options = ScanOptions {
        image: args.image.clone(),
        verify_layers: args.verify_layers,
        max_db_size: args.max_db_size,
        max_packages_per_layer: args.max_packages_per_layer,
        max_layers: args.max_layers,
        progress: bar.clone().map(|b| b as Arc<dyn Progress>),
        ..ScanOptions::default()
    };
    let target = args.input.display().to_string();
    let upload_cache = on_server::upload_cache(&client, g)?;
    let uploaded = cache_scan::upload(&args.input, &upload_cache, &options).await;
    if let Some(bar) = &bar {
        bar.bar.finish_and_clear();
    }
    let uploaded = uploaded
        .map_err(with_raise_hint)
        .with_context(|| format!("cannot scan {target} through {}", client.location()))?;
    let request = on_server::Request {
        target: &target,
        artifact_id: uploaded.keys.artifact.to_string(),
        blob_ids: uploaded
            .keys
            .blobs
            .iter()
            .map(ToString::to_string)
            .collect(),
        include_dev_deps: false,
    };
    on_server::scan_and_write(
        &client,
        &request,
        Subject::Image(&uploaded),
        &args.remote,
        args.format,
        args.output.as_deref(),
    )
    .await
}
