//! Applying layers in order: whiteouts, opaque directories, package databases and
//! package files that later layers replace, down to the image's final OS, packages and
//! applications, each package with its PURL.
//!
//! The same code serves `scan` and `scancache server`, whose clients also store
//! misconfigurations, license files, custom resources and secrets in their layers:
//! [`apply`] applies those by the same rules, each keyed by the file it came from.

use std::collections::{BTreeMap, HashMap};

use cache_core::{Application, BlobInfo, LicenseFile, Os, Package, PkgIdentifier, Repository};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{
    purl::purl,
    report::{ReportApplication, ReportPackage},
};

/// One layer as the applier sees it.
#[derive(Clone, Copy, Debug)]
pub struct LayerView<'a> {
    /// The layer's diffID.
    pub diff_id: &'a str,
    /// The stored digest in this image's archive, when the format names one.
    pub digest: Option<&'a str>,
    /// The layer's analysis.
    pub blob: &'a BlobInfo,
}

/// The image as its top layer shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// The image's OS, from the highest layer that had one.
    pub os: Option<Os>,
    /// The image's package repository (Alpine).
    pub repository: Option<Repository>,
    /// The installed OS packages, sorted by name, ID, architecture and database path,
    /// each with the layer that installed it (and the files that layer listed), its PURL
    /// (when an OS was detected) and the licenses of its Debian copyright file.
    pub packages: Vec<ReportPackage>,
    /// The language applications: one per package file or lock file, except that the
    /// packages of `python-pkg`, `conda-pkg`, `gemspec`, `node-pkg` and `jar` are each
    /// gathered into one application without a file path, as the reference does.
    pub applications: Vec<ReportApplication>,
    /// Misconfigurations, license files (but Debian copyright files, which became OS
    /// package licenses) and custom resources still in the image, as JSON in the
    /// reference's shape, sorted by path and kind.
    pub entries: Vec<AppliedEntry>,
    /// Secrets per file path, sorted by path.
    pub secrets: Vec<AppliedSecret>,
}

impl Applied {
    /// The OS a report names, as the reference names it: the detected one; else the
    /// package repository's family and release; else, when there are OS packages, the
    /// family `none` without a release (packages of an unknown distribution). `None`
    /// when there is nothing of the kind.
    pub fn reported_os(&self) -> Option<Os> {
        if let Some(os) = &self.os {
            return Some(os.clone());
        }
        if let Some(repo) = &self.repository {
            return Some(Os {
                family: repo.family.clone(),
                name: repo.release.clone(),
                ..Os::default()
            });
        }
        (!self.packages.is_empty()).then(|| Os {
            family: "none".into(),
            ..Os::default()
        })
    }
}

/// Application types whose packages are reported together, one application per type.
pub const AGGREGATED_TYPES: [&str; 5] = ["python-pkg", "conda-pkg", "gemspec", "node-pkg", "jar"];

/// What an [`AppliedEntry`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A `Misconfigurations` item.
    Misconfiguration,
    /// A `Licenses` item (a license file or header).
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
    /// The item as stored (JSON in the reference's shape).
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
    Application(&'a Application),
    License(&'a LicenseFile),
    Entry(&'a Value),
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

/// A language package's identity within its file, as the reference matches it: the
/// file, and the package's name, version and release.
type LibKey<'a> = (&'a str, &'a str, &'a str, &'a str);

fn lib_key<'a>(path: &'a str, p: &'a Package) -> LibKey<'a> {
    (path, &p.name, &p.version, &p.release)
}

/// Applies layers bottom first.
///
/// Each layer first removes what it hides in the layers below (opaque directories, then
/// whiteouts), then adds its own package databases, replacing any database at the same
/// path. A layer's OS replaces the one below. Each remaining package is attributed to the
/// first layer that had the same package (same ID) in a database at the same path, so a
/// package a later layer merely rewrote in place still shows the layer that installed it
/// (and the installed files that layer listed).
///
/// Applications follow the same rules, keyed by file path and type: a later layer's
/// application at the same path replaces the earlier one, and a whiteout removes it (so
/// `pip uninstall` in a later layer removes the package). Each language package is
/// attributed to the first layer whose application at that path had a package of the
/// same name, version and release. Debian copyright licenses (`dpkg` license files) that
/// survive become the licenses of the OS package of that name. Misconfigurations, other
/// license files and custom resources are applied by the same rules, each keyed by its
/// file path (and type); secrets are merged per file across layers (whiteouts do not
/// remove them, as in the reference).
///
/// This is the function a server answering scans calls with the blobs of an image.
pub fn apply(layers: &[LayerView<'_>]) -> Applied {
    let mut held: BTreeMap<(&str, Slot<'_>), (usize, Held<'_>)> = BTreeMap::new();
    let mut first_seen: HashMap<(&str, &str), (usize, &Package)> = HashMap::new();
    let mut first_lib: HashMap<LibKey<'_>, usize> = HashMap::new();
    let mut secrets: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
    let mut os: Option<Os> = None;
    let mut repository = None;
    for (i, layer) in layers.iter().enumerate() {
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
        for app in &layer.blob.applications {
            held.insert(
                (
                    app.file_path.as_str(),
                    Slot::Application(app.app_type.as_str()),
                ),
                (i, Held::Application(app)),
            );
            // With one layer every package is that layer's: nothing to attribute.
            if layers.len() > 1 {
                for p in &app.packages {
                    first_lib.entry(lib_key(&app.file_path, p)).or_insert(i);
                }
            }
        }
        for license in &layer.blob.licenses {
            held.insert(
                (
                    license.file_path.as_str(),
                    Slot::Entry(EntryKind::LicenseFile, license.license_type.as_str()),
                ),
                (i, Held::License(license)),
            );
        }
        for (kind, list, sub_key) in [
            (
                EntryKind::Misconfiguration,
                &layer.blob.misconfigurations,
                None,
            ),
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
    // Debian copyright files' licenses by package name; a later path wins, as in the
    // reference's walk.
    let mut licenses_of: HashMap<&str, Vec<String>> = HashMap::new();
    for ((_, slot), (_, value)) in &held {
        if let (Slot::Entry(EntryKind::LicenseFile, "dpkg"), Held::License(l)) = (slot, value) {
            licenses_of.insert(
                l.pkg_name.as_str(),
                l.findings.iter().map(|f| f.name.clone()).collect(),
            );
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
    let mut apps: Vec<(&str, &str, usize, &Application)> = Vec::new();
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
                    let Some(mut reported) = report_package(p, path, origin) else {
                        continue;
                    };
                    // The files are those the installing layer listed (a later layer that
                    // rewrote the database may list none for packages it did not install).
                    if let Some((_, installed)) = first {
                        reported.package.installed_files = installed.installed_files.clone();
                    }
                    if let Some(names) = licenses_of.get(p.name.as_str()) {
                        reported.package.licenses.clone_from(names);
                    }
                    // A UID always; a PURL only with a detected OS (its family is the
                    // PURL's type and namespace), as the reference applies them.
                    let family = os.as_ref().map_or("", |o| o.family.as_str());
                    identify(&mut reported.package, family, os.as_ref(), "");
                    packages.push(reported);
                }
            }
            (Slot::Application(app_type), Held::Application(app)) => {
                apps.push((path, app_type, provider, app));
            }
            (Slot::Entry(EntryKind::LicenseFile, "dpkg"), Held::License(_)) => {}
            (Slot::Entry(kind, _), Held::License(l)) => entries.push(AppliedEntry {
                kind,
                layer: provider,
                value: serde_json::to_value(l).unwrap_or(Value::Null),
            }),
            (Slot::Entry(kind, _), Held::Entry(v)) => entries.push(AppliedEntry {
                kind,
                layer: provider,
                value: v.clone(),
            }),
            _ => {}
        }
    }
    let applications = applications(layers, &apps, &first_lib);
    packages.sort_by(|a, b| os_order(a).cmp(&os_order(b)));
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

/// The surviving applications (`(path, type, providing layer, application)`, sorted by
/// path and type) with each package's layer and PURL, aggregated types merged, sorted by
/// type and path.
fn applications(
    layers: &[LayerView<'_>],
    apps: &[(&str, &str, usize, &Application)],
    first_lib: &HashMap<LibKey<'_>, usize>,
) -> Vec<ReportApplication> {
    let mut out: Vec<ReportApplication> = Vec::new();
    let mut aggregated: BTreeMap<&str, Vec<ReportPackage>> = BTreeMap::new();
    for &(path, app_type, provider, app) in apps {
        let mut pkgs = Vec::with_capacity(app.packages.len());
        for p in &app.packages {
            let origin = first_lib
                .get(&lib_key(path, p))
                .copied()
                .filter(|o| *o <= provider)
                .unwrap_or(provider);
            let Some(layer) = layers.get(origin) else {
                continue;
            };
            let mut package = p.clone();
            identify(&mut package, app_type, None, path);
            pkgs.push(ReportPackage {
                package,
                file_path: path.to_owned(),
                layer_diff_id: layer.diff_id.to_owned(),
                layer_digest: layer.digest.map(str::to_owned),
            });
        }
        if AGGREGATED_TYPES.contains(&app_type) {
            aggregated.entry(app_type).or_default().extend(pkgs);
        } else if !pkgs.is_empty() {
            out.push(ReportApplication {
                app_type: app_type.to_owned(),
                file_path: path.to_owned(),
                packages: pkgs,
            });
        }
    }
    for (app_type, pkgs) in aggregated {
        if !pkgs.is_empty() {
            out.push(ReportApplication {
                app_type: app_type.to_owned(),
                file_path: String::new(),
                packages: pkgs,
            });
        }
    }
    for app in &mut out {
        app.packages.sort_by(|a, b| lib_order(a).cmp(&lib_order(b)));
    }
    out.sort_by(|a, b| (&a.app_type, &a.file_path).cmp(&(&b.app_type, &b.file_path)));
    out
}

/// Sets the package's PURL (unless it has one, or `result_type` is empty: OS packages
/// without a detected OS) and a UID: the first 16 hex digits of a SHA-256 over the
/// application's path and the package's ID, name, version, release, arch and file path —
/// scancache's own, stable for the same package in the same place.
fn identify(package: &mut Package, result_type: &str, os: Option<&Os>, app_path: &str) {
    let mut id = package.identifier.take().unwrap_or_default();
    if id.purl.is_empty() && !result_type.is_empty() {
        id.purl = purl(result_type, os, package).unwrap_or_default();
    }
    if id.uid.is_empty() {
        let mut h = Sha256::new();
        for part in [
            app_path,
            &package.id,
            &package.name,
            &package.version,
            &package.release,
            &package.arch,
            &package.file_path,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        id.uid = hex::encode(h.finalize().get(..8).unwrap_or_default());
    }
    package.identifier = (!PkgIdentifier::is_empty(&id)).then_some(id);
}

/// The order of OS packages: name, ID, architecture, database path.
fn os_order(p: &ReportPackage) -> (&str, &str, &str, &str) {
    (
        &p.package.name,
        &p.package.id,
        &p.package.arch,
        &p.file_path,
    )
}

/// The order of an application's packages: relationship (root, workspace, direct,
/// indirect, unknown), name, version, ID, the package's file, the application's file.
fn lib_order(p: &ReportPackage) -> (u8, &str, &str, &str, &str, &str) {
    let rank = match p.package.relationship.as_str() {
        "root" => 1,
        "workspace" => 2,
        "direct" => 3,
        "indirect" => 4,
        _ => 5,
    };
    (
        rank,
        &p.package.name,
        &p.package.version,
        &p.package.id,
        &p.package.file_path,
        &p.file_path,
    )
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
        let got: Vec<String> = apply(&views)
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
        assert_eq!(apply(&views).os.unwrap().name, "12.11");
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
            applications: serde_json::from_value(list).unwrap(),
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
        let applied = apply(&views(&[base.clone(), upgrade]));
        // Package files of node-pkg are gathered into one application; a lock file
        // without packages gives none.
        assert_eq!(
            app_lines(&applied),
            [
                "node-pkg@: x@1<-l0",
                "npm@app/package-lock.json: a@1<-l0 b@2<-l1",
            ]
        );
        assert_eq!(applied.applications[1].packages[0].file_path, lock);
        let purls: Vec<&str> = applied.applications[1]
            .packages
            .iter()
            .filter_map(|p| p.package.identifier.as_ref())
            .map(|i| i.purl.as_str())
            .collect();
        assert_eq!(purls, ["pkg:npm/a@1", "pkg:npm/b@2"]);
        // Whiteouts and opaque directories remove them.
        let wh = BlobInfo {
            whiteout_files: vec!["app/node_modules".into()],
            opaque_dirs: vec!["srv/".into()],
            ..BlobInfo::default()
        };
        let applied = apply(&views(&[base.clone(), wh]));
        assert_eq!(
            app_lines(&applied),
            ["npm@app/package-lock.json: a@1<-l0 b@1<-l0"]
        );
        // OS packages are untouched by applications at the same path.
        let mut both = blob(&[(lock, &[pkg("os", "1")])]);
        both.applications = base.applications.clone();
        let applied = apply(&views(&[both]));
        assert_eq!(applied.packages.len(), 1);
        assert_eq!(applied.applications.len(), 2);
    }

    #[test]
    fn other_path_keyed_results_and_secrets() {
        use serde_json::json;
        let mut l0 = BlobInfo {
            misconfigurations: Some(json!([{"FileType": "dockerfile", "FilePath": "Dockerfile"}])),
            licenses: serde_json::from_value(json!([
                {"Type": "license-file", "FilePath": "app/LICENSE", "Findings": [{"Name": "MIT"}]},
                {"Type": "dpkg", "FilePath": "usr/share/doc/bash/copyright", "PkgName": "bash",
                 "Findings": [{"Name": "GPL-3.0-or-later"}]},
            ]))
            .unwrap(),
            custom_resources: Some(json!([{"Type": "c", "FilePath": "etc/c.conf", "Data": 1}])),
            secrets: Some(
                json!([{"FilePath": "/app/.env", "Findings": [{"RuleID": "a", "StartLine": 1}, {"RuleID": "b"}]}]),
            ),
            ..BlobInfo::default()
        };
        let l1 = BlobInfo {
            whiteout_files: vec!["app/LICENSE".into(), "app/.env".into()],
            licenses: serde_json::from_value(json!([
                {"Type": "license-file", "FilePath": "Dockerfile", "Findings": []}
            ]))
            .unwrap(),
            custom_resources: Some(json!([{"Type": "c", "FilePath": "etc/c.conf", "Data": 2}])),
            secrets: Some(
                json!([{"FilePath": "/app/.env", "Findings": [{"RuleID": "a", "StartLine": 9}]}]),
            ),
            ..BlobInfo::default()
        };
        l0.package_infos = blob(&[(DPKG, &[pkg("bash", "5.2")])]).package_infos;
        let applied = apply(&views(&[l0, l1]));
        // The Debian copyright file became the licenses of the package of that name.
        assert_eq!(applied.packages[0].package.licenses, ["GPL-3.0-or-later"]);
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
