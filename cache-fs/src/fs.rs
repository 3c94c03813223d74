//! [`FsCache`]: the `Cache` trait on top of the shared LMDB [`Store`].

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, ArtifactInfo, BlobId, BlobInfo, Cache, CacheOptions, Digest, Document, EntryKey,
    EntryKind, EntryMeta, Error, GcReport, Missing, RawEntry, Result, Stats, Visitor, codec,
    kind_matches,
};
use heed::RoTxn;

use crate::{
    config::FsConfig,
    store::{self, Dbs, Fail, Store, TOUCH_FLUSH_AT},
    value::{self, Header, Schema},
};

/// Entries per read transaction when walking the whole cache (`list`, `export`, `gc`).
const SCAN_CHUNK: usize = 512;
/// Entries per write transaction in bulk writes (`import`, `gc`), so that no single
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
    ttl: Option<Duration>,
    max_size: Option<u64>,
    granularity_s: u32,
}

impl std::fmt::Debug for FsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsCache")
            .field("dir", &self.dir)
            .field("ttl", &self.ttl)
            .field("max_size", &self.max_size)
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
            dir: fanal,
            ttl: options.ttl,
            max_size: options.max_size,
            granularity_s: u32::try_from(config.access_granularity.as_secs()).unwrap_or(u32::MAX),
        })
    }

    /// The directory holding the LMDB files (`<cache-dir>/fanal`, canonicalized).
    pub fn path(&self) -> &Path {
        &self.dir
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

    async fn put_doc<T: Document>(&self, id: &Digest, doc: &T) -> Result<()> {
        let kind = T::KIND;
        let json = codec::encode(doc);
        let (_, now_s) = store::now();
        let header = Header {
            expires_ms: value::expires_ms(codec::expiry_from_ttl(self.ttl)),
            accessed_s: now_s,
            schema: Schema::of(&json),
        };
        let key = id.as_str().to_owned();
        let max = self.max_size;
        self.blocking(move |s| {
            s.write("cannot write to the scan cache", &mut |txn, dbs| {
                store::put_entry(txn, dbs, kind, key.as_bytes(), header, &json)?;
                if let Some(max) = max {
                    let evicted = store::evict(txn, dbs, max, &[(kind, key.as_bytes())])?;
                    if evicted > 0 {
                        tracing::debug!("evicted {evicted} least recently used entries");
                    }
                }
                Ok(())
            })
        })
        .await
    }

    async fn get_doc<T: Document>(&self, id: &Digest) -> Result<Option<T>> {
        let kind = T::KIND;
        let store = self.store()?;
        let (now_ms, now_s) = store::now();
        let found = store.read("cannot read the scan cache", &mut |txn, dbs| {
            read_live::<T>(txn, dbs, id, now_ms)
        })?;
        let Some((doc, accessed_s)) = found else {
            tracing::debug!("cache miss: {kind} {id}");
            return Ok(None);
        };
        tracing::debug!("cache hit: {kind} {id}");
        self.touched(&store, kind, id, accessed_s, now_s);
        Ok(Some(doc))
    }

    /// Records a read for LRU eviction without writing: the stamp is written with this
    /// process's next write, or in a batch of its own once enough piled up.
    fn touched(&self, store: &Arc<Store>, kind: EntryKind, id: &Digest, stamp: u32, now: u32) {
        if now.saturating_sub(stamp) < self.granularity_s {
            return;
        }
        // One background flush at a time: reads that pile up more stamps meanwhile leave
        // them to the flush already queued (or to the next write).
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

    async fn remove(&self, keys: Vec<(EntryKind, String)>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.blocking(move |s| {
            let mut removed = 0;
            for chunk in keys.chunks(WRITE_CHUNK) {
                let (now_ms, _) = store::now();
                removed += s.write("cannot delete from the scan cache", &mut |txn, dbs| {
                    let mut n = 0;
                    for (kind, key) in chunk {
                        if let Some(old) = store::remove_entry(txn, dbs, *kind, key.as_bytes())?
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
    async fn walk<T, F>(
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
                            store::scan(
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
                    visit(item)?;
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

/// Reads and decodes one entry with its access stamp; `None` when absent or expired.
fn read_live<T: Document>(
    txn: &RoTxn<'_>,
    dbs: &Dbs,
    id: &Digest,
    now_ms: u64,
) -> Result<Option<(T, u32)>, Fail> {
    let Some(stored) = dbs.of(T::KIND).get(txn, id.as_str().as_bytes())? else {
        return Ok(None);
    };
    let (header, doc) = value::decode(stored).ok_or_else(|| short_value(T::KIND, id))?;
    if header.is_expired(now_ms) {
        return Ok(None);
    }
    let doc = codec::decode::<T>(id.as_str(), doc)?;
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
    let (now_ms, _) = store::now();
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

    async fn put_artifact(&self, id: &ArtifactId, info: &ArtifactInfo) -> Result<()> {
        self.put_doc(id.digest(), info).await
    }

    async fn put_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()> {
        self.put_doc(id.digest(), info).await
    }

    async fn get_artifact(&self, id: &ArtifactId) -> Result<Option<ArtifactInfo>> {
        self.get_doc(id.digest()).await
    }

    async fn get_blob(&self, id: &BlobId) -> Result<Option<BlobInfo>> {
        self.get_doc(id.digest()).await
    }

    async fn get_blobs(&self, ids: &[BlobId]) -> Result<Vec<Option<BlobInfo>>> {
        let store = self.store()?;
        let (now_ms, now_s) = store::now();
        let found = store.read("cannot read the scan cache", &mut |txn, dbs| {
            ids.iter()
                .map(|id| read_live::<BlobInfo>(txn, dbs, id.digest(), now_ms))
                .collect::<Result<Vec<_>, Fail>>()
        })?;
        Ok(found
            .into_iter()
            .zip(ids)
            .map(|(doc, id)| {
                doc.map(|(doc, stamp)| {
                    self.touched(&store, EntryKind::Blob, id.digest(), stamp, now_s);
                    doc
                })
            })
            .collect())
    }

    async fn delete_blobs(&self, ids: &[BlobId]) -> Result<()> {
        let keys = ids
            .iter()
            .map(|id| (EntryKind::Blob, id.as_str().to_owned()))
            .collect();
        self.remove(keys).await.map(|_| ())
    }

    async fn delete(&self, keys: &[EntryKey]) -> Result<u64> {
        let keys = keys
            .iter()
            .map(|k| (k.kind, k.id.as_str().to_owned()))
            .collect();
        self.remove(keys).await
    }

    async fn clear(&self) -> Result<()> {
        self.blocking(|s| {
            s.forget_touches();
            s.write("cannot clear the scan cache", &mut |txn, dbs| {
                store::clear_all(txn, dbs).map_err(Fail::from)
            })?;
            // The entries are gone for every process already; compaction only returns
            // the disk space, so its failure is not the caller's problem.
            if let Err(e) = s.compact() {
                tracing::warn!("scan cache cleared, but its disk space was not returned: {e}");
            }
            Ok(())
        })
        .await
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

    async fn list(&self, kind: Option<EntryKind>, visit: Visitor<'_, EntryMeta>) -> Result<()> {
        self.walk(
            kind,
            |kind, key, stored| {
                Some(EntryMeta {
                    key: entry_key(kind, key)?,
                    size: store::doc_len(stored),
                    expires_at: value::decode(stored).and_then(|(h, _)| h.expires_at()),
                })
            },
            visit,
        )
        .await
    }

    async fn stats(&self) -> Result<Stats> {
        let mut stats = self
            .blocking(|s| {
                let (now_ms, _) = store::now();
                s.read("cannot read the scan cache", &mut |txn, dbs| {
                    let mut stats = Stats::default();
                    for kind in EntryKind::ALL {
                        for item in dbs.of(kind).iter(txn)? {
                            let (_, stored) = item?;
                            let expired =
                                value::decode(stored).is_some_and(|(h, _)| h.is_expired(now_ms));
                            if expired {
                                stats.expired += 1;
                                continue;
                            }
                            match kind {
                                EntryKind::Artifact => stats.artifacts += 1,
                                EntryKind::Blob => stats.blobs += 1,
                            }
                            stats.bytes += store::doc_len(stored);
                        }
                    }
                    Ok(stats)
                })
            })
            .await?;
        stats.disk_bytes = Some(self.store()?.disk_bytes()?);
        Ok(stats)
    }

    async fn gc(&self) -> Result<GcReport> {
        let before = self.blocking(Store::disk_bytes).await?;
        let (now_ms, _) = store::now();
        // Find candidates without holding the writer lock ...
        let mut candidates: Vec<(EntryKind, Vec<u8>)> = Vec::new();
        self.walk(
            None,
            move |kind, key, stored| classify(kind, stored, now_ms).map(|_| (kind, key.to_vec())),
            &mut |candidate| {
                candidates.push(candidate);
                Ok(())
            },
        )
        .await?;
        self.blocking(move |s| {
            // ... then remove them in short write transactions, judging each again
            // (another process may have rewritten it meanwhile).
            let mut report = GcReport::default();
            for chunk in candidates.chunks(WRITE_CHUNK) {
                let (expired, stale, bytes) =
                    s.write("cannot delete from the scan cache", &mut |txn, dbs| {
                        let (mut expired, mut stale, mut bytes) = (0, 0, 0);
                        for (kind, key) in chunk {
                            let Some(stored) = dbs.of(*kind).get(txn, key)? else {
                                continue;
                            };
                            let Some(class) = classify(*kind, stored, now_ms) else {
                                continue;
                            };
                            if let Some(old) = store::remove_entry(txn, dbs, *kind, key)? {
                                bytes += old.doc_len;
                                match class {
                                    Class::Expired => expired += 1,
                                    Class::Stale => stale += 1,
                                }
                            }
                        }
                        Ok((expired, stale, bytes))
                    })?;
                report.expired += expired;
                report.stale += stale;
                report.bytes += bytes;
            }
            s.compact()?;
            report.disk_bytes = Some((before, s.disk_bytes()?));
            tracing::debug!("gc: {report:?}");
            Ok(report)
        })
        .await
    }

    async fn export(&self, kind: Option<EntryKind>, visit: Visitor<'_, RawEntry>) -> Result<()> {
        let (now_ms, _) = store::now();
        self.walk(
            kind,
            move |kind, key, stored| match value::decode(stored) {
                Some((h, _)) if h.is_expired(now_ms) => None,
                Some((h, doc)) => Some(RawEntry {
                    key: entry_key(kind, key)?,
                    value: doc.to_vec(),
                    expires_at: h.expires_at(),
                }),
                // A value without a header is corrupt; export its bytes as they are so
                // that nothing is silently lost.
                None => Some(RawEntry {
                    key: entry_key(kind, key)?,
                    value: stored.to_vec(),
                    expires_at: None,
                }),
            },
            visit,
        )
        .await
    }

    async fn import(&self, entries: &[RawEntry]) -> Result<()> {
        let entries: Vec<RawEntry> = entries.to_vec();
        let max = self.max_size;
        self.blocking(move |s| {
            for chunk in entries.chunks(WRITE_CHUNK) {
                let (now_ms, now_s) = store::now();
                s.write("cannot write to the scan cache", &mut |txn, dbs| {
                    for e in chunk {
                        let key = e.key.id.as_str().as_bytes();
                        let header = Header {
                            expires_ms: value::expires_ms(e.expires_at),
                            accessed_s: now_s,
                            schema: Schema::of(&e.value),
                        };
                        if header.is_expired(now_ms) {
                            // Storing an already expired entry is the same as having none.
                            store::remove_entry(txn, dbs, e.key.kind, key)?;
                        } else {
                            store::put_entry(txn, dbs, e.key.kind, key, header, &e.value)?;
                        }
                    }
                    if let Some(max) = max {
                        store::evict(txn, dbs, max, &[])?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })
        .await
    }
}

/// Why gc removes an entry.
#[derive(Clone, Copy)]
enum Class {
    Expired,
    Stale,
}

/// Judges a stored value for gc: `None` keeps it.
fn classify(kind: EntryKind, stored: &[u8], now_ms: u64) -> Option<Class> {
    match value::decode(stored) {
        None => Some(Class::Stale),
        Some((h, _)) if h.is_expired(now_ms) => Some(Class::Expired),
        // gc judges the document itself, whatever the header says.
        Some((_, doc)) if !codec::is_sound(kind, doc) => Some(Class::Stale),
        Some(_) => None,
    }
}
