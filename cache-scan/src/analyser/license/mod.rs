//! License names as packages declare them, split and normalised to SPDX IDs the way the
//! reference scanner does, so both tools store the same names.
//!
//! Two steps, each a public rule of the reference's analysers:
//!
//! - [`split`] cuts a declaration such as `GPL-2+ or Artistic, and BSD` into names at
//!   commas and lower-case `or`/`and`, keeping `Apache License, Version 2.0` and
//!   `… v2 or later` whole; a declaration that reads like license *text* (it contains a
//!   URL, `(c)`, `;`, …) is kept whole as `text://…`.
//! - [`normalize`] maps one name to an SPDX ID: it upper-cases, drops `the`,
//!   `license`/`licence`, turns `+`/`or later` into the "or later" form and `v2`/
//!   `version 2` into `-2`, then looks the result up in the table `mapping.tsv` (common
//!   spellings, e.g. `BSD` → `BSD-3-Clause`, `Expat` → `MIT`) or, failing that, in the
//!   SPDX license list `spdx-ids.txt` (case-insensitive). GNU licenses get `-only` or
//!   `-or-later`. A name found in neither is kept as written (trimmed).
//!
//! `mapping.tsv` holds one `NAME<TAB>SPDX-ID[+]` per line (`+`: the name means "or
//! later"); `spdx-ids.txt` is the SPDX license list as the CycloneDX 1.6 schema
//! enumerates it (package `cyclonedx-python-lib` 11.12.0, `spdx.SNAPSHOT.schema.json`).

use std::{collections::HashMap, sync::OnceLock};

/// Prefix of a declaration kept whole because it reads like license text.
pub(crate) const TEXT_PREFIX: &str = "text://";

const MAPPING: &str = include_str!("mapping.tsv");
const SPDX_IDS: &str = include_str!("spdx-ids.txt");

/// Licenses of the GNU family, written with `-only` or `-or-later`.
const GNU: [&str; 17] = [
    "AGPL-1.0",
    "AGPL-3.0",
    "GFDL-1.1-invariants",
    "GFDL-1.1-no-invariants",
    "GFDL-1.1",
    "GFDL-1.2-invariants",
    "GFDL-1.2-no-invariants",
    "GFDL-1.2",
    "GFDL-1.3-invariants",
    "GFDL-1.3-no-invariants",
    "GFDL-1.3",
    "GPL-1.0",
    "GPL-2.0",
    "GPL-3.0",
    "LGPL-2.0",
    "LGPL-2.1",
    "LGPL-3.0",
];

/// Words that make a declaration license text rather than a name.
const TEXT_KEYWORDS: [&str; 11] = [
    "http://",
    "https://",
    "(c)",
    "as-is",
    ";",
    "hereby",
    "permission to use",
    "permission is",
    "use in source",
    "use, copy, modify",
    "using",
];

struct Tables {
    /// Upper-case spelling → (SPDX ID, means "or later").
    mapping: HashMap<&'static str, (&'static str, bool)>,
    /// Upper-case SPDX ID → its canonical spelling.
    spdx: HashMap<String, &'static str>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| Tables {
        mapping: MAPPING
            .lines()
            .filter_map(|line| {
                let (name, id) = line.split_once('\t')?;
                Some(match id.strip_suffix('+') {
                    Some(id) => (name, (id, true)),
                    None => (name, (id, false)),
                })
            })
            .collect(),
        spdx: SPDX_IDS
            .lines()
            .filter(|l| !l.is_empty())
            .map(|id| (id.to_ascii_uppercase(), id))
            .collect(),
    })
}

/// Splits a license declaration into names and normalises each ([`normalize`]); empty
/// names are dropped, duplicates removed (first kept).
pub(crate) fn names(declared: &str) -> Vec<String> {
    normalize_all(split(declared))
}

/// Normalises each name, dropping empty ones and duplicates (first kept).
pub(crate) fn normalize_all<I: IntoIterator<Item = String>>(names: I) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let n = normalize(&name);
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Splits a declaration at commas and lower-case ` or `/` and ` (see the module docs).
pub(crate) fn split(declared: &str) -> Vec<String> {
    if declared.is_empty() {
        return Vec::new();
    }
    let lower = declared.to_lowercase();
    if TEXT_KEYWORDS.iter().any(|k| lower.contains(k)) {
        return vec![format!("{TEXT_PREFIX}{declared}")];
    }
    let mut parts: Vec<&str> = Vec::new();
    let bytes = declared.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(end) = separator_at(bytes, i) {
            parts.push(declared.get(start..i).unwrap_or_default());
            start = end;
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    parts.push(declared.get(start..).unwrap_or_default());
    let mut out: Vec<String> = Vec::new();
    for part in parts {
        let lower = part.to_lowercase();
        let first = lower.split(' ').next().unwrap_or_default();
        if let Some(last) = out.last_mut() {
            if first == "ver" || first == "version" {
                last.push_str(", ");
                last.push_str(part);
                continue;
            }
            if first == "later" {
                last.push_str(" or ");
                last.push_str(part);
                continue;
            }
            let exception = match first {
                "lesser" => Some("GNU Library or Lesser General Public License (LGPL)"),
                "distribution" => {
                    Some("Common Development and Distribution License 1.0 (CDDL-1.0)")
                }
                "disclaimer" => Some("Historical Permission Notice and Disclaimer (HPND)"),
                _ => None,
            };
            if let Some(lic) = exception {
                if lic == format!("{last} or {part}") || lic == format!("{last} and {part}") {
                    *last = lic.to_owned();
                }
                continue;
            }
        }
        out.push(part.to_owned());
    }
    out
}

/// The end of a separator starting at `i`: `,?[_ ]+(or|and)[_ ]+` or `,[ ]*`.
fn separator_at(b: &[u8], i: usize) -> Option<usize> {
    let blank = |c: u8| c == b' ' || c == b'_';
    let run = |mut j: usize, f: &dyn Fn(u8) -> bool| {
        while b.get(j).is_some_and(|c| f(*c)) {
            j += 1;
        }
        j
    };
    let mut j = i;
    if b.get(j) == Some(&b',') {
        j += 1;
    }
    let k = run(j, &blank);
    if k > j {
        for word in [&b"or"[..], b"and"] {
            if b.get(k..k + word.len()) == Some(word) {
                let end = run(k + word.len(), &blank);
                if end > k + word.len() {
                    return Some(end);
                }
            }
        }
    }
    if b.get(i) == Some(&b',') {
        return Some(run(i + 1, &|c| c == b' '));
    }
    None
}

/// The canonical spelling of an SPDX license ID, matched without regard to case.
pub(crate) fn spdx_id(name: &str) -> Option<String> {
    tables()
        .spdx
        .get(&name.to_ascii_uppercase())
        .map(|id| (*id).to_owned())
}

/// One license name as an SPDX ID where one is known (see the module docs).
pub(crate) fn normalize(name: &str) -> String {
    let name = name.trim();
    if name.starts_with(TEXT_PREFIX) {
        return name.to_owned();
    }
    let (key, plus) = standardize(name);
    let t = tables();
    if let Some((id, mapped_plus)) = t.mapping.get(key.as_str()) {
        return render(id, plus || *mapped_plus);
    }
    if let Some(id) = t.spdx.get(&key) {
        return render(id, plus);
    }
    name.to_owned()
}

fn render(id: &str, plus: bool) -> String {
    if GNU.contains(&id) {
        if plus {
            format!("{id}-or-later")
        } else {
            format!("{id}-only")
        }
    } else if plus {
        format!("{id}+")
    } else {
        id.to_owned()
    }
}

/// The lookup key of a name and whether it means "or later".
fn standardize(name: &str) -> (String, bool) {
    let mut s = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    if s.starts_with("HTTP") {
        return (s, false);
    }
    s = s.replace("LICENCE", "LICENSE");
    for prefix in ["THE "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_owned();
        }
    }
    for suffix in [" LICENSE", " LICENSED", "-LICENSE", "-LICENSED"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = rest.to_owned();
        }
    }
    if s != "UNLICENSE"
        && let Some(rest) = s.strip_suffix("LICENSE")
    {
        s = rest.to_owned();
    }
    if s != "UNLICENSED"
        && let Some(rest) = s.strip_suffix("LICENSED")
    {
        s = rest.to_owned();
    }
    let mut plus = false;
    for suffix in ["+", "-OR-LATER", " OR LATER"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = rest.to_owned();
            plus = true;
        }
    }
    for suffix in ["-ONLY", " ONLY"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = rest.to_owned();
        }
    }
    (version_suffix(&s), plus)
}

/// Rewrites a trailing version written `V2`, ` VERSION 2.0`, `(2)` … as `-2`: the
/// leftmost `X[ LICENSE][ ][,(-][ ][V|V.|VER|VER.|VERSION|VERSION-|-][ ]N[.N…][)]` that
/// runs to the end, `X` a letter other than `V` or `)`, becomes `X-N[.N…]`.
fn version_suffix(s: &str) -> String {
    let b = s.as_bytes();
    for i in 0..b.len() {
        let c = b[i];
        if !(c.is_ascii_uppercase() && c != b'V' || c == b')') {
            continue;
        }
        for end in [b.len(), b.len().saturating_sub(1)] {
            if end < b.len() && b.get(end) != Some(&b')') {
                continue;
            }
            let Some(v) = version_start(b, i + 1, end) else {
                continue;
            };
            if middle_matches(b.get(i + 1..v).unwrap_or_default()) {
                let head = s.get(..i).unwrap_or_default();
                let version = s.get(v..end).unwrap_or_default();
                return format!("{head}{}-{version}", c as char);
            }
        }
    }
    s.to_owned()
}

/// The earliest start in `from..end` of a `[1-9](\.[0-9])*` that ends at `end`.
fn version_start(b: &[u8], from: usize, end: usize) -> Option<usize> {
    (from..end).find(|&v| {
        let Some(tail) = b.get(v..end) else {
            return false;
        };
        let Some((first, rest)) = tail.split_first() else {
            return false;
        };
        (b'1'..=b'9').contains(first)
            && rest.len() % 2 == 0
            && rest
                .chunks(2)
                .all(|p| p[0] == b'.' && p[1].is_ascii_digit())
    })
}

/// True when `m` is `[ LICENSE]\s*[,(-]?\s*(V|V.|VER|VER.|VERSION|VERSION-|-)?\s*`.
fn middle_matches(m: &[u8]) -> bool {
    let ws = |m: &[u8]| -> usize { m.iter().take_while(|c| c.is_ascii_whitespace()).count() };
    let starts: Vec<&[u8]> = match m.strip_prefix(b" LICENSE") {
        Some(rest) => vec![rest, m],
        None => vec![m],
    };
    for m in starts {
        let m = &m[ws(m)..];
        let mut seps: Vec<&[u8]> = vec![m];
        if let Some((c, rest)) = m.split_first()
            && b",(-".contains(c)
        {
            seps.push(rest);
        }
        for m in seps {
            let m = &m[ws(m)..];
            let prefixes: [&[u8]; 8] = [
                b"",
                b"V",
                b"V.",
                b"VER",
                b"VER.",
                b"VERSION",
                b"VERSION-",
                b"-",
            ];
            for p in prefixes {
                if let Some(rest) = m.strip_prefix(p)
                    && ws(rest) == rest.len()
                {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_the_reference_does() {
        for (declared, want) in [
            ("GPL-1+,GPL-2", &["GPL-1+", "GPL-2"][..]),
            (
                "GPL-1+ or Artistic or Artistic-dist",
                &["GPL-1+", "Artistic", "Artistic-dist"],
            ),
            ("LGPLv3+_or_GPLv2+", &["LGPLv3+", "GPLv2+"]),
            ("BSD-3-CLAUSE and GPL-2", &["BSD-3-CLAUSE", "GPL-2"]),
            (
                "GPL-1+ or Artistic, and BSD-4-clause-POWERDOG",
                &["GPL-1+", "Artistic", "BSD-4-clause-POWERDOG"],
            ),
            (
                "BSD 3-Clause License or Apache License, Version 2.0",
                &["BSD 3-Clause License", "Apache License, Version 2.0"],
            ),
            ("Apache-2.0 OR MIT", &["Apache-2.0 OR MIT"]),
            ("", &[]),
        ] {
            assert_eq!(split(declared), want, "{declared:?}");
        }
        assert_eq!(split("see https://x.org"), ["text://see https://x.org"]);
    }

    #[test]
    fn normalises_to_spdx_ids() {
        for (name, want) in [
            ("GPL-2+", "GPL-2.0-or-later"),
            ("GPLv2+", "GPL-2.0-or-later"),
            ("BSD-3-clause", "BSD-3-Clause"),
            ("LGPL-2.1", "LGPL-2.1-only"),
            ("BSD License", "BSD-3-Clause"),
            ("BSD", "BSD-3-Clause"),
            ("MIT", "MIT"),
            ("MIT License", "MIT"),
            ("Expat", "MIT"),
            ("apache-2.0", "Apache-2.0"),
            ("Apache Software License", "Apache-2.0"),
            ("Apache License, Version 2.0", "Apache-2.0"),
            ("Mozilla Public License 2.0 (MPL 2.0)", "MPL-2.0"),
            ("GPL-2.0-or-later", "GPL-2.0-or-later"),
            ("Zlib", "Zlib"),
            ("public-domain", "public-domain"),
            ("  Something Odd  ", "Something Odd"),
            ("Apache-2.0 OR MIT", "Apache-2.0 OR MIT"),
        ] {
            assert_eq!(normalize(name), want, "{name:?}");
        }
    }
}
