//! The cross-cutting concerns, as middleware layers: observing every request (metrics
//! and logs), requiring the token, capping the body, the deadline, and the bound on
//! requests served at once.

use std::{net::SocketAddr, sync::Arc, time::Duration, time::Instant};

use axum::{
    body::Body,
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt;

use crate::{
    ServerState,
    metrics::Metrics,
    twirp::{BodyLimit, Code, ErrorInfo, TwirpError, too_large},
};

/// The peer of a connection, set on each request by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Counts and logs every request: requests by method and code, latency, bytes in and
/// out, requests in flight; one log line per failed request (warn, or error for server
/// faults), and with debug logging one per request.
pub async fn observe(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let rpc = Metrics::method_of(state.prefix(), &path);
    let twirp = !is_plain_route(&path);
    let peer = req.extensions().get::<Peer>().copied();
    let counting = state.clone();
    let req = req.map(|body| {
        Body::new(body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counting.metrics().received(data.len() as u64);
            }
            frame
        }))
    });
    let _in_flight = twirp.then(|| state.metrics().in_flight());
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    if let Some(n) = axum::body::HttpBody::size_hint(resp.body()).exact() {
        state.metrics().sent(n);
    }
    let error = resp.extensions().get::<ErrorInfo>().map(|e| &e.0);
    if twirp {
        let code = error.map_or("ok", |e| e.code.as_str());
        state
            .metrics()
            .request_done(rpc, code, elapsed.as_secs_f64());
    }
    let ms = elapsed.as_secs_f64() * 1e3;
    let status = resp.status().as_u16();
    let peer = PeerName(peer);
    match error {
        Some(e) if e.code.status().is_server_error() => tracing::error!(
            "{method} {path} from {peer}: {status} {}: {} ({ms:.1} ms)",
            e.code,
            e.msg
        ),
        Some(e) => tracing::warn!(
            "{method} {path} from {peer}: {status} {}: {} ({ms:.1} ms)",
            e.code,
            e.msg
        ),
        None => tracing::debug!("{method} {path} from {peer}: {status} ({ms:.1} ms)"),
    }
    resp
}

/// A request's peer for log lines, formatted only when a line is written.
struct PeerName(Option<Peer>);

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(Peer(addr)) => write!(f, "{addr}"),
            None => f.write_str("-"),
        }
    }
}

fn is_plain_route(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/version" | "/metrics")
}

/// Refuses a Twirp request without the exact token (`unauthenticated`, 401) before
/// anything of its body is read.
pub async fn require_token(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let config = state.config();
    if let Some(token) = &config.token {
        let header_name = &config.token_header;
        let given = req.headers().get(header_name);
        let ok = given.is_some_and(|v| token.matches(v.as_bytes()));
        if !ok {
            let msg = if given.is_none() {
                format!("missing token (header {header_name})")
            } else {
                format!("invalid token (header {header_name})")
            };
            return TwirpError::new(Code::Unauthenticated, msg).into_response();
        }
    }
    next.run(req).await
}

/// Refuses an admin RPC of the scancache service (`permission_denied`, 403) unless it
/// carries the admin token, before anything of its body is read; a server without an
/// admin token refuses every admin RPC.
pub async fn require_admin(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let header_name = crate::ADMIN_TOKEN_HEADER;
    let Some(token) = &state.config().admin_token else {
        return TwirpError::new(
            Code::PermissionDenied,
            "admin RPCs are disabled: the server was started without an admin token \
             (--admin-token)",
        )
        .into_response();
    };
    let given = req.headers().get(header_name);
    if !given.is_some_and(|v| token.matches(v.as_bytes())) {
        let msg = if given.is_none() {
            format!("this RPC needs the admin token (header {header_name})")
        } else {
            format!("invalid admin token (header {header_name})")
        };
        return TwirpError::new(Code::PermissionDenied, msg).into_response();
    }
    next.run(req).await
}

/// Caps the request body at `limit` bytes: a declared `Content-Length` over it is
/// refused before reading, and the body stops at the limit while read (the decoder caps
/// a compressed body's decompressed size at the same limit).
pub async fn limit_body(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit).into_response();
    }
    let mut req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    req.extensions_mut().insert(BodyLimit(limit));
    next.run(req).await
}

/// Lets a handler step out of the concurrency bound and the request timeout while it
/// waits for another client ([`crate::flight`]): its wait has a bound of its own, and the
/// request that ends it (the owner's `PutBlob`) must get a slot. Put in the request's
/// extensions by [`deadline`], filled by [`bound_concurrency`].
#[derive(Clone, Debug, Default)]
pub struct Hold {
    permit: Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>,
    lifted: Arc<std::sync::atomic::AtomicBool>,
}

impl Hold {
    /// Gives the request's slot back and lifts its timeout.
    pub fn step_out(&self) {
        self.lifted.store(true, std::sync::atomic::Ordering::SeqCst);
        self.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn is_lifted(&self) -> bool {
        self.lifted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Fails a request that takes longer than `timeout` with `deadline_exceeded`, unless its
/// handler lifted the timeout ([`Hold::step_out`]) before it passed.
pub async fn deadline(State(timeout): State<Duration>, mut req: Request, next: Next) -> Response {
    let hold = Hold::default();
    req.extensions_mut().insert(hold.clone());
    let run = next.run(req);
    tokio::pin!(run);
    tokio::select! {
        resp = &mut run => return resp,
        () = tokio::time::sleep(timeout) => {}
    }
    if hold.is_lifted() {
        return run.await;
    }
    TwirpError::new(
        Code::DeadlineExceeded,
        format!(
            "the request took longer than {:.1} s (--request-timeout)",
            timeout.as_secs_f64()
        ),
    )
    .into_response()
}

/// Serves at most as many requests at once as `slots` has permits; the others wait
/// (within the deadline, which lies outside this layer).
///
/// A semaphore acquired in the middleware rather than tower's concurrency limit, whose
/// permit is taken in `poll_ready`: axum's router readies a fresh clone of a route's
/// service for each request, which made that limit hold nothing back (a test showed
/// the second of two requests served beside the first with one slot).
pub async fn bound_concurrency(
    State(slots): State<Arc<tokio::sync::Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    match slots.acquire_owned().await {
        Ok(permit) => {
            // The handler may give the slot back early (Hold::step_out); else it is held
            // until the response, as the extension's last clone drops with the request.
            let held = req.extensions().get::<Hold>().cloned();
            match held {
                Some(hold) => {
                    *hold.permit.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
                    let resp = next.run(req).await;
                    hold.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
                    resp
                }
                None => {
                    let resp = next.run(req).await;
                    drop(permit);
                    resp
                }
            }
        }
        Err(_) => TwirpError::new(Code::Unavailable, "the server is shutting down").into_response(),
    }
}
