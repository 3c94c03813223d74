//! Walking a directory tree for `fs` and `rootfs` scans: which files are offered to the
//! analysers, from their metadata only, and reading one of them safely.
//!
//! The walk never follows a symbolic link (a link is not a file of the tree, wherever it
//! points), never descends into `.git` or into `proc`, `sys` and `dev` at the top, skips
//! what `--skip-dirs`/`--skip-files` name, offers only regular files, and reports a
//! directory it cannot read with a warning before going on. Reading opens a file with
//! `O_NOFOLLOW | O_NONBLOCK` and checks that it is still the regular file the walk saw
//! (same device and inode), so a file swapped for a link, a FIFO or a device meanwhile
//! is not read.

use std::{
    fs::{self, File},
    io::{self, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

use crate::glob::Glob;

/// Directories never entered below the top of the tree (`.git` at any depth).
const SKIPPED_AT_TOP: [&str; 3] = ["proc", "sys", "dev"];

/// One file the analysers selected, as the walk saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found<T> {
    /// Relative to the root, `/`-separated.
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: i64,
    pub(crate) mtime_nsec: i64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// What the analysers want it as.
    pub(crate) target: T,
}

/// What the walk skips.
#[derive(Clone, Debug, Default)]
pub(crate) struct Skips {
    pub(crate) dirs: Vec<Glob>,
    pub(crate) files: Vec<Glob>,
}

/// Walks the tree below `root`, returning the files `select` takes (by relative path and,
/// when `by_mode`, permission bits), sorted by path. Unreadable directories are warnings.
///
/// Without `by_mode`, `select` is asked with mode 0 before anything is read of a file:
/// the kind of each entry comes with its directory listing, so only the selected files
/// cost a `stat` (a tree of 10,000 files and 50 lockfiles, 50).
pub(crate) fn walk<T>(
    root: &Path,
    skips: &Skips,
    by_mode: bool,
    select: impl Fn(&str, u32) -> Option<T>,
) -> Vec<Found<T>> {
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(path = %dir.display(), "skipping unreadable directory: {e}");
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(path = %dir.display(), "skipping unreadable directory entry: {e}");
                    continue;
                }
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                tracing::debug!(dir = %dir.display(), name = ?name, "ignoring a name that is not UTF-8");
                continue;
            };
            let path = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            // The entry's own kind (a link is looked at, never through): from the listing
            // where the file system gives it, else from `lstat`.
            let kind = match entry.file_type() {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), "skipping unreadable file: {e}");
                    continue;
                }
            };
            if kind.is_dir() {
                let skipped = name == ".git"
                    || (rel.is_empty() && SKIPPED_AT_TOP.contains(&name))
                    || skips.dirs.iter().any(|g| g.matches(&path));
                if !skipped {
                    stack.push((entry.path(), path));
                }
                continue;
            }
            if skips.files.iter().any(|g| g.matches(&path)) {
                continue;
            }
            let by_path = if by_mode {
                None
            } else {
                let Some(target) = select(&path, 0) else {
                    continue;
                };
                Some(target)
            };
            // `symlink_metadata`: a link is looked at, never through.
            let meta = match entry.path().symlink_metadata() {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), "skipping unreadable file: {e}");
                    continue;
                }
            };
            let Some(target) = by_path.or_else(|| select(&path, meta.mode())) else {
                continue;
            };
            if !meta.file_type().is_file() {
                tracing::debug!(
                    path,
                    "not following a link or non-file in place of an analysed file"
                );
                continue;
            }
            found.push(Found {
                path,
                size: meta.len(),
                mode: meta.mode(),
                mtime: meta.mtime(),
                mtime_nsec: meta.mtime_nsec(),
                dev: meta.dev(),
                ino: meta.ino(),
                target,
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The identity of a listing: SHA-256 over, per file in path order, the length-framed
/// path, then size, mode, modification seconds and nanoseconds as 8-byte big-endian
/// numbers (`docs/keys.md`, "Keys of directory scans").
pub(crate) fn listing_digest<T>(files: &[Found<T>]) -> String {
    let mut h = Sha256::new();
    h.update(b"scancache tree listing v1\0");
    h.update((files.len() as u64).to_be_bytes());
    for f in files {
        h.update((f.path.len() as u64).to_be_bytes());
        h.update(f.path.as_bytes());
        h.update(f.size.to_be_bytes());
        h.update(u64::from(f.mode).to_be_bytes());
        h.update(f.mtime.to_be_bytes());
        h.update(f.mtime_nsec.to_be_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Why a selected file was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// It is over the cap (by the walk's size or by what reading found).
    TooLarge { size: u64, cap: u64 },
    /// It is no longer the regular file the walk saw.
    Changed,
    /// Opening or reading failed.
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge { size, cap } => write!(f, "{size} bytes is over the {cap}-byte limit"),
            ReadError::Changed => f.write_str("it was replaced by something other than the regular file found (a link, FIFO or device?)"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Opens the file the walk found at `root/found.path`: not through a link, not blocking
/// on a FIFO, and only if it is still that regular file.
pub(crate) fn open<T>(root: &Path, found: &Found<T>) -> Result<File, ReadError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(root.join(&found.path))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ReadError::Changed,
            _ => ReadError::Io(e),
        })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() || meta.dev() != found.dev || meta.ino() != found.ino {
        return Err(ReadError::Changed);
    }
    Ok(file)
}

/// Reads the whole file the walk found, at most `cap` bytes (a file that grew past the
/// cap since the walk is refused too).
pub(crate) fn read<T>(root: &Path, found: &Found<T>, cap: u64) -> Result<Vec<u8>, ReadError> {
    if found.size > cap {
        return Err(ReadError::TooLarge {
            size: found.size,
            cap,
        });
    }
    let file = open(root, found)?;
    let mut data = Vec::with_capacity(usize::try_from(found.size).unwrap_or(0).min(1 << 20));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(ReadError::Io)?;
    if data.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            size: data.len() as u64,
            cap,
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn links_git_and_skipped_paths_are_not_offered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for p in [
            "a/Cargo.lock",
            ".git/Cargo.lock",
            "b/c/Cargo.lock",
            "skip/Cargo.lock",
            "proc/Cargo.lock",
            "x/proc/Cargo.lock",
        ] {
            fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
            fs::write(root.join(p), "x").unwrap();
        }
        symlink("/etc/passwd", root.join("link.lock")).unwrap();
        symlink(root, root.join("a/loop")).unwrap();
        let skips = Skips {
            dirs: vec![Glob::new("skip")],
            files: vec![Glob::new("b/**/Cargo.lock")],
        };
        let found = walk(root, &skips, false, |p, _| {
            p.ends_with(".lock").then_some(())
        });
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a/Cargo.lock", "x/proc/Cargo.lock"]);
        assert_eq!(read(root, &found[0], 10).unwrap(), b"x");
        assert!(matches!(
            read(root, &found[0], 0),
            Err(ReadError::TooLarge { .. })
        ));
        // The same listing, the same digest; a touched file, another.
        let again = walk(root, &skips, false, |p, _| {
            p.ends_with(".lock").then_some(())
        });
        assert_eq!(listing_digest(&found), listing_digest(&again));
        fs::write(root.join("a/Cargo.lock"), "xy").unwrap();
        let changed = walk(root, &skips, false, |p, _| {
            p.ends_with(".lock").then_some(())
        });
        assert_ne!(listing_digest(&found), listing_digest(&changed));
    }

    #[test]
    fn a_file_replaced_by_a_link_or_fifo_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("go.mod"), "module m\n").unwrap();
        let found = walk(root, &Skips::default(), false, |_, _| Some(()));
        fs::remove_file(root.join("go.mod")).unwrap();
        symlink("/etc/hostname", root.join("go.mod")).unwrap();
        assert!(matches!(
            read(root, &found[0], 100),
            Err(ReadError::Changed)
        ));
        fs::remove_file(root.join("go.mod")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(root.join("go.mod"))
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            read(root, &found[0], 100),
            Err(ReadError::Changed)
        ));
    }
}
