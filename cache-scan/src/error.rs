//! [`ScanError`]: everything a scan can fail with.

use std::path::PathBuf;

/// A `Result` whose error is [`ScanError`].
pub type Result<T, E = ScanError> = std::result::Result<T, E>;

/// Everything [`crate::scan()`] can fail with.
///
/// Each message is one lower-case line naming the file, layer or digest involved and why
/// it failed, fit to print as is. A message includes the error that caused it (an I/O or
/// cache error), so `source()` does not return that error again: printing the chain of
/// sources, as `scancache` does, names each cause once. No error leaves an artifact
/// entry in the cache; layers analysed and verified before the failure may stay cached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// Reading the input (or a file inside an image layout directory) failed.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was being done, e.g. `open`.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error (part of the message).
        error: std::io::Error,
    },
    /// The input is neither a tar archive (plain, gzip or zstd) nor an image layout
    /// directory.
    #[error("{} is not an image archive: {reason}", path.display())]
    NotAnArchive {
        /// The input.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The archive ends in the middle of an entry.
    #[error("{} is truncated: {reason}", path.display())]
    Truncated {
        /// The input.
        path: PathBuf,
        /// Which entry is cut short.
        reason: String,
    },
    /// A file the image format requires (manifest, index, config or layer) is absent.
    #[error("{} has no {what} {name:?}", path.display())]
    Missing {
        /// The input.
        path: PathBuf,
        /// `manifest`, `index`, `config` or `layer`.
        what: &'static str,
        /// The name it should have inside the archive.
        name: String,
    },
    /// A manifest, index or config is unreadable or inconsistent.
    #[error("invalid {what} {name:?} in {}: {reason}", path.display())]
    InvalidMetadata {
        /// The input.
        path: PathBuf,
        /// `manifest`, `index` or `config`.
        what: &'static str,
        /// Its name inside the archive.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--image REF` names no image of a multi-image archive.
    #[error("no image tagged {reference:?} in {}; it holds: {available}", path.display())]
    ImageNotFound {
        /// The input.
        path: PathBuf,
        /// The reference asked for.
        reference: String,
        /// The tags the archive does hold, each quoted and escaped, comma separated.
        available: String,
    },
    /// The config lists a different number of diffIDs than the manifest lists layers.
    #[error(
        "image {image} lists {layers} layers but its config has {diff_ids} diffIDs (rootfs.diff_ids)"
    )]
    DiffIdCount {
        /// The image ID.
        image: String,
        /// Layers in the manifest.
        layers: usize,
        /// DiffIDs in the config.
        diff_ids: usize,
    },
    /// A layer's or blob's content does not have the digest the image says it has.
    #[error("{what} {name:?} does not match its digest: expected {expected}, content is {actual}")]
    DigestMismatch {
        /// `layer` (uncompressed content vs diffID), `blob` (stored bytes vs manifest
        /// digest) or `config`.
        what: &'static str,
        /// The entry's name inside the archive.
        name: String,
        /// The digest the image declares.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// A layer's compressed stream is corrupt, or uses an unsupported compression.
    #[error("layer {layer} ({name:?}): corrupt or unsupported {format} stream: {reason}")]
    Decompress {
        /// The layer's diffID.
        layer: String,
        /// The layer's name inside the archive.
        name: String,
        /// `gzip`, `zstd`, or the unsupported format found.
        format: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// A layer's (uncompressed) content is not a valid tar stream.
    #[error("layer {layer} ({name:?}) is not a valid tar stream: {reason}")]
    LayerFormat {
        /// The layer's diffID.
        layer: String,
        /// The layer's name inside the archive.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer decompresses to more than the configured limit (a decompression bomb, or
    /// a limit set too low).
    #[error(
        "layer {layer} ({name:?}) decompresses to more than {limit} bytes; refusing to read on"
    )]
    LayerTooLarge {
        /// The layer's diffID.
        layer: String,
        /// The layer's name inside the archive.
        name: String,
        /// The limit in bytes ([`crate::ScanOptions::max_layer_size`]).
        limit: u64,
    },
    /// An archive compressed as a whole decompresses to more than the configured limit
    /// (a decompression bomb, or a limit set too low).
    #[error("{} decompresses to more than {limit} bytes; refusing to read on", path.display())]
    ArchiveTooLarge {
        /// The input.
        path: PathBuf,
        /// The limit in bytes ([`crate::ScanOptions::max_layer_size`]).
        limit: u64,
    },
    /// A package database is larger than the configured cap.
    #[error(
        "package database {path:?} in layer {layer} is {size} bytes, more than the cap of {limit} bytes"
    )]
    PackageDbTooLarge {
        /// The layer's diffID.
        layer: String,
        /// The database's path inside the layer.
        path: String,
        /// Its size.
        size: u64,
        /// The cap ([`crate::ScanOptions::max_db_size`]).
        limit: u64,
    },
    /// A layer's result, or the image, crosses one of the caps on what a scan accepts
    /// (packages per layer, the stored document's size, layers per image). Nothing is
    /// stored for that layer.
    #[error("{}", limit_message(subject, *limit, *cap, *reached))]
    LimitExceeded {
        /// `layer <diffID>` or `image <image ID>`.
        subject: String,
        /// Which cap.
        limit: crate::Limit,
        /// The cap's value (a count, or bytes for the document size).
        cap: u64,
        /// What was reached: the first count past the cap, or (for the document size)
        /// the size, or a lower estimate of it when the read stopped early.
        reached: u64,
    },
    /// A cache operation failed; the cache's error is part of the message.
    #[error("cache: {0}")]
    Cache(cache_core::Error),
    /// A worker task ended without an answer (it panicked or the runtime shut down).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<cache_core::Error> for ScanError {
    fn from(e: cache_core::Error) -> Self {
        ScanError::Cache(e)
    }
}

impl ScanError {
    /// True for errors that come from the cache rather than from the input.
    pub fn is_cache(&self) -> bool {
        matches!(self, ScanError::Cache(_))
    }

    /// The cap this error says was crossed, if it says one was; a front end names the
    /// option that raises it, and a server counts it.
    pub fn limit(&self) -> Option<crate::Limit> {
        match self {
            ScanError::LimitExceeded { limit, .. } => Some(*limit),
            ScanError::Cache(e) if e.is_document_too_large() => Some(crate::Limit::DocumentSize),
            _ => None,
        }
    }

    /// True for errors saying that content does not match its declared digest.
    pub fn is_digest_mismatch(&self) -> bool {
        matches!(self, ScanError::DigestMismatch { .. })
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        error: std::io::Error,
    ) -> Self {
        ScanError::Io {
            action,
            path: path.into(),
            error,
        }
    }
}

/// The message of [`ScanError::LimitExceeded`].
fn limit_message(subject: &str, limit: crate::Limit, cap: u64, reached: u64) -> String {
    let setting = limit.setting();
    match limit {
        crate::Limit::PackagesPerLayer => format!(
            "{subject} has more than {cap} packages after duplicates collapse (the {limit}, \
             {setting}); nothing was stored for it"
        ),
        crate::Limit::DocumentSize => format!(
            "{subject}: its result is larger than the {limit} of {cap} bytes (at least \
             {reached} bytes; {setting}); nothing was stored for it"
        ),
        crate::Limit::Layers => {
            format!("{subject} has {reached} layers, more than the {limit} of {cap} ({setting})")
        }
    }
}
