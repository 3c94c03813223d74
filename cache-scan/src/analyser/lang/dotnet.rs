//! `dotnet-core`: a .NET `*.deps.json`, as the reference reads it.
//!
//! The libraries of type `package`, `project` or `runtimepack` (its `runtimepack.`
//! prefix dropped) are the packages, `NAME/VERSION` their IDs. When the file's
//! `runtimeTarget` names one of its `targets`, only libraries with runtime assets there
//! (`runtime`, `runtimeTargets` or `native`) or missing from it count, the one project no
//! other library depends on is the `root` (other projects `workspace`), the root's
//! dependencies `direct` and the rest `indirect`, and `DependsOn` comes from the target.

use std::collections::{BTreeMap, HashMap, HashSet};

use cache_core::Package;
use serde::Deserialize;
use serde_json::Value;

use super::{Skip, json, sort_packages};

const RUNTIME_PACK: &str = "runtimepack.";

#[derive(Deserialize)]
struct Deps {
    #[serde(default, deserialize_with = "json::nullable")]
    libraries: BTreeMap<String, Library>,
    #[serde(default, rename = "runtimeTarget", deserialize_with = "json::nullable")]
    runtime_target: RuntimeTarget,
    #[serde(default, deserialize_with = "json::nullable")]
    targets: BTreeMap<String, Option<BTreeMap<String, TargetLib>>>,
}

#[derive(Default, Deserialize)]
struct RuntimeTarget {
    #[serde(default, deserialize_with = "json::nullable")]
    name: String,
}

#[derive(Deserialize)]
struct Library {
    #[serde(default, rename = "type", deserialize_with = "json::nullable")]
    kind: String,
}

#[derive(Default, Deserialize)]
struct TargetLib {
    #[serde(default, deserialize_with = "json::nullable")]
    dependencies: BTreeMap<String, String>,
    #[serde(default)]
    runtime: Value,
    #[serde(default, rename = "runtimeTargets")]
    runtime_targets: Value,
    #[serde(default)]
    native: Value,
}

fn id(name: &str, version: &str) -> String {
    let name = name.strip_prefix(RUNTIME_PACK).unwrap_or(name);
    if version.is_empty() {
        name.to_owned()
    } else {
        format!("{name}/{version}")
    }
}

/// The packages of a deps file, sorted.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let deps: Deps = json::first(bytes)?;
    let found = deps.targets.get(&deps.runtime_target.name);
    let target = found.map(|t| t.iter().flatten());
    let libs: HashMap<String, &TargetLib> = target
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let (n, ver) = k.split_once('/').unwrap_or((k, ""));
            (id(n, ver), v)
        })
        .collect();
    let target = found.map(|_| ());
    let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
    let mut projects = Vec::new();
    for (name_version, lib) in &deps.libraries {
        let Some((name, version)) = name_version.split_once('/') else {
            continue;
        };
        let kind = lib.kind.to_ascii_lowercase();
        if !matches!(kind.as_str(), "package" | "project" | "runtimepack") {
            continue;
        }
        let name = name.strip_prefix(RUNTIME_PACK).unwrap_or(name);
        let pkg_id = id(name, version);
        if target.is_some()
            && libs.get(&pkg_id).is_some_and(|l| {
                l.runtime.is_null() && l.runtime_targets.is_null() && l.native.is_null()
            })
        {
            continue;
        }
        if kind == "project" {
            projects.push(pkg_id.clone());
        }
        pkgs.insert(
            pkg_id.clone(),
            Package {
                id: pkg_id,
                name: name.to_owned(),
                version: version.to_owned(),
                ..Package::default()
            },
        );
    }
    if target.is_some() {
        let referenced: HashSet<String> = libs
            .values()
            .flat_map(|l| l.dependencies.iter().map(|(n, v)| id(n, v)))
            .collect();
        let roots: Vec<&String> = projects
            .iter()
            .filter(|p| !referenced.contains(*p))
            .collect();
        let root = (roots.len() == 1).then(|| roots[0].clone());
        if let Some(root) = &root {
            for project in &projects {
                if let Some(p) = pkgs.get_mut(project) {
                    p.relationship = if project == root { "root" } else { "workspace" }.into();
                }
            }
        }
        let direct: Vec<String> = root
            .as_ref()
            .and_then(|r| libs.get(r))
            .map(|l| l.dependencies.iter().map(|(n, v)| id(n, v)).collect())
            .unwrap_or_default();
        let known: HashSet<String> = pkgs.keys().cloned().collect();
        for (pkg_id, p) in &mut pkgs {
            if !direct.is_empty() && p.relationship.is_empty() {
                p.relationship = if direct.contains(pkg_id) {
                    "direct"
                } else {
                    "indirect"
                }
                .into();
                p.indirect = p.relationship == "indirect";
            }
            if let Some(l) = libs.get(pkg_id) {
                let mut on: Vec<String> = l
                    .dependencies
                    .iter()
                    .map(|(n, v)| id(n, v))
                    .filter(|d| known.contains(d))
                    .collect();
                on.sort();
                p.depends_on = on;
            }
        }
    }
    let mut out: Vec<Package> = pkgs.into_values().collect();
    sort_packages(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deps_json() {
        let json = br#"{"runtimeTarget":{"name":".NETCoreApp,Version=v6.0"},"targets":{".NETCoreApp,Version=v6.0":{"my/1.0.0":{"dependencies":{"Newtonsoft.Json":"13.0.1"},"runtime":{"my.dll":{}}},"Newtonsoft.Json/13.0.1":{"runtime":{"lib/Newtonsoft.Json.dll":{}}},"Build.Only/1.0.0":{}}},"libraries":{"my/1.0.0":{"type":"project"},"Newtonsoft.Json/13.0.1":{"type":"package"},"Build.Only/1.0.0":{"type":"package"},"Ref/1.0":{"type":"reference"}}}"#;
        let p = parse(json).unwrap();
        let got: Vec<(&str, &str, &[String])> = p
            .iter()
            .map(|p| {
                (
                    p.id.as_str(),
                    p.relationship.as_str(),
                    p.depends_on.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "my/1.0.0",
                    "root",
                    &["Newtonsoft.Json/13.0.1".to_owned()][..]
                ),
                ("Newtonsoft.Json/13.0.1", "direct", &[][..])
            ]
        );
    }
}
