//! `composer-vendor`: Composer's `vendor/composer/installed.json` (`packages` and
//! `packages-dev`), as the reference reads it. A package's `DependsOn` lists the
//! installed packages its `require` names (not `php` or names starting with `ext`);
//! packages carry no file path of their own (the application's path is the file's).

use std::collections::{BTreeMap, HashMap};

use cache_core::Package;
use serde::Deserialize;
use serde_json::Value;

use super::{Skip, json, sort_packages};
use crate::analyser::license;

#[derive(Deserialize)]
struct Installed {
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

/// The installed packages, sorted.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let installed: Installed = json::first(bytes)?;
    let mut pkgs: HashMap<String, Package> = HashMap::new();
    let mut requires: Vec<(String, Vec<String>)> = Vec::new();
    for (entries, dev) in [(installed.packages, false), (installed.packages_dev, true)] {
        for e in entries {
            if pkgs.contains_key(&e.name) {
                continue;
            }
            let id = if e.version.is_empty() {
                e.name.clone()
            } else {
                format!("{}@{}", e.name, e.version)
            };
            let deps: Vec<String> = e
                .require
                .into_keys()
                .filter(|d| d != "php" && !d.starts_with("ext"))
                .collect();
            if !deps.is_empty() {
                requires.push((e.name.clone(), deps));
            }
            let licenses = match &e.license {
                Value::String(s) => license::names(s),
                Value::Array(items) => license::normalize_all(
                    items.iter().filter_map(|l| l.as_str().map(str::to_owned)),
                ),
                _ => Vec::new(),
            };
            pkgs.insert(
                e.name.clone(),
                Package {
                    id,
                    name: e.name,
                    version: e.version,
                    licenses,
                    dev,
                    ..Package::default()
                },
            );
        }
    }
    for (name, deps) in requires {
        let mut ids: Vec<String> = deps
            .iter()
            .filter_map(|d| pkgs.get(d).map(|p| p.id.clone()))
            .collect();
        ids.sort();
        if let Some(p) = pkgs.get_mut(&name) {
            p.depends_on = ids;
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
    fn installed_json() {
        let json = br#"{"packages":[{"name":"monolog/monolog","version":"2.9.1","license":["MIT"],"require":{"php":">=7.2","ext-json":"*","psr/log":"^1"}},{"name":"psr/log","version":"1.1.4","license":"MIT"}],"dev":true}"#;
        let p = parse(json).unwrap();
        assert_eq!(p[0].id, "monolog/monolog@2.9.1");
        assert_eq!(p[0].depends_on, ["psr/log@1.1.4"]);
        assert_eq!(p[1].licenses, ["MIT"]);
        assert!(parse(b"[]").is_err());
    }
}
