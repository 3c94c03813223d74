//! `scancache.cache.v1`: the messages of scancache's own cache service, which the
//! remote backend (crate `cache-remote`) speaks. They carry the stored values — the
//! documents' JSON bytes, or whatever another writer left — as `bytes`, unchanged, so
//! unknown fields survive and corrupt entries travel as they are. The contract is
//! `docs/remote.md`; a change that old clients or servers would misread gets a new
//! package (`scancache.cache.v2`), never new meanings for these numbers.
//!
//! Expiries are Unix times in milliseconds (`expires_at_ms`); an absent one is "never".

use super::json::{json_message, proto_enum};

/// The two kinds of entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    /// No kind given: in a walk, every kind.
    Unspecified = 0,
    /// An image record.
    Artifact = 1,
    /// A layer's analysis result.
    Blob = 2,
    /// A stored report (scancache's own kind).
    Report = 3,
}
proto_enum!(Kind {
    Unspecified = "KIND_UNSPECIFIED",
    Artifact = "ARTIFACT",
    Blob = "BLOB",
    Report = "REPORT",
});

/// An entry's kind and ID.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Key {
    /// The kind.
    #[prost(enumeration = "Kind", tag = "1")]
    pub kind: i32,
    /// The cache ID, `sha256:<64 lower-case hex>`.
    #[prost(string, tag = "2")]
    pub id: String,
}
json_message!(Key { kind: enum Kind, id });

/// A stored value under its key, written with the server's TTL (`PutValues`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Value {
    /// Kind and ID.
    #[prost(message, optional, tag = "1")]
    pub key: Option<Key>,
    /// The stored bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}
json_message!(Value { key, value });

/// A stored value with its own expiry (`Write`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Entry {
    /// Kind and ID.
    #[prost(message, optional, tag = "1")]
    pub key: Option<Key>,
    /// The stored bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// Expiry, Unix milliseconds; absent for never.
    #[prost(int64, optional, tag = "3")]
    pub expires_at_ms: Option<i64>,
}
json_message!(Entry {
    key,
    value,
    expires_at_ms
});

/// `Missing`'s request: which of these entries must be (re)written.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MissingRequest {
    /// The artifact's cache ID.
    #[prost(string, tag = "1")]
    pub artifact_id: String,
    /// The blobs' cache IDs.
    #[prost(string, repeated, tag = "2")]
    pub blob_ids: Vec<String>,
}
json_message!(MissingRequest {
    artifact_id,
    blob_ids
});

/// `Missing`'s answer.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MissingResponse {
    /// The artifact entry is absent, expired or not current.
    #[prost(bool, tag = "1")]
    pub missing_artifact: bool,
    /// The blobs that are absent, expired or not current, in request order.
    #[prost(string, repeated, tag = "2")]
    pub missing_blob_ids: Vec<String>,
}
json_message!(MissingResponse {
    missing_artifact,
    missing_blob_ids
});

/// `Read`'s request: the stored values of live entries of one kind.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReadRequest {
    /// The kind (`ARTIFACT` or `BLOB`).
    #[prost(enumeration = "Kind", tag = "1")]
    pub kind: i32,
    /// The cache IDs.
    #[prost(string, repeated, tag = "2")]
    pub ids: Vec<String>,
}
json_message!(ReadRequest { kind: enum Kind, ids });

/// One answer of `Read`: the value, or none for an absent or expired entry.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Found {
    /// The stored bytes, when the entry is live.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub value: Option<Vec<u8>>,
}
json_message!(Found { value });

/// `Read`'s answer, one per requested ID, in request order.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReadResponse {
    /// The answers.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Found>,
}
json_message!(ReadResponse { values });

/// `PutValues`' request: freshly written values, stored with the server's TTL.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PutValuesRequest {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}
json_message!(PutValuesRequest { values });

/// `Write`'s request (admin): values stored as given, each with its own expiry.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WriteRequest {
    /// The entries; an expiry that has passed deletes the entry instead.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
}
json_message!(WriteRequest { entries });

/// `Delete`'s request (admin).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteRequest {
    /// The entries to remove; absent ones are ignored.
    #[prost(message, repeated, tag = "1")]
    pub keys: Vec<Key>,
}
json_message!(DeleteRequest { keys });

/// `Delete`'s answer.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteResponse {
    /// How many live entries were stored under the keys.
    #[prost(uint64, tag = "1")]
    pub removed: u64,
}
json_message!(DeleteResponse { removed });

/// The request of `List` and `Export`: every stored entry of one kind or both, expired
/// ones included. `List` sends kind, ID, size and expiry; `Export` the values as well,
/// which dumps the cache, so it needs the admin token.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WalkRequest {
    /// `ARTIFACT`, `BLOB`, or `KIND_UNSPECIFIED` for both.
    #[prost(enumeration = "Kind", tag = "1")]
    pub kind: i32,
}
json_message!(WalkRequest { kind: enum Kind });

/// One entry of a walk.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Walked {
    /// Kind and ID.
    #[prost(message, optional, tag = "1")]
    pub key: Option<Key>,
    /// Stored size of the value in bytes.
    #[prost(uint64, tag = "2")]
    pub size: u64,
    /// Expiry, Unix milliseconds; absent for never.
    #[prost(int64, optional, tag = "3")]
    pub expires_at_ms: Option<i64>,
    /// The stored bytes (`Export` only).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub value: Option<Vec<u8>>,
    /// When the entry was last read or written, Unix milliseconds, as the server's
    /// backend records it; absent where it does not (Redis).
    #[prost(int64, optional, tag = "5")]
    pub last_access_ms: Option<i64>,
}
json_message!(Walked {
    key,
    size,
    expires_at_ms,
    value,
    last_access_ms
});

/// How a walk ended: `code` empty for success, else a Twirp code and its message.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WalkEnd {
    /// Empty on success; a Twirp error code otherwise.
    #[prost(string, tag = "1")]
    pub code: String,
    /// The error's message.
    #[prost(string, tag = "2")]
    pub msg: String,
}
json_message!(WalkEnd { code, msg });

/// One frame of the streamed answer of `List` and `Export`: some entries, and, in the last frame only,
/// how the walk ended. A stream that stops without an `end` was cut off.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WalkFrame {
    /// The next entries.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Walked>,
    /// Set in the last frame.
    #[prost(message, optional, tag = "2")]
    pub end: Option<WalkEnd>,
}
json_message!(WalkFrame { entries, end });

/// The request of the RPCs that take no argument (`Clear`, `Stats`, `Compact`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Nothing {}
json_message!(Nothing {});

/// `Gc`'s request (admin). Empty, it is the plain `gc`; an older client's empty request
/// reads the same.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GcRequest {
    /// Also remove entries unread (and unwritten) for this many milliseconds; entries
    /// whose last access the server's backend does not know are kept.
    #[prost(uint64, optional, tag = "1")]
    pub unused_for_ms: Option<u64>,
}
json_message!(GcRequest { unused_for_ms });

/// `Gc`'s answer (admin): what the server's backend removed.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GcResponse {
    /// Entries removed because they had expired.
    #[prost(uint64, tag = "1")]
    pub expired: u64,
    /// Entries removed because they were stale or did not decode.
    #[prost(uint64, tag = "2")]
    pub stale: u64,
    /// Stored bytes of the removed entries.
    #[prost(uint64, tag = "3")]
    pub bytes: u64,
    /// Size of the backend's files before, where it has any.
    #[prost(uint64, optional, tag = "4")]
    pub disk_bytes_before: Option<u64>,
    /// Size of the backend's files after.
    #[prost(uint64, optional, tag = "5")]
    pub disk_bytes_after: Option<u64>,
    /// Entries removed because they went unread for `unused_for_ms`.
    #[prost(uint64, tag = "6")]
    pub unused: u64,
    /// With `unused_for_ms`: entries kept because the backend does not know when they
    /// were last read.
    #[prost(uint64, tag = "7")]
    pub access_unknown: u64,
}
json_message!(GcResponse {
    expired,
    stale,
    bytes,
    disk_bytes_before,
    disk_bytes_after,
    unused,
    access_unknown
});

/// `Stats`' answer: the server's own backend's counts.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StatsResponse {
    /// Live artifact entries.
    #[prost(uint64, tag = "1")]
    pub artifacts: u64,
    /// Live blob entries.
    #[prost(uint64, tag = "2")]
    pub blobs: u64,
    /// Stored bytes of the live entries.
    #[prost(uint64, tag = "3")]
    pub bytes: u64,
    /// Expired entries still stored.
    #[prost(uint64, tag = "4")]
    pub expired: u64,
    /// Size of the backend's files, where it has any.
    #[prost(uint64, optional, tag = "5")]
    pub disk_bytes: Option<u64>,
    /// The server's backend: `fs`, `memory` or `redis`.
    #[prost(string, tag = "6")]
    pub backend: String,
    /// Live entries unread (and unwritten) for at least 7 days, among those whose last
    /// access the backend knows.
    #[prost(uint64, tag = "7")]
    pub unread_7d: u64,
    /// The same for 30 days.
    #[prost(uint64, tag = "8")]
    pub unread_30d: u64,
    /// Live entries whose last access the backend does not know (every entry on Redis).
    #[prost(uint64, tag = "9")]
    pub access_unknown: u64,
    /// Live stored reports (0 from a server that predates them).
    #[prost(uint64, tag = "10")]
    pub reports: u64,
}
json_message!(StatsResponse {
    artifacts,
    blobs,
    bytes,
    expired,
    disk_bytes,
    backend,
    unread_7d,
    unread_30d,
    access_unknown,
    reports
});

/// `Claim`'s request: claim these blob keys for the caller (single-flight; the contract
/// is `docs/single-flight.md`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ClaimRequest {
    /// The blobs' cache IDs.
    #[prost(string, repeated, tag = "1")]
    pub ids: Vec<String>,
    /// How long the claims live without being renewed, in milliseconds: at least 1, at
    /// most a day (`convert::scancache::MAX_LEASE`).
    #[prost(uint64, tag = "2")]
    pub lease_ms: u64,
}
json_message!(ClaimRequest { ids, lease_ms });

/// One answer of `Claim`: owned (with its token) or busy.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Claimed {
    /// Present when the caller owns the claim: the token that proves it, which `Renew`
    /// and `Release` take back (empty for a claim that holds nothing, from a server whose
    /// claims are off). Absent when another caller holds a live claim on the key.
    #[prost(string, optional, tag = "1")]
    pub token: Option<String>,
}
json_message!(Claimed { token });

/// `Claim`'s answer, one per requested ID, in request order.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ClaimResponse {
    /// The answers.
    #[prost(message, repeated, tag = "1")]
    pub claims: Vec<Claimed>,
}
json_message!(ClaimResponse { claims });

/// A claim the caller owns: the key and the token `Claim` answered with.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ClaimToken {
    /// The blob's cache ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The token (printable ASCII without spaces, at most 256 bytes).
    #[prost(string, tag = "2")]
    pub token: String,
}
json_message!(ClaimToken { id, token });

/// `Renew`'s request: extend the caller's claims. A claim that is no longer the
/// caller's (it ran out and was taken over) is left alone.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RenewRequest {
    /// The claims.
    #[prost(message, repeated, tag = "1")]
    pub claims: Vec<ClaimToken>,
    /// The new lease from now, in milliseconds (as in `ClaimRequest`).
    #[prost(uint64, tag = "2")]
    pub lease_ms: u64,
}
json_message!(RenewRequest { claims, lease_ms });

/// `Release`'s request: end the caller's claims at once, waking their waiters. A claim
/// that is no longer the caller's is left alone.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReleaseRequest {
    /// The claims.
    #[prost(message, repeated, tag = "1")]
    pub claims: Vec<ClaimToken>,
}
json_message!(ReleaseRequest { claims });

/// `AwaitRelease`'s request: wait until no live claim on a key exists, at most
/// `timeout_ms` (and at most the server's own cap).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AwaitReleaseRequest {
    /// The blob's cache ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The longest wait, in milliseconds.
    #[prost(uint64, tag = "2")]
    pub timeout_ms: u64,
}
json_message!(AwaitReleaseRequest { id, timeout_ms });

/// `AwaitRelease`'s answer.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AwaitReleaseResponse {
    /// True when the claim ended (or there was none, or a result for the key was stored);
    /// false when the wait's time ran out first.
    #[prost(bool, tag = "1")]
    pub released: bool,
}
json_message!(AwaitReleaseResponse { released });
