//! Parsing shared by every front end: backend specs, TTLs, sizes and the default cache
//! directory.

use std::{
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{Error, RedisTopology, Result, Setting, topology};

/// The accepted backend forms, quoted in errors.
const BACKEND_FORMS: &str = "fs (the default), memory, redis://[user:password@]host[:port][/db] \
     or rediss://… (TLS), a comma-separated list of redis:// node URLs (Redis Cluster), or \
     redis+sentinel://[user:password@]host:port[,host:port…]/master[/db] (Redis Sentinel)";

/// Default cap on one stored document: 32 MiB ([`CacheOptions::max_document_size`]).
pub const DEFAULT_MAX_DOCUMENT_SIZE: u64 = 32 << 20;

/// The accepted forms of a scancache server's address, quoted in errors.
const REMOTE_FORMS: &str = "http://host[:port][/prefix] or https://…";

/// Settings every backend honours.
///
/// `CacheOptions::default()` keeps entries forever, without a size bound, and caps each
/// document at [`DEFAULT_MAX_DOCUMENT_SIZE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// Time to live of every entry written; `None` keeps entries until removed.
    pub ttl: Option<Duration>,
    /// Upper bound on stored bytes, enforced by evicting least recently used entries
    /// (fs and memory backends); `None` for no bound.
    pub max_size: Option<u64>,
    /// Largest document a put or an import may store, in bytes; a larger one is refused
    /// with [`crate::Error::DocumentTooLarge`] ([`crate::rules::check_document_size`]).
    /// `None` for no cap.
    pub max_document_size: Option<u64>,
    /// With a TTL, a read that finds an entry pushes its expiry to now + TTL, so that
    /// entries expire when they have gone unread for the TTL rather than after it. Only
    /// the Redis backend applies it (`GETEX`); fs and memory record reads themselves and
    /// collect unread entries with `gc` ([`crate::GcOptions::unused_for`]).
    pub ttl_refresh: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            ttl: None,
            max_size: None,
            max_document_size: Some(DEFAULT_MAX_DOCUMENT_SIZE),
            ttl_refresh: false,
        }
    }
}

/// Which backend a `--cache-backend` value selects.
#[derive(Clone, PartialEq, Eq)]
pub enum BackendSpec {
    /// The LMDB file-system cache under `<cache-dir>/fanal/`.
    Fs,
    /// An in-process cache, discarded when the process ends.
    Memory,
    /// Redis: one server, a Redis Cluster or a master found through Redis Sentinel, as
    /// [`RedisTopology::parse`] reads `url`. `url` is the backend string as given (it may
    /// hold passwords, so it is only shown through [`mask_url`]).
    Redis {
        /// `redis://…` or `rediss://…`, a comma-separated list of them (a cluster), or
        /// `redis+sentinel://…`/`rediss+sentinel://…`.
        url: String,
    },
    /// A `scancache server`, reached over its scancache service (crate `cache-remote`);
    /// the server's own backend stores the entries and applies its TTL and size bound.
    Remote {
        /// The server's URL, `http://…` or `https://…`, as given.
        url: String,
    },
}

impl BackendSpec {
    /// Parses a `--cache-backend` value. The empty string selects the default, `fs`.
    pub fn parse(input: &str) -> Result<Self> {
        BackendSpec::parse_with(input, None)
    }

    /// [`BackendSpec::parse`] given the Redis master-name option as well, which makes
    /// `redis://` URLs sentinel addresses (see [`RedisTopology::parse`]); it is ignored
    /// for the other backends.
    pub fn parse_with(input: &str, master_name: Option<&str>) -> Result<Self> {
        let trimmed = input.trim();
        match trimmed {
            "" | "fs" => Ok(BackendSpec::Fs),
            "memory" => Ok(BackendSpec::Memory),
            s if [
                "redis://",
                "rediss://",
                "redis+sentinel://",
                "rediss+sentinel://",
            ]
            .iter()
            .any(|scheme| s.starts_with(scheme)) =>
            {
                RedisTopology::parse(s, master_name)?;
                Ok(BackendSpec::Redis { url: s.to_owned() })
            }
            s if s.starts_with("http://") || s.starts_with("https://") => {
                check_remote_url(s)?;
                Ok(BackendSpec::Remote { url: s.to_owned() })
            }
            other => Err(Error::Config {
                setting: Setting::Backend,
                reason: format!("unknown backend {:?}; use {BACKEND_FORMS}", mask_url(other)),
            }),
        }
    }
}

impl std::str::FromStr for BackendSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BackendSpec::parse(s)
    }
}

impl fmt::Display for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendSpec::Fs => f.write_str("fs"),
            BackendSpec::Memory => f.write_str("memory"),
            BackendSpec::Redis { url } => f.write_str(&mask_url(url)),
            BackendSpec::Remote { url } => f.write_str(&mask_url(url)),
        }
    }
}

impl fmt::Debug for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendSpec({self})")
    }
}

/// Checks the form of a scancache server's URL: a host is named, and no credentials are
/// (the token travels in a header, never in the URL). The rest (port, prefix) is read by
/// the client.
fn check_remote_url(url: &str) -> Result<()> {
    let invalid = |why: &str| Error::Config {
        setting: Setting::Backend,
        reason: format!("{:?} {why}; use {REMOTE_FORMS}", mask_url(url)),
    };
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid(
            "holds credentials: give the server's token with --token instead",
        ));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(invalid("names no host"));
    }
    if rest.contains(['?', '#']) {
        return Err(invalid("has a query or fragment"));
    }
    Ok(())
}

/// Replaces the user-info part of a URL (`user:password@`) with `****@`, so it can be
/// shown in logs and errors: `redis://:secret@host:6379/0` → `redis://****@host:6379/0`.
/// A list of URLs (a Redis Cluster's nodes) is masked URL by URL.
///
/// Everything up to the last `@` of each URL is masked, so a password containing `@` or
/// `/` never leaks, even from a malformed URL.
pub fn mask_url(url: &str) -> String {
    let urls = topology::split_list(url);
    if urls.len() > 1 {
        return urls.into_iter().map(mask_one).collect::<Vec<_>>().join(",");
    }
    mask_one(url)
}

fn mask_one(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}****{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// Parses a TTL such as `30s`, `90m`, `24h`, `7d` or `1h30m`; `0` means no expiry.
pub fn parse_ttl(input: &str) -> Result<Option<Duration>> {
    let invalid = |why: &str| Error::Config {
        setting: Setting::Ttl,
        reason: format!("{input:?} {why}; use e.g. 30s, 90m, 24h, 7d, or 0 for no expiry"),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(invalid("is empty"));
    }
    if s.bytes().all(|b| b == b'0') {
        return Ok(None);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid("must be a number followed by a unit"));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u64 = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "" => return Err(invalid("has a number without a unit (s, m, h or d)")),
            _ => return Err(invalid("has an unknown unit (use s, m, h or d)")),
        };
        let n: u64 = number.parse().map_err(|_| invalid("is too large"))?;
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| invalid("is too large"))?;
        rest = tail;
    }
    Ok((total > 0).then(|| Duration::from_secs(total)))
}

/// Parses a size such as `4096`, `512MiB`, `10GB` or `1.5GiB` into bytes. Units are case-insensitive: `B`,
/// `KB`/`MB`/`GB`/`TB` (powers of 1000), `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024); `K`,
/// `M`, `G`, `T` are read as the binary units.
pub fn parse_size(input: &str) -> Result<u64> {
    let invalid = |why: &str| Error::Config {
        setting: Setting::Size,
        reason: format!("{input:?} {why}; use e.g. 4096, 512MiB or 10GB"),
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(invalid("must start with a number"));
    }
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(invalid("has an unknown unit")),
    };
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(scale).ok_or_else(|| invalid("is too large"));
    }
    let n: f64 = number.parse().map_err(|_| invalid("is not a number"))?;
    let bytes = (n * scale as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(invalid("is too large"));
    }
    Ok(bytes as u64)
}

/// The default cache directory: `$XDG_CACHE_HOME/scancache`, else
/// `~/.cache/scancache`, else `scancache` in the temp dir.
pub fn default_cache_dir() -> PathBuf {
    default_cache_dir_from(
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
        &std::env::temp_dir(),
    )
}

/// [`default_cache_dir`] with its inputs given, for tests. Relative or empty values are
/// ignored, as the XDG base directory specification says.
pub fn default_cache_dir_from(
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
    temp_dir: &Path,
) -> PathBuf {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(xdg) = absolute(xdg_cache_home) {
        return xdg.join("scancache");
    }
    if let Some(home) = absolute(home) {
        return home.join(".cache").join("scancache");
    }
    temp_dir.join("scancache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_specs() {
        assert_eq!(BackendSpec::parse("").unwrap(), BackendSpec::Fs);
        assert_eq!(BackendSpec::parse("fs").unwrap(), BackendSpec::Fs);
        assert_eq!(BackendSpec::parse("memory").unwrap(), BackendSpec::Memory);
        let redis = BackendSpec::parse("redis://:pw@localhost:6379/2").unwrap();
        assert_eq!(
            redis,
            BackendSpec::Redis {
                url: "redis://:pw@localhost:6379/2".into()
            }
        );
        assert_eq!(redis.to_string(), "redis://****@localhost:6379/2");
        assert!(!format!("{redis:?}").contains("pw"));
        assert!(matches!(
            BackendSpec::parse("rediss://h").unwrap(),
            BackendSpec::Redis { .. }
        ));
        for bad in ["s3://bucket", "FS", "redis:/x", "mem", "ftp://u:secret@h"] {
            let msg = BackendSpec::parse(bad).unwrap_err().to_string();
            assert!(msg.contains("fs (the default), memory, redis://"), "{msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
    }

    #[test]
    fn remote_specs() {
        for url in [
            "http://cache:4954",
            "https://cache.internal",
            "http://[::1]:4954/scan/twirp",
        ] {
            let spec = BackendSpec::parse(url).unwrap();
            assert_eq!(spec, BackendSpec::Remote { url: url.into() });
            assert_eq!(spec.to_string(), url);
        }
        for (bad, why) in [
            ("http://", "names no host"),
            ("https://:4954", "names no host"),
            ("http://u:secret@h:1", "--token"),
            ("http://h:1/?x=1", "query"),
        ] {
            let msg = BackendSpec::parse(bad).unwrap_err().to_string();
            assert!(
                msg.contains(why) && msg.contains("https://"),
                "{bad}: {msg}"
            );
            assert!(!msg.contains("secret"), "{msg}");
        }
    }

    #[test]
    fn redis_topologies_are_checked_when_parsed() {
        let cluster = "redis://:pw@h1:7000,redis://:pw@h2:7001";
        let spec = BackendSpec::parse(cluster).unwrap();
        assert_eq!(
            spec,
            BackendSpec::Redis {
                url: cluster.into()
            }
        );
        assert_eq!(
            spec.to_string(),
            "redis://****@h1:7000,redis://****@h2:7001"
        );
        for url in [
            "redis+sentinel://:pw@s1:26379,s2:26379/mymaster/2",
            "rediss+sentinel://s1/mymaster",
        ] {
            assert!(matches!(
                BackendSpec::parse(url).unwrap(),
                BackendSpec::Redis { .. }
            ));
        }
        // A database other than 0 in a cluster is a usage error...
        let msg = BackendSpec::parse("redis://h1:7000/1,redis://h2:7001/1")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("only database 0"), "{msg}");
        // ...but the same list of sentinels, given a master name, selects database 1.
        assert!(BackendSpec::parse_with("redis://h1:7000/1,redis://h2:7001/1", Some("m")).is_ok());
        // The master name matters only to Redis.
        assert_eq!(
            BackendSpec::parse_with("fs", Some("m")).unwrap(),
            BackendSpec::Fs
        );
        let msg = BackendSpec::parse("redis://a:1,rediss://b:2")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("same TLS mode"), "{msg}");
    }

    #[test]
    fn masking() {
        let cases = [
            ("redis://localhost:6379", "redis://localhost:6379"),
            ("redis://:pw@h:1/0", "redis://****@h:1/0"),
            ("redis://user:pw@h", "redis://****@h"),
            ("rediss://u:p@ss/w@rd@h:6380", "rediss://****@h:6380"),
            ("u:p@h", "****@h"),
            (
                "redis://:a@h1:1,rediss://u:b@h2:2/0,redis://h3",
                "redis://****@h1:1,rediss://****@h2:2/0,redis://h3",
            ),
            ("redis://:a,b@h1:1", "redis://****@h1:1"),
            (
                "redis+sentinel://:p@w@s1,s2/m/0",
                "redis+sentinel://****@s1,s2/m/0",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(mask_url(input), want, "{input}");
        }
    }

    #[test]
    fn ttls() {
        let ok = [
            ("0", None),
            ("000", None),
            ("30s", Some(30)),
            ("90m", Some(5400)),
            ("24h", Some(86_400)),
            ("7d", Some(604_800)),
            ("1h30m", Some(5400)),
            (" 5s ", Some(5)),
        ];
        for (input, want) in ok {
            assert_eq!(
                parse_ttl(input).unwrap(),
                want.map(Duration::from_secs),
                "{input}"
            );
        }
        for (input, why) in [
            ("", "is empty"),
            ("10", "without a unit"),
            ("10x", "unknown unit"),
            ("-5s", "number followed by a unit"),
            ("s", "number followed by a unit"),
            ("99999999999999999999d", "too large"),
        ] {
            let msg = parse_ttl(input).unwrap_err().to_string();
            assert!(
                msg.contains(why) && msg.starts_with("invalid TTL: "),
                "{input}: {msg}"
            );
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("4096", 4096),
            ("512MiB", 512 << 20),
            ("10GB", 10_000_000_000),
            ("1kb", 1000),
            ("1K", 1024),
            ("1.5GiB", 3 << 29),
            ("0", 0),
        ];
        for (input, want) in ok {
            assert_eq!(parse_size(input).unwrap(), want, "{input}");
        }
        for bad in ["", "MiB", "12 parsecs", "1.2.3MB", "99999999999TB"] {
            let msg = parse_size(bad).unwrap_err().to_string();
            // The front end names its own flag (the CLI test checks `--cache-max-size`).
            assert!(msg.starts_with("invalid size: "), "{bad}: {msg}");
        }
    }

    #[test]
    fn cache_dir_defaults() {
        let tmp = Path::new("/tmp");
        let d = |x: Option<&str>, h: Option<&str>| {
            default_cache_dir_from(x.map(Into::into), h.map(Into::into), tmp)
        };
        assert_eq!(
            d(Some("/x"), Some("/home/u")),
            PathBuf::from("/x/scancache")
        );
        assert_eq!(
            d(Some(""), Some("/home/u")),
            PathBuf::from("/home/u/.cache/scancache")
        );
        assert_eq!(
            d(Some("rel"), Some("/home/u")),
            PathBuf::from("/home/u/.cache/scancache")
        );
        assert_eq!(d(None, None), PathBuf::from("/tmp/scancache"));
    }
}
