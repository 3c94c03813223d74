//! The error of every operation: the file's path and what is wrong with it.

use std::path::PathBuf;

/// The result of this crate's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a file could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, locked or read. The message quotes the cause, which
    /// is therefore not also returned as the error's source (a printed chain would name it
    /// twice).
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// What was being done: `open`, `lock`, `read`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// Another process holds the file's exclusive lock: a program that writes it (bbolt
    /// takes that lock for as long as it has the file open for writing) is running.
    #[error(
        "{} is locked by another process: a program that writes it has it open; try again when it has finished",
        path.display()
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a bbolt database: no meta page is valid, or it is too small to
    /// hold one, or it is not a regular file.
    #[error("{} is not a bbolt database: {reason}", path.display())]
    NotBbolt {
        /// The file.
        path: PathBuf,
        /// Why, e.g. `meta page 0: no bbolt magic number (found 0x00000000)`.
        reason: String,
    },
    /// The file has a valid meta page but its structure is damaged: a page reference, a
    /// count, an offset or a length that does not fit, a cycle, keys out of order, or a
    /// file shorter than its meta page says.
    #[error("{} is corrupt: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where and what, e.g. `bucket "blob", page 12: element 3 ends past the page`.
        problem: String,
    },
}

impl Error {
    /// True when the file itself is at fault ([`Error::NotBbolt`] or [`Error::Corrupt`]),
    /// not the system or another process.
    pub fn is_bad_file(&self) -> bool {
        matches!(self, Error::NotBbolt { .. } | Error::Corrupt { .. })
    }
}
