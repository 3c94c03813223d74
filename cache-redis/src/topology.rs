//! [`Topology`]: where commands go — one server, a cluster's masters by hash slot, or the
//! master the sentinels name — behind one interface the cache's operations are written
//! against.
//!
//! Every operation of the cache is a [`Batch`] of single-key commands (plus `MGET` and
//! `UNLINK` over keys of one slot), sent with [`Topology::run`], and `SCAN`s sent to each
//! master with [`Topology::masters`] and [`Topology::run_on`]:
//!
//! | topology | a batch | `SCAN` |
//! |---|---|---|
//! | single | one pipeline on the server | the server |
//! | cluster | one pipeline per master, all sent at once; `MOVED`/`ASK` followed per command | every master |
//! | sentinel | one pipeline on the master; after a failover (`READONLY`, a dropped connection, a demoted master), asks the sentinels again and resends | the master |
//!
//! So a batch costs one round trip whatever its size and whichever topology.

use std::sync::Arc;

use cache_core::Result;
use redis::{Cmd, Value};

use crate::{
    cluster::Cluster,
    config::{Layout, LayoutKind},
    node::{Check, Node, NodeOptions, Report, Settings},
    sentinel::Sentinel,
};

/// The servers a cache talks to.
pub(crate) enum Topology {
    /// One server.
    Single(Arc<Node>),
    /// A Redis Cluster.
    Cluster(Box<Cluster>),
    /// A master found through Redis Sentinel.
    Sentinel(Sentinel),
}

/// Commands that each touch one key (or keys of one slot), in the order their answers
/// are wanted.
pub(crate) struct Batch {
    /// Each command's hash slot; only kept for a cluster.
    pub(crate) slots: Option<Vec<u16>>,
    /// The commands.
    pub(crate) cmds: Vec<Cmd>,
}

impl Batch {
    /// Adds a command on `key`.
    pub(crate) fn push(&mut self, key: &[u8], cmd: Cmd) {
        if let Some(slots) = &mut self.slots {
            slots.push(slot(key));
        }
        self.cmds.push(cmd);
    }

    /// True when there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }
}

impl Topology {
    /// Connects to what `layout` names: one round trip for a single server; for a
    /// cluster, one to a seed node (handshake and slot map together) and one to the
    /// other masters at once; for sentinel, one to a sentinel and one to the master.
    pub(crate) async fn connect(layout: Layout, settings: Arc<Settings>) -> Result<Topology> {
        let tls = layout.tls;
        match layout.kind {
            LayoutKind::Single(target) => {
                let node = Node::new(
                    &target,
                    &settings,
                    NodeOptions {
                        check: Check::Answers,
                        force_tls: tls,
                        label: None,
                    },
                )?;
                node.open(&[]).await?;
                Ok(Topology::Single(Arc::new(node)))
            }
            LayoutKind::Cluster { seeds, nodes } => Ok(Topology::Cluster(Box::new(
                Cluster::connect(seeds, nodes, tls, settings).await?,
            ))),
            LayoutKind::Sentinel {
                sentinels,
                master_name,
                master,
            } => Ok(Topology::Sentinel(
                Sentinel::connect(sentinels, master_name, master, tls, settings).await?,
            )),
        }
    }

    /// An empty batch for this topology.
    pub(crate) fn batch(&self, capacity: usize) -> Batch {
        Batch {
            slots: matches!(self, Topology::Cluster(_)).then(|| Vec::with_capacity(capacity)),
            cmds: Vec::with_capacity(capacity),
        }
    }

    /// Splits keys into groups that one multi-key command (`MGET`, `UNLINK`) may take:
    /// all of them at once, or on a cluster, one group per hash slot. Groups hold indices
    /// into `keys`.
    pub(crate) fn groups(&self, keys: &[String]) -> Vec<Vec<usize>> {
        if !matches!(self, Topology::Cluster(_)) {
            return vec![(0..keys.len()).collect()];
        }
        let mut by_slot: std::collections::BTreeMap<u16, Vec<usize>> = Default::default();
        for (i, k) in keys.iter().enumerate() {
            by_slot.entry(slot(k.as_bytes())).or_default().push(i);
        }
        by_slot.into_values().collect()
    }

    /// Runs a batch: answers in order, a command the server refused answering
    /// [`Value::ServerError`]. Redirections and failovers are dealt with here.
    pub(crate) async fn run(&self, what: &str, batch: Batch) -> Result<Vec<Value>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Topology::Single(node) => node.run(what, batch.cmds).await,
            Topology::Cluster(cluster) => cluster.run(what, batch).await,
            Topology::Sentinel(sentinel) => sentinel.run(what, batch.cmds).await,
        }
    }

    /// The masters, each holding part of the keys (one unless a cluster).
    pub(crate) async fn masters(&self) -> Result<Vec<Arc<Node>>> {
        match self {
            Topology::Single(node) => Ok(vec![Arc::clone(node)]),
            Topology::Cluster(cluster) => cluster.masters(),
            Topology::Sentinel(sentinel) => Ok(vec![sentinel.master().await?]),
        }
    }

    /// Runs keyless commands (`SCAN`) on one master from [`Topology::masters`].
    pub(crate) async fn run_on(
        &self,
        node: &Node,
        what: &str,
        cmds: Vec<Cmd>,
    ) -> Result<Vec<Value>> {
        node.run(what, cmds).await
    }

    /// Closes every connection; later requests fail.
    pub(crate) fn close(&self) {
        match self {
            Topology::Single(node) => node.close(),
            Topology::Cluster(cluster) => cluster.close(),
            Topology::Sentinel(sentinel) => sentinel.close(),
        }
    }

    /// How errors that concern no one node are reported.
    pub(crate) fn report(&self) -> &Report {
        match self {
            Topology::Single(node) => node.report(),
            Topology::Cluster(cluster) => cluster.report(),
            Topology::Sentinel(sentinel) => sentinel.report(),
        }
    }
}

/// The hash slot of a key: CRC16 (XMODEM) of the key, or of its hash tag (the text
/// between the first `{` and the next `}`, when not empty), modulo 16384. Scan-cache
/// keys have no hash tag, so they spread over every slot.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % 16384
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster uses; a
/// byte at a time through [`CRC16_TABLE`] (bit by bit, 1000 keys took about 0.5 ms, a
/// fifth of a 1000-ID `missing_blobs`).
fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

/// The CRC16 of each byte value, for [`crc16`].
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // The check value of CRC16/XMODEM, and slots Redis itself reports (CLUSTER
        // KEYSLOT).
        assert_eq!(crc16(b"123456789"), 0x31c3);
        for (key, want) in [
            ("foo", 12182),
            ("bar", 5061),
            ("{user1000}.following", 3443),
            ("{user1000}.followers", 3443),
            ("foo{}{bar}", 8363),
            ("foo{{bar}}zap", 4015),
            ("foo{bar}{zap}", 5061),
            ("", 0),
        ] {
            assert_eq!(slot(key.as_bytes()), want, "{key}");
        }
    }
}
