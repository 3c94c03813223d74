//! `cargo`: `Cargo.lock` (every `[[package]]`; a dependency named without a version is
//! the one package of that name).

use std::collections::HashMap;

use cache_core::Package;
use serde::Deserialize;

use super::{Skip, package};

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    version: String,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// The locked packages.
pub(crate) fn parse(text: &str) -> Result<Vec<Package>, Skip> {
    let lock: Lock =
        toml::from_str(text).map_err(|e| format!("not a valid Cargo.lock: {}", one_line(&e)))?;
    let versions: HashMap<&str, &str> = lock
        .package
        .iter()
        .map(|e| (e.name.as_str(), e.version.as_str()))
        .collect();
    Ok(lock
        .package
        .iter()
        .map(|e| {
            let mut p = package(&e.name, &e.version);
            let mut deps: Vec<String> = e
                .dependencies
                .iter()
                .filter_map(|d| {
                    let mut fields = d.split_whitespace();
                    let name = fields.next()?;
                    match fields.next() {
                        Some(v) => Some(format!("{name}@{v}")),
                        None => versions.get(name).map(|v| format!("{name}@{v}")),
                    }
                })
                .collect();
            deps.sort();
            deps.dedup();
            p.depends_on = deps;
            p
        })
        .collect())
}

/// A TOML error on one line.
pub(crate) fn one_line(e: &toml::de::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_bare_dependencies_are_resolved() {
        let pkgs = parse(
            "version = 3\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\ndependencies = [\"b\", \"c 2.0.0\"]\n\n[[package]]\nname = \"b\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].depends_on, ["b@0.1.0", "c@2.0.0"]);
        assert!(parse("[[package]\nname=").is_err());
    }
}
