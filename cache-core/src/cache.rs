//! The `Cache` trait every backend implements, and the types of its admin surface.

use std::{fmt, time::SystemTime};

use async_trait::async_trait;

use crate::{ArtifactId, ArtifactInfo, BlobId, BlobInfo, EntryKey, EntryKind, Result};

/// A callback that receives entries one at a time, so listing or exporting a cache of any
/// size never holds it all in memory. Returning an error stops the walk and is passed on.
pub type Visitor<'a, T> = &'a mut (dyn FnMut(T) -> Result<()> + Send);

/// The answer of [`Cache::missing_blobs`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// True when the artifact entry must be (re)written.
    pub artifact: bool,
    /// The blob IDs that must be (re)analysed, in the order they were asked for.
    pub blobs: Vec<BlobId>,
}

/// One stored entry as the admin commands see it, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Kind and ID.
    pub key: EntryKey,
    /// Stored size of the value in bytes.
    pub size: u64,
    /// When the entry expires; `None` for never.
    pub expires_at: Option<SystemTime>,
}

/// One stored entry with its raw value, for export and import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// Kind and ID.
    pub key: EntryKey,
    /// The stored bytes: a JSON document, or whatever another writer left there.
    pub value: Vec<u8>,
    /// When the entry expires; `None` for never.
    pub expires_at: Option<SystemTime>,
}

/// Counts reported by [`Cache::stats`]. Counts and bytes cover live entries only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live artifact entries.
    pub artifacts: u64,
    /// Live blob entries.
    pub blobs: u64,
    /// Sum of the stored sizes of the live entries.
    pub bytes: u64,
    /// Entries that have expired but are still stored (0 on backends that drop them
    /// by themselves).
    pub expired: u64,
    /// Size of the backend's files on disk, where it has any.
    pub disk_bytes: Option<u64>,
}

/// What [`Cache::gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entries removed because they had expired.
    pub expired: u64,
    /// Entries removed because their schema version is not current or they do not
    /// decode.
    pub stale: u64,
    /// Stored bytes of the removed entries.
    pub bytes: u64,
    /// On-disk size before and after, where the backend has files.
    pub disk_bytes: Option<(u64, u64)>,
}

/// A scan cache: per-layer analysis results ([`BlobInfo`]) and per-image records
/// ([`ArtifactInfo`]).
///
/// Contract shared by every backend and checked by the conformance suite
/// (`cache_core::testsuite`, feature `testsuite`):
/// - a miss (absent or expired entry) is `Ok(None)`, never an error;
/// - puts overwrite and apply the TTL the backend was configured with;
/// - an entry that does not decode is reported as [`crate::Error::Corrupt`] naming its
///   ID by the getters, and counts as missing in [`Cache::missing_blobs`];
/// - a document with an old `SchemaVersion` is returned by the getters (callers may check
///   `is_current()`), and counts as missing in [`Cache::missing_blobs`];
/// - [`Cache::clear`] removes every scan-cache entry of this backend and nothing else.
///
/// The trait is object safe: front ends hold an `Arc<dyn Cache>` chosen at run time.
#[async_trait]
pub trait Cache: Send + Sync + fmt::Debug {
    /// Short backend name: `fs`, `memory` or `redis`.
    fn backend_name(&self) -> &'static str;

    /// Where the cache lives (a path, or an address with any password masked), for
    /// messages and `cache stats`.
    fn location(&self) -> String;

    /// Tells whether the artifact entry is missing and which blobs are missing, in input
    /// order. Absent, expired, undecodable and stale-schema entries count as missing.
    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing>;

    /// Stores an artifact record, overwriting any previous one.
    async fn put_artifact(&self, id: &ArtifactId, info: &ArtifactInfo) -> Result<()>;

    /// Stores a layer's analysis result, overwriting any previous one.
    async fn put_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()>;

    /// Reads an artifact record; `Ok(None)` when absent or expired.
    async fn get_artifact(&self, id: &ArtifactId) -> Result<Option<ArtifactInfo>>;

    /// Reads a layer's analysis result; `Ok(None)` when absent or expired.
    async fn get_blob(&self, id: &BlobId) -> Result<Option<BlobInfo>>;

    /// Reads several blobs at once, in input order. Backends override this when they can
    /// do it in fewer round trips than one [`Cache::get_blob`] per ID.
    async fn get_blobs(&self, ids: &[BlobId]) -> Result<Vec<Option<BlobInfo>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get_blob(id).await?);
        }
        Ok(out)
    }

    /// Removes blobs; IDs that are not stored are ignored.
    async fn delete_blobs(&self, ids: &[BlobId]) -> Result<()>;

    /// Removes entries of either kind and returns how many were stored.
    async fn delete(&self, keys: &[EntryKey]) -> Result<u64>;

    /// Removes every scan-cache entry of this backend, and nothing else.
    async fn clear(&self) -> Result<()>;

    /// Releases the backend's resources. Idempotent; other calls after it may fail.
    async fn close(&self) -> Result<()>;

    /// Walks every stored entry (expired ones included, with their expiry) of one kind or
    /// of both.
    async fn list(&self, kind: Option<EntryKind>, visit: Visitor<'_, EntryMeta>) -> Result<()>;

    /// Counts entries and bytes.
    async fn stats(&self) -> Result<Stats>;

    /// Removes expired, stale-schema and undecodable entries, and returns disk space
    /// where the backend has files.
    async fn gc(&self) -> Result<GcReport>;

    /// Walks every live (unexpired) entry with its raw value.
    async fn export(&self, kind: Option<EntryKind>, visit: Visitor<'_, RawEntry>) -> Result<()>;

    /// Stores raw entries as given, each with its own expiry (not the configured TTL).
    /// Values are not checked: callers validate what they import.
    async fn import(&self, entries: &[RawEntry]) -> Result<()>;
}

/// The kind an [`EntryKind`] filter matches.
pub fn kind_matches(filter: Option<EntryKind>, kind: EntryKind) -> bool {
    filter.is_none_or(|k| k == kind)
}
