//! Language packages, PURLs and SBOMs, side by side with the reference scanner's real
//! binary: the same packages and PURLs on every sample, SBOMs valid against the
//! official JSON schemas and read back by the reference as the same packages, and bad
//! package files skipped without losing the rest of the layer.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use cache_fixtures::{
    Compression, HOSTILE_SURVIVORS, ImageBuilder, LayerBuilder, docker_save, hostile_layer,
};
use cache_scan::{Report, ScanOptions, sbom::SbomMeta};
use cache_testkit::trivy::{command, require_trivy};
use serde_json::Value;

use crate::util::{mem, scan_ok, write};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name)
}

/// `(class, type, target, name, version, file path, PURL)` of every package of a JSON
/// report, ours or the reference's; jars left out (the reference reads them only with
/// its Java database) and OS targets reduced to their OS part.
fn packages(report: &Value) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for r in report["Results"].as_array().into_iter().flatten() {
        let class = r["Class"].as_str().unwrap_or_default();
        if !matches!(class, "os-pkgs" | "lang-pkgs") || r["Type"] == "jar" {
            continue;
        }
        let target = r["Target"].as_str().unwrap_or_default();
        let target = if class == "os-pkgs" {
            target.rsplit(" (").next().unwrap_or_default()
        } else {
            target
        };
        for p in r["Packages"].as_array().into_iter().flatten() {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            out.insert(vec![
                class.to_owned(),
                s(&r["Type"]),
                target.to_owned(),
                s(&p["Name"]),
                s(&p["Version"]),
                s(&p["FilePath"]),
                s(&p["Identifier"]["PURL"]),
            ]);
        }
    }
    out
}

fn reference_report(trivy: &Path, input: &Path) -> Value {
    let cache = tempfile::tempdir().unwrap();
    // The reference reads an OCI layout only as a directory: unpack one given as a tar.
    let unpacked = tempfile::tempdir().unwrap();
    let is_oci_tar = std::fs::read(input)
        .unwrap()
        .windows(11)
        .any(|w| w == b"oci-layout\0");
    let input = if is_oci_tar {
        let tar = Command::new("tar")
            .arg("-xf")
            .arg(input)
            .arg("-C")
            .arg(unpacked.path())
            .output()
            .unwrap();
        assert!(tar.status.success(), "tar -xf {}: {tar:?}", input.display());
        unpacked.path()
    } else {
        input
    };
    let out = command(trivy, cache.path())
        .args(["image", "--input"])
        .arg(input)
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
        "trivy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn our_report(input: &Path) -> Report {
    scan_ok(input, &mem(), &ScanOptions::default()).await
}

#[tokio::test]
async fn packages_and_purls_match_the_reference_on_every_sample() {
    let Some(trivy) = require_trivy() else { return };
    for name in ["lang.tar", "debian.tar", "alpine.tar", "pair.tar"] {
        let input = sample(name);
        let ours = packages(&our_report(&input).await.to_json());
        let theirs = packages(&reference_report(&trivy, &input));
        assert_eq!(
            ours,
            theirs,
            "{name}: only ours {:#?}\nonly the reference's {:#?}",
            ours.difference(&theirs).collect::<Vec<_>>(),
            theirs.difference(&ours).collect::<Vec<_>>()
        );
        // Equal sets prove nothing if both are empty: each sample's packages, per
        // type, as its generator wrote them (jars are not compared, see `packages`).
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for p in &theirs {
            *counts.entry(p[1].as_str()).or_default() += 1;
        }
        let want: &[(&str, usize)] = match name {
            "lang.tar" => &[
                ("composer-vendor", 2),
                ("conda-pkg", 1),
                ("debian", 19),
                ("dotnet-core", 3),
                ("gemspec", 1),
                ("gobinary", 4),
                ("node-pkg", 3),
                ("python-pkg", 4),
                ("rustbinary", 3),
            ],
            "debian.tar" => &[("debian", 26)],
            "alpine.tar" => &[("alpine", 23)],
            _ => &[("ubuntu", 14)],
        };
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), want, "{name}");
    }
}

#[tokio::test]
async fn the_lang_sample_applies_layers_as_the_reference_does() {
    let r = our_report(&sample("lang.tar")).await;
    let names: Vec<String> = r
        .applications
        .iter()
        .flat_map(|a| {
            a.packages
                .iter()
                .map(|p| format!("{}@{}", p.package.name, p.package.version))
        })
        .collect();
    // `pip uninstall six` in the top layer removed it; left-pad was upgraded there.
    assert!(!names.iter().any(|n| n.starts_with("six@")), "{names:?}");
    assert!(
        names.contains(&"left-pad@1.3.0".to_owned())
            && !names.contains(&"left-pad@1.2.0".to_owned())
    );
    let left_pad = r
        .applications
        .iter()
        .flat_map(|a| &a.packages)
        .find(|p| p.package.name == "left-pad")
        .unwrap();
    assert_eq!(left_pad.layer_diff_id, r.diff_ids[2]);
    let jar: Vec<&str> = r
        .applications
        .iter()
        .filter(|a| a.app_type == "jar")
        .flat_map(|a| a.packages.iter().map(|p| p.package.name.as_str()))
        .collect();
    assert_eq!(
        jar,
        ["com.example:demo-app", "org.apache.commons:commons-text"]
    );
    let bash = r
        .packages
        .iter()
        .find(|p| p.package.name == "bash")
        .unwrap();
    assert_eq!(
        bash.package.licenses,
        ["GPL-3.0-or-later", "GPL-2.0-or-later", "BSD-3-Clause"]
    );
    assert!(r.packages.iter().all(|p| {
        p.package
            .identifier
            .as_ref()
            .is_some_and(|i| i.purl.starts_with("pkg:deb/debian/"))
    }));
}

fn meta() -> SbomMeta {
    SbomMeta {
        timestamp: "2025-06-01T12:00:00Z".into(),
        uuid: "3e671687-395b-41f5-a30f-a58921a69b79".into(),
        tool_version: "0.1.0".into(),
    }
}

/// Runs `validate.py` on `files`: `None` when skipped, else whether all were valid and
/// what the validator said.
fn python_validate(kind: &str, files: &[PathBuf]) -> Option<(bool, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schemas/validate.py");
    let probe = Command::new("python3")
        .args(["-c", "import jsonschema, referencing"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        if std::env::var("SCANCACHE_SKIP_SBOM_SCHEMA_TESTS").as_deref() == Ok("1") {
            eprintln!(
                "SKIPPED: SBOM schema validation: python3 cannot import jsonschema and \
                 SCANCACHE_SKIP_SBOM_SCHEMA_TESTS=1 is set"
            );
            return None;
        }
        panic!(
            "SBOM schema validation needs python3 with the jsonschema package (4.18 or \
             newer): install it with `python3 -m pip install 'jsonschema>=4.18'` (.ci/run \
             does this), or set SCANCACHE_SKIP_SBOM_SCHEMA_TESTS=1 to skip it visibly"
        );
    }
    let out = Command::new("python3")
        .arg(&script)
        .arg(kind)
        .args(files)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[tokio::test]
async fn sboms_are_valid_deterministic_and_read_back_by_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cdx, mut spdx) = (Vec::new(), Vec::new());
    let trivy = require_trivy();
    for name in ["lang.tar", "debian.tar", "alpine.tar", "pair.tar"] {
        let report = our_report(&sample(name)).await;
        let c = cache_scan::sbom::cyclonedx(&report, &meta());
        let s = cache_scan::sbom::spdx(&report, &meta());
        assert_eq!(
            c,
            cache_scan::sbom::cyclonedx(&our_report(&sample(name)).await, &meta()),
            "{name}: not deterministic"
        );
        for (doc, list, ext) in [(&c, &mut cdx, "cdx"), (&s, &mut spdx, "spdx")] {
            let path = dir.path().join(format!("{name}.{ext}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
            list.push(path.clone());
            let Some(trivy) = &trivy else { continue };
            let cache = tempfile::tempdir().unwrap();
            let out = command(trivy, cache.path())
                .arg("sbom")
                .arg(&path)
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
                "trivy sbom {name}.{ext}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let back: Value = serde_json::from_slice(&out.stdout).unwrap();
            // Names and PURLs (the PURL holds the version; the reference reads an OS
            // package's version back with its release).
            let key = |set: BTreeSet<Vec<String>>| -> BTreeSet<(String, String, String)> {
                set.into_iter()
                    .map(|p| (p[3].clone(), String::new(), p[6].clone()))
                    .collect()
            };
            let mut ours = key(packages(&report.to_json()));
            ours.retain(|p| !p.2.starts_with("pkg:maven/"));
            let mut theirs = key(packages(&back));
            theirs.retain(|p| !p.2.starts_with("pkg:maven/"));
            assert_eq!(ours, theirs, "{name}.{ext} read back differently");
        }
    }
    for (kind, files) in [("cyclonedx", &cdx), ("spdx", &spdx)] {
        let Some((valid, said)) = python_validate(kind, files) else {
            return;
        };
        assert!(valid, "invalid {kind}:\n{said}");
        // The validator is not a no-op: a document missing a required member fails.
        let mut broken: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
        let required = if kind == "cyclonedx" {
            "bomFormat"
        } else {
            "SPDXID"
        };
        broken.as_object_mut().unwrap().remove(required);
        let path = dir.path().join(format!("broken.{kind}.json"));
        std::fs::write(&path, broken.to_string()).unwrap();
        let (valid, said) = python_validate(kind, &[path]).unwrap();
        assert!(!valid && said.contains(required), "{kind}: {said}");
    }
}

#[tokio::test]
async fn bad_package_files_are_skipped_and_the_rest_of_the_layer_is_analysed() {
    // Truncated ELF, absurd ELF table and section sizes, binary METADATA, a package.json
    // nested 5,000 deep, zip bombs; each beside a good file of its kind.
    let image = ImageBuilder::new(&["bad:1"]).layer(&hostile_layer(), Compression::None, "bad");
    let (_dir, path) = write("bad.tar", &docker_save(&[&image]));
    let r = our_report(&path).await;
    let found: BTreeSet<String> = r
        .applications
        .iter()
        .flat_map(|a| {
            a.packages
                .iter()
                .map(|p| format!("{}:{}", a.app_type, p.package.name))
        })
        .collect();
    let want: BTreeSet<String> = HOSTILE_SURVIVORS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(found, want);
    // The warnings naming each file and its reason: cache-cli's tests, which see the log.
}

#[tokio::test]
async fn a_package_json_of_100_mb_is_skipped_with_the_rest_analysed() {
    let mut huge = br#"{"name":"huge","version":"1.0.0","x":""#.to_vec();
    huge.resize(100 << 20, b' ');
    huge.extend_from_slice(b"\"}");
    let layer = LayerBuilder::new()
        .file("app/huge/package.json", huge)
        .file(
            "app/small/package.json",
            r#"{"name":"small","version":"1.0.0"}"#,
        );
    let image = ImageBuilder::new(&["huge:1"]).layer(&layer, Compression::None, "huge");
    let (_d, path) = write("huge.tar", &docker_save(&[&image]));
    let r = our_report(&path).await;
    let names: Vec<&str> = r
        .applications
        .iter()
        .flat_map(|a| a.packages.iter().map(|p| p.package.name.as_str()))
        .collect();
    assert_eq!(names, ["small"]);
}
