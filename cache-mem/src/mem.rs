//! [`MemCache`]: the moka-backed implementation of the `Cache` trait.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, ArtifactInfo, BlobId, BlobInfo, Cache, CacheOptions, Document, EntryKey, EntryKind,
    EntryMeta, GcReport, Missing, RawEntry, Result, Stats, Visitor, codec, kind_matches,
};
use moka::{Expiry, future::Cache as Moka, policy::EvictionPolicy};

/// Bytes counted per entry on top of its value, so that a size bound also limits the
/// number of tiny entries.
const ENTRY_OVERHEAD: u64 = 96;

/// One stored value and its expiry.
#[derive(Debug)]
struct Stored {
    value: Vec<u8>,
    /// `codec::is_current` of the value, judged once when it was stored, so that
    /// `missing_blobs` does not re-parse every document.
    current: bool,
    expires_at: Option<SystemTime>,
}

impl Stored {
    fn new(kind: EntryKind, value: Vec<u8>, expires_at: Option<SystemTime>) -> Self {
        Stored {
            current: codec::is_current(kind, &value),
            value,
            expires_at,
        }
    }

    fn live(&self, now: SystemTime) -> bool {
        !codec::is_expired(self.expires_at, now)
    }
}

/// Gives every entry the lifetime its own expiry says.
struct PerEntryExpiry;

impl PerEntryExpiry {
    fn remaining(value: &Stored) -> Option<Duration> {
        value.expires_at.map(|at| {
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }
}

impl Expiry<EntryKey, Arc<Stored>> for PerEntryExpiry {
    fn expire_after_create(
        &self,
        _key: &EntryKey,
        value: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Self::remaining(value)
    }

    fn expire_after_update(
        &self,
        _key: &EntryKey,
        value: &Arc<Stored>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Self::remaining(value)
    }
}

/// A scan cache held in this process's memory.
///
/// Cheap to share behind an `Arc`; every method is safe to call from many tasks at once.
#[derive(Clone)]
pub struct MemCache {
    entries: Moka<EntryKey, Arc<Stored>>,
    ttl: Option<Duration>,
}

impl std::fmt::Debug for MemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemCache")
            .field("entries", &self.entries.entry_count())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl MemCache {
    /// Creates an empty cache. `options.max_size` bounds the stored bytes (values plus a
    /// small per-entry overhead); the least recently used entries are evicted beyond it.
    pub fn new(options: &CacheOptions) -> Self {
        let mut builder = Moka::builder()
            .expire_after(PerEntryExpiry)
            .eviction_policy(EvictionPolicy::lru());
        if let Some(max) = options.max_size {
            builder = builder
                .weigher(|_key: &EntryKey, v: &Arc<Stored>| {
                    u32::try_from(v.value.len() as u64 + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .max_capacity(max);
        }
        MemCache {
            entries: builder.build(),
            ttl: options.ttl,
        }
    }

    /// The weighted size moka tracks, after applying pending evictions. Only meaningful
    /// with a size bound; used by tests to check the bound holds.
    pub async fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
    }

    async fn get_live(&self, key: &EntryKey) -> Option<Arc<Stored>> {
        let v = self.entries.get(key).await?;
        v.live(SystemTime::now()).then_some(v)
    }

    async fn put(&self, key: EntryKey, value: Vec<u8>) {
        let stored = Stored::new(key.kind, value, codec::expiry_from_ttl(self.ttl));
        self.entries.insert(key, Arc::new(stored)).await;
    }

    async fn get_doc<T: Document>(&self, key: EntryKey) -> Result<Option<T>> {
        match self.get_live(&key).await {
            None => Ok(None),
            Some(v) => codec::decode(key.id.as_str(), &v.value).map(Some),
        }
    }

    async fn is_current(&self, key: &EntryKey) -> bool {
        self.get_live(key).await.is_some_and(|v| v.current)
    }

    /// Every stored entry, expired ones included while moka still holds them.
    fn snapshot(&self) -> Vec<(EntryKey, Arc<Stored>)> {
        self.entries
            .iter()
            .map(|(k, v)| ((*k).clone(), v))
            .collect()
    }
}

#[async_trait]
impl Cache for MemCache {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    fn location(&self) -> String {
        "memory".to_owned()
    }

    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        let mut missing = Missing {
            artifact: !self.is_current(&EntryKey::artifact(artifact)).await,
            blobs: Vec::new(),
        };
        for id in blobs {
            if !self.is_current(&EntryKey::blob(id)).await {
                missing.blobs.push(id.clone());
            }
        }
        Ok(missing)
    }

    async fn put_artifact(&self, id: &ArtifactId, info: &ArtifactInfo) -> Result<()> {
        self.put(EntryKey::artifact(id), codec::encode(info)).await;
        Ok(())
    }

    async fn put_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()> {
        self.put(EntryKey::blob(id), codec::encode(info)).await;
        Ok(())
    }

    async fn get_artifact(&self, id: &ArtifactId) -> Result<Option<ArtifactInfo>> {
        self.get_doc(EntryKey::artifact(id)).await
    }

    async fn get_blob(&self, id: &BlobId) -> Result<Option<BlobInfo>> {
        self.get_doc(EntryKey::blob(id)).await
    }

    async fn delete_blobs(&self, ids: &[BlobId]) -> Result<()> {
        for id in ids {
            self.entries.invalidate(&EntryKey::blob(id)).await;
        }
        Ok(())
    }

    async fn delete(&self, keys: &[EntryKey]) -> Result<u64> {
        let now = SystemTime::now();
        let mut removed = 0;
        for key in keys {
            if let Some(v) = self.entries.remove(key).await
                && v.live(now)
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn clear(&self) -> Result<()> {
        self.entries.invalidate_all();
        self.entries.run_pending_tasks().await;
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        // Nothing outlives the process; closing just returns the memory early.
        self.clear().await
    }

    async fn list(&self, kind: Option<EntryKind>, visit: Visitor<'_, EntryMeta>) -> Result<()> {
        for (key, v) in self.snapshot() {
            if kind_matches(kind, key.kind) {
                visit(EntryMeta {
                    key,
                    size: v.value.len() as u64,
                    expires_at: v.expires_at,
                })?;
            }
        }
        Ok(())
    }

    async fn stats(&self) -> Result<Stats> {
        let now = SystemTime::now();
        let mut stats = Stats::default();
        for (key, v) in self.snapshot() {
            if !v.live(now) {
                stats.expired += 1;
                continue;
            }
            match key.kind {
                EntryKind::Artifact => stats.artifacts += 1,
                EntryKind::Blob => stats.blobs += 1,
            }
            stats.bytes += v.value.len() as u64;
        }
        Ok(stats)
    }

    async fn gc(&self) -> Result<GcReport> {
        let now = SystemTime::now();
        let mut report = GcReport::default();
        for (key, v) in self.snapshot() {
            let counter = if !v.live(now) {
                &mut report.expired
            } else if !codec::is_sound(key.kind, &v.value) {
                &mut report.stale
            } else {
                continue;
            };
            *counter += 1;
            report.bytes += v.value.len() as u64;
            self.entries.invalidate(&key).await;
        }
        self.entries.run_pending_tasks().await;
        Ok(report)
    }

    async fn export(&self, kind: Option<EntryKind>, visit: Visitor<'_, RawEntry>) -> Result<()> {
        let now = SystemTime::now();
        for (key, v) in self.snapshot() {
            if kind_matches(kind, key.kind) && v.live(now) {
                visit(RawEntry {
                    key,
                    value: v.value.clone(),
                    expires_at: v.expires_at,
                })?;
            }
        }
        Ok(())
    }

    async fn import(&self, entries: &[RawEntry]) -> Result<()> {
        let now = SystemTime::now();
        for e in entries {
            if codec::is_expired(e.expires_at, now) {
                // Storing an already expired entry is the same as having none.
                self.entries.invalidate(&e.key).await;
                continue;
            }
            let stored = Stored::new(e.key.kind, e.value.clone(), e.expires_at);
            self.entries.insert(e.key.clone(), Arc::new(stored)).await;
        }
        Ok(())
    }
}
