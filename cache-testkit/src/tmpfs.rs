//! Small tmpfs mounts made by a test, for full disks and read-only file systems.
//!
//! Mounting needs root (or CAP_SYS_ADMIN), which the development machines and CI have.
//! Where mounting is refused the test fails saying so; `SCANCACHE_SKIP_MOUNT_TESTS=1`
//! turns that into a visible skip.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The variable that turns a refused mount into a visible skip.
pub const SKIP_VAR: &str = "SCANCACHE_SKIP_MOUNT_TESTS";

/// A tmpfs of a given size under a fresh temporary directory, unmounted on drop.
pub struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `1m`, `64k`) with mode
    /// 0700. Panics, saying how to run or skip the test, when mounting is refused;
    /// `None` (after printing `SKIPPED: …`) only when [`SKIP_VAR`] is `1`.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
                eprintln!("SKIPPED: cannot mount a tmpfs ({why}) and {SKIP_VAR}=1 is set");
                return None;
            }
            panic!(
                "cannot mount a tmpfs for this test ({why}); run the tests as root, or set \
                 {SKIP_VAR}=1 to skip them"
            );
        }
        Some(Tmpfs { _dir: dir, path })
    }

    /// Remounts the file system read-only (panics if that fails).
    pub fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot remount read-only");
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
