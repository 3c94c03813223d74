//! The single-flight of one scan ([`cache_core::claim`]): the layers it is about to
//! analyse are claimed in one [`Cache::claim`] call; those another scan holds are waited
//! for instead of analysed. The claims this scan holds are renewed while it works,
//! released as soon as their results are stored ([`Held::release_stored`], called by the
//! runner after each batch), and all released at once when the scan fails.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use cache_core::{ArtifactId, BlobId, Cache, Claim, ClaimOptions, Claimed, Waited};

use crate::{LayerWork, error::Result, plan::Planned};

/// The claims one scan holds.
pub(crate) struct Held<'a> {
    cache: &'a dyn Cache,
    options: Option<ClaimOptions>,
    claims: Mutex<HashMap<BlobId, Claim>>,
}

/// The planned reads split by the claims: those to do now and those of keys another
/// scan is analysing.
pub(crate) struct Split {
    /// Reads this scan does now (it owns their keys' claims, or they only verify).
    pub(crate) now: Vec<Planned>,
    /// The analyses of keys another scan holds, to wait for.
    pub(crate) waiting: Vec<Planned>,
    /// Keys another scan stored between this scan's `missing_blobs` and its claim.
    pub(crate) stored: HashSet<BlobId>,
}

/// What waiting for other scans' claims gave.
#[derive(Default)]
pub(crate) struct WaitOutcome {
    /// Keys whose result another scan stored while this one waited.
    pub(crate) stored: HashSet<BlobId>,
    /// Analyses this scan does after all: claims taken over, or waits that timed out.
    pub(crate) analyse: Vec<Planned>,
}

impl<'a> Held<'a> {
    /// No claims yet; `options` `None` means the scan does not claim.
    pub(crate) fn new(cache: &'a dyn Cache, options: Option<ClaimOptions>) -> Held<'a> {
        Held {
            cache,
            options,
            claims: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, Claim>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the keys of every analysis in `tasks`, in one call, and splits the tasks.
    /// When claims were granted, asks once more which of their keys are missing: another
    /// scan may have stored and released one since this scan's `missing_blobs`, and it
    /// is not analysed twice.
    pub(crate) async fn claim(&self, artifact: &ArtifactId, tasks: Vec<Planned>) -> Result<Split> {
        let unclaimed = |tasks| Split {
            now: tasks,
            waiting: Vec::new(),
            stored: HashSet::new(),
        };
        let Some(options) = self.options else {
            return Ok(unclaimed(tasks));
        };
        let keys: Vec<BlobId> = tasks
            .iter()
            .filter(|t| t.task.work == LayerWork::Analyse)
            .map(|t| t.key.clone())
            .collect();
        if keys.is_empty() {
            return Ok(unclaimed(tasks));
        }
        let claimed = self.cache.claim(&keys, options.lease).await?;
        let asked = keys.len();
        let mut busy = HashSet::new();
        {
            let mut map = self.map();
            for (key, claimed) in keys.into_iter().zip(claimed) {
                match claimed {
                    Claimed::Owned(claim) => {
                        map.insert(key, claim);
                    }
                    Claimed::Busy => {
                        tracing::debug!(blob = %key, "layer claimed by another scan; waiting for its result");
                        busy.insert(key);
                    }
                }
            }
        }
        tracing::debug!(
            owned = asked - busy.len(),
            busy = busy.len(),
            "layer claims taken"
        );
        let held: Vec<BlobId> = self
            .map()
            .iter()
            .filter(|(_, c)| !c.is_unheld())
            .map(|(k, _)| k.clone())
            .collect();
        let mut stored = HashSet::new();
        if !held.is_empty() {
            let missing = self.cache.missing_blobs(artifact, &held).await?;
            let still: HashSet<&BlobId> = missing.blobs.iter().collect();
            stored = held
                .iter()
                .filter(|k| !still.contains(k))
                .cloned()
                .collect();
            if !stored.is_empty() {
                tracing::debug!(
                    layers = stored.len(),
                    "another scan stored layers since the lookup"
                );
                let keys: Vec<&BlobId> = stored.iter().collect();
                self.release_stored(&keys).await;
            }
        }
        let (waiting, now): (Vec<Planned>, Vec<Planned>) = tasks
            .into_iter()
            .filter(|t| t.task.work != LayerWork::Analyse || !stored.contains(&t.key))
            .partition(|t| t.task.work == LayerWork::Analyse && busy.contains(&t.key));
        Ok(Split {
            now,
            waiting,
            stored,
        })
    }

    /// Waits for the keys of `waiting`, one after the other (they are analysed
    /// elsewhere at the same time, so the total is about the longest).
    pub(crate) async fn wait(&self, waiting: Vec<Planned>) -> Result<WaitOutcome> {
        let mut outcome = WaitOutcome::default();
        let Some(options) = self.options else {
            outcome.analyse = waiting;
            return Ok(outcome);
        };
        for task in waiting {
            match self.cache.wait_for(&task.key, &options).await? {
                Waited::Stored => {
                    tracing::debug!(blob = %task.key, diff_id = %task.task.layer.diff_id, "another scan stored the layer's result");
                    outcome.stored.insert(task.key);
                }
                Waited::TakenOver(claim) => {
                    tracing::debug!(blob = %task.key, diff_id = %task.task.layer.diff_id, "the layer's claim ended without a result; taking it over");
                    self.map().insert(task.key.clone(), claim);
                    outcome.analyse.push(task);
                }
                Waited::TimedOut => {
                    tracing::warn!(blob = %task.key, diff_id = %task.task.layer.diff_id, waited_s = options.max_wait.as_secs_f64(), "waited too long for another scan's result; analysing the layer here");
                    outcome.analyse.push(task);
                }
            }
        }
        Ok(outcome)
    }

    /// Renews the held claims every third of the lease, forever (the caller drops this
    /// future when the work is done). A failed renewal is logged, not fatal: at worst
    /// another scan takes the key over and analyses it too.
    pub(crate) async fn renew_forever(&self) {
        let Some(options) = self.options else {
            return std::future::pending().await;
        };
        let mut warned = false;
        loop {
            tokio::time::sleep(options.renew_every()).await;
            let claims: Vec<Claim> = self.map().values().cloned().collect();
            if claims.is_empty() {
                continue;
            }
            if let Err(e) = self.cache.renew(&claims, options.lease).await
                && !warned
            {
                warned = true;
                tracing::warn!("cannot renew layer claims: {e}");
            }
        }
    }

    /// Releases the claims of `keys` (their results were just stored), so waiters wake.
    pub(crate) async fn release_stored(&self, keys: &[&BlobId]) {
        let claims: Vec<Claim> = {
            let mut map = self.map();
            keys.iter().filter_map(|k| map.remove(*k)).collect()
        };
        self.release(claims).await;
    }

    /// Releases every claim still held (the scan failed, or finished), so waiters take
    /// over at once.
    pub(crate) async fn release_all(&self) {
        let claims: Vec<Claim> = self.map().drain().map(|(_, c)| c).collect();
        self.release(claims).await;
    }

    async fn release(&self, claims: Vec<Claim>) {
        if claims.is_empty() {
            return;
        }
        if let Err(e) = self.cache.release(&claims).await {
            // Their leases end them instead.
            tracing::warn!(claims = claims.len(), "cannot release layer claims: {e}");
        }
    }
}
