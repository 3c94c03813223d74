//! scancache's own cache service, `scancache.cache.v1.Cache`: the storage primitives of
//! the [`cache_core::Cache`] trait as RPCs over the same Twirp framing, codecs, token and limits as
//! the reference's service, for the remote backend (crate `cache-remote`). Values travel
//! as the stored bytes, unchanged ([`crate::proto::scancache`]); the contract, with what
//! each RPC does and which need the admin token, is `docs/remote.md`.
//!
//! The claim RPCs (`Claim`, `Renew`, `Release`, `AwaitRelease`) forward the single-flight
//! of the remote backend's scans to this server's backend: the same trait methods, with
//! the client's lease and token, so the remote backend's claims are those of every other
//! user of the backend. `AwaitRelease` is a long poll, held outside the concurrency
//! bound and the request timeout (as a held `MissingBlobs` is) and capped by
//! [`crate::Config::max_await`].
//!
//! Handlers are decode → one cache call → encode. `List` and `Export` stream their
//! answer: the backend's walk runs on a blocking thread and hands frames of entries to
//! the response body through a bounded channel, so the client's reading speed paces the
//! walk and a cache of any size is never held in memory.

use std::{
    convert::Infallible,
    ops::ControlFlow,
    pin::Pin,
    sync::mpsc as std_mpsc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Extension,
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::Response,
};
use bytes::Bytes;
use cache_core::{Claim, Claimed, EntryKey, Walk};
use http_body::Frame;
use prost::Message as _;
use tokio::sync::mpsc;

use crate::{
    ServerState,
    convert::scancache as cv,
    layers::Hold,
    proto::scancache as ps,
    twirp::{Code, Codec, TwirpError, TwirpRequest, reply},
};

/// The service's path below the prefix: `{prefix}/scancache.cache.v1.Cache/{Method}`.
pub const SERVICE: &str = "scancache.cache.v1.Cache";

/// Most entries in one frame of a streamed walk.
const FRAME_ENTRIES: usize = 512;

/// About the most value bytes in one frame (a larger single value travels alone).
const FRAME_BYTES: usize = 256 << 10;

/// Frames waiting between the walk and the response body, per channel (two channels).
const FRAMES_IN_FLIGHT: usize = 2;

/// The RPCs of the service, as the metrics' `method` label names them.
pub const METHODS: [&str; 15] = [
    "Missing",
    "Read",
    "PutValues",
    "Write",
    "Delete",
    "List",
    "Export",
    "Clear",
    "Gc",
    "Stats",
    "Compact",
    "Claim",
    "Renew",
    "Release",
    "AwaitRelease",
];

/// The RPCs that change or dump the cache: they need the admin token.
pub const ADMIN_METHODS: [&str; 6] = ["Write", "Delete", "Export", "Clear", "Gc", "Compact"];

fn invalid(msg: impl Into<String>) -> TwirpError {
    TwirpError::new(Code::InvalidArgument, msg)
}

/// `Missing`: one `missing_blobs` call.
pub(crate) async fn missing(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::MissingRequest>,
) -> Result<Response, TwirpError> {
    let artifact = crate::service::artifact_id(&req.message.artifact_id, "artifact_id")?;
    let blobs = cv::blob_ids(&req.message.blob_ids, "blob_ids").map_err(invalid)?;
    let missing = s
        .cache()
        .missing_blobs(&artifact, &blobs)
        .await
        .map_err(|e| s.backend_error(e))?;
    s.metrics().missing_blobs(blobs.len(), missing.blobs.len());
    Ok(reply(
        req.codec,
        &ps::MissingResponse {
            missing_artifact: missing.artifact,
            missing_blob_ids: missing.blobs.iter().map(ToString::to_string).collect(),
        },
    ))
}

/// `Read`: one `read` call for every ID.
pub(crate) async fn read(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::ReadRequest>,
) -> Result<Response, TwirpError> {
    let kind = cv::kind_of(req.message.kind).map_err(|e| invalid(format!("kind: {e}")))?;
    let ids = req
        .message
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| cache_core::Digest::parse(id).map_err(|e| invalid(format!("ids[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&cache_core::Digest> = ids.iter().collect();
    let values = s
        .cache()
        .read(kind, &refs)
        .await
        .map_err(|e| s.backend_error(e))?;
    let answer = ps::ReadResponse {
        values: values
            .into_iter()
            .map(|value| ps::Found { value })
            .collect(),
    };
    Ok(reply(req.codec, &answer))
}

/// `PutValues`: values stored with the server's TTL (through the group commit where the
/// backend groups writes).
pub(crate) async fn put_values(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::PutValuesRequest>,
) -> Result<Response, TwirpError> {
    let values = req
        .message
        .values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let key = cv::entry_key(v.key.as_ref())
                .map_err(|e| invalid(format!("values[{i}].key: {e}")))?;
            Ok((key, v.value))
        })
        .collect::<Result<Vec<_>, TwirpError>>()?;
    let blob_sizes: Vec<usize> = values
        .iter()
        .filter(|(k, _)| k.kind == cache_core::EntryKind::Blob)
        .map(|(_, v)| v.len())
        .collect();
    let limit = s.cache().options().max_document_size;
    let blob_sizes: Vec<usize> = blob_sizes
        .into_iter()
        .filter(|&n| limit.is_none_or(|limit| n as u64 <= limit))
        .collect();
    let stored = if values.is_empty() {
        Ok(())
    } else {
        s.store_many(values).await
    };
    // A refused document is the only error after which the others were stored.
    if stored.is_ok()
        || stored
            .as_ref()
            .is_err_and(|e| e.code == Code::InvalidArgument)
    {
        for size in blob_sizes {
            s.metrics().put_blob(size);
        }
    }
    stored?;
    Ok(reply(req.codec, &ps::Nothing {}))
}

/// `Write` (admin): entries stored as given, each with its own expiry (`import`, which
/// makes an entry whose expiry has passed a delete).
pub(crate) async fn write(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::WriteRequest>,
) -> Result<Response, TwirpError> {
    let entries = req
        .message
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| cv::raw_entry(e).map_err(|e| invalid(format!("entries[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    s.cache()
        .import(&entries)
        .await
        .map_err(|e| s.backend_error(e))?;
    Ok(reply(req.codec, &ps::Nothing {}))
}

/// `Delete` (admin): entries of either kind removed; answers how many live ones there
/// were.
pub(crate) async fn delete(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::DeleteRequest>,
) -> Result<Response, TwirpError> {
    let keys = req
        .message
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| cv::entry_key(Some(k)).map_err(|e| invalid(format!("keys[{i}]: {e}"))))
        .collect::<Result<Vec<EntryKey>, _>>()?;
    let removed = s
        .cache()
        .delete(&keys)
        .await
        .map_err(|e| s.backend_error(e))?;
    Ok(reply(req.codec, &ps::DeleteResponse { removed }))
}

/// `List`: every entry's kind, ID, size and expiry, streamed.
pub(crate) async fn list(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::WalkRequest>,
) -> Result<Response, TwirpError> {
    stream_walk(s, req, Walk::Meta).await
}

/// `Export` (admin): every entry with its value, streamed.
pub(crate) async fn export(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::WalkRequest>,
) -> Result<Response, TwirpError> {
    stream_walk(s, req, Walk::Values).await
}

/// `Clear` (admin).
pub(crate) async fn clear(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::Nothing>,
) -> Result<Response, TwirpError> {
    s.cache().clear().await.map_err(|e| s.backend_error(e))?;
    Ok(reply(req.codec, &ps::Nothing {}))
}

/// `Gc` (admin): the backend's own `gc_with` (unused entries too, when asked),
/// compaction included.
pub(crate) async fn gc(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::GcRequest>,
) -> Result<Response, TwirpError> {
    let options = cache_core::GcOptions::from(&req.message);
    let report = s
        .cache()
        .gc_with(&options)
        .await
        .map_err(|e| s.backend_error(e))?;
    Ok(reply(req.codec, &ps::GcResponse::from(&report)))
}

/// `Stats`: the backend's own counts and disk size, and its name.
pub(crate) async fn stats(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::Nothing>,
) -> Result<Response, TwirpError> {
    let stats = s.cache().stats().await.map_err(|e| s.backend_error(e))?;
    let answer = ps::StatsResponse {
        backend: s.cache().backend_name().to_owned(),
        ..ps::StatsResponse::from(&stats)
    };
    Ok(reply(req.codec, &answer))
}

/// `Compact` (admin): returns the space of removed entries where the backend has files.
pub(crate) async fn compact(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::Nothing>,
) -> Result<Response, TwirpError> {
    s.cache().compact().await.map_err(|e| s.backend_error(e))?;
    Ok(reply(req.codec, &ps::Nothing {}))
}

/// `Claim`: the backend's `claim` of every ID with the client's lease; per ID, the
/// token of an owned claim or busy. A server whose claims are off (`Config::lease` is
/// `None`) grants every key with a claim that holds nothing.
pub(crate) async fn claim(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::ClaimRequest>,
) -> Result<Response, TwirpError> {
    let ids = cv::blob_ids(&req.message.ids, "ids").map_err(invalid)?;
    let lease = cv::lease(req.message.lease_ms).map_err(|e| invalid(format!("lease_ms: {e}")))?;
    let claimed: Vec<Claimed> = if s.config().lease.is_none() || ids.is_empty() {
        ids.into_iter()
            .map(|id| Claimed::Owned(Claim::unheld(id)))
            .collect()
    } else {
        s.cache()
            .claim(&ids, lease)
            .await
            .map_err(|e| s.backend_error(e))?
    };
    let busy = claimed.iter().filter(|c| **c == Claimed::Busy).count();
    s.metrics().forwarded_claims(claimed.len() - busy, busy);
    let answer = ps::ClaimResponse {
        claims: claimed.iter().map(cv::claimed_message).collect(),
    };
    Ok(reply(req.codec, &answer))
}

/// The claims of a `Renew` or `Release` request, each with a valid ID and token.
fn claims_of(claims: &[ps::ClaimToken]) -> Result<Vec<Claim>, TwirpError> {
    claims
        .iter()
        .enumerate()
        .map(|(i, c)| cv::claim(c).map_err(|e| invalid(format!("claims[{i}].{e}"))))
        .collect()
}

/// `Renew`: the backend's `renew` of the client's claims with its lease.
pub(crate) async fn renew(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::RenewRequest>,
) -> Result<Response, TwirpError> {
    let claims = claims_of(&req.message.claims)?;
    let lease = cv::lease(req.message.lease_ms).map_err(|e| invalid(format!("lease_ms: {e}")))?;
    if !claims.is_empty() {
        s.cache()
            .renew(&claims, lease)
            .await
            .map_err(|e| s.backend_error(e))?;
    }
    Ok(reply(req.codec, &ps::Nothing {}))
}

/// `Release`: the backend's `release` of the client's claims.
pub(crate) async fn release(
    State(s): State<ServerState>,
    req: TwirpRequest<ps::ReleaseRequest>,
) -> Result<Response, TwirpError> {
    let claims = claims_of(&req.message.claims)?;
    if !claims.is_empty() {
        s.cache()
            .release(&claims)
            .await
            .map_err(|e| s.backend_error(e))?;
    }
    Ok(reply(req.codec, &ps::Nothing {}))
}

/// `AwaitRelease`: the backend's `await_release`, for the client's timeout capped at
/// [`crate::Config::max_await`]. The request steps out of the concurrency bound and the
/// request timeout first (its wait is bounded by the cap instead), so the owner's
/// `PutValues` and `Release` always get through.
pub(crate) async fn await_release(
    State(s): State<ServerState>,
    hold: Option<Extension<Hold>>,
    req: TwirpRequest<ps::AwaitReleaseRequest>,
) -> Result<Response, TwirpError> {
    let id = crate::service::blob_id(&req.message.id, "id")?;
    let timeout = Duration::from_millis(req.message.timeout_ms).min(s.config().max_await);
    if let Some(Extension(hold)) = &hold {
        hold.step_out();
    }
    let started = Instant::now();
    let released = if s.config().lease.is_none() {
        true
    } else {
        s.cache()
            .await_release(&id, timeout)
            .await
            .map_err(|e| s.backend_error(e))?
    };
    s.metrics().forwarded_wait(started.elapsed(), released);
    Ok(reply(req.codec, &ps::AwaitReleaseResponse { released }))
}

/// Runs a walk and streams it: frames of entries, the last one saying how the walk
/// ended. A walk that fails before its first frame is an ordinary error answer.
async fn stream_walk(
    s: ServerState,
    req: TwirpRequest<ps::WalkRequest>,
    mode: Walk,
) -> Result<Response, TwirpError> {
    let kind = cv::kind_filter(req.message.kind).map_err(|e| invalid(format!("kind: {e}")))?;
    let mut frames = start_walk(s, kind, mode);
    let Some(first) = frames.recv().await else {
        return Err(TwirpError::new(
            Code::Internal,
            "the walk stopped unexpectedly",
        ));
    };
    if let Some(end) = &first.end
        && !end.code.is_empty()
    {
        let code = Code::parse(&end.code).unwrap_or(Code::Internal);
        return Err(TwirpError::new(code, end.msg.clone()));
    }
    let codec = req.codec;
    let body = FrameBody {
        first: Some(encode_frame(codec, &first)),
        rest: frames,
        codec,
    };
    let mut resp = Response::new(Body::new(body));
    let content_type = match codec {
        Codec::Protobuf => "application/protobuf",
        Codec::Json => "application/x-ndjson",
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

/// Starts the backend's walk on a blocking thread, which blocks whenever the frames it
/// produced are not read yet. `Cache::walk` calls a synchronous visitor from within its
/// future, so that future runs on a thread of its own (`Handle::block_on`), where the
/// visitor may wait; a second blocking thread moves the frames into an async channel.
/// When the response body is dropped (the client went away), both channels close and the
/// visitor stops the walk.
fn start_walk(
    s: ServerState,
    kind: Option<cache_core::EntryKind>,
    mode: Walk,
) -> mpsc::Receiver<ps::WalkFrame> {
    let (tx, rx) = mpsc::channel::<ps::WalkFrame>(FRAMES_IN_FLIGHT);
    let (sync_tx, sync_rx) = std_mpsc::sync_channel::<ps::WalkFrame>(FRAMES_IN_FLIGHT);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut frame = ps::WalkFrame::default();
        let mut bytes = 0usize;
        let cache = s.cache().clone();
        let result = handle.block_on(cache.walk(kind, mode, &mut |w| {
            bytes += w.value.as_ref().map_or(0, Vec::len);
            frame.entries.push(cv::walked_message(w));
            if frame.entries.len() >= FRAME_ENTRIES || bytes >= FRAME_BYTES {
                bytes = 0;
                if sync_tx.send(std::mem::take(&mut frame)).is_err() {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }));
        frame.end = Some(match result {
            Ok(()) => ps::WalkEnd::default(),
            Err(e) => {
                let e = s.backend_error(e);
                ps::WalkEnd {
                    code: e.code.as_str().to_owned(),
                    msg: e.msg,
                }
            }
        });
        // The receiver is gone when the client went away: nothing to tell.
        let _ = sync_tx.send(frame);
    });
    tokio::task::spawn_blocking(move || {
        for frame in sync_rx {
            if tx.blocking_send(frame).is_err() {
                break;
            }
        }
    });
    rx
}

/// One frame on the wire: length-delimited protobuf, or a line of JSON.
fn encode_frame(codec: Codec, frame: &ps::WalkFrame) -> Bytes {
    match codec {
        Codec::Protobuf => Bytes::from(frame.encode_length_delimited_to_vec()),
        Codec::Json => {
            let mut line = codec.encode(frame);
            line.push(b'\n');
            Bytes::from(line)
        }
    }
}

/// The body of a streamed walk: the first frame (already received, to tell an early
/// failure from a walk), then every other frame as the walk produces it.
struct FrameBody {
    first: Option<Bytes>,
    rest: mpsc::Receiver<ps::WalkFrame>,
    codec: Codec,
}

impl http_body::Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let codec = self.codec;
        self.rest
            .poll_recv(cx)
            .map(|frame| frame.map(|f| Ok(Frame::data(encode_frame(codec, &f)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_method_is_a_method() {
        for m in ADMIN_METHODS {
            assert!(METHODS.contains(&m), "{m}");
        }
    }

    #[test]
    fn every_method_has_a_metrics_label() {
        for m in METHODS {
            assert!(crate::metrics::METHODS.contains(&m), "{m}");
        }
    }

    #[test]
    fn frames_are_delimited() {
        let frame = ps::WalkFrame {
            entries: vec![ps::Walked {
                size: 3,
                ..Default::default()
            }],
            end: Some(ps::WalkEnd::default()),
        };
        let wire = encode_frame(Codec::Protobuf, &frame);
        assert_eq!(
            ps::WalkFrame::decode_length_delimited(&wire[..]).unwrap(),
            frame
        );
        let line = encode_frame(Codec::Json, &frame);
        assert!(line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'));
    }
}
