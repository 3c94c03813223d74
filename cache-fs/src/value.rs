//! The stored value format: a fixed 16-byte header (expiry, last access) then the raw
//! document bytes.
//!
//! ```text
//! offset  size  field
//!      0     8  expires_at: unix milliseconds, little endian; 0 = never
//!      8     4  accessed_at: unix seconds, little endian (coarse, for LRU eviction)
//!     12     1  currency: 1 = the document is current (`codec::is_current`), 2 = it is
//!               not, 0 = unknown (judge the document); set once when the value is written
//!     13     3  reserved, written as 0
//!     16     …  the document bytes exactly as given (JSON for entries this tool wrote)
//! ```
//!
//! The layout is versioned through the database names (`artifacts-v1`, `blobs-v1`): a
//! different layout gets new databases, so old bytes are never misread.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{EntryKind, codec};

/// Length of the header in front of every stored document.
pub(crate) const HEADER_LEN: usize = 16;

/// The decoded header of a stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Expiry in unix milliseconds; 0 for never.
    pub(crate) expires_ms: u64,
    /// Last recorded access in unix seconds.
    pub(crate) accessed_s: u32,
    /// Whether the document is current, judged once when it was written, so that
    /// `missing_blobs` never re-parses documents.
    pub(crate) currency: Currency,
}

/// What the writer knew about a document's schema version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Currency {
    /// Not recorded: judge the document itself.
    Unknown = 0,
    /// A JSON object with the current `SchemaVersion`.
    Current = 1,
    /// Anything else.
    Stale = 2,
}

impl Currency {
    /// Judges a document once, for its header.
    pub(crate) fn of(kind: EntryKind, doc: &[u8]) -> Currency {
        if codec::is_current(kind, doc) {
            Currency::Current
        } else {
            Currency::Stale
        }
    }

    fn from_byte(b: u8) -> Currency {
        match b {
            1 => Currency::Current,
            2 => Currency::Stale,
            _ => Currency::Unknown,
        }
    }
}

impl Header {
    /// The expiry as a `SystemTime`, `None` for never.
    pub(crate) fn expires_at(self) -> Option<SystemTime> {
        (self.expires_ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(self.expires_ms))
    }

    /// True when the document is current, from the header when it says so.
    pub(crate) fn is_current(self, kind: EntryKind, doc: &[u8]) -> bool {
        match self.currency {
            Currency::Current => true,
            Currency::Stale => false,
            Currency::Unknown => codec::is_current(kind, doc),
        }
    }

    /// True when the entry has expired at `now_ms`.
    pub(crate) fn is_expired(self, now_ms: u64) -> bool {
        self.expires_ms != 0 && self.expires_ms <= now_ms
    }
}

/// Builds a stored value from its parts.
pub(crate) fn encode(header: Header, doc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + doc.len());
    out.extend_from_slice(&header.expires_ms.to_le_bytes());
    out.extend_from_slice(&header.accessed_s.to_le_bytes());
    out.extend_from_slice(&[header.currency as u8, 0, 0, 0]);
    out.extend_from_slice(doc);
    out
}

/// Splits a stored value into header and document; `None` when it is too short to hold
/// a header (a corrupt entry).
pub(crate) fn decode(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let (head, doc) = bytes.split_at_checked(HEADER_LEN)?;
    let (expires, rest) = head.split_first_chunk::<8>()?;
    let (accessed, rest) = rest.split_first_chunk::<4>()?;
    let header = Header {
        expires_ms: u64::from_le_bytes(*expires),
        accessed_s: u32::from_le_bytes(*accessed),
        currency: Currency::from_byte(rest.first().copied().unwrap_or(0)),
    };
    Some((header, doc))
}

/// Rewrites the access stamp of a stored value in place; false when it has no header.
pub(crate) fn set_accessed(bytes: &mut [u8], accessed_s: u32) -> bool {
    if bytes.len() < HEADER_LEN {
        return false;
    }
    match bytes.get_mut(8..12) {
        Some(slot) => {
            slot.copy_from_slice(&accessed_s.to_le_bytes());
            true
        }
        None => false,
    }
}

/// Unix milliseconds of a time (0 for times before 1970, which never occur here).
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Unix seconds of a time, saturated to the 32-bit stamp (good until 2106).
pub(crate) fn unix_s32(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// The expiry field for an optional expiry time. A time at or before the epoch would read
/// as "never", so it is stored as 1 ms (long expired).
pub(crate) fn expires_ms(at: Option<SystemTime>) -> u64 {
    at.map_or(0, |t| unix_ms(t).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_values() {
        let h = Header {
            expires_ms: 1_700_000_000_123,
            accessed_s: 1_700_000_000,
            currency: Currency::Current,
        };
        let mut v = encode(h, b"{\"SchemaVersion\":2}");
        let (back, doc) = decode(&v).unwrap();
        assert_eq!(back, h);
        assert_eq!(doc, b"{\"SchemaVersion\":2}");
        assert!(set_accessed(&mut v, 42));
        assert_eq!(decode(&v).unwrap().0.accessed_s, 42);
        assert_eq!(decode(&v[..HEADER_LEN]).unwrap().1, b"");
        for len in 0..HEADER_LEN {
            assert!(decode(&v[..len]).is_none(), "{len}");
        }
        assert!(!set_accessed(&mut [0u8; 5], 1));
    }

    #[test]
    fn currency_is_recorded_and_trusted() {
        let doc = br#"{"SchemaVersion":2}"#;
        assert_eq!(Currency::of(EntryKind::Blob, doc), Currency::Current);
        assert_eq!(Currency::of(EntryKind::Artifact, doc), Currency::Stale);
        for currency in [Currency::Unknown, Currency::Current, Currency::Stale] {
            let h = Header {
                expires_ms: 0,
                accessed_s: 0,
                currency,
            };
            let v = encode(h, doc);
            let (back, d) = decode(&v).unwrap();
            assert_eq!(back.currency, currency);
            let want = currency != Currency::Stale;
            assert_eq!(back.is_current(EntryKind::Blob, d), want, "{currency:?}");
        }
    }

    #[test]
    fn expiry() {
        let never = Header {
            expires_ms: 0,
            accessed_s: 0,
            currency: Currency::Unknown,
        };
        assert!(!never.is_expired(u64::MAX));
        assert_eq!(never.expires_at(), None);
        let h = Header {
            expires_ms: 1000,
            accessed_s: 0,
            currency: Currency::Unknown,
        };
        assert!(h.is_expired(1000) && !h.is_expired(999));
        assert_eq!(h.expires_at(), Some(UNIX_EPOCH + Duration::from_secs(1)));
        assert_eq!(expires_ms(None), 0);
        assert_eq!(expires_ms(Some(UNIX_EPOCH)), 1);
    }
}
