//! The shared conformance suite against the LMDB backend, one fresh temp dir per cache.

use std::sync::Arc;

use async_trait::async_trait;
use cache_core::{Cache, CacheOptions, testsuite::Factory};
use cache_fs::FsCache;

/// Makes caches in fresh temp dirs; each cache owns its dir (see [`WithDir`]).
struct Fs;

#[async_trait]
impl Factory for Fs {
    async fn create(&self, options: CacheOptions) -> Arc<dyn Cache> {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = FsCache::open(dir.path(), &options).expect("open cache");
        Arc::new(WithDir { cache, _dir: dir })
    }
}

/// A cache that owns its temp dir, so the dir is removed only after the cache is dropped.
#[derive(Debug)]
struct WithDir {
    cache: FsCache,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Cache for WithDir {
    fn backend_name(&self) -> &'static str {
        self.cache.backend_name()
    }
    fn location(&self) -> String {
        self.cache.location()
    }
    async fn missing_blobs(
        &self,
        artifact: &cache_core::ArtifactId,
        blobs: &[cache_core::BlobId],
    ) -> cache_core::Result<cache_core::Missing> {
        self.cache.missing_blobs(artifact, blobs).await
    }
    async fn put_artifact(
        &self,
        id: &cache_core::ArtifactId,
        info: &cache_core::ArtifactInfo,
    ) -> cache_core::Result<()> {
        self.cache.put_artifact(id, info).await
    }
    async fn put_blob(
        &self,
        id: &cache_core::BlobId,
        info: &cache_core::BlobInfo,
    ) -> cache_core::Result<()> {
        self.cache.put_blob(id, info).await
    }
    async fn get_artifact(
        &self,
        id: &cache_core::ArtifactId,
    ) -> cache_core::Result<Option<cache_core::ArtifactInfo>> {
        self.cache.get_artifact(id).await
    }
    async fn get_blob(
        &self,
        id: &cache_core::BlobId,
    ) -> cache_core::Result<Option<cache_core::BlobInfo>> {
        self.cache.get_blob(id).await
    }
    async fn get_blobs(
        &self,
        ids: &[cache_core::BlobId],
    ) -> cache_core::Result<Vec<Option<cache_core::BlobInfo>>> {
        self.cache.get_blobs(ids).await
    }
    async fn delete_blobs(&self, ids: &[cache_core::BlobId]) -> cache_core::Result<()> {
        self.cache.delete_blobs(ids).await
    }
    async fn delete(&self, keys: &[cache_core::EntryKey]) -> cache_core::Result<u64> {
        self.cache.delete(keys).await
    }
    async fn clear(&self) -> cache_core::Result<()> {
        self.cache.clear().await
    }
    async fn close(&self) -> cache_core::Result<()> {
        self.cache.close().await
    }
    async fn list(
        &self,
        kind: Option<cache_core::EntryKind>,
        visit: cache_core::Visitor<'_, cache_core::EntryMeta>,
    ) -> cache_core::Result<()> {
        self.cache.list(kind, visit).await
    }
    async fn stats(&self) -> cache_core::Result<cache_core::Stats> {
        self.cache.stats().await
    }
    async fn gc(&self) -> cache_core::Result<cache_core::GcReport> {
        self.cache.gc().await
    }
    async fn export(
        &self,
        kind: Option<cache_core::EntryKind>,
        visit: cache_core::Visitor<'_, cache_core::RawEntry>,
    ) -> cache_core::Result<()> {
        self.cache.export(kind, visit).await
    }
    async fn import(&self, entries: &[cache_core::RawEntry]) -> cache_core::Result<()> {
        self.cache.import(entries).await
    }
}

cache_core::conformance_tests!(Fs);
