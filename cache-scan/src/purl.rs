//! Package URLs (`pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`) for the packages of an
//! applied image, built as the reference scanner builds them, so both tools name a
//! package alike.
//!
//! A PURL is computed when layers are applied, never stored by an analyser: the `distro`
//! qualifier of an OS package needs the image's OS, which another layer may hold. The
//! rules per type:
//!
//! | result type | PURL type | name and namespace | qualifiers |
//! |---|---|---|---|
//! | `debian`, `ubuntu`, `echo` | `deb` | namespace = OS family | `arch`, `epoch`, `distro=FAMILY-RELEASE` |
//! | `alpine`, `wolfi`, `chainguard`, `minimos` | `apk` | name lower-cased; namespace = OS family | `arch`, `epoch`, `distro=RELEASE` |
//! | Red Hat family, SUSE, Photon, … | `rpm` | namespace = the family's vendor | `arch`, `epoch`, `distro=FAMILY-RELEASE` |
//! | `python-pkg` and other Python types | `pypi` | lower-cased, `_` → `-` | |
//! | `node-pkg`, `npm`, `yarn`, `pnpm` | `npm` | lower-cased; `@scope/` is the namespace | |
//! | `gobinary`, `gomod` | `golang` | lower-cased; up to the last `/` is the namespace; none for `./…` | |
//! | `jar`, `pom`, `gradle` | `maven` | `group:artifact` → namespace `group` | |
//! | `composer`, `composer-vendor` | `composer` | `vendor/name` → namespace `vendor` | |
//! | `gemspec`, `bundler` | `gem` | as is | |
//! | `rustbinary`, `cargo` | `cargo` | as is | |
//! | `conda-pkg` | `conda` | as is | |
//! | `dotnet-core`, `nuget` | `nuget` | as is | |
//!
//! The version is `VERSION[-RELEASE]` (the epoch goes into its qualifier). Segments are
//! percent-encoded (RFC 3986 unreserved characters, sub-delimiters other than `+`, and
//! `:` stay; `@` and `+` are encoded), qualifiers sorted by key. A package without a
//! name has no PURL.

use std::fmt::Write as _;

use cache_core::{Os, Package};

/// The PURL of `pkg`, found by a result of type `result_type` (an OS family for OS
/// packages, an application type such as `python-pkg` otherwise), in an image whose OS is
/// `os` (used by OS packages only); `None` when the package has no name, or for a Go
/// module with a relative path.
///
/// ```
/// use cache_core::{Os, Package};
/// let os = Os { family: "debian".into(), name: "12.11".into(), ..Os::default() };
/// let pkg = Package {
///     name: "libc6".into(),
///     version: "2.36".into(),
///     release: "9+deb12u10".into(),
///     arch: "amd64".into(),
///     ..Package::default()
/// };
/// assert_eq!(
///     cache_scan::purl("debian", Some(&os), &pkg).as_deref(),
///     Some("pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12.11")
/// );
/// let npm = Package { name: "@Scope/Pkg".into(), version: "1.0.0".into(), ..Package::default() };
/// assert_eq!(
///     cache_scan::purl("node-pkg", None, &npm).as_deref(),
///     Some("pkg:npm/%40scope/pkg@1.0.0")
/// );
/// ```
pub fn purl(result_type: &str, os: Option<&Os>, pkg: &Package) -> Option<String> {
    if pkg.name.is_empty() {
        return None;
    }
    let mut qualifiers: Vec<(&str, String)> = Vec::new();
    if !pkg.arch.is_empty() {
        qualifiers.push(("arch", pkg.arch.clone()));
    }
    if pkg.epoch != 0 {
        qualifiers.push(("epoch", pkg.epoch.to_string()));
    }
    let mut version = pkg.version.clone();
    if !pkg.release.is_empty() {
        version.push('-');
        version.push_str(&pkg.release);
    }
    let kind = purl_type(result_type);
    let mut name = pkg.name.clone();
    let mut namespace = String::new();
    match kind {
        "deb" => {
            if let Some(os) = os {
                namespace = os.family.clone();
                qualifiers.push(("distro", format!("{}-{}", os.family, os.name)));
            }
        }
        "rpm" => {
            if let Some(os) = os {
                namespace = rpm_namespace(&os.family).to_owned();
                qualifiers.push(("distro", format!("{}-{}", os.family, os.name)));
            }
        }
        "apk" => {
            name = name.to_lowercase();
            if let Some(os) = os {
                namespace = os.family.to_lowercase();
                qualifiers.push(("distro", os.name.clone()));
            }
        }
        "maven" => (namespace, name) = split_last(&name.replace(':', "/")),
        "pypi" => name = name.replace('_', "-").to_lowercase(),
        "composer" => (namespace, name) = split_last(&name),
        "golang" => {
            if name.starts_with("./") || name.starts_with("../") {
                return None;
            }
            (namespace, name) = split_last(&name.to_lowercase());
            if name.is_empty() {
                return None;
            }
        }
        "npm" => (namespace, name) = split_last(&name.to_lowercase()),
        _ => {}
    }
    qualifiers.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = format!("pkg:{kind}");
    for segment in namespace.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        encode(&mut out, segment, is_segment_safe);
    }
    out.push('/');
    encode(&mut out, &name, is_segment_safe);
    if !version.is_empty() {
        out.push('@');
        encode(&mut out, &version, is_segment_safe);
    }
    for (i, (key, value)) in qualifiers.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        encode(&mut out, key, is_qualifier_safe);
        out.push('=');
        encode(&mut out, value, is_qualifier_safe);
    }
    Some(out)
}

/// The PURL type for a result type.
fn purl_type(t: &str) -> &str {
    match t {
        "jar" | "pom" | "gradle" | "sbt" => "maven",
        "bundler" | "gemspec" => "gem",
        "nuget" | "dotnet-core" | "packages-props" => "nuget",
        "composer" | "composer-vendor" => "composer",
        "conda-pkg" | "conda-environment" => "conda",
        "python-pkg" | "pip" | "pipenv" | "poetry" | "uv" | "pylock" => "pypi",
        "gobinary" | "gomod" => "golang",
        "npm" | "node-pkg" | "yarn" | "pnpm" | "bun" => "npm",
        "rustbinary" | "cargo" => "cargo",
        "alpine" | "chainguard" | "wolfi" | "minimos" => "apk",
        "debian" | "ubuntu" | "echo" => "deb",
        "redhat"
        | "centos"
        | "rocky"
        | "alma"
        | "amazon"
        | "fedora"
        | "oracle"
        | "opensuse"
        | "opensuse-leap"
        | "opensuse-tumbleweed"
        | "sles"
        | "slem"
        | "photon"
        | "azurelinux"
        | "cbl-mariner"
        | "coreos" => "rpm",
        other => other,
    }
}

/// The namespace of an RPM PURL: SUSE products share `suse` and `opensuse`.
fn rpm_namespace(family: &str) -> &str {
    match family {
        "sles" | "slem" => "suse",
        "opensuse-tumbleweed" | "opensuse-leap" => "opensuse",
        other => other,
    }
}

/// `a/b/c` → (`a/b`, `c`); without `/`, no namespace.
fn split_last(name: &str) -> (String, String) {
    match name.rsplit_once('/') {
        Some((ns, n)) => (ns.to_owned(), n.to_owned()),
        None => (String::new(), name.to_owned()),
    }
}

fn is_segment_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~!$&'()*,;=:".contains(&c)
}

fn is_qualifier_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~:".contains(&c)
}

fn encode(out: &mut String, s: &str, safe: fn(u8) -> bool) {
    for &c in s.as_bytes() {
        if safe(c) {
            out.push(c as char);
        } else {
            let _ = write!(out, "%{c:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            ..Package::default()
        }
    }

    #[test]
    fn purls_per_type() {
        let alpine = Os {
            family: "alpine".into(),
            name: "3.20.3".into(),
            ..Os::default()
        };
        let mut musl = pkg("musl", "1.2.5-r0");
        musl.arch = "x86_64".into();
        let mut epoch = pkg("passwd", "4.13+dfsg1");
        epoch.epoch = 1;
        epoch.release = "1+b1".into();
        epoch.arch = "amd64".into();
        let debian = Os {
            family: "debian".into(),
            name: "12.11".into(),
            ..Os::default()
        };
        for (t, os, p, want) in [
            (
                "alpine",
                Some(&alpine),
                musl,
                Some("pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=3.20.3"),
            ),
            (
                "debian",
                Some(&debian),
                epoch,
                Some(
                    "pkg:deb/debian/passwd@4.13%2Bdfsg1-1%2Bb1?arch=amd64&distro=debian-12.11&epoch=1",
                ),
            ),
            (
                "python-pkg",
                None,
                pkg("Req_Foo", "2.0"),
                Some("pkg:pypi/req-foo@2.0"),
            ),
            (
                "node-pkg",
                None,
                pkg("@scope/pkg", "0.0.1"),
                Some("pkg:npm/%40scope/pkg@0.0.1"),
            ),
            (
                "gobinary",
                None,
                pkg("github.com/Foo/bar", "v1.2.3"),
                Some("pkg:golang/github.com/foo/bar@v1.2.3"),
            ),
            ("gobinary", None, pkg("./local", ""), None),
            (
                "gobinary",
                None,
                pkg("stdlib", "v1.22.0"),
                Some("pkg:golang/stdlib@v1.22.0"),
            ),
            (
                "jar",
                None,
                pkg("org.example:lib", "1.0"),
                Some("pkg:maven/org.example/lib@1.0"),
            ),
            (
                "composer-vendor",
                None,
                pkg("psr/log", "1.1.4"),
                Some("pkg:composer/psr/log@1.1.4"),
            ),
            (
                "gemspec",
                None,
                pkg("rake", "13.0.6"),
                Some("pkg:gem/rake@13.0.6"),
            ),
            (
                "rustbinary",
                None,
                pkg("serde", "1.0.0"),
                Some("pkg:cargo/serde@1.0.0"),
            ),
            (
                "conda-pkg",
                None,
                pkg("zlib", "1.2.13"),
                Some("pkg:conda/zlib@1.2.13"),
            ),
            (
                "dotnet-core",
                None,
                pkg("Newtonsoft.Json", "13.0.1"),
                Some("pkg:nuget/Newtonsoft.Json@13.0.1"),
            ),
            ("python-pkg", None, pkg("", "1"), None),
        ] {
            assert_eq!(purl(t, os, &p).as_deref(), want, "{t} {}", p.name);
        }
    }
}
