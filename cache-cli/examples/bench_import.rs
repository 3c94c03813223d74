//! Benchmark of `scancache cache import --from-trivy`: entries per second imported from
//! the reference scanner's fs cache into a fresh fs cache, against moving the same
//! entries from one scancache fs cache to another with `cache export - | cache import -`,
//! measured in the same run.
//!
//! ```text
//! cargo build --release -p cache-cli
//! cargo run --release -p cache-cli --example bench_import -- [--quick]
//!   (or cargo xtask bench [--quick] import)
//! ```
//!
//! Two Trivy caches:
//!
//! - **written by trivy**: the real `trivy` binary scans 4 generated images of 60 layers
//!   into its fs cache (244 entries); small, so the process start-up weighs;
//! - **50,000 entries** (5,000 with `--quick`): a `fanal.db` laid out page by page as
//!   bbolt lays it out (`cache_testkit::bbolt`: leaves filled to a page, values over a page
//!   on overflow pages, branch pages above), holding the documents trivy wrote for those
//!   images under distinct IDs, 1 artifact per 100 blobs. trivy itself fills its cache a
//!   transaction (and an fsync) per entry, ~40 ms each here, so a real file this large
//!   would take a quarter of an hour to make.
//!
//! Each repetition imports into a fresh cache directory. The baseline first imports the
//! same file once into a scancache fs cache, then times `scancache cache export - |
//! scancache cache import -` from it into a fresh one (one shell pipeline, both
//! processes): the same entries, the same target backend, through the NDJSON path. A
//! second pair of figures times reading alone: `cache import --from-trivy --dry-run`
//! (which reads and checks the whole file and opens no backend) against `cache export -`
//! of the scancache copy to `/dev/null`.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::{
    ops::ControlFlow,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use cache_bbolt::{Db, Item};
use cache_fixtures::{bulk_images, docker_save};
use cache_testkit::{
    bbolt::{FileBuilder, Val},
    bench::{Figure, Spread},
    trivy::{require_trivy, scan_archives},
};

/// The allocator the `scancache` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAGE: usize = 4096;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (entries, reps) = if quick { (5_000, 3) } else { (50_000, 7) };
    let scancache = cache_testkit::bench::scancache_binary();
    let Some(trivy) = require_trivy() else {
        eprintln!("bench_import: skipped (no trivy)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // A cache the real trivy wrote.
    let archives: Vec<PathBuf> = bulk_images(4, 60)
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let path = dir.path().join(format!("image-{i}.tar"));
            std::fs::write(&path, docker_save(&[image])).unwrap();
            path
        })
        .collect();
    let real = dir.path().join("trivy-cache");
    eprintln!("bench_import: trivy scans 4 images of 60 layers");
    scan_archives(&trivy, &real, &archives, &[]);
    let real_db = real.join("fanal").join("fanal.db");
    let (artifacts, blobs) = documents(&real_db);

    // The large one, built from those documents.
    let large = dir.path().join("large").join("fanal");
    std::fs::create_dir_all(&large).unwrap();
    let large_db = large.join("fanal.db");
    std::fs::write(&large_db, build_cache(entries, &artifacts, &blobs)).unwrap();

    for (label, db, n) in [
        ("written by trivy", &real_db, artifacts.len() + blobs.len()),
        (&format!("{entries} entries") as &str, &large_db, entries),
    ] {
        let (ours, base, reading) = measure(&scancache, dir.path(), db, n, reps);
        Figure {
            name: &format!("import --from-trivy, {label}"),
            unit: "entries/s",
            spread: ours,
            baseline: Some((
                "cache export - piped into cache import - of the same entries",
                base,
            )),
            target: None,
            note: Some("fs to fs; each repetition into a fresh cache directory"),
        }
        .report();
        let (dry, export) = reading;
        Figure {
            name: &format!("import --from-trivy --dry-run, {label}"),
            unit: "entries/s",
            spread: dry,
            baseline: Some(("cache export - > /dev/null of the same entries", export)),
            target: None,
            note: Some("reading and checking alone: no write on either side"),
        }
        .report();
    }
}

/// Entries per second of: importing `db` (`n` entries) into a fresh fs cache, the
/// export-import pipeline doing the same from a scancache fs cache, and (reading alone)
/// a dry run of the import and an export to nowhere.
fn measure(
    scancache: &Path,
    dir: &Path,
    db: &Path,
    n: usize,
    reps: usize,
) -> (Spread, Spread, (Spread, Spread)) {
    let source = dir.join("source");
    let _ = std::fs::remove_dir_all(&source);
    run(
        scancache,
        &source,
        &["cache", "import", "--from-trivy", db.to_str().unwrap()],
    );
    let (mut ours, mut base, mut dry, mut export) = (vec![], vec![], vec![], vec![]);
    for rep in 0..=reps {
        let t = Instant::now();
        run(
            scancache,
            &dir.join("unused"),
            &[
                "cache",
                "import",
                "--dry-run",
                "--from-trivy",
                db.to_str().unwrap(),
            ],
        );
        let dry_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let status = Command::new(scancache)
            .arg("-q")
            .arg("--cache-dir")
            .arg(&source)
            .args(["cache", "export", "-"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let export_secs = t.elapsed().as_secs_f64();

        let target = dir.join(format!("target-{rep}"));
        let t = Instant::now();
        run(
            scancache,
            &target,
            &["cache", "import", "--from-trivy", db.to_str().unwrap()],
        );
        let secs = t.elapsed().as_secs_f64();
        check_count(scancache, &target, n);
        let _ = std::fs::remove_dir_all(&target);

        let t = Instant::now();
        let pipeline = format!(
            "{bin} -q --cache-dir {src} cache export - | {bin} -q --cache-dir {dst} cache import -",
            bin = scancache.display(),
            src = source.display(),
            dst = target.display(),
        );
        let status = Command::new("sh").args(["-c", &pipeline]).status().unwrap();
        assert!(status.success(), "{pipeline}");
        let base_secs = t.elapsed().as_secs_f64();
        check_count(scancache, &target, n);
        let _ = std::fs::remove_dir_all(&target);
        // The first round warms up.
        if rep > 0 {
            ours.push(n as f64 / secs);
            base.push(n as f64 / base_secs);
            dry.push(n as f64 / dry_secs);
            export.push(n as f64 / export_secs);
        }
    }
    assert!(!dir.join("unused").exists(), "a dry run opens no backend");
    (
        Spread::of(ours),
        Spread::of(base),
        (Spread::of(dry), Spread::of(export)),
    )
}

fn run(scancache: &Path, cache_dir: &Path, args: &[&str]) {
    let out = Command::new(scancache)
        .arg("-q")
        .arg("--cache-dir")
        .arg(cache_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scancache {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts the fs cache at `cache_dir` holds `n` entries.
fn check_count(scancache: &Path, cache_dir: &Path, n: usize) {
    let out = Command::new(scancache)
        .arg("--cache-dir")
        .arg(cache_dir)
        .args(["cache", "stats", "--format", "json"])
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = stats["artifacts"].as_u64().unwrap() + stats["blobs"].as_u64().unwrap();
    assert_eq!(got, n as u64, "entries imported");
}

/// The artifact and blob documents of a fs cache trivy wrote.
fn documents(db: &Path) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut artifacts, mut blobs) = (Vec::new(), Vec::new());
    Db::open(db)
        .unwrap()
        .walk(&mut |e| {
            if let (Item::Value(v), [bucket]) = (e.item, e.bucket) {
                match bucket.as_slice() {
                    b"artifact" => artifacts.push(v.to_vec()),
                    b"blob" => blobs.push(v.to_vec()),
                    _ => {}
                }
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    (artifacts, blobs)
}

/// A Trivy fs cache of `entries` entries (1 artifact per 100 blobs) holding `artifacts`
/// and `blobs` documents in turn under distinct IDs, laid out as bbolt lays out a file:
/// keys in order, leaves filled to a page, branches above them.
fn build_cache(entries: usize, artifacts: &[Vec<u8>], blobs: &[Vec<u8>]) -> Vec<u8> {
    let n_artifacts = entries / 101;
    let n_blobs = entries - n_artifacts;
    let id = |kind: &str, i: usize| {
        let digest = cache_fixtures::sha256_digest(format!("{kind} {i}").as_bytes());
        digest.into_bytes()
    };
    let mut b = FileBuilder::new(PAGE);
    let mut bucket = |kind: &str, n: usize, docs: &[Vec<u8>]| {
        let mut items: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
            .map(|i| (id(kind, i), docs[i % docs.len()].clone()))
            .collect();
        items.sort();
        tree(&mut b, &items)
    };
    let artifact_root = bucket("artifact", n_artifacts, artifacts);
    let blob_root = bucket("blob", n_blobs, blobs);
    let root = b.leaf(&[
        (b"artifact", Val::Pages(artifact_root)),
        (b"blob", Val::Pages(blob_root)),
    ]);
    b.file(root)
}

/// Leaves of sorted `items`, each filled up to a page (or one value over a page, on
/// overflow pages), then branch levels of up to 64 children; the root's page ID.
fn tree(b: &mut FileBuilder, items: &[(Vec<u8>, Vec<u8>)]) -> u64 {
    let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        let mut size = 16;
        while end < items.len() {
            let more = 16 + items[end].0.len() + items[end].1.len();
            if end > start && size + more > PAGE {
                break;
            }
            size += more;
            end += 1;
        }
        let leaf: Vec<(&[u8], Val)> = items[start..end]
            .iter()
            .map(|(k, v)| (k.as_slice(), Val::Data(v.clone())))
            .collect();
        level.push((items[start].0.clone(), b.leaf(&leaf)));
        start = end;
    }
    while level.len() > 1 {
        level = level
            .chunks(64)
            .map(|children| {
                let refs: Vec<(&[u8], u64)> =
                    children.iter().map(|(k, id)| (k.as_slice(), *id)).collect();
                (children[0].0.clone(), b.branch(&refs))
            })
            .collect();
    }
    level[0].1
}
