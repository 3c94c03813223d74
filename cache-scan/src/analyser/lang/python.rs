//! `python-pkg`: Python core metadata (`METADATA` of a wheel's `.dist-info`, `PKG-INFO`
//! of an `.egg-info`), read as MIME headers the way Go's `net/textproto` reads them.
//!
//! Name and version are required. The license is `License-Expression` when present;
//! else the `License ::` classifiers (the last part of each, without `OSI Approved`),
//! joined with `, `; else `License`. A license given only as a `License-File` is not
//! classified (no license is recorded).

use std::io::Read;

use cache_core::Package;

use super::Skip;
use crate::analyser::license;

/// Most header bytes read; the body after the first blank line is never read.
const MAX_HEADER: usize = 1 << 20;

/// Reads the header part of a metadata file (up to the first blank line).
pub(crate) fn read_header<R: Read>(data: &mut R) -> Result<String, Skip> {
    let mut out: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        let start = out.len().saturating_sub(3);
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
        if let Some(end) = blank_line(out.get(start..).unwrap_or_default()) {
            out.truncate(start + end);
            break;
        }
        if out.len() > MAX_HEADER {
            return Err(format!("its header is over the {MAX_HEADER}-byte limit"));
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Where a blank line (`\n\n` or `\n\r\n`) starts in `b`, or `None`.
fn blank_line(b: &[u8]) -> Option<usize> {
    (0..b.len()).find(|&i| {
        b.get(i) == Some(&b'\n')
            && (b.get(i + 1) == Some(&b'\n')
                || (b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n')))
    })
}

/// The headers, keys canonicalised (`license-expression` → `License-Expression`),
/// continuation lines joined with a space; stops at the first malformed line, keeping
/// what came before it (as the reference does).
fn headers(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some((_, value)) => {
                    let more = line.trim_matches([' ', '\t']);
                    if !more.is_empty() {
                        if !value.is_empty() {
                            value.push(' ');
                        }
                        value.push_str(more);
                    }
                    continue;
                }
                None => break,
            }
        }
        let Some((key, value)) = line.split_once(':') else {
            break;
        };
        if key.is_empty() || !key.bytes().all(is_token) {
            break;
        }
        out.push((canonical(key), value.trim_matches([' ', '\t']).to_owned()));
    }
    out
}

fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn canonical(key: &str) -> String {
    let mut upper = true;
    key.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// The package a metadata header describes.
pub(crate) fn parse(text: &str) -> Result<Package, Skip> {
    let h = headers(text);
    let get = |key: &str| {
        h.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let (name, version) = (get("Name"), get("Version"));
    if name.is_empty() || version.is_empty() {
        return Err("no name or no version in its header".into());
    }
    let license = match get("License-Expression") {
        "" => {
            let classifiers: Vec<&str> = h
                .iter()
                .filter(|(k, v)| k == "Classifier" && v.starts_with("License :: "))
                .filter_map(|(_, v)| v.rsplit(" :: ").next())
                .filter(|l| *l != "OSI Approved")
                .collect();
            if classifiers.is_empty() {
                get("License").to_owned()
            } else {
                classifiers.join(", ")
            }
        }
        expression => expression.to_owned(),
    };
    Ok(Package {
        name: name.to_owned(),
        version: version.to_owned(),
        licenses: license::names(&license),
        ..Package::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, want: Result<(&str, &str, &[&str]), ()>) {
        let got = parse(text);
        match want {
            Ok((name, version, licenses)) => {
                let p = got.unwrap();
                assert_eq!(
                    (p.name.as_str(), p.version.as_str()),
                    (name, version),
                    "{text}"
                );
                assert_eq!(p.licenses, licenses, "{text}");
            }
            Err(()) => assert!(got.is_err(), "{text}"),
        }
    }

    #[test]
    fn metadata_headers() {
        check(
            "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\nClassifier: License :: OSI Approved :: MIT License\n\nbody\nName: other\n",
            Ok(("six", "1.16.0", &["MIT"])),
        );
        check(
            "name: Req_Foo\nversion: 2.0\nLicense-Expression: Apache-2.0 OR MIT\nLicense: BSD\n",
            Ok(("Req_Foo", "2.0", &["Apache-2.0 OR MIT"])),
        );
        check(
            "Name: x\nVersion: 1\nLicense: BSD License\n",
            Ok(("x", "1", &["BSD-3-Clause"])),
        );
        check(
            "Name: x\nVersion: 1\nClassifier: License :: OSI Approved\nClassifier: License :: OSI Approved :: BSD License\nClassifier: License :: OSI Approved :: Apache Software License\n",
            Ok(("x", "1", &["BSD-3-Clause", "Apache-2.0"])),
        );
        check(
            "Name: x\nVersion: 1\nLicense: line one\n  continued\n",
            Ok(("x", "1", &["line one continued"])),
        );
        // A malformed line ends the header; what came before counts.
        check(
            "Name: x\nVersion: 1\n\u{0}\u{1}binary\nLicense: MIT\n",
            Ok(("x", "1", &[])),
        );
        check("Name: nov\n", Err(()));
        check("\u{7f}ELF\u{0}\u{0}\u{2}", Err(()));
        check(" leading: space\nName: x\nVersion: 1\n", Err(()));
    }

    #[test]
    fn header_reading_stops_at_the_blank_line() {
        let mut text = b"Name: a\r\nVersion: 1\r\n\r\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 10 << 20));
        let header = read_header(&mut &text[..]).unwrap();
        assert_eq!(header, "Name: a\r\nVersion: 1\r");
        let huge = vec![b'a'; 2 << 20];
        assert!(read_header(&mut &huge[..]).is_err());
    }
}
