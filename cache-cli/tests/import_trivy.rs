//! `scancache cache import --from-trivy` on fs caches the real `trivy` binary wrote: a
//! small one (one image) and a large one (4 images of 60 layers: hundreds of entries, an
//! inline bucket and a bucket of many pages). What is imported is compared, ID by ID and
//! byte by byte, with what trivy itself stores in Redis when it scans the same archives;
//! trivy then scans through a Redis scancache filled, and finds everything cached; and
//! `trivy image --server` against a `scancache server` whose cache was filled this way
//! (through the server itself) uploads no blob. Damaged files import nothing; bad
//! entries are skipped with a warning each.

#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

use cache_fixtures::{ImageBuilder, bulk_images, debian_image, docker_save};
use cache_testkit::{
    bbolt::{FileBuilder, Val, data},
    http::{self, ScancacheServer},
    redis::{RedisServer, ServerOptions, require_redis},
    trivy::{self, require_trivy, scan_archives},
};
use serde::Deserialize;
use serde_json::{Value, value::RawValue};

/// A fs cache trivy filled, what trivy stored in Redis for the same archives, and the
/// reports of its scans.
struct Filled {
    dir: tempfile::TempDir,
    archives: Vec<PathBuf>,
    /// What trivy stored in Redis for the same archives: (kind, ID) → document bytes.
    in_redis: Entries,
    reports: Vec<Value>,
}

impl Filled {
    /// Trivy's cache directory (holding `fanal/fanal.db`).
    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("trivy-cache")
    }

    fn db(&self) -> PathBuf {
        self.cache_dir().join("fanal").join("fanal.db")
    }
}

/// (kind, ID) → the document bytes.
type Entries = BTreeMap<(String, String), String>;

struct Fixture {
    trivy: PathBuf,
    small: Filled,
    large: Filled,
}

/// Both caches, filled once for this test binary; `None` when trivy or redis-server is
/// missing and the skip variables say to skip.
fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let trivy = require_trivy()?;
            if !require_redis() {
                return None;
            }
            let redis = RedisServer::start(ServerOptions::default());
            let small = fill(&trivy, &redis, 0, &[debian_image()]);
            let large = fill(&trivy, &redis, 1, &bulk_images(4, 60));
            Some(Fixture {
                trivy,
                small,
                large,
            })
        })
        .as_ref()
}

/// Scans `images` with trivy twice: into its fs cache, and into Redis database `db`.
fn fill(trivy: &Path, redis: &RedisServer, db: u32, images: &[ImageBuilder]) -> Filled {
    let dir = tempfile::tempdir().unwrap();
    let archives: Vec<PathBuf> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let path = dir.path().join(format!("image-{i}.tar"));
            fs::write(&path, docker_save(&[image])).unwrap();
            path
        })
        .collect();
    let filled = Filled {
        reports: Vec::new(),
        in_redis: Entries::new(),
        archives,
        dir,
    };
    let reports = scan_archives(trivy, &filled.cache_dir(), &filled.archives, &[]);
    let redis_dir = filled.dir.path().join("trivy-redis-run");
    let url = redis.url(db);
    scan_archives(
        trivy,
        &redis_dir,
        &filled.archives,
        &["--cache-backend", &url],
    );
    let in_redis = export(&scancache(&filled.dir, &["--cache-backend", &url]));
    Filled {
        reports,
        in_redis,
        ..filled
    }
}

/// A scancache command with its own HOME, no SCANCACHE_ variables, and `args` first.
fn scancache(home: &tempfile::TempDir, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SCANCACHE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path())
        .env_remove("XDG_CACHE_HOME")
        .stdin(Stdio::null())
        .args(args);
    cmd
}

/// Runs a command and checks its exit status; returns stdout and stderr.
fn run(mut cmd: Command, status: i32) -> (String, String) {
    let desc = format!("{cmd:?}");
    let Output {
        status: got,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert_eq!(
        got.code(),
        Some(status),
        "command: {desc}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for bad in ["panicked", "internal error", "backtrace"] {
        assert!(!stderr.contains(bad), "{desc}: {stderr}");
    }
    (stdout, stderr)
}

/// `cache export -` of a backend: (kind, ID) → the document bytes, every entry without
/// expiry.
fn export(base: &Command) -> Entries {
    #[derive(Deserialize)]
    struct Line<'a> {
        kind: String,
        id: String,
        #[serde(borrow)]
        document: &'a RawValue,
        expires_at: Option<String>,
    }
    let mut cmd = Command::new(base.get_program());
    cmd.args(base.get_args()).args(["cache", "export", "-"]);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let (stdout, _) = run(cmd, 0);
    stdout
        .lines()
        .map(|line| {
            let l: Line = serde_json::from_str(line).unwrap();
            assert_eq!(l.expires_at, None, "imported entries never expire");
            ((l.kind, l.id), l.document.get().to_owned())
        })
        .collect()
}

/// One ERROR line, naming what failed.
fn one_error_line(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("\tERROR\t")).collect();
    assert_eq!(errors.len(), 1, "want one error line:\n{stderr}");
    errors[0]
}

/// A scancache fs cache in a fresh directory of `home`: its arguments.
fn fs_target(home: &tempfile::TempDir) -> (PathBuf, Vec<String>) {
    let dir = home.path().join("scancache");
    let args = vec!["--cache-dir".to_owned(), dir.display().to_string()];
    (dir, args)
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn every_entry_trivy_stored_is_imported_unchanged() {
    let Some(fx) = fixture() else { return };
    let cases = [
        // The cache directory, as a user would name it; and the file itself.
        (&fx.small, fx.small.cache_dir(), "1 artifact and 2 blobs", 3),
        (&fx.large, fx.large.db(), "4 artifacts and 240 blobs", 244),
    ];
    for (filled, path, counts, total) in cases {
        assert_eq!(filled.in_redis.len(), total, "what trivy stored in Redis");
        let home = tempfile::tempdir().unwrap();
        let (_, target) = fs_target(&home);
        let path = path.display().to_string();

        let mut dry = strs(&target);
        dry.extend(["cache", "import", "--from-trivy", &path, "--dry-run"]);
        let (_, stderr) = run(scancache(&home, &dry), 0);
        assert!(
            stderr.contains(&format!("holds {counts} to import; nothing was written")),
            "{stderr}"
        );
        assert!(
            export(&scancache(&home, &strs(&target))).is_empty(),
            "a dry run writes nothing"
        );

        let mut import = strs(&target);
        import.extend(["cache", "import", "--from-trivy", &path]);
        let (stdout, stderr) = run(scancache(&home, &import), 0);
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains(&format!("\tINFO\tImported {counts} from ")),
            "{stderr}"
        );
        assert!(!stderr.contains("WARN"), "{stderr}");
        assert_eq!(
            export(&scancache(&home, &strs(&target))),
            filled.in_redis,
            "the same IDs and bytes trivy stores in Redis"
        );
    }
}

/// What the import is for: trivy, scanning through a Redis that scancache filled from its
/// fs cache, finds every image and layer cached and reports the same packages.
#[test]
fn trivy_scans_through_the_imported_entries_without_analysing() {
    let Some(fx) = fixture() else { return };
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start(ServerOptions::default());
    let url = redis.url(0);
    let home = tempfile::tempdir().unwrap();
    let path = fx.large.cache_dir().display().to_string();
    run(
        scancache(
            &home,
            &[
                "--cache-backend",
                &url,
                "cache",
                "import",
                "--from-trivy",
                &path,
            ],
        ),
        0,
    );
    for (archive, before) in fx.large.archives.iter().zip(&fx.large.reports).take(2) {
        let out = trivy::command(&fx.trivy, home.path())
            .args([
                "image",
                "--debug",
                "--format",
                "json",
                "--scanners",
                "license",
            ])
            .args(["--cache-backend", &url, "--input"])
            .arg(archive)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        assert!(log.contains("Detected OS"), "{log}");
        for miss in ["Missing image ID in cache", "Missing diff ID in cache"] {
            assert!(!log.contains(miss), "trivy analysed again: {log}");
        }
        let after: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(after["Results"], before["Results"]);
        assert_eq!(after["Metadata"]["OS"], before["Metadata"]["OS"]);
    }
}

/// One counter of a server's `/metrics`.
fn metric(server: &ScancacheServer, name: &str) -> u64 {
    let text = http::get(server.port(), "/metrics").unwrap().text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// The packages of a report: per result target class, (name, version) sorted.
fn packages(report: &Value) -> Vec<(String, Vec<(String, String)>)> {
    report["Results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut pkgs: Vec<(String, String)> = r["Packages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| (p["Name"].to_string(), p["Version"].to_string()))
                .collect();
            pkgs.sort();
            (r["Class"].to_string(), pkgs)
        })
        .collect()
}

/// The migration end to end: trivy's fs cache imported into the backend of a `scancache
/// server` — through the server itself, with the remote backend and the admin token —
/// serves the reference client in server mode: `trivy image --server` on the same
/// archives uploads no blob (the server's metrics) and reports the packages trivy found
/// alone.
#[test]
fn trivy_image_server_uploads_nothing_after_the_import() {
    let Some(fx) = fixture() else { return };
    const ADMIN: &str = "import-admin-token";
    let home = tempfile::tempdir().unwrap();
    let server_dir = home.path().join("server-cache").display().to_string();
    let server = ScancacheServer::start(
        env!("CARGO_BIN_EXE_scancache"),
        &["--cache-dir", &server_dir, "--admin-token", ADMIN],
        &[],
        &[],
    );
    let url = server.url();
    let path = fx.large.cache_dir().display().to_string();
    let remote = ["--cache-backend", url.as_str(), "--admin-token", ADMIN];
    let mut import = remote.to_vec();
    import.extend(["cache", "import", "--from-trivy", &path]);
    let (_, stderr) = run(scancache(&home, &import), 0);
    assert!(
        stderr.contains("\tINFO\tImported 4 artifacts and 240 blobs from "),
        "{stderr}"
    );
    assert!(
        !stderr.contains(ADMIN),
        "the admin token is never shown: {stderr}"
    );
    assert_eq!(
        export(&scancache(&home, &remote)),
        fx.large.in_redis,
        "the server's backend holds what trivy stores"
    );

    let client_cache = home.path().join("trivy-client");
    fs::create_dir_all(&client_cache).unwrap();
    for (archive, alone) in fx.large.archives.iter().zip(&fx.large.reports) {
        let out = trivy::command(&fx.trivy, &client_cache)
            .args(["image", "--server", &url, "--format", "json"])
            .args(["--scanners", "license", "--list-all-pkgs", "--input"])
            .arg(archive)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let found = packages(&report);
        assert!(
            found.iter().any(|(_, pkgs)| !pkgs.is_empty()),
            "the report lists packages: {report}"
        );
        assert_eq!(found, packages(alone), "{}", archive.display());
        assert_eq!(report["Metadata"]["OS"], alone["Metadata"]["OS"]);
    }
    assert_eq!(
        metric(&server, "scancache_server_put_blobs_total"),
        0,
        "no blob uploaded: {}",
        server.log()
    );
    assert_eq!(
        metric(&server, "scancache_server_missing_blobs_misses_total"),
        0
    );
    assert!(metric(&server, "scancache_server_missing_blobs_hits_total") >= 240);
}

/// A copy of the large fs cache, damaged by `damage(file bytes, page size)`.
fn damaged(
    fx: &Fixture,
    home: &tempfile::TempDir,
    damage: impl FnOnce(&mut Vec<u8>, usize),
) -> PathBuf {
    let mut bytes = fs::read(fx.large.db()).unwrap();
    let page = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
    damage(&mut bytes, page);
    let path = home.path().join("fanal.db");
    fs::write(&path, bytes).unwrap();
    path
}

/// The root page of the newer meta page.
fn root_page(bytes: &[u8], page: usize) -> usize {
    let txid = |at: usize| u64::from_le_bytes(bytes[at + 64..at + 72].try_into().unwrap());
    let meta = if txid(page) > txid(0) { page } else { 0 };
    u64::from_le_bytes(bytes[meta + 32..meta + 40].try_into().unwrap()) as usize
}

/// The pages the newer meta page's freelist names: free pages keep the bytes of the
/// leaves they held, but no entry is read from them.
fn free_pages(bytes: &[u8], page: usize) -> Vec<usize> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let meta = if u64_at(page + 64) > u64_at(64) {
        page
    } else {
        0
    };
    let freelist = u64_at(meta + 48);
    if freelist == u64::MAX {
        return Vec::new();
    }
    let at = freelist as usize * page;
    let mut count = u16::from_le_bytes(bytes[at + 10..at + 12].try_into().unwrap()) as usize;
    let mut ids = at + 16;
    if count == 0xFFFF {
        count = u64_at(ids) as usize;
        ids += 8;
    }
    (0..count).map(|i| u64_at(ids + 8 * i) as usize).collect()
}

/// The last leaf page of the file that holds entries and is not free: deep in the blob
/// bucket, read after many good entries.
fn a_blob_leaf(bytes: &[u8], page: usize, root: usize) -> usize {
    let free = free_pages(bytes, page);
    (2..bytes.len() / page)
        .rev()
        .find(|&p| {
            let h = &bytes[p * page..p * page + 16];
            p != root
                && !free.contains(&p)
                && h[..8] == (p as u64).to_le_bytes()
                && h[8..10] == [2, 0]
                && h[10..12] != [0, 0]
        })
        .unwrap()
}

#[test]
fn damaged_files_are_refused_in_one_line_and_import_nothing() {
    let Some(fx) = fixture() else { return };
    type Damage = fn(&mut Vec<u8>, usize);
    let cases: [(&str, Damage, &str); 6] = [
        (
            "truncated",
            |f, _| f.truncate(f.len() / 2),
            "is corrupt: truncated",
        ),
        (
            "root page zeroed",
            |f, page| {
                let root = root_page(f, page);
                f[root * page..(root + 1) * page].fill(0);
            },
            "is labelled page 0",
        ),
        (
            "a blob leaf zeroed",
            |f, page| {
                let leaf = a_blob_leaf(f, page, root_page(f, page));
                f[leaf * page..(leaf + 1) * page].fill(0);
            },
            "bucket \"blob\", page",
        ),
        (
            "both meta checksums wrong",
            |f, page| {
                f[72] ^= 1;
                f[page + 72] ^= 1;
            },
            "meta page 1: at byte 4096: checksum mismatch",
        ),
        (
            "not bbolt",
            |f, _| f.iter_mut().for_each(|b| *b = b'x'),
            "is not a bbolt database: meta page 0: no bbolt magic number (found 0x78787878)",
        ),
        (
            "empty",
            |f, _| f.clear(),
            "the file has 0 bytes, too few for a meta page",
        ),
    ];
    for (name, damage, want) in cases {
        let home = tempfile::tempdir().unwrap();
        let path = damaged(fx, &home, damage).display().to_string();
        let (target_dir, target) = fs_target(&home);
        let mut args = strs(&target);
        args.extend(["cache", "import", "--from-trivy", &path]);
        let (_, stderr) = run(scancache(&home, &args), 1);
        let line = one_error_line(&stderr);
        assert!(
            line.contains("cannot import the Trivy cache: ") && line.contains(&path),
            "{name}: {line}"
        );
        assert!(line.contains(want), "{name}: want {want:?}: {line}");
        assert!(!target_dir.exists(), "{name}: the backend was never opened");
    }

    // A damaged newer meta page: the older one is read, with a warning.
    let home = tempfile::tempdir().unwrap();
    let path = damaged(fx, &home, |f, page| {
        let txid = |at: usize| u64::from_le_bytes(f[at + 64..at + 72].try_into().unwrap());
        let newer = if txid(page) > txid(0) { page } else { 0 };
        f[newer + 72] ^= 1;
    });
    let (_, target) = fs_target(&home);
    let mut args = strs(&target);
    let shown = path.display().to_string();
    args.extend(["cache", "import", "--from-trivy", &shown]);
    let (_, stderr) = run(scancache(&home, &args), 0);
    assert!(
        stderr.contains("\tWARN\t") && stderr.contains("checksum mismatch"),
        "{stderr}"
    );
    let got = export(&scancache(&home, &strs(&target)));
    assert!(!got.is_empty() && got.len() <= fx.large.in_redis.len());
    for (key, doc) in &got {
        assert_eq!(fx.large.in_redis.get(key), Some(doc), "{key:?}");
    }
}

#[test]
fn files_that_are_not_trivy_caches_or_are_in_use_are_refused() {
    let Some(fx) = fixture() else { return };
    let home = tempfile::tempdir().unwrap();
    let (target_dir, target) = fs_target(&home);
    let import = |path: &str| {
        let mut args = strs(&target);
        args.extend(["cache", "import", "--from-trivy", path]);
        let (_, stderr) = run(scancache(&home, &args), 1);
        one_error_line(&stderr).to_owned()
    };
    // Trivy's vulnerability database is a bbolt file too, without the two buckets.
    trivy::write_empty_vuln_db(home.path()).unwrap();
    let vuln_db = home.path().join("db").join("trivy.db");
    let line = import(&vuln_db.display().to_string());
    assert!(
        line.contains("holds no artifact or blob bucket: it is not Trivy's fs cache"),
        "{line}"
    );
    let line = import(&home.path().join("db").display().to_string());
    assert!(line.contains("no Trivy fs cache in "), "{line}");
    let line = import(&home.path().join("missing").display().to_string());
    assert!(line.contains("cannot open "), "{line}");

    // A writer holds the file (trivy does while it runs).
    let db = fx.small.db();
    let writer = fs::File::options()
        .read(true)
        .write(true)
        .open(&db)
        .unwrap();
    writer.lock().unwrap();
    let line = import(&db.display().to_string());
    assert!(
        line.contains("is locked by another process") && line.contains("Trivy keeps"),
        "{line}"
    );
    drop(writer);
    assert!(!target_dir.exists());

    // A dry run opens no backend: it works with one that is unreachable.
    let path = fx.small.db().display().to_string();
    let unreachable = format!("redis://127.0.0.1:{}", cache_testkit::redis::free_port());
    let (_, stderr) = run(
        scancache(
            &home,
            &[
                "--cache-backend",
                &unreachable,
                "cache",
                "import",
                "--from-trivy",
                &path,
                "--dry-run",
            ],
        ),
        0,
    );
    assert!(
        stderr.contains("holds 1 artifact and 2 blobs to import"),
        "{stderr}"
    );
}

/// A valid artifact document.
const ARTIFACT: &str = r#"{"SchemaVersion":1,"Architecture":"amd64","OS":"linux"}"#;
/// A valid blob document.
const BLOB: &str = r#"{"SchemaVersion":2,"Size":1024,"DiffID":"sha256:00"}"#;

fn id(n: u32) -> String {
    format!("sha256:{n:064x}")
}

/// A cache with one good entry of each kind, and in the blob bucket 24 keys that are not
/// IDs, a value that is not JSON and a nested bucket; plus a bucket trivy never writes.
fn cache_with_bad_entries(home: &tempfile::TempDir) -> PathBuf {
    let mut b = FileBuilder::new(4096);
    let bad_keys: Vec<String> = (0..24).map(|i| format!("bad-{i:02}")).collect();
    let mut blobs: Vec<(&[u8], Val)> = bad_keys
        .iter()
        .map(|k| (k.as_bytes(), data(BLOB)))
        .collect();
    let (good, not_json, nested) = (id(1), id(2), id(3));
    blobs.push((good.as_bytes(), data(BLOB)));
    blobs.push((not_json.as_bytes(), data("<html>")));
    blobs.push((nested.as_bytes(), Val::Inline(vec![])));
    let blob_page = b.leaf(&blobs);
    let root = b.leaf(&[
        (
            b"artifact",
            Val::Inline(vec![(id(9).into_bytes(), ARTIFACT.as_bytes().to_vec())]),
        ),
        (b"blob", Val::Pages(blob_page)),
        (b"other", Val::Inline(vec![(b"k".to_vec(), b"v".to_vec())])),
    ]);
    let path = home.path().join("fanal.db");
    fs::write(&path, b.file(root)).unwrap();
    path
}

#[test]
fn bad_entries_are_skipped_with_a_bounded_warning_each() {
    let home = tempfile::tempdir().unwrap();
    let path = cache_with_bad_entries(&home).display().to_string();
    let (_, target) = fs_target(&home);
    let with = |extra: &[&'static str]| {
        let mut args = strs(&target);
        args.extend(["cache", "import", "--from-trivy", &path]);
        args.extend(extra);
        args
    };

    // --strict: nothing is imported.
    let (_, stderr) = run(scancache(&home, &with(&["--strict"])), 1);
    assert!(
        one_error_line(&stderr).contains("26 entries of"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing was imported (--strict)"),
        "{stderr}"
    );
    assert!(export(&scancache(&home, &strs(&target))).is_empty());

    let (_, stderr) = run(scancache(&home, &with(&[])), 1);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("\tWARN\t")).collect();
    assert_eq!(warnings.len(), 20 + 1 + 1, "{stderr}");
    assert!(
        warnings[0].contains(&format!(
            "Skipping blob \"bad-00\" in {path}: invalid ID \"bad-00\""
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Skipping 6 more entries of"), "{stderr}");
    assert!(stderr.contains("Ignoring bucket \"other\" of"), "{stderr}");
    assert!(
        stderr.contains("Imported 1 artifact and 1 blob from"),
        "{stderr}"
    );
    let line = one_error_line(&stderr);
    assert!(
        line.contains("26 entries of") && line.contains("were not imported"),
        "{line}"
    );

    let got = export(&scancache(&home, &strs(&target)));
    let want: Entries = [
        (("artifact".to_owned(), id(9)), ARTIFACT.to_owned()),
        (("blob".to_owned(), id(1)), BLOB.to_owned()),
    ]
    .into();
    assert_eq!(got, want);

    // A dry run counts the same, and fails the same way.
    let (_, stderr) = run(scancache(&home, &with(&["--dry-run"])), 1);
    assert!(
        stderr.contains("holds 1 artifact and 1 blob to import"),
        "{stderr}"
    );
}

#[test]
fn the_help_says_what_the_import_is_for() {
    let home = tempfile::tempdir().unwrap();
    let (stdout, _) = run(scancache(&home, &["cache", "import", "--help"]), 0);
    for want in [
        "--from-trivy <PATH>",
        "--dry-run",
        "serve Trivy clients",
        "scancache server",
        "never looks these entries up",
    ] {
        assert!(stdout.contains(want), "want {want:?} in:\n{stdout}");
    }
    let (_, stderr) = run(
        scancache(&home, &["cache", "import", "x", "--from-trivy", "y"]),
        2,
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

/// Each warning names the entry and why: a value that is not JSON, a nested bucket, a JSON
/// value that is not a document.
#[test]
fn bad_documents_and_nested_buckets_are_named() {
    let home = tempfile::tempdir().unwrap();
    let mut b = FileBuilder::new(4096);
    let (not_json, nested, array) = (id(2), id(3), id(4));
    let blobs = b.leaf(&[
        (not_json.as_bytes(), data("<html>")),
        (nested.as_bytes(), Val::Inline(vec![])),
        (array.as_bytes(), data("[1]")),
    ]);
    let root = b.leaf(&[(b"blob", Val::Pages(blobs))]);
    let path = home.path().join("fanal.db");
    fs::write(&path, b.file(root)).unwrap();
    let shown = path.display().to_string();
    let (_, target) = fs_target(&home);
    let mut args = strs(&target);
    args.extend(["cache", "import", "--from-trivy", &shown]);
    let (_, stderr) = run(scancache(&home, &args), 1);
    for want in [
        format!("Skipping blob {not_json} in {shown}: document is not a valid blob"),
        format!("Skipping blob {nested} in {shown}: a nested bucket, not a document"),
        format!("Skipping blob {array} in {shown}: document is not a valid blob"),
        "Imported 0 artifacts and 0 blobs".to_owned(),
    ] {
        assert!(stderr.contains(&want), "want {want:?}:\n{stderr}");
    }
}

/// `--dry-run` applies to an export file too: every line read and checked, nothing
/// written, the same exit status.
#[test]
fn an_export_file_takes_dry_run_too() {
    let home = tempfile::tempdir().unwrap();
    let (_, target) = fs_target(&home);
    let file = home.path().join("in.ndjson");
    let line = |n: u32| format!(r#"{{"kind":"blob","id":"{}","document":{BLOB}}}"#, id(n));
    fs::write(&file, format!("{}\n{}\nnot json\n", line(1), line(2))).unwrap();
    let file = file.display().to_string();
    let mut args = strs(&target);
    args.extend(["cache", "import", "--dry-run", &file]);
    let (_, stderr) = run(scancache(&home, &args), 1);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Dry run: {file} holds 2 entries to import; nothing was written"
        )),
        "{stderr}"
    );
    assert!(export(&scancache(&home, &strs(&target))).is_empty());
    args.retain(|a| *a != "--dry-run");
    let (_, stderr) = run(scancache(&home, &args), 1);
    assert!(stderr.contains("Imported 2 entries"), "{stderr}");
    assert_eq!(export(&scancache(&home, &strs(&target))).len(), 2);
}
