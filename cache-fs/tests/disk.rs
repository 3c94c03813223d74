//! Full disks and read-only file systems, on small tmpfs mounts made by the test.
//!
//! Mounting needs root (or CAP_SYS_ADMIN), which the development machines and CI have.
//! Where mounting is refused the tests fail saying so; `SCANCACHE_SKIP_MOUNT_TESTS=1`
//! turns that into a visible skip.

#![allow(clippy::unwrap_used)]

use cache_core::{BlobId, Cache, CacheOptions};
use cache_fs::{FsCache, FsConfig};
use cache_testkit::{
    conformance::{blob_id, sample_blob},
    tmpfs::Tmpfs,
};

fn small_map() -> FsConfig {
    FsConfig {
        initial_map_size: 1 << 20,
        ..FsConfig::default()
    }
}

#[tokio::test]
async fn full_disk_is_a_clear_error_and_keeps_committed_entries() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    // Ballast that the test removes later to make room again.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let cache = FsCache::open_with(fs.path(), &CacheOptions::default(), &small_map()).unwrap();
    let mut stored: Vec<BlobId> = Vec::new();
    let mut failure = None;
    for n in 0..2_000u64 {
        match cache.put_blob(&blob_id(n), &sample_blob(n, 60)).await {
            Ok(()) => stored.push(blob_id(n)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let err = failure.expect("a 4 MiB file system must fill up");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(
        msg.contains("no space left on the file system"),
        "says why: {msg}"
    );
    assert!(
        stored.len() > 10,
        "some entries fit before the disk filled up"
    );

    // Everything acknowledged is intact, in this handle and after reopening.
    check_all(&cache, &stored).await;
    cache.close().await.unwrap();
    drop(cache);
    let reopened = FsCache::open_with(fs.path(), &CacheOptions::default(), &small_map()).unwrap();
    check_all(&reopened, &stored).await;

    // Making room on the file system lets writes succeed again. (Deleting entries is no
    // way out of a full disk: LMDB's copy-on-write needs free pages for a delete too.)
    std::fs::remove_file(&ballast).unwrap();
    reopened
        .put_blob(&blob_id(99_999), &sample_blob(1, 60))
        .await
        .unwrap();
}

async fn check_all(c: &FsCache, stored: &[BlobId]) {
    for (n, id) in stored.iter().enumerate() {
        let want = Some(sample_blob(n as u64, 60));
        assert_eq!(c.get_blob(id).await.unwrap(), want, "{id}");
    }
}

#[tokio::test]
async fn read_only_file_system_is_a_clear_error() {
    let Some(fs) = Tmpfs::mount("8m") else { return };
    {
        let cache = FsCache::open(fs.path(), &CacheOptions::default()).unwrap();
        cache
            .put_blob(&blob_id(1), &sample_blob(1, 2))
            .await
            .unwrap();
        cache.close().await.unwrap();
    }
    fs.remount_read_only();
    // Opening may already fail (LMDB needs its lock file); if it opens, writes fail.
    let msg = match FsCache::open(fs.path(), &CacheOptions::default()) {
        Err(e) => e.to_string(),
        Ok(cache) => cache
            .put_blob(&blob_id(2), &sample_blob(2, 2))
            .await
            .expect_err("a write to a read-only file system must fail")
            .to_string(),
    };
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.contains("Read-only file system"), "says why: {msg}");
    assert!(
        msg.contains(&fs.path().display().to_string()),
        "names the path: {msg}"
    );
}
