//! The error type shared by every cache backend.

use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a cache operation can fail with.
///
/// A cache miss is never an error: lookups return `Ok(None)`.
#[derive(Debug, thiserror::Error)]
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
    /// The backend answered, but the operation failed there.
    #[error("cache backend {backend}: {message}")]
    Backend {
        /// The backend's address, with any password masked.
        backend: String,
        /// What failed.
        message: String,
    },
    /// A cache option (backend spec, TTL, size, TLS file, …) is invalid.
    #[error("invalid {option}: {reason}")]
    Config {
        /// The option that is wrong, e.g. `--cache-ttl`.
        option: &'static str,
        /// Why it is wrong, including the accepted forms.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `cannot create cache directory`.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Returns true for an error that says an entry is corrupt.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// Returns true for an error that says the backend is unreachable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// Builds an [`Error::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
