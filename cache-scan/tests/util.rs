//! Helpers shared by the integration tests.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use cache_core::{Cache, CacheOptions};
use cache_mem::MemCache;
use cache_scan::{LayerWork, Progress, Report, ScanError, ScanOptions};
use tempfile::TempDir;

/// A fresh in-memory cache.
pub fn mem() -> MemCache {
    MemCache::new(&CacheOptions::default())
}

/// A temp dir holding `bytes` as `name`.
pub fn write(name: &str, bytes: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// Scans `bytes` written to a temp file.
pub async fn scan_bytes(
    bytes: &[u8],
    cache: &dyn Cache,
    options: &ScanOptions,
) -> Result<Report, ScanError> {
    let (_dir, path) = write("image.tar", bytes);
    cache_scan::scan(&path, cache, options).await
}

/// Scans `path`, expecting success.
pub async fn scan_ok(path: &Path, cache: &dyn Cache, options: &ScanOptions) -> Report {
    match cache_scan::scan(path, cache, options).await {
        Ok(r) => r,
        Err(e) => panic!("scan of {} failed: {e}", path.display()),
    }
}

/// Number of artifact and blob entries in the cache.
pub async fn entries(cache: &dyn Cache) -> (u64, u64) {
    let stats = cache.stats().await.unwrap();
    (stats.artifacts, stats.blobs)
}

/// `name version <- layer index` for each package, for compact comparisons.
pub fn packages(report: &Report) -> Vec<String> {
    report
        .packages
        .iter()
        .map(|p| {
            let layer = report
                .diff_ids
                .iter()
                .position(|d| *d == p.layer_diff_id)
                .map_or("?".to_string(), |i| i.to_string());
            format!("{}@{}<-{layer}", p.package.name, p.full_version())
        })
        .collect()
}

/// A report without its layer counts, for comparing cold and warm scans.
pub fn without_counts(report: &Report) -> Report {
    let mut r = report.clone();
    r.layers = Default::default();
    r.layer_sources.clear();
    r
}

/// A progress hook that counts what it is told.
#[derive(Default)]
pub struct Counting {
    pub started: AtomicUsize,
    pub layers: AtomicUsize,
    pub bytes: AtomicU64,
    pub declared_bytes: AtomicU64,
    pub finished: AtomicUsize,
    pub works: Mutex<Vec<LayerWork>>,
}

impl Progress for Counting {
    fn start(&self, layers: usize, bytes: u64) {
        self.started.store(layers, Ordering::SeqCst);
        self.declared_bytes.store(bytes, Ordering::SeqCst);
    }
    fn layer_finished(&self, _diff_id: &str, work: LayerWork) {
        self.layers.fetch_add(1, Ordering::SeqCst);
        self.works.lock().unwrap().push(work);
    }
    fn bytes_read(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }
    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// Options with a counting progress hook.
pub fn with_progress(options: ScanOptions) -> (ScanOptions, Arc<Counting>) {
    let counting = Arc::new(Counting::default());
    let options = ScanOptions {
        progress: Some(counting.clone()),
        ..options
    };
    (options, counting)
}
