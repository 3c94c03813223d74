//! The single-flight for unmodified clients ([`cache_core::claim`]): the reference
//! scanner's client cannot claim or renew, so the server claims for it. `MissingBlobs`
//! claims the missing layers (one `Cache::claim` per request) and reports to this caller
//! those it owns; a layer another caller holds is waited for, with the request out of the
//! concurrency bound and the request timeout ([`crate::layers::Hold`]), until its
//! `PutBlob` arrives (then it is not reported missing) or its fixed lease runs out (then
//! this caller takes it over and it is reported missing). `PutBlob` releases the claim of
//! its layer once stored; claims whose lease ran out are released on the next request.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use cache_core::{ArtifactId, BlobId, Cache, Claim, ClaimOptions, Claimed, Result, Waited};

use crate::metrics::Metrics;

/// The claims the server holds for its clients, each with when it was taken.
#[derive(Debug, Default)]
pub(crate) struct ClientClaims {
    held: Mutex<HashMap<BlobId, (Claim, Instant)>>,
}

impl ClientClaims {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, (Claim, Instant)>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, claim: Claim) {
        if claim.is_unheld() {
            return;
        }
        self.map()
            .insert(claim.id().clone(), (claim, Instant::now()));
    }

    /// Splits `missing` into the layers this caller is to upload and those another caller
    /// uploads: claims them, waits for the busy ones (after `on_wait`, which takes the
    /// request out of the server's bounds), and returns what to report missing.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site, each argument distinct"
    )]
    pub(crate) async fn missing(
        &self,
        cache: &dyn Cache,
        artifact: &ArtifactId,
        lease: Duration,
        missing: Vec<BlobId>,
        metrics: &Metrics,
        on_wait: impl FnOnce(),
    ) -> Result<Vec<BlobId>> {
        self.expire(cache, lease, metrics).await;
        if missing.is_empty() {
            return Ok(missing);
        }
        let claimed = cache.claim(&missing, lease).await?;
        let mut owned = Vec::new();
        let mut busy = Vec::new();
        for (id, claimed) in missing.into_iter().zip(claimed) {
            match claimed {
                Claimed::Owned(claim) => owned.push(claim),
                Claimed::Busy => busy.push(id),
            }
        }
        // Another caller may have stored a layer and released its claim since the lookup:
        // asked once more, such a layer is not uploaded twice.
        let mut report = Vec::with_capacity(owned.len() + busy.len());
        if owned.iter().any(|c| !c.is_unheld()) {
            let ids: Vec<BlobId> = owned.iter().map(|c| c.id().clone()).collect();
            let still = cache.missing_blobs(artifact, &ids).await?.blobs;
            let (keep, done): (Vec<Claim>, Vec<Claim>) =
                owned.into_iter().partition(|c| still.contains(c.id()));
            if !done.is_empty() {
                cache.release(&done).await?;
            }
            owned = keep;
        }
        for claim in owned {
            metrics.claimed();
            report.push(claim.id().clone());
            self.record(claim);
        }
        if busy.is_empty() {
            return Ok(report);
        }
        on_wait();
        // The claim waited for ends within one lease from now; the margin lets the wait
        // see that end (and take over) rather than time out at the same moment.
        let options = ClaimOptions {
            lease,
            max_wait: lease + (lease / 4).max(Duration::from_millis(250)),
        };
        let started = Instant::now();
        for id in busy {
            metrics.waited();
            tracing::debug!(blob = %id, "MissingBlobs waits for another client's PutBlob");
            match cache.wait_for(&id, &options).await? {
                Waited::Stored => {}
                Waited::TakenOver(claim) => {
                    metrics.taken_over();
                    self.record(claim);
                    report.push(id);
                }
                Waited::TimedOut => {
                    metrics.expired();
                    report.push(id);
                }
            }
        }
        metrics.wait_time(started.elapsed());
        Ok(report)
    }

    /// After a `PutBlob` of `id` was stored: releases its claim.
    pub(crate) async fn stored(&self, cache: &dyn Cache, id: &BlobId) {
        let claim = self.map().remove(id).map(|(c, _)| c);
        if let Some(claim) = claim
            && let Err(e) = cache.release(&[claim]).await
        {
            tracing::warn!(blob = %id, "cannot release a layer claim: {e}");
        }
    }

    /// Releases the claims whose lease ran out without a `PutBlob` (the client failed or
    /// went away), counting them.
    async fn expire(&self, cache: &dyn Cache, lease: Duration, metrics: &Metrics) {
        let expired: Vec<Claim> = {
            let mut map = self.map();
            let ids: Vec<BlobId> = map
                .iter()
                .filter(|(_, (_, at))| at.elapsed() >= lease)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| map.remove(id))
                .map(|(c, _)| c)
                .collect()
        };
        if expired.is_empty() {
            return;
        }
        for _ in &expired {
            metrics.expired();
        }
        if let Err(e) = cache.release(&expired).await {
            tracing::warn!("cannot release expired layer claims: {e}");
        }
    }
}
