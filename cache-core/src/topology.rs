//! [`RedisTopology`]: the three layouts a Redis backend string can have — one server, a
//! Redis Cluster, or a master found through Redis Sentinel — parsed in one place for every
//! front end and for the Redis backend itself.
//!
//! | form | topology |
//! |---|---|
//! | `redis://[user:pass@]host[:port][/db]`, `rediss://…` | one server |
//! | `redis://h1:7000,redis://h2:7001,…` (or all `rediss://`) | a cluster, any reachable node being enough |
//! | `redis+sentinel://[user:pass@]s1:26379,s2:26379/MASTER[/db]`, `rediss+sentinel://…` | sentinels and the master's name |
//! | any `redis://` URL or list plus a master name | the URLs are sentinels |
//!
//! Only the layout is checked here (the list, the schemes, the credentials, the database
//! of a cluster, the master's name); each node's URL is checked in detail by the backend.
//! A comma starts a new URL only where `redis://` or `rediss://` follows it, so a comma in
//! a password needs no escaping in a single URL (and `%2C` works everywhere).

use std::fmt;

use crate::{Error, Result, Setting, mask_url};

/// The port of a sentinel when its URL names none.
pub const SENTINEL_PORT: u16 = 26379;

/// How a Redis backend string lays out the servers to use.
///
/// `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server: the URL as given.
    Single {
        /// `redis://…` or `rediss://…`.
        url: String,
    },
    /// A Redis Cluster, reached through any of its nodes.
    Cluster(ClusterSpec),
    /// A master found through Redis Sentinel.
    Sentinel(SentinelSpec),
}

/// The seed nodes of a Redis Cluster: any reachable one is enough to discover the rest.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Each node's `host[:port]` as written (an IPv6 host in brackets).
    pub nodes: Vec<String>,
    /// True when the URLs are `rediss://` (TLS; every URL alike).
    pub tls: bool,
    /// The `user:password` the URLs carry (as written, percent-encoded), if any; nodes
    /// found later use it too.
    pub userinfo: Option<String>,
}

/// The sentinels that know where a master is, and how to talk to that master.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelSpec {
    /// Each sentinel's `host:port` (the port defaults to [`SENTINEL_PORT`]).
    pub sentinels: Vec<String>,
    /// The name the sentinels know the master by.
    pub master_name: String,
    /// The data nodes' `user:password` (as written, percent-encoded), if any. The
    /// sentinels' own password is a separate setting.
    pub userinfo: Option<String>,
    /// The database on the master.
    pub db: u32,
    /// True for TLS to the sentinels (`rediss+sentinel://`, or `rediss://` sentinel
    /// URLs). TLS to the data nodes is a setting of its own.
    pub tls: bool,
}

/// The pieces of one `redis://` or `rediss://` URL, as written.
struct Parts<'a> {
    tls: bool,
    userinfo: Option<&'a str>,
    authority: &'a str,
    /// Everything after the authority's `/`, without a query.
    path: &'a str,
    query: bool,
}

impl RedisTopology {
    /// Reads a Redis backend string. `master_name` (a front end's master-name option)
    /// turns `redis://` URLs into sentinel addresses, and must agree with a name the
    /// URL gives.
    ///
    /// Errors are [`Error::Config`] naming [`Setting::Backend`] (or
    /// [`Setting::MasterName`] when the two names differ), with passwords masked.
    pub fn parse(input: &str, master_name: Option<&str>) -> Result<RedisTopology> {
        let input = input.trim();
        let master_name = master_name.map(str::trim).filter(|n| !n.is_empty());
        let invalid = |why: &str| Error::Config {
            setting: Setting::Backend,
            reason: format!("{:?} {why}", mask_url(input)),
        };
        if let Some(rest) = input
            .strip_prefix("redis+sentinel://")
            .or_else(|| input.strip_prefix("rediss+sentinel://"))
        {
            return parse_sentinel_url(input, rest, master_name);
        }
        let urls = split_list(input);
        let mut parts = Vec::with_capacity(urls.len());
        for url in &urls {
            match split_url(url) {
                Some(p) => parts.push(p),
                None if urls.len() == 1 => {
                    return Err(invalid(
                        "is not a Redis URL; use redis://[user:password@]host[:port][/db], \
                         rediss://… (TLS), a comma-separated list of node URLs (Redis Cluster) \
                         or redis+sentinel://host:port[,host:port…]/master[/db]",
                    ));
                }
                None => {
                    return Err(invalid(&format!(
                        "has an element {:?} that is not a redis:// or rediss:// URL",
                        mask_url(url)
                    )));
                }
            }
        }
        let tls = parts.first().is_some_and(|p| p.tls);
        if parts.iter().any(|p| p.tls != tls) {
            return Err(invalid(
                "mixes redis:// and rediss:// URLs; every node must use the same TLS mode",
            ));
        }
        let userinfo = common_userinfo(&parts).ok_or_else(|| {
            invalid(
                "gives different user names or passwords in its URLs; give the same ones \
                 on every URL (or on one)",
            )
        })?;
        if let Some(name) = master_name {
            let mut db = None;
            let mut sentinels = Vec::with_capacity(parts.len());
            for p in &parts {
                if p.query {
                    return Err(invalid("has a query, which sentinel URLs do not take"));
                }
                let this = parse_db(p.path.trim_end_matches('/')).map_err(|why| invalid(&why))?;
                if db.is_some_and(|d| d != this) {
                    return Err(invalid("names different databases in its sentinel URLs"));
                }
                db = Some(this);
                sentinels.push(with_port(p.authority, SENTINEL_PORT));
            }
            return Ok(RedisTopology::Sentinel(SentinelSpec {
                sentinels,
                master_name: name.to_owned(),
                userinfo: userinfo.map(str::to_owned),
                db: db.unwrap_or(0),
                tls,
            }));
        }
        if let [_] = parts.as_slice() {
            return Ok(RedisTopology::Single {
                url: input.to_owned(),
            });
        }
        for p in &parts {
            if p.query {
                return Err(invalid(
                    "has a query in a cluster node URL, which cluster node URLs do not take",
                ));
            }
            match parse_db(p.path.trim_end_matches('/')) {
                Ok(0) => {}
                Ok(db) => {
                    return Err(invalid(&format!(
                        "names database {db}, but a Redis Cluster has only database 0; \
                         drop the /{db}"
                    )));
                }
                Err(why) => return Err(invalid(&why)),
            }
        }
        Ok(RedisTopology::Cluster(ClusterSpec {
            nodes: parts.iter().map(|p| p.authority.to_owned()).collect(),
            tls,
            userinfo: userinfo.map(str::to_owned),
        }))
    }

    /// A short name for messages: `single server`, `cluster` or `sentinel`.
    pub fn kind(&self) -> &'static str {
        match self {
            RedisTopology::Single { .. } => "single server",
            RedisTopology::Cluster(_) => "cluster",
            RedisTopology::Sentinel(_) => "sentinel",
        }
    }
}

impl fmt::Debug for RedisTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTopology::Single { url } => write!(f, "Single({})", mask_url(url)),
            RedisTopology::Cluster(c) => f
                .debug_struct("Cluster")
                .field("nodes", &c.nodes)
                .field("tls", &c.tls)
                .field("credentials", &c.userinfo.is_some())
                .finish(),
            RedisTopology::Sentinel(s) => f
                .debug_struct("Sentinel")
                .field("sentinels", &s.sentinels)
                .field("master_name", &s.master_name)
                .field("db", &s.db)
                .field("tls", &s.tls)
                .field("credentials", &s.userinfo.is_some())
                .finish(),
        }
    }
}

impl fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&RedisTopology::Cluster(self.clone()), f)
    }
}

impl fmt::Debug for SentinelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&RedisTopology::Sentinel(self.clone()), f)
    }
}

/// `redis+sentinel://[userinfo@]hosts/NAME[/db]`; `rest` follows the scheme.
fn parse_sentinel_url(input: &str, rest: &str, option: Option<&str>) -> Result<RedisTopology> {
    let tls = input.starts_with("rediss+");
    let invalid = |why: &str| Error::Config {
        setting: Setting::Backend,
        reason: format!(
            "{:?} {why}; use redis+sentinel://[user:password@]host:port[,host:port…]/master[/db]",
            mask_url(input)
        ),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if path.contains('@') {
        return Err(invalid(
            "has a '/', '?' or '#' in its user name or password; percent-encode them \
             (%2F, %3F, %23)",
        ));
    }
    if path.contains(['?', '#']) || authority.contains(['?', '#']) {
        return Err(invalid(
            "has a query or fragment, which sentinel URLs do not take",
        ));
    }
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let mut sentinels = Vec::new();
    for host in hosts.split(',') {
        if host.is_empty() || host.starts_with(':') {
            return Err(invalid("has an empty sentinel address"));
        }
        sentinels.push(with_port(host, SENTINEL_PORT));
    }
    let mut segments = path.split('/');
    let name = segments.next().unwrap_or_default();
    let db = segments.next().unwrap_or_default();
    if segments.any(|s| !s.is_empty()) {
        return Err(invalid(
            "has more than a master name and a database in its path",
        ));
    }
    let db = parse_db(db).map_err(|why| invalid(&why))?;
    let master_name = match (name, option) {
        ("", None) => {
            return Err(invalid(
                "names no master (give it in the path or with the master-name option)",
            ));
        }
        ("", Some(option)) => option,
        (name, Some(option)) if name != option => {
            return Err(Error::Config {
                setting: Setting::MasterName,
                reason: format!(
                    "{option:?} differs from the master {name:?} that {:?} names",
                    mask_url(input)
                ),
            });
        }
        (name, _) => name,
    };
    if master_name.contains(char::is_whitespace) {
        return Err(invalid("has a master name with spaces in it"));
    }
    Ok(RedisTopology::Sentinel(SentinelSpec {
        sentinels,
        master_name: master_name.to_owned(),
        userinfo: userinfo.filter(|u| !u.is_empty()).map(str::to_owned),
        db,
        tls,
    }))
}

/// Splits a backend string into its URLs: a comma starts a new one only where
/// `redis://` or `rediss://` follows it.
pub(crate) fn split_list(input: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in input.match_indices(',') {
        let next = &input[i + 1..];
        if next.starts_with("redis://") || next.starts_with("rediss://") {
            out.push(&input[start..i]);
            start = i + 1;
        }
    }
    out.push(&input[start..]);
    out
}

/// The pieces of a `redis://` or `rediss://` URL; `None` for any other scheme.
fn split_url(url: &str) -> Option<Parts<'_>> {
    let (tls, rest) = match url.strip_prefix("redis://") {
        Some(rest) => (false, rest),
        None => (true, url.strip_prefix("rediss://")?),
    };
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let end = hostpart.find(['/', '?', '#']).unwrap_or(hostpart.len());
    let (authority, tail) = hostpart.split_at(end);
    let (path, query) = match tail.find(['?', '#']) {
        Some(q) => (&tail[..q], true),
        None => (tail, false),
    };
    Some(Parts {
        tls,
        userinfo: userinfo.filter(|u| !u.is_empty()),
        authority,
        path: path.strip_prefix('/').unwrap_or(path),
        query,
    })
}

/// The credentials every URL that has some agrees on; `None` when two differ.
fn common_userinfo<'a>(parts: &[Parts<'a>]) -> Option<Option<&'a str>> {
    let mut found = None;
    for u in parts.iter().filter_map(|p| p.userinfo) {
        match found {
            Some(f) if f != u => return None,
            _ => found = Some(u),
        }
    }
    Some(found)
}

/// A database number from a URL path segment; empty means 0.
fn parse_db(segment: &str) -> std::result::Result<u32, String> {
    if segment.is_empty() {
        return Ok(0);
    }
    match segment.parse::<u32>() {
        Ok(db) if segment.bytes().all(|b| b.is_ascii_digit()) => Ok(db),
        _ => Err(format!(
            "has an invalid database {segment:?} (must be a number such as 0)"
        )),
    }
}

/// `host` with `:port` appended when it names no port (IPv6 hosts are in brackets).
fn with_port(host: &str, port: u16) -> String {
    let has_port = match host.rfind(']') {
        Some(end) => host[end..].contains(':'),
        None => host.contains(':'),
    };
    if has_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str, name: Option<&str>) -> RedisTopology {
        RedisTopology::parse(input, name).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    fn err(input: &str, name: Option<&str>) -> String {
        let msg = RedisTopology::parse(input, name).unwrap_err().to_string();
        assert!(!msg.contains("hunter2"), "password leaked: {msg}");
        msg
    }

    #[test]
    fn single_urls_stay_as_given() {
        for url in [
            "redis://localhost",
            "rediss://:hunter2@h:6380/3",
            "redis://:pa,ss@h:1/0",
            "redis://h?protocol=resp3",
        ] {
            assert_eq!(parse(url, None), RedisTopology::Single { url: url.into() });
        }
    }

    #[test]
    fn cluster_lists() {
        let t = parse(
            "redis://:hunter2@h1:7000,redis://h2:7001/0,redis://:hunter2@[::1]:7002/",
            None,
        );
        assert_eq!(
            t,
            RedisTopology::Cluster(ClusterSpec {
                nodes: vec!["h1:7000".into(), "h2:7001".into(), "[::1]:7002".into()],
                tls: false,
                userinfo: Some(":hunter2".into()),
            })
        );
        assert!(!format!("{t:?}").contains("hunter2"));
        let t = parse("rediss://a:1,rediss://b:2", None);
        assert!(matches!(
            t,
            RedisTopology::Cluster(ClusterSpec { tls: true, .. })
        ));
        assert_eq!(t.kind(), "cluster");

        for (input, want) in [
            ("redis://a:1,rediss://b:2", "mixes redis:// and rediss://"),
            ("redis://a:1/2,redis://b:2/2", "has only database 0"),
            ("redis://a:1,redis://b:2/x", "invalid database \"x\""),
            (
                "redis://:hunter2@a:1,redis://:other@b:2",
                "different user names",
            ),
            ("redis://a:1,redis://b:2?protocol=resp3", "query"),
            (
                "http://a:1,redis://b:2",
                "is not a redis:// or rediss:// URL",
            ),
        ] {
            let msg = err(input, None);
            assert!(msg.contains(want), "{input}: {msg}");
            assert!(msg.starts_with("invalid cache backend: "), "{msg}");
        }
    }

    #[test]
    fn sentinel_urls() {
        let t = parse(
            "redis+sentinel://u:hunter2@s1:26379,s2,[::1]/mymaster/3",
            None,
        );
        assert_eq!(
            t,
            RedisTopology::Sentinel(SentinelSpec {
                sentinels: vec!["s1:26379".into(), "s2:26379".into(), "[::1]:26379".into()],
                master_name: "mymaster".into(),
                userinfo: Some("u:hunter2".into()),
                db: 3,
                tls: false,
            })
        );
        assert!(!format!("{t:?}").contains("hunter2"));
        let t = parse("rediss+sentinel://s1:5000/m", Some("m"));
        assert!(matches!(
            t,
            RedisTopology::Sentinel(SentinelSpec { tls: true, db: 0, ref master_name, .. })
                if master_name == "m"
        ));
        // The name may come from the option instead.
        let t = parse("redis+sentinel://s1", Some("other"));
        assert!(
            matches!(t, RedisTopology::Sentinel(SentinelSpec { ref master_name, .. }) if master_name == "other")
        );

        for (input, name, want) in [
            ("redis+sentinel://s1:1", None, "names no master"),
            ("redis+sentinel://s1:1/", None, "names no master"),
            ("redis+sentinel://s1:1/m/x", None, "invalid database"),
            (
                "redis+sentinel://s1:1/m/0/more",
                None,
                "more than a master name",
            ),
            ("redis+sentinel://s1,,s2/m", None, "empty sentinel address"),
            ("redis+sentinel://:hunter2@s1/m?x=1", None, "query"),
            ("redis+sentinel://:hun/ter2@s1/m", None, "percent-encode"),
        ] {
            let msg = err(input, name);
            assert!(msg.contains(want), "{input}: {msg}");
        }
        let e = RedisTopology::parse("redis+sentinel://:hunter2@s1/a", Some("b")).unwrap_err();
        assert_eq!(e.config_parts().map(|(s, _)| s), Some(Setting::MasterName));
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn redis_urls_with_a_master_name_are_sentinels() {
        let t = parse("redis://:hunter2@s1:26380/2,redis://s2/2", Some("mymaster"));
        assert_eq!(
            t,
            RedisTopology::Sentinel(SentinelSpec {
                sentinels: vec!["s1:26380".into(), "s2:26379".into()],
                master_name: "mymaster".into(),
                userinfo: Some(":hunter2".into()),
                db: 2,
                tls: false,
            })
        );
        assert!(matches!(
            parse("rediss://s1", Some("m")),
            RedisTopology::Sentinel(SentinelSpec { tls: true, .. })
        ));
        let msg = err("redis://s1/1,redis://s2/2", Some("m"));
        assert!(msg.contains("different databases"), "{msg}");
    }

    #[test]
    fn lists_split_only_before_a_scheme() {
        assert_eq!(
            split_list("redis://a,redis://b"),
            ["redis://a", "redis://b"]
        );
        assert_eq!(
            split_list("redis://:x,y@a,rediss://b"),
            ["redis://:x,y@a", "rediss://b"]
        );
        assert_eq!(split_list("redis://a"), ["redis://a"]);
        assert_eq!(with_port("h", 1), "h:1");
        assert_eq!(with_port("h:2", 1), "h:2");
        assert_eq!(with_port("[::1]", 1), "[::1]:1");
        assert_eq!(with_port("[::1]:2", 1), "[::1]:2");
    }
}
