//! [`Store`]: the LMDB environment of one cache directory, shared by every
//! [`crate::FsCache`] of a process on it, and the read and write transactions that run
//! on it, with their retries and errors.
//!
//! # Concurrency
//!
//! - Within a process, every transaction runs under a read guard of `handle`; growing the
//!   map ([`crate::growth`]) and reopening the environment take the write guard.
//! - Across processes, LMDB itself serialises writers (one robust mutex in `lock.mdb`,
//!   held from the start of a write transaction to its commit) and never blocks readers.
//! - A write transaction runs inside the swap gate ([`Gate`], shared), so that no
//!   compaction replaces `data.mdb` under it. Readers enter the gate only to reopen after
//!   the file was replaced ([`Store::current`]), never for a read transaction.
//!
//! The mechanisms around the transactions each have their own module: one store per
//! directory ([`crate::registry`]), map growth ([`crate::growth`]), access stamps written
//! with the next write ([`crate::touch`]), and compaction, which replaces the file
//! ([`compact`]).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak},
    thread::Thread,
    time::Duration,
};

use cache_core::{EntryKind, Error, Result};
use heed::{Env, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};

use crate::{
    config::FsConfig,
    entry::Dbs,
    gate::Gate,
    growth,
    registry::Registry,
    touch::{self, Touch, Touches},
};

pub(crate) mod compact;

/// Reader slots in `lock.mdb`. With `MDB_NOTLS` a slot is held only for the length of a
/// read transaction, so this bounds concurrent readers, not processes.
const MAX_READERS: u32 = 1022;

/// How often one operation may retry after the map was resized or the file replaced.
const RETRIES: usize = 64;

/// An open environment and the generation of the data file it maps.
struct Handle {
    env: Env<WithoutTls>,
    dbs: Dbs,
    generation: u64,
}

/// Why a transaction body failed: an LMDB error (some of which are retried) or a cache
/// error to pass on as is.
#[derive(Debug)]
pub(crate) enum Fail {
    /// From heed / LMDB.
    Heed(heed::Error),
    /// Already a cache error (e.g. a visitor's error).
    Core(Error),
    /// The map was full at this size (internal to [`Store::write`]).
    MapFull(usize),
}

impl From<heed::Error> for Fail {
    fn from(e: heed::Error) -> Self {
        Fail::Heed(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Core(e)
    }
}

/// A read transaction's view: the transaction plus the databases.
pub(crate) type ReadFn<'f, R> = dyn FnMut(&RoTxn<'_>, &Dbs) -> Result<R, Fail> + 'f;

/// Stores open in this process: one per directory (see [`crate::registry`]).
static OPEN: Registry<Store> = Registry::new();

/// The LMDB environment of one cache directory (`<cache-dir>/fanal`).
pub(crate) struct Store {
    dir: PathBuf,
    data_path: PathBuf,
    lock_path: PathBuf,
    location: String,
    initial_map_size: usize,
    gate: Gate,
    handle: RwLock<Option<Handle>>,
    /// Access stamps waiting to be written with the next write.
    touches: Touches,
    /// How long a stamp may wait before the flusher thread writes it.
    flush_after: Duration,
    /// The flusher thread, once a stamp was recorded ([`Store::start_flusher`]).
    flusher: OnceLock<Thread>,
    /// Held for the whole of a compaction: one at a time per process (see [`compact`]).
    compacting: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

/// A read guard on an open handle.
struct Current<'a>(RwLockReadGuard<'a, Option<Handle>>);

impl Current<'_> {
    fn handle(&self) -> &Handle {
        self.0
            .as_ref()
            .expect("Current is only built over an open handle")
    }
}

impl Store {
    /// Returns the store of `dir` (an existing, canonical `fanal` directory), opening it
    /// if no other cache of this process has.
    pub(crate) fn open(dir: &Path, config: &FsConfig) -> Result<Arc<Store>> {
        OPEN.get_or_open(dir, || Store::new(dir, config))
    }

    /// Opens the store of `dir`; only [`Store::open`] calls this, under the registry.
    fn new(dir: &Path, config: &FsConfig) -> Result<Store> {
        let store = Store {
            dir: dir.to_owned(),
            data_path: dir.join("data.mdb"),
            lock_path: dir.join("lock.mdb"),
            location: dir.display().to_string(),
            initial_map_size: growth::initial_map_size(config.initial_map_size),
            gate: Gate::open(&dir.join("gc.lock"))?,
            handle: RwLock::new(None),
            touches: Touches::default(),
            flush_after: config.access_flush_after.max(Duration::from_secs(1)),
            flusher: OnceLock::new(),
            compacting: Mutex::new(()),
        };
        {
            let _gate = store.gate.shared()?;
            let generation = store.gate.generation()?;
            let mut w = store.write_handle();
            store.reopen(&mut w, generation)?;
        }
        Ok(store)
    }

    fn read_handle(&self) -> RwLockReadGuard<'_, Option<Handle>> {
        self.handle.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_handle(&self) -> RwLockWriteGuard<'_, Option<Handle>> {
        self.handle.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the current environment (if any) and opens the data file as it is now.
    /// The caller holds the write guard and, unless it holds the gate exclusive, the gate
    /// shared.
    fn reopen(&self, slot: &mut Option<Handle>, generation: u64) -> Result<()> {
        // heed refuses a second environment on the same path, so close the old one first.
        *slot = None;
        let (env, dbs) = self.open_env()?;
        *slot = Some(Handle {
            env,
            dbs,
            generation,
        });
        Ok(())
    }

    fn open_env(&self) -> Result<(Env<WithoutTls>, Dbs)> {
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.max_dbs(8).max_readers(MAX_READERS);
        let mut tries = 0;
        let env = loop {
            // SAFETY: LMDB requires that a file is opened at most once per process and
            // that nobody truncates or rewrites it behind LMDB's back. The first holds
            // because every store is opened through the registry (`Store::open`), one per
            // directory, and closes its old environment before reopening (heed rejects
            // duplicates as `EnvAlreadyOpened` too). The second holds because the only code that
            // replaces `data.mdb` (`Store::swap`) renames a complete new file over it
            // under the exclusive gate, so an old mapping keeps its old, unchanged inode.
            #[allow(unsafe_code)]
            let opened = unsafe { options.open(&self.dir) };
            match opened {
                Ok(env) => break env,
                // A cache of this process on the same directory is being dropped by
                // another thread right now; wait until its environment is closed.
                Err(heed::Error::EnvAlreadyOpened) if tries < 400 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(self.open_error(e)),
            }
        };
        match env.clear_stale_readers() {
            Ok(0) => {}
            Ok(n) => tracing::debug!("reclaimed {n} reader slots of dead processes"),
            Err(e) => tracing::warn!("cannot check for stale readers in {}: {e}", self.location),
        }
        growth::reserve(&env, self.initial_map_size).map_err(|e| self.open_error(e))?;
        let dbs = self.open_dbs(&env)?;
        Ok((env, dbs))
    }

    fn open_error(&self, e: heed::Error) -> Error {
        match e {
            heed::Error::Io(source) => {
                Error::io("cannot open the scan cache", &self.data_path, source)
            }
            heed::Error::Mdb(MdbError::Invalid | MdbError::VersionMismatch) => Error::Backend {
                backend: self.location.clone(),
                message: format!(
                    "cannot open the scan cache {}: not an LMDB database of a supported \
                     version ({e}); remove it with `scancache clean --scan-cache`",
                    self.data_path.display()
                ),
            },
            e => Error::Backend {
                backend: self.location.clone(),
                message: format!("cannot open the scan cache: {e}"),
            },
        }
    }

    fn open_dbs(&self, env: &Env<WithoutTls>) -> Result<Dbs> {
        for _ in 0..RETRIES {
            let rtxn = match env.read_txn() {
                Ok(t) => t,
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    growth::adopt(env).map_err(|e| self.open_error(e))?;
                    continue;
                }
                Err(e) => return Err(self.open_error(e)),
            };
            if let Some(dbs) = Dbs::open(env, rtxn).map_err(|e| self.open_error(e))? {
                return Ok(dbs);
            }
            // First use of this directory: create the databases.
            let wtxn = match env.write_txn() {
                Ok(t) => t,
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    growth::adopt(env).map_err(|e| self.open_error(e))?;
                    continue;
                }
                Err(e) => return Err(self.open_error(e)),
            };
            if let Some(dbs) = Dbs::create(env, wtxn).map_err(|e| self.open_error(e))? {
                return Ok(dbs);
            }
        }
        Err(self.backend("cannot open the scan cache databases: the map kept changing"))
    }

    fn backend(&self, message: impl Into<String>) -> Error {
        Error::Backend {
            backend: self.location.clone(),
            message: message.into(),
        }
    }

    /// Turns a failed operation into a cache error that says what was being done.
    pub(crate) fn fail(&self, action: &'static str, e: Fail) -> Error {
        match e {
            Fail::Core(e) => e,
            Fail::Heed(heed::Error::Io(source)) => Error::io(
                action,
                &self.data_path,
                explain_full_disk(&self.data_path, source),
            ),
            Fail::Heed(e) => self.backend(format!("{action}: {e}")),
            Fail::MapFull(size) => self.backend(format!("{action}: map full at {size} bytes")),
        }
    }

    /// A read guard on a handle whose generation is current, reopening if the data file
    /// was replaced (or the environment could not be opened before).
    ///
    /// Every transaction starts here, so each notices a new generation of the gate (one
    /// `fstat`) and reopens before it runs. A transaction begun before the file was
    /// replaced goes on with the old file, which nothing writes to again: it reads a
    /// consistent snapshot of the moment of the swap.
    fn current(&self, gate_held: bool) -> Result<Current<'_>> {
        for _ in 0..RETRIES {
            let generation = self.gate.generation()?;
            let guard = self.read_handle();
            if guard.as_ref().is_some_and(|h| h.generation == generation) {
                return Ok(Current(guard));
            }
            drop(guard);
            // Reopen inside the gate, so that no compaction is halfway through a swap.
            let _gate = if gate_held {
                None
            } else {
                Some(self.gate.shared()?)
            };
            let generation = self.gate.generation()?;
            let mut w = self.write_handle();
            if w.as_ref().is_none_or(|h| h.generation != generation) {
                tracing::debug!("scan cache file was replaced; reopening {}", self.location);
                self.reopen(&mut w, generation)?;
            }
            if gate_held {
                // Nothing can swap the file while the caller holds the gate.
                drop(w);
                return Ok(Current(self.read_handle()));
            }
        }
        Err(self.backend("the cache file keeps being replaced; giving up"))
    }

    /// Runs `f` in one read transaction. Never waits for a write transaction of any
    /// process (LMDB readers do not block); it may wait briefly while this process grows
    /// the map, or, right after the file was replaced, until the swap is done and it has
    /// reopened the new file.
    pub(crate) fn read<R>(&self, action: &'static str, f: &mut ReadFn<'_, R>) -> Result<R> {
        let mut readers_full = false;
        for _ in 0..RETRIES {
            let error = {
                let current = self.current(false)?;
                let handle = current.handle();
                match handle.env.read_txn() {
                    Ok(txn) => return f(&txn, &handle.dbs).map_err(|e| self.fail(action, e)),
                    Err(e) => e,
                }
            };
            match error {
                heed::Error::Mdb(MdbError::MapResized) => self.adopt_map_size()?,
                heed::Error::Mdb(MdbError::ReadersFull) if !readers_full => {
                    readers_full = true;
                    let current = self.current(false)?;
                    let _ = current.handle().env.clear_stale_readers();
                }
                e => return Err(self.fail(action, e.into())),
            }
        }
        Err(self.backend(format!("{action}: the map kept being resized")))
    }

    /// Runs `f` in one write transaction inside the gate and commits it, growing the map
    /// and retrying (with `f` called again from scratch) when it is full
    /// ([`crate::growth`]). Pending access stamps of this process are written in the same
    /// transaction ([`crate::touch`]).
    pub(crate) fn write<R>(
        &self,
        action: &'static str,
        f: &mut dyn FnMut(&mut RwTxn<'_>, &Dbs) -> Result<R, Fail>,
    ) -> Result<R> {
        let _gate = self.gate.shared()?;
        let touches = self.touches.take();
        let result = self.write_with(action, &touches, f);
        if result.is_err() {
            // Not written: keep them for the next write.
            self.touches.restore(touches);
        }
        result
    }

    /// The body of [`Store::write`], inside the gate, with the pending stamps taken.
    fn write_with<R>(
        &self,
        action: &'static str,
        touches: &[Touch],
        f: &mut dyn FnMut(&mut RwTxn<'_>, &Dbs) -> Result<R, Fail>,
    ) -> Result<R> {
        for _ in 0..RETRIES {
            let error = {
                let current = self.current(true)?;
                let handle = current.handle();
                match handle.env.write_txn() {
                    Err(e) => Fail::Heed(e),
                    Ok(mut txn) => {
                        let result = touch::apply(&mut txn, &handle.dbs, touches)
                            .map_err(Fail::from)
                            .and_then(|()| f(&mut txn, &handle.dbs));
                        match result.and_then(|r| txn.commit().map(|()| r).map_err(Fail::from)) {
                            Ok(r) => return Ok(r),
                            Err(Fail::Heed(heed::Error::Mdb(MdbError::MapFull))) => {
                                Fail::MapFull(handle.env.info().map_size)
                            }
                            Err(e) => e,
                        }
                    }
                }
            };
            match error {
                Fail::MapFull(seen) => self.grow(seen)?,
                Fail::Heed(heed::Error::Mdb(MdbError::MapResized)) => self.adopt_map_size()?,
                e => return Err(self.fail(action, e)),
            }
        }
        Err(self.backend(format!("{action}: the map kept being resized")))
    }

    /// Grows the map after `MDB_MAP_FULL` at size `seen` ([`growth::grow`]), under the
    /// write guard.
    fn grow(&self, seen: usize) -> Result<()> {
        let w = self.write_handle();
        match w.as_ref() {
            Some(handle) => growth::grow(&handle.env, seen)
                .map_err(|e| self.fail("cannot grow the cache map", e.into())),
            None => Ok(()),
        }
    }

    /// Adopts the map size another process grew the file to ([`growth::adopt`]), under
    /// the write guard.
    fn adopt_map_size(&self) -> Result<()> {
        let w = self.write_handle();
        match w.as_ref() {
            Some(handle) => growth::adopt(&handle.env)
                .map_err(|e| self.fail("cannot adopt the new cache map size", e.into())),
            None => Ok(()),
        }
    }

    /// Remembers that an entry was read at `stamp` (unix seconds); returns how many such
    /// stamps are pending (see [`crate::touch`]).
    pub(crate) fn record_touch(&self, kind: EntryKind, id: &str, stamp: u32) -> usize {
        self.touches.record(kind, id, stamp)
    }

    /// Claims the one background flush of pending stamps; false when one is already
    /// queued or running (it will write whatever is pending when it runs).
    pub(crate) fn claim_background_flush(&self) -> bool {
        self.touches.claim_flush()
    }

    /// Runs the background flush claimed with [`Store::claim_background_flush`].
    pub(crate) fn background_flush(&self) -> Result<()> {
        let _release = self.touches.release_flush_on_drop();
        self.flush_touches()
    }

    /// The pending stamp of one entry, if this process read it since its last write.
    pub(crate) fn pending_stamp(&self, kind: EntryKind, id: &str) -> Option<u32> {
        self.touches.pending_stamp(kind, id)
    }

    /// A copy of every pending stamp of this process.
    pub(crate) fn pending_stamps(&self) -> HashMap<(EntryKind, String), u32> {
        self.touches.snapshot()
    }

    /// Starts, once per store, the thread that writes stamps that have waited longer than
    /// `FsConfig::access_flush_after`, so that an idle process does not keep its reads
    /// from other processes' `gc --unused-for` indefinitely. The thread holds the store
    /// weakly: it ends when the store is dropped (which wakes it).
    pub(crate) fn start_flusher(self: &Arc<Self>) {
        if self.flusher.get().is_some() {
            return;
        }
        let weak: Weak<Store> = Arc::downgrade(self);
        let every = self.flush_after;
        let spawned = std::thread::Builder::new()
            .name("scancache-fs-stamps".into())
            .spawn(move || flusher(&weak, every));
        match spawned {
            Ok(handle) => {
                if let Err(thread) = self.flusher.set(handle.thread().clone()) {
                    // Another reader started one first: stop this one.
                    drop(thread);
                    handle.thread().unpark();
                }
            }
            Err(e) => tracing::debug!("cannot start the access stamp writer: {e}"),
        }
    }

    /// Drops pending stamps (after `clear`, they refer to nothing).
    pub(crate) fn forget_touches(&self) {
        self.touches.forget();
    }

    /// True when access stamps are waiting to be written.
    pub(crate) fn has_touches(&self) -> bool {
        !self.touches.is_empty()
    }

    /// Writes pending access stamps now (best effort).
    pub(crate) fn flush_touches(&self) -> Result<()> {
        if !self.has_touches() {
            return Ok(());
        }
        self.write("cannot record entry access times", &mut |_, _| Ok(()))
    }

    /// Size of the files on disk (`data.mdb` + `lock.mdb`).
    pub(crate) fn disk_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for path in [&self.data_path, &self.lock_path] {
            match std::fs::metadata(path) {
                Ok(m) => total += m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot read the size of", path, e)),
            }
        }
        Ok(total)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.flush_touches() {
            tracing::debug!("cannot record entry access times: {e}");
        }
        if let Some(thread) = self.flusher.get() {
            thread.unpark();
        }
    }
}

/// The flusher thread's loop: wakes every `every`, writes the pending stamps once the
/// oldest has waited that long, and ends when the store is gone (or another thread was
/// started for it).
fn flusher(weak: &Weak<Store>, every: Duration) {
    loop {
        std::thread::park_timeout(every);
        let Some(store) = weak.upgrade() else {
            return;
        };
        if store
            .flusher
            .get()
            .is_some_and(|t| t.id() != std::thread::current().id())
        {
            return;
        }
        let now = crate::value::now().1;
        let waited = store
            .touches
            .oldest()
            .is_some_and(|oldest| u64::from(now.saturating_sub(oldest)) >= every.as_secs());
        if waited
            && store.claim_background_flush()
            && let Err(e) = store.background_flush()
        {
            tracing::debug!("cannot record entry access times: {e}");
        }
    }
}

/// LMDB reports a write that ran out of space as `EIO` (a short write) or `ENOSPC`. When
/// the file system is indeed (nearly) full, say so instead of "Input/output error".
fn explain_full_disk(path: &Path, source: std::io::Error) -> std::io::Error {
    const EIO: i32 = 5;
    const ENOSPC: i32 = 28;
    if !matches!(source.raw_os_error(), Some(EIO | ENOSPC)) {
        return source;
    }
    match path.parent().map(fs4::available_space) {
        Some(Ok(free)) if free < FULL_DISK_SLACK => std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("no space left on the file system ({free} bytes free)"),
        ),
        _ => source,
    }
}

/// Free space below which a failed write is blamed on a full disk.
const FULL_DISK_SLACK: u64 = 4 << 20;

/// Helpers for the unit tests of this crate.
#[cfg(test)]
pub(crate) mod test_support {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::value::{Header, Schema};

    /// The store of a temporary directory.
    pub(crate) fn open(tmp: &tempfile::TempDir) -> Arc<Store> {
        let dir = tmp.path().canonicalize().unwrap();
        Store::open(&dir, &FsConfig::default()).unwrap()
    }

    /// A header of a current document that never expires, last read at `accessed_s`.
    pub(crate) fn header(accessed_s: u32) -> Header {
        Header {
            expires_ms: 0,
            accessed_s,
            schema: Schema::Version(2),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{test_support::*, *};
    use crate::{entry::put_entry, value};

    fn stamp_of(store: &Store, key: &[u8]) -> u32 {
        store
            .read("test", &mut |txn, dbs| {
                let stored = dbs.blobs.get(txn, key)?.unwrap();
                Ok(value::decode(stored).unwrap().0.accessed_s)
            })
            .unwrap()
    }

    /// Access stamps taken by a write that failed are written by the next one.
    #[test]
    fn failed_write_keeps_pending_access_stamps() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(&tmp);
        let doc = br#"{"SchemaVersion":2}"#;
        store
            .write("test", &mut |txn, dbs| {
                Ok(put_entry(txn, dbs, EntryKind::Blob, b"k", header(10), doc)?)
            })
            .unwrap();
        store.record_touch(EntryKind::Blob, "k", 50);
        let err = store
            .write("test", &mut |_, _| {
                Err::<(), _>(Fail::Core(Error::Backend {
                    backend: "test".to_owned(),
                    message: "refused".to_owned(),
                }))
            })
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert!(store.has_touches(), "stamps lost with the failed write");
        assert_eq!(stamp_of(&store, b"k"), 10);
        // A newer read while the stamp was pending wins.
        store.record_touch(EntryKind::Blob, "k", 40);
        store.flush_touches().unwrap();
        assert!(!store.has_touches());
        assert_eq!(stamp_of(&store, b"k"), 50);
    }

    /// Only one background flush is queued at a time; it frees the slot when done.
    #[test]
    fn one_background_flush_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(&tmp);
        assert!(store.claim_background_flush());
        assert!(!store.claim_background_flush());
        assert!(!store.claim_background_flush());
        store.background_flush().unwrap();
        assert!(store.claim_background_flush());
    }
}
