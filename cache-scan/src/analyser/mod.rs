//! The analysers: which layer files each reads, and how one layer's files become the
//! OS, repository and package parts of its [`BlobInfo`].

pub(crate) mod apk;
pub(crate) mod dpkg;
pub(crate) mod os;
pub(crate) mod parsed;

use std::{collections::BTreeMap, io::BufRead};

use cache_core::{BlobInfo, Package, PackageInfo};

pub(crate) use os::OsFiles;
use parsed::{Parsed, resolve_depends_within};

use crate::limits::{Crossed, Stop, Tally};

/// Every analyser's name and version. Bump a version whenever its output for the same
/// input changes: the versions feed `calc_key` (see `docs/keys.md`), so old cached
/// results are not reused.
///
/// History: apk 2 and dpkg 3 — a database without installed packages is recorded (empty)
/// so that it replaces an earlier layer's; dpkg 3 also counts stanzas without `Status`
/// (distroless `status.d/*`) and held packages. os-release 2 — single-quoted values are
/// literal (os-release(5)). apk 3 and dpkg 4 — entries of one database with the same
/// identity (apk: name; dpkg: name and architecture) collapse into one, the last entry
/// winning.
pub const ANALYSERS: [(&str, u32); 4] =
    [("apk", 3), ("apk-repo", 1), ("dpkg", 4), ("os-release", 2)];

/// Largest OS-release or repositories file read; larger ones are ignored with a warning.
pub(crate) const MAX_SMALL_FILE: u64 = 64 << 10;

/// A file some analyser reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    EtcOsRelease,
    UsrOsRelease,
    AlpineRelease,
    DebianVersion,
    ApkRepositories,
    Dpkg,
    Apk,
}

impl Target {
    /// The target for a cleaned path inside a layer, if any analyser wants it.
    pub(crate) fn of(path: &str) -> Option<Target> {
        Some(match path {
            "etc/os-release" => Target::EtcOsRelease,
            "usr/lib/os-release" => Target::UsrOsRelease,
            "etc/alpine-release" => Target::AlpineRelease,
            "etc/debian_version" => Target::DebianVersion,
            "etc/apk/repositories" => Target::ApkRepositories,
            "var/lib/dpkg/status" => Target::Dpkg,
            "lib/apk/db/installed" => Target::Apk,
            _ => {
                let file = path.strip_prefix("var/lib/dpkg/status.d/")?;
                if file.contains('/') || file.ends_with(".md5sums") {
                    return None;
                }
                Target::Dpkg
            }
        })
    }

    /// True for package databases, which are capped by the DB size option (a larger one
    /// is an error); other files are small and ignored past [`MAX_SMALL_FILE`].
    pub(crate) fn is_package_db(self) -> bool {
        matches!(self, Target::Dpkg | Target::Apk)
    }
}

/// Gathers what the analysers find in one layer.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    os: OsFiles,
    repositories: Option<String>,
    dpkg: BTreeMap<String, Vec<Parsed>>,
    apk: BTreeMap<String, Vec<Parsed>>,
}

impl Collector {
    /// Takes in one wanted file's content. A package database read this way is not
    /// bounded by caps; a scan streams them through [`Collector::add_db`].
    pub(crate) fn add(&mut self, target: Target, path: &str, data: &[u8]) {
        if target.is_package_db() {
            let mut unbounded = Tally::new(crate::limits::LayerLimits::UNBOUNDED);
            // Reading a slice fails in no way, and no cap is set.
            let _ = self.add_db(target, path, &mut &data[..], &mut unbounded);
            return;
        }
        let text = String::from_utf8_lossy(data).into_owned();
        match target {
            Target::EtcOsRelease => self.os.etc_os_release = Some(text),
            Target::UsrOsRelease => self.os.usr_os_release = Some(text),
            Target::AlpineRelease => self.os.alpine_release = Some(text),
            Target::DebianVersion => self.os.debian_version = Some(text),
            Target::ApkRepositories => self.repositories = Some(text),
            Target::Dpkg | Target::Apk => {}
        }
    }

    /// Parses a package database as it streams from `reader`, counting its packages in
    /// the layer's `tally`; stops at the first cap crossed or read error.
    pub(crate) fn add_db(
        &mut self,
        target: Target,
        path: &str,
        reader: &mut dyn BufRead,
        tally: &mut Tally,
    ) -> Result<(), Stop> {
        match target {
            Target::Dpkg => {
                let parsed = dpkg::parse_reader(reader, tally)?;
                self.dpkg.insert(path.to_owned(), parsed);
            }
            Target::Apk => {
                let parsed = apk::parse_reader(reader, tally)?;
                self.apk.insert(path.to_owned(), parsed);
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the findings into `blob`: OS, repository and one [`PackageInfo`] per
    /// database file, sorted by path, packages sorted by name and ID.
    #[cfg(test)]
    pub(crate) fn finish(self, blob: &mut BlobInfo) {
        let mut unbounded = Tally::new(crate::limits::LayerLimits::UNBOUNDED);
        let _ = self.finish_within(blob, &mut unbounded);
    }

    /// Writes the findings into `blob` (OS, repository and one [`PackageInfo`] per database
    /// file, sorted by path, packages sorted by name and ID), counting the resolved
    /// dependencies in `tally`.
    pub(crate) fn finish_within(
        self,
        blob: &mut BlobInfo,
        tally: &mut Tally,
    ) -> Result<(), Crossed> {
        blob.os = self.os.detect();
        blob.repository = self.repositories.as_deref().and_then(os::apk_repository);
        let mut infos = Vec::new();
        // dpkg dependencies resolve across every dpkg database of the layer
        // (`status` and `status.d/*` describe one installation).
        for dbs in [self.dpkg, self.apk] {
            // Every database read gets an entry, also one without installed packages: it
            // replaces an earlier layer's database at the same path.
            // The databases' packages in one list (the first database's moved, not
            // copied), then back into one exactly sized list per path.
            let mut counts: Vec<(String, usize)> = Vec::with_capacity(dbs.len());
            let mut parsed: Vec<Parsed> = Vec::new();
            for (path, mut db) in dbs {
                counts.push((path, db.len()));
                if parsed.is_empty() {
                    std::mem::swap(&mut parsed, &mut db);
                }
                parsed.append(&mut db);
            }
            resolve_depends_within(&mut parsed, tally)?;
            let mut parsed = parsed.into_iter();
            let mut by_path: BTreeMap<String, Vec<Package>> = BTreeMap::new();
            for (path, n) in counts {
                let mut packages = Vec::with_capacity(n);
                packages.extend(parsed.by_ref().take(n).map(|p| p.package));
                by_path.insert(path, packages);
            }
            drop(parsed);
            for (path, mut packages) in by_path {
                packages.sort_by(|a, b| (&a.name, &a.id, &a.arch).cmp(&(&b.name, &b.id, &b.arch)));
                infos.push(PackageInfo {
                    file_path: path,
                    packages,
                    ..PackageInfo::default()
                });
            }
        }
        infos.sort_by(|a, b| a.file_path.cmp(&b.file_path));
        blob.package_infos = infos;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        for (path, want) in [
            ("etc/os-release", Some(Target::EtcOsRelease)),
            ("var/lib/dpkg/status", Some(Target::Dpkg)),
            ("var/lib/dpkg/status.d/base", Some(Target::Dpkg)),
            ("var/lib/dpkg/status.d/base.md5sums", None),
            ("var/lib/dpkg/status.d/x/y", None),
            ("var/lib/dpkg/status-old", None),
            ("lib/apk/db/installed", Some(Target::Apk)),
            ("usr/lib/os-release", Some(Target::UsrOsRelease)),
            ("etc/passwd", None),
        ] {
            assert_eq!(Target::of(path), want, "{path}");
        }
    }

    #[test]
    fn empty_databases_are_recorded() {
        let mut c = Collector::default();
        c.add(
            Target::Dpkg,
            "var/lib/dpkg/status",
            b"Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
        );
        c.add(Target::Apk, "lib/apk/db/installed", b"");
        let mut blob = BlobInfo::default();
        c.finish(&mut blob);
        let paths: Vec<(&str, usize)> = blob
            .package_infos
            .iter()
            .map(|i| (i.file_path.as_str(), i.packages.len()))
            .collect();
        assert_eq!(
            paths,
            [("lib/apk/db/installed", 0), ("var/lib/dpkg/status", 0)]
        );
    }

    #[test]
    fn analyser_names_are_unique_and_sorted() {
        let names: Vec<&str> = ANALYSERS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
