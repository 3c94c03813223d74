//! The scan flow through the cache: what is analysed, reused, verified and stored.

use std::{
    num::NonZeroUsize,
    sync::atomic::{AtomicUsize, Ordering},
};

use cache_core::Cache;
use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, data::DEBIAN_OS_RELEASE, docker_save, docker_save_oci,
    oci_archive, sha256_digest,
};
use cache_scan::{LayerWork, Progress, ScanError, ScanOptions};
use cache_testkit::Delegate;

use crate::{
    formats::{EXPECTED, stanza, test_image},
    util::{entries, mem, packages, scan_bytes, scan_ok, with_progress, without_counts, write},
};

fn base_layer() -> LayerBuilder {
    LayerBuilder::new()
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .file("etc/debian_version", "12.11\n")
        .file("var/lib/dpkg/status", stanza("base", "1-1", ""))
}

fn app(tag: &str, extra: &str) -> ImageBuilder {
    let status = format!(
        "{}{}",
        stanza("base", "1-1", ""),
        stanza(extra, "2-1", "base")
    );
    ImageBuilder::new(&[tag])
        .layer(&base_layer(), Compression::Gzip, "ADD base")
        .layer(
            &LayerBuilder::new().file("var/lib/dpkg/status", status),
            Compression::Gzip,
            &format!("RUN install {extra}"),
        )
}

#[tokio::test]
async fn shared_base_layer_is_analysed_once() {
    let cache = mem();
    let a = app("app:a", "pkg-a");
    let b = app("app:b", "pkg-b");
    let ra = scan_bytes(&oci_archive(&[&a]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!((ra.layers.analysed, ra.layers.cached), (2, 0));
    let rb = scan_bytes(&oci_archive(&[&b]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!((rb.layers.analysed, rb.layers.cached), (1, 1));
    assert_eq!(packages(&rb), ["base@1-1<-0", "pkg-b@2-1<-1"]);
    assert_eq!(entries(&cache).await, (2, 3));
    let again = scan_bytes(&oci_archive(&[&b]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!((again.layers.analysed, again.layers.cached), (0, 2));
}

#[tokio::test]
async fn multi_image_archives_pick_by_tag_or_id() {
    let a = app("sample/app-a:1.0", "pkg-a");
    let b = app("sample/app-b:1.0", "pkg-b");
    for (what, archive) in [
        ("classic", docker_save(&[&a, &b])),
        ("docker >= 25", docker_save_oci(&[&a, &b])),
        ("oci", oci_archive(&[&a, &b])),
    ] {
        let (_dir, path) = write("multi.tar", &archive);
        let cache = mem();
        let first = scan_ok(&path, &cache, &ScanOptions::default()).await;
        assert_eq!(first.repo_tags, ["sample/app-a:1.0"], "{what}");
        for (reference, counts) in [
            ("sample/app-b:1.0", (1, 1)),
            ("docker.io/sample/app-b:1.0", (0, 2)),
        ] {
            let options = ScanOptions {
                image: Some(reference.into()),
                ..ScanOptions::default()
            };
            let second = scan_ok(&path, &cache, &options).await;
            assert!(
                second
                    .repo_tags
                    .iter()
                    .any(|t| t.ends_with("sample/app-b:1.0")),
                "{what}: {:?}",
                second.repo_tags
            );
            assert_eq!(
                (second.layers.analysed, second.layers.cached),
                counts,
                "{what}"
            );
            assert_eq!(packages(&second), ["base@1-1<-0", "pkg-b@2-1<-1"], "{what}");
        }
        let options = ScanOptions {
            image: Some("sample/app-c:1.0".into()),
            ..ScanOptions::default()
        };
        let err = cache_scan::scan(&path, &cache, &options).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, cache_scan::ScanError::ImageNotFound { .. }),
            "{what}: {msg}"
        );
        assert!(
            msg.contains("sample/app-c:1.0") && msg.contains("sample/app-a:1.0"),
            "{what}: {msg}"
        );
    }
    // By image ID (the config digest, or a prefix of 12+ hex digits) in every layout.
    let id = b.image_id();
    for archive in [
        docker_save(&[&a, &b]),
        docker_save_oci(&[&a, &b]),
        oci_archive(&[&a, &b]),
    ] {
        let (_dir, path) = write("multi.tar", &archive);
        for reference in [
            id.clone(),
            id["sha256:".len().."sha256:".len() + 12].to_string(),
        ] {
            let options = ScanOptions {
                image: Some(reference),
                ..ScanOptions::default()
            };
            let r = scan_ok(&path, &mem(), &options).await;
            assert_eq!(r.image_id, id);
        }
    }
}

#[tokio::test]
async fn warm_scan_reads_no_layer_bytes() {
    // Prove it: after a cold scan, overwrite every layer's bytes in the archive file
    // with garbage (same size). A warm scan still succeeds, reading nothing.
    let image = test_image(Compression::None);
    let archive = docker_save(&[&image]);
    let (_dir, path) = write("img.tar", &archive);
    let cache = mem();
    let cold = scan_ok(&path, &cache, &ScanOptions::default()).await;
    let mut garbage = archive.clone();
    for layer in &image.layers {
        let at = garbage
            .windows(layer.blob.len())
            .position(|w| w == layer.blob.as_slice())
            .unwrap();
        garbage[at..at + layer.blob.len()].fill(0xAA);
    }
    std::fs::write(&path, &garbage).unwrap();
    let (options, progress) = with_progress(ScanOptions::default());
    let warm = scan_ok(&path, &cache, &options).await;
    assert_eq!(without_counts(&cold), without_counts(&warm));
    assert_eq!(progress.bytes.load(Ordering::SeqCst), 0);
    assert_eq!(progress.layers.load(Ordering::SeqCst), 0);

    // verify_layers reads them, and catches the tampering.
    let options = ScanOptions {
        verify_layers: true,
        ..ScanOptions::default()
    };
    let err = cache_scan::scan(&path, &cache, &options).await.unwrap_err();
    assert!(
        matches!(
            err,
            cache_scan::ScanError::LayerFormat { .. }
                | cache_scan::ScanError::DigestMismatch { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn verify_layers_hashes_cached_layers() {
    let cache = mem();
    let archive = oci_archive(&[&test_image(Compression::Gzip)]);
    scan_bytes(&archive, &cache, &ScanOptions::default())
        .await
        .unwrap();
    let (options, progress) = with_progress(ScanOptions {
        verify_layers: true,
        ..ScanOptions::default()
    });
    let r = scan_bytes(&archive, &cache, &options).await.unwrap();
    assert_eq!(
        (r.layers.analysed, r.layers.cached, r.layers.verified),
        (0, 2, 2)
    );
    assert_eq!(
        *progress.works.lock().unwrap(),
        [LayerWork::Verify, LayerWork::Verify]
    );
    assert_eq!(progress.started.load(Ordering::SeqCst), 2);
    assert_eq!(progress.finished.load(Ordering::SeqCst), 1);
    assert_eq!(packages(&r), EXPECTED);

    // A cached tampered layer (same config, other content) passes a plain warm scan
    // (the config's diffIDs are trusted) but not a verifying one.
    let mut tampered = test_image(Compression::Gzip);
    let other = test_image(Compression::Gzip).layer(
        &LayerBuilder::new().file("evil", "x"),
        Compression::Gzip,
        "x",
    );
    tampered.layers[1].blob = other.layers[2].blob.clone();
    tampered.layers[1].blob_digest = other.layers[2].blob_digest.clone();
    let archive = oci_archive(&[&tampered]);
    scan_bytes(&archive, &cache, &ScanOptions::default())
        .await
        .unwrap();
    let err = scan_bytes(&archive, &cache, &options).await.unwrap_err();
    assert!(err.is_digest_mismatch(), "{err}");
    assert!(
        err.to_string().contains(&tampered.layers[1].diff_id),
        "{err}"
    );
}

#[tokio::test]
async fn changed_options_do_not_reuse_results() {
    let cache = mem();
    let archive = docker_save(&[&test_image(Compression::None)]);
    scan_bytes(&archive, &cache, &ScanOptions::default())
        .await
        .unwrap();
    let options = ScanOptions {
        max_db_size: 1 << 20,
        ..ScanOptions::default()
    };
    let r = scan_bytes(&archive, &cache, &options).await.unwrap();
    assert_eq!(
        r.layers.analysed, 2,
        "a different DB cap must not reuse results"
    );
    let keys = cache_scan::cache_key(&r.diff_ids[0], &options).unwrap();
    assert_ne!(
        keys,
        cache_scan::cache_key(&r.diff_ids[0], &ScanOptions::default()).unwrap()
    );
}

/// Counts layers being read at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Progress for InFlight {
    fn layer_started(&self, _: &str, _: LayerWork) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        // Long enough for another worker, if there is one, to start meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    fn layer_finished(&self, _: &str, _: LayerWork) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The parallelism setting bounds how many layers are read at once (never more than the
/// cores: on a machine with N cores, settings above N all mean N) and never changes the
/// report.
#[tokio::test(flavor = "multi_thread")]
async fn parallelism_is_bounded_and_does_not_change_results() {
    let mut image = test_image(Compression::Gzip);
    for i in 0..6 {
        image = image.layer(
            &LayerBuilder::new().file(&format!("f{i}"), vec![i as u8; 5000]),
            Compression::Gzip,
            "x",
        );
    }
    let archive = oci_archive(&[&image]);
    let mut reports = Vec::new();
    for p in [1, 2, 8] {
        let in_flight = std::sync::Arc::new(InFlight::default());
        let options = ScanOptions {
            parallelism: NonZeroUsize::new(p),
            progress: Some(in_flight.clone()),
            ..ScanOptions::default()
        };
        let bound = options.effective_parallelism();
        assert!(bound >= 1 && bound <= p);
        let r = scan_bytes(&archive, &mem(), &options).await.unwrap();
        assert_eq!(r.layers.analysed, 8);
        let max = in_flight.max.load(Ordering::SeqCst);
        assert!(
            max >= 1 && max <= bound,
            "parallelism {p}: {max} layers at once, bound {bound}"
        );
        if p == 1 {
            assert_eq!(max, 1);
        }
        let mut r = without_counts(&r);
        r.artifact_name.clear(); // a new temp file each time
        reports.push(r);
    }
    assert!(reports.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn whiteouts_and_replaced_databases_apply_in_order() {
    let apk_db = "P:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r29\nA:x86_64\nD:so:libc.musl-x86_64.so.1\n\n";
    let apk_db = apk_db.replace(
        "P:musl\nV:1.2.5-r0\nA:x86_64\n",
        "P:musl\nV:1.2.5-r0\nA:x86_64\np:so:libc.musl-x86_64.so.1=1\n",
    );
    let image = ImageBuilder::new(&["mixed:1"])
        .layer(
            &base_layer()
                .file("lib/apk/db/installed", &apk_db)
                .file("etc/alpine-release", "3.20.3\n"),
            Compression::None,
            "base",
        )
        // Removes the dpkg database and the whole apk db directory.
        .layer(
            &LayerBuilder::new()
                .whiteout("var/lib/dpkg/status")
                .opaque("lib/apk"),
            Compression::Zstd,
            "rm",
        )
        // A new apk database in the opaque directory's place.
        .layer(
            &LayerBuilder::new().file("lib/apk/db/installed", "P:zlib\nV:1.3.1-r1\nA:x86_64\n\n"),
            Compression::Gzip,
            "add",
        );
    let r = scan_bytes(&oci_archive(&[&image]), &mem(), &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(packages(&r), ["zlib@1.3.1-r1<-2"]);
    let apk_only = ImageBuilder::new(&["mixed:2"]).layer(
        &LayerBuilder::new().file("lib/apk/db/installed", &apk_db),
        Compression::None,
        "base",
    );
    let r = scan_bytes(&docker_save(&[&apk_only]), &mem(), &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(packages(&r), ["busybox@1.36.1-r29<-0", "musl@1.2.5-r0<-0"]);
    let busybox = &r.packages[0].package;
    assert_eq!(busybox.depends_on, ["musl@1.2.5-r0"]);
    // Packages without an OS: reported as the family `none`, as the reference does.
    let os = r.os.as_ref().unwrap();
    assert_eq!((os.family.as_str(), os.name.as_str()), ("none", ""));
}

#[tokio::test]
async fn emptied_database_removes_its_packages() {
    // Layer 2 rewrites the dpkg status with every package removed (purged, or the file
    // emptied): the database now lists nothing, and it replaces layer 1's.
    for (what, status) in [
        (
            "purged",
            "Package: base\nStatus: purge ok not-installed\nVersion: 1-1\nArchitecture: amd64\n\n",
        ),
        ("empty", ""),
    ] {
        let image = ImageBuilder::new(&["purged:1"])
            .layer(&base_layer(), Compression::Gzip, "base")
            .layer(
                &LayerBuilder::new().file("var/lib/dpkg/status", status),
                Compression::Gzip,
                "purge",
            );
        let cache = mem();
        let archive = oci_archive(&[&image]);
        let cold = scan_bytes(&archive, &cache, &ScanOptions::default())
            .await
            .unwrap();
        assert!(cold.packages.is_empty(), "{what}: {:?}", packages(&cold));
        let warm = scan_bytes(&archive, &cache, &ScanOptions::default())
            .await
            .unwrap();
        assert_eq!(warm.layers.cached, 2, "{what}");
        assert!(warm.packages.is_empty(), "{what}: {:?}", packages(&warm));
        // The stored result names the emptied database.
        let key = cache_scan::cache_key(&cold.diff_ids[1], &ScanOptions::default()).unwrap();
        let blob = cache.get_blob(&key.into()).await.unwrap().unwrap();
        assert_eq!(blob.package_infos.len(), 1, "{what}");
        assert_eq!(blob.package_infos[0].file_path, "var/lib/dpkg/status");
        assert!(blob.package_infos[0].packages.is_empty());
    }
}

#[tokio::test]
async fn blobs_record_whiteouts_and_repository() {
    let cache = mem();
    let image = ImageBuilder::new(&["x:1"]).layer(
        &LayerBuilder::new()
            .whiteout("etc/motd")
            .opaque("var/cache")
            .file(
                "etc/apk/repositories",
                "https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n",
            )
            .file("etc/alpine-release", "3.20.3\n"),
        Compression::Gzip,
        "x",
    );
    let r = scan_bytes(&oci_archive(&[&image]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    let key = cache_scan::cache_key(&r.diff_ids[0], &ScanOptions::default()).unwrap();
    let blob = cache.get_blob(&key.into()).await.unwrap().unwrap();
    assert_eq!(blob.whiteout_files, ["etc/motd"]);
    assert_eq!(blob.opaque_dirs, ["var/cache/"]);
    assert_eq!(blob.diff_id, r.diff_ids[0]);
    assert_eq!(blob.digest, image.layers[0].blob_digest);
    assert_eq!(blob.size, image.layers[0].tar.len() as i64);
    assert_eq!(blob.created_by, "x");
    assert_eq!(blob.repository.unwrap().release, "3.20");
    assert_eq!(r.repository.as_ref().unwrap().family, "alpine");
    assert_eq!(r.os.as_ref().unwrap().name, "3.20.3");
}

#[tokio::test]
async fn duplicate_layers_are_read_once() {
    let empty = LayerBuilder::new().dir("tmp");
    let image = test_image(Compression::None)
        .layer(&empty, Compression::None, "empty")
        .layer(&empty, Compression::None, "empty again");
    let (options, progress) = with_progress(ScanOptions::default());
    let r = scan_bytes(&docker_save(&[&image]), &mem(), &options)
        .await
        .unwrap();
    assert_eq!(r.layers.total, 4);
    assert_eq!(r.layers.analysed, 4);
    assert_eq!(progress.layers.load(Ordering::SeqCst), 3);
    assert_eq!(packages(&r), EXPECTED);
}

#[tokio::test]
async fn unsafe_names_and_symlinked_databases_are_ignored() {
    let evil = stanza("evil", "6.6.6-1", "");
    let image = ImageBuilder::new(&["unsafe:1"]).layer(
        &LayerBuilder::new()
            .file("etc/os-release", DEBIAN_OS_RELEASE)
            .raw_file("../var/lib/dpkg/status", &evil)
            .raw_file("/var/lib/dpkg/status", &evil)
            .raw_file("var/../../lib/apk/db/installed", "P:evil\nV:1\n\n")
            .symlink("lib/apk/db/installed", "/etc/passwd")
            .symlink("var/lib/dpkg/status", "../../../tmp/status")
            .file("tmp/status", &evil),
        Compression::Gzip,
        "x",
    );
    let cache = mem();
    let r = scan_bytes(&oci_archive(&[&image]), &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert!(r.packages.is_empty(), "{:?}", packages(&r));
    assert_eq!(r.os.as_ref().unwrap().family, "debian");
    assert_eq!(entries(&cache).await, (1, 1));
    // A hard link in place of a database is not followed either.
    let image = ImageBuilder::new(&["unsafe:2"]).layer(
        &LayerBuilder::new()
            .file("tmp/status", &evil)
            .hardlink("var/lib/dpkg/status", "tmp/status"),
        Compression::None,
        "x",
    );
    let r = scan_bytes(&docker_save(&[&image]), &mem(), &ScanOptions::default())
        .await
        .unwrap();
    assert!(r.packages.is_empty());
}

#[tokio::test]
async fn artifact_record_comes_from_the_config() {
    let cache = mem();
    let image = test_image(Compression::None);
    let (_dir, path) = write("a.tar", &docker_save(&[&image]));
    scan_ok(&path, &cache, &ScanOptions::default()).await;
    let keys = cache_scan::image_keys_of(&path, &ScanOptions::default())
        .await
        .unwrap();
    let artifact = cache.get_artifact(&keys.artifact).await.unwrap().unwrap();
    assert_eq!(artifact.architecture, "amd64");
    assert_eq!(artifact.os, "linux");
    assert_eq!(artifact.created, cache_fixtures::CREATED);
    let missing = cache
        .missing_blobs(&keys.artifact, &keys.blobs)
        .await
        .unwrap();
    assert!(!missing.artifact && missing.blobs.is_empty());
}

#[tokio::test]
async fn table_fits_a_terminal() {
    let r = scan_bytes(
        &docker_save(&[&test_image(Compression::None)]),
        &mem(),
        &ScanOptions::default(),
    )
    .await
    .unwrap();
    let table = r.to_table();
    assert!(table.contains("debian 12.11"), "{table}");
    assert!(table.contains("2 (2 analysed, 0 from cache)"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");
}

#[test]
fn scan_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let cache = mem();
    let options = ScanOptions::default();
    let path = std::path::PathBuf::from("x");
    let fut = cache_scan::scan(&path, &cache, &options);
    assert_send(&fut);
}

/// A cache that claims to hold every layer but returns nothing: the scan must analyse
/// the layers whose results vanished instead of failing. The flag is whether it says the
/// artifact entry is missing.
fn forgetful(artifact_missing: bool) -> Delegate<cache_mem::MemCache> {
    Delegate::new(mem())
        .on_missing_blobs(move |_, _| {
            Ok(cache_core::Missing {
                artifact: artifact_missing,
                blobs: Vec::new(),
            })
        })
        .on_read(|_, ids| Ok(vec![None; ids.len()]))
}

#[tokio::test]
async fn results_that_vanish_are_analysed_again() {
    let cache = forgetful(false);
    let archive = oci_archive(&[&test_image(Compression::Gzip)]);
    let r = scan_bytes(&archive, &cache, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!((r.layers.analysed, r.layers.cached), (2, 0));
    assert_eq!(packages(&r), EXPECTED);
    assert_eq!(entries(&cache.inner).await.1, 2);
}

#[tokio::test]
async fn no_artifact_when_a_vanished_layer_fails_its_new_analysis() {
    // The cache says every layer is stored and only the artifact is missing, then
    // forgets the layers before they are read back. Analysed again, the second layer
    // turns out not to match its diffID: the scan fails and writes no artifact entry.
    for (what, archive) in [
        ("oci", oci_archive as fn(&[&ImageBuilder]) -> Vec<u8>),
        ("docker-save", docker_save),
    ] {
        let mut image = test_image(Compression::Gzip);
        image.layers[1].diff_id = sha256_digest(b"other content");
        let cache = forgetful(true);
        let err = scan_bytes(&archive(&[&image]), &cache, &ScanOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScanError::DigestMismatch { what: "layer", .. }),
            "{what}: {err}"
        );
        assert_eq!(entries(&cache.inner).await.0, 0, "{what}: artifact written");
    }
    // Analysing vanished layers again also verifies every other stored blob of the same
    // diffID: here a second copy whose content is not that diffID.
    let layer = base_layer();
    let mut twice = ImageBuilder::new(&["twice:1"])
        .layer(&layer, Compression::Gzip, "one")
        .layer(&layer, Compression::Zstd, "two");
    let other = LayerBuilder::new().file("evil", "x").build();
    twice.layers[1].blob = cache_fixtures::compress(&other, Compression::Zstd);
    twice.layers[1].blob_digest = sha256_digest(&twice.layers[1].blob);
    let cache = forgetful(true);
    let err = scan_bytes(&oci_archive(&[&twice]), &cache, &ScanOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ScanError::DigestMismatch { what: "layer", .. }),
        "{err}"
    );
    assert_eq!(entries(&cache.inner).await.0, 0);
}
