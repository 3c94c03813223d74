//! [`RedisCluster`]: a real Redis Cluster of throwaway nodes on free loopback ports.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use super::{Certs, RedisServer, ServerOptions, Tls, free_port};

/// How long a node may be unreachable before the others mark it failed; short, so that
/// failover tests take seconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// A running Redis Cluster; every node is killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    tls: Tls,
    certs: Option<Certs>,
    masters: usize,
    _pki: Option<TempDir>,
}

impl RedisCluster {
    /// Starts `masters × (1 + replicas)` nodes, creates the cluster (`redis-cli --cluster
    /// create … --cluster-replicas <replicas> --cluster-yes`) and waits until every node
    /// reports `cluster_state:ok` and every replica is in sync. Over TLS, the cluster bus
    /// and replication use TLS too, and all nodes share one test CA.
    pub fn start(masters: usize, replicas: usize, tls: Tls) -> RedisCluster {
        assert!(
            masters >= 3,
            "redis-cli --cluster create needs at least 3 masters"
        );
        let pki = (tls != Tls::Off).then(|| tempfile::tempdir().unwrap());
        let certs = pki.as_ref().map(|d| Certs::generate(d.path()));
        let count = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .map(|_| {
                    let certs = certs.clone();
                    s.spawn(move || RedisServer::start(node_options(tls, certs)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let cluster = RedisCluster {
            nodes,
            tls,
            certs,
            masters,
            _pki: pki,
        };
        let mut args = vec!["create".to_owned()];
        args.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port())),
        );
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        let out = cluster.cluster_cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster
    }

    /// Every node, the first `masters` of them the masters the cluster started with.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// One node, to kill or pause it.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// Number of masters the cluster started with.
    pub fn initial_masters(&self) -> usize {
        self.masters
    }

    /// The test PKI, for a TLS cluster.
    pub fn certs(&self) -> Option<&Certs> {
        self.certs.as_ref()
    }

    /// The TLS mode.
    pub fn tls(&self) -> Tls {
        self.tls
    }

    /// The comma-separated URLs of the nodes at `indices` (`redis://` or `rediss://`),
    /// without credentials: a backend string for the cluster.
    pub fn urls_of(&self, indices: &[usize]) -> String {
        let scheme = if self.tls == Tls::Off {
            "redis"
        } else {
            "rediss"
        };
        indices
            .iter()
            .map(|&i| format!("{scheme}://127.0.0.1:{}", self.nodes[i].port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The URLs of every initial master: the usual backend string.
    pub fn urls(&self) -> String {
        self.urls_of(&(0..self.masters).collect::<Vec<_>>())
    }

    /// Indices of the running nodes that are masters now (`ROLE`).
    pub fn master_indices(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].is_running()
                    && self.nodes[i].cli(&["ROLE"]).lines().next() == Some("master")
            })
            .collect()
    }

    /// Removes every key from every master (`FLUSHALL`), and checks that nothing is
    /// left.
    pub fn flushall(&self) {
        for i in self.master_indices() {
            assert_eq!(
                self.nodes[i].cli(&["FLUSHALL"]),
                "OK",
                "FLUSHALL on node {i}"
            );
        }
        assert_eq!(self.key_count(), 0);
    }

    /// Keys on all masters together (`DBSIZE`).
    pub fn key_count(&self) -> u64 {
        self.master_indices()
            .into_iter()
            .map(|i| self.nodes[i].cli(&["DBSIZE"]).parse::<u64>().unwrap_or(0))
            .sum()
    }

    /// A node's cluster ID (`CLUSTER MYID`).
    pub fn node_id(&self, index: usize) -> String {
        self.nodes[index].cli(&["CLUSTER", "MYID"])
    }

    /// Runs `redis-cli -c <args>` (cluster mode: it follows redirections) against a
    /// running master and returns its standard output, trimmed: how another client
    /// reads the cluster.
    pub fn cli(&self, args: &[&str]) -> String {
        let node = self
            .master_indices()
            .first()
            .copied()
            .expect("a running master");
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        self.nodes[node].cli(&all)
    }

    /// Runs `redis-cli --cluster <args>` (with the test PKI over TLS).
    pub fn cluster_cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("redis-cli");
        if let Some(certs) = &self.certs {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(&certs.ca)
                .arg("--cert")
                .arg(&certs.client_cert)
                .arg("--key")
                .arg(&certs.client_key);
        }
        cmd.arg("--cluster")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect(
                "cannot run redis-cli (it comes with redis-server: apt-get install redis-server)",
            )
    }

    /// Waits until every running node reports `cluster_state:ok`, knows the same number
    /// of nodes, and every replica's link to its master is up; panics with the nodes'
    /// views after `limit`.
    pub fn wait_until_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let running: Vec<&RedisServer> = self.nodes.iter().filter(|n| n.is_running()).collect();
        loop {
            let ok = running.iter().all(|n| {
                let info = n.cli(&["CLUSTER", "INFO"]);
                let field = |name: &str| {
                    info.lines()
                        .find_map(|l| l.trim().strip_prefix(name).map(str::to_owned))
                };
                let role = n.cli(&["ROLE"]);
                field("cluster_state:").as_deref() == Some("ok")
                    && field("cluster_slots_ok:").as_deref() == Some("16384")
                    && (role.lines().next() == Some("master")
                        || n.info_field("replication", "master_link_status").as_deref()
                            == Some("up"))
            });
            if ok {
                return;
            }
            if Instant::now() > deadline {
                let views: Vec<String> = running
                    .iter()
                    .map(|n| format!("{}: {}", n.port(), n.cli(&["CLUSTER", "NODES"])))
                    .collect();
                panic!("cluster not ready after {limit:?}:\n{}", views.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every replica has received everything its master has (the replica's
    /// offset in the master's `INFO replication` equals the master's own), so that a
    /// failover loses nothing written before; panics after `limit`.
    pub fn wait_for_replication(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        for i in self.master_indices() {
            loop {
                let info = self.nodes[i].info("replication");
                let get = |k: &str| info.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
                let offset = get("master_repl_offset").unwrap_or_default();
                let replicas: usize = get("connected_slaves")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let synced = (0..replicas).all(|r| {
                    get(&format!("slave{r}")).is_some_and(|v| {
                        v.split(',').any(|f| f == format!("offset={offset}"))
                            && v.contains("state=online")
                    })
                });
                if synced {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replicas of node {i} lag: {info:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The options of one cluster node.
fn node_options(tls: Tls, certs: Option<Certs>) -> ServerOptions {
    let mut extra_args: Vec<String> = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        &NODE_TIMEOUT_MS.to_string(),
        "--cluster-port",
        &free_port().to_string(),
        // Replicas take over however long they were cut off (the tests kill masters).
        "--cluster-replica-validity-factor",
        "0",
    ]
    .map(String::from)
    .to_vec();
    if tls != Tls::Off {
        extra_args.extend(["--tls-cluster", "yes"].map(String::from));
    }
    ServerOptions {
        tls,
        certs,
        extra_args,
        ..Default::default()
    }
}
