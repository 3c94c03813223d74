//! [`RemoteConfig`]: the address of a server and how to talk to it; [`Endpoint`], the
//! address checked once.

use std::{fmt, path::PathBuf, time::Duration};

use cache_core::{Error, Result, Setting, mask_url};

/// The reference's default Twirp prefix, used when the URL names no path.
pub const DEFAULT_PREFIX: &str = "/twirp";

/// The header that carries the token unless told otherwise (the reference client's).
pub const DEFAULT_TOKEN_HEADER: &str = "Trivy-Token";

/// How long making a connection (TCP and TLS) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one call may take, from sending the request to the last byte of the answer
/// (for a streamed answer: the wait for each part).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A server's address and the secrets and settings of talking to it.
///
/// Its `Debug` form hides the tokens.
#[derive(Clone)]
pub struct RemoteConfig {
    /// `http://host[:port][/prefix]` or `https://…`; without a path the prefix is
    /// `/twirp`, the reference's (and `scancache server`'s) default.
    pub url: String,
    /// The server's shared secret, sent on every call in [`RemoteConfig::token_header`].
    pub token: Option<String>,
    /// The header that carries the token.
    pub token_header: String,
    /// The admin secret, sent (in `Scancache-Admin-Token`) only on calls that change or
    /// dump the cache.
    pub admin_token: Option<String>,
    /// CA certificates (PEM) that verify an `https` server instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// How long making a connection may take.
    pub connect_timeout: Duration,
    /// How long one call may take.
    pub request_timeout: Duration,
}

impl RemoteConfig {
    /// The settings of talking to `url`: no tokens, the system's roots, the default
    /// timeouts.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            token: None,
            token_header: DEFAULT_TOKEN_HEADER.into(),
            admin_token: None,
            ca: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Checks the URL and the token header name (not the CA file, which is read when
    /// the client is made) and returns the endpoint.
    pub fn validate(&self) -> Result<Endpoint> {
        if http::HeaderName::try_from(self.token_header.as_str()).is_err() {
            return Err(Error::Config {
                setting: Setting::Backend,
                reason: format!("{:?} is not an HTTP header name", self.token_header),
            });
        }
        for token in [&self.token, &self.admin_token].into_iter().flatten() {
            if http::HeaderValue::try_from(token.as_str()).is_err() {
                return Err(Error::Config {
                    setting: Setting::Backend,
                    reason: "a token holds characters an HTTP header cannot carry".into(),
                });
            }
        }
        Endpoint::parse(&self.url)
    }
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |t: &Option<String>| t.as_ref().map(|_| "<hidden>");
        f.debug_struct("RemoteConfig")
            .field("url", &mask_url(&self.url))
            .field("token", &hidden(&self.token))
            .field("token_header", &self.token_header)
            .field("admin_token", &hidden(&self.admin_token))
            .field("ca", &self.ca)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// A server's address, checked: scheme, host and port, and the prefix of its routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https`.
    pub tls: bool,
    /// `host[:port]` as given.
    pub authority: String,
    /// The route prefix: `""` or `/x`, no trailing slash.
    pub prefix: String,
}

impl Endpoint {
    /// Reads `http(s)://host[:port][/prefix]`. Credentials in the URL, a query, a
    /// fragment or a missing host are errors (naming [`Setting::Backend`]).
    pub fn parse(url: &str) -> Result<Endpoint> {
        let invalid = |why: &str| Error::Config {
            setting: Setting::Backend,
            reason: format!(
                "{:?} {why}; use http://host[:port][/prefix] or https://…",
                mask_url(url)
            ),
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(invalid("is not an http:// or https:// URL"));
        };
        if rest.contains(['?', '#']) {
            return Err(invalid("has a query or fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(invalid(
                "holds credentials: give the token in the configuration instead, never in the URL",
            ));
        }
        if authority.is_empty() || authority.starts_with(':') {
            return Err(invalid("names no host"));
        }
        let uri: http::Uri = format!("http://{authority}/")
            .parse()
            .map_err(|_| invalid("is not a valid URL"))?;
        match uri.host() {
            Some(host) if !host.is_empty() => {}
            _ => return Err(invalid("names no host")),
        }
        // The port, if any, follows the host (after `]` for an IPv6 address).
        let after_host = authority
            .rfind(']')
            .map_or(authority, |i| &authority[i + 1..]);
        if let Some((_, port)) = after_host.rsplit_once(':') {
            if port.is_empty() {
                return Err(invalid("has an empty port"));
            }
            if port.parse::<u16>().is_err() {
                return Err(invalid("has a port that is not a number from 0 to 65535"));
            }
        }
        let prefix = path.trim_matches('/');
        let prefix = if prefix.is_empty() {
            DEFAULT_PREFIX.to_owned()
        } else {
            format!("/{prefix}")
        };
        Ok(Endpoint {
            tls,
            authority: authority.to_owned(),
            prefix,
        })
    }

    /// The URL of `method` of `service`: `scheme://authority/prefix/service/method`.
    pub fn uri(&self, service: &str, method: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!(
            "{scheme}://{}{}/{service}/{method}",
            self.authority, self.prefix
        )
    }

    /// The URL of a plain route such as `/healthz`.
    pub fn plain(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)?;
        if self.prefix != DEFAULT_PREFIX {
            f.write_str(&self.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let ok = [
            ("http://cache:4954", false, "cache:4954", "/twirp"),
            ("https://cache", true, "cache", "/twirp"),
            ("http://cache:4954/", false, "cache:4954", "/twirp"),
            (
                "http://10.0.0.1:80/scan/twirp/",
                false,
                "10.0.0.1:80",
                "/scan/twirp",
            ),
            ("http://[::1]:4954", false, "[::1]:4954", "/twirp"),
        ];
        for (url, tls, authority, prefix) in ok {
            let e = Endpoint::parse(url).unwrap();
            assert_eq!(
                (e.tls, e.authority.as_str(), e.prefix.as_str()),
                (tls, authority, prefix)
            );
        }
        let e = Endpoint::parse("http://h:1/p").unwrap();
        assert_eq!(e.uri("s.v1.C", "Read"), "http://h:1/p/s.v1.C/Read");
        assert_eq!(e.to_string(), "http://h:1/p");
        for (bad, why) in [
            ("ftp://h", "not an http"),
            ("http://", "no host"),
            ("http://:80", "no host"),
            ("http://h:/", "empty port"),
            ("http://h:port", "not a number"),
            ("http://h:70000", "not a number"),
            ("http://u:secret@h", "credentials"),
            ("http://h/?a=1", "query"),
            ("http://h h", "not a valid URL"),
        ] {
            let msg = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(msg.contains(why), "{bad}: {msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
    }

    #[test]
    fn debug_hides_tokens() {
        let mut c = RemoteConfig::new("http://h:1");
        c.token = Some("s3cret".into());
        c.admin_token = Some("adm1n".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("adm1n"),
            "{shown}"
        );
        c.token = Some("a\nb".into());
        assert!(c.validate().is_err());
    }
}
