//! The Twirp (v8) wire protocol: error codes and their HTTP statuses, error bodies,
//! and the request/response codecs (binary protobuf and JSON).
//!
//! A request is `POST {prefix}/{package}.{Service}/{Method}` with `Content-Type:
//! application/protobuf` or `application/json` (parameters after `;` ignored); the
//! answer uses the same codec. Errors are always JSON: `{"code","msg"}` plus `"meta"`
//! when there is any, with the status of the code.

use std::fmt;

use axum::{
    body::Body,
    extract::{FromRequest, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::proto::Json;

/// A Twirp error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The operation was cancelled.
    Canceled,
    /// An unknown error.
    Unknown,
    /// The client sent an invalid argument (an ID, a missing field, an oversize body).
    InvalidArgument,
    /// The request body could not be decoded.
    Malformed,
    /// The operation took too long.
    DeadlineExceeded,
    /// Not found.
    NotFound,
    /// No such route, method or content type.
    BadRoute,
    /// Already exists.
    AlreadyExists,
    /// Not allowed.
    PermissionDenied,
    /// No valid token.
    Unauthenticated,
    /// Out of a resource.
    ResourceExhausted,
    /// The system is not in a state for the operation (e.g. the `vuln` scanner here).
    FailedPrecondition,
    /// Aborted.
    Aborted,
    /// Out of range.
    OutOfRange,
    /// Not implemented.
    Unimplemented,
    /// An internal error (a failed backend operation, a corrupt entry).
    Internal,
    /// The backend is unavailable; the reference client retries only this code.
    Unavailable,
    /// Unrecoverable data loss.
    DataLoss,
}

impl Code {
    /// The code as it appears in error bodies, e.g. `bad_route`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::Malformed => "malformed",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::BadRoute => "bad_route",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::Unauthenticated => "unauthenticated",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "dataloss",
        }
    }

    /// The HTTP status Twirp maps the code to.
    pub fn status(self) -> StatusCode {
        match self {
            Code::Canceled | Code::DeadlineExceeded => StatusCode::REQUEST_TIMEOUT,
            Code::InvalidArgument | Code::Malformed | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound | Code::BadRoute => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every code, for tests and documentation.
    pub const ALL: [Code; 18] = [
        Code::Canceled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::Malformed,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::BadRoute,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::Unauthenticated,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
    ];

    /// The code of an error body's `code` string.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Twirp error: what the client gets as a JSON body with the code's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwirpError {
    /// The code.
    pub code: Code,
    /// The message.
    pub msg: String,
    /// Extra string pairs (`meta`).
    pub meta: Vec<(String, String)>,
}

impl TwirpError {
    /// An error with a code and a message.
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        TwirpError {
            code,
            msg: msg.into(),
            meta: Vec::new(),
        }
    }

    /// Adds a `meta` pair.
    pub fn with_meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.meta.push((key.to_owned(), value.into()));
        self
    }

    /// `bad_route` for a request that names no method of this server.
    pub fn bad_route(msg: impl Into<String>, method: &str, path: &str) -> Self {
        TwirpError::new(Code::BadRoute, msg)
            .with_meta("twirp_invalid_route", format!("{method} {path}"))
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("code".into(), Value::String(self.code.as_str().into()));
        obj.insert("msg".into(), Value::String(self.msg.clone()));
        if !self.meta.is_empty() {
            let meta = self
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            obj.insert("meta".into(), Value::Object(meta));
        }
        Value::Object(obj)
    }

    /// Reads an error body (`None` when it is not one).
    pub fn from_body(body: &[u8]) -> Option<TwirpError> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let code = Code::parse(v.get("code")?.as_str()?)?;
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or_default();
        let mut err = TwirpError::new(code, msg);
        if let Some(Value::Object(meta)) = v.get("meta") {
            for (k, v) in meta {
                err = err.with_meta(k, v.as_str().unwrap_or_default());
            }
        }
        Some(err)
    }
}

impl fmt::Display for TwirpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.msg)
    }
}

impl std::error::Error for TwirpError {}

/// Set on every Twirp error response, for the logging and metrics layers.
#[derive(Clone, Debug)]
pub struct ErrorInfo(pub TwirpError);

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (self.code.status(), body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.extensions_mut().insert(ErrorInfo(self));
        resp
    }
}

/// The body encoding of a request and its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// `application/protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Codec {
    /// The codec a `Content-Type` names, if any (case-insensitive, parameters ignored).
    pub fn from_content_type(value: &str) -> Option<Codec> {
        let mime = value.split(';').next().unwrap_or_default().trim();
        if mime.eq_ignore_ascii_case("application/protobuf") {
            Some(Codec::Protobuf)
        } else if mime.eq_ignore_ascii_case("application/json") {
            Some(Codec::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of an answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Protobuf => "application/protobuf",
            Codec::Json => "application/json",
        }
    }

    /// Decodes a message.
    pub fn decode<M: prost::Message + Default + Json>(self, body: &[u8]) -> Result<M, TwirpError> {
        match self {
            Codec::Protobuf => M::decode(body).map_err(|e| {
                TwirpError::new(
                    Code::Malformed,
                    format!("the protobuf request could not be decoded: {e}"),
                )
            }),
            Codec::Json => {
                let value: Value = serde_json::from_slice(body).map_err(|e| {
                    TwirpError::new(
                        Code::Malformed,
                        format!("the json request could not be decoded: {e}"),
                    )
                })?;
                if !value.is_object() {
                    return Err(TwirpError::new(
                        Code::Malformed,
                        "the json request could not be decoded: expected an object",
                    ));
                }
                M::from_json(&value).map_err(|e| {
                    TwirpError::new(
                        Code::Malformed,
                        format!("the json request could not be decoded: {e}"),
                    )
                })
            }
        }
    }

    /// Encodes a message.
    pub fn encode<M: prost::Message + Json>(self, msg: &M) -> Vec<u8> {
        match self {
            Codec::Protobuf => msg.encode_to_vec(),
            Codec::Json => serde_json::to_vec(&msg.to_json()).unwrap_or_default(),
        }
    }
}

/// The largest request body accepted, decompressed as read; set by the body-limit layer.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A decoded Twirp request: the message and the codec its answer must use.
#[derive(Debug)]
pub struct TwirpRequest<M> {
    /// The message.
    pub message: M,
    /// The request's codec.
    pub codec: Codec,
    /// Size of the (decompressed) body in bytes.
    pub body_bytes: usize,
}

impl<M: prost::Message + Json> TwirpRequest<M> {
    /// The answer in the request's codec.
    pub fn reply<R: prost::Message + Json>(&self, message: &R) -> Response {
        reply(self.codec, message)
    }
}

/// An answer in `codec`.
pub fn reply<R: prost::Message + Json>(codec: Codec, message: &R) -> Response {
    let body = codec.encode(message);
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.content_type()),
    );
    resp
}

/// A Twirp request read but not decoded: the (decompressed) body and its codec, for a
/// handler that reads the body itself (`PutBlob`'s fast path).
#[derive(Debug)]
pub struct RawTwirpRequest {
    /// The body, decompressed.
    pub body: Bytes,
    /// The request's codec.
    pub codec: Codec,
}

impl RawTwirpRequest {
    /// Decodes the body as `M`.
    pub fn decode<M: prost::Message + Default + Json>(
        &self,
    ) -> Result<TwirpRequest<M>, TwirpError> {
        Ok(TwirpRequest {
            message: self.codec.decode(&self.body)?,
            codec: self.codec,
            body_bytes: self.body.len(),
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for RawTwirpRequest {
    type Rejection = TwirpError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, TwirpError> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        if method != axum::http::Method::POST {
            return Err(TwirpError::bad_route(
                format!("unsupported method {method} (only POST is allowed)"),
                method.as_str(),
                &path,
            ));
        }
        let codec = content_type(req.headers())
            .and_then(Codec::from_content_type)
            .ok_or_else(|| {
                let given = content_type(req.headers()).unwrap_or_default();
                TwirpError::bad_route(
                    format!("unexpected Content-Type: {given:?}"),
                    method.as_str(),
                    &path,
                )
            })?;
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let encoding = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
        let raw = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map_err(|e| read_error(&e, limit))?;
        let body = decompress(raw, encoding.as_deref(), limit)?;
        Ok(RawTwirpRequest { body, codec })
    }
}

impl<S, M> FromRequest<S> for TwirpRequest<M>
where
    S: Send + Sync,
    M: prost::Message + Default + Json,
{
    type Rejection = TwirpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, TwirpError> {
        RawTwirpRequest::from_request(req, state).await?.decode()
    }
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// The error of a body that could not be read: too large, or cut off.
fn read_error(e: &axum::Error, limit: usize) -> TwirpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return too_large(limit);
        }
        source = s.source();
    }
    TwirpError::new(
        Code::Malformed,
        format!("the request body could not be read: {e}"),
    )
}

/// `invalid_argument` for a body over the limit.
pub fn too_large(limit: usize) -> TwirpError {
    TwirpError::new(
        Code::InvalidArgument,
        format!("the request body is larger than the limit of {limit} bytes (--max-request-size)"),
    )
}

/// The body decompressed per `Content-Encoding` (identity or gzip), at most `limit`
/// bytes.
fn decompress(raw: Bytes, encoding: Option<&str>, limit: usize) -> Result<Bytes, TwirpError> {
    match encoding {
        None | Some("identity") | Some("") => Ok(raw),
        Some("gzip") => {
            use std::io::Read;
            let mut out = Vec::new();
            let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
            flate2::read::GzDecoder::new(&raw[..])
                .take(cap)
                .read_to_end(&mut out)
                .map_err(|e| {
                    TwirpError::new(
                        Code::Malformed,
                        format!("the gzip request body could not be decompressed: {e}"),
                    )
                })?;
            if out.len() > limit {
                return Err(too_large(limit));
            }
            Ok(Bytes::from(out))
        }
        Some(other) => Err(TwirpError::new(
            Code::Malformed,
            format!("unsupported Content-Encoding {other:?} (only gzip is)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_twirp_statuses() {
        let want = [
            ("canceled", 408),
            ("unknown", 500),
            ("invalid_argument", 400),
            ("malformed", 400),
            ("deadline_exceeded", 408),
            ("not_found", 404),
            ("bad_route", 404),
            ("already_exists", 409),
            ("permission_denied", 403),
            ("unauthenticated", 401),
            ("resource_exhausted", 429),
            ("failed_precondition", 412),
            ("aborted", 409),
            ("out_of_range", 400),
            ("unimplemented", 501),
            ("internal", 500),
            ("unavailable", 503),
            ("dataloss", 500),
        ];
        for (code, (name, status)) in Code::ALL.into_iter().zip(want) {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.status().as_u16(), status, "{name}");
            assert_eq!(Code::parse(name), Some(code));
        }
    }

    #[test]
    fn error_bodies_round_trip() {
        let e = TwirpError::bad_route("no such method", "GET", "/twirp/x");
        let body = serde_json::to_vec(&e.body()).unwrap();
        assert_eq!(TwirpError::from_body(&body), Some(e));
        let plain = TwirpError::new(Code::Internal, "x").body();
        assert!(plain.get("meta").is_none(), "{plain}");
    }

    #[test]
    fn content_types() {
        for (ct, want) in [
            ("application/protobuf", Some(Codec::Protobuf)),
            ("Application/JSON; charset=utf-8", Some(Codec::Json)),
            ("application/x-protobuf", None),
            ("text/plain", None),
            ("", None),
        ] {
            assert_eq!(Codec::from_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn gzip_bodies_are_capped_after_decompression() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'a'; 10_000]).unwrap();
        let small = Bytes::from(gz.finish().unwrap());
        assert!(small.len() < 200);
        assert_eq!(
            decompress(small.clone(), Some("gzip"), 10_000)
                .unwrap()
                .len(),
            10_000
        );
        assert_eq!(
            decompress(small, Some("gzip"), 9_999).unwrap_err().code,
            Code::InvalidArgument
        );
        let err = decompress(Bytes::from_static(b"nope"), Some("gzip"), 100).unwrap_err();
        assert_eq!(err.code, Code::Malformed);
        let err = decompress(Bytes::from_static(b"x"), Some("br"), 100).unwrap_err();
        assert_eq!(err.code, Code::Malformed);
    }
}
