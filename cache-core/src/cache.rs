//! The [`Cache`] trait every backend implements, and the types it speaks in.
//!
//! The trait has two layers. A backend implements the **storage primitives**: a handful
//! of methods over raw stored bytes that only it knows how to do well (one round trip,
//! one transaction, headers only). Everything users call — the **scan surface**
//! (`missing_blobs`, puts and gets of documents) and the **admin surface** (`list`,
//! `stats`, `gc`, `export`, `import`, `delete_blobs`) — is provided on top of them, so
//! every backend encodes, decodes, counts and judges entries by the same rules
//! ([`crate::rules`]). A backend may also offer the optional capabilities
//! ([`Cache::remove_unchanged`], [`Cache::compact`], [`Cache::disk_bytes`],
//! [`Cache::put_values`]) when it has something better than the default.

use std::{
    fmt,
    ops::ControlFlow,
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;

use crate::{
    ArtifactId, ArtifactInfo, BlobId, BlobInfo, CacheOptions, Claim, ClaimOptions, Claimed, Digest,
    Document, EntryKey, EntryKind, Result, Waited, codec,
    rules::{self, GcCandidate, GcOptions, Verdict},
};

/// The ages [`Stats`] counts unread entries at: 7 and 30 days.
pub const UNREAD_AGES: [Duration; 2] = [
    Duration::from_secs(7 * 86_400),
    Duration::from_secs(30 * 86_400),
];

/// A callback that receives entries one at a time, so listing or exporting a cache of any
/// size never holds it all in memory. Returning [`ControlFlow::Break`] stops the walk
/// early; the walk then returns `Ok(())`.
pub type Visitor<'a, T> = &'a mut (dyn FnMut(T) -> ControlFlow<()> + Send);

/// The answer of [`Cache::missing_blobs`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// True when the artifact entry must be (re)written.
    pub artifact: bool,
    /// The blob IDs that must be (re)analysed, in the order they were asked for.
    pub blobs: Vec<BlobId>,
}

/// One stored entry as the admin commands see it, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Kind and ID.
    pub key: EntryKey,
    /// Stored size of the value (the document bytes) in bytes.
    pub size: u64,
    /// When the entry expires; `None` for never.
    pub expires_at: Option<SystemTime>,
    /// When the entry was last read or written, as the backend records it (fs: to the
    /// minute; memory: exactly); `None` where the backend does not know (Redis).
    pub last_access: Option<SystemTime>,
}

/// One stored entry with its raw value, for export and import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// Kind and ID.
    pub key: EntryKey,
    /// The stored bytes: a JSON document, or whatever another writer left there.
    pub value: Vec<u8>,
    /// When the entry expires; `None` for never.
    pub expires_at: Option<SystemTime>,
}

/// What a [`Cache::walk`] reads of each entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Kind, ID, size and expiry only.
    Meta,
    /// The stored value as well.
    Values,
}

/// One entry as [`Cache::walk`] yields it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// Kind, ID, size and expiry.
    pub meta: EntryMeta,
    /// The stored value, when the walk asked for values ([`Walk::Values`]).
    pub value: Option<Vec<u8>>,
}

/// Counts reported by [`Cache::stats`]. Counts and bytes cover live entries only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live artifact entries.
    pub artifacts: u64,
    /// Live blob entries.
    pub blobs: u64,
    /// Live stored reports ([`crate::report`]).
    pub reports: u64,
    /// Sum of the stored sizes of the live entries.
    pub bytes: u64,
    /// Entries that have expired but are still stored (0 on backends that drop them
    /// by themselves).
    pub expired: u64,
    /// Size of the backend's files on disk, where it has any.
    pub disk_bytes: Option<u64>,
    /// Live entries that have gone unread (and unwritten) for at least 7 and 30 days
    /// ([`UNREAD_AGES`]), among those whose last access the backend knows.
    pub unread: [u64; 2],
    /// Live entries whose last access the backend does not know (every entry on Redis).
    pub access_unknown: u64,
}

/// What [`Cache::gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entries removed because they had expired.
    pub expired: u64,
    /// Entries removed because their schema version is not current or they do not
    /// decode.
    pub stale: u64,
    /// Entries removed because nobody had read them for [`GcOptions::unused_for`].
    pub unused: u64,
    /// With [`GcOptions::unused_for`]: entries kept because the backend does not know
    /// when they were last read.
    pub access_unknown: u64,
    /// Stored bytes of the removed entries.
    pub bytes: u64,
    /// On-disk size before and after, where the backend has files.
    pub disk_bytes: Option<(u64, u64)>,
}

/// A scan cache: per-layer analysis results ([`BlobInfo`]), per-image records
/// ([`ArtifactInfo`]) and scancache's own stored reports ([`crate::report`]).
///
/// Contract shared by every backend and checked by the conformance suite (crate
/// `cache-testkit`):
/// - a miss (absent or expired entry) is `Ok(None)`, never an error;
/// - puts overwrite and apply the TTL the backend was configured with;
/// - an entry that does not decode is reported as [`crate::Error::Corrupt`] naming its
///   ID by the getters, and counts as missing in [`Cache::missing_blobs`];
/// - a document with an old `SchemaVersion` is returned by the getters (callers may check
///   `is_current()`), and counts as missing in [`Cache::missing_blobs`];
/// - [`Cache::clear`] removes every scan-cache entry of this backend and nothing else.
///
/// A backend implements the storage primitives (the required methods); the scan and
/// admin surfaces are provided on top of them and are not meant to be overridden, so
/// that one rule holds for every backend. The trait is object safe: front ends hold an
/// `Arc<dyn Cache>` chosen at run time.
#[async_trait]
pub trait Cache: Send + Sync + fmt::Debug {
    // ---- Identity -------------------------------------------------------------------

    /// Short backend name: `fs`, `memory` or `redis`.
    fn backend_name(&self) -> &'static str;

    /// Where the cache lives (a path, or an address with any password masked), for
    /// messages and `cache stats`.
    fn location(&self) -> String;

    /// The options the backend was opened with (the TTL that puts apply, the size
    /// bound).
    fn options(&self) -> &CacheOptions;

    // ---- Storage primitives (what a backend implements) -----------------------------

    /// Tells whether the artifact entry is missing and which blobs are missing, in input
    /// order. Absent, expired, undecodable and stale-schema entries count as missing.
    ///
    /// This is the scan's hot path: a backend answers it in one round trip or one
    /// transaction, judging currency without decoding documents where it can
    /// ([`codec::is_current`], or a stored header or prefix that says the same).
    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing>;

    /// The stored values of live entries of one kind, in input order; `None` for an
    /// absent or expired entry. One round trip or transaction for all of them.
    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Stores raw values as given, each with its own expiry, overwriting; every expiry is
    /// in the future (the provided methods drop entries that have expired before they
    /// get here). Values are not checked. A backend writes one call's entries together
    /// (one transaction or pipeline) where it can.
    async fn write(&self, entries: &[RawEntry]) -> Result<()>;

    /// Removes entries of any kind and returns how many live ones were stored.
    async fn delete(&self, keys: &[EntryKey]) -> Result<u64>;

    /// Walks every stored entry of one kind or of all, expired ones included (with
    /// their expiry), reading what `walk` says. Entries come in no particular order;
    /// each entry once.
    async fn walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()>;

    /// Removes every scan-cache entry of this backend, and nothing else.
    async fn clear(&self) -> Result<()>;

    /// Releases the backend's resources. Idempotent; other calls after it may fail.
    async fn close(&self) -> Result<()>;

    // ---- Optional capabilities (defaults that a backend may improve on) -------------

    /// Stores freshly written documents under the configured TTL. The default computes
    /// each entry's expiry from [`Cache::options`] and calls [`Cache::write`]; a backend
    /// whose TTL is applied elsewhere (by a server) overrides it.
    async fn put_values(&self, entries: Vec<(EntryKey, Vec<u8>)>) -> Result<()> {
        let expires_at = codec::expiry_from_ttl(self.options().ttl);
        let entries: Vec<RawEntry> = entries
            .into_iter()
            .map(|(key, value)| RawEntry {
                key,
                value,
                expires_at,
            })
            .collect();
        self.write(&entries).await
    }

    /// `gc`'s removal step: removes each candidate unless it changed since it was judged
    /// (a scanner rewrote it), and says per candidate whether it was removed. The
    /// default removes them all unconditionally and reports them all removed; a
    /// backend that can check atomically (a script, a write transaction) does.
    async fn remove_unchanged(&self, candidates: &[GcCandidate]) -> Result<Vec<bool>> {
        let keys: Vec<EntryKey> = candidates.iter().map(|c| c.key().clone()).collect();
        self.delete(&keys).await?;
        Ok(vec![true; candidates.len()])
    }

    /// Returns the space of removed entries to the operating system, where the backend
    /// has files (the last step of `gc`). The default does nothing.
    async fn compact(&self) -> Result<()> {
        Ok(())
    }

    /// The size of the backend's files on disk; `None` (the default) where it has none.
    async fn disk_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Whether concurrent writers gain from having their documents stored by one
    /// [`Cache::put_values`] call rather than one call each: true where every call is a
    /// costly commit (an LMDB transaction synced to disk, a request to a server). A
    /// service in front of the cache groups its writes when it is (group commit) and
    /// otherwise writes each at once, as a backend that pipelines concurrent calls itself
    /// (Redis) or stores in memory gains nothing from the extra hop. The default is false.
    fn groups_writes(&self) -> bool {
        false
    }

    // ---- Claims (optional capabilities: the defaults never wait) ---------------------

    /// Claims the blob keys `ids` for `lease` (single-flight, [`crate::claim`]): per key,
    /// in input order, [`Claimed::Owned`] when no live claim of another caller exists
    /// (this one is recorded), or [`Claimed::Busy`] when one does. Claims are per key
    /// and visible to every user of the same cache (other tasks, processes, machines as
    /// far as the backend reaches); one call costs one round trip or one pass.
    ///
    /// The default grants every key at once with a claim that holds nothing
    /// ([`Claim::unheld`]), so a backend without claims never makes a caller wait.
    async fn claim(&self, ids: &[BlobId], lease: Duration) -> Result<Vec<Claimed>> {
        let _ = lease;
        Ok(ids
            .iter()
            .map(|id| Claimed::Owned(Claim::unheld(id.clone())))
            .collect())
    }

    /// Extends the caller's live claims by `lease` from now. A claim that is no longer
    /// the caller's (it ran out and was taken over) is left alone. The default does
    /// nothing.
    async fn renew(&self, claims: &[Claim], lease: Duration) -> Result<()> {
        let _ = (claims, lease);
        Ok(())
    }

    /// Ends the caller's claims at once (after storing their results, or after failing
    /// to), waking their waiters. A claim that is no longer the caller's is left alone.
    /// The default does nothing.
    async fn release(&self, claims: &[Claim]) -> Result<()> {
        let _ = claims;
        Ok(())
    }

    /// Waits until no live claim on `id` exists (released, run out, or its owner died),
    /// at most `timeout`: `Ok(true)` when the claim ended (or there was none),
    /// `Ok(false)` when the time ran out first. Wakes up promptly when the claim ends,
    /// without fixed long polls; a backend may also return `Ok(true)` as soon as a result
    /// for `id` is stored (the caller checks the cache next). The default returns
    /// `Ok(true)` at once.
    async fn await_release(&self, id: &BlobId, timeout: Duration) -> Result<bool> {
        let _ = (id, timeout);
        Ok(true)
    }

    // ---- Single-flight (provided) -----------------------------------------------------

    /// Waits for another caller's claim on `id` ([`Claimed::Busy`]): until its result is
    /// stored ([`Waited::Stored`]), or the claim ends without one and this caller takes
    /// it over ([`Waited::TakenOver`], the caller analyses the layer), or
    /// `options.max_wait` has passed in total ([`Waited::TimedOut`], the caller analyses
    /// the layer without a claim). Never waits longer than `max_wait` plus one round trip.
    async fn wait_for(&self, id: &BlobId, options: &ClaimOptions) -> Result<Waited> {
        let deadline = Instant::now() + options.max_wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.await_release(id, left).await? {
                return Ok(Waited::TimedOut);
            }
            let stored = self.read(EntryKind::Blob, &[id.digest()]).await?;
            if stored
                .into_iter()
                .flatten()
                .any(|v| codec::is_current(EntryKind::Blob, &v))
            {
                return Ok(Waited::Stored);
            }
            let claimed = self.claim(std::slice::from_ref(id), options.lease).await?;
            if let Some(Claimed::Owned(claim)) = claimed.into_iter().next() {
                return Ok(Waited::TakenOver(claim));
            }
        }
    }

    // ---- Scan surface (provided) ----------------------------------------------------

    /// Stores an artifact record, overwriting any previous one. A document over the
    /// document size cap is refused ([`rules::check_document_size`]).
    async fn put_artifact(&self, id: &ArtifactId, info: &ArtifactInfo) -> Result<()> {
        put_checked(self, vec![(EntryKey::artifact(id), codec::encode(info))]).await
    }

    /// Stores a layer's analysis result, overwriting any previous one. A document over
    /// the document size cap is refused ([`rules::check_document_size`]).
    async fn put_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()> {
        put_checked(self, vec![(EntryKey::blob(id), codec::encode(info))]).await
    }

    /// Stores several layers' results together: one [`Cache::put_values`], so one write
    /// transaction or pipeline (a group commit on the fs backend). A document over the
    /// document size cap is refused and the others are stored; the error names the
    /// first refused one.
    async fn put_blobs(&self, blobs: &[(BlobId, BlobInfo)]) -> Result<()> {
        if blobs.is_empty() {
            return Ok(());
        }
        let values = blobs
            .iter()
            .map(|(id, info)| (EntryKey::blob(id), codec::encode(info)))
            .collect();
        put_checked(self, values).await
    }

    /// Reads an artifact record; `Ok(None)` when absent or expired.
    async fn get_artifact(&self, id: &ArtifactId) -> Result<Option<ArtifactInfo>> {
        let mut values = self.read(EntryKind::Artifact, &[id.digest()]).await?;
        decode_one(id.digest(), values.pop().flatten())
    }

    /// Reads a layer's analysis result; `Ok(None)` when absent or expired.
    async fn get_blob(&self, id: &BlobId) -> Result<Option<BlobInfo>> {
        let mut values = self.read(EntryKind::Blob, &[id.digest()]).await?;
        decode_one(id.digest(), values.pop().flatten())
    }

    /// Reads several blobs at once (one [`Cache::read`]), in input order.
    async fn get_blobs(&self, ids: &[BlobId]) -> Result<Vec<Option<BlobInfo>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let digests: Vec<&Digest> = ids.iter().map(BlobId::digest).collect();
        let values = self.read(EntryKind::Blob, &digests).await?;
        digests
            .into_iter()
            .zip(values)
            .map(|(id, value)| decode_one(id, value))
            .collect()
    }

    /// Stores a rendered report under `id` ([`crate::report::report_key`]), framed by
    /// [`crate::report::encode`], with the configured TTL like every put. A report over
    /// the document size cap is refused ([`rules::check_document_size`]) and nothing is
    /// stored.
    async fn put_report(&self, id: &Digest, body: &[u8]) -> Result<()> {
        let value = crate::report::encode(body);
        put_checked(self, vec![(EntryKey::report(id), value)]).await
    }

    /// Reads a stored report's bytes; `Ok(None)` when absent or expired. A value that is
    /// not a sound report (truncated, damaged, another version) is [`crate::Error::Corrupt`]:
    /// no part of it is returned.
    async fn get_report(&self, id: &Digest) -> Result<Option<Vec<u8>>> {
        let mut values = self.read(EntryKind::Report, &[id]).await?;
        values
            .pop()
            .flatten()
            .map(|v| crate::report::decode(id.as_str(), v))
            .transpose()
    }

    // ---- Admin surface (provided) ---------------------------------------------------

    /// Removes blobs; IDs that are not stored are ignored.
    async fn delete_blobs(&self, ids: &[BlobId]) -> Result<()> {
        let keys: Vec<EntryKey> = ids.iter().map(EntryKey::blob).collect();
        self.delete(&keys).await.map(drop)
    }

    /// Walks every stored entry (expired ones included, with their expiry) of one kind or
    /// of both.
    async fn list(&self, kind: Option<EntryKind>, visit: Visitor<'_, EntryMeta>) -> Result<()> {
        self.walk(kind, Walk::Meta, &mut |w| visit(w.meta)).await
    }

    /// Walks every live (unexpired) entry with its raw value.
    async fn export(&self, kind: Option<EntryKind>, visit: Visitor<'_, RawEntry>) -> Result<()> {
        let now = SystemTime::now();
        self.walk(kind, Walk::Values, &mut |w| {
            if codec::is_expired(w.meta.expires_at, now) {
                return ControlFlow::Continue(());
            }
            visit(RawEntry {
                key: w.meta.key,
                value: w.value.unwrap_or_default(),
                expires_at: w.meta.expires_at,
            })
        })
        .await
    }

    /// Stores raw entries as given, each with its own expiry (not the configured TTL).
    /// Values are not checked as documents: callers validate what they import. An entry
    /// whose expiry has passed is a delete ([`rules::split_expired`]). An entry over the
    /// document size cap is refused ([`rules::check_document_size`]) and the others are
    /// imported; the error names the first refused one.
    async fn import(&self, entries: &[RawEntry]) -> Result<()> {
        let limit = self.options().max_document_size;
        let oversize = entries
            .iter()
            .find_map(|e| rules::check_document_size(&e.key, e.value.len() as u64, limit).err());
        if let Some(refused) = oversize {
            let fitting: Vec<RawEntry> = entries
                .iter()
                .filter(|e| rules::check_document_size(&e.key, e.value.len() as u64, limit).is_ok())
                .cloned()
                .collect();
            // `fitting` has no oversize entry, so this cannot recurse again.
            self.import(&fitting).await?;
            return Err(refused);
        }
        let now = SystemTime::now();
        if !entries.iter().any(|e| codec::is_expired(e.expires_at, now)) {
            // Nothing to split: store the entries without copying them.
            return if entries.is_empty() {
                Ok(())
            } else {
                self.write(entries).await
            };
        }
        let (live, expired) = rules::split_expired(entries, now);
        if !expired.is_empty() {
            self.delete(&expired).await?;
        }
        if !live.is_empty() {
            self.write(&live).await?;
        }
        Ok(())
    }

    /// Counts entries, bytes and unread entries ([`Stats::tally`]) and the disk size.
    async fn stats(&self) -> Result<Stats> {
        let now = SystemTime::now();
        let mut stats = Stats::default();
        self.list(None, &mut |meta| {
            stats.tally(&meta, now);
            ControlFlow::Continue(())
        })
        .await?;
        stats.disk_bytes = self.disk_bytes().await?;
        Ok(stats)
    }

    /// Removes expired, stale-schema and undecodable entries (judged by
    /// [`rules::verdict`]), and returns disk space where the backend has files:
    /// [`Cache::gc_with`] with the default [`GcOptions`].
    async fn gc(&self) -> Result<GcReport> {
        self.gc_with(&GcOptions::default()).await
    }

    /// Removes expired, stale-schema and undecodable entries, and those unused for
    /// `options.unused_for` (judged by [`rules::judge`]), then returns disk space where
    /// the backend has files.
    async fn gc_with(&self, options: &GcOptions) -> Result<GcReport> {
        let before = self.disk_bytes().await?;
        let now = SystemTime::now();
        let mut candidates = Vec::new();
        let mut access_unknown = 0;
        self.walk(None, Walk::Values, &mut |w| {
            let value = w.value.as_deref().unwrap_or_default();
            let verdict = rules::judge(&w.meta, value, now, options);
            if verdict != Verdict::Keep {
                candidates.push(GcCandidate::new(w.meta, verdict, value));
            } else if options.unused_for.is_some() && w.meta.last_access.is_none() {
                access_unknown += 1;
            }
            ControlFlow::Continue(())
        })
        .await?;
        let mut report = GcReport {
            access_unknown,
            ..GcReport::default()
        };
        if !candidates.is_empty() {
            let removed = self.remove_unchanged(&candidates).await?;
            for (candidate, removed) in candidates.iter().zip(removed) {
                if removed {
                    report.count(candidate);
                }
            }
        }
        self.compact().await?;
        report.disk_bytes = before.zip(self.disk_bytes().await?);
        tracing::debug!(backend = self.backend_name(), ?report, "gc");
        Ok(report)
    }
}

/// Stores freshly encoded documents through [`Cache::put_values`], refusing those over the
/// cache's document size cap: the others are stored, and the first refusal is returned.
async fn put_checked<C: Cache + ?Sized>(cache: &C, values: Vec<(EntryKey, Vec<u8>)>) -> Result<()> {
    let limit = cache.options().max_document_size;
    let mut refused = None;
    let fitting: Vec<(EntryKey, Vec<u8>)> = values
        .into_iter()
        .filter(
            |(key, value)| match rules::check_document_size(key, value.len() as u64, limit) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(%key, size = value.len(), "document over the size cap refused");
                    refused.get_or_insert(e);
                    false
                }
            },
        )
        .collect();
    if !fitting.is_empty() {
        cache.put_values(fitting).await?;
    }
    refused.map_or(Ok(()), Err)
}

/// Decodes one value a getter read.
fn decode_one<T: Document>(id: &Digest, value: Option<Vec<u8>>) -> Result<Option<T>> {
    value.map(|v| codec::decode(id.as_str(), &v)).transpose()
}

impl Stats {
    /// Counts one listed entry: live ones by kind with their bytes and how long they
    /// have gone unread, expired ones apart.
    pub fn tally(&mut self, meta: &EntryMeta, now: SystemTime) {
        if codec::is_expired(meta.expires_at, now) {
            self.expired += 1;
            return;
        }
        match meta.key.kind {
            EntryKind::Artifact => self.artifacts += 1,
            EntryKind::Blob => self.blobs += 1,
            EntryKind::Report => self.reports += 1,
        }
        self.bytes += meta.size;
        if meta.last_access.is_none() {
            self.access_unknown += 1;
        }
        for (count, age) in self.unread.iter_mut().zip(UNREAD_AGES) {
            if rules::is_unused(meta.last_access, Some(age), now) {
                *count += 1;
            }
        }
    }
}

impl GcReport {
    /// Counts one removed candidate under its verdict.
    pub fn count(&mut self, removed: &GcCandidate) {
        match removed.verdict {
            Verdict::Expired => self.expired += 1,
            Verdict::Stale => self.stale += 1,
            Verdict::Unused => self.unused += 1,
            Verdict::Keep => return,
        }
        self.bytes += removed.meta.size;
    }
}

/// The kind an [`EntryKind`] filter matches.
pub fn kind_matches(filter: Option<EntryKind>, kind: EntryKind) -> bool {
    filter.is_none_or(|k| k == kind)
}
