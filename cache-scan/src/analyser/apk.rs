//! The apk analyser: `lib/apk/db/installed` to packages.

use std::io::BufRead;

use base64::Engine as _;
use cache_core::Package;

use super::parsed::{Collapsed, Parsed};
#[cfg(test)]
use crate::limits::LayerLimits;
use crate::{
    codec::read_line_capped,
    limits::{MAX_LINE, Stop, Tally},
};

/// The analyser name recorded in `AnalyzedBy`.
pub(crate) const NAME: &str = "apk";

/// Parses an apk installed database: stanzas of `K:value` lines separated by blank
/// lines, each package name once (a later stanza replaces an earlier one of the same
/// name, as apk holds one entry per name). Dependencies and provides are names here;
/// [`super::parsed::resolve_depends`] turns dependencies into package IDs.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Vec<Parsed> {
    let mut tally = Tally::new(LayerLimits::UNBOUNDED);
    parse_reader(&mut text.as_bytes(), &mut tally).unwrap_or_default()
}

/// The parser of this database, reading `reader` as it streams: one line at a time, counting each package
/// and its weight in `tally` (which stops the read once a cap is crossed), in time
/// linear in the input.
pub(crate) fn parse_reader(
    reader: &mut dyn BufRead,
    tally: &mut Tally,
) -> Result<Vec<Parsed>, Stop> {
    let mut out = Collapsed::default();
    let mut cur = Stanza::default();
    let mut held = 0u64;
    let mut line = Vec::new();
    let mut warned = false;
    loop {
        line.clear();
        let (read, cut) = read_line_capped(reader, &mut line, MAX_LINE)?;
        if cut && !std::mem::replace(&mut warned, true) {
            tracing::warn!("apk: a line longer than {MAX_LINE} bytes was cut");
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if read == 0 || text.trim().is_empty() {
            if let Some(parsed) = std::mem::take(&mut cur).finish() {
                out.push(parsed.package.name.clone(), parsed, tally)?;
            }
            held = 0;
            if read == 0 {
                break;
            }
            continue;
        }
        if cur.add(text) {
            held += text.len() as u64;
            tally.check(held)?;
        }
    }
    Ok(out.into_vec())
}

#[derive(Default)]
struct Stanza {
    name: String,
    version: String,
    arch: String,
    origin: String,
    license: String,
    maintainer: String,
    checksum: String,
    depends: Vec<String>,
    provides: Vec<String>,
    dir: String,
    files: Vec<String>,
}

impl Stanza {
    /// Takes in one `K:value` line; false when it is not one this parser keeps.
    fn add(&mut self, line: &str) -> bool {
        let Some((key, value)) = line.split_once(':') else {
            return false;
        };
        match key {
            "P" => self.name = value.into(),
            "V" => self.version = value.into(),
            "A" => self.arch = value.into(),
            "o" => self.origin = value.into(),
            "L" => self.license = value.into(),
            "m" => self.maintainer = value.into(),
            "C" => self.checksum = value.into(),
            "D" => self.depends = value.split_whitespace().map(str::to_owned).collect(),
            "p" => self.provides = value.split_whitespace().map(str::to_owned).collect(),
            "F" => self.dir = value.into(),
            "R" => {
                let file = if self.dir.is_empty() {
                    value.to_owned()
                } else {
                    format!("{}/{value}", self.dir)
                };
                self.files.push(file);
            }
            _ => return false,
        }
        true
    }

    fn finish(self) -> Option<Parsed> {
        if self.name.is_empty() || self.version.is_empty() {
            return None;
        }
        let src_name = if self.origin.is_empty() {
            self.name.clone()
        } else {
            self.origin
        };
        let depends = self
            .depends
            .iter()
            .filter(|d| !d.starts_with('!'))
            .map(|d| strip_constraint(d).to_owned())
            .collect();
        let provides = self
            .provides
            .iter()
            .map(|p| p.split('=').next().unwrap_or(p).to_owned())
            .collect();
        let package = Package {
            id: format!("{}@{}", self.name, self.version),
            name: self.name,
            version: self.version.clone(),
            arch: self.arch,
            src_name,
            src_version: self.version,
            licenses: split_licenses(&self.license),
            maintainer: self.maintainer,
            digest: checksum_digest(&self.checksum).unwrap_or_default(),
            installed_files: self.files,
            analyzed_by: NAME.to_owned(),
            ..Package::default()
        };
        Some(Parsed {
            package,
            depends,
            provides,
        })
    }
}

/// `musl>=1.2` → `musl`.
fn strip_constraint(dep: &str) -> &str {
    dep.split(['<', '>', '=', '~']).next().unwrap_or(dep)
}

/// `Q1<base64 sha1>` → `sha1:<hex>` (`Q2` is SHA-256).
fn checksum_digest(checksum: &str) -> Option<String> {
    let (alg, b64) = if let Some(b64) = checksum.strip_prefix("Q1") {
        ("sha1", b64)
    } else if let Some(b64) = checksum.strip_prefix("Q2") {
        ("sha256", b64)
    } else {
        return None;
    };
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(format!("{alg}:{}", hex::encode(raw)))
}

/// Splits a license field into license names: SPDX expressions at `AND`/`OR` (keeping
/// `WITH` exceptions attached), older space-separated lists at spaces.
pub(crate) fn split_licenses(field: &str) -> Vec<String> {
    let cleaned = field.replace(['(', ')'], " ");
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let is_op = |w: &str| w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or");
    let mut out: Vec<String> = Vec::new();
    if !words
        .iter()
        .any(|w| is_op(w) || w.eq_ignore_ascii_case("with"))
    {
        out.extend(words.iter().map(|w| (*w).to_owned()));
    } else {
        let mut cur: Vec<&str> = Vec::new();
        for w in words {
            if is_op(w) {
                if !cur.is_empty() {
                    out.push(cur.join(" "));
                    cur.clear();
                }
            } else {
                cur.push(w);
            }
        }
        if !cur.is_empty() {
            out.push(cur.join(" "));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|l| seen.insert(l.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyser::parsed::resolve_depends;

    /// Real-format stanzas from an Alpine 3.10 image (file lists trimmed).
    const INSTALLED: &str = "\
C:Q1V02GtkVQ6nhbEUcRStn8bQ0ww4E=
P:musl
V:1.1.22-r3
A:x86_64
S:368437
I:598016
T:the musl c library (libc) implementation
U:http://www.musl-libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1562843447
c:7ba52b9f9e6c92ff8e8b7f6ec4e1fe3fd6f21b3c
p:so:libc.musl-x86_64.so.1=1
F:lib
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1YE23Q4TlgNtPvHfxUOFjBWG7TJw=

C:Q1V7OPpOrwm8PLQ2hJjmW1VjGYb60=
P:busybox
V:1.30.1-r3
A:x86_64
S:502379
I:933888
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Natanael Copa <ncopa@alpinelinux.org>
t:1573155418
c:12ac31d3ba9bc6bff3fe10e17e33d9e1f8ae2c3e
D:so:libc.musl-x86_64.so.1
p:/bin/sh cmd:busybox=1.30.1-r3 cmd:sh=1.30.1-r3
r:busybox-initscripts
F:bin
R:busybox
R:sh
F:etc
R:securetty

C:Q1V01NVvXtFMWmSuDg/Cmdt2nHIJk=
P:alpine-baselayout
V:3.1.2-r0
A:x86_64
S:19656
I:212992
T:Alpine base dir structure and init scripts
U:https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout
L:GPL-2.0-only
o:alpine-baselayout
m:Natanael Copa <ncopa@alpinelinux.org>
t:1560506806
c:cb70ca5c6d6db0399d2dd09189c5d57827bce5cd
D:/bin/sh so:libc.musl-x86_64.so.1
r:alpine-base
F:etc
R:hosts
R:sysctl.conf
F:etc/crontabs
R:root

C:Q1xyz
P:broken-checksum
V:1.0-r0
o:
L:MIT AND (BSD-3-Clause OR GPL-2.0-or-later WITH Classpath-exception-2.0)
D:!conflicting missing-dep musl>=1.1
";

    #[test]
    fn parses_installed_db() {
        let mut parsed = parse(INSTALLED);
        resolve_depends(&mut parsed);
        assert_eq!(parsed.len(), 4);
        let musl = &parsed[0].package;
        assert_eq!(musl.id, "musl@1.1.22-r3");
        assert_eq!(musl.version, "1.1.22-r3");
        assert_eq!(musl.release, "");
        assert_eq!(musl.arch, "x86_64");
        assert_eq!(musl.src_name, "musl");
        assert_eq!(musl.src_version, "1.1.22-r3");
        assert_eq!(musl.licenses, ["MIT"]);
        assert_eq!(musl.maintainer, "Timo Teräs <timo.teras@iki.fi>");
        assert_eq!(musl.digest, "sha1:574d86b64550ea785b1147114ad9fc6d0d30c381");
        assert_eq!(
            musl.installed_files,
            ["lib/libc.musl-x86_64.so.1", "lib/ld-musl-x86_64.so.1"]
        );
        assert!(musl.depends_on.is_empty());

        let busybox = &parsed[1].package;
        assert_eq!(busybox.depends_on, ["musl@1.1.22-r3"]);
        assert_eq!(
            busybox.installed_files,
            ["bin/busybox", "bin/sh", "etc/securetty"]
        );

        // Dependencies resolve through provides: /bin/sh is busybox.
        let base = &parsed[2].package;
        assert_eq!(base.depends_on, ["busybox@1.30.1-r3", "musl@1.1.22-r3"]);
        assert_eq!(
            base.installed_files,
            ["etc/hosts", "etc/sysctl.conf", "etc/crontabs/root"]
        );

        let broken = &parsed[3].package;
        assert_eq!(broken.digest, "");
        assert_eq!(broken.src_name, "broken-checksum");
        assert_eq!(broken.depends_on, ["musl@1.1.22-r3"]);
        assert_eq!(
            broken.licenses,
            [
                "MIT",
                "BSD-3-Clause",
                "GPL-2.0-or-later WITH Classpath-exception-2.0"
            ]
        );
    }

    #[test]
    fn duplicate_names_collapse_and_the_last_entry_wins() {
        let text = "P:a\nV:1\nR:one\n\nP:b\nV:1\n\nP:a\nV:2\nR:two\n";
        let mut tally = Tally::new(LayerLimits::UNBOUNDED);
        let parsed = parse_reader(&mut text.as_bytes(), &mut tally).unwrap();
        let got: Vec<(&str, &[String])> = parsed
            .iter()
            .map(|p| (p.package.id.as_str(), p.package.installed_files.as_slice()))
            .collect();
        assert_eq!(got, [("a@2", &["two".to_owned()][..]), ("b@1", &[][..])]);
        assert_eq!(tally.counters.duplicates_collapsed, 1);
    }

    #[test]
    fn licenses_split() {
        assert_eq!(split_licenses("MIT BSD GPL2+"), ["MIT", "BSD", "GPL2+"]);
        assert_eq!(split_licenses("GPL-2.0-only"), ["GPL-2.0-only"]);
        assert_eq!(split_licenses("MIT OR Apache-2.0"), ["MIT", "Apache-2.0"]);
        assert!(split_licenses("").is_empty());
    }

    #[test]
    fn checksums() {
        assert_eq!(
            checksum_digest("Q1V02GtkVQ6nhbEUcRStn8bQ0ww4E=").as_deref(),
            Some("sha1:574d86b64550ea785b1147114ad9fc6d0d30c381")
        );
        assert_eq!(checksum_digest("Q1!!!"), None);
        assert_eq!(checksum_digest("plain"), None);
    }
}
