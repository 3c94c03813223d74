//! The reader on files the real bbolt wrote: the reference scanner's fs caches
//! (`fanal/fanal.db`), filled by running the real `trivy` binary on generated images — a
//! small cache (one image of two layers: an inline bucket and a bucket of one leaf with
//! overflow pages) and a large one (4 images of 60 layers: an inline bucket, and a bucket
//! of a branch over dozens of leaves). What the reader finds is checked against what the
//! images hold: one image record per image, one layer result per layer, each naming its
//! layer's diffID. Then random damage to both files must never panic.

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use cache_bbolt::{BucketKind, Db, Item, WalkStats};
use cache_fixtures::{ImageBuilder, bulk_images, debian_image, docker_save};
use cache_testkit::trivy::{require_trivy, scan_archives};

/// A fs cache trivy filled, and the images it scanned.
struct Filled {
    _dir: tempfile::TempDir,
    db: PathBuf,
    images: Vec<ImageBuilder>,
}

/// The two caches, filled once for all tests of this binary; `None` when trivy is missing
/// and `SCANCACHE_SKIP_TRIVY_TESTS=1` says to skip.
fn caches() -> Option<&'static (Filled, Filled)> {
    static CACHES: OnceLock<Option<(Filled, Filled)>> = OnceLock::new();
    CACHES
        .get_or_init(|| {
            let trivy = require_trivy()?;
            Some((
                fill(&trivy, vec![debian_image()]),
                fill(&trivy, bulk_images(4, 60)),
            ))
        })
        .as_ref()
}

fn fill(trivy: &Path, images: Vec<ImageBuilder>) -> Filled {
    let dir = tempfile::tempdir().unwrap();
    let archives: Vec<PathBuf> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let path = dir.path().join(format!("image-{i}.tar"));
            std::fs::write(&path, docker_save(&[image])).unwrap();
            path
        })
        .collect();
    let cache = dir.path().join("cache");
    scan_archives(trivy, &cache, &archives, &[]);
    Filled {
        db: cache.join("fanal").join("fanal.db"),
        _dir: dir,
        images,
    }
}

/// What a walk found: bucket kinds by name, and each (bucket, key) → value.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    buckets: BTreeMap<String, BucketKind>,
    values: BTreeMap<(String, String), Vec<u8>>,
    stats: WalkStats,
}

fn walk(path: &Path) -> cache_bbolt::Result<Found> {
    let db = Db::open(path)?;
    let mut found = Found::default();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    found.stats = db.walk(&mut |e| {
        let bucket: Vec<String> = e.bucket.iter().map(|b| text(b)).collect();
        match e.item {
            Item::Bucket(kind) => {
                found.buckets.insert(text(e.key), kind);
            }
            Item::Value(v) => {
                found
                    .values
                    .insert((bucket.join("/"), text(e.key)), v.to_vec());
            }
        }
        ControlFlow::Continue(())
    })?;
    Ok(found)
}

/// Checks the file holds exactly the images' records: one artifact per image, one blob
/// per layer naming its diffID, in the buckets trivy creates.
fn check_contents(filled: &Filled) -> Found {
    let found = walk(&filled.db).unwrap();
    let in_bucket = |name: &'static str| {
        found
            .values
            .iter()
            .filter(move |((bucket, _), _)| bucket == name)
            .map(|((_, key), value)| (key, value))
    };
    assert_eq!(in_bucket("artifact").count(), filled.images.len());
    let want: BTreeSet<String> = filled
        .images
        .iter()
        .flat_map(|image| image.layers.iter().map(|l| l.diff_id.clone()))
        .collect();
    let got: BTreeSet<String> = in_bucket("blob")
        .map(|(key, value)| {
            assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
            let doc: serde_json::Value = serde_json::from_slice(value).unwrap();
            doc["DiffID"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(got, want, "one layer result per layer");
    assert_eq!(found.values.len(), filled.images.len() + want.len());
    for value in found.values.values() {
        let doc: serde_json::Value = serde_json::from_slice(value).unwrap();
        assert!(doc["SchemaVersion"].is_number(), "a document: {doc}");
    }
    found
}

#[test]
fn a_small_cache_trivy_wrote_reads_completely() {
    let Some((small, _)) = caches() else { return };
    let found = check_contents(small);
    assert_eq!(
        found.buckets,
        BTreeMap::from([
            ("artifact".into(), BucketKind::Inline),
            ("blob".into(), BucketKind::Pages)
        ])
    );
    assert!(found.stats.overflow_pages > 0, "{:?}", found.stats);
    assert_eq!(found.stats.branch_pages, 0, "{:?}", found.stats);
}

#[test]
fn a_large_cache_trivy_wrote_reads_completely() {
    let Some((_, large)) = caches() else { return };
    let found = check_contents(large);
    assert_eq!(found.values.len(), 4 + 240);
    assert_eq!(
        found.buckets,
        BTreeMap::from([
            ("artifact".into(), BucketKind::Inline),
            ("blob".into(), BucketKind::Pages)
        ])
    );
    let stats = found.stats;
    assert!(
        stats.branch_pages >= 1 && stats.leaf_pages > 10,
        "{stats:?}"
    );
    assert!(stats.overflow_pages > 0, "{stats:?}");
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

/// Overwrites `path` in place with `bytes` (truncating to nothing first would make ext4
/// flush the file on close, milliseconds per round).
fn rewrite(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
    f.set_len(bytes.len() as u64).unwrap();
}

/// The pages of `file` that start with a page header labelled with their own number: all
/// but the overflow pages, which continue the page before them with a value's bytes.
fn labelled_pages(file: &[u8], page: usize) -> Vec<usize> {
    (0..file.len() / page)
        .filter(|&p| file[p * page..p * page + 8] == (p as u64).to_le_bytes())
        .collect()
}

/// Random bytes changed, whole pages zeroed or copied over others, the file cut short:
/// every damaged copy of a real file reads, or fails with an error — never a panic or a
/// hang. Whole labelled pages damaged, or the file cut short, give an error or entries
/// the file held. (Overflow pages are left out of that: they hold nothing but value
/// bytes, and bbolt keeps no checksum of values, so no reader can tell a changed value.)
#[test]
fn damaged_real_files_fail_cleanly_or_read_a_subset() {
    let Some((small, large)) = caches() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    let mut rng = Rng(0x7121);
    for (filled, rounds) in [(small, 600), (large, 300)] {
        let original = std::fs::read(&filled.db).unwrap();
        let want = walk(&filled.db).unwrap().values;
        let page = Db::open(&filled.db).unwrap().page_size() as usize;
        let pages = original.len() / page;
        let labelled = labelled_pages(&original, page);
        assert!(labelled.len() < pages, "the file has overflow pages");
        let (mut errors, mut reads) = (0, 0);
        for round in 0..rounds {
            let mut f = original.clone();
            let structural = round % 2 == 0;
            if structural {
                let target = labelled[rng.below(labelled.len())] * page;
                match rng.below(3) {
                    0 => f[target..target + page].fill(0),
                    1 => {
                        let from = rng.below(pages) * page;
                        f.copy_within(from..from + page, target);
                    }
                    _ => f.truncate(rng.below(original.len())),
                }
            } else {
                for _ in 0..1 + rng.below(8) {
                    // Most changes in the first bytes of a page, where the structure is.
                    let at = if rng.below(4) != 0 {
                        rng.below(pages) * page + rng.below(128)
                    } else {
                        rng.below(f.len())
                    };
                    f[at] = rng.below(256) as u8;
                }
            }
            rewrite(&path, &f);
            match walk(&path) {
                Err(e) => {
                    assert!(e.is_bad_file(), "{e}");
                    errors += 1;
                }
                Ok(found) => {
                    reads += 1;
                    if structural {
                        for (key, value) in &found.values {
                            assert!(want.get(key) == Some(value), "{key:?} was not in the file");
                        }
                    }
                }
            }
        }
        assert!(errors > 0 && reads > 0, "errors {errors}, reads {reads}");
    }
}
