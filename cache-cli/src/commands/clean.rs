//! `scancache clean`: removes caches from the cache directory (SPEC §2).

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

/// The directories `clean` removes, with the flag that selects each and its log message.
const TARGETS: &[(&str, &str)] = &[
    ("db", "Removing vulnerability database..."),
    ("java-db", "Removing Java database..."),
    ("policy", "Removing check bundle..."),
    ("vex", "Removing VEX repositories..."),
];

/// Runs `clean`. The caller has checked that at least one flag is set.
pub async fn run(args: &CleanArgs, settings: &Settings, g: &GlobalOpts) -> Result<()> {
    let dir = &settings.cache_dir;
    refuse_dangerous(dir)?;
    if args.all || args.scan_cache {
        tracing::info!("Removing scan cache...");
        clean_scan_cache(settings, g).await?;
    }
    let wanted = [
        args.vuln_db,
        args.java_db,
        args.checks_bundle,
        args.vex_repo,
    ];
    for ((name, message), flag) in TARGETS.iter().zip(wanted) {
        if args.all || flag {
            tracing::info!("{message}");
            remove_entry(&dir.join(name))?;
        }
    }
    Ok(())
}

async fn clean_scan_cache(settings: &Settings, g: &GlobalOpts) -> Result<()> {
    match settings.spec {
        BackendSpec::Memory => Ok(()), // Nothing outlives a process.
        BackendSpec::Fs => {
            let fanal = settings.cache_dir.join("fanal");
            if fs::symlink_metadata(&fanal).is_err() {
                return Ok(()); // Nothing to clean.
            }
            // Clearing through the backend lets processes that have the cache open see it
            // empty at once and keep working. Files that are not a valid database are
            // removed instead, so a broken cache never leaves the user stuck.
            let cleared = match cache_fs::FsCache::open(&settings.cache_dir, &settings.options) {
                Ok(cache) => {
                    let r = cache.clear().await;
                    let _ = cache.close().await;
                    r
                }
                Err(e) => Err(e),
            };
            if let Err(e) = cleared {
                tracing::warn!(
                    "The scan cache cannot be cleared as a database ({e}); removing its files"
                );
                remove_entry(&fanal)?;
            }
            Ok(())
        }
        BackendSpec::Redis { .. } => {
            let cache = backend::open(settings, g).await?;
            cache.clear().await?;
            cache.close().await?;
            Ok(())
        }
    }
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
    fn refuses_root() {
        let msg = refuse_dangerous(Path::new("/")).unwrap_err().to_string();
        assert!(msg.contains("root directory"), "{msg}");
        assert!(refuse_dangerous(Path::new("/tmp/x/y")).is_ok());
    }
}
