//! Behaviour specific to the LMDB backend, in one process: layout, persistence, TTL, the
//! size bound, reads that never write, gc and clear returning disk space, corrupt values
//! and error cases.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use cache_core::{BlobId, Cache, CacheOptions, EntryKey, EntryKind, RawEntry};
use cache_fs::{FsCache, FsConfig};
use cache_testkit::conformance::{artifact_id, blob_id, sample_blob};

fn open(dir: &Path, options: CacheOptions) -> FsCache {
    FsCache::open(dir, &options).unwrap()
}

fn data_file(dir: &Path) -> PathBuf {
    dir.join("fanal").join("data.mdb")
}

async fn live_blob_ids(c: &FsCache) -> Vec<BlobId> {
    let mut ids = Vec::new();
    c.list(Some(EntryKind::Blob), &mut |m| {
        ids.push(BlobId::from(m.key.id));
        std::ops::ControlFlow::Continue(())
    })
    .await
    .unwrap();
    ids
}

#[cfg(unix)]
#[tokio::test]
async fn data_lives_in_fanal_with_private_modes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new").join("cache");
    let c = open(&dir, CacheOptions::default());
    c.put_blob(&blob_id(1), &sample_blob(1, 1)).await.unwrap();
    let fanal = dir.join("fanal").canonicalize().unwrap();
    assert_eq!(c.backend_name(), "fs");
    assert_eq!(c.location(), fanal.display().to_string());
    assert_eq!(c.path(), fanal);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&fanal), 0o700);
    for file in ["data.mdb", "lock.mdb", "gc.lock"] {
        assert_eq!(mode(&fanal.join(file)), 0o600, "{file}");
    }
}

#[tokio::test]
async fn entries_survive_close_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let c = open(tmp.path(), CacheOptions::default());
    c.put_blob(&blob_id(1), &sample_blob(1, 3)).await.unwrap();
    c.close().await.unwrap();
    assert!(c.get_blob(&blob_id(1)).await.is_err(), "closed cache");
    drop(c);
    let c = open(tmp.path(), CacheOptions::default());
    assert_eq!(
        c.get_blob(&blob_id(1)).await.unwrap(),
        Some(sample_blob(1, 3))
    );
}

#[tokio::test]
async fn ttl_entries_expire_and_gc_drops_them() {
    let tmp = tempfile::tempdir().unwrap();
    let short = open(
        tmp.path(),
        CacheOptions {
            ttl: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    );
    let forever = open(tmp.path(), CacheOptions::default());
    for n in 0..5 {
        short
            .put_blob(&blob_id(n), &sample_blob(n, 2))
            .await
            .unwrap();
    }
    forever
        .put_blob(&blob_id(9), &sample_blob(9, 2))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Expiry is stored with the entry: every handle sees it, whatever its own TTL.
    assert_eq!(forever.get_blob(&blob_id(0)).await.unwrap(), None);
    let s = forever.stats().await.unwrap();
    assert_eq!((s.blobs, s.expired), (1, 5), "{s:?}");
    // Expired entries are still listed (with their expiry) until gc.
    let mut listed = 0;
    forever
        .list(None, &mut |m| {
            listed += 1;
            assert!(m.expires_at.is_some() || m.key == EntryKey::blob(&blob_id(9)));
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!(listed, 6);
    let report = forever.gc().await.unwrap();
    assert_eq!((report.expired, report.stale), (5, 0), "{report:?}");
    let s = forever.stats().await.unwrap();
    assert_eq!((s.blobs, s.expired), (1, 0));
    assert_eq!(live_blob_ids(&forever).await, vec![blob_id(9)]);
}

/// Reads record use without writing: the data file is untouched by any number of gets.
#[tokio::test]
async fn reads_never_write() {
    let tmp = tempfile::tempdir().unwrap();
    let c = FsCache::open_with(
        tmp.path(),
        &CacheOptions::default(),
        &FsConfig {
            access_granularity: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    for n in 0..20 {
        c.put_blob(&blob_id(n), &sample_blob(n, 2)).await.unwrap();
    }
    let written_s = unix_s();
    // Let the clock pass the second the entries were stamped in.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let modified = || {
        std::fs::metadata(data_file(tmp.path()))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = modified();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..10 {
        for n in 0..20 {
            assert!(c.get_blob(&blob_id(n)).await.unwrap().is_some());
        }
        c.missing_blobs(&artifact_id(1), &[blob_id(1)])
            .await
            .unwrap();
    }
    assert_eq!(modified(), before, "a read wrote to the data file");
    // The recorded uses go out with the next write.
    c.put_blob(&blob_id(99), &sample_blob(99, 1)).await.unwrap();
    assert_ne!(modified(), before);
    c.close().await.unwrap();
    drop(c);
    let stamps = raw_stamps(
        &tmp.path().join("fanal"),
        &(0..20).map(blob_id).collect::<Vec<_>>(),
    );
    for (n, stamp) in stamps.iter().enumerate() {
        assert!(
            *stamp > written_s,
            "blob {n}: stamp {stamp}, written at {written_s}"
        );
    }
}

fn unix_s() -> u32 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    u32::try_from(s).unwrap()
}

/// The last-access stamps stored for blobs, read with heed directly (the cache must be
/// closed).
fn raw_stamps(fanal: &Path, ids: &[BlobId]) -> Vec<u32> {
    use heed::{CommitOrAbort, EnvOpenOptions, types::Bytes};
    let mut options = EnvOpenOptions::new();
    options.max_dbs(8);
    // SAFETY: the directory is not opened by anything else in this process right now.
    #[allow(unsafe_code)]
    let env = unsafe { options.open(fanal) }.unwrap();
    let db = env
        .open_databases_and_commit(env.read_txn().unwrap(), |dbo, rtxn| {
            dbo.open_database::<Bytes, Bytes>(rtxn, Some("blobs-v1"))
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit()
        .unwrap();
    let rtxn = env.read_txn().unwrap();
    let stamps = ids
        .iter()
        .map(|id| {
            let stored = db.get(&rtxn, id.as_str().as_bytes()).unwrap().unwrap();
            u32::from_le_bytes(stored[8..12].try_into().unwrap())
        })
        .collect();
    drop(rtxn);
    env.prepare_for_closing().wait();
    stamps
}

/// With a size bound, puts evict least recently used entries: an old entry that was read
/// recently survives, the one that was not read for longest is evicted, and the bound
/// holds.
///
/// Stamps have one-second resolution and eviction within one second goes by key, so each
/// phase starts after a pause of more than a second: the entry to drop is strictly the
/// oldest, and the entry read is strictly newer than every filler, however slowly the
/// puts of one phase run.
#[tokio::test]
async fn size_bound_evicts_least_recently_used() {
    let tmp = tempfile::tempdir().unwrap();
    let doc_len = cache_core::codec::encode(&sample_blob(0, 20)).len() as u64;
    // Room for about ten entries (each charged its document plus 96 bytes).
    let max = 10 * (doc_len + 200);
    let c = FsCache::open_with(
        tmp.path(),
        &CacheOptions {
            max_size: Some(max),
            ..Default::default()
        },
        &FsConfig {
            access_granularity: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .unwrap();
    let pause = || tokio::time::sleep(Duration::from_millis(1100));
    // Phase 0: the entry that will be least recently used.
    let (keep, drop_me) = (blob_id(1), blob_id(2));
    c.put_blob(&drop_me, &sample_blob(2, 20)).await.unwrap();
    // Phase 1: `keep` and six fillers.
    pause().await;
    c.put_blob(&keep, &sample_blob(1, 20)).await.unwrap();
    for n in 10..16 {
        c.put_blob(&blob_id(n), &sample_blob(n, 20)).await.unwrap();
    }
    assert_eq!(c.stats().await.unwrap().blobs, 8, "nothing evicted yet");
    // Phase 2: `keep` is read; its new stamp goes out with the next write.
    pause().await;
    assert!(c.get_blob(&keep).await.unwrap().is_some());
    c.put_blob(&blob_id(20), &sample_blob(20, 20))
        .await
        .unwrap();
    // Phase 3: new entries push out the oldest: `drop_me` first, then fillers (15 entries
    // for about 10 places, so at most 6 of the 7 older ones go).
    pause().await;
    for n in 30..36 {
        c.put_blob(&blob_id(n), &sample_blob(n, 20)).await.unwrap();
    }
    let stats = c.stats().await.unwrap();
    assert!(
        stats.bytes + stats.blobs * 96 <= max,
        "bound exceeded: {stats:?}"
    );
    assert!(
        c.get_blob(&keep).await.unwrap().is_some(),
        "recently read entry was evicted"
    );
    assert_eq!(
        c.get_blob(&drop_me).await.unwrap(),
        None,
        "least recently used entry survived"
    );
    for n in 30..36 {
        assert!(c.get_blob(&blob_id(n)).await.unwrap().is_some(), "{n}");
    }
    // Many more puts: the bound keeps holding.
    for n in 100..160 {
        c.put_blob(&blob_id(n), &sample_blob(n, 20)).await.unwrap();
    }
    let stats = c.stats().await.unwrap();
    assert!(stats.bytes + stats.blobs * 96 <= max, "{stats:?}");
    assert!(stats.blobs >= 5, "{stats:?}");
}

/// gc and clear of one process running at once (on two handles, which share one
/// environment) on a cache large enough for the copies to overlap, while other tasks
/// write: each compaction writes and swaps in its own complete copy, so every gc and
/// clear succeeds, the cache stays readable and writable, and entries written after the
/// last clear are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_gc_and_clear_in_one_process_never_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let a = std::sync::Arc::new(open(tmp.path(), CacheOptions::default()));
    let b = open(tmp.path(), CacheOptions::default());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (a, stop) = (a.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = w * 1_000_000;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    a.put_blob(&blob_id(n), &sample_blob(n, 20)).await.unwrap();
                    if let Some(doc) = a.get_blob(&blob_id(n)).await.unwrap() {
                        assert_eq!(doc, sample_blob(n, 20));
                    }
                    n += 1;
                }
                n - w * 1_000_000
            })
        })
        .collect();
    let filler: Vec<RawEntry> = (0..1500)
        .map(|n| RawEntry {
            key: EntryKey::blob(&blob_id(10_000_000 + n)),
            value: cache_core::codec::encode(&sample_blob(n, 60)),
            expires_at: None,
        })
        .collect();
    for round in 0..4 {
        a.import(&filler).await.unwrap();
        let (one, two) = tokio::join!(a.gc(), b.gc());
        one.unwrap_or_else(|e| panic!("gc in round {round}: {e}"));
        two.unwrap_or_else(|e| panic!("gc in round {round}: {e}"));
        let (gc, cleared) = tokio::join!(b.gc(), a.clear());
        gc.unwrap_or_else(|e| panic!("gc beside clear in round {round}: {e}"));
        cleared.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        assert!(w.await.unwrap() > 0, "a writer made no progress");
    }
    // Entries written from now on are kept, and a full compacting copy (which reads every
    // page) succeeds.
    let ids: Vec<BlobId> = (5_000_000..5_000_050).map(blob_id).collect();
    for (n, id) in (5_000_000..).zip(&ids) {
        b.put_blob(id, &sample_blob(n, 20)).await.unwrap();
    }
    a.gc().await.unwrap();
    assert!(
        a.missing_blobs(&artifact_id(0), &ids)
            .await
            .unwrap()
            .blobs
            .is_empty()
    );
    let docs = b.get_blobs(&ids).await.unwrap();
    for (n, doc) in (5_000_000..).zip(docs) {
        assert_eq!(doc, Some(sample_blob(n, 20)));
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("fanal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("compact"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A compaction file whose writer still holds its lock is left alone by other
/// compactions, whatever its name says; one nobody holds is abandoned and removed.
#[tokio::test]
async fn compaction_files_in_use_are_not_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let c = open(tmp.path(), CacheOptions::default());
    c.put_blob(&blob_id(1), &sample_blob(1, 2)).await.unwrap();
    let fanal = tmp.path().join("fanal");
    let file = |name: &str| {
        let path = fanal.join(name);
        std::fs::write(&path, b"partial copy").unwrap();
        path
    };
    // Another writer (here: another open file description) is still writing these; one
    // is named like the copies of older versions, after this process's PID, as another
    // container's PID 1 would be in a container that is PID 1 too.
    let live = file("data.mdb.compact-Xy12ab.tmp");
    let live_same_pid = file(&format!("data.mdb.compact-{}.tmp", std::process::id()));
    let held: Vec<std::fs::File> = [&live, &live_same_pid]
        .into_iter()
        .map(|p| {
            let f = std::fs::File::open(p).unwrap();
            fs4::FileExt::try_lock(&f).unwrap();
            f
        })
        .collect();
    // Their writers died: nobody holds them, whatever PID their name has (1 is alive in
    // every PID namespace).
    let abandoned = file("data.mdb.compact-Zq98cd.tmp");
    let abandoned_pid1 = file("data.mdb.compact-1.tmp");
    c.gc().await.unwrap();
    assert!(live.exists(), "removed a copy in use");
    assert!(live_same_pid.exists(), "removed a copy in use");
    assert!(!abandoned.exists(), "kept an abandoned copy");
    assert!(!abandoned_pid1.exists(), "kept an abandoned copy");
    drop(held);
    c.clear().await.unwrap();
    assert!(!live.exists() && !live_same_pid.exists());
    assert_eq!(c.get_blob(&blob_id(1)).await.unwrap(), None);
}

#[tokio::test]
async fn gc_returns_disk_space() {
    let tmp = tempfile::tempdir().unwrap();
    let c = open(tmp.path(), CacheOptions::default());
    let ids: Vec<BlobId> = (0..1500).map(blob_id).collect();
    let entries: Vec<RawEntry> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| RawEntry {
            key: EntryKey::blob(id),
            value: cache_core::codec::encode(&sample_blob(n as u64, 60)),
            expires_at: None,
        })
        .collect();
    c.import(&entries).await.unwrap();
    let full = std::fs::metadata(data_file(tmp.path())).unwrap().len();
    assert!(full > 10 << 20, "filled only {full} bytes");
    let (gone, kept) = ids.split_at(1400);
    c.delete_blobs(gone).await.unwrap();
    // Deleting alone never shrinks an LMDB file.
    assert!(std::fs::metadata(data_file(tmp.path())).unwrap().len() >= full);
    let report = c.gc().await.unwrap();
    let (before, after) = report.disk_bytes.unwrap();
    let now = std::fs::metadata(data_file(tmp.path())).unwrap().len();
    assert!(before >= full && after < before / 5, "{report:?}");
    assert!(now < full / 5, "data.mdb is still {now} bytes (was {full})");
    assert_eq!(c.stats().await.unwrap().disk_bytes, Some(after));
    let missing = c.missing_blobs(&artifact_id(0), kept).await.unwrap();
    assert!(missing.blobs.is_empty());
    assert_eq!(
        c.get_blob(&kept[7]).await.unwrap(),
        Some(sample_blob(1407, 60))
    );
    // The cache stays fully usable after the swap.
    c.put_blob(&blob_id(5000), &sample_blob(5000, 1))
        .await
        .unwrap();
    assert_eq!(c.stats().await.unwrap().blobs, 101);
}

/// Two handles on one directory: a clear through one is seen at once through the other,
/// and the space comes back.
#[tokio::test]
async fn clear_is_seen_by_other_handles_and_returns_space() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path(), CacheOptions::default());
    let b = open(tmp.path(), CacheOptions::default());
    for n in 0..300 {
        a.put_blob(&blob_id(n), &sample_blob(n, 60)).await.unwrap();
    }
    assert!(b.get_blob(&blob_id(7)).await.unwrap().is_some());
    let full = b.stats().await.unwrap().disk_bytes.unwrap();
    a.clear().await.unwrap();
    assert_eq!(b.get_blob(&blob_id(7)).await.unwrap(), None);
    let s = b.stats().await.unwrap();
    assert_eq!((s.blobs, s.bytes), (0, 0));
    assert!(s.disk_bytes.unwrap() < full / 4, "{s:?}, was {full} bytes");
    b.put_blob(&blob_id(1), &sample_blob(1, 1)).await.unwrap();
    assert!(a.get_blob(&blob_id(1)).await.unwrap().is_some());
}

/// Values that are too short for their header or are not JSON are typed errors naming
/// the ID, count as missing, and are removed by gc; nothing panics.
#[tokio::test]
async fn corrupt_values_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let (short, garbage, good) = (blob_id(1), blob_id(2), blob_id(3));
    {
        let c = open(tmp.path(), CacheOptions::default());
        c.put_blob(&good, &sample_blob(3, 1)).await.unwrap();
        c.close().await.unwrap();
    }
    plant(
        &tmp.path().join("fanal"),
        &[
            (short.as_str(), b"tiny".as_slice()),
            (garbage.as_str(), b"0123456789abcdef{not json".as_slice()),
        ],
    );
    let c = open(tmp.path(), CacheOptions::default());
    for id in [&short, &garbage] {
        let err = c.get_blob(id).await.unwrap_err();
        assert!(err.is_corrupt(), "{err}");
        assert!(err.to_string().contains(id.as_str()), "{err}");
    }
    let err = c.get_blob(&short).await.unwrap_err().to_string();
    assert!(err.contains("too short"), "{err}");
    let err = c
        .get_blobs(&[good.clone(), short.clone()])
        .await
        .unwrap_err();
    assert!(err.is_corrupt());
    let m = c
        .missing_blobs(
            &artifact_id(1),
            &[short.clone(), garbage.clone(), good.clone()],
        )
        .await
        .unwrap();
    assert_eq!(m.blobs, vec![short.clone(), garbage.clone()]);
    let mut sizes = Vec::new();
    c.list(None, &mut |m| {
        sizes.push(m.size);
        std::ops::ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(sizes.len(), 3);
    let report = c.gc().await.unwrap();
    assert_eq!(report.stale, 2, "{report:?}");
    assert_eq!(live_blob_ids(&c).await, vec![good]);
}

/// Writes raw values into the blob database with heed directly, as a foreign or broken
/// writer would.
fn plant(fanal: &Path, values: &[(&str, &[u8])]) {
    use heed::{CommitOrAbort, EnvOpenOptions, types::Bytes};
    let mut options = EnvOpenOptions::new();
    options.max_dbs(8);
    // SAFETY: the directory is not opened by anything else in this process right now.
    #[allow(unsafe_code)]
    let env = unsafe { options.open(fanal) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let db = env
        .create_databases_and_commit(wtxn, |dbo, wtxn| {
            dbo.create_database::<Bytes, Bytes>(wtxn, Some("blobs-v1"))
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    let mut wtxn = env.write_txn().unwrap();
    for (key, value) in values {
        db.put(&mut wtxn, key.as_bytes(), value).unwrap();
    }
    wtxn.commit().unwrap();
    env.prepare_for_closing().wait();
}

fn open_err(dir: &Path) -> String {
    let err = FsCache::open(dir, &CacheOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn cache_dir_that_is_a_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cache");
    std::fs::write(&file, "x").unwrap();
    let msg = open_err(&file);
    assert!(
        msg.contains("cannot create cache directory")
            && msg.contains(&*file.to_string_lossy())
            && msg.contains("not a directory"),
        "{msg}"
    );
}

#[test]
fn parent_that_is_a_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let dir = file.join("cache");
    let msg = open_err(&dir);
    assert!(
        msg.contains("cannot create cache directory") && msg.contains(&*dir.to_string_lossy()),
        "{msg}"
    );
}

#[test]
fn fanal_that_is_a_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("fanal"), "x").unwrap();
    let msg = open_err(tmp.path());
    assert!(
        msg.contains("cannot create scan cache directory") && msg.contains("fanal"),
        "{msg}"
    );
}

#[test]
fn data_file_that_is_not_lmdb_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let fanal = tmp.path().join("fanal");
    std::fs::create_dir(&fanal).unwrap();
    std::fs::write(fanal.join("data.mdb"), vec![b'x'; 16384]).unwrap();
    let msg = open_err(tmp.path());
    assert!(
        msg.contains("data.mdb") && msg.contains("clean --scan-cache"),
        "{msg}"
    );
}

/// `gc --unused-for` sees this process's reads that are not written yet, and the
/// flusher thread writes waiting stamps of an idle process by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_entries_go_and_reads_not_yet_written_count() {
    let tmp = tempfile::tempdir().unwrap();
    let c = FsCache::open_with(
        tmp.path(),
        &CacheOptions::default(),
        &FsConfig {
            access_granularity: Duration::ZERO,
            access_flush_after: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .unwrap();
    let (read, unread) = (blob_id(1), blob_id(2));
    c.put_blob(&read, &sample_blob(1, 1)).await.unwrap();
    c.put_blob(&unread, &sample_blob(2, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(c.get_blob(&read).await.unwrap().is_some());
    let report = c
        .gc_with(&cache_core::GcOptions {
            unused_for: Some(Duration::from_secs(2)),
        })
        .await
        .unwrap();
    assert_eq!(report.unused, 1, "{report:?}");
    assert_eq!(live_blob_ids(&c).await, vec![read.clone()]);

    // A read, then nothing: the stamp reaches the file within about a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(c.get_blob(&read).await.unwrap().is_some());
    let modified = || {
        std::fs::metadata(data_file(tmp.path()))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = modified();
    let mut flushed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if modified() != before {
            flushed = true;
            break;
        }
    }
    assert!(flushed, "the waiting stamp was never written");
}
