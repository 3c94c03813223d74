//! `poetry`: `poetry.lock` (every `[[package]]`; `category = "dev"`, or groups without
//! `main`, mark a development package).

use cache_core::Package;
use serde::Deserialize;

use super::{Skip, cargo::one_line, package};

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
    category: String,
    #[serde(default)]
    groups: Vec<String>,
}

/// The locked packages.
pub(crate) fn parse(text: &str) -> Result<Vec<Package>, Skip> {
    let lock: Lock =
        toml::from_str(text).map_err(|e| format!("not a valid poetry.lock: {}", one_line(&e)))?;
    Ok(lock
        .package
        .into_iter()
        .map(|e| {
            let mut p = package(&e.name, &e.version);
            p.dev = e.category == "dev"
                || (!e.groups.is_empty() && !e.groups.iter().any(|g| g == "main"));
            p
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_packages_are_marked() {
        let pkgs = parse("[[package]]\nname = \"a\"\nversion = \"1\"\ncategory = \"dev\"\n[[package]]\nname = \"b\"\nversion = \"2\"\ngroups = [\"main\"]\n").unwrap();
        assert_eq!((pkgs[0].dev, pkgs[1].dev), (true, false));
    }
}
