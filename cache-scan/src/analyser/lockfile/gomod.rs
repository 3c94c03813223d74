//! `gomod`: `go.mod`. The main module (relationship `root`, no version), every
//! `require` (indirect ones only when the `go` directive is 1.17 or later, which is
//! when `go.mod` lists them all), and `replace` directives applied to required modules
//! (a replacement by a local path removes the module).

use std::collections::BTreeMap;

use cache_core::Package;

use super::{Skip, package};

/// The main module and its requirements.
pub(crate) fn parse(text: &str) -> Result<Vec<Package>, Skip> {
    let mut module = None;
    let mut go = None;
    let mut requires: Vec<(String, String, bool)> = Vec::new();
    let mut replaces: Vec<(String, String, String, String)> = Vec::new();
    let mut block: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let indirect = raw.contains("// indirect");
        let line = raw.split("//").next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if line == ")" {
            if block.take().is_none() {
                return Err(format!("line {}: unexpected )", n + 1));
            }
            continue;
        }
        let (verb, args) = match &block {
            Some(b) => (b.as_str(), line),
            None => {
                let (v, a) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let a = a.trim();
                if a == "(" {
                    block = Some(v.to_owned());
                    continue;
                }
                (v, a)
            }
        };
        let fields: Vec<String> = args.split_whitespace().map(unquote).collect();
        match verb {
            "module" => module = fields.first().cloned(),
            "go" => go = fields.first().cloned(),
            "require" => match fields.as_slice() {
                [path, version] => {
                    check_major(path, version).map_err(|e| format!("line {}: {e}", n + 1))?;
                    requires.push((path.clone(), version.clone(), indirect))
                }
                _ => return Err(format!("line {}: malformed require", n + 1)),
            },
            "replace" => {
                let arrow = fields.iter().position(|f| f == "=>");
                let Some(arrow) = arrow else {
                    return Err(format!("line {}: malformed replace", n + 1));
                };
                let (old, new) = fields.split_at(arrow);
                let new = new.get(1..).unwrap_or_default();
                let get = |s: &[String], i: usize| s.get(i).cloned().unwrap_or_default();
                replaces.push((get(old, 0), get(old, 1), get(new, 0), get(new, 1)));
            }
            "toolchain" | "exclude" | "retract" | "godebug" | "tool" | "ignore" => {}
            other => return Err(format!("line {}: unknown directive {other:?}", n + 1)),
        }
    }
    if block.is_some() {
        return Err("unterminated block".into());
    }
    // Without a `go` directive the file predates 1.17.
    let skip_indirect = go.as_deref().is_none_or(before_1_17);
    let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
    for (path, version, indirect) in requires {
        if skip_indirect && indirect {
            continue;
        }
        let mut p = package(&path, &version);
        p.relationship = if indirect { "indirect" } else { "direct" }.into();
        pkgs.insert(path, p);
    }
    for (old, old_v, new, new_v) in replaces {
        let Some(found) = pkgs.get(&old) else {
            continue;
        };
        if !old_v.is_empty() && found.version != old_v {
            continue;
        }
        let relationship = found.relationship.clone();
        pkgs.remove(&old);
        if new_v.is_empty() {
            continue;
        }
        let mut p = package(&new, &new_v);
        p.relationship = relationship;
        pkgs.insert(new, p);
    }
    if let Some(m) = module {
        let mut root = package(&m, "");
        root.id = m.clone();
        root.relationship = "root".into();
        root.depends_on = pkgs
            .values()
            .filter(|p| p.relationship == "direct")
            .map(|p| p.id.clone())
            .collect();
        pkgs.insert(m, root);
    }
    Ok(pkgs.into_values().collect())
}

/// A version of major 2 or more must be named by the module path (`…/v2`, or
/// `gopkg.in/…​.v2`), as Go's own parser requires.
fn check_major(path: &str, version: &str) -> Result<(), String> {
    let major: u64 = version
        .strip_prefix('v')
        .and_then(|v| v.split(['.', '-', '+']).next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("require {path}: invalid version {version:?}"))?;
    if major < 2 || version.ends_with("+incompatible") {
        return Ok(());
    }
    let suffix_ok = path.ends_with(&format!("/v{major}")) || path.ends_with(&format!(".v{major}"));
    if suffix_ok {
        Ok(())
    } else {
        Err(format!(
            "require {path}: version {version:?} invalid: should be v0 or v1, not v{major}"
        ))
    }
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '`').to_owned()
}

/// True for a `go` version `1.N` with N < 17 (the reference judges only `major.minor`).
fn before_1_17(v: &str) -> bool {
    let mut parts = v.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(major), Some(minor), None) => match (major.parse::<u32>(), minor.parse::<u32>()) {
            (Ok(ma), Ok(mi)) => ma <= 1 && mi < 17,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_replaces_and_the_main_module() {
        let m = "module example.com/app\n\ngo 1.21\n\nrequire (\n\tgithub.com/a/b v1.2.3\n\tgithub.com/c/d v0.1.0 // indirect\n\tgithub.com/e/f v1.0.0\n)\n\nreplace github.com/e/f => ../f\nreplace github.com/a/b v1.2.3 => github.com/x/b v1.2.4\n";
        let got: Vec<(String, String)> = parse(m)
            .unwrap()
            .into_iter()
            .map(|p| (p.id, p.relationship))
            .collect();
        assert_eq!(
            got,
            [
                ("example.com/app".into(), "root".into()),
                ("github.com/c/d@v0.1.0".into(), "indirect".into()),
                ("github.com/x/b@v1.2.4".into(), "direct".into()),
            ]
        );
        let old = "module m\ngo 1.16\nrequire a.b/c v1.0.0 // indirect\n";
        assert_eq!(parse(old).unwrap().len(), 1);
        assert!(parse("module m\nrequire (\n").is_err());
        assert!(parse("module m\nrequire a.b/c v2.0.0\n").is_err());
        assert!(parse("module m\nrequire a.b/c/v2 v2.0.0\n").is_ok());
    }
}
