//! The command line grammar (clap derive): global options and subcommands.
//!
//! The doc comments of the options and subcommands are clap's help text, written for a
//! terminal (`<cache-dir>/db`, `redis://[user:pass@]host`, `https://host:4954`); rustdoc
//! is told not to read them as HTML tags or links. docs/cli.md describes every command
//! and option.

#![allow(
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls
)]

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use cache_core::{Digest, EntryKind};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// scancache: a fast, shared, layer-aware scan cache for container images.
// No `Debug`: the options hold the raw backend URL, which may carry a password.
#[derive(Parser)]
#[command(name = "scancache", version, propagate_version = true)]
#[command(
    after_help = "Every option can also be set through its environment variable, e.g.\n  SCANCACHE_CACHE_BACKEND=redis://cache.internal:6379 scancache cache stats"
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after any subcommand.
#[derive(Args, Clone)]
pub struct GlobalOpts {
    /// Cache directory [default: $XDG_CACHE_HOME/scancache, else ~/.cache/scancache].
    ///
    /// Example: --cache-dir /var/cache/scancache
    #[arg(long, global = true, env = "SCANCACHE_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Scan cache backend: fs, memory, redis://[user:pass@]host[:port][/db] or rediss://…
    /// (one server), redis://h1:7000,redis://h2:7001,… (Redis Cluster: any reachable nodes;
    /// database 0 only), redis+sentinel://[user:pass@]s1:26379,s2:26379/MASTER[/db]
    /// (Redis Sentinel; rediss+sentinel:// for TLS to the sentinels), or a scancache
    /// server: http(s)://host[:port][/prefix]
    /// [default: memory for fs, rootfs and sbom; fs for every other command].
    ///
    /// Examples: --cache-backend redis://:secret@cache.internal:6379/0,
    /// --cache-backend redis://:secret@r1:7000,redis://r2:7000,redis://r3:7000,
    /// --cache-backend redis+sentinel://:secret@s1:26379,s2:26379/cache/0,
    /// --cache-backend https://scancache.internal:4954 --token "$TOKEN"
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_CACHE_BACKEND",
        value_name = "BACKEND",
        hide_env_values = true
    )]
    pub cache_backend: Option<String>,

    /// Time to live of new cache entries (s, m, h, d; 0 = never expire).
    ///
    /// Example: --cache-ttl 7d
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_CACHE_TTL",
        value_name = "DURATION",
        default_value = "0"
    )]
    pub cache_ttl: String,

    /// Upper bound of the fs and memory caches; least recently used entries are evicted
    /// beyond it (0 = unbounded).
    ///
    /// Example: --cache-max-size 512MiB
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_CACHE_MAX_SIZE",
        value_name = "SIZE",
        default_value = "0"
    )]
    pub cache_max_size: String,

    /// Largest document (one layer's result, one image record) any command may store; a
    /// scan whose layer would store more fails, an import skips the entry.
    ///
    /// Example: --max-document-size 64MiB
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_MAX_DOCUMENT_SIZE",
        value_name = "SIZE",
        default_value = "32MiB"
    )]
    pub max_document_size: String,

    /// With --cache-ttl, every read of an entry pushes its expiry to now + TTL, so
    /// entries expire once unread for the TTL (Redis; fs and memory use cache gc
    /// --unused-for).
    ///
    /// Example: --cache-backend redis://cache:6379 --cache-ttl 30d --cache-ttl-refresh
    #[arg(long, global = true, env = "SCANCACHE_CACHE_TTL_REFRESH")]
    pub cache_ttl_refresh: bool,

    /// Use TLS to Redis, verifying the server against the system roots (same as rediss://).
    ///
    /// Example: --cache-backend redis://cache:6380 --redis-tls
    #[arg(long, global = true, env = "SCANCACHE_REDIS_TLS")]
    pub redis_tls: bool,

    /// CA certificate (PEM) to verify the Redis server with; turns TLS on.
    ///
    /// Example: --redis-ca /etc/ssl/redis-ca.pem
    #[arg(long, global = true, env = "SCANCACHE_REDIS_CA", value_name = "FILE")]
    pub redis_ca: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS with Redis; needs --redis-key.
    ///
    /// Example: --redis-cert /etc/ssl/scanner.pem
    #[arg(long, global = true, env = "SCANCACHE_REDIS_CERT", value_name = "FILE")]
    pub redis_cert: Option<PathBuf>,

    /// Private key (PEM) of the client certificate; needs --redis-cert.
    ///
    /// Example: --redis-key /etc/ssl/scanner-key.pem
    #[arg(long, global = true, env = "SCANCACHE_REDIS_KEY", value_name = "FILE")]
    pub redis_key: Option<PathBuf>,

    /// Name of the master to ask Redis Sentinel for: makes the --cache-backend URLs
    /// sentinels (a name in a redis+sentinel:// URL must agree).
    ///
    /// Example: --cache-backend redis://s1:26379,redis://s2:26379 --redis-master-name cache
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_REDIS_MASTER_NAME",
        value_name = "NAME"
    )]
    pub redis_master_name: Option<String>,

    /// Password of the Redis sentinels, where it differs from the data nodes' (which the
    /// URL gives).
    ///
    /// Example: SCANCACHE_REDIS_SENTINEL_PASSWORD=s3cret scancache cache stats
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_REDIS_SENTINEL_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub redis_sentinel_password: Option<String>,
    /// Shared secret of a scancache server: the server requires it on every RPC, and
    /// clients send it (as the reference scanner's --token does on both sides).
    ///
    /// Example: SCANCACHE_TOKEN=$(cat /run/secrets/scancache) scancache server
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_TOKEN",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Admin secret of a scancache server: the server refuses the RPCs that change or
    /// dump the cache (cache rm, gc, export, import, clean) without it, and refuses them
    /// all when started without it; clients send it for those.
    ///
    /// Example: SCANCACHE_ADMIN_TOKEN=$(cat /run/secrets/scancache-admin) scancache server
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_ADMIN_TOKEN",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// CA certificates (PEM) to verify an https:// scancache server or a --server
    /// with, instead of the system's roots.
    ///
    /// Example: --server-ca /etc/ssl/scancache-ca.pem
    #[arg(long, global = true, env = "SCANCACHE_SERVER_CA", value_name = "FILE")]
    pub server_ca: Option<PathBuf>,

    /// Fail a scan when the cache is unavailable (unreachable, failing, unreadable,
    /// corrupt or full), instead of scanning without it with a warning.
    ///
    /// Example: scancache --cache-required image --input app.tar
    #[arg(long, global = true, env = "SCANCACHE_CACHE_REQUIRED")]
    pub cache_required: bool,

    /// HTTP header that carries --token.
    ///
    /// Example: --token-header X-Scan-Token
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_TOKEN_HEADER",
        value_name = "NAME",
        default_value = "Trivy-Token",
        value_parser = parse_header_name
    )]
    pub token_header: String,

    /// Lease of a layer claim (s, m, h; 0 = no claims): concurrent scans of one cache
    /// analyse a shared layer once — the first claims it, the others wait for its result.
    /// An owner renews its claims while it works; a claim whose owner died ends at once
    /// (fs) or when the lease runs out (Redis, server clients), and a waiter takes over. A
    /// waiter waits at most four leases in all, then analyses the layer itself. The
    /// server holds claims for its clients with this lease.
    ///
    /// Example: --lease-timeout 2m
    #[arg(
        long,
        global = true,
        env = "SCANCACHE_LEASE_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_lease
    )]
    pub lease_timeout: Lease,

    /// Print only errors.
    ///
    /// Example: scancache -q cache gc
    #[arg(
        short,
        long,
        global = true,
        env = "SCANCACHE_QUIET",
        conflicts_with = "debug"
    )]
    pub quiet: bool,

    /// Print debug messages (per-entry hits and misses).
    ///
    /// Example: scancache -d image --input app.tar
    #[arg(short, long, global = true, env = "SCANCACHE_DEBUG")]
    pub debug: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan a container image archive, analysing each layer once and reusing cached
    /// layers.
    ///
    /// Reads docker-save tars (also gzip-compressed) and OCI image layouts (directory or
    /// tar); layers may be uncompressed, gzip or zstd.
    ///
    /// Example: scancache image --input samples/debian.tar --format json -o report.json
    ///
    /// Example: scancache image --input samples/lang.tar --format spdx-json -o sbom.spdx.json
    ///
    /// Cache backend default: fs (an explicit --cache-backend wins).
    Image(ImageArgs),
    /// Scan a project directory: the packages its lockfiles and manifests declare.
    ///
    /// Reads Cargo.lock, package-lock.json (v1-v3), yarn.lock, pnpm-lock.yaml, go.mod,
    /// poetry.lock, Pipfile.lock, requirements.txt (pinned lines), Gemfile.lock,
    /// composer.lock, packages.lock.json and pom.xml (declared coordinates only), plus
    /// OS release and package database files; not installed packages (that is rootfs).
    /// Skips .git, never follows symbolic links. The cache key comes from the selected
    /// files' paths, sizes and modification times, so an unchanged tree is a cache hit
    /// on a persistent backend.
    ///
    /// Cache backend default: memory (an explicit --cache-backend wins).
    ///
    /// Example: scancache fs . --format json -o report.json
    ///
    /// Example: scancache --cache-backend fs fs ~/src/app --skip-dirs '**/testdata'
    ///
    /// Example: scancache fs . --server http://scanner:4954 --token "$TOKEN" --format json
    Fs(TreeArgs),
    /// Scan an unpacked root file system (a mounted image or VM disk, a chroot): its OS
    /// and installed packages, with the analysers of image layers, as one layer.
    ///
    /// Skips proc, sys and dev at the top and .git anywhere; never follows symbolic
    /// links.
    ///
    /// Cache backend default: memory (an explicit --cache-backend wins).
    ///
    /// Example: scancache rootfs /mnt/image --format cyclonedx -o sbom.cdx.json
    ///
    /// Example: scancache rootfs /mnt/image --server http://scanner:4954 --scanners vuln
    Rootfs(TreeArgs),
    /// Read a CycloneDX (JSON) or SPDX (JSON) SBOM back into a report: its OS and
    /// packages, printed in any format.
    ///
    /// Cache backend default: memory (an explicit --cache-backend wins).
    ///
    /// Example: scancache sbom sbom.cdx.json --format table
    ///
    /// Example: scancache sbom sbom.spdx.json --server http://scanner:4954 --format json
    Sbom(SbomArgs),
    /// Remove caches from the cache directory (and the scan cache of the selected backend).
    ///
    /// Example: scancache clean --scan-cache
    Clean(CleanArgs),
    /// Inspect and manage the scan cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Serve the scan cache to scanners over the reference scanner's client/server
    /// protocol (Twirp), so reference clients (`trivy image|fs|rootfs|sbom --server URL`)
    /// and `scancache image|fs|rootfs|sbom --server URL` share this cache.
    ///
    /// The backend is the one the global options select (fs, memory, Redis); any number
    /// of servers over one Redis serve one cache. The server has no vulnerability
    /// database: clients must scan with --scanners that do not include vuln, e.g.
    /// `trivy image --server http://HOST:4954 --scanners license --input app.tar`.
    ///
    /// Example: scancache --cache-backend redis://cache:6379 --token "$TOKEN" server --listen 0.0.0.0:4954
    Server(ServerArgs),
    /// Print a shell completion script.
    ///
    /// Example: scancache completion bash > /etc/bash_completion.d/scancache
    Completion {
        /// The shell to print the script for.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The `--server` options of a scanning command.
    pub fn remote(&self) -> Option<&ServerScanArgs> {
        match self {
            Command::Image(a) => Some(&a.remote),
            Command::Fs(a) | Command::Rootfs(a) => Some(&a.remote),
            Command::Sbom(a) => Some(&a.remote),
            _ => None,
        }
    }

    /// The backend this command uses when `--cache-backend` is not given: memory for
    /// the scans of directories and SBOMs, fs for images and the cache commands.
    pub fn default_backend(&self) -> &'static str {
        match self {
            Command::Fs(_) | Command::Rootfs(_) | Command::Sbom(_) => "memory",
            _ => "fs",
        }
    }
}

/// Arguments of `image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The image archive: a docker-save tar, an OCI layout tar, or an OCI layout
    /// directory.
    ///
    /// Example: --input samples/debian.tar
    #[arg(short, long, env = "SCANCACHE_INPUT", value_name = "ARCHIVE")]
    pub input: PathBuf,

    /// Report format: a table, the JSON report, or an SBOM (CycloneDX 1.6 JSON, SPDX 2.3
    /// JSON). An SBOM's creation time is now, or SOURCE_DATE_EPOCH when set.
    ///
    /// Example: --format cyclonedx -o sbom.cdx.json
    #[arg(
        short,
        long,
        value_enum,
        default_value = "table",
        env = "SCANCACHE_FORMAT"
    )]
    pub format: ReportFormat,

    /// Write the report to FILE (atomically) instead of standard output.
    ///
    /// Example: -o report.json
    #[arg(short, long, env = "SCANCACHE_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// In a multi-image archive, the image to scan, by tag or image ID [default: the
    /// first].
    ///
    /// Example: --image debian:12
    #[arg(long, env = "SCANCACHE_IMAGE", value_name = "REF")]
    pub image: Option<String>,

    /// Hash every layer, also cached ones, and fail on a digest mismatch (for archives
    /// from untrusted sources).
    ///
    /// Example: scancache image --input downloaded.tar --verify-layers
    #[arg(long, env = "SCANCACHE_VERIFY_LAYERS")]
    pub verify_layers: bool,

    /// Scanning through a server (`--server`, `--scanners`).
    #[command(flatten)]
    pub remote: ServerScanArgs,

    /// Largest package database file accepted.
    ///
    /// Example: --max-db-size 512MiB
    #[arg(
        long,
        env = "SCANCACHE_MAX_DB_SIZE",
        value_name = "SIZE",
        default_value = "256MiB",
        value_parser = parse_db_size
    )]
    pub max_db_size: u64,

    /// Most packages one layer may hold, after duplicate entries collapse; a layer with
    /// more fails the scan.
    ///
    /// Example: --max-packages-per-layer 500000
    #[arg(
        long,
        env = "SCANCACHE_MAX_PACKAGES_PER_LAYER",
        value_name = "N",
        default_value_t = cache_scan::DEFAULT_MAX_PACKAGES_PER_LAYER
    )]
    pub max_packages_per_layer: u64,

    /// Most layers an image may have; an image with more fails before any layer is read.
    ///
    /// Example: --max-layers 8192
    #[arg(
        long,
        env = "SCANCACHE_MAX_LAYERS",
        value_name = "N",
        default_value_t = cache_scan::DEFAULT_MAX_LAYERS
    )]
    pub max_layers: usize,
}

/// The options of a scan a server answers, the same for every scanning command.
#[derive(Debug, Args)]
pub struct ServerScanArgs {
    /// Scan through this server the way the reference client does: ask it which results
    /// it lacks (an image's layers, a directory's or SBOM's analysis), analyse and upload
    /// only those, and print the report the server builds (with vulnerabilities, when it
    /// has a database). `scancache server` or the reference's `trivy server`; --token,
    /// --token-header and --server-ca apply. image uses no local cache; fs and rootfs
    /// analyse through the --cache-backend (memory by default), so an unchanged tree on a
    /// persistent one is uploaded without reading it. SBOM formats cannot be written (the
    /// server's answer is not the SBOM writers' model): use table or json.
    ///
    /// Example: scancache image --server http://scanner:4954 --token "$TOKEN" --input app.tar
    #[arg(long, env = "SCANCACHE_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// With --server: what the server reports besides packages, comma separated
    /// [default: license]. vuln needs a server with a vulnerability database.
    ///
    /// Example: --scanners vuln,license
    #[arg(
        long,
        env = "SCANCACHE_SCANNERS",
        value_name = "LIST",
        value_enum,
        value_delimiter = ',',
        requires = "server"
    )]
    pub scanners: Option<Vec<Scanner>>,
}

impl ServerScanArgs {
    /// The scanners asked for: `--scanners`, or `license`.
    pub fn scanners(&self) -> Vec<Scanner> {
        self.scanners
            .clone()
            .unwrap_or_else(|| vec![Scanner::License])
    }
}

/// Arguments of `server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    ///
    /// Example: --listen 0.0.0.0:4954
    #[arg(
        long,
        env = "SCANCACHE_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:4954"
    )]
    pub listen: SocketAddr,

    /// Prefix of the Twirp routes (the reference client's --path-prefix).
    ///
    /// Example: --path-prefix /scan/twirp
    #[arg(
        long,
        env = "SCANCACHE_PATH_PREFIX",
        value_name = "PREFIX",
        default_value = "/twirp"
    )]
    pub path_prefix: String,

    /// Serve HTTPS with this PEM certificate chain; needs --tls-key.
    ///
    /// Example: --tls-cert /etc/scancache/server.pem
    #[arg(
        long,
        env = "SCANCACHE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    ///
    /// Example: --tls-key /etc/scancache/server-key.pem
    #[arg(
        long,
        env = "SCANCACHE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Largest request body, as sent (compressed) and decompressed.
    ///
    /// Example: --max-request-size 16MiB
    #[arg(
        long,
        env = "SCANCACHE_MAX_REQUEST_SIZE",
        value_name = "SIZE",
        default_value = "64MiB",
        value_parser = parse_request_size
    )]
    pub max_request_size: usize,

    /// Longest time one request may take, waiting for a slot included (s, m, h).
    ///
    /// Example: --request-timeout 2m
    #[arg(
        long,
        env = "SCANCACHE_REQUEST_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_duration
    )]
    pub request_timeout: Duration,

    /// Requests served at once; more wait for a slot.
    ///
    /// Example: --max-concurrent-requests 128
    #[arg(
        long,
        env = "SCANCACHE_MAX_CONCURRENT_REQUESTS",
        value_name = "N",
        default_value = "512",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_concurrent_requests: u32,

    /// Serve GET /metrics on this separate address instead of the main one.
    ///
    /// Example: --metrics-listen 127.0.0.1:9154
    #[arg(long, env = "SCANCACHE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// How long to let requests in flight finish after SIGINT/SIGTERM.
    ///
    /// Example: --shutdown-grace 30s
    #[arg(
        long,
        env = "SCANCACHE_SHUTDOWN_GRACE",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub shutdown_grace: Duration,
}

/// Arguments of `fs` and `rootfs`.
#[derive(Debug, Args)]
pub struct TreeArgs {
    /// The directory to scan.
    pub path: PathBuf,

    /// Report format.
    ///
    /// Example: --format json
    #[arg(
        short,
        long,
        value_enum,
        default_value = "table",
        env = "SCANCACHE_FORMAT"
    )]
    pub format: ReportFormat,

    /// Write the report to FILE (atomically) instead of standard output.
    ///
    /// Example: -o report.json
    #[arg(short, long, env = "SCANCACHE_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Directories not to enter, as globs relative to PATH (*, **, ?, [..]); repeat or
    /// separate with commas.
    ///
    /// Example: --skip-dirs '**/node_modules,vendor'
    #[arg(
        long,
        env = "SCANCACHE_SKIP_DIRS",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub skip_dirs: Vec<String>,

    /// Files not to read, as globs relative to PATH; repeat or separate with commas.
    ///
    /// Example: --skip-files '**/testdata/*.lock'
    #[arg(
        long,
        env = "SCANCACHE_SKIP_FILES",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub skip_files: Vec<String>,

    /// Report development dependencies too (npm, pnpm, poetry, composer).
    ///
    /// Example: scancache fs . --include-dev-deps
    #[arg(long, env = "SCANCACHE_INCLUDE_DEV_DEPS")]
    pub include_dev_deps: bool,

    /// Largest OS package database file read; a larger one is skipped with a warning.
    ///
    /// Example: --max-db-size 512MiB
    #[arg(
        long,
        env = "SCANCACHE_MAX_DB_SIZE",
        value_name = "SIZE",
        default_value = "256MiB",
        value_parser = parse_db_size
    )]
    pub max_db_size: u64,

    /// Scanning through a server (`--server`, `--scanners`).
    #[command(flatten)]
    pub remote: ServerScanArgs,
}

/// Arguments of `sbom`.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The SBOM: CycloneDX 1.2-1.7 JSON or SPDX 2.2/2.3 JSON.
    pub file: PathBuf,

    /// Report format.
    ///
    /// Example: --format json
    #[arg(
        short,
        long,
        value_enum,
        default_value = "table",
        env = "SCANCACHE_FORMAT"
    )]
    pub format: ReportFormat,

    /// Write the report to FILE (atomically) instead of standard output.
    ///
    /// Example: -o report.json
    #[arg(short, long, env = "SCANCACHE_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Scanning through a server (`--server`, `--scanners`).
    #[command(flatten)]
    pub remote: ServerScanArgs,
}

impl CleanArgs {
    /// True when at least one thing to remove is selected.
    pub fn any(&self) -> bool {
        self.all
            || self.scan_cache
            || self.vuln_db
            || self.java_db
            || self.checks_bundle
            || self.vex_repo
    }
}

/// What a server reports with `--server --scanners`, by the reference's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scanner {
    /// Vulnerabilities of the packages (the server needs a vulnerability database).
    Vuln,
    /// Licenses of the packages, classified.
    License,
    /// Secrets (scancache's analysers record none; a reference client's may).
    Secret,
    /// Configuration checks (likewise).
    Misconfig,
}

impl Scanner {
    /// The reference's name.
    pub fn name(self) -> &'static str {
        match self {
            Scanner::Vuln => "vuln",
            Scanner::License => "license",
            Scanner::Secret => "secret",
            Scanner::Misconfig => "misconfig",
        }
    }
}

/// Format of the `image` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// The OS and a package table, for people.
    Table,
    /// A JSON report shaped like the reference scanner's.
    Json,
    /// A CycloneDX 1.6 JSON SBOM.
    Cyclonedx,
    /// An SPDX 2.3 JSON SBOM.
    #[value(name = "spdx-json")]
    SpdxJson,
}

/// What `clean` removes.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Remove everything below.
    #[arg(long)]
    pub all: bool,
    /// Remove the scan cache of the selected backend (fs: <cache-dir>/fanal; Redis: only
    /// fanal::* keys).
    #[arg(long)]
    pub scan_cache: bool,
    /// Remove the vulnerability database (<cache-dir>/db).
    #[arg(long)]
    pub vuln_db: bool,
    /// Remove the Java index database (<cache-dir>/java-db).
    #[arg(long)]
    pub java_db: bool,
    /// Remove the misconfiguration checks bundle (<cache-dir>/policy).
    #[arg(long)]
    pub checks_bundle: bool,
    /// Remove the VEX repositories (<cache-dir>/vex).
    #[arg(long)]
    pub vex_repo: bool,
}

/// Output format of `cache stats` and `cache ls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// Entry kind filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Image records.
    Artifact,
    /// Layer analysis results.
    Blob,
    /// Stored reports of directory scans (scancache's own).
    Report,
}

impl From<KindArg> for EntryKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Artifact => EntryKind::Artifact,
            KindArg::Blob => EntryKind::Blob,
            KindArg::Report => EntryKind::Report,
        }
    }
}

/// `cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show the backend, entry counts, stored bytes, expired entries and disk size.
    ///
    /// Example: scancache cache stats --format json
    Stats {
        /// Output format.
        ///
        /// Example: --format json
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// List entries: kind, ID, stored size and expiry.
    ///
    /// Example: scancache cache ls --kind blob
    Ls {
        /// Only entries of this kind.
        ///
        /// Example: --kind artifact
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Output format.
        ///
        /// Example: --format json
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Print the JSON document stored under an ID (with --kind report, the stored report
    /// as it was written).
    ///
    /// Example: scancache cache get sha256:5317…
    Get {
        /// The entry's ID (sha256:<64 hex>).
        #[arg(value_parser = parse_id)]
        id: Digest,
        /// Which kind of entry to read; by default blob, then artifact.
        ///
        /// Example: --kind artifact
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Remove entries (artifacts, blobs or stored reports) by ID.
    ///
    /// Example: scancache cache rm sha256:5317… sha256:9a0b…
    Rm {
        /// IDs to remove.
        #[arg(required = true, value_parser = parse_id)]
        ids: Vec<Digest>,
    },
    /// Remove expired and stale-schema entries, and with --unused-for those nobody read
    /// for that long; the fs backend also returns disk space.
    ///
    /// Example: scancache cache gc --unused-for 30d
    Gc {
        /// Also remove entries not read (nor written) for this long (s, m, h, d). fs and
        /// memory record reads; Redis does not (use --cache-ttl with --cache-ttl-refresh).
        ///
        /// Example: --unused-for 30d
        #[arg(long, value_name = "DURATION", value_parser = parse_unused_for)]
        unused_for: Option<std::time::Duration>,
    },
    /// Write every entry as NDJSON (kind, id, document, expires_at) to FILE or stdout (-).
    ///
    /// Example: scancache cache export backup.ndjson
    Export {
        /// Destination file, or - for standard output.
        file: PathBuf,
    },
    /// Read entries into the selected backend: an export (`cache export`) from FILE or
    /// stdin (-), or Trivy's fs cache with --from-trivy.
    ///
    /// --from-trivy PATH imports the reference scanner's (Trivy's) fs cache, its
    /// fanal/fanal.db: every image record and layer result, unchanged (the same IDs and
    /// JSON), without expiry. Trivy derives its IDs from its own analysers, so `scancache
    /// image` never looks these entries up: they serve Trivy clients that use this backend,
    /// through `scancache server` or a Redis both tools share. The whole file is checked
    /// before anything is written, so a damaged file imports nothing.
    ///
    /// Examples:
    ///   scancache --cache-backend redis://cache:6379 cache import backup.ndjson
    ///   scancache --cache-backend redis://cache:6379 cache import --from-trivy ~/.cache/trivy
    ///   scancache cache import --from-trivy ~/.cache/trivy/fanal/fanal.db --dry-run
    #[command(verbatim_doc_comment)]
    Import {
        /// Source file, or - for standard input.
        #[arg(required_unless_present = "from_trivy", conflicts_with = "from_trivy")]
        file: Option<PathBuf>,
        /// Import Trivy's fs cache instead: its fanal/fanal.db, or the cache directory
        /// holding it (Trivy's --cache-dir, e.g. ~/.cache/trivy).
        ///
        /// Example: scancache cache import --from-trivy ~/.cache/trivy
        #[arg(long, value_name = "PATH")]
        from_trivy: Option<PathBuf>,
        /// Read and check every entry and count them, but write nothing (with --from-trivy,
        /// without opening the backend at all).
        ///
        /// Example: scancache cache import --from-trivy ~/.cache/trivy --dry-run
        #[arg(long)]
        dry_run: bool,
        /// Stop at the first bad line instead of skipping it (lines read before it in the
        /// same batch of 1000 are not imported); with --from-trivy, import nothing if any
        /// entry is bad.
        ///
        /// Example: scancache cache import --strict backup.ndjson
        #[arg(long)]
        strict: bool,
    },
}

fn parse_unused_for(s: &str) -> Result<std::time::Duration, String> {
    match cache_core::parse_ttl(s) {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err("must be longer than 0; use e.g. 7d or 30d".to_owned()),
        Err(e) => Err(e
            .config_parts()
            .map_or_else(|| e.to_string(), |(_, reason)| reason.to_owned())),
    }
}

fn parse_db_size(s: &str) -> Result<u64, String> {
    cache_core::parse_size(s).map_err(|e| e.to_string())
}

fn parse_id(s: &str) -> Result<Digest, String> {
    Digest::parse(s).map_err(|e| e.to_string())
}

fn parse_request_size(s: &str) -> Result<usize, String> {
    let n = cache_core::parse_size(s).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("must be more than 0".into());
    }
    usize::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// A duration such as `30s`, `2m`, `1h` (more than zero).
fn parse_duration(s: &str) -> Result<Duration, String> {
    match cache_core::parse_ttl(s) {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err("must be more than 0".into()),
        Err(e) => Err(e.config_parts().map_or_else(
            || e.to_string(),
            |(_, r)| r.replace(", or 0 for no expiry", ""),
        )),
    }
}

/// A `--lease-timeout`: `None` for 0 (no claims).
#[derive(Clone, Copy, Debug)]
pub struct Lease(pub Option<Duration>);

fn parse_lease(s: &str) -> Result<Lease, String> {
    cache_core::parse_ttl(s).map(Lease).map_err(|e| {
        e.config_parts().map_or_else(
            || e.to_string(),
            |(_, r)| r.replace(", or 0 for no expiry", ", or 0 for no claims"),
        )
    })
}

fn parse_header_name(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not an HTTP header name"))
    }
}
