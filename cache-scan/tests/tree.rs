//! Directory and SBOM scans side by side with the reference scanner's real binary: `fs`
//! on a generated tree holding every lockfile kind and on this repository, `rootfs` on
//! an extracted sample image, `sbom` on documents both tools wrote; and the cache key
//! of a directory (an unchanged tree is a hit that reads no file).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use cache_fixtures::{LOCKFILES, POM_PACKAGES, PROJECT_ENTRIES, write_project};
use cache_scan::{Report, ScanOptions, TreeKind, TreeOptions, scan_tree};
use cache_testkit::trivy::{command, report_packages, require_trivy};
use serde_json::Value;

use crate::util::mem;

/// `(type, target, name, version)` of every package of a JSON report, ours or the
/// reference's (see [`report_packages`]).
fn packages(report: &Value) -> BTreeSet<(String, String, String, String)> {
    report_packages(report)
        .into_iter()
        .map(|(_, kind, target, name, version)| (kind, target, name, version))
        .collect()
}

fn assert_same(
    what: &str,
    ours: &BTreeSet<(String, String, String, String)>,
    theirs: &BTreeSet<(String, String, String, String)>,
) {
    assert!(
        ours == theirs,
        "{what}: only ours {:#?}\nonly the reference's {:#?}",
        ours.difference(theirs).take(20).collect::<Vec<_>>(),
        theirs.difference(ours).take(20).collect::<Vec<_>>()
    );
}

fn reference(trivy: &Path, args: &[&str], target: &Path) -> Value {
    let cache = tempfile::tempdir().unwrap();
    let out = command(trivy, cache.path())
        .args(args)
        .arg(target)
        .args([
            "--format",
            "json",
            "--list-all-pkgs",
            "--scanners",
            "license",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trivy {args:?} {} failed: {}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings: Vec<_> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_owned)
        .collect();
    assert!(warnings.is_empty(), "trivy {args:?} warned: {warnings:#?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn ours(root: &Path, options: &TreeOptions) -> Report {
    scan_tree(root, &mem(), options).await.unwrap()
}

#[tokio::test]
async fn fs_matches_the_reference_on_every_lockfile_kind() {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), PROJECT_ENTRIES).unwrap();
    let report = ours(dir.path(), &TreeOptions::new(TreeKind::Fs)).await;
    let mine = packages(&report.to_json());
    // The reference resolves a pom.xml over the network: ours is checked against the
    // coordinates the fixture declares instead.
    let (pom, mine): (BTreeSet<_>, BTreeSet<_>) = mine.into_iter().partition(|p| p.0 == "pom");
    let pom: Vec<(String, String)> = pom.into_iter().map(|p| (p.2, p.3)).collect();
    let mut want: Vec<(String, String)> = POM_PACKAGES
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    want.sort();
    assert_eq!(pom, want);
    let theirs: BTreeSet<_> = packages(&reference(&trivy, &["fs"], dir.path()))
        .into_iter()
        .filter(|p| p.0 != "pom")
        .collect();
    assert_same("generated tree", &mine, &theirs);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for p in &theirs {
        *counts.entry(p.1.clone()).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = LOCKFILES
        .iter()
        .filter(|(_, t, _)| *t != "pom")
        .map(|(path, _, n)| (path.to_string(), *n))
        .collect();
    assert_eq!(counts, want, "packages per lockfile");
}

#[tokio::test]
async fn fs_matches_the_reference_on_this_repository() {
    let Some(trivy) = require_trivy() else { return };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = repo.canonicalize().unwrap();
    let mut options = TreeOptions::new(TreeKind::Fs);
    options.skip_dirs = vec!["target".into()];
    let mine = packages(&ours(&repo, &options).await.to_json());
    let theirs = packages(&reference(&trivy, &["fs", "--skip-dirs", "target"], &repo));
    assert_same("this repository", &mine, &theirs);
    assert!(
        mine.iter().filter(|p| p.1 == "Cargo.lock").count() > 100,
        "{mine:?}"
    );
}

/// Unpacks the docker-save archive `sample` into `root`, layer by layer, applying
/// whiteouts, as a mounted image would show it.
fn extract(sample: &Path, root: &Path) {
    let work = tempfile::tempdir().unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("tar")
        .arg("-xf")
        .arg(sample)
        .arg("-C")
        .arg(work.path()));
    let json =
        |p: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let blob = |digest: &Value| {
        work.path()
            .join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    // A docker-save archive names its layers in manifest.json, an OCI layout through
    // its index and manifest.
    let layers: Vec<PathBuf> = if work.path().join("manifest.json").exists() {
        let manifest = json(work.path().join("manifest.json"));
        manifest[0]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| work.path().join(l.as_str().unwrap()))
            .collect()
    } else {
        let index = json(work.path().join("index.json"));
        let manifest = json(blob(&index["manifests"][0]["digest"]));
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| blob(&l["digest"]))
            .collect()
    };
    for layer in layers {
        run(Command::new("tar")
            .arg("-xf")
            .arg(&layer)
            .arg("-C")
            .arg(root));
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            // A directory may be gone: whited out after it was listed.
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else if let Some(gone) = name.strip_prefix(".wh.") {
                    let target = dir.join(gone);
                    if target.is_dir() {
                        std::fs::remove_dir_all(&target).unwrap();
                    } else if target.exists() {
                        std::fs::remove_file(&target).unwrap();
                    }
                    std::fs::remove_file(e.path()).unwrap();
                }
            }
        }
    }
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name)
}

#[tokio::test]
async fn rootfs_matches_the_reference_and_the_image_scan() {
    let Some(trivy) = require_trivy() else { return };
    for name in ["lang.tar", "debian.tar", "alpine.tar"] {
        let root = tempfile::tempdir().unwrap();
        extract(&sample(name), root.path());
        let report = ours(root.path(), &TreeOptions::new(TreeKind::Rootfs)).await;
        let mine = packages(&report.to_json());
        let theirs = packages(&reference(&trivy, &["rootfs"], root.path()));
        // Jars are read by the reference only with its Java database.
        let no_jar = |s: BTreeSet<(String, String, String, String)>| -> BTreeSet<_> {
            s.into_iter().filter(|p| p.0 != "jar").collect()
        };
        let (mine, theirs) = (no_jar(mine), no_jar(theirs));
        assert_same(name, &mine, &theirs);
        assert!(mine.len() > 10, "{name}: {mine:?}");
        // The same content as an image gives the same packages.
        let image = crate::util::scan_ok(&sample(name), &mem(), &ScanOptions::default()).await;
        let image: BTreeSet<(String, String)> = packages(&image.to_json())
            .into_iter()
            .filter(|p| p.0 != "jar")
            .map(|p| (p.2, p.3))
            .collect();
        let tree: BTreeSet<(String, String)> = mine.into_iter().map(|p| (p.2, p.3)).collect();
        assert_eq!(tree, image, "{name}: rootfs and image");
    }
}

#[tokio::test]
async fn rootfs_with_packages_but_no_os_reports_family_none_as_the_reference() {
    let Some(trivy) = require_trivy() else { return };
    let root = tempfile::tempdir().unwrap();
    extract(&sample("debian.tar"), root.path());
    for release in ["etc/os-release", "usr/lib/os-release", "etc/debian_version"] {
        let _ = std::fs::remove_file(root.path().join(release));
    }
    let report = ours(root.path(), &TreeOptions::new(TreeKind::Rootfs)).await;
    let mine = report.to_json();
    let theirs = reference(&trivy, &["rootfs"], root.path());
    // Target `NAME (none )`, type `none`: in the packages' (type, target) pairs.
    assert_same("bare debian", &packages(&mine), &packages(&theirs));
    assert!(packages(&mine).iter().all(|p| p.0 == "none"), "{mine:#}");
    assert_eq!(mine["Metadata"]["OS"], theirs["Metadata"]["OS"]);
    assert_eq!(
        mine["Metadata"]["OS"],
        serde_json::json!({"Family": "none", "Name": ""})
    );
    assert!(
        report.to_table().contains("\nOS        none\n"),
        "{}",
        report.to_table()
    );
    // Each package has a UID (the values are each tool's own) and no PURL, which needs
    // a detected OS.
    for (who, doc) in [("ours", &mine), ("reference", &theirs)] {
        let ids: Vec<&serde_json::Value> = doc["Results"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["Packages"].as_array().into_iter().flatten())
            .map(|p| &p["Identifier"])
            .collect();
        assert!(!ids.is_empty(), "{who}: no packages");
        assert!(
            ids.iter()
                .all(|id| id["UID"].as_str().is_some_and(|u| !u.is_empty())
                    && id.get("PURL").is_none()),
            "{who}: {ids:?}"
        );
    }
}

#[tokio::test]
async fn an_unchanged_tree_is_a_hit_that_reads_no_file() {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), 20).unwrap();
    let cache = mem();
    let options = TreeOptions::new(TreeKind::Fs);
    let cold = scan_tree(dir.path(), &cache, &options).await.unwrap();
    assert_eq!((cold.layers.analysed, cold.layers.cached), (1, 0));
    // Unreadable now, but unchanged in path, size and time: a hit never opens it.
    let lock = dir.path().join("rust/Cargo.lock");
    let meta = std::fs::metadata(&lock).unwrap();
    let text = std::fs::read(&lock).unwrap();
    let garbage = vec![b'#'; text.len()];
    std::fs::write(&lock, &garbage).unwrap();
    let times = std::fs::File::options().write(true).open(&lock).unwrap();
    times.set_modified(meta.modified().unwrap()).unwrap();
    drop(times);
    let warm = scan_tree(dir.path(), &cache, &options).await.unwrap();
    assert_eq!((warm.layers.analysed, warm.layers.cached), (0, 1));
    assert_eq!(
        warm.applications, cold.applications,
        "the blind spot: same size and time"
    );
    // A touched file is a miss, and the garbage is now read (and skipped).
    std::fs::write(&lock, &garbage).unwrap();
    let changed = scan_tree(dir.path(), &cache, &options).await.unwrap();
    assert_eq!(changed.layers.analysed, 1);
    assert!(
        !changed
            .applications
            .iter()
            .any(|a| a.file_path == "rust/Cargo.lock")
    );
    assert_eq!(changed.applications.len(), cold.applications.len() - 1);
}

#[tokio::test]
async fn sboms_both_tools_wrote_read_back_as_the_same_packages() {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The reference writes SBOMs of images with Java archives only with its Java
    // database, which is not available offline: lang.tar's SBOMs are ours only.
    for name in ["lang.tar", "debian.tar", "alpine.tar"] {
        let input = sample(name);
        let report = crate::util::scan_ok(&input, &mem(), &ScanOptions::default()).await;
        let meta = cache_scan::sbom::SbomMeta {
            timestamp: "2026-01-01T00:00:00Z".into(),
            uuid: "6c2b1d52-35a6-4c7e-9c61-4a1d6f0e8a11".into(),
            tool_version: "test".into(),
        };
        let mut docs = vec![
            ("ours.cdx.json", cache_scan::sbom::cyclonedx(&report, &meta)),
            ("ours.spdx.json", cache_scan::sbom::spdx(&report, &meta)),
        ];
        let theirs: &[(&str, &str)] = if name == "lang.tar" {
            &[]
        } else {
            &[
                ("theirs.cdx.json", "cyclonedx"),
                ("theirs.spdx.json", "spdx-json"),
            ]
        };
        for &(file, format) in theirs {
            let cache = tempfile::tempdir().unwrap();
            // The reference reads an OCI layout only as a directory.
            let unpacked = tempfile::tempdir().unwrap();
            let listing = Command::new("tar").arg("-tf").arg(&input).output().unwrap();
            let image_input = if String::from_utf8_lossy(&listing.stdout)
                .lines()
                .any(|l| l == "oci-layout")
            {
                let ok = Command::new("tar")
                    .arg("-xf")
                    .arg(&input)
                    .arg("-C")
                    .arg(unpacked.path())
                    .status()
                    .unwrap();
                assert!(ok.success());
                unpacked.path().to_path_buf()
            } else {
                input.clone()
            };
            let out = command(&trivy, cache.path())
                .args(["image", "--input"])
                .arg(&image_input)
                .args(["--format", format, "--scanners", "license", "--quiet"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            docs.push((file, serde_json::from_slice(&out.stdout).unwrap()));
        }
        for (file, doc) in docs {
            let path = dir.path().join(format!("{name}.{file}"));
            std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
            let mine = cache_scan::sbom::scan_sbom(&path, &mem()).await.unwrap();
            let key = |s: BTreeSet<(String, String, String, String)>| -> BTreeSet<(String, String, String)> {
                s.into_iter().filter(|p| p.0 != "jar").map(|p| (p.0, p.2, p.3)).collect()
            };
            let mine = key(packages(&mine.to_json()));
            let theirs = key(packages(&reference(&trivy, &["sbom"], &path)));
            assert_eq!(
                mine,
                theirs,
                "{name} {file}: only ours {:?} only theirs {:?}",
                mine.difference(&theirs).collect::<Vec<_>>(),
                theirs.difference(&mine).collect::<Vec<_>>()
            );
            assert!(mine.len() > 10, "{name} {file}");
        }
    }
}
