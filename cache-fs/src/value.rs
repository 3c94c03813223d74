//! The stored value format: a fixed 16-byte header (expiry, last access, schema version)
//! then the raw document bytes.
//!
//! ```text
//! offset  size  field
//!      0     8  expires_at: unix milliseconds, little endian; 0 = never
//!      8     4  accessed_at: unix seconds, little endian (coarse, for LRU eviction)
//!     12     1  schema tag: 0 = unknown (judge the document), 1 = a JSON object whose
//!               `SchemaVersion` is in bytes 13..15, 2 = not a document with a version
//!     13     2  the document's `SchemaVersion`, u16 little endian (tag 1 only; else 0)
//!     15     1  reserved, written as 0
//!     16     …  the document bytes exactly as given (JSON for entries this tool wrote)
//! ```
//!
//! The header records the document's version, not whether it was current when written:
//! currency is judged against `codec::current_schema` at read time, so documents of an
//! older version read as stale after the current version changes. Tag 1 with version 0
//! reads as unknown (no document has `SchemaVersion` 0, and values written before this
//! field existed have zeros there).
//!
//! The layout is versioned through the database names (`artifacts-v1`, `blobs-v1`, `reports-v1`): a
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
    /// The document's schema version, parsed once when it was written, so that
    /// `missing_blobs` never re-parses documents.
    pub(crate) schema: Schema,
}

/// What the writer found out about a document's `SchemaVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schema {
    /// Not recorded: judge the document itself.
    Unknown,
    /// A JSON object with this `SchemaVersion`.
    Version(u16),
    /// Not a JSON object with an integer `SchemaVersion`: never current.
    NotDocument,
}

impl Schema {
    const TAG_UNKNOWN: u8 = 0;
    const TAG_VERSION: u8 = 1;
    const TAG_NOT_DOCUMENT: u8 = 2;

    /// Parses a document's version (a stored report's header version) once, for its
    /// header. A version that does not fit
    /// the header is left unknown (judged from the document when read).
    pub(crate) fn of(kind: EntryKind, doc: &[u8]) -> Schema {
        match codec::schema_of(kind, doc) {
            None => Schema::NotDocument,
            Some(v) => match u16::try_from(v) {
                Ok(v) if v != 0 => Schema::Version(v),
                _ => Schema::Unknown,
            },
        }
    }

    fn to_bytes(self) -> [u8; 3] {
        match self {
            Schema::Unknown => [Schema::TAG_UNKNOWN, 0, 0],
            Schema::Version(v) => {
                let [lo, hi] = v.to_le_bytes();
                [Schema::TAG_VERSION, lo, hi]
            }
            Schema::NotDocument => [Schema::TAG_NOT_DOCUMENT, 0, 0],
        }
    }

    fn from_bytes(tag: u8, version: [u8; 2]) -> Schema {
        match (tag, u16::from_le_bytes(version)) {
            (Schema::TAG_VERSION, 0) => Schema::Unknown,
            (Schema::TAG_VERSION, v) => Schema::Version(v),
            (Schema::TAG_NOT_DOCUMENT, _) => Schema::NotDocument,
            _ => Schema::Unknown,
        }
    }
}

impl Header {
    /// The expiry as a `SystemTime`, `None` for never.
    pub(crate) fn expires_at(self) -> Option<SystemTime> {
        (self.expires_ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(self.expires_ms))
    }

    /// True when the document is current now: its recorded version is the current one of
    /// `kind` (`codec::current_schema`), or, when none was recorded, it says so itself.
    pub(crate) fn is_current(self, kind: EntryKind, doc: &[u8]) -> bool {
        match self.schema {
            Schema::Version(v) => i64::from(v) == codec::current_schema(kind),
            Schema::NotDocument => false,
            Schema::Unknown => codec::is_current(kind, doc),
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
    out.extend_from_slice(&header.schema.to_bytes());
    out.push(0);
    out.extend_from_slice(doc);
    out
}

/// Splits a stored value into header and document; `None` when it is too short to hold
/// a header (a corrupt entry).
pub(crate) fn decode(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let (head, doc) = bytes.split_at_checked(HEADER_LEN)?;
    let (expires, rest) = head.split_first_chunk::<8>()?;
    let (accessed, rest) = rest.split_first_chunk::<4>()?;
    let (&tag, rest) = rest.split_first()?;
    let (version, _reserved) = rest.split_first_chunk::<2>()?;
    let header = Header {
        expires_ms: u64::from_le_bytes(*expires),
        accessed_s: u32::from_le_bytes(*accessed),
        schema: Schema::from_bytes(tag, *version),
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

/// The current time as unix milliseconds and unix seconds (the units of a header).
pub(crate) fn now() -> (u64, u32) {
    let now = SystemTime::now();
    (unix_ms(now), unix_s32(now))
}

/// The time a stamp in unix seconds stands for.
pub(crate) fn from_unix_s(s: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(s))
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
            schema: Schema::Version(2),
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

    fn header(schema: Schema) -> Header {
        Header {
            expires_ms: 0,
            accessed_s: 0,
            schema,
        }
    }

    #[test]
    fn schema_version_is_recorded_and_judged_at_read_time() {
        let blob_v2 = br#"{"SchemaVersion":2}"#;
        assert_eq!(Schema::of(EntryKind::Blob, blob_v2), Schema::Version(2));
        assert_eq!(
            Schema::of(EntryKind::Blob, br#"{"SchemaVersion":1,"OS":{}}"#),
            Schema::Version(1)
        );
        assert_eq!(
            Schema::of(EntryKind::Blob, b"{not json"),
            Schema::NotDocument
        );
        assert_eq!(Schema::of(EntryKind::Blob, b"[2]"), Schema::NotDocument);
        // Versions the header cannot hold are judged from the document when read.
        assert_eq!(
            Schema::of(EntryKind::Blob, br#"{"SchemaVersion":70000}"#),
            Schema::Unknown
        );
        assert_eq!(
            Schema::of(EntryKind::Blob, br#"{"SchemaVersion":-1}"#),
            Schema::Unknown
        );
        assert_eq!(
            Schema::of(EntryKind::Blob, br#"{"SchemaVersion":0}"#),
            Schema::Unknown
        );
        for schema in [
            Schema::Unknown,
            Schema::Version(1),
            Schema::Version(2),
            Schema::Version(513),
            Schema::NotDocument,
        ] {
            let v = encode(header(schema), blob_v2);
            assert_eq!(decode(&v).unwrap().0.schema, schema, "{schema:?}");
        }
        // The header, not the document, decides: a blob recorded as version 1 is stale
        // even if its bytes say otherwise (the header is what was written), version 2
        // (the current blob version) is current, and the artifact kind's current
        // version is compared for artifacts.
        let judge = |schema, kind| {
            let v = encode(header(schema), blob_v2);
            let (h, doc) = decode(&v).unwrap();
            h.is_current(kind, doc)
        };
        assert!(!judge(Schema::Version(1), EntryKind::Blob));
        assert!(judge(Schema::Version(2), EntryKind::Blob));
        assert!(judge(Schema::Version(1), EntryKind::Artifact));
        assert!(!judge(Schema::Version(2), EntryKind::Artifact));
        assert!(!judge(Schema::NotDocument, EntryKind::Blob));
        // Unknown falls back to parsing the document.
        assert!(judge(Schema::Unknown, EntryKind::Blob));
        assert!(!judge(Schema::Unknown, EntryKind::Artifact));
    }

    #[test]
    fn header_bytes_are_as_documented() {
        let h = Header {
            expires_ms: 0x0102_0304_0506_0708,
            accessed_s: 0x0a0b_0c0d,
            schema: Schema::Version(0x0201),
        };
        let v = encode(h, b"{}");
        assert_eq!(
            v[..HEADER_LEN],
            [8, 7, 6, 5, 4, 3, 2, 1, 0xd, 0xc, 0xb, 0xa, 1, 1, 2, 0]
        );
        // Values written before the version field existed: tag 1 ("current") with zeros
        // read as unknown, tag 2 ("stale") as not current, and unknown tags as unknown.
        let mut legacy = v.clone();
        legacy[12..16].copy_from_slice(&[1, 0, 0, 0]);
        assert_eq!(decode(&legacy).unwrap().0.schema, Schema::Unknown);
        legacy[12] = 2;
        assert_eq!(decode(&legacy).unwrap().0.schema, Schema::NotDocument);
        legacy[12] = 9;
        assert_eq!(decode(&legacy).unwrap().0.schema, Schema::Unknown);
    }

    #[test]
    fn expiry() {
        let never = Header {
            expires_ms: 0,
            accessed_s: 0,
            schema: Schema::Unknown,
        };
        assert!(!never.is_expired(u64::MAX));
        assert_eq!(never.expires_at(), None);
        let h = Header {
            expires_ms: 1000,
            accessed_s: 0,
            schema: Schema::Unknown,
        };
        assert!(h.is_expired(1000) && !h.is_expired(999));
        assert_eq!(h.expires_at(), Some(UNIX_EPOCH + Duration::from_secs(1)));
        assert_eq!(expires_ms(None), 0);
        assert_eq!(expires_ms(Some(UNIX_EPOCH)), 1);
    }
}
