//! Batched access stamps: how reads feed LRU eviction without ever writing.
//!
//! Each entry's header carries the time it was last read, in unix seconds (see
//! [`crate::value`]), and the LRU index is ordered by it (see [`crate::entry`]). A read
//! that finds a stamp older than the access granularity (`FsConfig::access_granularity`,
//! one minute by default) does not write: it records the new stamp here, in memory. The
//! pending stamps are written in the same transaction as this process's next write
//! ([`apply`]), or, once [`TOUCH_FLUSH_AT`] of them piled up, by one background flush of
//! their own. Only one background flush is queued at a time ([`Touches::claim_flush`]):
//! reads that pile up more stamps meanwhile leave them to that flush or to the next write.
//! A stamp never waits in memory much longer than `FsConfig::access_flush_after` (five
//! minutes by default): the store's flusher thread writes stamps that have waited that
//! long, so that `gc --unused-for` in another process sees reads of an idle process too
//! ([`Touches::oldest`]; the thread is `Store::start_flusher`'s).
//!
//! A write that fails puts the stamps it took back ([`Touches::restore`]), keeping the
//! newer of each; `clear` drops them ([`Touches::forget`]), and the last handle of a
//! process writes what is left when it closes. Writing a stamp never makes it older: an
//! entry rewritten meanwhile keeps its newer stamp.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
};

use cache_core::EntryKind;
use heed::RwTxn;

use crate::entry::{self, Dbs};

/// Pending access stamps that trigger a batched write of their own.
pub(crate) const TOUCH_FLUSH_AT: usize = 256;

/// One pending access stamp: the entry and when it was read (unix seconds).
pub(crate) type Touch = (EntryKind, String, u32);

/// The access stamps of one store that wait to be written.
#[derive(Debug, Default)]
pub(crate) struct Touches {
    pending: Mutex<HashMap<(EntryKind, String), u32>>,
    /// The oldest pending stamp (unix seconds); 0 when none is pending.
    oldest: AtomicU32,
    /// A background flush is queued or running.
    flush_queued: AtomicBool,
}

impl Touches {
    fn lock(&self) -> MutexGuard<'_, HashMap<(EntryKind, String), u32>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that an entry was read at `stamp`; returns how many stamps are pending.
    pub(crate) fn record(&self, kind: EntryKind, id: &str, stamp: u32) -> usize {
        let mut pending = self.lock();
        keep_newest(&mut pending, kind, id.to_owned(), stamp);
        self.note_oldest(stamp);
        pending.len()
    }

    /// Keeps `stamp` as the oldest pending one if none is older; called under the lock.
    fn note_oldest(&self, stamp: u32) {
        let oldest = self.oldest.load(Ordering::Acquire);
        if oldest == 0 || stamp < oldest {
            self.oldest.store(stamp.max(1), Ordering::Release);
        }
    }

    /// The oldest pending stamp (unix seconds), if any is pending.
    pub(crate) fn oldest(&self) -> Option<u32> {
        Some(self.oldest.load(Ordering::Acquire)).filter(|&s| s != 0)
    }

    /// The pending stamp of one entry, if any.
    pub(crate) fn pending_stamp(&self, kind: EntryKind, id: &str) -> Option<u32> {
        self.lock().get(&(kind, id.to_owned())).copied()
    }

    /// A copy of every pending stamp, to merge into a walk of the stored ones.
    pub(crate) fn snapshot(&self) -> HashMap<(EntryKind, String), u32> {
        self.lock().clone()
    }

    /// Takes every pending stamp, to write them.
    pub(crate) fn take(&self) -> Vec<Touch> {
        let mut pending = self.lock();
        self.oldest.store(0, Ordering::Release);
        pending.drain().map(|((k, id), s)| (k, id, s)).collect()
    }

    /// Puts back stamps that a failed write took, keeping the newer of each.
    pub(crate) fn restore(&self, taken: Vec<Touch>) {
        if taken.is_empty() {
            return;
        }
        let mut pending = self.lock();
        for (kind, id, stamp) in taken {
            keep_newest(&mut pending, kind, id, stamp);
            self.note_oldest(stamp);
        }
    }

    /// Drops every pending stamp.
    pub(crate) fn forget(&self) {
        let mut pending = self.lock();
        self.oldest.store(0, Ordering::Release);
        pending.clear();
    }

    /// True when no stamp is waiting to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Claims the one background flush; false when one is already queued or running.
    pub(crate) fn claim_flush(&self) -> bool {
        !self.flush_queued.swap(true, Ordering::AcqRel)
    }

    /// Frees the background flush claimed with [`Touches::claim_flush`] when the returned
    /// guard is dropped (whether the flush succeeded or not).
    pub(crate) fn release_flush_on_drop(&self) -> FlushClaim<'_> {
        FlushClaim(&self.flush_queued)
    }
}

/// The claim of a running background flush, released when dropped.
pub(crate) struct FlushClaim<'a>(&'a AtomicBool);

impl Drop for FlushClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn keep_newest(
    pending: &mut HashMap<(EntryKind, String), u32>,
    kind: EntryKind,
    id: String,
    stamp: u32,
) {
    let slot = pending.entry((kind, id)).or_insert(stamp);
    *slot = (*slot).max(stamp);
}

/// Writes taken access stamps in a write transaction: each entry that still exists and
/// carries an older stamp gets the new one ([`entry::restamp`]).
pub(crate) fn apply(txn: &mut RwTxn<'_>, dbs: &Dbs, touches: &[Touch]) -> heed::Result<()> {
    for (kind, id, stamp) in touches {
        entry::restamp(txn, dbs, *kind, id.as_bytes(), *stamp)?;
    }
    Ok(())
}
