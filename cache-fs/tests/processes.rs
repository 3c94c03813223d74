//! Many real OS processes on one cache directory: concurrent writers and readers, writers
//! killed with SIGKILL mid-write, map growth from two processes, gc and clear while other
//! processes are using the cache.
//!
//! Worker processes are this test executable run again with `worker_entry --exact` and
//! `CACHE_FS_WORKER=<mode>`; the test `worker_entry` runs the same worker code in-process
//! when no mode is set. Workers print `ACK <n>` after each put returned, so the parent
//! knows exactly which writes were acknowledged.

#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cache_core::{BlobId, Cache, CacheOptions};
use cache_fs::{FsCache, FsConfig};
use cache_testkit::conformance::{artifact_id, blob_id, sample_blob};

const MODE: &str = "CACHE_FS_WORKER";
const DIR: &str = "CACHE_FS_DIR";
const START: &str = "CACHE_FS_START";
const COUNT: &str = "CACHE_FS_COUNT";
const PACKAGES: &str = "CACHE_FS_PACKAGES";
const MAP: &str = "CACHE_FS_MAP";
/// Where another worker writes, for cross-process reads.
const PEER: &str = "CACHE_FS_PEER";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The entry point of worker processes. Without a worker mode (a normal test run) it runs
/// a short "mixed" worker in-process and checks its result.
#[test]
fn worker_entry() {
    let Ok(mode) = std::env::var(MODE) else {
        let tmp = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let params = Params {
            dir: tmp.path().to_owned(),
            start: 0,
            count: 20,
            packages: 2,
            map: None,
            peer: None,
        };
        run_worker("mixed", &params, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("ACK ")).count(), 20);
        assert!(text.contains("DONE"));
        return;
    };
    let params = Params {
        dir: std::env::var(DIR).unwrap().into(),
        start: env_u64(START, 0),
        count: env_u64(COUNT, 100),
        packages: env_u64(PACKAGES, 2) as usize,
        map: std::env::var(MAP).ok().and_then(|v| v.parse().ok()),
        peer: std::env::var(PEER).ok().and_then(|v| v.parse().ok()),
    };
    run_worker(&mode, &params, &mut std::io::stdout());
}

struct Params {
    dir: std::path::PathBuf,
    start: u64,
    count: u64,
    packages: usize,
    map: Option<usize>,
    peer: Option<u64>,
}

fn run_worker(mode: &str, p: &Params, out: &mut dyn Write) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config = FsConfig::default();
        if let Some(map) = p.map {
            config.initial_map_size = map;
        }
        let c = FsCache::open_with(&p.dir, &CacheOptions::default(), &config).unwrap();
        match mode {
            // Puts, reads its own entries back, reads a peer's entries in whatever state
            // they are, and asks missing_blobs now and then.
            "mixed" => {
                for i in 0..p.count {
                    let n = p.start + i;
                    c.put_blob(&blob_id(n), &sample_blob(n, p.packages))
                        .await
                        .unwrap();
                    writeln!(out, "ACK {n}").unwrap();
                    assert_eq!(
                        c.get_blob(&blob_id(n)).await.unwrap(),
                        Some(sample_blob(n, p.packages))
                    );
                    if let Some(peer) = p.peer {
                        let m = peer + i;
                        if let Some(doc) = c.get_blob(&blob_id(m)).await.unwrap() {
                            assert_eq!(doc, sample_blob(m, p.packages));
                        }
                    }
                    if i % 10 == 9 {
                        let ids: Vec<BlobId> = (p.start..=n).map(blob_id).collect();
                        let missing = c.missing_blobs(&artifact_id(0), &ids).await.unwrap();
                        assert!(missing.blobs.is_empty(), "own entries lost");
                    }
                }
                writeln!(out, "DONE").unwrap();
            }
            // Writes until killed.
            "forever" => {
                for n in p.start.. {
                    c.put_blob(&blob_id(n), &sample_blob(n, p.packages))
                        .await
                        .unwrap();
                    writeln!(out, "ACK {n}").unwrap();
                }
            }
            // Checks it sees `count` entries, waits for a line on stdin (the parent
            // clears meanwhile), then checks it sees none and writes one.
            "clear-observer" => {
                let ids: Vec<BlobId> = (p.start..p.start + p.count).map(blob_id).collect();
                let m = c.missing_blobs(&artifact_id(0), &ids).await.unwrap();
                assert!(m.blobs.is_empty());
                writeln!(out, "READY").unwrap();
                out.flush().unwrap();
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).unwrap();
                let m = c.missing_blobs(&artifact_id(0), &ids).await.unwrap();
                assert_eq!(m.blobs.len(), ids.len(), "cleared entries still visible");
                assert_eq!(c.get_blob(&ids[0]).await.unwrap(), None);
                let s = c.stats().await.unwrap();
                assert_eq!((s.blobs, s.bytes), (0, 0));
                let n = p.start + p.count;
                c.put_blob(&blob_id(n), &sample_blob(n, 1)).await.unwrap();
                writeln!(out, "ACK {n}").unwrap();
                writeln!(out, "DONE").unwrap();
            }
            other => panic!("unknown worker mode {other}"),
        }
        c.close().await.unwrap();
    });
}

/// A worker process.
struct Worker {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

fn spawn(mode: &str, dir: &Path, vars: &[(&str, String)]) -> Worker {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "worker_entry",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(MODE, mode)
    .env(DIR, dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    Worker { child, stdout }
}

impl Worker {
    /// Reads lines until one starts with `prefix` (returning it) or the output ends;
    /// collects `ACK` numbers on the way.
    fn read_until(&mut self, prefix: &str, acks: &mut Vec<u64>) -> Option<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            let l = line.trim_end();
            if let Some(n) = l.strip_prefix("ACK ") {
                acks.push(n.parse().unwrap());
            }
            if l.starts_with(prefix) {
                return Some(l.to_owned());
            }
        }
    }

    /// Waits for the worker to finish; asserts it printed DONE and exited successfully,
    /// and returns its acknowledged entries.
    fn finish(mut self) -> Vec<u64> {
        let mut acks = Vec::new();
        let done = self.read_until("DONE", &mut acks);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "worker failed: {status}");
        assert!(done.is_some(), "worker did not finish its work");
        acks
    }
}

/// Asserts every entry in `ids` is stored with its expected document.
async fn assert_all_present(c: &FsCache, ids: &[u64], packages: usize) {
    let blob_ids: Vec<BlobId> = ids.iter().copied().map(blob_id).collect();
    let m = c.missing_blobs(&artifact_id(0), &blob_ids).await.unwrap();
    assert!(
        m.blobs.is_empty(),
        "{} of {} acknowledged entries missing",
        m.blobs.len(),
        ids.len()
    );
    let docs = c.get_blobs(&blob_ids).await.unwrap();
    for (n, doc) in ids.iter().zip(docs) {
        assert_eq!(doc, Some(sample_blob(*n, packages)), "entry {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_share_one_cache() {
    const WORKERS: u64 = 8;
    const PER: u64 = 200;
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let workers: Vec<Worker> = (0..WORKERS)
        .map(|w| {
            let peer = ((w + 1) % WORKERS) * 10_000;
            spawn(
                "mixed",
                tmp.path(),
                &[
                    (START, (w * 10_000).to_string()),
                    (COUNT, PER.to_string()),
                    (PEER, peer.to_string()),
                ],
            )
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        let acks = w.finish();
        assert_eq!(acks.len() as u64, PER);
        all.extend(acks);
    }
    eprintln!(
        "{WORKERS} processes x {PER} entries in {:?}",
        started.elapsed()
    );
    let c = FsCache::open(tmp.path(), &CacheOptions::default()).unwrap();
    assert_all_present(&c, &all, 2).await;
    assert_eq!(c.stats().await.unwrap().blobs, WORKERS * PER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_no_acknowledged_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::new();
    for round in 0..12u64 {
        let mut w = spawn(
            "forever",
            tmp.path(),
            &[
                (START, (round * 100_000).to_string()),
                (PACKAGES, "40".to_owned()),
            ],
        );
        // Let it write a varying number of entries, then kill it while it is in the
        // middle of the next put.
        let want = 5 + (round * 7) % 23;
        let mut acks = Vec::new();
        while (acks.len() as u64) < want {
            w.read_until("ACK ", &mut acks).expect("worker died early");
        }
        w.child.kill().unwrap();
        w.child.wait().unwrap();
        // Anything it acknowledged before dying was printed before the kill.
        w.read_until("\u{0}", &mut acks);
        acknowledged.extend(acks);

        let c = FsCache::open(tmp.path(), &CacheOptions::default()).unwrap();
        assert_all_present(&c, &acknowledged, 40).await;
        // The cache takes writes again right away.
        let n = 1_000_000 + round;
        c.put_blob(&blob_id(n), &sample_blob(n, 40)).await.unwrap();
        acknowledged.push(n);
        c.close().await.unwrap();
    }
    // A full compacting copy reads every page: the file is consistent.
    let c = FsCache::open(tmp.path(), &CacheOptions::default()).unwrap();
    c.gc().await.unwrap();
    assert_all_present(&c, &acknowledged, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_grow_the_map_past_its_initial_size() {
    const INITIAL: usize = 1 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let workers: Vec<Worker> = (0..2u64)
        .map(|w| {
            spawn(
                "mixed",
                tmp.path(),
                &[
                    (START, (w * 10_000).to_string()),
                    (COUNT, "250".to_owned()),
                    (PACKAGES, "60".to_owned()),
                    (MAP, INITIAL.to_string()),
                    (PEER, ((1 - w) * 10_000).to_string()),
                ],
            )
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.finish());
    }
    assert_eq!(all.len(), 500);
    let size = std::fs::metadata(tmp.path().join("fanal/data.mdb"))
        .unwrap()
        .len();
    assert!(
        size > 4 * INITIAL as u64,
        "data file is {size} bytes, not well past the initial map"
    );
    let c = FsCache::open_with(
        tmp.path(),
        &CacheOptions::default(),
        &FsConfig {
            initial_map_size: INITIAL,
            ..Default::default()
        },
    )
    .unwrap();
    assert_all_present(&c, &all, 60).await;
}

/// A worker whose acknowledgements a thread collects as they come (so it never blocks
/// on a full pipe).
struct Collected {
    child: Child,
    acks: Arc<Mutex<Vec<u64>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Worker {
    fn collect(self) -> Collected {
        let Worker { child, mut stdout } = self;
        let acks = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&acks);
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(n) = line.trim_end().strip_prefix("ACK ") {
                    sink.lock().unwrap().push(n.parse().unwrap());
                }
                line.clear();
            }
        });
        Collected {
            child,
            acks,
            reader,
        }
    }
}

impl Collected {
    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Waits until the worker acknowledged more than `seen` writes.
    async fn wait_for_more_than(&mut self, seen: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked() <= seen {
            assert!(self.child.try_wait().unwrap().is_none(), "a writer exited");
            assert!(Instant::now() < deadline, "a writer made no progress");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the worker and returns every write it acknowledged.
    fn kill(mut self) -> Vec<u64> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.reader.join().unwrap();
        std::mem::take(&mut *self.acks.lock().unwrap())
    }
}

/// Writer processes that write until they are killed, and gc in this process again and
/// again meanwhile: every gc runs while all writers are alive, each writer gets writes
/// through after every gc (so none is stuck on a replaced file), and no acknowledged
/// write is lost. Nothing depends on how fast the machine is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_while_other_processes_write_loses_nothing() {
    const GCS: u64 = 6;
    let tmp = tempfile::tempdir().unwrap();
    let c = FsCache::open(tmp.path(), &CacheOptions::default()).unwrap();
    let mut workers: Vec<Collected> = (0..3u64)
        .map(|w| {
            spawn(
                "forever",
                tmp.path(),
                &[
                    (START, (w * 100_000).to_string()),
                    (PACKAGES, "20".to_owned()),
                ],
            )
            .collect()
        })
        .collect();
    for w in &mut workers {
        w.wait_for_more_than(0).await;
    }
    for gc in 0..GCS {
        let n = 900_000 + gc;
        c.import(&[cache_core::RawEntry {
            key: cache_core::EntryKey::blob(&blob_id(n)),
            value: b"stale".to_vec(),
            expires_at: None,
        }])
        .await
        .unwrap();
        let started = Instant::now();
        let report = c.gc().await.unwrap();
        assert_eq!(report.stale, 1, "{report:?}");
        eprintln!("gc {gc} took {:?}", started.elapsed());
        for w in &mut workers {
            let seen = w.acked();
            w.wait_for_more_than(seen).await;
        }
    }
    // Each compaction replaced the file once and started a new generation of the gate.
    let generations = std::fs::metadata(tmp.path().join("fanal/gc.lock"))
        .unwrap()
        .len();
    assert_eq!(generations, GCS);
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.kill());
    }
    assert_all_present(&c, &all, 20).await;
    // A fresh process view agrees.
    let fresh = spawn(
        "mixed",
        tmp.path(),
        &[(START, "50000".to_owned()), (COUNT, "5".to_owned())],
    );
    fresh.finish();
    // A killed writer may have committed one put it did not get to acknowledge.
    let blobs = c.stats().await.unwrap().blobs;
    let acked = all.len() as u64 + 5;
    assert!(
        (acked..=acked + 3).contains(&blobs),
        "{blobs} entries, {acked} acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_while_another_process_has_the_cache_open() {
    let tmp = tempfile::tempdir().unwrap();
    let c = FsCache::open(tmp.path(), &CacheOptions::default()).unwrap();
    for n in 0..300 {
        c.put_blob(&blob_id(n), &sample_blob(n, 60)).await.unwrap();
    }
    let full = c.stats().await.unwrap().disk_bytes.unwrap();
    let mut w = spawn(
        "clear-observer",
        tmp.path(),
        &[(START, "0".to_owned()), (COUNT, "300".to_owned())],
    );
    let mut acks = Vec::new();
    w.read_until("READY", &mut acks).expect("observer died");
    c.clear().await.unwrap();
    let now = c.stats().await.unwrap().disk_bytes.unwrap();
    assert!(now < full / 4, "disk {now} bytes after clear, was {full}");
    writeln!(w.child.stdin.as_mut().unwrap(), "go").unwrap();
    let acks = w.finish();
    assert_eq!(acks, vec![300]);
    // The observer's write after the clear went to the live file, not the replaced one.
    assert_eq!(
        c.get_blob(&blob_id(300)).await.unwrap(),
        Some(sample_blob(300, 1))
    );
}
