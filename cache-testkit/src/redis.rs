//! Throwaway `redis-server` processes for tests: plain, TLS, mutual TLS, with a password
//! and an ACL user; Redis Clusters and Sentinel setups made of them.
//! The backend's own tests and the command line's end-to-end tests both use them.
//!
//! - [`require_redis`] decides whether Redis tests can run: `redis-server` must be on
//!   `PATH`, else the test **fails** telling how to install it, unless
//!   `SCANCACHE_SKIP_REDIS_TESTS=1` is set, which turns that into a visible skip.
//! - [`RedisServer::start`] starts a server on a free loopback port (never 6379) with no
//!   persistence, in its own temp dir, and waits until it accepts connections. The guard
//!   kills the process when dropped, also when a test panics.
//! - [`Certs`] generates a CA, a server certificate for `localhost`/`127.0.0.1` and a client
//!   certificate, all signed by that CA, as PEM files.
//! - [`RedisCluster::start`] starts `masters × (1 + replicas)` nodes (`--cluster-enabled
//!   yes`, a 1 s node timeout so failovers are quick), joins them with `redis-cli --cluster
//!   create … --cluster-yes`, and waits until every node says `cluster_state:ok`. Over TLS
//!   the cluster bus and replication use TLS too (`--tls-cluster yes`, `--tls-replication
//!   yes`), with one test CA for every node.
//! - [`SentinelSetup::start`] starts a master, replicas and sentinels (`redis-server CONF
//!   --sentinel`, 1 s `down-after-milliseconds`, quorum 1) and waits until the sentinels
//!   know every replica, so a failover can happen.
//!
//! A server lives as long as its guard, and never longer than the test process: each one
//! has a watchdog (`sh`) that kills it once the test process is gone, so servers shared
//! by a test binary through a `static` (which is never dropped) do not outlive it.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod cluster;
mod sentinel;

pub use cluster::RedisCluster;
pub use sentinel::{MASTER_NAME, SentinelOptions, SentinelSetup, start_sentinel};

use tempfile::TempDir;

/// The env var that turns a missing `redis-server` into a skip.
pub const SKIP_VAR: &str = "SCANCACHE_SKIP_REDIS_TESTS";

/// Number of databases every test server has, so each cache of a test gets its own.
pub const DATABASES: u32 = 256;

/// True when `redis-server` is on `PATH`. When it is not: panics with installation
/// instructions, or, with `SCANCACHE_SKIP_REDIS_TESTS=1`, prints a SKIPPED line and returns
/// false.
pub fn require_redis() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    });
    if found {
        return true;
    }
    if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
        eprintln!("SKIPPED: redis-server is not on PATH and {SKIP_VAR}=1 is set");
        return false;
    }
    panic!(
        "redis-server is not on PATH: these tests need a real Redis. Install it \
         (`apt-get install redis-server`), or set {SKIP_VAR}=1 to skip them"
    );
}

/// How a test server speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP.
    Off,
    /// TLS; clients need not present a certificate.
    ServerOnly,
    /// TLS; clients must present a certificate signed by the test CA.
    Mutual,
}

/// What kind of server to start.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// TLS mode.
    pub tls: Tls,
    /// `requirepass` for the default user.
    pub password: Option<String>,
    /// An extra ACL user `(name, password)` with full access.
    pub acl_user: Option<(String, String)>,
    /// More `redis-server` arguments, e.g. `--rename-command`.
    pub extra_args: Vec<String>,
    /// The PKI to use for TLS, shared by the servers of a cluster or a sentinel setup;
    /// `None` generates one for this server.
    pub certs: Option<Certs>,
    /// Run as a sentinel, with this configuration file text (`sentinel monitor …`).
    pub sentinel_config: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tls: Tls::Off,
            password: None,
            acl_user: None,
            extra_args: Vec::new(),
            certs: None,
            sentinel_config: None,
        }
    }
}

/// PEM files of a test PKI.
#[derive(Clone, Debug)]
pub struct Certs {
    /// The CA certificate.
    pub ca: PathBuf,
    /// Server certificate for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// Client certificate for mutual TLS.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

impl Certs {
    /// Generates a fresh CA and certificates into `dir`.
    pub fn generate(dir: &Path) -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "scancache test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, cn: &str| {
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "scancache test server",
        );
        let (client_pem, client_key) = leaf(vec!["client".into()], "scancache test client");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Certs {
            ca: write("ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &server_pem),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key),
        }
    }
}

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Option<Guarded>,
    port: u16,
    options: ServerOptions,
    dir: TempDir,
    /// The test PKI, for TLS servers.
    pub certs: Option<Certs>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it is ready.
    pub fn start(options: ServerOptions) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let certs = match (&options.certs, options.tls) {
            (_, Tls::Off) => None,
            (Some(certs), _) => Some(certs.clone()),
            (None, _) => Some(Certs::generate(dir.path())),
        };
        let mut server = RedisServer {
            child: None,
            port: 0,
            options,
            dir,
            certs,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server did not start: {}", server.log());
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").child.id()
    }

    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The TLS mode.
    pub fn tls(&self) -> Tls {
        self.options.tls
    }

    /// Runs `redis-cli` against this server (with the test PKI over TLS, and the
    /// password if it has one) and returns its standard output, trimmed. Panics when
    /// `redis-cli` cannot run.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(certs) = &self.certs {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(&certs.ca)
                .arg("--cert")
                .arg(&certs.client_cert)
                .arg("--key")
                .arg(&certs.client_key);
        }
        if let Some(pw) = &self.options.password {
            cmd.args(["-a", pw, "--no-auth-warning"]);
        }
        let out = cmd.args(args).stdin(Stdio::null()).output().expect(
            "cannot run redis-cli (it comes with redis-server: apt-get install redis-server)",
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The `field:value` lines of `INFO section` as pairs.
    pub fn info(&self, section: &str) -> Vec<(String, String)> {
        self.cli(&["INFO", section])
            .lines()
            .filter_map(|l| {
                let (k, v) = l.trim().split_once(':')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect()
    }

    /// One field of `INFO section`, if present.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        self.info(section)
            .into_iter()
            .find_map(|(k, v)| (k == field).then_some(v))
    }

    /// The server's own directory (its log, its configuration, its cluster state).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis://127.0.0.1:PORT/DB` (or `rediss://` for TLS servers), without credentials.
    pub fn url(&self, db: u32) -> String {
        let scheme = if self.options.tls == Tls::Off {
            "redis"
        } else {
            "rediss"
        };
        format!("{scheme}://127.0.0.1:{}/{db}", self.port)
    }

    /// Like [`RedisServer::url`] with `user:password@` (user may be empty).
    pub fn url_with_auth(&self, user: &str, password: &str, db: u32) -> String {
        self.url(db)
            .replacen("://", &format!("://{user}:{password}@"), 1)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            child.kill();
        }
    }

    /// Starts the server again on the same port, with an empty dataset.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.launch() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server did not restart on port {}: {}",
            self.port,
            self.log()
        );
    }

    /// Freezes the process (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts the process on `self.port`; false when it exited (port taken) before ready.
    fn launch(&mut self) -> bool {
        assert_ne!(self.port, 6379, "never touch the system Redis");
        let _ = std::fs::remove_file(self.log_path());
        let port = self.port.to_string();
        let mut args: Vec<String> = Vec::new();
        if let Some(config) = &self.options.sentinel_config {
            let path = self.dir.path().join("sentinel.conf");
            std::fs::write(&path, config).unwrap();
            args.push(path.display().to_string());
            args.push("--sentinel".into());
        }
        args.extend::<[String; 12]>([
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--databases".into(),
            DATABASES.to_string(),
            "--dir".into(),
            self.dir.path().display().to_string(),
            "--logfile".into(),
            self.log_path().display().to_string(),
        ]);
        match (&self.certs, self.options.tls) {
            (Some(certs), Tls::ServerOnly | Tls::Mutual) => {
                let auth_clients = if self.options.tls == Tls::Mutual {
                    "yes"
                } else {
                    "no"
                };
                args.extend(
                    [
                        "--port",
                        "0",
                        "--tls-port",
                        &port,
                        "--tls-cert-file",
                        &certs.server_cert.display().to_string(),
                        "--tls-key-file",
                        &certs.server_key.display().to_string(),
                        "--tls-ca-cert-file",
                        &certs.ca.display().to_string(),
                        "--tls-auth-clients",
                        auth_clients,
                        // Replication and sentinels' connections use TLS too.
                        "--tls-replication",
                        "yes",
                    ]
                    .map(String::from),
                );
            }
            _ => args.extend(["--port".to_string(), port.clone()]),
        }
        if let Some(pw) = &self.options.password {
            args.extend(["--requirepass".to_string(), pw.clone()]);
        }
        if let Some((user, pw)) = &self.options.acl_user {
            args.extend(
                ["--user", user, "on", &format!(">{pw}"), "~*", "&*", "+@all"].map(String::from),
            );
        }
        args.extend(self.options.extra_args.iter().cloned());
        let mut cmd = Command::new("redis-server");
        cmd.args(&args);
        let mut child = Guarded::spawn(cmd);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.child.try_wait().ok().flatten().is_some() {
                child.kill();
                return false;
            }
            // A sentinel logs no "Ready" line; it is ready once it monitors its master.
            let ready = if self.options.sentinel_config.is_some() {
                "+monitor master"
            } else {
                "Ready to accept connections"
            };
            if self.log().contains(ready) && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL works on a paused (SIGSTOPped) server too.
        self.kill();
    }
}

/// A loopback port nothing listens on right now (the OS picks it from the ephemeral range).
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port != 6379 {
            return port;
        }
    }
}

/// A server process and its watchdog, which kills the server once the test process is
/// gone (so a server in a `static`, never dropped, does not outlive the test binary).
struct Guarded {
    child: Child,
    watchdog: Option<Child>,
}

impl Guarded {
    /// Spawns `cmd` (its output discarded) with a watchdog.
    fn spawn(mut cmd: Command) -> Guarded {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run redis-server (apt-get install redis-server)");
        // The watchdog is killed first whenever the server is killed here, so it never
        // signals a process ID that has been reused.
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -9 {child} 2>/dev/null",
            parent = std::process::id(),
            child = child.id()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Guarded { child, watchdog }
    }

    /// Kills the watchdog, then the server (SIGKILL), and waits for both.
    fn kill(mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}
