//! [`Cluster`]: a Redis Cluster's slot map, a [`Node`] per master, and batches sent as
//! one pipeline per master — all at once, so a batch of any size costs one round trip.
//!
//! Keys keep the reference layout (no hash tags), so they spread over all 16384 slots and
//! every master holds some. A batch is split by master using the slot map; the commands
//! for each master go as one pipeline (the server checks each command's slot on its own,
//! so a pipeline may span slots as long as one master owns them). Answers that redirect
//! are followed per command:
//!
//! - `MOVED slot host:port` (the slot has moved): the command is resent there, and the
//!   slot map is read again (`CLUSTER SLOTS`) before the next batch;
//! - `ASK slot host:port` (the slot is being migrated and the key is already there):
//!   resent there after `ASKING`, in the same pipeline;
//! - `TRYAGAIN` (a multi-key command in a slot mid-migration): resent after a short wait;
//! - `CLUSTERDOWN`: the cluster cannot serve (a master failed and no replica has taken
//!   over yet); the batch fails with that, naming the node.
//!
//! A master that cannot be reached makes the map be read again (a replica may have been
//! promoted) and its commands be sent once more; if it still fails, so does the batch.
//! Nothing is read from replicas.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cache_core::{Error, Result, Setting};
use futures_util::future::join_all;
use redis::Value;

use crate::{
    config::{NodeTemplate, Target, bracketed},
    node::{Check, Node, NodeOptions, Report, Settings},
    topology::Batch,
};

/// Number of hash slots.
const SLOTS: usize = 16384;

/// A slot no master serves, in [`SlotMap::owner`].
const UNSERVED: u16 = u16::MAX;

/// Most rounds of redirections one batch follows before giving up.
const MAX_ROUNDS: u32 = 8;

/// The wait before resending after `TRYAGAIN`, times the round.
const TRY_AGAIN_WAIT: Duration = Duration::from_millis(20);

/// A Redis Cluster as one cache.
pub(crate) struct Cluster {
    seeds: Vec<Target>,
    template: NodeTemplate,
    tls: bool,
    settings: Arc<Settings>,
    map: RwLock<Arc<SlotMap>>,
    /// Bumped each time the map is read again.
    epoch: AtomicU64,
    /// Held while the map is read again, so concurrent batches read it once.
    refreshing: tokio::sync::Mutex<()>,
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    report: Report,
}

/// Which master serves each slot.
struct SlotMap {
    /// Per slot, an index into `masters` or [`UNSERVED`].
    owner: Vec<u16>,
    /// The masters as `(host, port)`.
    masters: Vec<(String, u16)>,
}

/// Where a command goes next.
#[derive(Clone)]
enum Route {
    /// To the master of its slot.
    Slot,
    /// To this node, because it answered `MOVED` elsewhere.
    Moved(String),
    /// To this node after `ASKING`, because it answered `ASK` elsewhere.
    Ask(String),
}

/// Where the commands of one round go: a master of the slot map (by index), or the node a
/// redirection named.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Dest {
    Master(u16),
    Addr(String),
}

/// What an answer says to do.
enum Redirect {
    Moved(String),
    Ask(String),
    Again,
    Refresh,
    Down,
}

impl Cluster {
    /// Reads the slot map from the first seed node that answers (the handshake and
    /// `CLUSTER SLOTS`/`CLUSTER INFO` in one round trip), then connects to every master
    /// at once (one more). Fails when no seed answers, a seed is not a cluster node, or
    /// the cluster says it is down.
    pub(crate) async fn connect(
        seeds: Vec<Target>,
        template: NodeTemplate,
        tls: bool,
        settings: Arc<Settings>,
    ) -> Result<Cluster> {
        let cluster = Cluster {
            report: Report::for_backend(&settings),
            seeds,
            template,
            tls,
            settings,
            map: RwLock::new(Arc::new(SlotMap::empty())),
            epoch: AtomicU64::new(0),
            refreshing: tokio::sync::Mutex::new(()),
            nodes: Mutex::new(HashMap::new()),
        };
        let mut failures = Vec::new();
        let mut found = None;
        for seed in &cluster.seeds {
            let node = cluster.new_node(seed, Check::Answers)?;
            let answers = match node
                .open(&[
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    redis::cmd("CLUSTER").arg("INFO").clone(),
                ])
                .await
            {
                Ok(answers) => answers,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            let mut answers = answers.into_iter();
            let (slots, info) = (
                answers.next().unwrap_or(Value::Nil),
                answers.next().unwrap_or(Value::Nil),
            );
            if let Value::ServerError(e) = &slots
                && e.details()
                    .is_some_and(|d| d.contains("cluster support disabled"))
            {
                return Err(Error::Config {
                    setting: Setting::Backend,
                    reason: format!(
                        "{}: node {} is not a Redis Cluster node (cluster support disabled); \
                         for one server give one URL",
                        cluster.settings.backend, node.addr
                    ),
                });
            }
            if let Some(e) = node
                .report()
                .failure("CLUSTER SLOTS", &[slots.clone(), info.clone()])
            {
                failures.push(e);
                continue;
            }
            let state = cluster_state(&info);
            if state != "ok" {
                return Err(node.report().unavailable(format!(
                    "the cluster is down: CLUSTER INFO says cluster_state:{state} (a master \
                     failed and no replica took over, or slots are unassigned)"
                )));
            }
            let map = SlotMap::parse(&slots, &seed.host).ok_or_else(|| {
                node.report()
                    .backend_error(format!("CLUSTER SLOTS: unexpected answer {slots:?}"))
            })?;
            found = Some((node, map));
            break;
        }
        let Some((seed, map)) = found else {
            return Err(combine(
                &cluster.report,
                "no node of the cluster answered",
                failures,
            ));
        };
        if map.masters.is_empty() {
            return Err(seed
                .report()
                .unavailable("the cluster has no master serving slots".into()));
        }
        // The seed was checked as a node that answers, not as a master (any node may be
        // a seed); the masters get their own connections, all at once.
        drop(seed);
        let masters = map.addrs();
        *cluster.map.write().expect("slot map lock") = Arc::new(map);
        let opened = join_all(masters.iter().map(|(host, port)| async {
            let node = cluster.node_at(host, *port)?;
            node.open(&[]).await.map(drop)
        }))
        .await;
        opened.into_iter().collect::<Result<Vec<()>>>()?;
        tracing::debug!(
            backend = %cluster.settings.backend,
            masters = masters.len(),
            "connected to Redis Cluster"
        );
        Ok(cluster)
    }

    /// How errors that concern no one node are reported.
    pub(crate) fn report(&self) -> &Report {
        &self.report
    }

    /// The current masters.
    pub(crate) fn masters(&self) -> Result<Vec<Arc<Node>>> {
        let map = self.map();
        map.addrs()
            .iter()
            .map(|(host, port)| self.node_at(host, *port))
            .collect()
    }

    /// Closes every node's connections.
    pub(crate) fn close(&self) {
        for node in self.lock_nodes().values() {
            node.close();
        }
    }

    /// Runs a batch: one pipeline per master, all sent at once; redirections followed
    /// per command (see the module documentation).
    pub(crate) async fn run(&self, what: &str, batch: Batch) -> Result<Vec<Value>> {
        let Batch { slots, cmds } = batch;
        let slots = slots.expect("cluster batches carry slots");
        let mut answers: Vec<Option<Value>> = (0..cmds.len()).map(|_| None).collect();
        let mut pending: Vec<(usize, Route)> = (0..cmds.len()).map(|i| (i, Route::Slot)).collect();
        let mut resent_after_failure = false;
        for round in 0..MAX_ROUNDS {
            let epoch = self.epoch.load(Ordering::Acquire);
            let map = self.map();
            // Commands for a master of the map are grouped by its index (no address
            // string per command); redirected ones by the address they name.
            let mut groups: HashMap<Dest, Vec<(usize, bool)>> = HashMap::new();
            for (i, route) in pending.drain(..) {
                let (dest, ask) = match route {
                    Route::Slot => {
                        let slot = slots.get(i).copied().unwrap_or_default();
                        let Some(master) = map.owner_of(slot) else {
                            return Err(self.report.unavailable(format!(
                                "{what}: no master serves hash slot {slot} (the cluster is \
                                 incomplete or failing over)"
                            )));
                        };
                        (Dest::Master(master), false)
                    }
                    Route::Moved(addr) => (Dest::Addr(addr), false),
                    Route::Ask(addr) => (Dest::Addr(addr), true),
                };
                groups.entry(dest).or_default().push((i, ask));
            }
            let sent = join_all(groups.into_iter().map(|(dest, items)| {
                let (cmds, map) = (&cmds, &map);
                async move {
                    let node = match &dest {
                        Dest::Master(m) => {
                            let (host, port) = &map.masters[usize::from(*m)];
                            self.node_at(host, *port)
                        }
                        Dest::Addr(addr) => self.node_by_addr(addr),
                    };
                    let addr = match (&node, &dest) {
                        (Ok(node), _) => node.addr.clone(),
                        (Err(_), Dest::Addr(addr)) => addr.clone(),
                        (Err(_), Dest::Master(_)) => String::new(),
                    };
                    let node = match node {
                        Ok(node) => node,
                        Err(e) => return (addr, items, Err(e)),
                    };
                    let mut pipe = Vec::with_capacity(items.len());
                    for &(i, ask) in &items {
                        if ask {
                            pipe.push(redis::cmd("ASKING"));
                        }
                        pipe.push(cmds[i].clone());
                    }
                    (addr, items, node.run(what, pipe).await)
                }
            }))
            .await;
            let mut refresh = false;
            let mut wait = false;
            let mut failed = None;
            for (addr, items, result) in sent {
                let values = match result {
                    Ok(values) => values,
                    Err(e) if e.is_unavailable() && !resent_after_failure => {
                        // Perhaps a replica has taken over: read the map, try once more.
                        pending.extend(items.into_iter().map(|(i, _)| (i, Route::Slot)));
                        refresh = true;
                        failed = Some(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let mut values = values.into_iter();
                for (i, ask) in items {
                    if ask {
                        values.next(); // ASKING's OK
                    }
                    let value = values.next().unwrap_or(Value::Nil);
                    match redirect(&value) {
                        None => answers[i] = Some(value),
                        Some(Redirect::Moved(to)) => {
                            pending.push((i, Route::Moved(to)));
                            refresh = true;
                        }
                        Some(Redirect::Ask(to)) => pending.push((i, Route::Ask(to))),
                        Some(Redirect::Again) => {
                            pending.push((i, Route::Slot));
                            wait = true;
                        }
                        Some(Redirect::Refresh) => {
                            pending.push((i, Route::Slot));
                            refresh = true;
                        }
                        Some(Redirect::Down) => {
                            let detail = match &value {
                                Value::ServerError(e) => {
                                    format!("{} {}", e.code(), e.details().unwrap_or_default())
                                }
                                _ => String::new(),
                            };
                            return Err(self.report.unavailable(format!(
                                "{what}: node {addr}: the cluster is down ({})",
                                detail.trim()
                            )));
                        }
                    }
                }
            }
            if pending.is_empty() {
                return Ok(answers
                    .into_iter()
                    .map(|a| a.unwrap_or(Value::Nil))
                    .collect());
            }
            if let Some(e) = failed {
                resent_after_failure = true;
                tracing::debug!(backend = %self.settings.backend, "{e}; reading the slot map again");
            }
            if refresh && let Err(e) = self.refresh(epoch).await {
                // Redirections carry their target; a lost master needs the new map.
                if resent_after_failure {
                    return Err(e);
                }
            }
            if wait {
                tokio::time::sleep(TRY_AGAIN_WAIT * (round + 1)).await;
            }
        }
        Err(self.report.backend_error(format!(
            "{what}: still redirected after {MAX_ROUNDS} rounds (is the cluster being \
             resharded very fast?)"
        )))
    }

    /// Reads the slot map again from a master or a seed node, unless another task did
    /// since `seen`.
    async fn refresh(&self, seen: u64) -> Result<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        if self.epoch.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        let masters = self.map().addrs();
        let mut candidates: Vec<Arc<Node>> = Vec::new();
        for (host, port) in &masters {
            candidates.push(self.node_at(host, *port)?);
        }
        // Seeds that are not masters (replicas, say) are asked too, through connections
        // of their own that need not be to a master.
        for seed in &self.seeds {
            if !masters
                .iter()
                .any(|(h, p)| *h == seed.host && *p == seed.port)
            {
                candidates.push(Arc::new(self.new_node(seed, Check::Answers)?));
            }
        }
        let mut failures = Vec::new();
        for node in candidates {
            let answer = node
                .run(
                    "CLUSTER SLOTS",
                    vec![redis::cmd("CLUSTER").arg("SLOTS").clone()],
                )
                .await;
            let value = match answer {
                Ok(mut values) => values.pop().unwrap_or(Value::Nil),
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            let host = node
                .addr
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let Some(map) = SlotMap::parse(&value, host) else {
                failures.push(
                    node.report()
                        .backend_error(format!("CLUSTER SLOTS: unexpected answer {value:?}")),
                );
                continue;
            };
            let keep: Vec<String> = map
                .addrs()
                .iter()
                .map(|(h, p)| format!("{}:{p}", bracketed(h)))
                .collect();
            *self.map.write().expect("slot map lock") = Arc::new(map);
            self.epoch.fetch_add(1, Ordering::AcqRel);
            // Nodes that serve no slot any more are let go (requests still using one
            // finish first).
            self.lock_nodes().retain(|addr, _| keep.contains(addr));
            tracing::debug!(backend = %self.settings.backend, "read the cluster's slot map again");
            return Ok(());
        }
        Err(combine(
            &self.report,
            "cannot read the cluster's slot map: no node answered",
            failures,
        ))
    }

    fn map(&self) -> Arc<SlotMap> {
        Arc::clone(&self.map.read().expect("slot map lock"))
    }

    fn lock_nodes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Node>>> {
        self.nodes.lock().expect("node map lock")
    }

    /// The node at `host:port`, connected to on first use.
    fn node_at(&self, host: &str, port: u16) -> Result<Arc<Node>> {
        let addr = format!("{}:{port}", bracketed(host));
        if let Some(node) = self.lock_nodes().get(&addr) {
            return Ok(Arc::clone(node));
        }
        let node = Arc::new(self.new_node(&self.template.target(host, port)?, Check::Master)?);
        Ok(Arc::clone(self.lock_nodes().entry(addr).or_insert(node)))
    }

    /// The node a redirection names (`host:port`).
    fn node_by_addr(&self, addr: &str) -> Result<Arc<Node>> {
        let (host, port) = split_addr(addr).ok_or_else(|| {
            self.report.backend_error(format!(
                "the cluster redirected to an invalid address {addr:?}"
            ))
        })?;
        self.node_at(&host, port)
    }

    /// A node: a master from the map must be one (`ROLE`), a seed need only answer.
    fn new_node(&self, target: &Target, check: Check) -> Result<Node> {
        Node::new(
            target,
            &self.settings,
            NodeOptions {
                check,
                force_tls: self.tls,
                label: Some(format!("node {}", target.addr())),
            },
        )
    }
}

impl SlotMap {
    fn empty() -> SlotMap {
        SlotMap {
            owner: vec![UNSERVED; SLOTS],
            masters: Vec::new(),
        }
    }

    /// Reads a `CLUSTER SLOTS` answer; a master without an address (`""`, `"?"`) is the
    /// node asked, at `asked_host`.
    fn parse(answer: &Value, asked_host: &str) -> Option<SlotMap> {
        let Value::Array(ranges) = answer else {
            return None;
        };
        let mut map = SlotMap::empty();
        for range in ranges {
            let Value::Array(fields) = range else {
                return None;
            };
            let (Some(start), Some(end), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let (start, end) = (int(start)?, int(end)?);
            let host = match master.first().and_then(text) {
                Some(h) if !h.is_empty() && h != "?" => h,
                _ => asked_host.to_owned(),
            };
            let port = u16::try_from(int(master.get(1)?)?).ok()?;
            let index = match map.masters.iter().position(|m| *m == (host.clone(), port)) {
                Some(i) => i,
                None => {
                    map.masters.push((host, port));
                    map.masters.len() - 1
                }
            };
            let index = u16::try_from(index).ok()?;
            let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
            if start > end || end >= SLOTS {
                return None;
            }
            for owner in &mut map.owner[start..=end] {
                *owner = index;
            }
        }
        Some(map)
    }

    #[cfg(test)]
    fn master_of(&self, slot: u16) -> Option<&(String, u16)> {
        self.masters.get(usize::from(self.owner_of(slot)?))
    }

    /// The index in `masters` of the master serving `slot`.
    fn owner_of(&self, slot: u16) -> Option<u16> {
        let index = *self.owner.get(usize::from(slot))?;
        (usize::from(index) < self.masters.len()).then_some(index)
    }

    fn addrs(&self) -> Vec<(String, u16)> {
        self.masters.clone()
    }
}

/// What a command's answer asks for, if it is a redirection or a cluster error.
fn redirect(value: &Value) -> Option<Redirect> {
    let Value::ServerError(e) = value else {
        return None;
    };
    let target = || {
        e.details()
            .and_then(|d| d.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    match e.code() {
        "MOVED" => target().map(Redirect::Moved).or(Some(Redirect::Refresh)),
        "ASK" => target().map(Redirect::Ask).or(Some(Redirect::Refresh)),
        "TRYAGAIN" => Some(Redirect::Again),
        // A write that reached a master demoted to replica: the map is stale.
        "READONLY" => Some(Redirect::Refresh),
        "CLUSTERDOWN" | "MASTERDOWN" => Some(Redirect::Down),
        _ => None,
    }
}

/// `host:port` from a redirection (`[v6]:port` for IPv6).
fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

/// `cluster_state` from a `CLUSTER INFO` answer.
fn cluster_state(info: &Value) -> String {
    text(info)
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("cluster_state:").map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// One error from the failures of several nodes: each one's reason, in one line.
pub(crate) fn combine(report: &Report, what: &str, failures: Vec<Error>) -> Error {
    let reasons: Vec<String> = failures
        .iter()
        .map(|e| match e {
            Error::Unavailable { reason, .. } => reason.clone(),
            Error::Backend { message, .. } => message.clone(),
            other => other.to_string(),
        })
        .collect();
    report.unavailable(format!("{what}: {}", reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn slot_map_from_cluster_slots() {
        let node = |host: &str, port| Value::Array(vec![bulk(host), Value::Int(port), bulk("id")]);
        let answer = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node("", 7001)]),
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node("10.0.0.1", 7000),
            ]),
        ]);
        let map = SlotMap::parse(&answer, "seed").unwrap();
        assert_eq!(
            map.masters,
            vec![("10.0.0.1".into(), 7000), ("seed".into(), 7001)]
        );
        assert_eq!(map.master_of(0), Some(&("10.0.0.1".into(), 7000)));
        assert_eq!(map.master_of(5461), Some(&("seed".into(), 7001)));
        assert_eq!(map.master_of(16383), Some(&("10.0.0.1".into(), 7000)));
        assert!(SlotMap::parse(&Value::Int(1), "x").is_none());
        let bad = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(16384),
            node("a", 1),
        ])]);
        assert!(SlotMap::parse(&bad, "x").is_none());
        let partial = SlotMap::parse(&Value::Array(vec![]), "x").unwrap();
        assert_eq!(partial.master_of(7), None);
    }

    #[test]
    fn redirections() {
        let err = |s: &str| redis::parse_redis_value(format!("-{s}\r\n").as_bytes()).unwrap();
        assert!(
            matches!(redirect(&err("MOVED 3999 127.0.0.1:6381")), Some(Redirect::Moved(a)) if a == "127.0.0.1:6381")
        );
        assert!(
            matches!(redirect(&err("ASK 3999 [::1]:6381")), Some(Redirect::Ask(a)) if a == "[::1]:6381")
        );
        assert!(matches!(
            redirect(&err(
                "TRYAGAIN Multiple keys request during rehashing of slot"
            )),
            Some(Redirect::Again)
        ));
        assert!(matches!(
            redirect(&err("CLUSTERDOWN The cluster is down")),
            Some(Redirect::Down)
        ));
        assert!(matches!(
            redirect(&err(
                "READONLY You can't write against a read only replica."
            )),
            Some(Redirect::Refresh)
        ));
        assert!(
            redirect(&err(
                "WRONGTYPE Operation against a key holding the wrong kind of value"
            ))
            .is_none()
        );
        assert!(redirect(&Value::Nil).is_none());
        assert_eq!(split_addr("[::1]:6381"), Some(("::1".into(), 6381)));
        assert_eq!(split_addr("h:70000"), None);
        assert_eq!(
            cluster_state(&bulk("cluster_enabled:1\r\ncluster_state:fail\r\n")),
            "fail"
        );
    }
}
