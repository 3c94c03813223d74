//! The single-flight: layers several scans of one cache need at once are analysed once;
//! the other scans wait for the result, take over a claim that ends without one, and
//! never wait past their bound.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use cache_core::{BlobId, Cache, ClaimOptions, Claimed, EntryKey};
use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, data::DEBIAN_OS_RELEASE, docker_save,
};
use cache_mem::MemCache;
use cache_scan::{LayerSource, Report, ScanOptions};
use cache_testkit::Delegate;
use tempfile::TempDir;

use crate::{
    formats::stanza,
    util::{mem, scan_ok, without_counts},
};

/// A base layer with some bulk (so its analysis takes a moment) and a package.
fn base() -> LayerBuilder {
    LayerBuilder::new()
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .file("var/lib/dpkg/status", stanza("base", "1-1", ""))
        .file("opt/bulk.bin", vec![7u8; 1 << 20])
}

/// Image `i`: the shared base and an upper layer of its own.
fn app(i: usize) -> ImageBuilder {
    let status = format!(
        "{}{}",
        stanza("base", "1-1", ""),
        stanza(&format!("pkg-{i}"), "2-1", "base")
    );
    ImageBuilder::new(&[&format!("app:{i}")])
        .layer(&base(), Compression::None, "ADD base")
        .layer(
            &LayerBuilder::new().file("var/lib/dpkg/status", status),
            Compression::Gzip,
            &format!("RUN install pkg-{i}"),
        )
}

/// Image `i` with a base of its own (no layer shared with another `disjoint` image).
fn disjoint(i: usize) -> ImageBuilder {
    let status = stanza(&format!("own-{i}"), "1-1", "");
    ImageBuilder::new(&[&format!("own:{i}")]).layer(
        &LayerBuilder::new()
            .file("etc/os-release", DEBIAN_OS_RELEASE)
            .file("var/lib/dpkg/status", status)
            .file("opt/bulk.bin", vec![i as u8; 1 << 20]),
        Compression::None,
        "ADD own base",
    )
}

/// Writes each image's archive into a temp dir.
fn archives(images: &[ImageBuilder]) -> (TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let path = dir.path().join(format!("image-{i}.tar"));
            std::fs::write(&path, docker_save(&[image])).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

/// Scans every archive at once, each in a task of its own, on one cache.
async fn scan_all(cache: &Arc<dyn Cache>, paths: &[PathBuf], options: &ScanOptions) -> Vec<Report> {
    let tasks: Vec<_> = paths
        .iter()
        .map(|path| {
            let (cache, path, options) = (Arc::clone(cache), path.clone(), options.clone());
            tokio::spawn(async move { scan_ok(&path, &*cache, &options).await })
        })
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.unwrap());
    }
    reports
}

/// The blob key of the image's bottom layer.
async fn base_key(path: &std::path::Path) -> BlobId {
    cache_scan::image_keys_of(path, &ScanOptions::default())
        .await
        .unwrap()
        .blobs
        .remove(0)
}

fn source_counts(reports: &[Report], layer: usize) -> [usize; 3] {
    let mut counts = [0; 3];
    for r in reports {
        let i = match r.layer_sources[layer] {
            LayerSource::Analysed => 0,
            LayerSource::Cached => 1,
            LayerSource::Waited => 2,
        };
        counts[i] += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_scans_sharing_a_base_analyse_it_once() {
    let images: Vec<ImageBuilder> = (0..8).map(app).collect();
    let (_dir, paths) = archives(&images);
    let mut cold = Vec::new();
    for path in &paths {
        cold.push(scan_ok(path, &mem(), &ScanOptions::default()).await);
    }
    let claims = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&claims);
    let seen = Arc::clone(&claims);
    // The base's result is held back until all eight scans have claimed, so the seven
    // that did not get the base must wait for it however fast the owner is (on a loaded
    // machine it could otherwise be stored before the others even ask).
    let base = EntryKey::blob(&base_key(&paths[0]).await);
    let cache: Arc<dyn Cache> = Arc::new(
        Delegate::new(mem())
            .on_claim(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            })
            .on_write(move |entries| {
                if entries.iter().any(|e| e.key == base) {
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while seen.load(Ordering::SeqCst) < 8 && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }),
    );
    let reports = scan_all(&cache, &paths, &ScanOptions::default()).await;
    let [analysed, _, waited] = source_counts(&reports, 0);
    assert_eq!(analysed, 1, "the base was analysed {analysed} times");
    assert_eq!(waited, 7, "the seven other scans waited for the base");
    assert_eq!(
        source_counts(&reports, 1)[0],
        8,
        "every upper layer is analysed"
    );
    for (r, c) in reports.iter().zip(&cold) {
        assert_eq!(without_counts(r), without_counts(c));
        let l = r.layers;
        assert_eq!(l.analysed + l.cached + l.waited, l.total);
    }
    // One claim call per scan, holding every layer it was about to analyse, plus one per
    // takeover at most (there is none here).
    assert_eq!(claims.load(Ordering::SeqCst), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_scan_uses_the_stored_result_or_takes_over_a_released_claim() {
    let (_dir, paths) = archives(&[app(0)]);
    let key = base_key(&paths[0]).await;
    // Stored by the owner, then released: the scan waited and uses the result.
    let donor = MemCache::new(&Default::default());
    scan_ok(&paths[0], &donor, &ScanOptions::default()).await;
    let result = donor.get_blob(&key).await.unwrap().unwrap();
    for store_first in [true, false] {
        let cache: Arc<dyn Cache> = Arc::new(mem());
        let claim = cache
            .claim(std::slice::from_ref(&key), Duration::from_secs(30))
            .await
            .unwrap()
            .pop()
            .and_then(Claimed::owned)
            .unwrap();
        let scan = {
            let (cache, path) = (Arc::clone(&cache), paths[0].clone());
            tokio::spawn(async move { scan_ok(&path, &*cache, &ScanOptions::default()).await })
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            !scan.is_finished(),
            "the scan did not wait for the claimed base"
        );
        if store_first {
            cache.put_blob(&key, &result).await.unwrap();
        }
        let released = Instant::now();
        cache.release(&[claim]).await.unwrap();
        let report = scan.await.unwrap();
        assert!(released.elapsed() < Duration::from_secs(5));
        let want = if store_first {
            LayerSource::Waited
        } else {
            LayerSource::Analysed
        };
        assert_eq!(
            report.layer_sources,
            [want, LayerSource::Analysed],
            "store_first {store_first}"
        );
        assert_eq!(report.layers.waited, usize::from(store_first));
        let json = report.to_json();
        assert_eq!(json["Metadata"]["Layers"][0]["Source"], want.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_scan_releases_its_claims_at_once() {
    let image = app(0);
    let (_dir, paths) = archives(std::slice::from_ref(&image));
    let key = base_key(&paths[0]).await;
    // The same image with the base layer's bytes damaged: its analysis fails.
    let mut archive = docker_save(&[&image]);
    let blob = &image.layers[0].blob;
    let at = archive
        .windows(blob.len())
        .position(|w| w == blob.as_slice())
        .unwrap();
    let mid = at + blob.len() / 2;
    archive[mid..mid + 64].fill(0xAA);
    let broken = paths[0].with_file_name("broken.tar");
    std::fs::write(&broken, &archive).unwrap();

    let cache: Arc<dyn Cache> = Arc::new(mem());
    let err = cache_scan::scan(&broken, &*cache, &ScanOptions::default()).await;
    assert!(err.is_err(), "the damaged archive scanned");
    let claimed = cache
        .claim(std::slice::from_ref(&key), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        matches!(claimed[0], Claimed::Owned(_)),
        "the failed scan kept its claim"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scans_of_disjoint_layers_never_wait() {
    let images: Vec<ImageBuilder> = (0..6).map(disjoint).collect();
    let (_dir, paths) = archives(&images);
    let cache: Arc<dyn Cache> = Arc::new(mem());
    let reports = scan_all(&cache, &paths, &ScanOptions::default()).await;
    for r in &reports {
        assert_eq!(r.layer_sources, [LayerSource::Analysed]);
        assert_eq!(r.layers.waited, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bounded_wait_that_expires_falls_back_to_analysing() {
    let (_dir, paths) = archives(&[app(0)]);
    let key = base_key(&paths[0]).await;
    let cache: Arc<dyn Cache> = Arc::new(mem());
    // A claim that stays live (an owner that hangs while renewing).
    let _hung = cache
        .claim(std::slice::from_ref(&key), Duration::from_secs(120))
        .await
        .unwrap();
    let options = ScanOptions {
        claims: Some(ClaimOptions {
            lease: Duration::from_secs(120),
            max_wait: Duration::from_millis(300),
        }),
        ..ScanOptions::default()
    };
    let started = Instant::now();
    let report = scan_ok(&paths[0], &*cache, &options).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        report.layer_sources,
        [LayerSource::Analysed, LayerSource::Analysed]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_claims_a_scan_never_waits() {
    let (_dir, paths) = archives(&[app(0)]);
    let key = base_key(&paths[0]).await;
    let cache: Arc<dyn Cache> = Arc::new(mem());
    let _held = cache
        .claim(std::slice::from_ref(&key), Duration::from_secs(120))
        .await
        .unwrap();
    let options = ScanOptions {
        claims: None,
        ..ScanOptions::default()
    };
    let started = Instant::now();
    let report = scan_ok(&paths[0], &*cache, &options).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.layers.analysed, 2);
}
