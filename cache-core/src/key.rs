//! Validated cache IDs: `sha256:<64 lowercase hex>`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

const PREFIX: &str = "sha256:";
const HEX_LEN: usize = 64;

/// A validated `sha256:<64 lowercase hex>` digest string.
///
/// The inner string is private, so every `Digest` in the program is well formed; backends
/// can use [`Digest::as_str`] in keys and paths without re-checking it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates a digest string.
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidId {
            input: shorten(input),
            reason,
        };
        let hex = input
            .strip_prefix(PREFIX)
            .ok_or_else(|| invalid("must start with \"sha256:\""))?;
        if hex.len() != HEX_LEN {
            return Err(invalid("must have exactly 64 hex digits after \"sha256:\""));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("hex digits must be 0-9 or lowercase a-f"));
        }
        Ok(Digest(input.to_owned()))
    }

    /// Builds a digest from a raw 32-byte SHA-256 value.
    pub fn from_sha256(bytes: [u8; 32]) -> Self {
        Digest(format!("{PREFIX}{}", hex::encode(bytes)))
    }

    /// The full string, `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }
}

/// Keeps error messages readable when someone passes a huge string as an ID.
fn shorten(input: &str) -> String {
    const MAX: usize = 80;
    match input.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &input[..end]),
        None => input.to_owned(),
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Digest);

        impl $name {
            /// Parses and validates an ID string.
            pub fn parse(input: &str) -> Result<Self> {
                Digest::parse(input).map($name)
            }

            /// The full string, `sha256:…`.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The digest this ID wraps.
            pub fn digest(&self) -> &Digest {
                &self.0
            }
        }

        impl From<Digest> for $name {
            fn from(d: Digest) -> Self {
                $name(d)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }
    };
}

id_type!(
    /// The cache key of one layer's analysis result (a [`crate::BlobInfo`]).
    BlobId
);
id_type!(
    /// The cache key of one image's record (an [`crate::ArtifactInfo`]).
    ArtifactId
);

/// The kinds of entry a scan cache holds: the reference scanner's two documents, and
/// scancache's own stored reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// An image record ([`crate::ArtifactInfo`]).
    Artifact,
    /// A layer's analysis result ([`crate::BlobInfo`]).
    Blob,
    /// A finished, rendered report of a directory scan ([`crate::report`]): scancache's
    /// own kind, which the reference scanner never reads.
    Report,
}

impl EntryKind {
    /// Every kind, artifacts first.
    pub const ALL: [EntryKind; 3] = [EntryKind::Artifact, EntryKind::Blob, EntryKind::Report];

    /// `"artifact"`, `"blob"` or `"report"`, as used in Redis keys and export files.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Artifact => "artifact",
            EntryKind::Blob => "blob",
            EntryKind::Report => "report",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "artifact" => Ok(EntryKind::Artifact),
            "blob" => Ok(EntryKind::Blob),
            "report" => Ok(EntryKind::Report),
            _ => Err(Error::Config {
                setting: crate::Setting::EntryKind,
                reason: format!("{s:?} is not \"artifact\", \"blob\" or \"report\""),
            }),
        }
    }
}

/// The full address of one entry: its kind and its ID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    /// Artifact, blob or report.
    pub kind: EntryKind,
    /// The entry's ID.
    pub id: Digest,
}

impl EntryKey {
    /// The key of an artifact entry.
    pub fn artifact(id: &ArtifactId) -> Self {
        EntryKey {
            kind: EntryKind::Artifact,
            id: id.digest().clone(),
        }
    }

    /// The key of a blob entry.
    pub fn blob(id: &BlobId) -> Self {
        EntryKey {
            kind: EntryKind::Blob,
            id: id.digest().clone(),
        }
    }

    /// The key of a stored report ([`crate::report::report_key`]).
    pub fn report(id: &Digest) -> Self {
        EntryKey {
            kind: EntryKind::Report,
            id: id.clone(),
        }
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn check(input: &str, expected_reason: Option<&str>) {
        match (BlobId::parse(input), expected_reason) {
            (Ok(id), None) => assert_eq!(id.as_str(), input),
            (Err(Error::InvalidId { reason, .. }), Some(want)) => {
                assert!(
                    reason.contains(want),
                    "{input:?}: got {reason:?}, want {want:?}"
                )
            }
            (got, want) => panic!("{input:?}: got {got:?}, want error {want:?}"),
        }
    }

    #[test]
    fn parses_valid_and_rejects_invalid_ids() {
        check(GOOD, None);
        check("", Some("must start with"));
        check("sha512:00", Some("must start with"));
        check("SHA256:0123", Some("must start with"));
        check("sha256:", Some("64 hex digits"));
        check(&GOOD[..GOOD.len() - 1], Some("64 hex digits"));
        check(&format!("{GOOD}0"), Some("64 hex digits"));
        check(
            &format!("sha256:{}", GOOD[7..].replace('a', "A")),
            Some("lowercase"),
        );
        check(
            &format!("sha256:{}", GOOD[7..].replace('a', "g")),
            Some("lowercase"),
        );
        // A multi-byte character must not make validation slice inside it.
        check(&format!("sha256:{}é", &GOOD[7..69]), Some("lowercase"));
    }

    #[test]
    fn long_inputs_are_shortened_in_errors() {
        let long = "x".repeat(10_000);
        let msg = BlobId::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = ArtifactId::parse(GOOD).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{GOOD}\""));
        let back: ArtifactId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        let bad: Result<ArtifactId, _> = serde_json::from_str("\"sha256:00\"");
        assert!(bad.unwrap_err().to_string().contains("64 hex digits"));
    }

    #[test]
    fn display_honours_width() {
        assert_eq!(format!("{:<8}|", EntryKind::Blob), "blob    |");
        let d = Digest::from_sha256([0; 32]);
        assert_eq!(format!("{d:>72}").len(), 72);
    }

    #[test]
    fn from_sha256_formats_lowercase_hex() {
        let d = Digest::from_sha256([0xab; 32]);
        assert_eq!(d.hex(), "ab".repeat(32));
        assert!(Digest::parse(d.as_str()).is_ok());
    }
}
