//! [`FsConfig`]: the settings of the file-system backend beyond the shared `CacheOptions`.

use std::time::Duration;

/// Settings specific to the LMDB backend. The defaults suit every real use; tests and
/// benchmarks change them to reach edge cases quickly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsConfig {
    /// The memory map size a new cache starts with, in bytes (rounded up to a multiple of
    /// the page size). The map grows on demand, so this only sets how often it grows.
    /// An existing cache keeps its larger size. Default 64 MiB.
    pub initial_map_size: usize,
    /// How stale a stored last-access stamp may get before a read records a new one.
    /// Reads never write: touched entries are remembered in memory and their stamps are
    /// written with this process's next write (or in a batch once enough piled up).
    /// Default one minute.
    pub access_granularity: Duration,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            initial_map_size: 64 << 20,
            access_granularity: Duration::from_secs(60),
        }
    }
}
