//! [`BestEffort`]: a cache that never stops a scan. It passes every call to the real
//! cache until that cache fails with an outage ([`cache_core::Error::is_outage`]:
//! unreachable, failing, unreadable, full, corrupt); from then on it answers like an
//! empty cache that stores nothing — every layer missing, every read a miss, every put
//! dropped — so the scan goes on and analyses (and verifies) every layer itself.
//!
//! Misconfigurations and misuse (a refused password, token or certificate, an invalid
//! setting, an invalid ID, a document over the size cap) are passed on unchanged: they
//! stop the scan, as they should. A corrupt *entry* read back by a getter does not
//! disable the cache: that read counts as a miss, so its layers are analysed again and
//! their results overwrite the corrupt entry.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, ArtifactInfo, BlobId, BlobInfo, Cache, CacheOptions, Claim, Claimed, Digest,
    EntryKey, EntryKind, Error, GcOptions, GcReport, Missing, RawEntry, Result, Stats, Visitor,
    Walk, Walked, rules::GcCandidate,
};

/// What a [`BestEffort`] cache calls, once, when it stops using its cache.
pub type OnOutage = Box<dyn Fn(&Error) + Send + Sync>;

/// A cache wrapper for scans: the real cache while it works, no cache once it has
/// failed with an outage (see the module docs). `on_outage` is told the first outage,
/// once (the front end's one warning).
pub struct BestEffort<'a> {
    inner: Option<&'a dyn Cache>,
    down: AtomicBool,
    on_outage: OnOutage,
    told: Mutex<bool>,
    options: CacheOptions,
}

impl<'a> BestEffort<'a> {
    /// Uses `inner` until it fails with an outage.
    pub fn new(inner: &'a dyn Cache, on_outage: OnOutage) -> Self {
        BestEffort {
            inner: Some(inner),
            down: AtomicBool::new(false),
            on_outage,
            told: Mutex::new(false),
            options: inner.options().clone(),
        }
    }

    /// No cache at all (it could not be opened): every layer missing, nothing stored.
    pub fn without_cache() -> BestEffort<'static> {
        BestEffort {
            inner: None,
            down: AtomicBool::new(true),
            on_outage: Box::new(|_| {}),
            told: Mutex::new(true),
            options: CacheOptions::default(),
        }
    }

    /// True once the cache is no longer used.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// The cache to call, unless it is down.
    fn live(&self) -> Option<&'a dyn Cache> {
        self.inner.filter(|_| !self.is_down())
    }

    /// Takes an error of the inner cache: an outage turns the cache off (telling
    /// `on_outage` the first time) and is swallowed; anything else is returned.
    fn absorb(&self, e: Error) -> Result<()> {
        if !e.is_outage() {
            return Err(e);
        }
        self.down.store(true, Ordering::Release);
        let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
        if !*told {
            *told = true;
            (self.on_outage)(&e);
        } else {
            tracing::debug!("cache failed again after going down: {e}");
        }
        Ok(())
    }

    /// A getter's answer: the inner cache's, a miss for every ID when it fails with an
    /// outage, and misses for a read that met a corrupt entry (analysing those layers
    /// again overwrites it).
    fn got<T>(&self, outcome: Result<Vec<Option<T>>>, n: usize) -> Result<Vec<Option<T>>> {
        let misses = || (0..n).map(|_| None).collect();
        match outcome {
            Ok(v) => Ok(v),
            Err(e) if e.is_corrupt() => {
                tracing::warn!("{e}; analysing the layers read with it again, which overwrites it");
                Ok(misses())
            }
            Err(e) => self.absorb(e).map(|()| misses()),
        }
    }
}

impl std::fmt::Debug for BestEffort<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BestEffort")
            .field("inner", &self.inner)
            .field("down", &self.is_down())
            .finish()
    }
}

#[async_trait]
impl Cache for BestEffort<'_> {
    fn backend_name(&self) -> &'static str {
        self.inner.map_or("none", |c| c.backend_name())
    }

    fn location(&self) -> String {
        self.inner.map_or_else(|| "none".into(), |c| c.location())
    }

    fn groups_writes(&self) -> bool {
        self.inner.is_some_and(|c| c.groups_writes())
    }

    fn options(&self) -> &CacheOptions {
        &self.options
    }

    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        let everything = || Missing {
            artifact: true,
            blobs: blobs.to_vec(),
        };
        let Some(inner) = self.live() else {
            return Ok(everything());
        };
        match inner.missing_blobs(artifact, blobs).await {
            Ok(m) => Ok(m),
            Err(e) => self.absorb(e).map(|()| everything()),
        }
    }

    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
        let Some(inner) = self.live() else {
            return Ok(vec![None; ids.len()]);
        };
        let outcome = inner.read(kind, ids).await;
        self.got(outcome, ids.len())
    }

    async fn write(&self, entries: &[RawEntry]) -> Result<()> {
        match self.live() {
            Some(inner) => inner.write(entries).await.or_else(|e| self.absorb(e)),
            None => Ok(()),
        }
    }

    async fn delete(&self, keys: &[EntryKey]) -> Result<u64> {
        match self.live() {
            Some(inner) => match inner.delete(keys).await {
                Ok(n) => Ok(n),
                Err(e) => self.absorb(e).map(|()| 0),
            },
            None => Ok(0),
        }
    }

    async fn walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        match self.live() {
            Some(inner) => inner
                .walk(kind, walk, visit)
                .await
                .or_else(|e| self.absorb(e)),
            None => Ok(()),
        }
    }

    async fn clear(&self) -> Result<()> {
        match self.live() {
            Some(inner) => inner.clear().await.or_else(|e| self.absorb(e)),
            None => Ok(()),
        }
    }

    /// Does nothing: the wrapped cache belongs to whoever made this wrapper.
    async fn close(&self) -> Result<()> {
        Ok(())
    }

    async fn put_values(&self, entries: Vec<(EntryKey, Vec<u8>)>) -> Result<()> {
        match self.live() {
            Some(inner) => inner.put_values(entries).await.or_else(|e| self.absorb(e)),
            None => Ok(()),
        }
    }

    /// The inner cache's own `put_blobs` (one write for all of them; a remote cache's one
    /// `PutValues`); a document over the size cap is an error, not an outage.
    async fn put_blobs(&self, blobs: &[(BlobId, BlobInfo)]) -> Result<()> {
        match self.live() {
            Some(inner) => inner.put_blobs(blobs).await.or_else(|e| self.absorb(e)),
            None => Ok(()),
        }
    }

    async fn remove_unchanged(&self, candidates: &[GcCandidate]) -> Result<Vec<bool>> {
        match self.live() {
            Some(inner) => match inner.remove_unchanged(candidates).await {
                Ok(removed) => Ok(removed),
                Err(e) => self.absorb(e).map(|()| vec![false; candidates.len()]),
            },
            None => Ok(vec![false; candidates.len()]),
        }
    }

    async fn compact(&self) -> Result<()> {
        match self.live() {
            Some(inner) => inner.compact().await.or_else(|e| self.absorb(e)),
            None => Ok(()),
        }
    }

    /// The inner cache's claims (single-flight across scans); once it is down, every key
    /// is granted with a claim that holds nothing, as on a backend without claims.
    async fn claim(&self, ids: &[BlobId], lease: Duration) -> Result<Vec<Claimed>> {
        let unheld = || {
            ids.iter()
                .map(|id| Claimed::Owned(Claim::unheld(id.clone())))
                .collect()
        };
        match self.live() {
            Some(inner) => match inner.claim(ids, lease).await {
                Ok(claimed) => Ok(claimed),
                Err(e) => self.absorb(e).map(|()| unheld()),
            },
            None => Ok(unheld()),
        }
    }

    async fn renew(&self, claims: &[Claim], lease: Duration) -> Result<()> {
        match self.live() {
            Some(inner) => inner.renew(claims, lease).await.or_else(|e| self.absorb(e)),
            None => Ok(()),
        }
    }

    async fn release(&self, claims: &[Claim]) -> Result<()> {
        match self.live() {
            Some(inner) => inner.release(claims).await.or_else(|e| self.absorb(e)),
            None => Ok(()),
        }
    }

    /// The inner cache's wait; once it is down nobody's result can arrive through it, so
    /// the wait ends at once and the waiter analyses the layer itself.
    async fn await_release(&self, id: &BlobId, timeout: Duration) -> Result<bool> {
        match self.live() {
            Some(inner) => match inner.await_release(id, timeout).await {
                Ok(ended) => Ok(ended),
                Err(e) => self.absorb(e).map(|()| true),
            },
            None => Ok(true),
        }
    }

    async fn disk_bytes(&self) -> Result<Option<u64>> {
        match self.live() {
            Some(inner) => match inner.disk_bytes().await {
                Ok(n) => Ok(n),
                Err(e) => self.absorb(e).map(|()| None),
            },
            None => Ok(None),
        }
    }

    /// The inner cache's own `stats` (a remote cache's are the server's); an empty cache's
    /// once it is down.
    async fn stats(&self) -> Result<Stats> {
        match self.live() {
            Some(inner) => match inner.stats().await {
                Ok(stats) => Ok(stats),
                Err(e) => self.absorb(e).map(|()| Stats::default()),
            },
            None => Ok(Stats::default()),
        }
    }

    /// The inner cache's own `gc_with` (a remote cache's runs on the server); nothing
    /// removed once it is down.
    async fn gc_with(&self, options: &GcOptions) -> Result<GcReport> {
        match self.live() {
            Some(inner) => match inner.gc_with(options).await {
                Ok(report) => Ok(report),
                Err(e) => self.absorb(e).map(|()| GcReport::default()),
            },
            None => Ok(GcReport::default()),
        }
    }

    async fn get_artifact(&self, id: &ArtifactId) -> Result<Option<ArtifactInfo>> {
        let Some(inner) = self.live() else {
            return Ok(None);
        };
        let outcome = inner.get_artifact(id).await.map(|a| vec![a]);
        Ok(self.got(outcome, 1)?.pop().flatten())
    }

    async fn get_blob(&self, id: &BlobId) -> Result<Option<BlobInfo>> {
        let Some(inner) = self.live() else {
            return Ok(None);
        };
        let outcome = inner.get_blob(id).await.map(|b| vec![b]);
        Ok(self.got(outcome, 1)?.pop().flatten())
    }

    async fn get_blobs(&self, ids: &[BlobId]) -> Result<Vec<Option<BlobInfo>>> {
        let Some(inner) = self.live() else {
            return Ok(vec![None; ids.len()]);
        };
        let outcome = inner.get_blobs(ids).await;
        self.got(outcome, ids.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, atomic::AtomicUsize};

    use cache_core::Digest;

    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId::from(Digest::from_sha256([n; 32]))
    }

    fn artifact() -> ArtifactId {
        ArtifactId::from(Digest::from_sha256([9; 32]))
    }

    /// A cache whose every call fails with `error`.
    #[derive(Debug)]
    struct Failing(fn() -> Error, CacheOptions);

    #[async_trait]
    impl Cache for Failing {
        fn backend_name(&self) -> &'static str {
            "failing"
        }
        fn location(&self) -> String {
            "nowhere".into()
        }
        fn options(&self) -> &CacheOptions {
            &self.1
        }
        async fn missing_blobs(&self, _: &ArtifactId, _: &[BlobId]) -> Result<Missing> {
            Err((self.0)())
        }
        async fn read(&self, _: EntryKind, _: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
            Err((self.0)())
        }
        async fn write(&self, _: &[RawEntry]) -> Result<()> {
            Err((self.0)())
        }
        async fn delete(&self, _: &[EntryKey]) -> Result<u64> {
            Err((self.0)())
        }
        async fn walk(&self, _: Option<EntryKind>, _: Walk, _: Visitor<'_, Walked>) -> Result<()> {
            Err((self.0)())
        }
        async fn clear(&self) -> Result<()> {
            Err((self.0)())
        }
        async fn close(&self) -> Result<()> {
            Ok(())
        }
    }

    fn unavailable() -> Error {
        Error::Unavailable {
            backend: "redis://h:1".into(),
            reason: "connection refused".into(),
        }
    }

    fn denied() -> Error {
        Error::Denied {
            backend: "redis://h:1".into(),
            reason: "wrong password".into(),
        }
    }

    #[tokio::test]
    async fn an_outage_turns_the_cache_off_and_is_told_once() {
        let inner = Failing(unavailable, CacheOptions::default());
        let told = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&told);
        let c = BestEffort::new(
            &inner,
            Box::new(move |e| {
                assert!(e.is_unavailable());
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        );
        let ids = [id(1), id(2)];
        let m = c.missing_blobs(&artifact(), &ids).await.unwrap();
        assert!(m.artifact);
        assert_eq!(m.blobs, ids);
        assert!(c.is_down());
        c.put_blob(&ids[0], &BlobInfo::default()).await.unwrap();
        assert_eq!(c.get_blobs(&ids).await.unwrap(), vec![None, None]);
        assert_eq!(told.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn misconfigurations_are_not_swallowed() {
        let inner = Failing(denied, CacheOptions::default());
        let c = BestEffort::new(&inner, Box::new(|e| panic!("not an outage: {e}")));
        let err = c.missing_blobs(&artifact(), &[id(1)]).await.unwrap_err();
        assert!(err.is_denied(), "{err}");
        assert!(!c.is_down());
    }

    #[tokio::test]
    async fn a_corrupt_entry_is_a_miss_and_the_cache_stays_on() {
        let mem = cache_mem::MemCache::new(&CacheOptions::default());
        mem.import(&[RawEntry {
            key: EntryKey::blob(&id(1)),
            value: b"{broken".to_vec(),
            expires_at: None,
        }])
        .await
        .unwrap();
        let c = BestEffort::new(&mem, Box::new(|e| panic!("not an outage: {e}")));
        assert_eq!(
            c.get_blobs(&[id(1), id(2)]).await.unwrap(),
            vec![None, None]
        );
        assert!(!c.is_down());
        // The next put overwrites the corrupt entry.
        c.put_blob(&id(1), &BlobInfo::default()).await.unwrap();
        assert!(mem.get_blob(&id(1)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn without_a_cache_everything_is_missing() {
        let c = BestEffort::without_cache();
        let m = c.missing_blobs(&artifact(), &[id(1)]).await.unwrap();
        assert_eq!(m.blobs, vec![id(1)]);
        c.put_blob(&id(1), &BlobInfo::default()).await.unwrap();
        assert_eq!(c.get_blob(&id(1)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn batches_stats_and_gc_reach_the_working_cache() {
        let blob = BlobInfo {
            schema_version: BlobInfo::SCHEMA_VERSION,
            ..BlobInfo::default()
        };
        let cap = cache_core::codec::encode(&blob).len() as u64;
        let mem = cache_mem::MemCache::new(&CacheOptions {
            max_document_size: Some(cap),
            ..CacheOptions::default()
        });
        let c = BestEffort::new(&mem, Box::new(|e| panic!("no outage expected: {e}")));
        c.put_blobs(&[(id(1), blob.clone()), (id(2), blob.clone())])
            .await
            .unwrap();
        assert_eq!(mem.stats().await.unwrap().blobs, 2);
        assert_eq!(c.stats().await.unwrap(), mem.stats().await.unwrap());
        // A document over the cap is the scan's error, not an outage.
        let big = BlobInfo {
            diff_id: "x".repeat(64),
            ..blob.clone()
        };
        let err = c.put_blobs(&[(id(3), big)]).await.unwrap_err();
        assert!(err.is_document_too_large(), "{err}");
        assert!(!c.is_down());
        // gc with unused_for judges what the memory backend knows of reads.
        let report = c
            .gc_with(&GcOptions {
                unused_for: Some(std::time::Duration::from_secs(3600)),
            })
            .await
            .unwrap();
        assert_eq!((report.unused, report.access_unknown), (0, 0), "{report:?}");
        assert_eq!(mem.stats().await.unwrap().blobs, 2);
    }
}
