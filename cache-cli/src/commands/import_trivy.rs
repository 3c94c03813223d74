//! `scancache cache import --from-trivy PATH`: the reference scanner's fs cache — its
//! `fanal/fanal.db`, a bbolt file with the buckets `artifact` and `blob`, keys the IDs and
//! values the JSON documents — imported unchanged into the selected backend
//! (docs/migration.md).
//!
//! The file is read twice, under one shared lock: a first pass checks all of it — its
//! structure, every key and every document — and counts what it holds, before the backend
//! is even opened, so a damaged file imports nothing and `--dry-run` needs no reachable
//! backend; the second pass streams the entries the first found good (known by their
//! number in the walk, so no document is decoded twice) from a blocking thread to the
//! backend in batches.

use std::{
    io::{self, IsTerminal},
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, anyhow, bail};
use cache_bbolt::{Db, Entry, Item};
use cache_core::{Cache, Digest, EntryKey, EntryKind, RawEntry};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::{
    backend::{self, Settings},
    cli::GlobalOpts,
    commands::cache::IMPORT_BATCH,
    ndjson,
};

/// The buckets of the reference's fs cache, and the kind of entry each holds.
const BUCKETS: [(&[u8], EntryKind); 2] = [
    (b"artifact", EntryKind::Artifact),
    (b"blob", EntryKind::Blob),
];

/// Skipped entries reported one warning line each; the rest are counted in one line.
const MAX_WARNINGS: u64 = 20;

/// How the import runs.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Check and count only; open no backend, write nothing.
    pub dry_run: bool,
    /// Import nothing when any entry is bad.
    pub strict: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// Runs the import: finds the file, checks it, then (unless a dry run) opens the backend
/// and imports.
pub async fn run(path: &Path, opts: Options, settings: &Settings, g: &GlobalOpts) -> Result<()> {
    let file = locate(path)?;
    let shown = file.display().to_string();
    let db = open(&file)?;
    let db = Arc::new(db);
    let mut checked = {
        let db = Arc::clone(&db);
        tokio::task::spawn_blocking(move || check(&db))
            .await
            .context("the check of the Trivy cache stopped")??
    };
    checked.warn(&shown);
    let counts = checked.counts.describe();
    if opts.dry_run {
        tracing::info!("Dry run: {shown} holds {counts} to import; nothing was written");
        return checked.fail_if_skipped(&shown);
    }
    if opts.strict && checked.skipped > 0 {
        bail!(
            "{} entries of {shown} are not valid (see the warnings above); nothing was \
             imported (--strict)",
            checked.skipped
        );
    }
    let cache = backend::open(settings, g).await?;
    let total = checked.counts.total();
    let bar = (!opts.quiet && io::stderr().is_terminal()).then(|| progress(total));
    let good = std::mem::take(&mut checked.good);
    let imported = import(db, good, cache.as_ref(), bar.as_ref()).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let closed = cache.close().await;
    let imported = imported.with_context(|| format!("cannot import {shown}"))?;
    closed?;
    if imported != checked.counts {
        bail!(
            "{shown} changed while it was imported: {} were imported, {counts} were checked",
            imported.describe()
        );
    }
    tracing::info!("Imported {counts} from {shown}");
    checked.fail_if_skipped(&shown)
}

/// `PATH` itself when it is a file, else `PATH/fanal/fanal.db` (a cache directory) or
/// `PATH/fanal.db` (its `fanal` directory).
fn locate(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let candidates = [path.join("fanal").join("fanal.db"), path.join("fanal.db")];
    candidates
        .iter()
        .find(|c| c.exists())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "no Trivy fs cache in {}: neither {} nor {} exists (does Trivy use another \
                 cache directory, or another cache backend?)",
                path.display(),
                candidates[0].display(),
                candidates[1].display()
            )
        })
}

fn open(file: &Path) -> Result<Db> {
    let db = Db::open(file).map_err(|e| {
        let hint = match e {
            cache_bbolt::Error::Locked { .. } => {
                " (Trivy keeps its fs cache locked while it runs, `trivy server` for as long \
                 as it serves)"
            }
            _ => "",
        };
        anyhow!("cannot import the Trivy cache: {e}{hint}")
    })?;
    if let Some(damage) = db.damaged_meta() {
        tracing::warn!(
            "{}: {damage}; reading the database as of transaction {}, the last one the \
             other meta page records",
            file.display(),
            db.txid()
        );
    }
    Ok(db)
}

/// Entries by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    artifacts: u64,
    blobs: u64,
}

impl Counts {
    fn add(&mut self, kind: EntryKind, n: u64) {
        match kind {
            EntryKind::Artifact => self.artifacts += n,
            EntryKind::Blob => self.blobs += n,
            // The reference's buckets hold no stored reports.
            EntryKind::Report => {}
        }
    }

    fn total(&self) -> u64 {
        self.artifacts + self.blobs
    }

    /// `1 artifact and 240 blobs`.
    fn describe(&self) -> String {
        let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        format!(
            "{} and {}",
            plural(self.artifacts, "artifact"),
            plural(self.blobs, "blob")
        )
    }
}

/// What the first pass found.
#[derive(Debug, Default)]
struct Checked {
    counts: Counts,
    /// Bad entries: not imported.
    skipped: u64,
    /// The first [`MAX_WARNINGS`] bad entries (`blob sha256:…`) and why each is bad.
    warnings: Vec<(String, String)>,
    /// Buckets and values outside the two buckets, which the reference never writes.
    foreign: Vec<String>,
    /// The entries to import, by their number in the walk (from 1).
    good: Bits,
}

/// A set of small numbers, one bit each.
#[derive(Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn insert(&mut self, n: usize) {
        let (word, bit) = (n / 64, 1u64 << (n % 64));
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        if let Some(w) = self.0.get_mut(word) {
            *w |= bit;
        }
    }

    fn contains(&self, n: usize) -> bool {
        self.0.get(n / 64).is_some_and(|w| w & (1 << (n % 64)) != 0)
    }
}

impl Checked {
    fn warn(&self, file: &str) {
        for (what, why) in &self.warnings {
            tracing::warn!("Skipping {what} in {file}: {why}");
        }
        if self.skipped > MAX_WARNINGS {
            tracing::warn!(
                "Skipping {} more entries of {file} (only the first {MAX_WARNINGS} are shown)",
                self.skipped - MAX_WARNINGS
            );
        }
        for f in &self.foreign {
            tracing::warn!(
                "Ignoring {f} of {file}: Trivy's fs cache has only the artifact and blob buckets"
            );
        }
    }

    fn fail_if_skipped(&self, file: &str) -> Result<()> {
        if self.skipped > 0 {
            bail!(
                "{} entries of {file} were not imported (see the warnings above)",
                self.skipped
            );
        }
        Ok(())
    }
}

/// What one entry of the file is to the import.
enum Verdict {
    /// An entry to import, of this kind.
    Import(EntryKind),
    /// A bad entry in one of the two buckets (`blob sha256:…`), and why it is skipped.
    Bad(String, String),
    /// A bucket or value outside the two buckets (its contents are not visited further).
    Foreign(String),
    /// Nothing to import: one of the two buckets, or something inside a bad or foreign
    /// bucket.
    Nothing,
}

/// The kind of entry a top-level bucket holds, if it is one of the two.
fn kind_of(bucket: &[u8]) -> Option<EntryKind> {
    BUCKETS.iter().find(|(b, _)| *b == bucket).map(|(_, k)| *k)
}

/// Judges one entry of the walk: with [`raw_entry`], the only place that knows the
/// reference's layout.
fn judge(e: &Entry<'_>) -> Verdict {
    let name = |b: &[u8]| format!("{:?}", String::from_utf8_lossy(b));
    match (e.bucket, e.item) {
        ([], Item::Bucket(_)) if kind_of(e.key).is_some() => Verdict::Nothing,
        ([], Item::Bucket(_)) => Verdict::Foreign(format!("bucket {}", name(e.key))),
        ([], Item::Value(_)) => Verdict::Foreign(format!("the value {} of the root", name(e.key))),
        ([bucket], item) => match kind_of(bucket) {
            None => Verdict::Nothing,
            Some(kind) => match item {
                Item::Bucket(_) => Verdict::Bad(
                    format!("{kind} {}", shown_key(e.key)),
                    "a nested bucket, not a document".into(),
                ),
                Item::Value(value) => judge_value(kind, e.key, value),
            },
        },
        _ => Verdict::Nothing,
    }
}

/// An entry of the `kind` bucket: a valid ID and a document of that kind.
fn judge_value(kind: EntryKind, key: &[u8], value: &[u8]) -> Verdict {
    let bad = |why: String| Verdict::Bad(format!("{kind} {}", shown_key(key)), why);
    if let Err(why) = id_of(key) {
        return bad(why);
    }
    let checked = std::str::from_utf8(value)
        .map_err(|e| anyhow!("the value is not UTF-8: {e}"))
        .and_then(|doc| ndjson::check_document(kind, doc));
    match checked {
        Ok(()) => Verdict::Import(kind),
        Err(e) => bad(format!("{e:#}")),
    }
}

/// The entry to store for `e`, which the first pass judged [`Verdict::Import`] (so its
/// document is not checked again); `None` if it is not shaped like one after all.
fn raw_entry(e: &Entry<'_>) -> Option<RawEntry> {
    let ([bucket], Item::Value(value)) = (e.bucket, e.item) else {
        return None;
    };
    Some(RawEntry {
        key: EntryKey {
            kind: kind_of(bucket)?,
            id: id_of(e.key).ok()?,
        },
        value: value.to_vec(),
        expires_at: None,
    })
}

fn id_of(key: &[u8]) -> Result<Digest, String> {
    let key = std::str::from_utf8(key).map_err(|_| "the key is not UTF-8, so not an ID")?;
    Digest::parse(key).map_err(|e| e.to_string())
}

/// A key for messages: an ID as it is, anything else quoted and cut at 80 characters.
fn shown_key(key: &[u8]) -> String {
    match std::str::from_utf8(key)
        .ok()
        .filter(|k| Digest::parse(k).is_ok())
    {
        Some(id) => id.to_owned(),
        None => {
            let text: String = String::from_utf8_lossy(key).chars().take(80).collect();
            format!("{text:?}")
        }
    }
}

/// The first pass: every entry judged and counted; nothing kept.
fn check(db: &Db) -> Result<Checked> {
    let mut checked = Checked::default();
    let mut buckets = 0;
    let mut visited = 0;
    let stats = db
        .walk(&mut |e| {
            visited += 1;
            if e.bucket.is_empty() && BUCKETS.iter().any(|(b, _)| *b == e.key) {
                buckets += 1;
            }
            match judge(e) {
                Verdict::Import(kind) => {
                    checked.good.insert(visited);
                    checked.counts.add(kind, 1);
                }
                Verdict::Bad(what, why) => {
                    checked.skipped += 1;
                    if checked.skipped <= MAX_WARNINGS {
                        checked.warnings.push((what, why));
                    }
                }
                Verdict::Foreign(what) => {
                    if checked.foreign.len() < MAX_WARNINGS as usize {
                        checked.foreign.push(what);
                    }
                }
                Verdict::Nothing => {}
            }
            ControlFlow::Continue(())
        })
        .context("cannot import the Trivy cache")?;
    if buckets == 0 {
        bail!(
            "{} holds no artifact or blob bucket: it is not Trivy's fs cache (fanal/fanal.db)",
            db.path().display()
        );
    }
    tracing::debug!(
        values = stats.values,
        branch_pages = stats.branch_pages,
        leaf_pages = stats.leaf_pages,
        overflow_pages = stats.overflow_pages,
        inline_buckets = stats.inline_buckets,
        "checked {}",
        db.path().display()
    );
    Ok(checked)
}

/// The second pass: a blocking thread walks the file again and sends the entries the
/// first pass found good (by their number in the walk, so no document is decoded twice)
/// in batches; they are imported as they come. Returns what was imported.
async fn import(
    db: Arc<Db>,
    good: Bits,
    cache: &dyn Cache,
    bar: Option<&ProgressBar>,
) -> Result<Counts> {
    let (tx, mut rx) = mpsc::channel::<Vec<RawEntry>>(2);
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        let (mut visited, mut gone, mut changed) = (0, false, false);
        db.walk(&mut |e| {
            visited += 1;
            if !good.contains(visited) {
                return ControlFlow::Continue(());
            }
            let Some(entry) = raw_entry(e) else {
                changed = true;
                return ControlFlow::Break(());
            };
            batch.push(entry);
            if batch.len() >= IMPORT_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(IMPORT_BATCH));
                if tx.blocking_send(full).is_err() {
                    // The importer stopped (its error is the one to report).
                    gone = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        if changed {
            bail!("the file changed after it was checked");
        }
        if !gone && !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(())
    });
    let mut imported = Counts::default();
    while let Some(batch) = rx.recv().await {
        cache.import(&batch).await?;
        for e in &batch {
            imported.add(e.key.kind, 1);
        }
        if let Some(bar) = bar {
            bar.inc(batch.len() as u64);
        }
    }
    reader
        .await
        .context("the reader of the Trivy cache stopped")??;
    Ok(imported)
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:30}] {pos}/{len} entries {per_sec} eta {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use cache_bbolt::BucketKind;

    use super::*;

    const ID: &str = "sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0";

    fn judged(bucket: &[&[u8]], key: &[u8], item: Item<'_>) -> String {
        let path: Vec<Vec<u8>> = bucket.iter().map(|b| b.to_vec()).collect();
        match judge(&Entry {
            bucket: &path,
            key,
            item,
        }) {
            Verdict::Import(kind) => format!("import {kind} {}", String::from_utf8_lossy(key)),
            Verdict::Bad(what, why) => format!("bad {what}: {why}"),
            Verdict::Foreign(what) => format!("foreign {what}"),
            Verdict::Nothing => "nothing".into(),
        }
    }

    #[test]
    fn entries_are_judged_by_bucket_key_and_document() {
        let doc = Item::Value(br#"{"SchemaVersion":2,"Size":3}"#);
        let bucket = Item::Bucket(BucketKind::Inline);
        let check = |bucket: &[&[u8]], key: &[u8], item: Item<'_>, want: &str| {
            let got = judged(bucket, key, item);
            assert!(got.contains(want), "want {want:?}: {got}");
        };
        check(&[b"blob"], ID.as_bytes(), doc, "import blob sha256:5317");
        check(
            &[b"artifact"],
            ID.as_bytes(),
            Item::Value(br#"{"SchemaVersion":1,"OS":"linux"}"#),
            "import artifact",
        );
        check(
            &[b"blob"],
            b"sha256:00",
            doc,
            "bad blob \"sha256:00\": invalid ID",
        );
        check(
            &[b"blob"],
            b"\xff\xfe",
            doc,
            "bad blob \"\u{fffd}\u{fffd}\": the key is not UTF-8",
        );
        check(
            &[b"blob"],
            ID.as_bytes(),
            Item::Value(b"not json"),
            "bad blob sha256:5317",
        );
        check(
            &[b"blob"],
            ID.as_bytes(),
            Item::Value(b"[1,2]"),
            "document is not a valid blob",
        );
        check(
            &[b"artifact"],
            b"x",
            bucket,
            "bad artifact \"x\": a nested bucket",
        );
        check(
            &[b"artifact"],
            ID.as_bytes(),
            bucket,
            "bad artifact sha256:5317",
        );
        check(&[], b"blob", bucket, "nothing");
        check(&[], b"other", bucket, "foreign bucket \"other\"");
        check(&[b"other"], ID.as_bytes(), doc, "nothing");
        assert_eq!(
            judged(&[b"blob", b"x"], ID.as_bytes(), doc),
            "nothing",
            "inside a bad bucket"
        );
    }

    #[test]
    fn bits_hold_what_was_inserted() {
        let mut bits = Bits::default();
        for n in [1, 63, 64, 1000] {
            bits.insert(n);
        }
        let got: Vec<usize> = (0..1100).filter(|&n| bits.contains(n)).collect();
        assert_eq!(got, [1, 63, 64, 1000]);
    }

    #[test]
    fn raw_entries_keep_the_bytes_and_never_expire() {
        let path = vec![b"blob".to_vec()];
        let value = br#"{"SchemaVersion":2, "Zed":1,"Alpha":2}"#;
        let e = Entry {
            bucket: &path,
            key: ID.as_bytes(),
            item: Item::Value(value),
        };
        let raw = raw_entry(&e).unwrap();
        assert_eq!((raw.key.kind, raw.key.id.as_str()), (EntryKind::Blob, ID));
        assert_eq!((raw.value.as_slice(), raw.expires_at), (&value[..], None));
        let nested = Entry {
            bucket: &path,
            key: ID.as_bytes(),
            item: Item::Bucket(BucketKind::Pages),
        };
        assert!(raw_entry(&nested).is_none());
    }

    #[test]
    fn counts_read_as_a_sentence() {
        let mut c = Counts::default();
        assert_eq!(c.describe(), "0 artifacts and 0 blobs");
        c.add(EntryKind::Artifact, 1);
        c.add(EntryKind::Blob, 240);
        assert_eq!(
            (c.describe().as_str(), c.total()),
            ("1 artifact and 240 blobs", 241)
        );
    }

    #[test]
    fn a_cache_dir_or_its_fanal_dir_leads_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let msg = locate(dir.path()).unwrap_err().to_string();
        assert!(msg.starts_with("no Trivy fs cache in "), "{msg}");
        std::fs::create_dir(dir.path().join("fanal")).unwrap();
        std::fs::write(dir.path().join("fanal").join("fanal.db"), b"").unwrap();
        let file = dir.path().join("fanal").join("fanal.db");
        assert_eq!(locate(dir.path()).unwrap(), file);
        assert_eq!(locate(&dir.path().join("fanal")).unwrap(), file);
        assert_eq!(locate(&file).unwrap(), file);
    }
}
