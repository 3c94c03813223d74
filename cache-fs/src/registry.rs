//! The registry of open stores: at most one LMDB environment per cache directory per
//! process.
//!
//! LMDB requires that a process opens a data file at most once (a second environment on
//! the same file would keep its own locks and could corrupt it), and heed refuses it
//! with `EnvAlreadyOpened`. So every `FsCache` of a process on one directory shares one
//! store: a [`Registry`] maps the canonical directory to the store open on it, holding
//! it weakly, so that the environment closes when the last cache using it lets go.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Mutex, Weak},
};

use cache_core::Result;

/// Values open in this process, by canonical directory, each kept only while in use.
pub(crate) struct Registry<T> {
    open: LazyLock<Mutex<HashMap<PathBuf, Weak<T>>>>,
}

impl<T> Registry<T> {
    /// An empty registry (for a `static`).
    pub(crate) const fn new() -> Self {
        Registry {
            open: LazyLock::new(Default::default),
        }
    }

    /// The value open on `dir` (an existing, canonical directory), or a new one made by
    /// `open`. The registry stays locked while `open` runs, so two threads never open the
    /// same directory at once.
    pub(crate) fn get_or_open(
        &self,
        dir: &Path,
        open: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<T>> {
        let mut registered = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = registered.get(dir).and_then(Weak::upgrade) {
            return Ok(value);
        }
        registered.retain(|_, w| w.strong_count() > 0);
        let value = Arc::new(open()?);
        registered.insert(dir.to_owned(), Arc::downgrade(&value));
        Ok(value)
    }
}
