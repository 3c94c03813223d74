//! The shared conformance suite against the LMDB backend, one fresh temp dir per cache.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cache_core::{Cache, CacheOptions};
use cache_fs::FsCache;
use cache_testkit::Factory;
use tempfile::TempDir;

/// Makes caches in fresh temp dirs, which it keeps until the end of the test (it lives
/// as long as the test case, longer than the caches it made).
#[derive(Default)]
struct Fs {
    dirs: Mutex<Vec<TempDir>>,
}

#[async_trait]
impl Factory for Fs {
    async fn create(&self, options: CacheOptions) -> Arc<dyn Cache> {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = FsCache::open(dir.path(), &options).expect("open cache");
        self.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir);
        Arc::new(cache)
    }
}

cache_testkit::conformance_tests!(Fs::default());
