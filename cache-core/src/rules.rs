//! The rules every backend shares, each defined once: what `gc` removes, what a size
//! bound charges per entry, and what an import of an already expired entry means.
//!
//! The provided methods of [`crate::Cache`] apply them; a backend that judges entries
//! inside its own transactions or scripts calls the same functions.

use std::time::SystemTime;

use sha1::{Digest as _, Sha1};

use crate::{EntryKey, EntryKind, EntryMeta, RawEntry, codec};

/// Bytes a size bound charges per entry on top of its value, so that a bound also limits
/// the number of tiny entries.
pub const ENTRY_OVERHEAD: u64 = 96;

/// The bytes a size bound charges for an entry whose value is `value_len` bytes long.
pub fn charged_size(value_len: u64) -> u64 {
    value_len.saturating_add(ENTRY_OVERHEAD)
}

/// What `gc` does with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A live, current document that decodes: kept.
    Keep,
    /// Its expiry has passed: removed.
    Expired,
    /// A stale `SchemaVersion`, not JSON, or not decodable as its kind's document:
    /// removed, since a getter could not serve it.
    Stale,
}

/// Judges one stored entry for `gc`: expired entries go, then anything that is not a
/// sound current document ([`codec::is_sound`]) goes, and the rest stays.
pub fn verdict(
    kind: EntryKind,
    expires_at: Option<SystemTime>,
    value: &[u8],
    now: SystemTime,
) -> Verdict {
    if codec::is_expired(expires_at, now) {
        Verdict::Expired
    } else if !codec::is_sound(kind, value) {
        Verdict::Stale
    } else {
        Verdict::Keep
    }
}

/// An entry `gc` judged for removal, with what a backend needs to check that it has not
/// changed since ([`crate::Cache::remove_unchanged`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcCandidate {
    /// Kind, ID, stored size and expiry when judged.
    pub meta: EntryMeta,
    /// Why it goes.
    pub verdict: Verdict,
    /// SHA-1 of the value judged, for a backend that compares values (a server-side
    /// script: Redis has `redis.sha1hex`).
    pub sha1: [u8; 20],
}

impl GcCandidate {
    /// A candidate judged `verdict` on `value`.
    pub fn new(meta: EntryMeta, verdict: Verdict, value: &[u8]) -> Self {
        GcCandidate {
            meta,
            verdict,
            sha1: Sha1::digest(value).into(),
        }
    }

    /// The entry's key.
    pub fn key(&self) -> &EntryKey {
        &self.meta.key
    }
}

/// Splits entries to import into those to store and the keys of those whose expiry has
/// already passed: importing an expired entry is the same as having none, so those are
/// deleted (an older copy must not survive).
pub fn split_expired(entries: &[RawEntry], now: SystemTime) -> (Vec<RawEntry>, Vec<EntryKey>) {
    let mut live = Vec::with_capacity(entries.len());
    let mut expired = Vec::new();
    for e in entries {
        if codec::is_expired(e.expires_at, now) {
            expired.push(e.key.clone());
        } else {
            live.push(e.clone());
        }
    }
    (live, expired)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Digest;

    #[test]
    fn verdicts() {
        let now = SystemTime::now();
        let past = Some(now - Duration::from_secs(1));
        let future = Some(now + Duration::from_secs(60));
        let good = br#"{"SchemaVersion":2}"#;
        let cases: [(Option<SystemTime>, &[u8], Verdict); 6] = [
            (None, good, Verdict::Keep),
            (future, good, Verdict::Keep),
            (past, good, Verdict::Expired),
            (None, br#"{"SchemaVersion":1}"#, Verdict::Stale),
            (
                None,
                br#"{"SchemaVersion":2,"PackageInfos":5}"#,
                Verdict::Stale,
            ),
            (past, b"garbage", Verdict::Expired),
        ];
        for (expires_at, value, want) in cases {
            assert_eq!(
                verdict(EntryKind::Blob, expires_at, value, now),
                want,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn expired_imports_become_deletes() {
        let now = SystemTime::now();
        let key = |n: u8| EntryKey {
            kind: EntryKind::Blob,
            id: Digest::from_sha256([n; 32]),
        };
        let entry = |n, expires_at| RawEntry {
            key: key(n),
            value: b"{}".to_vec(),
            expires_at,
        };
        let entries = [
            entry(1, None),
            entry(2, Some(now)),
            entry(3, Some(now + Duration::from_secs(5))),
        ];
        let (live, expired) = split_expired(&entries, now);
        assert_eq!(live, vec![entries[0].clone(), entries[2].clone()]);
        assert_eq!(expired, vec![key(2)]);
    }

    #[test]
    fn size_bound_charges_an_overhead() {
        assert_eq!(charged_size(4), 100);
        assert_eq!(charged_size(u64::MAX), u64::MAX);
    }
}
