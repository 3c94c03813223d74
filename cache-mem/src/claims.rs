//! Claims of the single-flight ([`cache_core::claim`]) among the tasks of one process: a
//! map from blob key to its live claim, with a `Notify` that wakes waiters on release.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cache_core::{BlobId, Claim, Claimed};
use tokio::{sync::Notify, time::Instant};

/// One live (or run-out) claim.
#[derive(Debug)]
struct Entry {
    token: String,
    expires: Instant,
    released: Arc<Notify>,
}

/// The claims of one `MemCache`.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    map: Mutex<HashMap<BlobId, Entry>>,
    counter: AtomicU64,
}

impl Claims {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Grants each key without a live claim; a run-out claim is replaced (taken over).
    pub(crate) fn claim(&self, ids: &[BlobId], lease: Duration) -> Vec<Claimed> {
        let now = Instant::now();
        let mut map = self.map();
        ids.iter()
            .map(|id| {
                if map.get(id).is_some_and(|e| e.expires > now) {
                    return Claimed::Busy;
                }
                let token = self.counter.fetch_add(1, Ordering::Relaxed).to_string();
                let old = map.insert(
                    id.clone(),
                    Entry {
                        token: token.clone(),
                        expires: now + lease,
                        released: Arc::new(Notify::new()),
                    },
                );
                if let Some(old) = old {
                    old.released.notify_waiters();
                }
                Claimed::Owned(Claim::new(id.clone(), token))
            })
            .collect()
    }

    /// Pushes the expiry of the caller's claims on.
    pub(crate) fn renew(&self, claims: &[Claim], lease: Duration) {
        let expires = Instant::now() + lease;
        let mut map = self.map();
        for c in claims {
            if let Some(e) = map.get_mut(c.id())
                && e.token == c.token()
            {
                e.expires = expires;
            }
        }
    }

    /// Ends the caller's claims and wakes their waiters.
    pub(crate) fn release(&self, claims: &[Claim]) {
        let mut map = self.map();
        for c in claims {
            if map.get(c.id()).is_some_and(|e| e.token == c.token())
                && let Some(e) = map.remove(c.id())
            {
                e.released.notify_waiters();
            }
        }
    }

    /// Waits until the claim on `id` is released or runs out, at most `timeout`.
    pub(crate) async fn await_release(&self, id: &BlobId, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let (released, expires) = {
                let map = self.map();
                match map.get(id) {
                    Some(e) if e.expires > Instant::now() => (Arc::clone(&e.released), e.expires),
                    _ => return true,
                }
            };
            let notified = released.notified();
            tokio::pin!(notified);
            // Registered before the map is looked at again, so a release in between
            // is not missed.
            notified.as_mut().enable();
            if !self
                .map()
                .get(id)
                .is_some_and(|e| Arc::ptr_eq(&e.released, &released))
            {
                return true;
            }
            tokio::select! {
                () = &mut notified => return true,
                () = tokio::time::sleep_until(expires.min(deadline)) => {}
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}
