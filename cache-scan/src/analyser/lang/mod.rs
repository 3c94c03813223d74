//! The language-package analysers: which layer files each takes (by the reference
//! scanner's rules), their size caps, and how what they find becomes the layer's
//! `Applications`.
//!
//! Every analyser here reads one file of the layer's tar stream at a time, from the
//! stream: small text and JSON files are read into memory up to their cap; files that
//! need random access (ELF executables, Java archives) are read into memory up to 8 MiB
//! and copied to an unnamed temporary file (deleted when closed) up to their cap when
//! larger, then read with seeks. A file
//! over its cap, one that does not parse, or an archive that inflates past its limits is
//! skipped with a warning naming it and the reason; the rest of the layer is analysed.
//! Only a failure of the layer stream itself is an error. Nothing is executed.
//!
//! | analyser | files | cap |
//! |---|---|---|
//! | `python-pkg` | `METADATA` in a path containing `.dist-info`; `*.egg-info`, `*.egg-info/PKG-INFO`, `*.egg-info/METADATA`, `*EGG-INFO/PKG-INFO` | header 1 MiB |
//! | `node-pkg` | every `package.json` | 8 MiB |
//! | `gobinary`, `rustbinary` | every regular file with an execute bit that starts with the ELF magic | 512 MiB |
//! | `jar` | `*.jar`, `*.war`, `*.ear`, `*.par` (any case) | 256 MiB |
//! | `gemspec` | `*/specifications/*.gemspec` | 1 MiB |
//! | `composer-vendor` | every `installed.json` | 16 MiB |
//! | `conda-pkg` | `*/envs/*/conda-meta/*-*-*.json` | 8 MiB |
//! | `dotnet-core` | `*.deps.json` | 16 MiB |

pub(crate) mod composer;
mod conda;
mod dotnet;
mod elf;
mod gemspec;
mod gobinary;
mod jar;
pub(crate) mod json;
mod node;
mod python;
mod rustbinary;
mod spool;
mod zip;

use std::io::{self, Read};

use cache_core::{Application, Package};

pub(crate) use spool::Tracked;

/// The analysers of this module, with their versions (part of every key).
pub(crate) const VERSIONS: [(&str, u32); 9] = [
    ("composer-vendor", 1),
    ("conda-pkg", 1),
    ("dotnet-core", 1),
    ("gemspec", 1),
    ("gobinary", 1),
    ("jar", 1),
    ("node-pkg", 1),
    ("python-pkg", 1),
    ("rustbinary", 1),
];

/// Largest `package.json` or conda metadata file read.
const MAX_SMALL_JSON: u64 = 8 << 20;
/// Largest `installed.json` or `*.deps.json` read.
const MAX_LARGE_JSON: u64 = 16 << 20;
/// Largest gemspec read.
const MAX_GEMSPEC: u64 = 1 << 20;
/// Largest executable copied for reading.
pub(crate) const MAX_EXECUTABLE: u64 = 512 << 20;
/// Largest Java archive copied for reading (also each nested archive).
pub(crate) const MAX_JAR: u64 = 256 << 20;

/// A kind of file a language analyser takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Python core metadata (`METADATA`, `PKG-INFO`, an `.egg-info` file).
    PythonMetadata,
    /// `package.json`.
    NodePackage,
    /// A file with an execute bit: maybe a Go or Rust binary.
    Executable,
    /// A Java archive.
    Jar,
    /// An installed gem's specification.
    Gemspec,
    /// Composer's `vendor/composer/installed.json`.
    ComposerInstalled,
    /// A conda package's metadata.
    CondaMeta,
    /// A .NET `*.deps.json`.
    DotnetDeps,
}

impl Kind {
    /// The kind of a cleaned layer path with permission bits `mode`, if a language
    /// analyser takes it. Name rules come first; a file no name rule takes is an
    /// executable when any execute bit is set.
    pub(crate) fn of(path: &str, mode: u32) -> Option<Kind> {
        let base = path.rsplit('/').next().unwrap_or(path);
        if (base == "METADATA" && path.contains(".dist-info")) || is_egg_info(path) {
            return Some(Kind::PythonMetadata);
        }
        if base == "package.json" {
            return Some(Kind::NodePackage);
        }
        if base == "installed.json" {
            return Some(Kind::ComposerInstalled);
        }
        if path.ends_with(".deps.json") {
            return Some(Kind::DotnetDeps);
        }
        if is_gemspec(path) {
            return Some(Kind::Gemspec);
        }
        if is_conda_meta(path) {
            return Some(Kind::CondaMeta);
        }
        if let Some((_, ext)) = base.rsplit_once('.')
            && ["jar", "war", "ear", "par"]
                .iter()
                .any(|e| ext.eq_ignore_ascii_case(e))
        {
            return Some(Kind::Jar);
        }
        (mode & 0o111 != 0).then_some(Kind::Executable)
    }
}

fn is_egg_info(path: &str) -> bool {
    [
        "EGG-INFO/PKG-INFO",
        ".egg-info",
        ".egg-info/PKG-INFO",
        ".egg-info/METADATA",
    ]
    .iter()
    .any(|s| path.ends_with(s))
}

/// `.*/specifications/.+\.gemspec` anywhere in the path.
fn is_gemspec(path: &str) -> bool {
    path.match_indices("/specifications/").any(|(i, m)| {
        path.get(i + m.len()..)
            .and_then(|rest| rest.find(".gemspec"))
            .is_some_and(|at| at >= 1)
    })
}

/// `.*/envs/.+/conda-meta/.+-.+-.+\.json` anywhere in the path.
fn is_conda_meta(path: &str) -> bool {
    path.match_indices("/envs/").any(|(i, m)| {
        let rest = path.get(i + m.len()..).unwrap_or_default();
        rest.match_indices("/conda-meta/").any(|(j, n)| {
            let file = rest.get(j + n.len()..).unwrap_or_default();
            j > 0
                && file
                    .rfind(".json")
                    .is_some_and(|k| three_parts(file.get(..k).unwrap_or_default()))
        })
    })
}

/// True when `stem` is `.+-.+-.+`.
fn three_parts(stem: &str) -> bool {
    let b = stem.as_bytes();
    let Some(first) = (1..b.len()).find(|&i| b.get(i) == Some(&b'-')) else {
        return false;
    };
    (first + 2..b.len().saturating_sub(1)).any(|j| b.get(j) == Some(&b'-'))
}

/// What the language analysers found in one layer.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    /// The layer, for warnings.
    pub(crate) layer: String,
    pub(crate) apps: Vec<Application>,
}

/// Why a file was skipped.
pub(crate) type Skip = String;

impl Collector {
    /// Reads one file of `kind` at `path`, `size` bytes, from the layer stream `data`;
    /// false when the file was skipped. Returns an error only when reading the stream
    /// failed; anything wrong with the file itself is a warning.
    pub(crate) fn take<R: Read>(
        &mut self,
        kind: Kind,
        path: &str,
        size: u64,
        data: R,
    ) -> io::Result<bool> {
        let mut data = Tracked::new(data);
        let found = self.analyse(kind, path, size, &mut data);
        data.check()?;
        match found {
            Ok(apps) => {
                self.apps.extend(apps);
                Ok(true)
            }
            Err(reason) => {
                tracing::warn!(layer = %self.layer, path, "skipping {}: {reason}", kind_name(kind));
                Ok(false)
            }
        }
    }

    fn analyse<R: Read>(
        &mut self,
        kind: Kind,
        path: &str,
        size: u64,
        data: &mut Tracked<R>,
    ) -> Result<Vec<Application>, Skip> {
        let read = |data: &mut Tracked<R>, cap: u64| -> Result<Vec<u8>, Skip> {
            if size > cap {
                return Err(format!("{size} bytes is over the {cap}-byte limit"));
            }
            spool::read_all(data, cap)
        };
        let one = |app_type: &str, packages: Vec<Package>| {
            if packages.is_empty() {
                Vec::new()
            } else {
                vec![Application {
                    app_type: app_type.to_owned(),
                    file_path: path.to_owned(),
                    packages,
                    ..Application::default()
                }]
            }
        };
        Ok(match kind {
            Kind::PythonMetadata => {
                let header = python::read_header(data)?;
                let mut pkg = python::parse(&header)?;
                pkg.file_path = path.to_owned();
                pkg.analyzed_by = "python-pkg".into();
                one("python-pkg", vec![pkg])
            }
            Kind::NodePackage => {
                let bytes = read(data, MAX_SMALL_JSON)?;
                let pkgs = node::parse(&bytes)?
                    .into_iter()
                    .map(|mut p| {
                        p.file_path = path.to_owned();
                        p.analyzed_by = "node-pkg".into();
                        p
                    })
                    .collect();
                one("node-pkg", pkgs)
            }
            Kind::Gemspec => {
                let bytes = read(data, MAX_GEMSPEC)?;
                let mut pkg = gemspec::parse(&String::from_utf8_lossy(&bytes))?;
                pkg.file_path = path.to_owned();
                pkg.analyzed_by = "gemspec".into();
                one("gemspec", vec![pkg])
            }
            Kind::CondaMeta => {
                let bytes = read(data, MAX_SMALL_JSON)?;
                let mut pkg = conda::parse(&bytes)?;
                pkg.file_path = path.to_owned();
                pkg.analyzed_by = "conda-pkg".into();
                one("conda-pkg", vec![pkg])
            }
            Kind::ComposerInstalled => {
                let bytes = read(data, MAX_LARGE_JSON)?;
                let pkgs = composer::parse(&bytes)?;
                one("composer-vendor", tag(pkgs, "composer-vendor"))
            }
            Kind::DotnetDeps => {
                let bytes = read(data, MAX_LARGE_JSON)?;
                let pkgs = dotnet::parse(&bytes)?;
                one("dotnet-core", tag(pkgs, "dotnet-core"))
            }
            Kind::Executable => {
                let Some(mut file) = spool::executable(data, size)? else {
                    return Ok(Vec::new());
                };
                let elf = elf::Elf::parse(&mut file)
                    .map_err(|e| format!("not a readable ELF file: {e}"))?;
                let mut apps = Vec::new();
                match gobinary::parse(&elf, &mut file) {
                    Ok(Some(pkgs)) => apps.extend(one("gobinary", tag(pkgs, "gobinary"))),
                    Ok(None) => {}
                    Err(e) => return Err(format!("bad Go build information: {e}")),
                }
                match rustbinary::parse(&elf, &mut file) {
                    Ok(Some(pkgs)) => apps.extend(one("rustbinary", tag(pkgs, "rustbinary"))),
                    Ok(None) => {}
                    Err(e) => return Err(format!("bad cargo-auditable data: {e}")),
                }
                apps
            }
            Kind::Jar => {
                if size > MAX_JAR {
                    return Err(format!("{size} bytes is over the {MAX_JAR}-byte limit"));
                }
                let mut file = spool::random_access(data, size, MAX_JAR)?;
                let mut pkgs = jar::parse(&mut file, size, path)?;
                for p in &mut pkgs {
                    p.analyzed_by = "jar".into();
                }
                one("jar", pkgs)
            }
        })
    }

    /// The applications found, sorted by type and path.
    pub(crate) fn finish(mut self) -> Vec<Application> {
        self.apps
            .sort_by(|a, b| (&a.app_type, &a.file_path).cmp(&(&b.app_type, &b.file_path)));
        self.apps
    }
}

fn tag(mut pkgs: Vec<Package>, analyser: &str) -> Vec<Package> {
    for p in &mut pkgs {
        p.analyzed_by = analyser.to_owned();
    }
    pkgs
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::PythonMetadata => "Python package metadata",
        Kind::NodePackage => "package.json",
        Kind::Executable => "executable",
        Kind::Jar => "Java archive",
        Kind::Gemspec => "gemspec",
        Kind::ComposerInstalled => "Composer installed.json",
        Kind::CondaMeta => "conda package metadata",
        Kind::DotnetDeps => ".NET deps.json",
    }
}

/// Sorts packages as the reference does: known relationships first (root, workspace,
/// direct, indirect), then by name, version, ID and file path.
pub(crate) fn sort_packages(pkgs: &mut [Package]) {
    let rank = |r: &str| match r {
        "root" => 1,
        "workspace" => 2,
        "direct" => 3,
        "indirect" => 4,
        _ => 5,
    };
    pkgs.sort_by(|a, b| {
        (
            rank(&a.relationship),
            &a.name,
            &a.version,
            &a.id,
            &a.file_path,
        )
            .cmp(&(
                rank(&b.relationship),
                &b.name,
                &b.version,
                &b.id,
                &b.file_path,
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_reference_rules() {
        for (path, mode, want) in [
            (
                "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
                0o644,
                Some(Kind::PythonMetadata),
            ),
            (
                "usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD",
                0o644,
                None,
            ),
            (
                "opt/x.dist-info.d/METADATA",
                0o644,
                Some(Kind::PythonMetadata),
            ),
            (
                "usr/lib/python3/dist-packages/old.egg-info",
                0o644,
                Some(Kind::PythonMetadata),
            ),
            (
                "usr/lib/python3/dist-packages/x.egg-info/PKG-INFO",
                0o644,
                Some(Kind::PythonMetadata),
            ),
            (
                "usr/lib/python3/site-packages/foo.egg/EGG-INFO/PKG-INFO",
                0o644,
                Some(Kind::PythonMetadata),
            ),
            ("srv/app/package.json", 0o644, Some(Kind::NodePackage)),
            ("srv/app/package.json.bak", 0o644, None),
            ("usr/bin/curl", 0o755, Some(Kind::Executable)),
            ("usr/bin/curl", 0o644, None),
            (
                "usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec",
                0o644,
                Some(Kind::Gemspec),
            ),
            ("specifications/rake.gemspec", 0o644, None),
            (
                "app/vendor/composer/installed.json",
                0o644,
                Some(Kind::ComposerInstalled),
            ),
            (
                "opt/conda/envs/e1/conda-meta/zlib-1.2.13-h5eee18b_0.json",
                0o644,
                Some(Kind::CondaMeta),
            ),
            (
                "opt/conda/conda-meta/zlib-1.2.13-h5eee18b_0.json",
                0o644,
                None,
            ),
            ("opt/conda/envs/e1/conda-meta/history.json", 0o644, None),
            ("app/my.deps.json", 0o644, Some(Kind::DotnetDeps)),
            ("opt/lib/a-1.0.JAR", 0o644, Some(Kind::Jar)),
            ("opt/lib/a.war", 0o755, Some(Kind::Jar)),
        ] {
            assert_eq!(Kind::of(path, mode), want, "{path}");
        }
    }
}
