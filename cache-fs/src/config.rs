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
    /// How stale a stored last-access stamp may get before a read records a new one
    /// (reads never write; recorded stamps are written in batches, as the crate's `touch`
    /// module describes). Default one minute.
    pub access_granularity: Duration,
    /// The longest a recorded access stamp waits in memory before a thread of the store
    /// writes it, so that another process's `gc --unused-for` sees reads of a process
    /// that has gone idle. Default five minutes.
    pub access_flush_after: Duration,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            initial_map_size: 64 << 20,
            access_granularity: Duration::from_secs(60),
            access_flush_after: Duration::from_secs(300),
        }
    }
}
