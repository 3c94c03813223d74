//! [`Delegate`]: a cache that forwards every call to a real backend, except the ones a
//! test replaces, for tests of code that uses a cache (a cache that fails, or forgets).

use std::{fmt, time::Duration};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, BlobId, Cache, CacheOptions, Claim, Claimed, Digest, EntryKey, EntryKind, Missing,
    RawEntry, Result, Visitor, Walk, Walked, rules::GcCandidate,
};

type MissingHook = Box<dyn Fn(&ArtifactId, &[BlobId]) -> Result<Missing> + Send + Sync>;
type ReadHook = Box<dyn Fn(EntryKind, &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> + Send + Sync>;
type WriteHook = Box<dyn Fn(&[RawEntry]) + Send + Sync>;
type ClaimHook = Box<dyn Fn(&[BlobId]) + Send + Sync>;

/// Wraps a cache and forwards every storage primitive and capability to it, so the
/// provided scan and admin methods behave exactly as on `inner` — except
/// [`Cache::missing_blobs`] and [`Cache::read`] when a test replaces them; a test may
/// also watch [`Cache::write`] (which still goes to `inner`).
///
/// ```
/// # use cache_core::{Cache, CacheOptions, Missing};
/// // A cache that says every layer is stored, then finds none of them.
/// let forgetful = cache_testkit::Delegate::new(cache_mem::MemCache::new(&CacheOptions::default()))
///     .on_missing_blobs(|_, _| Ok(Missing { artifact: true, blobs: Vec::new() }))
///     .on_read(|_, ids| Ok(vec![None; ids.len()]));
/// # let _ = forgetful;
/// ```
pub struct Delegate<C> {
    /// The cache calls go to.
    pub inner: C,
    missing_blobs: Option<MissingHook>,
    read: Option<ReadHook>,
    write: Option<WriteHook>,
    claim: Option<ClaimHook>,
}

impl<C: Cache> Delegate<C> {
    /// Forwards everything to `inner`.
    pub fn new(inner: C) -> Self {
        Delegate {
            inner,
            missing_blobs: None,
            read: None,
            write: None,
            claim: None,
        }
    }

    /// Calls `hook` with the keys of every [`Cache::claim`] before forwarding it, e.g. to
    /// count claim round trips.
    pub fn on_claim(mut self, hook: impl Fn(&[BlobId]) + Send + Sync + 'static) -> Self {
        self.claim = Some(Box::new(hook));
        self
    }

    /// Calls `hook` with the entries of every [`Cache::write`] before forwarding it, e.g.
    /// to count write transactions.
    pub fn on_write(mut self, hook: impl Fn(&[RawEntry]) + Send + Sync + 'static) -> Self {
        self.write = Some(Box::new(hook));
        self
    }

    /// Answers [`Cache::missing_blobs`] with `hook` instead of `inner`.
    pub fn on_missing_blobs(
        mut self,
        hook: impl Fn(&ArtifactId, &[BlobId]) -> Result<Missing> + Send + Sync + 'static,
    ) -> Self {
        self.missing_blobs = Some(Box::new(hook));
        self
    }

    /// Answers [`Cache::read`] (and so every getter) with `hook` instead of `inner`.
    pub fn on_read(
        mut self,
        hook: impl Fn(EntryKind, &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> + Send + Sync + 'static,
    ) -> Self {
        self.read = Some(Box::new(hook));
        self
    }
}

impl<C: fmt::Debug> fmt::Debug for Delegate<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delegate")
            .field("inner", &self.inner)
            .field("missing_blobs", &self.missing_blobs.is_some())
            .field("read", &self.read.is_some())
            .field("write", &self.write.is_some())
            .finish()
    }
}

#[async_trait]
impl<C: Cache> Cache for Delegate<C> {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn options(&self) -> &CacheOptions {
        self.inner.options()
    }

    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        match &self.missing_blobs {
            Some(hook) => hook(artifact, blobs),
            None => self.inner.missing_blobs(artifact, blobs).await,
        }
    }

    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
        match &self.read {
            Some(hook) => hook(kind, ids),
            None => self.inner.read(kind, ids).await,
        }
    }

    async fn write(&self, entries: &[RawEntry]) -> Result<()> {
        if let Some(hook) = &self.write {
            hook(entries);
        }
        self.inner.write(entries).await
    }

    async fn delete(&self, keys: &[EntryKey]) -> Result<u64> {
        self.inner.delete(keys).await
    }

    async fn walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        self.inner.walk(kind, walk, visit).await
    }

    async fn clear(&self) -> Result<()> {
        self.inner.clear().await
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }

    /// Forwarded, unless a write hook watches: then stored through [`Cache::write`] as
    /// the default does, so the hook sees every put.
    async fn put_values(&self, entries: Vec<(EntryKey, Vec<u8>)>) -> Result<()> {
        if self.write.is_none() {
            return self.inner.put_values(entries).await;
        }
        let expires_at = cache_core::codec::expiry_from_ttl(self.options().ttl);
        let raw: Vec<RawEntry> = entries
            .into_iter()
            .map(|(key, value)| RawEntry {
                key,
                value,
                expires_at,
            })
            .collect();
        self.write(&raw).await
    }

    async fn remove_unchanged(&self, candidates: &[GcCandidate]) -> Result<Vec<bool>> {
        self.inner.remove_unchanged(candidates).await
    }

    async fn compact(&self) -> Result<()> {
        self.inner.compact().await
    }

    async fn disk_bytes(&self) -> Result<Option<u64>> {
        self.inner.disk_bytes().await
    }

    fn groups_writes(&self) -> bool {
        self.inner.groups_writes()
    }

    async fn claim(&self, ids: &[BlobId], lease: Duration) -> Result<Vec<Claimed>> {
        if let Some(hook) = &self.claim {
            hook(ids);
        }
        self.inner.claim(ids, lease).await
    }

    async fn renew(&self, claims: &[Claim], lease: Duration) -> Result<()> {
        self.inner.renew(claims, lease).await
    }

    async fn release(&self, claims: &[Claim]) -> Result<()> {
        self.inner.release(claims).await
    }

    async fn await_release(&self, id: &BlobId, timeout: Duration) -> Result<bool> {
        self.inner.await_release(id, timeout).await
    }
}
