//! [`ScanOptions`] and the [`Progress`] hook.

use std::{fmt, num::NonZeroUsize, sync::Arc};

/// Default cap on one package database file: 256 MiB.
pub const DEFAULT_MAX_DB_SIZE: u64 = 256 << 20;

/// Default cap on one layer's uncompressed size: 64 GiB.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

/// Default cap on the packages of one layer, after duplicates collapse: 100,000. The
/// largest real images install a few thousand; at this cap (and the document size cap) a
/// scan's peak RSS stays under 256 MB (BENCHMARKS.md), which it does not at 200,000.
pub const DEFAULT_MAX_PACKAGES_PER_LAYER: u64 = 100_000;

/// Default cap on the layers of one image: 4,096 (Docker's storage drivers stop at 128,
/// OCI registries at a few hundred).
pub const DEFAULT_MAX_LAYERS: usize = 4096;

/// How to scan. `ScanOptions::default()` is what `scancache image` uses without flags.
#[derive(Clone)]
pub struct ScanOptions {
    /// Picks one image of a multi-image archive by tag (`debian:12`, `docker.io/library/
    /// debian:12`, `debian` meaning `debian:latest`) or by image ID (`sha256:…`, or a
    /// prefix of at least 12 hex digits). `None` scans the first image.
    pub image: Option<String>,
    /// Hashes every layer, also those whose result is cached, and fails on a mismatch.
    /// For archives from untrusted sources; costs a full read of the archive.
    pub verify_layers: bool,
    /// Largest package database file accepted, in bytes; a larger one is an error. Part of
    /// the cache key, since it changes which images analyse successfully.
    pub max_db_size: u64,
    /// Largest uncompressed layer accepted, in bytes; reading stops with an error past it.
    /// Memory use does not depend on it (layers are streamed); it bounds the time a
    /// decompression bomb can waste. An archive compressed as a whole is bounded the
    /// same way: each pass over it may decompress at most this many bytes (the whole
    /// archive, every layer included), else [`crate::ScanError::ArchiveTooLarge`].
    pub max_layer_size: u64,
    /// Most packages one layer may hold, counted after duplicates collapse; a layer with
    /// more fails the scan ([`crate::ScanError::LimitExceeded`]) and nothing is stored
    /// for it. The database is read no further once the cap is crossed. Not part of the
    /// cache key: a result below the cap is the same whatever the cap.
    ///
    /// The size of a layer's stored document is capped by the cache it is stored in
    /// (`cache_core::CacheOptions::max_document_size`), checked the same way while the
    /// layer is read.
    pub max_packages_per_layer: u64,
    /// Most layers an image may have; an image with more fails before any layer is
    /// read.
    pub max_layers: usize,
    /// How many layers are analysed at once; `None` means one per core. Never more than
    /// the number of cores.
    pub parallelism: Option<NonZeroUsize>,
    /// Receives progress while layers are read; `None` for none.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            image: None,
            verify_layers: false,
            max_db_size: DEFAULT_MAX_DB_SIZE,
            max_layer_size: DEFAULT_MAX_LAYER_SIZE,
            max_packages_per_layer: DEFAULT_MAX_PACKAGES_PER_LAYER,
            max_layers: DEFAULT_MAX_LAYERS,
            parallelism: None,
            progress: None,
        }
    }
}

impl fmt::Debug for ScanOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanOptions")
            .field("image", &self.image)
            .field("verify_layers", &self.verify_layers)
            .field("max_db_size", &self.max_db_size)
            .field("max_layer_size", &self.max_layer_size)
            .field("max_packages_per_layer", &self.max_packages_per_layer)
            .field("max_layers", &self.max_layers)
            .field("parallelism", &self.parallelism)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl ScanOptions {
    /// The number of layers read at once: the requested parallelism bounded by the cores.
    pub fn effective_parallelism(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        self.parallelism.map_or(cores, |p| p.get().min(cores))
    }
}

/// Why a layer is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerWork {
    /// Its result is not cached: it is analysed (and verified).
    Analyse,
    /// Its result is cached and `verify_layers` is set: it is only hashed.
    Verify,
}

/// Receives scan progress, e.g. to drive a progress bar. Every method has an empty
/// default. Methods are called from worker threads, several at once; keep them cheap.
///
/// The library itself never prints.
pub trait Progress: Send + Sync {
    /// Called once before any layer is read: how many layers will be read, and how many
    /// bytes of the archive that is (compressed sizes, as stored; 0 when unknown).
    fn start(&self, layers: usize, bytes: u64) {
        let _ = (layers, bytes);
    }

    /// Called when reading a layer begins.
    fn layer_started(&self, diff_id: &str, work: LayerWork) {
        let _ = (diff_id, work);
    }

    /// Called as archive bytes are read, with the number of new bytes.
    fn bytes_read(&self, bytes: u64) {
        let _ = bytes;
    }

    /// Called when a layer has been read and verified.
    fn layer_finished(&self, diff_id: &str, work: LayerWork) {
        let _ = (diff_id, work);
    }

    /// Called once when no more layers will be read (also after an error).
    fn finish(&self) {}
}
