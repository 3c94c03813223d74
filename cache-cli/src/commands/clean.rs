//! `scancache clean`: removes caches from the cache directory (docs/cache-dir.md).

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use cache_core::{BackendSpec, Cache};

use crate::{
    backend::{self, Settings},
    cli::{CleanArgs, GlobalOpts},
};

/// A directory `clean` removes: its name, the flag that selects it, and the log message.
struct Target {
    dir: &'static str,
    selected: fn(&CleanArgs) -> bool,
    message: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        dir: "db",
        selected: |a| a.vuln_db,
        message: "Removing vulnerability database...",
    },
    Target {
        dir: "java-db",
        selected: |a| a.java_db,
        message: "Removing Java database...",
    },
    Target {
        dir: "policy",
        selected: |a| a.checks_bundle,
        message: "Removing check bundle...",
    },
    Target {
        dir: "vex",
        selected: |a| a.vex_repo,
        message: "Removing VEX repositories...",
    },
];

/// The files an fs scan cache consists of; anything else in `fanal/` (the reference
/// tool's `fanal.db`, debris) means the directory is removed rather than opened.
const FS_CACHE_FILES: [&str; 3] = ["data.mdb", "lock.mdb", "gc.lock"];

/// Runs `clean`. The caller has checked that at least one flag is set.
pub async fn run(args: &CleanArgs, settings: &Settings, g: &GlobalOpts) -> Result<()> {
    let dir = &settings.cache_dir;
    refuse_dangerous(dir)?;
    if args.all || args.scan_cache {
        tracing::info!("Removing scan cache...");
        clean_scan_cache(settings, g).await?;
        if args.all {
            // --all removes every directory of the layout, whatever the backend.
            remove_entry(&dir.join("fanal"))?;
        }
    }
    for target in TARGETS {
        if args.all || (target.selected)(args) {
            tracing::info!("{}", target.message);
            remove_entry(&dir.join(target.dir))?;
        }
    }
    Ok(())
}

async fn clean_scan_cache(settings: &Settings, g: &GlobalOpts) -> Result<()> {
    match settings.spec {
        BackendSpec::Memory => Ok(()), // Nothing outlives a process.
        BackendSpec::Fs => clean_fs(&settings.cache_dir.join("fanal"), settings).await,
        BackendSpec::Redis { .. } | BackendSpec::Remote { .. } => {
            let cache = backend::open(settings, g).await?;
            cache.clear().await?;
            cache.close().await?;
            Ok(())
        }
    }
}

/// Empties an fs scan cache. A cache that is exactly ours is cleared through the backend,
/// so processes that have it open see it empty at once and keep working; anything else —
/// a symlink, files that are not a database, the reference tool's `fanal.db` — is
/// removed (a symlink itself, never its target). Never creates files.
async fn clean_fs(fanal: &Path, settings: &Settings) -> Result<()> {
    let meta = match fs::symlink_metadata(fanal) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", fanal.display())),
    };
    if meta.is_dir() && is_our_cache(fanal) {
        let cleared = match cache_fs::FsCache::open(&settings.cache_dir, &settings.options) {
            Ok(cache) => {
                let r = cache.clear().await;
                let _ = cache.close().await;
                r
            }
            Err(e) => Err(e),
        };
        match cleared {
            Ok(()) => return Ok(()),
            Err(e) => tracing::warn!(
                "The scan cache cannot be cleared as a database ({e}); removing its files"
            ),
        }
    }
    remove_entry(fanal)
}

/// True when `fanal` holds a regular `data.mdb` and nothing but our cache's files.
fn is_our_cache(fanal: &Path) -> bool {
    let regular_data = fs::symlink_metadata(fanal.join("data.mdb")).is_ok_and(|m| m.is_file());
    let Ok(entries) = fs::read_dir(fanal) else {
        return false;
    };
    regular_data
        && entries.into_iter().all(|e| {
            e.is_ok_and(|e| {
                let name = e.file_name();
                FS_CACHE_FILES.iter().any(|f| name == *f)
                    && e.file_type().is_ok_and(|t| t.is_file())
            })
        })
}

/// Refuses to clean `/` or the home directory itself: a mistyped `--cache-dir` must not
/// remove a user's files.
fn refuse_dangerous(dir: &Path) -> Result<()> {
    let resolved = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .map(|h| fs::canonicalize(&h).unwrap_or(h));
    if resolved.parent().is_none() {
        bail!(
            "refusing to clean {}: it is the root directory",
            dir.display()
        );
    }
    if home.as_deref() == Some(resolved.as_path()) {
        bail!(
            "refusing to clean {}: it is the home directory",
            dir.display()
        );
    }
    Ok(())
}

/// Removes a file or directory tree; a symlink is removed itself, never followed. A path
/// that does not exist is not an error.
fn remove_entry(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    let result = if meta.is_dir() {
        // remove_dir_all does not follow symlinks inside the tree.
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_trees_and_links_but_not_link_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"keep").unwrap();
        let cache = tmp.path().join("cache");
        fs::create_dir_all(cache.join("db/sub")).unwrap();
        fs::write(cache.join("db/sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, cache.join("db/link")).unwrap();
        std::os::unix::fs::symlink(&outside, cache.join("vex")).unwrap();

        remove_entry(&cache.join("db")).unwrap();
        remove_entry(&cache.join("vex")).unwrap();
        remove_entry(&cache.join("absent")).unwrap();
        assert!(!cache.join("db").exists());
        assert!(fs::symlink_metadata(cache.join("vex")).is_err());
        assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep");
    }

    #[test]
    fn recognises_only_our_cache_files() {
        let tmp = tempfile::tempdir().unwrap();
        let fanal = tmp.path();
        assert!(!is_our_cache(fanal), "no data.mdb");
        fs::write(fanal.join("data.mdb"), b"x").unwrap();
        fs::write(fanal.join("lock.mdb"), b"x").unwrap();
        assert!(is_our_cache(fanal));
        fs::write(fanal.join("fanal.db"), b"bolt").unwrap();
        assert!(!is_our_cache(fanal), "the reference tool's file");
    }

    #[test]
    fn refuses_root() {
        let msg = refuse_dangerous(Path::new("/")).unwrap_err().to_string();
        assert!(msg.contains("root directory"), "{msg}");
        assert!(refuse_dangerous(Path::new("/tmp/x/y")).is_ok());
    }
}
