//! `npm`: `package-lock.json`. Version 1 lists nested `dependencies`; versions 2 and 3
//! list `packages` by their `node_modules/…` path (the root `""` entry is the project
//! itself and not a package; links are resolved to their targets). `dev` marks
//! development packages; a package found several times is a development one only if
//! every copy is.

use std::collections::{BTreeMap, HashMap};

use cache_core::Package;
use serde::Deserialize;

use super::{Skip, package};
use crate::analyser::lang::json;

#[derive(Deserialize)]
struct Lock {
    #[serde(
        default,
        rename = "lockfileVersion",
        deserialize_with = "json::nullable"
    )]
    lockfile_version: i64,
    #[serde(default, deserialize_with = "json::nullable")]
    dependencies: BTreeMap<String, V1>,
    #[serde(default, deserialize_with = "json::nullable")]
    packages: BTreeMap<String, V2>,
}

#[derive(Deserialize)]
struct V1 {
    #[serde(default, deserialize_with = "json::nullable")]
    version: String,
    #[serde(default, deserialize_with = "json::nullable")]
    dev: bool,
    #[serde(default, deserialize_with = "json::nullable")]
    dependencies: BTreeMap<String, V1>,
}

#[derive(Clone, Deserialize)]
struct V2 {
    #[serde(default, deserialize_with = "json::nullable")]
    name: String,
    #[serde(default, deserialize_with = "json::nullable")]
    version: String,
    #[serde(default, deserialize_with = "json::nullable")]
    dev: bool,
    #[serde(default, deserialize_with = "json::nullable")]
    link: bool,
    #[serde(default, deserialize_with = "json::nullable")]
    resolved: String,
    #[serde(default, deserialize_with = "json::nullable")]
    dependencies: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "optionalDependencies",
        deserialize_with = "json::nullable"
    )]
    optional_dependencies: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "devDependencies",
        deserialize_with = "json::nullable"
    )]
    dev_dependencies: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "peerDependencies",
        deserialize_with = "json::nullable"
    )]
    peer_dependencies: BTreeMap<String, String>,
}

/// The locked packages, once per name and version.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let lock: Lock = json::first(bytes)?;
    let mut out: BTreeMap<String, Package> = BTreeMap::new();
    if lock.lockfile_version == 1 {
        v1(&lock.dependencies, &mut out, 0);
    } else {
        v2(lock.packages, &mut out);
    }
    Ok(out.into_values().collect())
}

/// Nested version-1 entries, at most 64 levels deep.
fn v1(deps: &BTreeMap<String, V1>, out: &mut BTreeMap<String, Package>, depth: usize) {
    if depth > 64 {
        return;
    }
    for (name, d) in deps {
        let mut p = package(name, &d.version);
        p.dev = d.dev;
        merge(out, p);
        v1(&d.dependencies, out, depth + 1);
    }
}

fn merge(out: &mut BTreeMap<String, Package>, p: Package) {
    match out.get_mut(&p.id) {
        Some(saved) => {
            saved.dev = saved.dev && p.dev;
            if saved.relationship == "indirect" && p.relationship == "direct" {
                saved.relationship = "direct".into();
            }
        }
        None => {
            out.insert(p.id.clone(), p);
        }
    }
}

fn v2(mut packages: BTreeMap<String, V2>, out: &mut BTreeMap<String, Package>) {
    resolve_links(&mut packages);
    let root = packages.get("").cloned();
    let direct: Vec<String> = root
        .iter()
        .flat_map(|r| {
            r.dependencies
                .keys()
                .chain(r.optional_dependencies.keys())
                .chain(r.dev_dependencies.keys())
                .chain(r.peer_dependencies.keys())
        })
        .map(|n| format!("node_modules/{n}"))
        .filter(|p| packages.contains_key(p))
        .collect();
    let versions: HashMap<&str, &str> = packages
        .iter()
        .map(|(k, v)| (k.as_str(), v.version.as_str()))
        .collect();
    for (path, pkg) in &packages {
        if !path.starts_with("node_modules") {
            continue;
        }
        let name = if pkg.name.is_empty() {
            name_from_path(path)
        } else {
            pkg.name.as_str()
        };
        let mut p = package(name, &pkg.version);
        p.dev = pkg.dev;
        p.relationship = if direct.iter().any(|d| d == path) {
            "direct"
        } else {
            "indirect"
        }
        .into();
        let mut on: Vec<String> = pkg
            .dependencies
            .keys()
            .chain(pkg.optional_dependencies.keys())
            .chain(pkg.peer_dependencies.keys())
            .filter_map(|dep| find(path, dep, &versions).map(|v| format!("{dep}@{v}")))
            .collect();
        on.sort();
        on.dedup();
        p.depends_on = on;
        merge(out, p);
    }
}

/// The version of `dep` as seen from the package at `path`: the nearest
/// `node_modules/dep` up the tree.
fn find<'a>(path: &str, dep: &str, versions: &HashMap<&str, &'a str>) -> Option<&'a str> {
    let full = format!("{path}/node_modules");
    let segs: Vec<&str> = full.split('/').collect();
    (0..segs.len()).rev().find_map(|i| {
        if segs.get(i) != Some(&"node_modules") {
            return None;
        }
        let prefix = segs.get(..=i)?.join("/");
        versions.get(format!("{prefix}/{dep}").as_str()).copied()
    })
}

/// The package name of a `node_modules/…` path: what follows its last `node_modules/`.
fn name_from_path(path: &str) -> &str {
    path.rfind("node_modules/")
        .and_then(|i| path.get(i + "node_modules/".len()..))
        .unwrap_or(path)
}

/// Moves the targets of links (`"link": true`, `resolved` naming the target's path) to
/// the link's `node_modules` path; a link without a target is dropped.
fn resolve_links(packages: &mut BTreeMap<String, V2>) {
    let links: Vec<(String, String)> = packages
        .iter()
        .filter(|(_, p)| p.link)
        .map(|(k, p)| (k.clone(), p.resolved.clone()))
        .collect();
    for (link, target) in links {
        packages.remove(&link);
        if target.is_empty() {
            continue;
        }
        let moved: Vec<String> = packages
            .keys()
            .filter(|k| k.starts_with(&target))
            .cloned()
            .collect();
        for from in moved {
            if let Some(pkg) = packages.remove(&from) {
                packages.insert(from.replacen(&target, &link, 1), pkg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v3() {
        let v1 = br#"{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dependencies":{"b":{"version":"2.0.0","dev":true}}},"b":{"version":"3.0.0"}}}"#;
        let got: Vec<(String, bool)> = parse(v1)
            .unwrap()
            .into_iter()
            .map(|p| (p.id, p.dev))
            .collect();
        assert_eq!(
            got,
            [
                ("a@1.0.0".into(), false),
                ("b@2.0.0".into(), true),
                ("b@3.0.0".into(), false)
            ]
        );
        let v3 = br#"{"lockfileVersion":3,"packages":{"":{"name":"app","dependencies":{"a":"^1"}},"node_modules/a":{"version":"1.0.0","dependencies":{"b":"*"}},"node_modules/a/node_modules/b":{"version":"2.0.0"},"node_modules/b":{"version":"3.0.0","dev":true},"node_modules/@s/c":{"version":"4.0.0"}}}"#;
        let pkgs = parse(v3).unwrap();
        let got: Vec<(&str, &str, bool)> = pkgs
            .iter()
            .map(|p| (p.id.as_str(), p.relationship.as_str(), p.dev))
            .collect();
        assert_eq!(
            got,
            [
                ("@s/c@4.0.0", "indirect", false),
                ("a@1.0.0", "direct", false),
                ("b@2.0.0", "indirect", false),
                ("b@3.0.0", "indirect", true)
            ]
        );
        assert_eq!(pkgs[1].depends_on, ["b@2.0.0"]);
    }
}
