//! Stored reports: the value format of [`crate::EntryKind::Report`] entries, scancache's
//! own kind (the reference scanner neither writes nor reads it).
//!
//! A report entry holds the finished bytes of a rendered report (a table, a JSON report, a
//! reproducible SBOM), so a rescan of an unchanged directory writes them out without
//! decoding the stored result or building the report again. Its key is chosen by the
//! front end ([`report_key`]); this module only frames and checks the bytes.
//!
//! ```text
//! offset  size  field
//!      0     …  a JSON header line: {"SchemaVersion":1,"Size":N,"Sha256":"<64 hex>"}
//!      …     1  '\n'
//!      …     N  the report bytes exactly as written to the output
//! ```
//!
//! The header is JSON so an export line stays readable; it is at most
//! [`MAX_HEADER_LEN`] bytes. A value is *current* when its header parses with the current
//! `SchemaVersion`, and *sound* when the body also has exactly `Size` bytes whose SHA-256
//! is `Sha256`; a getter serves only sound values, so a truncated or damaged entry is
//! [`Error::Corrupt`], never part of a report.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{Digest, EntryKind, Error, Result, calc_key};

/// The current `SchemaVersion` of a stored report's header.
pub const REPORT_SCHEMA_VERSION: i64 = 1;

/// The longest header line accepted, in bytes (the newline excluded).
pub const MAX_HEADER_LEN: usize = 256;

/// The domain of [`report_key`]: the name its one "analyser" entry carries.
const KEY_DOMAIN: &str = "scancache-report";

/// The header line of a stored report.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    #[serde(rename = "SchemaVersion")]
    schema_version: i64,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Sha256")]
    sha256: String,
}

/// Frames report bytes as a stored value (header line, then the bytes).
pub fn encode(body: &[u8]) -> Vec<u8> {
    let header = Header {
        schema_version: REPORT_SCHEMA_VERSION,
        size: body.len() as u64,
        sha256: hex::encode(Sha256::digest(body)),
    };
    let line = serde_json::to_vec(&header).expect("a header always serializes");
    let mut out = Vec::with_capacity(line.len() + 1 + body.len());
    out.extend_from_slice(&line);
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// Splits a stored value into its header and body; `None` when the header line is
/// missing, too long or not a header.
fn split(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let end = bytes
        .iter()
        .take(MAX_HEADER_LEN + 1)
        .position(|b| *b == b'\n')?;
    let (line, rest) = bytes.split_at(end);
    let header: Header = serde_json::from_slice(line).ok()?;
    Some((header, rest.get(1..)?))
}

/// The `SchemaVersion` of a stored report's header, without checking the body; `None`
/// when the value has no header.
pub fn schema_version_of(bytes: &[u8]) -> Option<i64> {
    split(bytes).map(|(h, _)| h.schema_version)
}

/// Checks a stored value and returns the report bytes: the header is current, the body
/// has the size and SHA-256 it names. Anything else is [`Error::Corrupt`] naming `id`.
pub fn decode(id: &str, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let corrupt = |reason: &str| Error::Corrupt {
        kind: EntryKind::Report,
        id: id.to_owned(),
        reason: format!("not a valid report entry: {reason}"),
    };
    let (header, body) = split(&bytes).ok_or_else(|| corrupt("no header line"))?;
    if header.schema_version != REPORT_SCHEMA_VERSION {
        return Err(corrupt(&format!(
            "SchemaVersion {} is not {REPORT_SCHEMA_VERSION}",
            header.schema_version
        )));
    }
    if body.len() as u64 != header.size {
        return Err(corrupt(&format!(
            "{} bytes after the header, {} announced",
            body.len(),
            header.size
        )));
    }
    if hex::encode(Sha256::digest(body)) != header.sha256 {
        return Err(corrupt("the bytes do not match their SHA-256"));
    }
    let start = bytes.len() - body.len();
    bytes.drain(..start);
    Ok(bytes)
}

/// True when a stored value is a current report whose body matches its header.
pub fn is_sound(bytes: &[u8]) -> bool {
    split(bytes).is_some_and(|(h, body)| {
        h.schema_version == REPORT_SCHEMA_VERSION
            && body.len() as u64 == h.size
            && hex::encode(Sha256::digest(body)) == h.sha256
    })
}

/// The key of a stored report: [`calc_key`] of the result's key (`subject`, e.g. a
/// directory's blob key) with one entry `("scancache-report", REPORT_SCHEMA_VERSION)` and
/// `options`, every setting that changes the rendered bytes (the front end's format,
/// filters, the name printed, its version). The same inputs give the same key on every
/// platform (`docs/keys.md`).
pub fn report_key<'a, O>(subject: &Digest, options: O) -> Result<Digest>
where
    O: IntoIterator<Item = (&'a str, &'a str)>,
{
    let version = u32::try_from(REPORT_SCHEMA_VERSION).expect("a small version");
    calc_key(subject.as_str(), [(KEY_DOMAIN, version)], options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let body = b"Target    .\nOS        not detected\n".to_vec();
        let stored = encode(&body);
        let head = format!(r#"{{"SchemaVersion":1,"Size":{},"Sha256":""#, body.len());
        assert!(stored.starts_with(head.as_bytes()));
        assert_eq!(schema_version_of(&stored), Some(1));
        assert!(is_sound(&stored));
        assert_eq!(decode("sha256:x", stored).unwrap(), body);
        assert_eq!(decode("sha256:x", encode(b"")).unwrap(), b"");
    }

    #[test]
    fn damaged_values_are_corrupt() {
        let stored = encode(b"0123456789");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                stored[..stored.len() - 1].to_vec(),
                "9 bytes after the header",
            ),
            (
                [stored.as_slice(), b"x"].concat(),
                "11 bytes after the header",
            ),
            (
                [&stored[..stored.len() - 1], b"X"].concat(),
                "do not match their SHA-256",
            ),
            (b"0123456789".to_vec(), "no header line"),
            (br#"{"SchemaVersion":2}"#.to_vec(), "no header line"),
            (Vec::new(), "no header line"),
            (
                String::from_utf8(stored.clone())
                    .unwrap()
                    .replacen(":1,", ":9,", 1)
                    .into_bytes(),
                "SchemaVersion 9 is not 1",
            ),
        ];
        for (value, want) in cases {
            assert!(!is_sound(&value), "{want}");
            let err = decode("sha256:abc", value).unwrap_err();
            assert!(err.is_corrupt(), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(want) && msg.contains("sha256:abc"), "{msg}");
        }
    }

    /// The derivation of `docs/keys.md` ("Keys of stored reports"): update the document
    /// with it.
    #[test]
    fn documented_report_key() {
        let subject = Digest::from_sha256([7; 32]);
        let key = report_key(&subject, [("format", "json"), ("artifact-name", ".")]).unwrap();
        assert_eq!(
            key.as_str(),
            "sha256:b288f7a5eaaa70d72e0391084341d63949a041380fd9fb4243e3f44e3fad75ff"
        );
        let other = report_key(&subject, [("format", "table"), ("artifact-name", ".")]).unwrap();
        assert_ne!(key, other);
    }
}
