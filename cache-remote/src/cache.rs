//! [`RemoteCache`]: the [`Cache`] trait's storage primitives as RPCs of a scancache
//! server's own service (`scancache.cache.v1.Cache`, `docs/remote.md`).

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use cache_core::{
    ArtifactId, BlobId, Cache, CacheOptions, Claim, Claimed, Digest, EntryKey, EntryKind, Error,
    GcOptions, GcReport, Missing, RawEntry, Result, Setting, Stats, Visitor, Walk, Walked,
    mask_url,
};
use cache_server::{
    convert::scancache as cv, native::SERVICE, proto::scancache as ps, twirp::Code,
};
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use prost::Message;

use crate::{
    config::{Endpoint, RemoteConfig},
    transport::{Call, Failure, Transport},
};

/// The header of the admin token.
const ADMIN_HEADER: &str = cache_server::ADMIN_TOKEN_HEADER;

/// About the most value bytes sent in one `PutValues` or `Write` call; more are split
/// over several calls, so no request nears the server's request size limit (64 MiB by
/// default). A single larger value is sent alone.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// The largest frame of a streamed walk accepted.
const MAX_FRAME_BYTES: usize = 64 << 20;

/// The longest wait one `AwaitRelease` call asks for; a longer wait is several calls, so
/// no call outlives a proxy's idle timeout (the server caps each at its own maximum too).
pub const MAX_AWAIT_CALL: Duration = Duration::from_secs(20);

/// A scan cache served by a `scancache server`, reached over HTTP(S).
///
/// Every storage primitive is one RPC (one round trip on a pooled connection, retried by
/// the transport's policy when the server cannot be reached or answers 503), so a warm
/// rescan costs two: `Missing`, then one `Read` of every layer. The server's backend
/// stores the entries and applies the server's TTL and size bound: this cache has no TTL
/// or size bound of its own, and puts go through `PutValues`, which the server writes
/// with its own TTL ([`Cache::put_blobs`] is one `PutValues` for all its layers). The
/// document size cap is checked on both sides: here, with this cache's
/// [`CacheOptions::max_document_size`], so an oversize document is never sent, and by the
/// server with its own, whose refusal comes back as [`Error::DocumentTooLarge`].
///
/// Two provided methods are overridden, because the server runs them better on its own
/// backend than this client could through the primitives, and runs them with the same
/// provided implementation there: [`Cache::stats`] (one `Stats` RPC instead of listing
/// every entry over the network; it also gives the server's disk size and the unread
/// counts from the last accesses only the server's backend knows) and
/// [`Cache::gc_with`] (one `Gc` RPC: the server's backend judges and removes expired,
/// unsound and unused entries with its own conditional removal — an LMDB transaction, a
/// Redis script — and compacts its files).
///
/// The claims of the single-flight are the server's backend's, through the service's
/// `Claim`, `Renew`, `Release` and `AwaitRelease` RPCs (`AwaitRelease` a long poll of at
/// most [`MAX_AWAIT_CALL`] per call), so scans through this cache wait for each other,
/// and for every other user of the server's backend, as scans of one local cache do; the
/// claim's token travels to the client and back unchanged. A server without those RPCs
/// (an older version, answering `bad_route`) makes this cache do without claims, as a
/// backend without claims does (every claim granted, holding nothing; no wait), with one
/// warning.
///
/// `Write` (import), `Delete`, `Export`, `Clear`, `Gc` and `Compact` need the admin
/// token; the others need only the token, when the server has one.
#[derive(Debug)]
pub struct RemoteCache {
    transport: Transport,
    endpoint: Endpoint,
    location: String,
    options: CacheOptions,
    headers: Vec<(HeaderName, HeaderValue)>,
    admin_headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    closed: AtomicBool,
    /// Set when the server answered a claim RPC with `bad_route` (an older server): this
    /// cache then does without claims.
    no_claims: AtomicBool,
}

impl RemoteCache {
    /// A cache over the server `config` names, refusing documents over
    /// `options.max_document_size` before they are sent. No call is made: an
    /// unreachable server shows with the first operation. Fails on an invalid URL or CA
    /// file, and on a TTL or size bound in `options` (those are the server's).
    pub fn new(config: &RemoteConfig, options: &CacheOptions) -> Result<RemoteCache> {
        for (set, what) in [
            (options.ttl.is_some(), "a TTL"),
            (options.max_size.is_some(), "a size bound"),
            (options.ttl_refresh, "a TTL refresh"),
        ] {
            if set {
                return Err(Error::Config {
                    setting: Setting::Backend,
                    reason: format!(
                        "{what} cannot be set on a remote cache: the server applies its own"
                    ),
                });
            }
        }
        let endpoint = config.validate()?;
        let transport = Transport::shared(config)?;
        let mut headers = Vec::new();
        if let Some(token) = config.token.as_deref().filter(|t| !t.is_empty()) {
            headers.push(header(&config.token_header, token)?);
        }
        let mut admin_headers = headers.clone();
        if let Some(token) = config.admin_token.as_deref().filter(|t| !t.is_empty()) {
            admin_headers.push(header(ADMIN_HEADER, token)?);
        }
        Ok(RemoteCache {
            transport,
            location: mask_url(&endpoint.to_string()),
            endpoint,
            options: CacheOptions {
                ttl: None,
                max_size: None,
                ttl_refresh: false,
                max_document_size: options.max_document_size,
            },
            headers,
            admin_headers,
            timeout: config.request_timeout,
            closed: AtomicBool::new(false),
            no_claims: AtomicBool::new(false),
        })
    }

    /// Sends `request` to `method` (the admin headers when `admin`), each attempt within
    /// `timeout`; the answer's bytes, or why the transport failed.
    async fn send(
        &self,
        method: &str,
        admin: bool,
        request: &impl Message,
        timeout: Duration,
    ) -> std::result::Result<Bytes, Failure> {
        let uri = self.endpoint.uri(SERVICE, method);
        let call = Call {
            uri: &uri,
            what: method,
            headers: if admin {
                &self.admin_headers
            } else {
                &self.headers
            },
            body: Bytes::from(request.encode_to_vec()),
            timeout,
        };
        self.transport.unary(&call).await
    }

    /// Decodes `method`'s answer as `R`.
    fn decode<R: Message + Default>(&self, method: &str, body: Bytes) -> Result<R> {
        R::decode(body).map_err(|e| self.invalid(method, format!("cannot decode the answer: {e}")))
    }

    /// Calls `method` with `request` and decodes the answer as `R`.
    async fn call<R: Message + Default>(
        &self,
        method: &str,
        admin: bool,
        request: &impl Message,
    ) -> Result<R> {
        let body = self
            .send(method, admin, request, self.timeout)
            .await
            .map_err(|f| f.into_error(&self.location, method))?;
        self.decode(method, body)
    }

    /// Calls the claim RPC `method` with `request`, each attempt within `timeout`, and
    /// decodes the answer; `Ok(None)` when the server has no claim RPCs (a route it does
    /// not know: an older server), which turns claims off for this cache with one
    /// warning.
    async fn claim_call<R: Message + Default>(
        &self,
        method: &str,
        request: &impl Message,
        timeout: Duration,
    ) -> Result<Option<R>> {
        if self.no_claims.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match self.send(method, false, request, timeout).await {
            Ok(body) => self.decode(method, body).map(Some),
            Err(Failure::Status {
                status: 404,
                code: Some(Code::BadRoute) | None,
                ..
            }) => {
                if !self.no_claims.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        server = %self.location,
                        "the server has no {method} RPC (an older version): scans through it \
                         do not wait for each other's layers"
                    );
                }
                Ok(None)
            }
            Err(f) => Err(f.into_error(&self.location, method)),
        }
    }

    fn invalid(&self, method: &str, message: String) -> Error {
        Error::Backend {
            backend: self.location.clone(),
            message: format!("{method}: {message}"),
        }
    }

    /// Walks the server's entries through `List` or `Export`, reading the streamed
    /// frames as they arrive and handing each entry to `visit`.
    async fn stream_walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        let (method, admin) = match walk {
            Walk::Meta => ("List", false),
            Walk::Values => ("Export", true),
        };
        let uri = self.endpoint.uri(SERVICE, method);
        let request = ps::WalkRequest {
            kind: kind.map_or(ps::Kind::Unspecified as i32, cv::kind_number),
        };
        let call = Call {
            uri: &uri,
            what: method,
            headers: if admin {
                &self.admin_headers
            } else {
                &self.headers
            },
            body: Bytes::from(request.encode_to_vec()),
            timeout: self.timeout,
        };
        let mut body = self
            .transport
            .streamed(&call)
            .await
            .map_err(|f| f.into_error(&self.location, method))?;
        let mut buf = BytesMut::new();
        loop {
            while let Some(frame) = self.next_frame(method, &mut buf)? {
                for entry in frame.entries {
                    let walked = cv::walked(entry)
                        .map_err(|e| self.invalid(method, format!("an entry of the walk: {e}")))?;
                    if visit(walked).is_break() {
                        // Dropping the body closes the connection: the server stops.
                        return Ok(());
                    }
                }
                if let Some(end) = frame.end {
                    return self.walk_end(method, end);
                }
            }
            let chunk = tokio::time::timeout(self.timeout, body.frame())
                .await
                .map_err(|_| Failure::Timeout(self.timeout).into_error(&self.location, method))?;
            match chunk {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(Failure::Broken(crate::transport::chain(&e))
                        .into_error(&self.location, method));
                }
                None => {
                    return Err(
                        Failure::Broken("the answer ended before the walk did".into())
                            .into_error(&self.location, method),
                    );
                }
            }
        }
    }

    /// The next complete length-delimited frame in `buf`, if it holds one.
    fn next_frame(&self, method: &str, buf: &mut BytesMut) -> Result<Option<ps::WalkFrame>> {
        let mut peek = &buf[..];
        let Ok(len) = prost::encoding::decode_varint(&mut peek) else {
            // Not even the length yet (a varint is at most 10 bytes).
            if buf.len() >= 10 {
                return Err(self.invalid(method, "a frame has an invalid length".into()));
            }
            return Ok(None);
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_FRAME_BYTES {
            return Err(self.invalid(
                method,
                format!("a frame of {len} bytes is larger than {MAX_FRAME_BYTES}"),
            ));
        }
        let header = buf.len() - peek.len();
        if peek.len() < len {
            return Ok(None);
        }
        buf.advance(header);
        let frame = buf.split_to(len);
        ps::WalkFrame::decode(frame.freeze())
            .map(Some)
            .map_err(|e| self.invalid(method, format!("cannot decode a frame: {e}")))
    }

    /// The outcome a walk's last frame reports.
    fn walk_end(&self, method: &str, end: ps::WalkEnd) -> Result<()> {
        if end.code.is_empty() {
            return Ok(());
        }
        let code = cache_server::twirp::Code::parse(&end.code);
        let status = code.map_or(500, |c| c.status().as_u16());
        Err(Failure::Status {
            status,
            code,
            msg: end.msg,
        }
        .into_error(&self.location, method))
    }
}

/// `items` in batches of about [`MAX_BATCH_BYTES`] each (a larger item alone).
fn batches<T>(items: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut all = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        if !batch.is_empty() && bytes + n > MAX_BATCH_BYTES {
            all.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += n;
        batch.push(item);
    }
    if !batch.is_empty() {
        all.push(batch);
    }
    all
}

/// After one call of a put split over several: a document the server refused for its
/// size is kept in `refused` (the first one) and the next calls go on, since the server
/// stored the call's other documents; any other error ends the put.
fn go_on_after_refusal(result: Result<ps::Nothing>, refused: &mut Option<Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_document_too_large() => {
            refused.get_or_insert(e);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let invalid = |reason: &str| Error::Config {
        setting: cache_core::Setting::Backend,
        reason: reason.to_owned(),
    };
    let name = HeaderName::try_from(name).map_err(|_| invalid("invalid token header name"))?;
    let mut value = HeaderValue::try_from(value)
        .map_err(|_| invalid("a token holds characters an HTTP header cannot carry"))?;
    value.set_sensitive(true);
    Ok((name, value))
}

#[async_trait]
impl Cache for RemoteCache {
    fn backend_name(&self) -> &'static str {
        "remote"
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn options(&self) -> &CacheOptions {
        &self.options
    }

    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        let request = ps::MissingRequest {
            artifact_id: artifact.to_string(),
            blob_ids: blobs.iter().map(ToString::to_string).collect(),
        };
        let answer: ps::MissingResponse = self.call("Missing", false, &request).await?;
        let blobs = cv::blob_ids(&answer.missing_blob_ids, "missing_blob_ids")
            .map_err(|e| self.invalid("Missing", e))?;
        Ok(Missing {
            artifact: answer.missing_artifact,
            blobs,
        })
    }

    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let request = ps::ReadRequest {
            kind: cv::kind_number(kind),
            ids: ids.iter().map(ToString::to_string).collect(),
        };
        let answer: ps::ReadResponse = self.call("Read", false, &request).await?;
        if answer.values.len() != ids.len() {
            return Err(self.invalid(
                "Read",
                format!("{} values for {} IDs", answer.values.len(), ids.len()),
            ));
        }
        Ok(answer.values.into_iter().map(|f| f.value).collect())
    }

    async fn write(&self, entries: &[RawEntry]) -> Result<()> {
        let entries: Vec<ps::Entry> = entries.iter().map(cv::entry_message).collect();
        let mut refused = None;
        for entries in batches(entries, |e| e.value.len()) {
            let written = self
                .call::<ps::Nothing>("Write", true, &ps::WriteRequest { entries })
                .await;
            go_on_after_refusal(written, &mut refused)?;
        }
        refused.map_or(Ok(()), Err)
    }

    async fn delete(&self, keys: &[EntryKey]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let request = ps::DeleteRequest {
            keys: keys.iter().map(cv::key_message).collect(),
        };
        let answer: ps::DeleteResponse = self.call("Delete", true, &request).await?;
        Ok(answer.removed)
    }

    async fn walk(
        &self,
        kind: Option<EntryKind>,
        walk: Walk,
        visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        self.stream_walk(kind, walk, visit).await
    }

    async fn clear(&self) -> Result<()> {
        let _: ps::Nothing = self.call("Clear", true, &ps::Nothing {}).await?;
        Ok(())
    }

    /// Marks the cache closed. The connection pool is the process's, shared with every
    /// other client, so it stays; the server's backend is the server's, so it stays open.
    async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// One `PutValues` call per about [`MAX_BATCH_BYTES`] of values: the server stores
    /// them with its own TTL (and its group commit).
    async fn put_values(&self, entries: Vec<(EntryKey, Vec<u8>)>) -> Result<()> {
        let values: Vec<ps::Value> = entries
            .into_iter()
            .map(|(key, value)| ps::Value {
                key: Some(cv::key_message(&key)),
                value,
            })
            .collect();
        let mut refused = None;
        for values in batches(values, |v| v.value.len()) {
            let stored = self
                .call::<ps::Nothing>("PutValues", false, &ps::PutValuesRequest { values })
                .await;
            go_on_after_refusal(stored, &mut refused)?;
        }
        refused.map_or(Ok(()), Err)
    }

    /// The server's backend's claims, through `Claim` (one call for all the keys).
    async fn claim(&self, ids: &[BlobId], lease: Duration) -> Result<Vec<Claimed>> {
        let unheld = || {
            ids.iter()
                .map(|id| Claimed::Owned(Claim::unheld(id.clone())))
                .collect()
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let request = ps::ClaimRequest {
            ids: ids.iter().map(ToString::to_string).collect(),
            lease_ms: cv::lease_ms(lease),
        };
        let Some(answer) = self
            .claim_call::<ps::ClaimResponse>("Claim", &request, self.timeout)
            .await?
        else {
            return Ok(unheld());
        };
        if answer.claims.len() != ids.len() {
            return Err(self.invalid(
                "Claim",
                format!("{} answers for {} IDs", answer.claims.len(), ids.len()),
            ));
        }
        ids.iter()
            .zip(answer.claims)
            .map(|(id, c)| {
                cv::claimed(id.clone(), c).map_err(|e| self.invalid("Claim", format!("{id}: {e}")))
            })
            .collect()
    }

    /// `Renew` of the claims that hold something.
    async fn renew(&self, claims: &[Claim], lease: Duration) -> Result<()> {
        let claims = held(claims);
        if claims.is_empty() {
            return Ok(());
        }
        let request = ps::RenewRequest {
            claims,
            lease_ms: cv::lease_ms(lease),
        };
        self.claim_call::<ps::Nothing>("Renew", &request, self.timeout)
            .await
            .map(drop)
    }

    /// `Release` of the claims that hold something.
    async fn release(&self, claims: &[Claim]) -> Result<()> {
        let claims = held(claims);
        if claims.is_empty() {
            return Ok(());
        }
        self.claim_call::<ps::Nothing>("Release", &ps::ReleaseRequest { claims }, self.timeout)
            .await
            .map(drop)
    }

    /// `AwaitRelease`, a long poll answered when the claim ends: one call per
    /// [`MAX_AWAIT_CALL`] (or the server's own cap, if lower) of `timeout`.
    async fn await_release(&self, id: &BlobId, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(MAX_AWAIT_CALL);
            let request = ps::AwaitReleaseRequest {
                id: id.to_string(),
                timeout_ms: cv::timeout_ms(wait),
            };
            let answer = self
                .claim_call::<ps::AwaitReleaseResponse>(
                    "AwaitRelease",
                    &request,
                    wait + self.timeout,
                )
                .await?;
            match answer {
                None => return Ok(true),
                Some(a) if a.released => return Ok(true),
                Some(_) if Instant::now() >= deadline => return Ok(false),
                Some(_) => {}
            }
        }
    }

    async fn compact(&self) -> Result<()> {
        let _: ps::Nothing = self.call("Compact", true, &ps::Nothing {}).await?;
        Ok(())
    }

    async fn disk_bytes(&self) -> Result<Option<u64>> {
        Ok(self.stats().await?.disk_bytes)
    }

    /// Every write is a request to the server.
    fn groups_writes(&self) -> bool {
        true
    }

    /// The server's own counts (see the type's docs for why this is overridden).
    async fn stats(&self) -> Result<Stats> {
        let answer: ps::StatsResponse = self.call("Stats", false, &ps::Nothing {}).await?;
        Ok(Stats::from(&answer))
    }

    /// The server's own `gc_with` (see the type's docs for why this is overridden); the
    /// provided `gc` comes here with the default options.
    async fn gc_with(&self, options: &GcOptions) -> Result<GcReport> {
        let request = ps::GcRequest::from(options);
        let answer: ps::GcResponse = self.call("Gc", true, &request).await?;
        let report = GcReport::from(&answer);
        tracing::debug!(backend = self.backend_name(), ?report, "gc");
        Ok(report)
    }
}

/// The messages of the claims that hold something (an unheld claim has nothing to renew
/// or release on the server).
fn held(claims: &[Claim]) -> Vec<ps::ClaimToken> {
    claims
        .iter()
        .filter(|c| !c.is_unheld())
        .map(cv::claim_message)
        .collect()
}
