//! `Cargo.toml` beside a `Cargo.lock`: which locked packages the project really depends
//! on. The manifest's own package is the root and each workspace member (`members`
//! globs, resolved among the tree's `Cargo.toml` files) a workspace package; the
//! `[dependencies]`, `[target.*.dependencies]` and `[workspace.dependencies]` of the
//! root and the members name the direct dependencies, each matched to the first locked
//! package of that name whose version satisfies the requirement; every package they
//! reach is indirect. Packages reached from none of them (development and build
//! dependencies) are removed, as the reference removes them.

use std::collections::{BTreeMap, HashMap, HashSet};

use cache_core::Package;
use toml::Value;

use super::Skip;

/// One parsed manifest.
struct Manifest {
    /// `name@version`, or `None` for a virtual workspace manifest.
    id: Option<String>,
    deps: BTreeMap<String, String>,
    members: Vec<String>,
    workspace_version: String,
}

fn manifest(text: &str, workspace_version: &str) -> Result<Manifest, Skip> {
    let doc: toml::Table = toml::from_str(text)
        .map_err(|e| format!("not a valid Cargo.toml: {}", super::cargo::one_line(&e)))?;
    let ws = doc.get("workspace");
    let mut wv = workspace_version.to_owned();
    if wv.is_empty() {
        wv = ws
            .and_then(|w| w.get("package"))
            .and_then(|p| p.get("version"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
    }
    let package = doc.get("package");
    let name = package.and_then(|p| p.get("name")).and_then(Value::as_str);
    let version = match package.and_then(|p| p.get("version")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Table(t)) if t.get("workspace").and_then(Value::as_bool) == Some(true) => {
            wv.clone()
        }
        None => wv.clone(),
        _ => String::new(),
    };
    let mut deps = BTreeMap::new();
    let mut add = |table: Option<&Value>| {
        for (name, v) in table.and_then(Value::as_table).into_iter().flatten() {
            let req = match v {
                Value::String(s) => Some(s.clone()),
                Value::Table(t) => t.get("version").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            };
            // A path, git or `workspace = true` dependency without a version names no
            // locked package by itself, as for the reference.
            if let Some(req) = req {
                deps.insert(name.clone(), req);
            }
        }
    };
    add(doc.get("dependencies"));
    for t in doc
        .get("target")
        .and_then(Value::as_table)
        .into_iter()
        .flatten()
        .map(|(_, t)| t)
    {
        add(t.get("dependencies"));
    }
    add(ws.and_then(|w| w.get("dependencies")));
    let members = ws
        .and_then(|w| w.get("members"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    Ok(Manifest {
        id: name.map(|n| format!("{n}@{version}")),
        deps,
        members,
        workspace_version: wv,
    })
}

/// Applies the manifest `root` (the `Cargo.toml` beside the lock file) to the locked
/// `pkgs`; `members` finds the manifests a `members` glob names (relative to the root
/// manifest's directory) and returns their texts.
pub(crate) fn apply(
    pkgs: Vec<Package>,
    root: &str,
    members: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<Package>, Skip> {
    let top = manifest(root, "")?;
    let mut deps = BTreeMap::new();
    let mut workspaces = Vec::new();
    for glob in &top.members {
        for text in members(glob) {
            match manifest(&text, &top.workspace_version) {
                Ok(m) => {
                    workspaces.extend(m.id);
                    deps.extend(m.deps);
                }
                Err(reason) => tracing::warn!("skipping a workspace member Cargo.toml: {reason}"),
            }
        }
    }
    // The root manifest's requirements win over the members'.
    deps.extend(top.deps);

    let by_id: HashMap<&str, &Package> = pkgs.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut relationship: HashMap<String, &'static str> = HashMap::new();
    for (name, req) in &deps {
        if let Some(p) = pkgs
            .iter()
            .find(|p| &p.name == name && matches(&p.version, req))
        {
            relationship.insert(p.id.clone(), "direct");
        }
    }
    let mut stack: Vec<String> = relationship.keys().cloned().collect();
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for d in by_id
            .get(id.as_str())
            .map(|p| p.depends_on.as_slice())
            .unwrap_or_default()
        {
            relationship.entry(d.clone()).or_insert("indirect");
            stack.push(d.clone());
        }
    }
    let kept: HashSet<String> = relationship.keys().cloned().collect();
    let mut out = Vec::new();
    for mut p in pkgs {
        if top.id.as_deref() == Some(p.id.as_str()) {
            p.relationship = "root".into();
            p.depends_on.retain(|d| kept.contains(d));
        } else if workspaces.contains(&p.id) {
            p.relationship = "workspace".into();
            p.depends_on.retain(|d| kept.contains(d));
        } else if let Some(r) = relationship.get(&p.id) {
            p.relationship = (*r).into();
            p.indirect = *r == "indirect";
        } else {
            continue;
        }
        out.push(p);
    }
    Ok(out)
}

/// True when `version` satisfies the Cargo requirement `req` (`1.2`, `^1.2`, `~1.2.3`,
/// `=1.2.3`, `>=1, <2`, `1.*`, `*`).
pub(crate) fn matches(version: &str, req: &str) -> bool {
    let Some(v) = parse(version.split(['-', '+']).next().unwrap_or(version)) else {
        return false;
    };
    let pre = version.contains('-');
    req.split(',').map(str::trim).all(|c| {
        if c.is_empty() || c == "*" {
            return !pre;
        }
        let (op, rest) = match c.find(|ch: char| ch.is_ascii_digit()) {
            Some(i) => (
                c.get(..i).unwrap_or_default().trim(),
                c.get(i..).unwrap_or_default(),
            ),
            None => return false,
        };
        let parts: Vec<&str> = rest.trim().split('.').collect();
        let wildcard = parts.iter().any(|p| *p == "*" || *p == "x");
        let nums: Vec<u64> = parts
            .iter()
            .take_while(|p| **p != "*" && **p != "x")
            .filter_map(|p| p.split(['-', '+']).next()?.parse().ok())
            .collect();
        let n = |i: usize| nums.get(i).copied().unwrap_or(0);
        let given = nums.len();
        let low = [n(0), n(1), n(2)];
        let op = if wildcard && op.is_empty() { "=" } else { op };
        match op {
            "" | "^" => {
                let high = if n(0) > 0 || given == 1 {
                    [n(0) + 1, 0, 0]
                } else if n(1) > 0 || given == 2 {
                    [0, n(1) + 1, 0]
                } else {
                    [0, 0, n(2) + 1]
                };
                v >= low && v < high
            }
            "~" => {
                let high = if given <= 1 {
                    [n(0) + 1, 0, 0]
                } else {
                    [n(0), n(1) + 1, 0]
                };
                v >= low && v < high
            }
            "=" => match given {
                0 => true,
                1 => v[0] == n(0),
                2 => v[0] == n(0) && v[1] == n(1),
                _ => v == low,
            },
            ">=" => v >= low,
            ">" => v > low,
            "<=" => v <= low,
            "<" => v < low,
            _ => false,
        }
    })
}

fn parse(v: &str) -> Option<[u64; 3]> {
    let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
    Some([
        it.next()??,
        it.next().flatten().unwrap_or(0),
        it.next().flatten().unwrap_or(0),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyser::lockfile::cargo;

    #[test]
    fn requirements() {
        for (v, req, want) in [
            ("1.2.3", "1", true),
            ("1.2.3", "1.3", false),
            ("0.4.46", "0.4", true),
            ("0.5.0", "0.4", false),
            ("0.0.3", "0.0.3", true),
            ("0.0.4", "0.0.3", false),
            ("1.2.9", "~1.2.3", true),
            ("1.3.0", "~1.2", false),
            ("1.5.0", ">=1, <2", true),
            ("2.0.0", ">=1, <2", false),
            ("3.1.4", "3.*", true),
            ("3.1.4", "=3.1.4", true),
        ] {
            assert_eq!(matches(v, req), want, "{v} {req}");
        }
    }

    #[test]
    fn development_dependencies_are_removed() {
        let lock = "[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"a\", \"t\"]\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\ndependencies = [\"b\"]\n[[package]]\nname = \"b\"\nversion = \"2.0.0\"\n[[package]]\nname = \"t\"\nversion = \"0.3.0\"\n";
        let toml = "[package]\nname = \"app\"\nversion = \"0.1.0\"\n[dependencies]\na = \"1\"\n[dev-dependencies]\nt = \"0.3\"\n";
        let pkgs = apply(cargo::parse(lock).unwrap(), toml, |_| Vec::new()).unwrap();
        let got: Vec<(&str, &str)> = pkgs
            .iter()
            .map(|p| (p.id.as_str(), p.relationship.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("app@0.1.0", "root"),
                ("a@1.0.0", "direct"),
                ("b@2.0.0", "indirect")
            ]
        );
        assert_eq!(pkgs[0].depends_on, ["a@1.0.0"]);
    }
}
