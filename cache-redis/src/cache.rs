//! [`RedisCache`]: the Redis implementation of the `Cache` trait.

use std::{
    collections::HashSet,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, BlobId, Cache, CacheOptions, Claim, Claimed, Digest, EntryKey, EntryKind,
    EntryMeta, Missing, RawEntry, Result, Visitor, Walk, Walked, codec, rules::GcCandidate,
};
use futures_util::future::join;
use redis::{Cmd, Value};

use crate::{
    claims::ClaimState,
    config::{Layout, LayoutKind, RedisConfig},
    node::{CHECK_AFTER_IDLE, Node, Settings},
    tls,
    topology::Topology,
};

/// Keys per `SCAN` step, per `UNLINK` and per import pipeline.
const BATCH: usize = 1000;

/// The pattern of every scan-cache key.
const ALL_KEYS: &str = "fanal::*";

/// The script `gc` removes an entry with: only if it still holds the value judged.
const UNLINK_IF_UNCHANGED: &str = include_str!("unlink_if_unchanged.lua");

/// A scan cache in Redis — one server, a Redis Cluster, or a master found through Redis
/// Sentinel — shared by every scanner that points at it.
///
/// Cheap to share behind an `Arc`; every method is safe to call from many tasks at once.
pub struct RedisCache {
    topology: Topology,
    location: String,
    options: CacheOptions,
    claims: ClaimState,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("location", &self.location)
            .field("ttl", &self.options.ttl)
            .finish()
    }
}

impl RedisCache {
    /// Connects to what `config` names and checks that it answers, so that a wrong
    /// address, password, database or TLS setting is reported here: one server (its
    /// handshake, one round trip), a cluster (a seed node's handshake with its slot map,
    /// then every master at once: two) or sentinels (a sentinel's handshake with its
    /// answer, then the master's with its `ROLE`: two).
    ///
    /// `options.ttl` applies to every put; `options.max_size` is ignored (bound the
    /// server's memory with its own `maxmemory` instead).
    pub async fn connect(config: RedisConfig, options: &CacheOptions) -> Result<RedisCache> {
        let layout = Layout::new(&config)?;
        let any_tls = layout.tls
            || match &layout.kind {
                LayoutKind::Single(_) => false,
                LayoutKind::Cluster { seeds, .. } => seeds.iter().any(|t| t.tls),
                LayoutKind::Sentinel { sentinels, .. } => sentinels.iter().any(|t| t.tls),
            };
        let certificates = if any_tls { tls::load(&config)? } else { None };
        if any_tls {
            // rustls needs a process-wide crypto provider; install ring unless the program
            // already chose one (then this is a no-op).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let location = layout.location.clone();
        let settings = Arc::new(Settings {
            pool_size: config.pool_size,
            connect_timeout: config.connect_timeout,
            command_timeout: config.command_timeout,
            check_after_idle: CHECK_AFTER_IDLE,
            certificates,
            backend: location.clone(),
            redactor: layout.redactor.clone(),
        });
        let topology = Topology::connect(layout, settings).await?;
        tracing::debug!(backend = %location, "connected to Redis");
        Ok(RedisCache {
            topology,
            location,
            options: options.clone(),
            claims: ClaimState::default(),
        })
    }

    /// For `gc`: unlinks each candidate whose value is still the one judged, in one
    /// batch of single-key script calls, and says per candidate whether it did. Where
    /// the server does not allow scripts (an ACL without `EVAL`, the command renamed
    /// away), unlinks them unconditionally: a value rewritten meanwhile is then lost, and
    /// re-analysed by the next scan that needs it. `scripts` starts true and turns false,
    /// with one warning, when the server refuses.
    async fn unlink_if_unchanged(
        &self,
        stale: &[GcCandidate],
        scripts: &mut bool,
    ) -> Result<Vec<u64>> {
        let keys: Vec<String> = stale
            .iter()
            .map(|c| key(c.key().kind, c.key().id.as_str()))
            .collect();
        if *scripts {
            let mut batch = self.topology.batch(keys.len());
            for (key, c) in keys.iter().zip(stale) {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(UNLINK_IF_UNCHANGED)
                    .arg(1)
                    .arg(key)
                    .arg(hex::encode(c.sha1));
                batch.push(key.as_bytes(), cmd);
            }
            let answers = self.topology.run("gc", batch).await?;
            match first_refusal(&answers) {
                None => return self.counts("gc", &answers),
                Some(code) => {
                    tracing::warn!(
                        backend = %self.location,
                        "gc: the server refuses scripts ({code}); removing stale entries \
                         without checking that no scanner rewrote them meanwhile",
                    );
                    *scripts = false;
                }
            }
        }
        let mut batch = self.topology.batch(keys.len());
        for key in &keys {
            batch.push(key.as_bytes(), redis::cmd("UNLINK").arg(key).clone());
        }
        let answers = self.topology.run("gc", batch).await?;
        self.counts("gc", &answers)
    }

    /// Integer answers (counts), or the first failure.
    fn counts(&self, what: &str, answers: &[Value]) -> Result<Vec<u64>> {
        self.check(what, answers)?;
        Ok(answers
            .iter()
            .map(|v| match v {
                Value::Int(n) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            })
            .collect())
    }

    /// The first failed command among `answers`, as an error.
    pub(crate) fn topology(&self) -> &Topology {
        &self.topology
    }

    pub(crate) fn claims(&self) -> &ClaimState {
        &self.claims
    }

    /// [`RedisCache::check`] for the claims module.
    pub(crate) fn check_answers(&self, what: &str, answers: &[Value]) -> Result<()> {
        self.check(what, answers)
    }

    fn check(&self, what: &str, answers: &[Value]) -> Result<()> {
        match self.topology.report().failure(what, answers) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Unlinks keys in batches (per hash slot on a cluster), all sent together, and
    /// returns how many existed.
    async fn unlink(&self, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let groups = self.topology.groups(keys);
        let mut batch = self.topology.batch(groups.len());
        for group in &groups {
            for chunk in group.chunks(BATCH) {
                let mut cmd = redis::cmd("UNLINK");
                for &i in chunk {
                    cmd.arg(&keys[i]);
                }
                batch.push(keys[chunk[0]].as_bytes(), cmd);
            }
        }
        let answers = self.topology.run("UNLINK", batch).await?;
        Ok(self.counts("UNLINK", &answers)?.iter().sum())
    }

    /// Walks the stored entries of one kind or both, a `SCAN` batch at a time, each key
    /// once, over every master.
    async fn scan(&self, kind: Option<EntryKind>) -> Result<Scan<'_>> {
        Ok(Scan {
            cache: self,
            masters: self.topology.masters().await?,
            index: 0,
            pattern: match kind {
                None => ALL_KEYS,
                Some(EntryKind::Artifact) => "fanal::artifact::*",
                Some(EntryKind::Blob) => "fanal::blob::*",
                Some(EntryKind::Report) => "fanal::report::*",
            },
            cursor: 0,
            seen: HashSet::new(),
        })
    }

    /// One `SCAN` step on `node`: the next cursor and the keys.
    async fn scan_step(
        &self,
        node: &Node,
        cursor: u64,
        pattern: &str,
    ) -> Result<(u64, Vec<Vec<u8>>)> {
        let answers = self
            .topology
            .run_on(node, "SCAN", vec![scan_cmd(cursor, pattern)])
            .await?;
        self.check("SCAN", &answers)?;
        parse_scan(answers.into_iter().next()).ok_or_else(|| {
            self.topology
                .report()
                .backend_error("SCAN: unexpected answer".into())
        })
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn backend_name(&self) -> &'static str {
        "redis"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    /// `options.max_size` is not applied: bound the server's memory with its own
    /// `maxmemory`.
    fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// One `GETRANGE key 0 N` per entry, the artifact's among them, sent as one batch: a
    /// single round trip (one pipeline per master on a cluster, all at once) that moves
    /// at most `N + 1` bytes per entry, judged by `probe_is_current` (below). A key holding
    /// another type counts as missing.
    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        let mut batch = self.topology.batch(blobs.len() + 1);
        let ends = [EntryKind::Artifact, EntryKind::Blob].map(|k| canonical_prefix(k).len());
        let mut probe = |kind: EntryKind, id: &str| {
            let key = key(kind, id);
            let end = ends[usize::from(kind == EntryKind::Blob)];
            let mut cmd = redis::cmd("GETRANGE");
            cmd.arg(&key).arg(0).arg(end);
            batch.push(key.as_bytes(), cmd);
        };
        probe(EntryKind::Artifact, artifact.as_str());
        for id in blobs {
            probe(EntryKind::Blob, id.as_str());
        }
        let heads = self.topology.run("missing_blobs", batch).await?;
        let failed: Vec<Value> = heads
            .iter()
            .filter(|v| matches!(v, Value::ServerError(e) if e.code() != "WRONGTYPE"))
            .cloned()
            .collect();
        self.check("missing_blobs", &failed)?;
        let current = |kind, v: Option<&Value>| {
            v.and_then(bytes_of)
                .is_some_and(|head| probe_is_current(kind, head))
        };
        let missing = Missing {
            artifact: !current(EntryKind::Artifact, heads.first()),
            blobs: blobs
                .iter()
                .enumerate()
                .filter(|(i, _)| !current(EntryKind::Blob, heads.get(i + 1)))
                .map(|(_, id)| id.clone())
                .collect(),
        };
        tracing::debug!(
            artifact_missing = missing.artifact,
            blobs = blobs.len(),
            blobs_missing = missing.blobs.len(),
            "redis missing_blobs"
        );
        Ok(missing)
    }

    /// One `MGET` (one per hash slot on a cluster, in one batch): one round trip. With a
    /// TTL and `ttl_refresh`, one batch of `GETEX key PX <ttl>` instead, so that every hit
    /// pushes the entry's expiry to now + TTL.
    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| key(kind, id.as_str())).collect();
        if let Some(ttl) = self.options.ttl.filter(|_| self.options.ttl_refresh) {
            let mut batch = self.topology.batch(keys.len());
            for k in &keys {
                let mut cmd = redis::cmd("GETEX");
                cmd.arg(k).arg("PX").arg(millis(ttl));
                batch.push(k.as_bytes(), cmd);
            }
            let answers = self.topology.run("GETEX", batch).await?;
            self.check("GETEX", &answers)?;
            let values: Vec<Option<Vec<u8>>> = answers.into_iter().map(into_bytes).collect();
            tracing::debug!(
                keys = keys.len(),
                hits = values.iter().flatten().count(),
                "redis read (GETEX)"
            );
            return Ok(values);
        }
        let groups = self.topology.groups(&keys);
        let mut batch = self.topology.batch(groups.len());
        for group in &groups {
            let mut cmd = redis::cmd("MGET");
            for &i in group {
                cmd.arg(&keys[i]);
            }
            batch.push(keys[group[0]].as_bytes(), cmd);
        }
        let answers = self.topology.run("MGET", batch).await?;
        self.check("MGET", &answers)?;
        let mut values: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        for (group, answer) in groups.iter().zip(answers) {
            let Value::Array(items) = answer else {
                return Err(self
                    .topology
                    .report()
                    .backend_error(format!("MGET: unexpected answer {answer:?}")));
            };
            for (&i, item) in group.iter().zip(items) {
                values[i] = into_bytes(item);
            }
        }
        tracing::debug!(
            keys = keys.len(),
            hits = values.iter().flatten().count(),
            "redis read"
        );
        Ok(values)
    }

    /// One `SET … [PX <remaining>]` per entry: a single command for one entry (which
    /// shares a multiplexed connection with concurrent commands), batches of `BATCH`
    /// (1000) for more.
    async fn write(&self, entries: &[RawEntry]) -> Result<()> {
        let now = SystemTime::now();
        for chunk in entries.chunks(BATCH) {
            let mut batch = self.topology.batch(chunk.len());
            for e in chunk {
                let key = key(e.key.kind, e.key.id.as_str());
                let mut cmd = redis::cmd("SET");
                cmd.arg(&key).arg(&e.value);
                if let Some(at) = e.expires_at {
                    cmd.arg("PX")
                        .arg(millis(at.duration_since(now).unwrap_or_default()));
                }
                batch.push(key.as_bytes(), cmd);
            }
            let what = match chunk {
                [e] => format!("SET {}", key(e.key.kind, e.key.id.as_str())),
                _ => "SET".to_owned(),
            };
            let answers = self.topology.run(&what, batch).await?;
            self.check(&what, &answers)?;
        }
        Ok(())
    }

    async fn delete(&self, keys: &[EntryKey]) -> Result<u64> {
        let keys: Vec<String> = keys.iter().map(|k| key(k.kind, k.id.as_str())).collect();
        self.unlink(&keys).await
    }

    /// Per `SCAN` batch (on every master), one batch of `STRLEN` (or `GET`) and `PTTL`
    /// per key. Redis drops expired keys by itself, so the walk never sees one.
    async fn walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        let mut scan = self.scan(kind).await?;
        while let Some(batch) = scan.next().await? {
            for walked in self.fetch(&batch, walk).await? {
                if visit(walked).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// `SCAN MATCH fanal::*` on every master and `UNLINK` in batches (per hash slot on a
    /// cluster), each `UNLINK` sent together with the next `SCAN` step. Never `FLUSHDB`:
    /// other keys in the database stay.
    async fn clear(&self) -> Result<()> {
        let mut removed: usize = 0;
        for node in self.topology.masters().await? {
            let mut cursor: u64 = 0;
            let mut pending: Vec<String> = Vec::new();
            loop {
                removed += pending.len();
                let (step, unlinked) = join(
                    self.scan_step(&node, cursor, ALL_KEYS),
                    self.unlink(&pending),
                )
                .await;
                unlinked?;
                let (next, keys) = step?;
                pending = keys
                    .into_iter()
                    .filter_map(|k| String::from_utf8(k).ok())
                    .collect();
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            removed += pending.len();
            self.unlink(&pending).await?;
        }
        tracing::debug!(backend = %self.location, removed, "redis clear");
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        self.topology.close();
        Ok(())
    }

    async fn claim(&self, ids: &[BlobId], lease: Duration) -> Result<Vec<Claimed>> {
        self.claim_keys(ids, lease).await
    }

    async fn renew(&self, claims: &[Claim], lease: Duration) -> Result<()> {
        self.renew_claims(claims, lease).await
    }

    async fn release(&self, claims: &[Claim]) -> Result<()> {
        self.release_claims(claims).await
    }

    async fn await_release(&self, id: &BlobId, timeout: Duration) -> Result<bool> {
        self.await_claim(id, timeout).await
    }

    /// A script per candidate, in batches of `BATCH` (1000), that unlinks the key only if
    /// its value still has the SHA-1 gc judged, so an entry a scanner rewrites meanwhile
    /// stays. Where scripts are refused, removes them without that check (a rewrite then
    /// costs one re-analysis later; no wrong data is ever served).
    async fn remove_unchanged(&self, candidates: &[GcCandidate]) -> Result<Vec<bool>> {
        let mut scripts = true;
        let mut removed = Vec::with_capacity(candidates.len());
        for chunk in candidates.chunks(BATCH) {
            let counts = self.unlink_if_unchanged(chunk, &mut scripts).await?;
            removed.extend(counts.into_iter().map(|n| n > 0));
        }
        Ok(removed)
    }
}

impl RedisCache {
    /// Size, expiry and (for [`Walk::Values`]) value of a batch of keys, in one batch;
    /// keys that vanished or do not hold strings are left out.
    async fn fetch(&self, keys: &[(String, EntryKey)], walk: Walk) -> Result<Vec<Walked>> {
        let mut batch = self.topology.batch(keys.len() * 2);
        let read = if walk == Walk::Values {
            "GET"
        } else {
            "STRLEN"
        };
        for (k, _) in keys {
            batch.push(k.as_bytes(), redis::cmd(read).arg(k).clone());
            batch.push(k.as_bytes(), redis::cmd("PTTL").arg(k).clone());
        }
        let what = if walk == Walk::Values {
            "export"
        } else {
            "list"
        };
        let replies = self.topology.run(what, batch).await?;
        let failed: Vec<Value> = replies
            .iter()
            .filter(|v| matches!(v, Value::ServerError(e) if e.code() != "WRONGTYPE"))
            .cloned()
            .collect();
        self.check(what, &failed)?;
        let now = SystemTime::now();
        Ok(keys
            .iter()
            .zip(replies.chunks(2))
            .filter_map(|((_, entry), pair)| {
                let [read, pttl] = pair else {
                    return None;
                };
                let expires_at = expiry(pttl, now)?;
                let (size, value) = match (walk, read) {
                    (Walk::Meta, Value::Int(size)) => (u64::try_from(*size).ok()?, None),
                    (Walk::Values, v) => {
                        let v = bytes_of(v)?;
                        (v.len() as u64, Some(v.to_vec()))
                    }
                    _ => return None,
                };
                Some(Walked {
                    meta: EntryMeta {
                        key: entry.clone(),
                        size,
                        expires_at,
                        // Redis cannot tell without resetting it: `OBJECT IDLETIME` is
                        // reset by the `GET`/`STRLEN` of every walk (docs/limits.md).
                        last_access: None,
                    },
                    value,
                })
            })
            .collect())
    }
}

/// A `SCAN` walk over the keys of a pattern on every master, one after another. Redis
/// may return a key more than once (when it resizes its table mid-walk, or a cluster
/// migrates a slot); keys seen before are dropped so that counts are exact. The set of
/// seen entries costs about 40–70 bytes per entry: the one part of an admin walk whose
/// memory grows with the cache (about 0.4–0.7 GB for 10 million entries). Keys that are
/// not `fanal::artifact::<digest>` or `fanal::blob::<digest>` are skipped.
struct Scan<'a> {
    cache: &'a RedisCache,
    masters: Vec<Arc<Node>>,
    /// The master being walked.
    index: usize,
    pattern: &'static str,
    cursor: u64,
    /// Every entry returned so far (`SCAN` may return a key twice), as its kind and the
    /// digest's 32 bytes: about a third of the memory of the keys themselves.
    seen: HashSet<(EntryKind, [u8; 32])>,
}

impl Scan<'_> {
    /// The next non-empty batch of (Redis key, entry key), or `None` at the end.
    async fn next(&mut self) -> Result<Option<Vec<(String, EntryKey)>>> {
        while let Some(node) = self.masters.get(self.index) {
            let (next, keys) = self
                .cache
                .scan_step(node, self.cursor, self.pattern)
                .await?;
            self.cursor = next;
            if next == 0 {
                self.index += 1;
            }
            let batch: Vec<(String, EntryKey)> = keys
                .into_iter()
                .filter_map(|k| {
                    let k = String::from_utf8(k).ok()?;
                    let entry = parse_key(&k)?;
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(entry.id.hex(), &mut digest).ok()?;
                    self.seen.insert((entry.kind, digest)).then_some((k, entry))
                })
                .collect();
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }
}

/// `SCAN cursor MATCH pattern COUNT BATCH`.
fn scan_cmd(cursor: u64, pattern: &str) -> Cmd {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(BATCH)
        .clone()
}

/// The cursor and keys of a `SCAN` answer.
fn parse_scan(answer: Option<Value>) -> Option<(u64, Vec<Vec<u8>>)> {
    let Some(Value::Array(parts)) = answer else {
        return None;
    };
    let mut parts = parts.into_iter();
    let cursor = match parts.next()? {
        Value::BulkString(b) => std::str::from_utf8(&b).ok()?.parse().ok()?,
        Value::SimpleString(s) => s.parse().ok()?,
        Value::Int(n) => u64::try_from(n).ok()?,
        _ => return None,
    };
    let Value::Array(keys) = parts.next()? else {
        return None;
    };
    let keys = keys
        .into_iter()
        .filter_map(|k| match k {
            Value::BulkString(b) => Some(b),
            _ => None,
        })
        .collect();
    Some((cursor, keys))
}

/// The code of the first answer that refuses a script for lack of permission or of the
/// command (`NOPERM`, or `ERR unknown command`), if the first failed answer is one.
pub(crate) fn first_refusal(answers: &[Value]) -> Option<String> {
    let e = answers.iter().find_map(|v| match v {
        Value::ServerError(e) => Some(e),
        _ => None,
    })?;
    let refused = e.code() == "NOPERM"
        || (e.code() == "ERR"
            && e.details()
                .is_some_and(|d| d.starts_with("unknown command")));
    refused.then(|| e.code().to_owned())
}

/// The Redis key of an entry: `fanal::artifact::<id>` or `fanal::blob::<id>`, as the
/// reference tool writes them, or `fanal::report::<id>` for scancache's own stored
/// reports (which the reference never reads).
pub(crate) fn key(kind: EntryKind, id: &str) -> String {
    format!("fanal::{}::{id}", kind.as_str())
}

/// The entry a Redis key names, if it is a scan-cache key with a valid ID.
fn parse_key(key: &str) -> Option<EntryKey> {
    let rest = key.strip_prefix("fanal::")?;
    let (kind, id) = rest.split_once("::")?;
    Some(EntryKey {
        kind: kind.parse().ok()?,
        id: Digest::parse(id).ok()?,
    })
}

/// `{"SchemaVersion":<current>`: how every current document of `kind` starts when written
/// by this crate (serde writes fields in declaration order, `SchemaVersion` first) or by the
/// reference tool (Go's encoder does the same).
fn canonical_prefix(kind: EntryKind) -> String {
    format!("{{\"SchemaVersion\":{}", codec::current_schema(kind))
}

/// Judges the first bytes of a stored value (`GETRANGE key 0 N`, where N is the length of
/// the canonical prefix): current when they are the canonical prefix followed by `,` or
/// `}`. Anything else (absent, not JSON, another version, another field order or spacing)
/// counts as missing; such an entry is then analysed and written again in canonical form.
/// A value that starts correctly but is truncated later passes here; the getters report it
/// as corrupt.
fn probe_is_current(kind: EntryKind, head: &[u8]) -> bool {
    let prefix = canonical_prefix(kind);
    head.strip_prefix(prefix.as_bytes())
        .and_then(|rest| rest.first())
        .is_some_and(|b| matches!(b, b',' | b'}'))
}

/// The bytes of a string reply.
fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// The expiry a `PTTL` reply means: `Some(None)` for no expiry, `Some(Some(at))` for an
/// expiry, `None` when the key no longer exists.
fn expiry(pttl: &Value, now: SystemTime) -> Option<Option<SystemTime>> {
    match pttl {
        Value::Int(-1) => Some(None),
        Value::Int(ms) if *ms >= 0 => Some(Some(now + Duration::from_millis(ms.unsigned_abs()))),
        _ => None,
    }
}

/// The bytes of a string answer, owned; `None` for a nil (a missing key).
fn into_bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// A duration in whole milliseconds for `PX`, at least 1 (`PX 0` is an error).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2).max(1)
}

#[cfg(test)]
mod tests {
    use cache_core::{ArtifactInfo, BlobInfo};

    use super::*;

    #[test]
    fn probe_matches_codec_on_canonical_documents() {
        let cases: [(&[u8], bool); 9] = [
            (br#"{"SchemaVersion":2,"Size":1}"#, true),
            (br#"{"SchemaVersion":2}"#, true),
            (br#"{"SchemaVersion":20,"Size":1}"#, false),
            (br#"{"SchemaVersion":1,"Size":1}"#, false),
            (br#"{"SchemaVersion":2"#, false),
            (b"", false),
            (b"not json", false),
            (b"\xff\xfe\x00", false),
            (br#"{"Size":1,"SchemaVersion":2}"#, false),
        ];
        let n = canonical_prefix(EntryKind::Blob).len() + 1;
        for (value, want) in cases {
            let head = &value[..value.len().min(n)];
            assert_eq!(
                probe_is_current(EntryKind::Blob, head),
                want,
                "{}",
                String::from_utf8_lossy(value)
            );
            // Where the probe says current, the full value agrees (or is truncated later).
            if want {
                assert!(codec::is_current(EntryKind::Blob, value));
            }
        }
        assert!(probe_is_current(
            EntryKind::Artifact,
            br#"{"SchemaVersion":1,"#
        ));
        // Our own writer's output passes.
        let doc = codec::encode(&BlobInfo {
            schema_version: BlobInfo::SCHEMA_VERSION,
            ..Default::default()
        });
        assert!(probe_is_current(EntryKind::Blob, &doc[..n.min(doc.len())]));
        let doc = codec::encode(&ArtifactInfo {
            schema_version: ArtifactInfo::SCHEMA_VERSION,
            os: "linux".into(),
            ..Default::default()
        });
        assert!(probe_is_current(EntryKind::Artifact, &doc));
    }

    #[test]
    fn keys_round_trip() {
        let id = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let k = key(EntryKind::Blob, id);
        assert_eq!(k, format!("fanal::blob::{id}"));
        assert_eq!(parse_key(&k).unwrap().kind, EntryKind::Blob);
        assert_eq!(
            parse_key(&key(EntryKind::Artifact, id)).unwrap().kind,
            EntryKind::Artifact
        );
        for bad in [
            "fanal::blob::x",
            "fanal::other::sha256:00",
            "blob::x",
            "fanal::",
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn pttl_replies() {
        let now = SystemTime::now();
        assert_eq!(expiry(&Value::Int(-1), now), Some(None));
        assert_eq!(expiry(&Value::Int(-2), now), None);
        assert_eq!(
            expiry(&Value::Int(1500), now),
            Some(Some(now + Duration::from_millis(1500)))
        );
        assert_eq!(expiry(&Value::Nil, now), None);
        assert_eq!(millis(Duration::from_micros(10)), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
    }
}
