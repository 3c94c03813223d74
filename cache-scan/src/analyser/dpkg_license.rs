//! `dpkg-license`: the licenses of Debian packages, from `usr/share/doc/PACKAGE/copyright`
//! (not from files in its subdirectories), as the reference reads them.
//!
//! Every `License:` line of a machine-readable copyright file counts (the text before
//! any `(`, without a leading `The main library is licensed under ` or a trailing
//! ` license`, split at `,`/`or`/`and`), and so does every mention of
//! `/usr/share/common-licenses/NAME`. The names are normalised to SPDX IDs (`GPL-2+` →
//! `GPL-2.0-or-later`), duplicates dropped. The result is a `Licenses` entry of type
//! `dpkg` naming the package; when layers are applied it becomes the licenses of the
//! installed package of that name.

use cache_core::{LicenseFile, LicenseFinding};

use super::license;

/// Largest copyright file read; a larger one is skipped with a warning.
pub(crate) const MAX_COPYRIGHT: u64 = 4 << 20;

/// The package whose copyright file `path` is: `usr/share/doc/NAME/copyright`.
pub(crate) fn package_of(path: &str) -> Option<&str> {
    let name = path
        .strip_prefix("usr/share/doc/")?
        .strip_suffix("/copyright")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The license file entry of one copyright file; `None` when it names no license.
pub(crate) fn parse(path: &str, text: &str) -> Option<LicenseFile> {
    let pkg = package_of(path)?;
    let mut names = Vec::new();
    for line in text.lines() {
        if let Some(l) = line.strip_prefix("License:") {
            let l = l.trim();
            let l = l.split('(').next().unwrap_or_default();
            let l = l
                .strip_prefix("The main library is licensed under ")
                .unwrap_or(l);
            let l = l.strip_suffix(" license").unwrap_or(l).trim();
            names.extend(license::split(l));
        } else if let Some(name) = common_license(line) {
            names.push(name);
        }
    }
    let names = license::normalize_all(names);
    if names.is_empty() {
        return None;
    }
    Some(LicenseFile {
        license_type: "dpkg".into(),
        file_path: path.to_owned(),
        pkg_name: pkg.to_owned(),
        findings: names
            .into_iter()
            .map(|name| LicenseFinding {
                name,
                ..LicenseFinding::default()
            })
            .collect(),
        ..LicenseFile::default()
    })
}

/// `NAME` of the first `/usr/share/common-licenses/NAME` in a line: letters, digits and
/// `_.+-`, ending in a letter, digit or `+`.
fn common_license(line: &str) -> Option<String> {
    const MARK: &str = "usr/share/common-licenses/";
    line.match_indices(MARK).find_map(|(i, m)| {
        let rest = line.get(i + m.len()..)?;
        let run: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_.+-".contains(*c))
            .collect();
        let name = run.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '+'));
        (name.len() >= 2).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyright_files() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n\nFiles: x\nLicense: BSD-3-clause\nLicense: GPL-2+\n";
        let f = parse("usr/share/doc/adduser/copyright", text).unwrap();
        assert_eq!(f.pkg_name, "adduser");
        let names: Vec<&str> = f.findings.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["GPL-2.0-or-later", "BSD-3-Clause"]);
        let f = parse(
            "usr/share/doc/libc6/copyright",
            "see /usr/share/common-licenses/LGPL-2.1. for details\n",
        )
        .unwrap();
        assert_eq!(f.findings[0].name, "LGPL-2.1-only");
        assert!(parse("usr/share/doc/x/copyright", "no license here\n").is_none());
        assert_eq!(
            package_of("usr/share/doc/ca-certificates/examples/debian/copyright"),
            None
        );
        assert_eq!(package_of("usr/share/doc/zlib1g/copyright"), Some("zlib1g"));
    }
}
