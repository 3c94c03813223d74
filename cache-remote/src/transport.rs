//! The HTTP transport every client of this crate shares: one pooled hyper client per
//! process (per CA), keep-alive, timeouts, the retry policy ([`retry_delay`]) and the
//! classification of failures into cache-core's errors ([`Failure::into_error`]).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use cache_core::{Error, Result, Setting};
use cache_server::twirp::{Code, TwirpError};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use crate::config::RemoteConfig;

/// The largest answer accepted: a read of every layer of a large image fits many times.
pub const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// The largest error body read (the rest is ignored).
const MAX_ERROR_BODY: usize = 64 << 10;

/// Idle connections are kept this long for the next call.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// At most this many idle connections per server are kept.
const POOL_MAX_IDLE_PER_HOST: usize = 64;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled HTTP client. Cheap to clone; clones share the pool.
#[derive(Clone, Debug)]
pub struct Transport {
    client: HttpClient,
}

/// What identifies a pool: the trust roots and the connect timeout.
type PoolKey = (Option<PathBuf>, Duration);

/// Every pool of this process: one per CA setting, so every cache and client made with
/// the same settings shares connections.
static POOLS: OnceLock<Mutex<Vec<(PoolKey, Transport)>>> = OnceLock::new();

impl Transport {
    /// The process's transport for these settings, made on first use: the CA file is
    /// read then (an unreadable or invalid one is an error naming it).
    pub fn shared(config: &RemoteConfig) -> Result<Transport> {
        let key: PoolKey = (config.ca.clone(), config.connect_timeout);
        let pools = POOLS.get_or_init(Default::default);
        let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, t)) = pools.iter().find(|(k, _)| *k == key) {
            return Ok(t.clone());
        }
        let transport = Transport::new(config.ca.as_deref(), config.connect_timeout)?;
        pools.push((key, transport.clone()));
        Ok(transport)
    }

    fn new(ca: Option<&Path>, connect_timeout: Duration) -> Result<Transport> {
        let roots = match ca {
            Some(path) => load_ca(path)?,
            None => system_roots(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config {
                setting: Setting::TlsCa,
                reason: format!("cannot set up TLS: {e}"),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .build(https);
        Ok(Transport { client })
    }

    /// POSTs `body` to `uri` and returns the answer's body, retrying per [`retry_delay`];
    /// each attempt must finish within `timeout`.
    pub async fn unary(&self, call: &Call<'_>) -> std::result::Result<Bytes, Failure> {
        self.with_retries(call, |resp| async move {
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Failure::Invalid(format!(
                            "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                        ))
                    } else {
                        Failure::Broken(chain(&*e))
                    }
                })?;
            Ok(body.to_bytes())
        })
        .await
    }

    /// POSTs `body` to `uri` and returns the answer's body as it arrives, for streamed
    /// answers; the request (not the reading) is retried per [`retry_delay`].
    pub async fn streamed(&self, call: &Call<'_>) -> std::result::Result<Incoming, Failure> {
        self.with_retries(call, |resp| async move { Ok(resp.into_body()) })
            .await
    }

    async fn with_retries<T, F, Fut>(
        &self,
        call: &Call<'_>,
        take: F,
    ) -> std::result::Result<T, Failure>
    where
        F: Fn(hyper::Response<Incoming>) -> Fut,
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        let mut attempt = 0;
        loop {
            let once = async {
                let resp = self.send(call).await?;
                if resp.status() == StatusCode::OK {
                    take(resp).await
                } else {
                    Err(status_failure(resp).await)
                }
            };
            let outcome = tokio::time::timeout(call.timeout, once)
                .await
                .unwrap_or(Err(Failure::Timeout(call.timeout)));
            match outcome {
                Ok(v) => return Ok(v),
                Err(failure) => {
                    attempt += 1;
                    match retry_delay(attempt, &failure) {
                        Some(delay) => {
                            tracing::debug!(
                                "{}: {failure}; retrying in {} ms",
                                call.what,
                                delay.as_millis()
                            );
                            tokio::time::sleep(delay).await;
                        }
                        None => return Err(failure),
                    }
                }
            }
        }
    }

    async fn send(
        &self,
        call: &Call<'_>,
    ) -> std::result::Result<hyper::Response<Incoming>, Failure> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(call.uri)
            .header(header::CONTENT_TYPE, "application/protobuf")
            .header(
                header::USER_AGENT,
                concat!("scancache/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in call.headers {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(call.body.clone()))
            .map_err(|e| Failure::Invalid(format!("cannot make the request: {e}")))?;
        self.client.request(req).await.map_err(|e| {
            let detail = chain(&e);
            if has_tls_error(&e) {
                Failure::Tls(detail)
            } else if e.is_connect() {
                Failure::Connect(detail)
            } else {
                Failure::Broken(detail)
            }
        })
    }
}

/// One call: where, what for (in messages), headers, body and time allowed.
#[derive(Debug)]
pub struct Call<'a> {
    /// The full URL.
    pub uri: &'a str,
    /// The RPC, for messages: `Read`, `PutBlob`, ….
    pub what: &'a str,
    /// Extra headers (tokens).
    pub headers: &'a [(HeaderName, HeaderValue)],
    /// The encoded request.
    pub body: Bytes,
    /// Time allowed per attempt.
    pub timeout: Duration,
}

/// Why a call failed, before it is classified into an [`Error`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: refused, unreachable, name not resolved, timed out.
    Connect(String),
    /// The connection broke before the whole answer arrived.
    Broken(String),
    /// The TLS handshake failed: the server's certificate is not trusted, or the server
    /// does not speak TLS.
    Tls(String),
    /// No answer within the time allowed.
    Timeout(Duration),
    /// An error status, with the Twirp error of its body when it has one.
    Status {
        /// The HTTP status.
        status: u16,
        /// The Twirp code, when the body is a Twirp error.
        code: Option<Code>,
        /// The Twirp message, or the start of the body.
        msg: String,
    },
    /// The server refused a document over its size cap (an `invalid_argument` answer
    /// naming the document); the other documents of the call were stored.
    TooLarge {
        /// Its kind.
        kind: cache_core::EntryKind,
        /// Its ID.
        id: String,
        /// Its size in bytes.
        size: u64,
        /// The server's cap in bytes.
        limit: u64,
    },
    /// An answer that is not what the call expects.
    Invalid(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::Broken(e) => write!(f, "the connection broke: {e}"),
            Failure::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Failure::Timeout(d) => write!(f, "no answer within {:.1} s", d.as_secs_f64()),
            Failure::Status { status, code, msg } => match code {
                Some(code) => write!(f, "{status} {code}: {msg}"),
                None => write!(f, "HTTP status {status}: {msg}"),
            },
            Failure::TooLarge {
                kind,
                id,
                size,
                limit,
            } => write!(
                f,
                "the server refused the {kind} {id}: {size} bytes, over its cap of {limit}"
            ),
            Failure::Invalid(e) => write!(f, "invalid answer: {e}"),
        }
    }
}

impl Failure {
    /// True for the failures worth trying again: no connection, a broken one, a 503.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Connect(_) | Failure::Broken(_) => true,
            Failure::Status { status, .. } => *status == 503,
            _ => false,
        }
    }

    /// The failure as cache-core's error, for the server at `backend` (masked) and the
    /// call `what`: unreachable, broken, timed out and 503 are [`Error::Unavailable`] (an
    /// outage); a refused token or certificate is [`Error::Denied`] and a route the server
    /// does not have is [`Error::Config`] (misconfigurations); anything else is
    /// [`Error::Backend`]; a document over the server's size cap is
    /// [`Error::DocumentTooLarge`], as the server's backend reported it.
    pub fn into_error(self, backend: &str, what: &str) -> Error {
        let unavailable = |reason: String| Error::Unavailable {
            backend: backend.to_owned(),
            reason,
        };
        match self {
            Failure::TooLarge {
                kind,
                id,
                size,
                limit,
            } => Error::DocumentTooLarge {
                kind,
                id,
                size,
                limit,
            },
            f @ Failure::Connect(_) => unavailable(format!(
                "{what}: {f} (is the server running at this address and port?)"
            )),
            f @ (Failure::Broken(_) | Failure::Timeout(_)) => unavailable(format!("{what}: {f}")),
            Failure::Tls(e) => Error::Denied {
                backend: backend.to_owned(),
                reason: format!(
                    "TLS handshake failed: {e} (is the server's certificate signed by the CA \
                     given, and does the server speak TLS on this port?)"
                ),
            },
            Failure::Status {
                status: 401 | 403,
                code,
                msg,
            } => Error::Denied {
                backend: backend.to_owned(),
                reason: format!("{what}: {}: {msg}", code.map_or("refused", Code::as_str)),
            },
            Failure::Status {
                status: 404,
                code: code @ (Some(Code::BadRoute) | None),
                msg,
            } => Error::Config {
                setting: Setting::Backend,
                reason: format!(
                    "{backend} has no {what} route ({}: {msg}): is this the address of a \
                     server of this kind, with the right path prefix?",
                    code.map_or("404", Code::as_str)
                ),
            },
            f @ Failure::Status {
                status: 408 | 429 | 502 | 503 | 504,
                ..
            } => unavailable(format!("{what}: {f}")),
            f @ (Failure::Status { .. } | Failure::Invalid(_)) => Error::Backend {
                backend: backend.to_owned(),
                message: format!("{what}: {f}"),
            },
        }
    }
}

/// The retry policy of every call, in one place: after the `attempt`-th failure of a
/// call (1 for the first), how long to wait before trying again, or `None` to give up.
///
/// Only transient failures are retried ([`Failure::is_transient`]: no connection, a
/// connection that broke before the answer, a 503): up to 4 times, after 100, 200, 400
/// and 800 ms (each ±20 %, so clients that failed together do not retry together), about
/// 1.5 s in all. Every RPC of both protocols is idempotent (puts overwrite, deletes
/// ignore what is gone), so a call that may have reached the server is safe to repeat.
/// Any other failure — a refused token, a bad request, a timeout — is final at once.
pub fn retry_delay(attempt: u32, failure: &Failure) -> Option<Duration> {
    const RETRIES: u32 = 4;
    const FIRST: Duration = Duration::from_millis(100);
    if attempt == 0 || attempt > RETRIES || !failure.is_transient() {
        return None;
    }
    let base = FIRST * 2u32.pow(attempt - 1);
    // ±20 % from the clock's nanoseconds: no randomness source needed for spreading.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let permille = 800 + u64::from(nanos % 401);
    Some(base * u32::try_from(permille).unwrap_or(1000) / 1000)
}

/// The failure of an answer with an error status.
async fn status_failure(resp: hyper::Response<Incoming>) -> Failure {
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match TwirpError::from_body(&body) {
        Some(e) if e.code == Code::InvalidArgument => {
            match cache_server::convert::scancache::too_large(&e.meta) {
                Some(Error::DocumentTooLarge {
                    kind,
                    id,
                    size,
                    limit,
                }) => Failure::TooLarge {
                    kind,
                    id,
                    size,
                    limit,
                },
                _ => Failure::Status {
                    status,
                    code: Some(e.code),
                    msg: e.msg,
                },
            }
        }
        Some(e) => Failure::Status {
            status,
            code: Some(e.code),
            msg: e.msg,
        },
        None => {
            let text = String::from_utf8_lossy(&body);
            let mut msg: String = text.trim().chars().take(200).collect();
            if msg.is_empty() {
                msg = "no error body".into();
            }
            Failure::Status {
                status,
                code: None,
                msg,
            }
        }
    }
}

/// An error and its causes on one line, each cause once.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = match err.downcast_ref::<std::io::Error>() {
            // An io::Error's `source` skips the error it wraps; `get_ref` is that error.
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => err.source(),
        };
    }
    parts.join(": ")
}

/// Whether a client error comes from the TLS handshake.
fn has_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.is::<rustls::Error>() {
            return true;
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => err.source(),
        };
    }
    false
}

/// The certificates of a CA file, as the only roots.
fn load_ca(path: &Path) -> Result<rustls::RootCertStore> {
    let invalid = |reason: String| Error::Config {
        setting: Setting::TlsCa,
        reason,
    };
    let pem =
        std::fs::read(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| invalid(format!("{} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            invalid(format!(
                "{} holds a certificate that is not a valid CA: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// The operating system's trust roots (none when it has none: then an https server
/// needs a CA file).
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::debug!("no system TLS roots found");
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried_and_within_a_bound() {
        let refused = Failure::Connect("connection refused".into());
        let mut total = Duration::ZERO;
        for attempt in 1..=4 {
            let d = retry_delay(attempt, &refused).expect("retried");
            let base = Duration::from_millis(100 * 2u64.pow(attempt - 1));
            assert!(d >= base * 4 / 5 && d <= base * 6 / 5, "{attempt}: {d:?}");
            total += d;
        }
        assert!(total <= Duration::from_millis(1800), "{total:?}");
        assert_eq!(retry_delay(5, &refused), None);
        let unavailable = Failure::Status {
            status: 503,
            code: Some(Code::Unavailable),
            msg: "redis down".into(),
        };
        assert!(retry_delay(1, &unavailable).is_some());
        assert!(retry_delay(1, &Failure::Broken("reset".into())).is_some());
        for final_ in [
            Failure::Status {
                status: 401,
                code: Some(Code::Unauthenticated),
                msg: "invalid token".into(),
            },
            Failure::Status {
                status: 500,
                code: Some(Code::Internal),
                msg: "x".into(),
            },
            Failure::Status {
                status: 502,
                code: None,
                msg: "bad gateway".into(),
            },
            Failure::Timeout(Duration::from_secs(1)),
            Failure::Tls("UnknownIssuer".into()),
            Failure::Invalid("x".into()),
        ] {
            assert_eq!(retry_delay(1, &final_), None, "{final_}");
        }
    }

    #[test]
    fn failures_are_classified_by_kind() {
        let b = "http://h:1";
        let err = |f: Failure| f.into_error(b, "Read");
        assert!(err(Failure::Connect("refused".into())).is_unavailable());
        assert!(err(Failure::Broken("reset".into())).is_outage());
        assert!(err(Failure::Timeout(Duration::from_secs(1))).is_unavailable());
        assert!(err(Failure::Tls("UnknownIssuer".into())).is_denied());
        let status = |status, code| Failure::Status {
            status,
            code,
            msg: "m".into(),
        };
        assert!(err(status(401, Some(Code::Unauthenticated))).is_denied());
        assert!(err(status(403, Some(Code::PermissionDenied))).is_denied());
        assert!(err(status(503, Some(Code::Unavailable))).is_unavailable());
        let e = err(status(404, Some(Code::BadRoute)));
        assert!(e.config_parts().is_some() && !e.is_outage(), "{e}");
        let e = err(status(500, Some(Code::Internal)));
        assert!(matches!(e, Error::Backend { .. }) && e.is_outage(), "{e}");
        assert!(err(status(404, Some(Code::NotFound))).is_outage());
    }
}
