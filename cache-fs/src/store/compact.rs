//! Compaction and swap: how `gc` and `clear` give disk space back.
//!
//! LMDB never shrinks its file: deleted entries only leave free pages for later writes.
//! Once `gc` or `clear` deleted entries (in write transactions of their own, which every
//! process sees at once), [`Store::compact`] writes a compacted copy of the environment
//! to a new file beside `data.mdb` and renames it over `data.mdb`:
//!
//! 1. The copy is made while every process goes on reading and writing.
//! 2. The swap takes the swap gate exclusive ([`crate::gate`]: no process is inside a
//!    write) and this process's handle write guard (no transaction of this process is
//!    active), and goes ahead only if the file is still of the generation copied and no
//!    transaction committed since the copy started. Otherwise the copy is dropped and
//!    made again.
//! 3. When writers kept changing the file during two copies in a row, the third copy is
//!    made while holding the gate exclusive: writers of every process wait for it,
//!    readers (this process's included) go on.
//! 4. The swap starts a new generation of the gate before it renames the copy
//!    ([`Store::swap`] gives the order of its steps and what a crash at each leaves).
//!    Every process notices the new generation before its next transaction and reopens
//!    (`Store::current`); one still mapping the old file meanwhile reads a consistent
//!    snapshot, and the old file's space returns when its last user moves on.
//!
//! Compactions of one process run one at a time (`Store::compacting`): two would only
//! race each other for the swap and waste copies. Each compaction, of any process, writes
//! its own uniquely named copy and locks it for as long as it exists, so a copy left by
//! a writer that died can be told apart and removed ([`Store::remove_stale_temp_files`]).

use std::{fs::File, path::Path};

use cache_core::{Error, Result};
use heed::{CompactionOption, Env, MdbError, WithoutTls};
use tempfile::TempPath;

use crate::{
    gate::ExclusiveGuard,
    store::{Fail, Handle, RETRIES, Store},
};

/// Name of compaction copies: `data.mdb.compact-<random>.tmp` (older versions used the
/// PID in place of the random part; those are cleaned up the same way).
const TEMP_PREFIX: &str = "data.mdb.compact-";
const TEMP_SUFFIX: &str = ".tmp";

impl Store {
    /// Rewrites the data file without free pages, so that deleted entries give their disk
    /// space back, and swaps it in for every process (the steps are in the
    /// [module documentation](self)).
    pub(crate) fn compact(&self) -> Result<()> {
        // One at a time in this process (gc and clear, or two handles).
        let _one = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        self.remove_stale_temp_files();
        for _ in 0..2 {
            let current = self.current(false)?;
            let handle = current.handle();
            let generation = handle.generation;
            let txn_before = handle.env.info().last_txn_id;
            let copy = match self.copy(&handle.env) {
                Ok(copy) => copy,
                Err(Fail::Heed(heed::Error::Mdb(MdbError::MapResized))) => {
                    drop(current);
                    self.adopt_map_size()?;
                    continue;
                }
                Err(e) => return Err(self.fail("cannot compact the scan cache", e)),
            };
            drop(current);
            let gate = self.gate.exclusive()?;
            let mut w = self.write_handle();
            let unchanged = self.gate.generation()? == generation
                && w.as_ref().is_some_and(|h| {
                    h.generation == generation && h.env.info().last_txn_id == txn_before
                });
            if unchanged {
                return self.swap(&gate, &mut w, copy);
            }
            drop(w);
            drop(gate);
            drop(copy);
            tracing::debug!("cache changed during compaction; copying again");
        }
        let gate = self.gate.exclusive()?;
        let copy = self.copy_under_gate()?;
        let mut w = self.write_handle();
        self.swap(&gate, &mut w, copy)
    }

    /// Copies the current file while the caller holds the gate exclusive (so no process
    /// can write), under a read guard only, so this process's readers go on meanwhile.
    fn copy_under_gate(&self) -> Result<CompactCopy> {
        for _ in 0..RETRIES {
            let current = self.current(true)?;
            let copied = self.copy(&current.handle().env);
            drop(current);
            match copied {
                Ok(copy) => return Ok(copy),
                Err(Fail::Heed(heed::Error::Mdb(MdbError::MapResized))) => {
                    self.adopt_map_size()?;
                }
                Err(e) => return Err(self.fail("cannot compact the scan cache", e)),
            }
        }
        Err(self.backend("cannot compact the scan cache: the map kept being resized"))
    }

    /// Removes compaction copies whose writer is gone: a writer holds an exclusive
    /// `flock` on its copy from creating it until it is renamed or removed, and the
    /// kernel drops that lock when the writer dies, so a copy whose lock can be taken
    /// is abandoned. Works across PID namespaces (containers sharing the directory),
    /// unlike a PID check.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_copy = name
                .to_str()
                .is_some_and(|n| n.starts_with(TEMP_PREFIX) && n.ends_with(TEMP_SUFFIX));
            if !is_copy {
                continue;
            }
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            match fs4::FileExt::try_lock(&file) {
                // Abandoned. Remove it while holding its lock (so its writer, should it
                // be between creating and locking it, finds it gone or locked and makes
                // another), and only if the name still refers to the file locked.
                Ok(()) if same_file(&file, &path) => {
                    tracing::debug!("removing abandoned compaction file {}", path.display());
                    remove_quietly(&path);
                }
                Ok(()) => {}
                Err(fs4::TryLockError::WouldBlock) => {}
                Err(fs4::TryLockError::Error(e)) => {
                    tracing::debug!("cannot check {}: {e}", path.display());
                }
            }
        }
    }

    /// Creates a new, exclusively locked compaction file in the cache directory.
    fn new_copy_file(&self) -> Result<(File, TempPath), Fail> {
        for _ in 0..8 {
            let (file, path) = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .suffix(TEMP_SUFFIX)
                .tempfile_in(&self.dir)
                .map_err(|e| Error::io("cannot create a compaction file in", &self.dir, e))?
                .into_parts();
            match fs4::FileExt::try_lock(&file) {
                // Locked and still under its name: no cleaner can remove it now.
                Ok(()) if same_file(&file, &path) => return Ok((file, path)),
                // A cleaner of another process took it for abandoned between its
                // creation and our lock (it holds the lock or already removed it).
                Ok(()) | Err(fs4::TryLockError::WouldBlock) => {}
                Err(fs4::TryLockError::Error(e)) => {
                    return Err(Error::io("cannot lock the compaction file", &path, e).into());
                }
            }
        }
        Err(self
            .backend("cannot create a compaction file: it kept being removed")
            .into())
    }

    /// Writes a compacted copy of the environment to a new temp file in the same
    /// directory and makes it durable.
    fn copy(&self, env: &Env<WithoutTls>) -> Result<CompactCopy, Fail> {
        let (mut file, path) = self.new_copy_file()?;
        env.copy_to_file(&mut file, CompactionOption::Enabled)
            .map_err(|e| match e {
                heed::Error::Io(source) => {
                    Fail::Core(Error::io("cannot write the compaction file", &path, source))
                }
                e => Fail::Heed(e),
            })?;
        file.sync_all()
            .map_err(|e| Error::io("cannot write the compaction file", &path, e))?;
        // On any error above, dropping `path` removes the partial copy.
        Ok(CompactCopy { file, path })
    }

    /// Replaces `data.mdb` with the compacted copy. The caller holds the gate exclusive
    /// (no process is inside a write) and the handle write guard (no transaction of this
    /// process is active).
    ///
    /// Order matters for failure and crash safety:
    /// 1. The copy must still be the file at its temp path (we hold its lock, so no
    ///    cleaner removes it after this check).
    /// 2. The generation is bumped (durably): from here every process reopens before its
    ///    next operation. Nothing else changed yet, so a failure or crash here only costs
    ///    a reopen of the same files.
    /// 3. The copy is renamed over `data.mdb`, atomically: an opener sees the old
    ///    complete file or the new complete file. If this fails, `data.mdb` and
    ///    `lock.mdb` are untouched and this process reopens them as they are, so readers
    ///    of other processes stay registered in the lock file writers use.
    /// 4. `lock.mdb` is removed, so the first opener of the new file builds a fresh lock
    ///    file (the old one describes readers and transactions of the old file, which
    ///    processes still mapping it keep using through their open descriptor).
    ///
    /// A crash between 3 and 4 leaves the new file beside the old lock file. LMDB
    /// re-initialises a lock file whose opener is its only user (as after a crash of every
    /// process); while another process still has the old environment open, the first
    /// transactions on the new file may use the copy's empty first meta page, so the
    /// cache may lose its entries, but every read sees a consistent tree.
    fn swap(
        &self,
        gate: &ExclusiveGuard<'_>,
        slot: &mut Option<Handle>,
        copy: CompactCopy,
    ) -> Result<()> {
        if !same_file(&copy.file, &copy.path) {
            return Err(self.backend(format!(
                "cannot compact the scan cache: the compaction file {} was removed or \
                 replaced while it was written",
                copy.path.display()
            )));
        }
        let generation = self.gate.bump(gate)?;
        *slot = None;
        if let Err(e) = std::fs::rename(&copy.path, &self.data_path) {
            drop(copy);
            // Reopen the old file (with its own lock file) so this process stays usable.
            self.reopen(slot, generation)?;
            return Err(Error::io("cannot replace", &self.data_path, e));
        }
        let CompactCopy { file, path } = copy;
        // The name is gone (it is `data.mdb` now): nothing to remove on drop.
        if let Err(e) = path.keep() {
            tracing::debug!("{e}");
        }
        let removed = match std::fs::remove_file(&self.lock_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                "compacted the scan cache but cannot replace",
                &self.lock_path,
                e,
            )),
        };
        if let Ok(dir) = File::open(&self.dir) {
            // Make the rename durable; failure here only weakens durability of the swap.
            let _ = dir.sync_all();
        }
        // The copy's lock is no longer needed once it is `data.mdb`.
        drop(file);
        self.reopen(slot, generation)?;
        removed
    }
}

/// A compacted copy of the data file beside it, exclusively locked by this process (so
/// no cleaner removes it) until it is renamed over `data.mdb` or dropped (which removes
/// it).
struct CompactCopy {
    file: File,
    path: TempPath,
}

/// True when `path` still names the file open as `file` (same device and inode).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::test_support::open;

    /// Compaction files are unique per compaction and locked by their writer.
    #[test]
    fn compaction_files_are_unique_and_locked() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(&tmp);
        let (a, a_path) = store.new_copy_file().unwrap();
        let (_b, b_path) = store.new_copy_file().unwrap();
        assert_ne!(a_path.to_path_buf(), b_path.to_path_buf());
        let other = File::open(&a_path).unwrap();
        assert!(matches!(
            fs4::FileExt::try_lock(&other),
            Err(fs4::TryLockError::WouldBlock)
        ));
        store.remove_stale_temp_files();
        assert!(a_path.exists() && b_path.exists(), "live copies removed");
        drop(a);
        // Its writer let go of it (as a dead process would): abandoned.
        store.remove_stale_temp_files();
        assert!(!a_path.exists() && b_path.exists());
    }
}
