//! [`RedisConfig`], and turning it into a [`Layout`]: the servers to reach (one, a
//! cluster's seed nodes, or sentinels), each as a checked connection target, with clear
//! errors that never hold a password.

use std::{fmt, path::PathBuf, time::Duration};

use cache_core::{Error, RedisTopology, Result, Setting, mask_url};
use redis::IntoConnectionInfo;

/// The URL forms accepted, quoted in errors.
const URL_FORMS: &str = "use redis://[user:password@]host[:port][/db] or rediss://… (TLS)";

/// How to reach Redis: one server, a Redis Cluster, or a master found through Redis
/// Sentinel.
///
/// Only [`RedisConfig::url`] is required; [`RedisConfig::new`] fills in the defaults. The
/// `Debug` output masks every password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// One of:
    /// - `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS: one server.
    ///   A user name selects an ACL user; a password alone authenticates as the default
    ///   user.
    /// - `redis://h1:7000,redis://h2:7001,…` (all `rediss://` for TLS): a Redis Cluster,
    ///   any reachable node being enough to discover the rest; database 0 only, one set
    ///   of credentials for every node.
    /// - `redis+sentinel://[user:password@]s1:26379,s2:26379/MASTER[/db]` (or
    ///   `rediss+sentinel://…`, TLS to the sentinels): the master the sentinels know as
    ///   `MASTER`; the credentials and database are the data nodes'. `redis://` URLs
    ///   with [`RedisConfig::master_name`] set name sentinels too.
    pub url: String,
    /// The name of the master to ask the sentinels for; makes the URLs sentinels. A name
    /// in a `redis+sentinel://` URL must agree with it.
    pub master_name: Option<String>,
    /// The sentinels' password, where it differs from the data nodes' (which the URL
    /// gives).
    pub sentinel_password: Option<String>,
    /// Use TLS to the data nodes even with `redis://` URLs, verifying them against the
    /// system roots (or [`RedisConfig::ca`]). TLS to the data nodes is also on whenever
    /// the URLs are `rediss://` or a CA, client certificate or key is given. (TLS to
    /// sentinels follows their URL's scheme and uses the same files.)
    pub tls: bool,
    /// A PEM file of CA certificates: servers are verified against these instead of the
    /// system roots.
    pub ca: Option<PathBuf>,
    /// A PEM client certificate (chain) for mutual TLS; needs [`RedisConfig::key`].
    pub cert: Option<PathBuf>,
    /// The PEM private key of [`RedisConfig::cert`].
    pub key: Option<PathBuf>,
    /// Most connections kept open at once to each server. Each connection is
    /// multiplexed, so a few are enough for many concurrent tasks.
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
            master_name: None,
            sentinel_password: None,
            tls: false,
            ca: None,
            cert: None,
            key: None,
            pool_size: Self::DEFAULT_POOL_SIZE,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Checks the URLs' syntax and layout without connecting, so front ends can report
    /// a malformed one as a usage error before doing anything. [`RedisCache::connect`]
    /// checks them too.
    ///
    /// [`RedisCache::connect`]: crate::RedisCache::connect
    pub fn validate(&self) -> cache_core::Result<()> {
        Layout::new(self).map(drop)
    }

    /// True when connections to the data nodes use TLS.
    pub fn uses_tls(&self) -> bool {
        match Layout::new(self) {
            Ok(layout) => layout.tls,
            Err(_) => self.tls_files_or_flag() || self.url.trim_start().starts_with("rediss://"),
        }
    }

    fn tls_files_or_flag(&self) -> bool {
        self.tls || self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &mask_url(&self.url))
            .field("master_name", &self.master_name)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "****"),
            )
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

/// A configuration checked and laid out: the servers to reach first, and how to talk
/// about them.
pub(crate) struct Layout {
    /// The backend string with every password masked.
    pub(crate) location: String,
    /// Scrubs every secret of the configuration from messages.
    pub(crate) redactor: Redactor,
    /// True when connections to the data nodes use TLS.
    pub(crate) tls: bool,
    /// The topology and its first servers.
    pub(crate) kind: LayoutKind,
}

/// The servers a topology starts from.
pub(crate) enum LayoutKind {
    /// One server.
    Single(Box<Target>),
    /// Seed nodes of a cluster, and how to reach the nodes they tell of.
    Cluster {
        /// The nodes given.
        seeds: Vec<Target>,
        /// For every node found in the cluster's slot map.
        nodes: NodeTemplate,
    },
    /// Sentinels, the master's name, and how to reach the master they name.
    Sentinel {
        /// The sentinels given.
        sentinels: Vec<Target>,
        /// The master's name.
        master_name: String,
        /// For the master a sentinel names.
        master: NodeTemplate,
    },
}

/// How to reach a data node known only by its address (a cluster node from the slot
/// map, a master a sentinel names): with the configuration's scheme, credentials and
/// database.
#[derive(Clone)]
pub(crate) struct NodeTemplate {
    scheme: &'static str,
    userinfo: Option<String>,
    db: u32,
}

impl NodeTemplate {
    /// The target of the data node at `host:port`.
    pub(crate) fn target(&self, host: &str, port: u16) -> Result<Target> {
        let auth = self
            .userinfo
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        parse_url(&format!(
            "{}://{auth}{}:{port}/{}",
            self.scheme,
            bracketed(host),
            self.db
        ))
    }
}

/// `host`, in brackets if it is an IPv6 address.
pub(crate) fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl Layout {
    /// Reads the topology from the URL (see [`RedisTopology::parse`]) and checks every
    /// URL in it.
    pub(crate) fn new(config: &RedisConfig) -> Result<Layout> {
        let url = config.url.trim();
        let topology = RedisTopology::parse(url, config.master_name.as_deref())?;
        let location = mask_url(url);
        let mut redactor = Redactor::default();
        let flags = config.tls_files_or_flag();
        let scheme = |tls: bool| if tls { "rediss" } else { "redis" };
        let auth = |userinfo: &Option<String>| {
            userinfo
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default()
        };
        let layout = match topology {
            RedisTopology::Single { url } => {
                let target = parse_url(&url)?;
                redactor.merge(&target.redactor);
                Layout {
                    location,
                    tls: target.tls || flags,
                    redactor,
                    kind: LayoutKind::Single(Box::new(target)),
                }
            }
            RedisTopology::Cluster(spec) => {
                let mut seeds = Vec::with_capacity(spec.nodes.len());
                for node in &spec.nodes {
                    let target = parse_url(&format!(
                        "{}://{}{node}",
                        scheme(spec.tls),
                        auth(&spec.userinfo)
                    ))?;
                    redactor.merge(&target.redactor);
                    seeds.push(target);
                }
                Layout {
                    location,
                    tls: spec.tls || flags,
                    redactor,
                    kind: LayoutKind::Cluster {
                        seeds,
                        nodes: NodeTemplate {
                            scheme: scheme(spec.tls),
                            userinfo: spec.userinfo,
                            db: 0,
                        },
                    },
                }
            }
            RedisTopology::Sentinel(spec) => {
                let master = NodeTemplate {
                    scheme: scheme(flags),
                    userinfo: spec.userinfo.clone(),
                    db: spec.db,
                };
                // Checks the data nodes' credentials now, not when a sentinel answers.
                let probe = master.target("master", 6379)?;
                redactor.merge(&probe.redactor);
                let password = config
                    .sentinel_password
                    .as_deref()
                    .filter(|p| !p.is_empty());
                if let Some(pw) = password {
                    redactor.add(pw);
                }
                let mut sentinels = Vec::with_capacity(spec.sentinels.len());
                for addr in &spec.sentinels {
                    let mut target = parse_url(&format!("{}://{addr}", scheme(spec.tls)))?;
                    if let Some(pw) = password {
                        target.info = target.info.clone().set_redis_settings(
                            target.info.redis_settings().clone().set_password(pw),
                        );
                    }
                    sentinels.push(target);
                }
                Layout {
                    location,
                    tls: flags,
                    redactor,
                    kind: LayoutKind::Sentinel {
                        sentinels,
                        master_name: spec.master_name,
                        master,
                    },
                }
            }
        };
        Ok(layout)
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
        let mut r = Redactor {
            secrets: vec![(url.to_owned(), mask_url(url))],
        };
        if let Some(userinfo) = userinfo {
            r.add(userinfo);
            if let Some((_, pw)) = userinfo.split_once(':') {
                r.add(pw);
            }
        }
        if let Some(pw) = password {
            r.add(pw);
        }
        r
    }

    /// Masks `secret` (a password) as `****` too.
    pub(crate) fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|(s, _)| s == secret) {
            self.secrets.push((secret.to_owned(), "****".to_owned()));
            self.secrets
                .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        }
    }

    /// Masks everything `other` masks too.
    pub(crate) fn merge(&mut self, other: &Redactor) {
        for (secret, replacement) in &other.secrets {
            if !self.secrets.iter().any(|(s, _)| s == secret) {
                self.secrets.push((secret.clone(), replacement.clone()));
            }
        }
        self.secrets
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
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

impl Target {
    /// `host:port` (an IPv6 host in brackets), as nodes are named in messages.
    pub(crate) fn addr(&self) -> String {
        format!("{}:{}", bracketed(&self.host), self.port)
    }
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
