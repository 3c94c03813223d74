//! Applying layers in order: whiteouts, opaque directories, package databases and
//! package files that later layers replace, down to the image's final OS, packages and
//! applications, each package with its PURL.

use std::collections::{BTreeMap, HashMap};

use cache_core::{Application, BlobInfo, Os, Package, PkgIdentifier, Repository};
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
    /// The installed OS packages, each with its PURL (when an OS was detected).
    pub packages: Vec<ReportPackage>,
    /// The language applications: one per package file or lock file, except that the
    /// packages of `python-pkg`, `conda-pkg`, `gemspec`, `node-pkg` and `jar` are each
    /// gathered into one application without a file path, as the reference does.
    pub applications: Vec<ReportApplication>,
}

/// Application types whose packages are reported together, one application per type.
pub const AGGREGATED_TYPES: [&str; 5] = ["python-pkg", "conda-pkg", "gemspec", "node-pkg", "jar"];

/// Applies layers bottom first.
///
/// Each layer first removes what it hides in the layers below (opaque directories, then
/// whiteouts), then adds its own package databases, replacing any database at the same
/// path. A layer's OS replaces the one below. Each remaining package is attributed to the
/// first layer that had the same package (same ID) in a database at the same path, so a
/// package a later layer merely rewrote in place still shows the layer that installed it.
///
/// Applications follow the same rules, keyed by file path and type: a later layer's
/// application at the same path replaces the earlier one, and a whiteout removes it (so
/// `pip uninstall` in a later layer removes the package). Each language package is
/// attributed to the first layer whose application at that path had a package of the
/// same name, version and release. Debian copyright licenses (`dpkg` license files) that
/// survive become the licenses of the OS package of that name.
///
/// This is the function a server answering scans calls with the blobs of an image.
pub fn apply(layers: &[LayerView<'_>]) -> Applied {
    let mut dbs: BTreeMap<&str, (usize, &[Package])> = BTreeMap::new();
    let mut apps: BTreeMap<(&str, &str), (usize, &Application)> = BTreeMap::new();
    let mut dpkg_licenses: BTreeMap<&str, &cache_core::LicenseFile> = BTreeMap::new();
    let mut first_seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut os: Option<Os> = None;
    let mut repository = None;
    for (i, layer) in layers.iter().enumerate() {
        for dir in &layer.blob.opaque_dirs {
            let dir = dir.trim_end_matches('/');
            dbs.retain(|path, _| !is_under(path, dir));
            apps.retain(|(path, _), _| !is_under(path, dir));
            dpkg_licenses.retain(|path, _| !is_under(path, dir));
        }
        for deleted in &layer.blob.whiteout_files {
            let deleted = deleted.trim_end_matches('/');
            let gone = |path: &str| path == deleted || is_under(path, deleted);
            dbs.retain(|path, _| !gone(path));
            apps.retain(|(path, _), _| !gone(path));
            dpkg_licenses.retain(|path, _| !gone(path));
        }
        for app in &layer.blob.applications {
            apps.insert((app.file_path.as_str(), app.app_type.as_str()), (i, app));
        }
        for license in &layer.blob.licenses {
            if license.license_type == "dpkg" {
                dpkg_licenses.insert(license.file_path.as_str(), license);
            }
        }
        for info in &layer.blob.package_infos {
            dbs.insert(info.file_path.as_str(), (i, info.packages.as_slice()));
            for p in &info.packages {
                first_seen
                    .entry((info.file_path.as_str(), p.id.as_str()))
                    .or_insert(i);
            }
        }
        if let Some(layer_os) = layer.blob.os.as_ref().filter(|o| !o.family.is_empty()) {
            os = Some(layer_os.clone());
        }
        if let Some(repo) = &layer.blob.repository {
            repository = Some(repo.clone());
        }
    }
    // By package name; a later path wins, as in the reference's walk.
    let licenses_of: HashMap<&str, Vec<String>> = dpkg_licenses
        .values()
        .map(|l| {
            (
                l.pkg_name.as_str(),
                l.findings.iter().map(|f| f.name.clone()).collect(),
            )
        })
        .collect();
    let mut packages = Vec::new();
    for (path, (provider, pkgs)) in dbs {
        for p in pkgs {
            let origin = first_seen
                .get(&(path, p.id.as_str()))
                .copied()
                .filter(|o| *o <= provider)
                .unwrap_or(provider);
            let Some(layer) = layers.get(origin) else {
                continue;
            };
            let mut package = p.clone();
            if let Some(names) = licenses_of.get(p.name.as_str())
                && p.analyzed_by == "dpkg"
            {
                package.licenses.clone_from(names);
            }
            if let Some(os) = os.as_ref() {
                identify(&mut package, &os.family, Some(os), "");
            }
            packages.push(ReportPackage {
                package,
                file_path: path.to_owned(),
                layer_diff_id: layer.diff_id.to_owned(),
                layer_digest: layer.digest.map(str::to_owned),
            });
        }
    }
    let applications = applications(layers, &apps);
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
    }
}

/// The surviving applications with each package's layer and PURL, aggregated types
/// merged, sorted by type and path.
fn applications(
    layers: &[LayerView<'_>],
    apps: &BTreeMap<(&str, &str), (usize, &Application)>,
) -> Vec<ReportApplication> {
    let mut out: Vec<ReportApplication> = Vec::new();
    let mut aggregated: BTreeMap<&str, Vec<ReportPackage>> = BTreeMap::new();
    for (&(path, app_type), &(provider, app)) in apps {
        let mut pkgs = Vec::new();
        for p in &app.packages {
            let origin = layers
                .iter()
                .take(provider + 1)
                .position(|l| {
                    l.blob.applications.iter().any(|a| {
                        a.file_path == path
                            && a.packages.iter().any(|q| {
                                q.name == p.name && q.version == p.version && q.release == p.release
                            })
                    })
                })
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
        let rank = |r: &str| match r {
            "root" => 1,
            "workspace" => 2,
            "direct" => 3,
            "indirect" => 4,
            _ => 5,
        };
        app.packages.sort_by(|a, b| {
            let key = |p: &ReportPackage| {
                (
                    rank(&p.package.relationship),
                    p.package.name.clone(),
                    p.package.version.clone(),
                    p.package.id.clone(),
                    p.package.file_path.clone(),
                    p.file_path.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
    }
    out.sort_by(|a, b| (&a.app_type, &a.file_path).cmp(&(&b.app_type, &b.file_path)));
    out
}

/// Sets the package's PURL (unless it has one) and a UID: the first 16 hex digits of a
/// SHA-256 over the application's path and the package's ID, name, version, release,
/// arch and file path — scancache's own, stable for the same package in the same place.
fn identify(package: &mut Package, result_type: &str, os: Option<&Os>, app_path: &str) {
    let mut id = package.identifier.take().unwrap_or_default();
    if id.purl.is_empty() {
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
}
