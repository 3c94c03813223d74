//! The same image in every supported archive format scans to the same report, cold and
//! warm.

use std::path::PathBuf;

use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, compress, data::DEBIAN_OS_RELEASE, docker_save,
    docker_save_entries, docker_save_oci, oci_archive, write_entries, write_oci_dir,
};
use cache_scan::{Report, ScanOptions};
use tempfile::TempDir;

use crate::util::{mem, packages, scan_ok, with_progress, without_counts};

pub fn stanza(name: &str, version: &str, depends: &str) -> String {
    let mut s = format!(
        "Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 100\nMaintainer: Test Maintainer <test@example.org>\nArchitecture: amd64\nVersion: {version}\n"
    );
    if !depends.is_empty() {
        s.push_str(&format!("Depends: {depends}\n"));
    }
    s.push_str(&format!(
        "Description: the {name} package\n long description\n\n"
    ));
    s
}

/// A two-layer Debian-like image: the second layer upgrades `libb` and adds `tool`.
pub fn test_image(compression: Compression) -> ImageBuilder {
    let base = format!(
        "{}{}",
        stanza("liba", "1.0-1", ""),
        stanza("libb", "2.0-1", "liba")
    );
    let upgraded = format!(
        "{}{}{}",
        stanza("liba", "1.0-1", ""),
        stanza("libb", "2.0-2", "liba"),
        stanza("tool", "1:3.1-4", "libb (>= 2), liba")
    );
    ImageBuilder::new(&["test/deb:1"])
        .layer(
            &LayerBuilder::new()
                .file("etc/debian_version", "12.11\n")
                .symlink("etc/os-release", "../usr/lib/os-release")
                .file("usr/lib/os-release", DEBIAN_OS_RELEASE)
                .file("var/lib/dpkg/status", base)
                .file("bin/sh", vec![7u8; 3000]),
            compression,
            "ADD base in /",
        )
        .layer(
            &LayerBuilder::new()
                .file("var/lib/dpkg/status", upgraded)
                .file("usr/bin/tool", "tool"),
            compression,
            "RUN install tool",
        )
}

pub const EXPECTED: [&str; 3] = ["liba@1.0-1<-0", "libb@2.0-2<-1", "tool@1:3.1-4<-1"];

/// Writes one archive variant and returns its path.
fn variants(dir: &TempDir) -> Vec<(&'static str, PathBuf)> {
    let plain = test_image(Compression::None);
    let gzip = test_image(Compression::Gzip);
    let zstd = test_image(Compression::Zstd);
    let file = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let oci_dir = dir.path().join("oci-dir");
    write_oci_dir(&[&gzip], &oci_dir).unwrap();
    let save_dir = dir.path().join("save-dir");
    write_entries(&docker_save_entries(&[&plain]), &save_dir).unwrap();
    vec![
        (
            "docker-save classic",
            file("classic.tar", docker_save(&[&plain])),
        ),
        (
            "docker-save classic, gzip layers",
            file("classic-gz.tar", docker_save(&[&gzip])),
        ),
        (
            "docker-save >= 25",
            file("oci-save.tar", docker_save_oci(&[&plain])),
        ),
        (
            "oci tar, gzip layers",
            file("oci-gz.tar", oci_archive(&[&gzip])),
        ),
        (
            "oci tar, zstd layers",
            file("oci-zstd.tar", oci_archive(&[&zstd])),
        ),
        (
            "oci tar, mixed layers",
            file("oci-mixed.tar", oci_archive(&[&mixed()])),
        ),
        ("oci directory", oci_dir),
        ("docker-save directory", save_dir),
        (
            "docker-save, gzip as a whole",
            file(
                "whole.tar.gz",
                compress(&docker_save(&[&plain]), Compression::Gzip),
            ),
        ),
        (
            "oci tar, zstd as a whole",
            file(
                "whole.tar.zst",
                compress(&oci_archive(&[&gzip]), Compression::Zstd),
            ),
        ),
    ]
}

/// First layer zstd, second gzip.
fn mixed() -> ImageBuilder {
    let zstd = test_image(Compression::Zstd);
    let gzip = test_image(Compression::Gzip);
    let mut mixed = zstd;
    mixed.layers[1] = gzip.layers[1].clone();
    mixed
}

fn comparable(report: &Report) -> Report {
    let mut r = without_counts(report);
    r.artifact_name.clear();
    for p in &mut r.packages {
        p.layer_digest = None;
    }
    r
}

#[tokio::test]
async fn every_format_gives_the_same_report_cold_and_warm() {
    let dir = tempfile::tempdir().unwrap();
    let mut reference: Option<Report> = None;
    for (what, path) in variants(&dir) {
        let cache = mem();
        let (options, progress) = with_progress(ScanOptions::default());
        let cold = scan_ok(&path, &cache, &options).await;
        assert_eq!((cold.layers.analysed, cold.layers.cached), (2, 0), "{what}");
        assert_eq!(
            progress.layers.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "{what}"
        );
        assert!(
            progress.bytes.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "{what}"
        );

        let (options, progress) = with_progress(ScanOptions::default());
        let warm = scan_ok(&path, &cache, &options).await;
        assert_eq!((warm.layers.analysed, warm.layers.cached), (0, 2), "{what}");
        assert_eq!(
            progress.bytes.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{what}: warm scan read layer bytes"
        );
        assert_eq!(
            without_counts(&cold),
            without_counts(&warm),
            "{what}: cold and warm differ"
        );

        let got = packages(&cold);
        assert_eq!(got, EXPECTED, "{what}");
        let os = cold.os.as_ref().unwrap();
        assert_eq!(
            (os.family.as_str(), os.name.as_str()),
            ("debian", "12.11"),
            "{what}"
        );
        assert_eq!(cold.repo_tags, ["test/deb:1"], "{what}");
        match &reference {
            None => reference = Some(cold),
            Some(r) => assert_eq!(
                comparable(r),
                comparable(&cold),
                "{what} differs from the first format"
            ),
        }
    }
}

#[tokio::test]
async fn one_cache_serves_the_same_image_in_another_format() {
    let dir = tempfile::tempdir().unwrap();
    let cache = mem();
    let all = variants(&dir);
    let first = scan_ok(&all[0].1, &cache, &ScanOptions::default()).await;
    assert_eq!(first.layers.analysed, 2);
    for (what, path) in &all[1..] {
        let r = scan_ok(path, &cache, &ScanOptions::default()).await;
        assert_eq!((r.layers.analysed, r.layers.cached), (0, 2), "{what}");
    }
}

#[tokio::test]
async fn dependencies_resolve_to_installed_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tar");
    std::fs::write(&path, docker_save(&[&test_image(Compression::None)])).unwrap();
    let report = scan_ok(&path, &mem(), &ScanOptions::default()).await;
    let tool = report
        .packages
        .iter()
        .find(|p| p.package.name == "tool")
        .unwrap();
    assert_eq!(tool.package.depends_on, ["liba@1.0-1", "libb@2.0-2"]);
    assert_eq!(tool.package.epoch, 1);
    assert_eq!(tool.package.id, "tool@1:3.1-4");
    let json = report.to_json();
    let pkgs = json["Results"][0]["Packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 3);
    assert_eq!(pkgs[0]["Layer"]["DiffID"], report.diff_ids[0]);
    assert_eq!(json["Metadata"]["ImageID"], report.image_id);
    assert_eq!(
        json["Results"][0]["Target"],
        format!("{} (debian 12.11)", path.display())
    );
}
