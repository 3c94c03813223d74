//! The export/import format: one JSON object per line,
//! `{"kind":"blob","id":"sha256:…","document":{…},"expires_at":"2026-01-01T00:00:00Z"}`
//! (`expires_at` is `null` for entries that never expire).

use std::time::SystemTime;

use anyhow::{Context, Result, anyhow};
use cache_core::{ArtifactInfo, BlobInfo, Digest, EntryKey, EntryKind, RawEntry};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One line of an export file.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    kind: EntryKind,
    id: Digest,
    #[serde(borrow)]
    document: &'a RawValue,
    expires_at: Option<String>,
}

/// Formats an entry as one line (without the newline). Fails for a value that is not
/// JSON, which cannot be represented in the format.
pub fn to_line(entry: &RawEntry) -> Result<String> {
    let text = std::str::from_utf8(&entry.value).context("the stored value is not UTF-8")?;
    // Keep one entry per line. A raw line break can only be whitespace between tokens
    // (inside a JSON string it must be escaped), so replacing it with a space keeps the
    // document — and its key order, which Redis's currency check relies on — intact.
    let one_line;
    let text = if text.contains(['\n', '\r']) {
        one_line = text.replace(['\n', '\r'], " ");
        one_line.as_str()
    } else {
        text
    };
    let document: &RawValue = serde_json::from_str(text).context("the stored value is not JSON")?;
    let line = Line {
        kind: entry.key.kind,
        id: entry.key.id.clone(),
        document,
        expires_at: entry.expires_at.map(format_time),
    };
    Ok(serde_json::to_string(&line)?)
}

/// Formats a time as RFC 3339 UTC with milliseconds. Times past the year 9999 (which
/// only a foreign writer can store) are shown as the last millisecond of 9999 instead of
/// failing.
pub fn format_time(t: SystemTime) -> String {
    const MAX_SECS: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (secs, nanos) = match since.as_secs() {
        s if s > MAX_SECS => (MAX_SECS, 999_000_000),
        s => (s, since.subsec_nanos()),
    };
    DateTime::<Utc>::from_timestamp(secs as i64, nanos)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Checks that `doc` decodes as the document of `kind` (docs/documents.md): the check
/// every import applies before it stores a document.
pub fn check_document(kind: EntryKind, doc: &str) -> Result<()> {
    let check = match kind {
        EntryKind::Artifact => serde_json::from_str::<ArtifactInfo>(doc).map(|_| ()),
        EntryKind::Blob => serde_json::from_str::<BlobInfo>(doc).map(|_| ()),
        EntryKind::Report => {
            return Err(anyhow!(
                "stored reports are not imported (the next scan rebuilds them)"
            ));
        }
    };
    check.map_err(|e| anyhow!("document is not a valid {kind}: {e}"))
}

/// Parses and validates one line: the ID, the kind, a document that decodes as that kind,
/// and the expiry.
pub fn from_line(text: &str) -> Result<RawEntry> {
    let line: Line = serde_json::from_str(text).map_err(|e| anyhow!("not a valid entry: {e}"))?;
    let doc = line.document.get();
    check_document(line.kind, doc)?;
    let expires_at = match &line.expires_at {
        None => None,
        Some(s) => Some(SystemTime::from(DateTime::parse_from_rfc3339(s).map_err(
            |e| anyhow!("expires_at {s:?} is not an RFC 3339 time: {e}"),
        )?)),
    };
    Ok(RawEntry {
        key: EntryKey {
            kind: line.kind,
            id: line.id,
        },
        value: doc.as_bytes().to_vec(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ID: &str = "sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0";

    #[test]
    fn lines_round_trip_bytes_and_expiry() {
        let value = br#"{"SchemaVersion":2,"Zed":1,"Alpha":[1,2]}"#.to_vec();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let entry = RawEntry {
            key: EntryKey {
                kind: EntryKind::Blob,
                id: Digest::parse(ID).unwrap(),
            },
            value: value.clone(),
            expires_at: Some(at),
        };
        let line = to_line(&entry).unwrap();
        assert!(
            line.contains(r#""expires_at":"2027-01-15T08:00:00.123Z""#),
            "{line}"
        );
        let back = from_line(&line).unwrap();
        assert_eq!(
            back, entry,
            "bytes (including key order) and expiry survive"
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let cases = [
            ("not json", "not a valid entry"),
            (
                r#"{"kind":"blob","id":"sha256:00","document":{},"expires_at":null}"#,
                "64 hex",
            ),
            (
                &format!(r#"{{"kind":"layer","id":"{ID}","document":{{}},"expires_at":null}}"#),
                "unknown variant",
            ),
            (
                &format!(r#"{{"kind":"blob","id":"{ID}","document":[1],"expires_at":null}}"#),
                "not a valid blob",
            ),
            (
                &format!(r#"{{"kind":"blob","id":"{ID}","document":{{}},"expires_at":"soon"}}"#),
                "RFC 3339",
            ),
        ];
        for (line, want) in cases {
            let msg = format!("{:#}", from_line(line).unwrap_err());
            assert!(msg.contains(want), "{line}: {msg}");
        }
    }

    #[test]
    fn multi_line_documents_keep_their_key_order() {
        let entry = RawEntry {
            key: EntryKey {
                kind: EntryKind::Blob,
                id: Digest::parse(ID).unwrap(),
            },
            value: b"{\n\"SchemaVersion\": 2,\r\n\"Zed\": \"a\\nb\",\n\"Alpha\": 1}".to_vec(),
            expires_at: None,
        };
        let value = from_line(&to_line(&entry).unwrap()).unwrap().value;
        let text = String::from_utf8(value).unwrap();
        assert!(text.starts_with("{ \"SchemaVersion\": 2,"), "{text}");
        assert!(text.find("Zed") < text.find("Alpha"), "{text}");
        assert!(
            text.contains(r#""a\nb""#),
            "escaped line breaks stay: {text}"
        );
    }

    #[test]
    fn far_future_times_do_not_panic() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert_eq!(format_time(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            format_time(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn multi_line_documents_become_one_line() {
        let entry = RawEntry {
            key: EntryKey {
                kind: EntryKind::Artifact,
                id: Digest::parse(ID).unwrap(),
            },
            value: b"{\n  \"SchemaVersion\": 1\n}".to_vec(),
            expires_at: None,
        };
        let line = to_line(&entry).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(
            from_line(&line).unwrap().value,
            br#"{   "SchemaVersion": 1 }"#
        );
    }
}
