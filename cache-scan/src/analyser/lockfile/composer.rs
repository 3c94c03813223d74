//! `composer`: `composer.lock` (`packages`, then `packages-dev` marked as development
//! packages; a package in both is a production one). A package's `DependsOn` lists
//! the locked packages its `require` names.

use std::collections::{BTreeMap, HashMap};

use cache_core::Package;
use serde::Deserialize;
use serde_json::Value;

use super::{Skip, package};
use crate::analyser::{lang::json, license};

#[derive(Deserialize)]
struct Lock {
    #[serde(default, deserialize_with = "json::nullable")]
    packages: Vec<Entry>,
    #[serde(default, rename = "packages-dev", deserialize_with = "json::nullable")]
    packages_dev: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default, deserialize_with = "json::nullable")]
    name: String,
    #[serde(default, deserialize_with = "json::nullable")]
    version: String,
    #[serde(default, deserialize_with = "json::nullable")]
    require: BTreeMap<String, String>,
    #[serde(default)]
    license: Value,
}

/// The locked packages.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let lock: Lock = json::first(bytes)?;
    let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
    let mut requires: HashMap<String, Vec<String>> = HashMap::new();
    for (entries, dev) in [(lock.packages, false), (lock.packages_dev, true)] {
        for e in entries {
            if pkgs.contains_key(&e.name) {
                continue;
            }
            let mut p = package(&e.name, &e.version);
            p.dev = dev;
            p.licenses = match &e.license {
                Value::String(s) => license::names(s),
                Value::Array(items) => license::normalize_all(
                    items.iter().filter_map(|v| v.as_str().map(str::to_owned)),
                ),
                _ => Vec::new(),
            };
            requires.insert(e.name.clone(), e.require.into_keys().collect());
            pkgs.insert(e.name, p);
        }
    }
    let ids: HashMap<String, String> = pkgs
        .iter()
        .map(|(n, p)| (n.clone(), p.id.clone()))
        .collect();
    for (name, p) in &mut pkgs {
        let mut on: Vec<String> = requires
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|r| ids.get(r).cloned())
            .collect();
        on.sort();
        p.depends_on = on;
    }
    Ok(pkgs.into_values().collect())
}
