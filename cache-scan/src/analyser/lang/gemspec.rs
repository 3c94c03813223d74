//! `gemspec`: an installed gem's specification (`…/specifications/NAME-VERSION.gemspec`),
//! read line by line as the reference reads it — never evaluated as Ruby.
//!
//! After the line with `Gem::Specification.new … |VAR|`, lines starting with
//! `VAR.name`, `VAR.version`, `VAR.licenses` and `VAR.license` give the name, the version
//! and the licenses (quotes and `.freeze` removed). Name and version are required.

use cache_core::Package;

use super::Skip;
use crate::analyser::license;

/// Longest line, as the reference's line scanner allows.
const MAX_LINE: usize = 64 << 10;

/// The gem a specification describes.
pub(crate) fn parse(text: &str) -> Result<Package, Skip> {
    let (mut var, mut name, mut version, mut licenses) =
        (String::new(), String::new(), String::new(), String::new());
    for line in text.lines() {
        if line.len() >= MAX_LINE {
            return Err(format!("a line is longer than {MAX_LINE} bytes"));
        }
        let line = line.trim();
        if line.contains("Gem::Specification.new") {
            var = match (line.find('|'), line.rfind('|')) {
                (Some(a), Some(b)) if b > a => line.get(a + 1..b).unwrap_or_default().to_owned(),
                _ => String::new(),
            };
        }
        if var.is_empty() {
            continue;
        }
        if line.starts_with(&format!("{var}.name")) {
            name = trim(assigned(line, ".name").unwrap_or_default());
        } else if line.starts_with(&format!("{var}.version")) {
            version = trim(assigned(line, ".version").unwrap_or_default());
        } else if line.starts_with(&format!("{var}.licenses")) {
            licenses = list(line)
                .map(|l| l.split(',').map(trim).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
        } else if line.starts_with(&format!("{var}.license")) {
            licenses = trim(assigned(line, ".license").unwrap_or_default());
        }
        if !name.is_empty() && !version.is_empty() && !licenses.is_empty() {
            break;
        }
    }
    if name.is_empty() || version.is_empty() {
        return Err("no name or no version found".into());
    }
    Ok(Package {
        name,
        version,
        licenses: license::names(&licenses),
        ..Package::default()
    })
}

/// The first `ATTR\s*=\s*(\S+)` of the line: the value.
fn assigned<'a>(line: &'a str, attr: &str) -> Option<&'a str> {
    line.match_indices(attr).find_map(|(i, m)| {
        let rest = line.get(i + m.len()..)?.trim_start();
        let rest = rest.strip_prefix('=')?.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        (end > 0).then(|| rest.get(..end)).flatten()
    })
}

/// `.licenses\s*=\s*\[(.+)\]`: what is between the brackets (up to the last `]`).
fn list(line: &str) -> Option<&str> {
    line.match_indices(".licenses").find_map(|(i, m)| {
        let rest = line.get(i + m.len()..)?.trim_start();
        let rest = rest.strip_prefix('=')?.trim_start();
        let rest = rest.strip_prefix('[')?;
        let end = rest.rfind(']')?;
        (end > 0).then(|| rest.get(..end)).flatten()
    })
}

/// Without surrounding space, `.freeze` and quotes: `"async".freeze` → `async`.
fn trim(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_suffix(".freeze").unwrap_or(s);
    s.trim_matches(['\'', '"']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_gemspecs() {
        let spec = "# -*- encoding: utf-8 -*-\nGem::Specification.new do |s|\n  s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\n  s.licenses = [\"MIT\".freeze, \"BSD\".freeze]\n  s.name = \"ignored\"\nend\n";
        let p = parse(spec).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("rake", "13.0.6"));
        assert_eq!(p.licenses, ["MIT", "BSD-3-Clause"]);
        let single = "Gem::Specification.new do |spec|\nspec.name = 'x'\nspec.version = '1.0'\nspec.license = 'Ruby'\nend\n";
        assert_eq!(parse(single).unwrap().licenses, ["Ruby"]);
        assert!(parse("s.name = 'x'\ns.version = '1'\n").is_err());
    }
}
