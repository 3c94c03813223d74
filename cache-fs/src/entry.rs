//! The databases of one environment ([`Dbs`]) and the operations on entries inside a
//! caller's transaction: put, remove, LRU eviction, access stamps, totals and scans.
//!
//! # Databases
//!
//! - `artifacts-v1`, `blobs-v1` and `reports-v1` map an ID (`sha256:<hex>`) to a stored
//!   value (a header then the document, or the stored report; see [`crate::value`]).
//!   `reports-v1` came later: a directory that lacks it gets it on its first open
//!   (creating databases is idempotent), so an older cache is opened as it is.
//! - `lru-v1` indexes entries by last access for eviction: key = access stamp (4 bytes
//!   big endian) + kind byte + ID, value empty. Every entry with a header has exactly one
//!   index record, under the stamp its header carries.
//! - `meta-v1` keeps the running totals under the key `totals`: the sum of document
//!   sizes, then the number of entries, each u64 little endian. Only values with a
//!   header are counted (a value without one was written by something else).
//!
//! The `-v1` suffix is the layout version of keys and values: another layout gets other
//! databases.

use std::ops::Bound;

use cache_core::{
    EntryKind, Result,
    rules::{self, ENTRY_OVERHEAD},
};
use heed::{CommitOrAbort, Database, Env, RoTxn, RwTxn, WithoutTls, types::Bytes};

use crate::value::{self, HEADER_LEN, Header};

/// One LMDB database of raw bytes.
pub(crate) type Db = Database<'static, Bytes, Bytes>;

const ARTIFACTS_DB: &str = "artifacts-v1";
const BLOBS_DB: &str = "blobs-v1";
const REPORTS_DB: &str = "reports-v1";
const LRU_DB: &str = "lru-v1";
const META_DB: &str = "meta-v1";
const META_TOTALS: &[u8] = b"totals";

/// The databases of one open environment.
#[derive(Clone, Copy)]
pub(crate) struct Dbs {
    pub(crate) artifacts: Db,
    pub(crate) blobs: Db,
    pub(crate) reports: Db,
    lru: Db,
    meta: Db,
}

impl Dbs {
    /// The database holding entries of `kind`.
    pub(crate) fn of(&self, kind: EntryKind) -> Db {
        match kind {
            EntryKind::Artifact => self.artifacts,
            EntryKind::Blob => self.blobs,
            EntryKind::Report => self.reports,
        }
    }

    /// Opens the databases of an existing environment and commits `rtxn`; `None` when
    /// any of them does not exist yet (first use of the directory).
    pub(crate) fn open(
        env: &Env<WithoutTls>,
        rtxn: RoTxn<'_, WithoutTls>,
    ) -> heed::Result<Option<Dbs>> {
        let opened = env.open_databases_and_commit(rtxn, |dbo, rtxn| {
            let open = |name| dbo.open_database::<Bytes, Bytes>(rtxn, Some(name));
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((
                open(ARTIFACTS_DB)?,
                open(BLOBS_DB)?,
                open(REPORTS_DB)?,
                open(LRU_DB)?,
                open(META_DB)?,
            )))
        })?;
        match opened {
            CommitOrAbort::Commit((
                Some(artifacts),
                Some(blobs),
                Some(reports),
                Some(lru),
                Some(meta),
            )) => Ok(Some(Dbs {
                artifacts,
                blobs,
                reports,
                lru,
                meta,
            })),
            _ => Ok(None),
        }
    }

    /// Creates the databases and commits `wtxn`. Idempotent, so two processes doing it
    /// at once is fine. `None` if the transaction was aborted.
    pub(crate) fn create(env: &Env<WithoutTls>, wtxn: RwTxn<'_>) -> heed::Result<Option<Dbs>> {
        let created = env.create_databases_and_commit(wtxn, |dbo, wtxn| {
            let mut create = |name| dbo.create_database::<Bytes, Bytes>(wtxn, Some(name));
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((
                create(ARTIFACTS_DB)?,
                create(BLOBS_DB)?,
                create(REPORTS_DB)?,
                create(LRU_DB)?,
                create(META_DB)?,
            )))
        })?;
        match created {
            CommitOrAbort::Commit((artifacts, blobs, reports, lru, meta)) => Ok(Some(Dbs {
                artifacts,
                blobs,
                reports,
                lru,
                meta,
            })),
            CommitOrAbort::Abort(()) => Ok(None),
        }
    }
}

/// A visitor of (key, stored value) pairs during a scan.
pub(crate) type ScanFn<'f, E> = dyn FnMut(&[u8], &[u8]) -> Result<(), E> + 'f;

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Artifact => b'a',
        EntryKind::Blob => b'b',
        EntryKind::Report => b'r',
    }
}

fn kind_of_byte(b: u8) -> Option<EntryKind> {
    match b {
        b'a' => Some(EntryKind::Artifact),
        b'b' => Some(EntryKind::Blob),
        b'r' => Some(EntryKind::Report),
        _ => None,
    }
}

fn lru_key(stamp: u32, kind: EntryKind, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + key.len());
    k.extend_from_slice(&stamp.to_be_bytes());
    k.push(kind_byte(kind));
    k.extend_from_slice(key);
    k
}

/// The document size of a stored value (what `list` and `stats` report).
pub(crate) fn doc_len(stored: &[u8]) -> u64 {
    stored.len().saturating_sub(HEADER_LEN) as u64
}

/// The running totals: (document bytes, entries).
pub(crate) fn totals(txn: &RoTxn<'_>, dbs: &Dbs) -> heed::Result<(u64, u64)> {
    let stored = dbs.meta.get(txn, META_TOTALS)?;
    let field = |range: std::ops::Range<usize>| {
        stored
            .and_then(|v| v.get(range))
            .and_then(|b| b.first_chunk::<8>().copied())
            .map_or(0, u64::from_le_bytes)
    };
    Ok((field(0..8), field(8..16)))
}

fn add_totals(txn: &mut RwTxn<'_>, dbs: &Dbs, bytes: i128, entries: i128) -> heed::Result<()> {
    if bytes == 0 && entries == 0 {
        return Ok(());
    }
    let (b, e) = totals(txn, dbs)?;
    let apply = |v: u64, d: i128| u64::try_from((i128::from(v) + d).max(0)).unwrap_or(u64::MAX);
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&apply(b, bytes).to_le_bytes());
    v[8..].copy_from_slice(&apply(e, entries).to_le_bytes());
    dbs.meta.put(txn, META_TOTALS, &v)
}

/// What a removed entry was.
pub(crate) struct Removed {
    /// Its header; `None` for a value too short to have one.
    pub(crate) header: Option<Header>,
    /// Its document size.
    pub(crate) doc_len: u64,
}

/// Removes one entry with its index record and totals.
pub(crate) fn remove_entry(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    kind: EntryKind,
    key: &[u8],
) -> heed::Result<Option<Removed>> {
    let removed = unlink_entry(txn, dbs, kind, key)?;
    if let Some(old) = &removed {
        dbs.of(kind).delete(txn, key)?;
        // Only values with a header were counted (see `put_entry`).
        if old.header.is_some() {
            add_totals(txn, dbs, -i128::from(old.doc_len), -1)?;
        }
    }
    Ok(removed)
}

/// Reads an entry and removes its index record, leaving the value and the totals alone.
fn unlink_entry(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    kind: EntryKind,
    key: &[u8],
) -> heed::Result<Option<Removed>> {
    let Some(old) = dbs.of(kind).get(txn, key)? else {
        return Ok(None);
    };
    let header = value::decode(old).map(|(h, _)| h);
    let len = doc_len(old);
    if let Some(h) = header {
        dbs.lru.delete(txn, &lru_key(h.accessed_s, kind, key))?;
    }
    Ok(Some(Removed {
        header,
        doc_len: len,
    }))
}

/// Stores one entry (replacing any previous one) with its index record and totals.
pub(crate) fn put_entry(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    kind: EntryKind,
    key: &[u8],
    header: Header,
    doc: &[u8],
) -> heed::Result<()> {
    let old = unlink_entry(txn, dbs, kind, key)?;
    dbs.of(kind).put(txn, key, &value::encode(header, doc))?;
    dbs.lru
        .put(txn, &lru_key(header.accessed_s, kind, key), &[])?;
    // A value without a header (written by something else) was never counted.
    let (old_bytes, old_entries) = old
        .filter(|o| o.header.is_some())
        .map_or((0, 0), |o| (i128::from(o.doc_len), 1));
    add_totals(txn, dbs, doc.len() as i128 - old_bytes, 1 - old_entries)
}

/// Evicts least recently used entries until the charged size is at most `max`, never
/// evicting the keys in `keep` (the ones just written). Each entry is charged the shared
/// [`rules::charged_size`] of its document. Returns how many were evicted.
pub(crate) fn evict(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    max: u64,
    keep: &[(EntryKind, &[u8])],
) -> heed::Result<u64> {
    let (bytes, entries) = totals(txn, dbs)?;
    let charged = bytes.saturating_add(entries.saturating_mul(ENTRY_OVERHEAD));
    if charged <= max {
        return Ok(0);
    }
    let mut excess = charged - max;
    let mut victims: Vec<(EntryKind, Vec<u8>)> = Vec::new();
    for item in dbs.lru.iter(txn)? {
        let (k, _) = item?;
        let Some((kind, key)) = k.get(4).and_then(|b| kind_of_byte(*b)).zip(k.get(5..)) else {
            continue;
        };
        if keep.iter().any(|(kk, id)| *kk == kind && *id == key) {
            continue;
        }
        let len = dbs.of(kind).get(txn, key)?.map_or(0, doc_len);
        victims.push((kind, key.to_vec()));
        excess = excess.saturating_sub(rules::charged_size(len));
        if excess == 0 {
            break;
        }
    }
    let mut evicted = 0;
    for (kind, key) in victims {
        if remove_entry(txn, dbs, kind, &key)?.is_some() {
            evicted += 1;
        }
    }
    Ok(evicted)
}

/// Gives an entry a newer access stamp, moving its index record with it. Leaves alone an
/// entry that is gone, has no header, or already carries `stamp` or a later one.
pub(crate) fn restamp(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    kind: EntryKind,
    key: &[u8],
    stamp: u32,
) -> heed::Result<()> {
    let db = dbs.of(kind);
    let Some(old) = db.get(txn, key)? else {
        return Ok(());
    };
    let Some((header, _)) = value::decode(old) else {
        return Ok(());
    };
    if header.accessed_s >= stamp {
        return Ok(());
    }
    let mut updated = old.to_vec();
    value::set_accessed(&mut updated, stamp);
    db.put(txn, key, &updated)?;
    dbs.lru
        .delete(txn, &lru_key(header.accessed_s, kind, key))?;
    dbs.lru.put(txn, &lru_key(stamp, kind, key), &[])
}

/// Empties every database (entries, index and totals) in one transaction.
pub(crate) fn clear_all(txn: &mut RwTxn<'_>, dbs: &Dbs) -> heed::Result<()> {
    dbs.artifacts.clear(txn)?;
    dbs.blobs.clear(txn)?;
    dbs.reports.clear(txn)?;
    dbs.lru.clear(txn)?;
    dbs.meta.clear(txn)?;
    Ok(())
}

/// Visits up to `limit` entries of one kind with keys after `after`, in key order;
/// returns the last key visited (to continue from) or `None` at the end.
pub(crate) fn scan<E: From<heed::Error>>(
    txn: &RoTxn<'_>,
    db: &Db,
    after: Option<&[u8]>,
    limit: usize,
    visit: &mut ScanFn<'_, E>,
) -> Result<Option<Vec<u8>>, E> {
    let range = (
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    );
    let mut last = None;
    let mut n = 0;
    for item in db.range(txn, &range)? {
        let (k, v) = item?;
        visit(k, v)?;
        n += 1;
        if n >= limit {
            last = Some(k.to_vec());
            break;
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::test_support::{header, open};

    fn read_totals(store: &crate::store::Store) -> (u64, u64) {
        store
            .read("test", &mut |txn, dbs| Ok(totals(txn, dbs)?))
            .unwrap()
    }

    /// Values without a header (written by something else) are not in the running totals,
    /// so removing or overwriting them must not take anything off.
    #[test]
    fn totals_ignore_values_without_a_header() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(&tmp);
        let doc = br#"{"SchemaVersion":2}"#;
        store
            .write("test", &mut |txn, dbs| {
                put_entry(txn, dbs, EntryKind::Blob, b"good", header(1), doc)?;
                dbs.blobs.put(txn, b"short-1", b"tiny")?;
                dbs.blobs.put(txn, b"short-2", b"too short")?;
                Ok(())
            })
            .unwrap();
        let one = (doc.len() as u64, 1);
        assert_eq!(read_totals(&store), one);
        store
            .write("test", &mut |txn, dbs| {
                assert!(remove_entry(txn, dbs, EntryKind::Blob, b"short-1")?.is_some());
                Ok(())
            })
            .unwrap();
        assert_eq!(read_totals(&store), one, "removing a headerless value");
        store
            .write("test", &mut |txn, dbs| {
                Ok(put_entry(
                    txn,
                    dbs,
                    EntryKind::Blob,
                    b"short-2",
                    header(1),
                    doc,
                )?)
            })
            .unwrap();
        assert_eq!(
            read_totals(&store),
            (2 * doc.len() as u64, 2),
            "overwriting a headerless value"
        );
    }
}
