//! [`Config`]: what the service is configured with, besides its cache.

use std::{fmt, time::Duration};

use axum::http::HeaderName;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The reference server's port.
pub const DEFAULT_PORT: u16 = 4954;

/// The default path prefix of the Twirp routes.
pub const DEFAULT_PATH_PREFIX: &str = "/twirp";

/// The reference client's token header.
pub const DEFAULT_TOKEN_HEADER: &str = "Trivy-Token";

/// The header that carries the admin token of the scancache service's admin RPCs.
pub const ADMIN_TOKEN_HEADER: &str = "Scancache-Admin-Token";

/// The default request body cap: 64 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 64 << 20;

/// The default time a request may take, queueing included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The default number of requests served at once (the rest wait).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;

/// The default longest wait of one `AwaitRelease` request: 20 s. A client that waits
/// longer asks again, so no request is held longer than this, and none outlives the
/// idle timeouts of the proxies commonly put in front of a server.
pub const DEFAULT_MAX_AWAIT: Duration = Duration::from_secs(20);

/// The service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Prefix of the Twirp routes, `/twirp` by default; `""` for none.
    pub path_prefix: String,
    /// The shared secret every Twirp request must carry; `None` accepts anyone.
    pub token: Option<Token>,
    /// The header that carries the token.
    pub token_header: HeaderName,
    /// The secret the admin RPCs of the scancache service (those that change or dump the
    /// cache) must carry in [`ADMIN_TOKEN_HEADER`], besides the token; `None` refuses
    /// them all.
    pub admin_token: Option<Token>,
    /// Largest request body, compressed as sent and decompressed.
    pub max_request_size: usize,
    /// Longest time a Twirp request may take (waiting for a slot included).
    pub request_timeout: Duration,
    /// Twirp requests served at once; more wait for a slot.
    pub max_concurrent_requests: usize,
    /// Serve `GET /metrics` on the service's own router (off when the metrics have
    /// their own listener).
    pub serve_metrics: bool,
    /// The fixed lease of the claims `MissingBlobs` takes for its callers, which cannot
    /// renew (docs/single-flight.md); `None` takes no claims, for them or for the remote
    /// backends' `Claim` (which then grants every key with a claim that holds nothing).
    pub lease: Option<Duration>,
    /// The longest one `AwaitRelease` request waits, whatever its timeout asks (the
    /// client asks again if it waits longer). Such a request is held outside the
    /// concurrency bound and the request timeout, so this is what bounds it.
    pub max_await: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path_prefix: DEFAULT_PATH_PREFIX.into(),
            token: None,
            token_header: HeaderName::from_static("trivy-token"),
            admin_token: None,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            serve_metrics: true,
            lease: Some(cache_core::DEFAULT_LEASE),
            max_await: DEFAULT_MAX_AWAIT,
        }
    }
}

impl Config {
    /// The path prefix as routes use it: `""` or `/x` (no trailing slash).
    pub fn normalized_prefix(&self) -> String {
        normalize_prefix(&self.path_prefix)
    }
}

/// `twirp`, `/twirp/` and `/twirp` all become `/twirp`; `""` and `/` become `""`.
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// A shared secret. Its `Debug` form hides it, and comparing is constant-time.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl Token {
    /// A token from its text.
    pub fn new(secret: impl Into<String>) -> Token {
        Token(secret.into().into_bytes())
    }

    /// The secret, for a client that sends it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// True when `given` is this token. The SHA-256 digests of both are compared in
    /// constant time, so neither the content nor the length leaks through timing.
    pub fn matches(&self, given: &[u8]) -> bool {
        let a = Sha256::digest(&self.0);
        let b = Sha256::digest(given);
        a.as_slice().ct_eq(b.as_slice()).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_and_hide() {
        let t = Token::new("s3cret");
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cre"));
        assert!(!t.matches(b""));
        assert_eq!(format!("{t:?}"), "Token(<hidden>)");
    }

    #[test]
    fn prefixes() {
        for (given, want) in [
            ("/twirp", "/twirp"),
            ("twirp/", "/twirp"),
            ("/", ""),
            ("", ""),
            ("/a/b/", "/a/b"),
        ] {
            assert_eq!(normalize_prefix(given), want);
        }
    }
}
