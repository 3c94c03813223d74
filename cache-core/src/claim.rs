//! Claims: the single-flight of layer analyses. A caller that finds a layer missing
//! claims its blob key before analysing it; another caller that finds the same key
//! missing while the claim is live waits for the result instead of analysing it too.
//!
//! The backend keeps the claims ([`crate::Cache::claim`], [`crate::Cache::renew`],
//! [`crate::Cache::release`], [`crate::Cache::await_release`]); the rule a waiter follows
//! — wait for the claim to end, use the stored result if there is one, else take the
//! claim over, and never wait longer than [`ClaimOptions::max_wait`] in total — is
//! written once, in the provided [`crate::Cache::wait_for`].
//!
//! A backend without claims keeps the defaults: every claim is granted at once (with a
//! token that holds nothing), so its callers never wait and behave as before.

use std::time::Duration;

use crate::BlobId;

/// Default lease of a claim: 30 seconds.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How long claims last and how long a waiter waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimOptions {
    /// How long a claim lives without being renewed. An owner renews its claims while it
    /// works (every third of the lease), so only a claim whose owner died or hung runs
    /// out; a waiter then takes it over.
    pub lease: Duration,
    /// The most a waiter waits for one layer in total, across takeovers by others; past
    /// it, the waiter analyses the layer itself without a claim.
    pub max_wait: Duration,
}

impl ClaimOptions {
    /// Options with this lease and a total wait of four leases.
    pub fn with_lease(lease: Duration) -> ClaimOptions {
        ClaimOptions {
            lease,
            max_wait: lease.saturating_mul(4),
        }
    }

    /// How often an owner renews: a third of the lease (at least 1 ms).
    pub fn renew_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(1))
    }
}

impl Default for ClaimOptions {
    fn default() -> Self {
        ClaimOptions::with_lease(DEFAULT_LEASE)
    }
}

/// A claim the caller owns on one blob key, as [`crate::Cache::claim`] granted it. The
/// token is the backend's proof of ownership: renewing and releasing compare it, so a
/// caller whose claim ran out and was taken over cannot end the new owner's claim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    id: BlobId,
    token: String,
}

impl Claim {
    /// A claim on `id` proved by `token` (what a backend hands out).
    pub fn new(id: BlobId, token: String) -> Claim {
        Claim { id, token }
    }

    /// A claim of a backend without claims: it holds nothing, and renewing or releasing
    /// it does nothing.
    pub fn unheld(id: BlobId) -> Claim {
        Claim {
            id,
            token: String::new(),
        }
    }

    /// The claimed blob key.
    pub fn id(&self) -> &BlobId {
        &self.id
    }

    /// The backend's token for this claim (empty for [`Claim::unheld`]).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// True for a claim that holds nothing ([`Claim::unheld`]).
    pub fn is_unheld(&self) -> bool {
        self.token.is_empty()
    }
}

/// The answer of [`crate::Cache::claim`] for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The caller owns the claim: it analyses the layer, stores the result, then
    /// releases the claim.
    Owned(Claim),
    /// Another caller holds a live claim: wait for it ([`crate::Cache::wait_for`]).
    Busy,
}

impl Claimed {
    /// The claim, when the caller owns it.
    pub fn owned(self) -> Option<Claim> {
        match self {
            Claimed::Owned(c) => Some(c),
            Claimed::Busy => None,
        }
    }
}

/// How a wait for another caller's claim ended ([`crate::Cache::wait_for`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waited {
    /// The owner stored the result: read it like a cache hit.
    Stored,
    /// The claim ended without a result (the owner failed, died or its lease ran out)
    /// and the caller took it over: it now owns the claim and analyses the layer.
    TakenOver(Claim),
    /// The wait bound ([`ClaimOptions::max_wait`]) passed with the claim still live: the
    /// caller analyses the layer itself, without a claim.
    TimedOut,
}
