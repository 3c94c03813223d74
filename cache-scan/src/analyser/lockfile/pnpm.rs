//! `pnpm`: `pnpm-lock.yaml`. Before version 9, every entry of `packages` (keys
//! `/name/version` before version 6, `/name@version` after; `dev: true` entries are
//! left out); from version 9, every entry of `snapshots` (`name@version(peers)`), a
//! development package when no production dependency of an importer reaches it.

use std::collections::{BTreeMap, BTreeSet};

use cache_core::Package;
use serde_yaml::Value;

use super::{Skip, package};

/// The locked packages.
pub(crate) fn parse(text: &str) -> Result<Vec<Package>, Skip> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    if !doc.is_mapping() {
        return Err("not a YAML mapping".into());
    }
    let version = match &doc["lockfileVersion"] {
        Value::Number(n) => n.as_f64().unwrap_or(-1.0),
        Value::String(s) => s.parse().unwrap_or(-1.0),
        _ => -1.0,
    };
    Ok(if version >= 9.0 {
        v9(&doc)
    } else {
        before_v9(&doc, version)
    })
}

fn str_of(v: &Value) -> Option<&str> {
    v.as_str()
}

fn entries(v: &Value) -> impl Iterator<Item = (&str, &Value)> {
    v.as_mapping()
        .into_iter()
        .flat_map(|m| m.iter())
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
}

/// `(name, version)` of a package key.
fn split_key(key: &str, version: f64) -> (String, String) {
    let mut rest = key;
    if version < 9.0 {
        rest = rest.split_once('/').map_or("", |(_, r)| r);
    }
    let (scope, rest) = match rest.strip_prefix('@') {
        Some(_) => match rest.split_once('/') {
            Some((s, r)) => (Some(s), r),
            None => (None, rest),
        },
        None => (None, rest),
    };
    let sep = if version < 6.0 { '/' } else { '@' };
    let (name, ver) = rest.split_once(sep).unwrap_or((rest, ""));
    let peer = if version < 6.0 { '_' } else { '(' };
    let ver = ver.split(peer).next().unwrap_or(ver);
    let name = match scope {
        Some(s) => format!("{s}/{name}"),
        None => name.to_owned(),
    };
    (name, ver.to_owned())
}

/// True for a version the reference keeps: a semantic version.
fn semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or(v);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn before_v9(doc: &Value, version: f64) -> Vec<Package> {
    let direct: BTreeSet<&str> = entries(&doc["dependencies"]).map(|(k, _)| k).collect();
    let mut out = Vec::new();
    for (key, info) in entries(&doc["packages"]) {
        if info["dev"].as_bool() == Some(true) {
            continue;
        }
        let (mut name, mut ver) = (
            str_of(&info["name"]).unwrap_or_default().to_owned(),
            str_of(&info["version"]).unwrap_or_default().to_owned(),
        );
        if name.is_empty() {
            (name, ver) = split_key(key, version);
            if !semver(&ver) {
                ver.clear();
            }
        }
        let mut p = package(&name, &ver);
        p.relationship = if direct.contains(name.as_str()) {
            "direct"
        } else {
            "indirect"
        }
        .into();
        let mut on: Vec<String> = entries(&info["dependencies"])
            .filter_map(|(n, v)| Some(format!("{n}@{}", v.as_str()?)))
            .collect();
        on.sort();
        p.depends_on = on;
        out.push(p);
    }
    out
}

fn v9(doc: &Value) -> Vec<Package> {
    let trim = |v: &str| v.split('(').next().unwrap_or(v).to_owned();
    let mut direct_dev = BTreeSet::new();
    let mut direct_prod = BTreeSet::new();
    for (_, importer) in entries(&doc["importers"]) {
        for (set, field) in [
            (&mut direct_dev, "devDependencies"),
            (&mut direct_prod, "dependencies"),
        ] {
            for (n, v) in entries(&importer[field]) {
                if let Some(ver) = str_of(&v["version"]) {
                    set.insert(format!("{n}@{}", trim(ver)));
                }
            }
        }
    }
    let packages = &doc["packages"];
    let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
    for (key, snapshot) in entries(&doc["snapshots"]) {
        let (name, ver) = split_key(key, 9.0);
        let id = format!("{name}@{ver}");
        let mut parsed = if semver(&ver) {
            ver.clone()
        } else {
            String::new()
        };
        if let Some(v) = str_of(&packages[id.as_str()]["version"]).filter(|v| !v.is_empty()) {
            parsed = v.to_owned();
        }
        let mut p = package(&name, &parsed);
        p.id = key.to_owned();
        p.dev = !direct_prod.contains(&id);
        p.relationship = if direct_prod.contains(&id) || direct_dev.contains(&id) {
            "direct"
        } else {
            "indirect"
        }
        .into();
        let mut on: Vec<String> = entries(&snapshot["optionalDependencies"])
            .chain(entries(&snapshot["dependencies"]))
            .filter_map(|(n, v)| {
                let v = v.as_str()?;
                let known = packages.get(format!("{n}@{}", trim(v)).as_str()).is_some();
                known.then(|| format!("{n}@{v}"))
            })
            .collect();
        on.sort();
        on.dedup();
        p.depends_on = on;
        pkgs.insert(key.to_owned(), p);
    }
    // Production packages, and everything they reach, are not development packages.
    let mut stack: Vec<String> = pkgs
        .values()
        .filter(|p| !p.dev)
        .map(|p| p.id.clone())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(p) = pkgs.get_mut(&id) {
            p.dev = false;
            stack.extend(p.depends_on.iter().cloned());
        }
    }
    pkgs.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_version() {
        assert_eq!(
            split_key("/@a/b/1.0.0_peer", 5.4),
            ("@a/b".into(), "1.0.0".into())
        );
        assert_eq!(
            split_key("/lodash@4.17.21", 6.0),
            ("lodash".into(), "4.17.21".into())
        );
        assert_eq!(
            split_key("@a/b@1.0.0(react@18.0.0)", 9.0),
            ("@a/b".into(), "1.0.0".into())
        );
    }

    #[test]
    fn v9_dev_packages() {
        let y = "lockfileVersion: '9.0'\nimporters:\n  .:\n    dependencies:\n      a:\n        specifier: ^1\n        version: 1.0.0\n    devDependencies:\n      d:\n        specifier: ^1\n        version: 1.0.0\npackages:\n  a@1.0.0: {}\n  b@2.0.0: {}\n  d@1.0.0: {}\nsnapshots:\n  a@1.0.0:\n    dependencies:\n      b: 2.0.0\n  b@2.0.0: {}\n  d@1.0.0: {}\n";
        let got: Vec<(String, bool)> = parse(y)
            .unwrap()
            .into_iter()
            .map(|p| (p.id, p.dev))
            .collect();
        assert_eq!(
            got,
            [
                ("a@1.0.0".into(), false),
                ("b@2.0.0".into(), false),
                ("d@1.0.0".into(), true)
            ]
        );
        assert!(parse(": : :\n  - [").is_err());
    }
}
