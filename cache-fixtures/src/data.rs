//! The data files under `data/`: the samples' release files and package databases, as
//! the images hold them.
//!
//! A package database is split by the layer that installs its packages; a layer's
//! database lists those of every layer below too (see [`dpkg_status`]).

/// Debian 12's `os-release`.
pub const DEBIAN_OS_RELEASE: &str = include_str!("../data/debian/os-release");
/// The dpkg `status` of the Debian sample's base system.
pub const DEBIAN_STATUS: &str = include_str!("../data/debian/status");
/// The stanzas `apt-get install curl` adds to [`DEBIAN_STATUS`].
pub const DEBIAN_STATUS_CURL: &str = include_str!("../data/debian/status-curl");

/// Alpine 3.20's `os-release`.
pub const ALPINE_OS_RELEASE: &str = include_str!("../data/alpine/os-release");
/// The apk `installed` database of the Alpine sample's base system.
pub const ALPINE_INSTALLED: &str = include_str!("../data/alpine/installed");
/// The entries `apk add curl` appends to [`ALPINE_INSTALLED`].
pub const ALPINE_INSTALLED_CURL: &str = include_str!("../data/alpine/installed-curl");

/// Ubuntu 22.04's `os-release`.
pub const UBUNTU_OS_RELEASE: &str = include_str!("../data/ubuntu/os-release");
/// The dpkg `status` of the Ubuntu base layer the pair of samples shares.
pub const UBUNTU_STATUS: &str = include_str!("../data/ubuntu/status");
/// The stanzas `app-a`'s Python install adds to [`UBUNTU_STATUS`].
pub const UBUNTU_STATUS_PYTHON: &str = include_str!("../data/ubuntu/status-python");
/// The stanzas `app-b`'s OpenSSL install adds to [`UBUNTU_STATUS`].
pub const UBUNTU_STATUS_OPENSSL: &str = include_str!("../data/ubuntu/status-openssl");

/// The README written beside the samples.
pub(crate) const SAMPLES_README: &str = include_str!("../data/samples-README.md");

/// A dpkg `status` holding the stanzas of every part, sorted by package name as dpkg
/// keeps it. Each part is a `status` text: stanzas, each ended by an empty line.
pub fn dpkg_status(parts: &[&str]) -> String {
    let mut stanzas: Vec<&str> = parts
        .iter()
        .flat_map(|part| part.split_inclusive("\n\n"))
        .collect();
    stanzas.sort_by_key(|stanza| package_name(stanza));
    stanzas.concat()
}

/// A machine-readable Debian copyright file (the language sample's `bash`).
pub const LANG_COPYRIGHT_BASH: &str = include_str!("../data/lang/copyright-bash");
/// A wheel's `METADATA` (`requests`), with a body that is never read.
pub const LANG_METADATA_REQUESTS: &str = include_str!("../data/lang/METADATA-requests");
/// A .NET `*.deps.json` with a project and two packages.
pub const LANG_DEPS_JSON: &str = include_str!("../data/lang/web.deps.json");
/// The module list of the sample Go executable.
pub const LANG_GO_MODINFO: &str = include_str!("../data/lang/go-modinfo");
/// The `cargo auditable` dependency list of the sample Rust executable.
pub const LANG_RUST_AUDIT: &str = include_str!("../data/lang/rust-audit.json");

/// The `Package` a stanza names (its first line).
fn package_name(stanza: &str) -> &str {
    stanza
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("Package: "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_merge_in_name_order() {
        let merged = dpkg_status(&[
            "Package: b\nVersion: 1\n\nPackage: d\nVersion: 1\n\n",
            "Package: a\nVersion: 2\n\nPackage: c\nVersion: 2\n\n",
        ]);
        let names: Vec<&str> = merged
            .lines()
            .filter_map(|l| l.strip_prefix("Package: "))
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert!(merged.ends_with("Version: 1\n\n"));
        // The data files are in that order already.
        for status in [DEBIAN_STATUS, DEBIAN_STATUS_CURL, UBUNTU_STATUS] {
            assert_eq!(dpkg_status(&[status]), status);
        }
    }
}
