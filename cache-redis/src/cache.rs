//! [`RedisCache`]: the Redis implementation of the `Cache` trait.

use std::{
    collections::HashSet,
    fmt,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, BlobId, Cache, CacheOptions, Digest, EntryKey, EntryKind, EntryMeta, Missing,
    RawEntry, Result, Visitor, Walk, Walked, codec, rules::GcCandidate,
};
use redis::Value;

use crate::{config::RedisConfig, pool::Redis};

/// Keys per `SCAN` step, per `UNLINK` and per import pipeline.
const BATCH: usize = 1000;

/// The pattern of every scan-cache key.
const ALL_KEYS: &str = "fanal::*";

/// The script `gc` removes an entry with: only if it still holds the value judged.
const UNLINK_IF_UNCHANGED: &str = include_str!("unlink_if_unchanged.lua");

/// A scan cache in a Redis database, shared by every scanner that points at it.
///
/// Cheap to share behind an `Arc`; every method is safe to call from many tasks at once.
pub struct RedisCache {
    redis: Redis,
    options: CacheOptions,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("location", &self.redis.location)
            .field("ttl", &self.options.ttl)
            .finish()
    }
}

impl RedisCache {
    /// Connects to the server `config` names and checks that it answers (`PING`), so that
    /// a wrong address, password, database or TLS setting is reported here.
    ///
    /// `options.ttl` applies to every put; `options.max_size` is ignored (bound the
    /// server's memory with its own `maxmemory` instead).
    pub async fn connect(config: RedisConfig, options: &CacheOptions) -> Result<RedisCache> {
        let redis = Redis::new(&config)?;
        let _: String = redis.cmd("cannot connect", &redis::cmd("PING")).await?;
        tracing::debug!(backend = %redis.location, "connected to Redis");
        Ok(RedisCache {
            redis,
            options: options.clone(),
        })
    }

    /// For `gc`: unlinks each candidate whose value is still the one judged, in one
    /// pipeline of single-key script calls, and says per candidate whether it did. Where
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
            let mut pipe = redis::pipe();
            for (key, c) in keys.iter().zip(stale) {
                pipe.cmd("EVAL")
                    .arg(UNLINK_IF_UNCHANGED)
                    .arg(1)
                    .arg(key)
                    .arg(hex::encode(c.sha1));
            }
            match self.redis.pipe_or_refusal("gc", &pipe).await? {
                Ok(removed) => return Ok(removed),
                Err(e) if refuses_scripts(&e) => {
                    tracing::warn!(
                        backend = %self.redis.location,
                        "gc: the server refuses scripts ({}); removing stale entries \
                         without checking that no scanner rewrote them meanwhile",
                        e.code().unwrap_or("error")
                    );
                    *scripts = false;
                }
                Err(e) => return Err(self.redis.error("gc", &e)),
            }
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("UNLINK").arg(key);
        }
        self.redis.pipe("gc", &pipe).await
    }

    /// Unlinks keys in batches, all in one pipeline, and returns how many existed.
    async fn unlink(&self, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for chunk in keys.chunks(BATCH) {
            pipe.cmd("UNLINK").arg(chunk);
        }
        let counts: Vec<u64> = self.redis.pipe("UNLINK", &pipe).await?;
        Ok(counts.iter().sum())
    }

    /// Walks the stored entries of one kind or both, a `SCAN` batch at a time, each key
    /// once.
    fn scan(&self, kind: Option<EntryKind>) -> Scan<'_> {
        Scan {
            redis: &self.redis,
            pattern: match kind {
                None => ALL_KEYS,
                Some(EntryKind::Artifact) => "fanal::artifact::*",
                Some(EntryKind::Blob) => "fanal::blob::*",
            },
            cursor: 0,
            done: false,
            seen: HashSet::new(),
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn backend_name(&self) -> &'static str {
        "redis"
    }

    fn location(&self) -> String {
        self.redis.location.clone()
    }

    /// `options.max_size` is not applied: bound the server's memory with its own
    /// `maxmemory`.
    fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// One pipeline of `GETRANGE key 0 N`, one per entry: a single round trip that moves
    /// at most `N + 1` bytes per entry, judged by `probe_is_current` (below).
    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut probe = |kind: EntryKind, id: &str| {
            pipe.cmd("GETRANGE")
                .arg(key(kind, id))
                .arg(0)
                .arg(canonical_prefix(kind).len());
        };
        probe(EntryKind::Artifact, artifact.as_str());
        for id in blobs {
            probe(EntryKind::Blob, id.as_str());
        }
        let heads: Vec<Value> = self.redis.pipe("missing_blobs", &pipe).await?;
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

    /// One `MGET`: one round trip. With a TTL and `ttl_refresh`, one pipeline of
    /// `GETEX key PX <ttl>` instead, so that every hit pushes the entry's expiry to now +
    /// TTL.
    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| key(kind, id.as_str())).collect();
        let values: Vec<Option<Vec<u8>>> =
            match self.options.ttl.filter(|_| self.options.ttl_refresh) {
                Some(ttl) => {
                    let mut pipe = redis::pipe();
                    for k in &keys {
                        pipe.cmd("GETEX").arg(k).arg("PX").arg(millis(ttl));
                    }
                    self.redis.pipe("GETEX", &pipe).await?
                }
                None => {
                    self.redis
                        .cmd("MGET", redis::cmd("MGET").arg(&keys))
                        .await?
                }
            };
        tracing::debug!(
            keys = keys.len(),
            hits = values.iter().flatten().count(),
            "redis read"
        );
        Ok(values)
    }

    /// One `SET … [PX <remaining>]` per entry: a single command for one entry (which
    /// shares a multiplexed connection with concurrent commands), pipelines of `BATCH`
    /// (1000) for more.
    async fn write(&self, entries: &[RawEntry]) -> Result<()> {
        let now = SystemTime::now();
        let set = |cmd: &mut redis::Cmd, e: &RawEntry| {
            cmd.arg(key(e.key.kind, e.key.id.as_str())).arg(&e.value);
            if let Some(at) = e.expires_at {
                cmd.arg("PX")
                    .arg(millis(at.duration_since(now).unwrap_or_default()));
            }
        };
        if let [e] = entries {
            let mut cmd = redis::cmd("SET");
            set(&mut cmd, e);
            let what = format!("SET {}", key(e.key.kind, e.key.id.as_str()));
            return self.redis.cmd::<()>(&what, &cmd).await;
        }
        for chunk in entries.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for e in chunk {
                let mut cmd = redis::cmd("SET");
                set(&mut cmd, e);
                pipe.add_command(cmd).ignore();
            }
            self.redis.pipe::<()>("SET", &pipe).await?;
        }
        Ok(())
    }

    async fn delete(&self, keys: &[EntryKey]) -> Result<u64> {
        let keys: Vec<String> = keys.iter().map(|k| key(k.kind, k.id.as_str())).collect();
        self.unlink(&keys).await
    }

    /// Per `SCAN` batch, one pipeline of `STRLEN` (or `GET`) and `PTTL` per key. Redis
    /// drops expired keys by itself, so the walk never sees one.
    async fn walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        let mut scan = self.scan(kind);
        while let Some(batch) = scan.next().await? {
            for walked in self.fetch(&batch, walk).await? {
                if visit(walked).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// `SCAN MATCH fanal::*` and `UNLINK` in batches, each `UNLINK` sent in the same
    /// pipeline as the next `SCAN` step. Never `FLUSHDB`: other keys in the database stay.
    async fn clear(&self) -> Result<()> {
        let mut cursor: u64 = 0;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut removed: usize = 0;
        loop {
            let mut pipe = redis::pipe();
            if !pending.is_empty() {
                pipe.cmd("UNLINK").arg(&pending).ignore();
                removed += pending.len();
            }
            pipe.cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(ALL_KEYS)
                .arg("COUNT")
                .arg(BATCH);
            let ((next, keys),): ((u64, Vec<Vec<u8>>),) = self.redis.pipe("clear", &pipe).await?;
            pending = keys;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if !pending.is_empty() {
            removed += pending.len();
            self.redis
                .cmd::<()>("clear", redis::cmd("UNLINK").arg(&pending))
                .await?;
        }
        tracing::debug!(backend = %self.redis.location, removed, "redis clear");
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        self.redis.close();
        Ok(())
    }

    /// A script per candidate, in pipelines of `BATCH` (1000), that unlinks the key only if
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
    /// Size, expiry and (for [`Walk::Values`]) value of a batch of keys, in one pipeline;
    /// keys that vanished or do not hold strings are left out.
    async fn fetch(&self, batch: &[(String, EntryKey)], walk: Walk) -> Result<Vec<Walked>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let read = if walk == Walk::Values {
            "GET"
        } else {
            "STRLEN"
        };
        for (k, _) in batch {
            pipe.cmd(read).arg(k).cmd("PTTL").arg(k);
        }
        let what = if walk == Walk::Values {
            "export"
        } else {
            "list"
        };
        let replies: Vec<Value> = self.redis.pipe(what, &pipe).await?;
        let now = SystemTime::now();
        Ok(batch
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

/// A `SCAN` walk over the keys of a pattern. Redis may return a key more than once (when
/// it resizes its table mid-walk); keys seen before are dropped so that counts are exact.
/// The set of seen entries costs about 40–70 bytes per entry: the one part of an admin
/// walk whose memory grows with the cache (about 0.4–0.7 GB for 10 million entries).
/// Keys that are not `fanal::artifact::<digest>` or `fanal::blob::<digest>` are skipped.
struct Scan<'a> {
    redis: &'a Redis,
    pattern: &'static str,
    cursor: u64,
    done: bool,
    /// Every entry returned so far (`SCAN` may return a key twice), as its kind and the
    /// digest's 32 bytes: about a third of the memory of the keys themselves.
    seen: HashSet<(EntryKind, [u8; 32])>,
}

impl Scan<'_> {
    /// The next non-empty batch of (Redis key, entry key), or `None` at the end.
    async fn next(&mut self) -> Result<Option<Vec<(String, EntryKey)>>> {
        while !self.done {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .redis
                .cmd(
                    "SCAN",
                    redis::cmd("SCAN")
                        .arg(self.cursor)
                        .arg("MATCH")
                        .arg(self.pattern)
                        .arg("COUNT")
                        .arg(BATCH),
                )
                .await?;
            self.cursor = next;
            self.done = next == 0;
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

/// True when the server refused a script for lack of permission or of the command. A
/// pipeline's error carries each failed command's answer; the first one tells.
fn refuses_scripts(e: &redis::RedisError) -> bool {
    let Some(answers) = e.clone().into_server_errors() else {
        return false;
    };
    answers.first().is_some_and(|(_, answer)| {
        answer.code() == "NOPERM"
            || (answer.code() == "ERR"
                && answer
                    .details()
                    .is_some_and(|d| d.starts_with("unknown command")))
    })
}

/// The Redis key of an entry: `fanal::artifact::<id>` or `fanal::blob::<id>`, as the
/// reference tool writes them.
fn key(kind: EntryKind, id: &str) -> String {
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

/// A duration in whole milliseconds for `PX`, at least 1 (`PX 0` is an error).
fn millis(d: Duration) -> u64 {
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
