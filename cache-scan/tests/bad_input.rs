//! Bad input: each case is one clear error, and no artifact entry is written.

use std::collections::BTreeMap;

use cache_core::Cache;
use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, compress, data::DEBIAN_OS_RELEASE, docker_save,
    docker_save_entries, docker_save_oci, oci_archive, oci_entries, sha256_digest, tar_of,
};
use cache_mem::MemCache;
use cache_scan::{ScanError, ScanOptions};
use cache_testkit::Delegate;

use crate::{
    formats::{stanza, test_image},
    util::{entries, mem, write},
};

/// Scans `archive` with `options` and checks the error: its variant (by `matches`), that
/// its message holds every one of `needles`, and that no artifact entry was written.
/// Returns the cache for further checks.
async fn check(
    what: &str,
    archive: &[u8],
    options: &ScanOptions,
    matches: fn(&ScanError) -> bool,
    needles: &[&str],
) -> MemCache {
    let cache = mem();
    let (_dir, path) = write("bad.tar", archive);
    let err = match cache_scan::scan(&path, &cache, options).await {
        Ok(_) => panic!("{what}: scan succeeded"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches(&err), "{what}: unexpected error variant: {err:?}");
    assert!(
        !msg.contains('\n'),
        "{what}: message is not one line: {msg}"
    );
    assert_eq!(msg, msg.trim_end_matches('.'), "{what}");
    for needle in needles {
        assert!(
            msg.contains(needle),
            "{what}: {msg:?} does not mention {needle:?}"
        );
    }
    let (artifacts, _) = entries(&cache).await;
    assert_eq!(artifacts, 0, "{what}: an artifact entry was written");
    cache
}

fn default() -> ScanOptions {
    ScanOptions::default()
}

fn without(mut entries: BTreeMap<String, Vec<u8>>, pred: impl Fn(&str) -> bool) -> Vec<u8> {
    entries.retain(|name, _| !pred(name));
    tar_of(&entries)
}

#[tokio::test]
async fn not_an_archive() {
    check(
        "random bytes",
        &[0x41; 4096],
        &default(),
        |e| matches!(e, ScanError::NotAnArchive { .. }),
        &["not a tar archive", "bad.tar"],
    )
    .await;
    check(
        "empty file",
        b"",
        &default(),
        |e| matches!(e, ScanError::NotAnArchive { .. }),
        &["empty"],
    )
    .await;
    check(
        "zeros",
        &[0u8; 4096],
        &default(),
        |e| matches!(e, ScanError::NotAnArchive { .. }),
        &["no tar entries"],
    )
    .await;
    check(
        "bzip2",
        b"BZh91AY&SY",
        &default(),
        |e| matches!(e, ScanError::NotAnArchive { .. }),
        &["bzip2"],
    )
    .await;
    check(
        "gzip of junk",
        &compress(&[0x41; 4096], Compression::Gzip),
        &default(),
        |e| matches!(e, ScanError::NotAnArchive { .. }),
        &["not a tar archive"],
    )
    .await;
    let cache = mem();
    let dir = tempfile::tempdir().unwrap();
    let err = cache_scan::scan(dir.path(), &cache, &default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("without manifest.json or index.json"),
        "{err}"
    );
    let err = cache_scan::scan(&dir.path().join("nope.tar"), &cache, &default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ScanError::Io { .. }) && err.to_string().contains("nope.tar"),
        "{err}"
    );
}

#[tokio::test]
async fn truncated_archives() {
    let archive = docker_save(&[&test_image(Compression::None)]);
    for cut in [archive.len() / 2, archive.len() - 1100, 700] {
        check(
            &format!("cut at {cut}"),
            &archive[..cut],
            &default(),
            |e| matches!(e, ScanError::Truncated { .. }),
            &["truncated"],
        )
        .await;
    }
    let gz = compress(&archive, Compression::Gzip);
    check(
        "truncated gzip archive",
        &gz[..gz.len() / 2],
        &default(),
        |e| {
            matches!(
                e,
                ScanError::Truncated { .. } | ScanError::NotAnArchive { .. }
            )
        },
        &["bad.tar"],
    )
    .await;
}

#[tokio::test]
async fn missing_manifest_config_or_layer() {
    let image = test_image(Compression::Gzip);
    let config_name = format!("{}.json", &image.image_id()["sha256:".len()..]);
    let layer_name = format!(
        "{}/layer.tar",
        &image.layers[1].blob_digest["sha256:".len()..]
    );

    let no_manifest = without(docker_save_entries(&[&image]), |n| n == "manifest.json");
    check(
        "no manifest",
        &no_manifest,
        &default(),
        |e| {
            matches!(
                e,
                ScanError::Missing {
                    what: "manifest",
                    ..
                }
            )
        },
        &["manifest.json"],
    )
    .await;
    let no_index = without(oci_entries(&[&image], false), |n| n == "index.json");
    check(
        "no oci index",
        &no_index,
        &default(),
        |e| {
            matches!(
                e,
                ScanError::Missing {
                    what: "manifest",
                    ..
                }
            )
        },
        &["index.json"],
    )
    .await;

    let no_config = without(docker_save_entries(&[&image]), |n| n == config_name);
    check(
        "no config",
        &no_config,
        &default(),
        |e| matches!(e, ScanError::Missing { what: "config", .. }),
        &[&config_name],
    )
    .await;
    let config_blob = format!("blobs/sha256/{}", &image.image_id()["sha256:".len()..]);
    let no_oci_config = without(oci_entries(&[&image], false), |n| n == config_blob);
    check(
        "no oci config",
        &no_oci_config,
        &default(),
        |e| matches!(e, ScanError::Missing { what: "config", .. }),
        &[&config_blob],
    )
    .await;

    let no_layer = without(docker_save_entries(&[&image]), |n| n == layer_name);
    check(
        "no layer",
        &no_layer,
        &default(),
        |e| matches!(e, ScanError::Missing { what: "layer", .. }),
        &[&layer_name],
    )
    .await;
    let layer_blob = format!(
        "blobs/sha256/{}",
        &image.layers[0].blob_digest["sha256:".len()..]
    );
    let no_oci_layer = without(oci_entries(&[&image], false), |n| n == layer_blob);
    check(
        "no oci layer",
        &no_oci_layer,
        &default(),
        |e| matches!(e, ScanError::Missing { what: "layer", .. }),
        &[&layer_blob],
    )
    .await;

    // A missing layer fails a warm scan too (checked without reading any layer).
    let cache = mem();
    let (_dir, path) = write("ok.tar", &docker_save(&[&image]));
    cache_scan::scan(&path, &cache, &default()).await.unwrap();
    std::fs::write(&path, &no_layer).unwrap();
    let err = cache_scan::scan(&path, &cache, &default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ScanError::Missing { what: "layer", .. }),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_manifests() {
    let image = test_image(Compression::None);
    let mut entries = docker_save_entries(&[&image]);
    entries.insert("manifest.json".into(), b"{not json".to_vec());
    check(
        "manifest not json",
        &tar_of(&entries),
        &default(),
        |e| {
            matches!(
                e,
                ScanError::InvalidMetadata {
                    what: "manifest",
                    ..
                }
            )
        },
        &["manifest.json"],
    )
    .await;
    entries.insert("manifest.json".into(), b"[]".to_vec());
    check(
        "manifest empty",
        &tar_of(&entries),
        &default(),
        |e| matches!(e, ScanError::InvalidMetadata { .. }),
        &["no image"],
    )
    .await;
    let manifest = format!(
        r#"[{{"Config":"{}.json","RepoTags":[],"Layers":["../../etc/passwd"]}}]"#,
        &image.image_id()[7..]
    );
    entries.insert("manifest.json".into(), manifest.into_bytes());
    check(
        "layer name escapes",
        &tar_of(&entries),
        &default(),
        |e| matches!(e, ScanError::InvalidMetadata { .. }),
        &["../../etc/passwd", "leaves the archive"],
    )
    .await;
}

#[tokio::test]
async fn diff_id_count_differs_from_layers() {
    let mut image = test_image(Compression::None);
    let mut ids: Vec<String> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
    ids.push(sha256_digest(b"extra"));
    image.diff_ids_override = Some(ids);
    check(
        "extra diffID",
        &docker_save(&[&image]),
        &default(),
        |e| {
            matches!(
                e,
                ScanError::DiffIdCount {
                    layers: 2,
                    diff_ids: 3,
                    ..
                }
            )
        },
        &["2 layers", "3 diffIDs"],
    )
    .await;
    image.diff_ids_override = Some(vec![]);
    check(
        "no diffIDs",
        &oci_archive(&[&image]),
        &default(),
        |e| matches!(e, ScanError::DiffIdCount { .. }),
        &["0 diffIDs"],
    )
    .await;
    image.diff_ids_override = Some(vec!["sha256:nothex".into(), "md5:00".into()]);
    check(
        "bad diffID",
        &oci_archive(&[&image]),
        &default(),
        |e| matches!(e, ScanError::InvalidMetadata { what: "config", .. }),
        &["sha256:nothex"],
    )
    .await;
}

#[tokio::test]
async fn layer_content_must_match_its_diff_id() {
    // The config claims a diffID the second layer's content does not have. The first
    // (good) layer may stay cached; the bad one must not be. (An archive compressed as a
    // whole is read in archive order and stops at the bad layer, so whether the good one
    // was read first depends on the entries' order.)
    for (what, compression, build) in [
        (
            "docker-save",
            Compression::None,
            docker_save as fn(&[&ImageBuilder]) -> Vec<u8>,
        ),
        (
            "oci",
            Compression::Gzip,
            oci_archive as fn(&[&ImageBuilder]) -> Vec<u8>,
        ),
        (
            "docker-save >= 25",
            Compression::None,
            docker_save_oci as fn(&[&ImageBuilder]) -> Vec<u8>,
        ),
        (
            "docker-save, gzip as a whole",
            Compression::None,
            (|images| compress(&docker_save(images), Compression::Gzip))
                as fn(&[&ImageBuilder]) -> Vec<u8>,
        ),
        (
            "oci, zstd as a whole",
            Compression::Gzip,
            (|images| compress(&oci_archive(images), Compression::Zstd))
                as fn(&[&ImageBuilder]) -> Vec<u8>,
        ),
    ] {
        let mut image = test_image(compression);
        let claimed = sha256_digest(b"some other content");
        image.layers[1].diff_id = claimed.clone();
        let options = ScanOptions {
            parallelism: std::num::NonZeroUsize::new(1),
            ..ScanOptions::default()
        };
        let cache = check(
            what,
            &build(&[&image]),
            &options,
            |e| matches!(e, ScanError::DigestMismatch { what: "layer", .. }),
            &[&claimed, "does not match"],
        )
        .await;
        let bad_key = cache_scan::cache_key(&claimed, &options).unwrap();
        assert!(
            cache.get_blob(&bad_key.into()).await.unwrap().is_none(),
            "{what}: result cached under a wrong diffID"
        );
        if !what.contains("as a whole") {
            let good_key = cache_scan::cache_key(&image.layers[0].diff_id, &options).unwrap();
            assert!(
                cache.get_blob(&good_key.into()).await.unwrap().is_some(),
                "{what}: good layer not cached"
            );
        }
    }
}

#[tokio::test]
async fn oci_blob_must_match_its_digest() {
    // Same content, compressed differently: the diffID holds but the blob digest the
    // manifest names does not.
    let mut image = test_image(Compression::Gzip);
    let mut other = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut other, &image.layers[0].tar).unwrap();
    image.layers[0].blob = other.finish().unwrap();
    let named = image.layers[0].blob_digest.clone();
    for (what, archive) in [
        ("oci", oci_archive(&[&image])),
        ("docker-save >= 25", docker_save_oci(&[&image])),
        (
            "oci, gzip as a whole",
            compress(&oci_archive(&[&image]), Compression::Gzip),
        ),
    ] {
        let cache = check(
            &format!("recompressed blob, {what}"),
            &archive,
            &default(),
            |e| matches!(e, ScanError::DigestMismatch { what: "blob", .. }),
            &[&named],
        )
        .await;
        let key = cache_scan::cache_key(&image.layers[0].diff_id, &default()).unwrap();
        assert!(
            cache.get_blob(&key.into()).await.unwrap().is_none(),
            "{what}"
        );
    }

    // A config whose digest is not the one the manifest names.
    let mut entries = oci_entries(&[&image], false);
    let config_blob = format!("blobs/sha256/{}", &image.image_id()[7..]);
    let config = entries.get_mut(&config_blob).unwrap();
    config.push(b' ');
    check(
        "tampered config",
        &tar_of(&entries),
        &default(),
        |e| matches!(e, ScanError::DigestMismatch { what: "config", .. }),
        &[&image.image_id()],
    )
    .await;
}

#[tokio::test]
async fn corrupt_compressed_layers() {
    for (what, compression, format) in [
        ("gzip", Compression::Gzip, "gzip"),
        ("zstd", Compression::Zstd, "zstd"),
    ] {
        let mut image = test_image(compression);
        let blob = &mut image.layers[0].blob;
        let middle = blob.len() / 2;
        for b in &mut blob[middle..middle + 16] {
            *b ^= 0x5a;
        }
        // Keep the manifest digest consistent so decompression is what fails.
        image.layers[0].blob_digest = sha256_digest(&image.layers[0].blob);
        // gzip's CRC or the diffID catches it (zstd frames carry no checksum by default),
        // whichever comes first; either way nothing is cached.
        check(
            what,
            &oci_archive(&[&image]),
            &default(),
            |e| {
                matches!(
                    e,
                    ScanError::Decompress { .. } | ScanError::DigestMismatch { what: "layer", .. }
                )
            },
            &[&image.layers[0].diff_id],
        )
        .await;

        let mut truncated = test_image(compression);
        let blob = &mut truncated.layers[0].blob;
        blob.truncate(blob.len() - 20);
        truncated.layers[0].blob_digest = sha256_digest(&truncated.layers[0].blob);
        check(
            &format!("truncated {what}"),
            &docker_save(&[&truncated]),
            &default(),
            |e| matches!(e, ScanError::Decompress { .. }),
            &[format],
        )
        .await;
    }
    // A layer that is not a tar at all.
    let mut image = test_image(Compression::None);
    image = image.layer_tar(vec![0x42; 2048], Compression::None, "junk");
    check(
        "layer not a tar",
        &docker_save(&[&image]),
        &default(),
        |e| matches!(e, ScanError::LayerFormat { .. }),
        &["not a valid tar stream"],
    )
    .await;
}

#[tokio::test]
async fn package_database_over_the_cap() {
    let options = ScanOptions {
        max_db_size: 200,
        parallelism: std::num::NonZeroUsize::new(1),
        ..ScanOptions::default()
    };
    let image = test_image(Compression::Gzip);
    check(
        "dpkg over cap",
        &oci_archive(&[&image]),
        &options,
        |e| matches!(e, ScanError::PackageDbTooLarge { limit: 200, .. }),
        &[
            "var/lib/dpkg/status",
            "cap of 200 bytes",
            &image.layers[0].diff_id,
        ],
    )
    .await;
    let apk = ImageBuilder::new(&["a:1"]).layer(
        &LayerBuilder::new().file("lib/apk/db/installed", "P:x\nV:1\n\n".repeat(100)),
        Compression::None,
        "x",
    );
    check(
        "apk over cap",
        &docker_save(&[&apk]),
        &options,
        |e| matches!(e, ScanError::PackageDbTooLarge { .. }),
        &["lib/apk/db/installed"],
    )
    .await;
}

#[tokio::test]
async fn decompression_bomb_stops_at_the_limit() {
    // 16 MiB of zeros gzip to about 16 KiB; the diffID is right, so only the size limit
    // can stop it. Memory stays bounded either way: layers are streamed.
    let zeros = vec![0u8; 16 << 20];
    let layer = LayerBuilder::new()
        .file("var/zeros", &zeros)
        .file("etc/os-release", DEBIAN_OS_RELEASE);
    drop(zeros);
    let image = ImageBuilder::new(&["bomb:1"]).layer(&layer, Compression::Gzip, "bomb");
    let options = ScanOptions {
        max_layer_size: 1 << 20,
        ..ScanOptions::default()
    };
    let archive = oci_archive(&[&image]);
    assert!(archive.len() < 1 << 20, "bomb is {} bytes", archive.len());
    let cache = check(
        "gzip bomb",
        &archive,
        &options,
        |e| matches!(e, ScanError::LayerTooLarge { .. }),
        &["decompresses to more than 1048576 bytes"],
    )
    .await;
    assert_eq!(entries(&cache).await, (0, 0));
    let zstd = ImageBuilder::new(&["bomb:2"]).layer(&layer, Compression::Zstd, "bomb");
    check(
        "zstd bomb",
        &oci_archive(&[&zstd]),
        &options,
        |e| matches!(e, ScanError::LayerTooLarge { .. }),
        &["decompresses"],
    )
    .await;
}

#[tokio::test]
async fn every_stored_blob_of_a_diff_id_is_verified() {
    // One layer stored twice, compressed differently: the same diffID (one cache key,
    // analysed once) but two blobs, and both are read.
    let layer = LayerBuilder::new()
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .file("var/lib/dpkg/status", stanza("a", "1-1", ""));
    let image = ImageBuilder::new(&["twice:1"])
        .layer(&layer, Compression::Gzip, "one")
        .layer(&layer, Compression::Zstd, "two");
    assert_eq!(image.layers[0].diff_id, image.layers[1].diff_id);
    let cache = mem();
    let (options, progress) = crate::util::with_progress(default());
    let (_dir, path) = write("twice.tar", &oci_archive(&[&image]));
    let r = cache_scan::scan(&path, &cache, &options).await.unwrap();
    assert_eq!(r.layers.analysed, 2);
    let works = progress.works.lock().unwrap().clone();
    let count = |w| works.iter().filter(|x| **x == w).count();
    assert_eq!(
        (
            count(cache_scan::LayerWork::Analyse),
            count(cache_scan::LayerWork::Verify)
        ),
        (1, 1)
    );
    // With verify_layers, a warm scan hashes both blobs too.
    let options = ScanOptions {
        verify_layers: true,
        ..default()
    };
    let r = cache_scan::scan(&path, &cache, &options).await.unwrap();
    assert_eq!((r.layers.cached, r.layers.verified), (2, 2));

    // The second blob holds other content under the same diffID (its own blob digest
    // is consistent): it must not pass unread, cold or verifying.
    let mut tampered = image.clone();
    let other = LayerBuilder::new()
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .file("var/lib/dpkg/status", stanza("evil", "6.6.6-1", ""))
        .build();
    tampered.layers[1].blob = compress(&other, Compression::Zstd);
    tampered.layers[1].blob_digest = sha256_digest(&tampered.layers[1].blob);
    for (what, archive) in [
        ("oci", oci_archive(&[&tampered])),
        ("docker-save >= 25", docker_save_oci(&[&tampered])),
        (
            "oci, gzip as a whole",
            compress(&oci_archive(&[&tampered]), Compression::Gzip),
        ),
    ] {
        check(
            what,
            &archive,
            &default(),
            |e| matches!(e, ScanError::DigestMismatch { what: "layer", .. }),
            &[&tampered.layers[1].blob_digest[7..], "does not match"],
        )
        .await;
    }
    let (_dir, path) = write("tampered.tar", &oci_archive(&[&tampered]));
    let err = cache_scan::scan(&path, &cache, &options).await.unwrap_err();
    assert!(err.is_digest_mismatch(), "{err}");
}

#[tokio::test]
async fn whole_archive_decompression_stops_at_the_limit() {
    // An archive compressed as a whole: 4 MiB of padding gzip to a few KiB. Each pass
    // over it may decompress at most max_layer_size bytes.
    let mut files = docker_save_entries(&[&test_image(Compression::None)]);
    files.insert("padding".into(), vec![0u8; 4 << 20]);
    let tar = tar_of(&files);
    for (what, codec) in [("gzip", Compression::Gzip), ("zstd", Compression::Zstd)] {
        let archive = compress(&tar, codec);
        assert!(archive.len() < 256 << 10, "{what}: {} bytes", archive.len());
        let options = ScanOptions {
            max_layer_size: 1 << 20,
            ..default()
        };
        let cache = check(
            what,
            &archive,
            &options,
            |e| matches!(e, ScanError::ArchiveTooLarge { limit: 1048576, .. }),
            &["bad.tar", "decompresses to more than 1048576 bytes"],
        )
        .await;
        assert_eq!(entries(&cache).await, (0, 0), "{what}");
        // Within the limit it scans.
        let options = ScanOptions {
            max_layer_size: 8 << 20,
            ..default()
        };
        let (_dir, path) = write("ok.tar.gz", &archive);
        cache_scan::scan(&path, &mem(), &options).await.unwrap();
    }
}

#[tokio::test]
async fn nested_indexes_are_read_once_and_capped() {
    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let image = test_image(Compression::Gzip);
    let mut files = oci_entries(&[&image], false);
    let top = files.get("index.json").unwrap().clone();
    // An index listing the blob `digest` of `media_type` `times` times.
    let index_of = |media_type: &str, digest: &str, size: usize, times: usize| {
        let d = format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#);
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            vec![d; times].join(",")
        )
        .into_bytes()
    };
    // index.json → I4 → I3 → I2 → I1 (the original index.json), each listing the next 30
    // times: 30^4 paths to the one image manifest, unless each index is read once.
    let mut files_fanout = files.clone();
    let mut nested = top.clone();
    for _ in 0..4 {
        let digest = sha256_digest(&nested);
        let size = nested.len();
        files_fanout.insert(format!("blobs/sha256/{}", &digest[7..]), nested);
        nested = index_of(OCI_INDEX, &digest, size, 30);
    }
    files_fanout.insert("index.json".into(), nested);
    let cache = mem();
    let (_dir, path) = write("fanout.tar", &tar_of(&files_fanout));
    let r = cache_scan::scan(&path, &cache, &default()).await.unwrap();
    assert_eq!(r.image_id, image.image_id());
    assert_eq!(r.repo_tags, ["test/deb:1"]);

    // More than 1000 descriptors in all: a clear error.
    let manifest = image.oci_manifest();
    let many = index_of(
        "application/vnd.oci.image.manifest.v1+json",
        &sha256_digest(&manifest),
        manifest.len(),
        1001,
    );
    files.insert("index.json".into(), many);
    check(
        "1001 descriptors",
        &tar_of(&files),
        &default(),
        |e| matches!(e, ScanError::InvalidMetadata { what: "index", .. }),
        &["more than 1000 descriptors"],
    )
    .await;
}

/// The error of a scan through a cache whose backend `nowhere` is down.
async fn scan_with_broken_cache() -> ScanError {
    let broken = Delegate::new(mem()).on_missing_blobs(|_, _| {
        Err(cache_core::Error::Unavailable {
            backend: "nowhere".into(),
            reason: "down".into(),
        })
    });
    let (_dir, path) = write("a.tar", &docker_save(&[&test_image(Compression::None)]));
    cache_scan::scan(&path, &broken, &default())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn cache_failures_are_reported_as_such() {
    // A cache that fails: the scan reports a cache error.
    let err = scan_with_broken_cache().await;
    assert!(err.is_cache(), "{err}");
    assert!(err.to_string().starts_with("cache: "), "{err}");
}

#[test]
fn stanza_helper_is_real_format() {
    assert!(stanza("a", "1-1", "b").contains("Status: install ok installed\n"));
}

/// An error as `scancache` prints it: the message of each error in the chain of sources,
/// joined by `: `.
fn printed(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[tokio::test]
async fn a_missing_input_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alpine.oci");
    let cause = std::fs::metadata(&path).unwrap_err().to_string();
    let err = cache_scan::scan(&path, &mem(), &default())
        .await
        .unwrap_err();
    let msg = printed(&err);
    assert_eq!(msg.matches(cause.as_str()).count(), 1, "{msg}");
    assert_eq!(msg, err.to_string());
    assert!(msg.contains("alpine.oci"), "{msg}");
}

#[tokio::test]
async fn a_cache_error_is_named_once() {
    let err = scan_with_broken_cache().await;
    let msg = printed(&err);
    assert_eq!(msg.matches("nowhere").count(), 1, "{msg}");
}
