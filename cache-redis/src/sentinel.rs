//! [`Sentinel`]: the master that Redis Sentinel names, followed through failovers.
//!
//! The master is found by asking the sentinels in the order given (`SENTINEL
//! get-master-addr-by-name`, sent in the handshake's pipeline: one round trip), the first
//! that names it wins. Three things move the cache to a new master:
//!
//! - a batch that meets a failover — a `READONLY` answer (the master became a replica), a
//!   dropped connection, a failed `ROLE` check — asks the sentinels again and is sent once
//!   more to the master they name then; while they still name the old one (a killed
//!   master is noticed after the sentinels' `down-after-milliseconds`), the batch fails,
//!   naming the master and the sentinel;
//! - a watcher task asks a sentinel every [`WATCH_EVERY`] (one command on a kept
//!   connection) and switches as soon as it names another master: after a failover the
//!   old master may accept writes for a while before the sentinels demote it, and those
//!   writes would be lost when it resyncs from the new one;
//! - the master's connections check `ROLE` in their handshake and when reused after
//!   sitting idle, so none stays on a master that a failover demoted.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use cache_core::Result;
use redis::{Cmd, Value};

use crate::{
    cluster::combine,
    config::{NodeTemplate, Target},
    node::{Check, NOT_A_MASTER, Node, NodeOptions, Report, Settings},
};

/// How often a master the sentinels name but that is not (yet) a master is asked for
/// again before failing: during a failover the sentinels switch within moments.
const ROLE_RETRIES: u32 = 3;

/// The wait between those attempts.
const ROLE_RETRY_WAIT: Duration = Duration::from_millis(250);

/// How often the watcher asks a sentinel which master is current.
pub(crate) const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A master found through sentinels; the watcher stops when this is dropped or closed.
pub(crate) struct Sentinel {
    inner: Arc<Inner>,
    watcher: tokio::task::JoinHandle<()>,
}

/// The state the watcher shares.
struct Inner {
    /// Each sentinel, its connection pool, and whether it has been connected yet.
    sentinels: Vec<(Target, Node, AtomicBool)>,
    master_name: String,
    template: NodeTemplate,
    tls: bool,
    settings: Arc<Settings>,
    current: RwLock<Option<Arc<Node>>>,
    /// Held while the sentinels are asked, so concurrent batches ask once.
    resolving: tokio::sync::Mutex<()>,
    report: Report,
}

impl Sentinel {
    /// Asks the sentinels for the master, connects to it, and starts the watcher.
    pub(crate) async fn connect(
        sentinels: Vec<Target>,
        master_name: String,
        template: NodeTemplate,
        tls: bool,
        settings: Arc<Settings>,
    ) -> Result<Sentinel> {
        let mut nodes = Vec::with_capacity(sentinels.len());
        for target in sentinels {
            let node = Node::new(
                &target,
                &settings,
                NodeOptions {
                    check: Check::Answers,
                    force_tls: false,
                    label: Some(format!("sentinel {}", target.addr())),
                },
            )?;
            nodes.push((target, node, AtomicBool::new(false)));
        }
        let inner = Arc::new(Inner {
            report: Report::for_backend(&settings),
            sentinels: nodes,
            master_name,
            template,
            tls,
            settings,
            current: RwLock::new(None),
            resolving: tokio::sync::Mutex::new(()),
        });
        inner.resolve(None).await?;
        let watcher = tokio::spawn(watch(Arc::clone(&inner)));
        Ok(Sentinel { inner, watcher })
    }

    /// How errors that concern no one node are reported.
    pub(crate) fn report(&self) -> &Report {
        &self.inner.report
    }

    /// The current master, asked for when there is none.
    pub(crate) async fn master(&self) -> Result<Arc<Node>> {
        self.inner.master().await
    }

    /// Stops the watcher and closes every connection.
    pub(crate) fn close(&self) {
        self.watcher.abort();
        if let Some(node) = self.inner.current.read().expect("master lock").as_ref() {
            node.close();
        }
        for (_, node, _) in &self.inner.sentinels {
            node.close();
        }
    }

    /// Runs commands on the master as one pipeline; after a failover, once more on the
    /// new master.
    pub(crate) async fn run(&self, what: &str, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
        self.inner.run(what, cmds).await
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Every [`WATCH_EVERY`], asks a sentinel for the master, and moves to it when it is not
/// the current one. Failures are left to the next round (and to the batches).
async fn watch(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Ok((host, port, _)) = inner.ask().await else {
            continue;
        };
        let current = inner.current.read().expect("master lock").clone();
        let Some(current) = current else { continue };
        let named = match inner.template.target(&host, port) {
            Ok(target) => target.addr(),
            Err(_) => continue,
        };
        if named != current.addr {
            tracing::info!(
                backend = %inner.settings.backend,
                from = %current.addr,
                to = %named,
                "the sentinels name a new master"
            );
            let _ = inner.resolve(Some(&current)).await;
        }
    }
}

impl Inner {
    /// The current master, asked for when there is none.
    async fn master(&self) -> Result<Arc<Node>> {
        let current = self.current.read().expect("master lock").clone();
        match current {
            Some(node) => Ok(node),
            None => self.resolve(None).await,
        }
    }

    async fn run(&self, what: &str, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
        let master = self.master().await?;
        let first = master.run(what, cmds.clone()).await;
        let stale = match &first {
            Ok(answers) => answers.iter().any(is_readonly),
            Err(e) => e.is_unavailable(),
        };
        if !stale {
            return first;
        }
        tracing::info!(
            backend = %self.settings.backend,
            master = %master.addr,
            "the master is gone or no longer accepts writes; asking the sentinels again"
        );
        let master = self.resolve(Some(&master)).await?;
        master.run(what, cmds).await
    }

    /// Asks the sentinels for the master and connects to it, unless another task did so
    /// since `stale` was current.
    async fn resolve(&self, stale: Option<&Arc<Node>>) -> Result<Arc<Node>> {
        let _one_at_a_time = self.resolving.lock().await;
        let current = self.current.read().expect("master lock").clone();
        if let Some(current) = current
            && stale.is_none_or(|s| !Arc::ptr_eq(s, &current))
        {
            return Ok(current);
        }
        let mut attempt = 0;
        loop {
            let (host, port, sentinel) = self.ask().await?;
            let target = self.template.target(&host, port)?;
            let node = Arc::new(Node::new(
                &target,
                &self.settings,
                NodeOptions {
                    check: Check::Master,
                    force_tls: self.tls,
                    label: Some(format!(
                        "master {} (named by sentinel {sentinel})",
                        target.addr()
                    )),
                },
            )?);
            match node.open(&[]).await {
                Ok(_) => {
                    tracing::debug!(backend = %self.settings.backend, master = %node.addr, "master found");
                    *self.current.write().expect("master lock") = Some(Arc::clone(&node));
                    return Ok(node);
                }
                Err(e) if attempt < ROLE_RETRIES && e.to_string().contains(NOT_A_MASTER) => {
                    // Mid-failover: the sentinels name a master that has just been demoted.
                    attempt += 1;
                    tokio::time::sleep(ROLE_RETRY_WAIT).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The master's address from the first sentinel that names it, and that sentinel.
    /// A sentinel's first question rides on its connection's handshake; later ones use
    /// the kept connection.
    async fn ask(&self) -> Result<(String, u16, String)> {
        let mut failures = Vec::new();
        for (target, node, opened) in &self.sentinels {
            let question = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master_name)
                .clone();
            let answer = if opened.load(Ordering::Acquire) {
                node.run("SENTINEL get-master-addr-by-name", vec![question])
                    .await
            } else {
                let answer = node.open(&[question]).await;
                opened.store(answer.is_ok(), Ordering::Release);
                answer
            };
            let answer = match answer {
                Ok(mut answers) => answers.pop().unwrap_or(Value::Nil),
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            match master_addr(&answer) {
                Some((host, port)) => return Ok((host, port, target.addr())),
                None => failures.push(node.report().unavailable(match &answer {
                    Value::Nil => format!("knows no master named {:?}", self.master_name),
                    Value::ServerError(e) => format!(
                        "SENTINEL get-master-addr-by-name: {} {} (is this a sentinel?)",
                        e.code(),
                        e.details().unwrap_or_default()
                    ),
                    other => format!("unexpected answer {other:?}"),
                })),
            }
        }
        Err(combine(
            &self.report,
            &format!("no sentinel named the master {:?}", self.master_name),
            failures,
        ))
    }
}

/// `[host, port]` from `SENTINEL get-master-addr-by-name`.
fn master_addr(answer: &Value) -> Option<(String, u16)> {
    let Value::Array(items) = answer else {
        return None;
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let host = text(items.first()?)?;
    let port = text(items.get(1)?)?.parse().ok()?;
    Some((host, port))
}

/// True for the answer of a write to a replica.
fn is_readonly(answer: &Value) -> bool {
    matches!(answer, Value::ServerError(e) if e.code() == "READONLY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            master_addr(&Value::Array(vec![bulk("10.0.0.2"), bulk("6380")])),
            Some(("10.0.0.2".into(), 6380))
        );
        assert_eq!(master_addr(&Value::Nil), None);
        assert_eq!(
            master_addr(&Value::Array(vec![bulk("h"), bulk("port")])),
            None
        );
    }
}
