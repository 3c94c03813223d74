//! The rules every backend shares, each defined once: what `gc` removes, what a size
//! bound charges per entry, how large a stored document may be, and what an import of an
//! already expired entry means.
//!
//! The provided methods of [`crate::Cache`] apply them; a backend that judges entries
//! inside its own transactions or scripts calls the same functions.

use std::time::{Duration, SystemTime};

use sha1::{Digest as _, Sha1};

use crate::{EntryKey, EntryKind, EntryMeta, Error, RawEntry, Result, codec};

/// Refuses a document of `len` bytes for `key` when it is larger than `limit` (the
/// [`crate::CacheOptions::max_document_size`] of the cache it would go to; `None` for no
/// cap). Every put and every import goes through it, so no writer stores a larger one.
pub fn check_document_size(key: &EntryKey, len: u64, limit: Option<u64>) -> Result<()> {
    match limit {
        Some(limit) if len > limit => Err(Error::DocumentTooLarge {
            kind: key.kind,
            id: key.id.as_str().to_owned(),
            size: len,
            limit,
        }),
        _ => Ok(()),
    }
}

/// What `gc` removes besides expired and unsound entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcOptions {
    /// Also remove entries that have not been read (nor written) for this long. Entries
    /// whose last access the backend does not know are kept.
    pub unused_for: Option<Duration>,
}

/// True when an entry last read (or written) at `last_access` counts as unused under
/// `unused_for` at `now`. An unknown last access is never unused.
pub fn is_unused(
    last_access: Option<SystemTime>,
    unused_for: Option<Duration>,
    now: SystemTime,
) -> bool {
    match (last_access, unused_for) {
        (Some(at), Some(age)) => now.duration_since(at).is_ok_and(|idle| idle >= age),
        _ => false,
    }
}

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
    /// A sound document nobody has read for [`GcOptions::unused_for`]: removed (entries
    /// of older analyser versions end this way, since no scan asks for their keys).
    Unused,
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

/// Judges one walked entry for `gc` under `options`: [`verdict`], then an entry that
/// would be kept goes when it is unused ([`is_unused`]).
pub fn judge(meta: &EntryMeta, value: &[u8], now: SystemTime, options: &GcOptions) -> Verdict {
    match verdict(meta.key.kind, meta.expires_at, value, now) {
        Verdict::Keep if is_unused(meta.last_access, options.unused_for, now) => Verdict::Unused,
        v => v,
    }
}

/// An entry `gc` judged for removal, with what a backend needs to check that it has not
/// changed since ([`crate::Cache::remove_unchanged`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcCandidate {
    /// Kind, ID, stored size, expiry and last access when judged. A backend that removes
    /// an [`Verdict::Unused`] candidate checks that it has not been read since
    /// (`meta.last_access`).
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
    fn unused_entries() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let meta = |last_access| EntryMeta {
            key: EntryKey {
                kind: EntryKind::Blob,
                id: Digest::from_sha256([1; 32]),
            },
            size: 0,
            expires_at: None,
            last_access,
        };
        let good = br#"{"SchemaVersion":2}"#;
        let week = GcOptions {
            unused_for: Some(7 * day),
        };
        let cases = [
            (Some(now - 8 * day), &week, good.as_slice(), Verdict::Unused),
            (Some(now - 7 * day), &week, good, Verdict::Unused),
            (Some(now - 6 * day), &week, good, Verdict::Keep),
            (None, &week, good, Verdict::Keep),
            (
                Some(now - 8 * day),
                &GcOptions::default(),
                good,
                Verdict::Keep,
            ),
            (Some(now - 8 * day), &week, b"junk", Verdict::Stale),
            // A clock that went backwards: read "in the future", so not unused.
            (Some(now + day), &week, good, Verdict::Keep),
        ];
        for (last, options, value, want) in cases {
            assert_eq!(judge(&meta(last), value, now, options), want, "{last:?}");
        }
    }

    #[test]
    fn document_size_cap() {
        let key = EntryKey {
            kind: EntryKind::Blob,
            id: Digest::from_sha256([2; 32]),
        };
        assert!(check_document_size(&key, 10, Some(10)).is_ok());
        assert!(check_document_size(&key, 11, None).is_ok());
        let err = check_document_size(&key, 11, Some(10)).unwrap_err();
        assert!(err.is_document_too_large());
        assert_eq!(
            err.to_string(),
            format!(
                "blob document {} is 11 bytes, more than the document size cap of 10 bytes",
                key.id
            )
        );
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
