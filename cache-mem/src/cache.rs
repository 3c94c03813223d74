//! [`MemCache`]: the `Cache` trait on a moka cache of stored values.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, BlobId, Cache, CacheOptions, Digest, EntryKey, EntryKind, EntryMeta, Missing,
    RawEntry, Result, Visitor, Walk, Walked, codec, kind_matches, rules,
};
use moka::{Expiry, future::Cache as Moka, policy::EvictionPolicy};

/// One stored value and its expiry.
#[derive(Debug)]
struct Stored {
    value: Vec<u8>,
    /// `codec::is_current` of the value, judged once when it was stored, so that
    /// `missing_blobs` does not re-parse every document.
    current: bool,
    expires_at: Option<SystemTime>,
    /// When it was last read or written, in unix milliseconds (for `gc --unused-for`).
    last_access_ms: AtomicU64,
}

impl Stored {
    fn new(kind: EntryKind, value: Vec<u8>, expires_at: Option<SystemTime>) -> Self {
        Stored {
            current: codec::is_current(kind, &value),
            value,
            expires_at,
            last_access_ms: AtomicU64::new(unix_ms(SystemTime::now())),
        }
    }

    fn live(&self, now: SystemTime) -> bool {
        !codec::is_expired(self.expires_at, now)
    }

    /// Records a read at `now`.
    fn touch(&self, now: SystemTime) {
        self.last_access_ms
            .fetch_max(unix_ms(now), Ordering::Relaxed);
    }

    fn last_access(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.last_access_ms.load(Ordering::Relaxed))
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    options: CacheOptions,
}

impl std::fmt::Debug for MemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemCache")
            .field("entries", &self.entries.entry_count())
            .field("ttl", &self.options.ttl)
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
                    u32::try_from(rules::charged_size(v.value.len() as u64)).unwrap_or(u32::MAX)
                })
                .max_capacity(max);
        }
        MemCache {
            entries: builder.build(),
            options: options.clone(),
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

    fn options(&self) -> &CacheOptions {
        &self.options
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

    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut values = Vec::with_capacity(ids.len());
        for id in ids {
            let key = EntryKey {
                kind,
                id: (*id).clone(),
            };
            values.push(self.get_live(&key).await.map(|v| {
                v.touch(SystemTime::now());
                v.value.clone()
            }));
        }
        Ok(values)
    }

    async fn write(&self, entries: &[RawEntry]) -> Result<()> {
        for e in entries {
            let stored = Stored::new(e.key.kind, e.value.clone(), e.expires_at);
            self.entries.insert(e.key.clone(), Arc::new(stored)).await;
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

    async fn walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        for (key, v) in self.snapshot() {
            if !kind_matches(kind, key.kind) {
                continue;
            }
            let walked = Walked {
                meta: EntryMeta {
                    key,
                    size: v.value.len() as u64,
                    expires_at: v.expires_at,
                    last_access: Some(v.last_access()),
                },
                value: (walk == Walk::Values).then(|| v.value.clone()),
            };
            if visit(walked).is_break() {
                break;
            }
        }
        Ok(())
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

    /// Removes every candidate (a rewrite racing with gc is not detected: it costs one
    /// re-analysis, never wrong data), except an unused one read since it was judged;
    /// then lets moka apply the removals.
    async fn remove_unchanged(&self, candidates: &[rules::GcCandidate]) -> Result<Vec<bool>> {
        let mut removed = Vec::with_capacity(candidates.len());
        for c in candidates {
            let read_since = c.verdict == rules::Verdict::Unused
                && self
                    .entries
                    .get(c.key())
                    .await
                    .is_some_and(|v| Some(v.last_access()) > c.meta.last_access);
            if !read_since {
                self.entries.invalidate(c.key()).await;
            }
            removed.push(!read_since);
        }
        self.entries.run_pending_tasks().await;
        Ok(removed)
    }
}
