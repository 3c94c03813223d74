//! The dpkg analyser: `var/lib/dpkg/status` and `var/lib/dpkg/status.d/*` (deb822
//! stanzas) to packages.

use std::io::BufRead;

use cache_core::Package;

use super::parsed::{Collapsed, Parsed};
#[cfg(test)]
use crate::limits::LayerLimits;
use crate::{
    codec::read_line_capped,
    limits::{MAX_LINE, Stop, Tally},
};

/// The analyser name recorded in `AnalyzedBy`.
pub(crate) const NAME: &str = "dpkg";

/// Parses a dpkg status file. Only installed packages are returned (see
/// [`is_installed`]), each identity (name, architecture) once: a later stanza replaces an
/// earlier one of the same identity, as dpkg itself holds one entry per identity.
/// Dependencies are names here; [`super::parsed::resolve_depends`] turns them into
/// package IDs.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Vec<Parsed> {
    let mut tally = Tally::new(LayerLimits::UNBOUNDED);
    parse_reader(&mut text.as_bytes(), &mut tally).unwrap_or_default()
}

/// The fields a stanza is read for; every other field (descriptions, conffiles) is
/// skipped as it streams by.
const KEPT: [&str; 8] = [
    "package",
    "status",
    "version",
    "source",
    "depends",
    "provides",
    "architecture",
    "maintainer",
];

/// The parser of this database, reading `reader` as it streams: one line at a time, keeping only the fields
/// it uses, counting each package and its weight in `tally` (which stops the read once a
/// cap is crossed), in time linear in the input.
pub(crate) fn parse_reader(
    reader: &mut dyn BufRead,
    tally: &mut Tally,
) -> Result<Vec<Parsed>, Stop> {
    let mut out = Collapsed::default();
    let mut fields: Vec<(String, String)> = Vec::new();
    // Bytes held for the stanza being read, and whether continuation lines belong to a
    // kept field.
    let (mut held, mut continuing) = (0u64, false);
    let mut line = Vec::new();
    let mut warned = false;
    loop {
        line.clear();
        let (read, cut) = read_line_capped(reader, &mut line, MAX_LINE)?;
        if cut && !std::mem::replace(&mut warned, true) {
            tracing::warn!("dpkg: a line longer than {MAX_LINE} bytes was cut");
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if read == 0 || text.trim().is_empty() {
            if !fields.is_empty() {
                if let Some(parsed) = stanza(&fields) {
                    let identity = (parsed.package.name.clone(), parsed.package.arch.clone());
                    out.push(identity, parsed, tally)?;
                }
                fields.clear();
                held = 0;
            }
            if read == 0 {
                break;
            }
            continue;
        }
        if text.starts_with([' ', '\t']) {
            // Continuation of the previous field.
            if continuing && let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(text.trim());
                held += text.len() as u64;
            }
        } else if let Some((key, value)) = text.split_once(':') {
            let key = key.trim().to_ascii_lowercase();
            continuing = KEPT.contains(&key.as_str());
            if continuing {
                held += (key.len() + value.len()) as u64;
                fields.push((key, value.trim().to_owned()));
            }
        }
        tally.check(held)?;
    }
    Ok(out.into_vec())
}

fn stanza(fields: &[(String, String)]) -> Option<Parsed> {
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let name = get("package")?;
    if !is_installed(get("status")) {
        return None;
    }
    let version = get("version")?;
    let (epoch, upstream, release) = split_version(version);
    let (src_name, src_version) = match get("source") {
        Some(source) => match source.split_once('(') {
            Some((n, v)) => (n.trim(), v.trim_end_matches(')').trim()),
            None => (source.trim(), version),
        },
        None => (name, version),
    };
    let (src_epoch, src_upstream, src_release) = split_version(src_version);
    // Like the reference scanner, only `Depends` counts (not `Pre-Depends`), so that both
    // tools report the same dependency graph (checked side by side on the samples).
    let depends = get("depends").map(dependency_names).unwrap_or_default();
    let provides = get("provides").map(dependency_names).unwrap_or_default();
    let package = Package {
        id: package_id(name, epoch, upstream, release),
        name: name.to_owned(),
        version: upstream.to_owned(),
        release: release.to_owned(),
        epoch,
        arch: get("architecture").unwrap_or_default().to_owned(),
        src_name: src_name.to_owned(),
        src_version: src_upstream.to_owned(),
        src_release: src_release.to_owned(),
        src_epoch,
        maintainer: get("maintainer").unwrap_or_default().to_owned(),
        analyzed_by: NAME.to_owned(),
        ..Package::default()
    };
    Some(Parsed {
        package,
        depends,
        provides,
    })
}

/// True when a stanza with this `Status` field describes an installed package.
///
/// `Status` is `want flag status` (dpkg(1)): the package counts when its status is
/// `installed` and it is not selected for removal (`deinstall`, `purge`), so
/// `install ok installed` and `hold ok installed` (apt-mark hold) count while
/// `deinstall ok config-files`, `install ok half-installed` and the like do not. A
/// stanza without `Status` counts: distroless images list their packages in
/// `status.d/*` files that have none.
fn is_installed(status: Option<&str>) -> bool {
    let Some(status) = status else {
        return true;
    };
    let mut words = status.split_whitespace();
    let (want, _flag, state) = (words.next(), words.next(), words.next());
    !matches!(want, Some("deinstall" | "purge"))
        && state == Some("installed")
        && words.next().is_none()
}

/// `name@[epoch:]version[-release]`.
fn package_id(name: &str, epoch: i64, version: &str, release: &str) -> String {
    let mut id = format!("{name}@");
    if epoch != 0 {
        id.push_str(&format!("{epoch}:"));
    }
    id.push_str(version);
    if !release.is_empty() {
        id.push('-');
        id.push_str(release);
    }
    id
}

/// Splits a Debian version `[epoch:]upstream[-revision]`; the revision follows the last
/// hyphen. A non-numeric epoch is kept as part of the upstream version.
pub(crate) fn split_version(v: &str) -> (i64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => match e.parse::<i64>() {
            Ok(e) => (e, rest),
            Err(_) => (0, v),
        },
        None => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// The package names in a `Depends`-style list: every alternative, without version
/// constraints, architecture qualifiers or build profiles.
fn dependency_names(list: &str) -> Vec<String> {
    list.split([',', '|'])
        .filter_map(|item| {
            let name = item
                .trim()
                .split(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<'))
                .next()?;
            let name = name.split(':').next().unwrap_or(name);
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyser::parsed::resolve_depends;

    /// Real-format stanzas (trimmed descriptions), as found in Debian 12 images.
    pub(crate) const STATUS: &str = "\
Package: adduser
Status: install ok installed
Priority: important
Section: admin
Installed-Size: 849
Maintainer: Debian Adduser Developers <adduser@packages.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 3.134
Depends: passwd
Suggests: liblocale-gettext-perl, perl, cron, quota
Conffiles:
 /etc/adduser.conf cc3493ecd2d09837ffdcc3e25fdfff18
 /etc/deluser.conf 11a06baf8245fd8d690b99024d228c1f
Description: add and remove users and groups
 This package includes the 'adduser' and 'deluser' commands for creating
 and removing users.

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Depends: libgcc-s1
Recommends: libidn2-0 (>= 2.0.5~)
Suggests: glibc-doc, debconf | debconf-2.0, libc-l10n, locales, libnss-nis, libnss-nisplus
Breaks: aide (<< 0.17.3-4+b3), busybox (<< 1.30.1-6)
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: libgcc-s1
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 140
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: gcc-12 (12.2.0-14+deb12u1)
Version: 12.2.0-14+deb12u1
Replaces: libgcc1 (<< 1:10)
Provides: libgcc1 (= 1:12.2.0-14+deb12u1)
Depends: gcc-12-base (= 12.2.0-14+deb12u1), libc6 (>= 2.35)
Description: GCC support library

Package: passwd
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 2759
Maintainer: Shadow package maintainers <pkg-shadow-devel@lists.alioth.debian.org>
Architecture: amd64
Source: shadow
Version: 1:4.13+dfsg1-1+b1
Depends: libaudit1 (>= 1:2.2.1), libc6 (>= 2.34), libpam0g (>= 0.99.7.1), libpam-modules
Description: change and administer password and group data

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Description: no longer installed

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-0+deb12u1
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Pre-Depends: debconf (>= 0.5) | debconf-2.0
Description: time zone and daylight-saving time data
";

    #[test]
    fn only_depends_count_as_dependencies() {
        let status = "Package: a\nStatus: install ok installed\nVersion: 1\nPre-Depends: b\nDepends: c\n\n\
                      Package: b\nStatus: install ok installed\nVersion: 1\n\n\
                      Package: c\nStatus: install ok installed\nVersion: 1\n";
        let mut parsed = parse(status);
        resolve_depends(&mut parsed);
        assert_eq!(parsed[0].package.id, "a@1");
        assert_eq!(parsed[0].package.depends_on, ["c@1"]);
    }

    #[test]
    fn parses_status_stanzas() {
        let mut parsed = parse(STATUS);
        resolve_depends(&mut parsed);
        let pkgs: Vec<&Package> = parsed.iter().map(|p| &p.package).collect();
        let ids: Vec<&str> = pkgs.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "adduser@3.134",
                "libc6@2.36-9+deb12u10",
                "libgcc-s1@12.2.0-14+deb12u1",
                "passwd@1:4.13+dfsg1-1+b1",
                "tzdata@2025b-0+deb12u1",
            ]
        );
        let adduser = pkgs[0];
        assert_eq!(adduser.version, "3.134");
        assert_eq!(adduser.release, "");
        assert_eq!(adduser.src_name, "adduser");
        assert_eq!(adduser.src_version, "3.134");
        assert_eq!(adduser.arch, "all");
        assert_eq!(
            adduser.maintainer,
            "Debian Adduser Developers <adduser@packages.debian.org>"
        );
        assert_eq!(adduser.depends_on, ["passwd@1:4.13+dfsg1-1+b1"]);
        assert_eq!(adduser.analyzed_by, "dpkg");

        let libc = pkgs[1];
        assert_eq!(
            (libc.version.as_str(), libc.release.as_str()),
            ("2.36", "9+deb12u10")
        );
        assert_eq!(libc.src_name, "glibc");
        assert_eq!(
            (libc.src_version.as_str(), libc.src_release.as_str()),
            ("2.36", "9+deb12u10")
        );
        assert_eq!(libc.depends_on, ["libgcc-s1@12.2.0-14+deb12u1"]);

        let gcc = pkgs[2];
        assert_eq!(gcc.src_name, "gcc-12");
        assert_eq!(gcc.src_version, "12.2.0");
        assert_eq!(gcc.src_release, "14+deb12u1");
        // gcc-12-base is not installed here, so only libc6 resolves.
        assert_eq!(gcc.depends_on, ["libc6@2.36-9+deb12u10"]);

        let passwd = pkgs[3];
        assert_eq!(passwd.epoch, 1);
        assert_eq!(passwd.version, "4.13+dfsg1");
        assert_eq!(passwd.release, "1+b1");
        assert_eq!(passwd.src_name, "shadow");
        assert_eq!(passwd.src_epoch, 1);
        assert_eq!(passwd.depends_on, ["libc6@2.36-9+deb12u10"]);

        assert!(pkgs[4].depends_on.is_empty());
    }

    #[test]
    fn spec_example_package() {
        let text = "\
Package: adwaita-icon-theme
Status: install ok installed
Maintainer: Debian GNOME Maintainers <pkg-gnome-maintainers@lists.alioth.debian.org>
Architecture: all
Version: 43-1
Depends: hicolor-icon-theme, gtk-update-icon-cache
Description: default icon theme of GNOME

Package: gtk-update-icon-cache
Status: install ok installed
Architecture: amd64
Source: gtk+3.0
Version: 3.24.38-2~deb12u3

Package: hicolor-icon-theme
Status: install ok installed
Architecture: all
Version: 0.17-2
";
        let mut parsed = parse(text);
        resolve_depends(&mut parsed);
        let got = serde_json::to_string(&parsed[0].package).unwrap();
        assert_eq!(
            got,
            r#"{"ID":"adwaita-icon-theme@43-1","Name":"adwaita-icon-theme","Version":"43","Release":"1","Arch":"all","SrcName":"adwaita-icon-theme","SrcVersion":"43","SrcRelease":"1","Maintainer":"Debian GNOME Maintainers <pkg-gnome-maintainers@lists.alioth.debian.org>","DependsOn":["gtk-update-icon-cache@3.24.38-2~deb12u3","hicolor-icon-theme@0.17-2"],"AnalyzedBy":"dpkg"}"#
        );
    }

    #[test]
    fn versions_split() {
        for (v, want) in [
            ("1:2.3-4", (1, "2.3", "4")),
            ("2.36-9+deb12u10", (0, "2.36", "9+deb12u10")),
            ("1.2.3-rc1-5", (0, "1.2.3-rc1", "5")),
            ("3.134", (0, "3.134", "")),
            ("x:1.0", (0, "x:1.0", "")),
        ] {
            assert_eq!(split_version(v), want, "{v}");
        }
        assert_eq!(
            dependency_names(
                "libc6 (>= 2.34), debconf | debconf-2.0, perl:any, foo [amd64] <!nocheck>"
            ),
            ["libc6", "debconf", "debconf-2.0", "perl", "foo"]
        );
    }

    #[test]
    fn status_words() {
        for (status, want) in [
            (None, true),
            (Some("install ok installed"), true),
            (Some("hold ok installed"), true),
            (Some("  hold   ok\tinstalled "), true),
            (Some("install reinstreq installed"), true),
            (Some("deinstall ok installed"), false),
            (Some("purge ok installed"), false),
            (Some("deinstall ok config-files"), false),
            (Some("purge ok not-installed"), false),
            (Some("install ok half-installed"), false),
            (Some("install ok unpacked"), false),
            (Some("install ok half-configured"), false),
            (Some("install ok triggers-pending"), false),
            (Some("installed"), false),
            (Some(""), false),
            (Some("install ok installed extra"), false),
        ] {
            assert_eq!(is_installed(status), want, "{status:?}");
        }
    }

    #[test]
    fn held_packages_count() {
        let status = "Package: a\nStatus: hold ok installed\nVersion: 1\n\n\
                      Package: b\nStatus: install ok half-installed\nVersion: 1\n";
        let ids: Vec<String> = parse(status).into_iter().map(|p| p.package.id).collect();
        assert_eq!(ids, ["a@1"]);
    }

    #[test]
    fn distroless_stanzas_without_status_count() {
        // A `var/lib/dpkg/status.d/*` file of a distroless image (gcr.io/distroless/base):
        // no Status field at all.
        let text = "\
Package: libc6
Version: 2.36-9+deb12u10
Architecture: amd64
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Installed-Size: 12986
Depends: libgcc-s1
Section: libs
Priority: optional
Multi-Arch: same
Homepage: https://www.gnu.org/software/libc/libc.html
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Source: glibc
";
        let parsed = parse(text);
        assert_eq!(parsed.len(), 1);
        let libc = &parsed[0].package;
        assert_eq!(libc.id, "libc6@2.36-9+deb12u10");
        assert_eq!(libc.src_name, "glibc");
        assert_eq!(libc.arch, "amd64");
    }

    #[test]
    fn duplicate_identities_collapse_and_the_last_entry_wins() {
        let stanza = |name: &str, arch: &str, version: &str| {
            format!(
                "Package: {name}\nStatus: install ok installed\nArchitecture: {arch}\nVersion: {version}\n\n"
            )
        };
        let text = [
            stanza("a", "amd64", "1"),
            stanza("b", "amd64", "1"),
            stanza("a", "i386", "1"),
            stanza("a", "amd64", "2"),
        ]
        .concat();
        let ids: Vec<(String, String)> = parse(&text)
            .into_iter()
            .map(|p| (p.package.id, p.package.arch))
            .collect();
        let want = [("a@2", "amd64"), ("b@1", "amd64"), ("a@1", "i386")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(i, a)| ((*i).into(), (*a).into()))
            .collect();
        assert_eq!(ids, want);
    }

    #[test]
    fn many_identical_stanzas_are_one_package_and_stop_at_no_cap() {
        let one =
            "Package: same\nStatus: install ok installed\nVersion: 1\nDescription: x\n more\n\n";
        let text = one.repeat(20_000);
        let mut tally = Tally::new(LayerLimits {
            max_packages: 1,
            max_document: Some(1 << 10),
        });
        let parsed = parse_reader(&mut text.as_bytes(), &mut tally).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(tally.counters.duplicates_collapsed, 19_999);
    }

    #[test]
    fn caps_stop_the_read() {
        let text: String = (0..10)
            .map(|i| format!("Package: p{i}\nVersion: 1\n\n"))
            .collect();
        let mut tally = Tally::new(LayerLimits {
            max_packages: 3,
            max_document: None,
        });
        match parse_reader(&mut text.as_bytes(), &mut tally) {
            Err(Stop::Crossed(c)) => {
                assert_eq!((c.limit, c.reached), (crate::Limit::PackagesPerLayer, 4))
            }
            other => panic!("{other:?}"),
        }
        // One field of a stanza growing past the document cap stops the read there.
        let huge = format!("Package: a\nDepends: {}\n", "x, ".repeat(100_000));
        let mut tally = Tally::new(LayerLimits {
            max_packages: 10,
            max_document: Some(1000),
        });
        match parse_reader(&mut huge.as_bytes(), &mut tally) {
            Err(Stop::Crossed(c)) => assert_eq!(c.limit, crate::Limit::DocumentSize),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tolerates_junk() {
        assert!(parse("").is_empty());
        assert!(parse("garbage without colon\n\n\n").is_empty());
        assert!(parse("Package: x\nStatus: install ok installed\n").is_empty()); // no version
    }
}
