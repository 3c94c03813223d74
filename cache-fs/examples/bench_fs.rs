//! Benchmark of the LMDB backend against raw heed on the same bytes, in the same run.
//!
//! ```text
//! cargo run --release -p cache-fs --example bench_fs -- [--quick]   (or cargo xtask bench fs)
//! ```
//!
//! Reports per-operation times (median, min–max over several repetitions after a
//! warm-up) for `put_blob` and `get_blob` of a ~10 KB document and `missing_blobs` of
//! 100 IDs, each as a ratio to raw heed: plain put/commit and get of the same stored
//! bytes ("raw"), and the same plus the JSON encoding/decoding any backend must do
//! ("raw+json"). Then measures read throughput of one reader process and of two at once.

#![allow(clippy::unwrap_used)]

use std::{
    cell::Cell,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cache_core::{BlobId, BlobInfo, Cache, CacheOptions, EntryKey, RawEntry, codec};
use cache_fs::FsCache;
use cache_testkit::{
    bench::{Figure, Spread},
    conformance::{artifact_id, blob_id, sample_blob},
};
use heed::{CommitOrAbort, Database, EnvOpenOptions, types::Bytes};

/// The allocator the `scancache` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Packages per document: about 10 KB of JSON.
const PACKAGES: usize = 70;

struct Sizes {
    reps: usize,
    puts: usize,
    gets: usize,
    missing: usize,
    reader_ops: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--reader") {
        reader(Path::new(&args[2]), args[3].parse().unwrap());
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            reps: 3,
            puts: 50,
            gets: 2_000,
            missing: 200,
            reader_ops: 20_000,
        }
    } else {
        Sizes {
            reps: 7,
            puts: 200,
            gets: 20_000,
            missing: 2_000,
            reader_ops: 200_000,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let doc = sample_blob(1, PACKAGES);
    let json = codec::encode(&doc);
    println!(
        "document: {} bytes of JSON; {} repetitions after warm-up{}",
        json.len(),
        sizes.reps,
        if quick { " (--quick)" } else { "" }
    );

    let fs_dir = tempfile::tempdir().unwrap();
    let raw_dir = tempfile::tempdir().unwrap();
    let cache = FsCache::open(fs_dir.path(), &CacheOptions::default()).unwrap();
    let raw = Raw::open(raw_dir.path());
    let ids: Vec<BlobId> = (0..100).map(blob_id).collect();
    let stored: Vec<u8> = [&[0u8; 16][..], &json].concat();

    // put: the three variants run in alternating repetitions, so that noise from other
    // work on the machine hits them alike.
    let n = Cell::new(0u64);
    let [fs_put, raw_put, raw_json_put] = measure(
        sizes.reps,
        sizes.puts,
        &mut [
            &mut || {
                n.set(n.get() + 1);
                rt.block_on(cache.put_blob(&blob_id(n.get() % 100), &doc))
                    .unwrap();
            },
            &mut || {
                n.set(n.get() + 1);
                raw.put(blob_id(n.get() % 100).as_str(), &stored);
            },
            &mut || {
                n.set(n.get() + 1);
                let mut v = vec![0u8; 16];
                v.extend_from_slice(&codec::encode(&doc));
                raw.put(blob_id(n.get() % 100).as_str(), &v);
            },
        ],
    );

    // get
    for id in &ids {
        raw.put(id.as_str(), &stored);
        rt.block_on(cache.put_blob(id, &doc)).unwrap();
    }
    let n = Cell::new(0usize);
    let [fs_get, raw_get, raw_json_get] = measure(
        sizes.reps,
        sizes.gets,
        &mut [
            &mut || {
                n.set(n.get() + 1);
                let got = rt.block_on(cache.get_blob(&ids[n.get() % 100])).unwrap();
                assert!(got.is_some());
            },
            &mut || {
                n.set(n.get() + 1);
                assert!(raw.get_len(ids[n.get() % 100].as_str()) > 0);
            },
            &mut || {
                n.set(n.get() + 1);
                let doc: BlobInfo = raw.get_decoded(ids[n.get() % 100].as_str());
                assert!(doc.is_current());
            },
        ],
    );

    // missing_blobs of 100 IDs, all present
    let [fs_missing, raw_missing, raw_json_missing] = measure(
        sizes.reps,
        sizes.missing,
        &mut [
            &mut || {
                let m = rt
                    .block_on(cache.missing_blobs(&artifact_id(1), &ids))
                    .unwrap();
                assert_eq!(m.blobs.len(), 0);
            },
            &mut || assert_eq!(raw.count_present(&ids, false), 100),
            &mut || assert_eq!(raw.count_present(&ids, true), 100),
        ],
    );

    let us = |s: &Stat| Spread {
        median: s.median.as_secs_f64() * 1e6,
        min: s.min.as_secs_f64() * 1e6,
        max: s.max.as_secs_f64() * 1e6,
    };
    let figures = [
        (
            "put_blob 10KB",
            &fs_put,
            "raw heed put+commit of the same bytes",
            &raw_put,
            Some("<= 2"),
            Some("each put is one durable LMDB commit"),
        ),
        (
            "put_blob 10KB (vs raw incl. JSON encode)",
            &fs_put,
            "raw heed put+commit + JSON encode",
            &raw_json_put,
            None,
            None,
        ),
        (
            "get_blob 10KB",
            &fs_get,
            "raw heed get + the same JSON decode",
            &raw_json_get,
            Some("<= 1.5"),
            Some("any typed get must decode the document"),
        ),
        (
            "get_blob 10KB (vs raw bytes only)",
            &fs_get,
            "raw heed get of the bytes, no decode",
            &raw_get,
            None,
            Some("shows the cost of JSON decoding"),
        ),
        (
            "missing_blobs 100 IDs",
            &fs_missing,
            "raw heed get of 100 keys in one txn",
            &raw_missing,
            None,
            Some("currency comes from the value header, not from parsing"),
        ),
        (
            "missing_blobs 100 IDs (vs raw incl. probe)",
            &fs_missing,
            "raw heed gets + SchemaVersion parse",
            &raw_json_missing,
            None,
            None,
        ),
    ];
    for (name, ours, base_name, base, target, note) in figures {
        Figure {
            name,
            unit: "us/op",
            spread: us(ours),
            baseline: Some((base_name, us(base))),
            target,
            note,
        }
        .report();
    }

    // missing_blobs of 10 and 1000 IDs (all present) against raw heed gets in one txn.
    let many: Vec<BlobId> = (0..1000).map(blob_id).collect();
    let entries: Vec<RawEntry> = many
        .iter()
        .map(|id| RawEntry {
            key: EntryKey::blob(id),
            value: json.clone(),
            expires_at: None,
        })
        .collect();
    rt.block_on(cache.import(&entries)).unwrap();
    for id in &many {
        raw.put(id.as_str(), &stored);
    }
    for n in [10usize, 1000] {
        let ids = &many[..n];
        let [ours, base] = measure(
            sizes.reps,
            (sizes.missing * 100 / n).max(5),
            &mut [
                &mut || {
                    let m = rt
                        .block_on(cache.missing_blobs(&artifact_id(1), ids))
                        .unwrap();
                    assert!(m.blobs.is_empty());
                },
                &mut || assert_eq!(raw.count_present(ids, false), n),
            ],
        );
        Figure {
            name: &format!("missing_blobs {n} IDs"),
            unit: "us/op",
            spread: us(&ours),
            baseline: Some((&format!("raw heed get of {n} keys in one txn"), us(&base))),
            target: None,
            note: None,
        }
        .report();
    }

    // Concurrent readers: one process alone, then two and eight at once, on the same
    // cache.
    println!();
    let exe = std::env::current_exe().unwrap();
    let run = |procs: usize| -> f64 {
        let started = Instant::now();
        let children: Vec<_> = (0..procs)
            .map(|_| {
                Command::new(&exe)
                    .args([
                        "--reader",
                        fs_dir.path().to_str().unwrap(),
                        &sizes.reader_ops.to_string(),
                    ])
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut total = 0.0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            total += String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse::<f64>()
                .unwrap();
        }
        let _ = started;
        total
    };
    let one = Spread::of((0..3).map(|_| run(1)).collect());
    let two = Spread::of((0..3).map(|_| run(2)).collect());
    let eight = Spread::of((0..3).map(|_| run(8)).collect());
    Figure {
        name: "get_blob readers: 8 processes",
        unit: "get/s",
        spread: eight,
        baseline: Some(("1 process", one)),
        target: None,
        note: Some("2 cores: 2.0 is the ceiling; below 2 shows contention, not locking"),
    }
    .report();
    Figure {
        name: "get_blob readers: 2 processes",
        unit: "get/s",
        spread: two,
        baseline: Some(("1 process", one)),
        target: None,
        note: Some("ratio = scaling; 2.0 is perfect on 2 cores"),
    }
    .report();
    drop(cache);
}

/// A reader process: opens the cache, reads `ops` documents, prints ops per second.
fn reader(dir: &Path, ops: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = FsCache::open(dir, &CacheOptions::default()).unwrap();
    let ids: Vec<BlobId> = (0..100).map(blob_id).collect();
    let started = Instant::now();
    rt.block_on(async {
        for i in 0..ops {
            assert!(cache.get_blob(&ids[i % 100]).await.unwrap().is_some());
        }
    });
    println!("{}", ops as f64 / started.elapsed().as_secs_f64());
}

struct Stat {
    median: Duration,
    min: Duration,
    max: Duration,
}

/// Runs `ops` operations of each variant per repetition, the variants taking turns, after
/// one warm-up repetition; returns per-op time statistics of each variant.
fn measure<const N: usize>(
    reps: usize,
    ops: usize,
    variants: &mut [&mut dyn FnMut(); N],
) -> [Stat; N] {
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::new());
    for rep in 0..=reps {
        for (v, op) in variants.iter_mut().enumerate() {
            let started = Instant::now();
            for _ in 0..ops {
                op();
            }
            if rep > 0 {
                times[v].push(started.elapsed() / ops as u32);
            }
        }
    }
    times.map(|mut t| {
        t.sort();
        Stat {
            median: t[t.len() / 2],
            min: t[0],
            max: t[t.len() - 1],
        }
    })
}

/// Plain heed on its own directory: the baseline.
struct Raw {
    env: heed::Env,
    db: Database<'static, Bytes, Bytes>,
}

impl Raw {
    fn open(dir: &Path) -> Raw {
        let mut options = EnvOpenOptions::new();
        options.max_dbs(4).map_size(256 << 20);
        // SAFETY: a fresh temp dir opened once by this process only.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(dir) }.unwrap();
        let wtxn = env.write_txn().unwrap();
        let db = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                dbo.create_database::<Bytes, Bytes>(wtxn, Some("blobs"))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        Raw { env, db }
    }

    fn put(&self, key: &str, value: &[u8]) {
        let mut wtxn = self.env.write_txn().unwrap();
        self.db.put(&mut wtxn, key.as_bytes(), value).unwrap();
        wtxn.commit().unwrap();
    }

    fn get_len(&self, key: &str) -> usize {
        let rtxn = self.env.read_txn().unwrap();
        self.db.get(&rtxn, key.as_bytes()).unwrap().unwrap().len()
    }

    fn get_decoded(&self, key: &str) -> BlobInfo {
        let rtxn = self.env.read_txn().unwrap();
        let v = self.db.get(&rtxn, key.as_bytes()).unwrap().unwrap();
        codec::decode("bench", &v[16..]).unwrap()
    }

    fn count_present(&self, ids: &[BlobId], probe: bool) -> usize {
        let rtxn = self.env.read_txn().unwrap();
        ids.iter()
            .filter(|id| {
                self.db
                    .get(&rtxn, id.as_str().as_bytes())
                    .unwrap()
                    .is_some_and(|v| {
                        !probe || codec::is_current(cache_core::EntryKind::Blob, &v[16..])
                    })
            })
            .count()
    }
}
