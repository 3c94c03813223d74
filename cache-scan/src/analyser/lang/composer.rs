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

/// A Composer document: `vendor/composer/installed.json` and `composer.lock` list their
/// packages alike.
#[derive(Deserialize)]
struct Document {
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

/// The packages of a Composer document by name: `packages`, then `packages-dev` marked as
/// development packages (a name in both is a production package), each with its
/// licenses and the ID `id(name, version)`; a package's `DependsOn` holds the sorted IDs
/// of the listed packages its `require` names, among the names `keep` accepts.
pub(crate) fn packages(
    bytes: &[u8],
    id: fn(&str, &str) -> String,
    keep: fn(&str) -> bool,
) -> Result<BTreeMap<String, Package>, Skip> {
    let doc: Document = json::first(bytes)?;
    let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
    let mut requires: HashMap<String, Vec<String>> = HashMap::new();
    for (entries, dev) in [(doc.packages, false), (doc.packages_dev, true)] {
        for e in entries {
            if pkgs.contains_key(&e.name) {
                continue;
            }
            let licenses = match &e.license {
                Value::String(s) => license::names(s),
                Value::Array(items) => license::normalize_all(
                    items.iter().filter_map(|l| l.as_str().map(str::to_owned)),
                ),
                _ => Vec::new(),
            };
            let deps: Vec<String> = e.require.into_keys().filter(|d| keep(d)).collect();
            if !deps.is_empty() {
                requires.insert(e.name.clone(), deps);
            }
            let package = Package {
                id: id(&e.name, &e.version),
                name: e.name.clone(),
                version: e.version,
                licenses,
                dev,
                ..Package::default()
            };
            pkgs.insert(e.name, package);
        }
    }
    let ids: HashMap<&str, String> = pkgs
        .iter()
        .map(|(n, p)| (n.as_str(), p.id.clone()))
        .collect();
    let resolved: Vec<(String, Vec<String>)> = requires
        .into_iter()
        .map(|(name, deps)| {
            let mut on: Vec<String> = deps
                .iter()
                .filter_map(|d| ids.get(d.as_str()).cloned())
                .collect();
            on.sort();
            (name, on)
        })
        .collect();
    for (name, on) in resolved {
        if let Some(p) = pkgs.get_mut(&name) {
            p.depends_on = on;
        }
    }
    Ok(pkgs)
}

/// The installed packages, sorted. Platform requirements (`php`, `ext-…`) are not
/// packages; a package without a version has its name as its ID.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let id = |name: &str, version: &str| {
        if version.is_empty() {
            name.to_owned()
        } else {
            format!("{name}@{version}")
        }
    };
    let keep = |d: &str| d != "php" && !d.starts_with("ext");
    let mut out: Vec<Package> = packages(bytes, id, keep)?.into_values().collect();
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
