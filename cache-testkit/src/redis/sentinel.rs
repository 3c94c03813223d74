//! [`SentinelSetup`]: a master, its replicas and the sentinels that watch them, all
//! throwaway servers on free loopback ports.

use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Certs, RedisServer, ServerOptions, Tls};

/// The name the sentinels know the master by.
pub const MASTER_NAME: &str = "mymaster";

/// How long the master may not answer before the sentinels start a failover; short, so
/// that failover tests take seconds.
pub const DOWN_AFTER_MS: u64 = 1000;

/// What to start.
#[derive(Clone, Debug)]
pub struct SentinelOptions {
    /// Replicas of the master.
    pub replicas: usize,
    /// Sentinels (quorum 1: any one may start a failover).
    pub sentinels: usize,
    /// TLS for every server, replication and the sentinels' own connections.
    pub tls: Tls,
    /// The data nodes' password (`requirepass`, `masterauth`, the sentinels'
    /// `auth-pass`).
    pub password: Option<String>,
    /// The sentinels' own password (`requirepass` on the sentinels).
    pub sentinel_password: Option<String>,
}

impl Default for SentinelOptions {
    fn default() -> Self {
        SentinelOptions {
            replicas: 1,
            sentinels: 1,
            tls: Tls::Off,
            password: None,
            sentinel_password: None,
        }
    }
}

/// A running master, replicas and sentinels; all killed on drop.
pub struct SentinelSetup {
    /// The data nodes; the first was the master when the setup started.
    pub servers: Vec<RedisServer>,
    /// The sentinels.
    pub sentinels: Vec<RedisServer>,
    options: SentinelOptions,
    certs: Option<Certs>,
    _pki: Option<TempDir>,
}

impl SentinelSetup {
    /// Starts the master, its replicas (in sync before this returns) and the sentinels,
    /// and waits until the sentinels know every replica.
    pub fn start(options: SentinelOptions) -> SentinelSetup {
        let pki = (options.tls != Tls::Off).then(|| tempfile::tempdir().unwrap());
        let certs = pki.as_ref().map(|d| Certs::generate(d.path()));
        let data = |extra_args: Vec<String>| ServerOptions {
            tls: options.tls,
            certs: certs.clone(),
            password: options.password.clone(),
            extra_args,
            ..Default::default()
        };
        let auth: Vec<String> = match &options.password {
            Some(pw) => vec!["--masterauth".into(), pw.clone()],
            None => Vec::new(),
        };
        let master = RedisServer::start(data(auth.clone()));
        let mut servers = vec![master];
        for _ in 0..options.replicas {
            let mut args = auth.clone();
            args.extend([
                "--replicaof".into(),
                "127.0.0.1".into(),
                servers[0].port().to_string(),
            ]);
            servers.push(RedisServer::start(data(args)));
        }
        let sentinels = (0..options.sentinels)
            .map(|_| start_sentinel(servers[0].port(), &options, certs.clone()))
            .collect();
        let setup = SentinelSetup {
            servers,
            sentinels,
            options,
            certs,
            _pki: pki,
        };
        setup.wait_until_ready(Duration::from_secs(20));
        setup
    }

    /// `redis+sentinel://[:password@]127.0.0.1:S1,…/mymaster/<db>` (`rediss+sentinel://`
    /// over TLS), with the data nodes' password.
    pub fn url(&self, db: u32) -> String {
        let scheme = if self.options.tls == Tls::Off {
            "redis+sentinel"
        } else {
            "rediss+sentinel"
        };
        let auth = self
            .options
            .password
            .as_ref()
            .map(|pw| format!(":{pw}@"))
            .unwrap_or_default();
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("{scheme}://{auth}{}/{MASTER_NAME}/{db}", hosts.join(","))
    }

    /// The test PKI, over TLS.
    pub fn certs(&self) -> Option<&Certs> {
        self.certs.as_ref()
    }

    /// The master's port, as the first running sentinel says.
    pub fn master_port(&self) -> u16 {
        let sentinel = self
            .sentinels
            .iter()
            .find(|s| s.is_running())
            .expect("a running sentinel");
        let answer = sentinel.cli(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME]);
        answer
            .lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the sentinel names no master: {answer:?}"))
    }

    /// The data node listening on `port`.
    pub fn server_at(&mut self, port: u16) -> &mut RedisServer {
        self.servers
            .iter_mut()
            .find(|s| s.port() == port)
            .expect("a data node on that port")
    }

    /// Asks the sentinels for a failover (`SENTINEL FAILOVER`) and waits until they name
    /// another master that says it is one; returns its port.
    pub fn failover(&self) -> u16 {
        let old = self.master_port();
        let answer = self.sentinels[0].cli(&["SENTINEL", "FAILOVER", MASTER_NAME]);
        assert_eq!(answer, "OK", "SENTINEL FAILOVER");
        self.wait_for_new_master(old, Duration::from_secs(20))
    }

    /// Waits until the sentinels name a master other than `old` and it says it is one.
    pub fn wait_for_new_master(&self, old: u16, limit: Duration) -> u16 {
        let deadline = Instant::now() + limit;
        loop {
            let port = self.master_port();
            if port != old
                && let Some(server) = self.servers.iter().find(|s| s.port() == port)
                && server.cli(&["ROLE"]).lines().next() == Some("master")
            {
                return port;
            }
            assert!(
                Instant::now() < deadline,
                "no new master after {limit:?}; sentinel log:\n{}",
                self.sentinels[0].log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_until_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let replicas_up = self.servers[1..].iter().all(|r| {
                r.info_field("replication", "master_link_status").as_deref() == Some("up")
            });
            let known = self.sentinels.iter().all(|s| {
                let fields: Vec<String> = s
                    .cli(&["SENTINEL", "MASTER", MASTER_NAME])
                    .lines()
                    .map(str::to_owned)
                    .collect();
                let get = |name: &str| {
                    fields
                        .iter()
                        .position(|f| f == name)
                        .and_then(|i| fields.get(i + 1))
                        .cloned()
                };
                get("flags").as_deref() == Some("master")
                    && get("num-slaves").and_then(|n| n.parse().ok()) == Some(self.options.replicas)
            });
            if replicas_up && known {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel setup is not ready after {limit:?}; sentinel log:\n{}",
                self.sentinels
                    .first()
                    .map(RedisServer::log)
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts a sentinel watching the master at `127.0.0.1:<master_port>` (a proxy's port
/// works too), with the setup's TLS and passwords.
pub fn start_sentinel(
    master_port: u16,
    options: &SentinelOptions,
    certs: Option<Certs>,
) -> RedisServer {
    let mut config = format!(
        "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n"
    );
    if let Some(pw) = &options.password {
        config.push_str(&format!("sentinel auth-pass {MASTER_NAME} {pw}\n"));
    }
    RedisServer::start(ServerOptions {
        tls: options.tls,
        certs,
        password: options.sentinel_password.clone(),
        sentinel_config: Some(config),
        ..Default::default()
    })
}
