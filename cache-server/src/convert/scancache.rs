//! The scancache service's messages ↔ cache-core's types (`EntryKey`, `RawEntry`,
//! `Walked`, `Stats`, `GcOptions`, `GcReport`, claims and their leases, and the error of
//! a document over the size cap), used by the server's handlers and by the remote
//! backend alike, so both sides read the wire the same way.
//!
//! Expiries travel as Unix milliseconds: a time before the epoch is sent as 0 (it has
//! passed either way), and a time too far away for an `i64` of milliseconds as
//! `i64::MAX`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{
    BlobId, Claim, Claimed, Digest, EntryKey, EntryKind, EntryMeta, Error, GcOptions, GcReport,
    RawEntry, Stats, Walked,
};

use crate::{
    proto::scancache as ps,
    twirp::{Code, TwirpError},
};

/// The `meta` keys of the `invalid_argument` error that refuses a document over the
/// server's size cap: its kind (`artifact` or `blob`), ID, size and the cap, in bytes.
pub const TOO_LARGE_META: [&str; 4] = [
    "document_kind",
    "document_id",
    "document_size",
    "document_limit",
];

/// The longest lease a claim may be given (`Claim`, `Renew`): a day. An owner renews its
/// claims while it works, so a longer lease would only keep a dead owner's claim longer.
pub const MAX_LEASE: Duration = Duration::from_secs(86_400);

/// The longest claim token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 256;

/// A kind's number on the wire.
pub fn kind_number(kind: EntryKind) -> i32 {
    match kind {
        EntryKind::Artifact => ps::Kind::Artifact as i32,
        EntryKind::Blob => ps::Kind::Blob as i32,
        EntryKind::Report => ps::Kind::Report as i32,
    }
}

/// The kind of a wire number; `None` for `KIND_UNSPECIFIED` (both kinds, in a walk).
/// An unknown number is an error naming it.
pub fn kind_filter(number: i32) -> Result<Option<EntryKind>, String> {
    match ps::Kind::try_from(number) {
        Ok(ps::Kind::Unspecified) => Ok(None),
        Ok(ps::Kind::Artifact) => Ok(Some(EntryKind::Artifact)),
        Ok(ps::Kind::Blob) => Ok(Some(EntryKind::Blob)),
        Ok(ps::Kind::Report) => Ok(Some(EntryKind::Report)),
        Err(_) => Err(format!(
            "{number} is not a kind (1 artifact, 2 blob, 3 report)"
        )),
    }
}

/// The kind of a wire number, which must name one.
pub fn kind_of(number: i32) -> Result<EntryKind, String> {
    kind_filter(number)?.ok_or_else(|| "a kind (ARTIFACT, BLOB or REPORT) is required".to_owned())
}

/// A key on the wire.
pub fn key_message(key: &EntryKey) -> ps::Key {
    ps::Key {
        kind: kind_number(key.kind),
        id: key.id.to_string(),
    }
}

/// A key from the wire: its kind and a valid ID.
pub fn entry_key(key: Option<&ps::Key>) -> Result<EntryKey, String> {
    let key = key.ok_or("a key is required")?;
    let kind = kind_of(key.kind)?;
    let id = Digest::parse(&key.id).map_err(|e| e.to_string())?;
    Ok(EntryKey { kind, id })
}

/// An expiry as Unix milliseconds.
pub fn expiry_ms(at: Option<SystemTime>) -> Option<i64> {
    at.map(|t| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    })
}

/// An expiry from Unix milliseconds (negative ones are the epoch: long past).
pub fn expiry_time(ms: Option<i64>) -> Option<SystemTime> {
    ms.map(|ms| {
        let ms = u64::try_from(ms).unwrap_or(0);
        UNIX_EPOCH
            .checked_add(Duration::from_millis(ms))
            .unwrap_or(UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 1000))
    })
}

/// A raw entry on the wire.
pub fn entry_message(entry: &RawEntry) -> ps::Entry {
    ps::Entry {
        key: Some(key_message(&entry.key)),
        value: entry.value.clone(),
        expires_at_ms: expiry_ms(entry.expires_at),
    }
}

/// A raw entry from the wire.
pub fn raw_entry(entry: ps::Entry) -> Result<RawEntry, String> {
    Ok(RawEntry {
        key: entry_key(entry.key.as_ref())?,
        value: entry.value,
        expires_at: expiry_time(entry.expires_at_ms),
    })
}

/// A walked entry on the wire.
pub fn walked_message(w: Walked) -> ps::Walked {
    ps::Walked {
        key: Some(key_message(&w.meta.key)),
        size: w.meta.size,
        expires_at_ms: expiry_ms(w.meta.expires_at),
        value: w.value,
        last_access_ms: expiry_ms(w.meta.last_access),
    }
}

/// A walked entry from the wire.
pub fn walked(w: ps::Walked) -> Result<Walked, String> {
    Ok(Walked {
        meta: EntryMeta {
            key: entry_key(w.key.as_ref())?,
            size: w.size,
            expires_at: expiry_time(w.expires_at_ms),
            last_access: expiry_time(w.last_access_ms),
        },
        value: w.value,
    })
}

/// A list of blob IDs from the wire; `field` names the request field in the error.
pub fn blob_ids(ids: &[String], field: &str) -> Result<Vec<BlobId>, String> {
    ids.iter()
        .enumerate()
        .map(|(i, s)| s.parse().map_err(|e| format!("{field}[{i}]: {e}")))
        .collect()
}

/// A lease on the wire, in whole milliseconds (rounded up), within what the service
/// accepts: at least 1 ms, at most [`MAX_LEASE`].
pub fn lease_ms(lease: Duration) -> u64 {
    let max = u64::try_from(MAX_LEASE.as_millis()).unwrap_or(u64::MAX);
    u64::try_from(lease.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .clamp(1, max)
}

/// A lease from the wire: at least 1 ms, at most [`MAX_LEASE`].
pub fn lease(ms: u64) -> Result<Duration, String> {
    let lease = Duration::from_millis(ms);
    if ms == 0 {
        Err("a lease must be at least 1 ms".into())
    } else if lease > MAX_LEASE {
        Err(format!(
            "{ms} ms is longer than the longest lease, {} ms (a day)",
            MAX_LEASE.as_millis()
        ))
    } else {
        Ok(lease)
    }
}

/// A wait's time on the wire, in whole milliseconds (rounded up, so a wait of a
/// fraction of a millisecond still waits).
pub fn timeout_ms(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Checks a claim token: 1 to [`MAX_TOKEN_BYTES`] bytes of printable ASCII without
/// spaces (what every backend hands out).
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err(
            "the token is empty (a claim that holds nothing has nothing to renew or release)"
                .into(),
        );
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(format!(
            "the token is {} bytes, more than {MAX_TOKEN_BYTES}",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token holds a byte that is not printable ASCII".into());
    }
    Ok(())
}

/// A claim the caller owns, on the wire.
pub fn claim_message(claim: &Claim) -> ps::ClaimToken {
    ps::ClaimToken {
        id: claim.id().to_string(),
        token: claim.token().to_owned(),
    }
}

/// A claim from the wire: a valid ID and token ([`check_token`]).
pub fn claim(message: &ps::ClaimToken) -> Result<Claim, String> {
    let id: BlobId = message.id.parse().map_err(|e: Error| format!("id: {e}"))?;
    check_token(&message.token).map_err(|e| format!("token: {e}"))?;
    Ok(Claim::new(id, message.token.clone()))
}

/// One answer of `Claim`, on the wire.
pub fn claimed_message(claimed: &Claimed) -> ps::Claimed {
    ps::Claimed {
        token: match claimed {
            Claimed::Owned(claim) => Some(claim.token().to_owned()),
            Claimed::Busy => None,
        },
    }
}

/// One answer of `Claim` for `id`, from the wire; an empty token is a claim that holds
/// nothing ([`Claim::unheld`]).
pub fn claimed(id: BlobId, message: ps::Claimed) -> Result<Claimed, String> {
    match message.token {
        None => Ok(Claimed::Busy),
        Some(token) if token.is_empty() => Ok(Claimed::Owned(Claim::unheld(id))),
        Some(token) => {
            check_token(&token)?;
            Ok(Claimed::Owned(Claim::new(id, token)))
        }
    }
}

impl From<&Stats> for ps::StatsResponse {
    fn from(s: &Stats) -> Self {
        ps::StatsResponse {
            artifacts: s.artifacts,
            blobs: s.blobs,
            reports: s.reports,
            bytes: s.bytes,
            expired: s.expired,
            disk_bytes: s.disk_bytes,
            backend: String::new(),
            unread_7d: s.unread[0],
            unread_30d: s.unread[1],
            access_unknown: s.access_unknown,
        }
    }
}

impl From<&ps::StatsResponse> for Stats {
    fn from(s: &ps::StatsResponse) -> Self {
        Stats {
            artifacts: s.artifacts,
            blobs: s.blobs,
            reports: s.reports,
            bytes: s.bytes,
            expired: s.expired,
            disk_bytes: s.disk_bytes,
            unread: [s.unread_7d, s.unread_30d],
            access_unknown: s.access_unknown,
        }
    }
}

impl From<&GcReport> for ps::GcResponse {
    fn from(r: &GcReport) -> Self {
        ps::GcResponse {
            expired: r.expired,
            stale: r.stale,
            bytes: r.bytes,
            disk_bytes_before: r.disk_bytes.map(|(before, _)| before),
            disk_bytes_after: r.disk_bytes.map(|(_, after)| after),
            unused: r.unused,
            access_unknown: r.access_unknown,
        }
    }
}

impl From<&ps::GcResponse> for GcReport {
    fn from(r: &ps::GcResponse) -> Self {
        GcReport {
            expired: r.expired,
            stale: r.stale,
            bytes: r.bytes,
            disk_bytes: r.disk_bytes_before.zip(r.disk_bytes_after),
            unused: r.unused,
            access_unknown: r.access_unknown,
        }
    }
}

impl From<&GcOptions> for ps::GcRequest {
    fn from(o: &GcOptions) -> Self {
        ps::GcRequest {
            unused_for_ms: o
                .unused_for
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

impl From<&ps::GcRequest> for GcOptions {
    fn from(r: &ps::GcRequest) -> Self {
        GcOptions {
            unused_for: r.unused_for_ms.map(Duration::from_millis),
        }
    }
}

/// The Twirp error of a document over the size cap (`invalid_argument`, with the
/// document in [`TOO_LARGE_META`]); `None` for any other error.
pub fn too_large_error(e: &Error) -> Option<TwirpError> {
    let Error::DocumentTooLarge {
        kind,
        id,
        size,
        limit,
    } = e
    else {
        return None;
    };
    let [k, i, s, l] = TOO_LARGE_META;
    Some(
        TwirpError::new(Code::InvalidArgument, e.to_string())
            .with_meta(k, kind.as_str())
            .with_meta(i, id.clone())
            .with_meta(s, size.to_string())
            .with_meta(l, limit.to_string()),
    )
}

/// The error a [`too_large_error`] answer stands for; `None` when `meta` does not
/// describe a refused document.
pub fn too_large(meta: &[(String, String)]) -> Option<Error> {
    let get = |name: &str| {
        meta.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let [k, i, s, l] = TOO_LARGE_META;
    let kind: EntryKind = get(k)?.parse().ok()?;
    Some(Error::DocumentTooLarge {
        kind,
        id: get(i)?.to_owned(),
        size: get(s)?.parse().ok()?,
        limit: get(l)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::from_sha256([n; 32])
    }

    #[test]
    fn entries_round_trip() {
        let now = SystemTime::now();
        let at_ms = UNIX_EPOCH + Duration::from_millis(expiry_ms(Some(now)).unwrap() as u64);
        for entry in [
            RawEntry {
                key: EntryKey::blob(&BlobId::from(digest(1))),
                value: b"\xff not even utf-8".to_vec(),
                expires_at: None,
            },
            RawEntry {
                key: EntryKey {
                    kind: EntryKind::Artifact,
                    id: digest(2),
                },
                value: br#"{"SchemaVersion":1,"Unknown":[1]}"#.to_vec(),
                expires_at: Some(at_ms),
            },
        ] {
            assert_eq!(raw_entry(entry_message(&entry)).unwrap(), entry);
        }
    }

    #[test]
    fn expiries_at_the_edges() {
        assert_eq!(expiry_ms(None), None);
        assert_eq!(
            expiry_ms(Some(UNIX_EPOCH - Duration::from_secs(5))),
            Some(0)
        );
        assert_eq!(expiry_time(Some(-5)), Some(UNIX_EPOCH));
        assert!(expiry_time(Some(i64::MAX)).unwrap() > SystemTime::now());
    }

    #[test]
    fn bad_keys_are_named() {
        let err = |k: ps::Key| entry_key(Some(&k)).unwrap_err();
        assert!(
            err(ps::Key {
                kind: 0,
                id: digest(1).to_string()
            })
            .contains("kind")
        );
        assert!(
            err(ps::Key {
                kind: 9,
                id: digest(1).to_string()
            })
            .contains("9 is not a kind")
        );
        assert!(
            err(ps::Key {
                kind: 2,
                id: "sha256:x".into()
            })
            .contains("sha256:x")
        );
        assert!(entry_key(None).unwrap_err().contains("key is required"));
        assert_eq!(kind_filter(0), Ok(None));
    }

    #[test]
    fn reports_round_trip() {
        let stats = Stats {
            artifacts: 1,
            blobs: 2,
            reports: 9,
            bytes: 3,
            expired: 4,
            disk_bytes: Some(5),
            unread: [6, 7],
            access_unknown: 8,
        };
        assert_eq!(Stats::from(&ps::StatsResponse::from(&stats)), stats);
        let gc = GcReport {
            expired: 1,
            stale: 2,
            bytes: 3,
            disk_bytes: Some((5, 4)),
            unused: 6,
            access_unknown: 7,
        };
        assert_eq!(GcReport::from(&ps::GcResponse::from(&gc)), gc);
        for unused_for in [None, Some(Duration::from_secs(7 * 86_400))] {
            let options = GcOptions { unused_for };
            assert_eq!(GcOptions::from(&ps::GcRequest::from(&options)), options);
        }
    }

    #[test]
    fn claims_round_trip_and_bad_ones_are_named() {
        let id = BlobId::from(digest(4));
        let owned = Claim::new(id.clone(), "4242-17-3".into());
        assert_eq!(claim(&claim_message(&owned)).unwrap(), owned);
        for answer in [
            Claimed::Owned(owned.clone()),
            Claimed::Owned(Claim::unheld(id.clone())),
            Claimed::Busy,
        ] {
            assert_eq!(
                claimed(id.clone(), claimed_message(&answer)).unwrap(),
                answer
            );
        }
        let bad = |id: &str, token: &str| {
            claim(&ps::ClaimToken {
                id: id.into(),
                token: token.into(),
            })
            .unwrap_err()
        };
        let good_id = id.to_string();
        assert!(bad("sha256:x", "t").starts_with("id: "));
        assert!(bad(&good_id, "").contains("token is empty"));
        assert!(bad(&good_id, "a b").contains("not printable"));
        assert!(bad(&good_id, "caf\u{e9}").contains("not printable"));
        assert!(bad(&good_id, &"x".repeat(MAX_TOKEN_BYTES + 1)).contains("257 bytes"));
        assert!(
            claimed(
                id,
                ps::Claimed {
                    token: Some("a\nb".into())
                }
            )
            .is_err()
        );
    }

    #[test]
    fn leases_are_bounded_both_ways() {
        assert_eq!(lease_ms(Duration::from_secs(30)), 30_000);
        assert_eq!(lease_ms(Duration::from_micros(1)), 1);
        assert_eq!(lease_ms(Duration::ZERO), 1);
        assert_eq!(lease_ms(Duration::from_secs(10 * 86_400)), 86_400_000);
        assert_eq!(lease(30_000), Ok(Duration::from_secs(30)));
        assert!(lease(0).unwrap_err().contains("at least 1 ms"));
        assert!(lease(86_400_001).unwrap_err().contains("longest lease"));
        assert!(lease(u64::MAX).is_err());
        assert_eq!(timeout_ms(Duration::from_micros(1500)), 2);
        assert_eq!(timeout_ms(Duration::ZERO), 0);
    }

    #[test]
    fn a_refused_document_round_trips() {
        let refused = Error::DocumentTooLarge {
            kind: EntryKind::Blob,
            id: digest(3).to_string(),
            size: 40 << 20,
            limit: 32 << 20,
        };
        let wire = too_large_error(&refused).unwrap();
        assert_eq!(wire.code, Code::InvalidArgument);
        let back = too_large(&wire.meta).unwrap();
        assert_eq!(back.to_string(), refused.to_string());
        assert!(back.is_document_too_large());
        assert!(too_large(&[]).is_none());
        let other = Error::Unavailable {
            backend: "b".into(),
            reason: "r".into(),
        };
        assert!(too_large_error(&other).is_none());
    }
}
