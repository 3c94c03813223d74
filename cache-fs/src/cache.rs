//! [`FsCache`]: the `Cache` trait implemented as a thin adapter over the shared LMDB
//! [`Store`] and the entry operations of [`crate::entry`].

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, BlobId, Cache, CacheOptions, Claim, Claimed, Digest, EntryKey, EntryKind,
    EntryMeta, Error, Missing, RawEntry, Result, Visitor, Walk, Walked, kind_matches,
    rules::{self, GcCandidate, Verdict},
};
use heed::RoTxn;

use crate::{
    claims::Claims,
    config::FsConfig,
    entry::{self, Dbs},
    store::{Fail, Store},
    touch::TOUCH_FLUSH_AT,
    value::{self, Header, Schema},
};

/// Entries per read transaction when walking the whole cache (`list`, `export`, `gc`).
const SCAN_CHUNK: usize = 512;
/// Entries per write transaction in bulk writes (`write`, `gc`), so that no single
/// commit holds the writer lock for long.
const WRITE_CHUNK: usize = 1000;
/// `missing_blobs` with more IDs than this runs on the blocking thread pool.
const INLINE_IDS: usize = 16;

/// The LMDB file-system scan cache under `<cache-dir>/fanal/`.
///
/// Any number of `FsCache` values, in any number of processes, may use one directory at
/// once. Methods must be called from within a Tokio runtime (writes and long scans run
/// on its blocking thread pool).
pub struct FsCache {
    store: RwLock<Option<Arc<Store>>>,
    dir: PathBuf,
    options: CacheOptions,
    granularity_s: u32,
    claims: Arc<Claims>,
}

impl std::fmt::Debug for FsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsCache")
            .field("dir", &self.dir)
            .field("ttl", &self.options.ttl)
            .field("max_size", &self.options.max_size)
            .finish()
    }
}

impl FsCache {
    /// Opens (creating if needed) the cache in `<dir>/fanal/` with the default
    /// [`FsConfig`]. `dir` is the cache directory (`--cache-dir`).
    pub fn open(dir: &Path, options: &CacheOptions) -> Result<FsCache> {
        FsCache::open_with(dir, options, &FsConfig::default())
    }

    /// Opens (creating if needed) the cache in `<dir>/fanal/`. Directories are created
    /// with mode 0700 and files with mode 0600. Stale reader slots of dead processes are
    /// reclaimed. Fails with a clear error when `dir` (or a parent) is a file, cannot be
    /// created, or holds something that is not a cache.
    pub fn open_with(dir: &Path, options: &CacheOptions, config: &FsConfig) -> Result<FsCache> {
        create_private_dir(dir, "cannot create cache directory")?;
        let fanal = dir.join("fanal");
        create_private_dir(&fanal, "cannot create scan cache directory")?;
        let fanal = fanal
            .canonicalize()
            .map_err(|e| Error::io("cannot open scan cache directory", &fanal, e))?;
        let store = Store::open(&fanal, config)?;
        Ok(FsCache {
            store: RwLock::new(Some(store)),
            claims: Arc::new(Claims::new(&fanal)),
            dir: fanal,
            options: options.clone(),
            granularity_s: u32::try_from(config.access_granularity.as_secs()).unwrap_or(u32::MAX),
        })
    }

    /// The directory holding the LMDB files (`<cache-dir>/fanal`, canonicalized).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The lock file of a claim on `id` (`fanal/claims-v1/sha256-<hex>.lock`), for tests
    /// and diagnostics.
    pub fn claim_path(&self, id: &BlobId) -> PathBuf {
        self.claims.path(id)
    }

    /// Runs `f` on this cache's claims on the blocking pool (claims take a `flock`).
    async fn on_claims<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Claims) -> Result<R> + Send + 'static,
    {
        let claims = Arc::clone(&self.claims);
        tokio::task::spawn_blocking(move || f(&claims))
            .await
            .map_err(|e| Error::Backend {
                backend: self.location(),
                message: format!("cache worker thread failed: {e}"),
            })?
    }

    fn store(&self) -> Result<Arc<Store>> {
        self.store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::Backend {
                backend: self.location(),
                message: "the cache is closed".to_owned(),
            })
    }

    /// Runs `f` on the blocking thread pool.
    async fn blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Store) -> Result<R> + Send + 'static,
    {
        let store = self.store()?;
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Backend {
                backend: self.location(),
                message: format!("cache worker thread failed: {e}"),
            })?
    }

    /// Records a read for LRU eviction without writing (see [`crate::touch`]), starting
    /// the background flush when enough stamps piled up and none is queued.
    fn touched(&self, store: &Arc<Store>, kind: EntryKind, id: &Digest, stamp: u32, now: u32) {
        if now.saturating_sub(stamp) < self.granularity_s {
            return;
        }
        store.start_flusher();
        if store.record_touch(kind, id.as_str(), now) >= TOUCH_FLUSH_AT
            && store.claim_background_flush()
        {
            let store = Arc::clone(store);
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.background_flush() {
                    tracing::debug!("cannot record entry access times: {e}");
                }
            });
        }
    }

    /// [`Cache::write`] of entries it owns, on the blocking pool.
    async fn write_owned(&self, entries: Vec<RawEntry>) -> Result<()> {
        let max = self.options.max_size;
        self.blocking(move |s| {
            for chunk in entries.chunks(WRITE_CHUNK) {
                let (_, now_s) = value::now();
                s.write("cannot write to the scan cache", &mut |txn, dbs| {
                    for e in chunk {
                        let header = Header {
                            expires_ms: value::expires_ms(e.expires_at),
                            accessed_s: now_s,
                            schema: Schema::of(e.key.kind, &e.value),
                        };
                        let key = e.key.id.as_str().as_bytes();
                        entry::put_entry(txn, dbs, e.key.kind, key, header, &e.value)?;
                    }
                    if let Some(max) = max {
                        let keep: Vec<(EntryKind, &[u8])> = chunk
                            .iter()
                            .map(|e| (e.key.kind, e.key.id.as_str().as_bytes()))
                            .collect();
                        let evicted = entry::evict(txn, dbs, max, &keep)?;
                        if evicted > 0 {
                            tracing::debug!("evicted {evicted} least recently used entries");
                        }
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })
        .await
    }

    async fn remove(&self, keys: Vec<(EntryKind, String)>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.blocking(move |s| {
            let mut removed = 0;
            for chunk in keys.chunks(WRITE_CHUNK) {
                let (now_ms, _) = value::now();
                removed += s.write("cannot delete from the scan cache", &mut |txn, dbs| {
                    let mut n = 0;
                    for (kind, key) in chunk {
                        if let Some(old) = entry::remove_entry(txn, dbs, *kind, key.as_bytes())?
                            && old.header.is_none_or(|h| !h.is_expired(now_ms))
                        {
                            n += 1;
                        }
                    }
                    Ok(n)
                })?;
            }
            Ok(removed)
        })
        .await
    }

    /// Walks entries of the selected kinds chunk by chunk (one read transaction per
    /// chunk, on the blocking pool), so a cache of any size is never held in memory.
    /// `make` sees each entry's kind, raw key and stored value and picks what to visit.
    async fn walk_chunks<T, F>(
        &self,
        kind: Option<EntryKind>,
        make: F,
        visit: Visitor<'_, T>,
    ) -> Result<()>
    where
        T: Send + 'static,
        F: Fn(EntryKind, &[u8], &[u8]) -> Option<T> + Copy + Send + 'static,
    {
        for k in EntryKind::ALL {
            if !kind_matches(kind, k) {
                continue;
            }
            let mut after: Option<Vec<u8>> = None;
            loop {
                let from = after.take();
                let (items, next) = self
                    .blocking(move |s| {
                        let mut items = Vec::new();
                        let next = s.read("cannot read the scan cache", &mut |txn, dbs| {
                            items.clear();
                            entry::scan(
                                txn,
                                &dbs.of(k),
                                from.as_deref(),
                                SCAN_CHUNK,
                                &mut |key, stored| {
                                    items.extend(make(k, key, stored));
                                    Ok(())
                                },
                            )
                        })?;
                        Ok((items, next))
                    })
                    .await?;
                for item in items {
                    if visit(item).is_break() {
                        return Ok(());
                    }
                }
                match next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(())
    }
}

/// Creates a directory (and its parents) with mode 0700, with clear errors when the path
/// or a parent is not a directory.
fn create_private_dir(dir: &Path, action: &'static str) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(Error::io(
                action,
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "it exists and is not a directory",
                ),
            ));
        }
        Err(_) => {}
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| Error::io(action, dir, e))
}

fn short_value(kind: EntryKind, id: &Digest) -> Fail {
    Fail::Core(Error::Corrupt {
        kind,
        id: id.as_str().to_owned(),
        reason: "stored value is too short to hold its header".to_owned(),
    })
}

/// Reads one entry's document bytes with its access stamp; `None` when absent or
/// expired.
fn read_live<'t>(
    txn: &'t RoTxn<'_>,
    dbs: &Dbs,
    kind: EntryKind,
    id: &Digest,
    now_ms: u64,
) -> Result<Option<(&'t [u8], u32)>, Fail> {
    let Some(stored) = dbs.of(kind).get(txn, id.as_str().as_bytes())? else {
        return Ok(None);
    };
    let (header, doc) = value::decode(stored).ok_or_else(|| short_value(kind, id))?;
    if header.is_expired(now_ms) {
        return Ok(None);
    }
    Ok(Some((doc, header.accessed_s)))
}

/// The entry key of a database key; `None` (with a warning) for a key that is not an ID.
fn entry_key(kind: EntryKind, key: &[u8]) -> Option<EntryKey> {
    let parsed = std::str::from_utf8(key)
        .ok()
        .and_then(|s| Digest::parse(s).ok());
    if parsed.is_none() {
        tracing::warn!(
            "skipping a {kind} entry whose key is not an ID: {:?}",
            String::from_utf8_lossy(key)
        );
    }
    parsed.map(|id| EntryKey { kind, id })
}

/// True when a stored value is live and holds a current document.
fn is_live_current(kind: EntryKind, stored: Option<&[u8]>, now_ms: u64) -> bool {
    stored
        .and_then(value::decode)
        .is_some_and(|(h, doc)| !h.is_expired(now_ms) && h.is_current(kind, doc))
}

/// Which of `keys` (artifact first, then blobs) are missing, in one read transaction.
fn missing_flags(store: &Store, artifact: &str, blobs: &[&str]) -> Result<(bool, Vec<bool>)> {
    let (now_ms, _) = value::now();
    store.read("cannot read the scan cache", &mut |txn, dbs| {
        let artifact_missing = !is_live_current(
            EntryKind::Artifact,
            dbs.artifacts.get(txn, artifact.as_bytes())?,
            now_ms,
        );
        let mut flags = Vec::with_capacity(blobs.len());
        for id in blobs {
            let stored = dbs.of(EntryKind::Blob).get(txn, id.as_bytes())?;
            flags.push(!is_live_current(EntryKind::Blob, stored, now_ms));
        }
        Ok((artifact_missing, flags))
    })
}

#[async_trait]
impl Cache for FsCache {
    fn backend_name(&self) -> &'static str {
        "fs"
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// Headers only, in one read transaction (on the blocking pool for many IDs).
    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        let (artifact_missing, flags) = if blobs.len() <= INLINE_IDS {
            let ids: Vec<&str> = blobs.iter().map(BlobId::as_str).collect();
            missing_flags(&*self.store()?, artifact.as_str(), &ids)?
        } else {
            let artifact = artifact.as_str().to_owned();
            let ids: Vec<String> = blobs.iter().map(|b| b.as_str().to_owned()).collect();
            self.blocking(move |s| {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                missing_flags(s, &artifact, &ids)
            })
            .await?
        };
        Ok(Missing {
            artifact: artifact_missing,
            blobs: blobs
                .iter()
                .zip(flags)
                .filter(|(_, missing)| *missing)
                .map(|(id, _)| id.clone())
                .collect(),
        })
    }

    /// One read transaction; each hit's access is recorded for LRU eviction
    /// (`FsCache::touched`).
    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
        let store = self.store()?;
        let (now_ms, now_s) = value::now();
        let found = store.read("cannot read the scan cache", &mut |txn, dbs| {
            ids.iter()
                .map(|id| {
                    let live = read_live(txn, dbs, kind, id, now_ms)?;
                    Ok(live.map(|(doc, stamp)| (doc.to_vec(), stamp)))
                })
                .collect::<Result<Vec<_>, Fail>>()
        })?;
        Ok(found
            .into_iter()
            .zip(ids)
            .map(|(found, id)| {
                tracing::debug!(hit = found.is_some(), "cache lookup: {kind} {id}");
                found.map(|(doc, stamp)| {
                    self.touched(&store, kind, id, stamp, now_s);
                    doc
                })
            })
            .collect())
    }

    /// In write transactions of up to `WRITE_CHUNK` entries; with a size bound, each
    /// evicts least recently used entries, never the ones it wrote.
    async fn write(&self, entries: &[RawEntry]) -> Result<()> {
        self.write_owned(entries.to_vec()).await
    }

    /// As the default, with the documents moved to the writer rather than copied (a
    /// layer's result may be tens of megabytes).
    async fn put_values(&self, entries: Vec<(EntryKey, Vec<u8>)>) -> Result<()> {
        let expires_at = cache_core::codec::expiry_from_ttl(self.options.ttl);
        let entries = entries
            .into_iter()
            .map(|(key, value)| RawEntry {
                key,
                value,
                expires_at,
            })
            .collect();
        self.write_owned(entries).await
    }

    async fn delete(&self, keys: &[EntryKey]) -> Result<u64> {
        let keys = keys
            .iter()
            .map(|k| (k.kind, k.id.as_str().to_owned()))
            .collect();
        self.remove(keys).await
    }

    /// Chunk by chunk; each entry's last access is its header's stamp, or the newer stamp
    /// this process recorded for it and has not written yet.
    async fn walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        let pending = self.store()?.pending_stamps();
        let visit = &mut |mut w: Walked| {
            let key = || (w.meta.key.kind, w.meta.key.id.as_str().to_owned());
            if let Some(&stamp) = (!pending.is_empty()).then(|| pending.get(&key())).flatten() {
                let stamp = Some(value::from_unix_s(stamp));
                w.meta.last_access = w.meta.last_access.max(stamp);
            }
            visit(w)
        };
        self.walk_chunks(
            kind,
            move |kind, key, stored| {
                let header = value::decode(stored);
                Some(Walked {
                    meta: EntryMeta {
                        key: entry_key(kind, key)?,
                        size: entry::doc_len(stored),
                        expires_at: header.and_then(|(h, _)| h.expires_at()),
                        last_access: header.map(|(h, _)| value::from_unix_s(h.accessed_s)),
                    },
                    // A value without a header is corrupt; its bytes are walked as they
                    // are, so that nothing is silently lost from an export.
                    value: (walk == Walk::Values)
                        .then(|| header.map_or(stored, |(_, doc)| doc).to_vec()),
                })
            },
            visit,
        )
        .await
    }

    async fn clear(&self) -> Result<()> {
        self.blocking(|s| {
            s.forget_touches();
            s.write("cannot clear the scan cache", &mut |txn, dbs| {
                entry::clear_all(txn, dbs).map_err(Fail::from)
            })?;
            // The entries are gone for every process already; compaction only returns
            // the disk space, so its failure is not the caller's problem.
            if let Err(e) = s.compact() {
                tracing::warn!("scan cache cleared, but its disk space was not returned: {e}");
            }
            Ok(())
        })
        .await?;
        self.sweep_claims().await
    }

    async fn close(&self) -> Result<()> {
        let store = self.store.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(store) = store {
            // The environment closes when the last cache of this process on the directory
            // lets go of it; pending access stamps are written first.
            tokio::task::spawn_blocking(move || {
                let flushed = store.flush_touches();
                drop(store);
                flushed
            })
            .await
            .map_err(|e| Error::Backend {
                backend: self.location(),
                message: format!("cache worker thread failed: {e}"),
            })??;
        }
        Ok(())
    }

    /// Judges each candidate again inside short write transactions, with the same rule
    /// ([`rules::verdict`]): another process may have rewritten it since. An unused
    /// candidate goes only if nobody has read it since it was judged (its stamp, on disk
    /// or pending in this process, is no newer).
    async fn remove_unchanged(&self, candidates: &[GcCandidate]) -> Result<Vec<bool>> {
        let keys: Vec<(EntryKind, String, Option<u32>)> = candidates
            .iter()
            .map(|c| {
                let unused_at = (c.verdict == Verdict::Unused)
                    .then(|| c.meta.last_access.map_or(0, value::unix_s32));
                (c.key().kind, c.key().id.as_str().to_owned(), unused_at)
            })
            .collect();
        self.blocking(move |s| {
            let mut removed = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(WRITE_CHUNK) {
                let now = SystemTime::now();
                let done = s.write("cannot delete from the scan cache", &mut |txn, dbs| {
                    let mut done = Vec::with_capacity(chunk.len());
                    for (kind, key, unused_at) in chunk {
                        let pending = s.pending_stamp(*kind, key);
                        let stale = dbs
                            .of(*kind)
                            .get(txn, key.as_bytes())?
                            .is_some_and(|stored| {
                                still_removable(*kind, stored, now, *unused_at, pending)
                            });
                        done.push(
                            stale
                                && entry::remove_entry(txn, dbs, *kind, key.as_bytes())?.is_some(),
                        );
                    }
                    Ok(done)
                })?;
                removed.extend(done);
            }
            Ok(removed)
        })
        .await
    }

    async fn compact(&self) -> Result<()> {
        self.blocking(Store::compact).await?;
        self.sweep_claims().await
    }

    async fn claim(&self, ids: &[BlobId], lease: Duration) -> Result<Vec<Claimed>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.on_claims(move |c| c.claim(&ids, lease)).await
    }

    async fn renew(&self, claims: &[Claim], lease: Duration) -> Result<()> {
        let claims = claims.to_vec();
        self.on_claims(move |c| c.renew(&claims, lease)).await
    }

    async fn release(&self, claims: &[Claim]) -> Result<()> {
        if claims.is_empty() {
            return Ok(());
        }
        let claims = claims.to_vec();
        self.on_claims(move |c| c.release(&claims)).await
    }

    async fn await_release(&self, id: &BlobId, timeout: Duration) -> Result<bool> {
        self.claims.await_release(id, timeout).await
    }

    async fn disk_bytes(&self) -> Result<Option<u64>> {
        Ok(Some(self.store()?.disk_bytes()?))
    }

    /// Every write is a transaction synced to disk.
    fn groups_writes(&self) -> bool {
        true
    }
}

impl FsCache {
    /// Removes the files of claims whose owner died or whose lease ran out (`gc` and
    /// `clear`); live claims stay.
    async fn sweep_claims(&self) -> Result<()> {
        let removed = self.on_claims(Claims::sweep).await?;
        if removed > 0 {
            tracing::debug!(removed, "removed stale claims");
        }
        Ok(())
    }
}

/// Whether a gc candidate may still go: judged again by [`verdict`]; a candidate judged
/// unused at stamp `unused_at` (unix seconds) goes when it would be kept otherwise and has
/// not been read since (neither its stamp on disk nor `pending`, this process's
/// unwritten one, is newer).
fn still_removable(
    kind: EntryKind,
    stored: &[u8],
    now: SystemTime,
    unused_at: Option<u32>,
    pending: Option<u32>,
) -> bool {
    match verdict(kind, stored, now) {
        Verdict::Keep => unused_at.is_some_and(|at| {
            let stamp = value::decode(stored).map_or(0, |(h, _)| h.accessed_s);
            stamp.max(pending.unwrap_or(0)) <= at
        }),
        _ => true,
    }
}

/// Judges a stored value for gc: a value without a header is stale, the rest by
/// [`rules::verdict`] on its header's expiry and its document.
fn verdict(kind: EntryKind, stored: &[u8], now: SystemTime) -> Verdict {
    match value::decode(stored) {
        None => Verdict::Stale,
        Some((h, doc)) => rules::verdict(kind, h.expires_at(), doc, now),
    }
}
