//! The lockfile and manifest analysers of `fs` scans: which files of a project tree each
//! takes (by the reference scanner's rules), their size cap, and how what they declare
//! becomes `Applications`, one per file.
//!
//! Each parser is its own module and turns the bytes of one file into packages; nothing
//! here reads the file system or the network (`pom.xml` is read for the coordinates it
//! declares itself). A file over [`MAX_LOCKFILE`] or one that does not parse is skipped
//! with a warning naming it and the reason; the rest of the tree is scanned.
//!
//! | analyser | files | result type |
//! |---|---|---|
//! | `cargo` | `Cargo.lock` | `cargo` |
//! | `npm` | `package-lock.json` (v1–v3), not under `node_modules` | `npm` |
//! | `yarn` | `yarn.lock`, not under `node_modules` or `.yarn` | `yarn` |
//! | `pnpm` | `pnpm-lock.yaml`, not under `node_modules` | `pnpm` |
//! | `gomod` | `go.mod` | `gomod` |
//! | `poetry` | `poetry.lock` | `poetry` |
//! | `pipenv` | `Pipfile.lock` | `pipenv` |
//! | `pip` | `requirements.txt` (lines pinned with `==`) | `pip` |
//! | `bundler` | `Gemfile.lock` | `bundler` |
//! | `composer` | `composer.lock`, not under `vendor` | `composer` |
//! | `nuget` | `packages.lock.json` | `nuget` |
//! | `pom` | `pom.xml` (declared coordinates only) | `pom` |

mod bundler;
mod cargo;
mod cargo_toml;
mod composer;
mod gomod;
mod npm;
mod nuget;
mod pip;
mod pipenv;
mod pnpm;
mod poetry;
mod pom;
mod yarn;

use cache_core::Application;
pub(crate) use cache_core::Package;

use super::lang::sort_packages;

/// Why a file was skipped.
pub(crate) type Skip = String;

/// The analysers of this module, with their versions (part of every `fs` key).
pub(crate) const VERSIONS: [(&str, u32); 12] = [
    ("bundler", 1),
    ("cargo", 1),
    ("composer", 1),
    ("gomod", 1),
    ("npm", 1),
    ("nuget", 1),
    ("pip", 1),
    ("pipenv", 1),
    ("pnpm", 1),
    ("poetry", 1),
    ("pom", 1),
    ("yarn", 1),
];

/// Largest lockfile or manifest read; larger ones are skipped with a warning, judged by
/// their size before reading.
pub const MAX_LOCKFILE: u64 = 64 << 20;

/// A kind of file a lockfile analyser takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Cargo,
    Npm,
    Yarn,
    Pnpm,
    GoMod,
    Poetry,
    Pipenv,
    Pip,
    Bundler,
    Composer,
    Nuget,
    Pom,
    /// `Cargo.toml`: read only for the `Cargo.lock` beside it (and as a workspace
    /// member of one), never an application of its own.
    CargoManifest,
}

impl Kind {
    /// The kind of the file at `path` (relative to the scanned directory, `/`-separated),
    /// if a lockfile analyser takes it.
    pub(crate) fn of(path: &str) -> Option<Kind> {
        let (dirs, base) = match path.rsplit_once('/') {
            Some((d, b)) => (d, b),
            None => ("", path),
        };
        let in_dir = |name: &str| dirs.split('/').any(|d| d == name);
        Some(match base {
            "Cargo.lock" => Kind::Cargo,
            "package-lock.json" if !in_dir("node_modules") => Kind::Npm,
            "yarn.lock" if !in_dir("node_modules") && !in_dir(".yarn") => Kind::Yarn,
            "pnpm-lock.yaml" if !in_dir("node_modules") => Kind::Pnpm,
            "go.mod" => Kind::GoMod,
            "poetry.lock" => Kind::Poetry,
            "Pipfile.lock" => Kind::Pipenv,
            "requirements.txt" => Kind::Pip,
            "Gemfile.lock" => Kind::Bundler,
            "composer.lock" if !in_dir("vendor") => Kind::Composer,
            "packages.lock.json" => Kind::Nuget,
            "pom.xml" => Kind::Pom,
            "Cargo.toml" => Kind::CargoManifest,
            _ => return None,
        })
    }

    /// The result type of its application, as the reference names it.
    pub(crate) fn app_type(self) -> &'static str {
        match self {
            Kind::Cargo | Kind::CargoManifest => "cargo",
            Kind::Npm => "npm",
            Kind::Yarn => "yarn",
            Kind::Pnpm => "pnpm",
            Kind::GoMod => "gomod",
            Kind::Poetry => "poetry",
            Kind::Pipenv => "pipenv",
            Kind::Pip => "pip",
            Kind::Bundler => "bundler",
            Kind::Composer => "composer",
            Kind::Nuget => "nuget",
            Kind::Pom => "pom",
        }
    }

    /// Parses one file's bytes into its packages (dev packages marked `dev`).
    pub(crate) fn parse(self, bytes: &[u8]) -> Result<Vec<Package>, Skip> {
        let text = || std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"));
        match self {
            Kind::Cargo => cargo::parse(text()?),
            Kind::Npm => npm::parse(bytes),
            Kind::Yarn => Ok(yarn::parse(&String::from_utf8_lossy(bytes))),
            Kind::Pnpm => pnpm::parse(text()?),
            Kind::GoMod => gomod::parse(text()?),
            Kind::Poetry => poetry::parse(text()?),
            Kind::Pipenv => pipenv::parse(bytes),
            Kind::Pip => Ok(pip::parse(&String::from_utf8_lossy(strip_bom(bytes)))),
            Kind::Bundler => Ok(bundler::parse(&String::from_utf8_lossy(bytes))),
            Kind::Composer => composer::parse(bytes),
            Kind::Nuget => nuget::parse(bytes),
            Kind::Pom => pom::parse(text()?),
            Kind::CargoManifest => Ok(Vec::new()),
        }
    }

    /// What the file is called in warnings.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Cargo => "Cargo.lock",
            Kind::Npm => "package-lock.json",
            Kind::Yarn => "yarn.lock",
            Kind::Pnpm => "pnpm-lock.yaml",
            Kind::GoMod => "go.mod",
            Kind::Poetry => "poetry.lock",
            Kind::Pipenv => "Pipfile.lock",
            Kind::Pip => "requirements.txt",
            Kind::Bundler => "Gemfile.lock",
            Kind::Composer => "composer.lock",
            Kind::Nuget => "packages.lock.json",
            Kind::Pom => "pom.xml",
            Kind::CargoManifest => "Cargo.toml",
        }
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
}

/// The application of one lockfile at `path`: its packages tagged with the analyser and
/// sorted as the reference sorts them; `None` when it declares none.
pub(crate) fn application(
    kind: Kind,
    path: &str,
    mut packages: Vec<Package>,
) -> Option<Application> {
    if packages.is_empty() {
        return None;
    }
    for p in &mut packages {
        p.analyzed_by = kind.app_type().to_owned();
    }
    sort_packages(&mut packages);
    Some(Application {
        app_type: kind.app_type().to_owned(),
        file_path: path.to_owned(),
        packages,
        ..Application::default()
    })
}

/// The locked packages of a `Cargo.lock` narrowed by the `Cargo.toml` beside it (see
/// `cargo_toml`); `members` returns the texts of the workspace members a glob names.
pub(crate) fn apply_cargo_manifest(
    pkgs: Vec<Package>,
    manifest: &str,
    members: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<Package>, Skip> {
    cargo_toml::apply(pkgs, manifest, members)
}

/// A package named `name` at `version` with the ID `name@version`.
pub(crate) fn package(name: &str, version: &str) -> Package {
    Package {
        id: format!("{name}@{version}"),
        name: name.to_owned(),
        version: version.to_owned(),
        ..Package::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_reference_rules() {
        for (path, want) in [
            ("Cargo.lock", Some(Kind::Cargo)),
            ("a/b/Cargo.lock", Some(Kind::Cargo)),
            ("web/package-lock.json", Some(Kind::Npm)),
            ("web/node_modules/x/package-lock.json", None),
            ("yarn.lock", Some(Kind::Yarn)),
            (".yarn/cache/yarn.lock", None),
            ("pnpm-lock.yaml", Some(Kind::Pnpm)),
            ("svc/go.mod", Some(Kind::GoMod)),
            ("go.sum", None),
            ("poetry.lock", Some(Kind::Poetry)),
            ("Pipfile.lock", Some(Kind::Pipenv)),
            ("requirements.txt", Some(Kind::Pip)),
            ("requirements-dev.txt", None),
            ("Gemfile.lock", Some(Kind::Bundler)),
            ("composer.lock", Some(Kind::Composer)),
            ("app/vendor/composer.lock", None),
            ("packages.lock.json", Some(Kind::Nuget)),
            ("pom.xml", Some(Kind::Pom)),
            ("package.json", None),
        ] {
            assert_eq!(Kind::of(path), want, "{path}");
        }
    }
}
