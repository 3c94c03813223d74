//! The swap gate: a shared/exclusive `flock` on `fanal/gc.lock` that keeps compaction from
//! replacing `data.mdb` while any process is inside a write, and the generation counter
//! that tells every process when the file was replaced.
//!
//! Writers hold the gate shared for the length of one write transaction (never for a
//! process's lifetime), and readers only to reopen a replaced file. Compaction holds it
//! exclusive to swap the file (when and for how long: [`crate::store::compact`]).
//!
//! `flock` locks belong to an open file description, so one process must not lock the
//! same descriptor from several threads independently: the in-process count below takes
//! the OS lock when the first thread enters and drops it when the last one leaves. The kernel drops the
//! lock of a killed process, so a crash can never leave the gate closed.
//!
//! The generation is the length of `gc.lock`: compaction appends one byte before it
//! touches `data.mdb` or `lock.mdb`, and every operation compares the length (one
//! `fstat`) with the generation its environment was opened at.

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::{Condvar, Mutex, MutexGuard},
};

use cache_core::{Error, Result};

/// The cross-process swap gate of one cache directory.
#[derive(Debug)]
pub(crate) struct Gate {
    file: File,
    path: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Threads of this process inside the gate shared.
    shared: usize,
    /// A thread of this process holds the gate exclusive.
    exclusive: bool,
    /// Threads of this process waiting for the gate exclusive; new shared entries wait
    /// for them so that compaction cannot be starved from inside the process.
    waiting: usize,
}

impl Gate {
    /// Opens (creating if needed, mode 0600) the gate file.
    pub(crate) fn open(path: &Path) -> Result<Gate> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .map_err(|e| Error::io("cannot open the cache lock file", path, e))?;
        Ok(Gate {
            file,
            path: path.to_owned(),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters the gate shared: no compaction can replace the data file until the guard
    /// is dropped. Must not be nested in one thread.
    pub(crate) fn shared(&self) -> Result<SharedGuard<'_>> {
        let mut state = self.lock_state();
        while state.exclusive || state.waiting > 0 {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.shared == 0 {
            // Holding the mutex while this blocks only makes other threads of this
            // process wait for the same lock they would wait for anyway.
            fs4::FileExt::lock_shared(&self.file)
                .map_err(|e| Error::io("cannot lock the cache lock file", &self.path, e))?;
        }
        state.shared += 1;
        Ok(SharedGuard { gate: self })
    }

    /// Takes the gate exclusive: waits until no thread of any process is inside it.
    pub(crate) fn exclusive(&self) -> Result<ExclusiveGuard<'_>> {
        let mut state = self.lock_state();
        state.waiting += 1;
        while state.exclusive || state.shared > 0 {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.waiting -= 1;
        if let Err(e) = fs4::FileExt::lock(&self.file) {
            drop(state);
            self.changed.notify_all();
            return Err(Error::io("cannot lock the cache lock file", &self.path, e));
        }
        state.exclusive = true;
        Ok(ExclusiveGuard { gate: self })
    }

    /// The current generation of the data file.
    pub(crate) fn generation(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("cannot read the cache lock file", &self.path, e))
    }

    /// Starts a new generation (only while holding the gate exclusive) and makes it
    /// durable before the caller replaces any file.
    pub(crate) fn bump(&self, _proof: &ExclusiveGuard<'_>) -> Result<u64> {
        let next = self.generation()? + 1;
        self.file
            .set_len(next)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| Error::io("cannot update the cache lock file", &self.path, e))?;
        Ok(next)
    }

    fn unlock(&self) {
        if let Err(e) = fs4::FileExt::unlock(&self.file) {
            // The lock goes away with the descriptor at the latest; nothing else to do.
            tracing::warn!("cannot unlock {}: {e}", self.path.display());
        }
    }
}

/// Proof that this thread is inside the gate shared.
#[derive(Debug)]
pub(crate) struct SharedGuard<'a> {
    gate: &'a Gate,
}

impl Drop for SharedGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock_state();
        state.shared -= 1;
        if state.shared == 0 {
            self.gate.unlock();
        }
        drop(state);
        self.gate.changed.notify_all();
    }
}

/// Proof that this thread holds the gate exclusive.
#[derive(Debug)]
pub(crate) struct ExclusiveGuard<'a> {
    gate: &'a Gate,
}

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock_state();
        self.gate.unlock();
        state.exclusive = false;
        drop(state);
        self.gate.changed.notify_all();
    }
}
