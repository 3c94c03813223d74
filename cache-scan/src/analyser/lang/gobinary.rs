//! `gobinary`: the build information the Go linker embeds in an executable, read from
//! the ELF file without running it, and turned into packages as the reference does.
//!
//! The build information starts with the 16-byte-aligned magic `\xff Go buildinf:` in
//! the `.go.buildinfo` section (or, without section headers, the first writable,
//! non-executable segment): a pointer size and flags byte, then either the Go version
//! and the module list inline as length-prefixed strings (Go 1.18 and later) or two
//! pointers to them (earlier). The module list has lines `path`, `mod`, `dep`, `=>`
//! (the replacement of the line before) and `build KEY=VALUE`.
//!
//! Packages: `stdlib` at the Go version (`v1.22.0`, relationship `direct`), every
//! dependency (its replacement when replaced; `(devel)` read as no version), and the main
//! module (relationship `root`, depending on all the others). The main module's version
//! is its recorded one unless that is empty or a pseudo-version, in which case a semantic
//! version set with `-ldflags -X …version=…` is used when one is found.

use std::io::{Read, Seek};

use cache_core::Package;

use super::elf::{Elf, PF_W, PF_X, PT_LOAD};

const MAGIC: &[u8] = b"\xff Go buildinf:";
/// How much of the data segment is searched for the magic.
const SEARCH: u64 = 1 << 20;
/// Longest version or module list read.
const MAX_STRING: u64 = 16 << 20;

/// The packages of a Go executable; `None` when it is not one.
pub(crate) fn parse<R: Read + Seek>(elf: &Elf, r: &mut R) -> Result<Option<Vec<Package>>, String> {
    let Some((version, modinfo)) = raw_build_info(elf, r)? else {
        return Ok(None);
    };
    Ok(Some(packages(&version, &modinfo)?))
}

/// The Go version and module list, if the file has build information.
fn raw_build_info<R: Read + Seek>(
    elf: &Elf,
    r: &mut R,
) -> Result<Option<(String, String)>, String> {
    let (addr, size) = match elf.section(".go.buildinfo") {
        Some(s) => (s.addr, s.size),
        None => match elf
            .segments
            .iter()
            .find(|s| s.kind == PT_LOAD && s.flags & (PF_X | PF_W) == PF_W)
        {
            Some(s) => (s.vaddr, s.memsz),
            None => return Ok(None),
        },
    };
    if size == 0 {
        return Ok(None);
    }
    let Ok(data) = elf.read_vaddr(r, addr, size.min(SEARCH)) else {
        return Ok(None);
    };
    let Some(at) = (0..data.len())
        .step_by(16)
        .find(|&i| data.get(i..i + MAGIC.len()) == Some(MAGIC))
    else {
        return Ok(None);
    };
    let header = data.get(at..at + 32).ok_or("build information cut short")?;
    let (ptr_size, flags) = match header.get(14..16) {
        Some(&[size, flags]) => (usize::from(size), flags),
        _ => return Err("build information cut short".into()),
    };
    let big = flags & 1 != 0;
    let (version, modinfo) = if flags & 2 != 0 {
        // Inline strings follow the 32-byte header; read past the searched window when
        // the module list is long.
        let start = addr + (at as u64) + 32;
        let mut rest = elf.read_vaddr(
            r,
            start,
            MAX_STRING.min(size.saturating_sub(at as u64 + 32)),
        )?;
        let (version, used) = varint_string(&rest)?;
        rest.drain(..used);
        let (modinfo, _) = varint_string(&rest)?;
        (version, modinfo)
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return Err(format!("pointer size {ptr_size}"));
        }
        // A pointer of `ptr_size` bytes at the start of `b` (callers check the length).
        let ptr = |b: &[u8]| -> u64 {
            let bytes = b.get(..ptr_size).unwrap_or_default();
            let fold = |v: u64, byte: &u8| (v << 8) | u64::from(*byte);
            if big {
                bytes.iter().fold(0, fold)
            } else {
                bytes.iter().rev().fold(0, fold)
            }
        };
        let fields = header
            .get(16..16 + 2 * ptr_size)
            .ok_or("build information cut short")?;
        let read_string = |r: &mut R, p: u64| -> Result<Vec<u8>, String> {
            let hdr = elf.read_vaddr(r, p, 2 * ptr_size as u64)?;
            if hdr.len() < 2 * ptr_size {
                return Err("string header cut short".into());
            }
            let (data, len) = (ptr(&hdr), ptr(hdr.get(ptr_size..).unwrap_or_default()));
            if len > MAX_STRING {
                return Err(format!("a {len}-byte string"));
            }
            let bytes = elf.read_vaddr(r, data, len)?;
            Ok(bytes)
        };
        let version = read_string(r, ptr(fields))?;
        let modinfo = read_string(r, ptr(fields.get(ptr_size..).unwrap_or_default()))?;
        (version, modinfo)
    };
    if version.is_empty() {
        return Ok(None);
    }
    let version = String::from_utf8_lossy(&version).into_owned();
    // The module list sits between two 16-byte sentinels.
    let b = modinfo.as_slice();
    let modinfo = if b.len() >= 33 && b.get(b.len() - 17) == Some(&b'\n') {
        String::from_utf8_lossy(&b[16..b.len() - 16]).into_owned()
    } else {
        String::new()
    };
    Ok(Some((version, modinfo)))
}

/// A length-prefixed (unsigned varint) string and the bytes it used.
fn varint_string(b: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let (mut len, mut shift, mut i) = (0u64, 0u32, 0usize);
    loop {
        let byte = *b.get(i).ok_or("string length cut short")?;
        i += 1;
        if shift >= 64 {
            return Err("string length overflows".into());
        }
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let len = usize::try_from(len).map_err(|_| "string too long")?;
    let s = b
        .get(i..i.checked_add(len).ok_or("string too long")?)
        .ok_or("string cut short")?;
    Ok((s.to_vec(), i + len))
}

#[derive(Default)]
struct Module {
    path: String,
    version: String,
}

/// Packages from the Go version and the module list.
fn packages(go_version: &str, modinfo: &str) -> Result<Vec<Package>, String> {
    let mut main = Module::default();
    let mut deps: Vec<(Module, Option<Module>)> = Vec::new();
    let mut ldflags = String::new();
    for line in modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let module = |f: &[&str]| Module {
            path: f.get(1).copied().unwrap_or_default().to_owned(),
            version: f.get(2).copied().unwrap_or_default().to_owned(),
        };
        match fields.first().copied() {
            Some("mod") => main = module(&fields),
            Some("dep") => deps.push((module(&fields), None)),
            Some("=>") => match deps.last_mut() {
                Some(last) => last.1 = Some(module(&fields)),
                None => return Err("a replacement without a module".into()),
            },
            Some("build") => {
                if let Some(v) = fields.get(1).and_then(|kv| kv.strip_prefix("-ldflags=")) {
                    ldflags = unquote(v);
                }
            }
            _ => {}
        }
    }
    let stdlib = {
        let v = go_version.strip_prefix("go").unwrap_or(go_version);
        let v = v.split(' ').next().unwrap_or_default();
        let v = v.split("-X:").next().unwrap_or_default();
        format!("v{v}")
    };
    let id = |name: &str, version: &str| {
        if version.is_empty() {
            name.to_owned()
        } else if version.starts_with('v') {
            format!("{name}@{version}")
        } else {
            format!("{name}@v{version}")
        }
    };
    let devel = |v: &str| {
        if v == "(devel)" {
            String::new()
        } else {
            v.to_owned()
        }
    };
    let mut pkgs = vec![Package {
        id: id("stdlib", &stdlib),
        name: "stdlib".into(),
        version: stdlib.clone(),
        relationship: "direct".into(),
        ..Package::default()
    }];
    for (dep, replace) in deps {
        if dep.path.is_empty() {
            continue;
        }
        let m = replace.unwrap_or(dep);
        let version = devel(&m.version);
        pkgs.push(Package {
            id: id(&m.path, &version),
            name: m.path,
            version,
            ..Package::default()
        });
    }
    if !main.path.is_empty() {
        let mut version = devel(&main.version);
        if version.is_empty() || is_pseudo_version(&version) {
            let from_flags = ldflags_version(&main.path, &ldflags);
            if !from_flags.is_empty() {
                version = from_flags;
            }
        }
        let mut depends_on: Vec<String> = pkgs.iter().map(|p| p.id.clone()).collect();
        depends_on.sort();
        pkgs.push(Package {
            id: id(&main.path, &version),
            name: main.path,
            version,
            relationship: "root".into(),
            depends_on,
            ..Package::default()
        });
    }
    super::sort_packages(&mut pkgs);
    Ok(pkgs)
}

/// A `build` value as Go quotes it when it holds spaces, tabs or quotes.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The version an `-ldflags` value sets with `-X KEY=VALUE` for a key ending in
/// `.version` or `.ver` with a semantic version as value: first those under
/// `MODULE/cmd/`, then those whose last element starts with `main`, `common`, `version`
/// or `cmd`, then any other; empty when none, or when one tier has several.
fn ldflags_version(module: &str, ldflags: &str) -> String {
    let words = shell_words(ldflags);
    let mut tiers: [Vec<String>; 3] = Default::default();
    let mut set: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let value = if w == "-X" {
            i += 1;
            words.get(i).cloned()
        } else {
            w.strip_prefix("-X=")
                .or_else(|| w.strip_prefix("-X"))
                .filter(|_| w.starts_with("-X"))
                .map(str::to_owned)
        };
        i += 1;
        let Some(value) = value else { continue };
        for pair in value.split(',') {
            if let Some((k, v)) = pair.split_once('=') {
                set.retain(|(key, _)| key != k);
                set.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    for (key, val) in set {
        let key = key.trim_start_matches('\'');
        let val = val.trim_end_matches('\'');
        let lower = key.to_lowercase();
        if !(lower.ends_with(".version") || lower.ends_with(".ver"))
            || !(is_semver(val) || is_semver(&format!("v{val}")))
        {
            continue;
        }
        let last = key.rsplit('/').next().unwrap_or(key);
        let prefix = last.split('.').next().unwrap_or_default().to_lowercase();
        let tier = if key.starts_with(&format!("{module}/cmd/")) {
            0
        } else if ["main", "common", "version", "cmd"].contains(&prefix.as_str()) {
            1
        } else {
            2
        };
        tiers[tier].push(val.to_owned());
    }
    for t in tiers {
        match t.len() {
            0 => continue,
            1 => return t.into_iter().next().unwrap_or_default(),
            _ => return String::new(),
        }
    }
    String::new()
}

/// Words of a shell command line: blanks separate, quotes group, `\` escapes.
fn shell_words(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None::<char>, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, ' ' | '\t' | '\n') => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Go's `semver.IsValid`: `vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]`.
fn is_semver(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let (core, build) = match rest.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (rest, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    let num_ok = |n: &str| {
        !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
    };
    if nums.is_empty() || nums.len() > 3 || !nums.iter().all(|n| num_ok(n)) {
        return false;
    }
    if (pre.is_some() || build.is_some()) && nums.len() != 3 {
        return false;
    }
    let ident_ok = |s: &str, numeric_rule: bool| {
        s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && (!numeric_rule
                    || !p.bytes().all(|c| c.is_ascii_digit())
                    || p == "0"
                    || !p.starts_with('0'))
        })
    };
    pre.is_none_or(|p| ident_ok(p, true)) && build.is_none_or(|b| ident_ok(b, false))
}

/// A pseudo-version such as `v0.0.0-20230130190635-5e31092b0621`: a semantic version
/// whose last pre-release part is a 14-digit time stamp, a dash and a revision.
fn is_pseudo_version(v: &str) -> bool {
    if v.matches('-').count() < 2 || !is_semver(v) {
        return false;
    }
    let core = v.split('+').next().unwrap_or_default();
    let mut parts = core.rsplitn(3, '-');
    let (rev, stamp) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let stamp = stamp.rsplit('.').next().unwrap_or_default();
    !rev.is_empty()
        && rev.bytes().all(|c| c.is_ascii_alphanumeric())
        && stamp.len() == 14
        && stamp.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_list_to_packages() {
        let modinfo = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgithub.com/a/b\tv1.2.3\th1:x=\ndep\tgolang.org/x/sys\tv0.1.0\th1:y=\n=>\t../sys\t(devel)\t\nbuild\t-ldflags=\"-s -X main.version=1.4.0\"\n";
        let p = packages("go1.22.5 X:boringcrypto", modinfo).unwrap();
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.id.as_str(), p.relationship.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("example.com/app@v1.4.0", "root"),
                ("stdlib@v1.22.5", "direct"),
                ("../sys", ""),
                ("github.com/a/b@v1.2.3", "")
            ]
        );
        assert_eq!(p[0].version, "1.4.0");
        assert_eq!(
            p[0].depends_on,
            ["../sys", "github.com/a/b@v1.2.3", "stdlib@v1.22.5"]
        );
    }

    #[test]
    fn versions() {
        assert!(is_semver("v1.2.3") && is_semver("v1") && is_semver("v1.2.3-rc.1+meta"));
        assert!(!is_semver("1.2.3") && !is_semver("v01.2") && !is_semver("v1.2-rc"));
        assert!(is_pseudo_version("v0.0.0-20230130190635-5e31092b0621"));
        assert!(is_pseudo_version("v1.2.4-0.20230130190635-5e31092b0621"));
        assert!(!is_pseudo_version("v1.2.3-rc.1"));
        assert_eq!(
            ldflags_version("m", "-X main.version=v1 -X=other.version=2.0.0"),
            "v1"
        );
        assert_eq!(
            ldflags_version("m", "-X 'main.version=1.0' -X cmd.ver=2.0"),
            ""
        );
        assert_eq!(
            ldflags_version("m", "-X m/cmd/x.version=3.0.0 -X main.version=1.0"),
            "3.0.0"
        );
    }
}
