//! The service: its state, the [`router`] that tests and the command line both start,
//! and the handlers (decode → call the cache → encode).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Extension, Router,
    extract::State,
    http::{StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::{any, get},
};
use cache_core::{ArtifactId, BlobId, Cache, EntryKey, codec};
use tower::ServiceBuilder;

use crate::{
    Config,
    batch::{Batcher, WriteError},
    convert::transcode,
    flight::ClientClaims,
    layers::{self, Hold},
    metrics::Metrics,
    native,
    proto::cache::{
        DeleteBlobsRequest, Empty, MissingBlobsRequest, MissingBlobsResponse, PutArtifactRequest,
        PutBlobRequest,
    },
    scan,
    twirp::{Code, Codec, RawTwirpRequest, TwirpError, TwirpRequest, reply},
};

/// How long a readiness answer is reused.
const READY_TTL: Duration = Duration::from_secs(1);

/// How long the readiness check waits for the backend.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What every handler and layer shares: the cache, the settings and the counters.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cache: Arc<dyn Cache>,
    config: Config,
    prefix: String,
    metrics: Metrics,
    /// The group commit of stored documents.
    batcher: Batcher,
    /// The last readiness answer and when it was found.
    ready: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    /// The claims held for clients.
    claims: ClientClaims,
}

impl ServerState {
    /// The state of a service over `cache`.
    pub fn new(cache: Arc<dyn Cache>, config: Config) -> ServerState {
        let prefix = config.normalized_prefix();
        ServerState {
            inner: Arc::new(Inner {
                cache,
                config,
                prefix,
                metrics: Metrics::new(),
                batcher: Batcher::default(),
                ready: tokio::sync::Mutex::new(None),
                claims: ClientClaims::default(),
            }),
        }
    }

    /// The cache behind the service.
    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.inner.cache
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The normalized path prefix of the Twirp routes.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The Twirp error for a failed backend operation, counted. Only an unreachable
    /// backend is `unavailable` (the code the reference client retries); a document
    /// over the size cap is the client's `invalid_argument`, not counted.
    pub fn backend_error(&self, e: cache_core::Error) -> TwirpError {
        if let Some(refused) = crate::convert::scancache::too_large_error(&e) {
            return refused;
        }
        self.metrics().backend_error();
        let code = if e.is_unavailable() {
            Code::Unavailable
        } else {
            Code::Internal
        };
        TwirpError::new(code, e.to_string())
    }

    /// Stores a freshly encoded document, in one write with those of other requests
    /// waiting at the same time (group commit, module `batch`).
    pub async fn store(&self, key: EntryKey, value: Vec<u8>) -> Result<(), TwirpError> {
        self.store_many(vec![(key, value)]).await
    }

    /// Stores several freshly written values with the cache's TTL, in as few writes as
    /// the group commit's limits allow, together with other requests' documents. A value
    /// over the backend's document size cap is refused (`invalid_argument`, naming it)
    /// and the others are stored, as `put_blobs` does.
    pub async fn store_many(&self, values: Vec<(EntryKey, Vec<u8>)>) -> Result<(), TwirpError> {
        let limit = self.cache().options().max_document_size;
        let mut refused = None;
        let values: Vec<(EntryKey, Vec<u8>)> = values
            .into_iter()
            .filter(|(key, value)| {
                match cache_core::rules::check_document_size(key, value.len() as u64, limit) {
                    Ok(()) => true,
                    Err(e) => {
                        self.metrics().document_over_cap();
                        refused.get_or_insert(e);
                        false
                    }
                }
            })
            .collect();
        if !values.is_empty() {
            self.put_batched(values).await?;
        }
        match refused
            .as_ref()
            .and_then(crate::convert::scancache::too_large_error)
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn put_batched(&self, values: Vec<(EntryKey, Vec<u8>)>) -> Result<(), TwirpError> {
        // A backend that gains nothing from grouped writes is written at once.
        if !self.cache().groups_writes() {
            return self
                .cache()
                .put_values(values)
                .await
                .map_err(|e| self.backend_error(e));
        }
        match self.inner.batcher.put_many(self.cache(), values).await {
            Ok(()) => Ok(()),
            Err(WriteError::Backend(e)) => {
                self.metrics().backend_error();
                Err(e)
            }
            Err(WriteError::Stopped) => {
                Err(TwirpError::new(Code::Unavailable, "the server is stopping"))
            }
        }
    }

    /// Whether the backend answers; checked at most once a second.
    pub async fn readiness(&self) -> Result<(), String> {
        let mut last = self.inner.ready.lock().await;
        if let Some((at, answer)) = &*last
            && at.elapsed() < READY_TTL
        {
            return answer.clone();
        }
        let answer =
            match tokio::time::timeout(READY_TIMEOUT, self.cache().missing_blobs(&probe_id(), &[]))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "the cache backend did not answer within {} s",
                    READY_TIMEOUT.as_secs()
                )),
            };
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

/// The artifact ID the readiness check asks about (it is never stored).
fn probe_id() -> ArtifactId {
    ArtifactId::from(cache_core::Digest::from_sha256([0x5c; 32]))
}

/// The full service: the Twirp routes (token, body cap, timeout and concurrency bound as
/// layers) and `/healthz`, `/readyz`, `/version` and, unless the metrics have their own
/// listener, `/metrics`, all observed by the metrics and logging layer.
pub fn router(state: ServerState) -> Router {
    let prefix = state.prefix().to_owned();
    let config = state.config().clone();
    let twirp = Router::new()
        .route(
            &format!("{prefix}/trivy.cache.v1.Cache/PutArtifact"),
            any(put_artifact),
        )
        .route(
            &format!("{prefix}/trivy.cache.v1.Cache/PutBlob"),
            any(put_blob),
        )
        .route(
            &format!("{prefix}/trivy.cache.v1.Cache/MissingBlobs"),
            any(missing_blobs),
        )
        .route(
            &format!("{prefix}/trivy.cache.v1.Cache/DeleteBlobs"),
            any(delete_blobs),
        )
        .route(
            &format!("{prefix}/trivy.scanner.v1.Scanner/Scan"),
            any(scan::scan),
        )
        .merge(native_routes(&state))
        .fallback(bad_route)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    layers::require_token,
                ))
                .layer(middleware::from_fn_with_state(
                    config.max_request_size,
                    layers::limit_body,
                ))
                .layer(middleware::from_fn_with_state(
                    config.request_timeout,
                    layers::deadline,
                ))
                .layer(middleware::from_fn_with_state(
                    Arc::new(tokio::sync::Semaphore::new(
                        config.max_concurrent_requests.max(1),
                    )),
                    layers::bound_concurrency,
                )),
        );
    let mut plain = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version));
    if config.serve_metrics {
        plain = plain.route("/metrics", get(metrics));
    }
    plain
        .merge(twirp)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            layers::observe,
        ))
        .with_state(state)
}

/// The routes of scancache's own service (module `native`); the admin RPCs behind the
/// admin token.
fn native_routes(state: &ServerState) -> Router<ServerState> {
    let path = |method: &str| format!("{}/{}/{method}", state.prefix(), native::SERVICE);
    let admin = Router::new()
        .route(&path("Write"), any(native::write))
        .route(&path("Delete"), any(native::delete))
        .route(&path("Export"), any(native::export))
        .route(&path("Clear"), any(native::clear))
        .route(&path("Gc"), any(native::gc))
        .route(&path("Compact"), any(native::compact))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            layers::require_admin,
        ));
    Router::new()
        .route(&path("Missing"), any(native::missing))
        .route(&path("Read"), any(native::read))
        .route(&path("PutValues"), any(native::put_values))
        .route(&path("List"), any(native::list))
        .route(&path("Stats"), any(native::stats))
        .route(&path("Claim"), any(native::claim))
        .route(&path("Renew"), any(native::renew))
        .route(&path("Release"), any(native::release))
        .route(&path("AwaitRelease"), any(native::await_release))
        .merge(admin)
}

/// `GET /metrics` alone, for a separate metrics listener.
pub fn metrics_router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn bad_route(req: axum::extract::Request) -> TwirpError {
    TwirpError::bad_route(
        format!("no handler for path {:?}", req.uri().path()),
        req.method().as_str(),
        req.uri().path(),
    )
}

/// Parses a blob ID; `field` names the request field in the error.
pub(crate) fn blob_id(s: &str, field: &str) -> Result<BlobId, TwirpError> {
    s.parse().map_err(|e: cache_core::Error| {
        TwirpError::new(Code::InvalidArgument, format!("{field}: {e}"))
    })
}

/// Parses an artifact ID.
pub(crate) fn artifact_id(s: &str, field: &str) -> Result<ArtifactId, TwirpError> {
    s.parse().map_err(|e: cache_core::Error| {
        TwirpError::new(Code::InvalidArgument, format!("{field}: {e}"))
    })
}

/// Parses a list of blob IDs.
pub(crate) fn blob_ids(ids: &[String], field: &str) -> Result<Vec<BlobId>, TwirpError> {
    ids.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse().map_err(|e: cache_core::Error| {
                TwirpError::new(Code::InvalidArgument, format!("{field}[{i}]: {e}"))
            })
        })
        .collect()
}

async fn put_artifact(
    State(s): State<ServerState>,
    req: TwirpRequest<PutArtifactRequest>,
) -> Result<Response, TwirpError> {
    let id = artifact_id(&req.message.artifact_id, "artifact_id")?;
    let info = req
        .message
        .artifact_info
        .ok_or_else(|| TwirpError::new(Code::InvalidArgument, "artifact_info is required"))?;
    let doc = cache_core::ArtifactInfo::from(info);
    s.store(EntryKey::artifact(&id), codec::encode(&doc))
        .await?;
    Ok(reply(req.codec, &Empty {}))
}

async fn put_blob(
    State(s): State<ServerState>,
    req: RawTwirpRequest,
) -> Result<Response, TwirpError> {
    // Protobuf requests of the usual shape are written straight into the document; the
    // others are decoded and converted (both store the same bytes, module `transcode`).
    let fast = match req.codec {
        Codec::Protobuf => transcode::put_blob_request(&req.body),
        Codec::Json => None,
    };
    let (id, document) = match fast {
        Some(blob) => (blob_id(blob.diff_id, "diff_id")?, blob.document),
        None => {
            let req = req.decode::<PutBlobRequest>()?;
            let id = blob_id(&req.message.diff_id, "diff_id")?;
            let info = req
                .message
                .blob_info
                .ok_or_else(|| TwirpError::new(Code::InvalidArgument, "blob_info is required"))?;
            (id, codec::encode(&cache_core::BlobInfo::from(info)))
        }
    };
    s.store(EntryKey::blob(&id), document).await?;
    s.inner.claims.stored(s.cache().as_ref(), &id).await;
    s.metrics().put_blob(req.body.len());
    Ok(reply(req.codec, &Empty {}))
}

async fn missing_blobs(
    State(s): State<ServerState>,
    hold: Option<Extension<Hold>>,
    req: TwirpRequest<MissingBlobsRequest>,
) -> Result<Response, TwirpError> {
    let artifact = artifact_id(&req.message.artifact_id, "artifact_id")?;
    let blobs = blob_ids(&req.message.blob_ids, "blob_ids")?;
    let mut missing = s
        .cache()
        .missing_blobs(&artifact, &blobs)
        .await
        .map_err(|e| s.backend_error(e))?;
    if let Some(lease) = s.config().lease {
        let step_out = || {
            if let Some(Extension(hold)) = &hold {
                hold.step_out();
            }
        };
        missing.blobs = s
            .inner
            .claims
            .missing(
                s.cache().as_ref(),
                &artifact,
                lease,
                missing.blobs,
                s.metrics(),
                step_out,
            )
            .await
            .map_err(|e| s.backend_error(e))?;
    }
    s.metrics().missing_blobs(blobs.len(), missing.blobs.len());
    let answer = MissingBlobsResponse {
        missing_artifact: missing.artifact,
        missing_blob_ids: missing.blobs.iter().map(|b| b.to_string()).collect(),
    };
    Ok(reply(req.codec, &answer))
}

async fn delete_blobs(
    State(s): State<ServerState>,
    req: TwirpRequest<DeleteBlobsRequest>,
) -> Result<Response, TwirpError> {
    let blobs = blob_ids(&req.message.blob_ids, "blob_ids")?;
    s.cache()
        .delete_blobs(&blobs)
        .await
        .map_err(|e| s.backend_error(e))?;
    Ok(reply(req.codec, &Empty {}))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<ServerState>) -> Response {
    match s.readiness().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")).into_response(),
    }
}

async fn version(State(s): State<ServerState>) -> Response {
    let doc = serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Server": "scancache",
        "Backend": s.cache().backend_name(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{doc}\n"),
    )
        .into_response()
}

async fn metrics(State(s): State<ServerState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics().encode(),
    )
        .into_response()
}
