//! The error type shared by every cache backend.

use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a cache operation can fail with.
///
/// A cache miss is never an error: lookups return `Ok(None)`. New variants may be added,
/// so matches need a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string that should be a cache ID (`sha256:<64 lowercase hex>`) is not one.
    #[error("invalid ID {input:?}: {reason}")]
    InvalidId {
        /// The rejected input, truncated to a readable length.
        input: String,
        /// What exactly was wrong with it.
        reason: &'static str,
    },
    /// A stored entry exists but cannot be decoded as the document it should hold.
    #[error("corrupt {kind} entry {id}: {reason}")]
    Corrupt {
        /// Which kind of entry was read.
        kind: crate::EntryKind,
        /// The ID of the corrupt entry.
        id: String,
        /// Why decoding failed.
        reason: String,
    },
    /// The backend cannot be reached or refused the connection.
    #[error("cache backend {backend} is unavailable: {reason}")]
    Unavailable {
        /// The backend's address, with any password masked.
        backend: String,
        /// Why it is unavailable.
        reason: String,
    },
    /// The backend refused this client: a wrong password, token or admin token, a TLS
    /// certificate that does not verify, a permission the client lacks. A
    /// misconfiguration, which retrying cannot mend (unlike [`Error::Unavailable`]).
    #[error("cache backend {backend} refused the request: {reason}")]
    Denied {
        /// The backend's address, with any password masked.
        backend: String,
        /// What was refused, and why.
        reason: String,
    },
    /// The backend answered, but the operation failed there.
    #[error("cache backend {backend}: {message}")]
    Backend {
        /// The backend's address, with any password masked.
        backend: String,
        /// What failed.
        message: String,
    },
    /// A cache setting (backend spec, TTL, size, TLS file, …) is invalid. The message
    /// names the setting as the library knows it; a front end that knows which of its
    /// options set it names that instead ([`Setting`]).
    #[error("invalid {setting}: {reason}")]
    Config {
        /// The setting that is wrong.
        setting: Setting,
        /// Why it is wrong, including the accepted forms.
        reason: String,
    },
    /// A document is larger than the cap on stored documents
    /// ([`crate::CacheOptions::max_document_size`]); nothing was stored under its key.
    #[error(
        "{kind} document {id} is {size} bytes, more than the document size cap of {limit} bytes"
    )]
    DocumentTooLarge {
        /// Which kind of entry it would have been.
        kind: crate::EntryKind,
        /// Its ID.
        id: String,
        /// Its encoded size in bytes.
        size: u64,
        /// The cap in bytes.
        limit: u64,
    },
    /// A file-system operation failed. The message quotes the underlying error, which is
    /// therefore not also returned as the error's source (a printed chain would name it
    /// twice).
    #[error("{action} {}: {cause}", path.display())]
    Io {
        /// What was being done, e.g. `cannot create cache directory`.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
}

/// A setting that [`Error::Config`] can name. Libraries do not know the command-line
/// flags or other front-end names for them; front ends map each to their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// Which backend, and its address (a backend spec or URL).
    Backend,
    /// A time to live.
    Ttl,
    /// A size in bytes.
    Size,
    /// The CA certificate file that verifies a TLS server.
    TlsCa,
    /// The client certificate file of mutual TLS.
    TlsCert,
    /// The client private key file of mutual TLS.
    TlsKey,
    /// The name Redis Sentinel knows a master by.
    MasterName,
    /// An entry kind (`artifact` or `blob`).
    EntryKind,
    /// An input of `calc_key`.
    KeyInput,
    /// The cap on one stored document's size.
    MaxDocumentSize,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Setting::Backend => "cache backend",
            Setting::Ttl => "TTL",
            Setting::Size => "size",
            Setting::TlsCa => "TLS CA file",
            Setting::TlsCert => "TLS client certificate",
            Setting::TlsKey => "TLS client key",
            Setting::MasterName => "Redis master name",
            Setting::EntryKind => "entry kind",
            Setting::KeyInput => "calc_key input",
            Setting::MaxDocumentSize => "document size cap",
        })
    }
}

impl Error {
    /// Returns true for an error that says an entry is corrupt.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// Returns true for an error that says a document is over the document size cap.
    pub fn is_document_too_large(&self) -> bool {
        matches!(self, Error::DocumentTooLarge { .. })
    }

    /// The setting that raises the cap this error says was crossed, if it says one was
    /// (a front end names its own option for it).
    pub fn cap(&self) -> Option<Setting> {
        match self {
            Error::DocumentTooLarge { .. } => Some(Setting::MaxDocumentSize),
            _ => None,
        }
    }

    /// Returns true for an error that says the backend is unreachable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// Returns true for an error that says the backend refused this client's credentials
    /// or certificate ([`Error::Denied`]).
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::Denied { .. })
    }

    /// Returns true for an error that says the cache cannot serve right now — it cannot
    /// be reached, failed an operation, its files cannot be read or written (a full
    /// disk), or it is corrupt — as opposed to a misconfiguration (an invalid setting, a
    /// refused password, token or certificate) or a misuse (an invalid ID). A program
    /// for which the cache only speeds things up may go on without it after such an
    /// error; any other error is the caller's to fix.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::Backend { .. }
                | Error::Io { .. }
                | Error::Corrupt { .. }
        )
    }

    /// The setting and reason of an [`Error::Config`], for a front end that names the
    /// setting its own way.
    pub fn config_parts(&self) -> Option<(Setting, &str)> {
        match self {
            Error::Config { setting, reason } => Some((*setting, reason)),
            _ => None,
        }
    }

    /// Builds an [`Error::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outages are what a scanner may go on without; misconfigurations and misuse are not.
    #[test]
    fn outages_and_misconfigurations() {
        let backend = || "redis://h:1".to_owned();
        let outages = [
            Error::Unavailable {
                backend: backend(),
                reason: "connection refused".into(),
            },
            Error::Backend {
                backend: backend(),
                message: "MDB_CORRUPTED".into(),
            },
            Error::io(
                "cannot write",
                "/c/fanal/data.mdb",
                std::io::Error::other("disk full"),
            ),
            Error::Corrupt {
                kind: crate::EntryKind::Blob,
                id: "sha256:aa".into(),
                reason: "not JSON".into(),
            },
        ];
        for e in &outages {
            assert!(e.is_outage(), "{e}");
            assert!(!e.is_denied(), "{e}");
        }
        let not = [
            Error::Denied {
                backend: backend(),
                reason: "invalid token".into(),
            },
            Error::Config {
                setting: Setting::TlsCa,
                reason: "no such file".into(),
            },
            Error::InvalidId {
                input: "x".into(),
                reason: "no sha256: prefix",
            },
        ];
        for e in &not {
            assert!(!e.is_outage(), "{e}");
        }
        assert!(not[0].is_denied());
    }
}
