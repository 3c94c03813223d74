//! [`RedisConfig`], and turning its URL into a connection target with clear errors.

use std::{fmt, path::PathBuf, time::Duration};

use cache_core::{Error, Result, Setting, mask_url};
use redis::IntoConnectionInfo;

/// The URL forms accepted, quoted in errors.
const URL_FORMS: &str = "use redis://[user:password@]host[:port][/db] or rediss://… (TLS)";

/// How to reach a Redis server.
///
/// Only [`RedisConfig::url`] is required; [`RedisConfig::new`] fills in the defaults. The
/// `Debug` output masks any password in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS. A user name
    /// selects an ACL user; a password alone authenticates as the default user.
    pub url: String,
    /// Use TLS even with a `redis://` URL, verifying the server against the system roots
    /// (or [`RedisConfig::ca`]). TLS is also on whenever the URL is `rediss://` or a CA,
    /// client certificate or key is given.
    pub tls: bool,
    /// A PEM file of CA certificates: the server is verified against these instead of the
    /// system roots.
    pub ca: Option<PathBuf>,
    /// A PEM client certificate (chain) for mutual TLS; needs [`RedisConfig::key`].
    pub cert: Option<PathBuf>,
    /// The PEM private key of [`RedisConfig::cert`].
    pub key: Option<PathBuf>,
    /// Most connections kept open at once. Each connection is multiplexed, so a few are
    /// enough for many concurrent tasks.
    pub pool_size: usize,
    /// Longest time to establish a connection (TCP, TLS handshake, authentication).
    pub connect_timeout: Duration,
    /// Longest time to wait for the answer to one command or pipeline.
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// Default [`RedisConfig::pool_size`].
    pub const DEFAULT_POOL_SIZE: usize = 16;
    /// Default [`RedisConfig::connect_timeout`].
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default [`RedisConfig::command_timeout`].
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

    /// A configuration for `url` with TLS settings taken from the URL alone and default
    /// pool size and timeouts.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            tls: false,
            ca: None,
            cert: None,
            key: None,
            pool_size: Self::DEFAULT_POOL_SIZE,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Checks the URL's syntax without connecting, so front ends can report a malformed
    /// URL as a usage error before doing anything. [`RedisCache::connect`] checks it too.
    ///
    /// [`RedisCache::connect`]: crate::RedisCache::connect
    pub fn validate(&self) -> cache_core::Result<()> {
        parse_url(&self.url).map(|_| ())
    }

    /// True when connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls
            || self.ca.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.url.trim_start().starts_with("rediss://")
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &mask_url(&self.url))
            .field("tls", &self.tls)
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// Removes secrets (the password, the raw URL) from messages of the Redis client, which
/// may quote what it was given. Its `Debug` shows nothing of them.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Strings to replace, longest first, each with its replacement.
    secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    fn new(url: &str, userinfo: Option<&str>, password: Option<&str>) -> Self {
        let mut secrets = vec![(url.to_owned(), mask_url(url))];
        let mut add = |s: &str| {
            if !s.is_empty() {
                secrets.push((s.to_owned(), "****".to_owned()));
            }
        };
        if let Some(userinfo) = userinfo {
            add(userinfo);
            if let Some((_, pw)) = userinfo.split_once(':') {
                add(pw);
            }
        }
        if let Some(pw) = password {
            add(pw);
        }
        secrets.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// `message` with every secret replaced.
    pub(crate) fn scrub(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for (secret, replacement) in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), replacement);
            }
        }
        out
    }
}

/// A validated URL: what the Redis client needs, and how to talk about it safely.
pub(crate) struct Target {
    /// The connection info the Redis client parsed from the URL.
    pub(crate) info: redis::ConnectionInfo,
    /// The URL with any password masked.
    pub(crate) location: String,
    /// Scrubs the URL's secrets from messages.
    pub(crate) redactor: Redactor,
    /// True for `rediss://`.
    pub(crate) tls: bool,
    /// Host and port, for turning a `redis://` URL into a TLS one.
    pub(crate) host: String,
    /// The port.
    pub(crate) port: u16,
}

/// Checks a Redis URL piece by piece, so that each mistake gets its own message, then
/// lets the Redis client parse it. No message ever holds the password.
pub(crate) fn parse_url(url: &str) -> Result<Target> {
    let url = url.trim();
    let location = mask_url(url);
    let invalid = |why: String| Error::Config {
        setting: Setting::Backend,
        reason: format!("{location:?} {why}; {URL_FORMS}"),
    };
    let (tls, rest) = if let Some(rest) = url.strip_prefix("redis://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("rediss://") {
        (true, rest)
    } else {
        return Err(invalid("is not a Redis URL".into()));
    };
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let redactor_pre = Redactor::new(url, userinfo, None);
    if let Some(userinfo) = userinfo
        && userinfo.contains(['/', '?', '#'])
    {
        return Err(invalid(
            "has a '/', '?' or '#' in its user name or password; percent-encode them \
             (%2F, %3F, %23)"
                .into(),
        ));
    }
    let authority_end = hostpart.find(['/', '?', '#']).unwrap_or(hostpart.len());
    let (authority, tail) = hostpart.split_at(authority_end);
    let (host, port) = split_host_port(authority).map_err(invalid)?;
    if host.is_empty() {
        return Err(invalid("has no host".into()));
    }
    let port = match port {
        None => 6379,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(invalid(format!(
                    "has an invalid port {p:?} (must be a number from 1 to 65535)"
                )));
            }
        },
    };
    if let Some(hash) = tail.find('#') {
        return Err(invalid(format!(
            "has a fragment {:?}, which is not supported",
            &tail[hash..]
        )));
    }
    if let Some(path) = tail.strip_prefix('/') {
        let db = &path[..path.find(['?', '#']).unwrap_or(path.len())];
        let db = db.trim_end_matches('/');
        if !db.is_empty() && (!db.bytes().all(|b| b.is_ascii_digit()) || db.len() > 9) {
            return Err(invalid(format!(
                "has an invalid database {db:?} (must be a number such as 0)"
            )));
        }
    }
    let info = url.into_connection_info().map_err(|e| {
        invalid(format!(
            "is not a valid Redis URL ({})",
            redactor_pre.scrub(&e.to_string())
        ))
    })?;
    let password = info.redis_settings().password().map(str::to_owned);
    Ok(Target {
        info,
        location,
        redactor: Redactor::new(url, userinfo, password.as_deref()),
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    })
}

/// Splits `host[:port]` or `[v6]:port`.
fn split_host_port(authority: &str) -> std::result::Result<(&str, Option<&str>), String> {
    if let Some(v6) = authority.strip_prefix('[') {
        let Some(end) = v6.find(']') else {
            return Err("has an IPv6 address without its closing ']'".into());
        };
        let after = &v6[end + 1..];
        let host = &authority[..end + 2];
        return match after {
            "" => Ok((host, None)),
            a => match a.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("has unexpected text {a:?} after the host")),
            },
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<'a>(url: &str, want_err: impl Into<Option<&'a str>>) {
        match (parse_url(url), want_err.into()) {
            (Ok(_), None) => {}
            (Err(e), Some(want)) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{url}: {msg}");
                assert!(!msg.contains("hunter2"), "{url}: password leaked: {msg}");
            }
            (Ok(_), Some(want)) => panic!("{url}: accepted, want error {want:?}"),
            (Err(e), None) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn urls() {
        check("redis://localhost", None);
        check("redis://127.0.0.1:6380/3", None);
        check("redis://:hunter2@h:1/0", None);
        check("redis://user:hunter2@h", None);
        check("rediss://user:hunter2@h:6380/15", None);
        check("redis://[::1]:7000/2", None);
        check("http://user:hunter2@h", "is not a Redis URL");
        check("redis:/h", "is not a Redis URL");
        check("redis://", "has no host");
        check("redis://:hunter2@", "has no host");
        check("redis://h:port", "invalid port \"port\"");
        check("redis://:hunter2@h:70000", "invalid port");
        check("redis://h:0", "invalid port");
        check("redis://h/db", "invalid database \"db\"");
        check("redis://h/-1", "invalid database");
        check("redis://u:hun/ter2@h", "percent-encode");
        check("redis://[::1:7000", "closing ']'");
        check("redis://:hunter2@h/0#nope", "fragment \"#nope\"");
        check("redis://h?protocol=resp9", "not a valid Redis URL");
    }

    #[test]
    fn masking_and_scrubbing() {
        let t = parse_url("redis://alice:hunter2%21@h:1/2").unwrap();
        assert_eq!(t.location, "redis://****@h:1/2");
        assert_eq!(t.port, 1);
        let scrubbed = t
            .redactor
            .scrub("failed for redis://alice:hunter2%21@h:1/2 with hunter2! and hunter2%21");
        assert!(!scrubbed.contains("hunter2"), "{scrubbed}");
        assert!(scrubbed.contains("redis://****@h:1/2"), "{scrubbed}");
        let dbg = format!("{:?}", RedisConfig::new("redis://:hunter2@h"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn tls_is_on_for_rediss_or_any_tls_option() {
        assert!(!RedisConfig::new("redis://h").uses_tls());
        assert!(RedisConfig::new("rediss://h").uses_tls());
        let mut c = RedisConfig::new("redis://h");
        c.ca = Some("ca.pem".into());
        assert!(c.uses_tls());
    }
}
