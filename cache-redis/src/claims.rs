//! Claims of the single-flight ([`cache_core::claim`]) in Redis: a key
//! `fanal::claim::<blob id>` beside the blob `fanal::blob::<blob id>`, holding the
//! owner's token, set with `SET … NX PX <lease>` (one batch for all of a scan's keys,
//! routed by key on a cluster), renewed with `renew_if_owner.lua` and released with
//! `release_if_owner.lua` (compare-and-delete, so a claim taken over after its lease ran
//! out is never ended by its old owner). Where the server refuses scripts (an ACL without
//! `EVAL`), renewing and releasing fall back to letting the lease run out, with one
//! warning; a waiter still wakes as soon as the result is stored. Waiters poll the claim
//! and the blob with a short backoff (5 ms doubling to 100 ms).

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use cache_core::{BlobId, Cache, Claim, Claimed, EntryKind, Result};
use redis::Value;

use crate::cache::{RedisCache, first_refusal, key, millis};

/// The script that extends a claim if it still holds the caller's token.
const RENEW_IF_OWNER: &str = include_str!("renew_if_owner.lua");
/// The script that removes a claim if it still holds the caller's token.
const RELEASE_IF_OWNER: &str = include_str!("release_if_owner.lua");
/// First and longest pause between a waiter's polls.
const POLL: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(100));

/// The Redis key of the claim on a blob: `fanal::claim::<id>`.
pub(crate) fn claim_key(id: &BlobId) -> String {
    format!("fanal::claim::{}", id.as_str())
}

/// Per-cache claim state: whether the server refused scripts, and a token counter.
#[derive(Debug, Default)]
pub(crate) struct ClaimState {
    scripts_refused: AtomicBool,
    counter: AtomicU64,
}

impl ClaimState {
    fn token(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}-{n}", std::process::id())
    }
}

impl RedisCache {
    /// `SET fanal::claim::<id> <token> NX PX <lease>` per key, in one batch.
    pub(crate) async fn claim_keys(&self, ids: &[BlobId], lease: Duration) -> Result<Vec<Claimed>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let tokens: Vec<String> = ids.iter().map(|_| self.claims().token()).collect();
        let mut batch = self.topology().batch(ids.len());
        for (id, token) in ids.iter().zip(&tokens) {
            let k = claim_key(id);
            let mut cmd = redis::cmd("SET");
            cmd.arg(&k)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(millis(lease));
            batch.push(k.as_bytes(), cmd);
        }
        let answers = self.topology().run("claim", batch).await?;
        self.check_answers("claim", &answers)?;
        Ok(ids
            .iter()
            .zip(tokens)
            .zip(answers)
            .map(|((id, token), answer)| match answer {
                Value::Nil => Claimed::Busy,
                _ => Claimed::Owned(Claim::new(id.clone(), token)),
            })
            .collect())
    }

    /// Runs `script` on each claim's key with its token (and `extra`), in one batch;
    /// `false` when the server refuses scripts (then warns once).
    async fn on_owned(
        &self,
        what: &str,
        script: &str,
        claims: &[Claim],
        extra: Option<u64>,
    ) -> Result<bool> {
        let claims: Vec<&Claim> = claims.iter().filter(|c| !c.is_unheld()).collect();
        if claims.is_empty() || self.claims().scripts_refused.load(Ordering::Relaxed) {
            return Ok(!claims.is_empty());
        }
        let mut batch = self.topology().batch(claims.len());
        for c in &claims {
            let k = claim_key(c.id());
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(script).arg(1).arg(&k).arg(c.token());
            if let Some(extra) = extra {
                cmd.arg(extra);
            }
            batch.push(k.as_bytes(), cmd);
        }
        let answers = self.topology().run(what, batch).await?;
        // A script the ACL lets run but whose commands it refuses says so in an `ERR`.
        let refused_inside = answers.iter().find_map(|v| match v {
            Value::ServerError(e)
                if e.details()
                    .is_some_and(|d| d.contains("can't run this command")) =>
            {
                Some(e.code().to_owned())
            }
            _ => None,
        });
        if let Some(code) = first_refusal(&answers).or(refused_inside) {
            if !self.claims().scripts_refused.swap(true, Ordering::Relaxed) {
                tracing::warn!(backend = %self.location(), code, "Redis refuses scripts: layer claims are neither renewed nor released but run out after their lease");
            }
            return Ok(false);
        }
        self.check_answers(what, &answers)?;
        Ok(true)
    }

    /// Renews claims with `renew_if_owner.lua`.
    pub(crate) async fn renew_claims(&self, claims: &[Claim], lease: Duration) -> Result<()> {
        self.on_owned("renew claims", RENEW_IF_OWNER, claims, Some(millis(lease)))
            .await
            .map(drop)
    }

    /// Releases claims with `release_if_owner.lua`.
    pub(crate) async fn release_claims(&self, claims: &[Claim]) -> Result<()> {
        self.on_owned("release claims", RELEASE_IF_OWNER, claims, None)
            .await
            .map(drop)
    }

    /// Polls the claim and the blob until the claim is gone or the blob is stored.
    pub(crate) async fn await_claim(&self, id: &BlobId, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let (claim, blob) = (claim_key(id), key(EntryKind::Blob, id.as_str()));
        let mut pause = POLL.0;
        loop {
            let mut batch = self.topology().batch(2);
            // `PTTL` rather than `EXISTS`: -2 means absent, and the documented ACL has it.
            batch.push(claim.as_bytes(), redis::cmd("PTTL").arg(&claim).clone());
            batch.push(blob.as_bytes(), redis::cmd("PTTL").arg(&blob).clone());
            let answers = self.topology().run("wait for a claim", batch).await?;
            self.check_answers("wait for a claim", &answers)?;
            if let [Value::Int(claim), Value::Int(blob)] = answers.as_slice()
                && (*claim == -2 || *blob != -2)
            {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(POLL.1);
        }
    }
}
