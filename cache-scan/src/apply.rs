//! Applying layers in order: whiteouts, opaque directories and package databases that
//! later layers replace, down to the image's final OS and package list.

use std::collections::{BTreeMap, HashMap};

use cache_core::{BlobInfo, Os, Package, Repository};

use crate::report::ReportPackage;

/// One layer as the applier sees it.
pub(crate) struct LayerView<'a> {
    pub(crate) diff_id: &'a str,
    /// The stored digest in this image's archive, when the format names one.
    pub(crate) digest: Option<&'a str>,
    pub(crate) blob: &'a BlobInfo,
}

/// The image as its top layer shows it.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub(crate) os: Option<Os>,
    pub(crate) repository: Option<Repository>,
    pub(crate) packages: Vec<ReportPackage>,
}

/// Applies layers bottom first.
///
/// Each layer first removes what it hides in the layers below (opaque directories, then
/// whiteouts), then adds its own package databases, replacing any database at the same
/// path. A layer's OS replaces the one below. Each remaining package is attributed to the
/// first layer that had the same package (same ID) in a database at the same path, so a
/// package a later layer merely rewrote in place still shows the layer that installed it.
pub(crate) fn apply(layers: &[LayerView<'_>]) -> Applied {
    let mut dbs: BTreeMap<&str, (usize, &[Package])> = BTreeMap::new();
    let mut first_seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut os: Option<Os> = None;
    let mut repository = None;
    for (i, layer) in layers.iter().enumerate() {
        for dir in &layer.blob.opaque_dirs {
            let dir = dir.trim_end_matches('/');
            dbs.retain(|path, _| !is_under(path, dir));
        }
        for deleted in &layer.blob.whiteout_files {
            let deleted = deleted.trim_end_matches('/');
            dbs.retain(|path, _| *path != deleted && !is_under(path, deleted));
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
            packages.push(ReportPackage {
                package: p.clone(),
                file_path: path.to_owned(),
                layer_diff_id: layer.diff_id.to_owned(),
                layer_digest: layer.digest.map(str::to_owned),
            });
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
