//! Applying layers in order: whiteouts, opaque directories and package databases that
//! later layers replace, down to the image's final OS and package list.
//!
//! The same code serves `scan` (whose layers hold only OS package databases) and
//! `scancache server`, whose clients also store language packages, misconfigurations,
//! license files, custom resources and secrets in their layers: [`apply_layers`] applies
//! those by the same rules, each keyed by the file it came from.

use std::collections::{BTreeMap, HashMap};

use cache_core::{BlobInfo, Os, Package, Repository};
use serde::Deserialize;
use serde_json::Value;

use crate::report::ReportPackage;

/// One layer as the applier sees it.
#[derive(Clone, Copy, Debug)]
pub struct LayerView<'a> {
    /// The layer's diffID.
    pub diff_id: &'a str,
    /// The stored digest in this image's archive, when the format names one.
    pub digest: Option<&'a str>,
    /// The layer's analysis result.
    pub blob: &'a BlobInfo,
}

/// The image as its top layer shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// The OS of the highest layer that found one.
    pub os: Option<Os>,
    /// The package repository of the highest layer that found one.
    pub repository: Option<Repository>,
    /// OS packages, sorted by name, ID, architecture and database path, each with the
    /// layer that installed it.
    pub packages: Vec<ReportPackage>,
    /// Language packages per file (lock file or package directory) and type, sorted by
    /// path and type; packages keep their order within a file.
    pub applications: Vec<AppliedApplication>,
    /// Misconfigurations, license files and custom resources still in the image, as the
    /// layers stored them (JSON), sorted by path and kind.
    pub entries: Vec<AppliedEntry>,
    /// Secrets per file path, sorted by path.
    pub secrets: Vec<AppliedSecret>,
}

/// The language packages of one file of the final image.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedApplication {
    /// Application type, e.g. `npm`, `node-pkg`.
    pub app_type: String,
    /// The file, e.g. `app/package-lock.json` (`file_path` of each package is this too).
    pub file_path: String,
    /// Its packages, each with the layer that first had it in this file.
    pub packages: Vec<ReportPackage>,
}

/// What an [`AppliedEntry`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A `Misconfigurations` item.
    Misconfiguration,
    /// A `Licenses` item (a license file, header or dpkg copyright file).
    LicenseFile,
    /// A `CustomResources` item.
    CustomResource,
}

/// A path-keyed result of a layer that is still in the final image.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedEntry {
    /// Which list it came from.
    pub kind: EntryKind,
    /// The index (in the applied layers) of the layer that provided it.
    pub layer: usize,
    /// The item as stored.
    pub value: Value,
}

/// The secrets found in one file, over all layers.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedSecret {
    /// The file.
    pub file_path: String,
    /// The findings as stored, each with the index of the layer it was found in; a
    /// later layer's finding replaces an earlier one with the same rule.
    pub findings: Vec<(usize, Value)>,
}

/// What holds a path in the applier's map: a package database, an application, or one
/// of the other path-keyed results, each with its sub-kind where the reference keys by
/// one (an application's or license file's type, a custom resource's type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot<'a> {
    Packages,
    Application(&'a str),
    Entry(EntryKind, &'a str),
}

/// What a slot holds.
enum Held<'a> {
    Packages(&'a [Package]),
    Application(&'a ParsedApp),
    Entry(&'a Value),
}

/// An application as stored (`{Type, FilePath, Packages}`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ParsedApp {
    #[serde(rename = "Type", deserialize_with = "nullable")]
    app_type: String,
    #[serde(deserialize_with = "nullable")]
    file_path: String,
    #[serde(deserialize_with = "nullable")]
    packages: Vec<Package>,
}

/// `null` reads as the default (Go writes `null` for an empty list).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The string field `key` of a stored item (`""` when absent or not a string).
fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The items of a stored list (`None`, `null` and non-lists are empty).
fn items(list: &Option<Value>) -> &[Value] {
    match list {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// A language package's identity within its file, as the reference matches it.
fn lib_key(p: &Package) -> String {
    format!("{}\0{}\0{}", p.name, p.version, p.release)
}

/// Applies layers bottom first (what `scan` reports).
///
/// Each layer first removes what it hides in the layers below (opaque directories, then
/// whiteouts), then adds its own package databases, replacing any database at the same
/// path. A layer's OS replaces the one below. Each remaining package is attributed to the
/// first layer that had the same package (same ID) in a database at the same path, so a
/// package a later layer merely rewrote in place still shows the layer that installed it
/// (and the installed files that layer listed).
///
/// Applications, misconfigurations, license files and custom resources follow the same
/// rules, each keyed by its file path (and type); a language package is attributed to the
/// first layer that had a package of the same name, version and release in a file at the
/// same path. Secrets are merged per file across layers (whiteouts do not remove them, as
/// in the reference). Items that do not have the stored shape are left out.
pub fn apply_layers(layers: &[LayerView<'_>]) -> Applied {
    // Applications are parsed up front so the map below can hold references to them.
    let parsed: Vec<Vec<ParsedApp>> = layers
        .iter()
        .map(|l| {
            items(&l.blob.applications)
                .iter()
                .filter_map(|v| match ParsedApp::deserialize(v) {
                    Ok(app) => Some(app),
                    Err(e) => {
                        tracing::warn!(
                            diff_id = l.diff_id,
                            "an application of the layer does not decode: {e}"
                        );
                        None
                    }
                })
                .collect()
        })
        .collect();
    let mut held: BTreeMap<(&str, Slot<'_>), (usize, Held<'_>)> = BTreeMap::new();
    let mut first_seen: HashMap<(&str, &str), (usize, &Package)> = HashMap::new();
    let mut first_lib: HashMap<(&str, String), usize> = HashMap::new();
    let mut secrets: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
    let mut os: Option<Os> = None;
    let mut repository = None;
    for (i, (layer, apps)) in layers.iter().zip(&parsed).enumerate() {
        for dir in &layer.blob.opaque_dirs {
            let dir = dir.trim_end_matches('/');
            held.retain(|(path, _), _| !is_under(path, dir));
        }
        for deleted in &layer.blob.whiteout_files {
            let deleted = deleted.trim_end_matches('/');
            held.retain(|(path, _), _| *path != deleted && !is_under(path, deleted));
        }
        for info in &layer.blob.package_infos {
            held.insert(
                (info.file_path.as_str(), Slot::Packages),
                (i, Held::Packages(info.packages.as_slice())),
            );
            for p in &info.packages {
                first_seen
                    .entry((info.file_path.as_str(), p.id.as_str()))
                    .or_insert((i, p));
            }
        }
        for app in apps {
            held.insert(
                (
                    app.file_path.as_str(),
                    Slot::Application(app.app_type.as_str()),
                ),
                (i, Held::Application(app)),
            );
            for p in &app.packages {
                first_lib
                    .entry((app.file_path.as_str(), lib_key(p)))
                    .or_insert(i);
            }
        }
        for (kind, list, sub_key) in [
            (
                EntryKind::Misconfiguration,
                &layer.blob.misconfigurations,
                None,
            ),
            (EntryKind::LicenseFile, &layer.blob.licenses, Some("Type")),
            (
                EntryKind::CustomResource,
                &layer.blob.custom_resources,
                Some("Type"),
            ),
        ] {
            for item in items(list) {
                let sub = sub_key.map_or("", |k| str_field(item, k));
                held.insert(
                    (str_field(item, "FilePath"), Slot::Entry(kind, sub)),
                    (i, Held::Entry(item)),
                );
            }
        }
        for secret in items(&layer.blob.secrets) {
            let findings: Vec<(usize, Value)> = match secret.get("Findings") {
                Some(Value::Array(f)) => f.iter().map(|f| (i, f.clone())).collect(),
                _ => Vec::new(),
            };
            let merged = secrets
                .entry(str_field(secret, "FilePath").to_owned())
                .or_default();
            let rule = |f: &Value| str_field(f, "RuleID").to_owned();
            let newer: Vec<String> = findings.iter().map(|(_, f)| rule(f)).collect();
            let older: Vec<(usize, Value)> = std::mem::take(merged)
                .into_iter()
                .filter(|(_, f)| !newer.contains(&rule(f)))
                .collect();
            *merged = findings;
            merged.extend(older);
        }
        if let Some(layer_os) = layer.blob.os.as_ref().filter(|o| !o.family.is_empty()) {
            os = Some(layer_os.clone());
        }
        if let Some(repo) = &layer.blob.repository {
            repository = Some(repo.clone());
        }
    }
    let report_package = |p: &Package, path: &str, origin: usize| {
        layers.get(origin).map(|layer| ReportPackage {
            package: p.clone(),
            file_path: path.to_owned(),
            layer_diff_id: layer.diff_id.to_owned(),
            layer_digest: layer.digest.map(str::to_owned),
        })
    };
    let mut packages = Vec::new();
    let mut applications = Vec::new();
    let mut entries = Vec::new();
    for ((path, slot), (provider, value)) in held {
        match (slot, value) {
            (Slot::Packages, Held::Packages(pkgs)) => {
                for p in pkgs {
                    let first = first_seen
                        .get(&(path, p.id.as_str()))
                        .copied()
                        .filter(|(o, _)| *o <= provider);
                    let origin = first.map_or(provider, |(o, _)| o);
                    let mut reported = report_package(p, path, origin);
                    // The files are those the installing layer listed (a later layer that
                    // rewrote the database may list none for packages it did not install).
                    if let (Some(r), Some((_, installed))) = (&mut reported, first) {
                        r.package.installed_files = installed.installed_files.clone();
                    }
                    packages.extend(reported);
                }
            }
            (Slot::Application(app_type), Held::Application(app)) => {
                let pkgs = app
                    .packages
                    .iter()
                    .filter_map(|p| {
                        let origin = first_lib
                            .get(&(path, lib_key(p)))
                            .copied()
                            .filter(|o| *o <= provider)
                            .unwrap_or(provider);
                        report_package(p, path, origin)
                    })
                    .collect();
                applications.push(AppliedApplication {
                    app_type: app_type.to_owned(),
                    file_path: path.to_owned(),
                    packages: pkgs,
                });
            }
            (Slot::Entry(kind, _), Held::Entry(v)) => entries.push(AppliedEntry {
                kind,
                layer: provider,
                value: v.clone(),
            }),
            _ => {}
        }
    }
    packages.sort_by(|a, b| {
        let key = |p: &ReportPackage| {
            (
                p.package.name.clone(),
                p.package.id.clone(),
                p.package.arch.clone(),
                p.file_path.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Applied {
        os,
        repository,
        packages,
        applications,
        entries,
        secrets: secrets
            .into_iter()
            .map(|(file_path, findings)| AppliedSecret {
                file_path,
                findings,
            })
            .collect(),
    }
}

/// True when `path` lies inside directory `dir` (`""` is the root).
fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use cache_core::PackageInfo;

    use super::*;

    fn pkg(name: &str, version: &str) -> Package {
        Package {
            id: format!("{name}@{version}"),
            name: name.into(),
            version: version.into(),
            ..Package::default()
        }
    }

    fn blob(dbs: &[(&str, &[Package])]) -> BlobInfo {
        BlobInfo {
            schema_version: 2,
            package_infos: dbs
                .iter()
                .map(|(path, pkgs)| PackageInfo {
                    file_path: (*path).into(),
                    packages: pkgs.to_vec(),
                    ..PackageInfo::default()
                })
                .collect(),
            ..BlobInfo::default()
        }
    }

    /// Applies `blobs` as layers `l0`, `l1`, … and returns `name@version<-layer` lines.
    fn check(blobs: &[BlobInfo], want: &[&str]) {
        let ids: Vec<String> = (0..blobs.len()).map(|i| format!("l{i}")).collect();
        let views: Vec<LayerView<'_>> = blobs
            .iter()
            .zip(&ids)
            .map(|(blob, id)| LayerView {
                diff_id: id,
                digest: None,
                blob,
            })
            .collect();
        let got: Vec<String> = apply_layers(&views)
            .packages
            .iter()
            .map(|p| format!("{}<-{}", p.package.id, p.layer_diff_id))
            .collect();
        assert_eq!(got, want);
    }

    const DPKG: &str = "var/lib/dpkg/status";

    #[test]
    fn later_database_replaces_earlier_and_keeps_origin() {
        let base = blob(&[(DPKG, &[pkg("a", "1"), pkg("b", "1")])]);
        let upgrade = blob(&[(DPKG, &[pkg("a", "1"), pkg("b", "2"), pkg("c", "1")])]);
        check(std::slice::from_ref(&base), &["a@1<-l0", "b@1<-l0"]);
        check(
            &[base, BlobInfo::default(), upgrade],
            &["a@1<-l0", "b@2<-l2", "c@1<-l2"],
        );
    }

    #[test]
    fn empty_database_replaces_earlier() {
        // The later layer rewrote the database with every package removed.
        let base = blob(&[
            (DPKG, &[pkg("a", "1"), pkg("b", "1")]),
            ("lib/apk/db/installed", &[pkg("x", "1")]),
        ]);
        let emptied = blob(&[(DPKG, &[])]);
        check(&[base, emptied], &["x@1<-l0"]);
    }

    #[test]
    fn whiteouts_and_opaque_dirs_remove_databases() {
        let base = blob(&[
            (DPKG, &[pkg("a", "1")]),
            ("lib/apk/db/installed", &[pkg("x", "1")]),
        ]);
        let wh_file = BlobInfo {
            whiteout_files: vec![DPKG.into()],
            ..BlobInfo::default()
        };
        check(&[base.clone(), wh_file], &["x@1<-l0"]);
        let wh_dir = BlobInfo {
            whiteout_files: vec!["var/lib".into()],
            ..BlobInfo::default()
        };
        check(&[base.clone(), wh_dir], &["x@1<-l0"]);
        let opaque = BlobInfo {
            opaque_dirs: vec!["lib/apk/".into()],
            ..BlobInfo::default()
        };
        check(&[base.clone(), opaque], &["a@1<-l0"]);
        // A layer's own files survive its opaque marker.
        let mut opaque_with_db = blob(&[("lib/apk/db/installed", &[pkg("y", "1")])]);
        opaque_with_db.opaque_dirs = vec!["lib/".into()];
        check(&[base.clone(), opaque_with_db], &["a@1<-l0", "y@1<-l1"]);
        // Whiteout of a sibling with a common prefix removes nothing.
        let sibling = BlobInfo {
            whiteout_files: vec!["var/lib/dpkg/status-old".into(), "li".into()],
            ..BlobInfo::default()
        };
        check(&[base, sibling], &["a@1<-l0", "x@1<-l0"]);
    }

    #[test]
    fn later_os_wins() {
        let os = |family: &str, name: &str| BlobInfo {
            os: Some(Os {
                family: family.into(),
                name: name.into(),
                ..Os::default()
            }),
            ..BlobInfo::default()
        };
        let blobs = [
            os("debian", "12.10"),
            BlobInfo::default(),
            os("debian", "12.11"),
        ];
        let views: Vec<LayerView<'_>> = blobs
            .iter()
            .map(|blob| LayerView {
                diff_id: "d",
                digest: None,
                blob,
            })
            .collect();
        assert_eq!(apply_layers(&views).os.unwrap().name, "12.11");
    }

    fn views(blobs: &[BlobInfo]) -> Vec<LayerView<'_>> {
        const IDS: [&str; 4] = ["l0", "l1", "l2", "l3"];
        blobs
            .iter()
            .zip(IDS)
            .map(|(blob, diff_id)| LayerView {
                diff_id,
                digest: None,
                blob,
            })
            .collect()
    }

    fn apps(list: serde_json::Value) -> BlobInfo {
        BlobInfo {
            applications: Some(list),
            ..BlobInfo::default()
        }
    }

    /// `type@path: name@version<-layer` per application.
    fn app_lines(applied: &Applied) -> Vec<String> {
        applied
            .applications
            .iter()
            .map(|a| {
                let pkgs: Vec<String> = a
                    .packages
                    .iter()
                    .map(|p| {
                        format!(
                            "{}@{}<-{}",
                            p.package.name, p.package.version, p.layer_diff_id
                        )
                    })
                    .collect();
                format!("{}@{}: {}", a.app_type, a.file_path, pkgs.join(" "))
            })
            .collect()
    }

    #[test]
    fn applications_follow_the_same_rules_as_package_databases() {
        use serde_json::json;
        let lock = "app/package-lock.json";
        let base = apps(json!([
            {"Type": "npm", "FilePath": lock, "Packages": [{"Name": "a", "Version": "1"}, {"Name": "b", "Version": "1"}]},
            {"Type": "node-pkg", "FilePath": "app/node_modules/x/package.json", "Packages": [{"Name": "x", "Version": "1"}]},
            {"Type": "pip", "FilePath": "srv/requirements.txt", "Packages": null},
        ]));
        // A later lock file at the same path replaces the earlier; a's origin stays l0.
        let upgrade = apps(json!([
            {"Type": "npm", "FilePath": lock, "Packages": [{"Name": "a", "Version": "1"}, {"Name": "b", "Version": "2"}]},
        ]));
        let applied = apply_layers(&views(&[base.clone(), upgrade]));
        assert_eq!(
            app_lines(&applied),
            [
                "node-pkg@app/node_modules/x/package.json: x@1<-l0",
                "npm@app/package-lock.json: a@1<-l0 b@2<-l1",
                "pip@srv/requirements.txt: ",
            ]
        );
        assert_eq!(applied.applications[1].packages[0].file_path, lock);
        // Whiteouts and opaque directories remove them.
        let wh = BlobInfo {
            whiteout_files: vec!["app/node_modules".into()],
            opaque_dirs: vec!["srv/".into()],
            ..BlobInfo::default()
        };
        let applied = apply_layers(&views(&[base.clone(), wh]));
        assert_eq!(
            app_lines(&applied),
            ["npm@app/package-lock.json: a@1<-l0 b@1<-l0"]
        );
        // An item of the wrong shape is left out, the rest kept.
        let bad = apps(json!([{"Type": 7}, {"Type": "gemspec", "FilePath": "g", "Packages": []}]));
        assert_eq!(app_lines(&apply_layers(&views(&[bad]))), ["gemspec@g: "]);
        // OS packages are untouched by applications at the same path.
        let mut both = blob(&[(lock, &[pkg("os", "1")])]);
        both.applications = base.applications.clone();
        let applied = apply_layers(&views(&[both]));
        assert_eq!(applied.packages.len(), 1);
        assert_eq!(applied.applications.len(), 3);
    }

    #[test]
    fn other_path_keyed_results_and_secrets() {
        use serde_json::json;
        let l0 = BlobInfo {
            misconfigurations: Some(json!([{"FileType": "dockerfile", "FilePath": "Dockerfile"}])),
            licenses: Some(json!([
                {"Type": "license-file", "FilePath": "app/LICENSE", "Findings": [{"Name": "MIT"}]},
                {"Type": "dpkg", "FilePath": "usr/share/doc/bash/copyright", "PkgName": "bash"},
            ])),
            custom_resources: Some(json!([{"Type": "c", "FilePath": "etc/c.conf", "Data": 1}])),
            secrets: Some(
                json!([{"FilePath": "/app/.env", "Findings": [{"RuleID": "a", "StartLine": 1}, {"RuleID": "b"}]}]),
            ),
            ..BlobInfo::default()
        };
        let l1 = BlobInfo {
            whiteout_files: vec!["app/LICENSE".into(), "app/.env".into()],
            licenses: Some(
                json!([{"Type": "license-file", "FilePath": "Dockerfile", "Findings": []}]),
            ),
            custom_resources: Some(json!([{"Type": "c", "FilePath": "etc/c.conf", "Data": 2}])),
            secrets: Some(
                json!([{"FilePath": "/app/.env", "Findings": [{"RuleID": "a", "StartLine": 9}]}]),
            ),
            ..BlobInfo::default()
        };
        let applied = apply_layers(&views(&[l0, l1]));
        let entries: Vec<(EntryKind, usize, &str)> = applied
            .entries
            .iter()
            .map(|e| (e.kind, e.layer, str_field(&e.value, "FilePath")))
            .collect();
        assert_eq!(
            entries,
            [
                (EntryKind::Misconfiguration, 0, "Dockerfile"),
                (EntryKind::LicenseFile, 1, "Dockerfile"),
                (EntryKind::CustomResource, 1, "etc/c.conf"),
                (EntryKind::LicenseFile, 0, "usr/share/doc/bash/copyright"),
            ]
        );
        assert_eq!(applied.entries[2].value["Data"], 2);
        // The later layer's finding of rule a replaces the earlier; b stays. Whiteouts do
        // not remove secrets (the reference keeps them too).
        let secret = &applied.secrets[0];
        assert_eq!(secret.file_path, "/app/.env");
        let found: Vec<(usize, &str, i64)> = secret
            .findings
            .iter()
            .map(|(l, f)| {
                (
                    *l,
                    str_field(f, "RuleID"),
                    f["StartLine"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(found, [(1, "a", 9), (0, "b", 0)]);
    }
}
