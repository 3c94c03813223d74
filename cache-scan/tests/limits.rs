//! Bounded cost on hostile and extreme images: duplicates collapse, caps on what one
//! layer may produce (nothing stored past them), layers per image, and group commits of
//! many small layers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use cache_core::{Cache, CacheOptions};
use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, docker_save,
    extreme::{hostile_image, identical_stanzas, many_layers},
};
use cache_mem::MemCache;
use cache_scan::{Limit, ScanError, ScanOptions};
use cache_testkit::Delegate;

use crate::util::{entries, mem, scan_bytes};

/// One line naming the layer, the cap and the setting that raises it.
fn assert_limit(err: &ScanError, limit: Limit, diff_id: &str) {
    let msg = err.to_string();
    assert_eq!(err.limit(), Some(limit), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains(diff_id), "no layer in: {msg}");
    assert!(msg.contains(limit.setting()), "no setting in: {msg}");
    assert!(msg.contains(&limit.to_string()), "no cap in: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_database_of_identical_stanzas_is_one_package() {
    let image = hostile_image(300_000);
    let cache = mem();
    let started = Instant::now();
    let report = scan_bytes(&docker_save(&[&image]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let names: Vec<&str> = report
        .packages
        .iter()
        .map(|p| p.package.id.as_str())
        .collect();
    assert_eq!(names, ["x@1"]);
    assert_eq!(report.layers.counters.duplicates_collapsed, 299_999);
    // The stored result holds one package too.
    let stats = cache.stats().await.unwrap();
    assert!(stats.bytes < 4096, "stored {} bytes", stats.bytes);
    // Linear, and small: 15 MB of stanzas parse in well under this even unoptimised.
    assert!(elapsed.as_secs() < 60, "took {elapsed:?}");
}

#[tokio::test]
async fn packages_past_the_cap_fail_the_layer_and_store_nothing() {
    let status: String = (0..50)
        .map(|i| format!("Package: p{i}\nVersion: 1\n\n"))
        .collect();
    let image = ImageBuilder::new(&["capped:1"])
        .layer(
            &LayerBuilder::new().file("etc/debian_version", "12\n"),
            Compression::Gzip,
            "base",
        )
        .layer(
            &LayerBuilder::new().file("var/lib/dpkg/status", status),
            Compression::Gzip,
            "packages",
        );
    let archive = docker_save(&[&image]);
    let cache = mem();
    let options = ScanOptions {
        max_packages_per_layer: 49,
        parallelism: std::num::NonZeroUsize::new(1),
        ..ScanOptions::default()
    };
    let err = scan_bytes(&archive, &cache, &options).await.unwrap_err();
    assert_limit(&err, Limit::PackagesPerLayer, &image.layers[1].diff_id);
    // The first layer was sound and may be stored; the capped one and the artifact not.
    let (artifacts, blobs) = entries(&cache).await;
    assert_eq!(artifacts, 0);
    assert!(blobs <= 1, "{blobs} blobs stored");
    // At the cap it passes.
    let options = ScanOptions {
        max_packages_per_layer: 50,
        ..options
    };
    let report = scan_bytes(&archive, &cache, &options).await.unwrap();
    assert_eq!(report.packages.len(), 50);
}

#[tokio::test]
async fn documents_past_the_cache_s_cap_fail_the_layer_and_store_nothing() {
    // A few big packages (found while parsing) and many small ones (found only when
    // the exact size is checked) both cross it.
    let big: String = (0..4)
        .map(|i| {
            format!(
                "Package: p{i}\nVersion: 1\nMaintainer: {}\n\n",
                "m".repeat(3000)
            )
        })
        .collect();
    let small: String = (0..300)
        .map(|i| format!("Package: p{i}\nVersion: 1\n\n"))
        .collect();
    for status in [big, small] {
        let image = ImageBuilder::new(&["doc:1"]).layer(
            &LayerBuilder::new().file("var/lib/dpkg/status", status),
            Compression::None,
            "packages",
        );
        let cache = MemCache::new(&CacheOptions {
            max_document_size: Some(10_000),
            ..CacheOptions::default()
        });
        let err = scan_bytes(&docker_save(&[&image]), &cache, &ScanOptions::default())
            .await
            .unwrap_err();
        assert_limit(&err, Limit::DocumentSize, &image.layers[0].diff_id);
        assert_eq!(entries(&cache).await, (0, 0));
    }
}

#[tokio::test]
async fn whiteouts_count_toward_the_document_cap() {
    let mut layer = LayerBuilder::new();
    for i in 0..400 {
        layer = layer.whiteout(&format!(
            "usr/share/very/long/path/to/a/deleted/file/{i:05}"
        ));
    }
    let image = ImageBuilder::new(&["wh:1"]).layer(&layer, Compression::None, "rm");
    let cache = MemCache::new(&CacheOptions {
        max_document_size: Some(8_000),
        ..CacheOptions::default()
    });
    let err = scan_bytes(&docker_save(&[&image]), &cache, &ScanOptions::default())
        .await
        .unwrap_err();
    assert_limit(&err, Limit::DocumentSize, &image.layers[0].diff_id);
}

#[tokio::test]
async fn images_with_too_many_layers_fail_before_reading_any() {
    let (many, _) = many_layers(20, 10);
    let cache = mem();
    let options = ScanOptions {
        max_layers: 19,
        ..ScanOptions::default()
    };
    let err = scan_bytes(&docker_save(&[&many]), &cache, &options)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.limit(), Some(Limit::Layers), "{msg}");
    assert!(
        msg.contains(&many.image_id()) && msg.contains("20 layers"),
        "{msg}"
    );
    assert_eq!(entries(&cache).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_layers_are_stored_in_few_writes() {
    let (many, one) = many_layers(200, 100);
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&writes);
    let cache = Delegate::new(mem()).on_write(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let report = scan_bytes(&docker_save(&[&many]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!((report.layers.total, report.layers.analysed), (200, 200));
    let blob_writes = writes.load(Ordering::SeqCst) - 1; // and one artifact
    // 200 results in batches of at most 256, plus any flushed when no layer was being
    // read: far fewer than one write per layer.
    assert!(blob_writes <= 2, "{blob_writes} writes for 200 layers");
    let stats = cache.stats().await.unwrap();
    assert_eq!((stats.artifacts, stats.blobs), (1, 200));
    // Warm: everything from the cache, nothing written.
    writes.store(0, Ordering::SeqCst);
    let again = scan_bytes(&docker_save(&[&many]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(again.layers.cached, 200);
    assert_eq!(writes.load(Ordering::SeqCst), 0);
    // The same files in one layer give the same (empty) package report.
    let single = scan_bytes(&docker_save(&[&one]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(single.packages, report.packages);
}

#[tokio::test]
async fn a_layer_repeating_its_database_collapses_across_scans_the_same_way() {
    // Two layers with the same database: each collapses to one package, and the image
    // shows it once, from the first layer.
    let status = String::from_utf8(identical_stanzas(1000)).unwrap();
    let image = ImageBuilder::new(&["twice:1"])
        .layer(
            &LayerBuilder::new().file("var/lib/dpkg/status", &status),
            Compression::Gzip,
            "one",
        )
        .layer(
            &LayerBuilder::new()
                .file("var/lib/dpkg/status", &status)
                .file("etc/x", "x"),
            Compression::Zstd,
            "two",
        );
    let cache = mem();
    let report = scan_bytes(&docker_save(&[&image]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(report.packages.len(), 1);
    assert_eq!(report.packages[0].layer_diff_id, image.layers[0].diff_id);
    assert_eq!(report.layers.counters.duplicates_collapsed, 2 * 999);
    let stored = cache.stats().await.unwrap();
    assert_eq!(stored.blobs, 2);
}
