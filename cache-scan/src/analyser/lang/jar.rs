//! `jar`: Java archives (`.jar`, `.war`, `.ear`, `.par`), nested archives included, read
//! offline as the reference reads them when it has no Java database.
//!
//! Each `META-INF/maven/**/pom.properties` with a group, artifact and version is a
//! package `GROUP:ARTIFACT` at that version. When none matches the archive's own file
//! name (`ARTIFACT-VERSION.jar`), the manifest's main section names the package instead
//! (group from `Implementation-Vendor-Id`, `Bundle-SymbolicName`, `Implementation-Vendor`
//! or `Specification-Vendor`; artifact from `Implementation-Title`,
//! `Specification-Title` or `Bundle-Name`; version from `Implementation-Version`,
//! `Specification-Version` or `Bundle-Version`), when it names all three. A nested
//! archive's packages carry the virtual path `OUTER.jar/INNER.jar`. No network lookups;
//! licenses only from the manifest (`Bundle-License` with an SPDX ID).

use std::io::{Read, Seek};

use cache_core::Package;

use super::{Skip, zip::Zip};

/// Deepest nesting of archives read.
const MAX_DEPTH: usize = 4;
/// Largest `pom.properties` or manifest read.
const MAX_SMALL: u64 = 10 << 20;
/// Most bytes inflated from one archive, nested archives included.
const BUDGET: u64 = 1 << 30;

/// The packages of the archive at `path`, `size` bytes, readable at `r`.
pub(crate) fn parse<R: Read + Seek>(
    r: &mut R,
    _size: u64,
    path: &str,
) -> Result<Vec<Package>, Skip> {
    let mut budget = BUDGET;
    let mut pkgs = archive(r, path, 0, &mut budget)?;
    let mut seen = std::collections::HashSet::new();
    pkgs.retain(|p| seen.insert((p.name.clone(), p.file_path.clone(), p.version.clone())));
    Ok(pkgs)
}

fn archive<R: Read + Seek>(
    r: &mut R,
    path: &str,
    depth: usize,
    budget: &mut u64,
) -> Result<Vec<Package>, Skip> {
    let zip = Zip::open(r).map_err(|e| format!("{path}: {e}"))?;
    let own = file_props(path);
    let mut pkgs = Vec::new();
    let mut found_own = false;
    let mut manifest = Manifest::default();
    let spend = |n: u64, budget: &mut u64| -> Result<(), Skip> {
        *budget = budget
            .checked_sub(n)
            .ok_or_else(|| format!("{path} inflates to more than {BUDGET} bytes (a zip bomb?)"))?;
        Ok(())
    };
    for entry in &zip.entries {
        let base = entry.name.rsplit('/').next().unwrap_or_default();
        if base == "pom.properties" {
            let cap = MAX_SMALL.min(*budget);
            let bytes = zip
                .read(r, entry, cap)
                .map_err(|e| format!("{path}: {e}"))?;
            spend(bytes.len() as u64, budget)?;
            let props = pom_properties(&String::from_utf8_lossy(&bytes));
            if let Some((g, a, v)) = props {
                if own.as_ref().is_some_and(|(oa, ov)| *oa == a && *ov == v) {
                    found_own = true;
                }
                pkgs.push(package(&g, &a, &v, path));
            }
        } else if base == "MANIFEST.MF" {
            let bytes = zip
                .read(r, entry, MAX_SMALL.min(*budget))
                .map_err(|e| format!("{path}: {e}"))?;
            spend(bytes.len() as u64, budget)?;
            manifest = Manifest::parse(&String::from_utf8_lossy(&bytes));
        } else if [".jar", ".war", ".ear"]
            .iter()
            .any(|e| entry.name.ends_with(e))
        {
            if depth + 1 >= MAX_DEPTH {
                tracing::debug!(path, entry = %entry.name, "not reading an archive nested this deep");
                continue;
            }
            let inner = format!("{path}/{}", entry.name);
            if entry.name.split('/').any(|s| s == "..") {
                continue;
            }
            let mut file =
                tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
            let n = zip
                .copy(r, entry, super::MAX_JAR.min(*budget), &mut file)
                .map_err(|e| format!("{path}: {e}"))?;
            spend(n, budget)?;
            file.rewind().map_err(|e| e.to_string())?;
            match archive(&mut file, &inner, depth + 1, budget) {
                Ok(inner_pkgs) => pkgs.extend(inner_pkgs),
                Err(e) if e.contains("zip bomb") => return Err(e),
                Err(e) => tracing::debug!(path = inner, "skipping a nested archive: {e}"),
            }
        }
    }
    if !found_own && let Some((g, a, v)) = manifest.properties() {
        pkgs.push(package(&g, &a, &v, path));
    }
    let licenses = manifest.licenses();
    if !licenses.is_empty() {
        let mut own_pkgs = pkgs.iter_mut().filter(|p| p.file_path == path);
        if let (Some(p), None) = (own_pkgs.next(), own_pkgs.next())
            && p.licenses.is_empty()
        {
            p.licenses = licenses;
        }
    }
    Ok(pkgs)
}

fn package(group: &str, artifact: &str, version: &str, path: &str) -> Package {
    Package {
        name: format!("{group}:{artifact}"),
        version: version.to_owned(),
        file_path: path.to_owned(),
        ..Package::default()
    }
}

/// Artifact and version from a file name `ARTIFACT-VERSION.jar`.
fn file_props(path: &str) -> Option<(String, String)> {
    let name = path.rsplit('/').next()?;
    let stem = name.strip_suffix(".jar")?;
    let b = stem.as_bytes();
    (1..b.len()).rev().find_map(|i| {
        if b[i] != b'-' || !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let (artifact, version) = (stem.get(..i)?, stem.get(i + 1..)?);
        let last = artifact.chars().last()?;
        let head = artifact.get(..artifact.len() - last.len_utf8())?;
        let ok = last != '-'
            && last != '*'
            && head
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
            && !version.chars().any(char::is_whitespace);
        ok.then(|| (artifact.to_owned(), version.to_owned()))
    })
}

/// `groupId`, `artifactId` and `version` of a `pom.properties`, when all are set.
fn pom_properties(text: &str) -> Option<(String, String, String)> {
    let (mut g, mut a, mut v) = (String::new(), String::new(), String::new());
    for line in text.lines() {
        let line = line.trim();
        if let Some(x) = line.strip_prefix("groupId=") {
            g = x.to_owned();
        } else if let Some(x) = line.strip_prefix("artifactId=") {
            a = x.to_owned();
        } else if let Some(x) = line.strip_prefix("version=") {
            v = x.to_owned();
        }
    }
    (!g.is_empty() && !a.is_empty() && !v.is_empty()).then_some((g, a, v))
}

/// The attributes of a manifest's main section the analyser uses.
#[derive(Default)]
struct Manifest {
    attrs: Vec<(String, String)>,
}

impl Manifest {
    fn parse(text: &str) -> Manifest {
        let mut m = Manifest::default();
        let mut current = String::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if let Some(more) = line.strip_prefix(' ') {
                current.push_str(more);
                continue;
            }
            m.add(&current);
            current = line.to_owned();
        }
        m.add(&current);
        m
    }

    fn add(&mut self, line: &str) {
        let mut fields = line.split_whitespace();
        if fields.next().is_none() || fields.next().is_none_or(|v| v.starts_with('%')) {
            return;
        }
        if let Some((k, v)) = line.split_once(':') {
            self.attrs.retain(|(key, _)| key != k);
            self.attrs.push((k.to_owned(), v.to_owned()));
        }
    }

    fn get(&self, key: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    fn first(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .map(|k| self.get(k))
            .find(|v| !v.is_empty())
            .map(|v| v.trim().to_owned())
    }

    fn properties(&self) -> Option<(String, String, String)> {
        let group = if !self.get("Implementation-Vendor-Id").is_empty() {
            self.get("Implementation-Vendor-Id").trim().to_owned()
        } else if !self.get("Bundle-SymbolicName").is_empty() {
            let s = self.get("Bundle-SymbolicName");
            match s.rfind('.') {
                Some(i) if i > 0 => s.get(..i).unwrap_or(s).trim().to_owned(),
                _ => s.trim().to_owned(),
            }
        } else {
            self.first(&["Implementation-Vendor", "Specification-Vendor"])?
        };
        let artifact =
            self.first(&["Implementation-Title", "Specification-Title", "Bundle-Name"])?;
        let version = self.first(&[
            "Implementation-Version",
            "Specification-Version",
            "Bundle-Version",
        ])?;
        (!group.is_empty() && !artifact.is_empty() && !version.is_empty())
            .then_some((group, artifact, version))
    }

    fn licenses(&self) -> Vec<String> {
        let plugin: Vec<String> = self
            .attrs
            .iter()
            .filter(|(k, _)| k == "Plugin-License-Name" || k.starts_with("Plugin-License-Name-"))
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        if !plugin.is_empty() {
            return plugin;
        }
        self.get("Bundle-License")
            .split(',')
            .filter_map(|entry| {
                let name = entry
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim_matches([' ', '"']);
                crate::analyser::license::spdx_id(name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_files_and_manifests() {
        assert_eq!(
            file_props("lib/commons-lang3-3.12.0.jar"),
            Some(("commons-lang3".into(), "3.12.0".into()))
        );
        assert_eq!(file_props("lib/app.jar"), None);
        let m = Manifest::parse(
            "Manifest-Version: 1.0\r\nImplementation-Title: demo\r\nImplementation-Version: 2.1\r\nBundle-SymbolicName: org.example.demo\r\nBundle-License: Apache-2.0;link=x, Unknown\r\n\r\nName: x\r\n",
        );
        assert_eq!(
            m.properties(),
            Some(("org.example".into(), "demo".into(), "2.1".into()))
        );
        assert_eq!(m.licenses(), ["Apache-2.0"]);
        assert_eq!(
            pom_properties("#x\ngroupId=g\nartifactId=a\nversion=1\n"),
            Some(("g".into(), "a".into(), "1".into()))
        );
    }
}
