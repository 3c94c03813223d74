//! `nuget`: `packages.lock.json`, every resolved package of every target framework
//! except the project's own (`"type": "Project"`).

use std::collections::BTreeMap;

use cache_core::Package;
use serde::Deserialize;

use super::{Skip, package};
use crate::analyser::lang::json;

#[derive(Deserialize)]
struct Lock {
    #[serde(default, deserialize_with = "json::nullable")]
    dependencies: BTreeMap<String, BTreeMap<String, Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default, rename = "type", deserialize_with = "json::nullable")]
    kind: String,
    #[serde(default, deserialize_with = "json::nullable")]
    resolved: String,
    #[serde(default, deserialize_with = "json::nullable")]
    dependencies: BTreeMap<String, String>,
}

/// The resolved packages, once each.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let lock: Lock = json::first(bytes)?;
    let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
    for target in lock.dependencies.values() {
        for (name, e) in target {
            if e.kind == "Project" {
                continue;
            }
            let mut p = package(name, &e.resolved);
            p.relationship = if e.kind == "Direct" {
                "direct"
            } else {
                "indirect"
            }
            .into();
            let mut on: Vec<String> = e
                .dependencies
                .keys()
                .map(|d| {
                    let v = target.get(d).map_or("", |t| t.resolved.as_str());
                    format!("{d}@{v}")
                })
                .collect();
            let entry = pkgs.entry(p.id.clone()).or_insert(p);
            on.append(&mut entry.depends_on);
            on.sort();
            on.dedup();
            entry.depends_on = on;
        }
    }
    Ok(pkgs.into_values().collect())
}
