//! End-to-end tests of the `scancache` binary, run as a user would: against the fs and
//! memory backends, Redis over plain TCP and mutual TLS, a Redis Cluster and Redis
//! Sentinel (servers started by the tests on free loopback ports with certificates
//! generated for the test).

#![allow(clippy::unwrap_used)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use cache_core::{EntryKind, codec};
use cache_testkit::conformance::{artifact_id, blob_id, sample_artifact, sample_blob};
use cache_testkit::redis::{
    self as redis_support, MASTER_NAME, RedisCluster, RedisServer, SentinelOptions, SentinelSetup,
    ServerOptions, Tls,
};
use serde_json::{Value, json};

const PASSWORD: &str = "s3cr3t-pa55";

/// One test's world: a temp dir used as HOME and cache dir, and the backend arguments.
struct World {
    dir: tempfile::TempDir,
    backend: Vec<String>,
}

impl World {
    fn new(backend: Vec<String>) -> World {
        World {
            dir: tempfile::tempdir().unwrap(),
            backend,
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Runs scancache with the world's backend and cache dir.
    fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, None)
    }

    fn run_with_input(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
        cmd.arg("--cache-dir").arg(self.cache_dir());
        cmd.args(&self.backend).args(args);
        run_cmd(cmd, self.dir.path(), stdin)
    }
}

/// A finished command with everything needed to explain a failure.
struct Run {
    desc: String,
    out: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn explain(&self) -> String {
        format!(
            "command: {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            self.desc,
            self.out.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts the exit code and returns self.
    fn code(self, want: i32) -> Self {
        assert_eq!(self.out.status.code(), Some(want), "{}", self.explain());
        self
    }

    fn ok(self) -> Self {
        self.code(0)
    }

    /// Asserts stderr contains `needle`.
    fn err_has(self, needle: &str) -> Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.explain()
        );
        self
    }

    /// Asserts a failure is one clear line: no panic, no backtrace, never the password.
    fn one_line_error(self) -> Self {
        let err = self.stderr();
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("\tERROR\t")).collect();
        assert_eq!(errors.len(), 1, "want one error line\n{}", self.explain());
        for bad in ["panicked", "internal error", "backtrace"] {
            assert!(!err.contains(bad), "{}", self.explain());
        }
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", self.explain()))
    }
}

fn run_cmd(mut cmd: Command, home: &Path, stdin: Option<&str>) -> Run {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SCANCACHE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home).env_remove("XDG_CACHE_HOME");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let run = Run { desc, out };
    let all = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        !all.contains(PASSWORD),
        "password leaked\n{}",
        run.explain()
    );
    run
}

/// An export line for a document.
fn line(kind: EntryKind, id: &str, doc: &Value) -> String {
    json!({"kind": kind, "id": id, "document": doc, "expires_at": null}).to_string()
}

/// Three good entries and, as line 3, one corrupt line.
fn sample_ndjson() -> (String, Vec<String>) {
    let b1 = blob_id(1).to_string();
    let b2 = blob_id(2).to_string();
    let a1 = artifact_id(1).to_string();
    let doc = |v: Vec<u8>| serde_json::from_slice::<Value>(&v).unwrap();
    let lines = [
        line(
            EntryKind::Blob,
            &b1,
            &doc(codec::encode(&sample_blob(1, 3))),
        ),
        line(
            EntryKind::Blob,
            &b2,
            &doc(codec::encode(&sample_blob(2, 3))),
        ),
        "{\"kind\":\"blob\",\"id\":\"sha256:nope\"".to_owned(),
        line(
            EntryKind::Artifact,
            &a1,
            &doc(codec::encode(&sample_artifact(1))),
        ),
    ];
    (lines.join("\n") + "\n", vec![b1, b2, a1])
}

/// The whole `cache` command family against one persistent backend.
fn exercise_cache_commands(w: &World) {
    let (ndjson, ids) = sample_ndjson();
    let file = w.dir.path().join("in.ndjson");
    fs::write(&file, &ndjson).unwrap();

    // --strict stops at the bad line; nothing of the small file is imported.
    w.run(&["cache", "import", "--strict", file.to_str().unwrap()])
        .code(1)
        .err_has("line 3")
        .one_line_error();
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(
        (stats["artifacts"].as_u64(), stats["blobs"].as_u64()),
        (Some(0), Some(0))
    );

    // Without --strict the bad line is reported with its number and the rest imports.
    w.run(&["cache", "import", file.to_str().unwrap()])
        .code(1)
        .err_has("line 3")
        .err_has("Imported 3 entries");
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(
        (stats["artifacts"].as_u64(), stats["blobs"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(stats["bytes"].as_u64().unwrap() > 100);
    let text = w.run(&["cache", "stats"]).ok().stdout();
    assert!(text.contains("blobs:      2"), "{text}");

    let ls = w.run(&["cache", "ls", "--format", "json"]).ok().json();
    let mut listed: Vec<String> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(listed, want);
    let blobs = w.run(&["cache", "ls", "--kind", "blob"]).ok().stdout();
    assert_eq!(blobs.lines().count(), 3, "header and two blobs:\n{blobs}");
    assert!(!blobs.contains(&ids[2]));

    let got = w.run(&["cache", "get", &ids[0]]).ok().json();
    assert_eq!(got, serde_json::to_value(sample_blob(1, 3)).unwrap());
    let got = w.run(&["cache", "get", &ids[2]]).ok().json();
    assert_eq!(got["OS"], "linux");
    w.run(&["cache", "get", &blob_id(77).to_string()])
        .code(1)
        .err_has("no cache entry")
        .one_line_error();

    // Export to a file, remove an entry, re-import: everything is back.
    let out = w.dir.path().join("out.ndjson");
    w.run(&["cache", "export", out.to_str().unwrap()])
        .ok()
        .err_has("Exported 3 entries");
    assert_eq!(fs::read_to_string(&out).unwrap().lines().count(), 3);
    let stdout_export = w.run(&["cache", "export", "-"]).ok().stdout();
    assert_eq!(stdout_export.lines().count(), 3);
    w.run(&["cache", "rm", &ids[0], &ids[2]])
        .ok()
        .err_has("Removed 2 entries");
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(
        (stats["artifacts"].as_u64(), stats["blobs"].as_u64()),
        (Some(0), Some(1))
    );
    w.run_with_input(&["cache", "import", "-"], Some(&stdout_export))
        .ok()
        .err_has("Imported 3 entries");
    assert_eq!(w.run(&["cache", "get", &ids[0]]).ok().json(), got_blob(1));

    // gc drops a stale entry and reports it.
    let stale = line(
        EntryKind::Blob,
        &blob_id(9).to_string(),
        &json!({"SchemaVersion": 1}),
    );
    w.run_with_input(&["cache", "import", "-"], Some(&stale))
        .ok();
    w.run(&["cache", "gc"]).ok().err_has("1 stale entries");
    // Nothing here has gone unread for a month; a backend that does not record reads
    // says it kept what it cannot judge.
    let gc = w.run(&["cache", "gc", "--unused-for", "30d"]).ok();
    assert!(gc.stderr().contains("0 unused entries"), "{}", gc.explain());
    let text = w.run(&["cache", "stats"]).ok().stdout();
    assert!(text.contains("unread"), "{text}");
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["blobs"].as_u64(), Some(2));

    // clean --scan-cache empties the backend.
    w.run(&["clean", "--scan-cache"])
        .ok()
        .err_has("\tINFO\tRemoving scan cache...");
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(
        (stats["artifacts"].as_u64(), stats["blobs"].as_u64()),
        (Some(0), Some(0))
    );
}

fn got_blob(n: u64) -> Value {
    serde_json::to_value(sample_blob(n, 3)).unwrap()
}

fn redis_world(server: &RedisServer, db: u32, tls: Tls) -> World {
    let mut args = vec![
        "--cache-backend".to_owned(),
        server.url_with_auth("", PASSWORD, db),
    ];
    if let Some(certs) = &server.certs {
        args.push("--redis-ca".into());
        args.push(certs.ca.display().to_string());
        if tls == Tls::Mutual {
            args.push("--redis-cert".into());
            args.push(certs.client_cert.display().to_string());
            args.push("--redis-key".into());
            args.push(certs.client_key.display().to_string());
        }
    }
    World::new(args)
}

fn redis_server(tls: Tls) -> Option<RedisServer> {
    redis_support::require_redis().then(|| {
        RedisServer::start(ServerOptions {
            tls,
            password: Some(PASSWORD.into()),
            ..Default::default()
        })
    })
}

#[test]
fn cache_commands_on_fs() {
    let w = World::new(vec![]);
    exercise_cache_commands(&w);
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["backend"], "fs");
    assert!(stats["disk_bytes"].as_u64().unwrap() > 0);
    assert!(w.cache_dir().join("fanal/data.mdb").is_file());
}

/// `clean --scan-cache` on fs never follows a `fanal` symlink, and removes a directory
/// that is not our cache (the reference tool's `fanal.db`) instead of opening it.
#[test]
fn clean_scan_cache_handles_links_and_foreign_caches() {
    let w = World::new(vec![]);
    let fanal = w.cache_dir().join("fanal");
    let outside = w.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("precious"), b"keep").unwrap();
    fs::create_dir_all(w.cache_dir()).unwrap();
    std::os::unix::fs::symlink(&outside, &fanal).unwrap();
    w.run(&["clean", "--scan-cache"]).ok();
    assert!(fs::symlink_metadata(&fanal).is_err(), "the link is gone");
    let left: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["precious"],
        "nothing created or removed behind the link"
    );

    fs::create_dir_all(&fanal).unwrap();
    fs::write(
        fanal.join("fanal.db"),
        b"a BoltDB file of the reference tool",
    )
    .unwrap();
    w.run(&["clean", "--scan-cache"]).ok();
    assert!(!fanal.exists());
}

#[test]
fn clean_scan_cache_removes_an_fs_cache_that_is_not_a_database() {
    let w = World::new(vec![]);
    let fanal = w.cache_dir().join("fanal");
    fs::create_dir_all(&fanal).unwrap();
    fs::write(fanal.join("data.mdb"), b"this is not an LMDB file at all").unwrap();
    w.run(&["cache", "stats"])
        .code(1)
        .one_line_error()
        .err_has("data.mdb");
    w.run(&["clean", "--scan-cache"])
        .ok()
        .err_has("removing its files");
    assert!(!fanal.exists());
    w.run(&["cache", "stats"]).ok();
}

/// Eight processes import into one fs cache at the same time: none fails (there is no
/// "in use by another process"), and every entry is there afterwards.
#[test]
fn concurrent_processes_share_the_fs_cache() {
    let w = World::new(vec![]);
    let children: Vec<_> = (0..8u64)
        .map(|p| {
            let lines: String = (0..50u64)
                .map(|i| {
                    let n = p * 1000 + i;
                    let doc: Value =
                        serde_json::from_slice(&codec::encode(&sample_blob(n, 2))).unwrap();
                    line(EntryKind::Blob, &blob_id(n).to_string(), &doc) + "\n"
                })
                .collect();
            let file = w.dir.path().join(format!("p{p}.ndjson"));
            fs::write(&file, lines).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
            cmd.arg("--cache-dir")
                .arg(w.cache_dir())
                .args(["cache", "import"])
                .arg(&file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["blobs"].as_u64(), Some(400));
}

#[test]
fn export_from_fs_imports_into_redis_unchanged() {
    let Some(server) = redis_server(Tls::Off) else {
        return;
    };
    let fs_world = World::new(vec![]);
    let (ndjson, _) = sample_ndjson();
    fs_world
        .run_with_input(&["cache", "import", "-"], Some(&ndjson))
        .code(1);
    let from_fs = fs_world.run(&["cache", "export", "-"]).ok().stdout();
    let redis = redis_world(&server, 1, Tls::Off);
    redis
        .run_with_input(&["cache", "import", "-"], Some(&from_fs))
        .ok();
    let from_redis = redis.run(&["cache", "export", "-"]).ok().stdout();
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&from_fs).len(), 3);
    assert_eq!(sorted(&from_fs), sorted(&from_redis));
}

#[test]
fn cache_commands_on_redis() {
    let Some(server) = redis_server(Tls::Off) else {
        return;
    };
    let w = redis_world(&server, 0, Tls::Off);
    exercise_cache_commands(&w);
    // Unrelated keys in the same database survive `clean --scan-cache`.
    let redis_cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &server.port().to_string(),
                "-a",
                PASSWORD,
                "--no-auth-warning",
            ])
            .args(args)
            .output()
            .expect(
                "redis-cli is needed (it comes with redis-server: apt-get install redis-server)",
            );
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(redis_cli(&["SET", "unrelated", "keep"]), "OK");
    w.run(&["clean", "--scan-cache"]).ok();
    assert_eq!(redis_cli(&["GET", "unrelated"]), "keep");
}

#[test]
fn cache_commands_on_redis_over_mutual_tls() {
    let Some(server) = redis_server(Tls::Mutual) else {
        return;
    };
    exercise_cache_commands(&redis_world(&server, 0, Tls::Mutual));
}

/// Every entry `scancache cache ls` lists, as the document `scancache cache get` shows,
/// must read back the same through `read` (another client of the same Redis).
fn check_entries_read_back(w: &World, read: impl Fn(&str) -> String) -> usize {
    let ls = w.run(&["cache", "ls", "--format", "json"]).ok().json();
    let entries = ls.as_array().unwrap();
    for e in entries {
        let (kind, id) = (e["kind"].as_str().unwrap(), e["id"].as_str().unwrap());
        let raw = read(&format!("fanal::{kind}::{id}"));
        let stored: Value =
            serde_json::from_str(&raw).unwrap_or_else(|_| panic!("{kind} {id}: {raw:?}"));
        assert_eq!(
            stored,
            w.run(&["cache", "get", id]).ok().json(),
            "{kind} {id}"
        );
    }
    entries.len()
}

/// The `cache` commands, `clean --scan-cache` and image scans on a Redis Cluster: the
/// reports match the fs backend's, and an ordinary cluster client (`redis-cli -c`) reads
/// every entry under the reference layout. (The reference scanner cannot use a cluster,
/// so that is the interoperability check here.)
#[test]
fn cache_commands_and_scans_on_a_redis_cluster() {
    if !redis_support::require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3, 0, Tls::Off);
    let w = World::new(vec!["--cache-backend".into(), cluster.urls()]);
    exercise_cache_commands(&w);
    let reports = exercise_image_scans(&w);
    assert_eq!(
        reports,
        exercise_image_scans(&World::new(vec![])),
        "cluster and fs reports differ"
    );
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["backend"], "redis");
    let entries = check_entries_read_back(&w, |key| cluster.cli(&["GET", key]));
    assert!(entries >= 7, "{entries} entries");
    assert_eq!(cluster.key_count(), entries as u64);
    assert_eq!(cluster.cli(&["SET", "unrelated", "keep"]), "OK");
    w.run(&["clean", "--scan-cache"]).ok();
    assert_eq!(cluster.key_count(), 1);
}

/// The same through Redis Sentinel, with a password on the data nodes (in the URL) and
/// another on the sentinels (`--redis-sentinel-password`); then the other form, the
/// sentinels as `redis://` URLs with the master's name from the environment.
#[test]
fn cache_commands_and_scans_through_redis_sentinel() {
    if !redis_support::require_redis() {
        return;
    }
    let sentinel_password = format!("{PASSWORD}-sentinel");
    let setup = SentinelSetup::start(SentinelOptions {
        replicas: 1,
        password: Some(PASSWORD.into()),
        sentinel_password: Some(sentinel_password.clone()),
        ..Default::default()
    });
    let w = World::new(vec![
        "--cache-backend".into(),
        setup.url(2),
        "--redis-sentinel-password".into(),
        sentinel_password.clone(),
    ]);
    exercise_cache_commands(&w);
    let reports = exercise_image_scans(&w);
    assert_eq!(
        reports,
        exercise_image_scans(&World::new(vec![])),
        "sentinel and fs reports differ"
    );
    let master = setup
        .servers
        .iter()
        .find(|s| s.port() == setup.master_port())
        .unwrap();
    let entries = check_entries_read_back(&w, |key| master.cli(&["-n", "2", "GET", key]));
    assert!(entries >= 7, "{entries} entries");

    let sentinel = setup.sentinels[0].port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
    cmd.args(["cache", "stats", "--format", "json"])
        .env(
            "SCANCACHE_CACHE_BACKEND",
            format!("redis://:{PASSWORD}@127.0.0.1:{sentinel}/2"),
        )
        .env("SCANCACHE_REDIS_MASTER_NAME", MASTER_NAME)
        .env("SCANCACHE_REDIS_SENTINEL_PASSWORD", &sentinel_password);
    let stats = run_cmd(cmd, w.dir.path(), None).ok().json();
    assert_eq!(
        stats["blobs"].as_u64(),
        Some(entries as u64 - stats["artifacts"].as_u64().unwrap())
    );

    // Wrong sentinel password; a master no sentinel knows; names that disagree.
    let w = World::new(vec![]);
    let url = setup.url(2);
    w.run(&["--cache-backend", &url, "cache", "stats"])
        .code(1)
        .err_has("NOAUTH")
        .one_line_error();
    let unknown = url.replace(&format!("/{MASTER_NAME}/"), "/nosuch/");
    w.run(&[
        "--cache-backend",
        &unknown,
        "--redis-sentinel-password",
        &sentinel_password,
        "cache",
        "stats",
    ])
    .code(1)
    .err_has("knows no master named \"nosuch\"")
    .one_line_error();
    w.run(&[
        "--cache-backend",
        &url,
        "--redis-master-name",
        "other",
        "cache",
        "stats",
    ])
    .code(2)
    .err_has("invalid --redis-master-name");
}

#[test]
fn memory_backend_runs_commands_and_keeps_nothing() {
    let w = World::new(vec!["--cache-backend".into(), "memory".into()]);
    let (ndjson, _) = sample_ndjson();
    w.run_with_input(&["cache", "import", "-"], Some(&ndjson))
        .code(1)
        .err_has("line 3")
        .err_has("Imported 3 entries");
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["backend"], "memory");
    assert_eq!(
        stats["blobs"].as_u64(),
        Some(0),
        "a new process starts empty"
    );
    w.run(&["clean", "--scan-cache"]).ok();
}

#[test]
fn error_paths_are_one_clear_line() {
    let w = World::new(vec![]);
    let closed = redis_support::free_port();
    // Failures at run time exit 1 with one line.
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--cache-backend".into(),
                format!("redis://:{PASSWORD}@127.0.0.1:{closed}/0"),
            ],
            "is unavailable",
        ),
        (
            vec![
                "--cache-backend".into(),
                format!("redis://127.0.0.1:{closed}"),
                "--redis-cert".into(),
                "/etc/hostname".into(),
            ],
            "without its private key",
        ),
        (
            vec![
                "--cache-backend".into(),
                format!("redis://127.0.0.1:{closed}"),
                "--redis-ca".into(),
                "/nonexistent/ca.pem".into(),
            ],
            "/nonexistent/ca.pem",
        ),
    ];
    for (args, needle) in cases {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["cache", "stats"]);
        w.run(&all).code(1).err_has(needle).one_line_error();
    }
    // Bad option values are usage errors (exit 2), and still never show the password.
    let usage: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--cache-backend".into(),
                format!("redis://:{PASSWORD}@host:notaport"),
            ],
            "invalid",
        ),
        (
            vec!["--cache-backend".into(), "s3://bucket".into()],
            "use fs (the default), memory",
        ),
        (
            vec!["--cache-backend".into(), format!("ftp://u:{PASSWORD}@h")],
            "unknown backend",
        ),
        (
            vec!["--cache-ttl".into(), "10parsecs".into()],
            "--cache-ttl",
        ),
        (
            vec!["--cache-max-size".into(), "lots".into()],
            "--cache-max-size",
        ),
        (
            vec![
                "--cache-backend".into(),
                format!("redis://:{PASSWORD}@h1:7000/1,redis://:{PASSWORD}@h2:7001/1"),
            ],
            "a Redis Cluster has only database 0",
        ),
        (
            vec![
                "--cache-backend".into(),
                format!("redis://:{PASSWORD}@h1:7000,rediss://:{PASSWORD}@h2:7001"),
            ],
            "same TLS mode",
        ),
        (
            vec![
                "--cache-backend".into(),
                format!("redis+sentinel://:{PASSWORD}@s1:26379"),
            ],
            "names no master",
        ),
    ];
    for (args, needle) in usage {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["cache", "stats"]);
        w.run(&all).code(2).err_has(needle);
    }
    w.run(&["image", "--input", "x.tar", "--max-db-size", "12parsecs"])
        .code(2)
        .err_has("--max-db-size");
    // Usage errors exit 2.
    w.run(&["cache", "get", "sha256:1234"])
        .code(2)
        .err_has("64 hex digits");
    w.run(&["cache", "rm"]).code(2);
    w.run(&["clean"])
        .code(2)
        .err_has("no clean option is specified");
    w.run(&["no-such-command"]).code(2);
}

#[test]
fn clean_removes_what_each_flag_names() {
    let w = World::new(vec!["--cache-backend".into(), "memory".into()]);
    let dir = w.cache_dir();
    let make = || {
        for d in ["db", "java-db", "policy", "vex", "fanal"] {
            fs::create_dir_all(dir.join(d).join("sub")).unwrap();
            fs::write(dir.join(d).join("sub/file"), b"x").unwrap();
        }
    };
    let present = |d: &str| dir.join(d).exists();
    let cases: [(&str, &[&str], &str); 4] = [
        ("--vuln-db", &["db"], "Removing vulnerability database..."),
        ("--java-db", &["java-db"], "Removing Java database..."),
        ("--checks-bundle", &["policy"], "Removing check bundle..."),
        ("--vex-repo", &["vex"], "Removing VEX repositories..."),
    ];
    for (flag, gone, message) in cases {
        make();
        w.run(&["clean", flag]).ok().err_has(message);
        for d in ["db", "java-db", "policy", "vex", "fanal"] {
            assert_eq!(present(d), !gone.contains(&d), "{flag}: {d}");
        }
    }
    make();
    w.run(&["clean", "--all"])
        .ok()
        .err_has("Removing scan cache...");
    for d in ["db", "java-db", "policy", "vex", "fanal"] {
        assert!(!present(d), "--all left {d}");
    }

    // A cache dir that does not exist is not an error.
    let missing = World::new(vec![]);
    missing.run(&["clean", "--all"]).ok();
    assert!(!missing.cache_dir().exists());

    // A symlink out of the cache dir is removed, never followed.
    let outside = w.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("precious"), b"keep").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("db")).unwrap();
    w.run(&["clean", "--vuln-db"]).ok();
    assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep");
    assert!(fs::symlink_metadata(dir.join("db")).is_err());

    // The home directory itself is refused.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
    cmd.arg("--cache-dir")
        .arg(w.dir.path())
        .args(["clean", "--all"]);
    run_cmd(cmd, w.dir.path(), None)
        .code(1)
        .err_has("home directory")
        .one_line_error();
    assert!(outside.join("precious").exists());
}

#[test]
fn options_come_from_env_and_after_the_subcommand() {
    let w = World::new(vec![]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
    cmd.args(["cache", "stats", "--format", "json"])
        .env("SCANCACHE_CACHE_BACKEND", "memory");
    let r = run_cmd(cmd, w.dir.path(), None).ok();
    assert_eq!(r.json()["backend"], "memory");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
    cmd.args(["cache", "stats", "--cache-backend", "memory", "-q"]);
    let r = run_cmd(cmd, w.dir.path(), None).ok();
    assert!(r.stdout().contains("memory"));

    // --quiet leaves only errors; warnings from import disappear.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
    cmd.args(["--cache-backend", "memory", "cache", "import", "-"])
        .env("SCANCACHE_QUIET", "true");
    let r = run_cmd(cmd, w.dir.path(), Some("garbage\n")).code(1);
    assert!(
        !r.stderr().contains("WARN") && r.stderr().contains("ERROR"),
        "{}",
        r.explain()
    );
}

#[test]
fn help_and_completions() {
    let w = World::new(vec![]);
    for args in [
        &["--help"][..],
        &["clean", "--help"],
        &["cache", "--help"],
        &["cache", "import", "--help"],
    ] {
        let out = w.run(args).ok().stdout();
        assert!(out.contains("Usage: scancache"), "{out}");
    }
    let help = w.run(&["cache", "stats", "--help"]).ok().stdout();
    for needle in [
        "SCANCACHE_CACHE_BACKEND",
        "Example: --cache-ttl 7d",
        "--redis-ca",
        "--redis-master-name",
        "SCANCACHE_REDIS_SENTINEL_PASSWORD",
        "redis+sentinel://",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = w.run(&["completion", shell]).ok().stdout();
        assert!(
            script.contains("scancache") && script.len() > 500,
            "{shell}"
        );
    }
}

/// The repository's sample archives.
fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name)
        .display()
        .to_string()
}

/// The `key=value` field of the scan summary line cache-scan logs.
fn summary_field(run: &Run, key: &str) -> u64 {
    let err = run.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("scanned image"))
        .unwrap_or_else(|| panic!("no scan summary\n{}", run.explain()));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

/// A JSON report without `Metadata.Layers`, where the layers' sources (analysed, cached)
/// differ between a cold and a warm scan.
fn without_sources(mut report: Value) -> Value {
    if let Some(m) = report["Metadata"].as_object_mut() {
        m.remove("Layers");
    }
    report
}

/// Scans every sample twice and the pair's second image after the first: the second scan
/// analyses nothing, the second image only its own layer. Returns the JSON reports.
fn exercise_image_scans(w: &World) -> Vec<Value> {
    let mut reports = Vec::new();
    for name in ["debian.tar", "alpine.tar"] {
        let cold = w
            .run(&["image", "--input", &sample(name), "--format", "json"])
            .ok();
        assert_eq!(summary_field(&cold, "analysed"), 2, "cold scan of {name}");
        let warm = w
            .run(&["image", "--input", &sample(name), "--format", "json"])
            .ok();
        assert_eq!(summary_field(&warm, "analysed"), 0, "warm scan of {name}");
        assert_eq!(summary_field(&warm, "cached"), 2);
        let (cold_json, warm_json) = (cold.json(), warm.json());
        assert_eq!(cold_json["Metadata"]["Layers"][0]["Source"], "analysed");
        assert_eq!(warm_json["Metadata"]["Layers"][0]["Source"], "cached");
        assert_eq!(
            without_sources(cold_json),
            without_sources(warm_json),
            "cold and warm reports differ for {name}"
        );
        reports.push(cold.json());
    }
    let a = w
        .run(&["image", "-i", &sample("pair.tar"), "-f", "json"])
        .ok();
    assert_eq!(summary_field(&a, "analysed"), 2);
    let b = w
        .run(&[
            "image",
            "-i",
            &sample("pair.tar"),
            "--image",
            "sample/app-b:1.0",
            "-f",
            "json",
        ])
        .ok();
    assert_eq!(
        summary_field(&b, "analysed"),
        1,
        "app-b reuses the shared base layer"
    );
    assert_eq!(summary_field(&b, "cached"), 1);
    reports.push(a.json());
    reports.push(b.json());
    reports
}

#[test]
fn image_scans_are_cached_and_identical_on_every_backend() {
    let fs_reports = exercise_image_scans(&World::new(vec![]));
    let debian = &fs_reports[0];
    assert_eq!(debian["Metadata"]["OS"]["Family"], "debian");
    assert_eq!(debian["Results"][0]["Class"], "os-pkgs");
    assert!(debian["Results"][0]["Packages"].as_array().unwrap().len() > 10);

    // Memory: nothing survives the process, so every scan is cold, with the same report.
    let mem = World::new(vec!["--cache-backend".into(), "memory".into()]);
    for (name, want) in [
        ("debian.tar", &fs_reports[0]),
        ("alpine.tar", &fs_reports[1]),
    ] {
        let run = mem
            .run(&["image", "--input", &sample(name), "--format", "json"])
            .ok();
        assert_eq!(summary_field(&run, "analysed"), 2);
        assert_eq!(&run.json(), want, "memory report differs for {name}");
    }

    let Some(server) = redis_server(Tls::Mutual) else {
        return;
    };
    let redis_reports = exercise_image_scans(&redis_world(&server, 3, Tls::Mutual));
    assert_eq!(fs_reports, redis_reports, "fs and Redis reports differ");
}

#[test]
fn output_to_a_fifo_is_written_in_place_not_replaced_by_a_file() {
    // What `-o /dev/null` relies on: a path that is not a regular file is written to,
    // never renamed over (that replaced the machine's /dev/null with a file).
    use std::{io::Read, os::unix::fs::FileTypeExt};
    let w = World::new(vec![]);
    let fifo = w.dir.path().join("report.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            fs::File::open(&fifo)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        })
    };
    w.run(&[
        "image",
        "--input",
        &sample("debian.tar"),
        "-f",
        "json",
        "-o",
        fifo.to_str().unwrap(),
    ])
    .ok();
    let report: Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(report["ArtifactType"], "container_image");
    let kind = fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
}

#[test]
fn image_report_goes_to_a_file_and_bad_archives_fail_cleanly() {
    let w = World::new(vec![]);
    let out = w.dir.path().join("report.json");
    let run = w
        .run(&[
            "image",
            "--input",
            &sample("debian.tar"),
            "-f",
            "json",
            "-o",
            out.to_str().unwrap(),
        ])
        .ok();
    assert!(run.stdout().is_empty(), "the report goes to the file only");
    let report: Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(report["ArtifactType"], "container_image");

    let table = w
        .run(&["image", "--input", &sample("alpine.tar")])
        .ok()
        .stdout();
    assert!(
        table.contains("alpine") && table.contains("NAME"),
        "{table}"
    );
    assert!(
        table.lines().all(|l| l.chars().count() <= 80),
        "fits 80 columns:\n{table}"
    );

    let not_tar = w.dir.path().join("not.tar");
    fs::write(&not_tar, b"hello, this is not an archive").unwrap();
    let missing = w.dir.path().join("missing.tar");
    for input in [&not_tar, &missing] {
        w.run(&["image", "--input", input.to_str().unwrap()])
            .code(1)
            .one_line_error()
            .err_has(input.to_str().unwrap());
    }
    // Nothing but the good scan's entries was written.
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["artifacts"].as_u64(), Some(2));
}

/// Runs `scancache image` on the memory backend with `SOURCE_DATE_EPOCH` as given.
fn image_run(w: &World, args: &[&str], epoch: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
    cmd.args(["--cache-backend", "memory", "image"]).args(args);
    match epoch {
        Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
    run_cmd(cmd, w.dir.path(), None)
}

#[test]
fn sboms_are_reproducible_with_source_date_epoch() {
    let w = World::new(vec![]);
    let lang = sample("lang.tar");
    for (format, time, serial) in [
        ("cyclonedx", "/metadata/timestamp", "/serialNumber"),
        ("spdx-json", "/creationInfo/created", "/documentNamespace"),
    ] {
        let args = ["--input", lang.as_str(), "--format", format];
        let a = image_run(&w, &args, Some("1700000000")).ok();
        let b = image_run(&w, &args, Some("1700000000")).ok();
        assert_eq!(a.stdout(), b.stdout(), "{format}: not reproducible");
        let doc = a.json();
        assert_eq!(
            doc.pointer(time).unwrap(),
            "2023-11-14T22:13:20Z",
            "{format}"
        );
        // Without it: now, and a fresh serial number; nothing else changes.
        let c = image_run(&w, &args, None).ok();
        let field = |d: &Value, at: &str| d.pointer(at).unwrap().as_str().unwrap().to_owned();
        let later = c.json();
        assert_ne!(field(&doc, serial), field(&later, serial), "{format}");
        let same = c
            .stdout()
            .replace(&field(&later, time), &field(&doc, time))
            .replace(&field(&later, serial), &field(&doc, serial));
        assert!(
            same == a.stdout(),
            "{format}: documents differ beyond time and serial number"
        );
        let purls = a.stdout().matches("pkg:pypi/").count();
        assert!(purls >= 3, "{format}: {purls} PyPI PURLs");
    }
    image_run(&w, &["--input", &lang, "-f", "cyclonedx"], Some("soon"))
        .code(1)
        .one_line_error()
        .err_has("SOURCE_DATE_EPOCH");
}

#[test]
fn bad_package_files_are_skipped_with_a_warning_naming_file_and_reason() {
    use cache_fixtures::{Compression, HOSTILE_FILES, ImageBuilder, docker_save, hostile_layer};
    let w = World::new(vec![]);
    let image = ImageBuilder::new(&["bad:1"]).layer(&hostile_layer(), Compression::Gzip, "bad");
    let input = w.dir.path().join("bad.tar");
    fs::write(&input, docker_save(&[&image])).unwrap();
    let run = image_run(
        &w,
        &["--input", input.to_str().unwrap(), "-f", "json"],
        None,
    )
    .ok();
    let err = run.stderr();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("\tWARN\t")).collect();
    for bad in HOSTILE_FILES {
        assert!(
            warnings
                .iter()
                .any(|l| l.contains(bad.path) && l.contains(bad.reason)),
            "no warning naming {} and {:?}\n{}",
            bad.path,
            bad.reason,
            run.explain()
        );
    }
    assert_eq!(warnings.len(), HOSTILE_FILES.len(), "{}", run.explain());
    for bad in ["panicked", "backtrace", "ERROR"] {
        assert!(!err.contains(bad), "{}", run.explain());
    }
    let names: Vec<String> = run.json()["Results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Packages"].as_array().cloned().unwrap_or_default())
        .map(|p| p["Name"].as_str().unwrap().to_owned())
        .collect();
    for good in ["example.com/good", "ok", "fine", "org.example:fine"] {
        assert!(names.iter().any(|n| n == good), "{good} missing: {names:?}");
    }
}

/// The `key=value` field of the directory scan summary.
fn tree_field(run: &Run, key: &str) -> u64 {
    let err = run.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("scanned directory"))
        .unwrap_or_else(|| panic!("no scan summary\n{}", run.explain()));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

/// `(name, version)` of every package of a JSON report.
fn report_packages(run: &Run) -> Vec<(String, String)> {
    run.json()["Results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Packages"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            (
                p["Name"].as_str().unwrap_or_default().to_owned(),
                p["Version"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn directory_and_sbom_scans_default_to_memory_and_an_explicit_backend_wins() {
    let w = World::new(vec![]);
    let tree = w.dir.path().join("tree");
    cache_fixtures::write_project(&tree, 20).unwrap();
    let tree = tree.to_str().unwrap();
    for _ in 0..2 {
        let run = w.run(&["fs", tree, "-f", "json"]).ok();
        assert_eq!(tree_field(&run, "analysed"), 1, "memory keeps nothing");
        assert_eq!(run.json()["ArtifactType"], "filesystem");
    }
    // Nothing reached the fs cache, the default of the cache commands.
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["blobs"], 0, "{stats}");
    for (args, env) in [(vec!["--cache-backend", "fs"], None), (vec![], Some("fs"))] {
        let run_fs = |w: &World| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
            cmd.arg("--cache-dir")
                .arg(w.cache_dir())
                .args(&args)
                .args(["fs", tree]);
            if let Some(b) = env {
                cmd.env("SCANCACHE_CACHE_BACKEND", b);
            }
            let run = run_cmd(cmd, w.dir.path(), None);
            // `run_cmd` removes SCANCACHE_* variables it inherits, not those set here.
            run.code(0)
        };
        let w = World::new(vec![]);
        assert_eq!(tree_field(&run_fs(&w), "analysed"), 1);
        let warm = run_fs(&w);
        assert_eq!(
            (tree_field(&warm, "analysed"), tree_field(&warm, "cached")),
            (0, 1),
            "{}",
            warm.explain()
        );
    }
    for (cmd, default) in [("fs", "memory"), ("rootfs", "memory"), ("sbom", "memory")] {
        let help = w.run(&[cmd, "--help"]).ok().stdout();
        assert!(
            help.contains(&format!("Cache backend default: {default}")),
            "{cmd}: {help}"
        );
    }
    let help = w.run(&["image", "--help"]).ok().stdout();
    assert!(help.contains("Cache backend default: fs"), "{help}");
}

/// Runs `cmd` as the unprivileged user `nobody` when the tests run as root (root reads
/// any directory, whatever its mode), else as it is.
fn unprivileged(args: &[&str], home: &Path) -> Run {
    let bin = env!("CARGO_BIN_EXE_scancache");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args);
    run_cmd(cmd, home, None)
}

#[test]
fn bad_files_in_a_tree_are_warnings_and_the_rest_is_scanned() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let w = World::new(vec![]);
    let root = w.dir.path().join("tree");
    let file = |p: &str, text: &str| {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    file(
        "good/go.mod",
        "module example.com/good\n\ngo 1.22\n\nrequire github.com/a/b v1.2.3\n",
    );
    file("bad-cargo/Cargo.lock", "[[package]\nname = ");
    file(
        "bad-npm/package-lock.json",
        "{\"lockfileVersion\": 3, \"packages\": ",
    );
    file(
        "bad-pnpm/pnpm-lock.yaml",
        "lockfileVersion: '9.0'\n  packages: [\n",
    );
    file("bad-pom/pom.xml", "<project><dependencies>");
    file("secret/Gemfile.lock", "GEM\n  specs:\n    hidden (1.0.0)\n");
    // A 1 GB package-lock.json, sparse: judged by its size, never read.
    fs::create_dir_all(root.join("huge")).unwrap();
    fs::File::create(root.join("huge/package-lock.json"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    // Links are never followed: a loop, and a lockfile pointing out of the tree.
    symlink("..", root.join("good/loop")).unwrap();
    let outside = w.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(
        outside.join("yarn.lock"),
        "left-pad@^1:\n  version \"1.3.0\"\n",
    )
    .unwrap();
    symlink(outside.join("yarn.lock"), root.join("good/yarn.lock")).unwrap();
    symlink(&outside, root.join("escape")).unwrap();
    // A FIFO named like a lockfile is not a regular file: never opened.
    let fifo = Command::new("mkfifo")
        .arg(root.join("good/requirements.txt"))
        .status()
        .unwrap();
    assert!(fifo.success());
    // Everyone may read the tree but `secret`.
    for dir in [w.dir.path(), root.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for entry in [
        "good",
        "bad-cargo",
        "bad-npm",
        "bad-pnpm",
        "bad-pom",
        "huge",
    ] {
        fs::set_permissions(root.join(entry), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();

    let started = std::time::Instant::now();
    let run = unprivileged(&["fs", root.to_str().unwrap(), "-f", "json"], w.dir.path()).ok();
    assert!(started.elapsed().as_secs() < 20, "the 1 GB file was read?");
    let err = run.stderr();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("\tWARN\t")).collect();
    for (path, reason) in [
        ("bad-cargo/Cargo.lock", "not a valid Cargo.lock"),
        ("bad-npm/package-lock.json", "not valid JSON"),
        ("bad-pnpm/pnpm-lock.yaml", "not valid YAML"),
        ("bad-pom/pom.xml", "not valid XML"),
        (
            "huge/package-lock.json",
            "1073741824 bytes is over the 67108864-byte limit",
        ),
        ("secret", "skipping unreadable directory"),
    ] {
        assert!(
            warnings
                .iter()
                .any(|l| l.contains(path) && l.contains(reason)),
            "no warning naming {path} and {reason:?}\n{}",
            run.explain()
        );
    }
    assert_eq!(warnings.len(), 6, "{}", run.explain());
    for bad in ["panicked", "backtrace", "ERROR"] {
        assert!(!err.contains(bad), "{}", run.explain());
    }
    let pkgs = report_packages(&run);
    assert!(
        pkgs.contains(&("github.com/a/b".into(), "v1.2.3".into())),
        "{pkgs:?}"
    );
    assert!(
        !pkgs.iter().any(|(n, _)| n == "left-pad" || n == "hidden"),
        "{pkgs:?}"
    );
    fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o755)).unwrap();

    // rootfs never reads the host's files through a link either.
    let rootfs = w.dir.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    symlink("/etc/os-release", rootfs.join("etc/os-release")).unwrap();
    symlink("/", rootfs.join("host")).unwrap();
    let run = w
        .run(&["rootfs", rootfs.to_str().unwrap(), "-f", "json"])
        .ok();
    assert!(
        run.json()["Metadata"].get("OS").is_none(),
        "{}",
        run.explain()
    );
    assert_eq!(run.json()["Results"], json!([]), "{}", run.explain());

    // Not a directory: one line, exit 1.
    w.run(&[
        "fs",
        w.dir.path().join("outside/yarn.lock").to_str().unwrap(),
    ])
    .code(1)
    .one_line_error()
    .err_has("is not a directory");
}

#[test]
fn sbom_reads_documents_back_and_bad_ones_are_one_line_errors() {
    let w = World::new(vec![]);
    let doc = w.dir.path().join("debian.cdx.json");
    w.run(&[
        "image",
        "-i",
        &sample("debian.tar"),
        "-f",
        "cyclonedx",
        "-o",
        doc.to_str().unwrap(),
    ])
    .ok();
    let image = w
        .run(&["image", "-i", &sample("debian.tar"), "-f", "json"])
        .ok();
    let run = w.run(&["sbom", doc.to_str().unwrap(), "-f", "json"]).ok();
    assert_eq!(run.json()["ArtifactType"], "cyclonedx");
    let mut from_sbom = report_packages(&run);
    let mut from_image = report_packages(&image);
    from_sbom.sort();
    from_image.sort();
    assert_eq!(from_sbom.len(), from_image.len());
    let table = w.run(&["sbom", doc.to_str().unwrap()]).ok().stdout();
    assert!(table.contains("curl"), "{table}");
    for (name, text, reason) in [
        ("text.json", "hello", "not JSON"),
        (
            "old.json",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.1"}"#,
            "unsupported CycloneDX spec version \"1.1\"",
        ),
        (
            "spdx3.json",
            r#"{"spdxVersion":"SPDX-3.0"}"#,
            "unsupported SPDX version \"SPDX-3.0\"",
        ),
        (
            "other.json",
            r#"{"hello":"world"}"#,
            "neither a CycloneDX document",
        ),
    ] {
        let path = w.dir.path().join(name);
        fs::write(&path, text).unwrap();
        w.run(&["sbom", path.to_str().unwrap()])
            .code(1)
            .one_line_error()
            .err_has(reason);
    }
    w.run(&["sbom", w.dir.path().join("missing.json").to_str().unwrap()])
        .code(1)
        .one_line_error()
        .err_has("No such file");
}

/// Caps name the option that raises them; `gc --unused-for` and the unread counts of
/// `stats` on the fs backend; an import skips an entry over the document size cap.
#[test]
fn caps_and_unused_entries_from_the_command_line() {
    let w = World::new(vec![]);
    let debian = sample("debian.tar");
    for (args, flag) in [
        (
            vec!["--max-packages-per-layer", "3"],
            "--max-packages-per-layer",
        ),
        (vec!["--max-layers", "1"], "--max-layers"),
        (vec!["--max-document-size", "1KiB"], "--max-document-size"),
    ] {
        let mut cmd = vec!["image", "--input", debian.as_str()];
        cmd.extend(args);
        w.run(&cmd)
            .code(1)
            .one_line_error()
            .err_has(&format!("raise it with {flag}"));
    }
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(
        stats["artifacts"].as_u64(),
        Some(0),
        "nothing stored past a cap"
    );

    w.run(&["image", "--input", &debian]).ok();
    let text = w.run(&["cache", "stats"]).ok().stdout();
    assert!(
        text.contains("unread 7d:  0") && text.contains("unread 30d: 0"),
        "{text}"
    );
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["unread_30d"].as_u64(), Some(0));
    w.run(&["cache", "gc", "--unused-for", "1d"])
        .ok()
        .err_has("0 unused entries");
    w.run(&["cache", "gc", "--unused-for", "0"]).code(2);
    w.run(&["cache", "gc", "--unused-for", "10"]).code(2);

    let big = line(EntryKind::Blob, &blob_id(5).to_string(), &got_blob(5));
    w.run_with_input(
        &["--max-document-size", "100", "cache", "import", "-"],
        Some(&big),
    )
    .code(1)
    .err_has("document size cap")
    .err_has("Imported 0 entries");
}

// ---- Stored reports of directory scans ----------------------------------------------

/// True when the run wrote a stored report (its summary says so).
fn used_stored_report(run: &Run) -> bool {
    run.stderr()
        .lines()
        .any(|l| l.contains("scanned directory") && l.contains("stored_report=true"))
}

/// The IDs of the stored reports `cache ls --kind report` lists.
fn stored_reports(w: &World) -> Vec<String> {
    let ls = w
        .run(&["cache", "ls", "--kind", "report", "--format", "json"])
        .ok()
        .json();
    ls.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["kind"], "report", "{e}");
            e["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Rewrites every lockfile of `tree` with garbage of the same size and gives it back its
/// modification time (the blind spot of a directory's key): a scan that read one would
/// warn and report other packages.
fn scramble_lockfiles_keeping_their_metadata(tree: &Path) {
    for (path, text) in cache_fixtures::project_files(20) {
        let file = tree.join(&path);
        let mtime = fs::metadata(&file).unwrap().modified().unwrap();
        fs::write(&file, "#".repeat(text.len())).unwrap();
        let f = fs::File::options().write(true).open(&file).unwrap();
        f.set_modified(mtime).unwrap();
    }
}

/// Cold, warm (stored report), warm without the report (the result from the cache, the
/// report built and stored again) and warm again: the three warm outputs are the same
/// bytes, and a JSON report is the cold one byte for byte (a table differs from the cold
/// one only in its layer count line). The warm runs read no lockfile.
fn check_stored_reports(w: &World) {
    let tree = w.dir.path().join("tree");
    cache_fixtures::write_project(&tree, 20).unwrap();
    let tree = tree.to_str().unwrap();
    for format in ["json", "table"] {
        w.run(&["clean", "--scan-cache"]).ok();
        let cold = w.run(&["fs", tree, "-f", format]).ok();
        assert_eq!(tree_field(&cold, "analysed"), 1, "{}", cold.explain());
        assert!(!used_stored_report(&cold), "{}", cold.explain());
        let warm = w.run(&["fs", tree, "-f", format]).ok();
        assert!(used_stored_report(&warm), "{}", warm.explain());
        if format == "json" {
            assert_eq!(warm.out.stdout, cold.out.stdout, "json: warm = cold");
        } else {
            let (cold_out, warm_out) = (cold.stdout(), warm.stdout());
            assert_eq!(cold_out.lines().count(), warm_out.lines().count());
            let differing: Vec<(&str, &str)> = cold_out
                .lines()
                .zip(warm_out.lines())
                .filter(|(a, b)| a != b)
                .collect();
            assert_eq!(
                differing,
                [(
                    "Layers    1 (1 analysed, 0 from cache)",
                    "Layers    1 (0 analysed, 1 from cache)"
                )],
                "table: only the layer counts differ"
            );
        }
        // Without the stored report: today's path, the same bytes, the report stored again.
        let ids = stored_reports(w);
        assert_eq!(ids.len(), 1, "{format}: {ids:?}");
        w.run(&["cache", "rm", &ids[0]]).ok();
        let rebuilt = w.run(&["fs", tree, "-f", format]).ok();
        assert!(!used_stored_report(&rebuilt), "{}", rebuilt.explain());
        assert_eq!(
            (
                tree_field(&rebuilt, "analysed"),
                tree_field(&rebuilt, "cached")
            ),
            (0, 1)
        );
        assert_eq!(
            rebuilt.out.stdout, warm.out.stdout,
            "{format}: rebuilt = warm"
        );
        assert_eq!(
            stored_reports(w),
            ids,
            "{format}: stored again under its key"
        );
        // To a file: the same bytes.
        let file = w.dir.path().join(format!("report.{format}"));
        let to_file = w
            .run(&["fs", tree, "-f", format, "-o", file.to_str().unwrap()])
            .ok();
        assert!(used_stored_report(&to_file), "{}", to_file.explain());
        assert_eq!(fs::read(&file).unwrap(), warm.out.stdout);
        // Each format has its own report: start the next one without this one.
        w.run(&["cache", "rm", &ids[0]]).ok();
    }
    // Another output option misses the stored reports but still finds the result.
    let dev = w
        .run(&["fs", tree, "-f", "json", "--include-dev-deps"])
        .ok();
    assert!(!used_stored_report(&dev), "{}", dev.explain());
    assert_eq!(tree_field(&dev, "cached"), 1, "{}", dev.explain());
    let name = w
        .run(&["fs", &format!("{tree}/"), "-f", "json"])
        .ok()
        .json();
    assert_eq!(
        name["ArtifactName"],
        format!("{tree}/"),
        "the name is a key input"
    );
    let cold = w.run(&["fs", tree, "-f", "json"]).ok();
    assert!(
        !used_stored_report(&cold),
        "the json report was removed above"
    );

    // The lockfiles are never read again: scrambled with their metadata kept, the
    // stored report is still written (and the result would be too: the key's blind spot).
    scramble_lockfiles_keeping_their_metadata(Path::new(tree));
    let warm = w.run(&["fs", tree, "-f", "json"]).ok();
    assert!(used_stored_report(&warm), "{}", warm.explain());
    assert!(!warm.stderr().contains("WARN"), "{}", warm.explain());
    assert_eq!(warm.out.stdout, cold.out.stdout);
    let dev_again = w
        .run(&["fs", tree, "-f", "json", "--include-dev-deps"])
        .ok();
    assert!(used_stored_report(&dev_again), "{}", dev_again.explain());
    assert_eq!(dev_again.out.stdout, dev.out.stdout);
}

#[test]
fn stored_reports_on_fs_are_byte_identical_and_read_no_lockfile() {
    let w = World::new(vec!["--cache-backend".into(), "fs".into()]);
    check_stored_reports(&w);
    // The cache commands count, keep, list and remove stored reports as their own kind.
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    let reports = stats["reports"].as_u64().unwrap();
    assert!(reports >= 3, "{stats}");
    assert_eq!(stats["blobs"], 1, "one result for every report: {stats}");
    let text = w.run(&["cache", "stats"]).ok().stdout();
    assert!(text.contains(&format!("reports:    {reports}")), "{text}");
    w.run(&["cache", "gc"])
        .ok()
        .err_has("Removed 0 expired and 0 stale entries");
    assert_eq!(
        stored_reports(&w).len() as u64,
        reports,
        "gc keeps sound reports"
    );
    let ls = w.run(&["cache", "ls"]).ok().stdout();
    assert_eq!(
        ls.lines().filter(|l| l.starts_with("report ")).count() as u64,
        reports
    );
    // `cache get --kind report` prints the stored bytes.
    let id = &stored_reports(&w)[0];
    let got = w.run(&["cache", "get", "--kind", "report", id]).ok();
    assert!(!got.out.stdout.is_empty());
    // Export leaves them out (the next scan rebuilds them); import refuses them.
    let export = w.run(&["cache", "export", "-"]).ok();
    assert_eq!(export.stdout().lines().count(), 1, "{}", export.explain());
    assert!(
        export
            .stderr()
            .contains(&format!("Left out {reports} stored reports"))
    );
    let line = format!(r#"{{"kind":"report","id":"{id}","document":{{}},"expires_at":null}}"#);
    w.run_with_input(&["cache", "import", "-"], Some(&line))
        .code(1)
        .err_has("stored reports are not imported");
    w.run(&["clean", "--scan-cache"]).ok();
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(
        (stats["reports"].as_u64(), stats["blobs"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn stored_reports_on_redis_and_a_damaged_one_is_ignored_with_a_warning() {
    let Some(server) = redis_server(Tls::Off) else {
        return;
    };
    let w = redis_world(&server, 3, Tls::Off);
    check_stored_reports(&w);
    let tree = w.dir.path().join("tree");
    let tree = tree.to_str().unwrap();
    let good = w.run(&["fs", tree, "-f", "json"]).ok();
    assert!(used_stored_report(&good));
    let ids = stored_reports(&w);
    assert!(ids.len() >= 2, "{ids:?}");
    // Damage every stored report: one byte near the end of each.
    for id in &ids {
        let key = format!("fanal::report::{id}");
        let len: usize = server.cli(&["-n", "3", "STRLEN", &key]).parse().unwrap();
        server.cli(&[
            "-n",
            "3",
            "SETRANGE",
            &key,
            &(len - 2).to_string(),
            "\u{7f}",
        ]);
    }
    let stats = w.run(&["cache", "stats", "--format", "json"]).ok().json();
    assert_eq!(stats["reports"].as_u64(), Some(ids.len() as u64), "{stats}");
    let damaged = w.run(&["fs", tree, "-f", "json"]).ok();
    assert!(!used_stored_report(&damaged), "{}", damaged.explain());
    assert!(
        damaged.stderr().contains("ignoring the stored report")
            && damaged.stderr().contains("do not match their SHA-256"),
        "{}",
        damaged.explain()
    );
    assert_eq!(
        damaged.out.stdout, good.out.stdout,
        "no part of the damaged report"
    );
    // It was stored again; gc removes the other damaged ones and keeps that one.
    assert!(used_stored_report(&w.run(&["fs", tree, "-f", "json"]).ok()));
    w.run(&["cache", "gc"])
        .ok()
        .err_has(&format!("0 expired and {} stale entries", ids.len() - 1));
    assert_eq!(stored_reports(&w).len(), 1);
    w.run(&["clean", "--scan-cache"]).ok();
    assert!(stored_reports(&w).is_empty());
}

/// The revisions of report rendering (`cache_scan::REPORT_RENDERING`) since revision 3,
/// each with the SHA-256 of what the scans of [`report_rendering_is_pinned_to_its_revision`]
/// write under it; the last is today's.
const RENDERINGS: &[(u32, &str)] = &[(
    3,
    "5729c98eadb363b330201793d2404a59f3cd1eb28ee1c9f78d0332c726199c47",
)];

/// The reports of the shipped samples and of a project tree, in every format, pinned to
/// the rendering revision: stored reports are keyed by the revision, so rendering that
/// changed without a new revision would have rescans write reports of the old rendering.
#[test]
fn report_rendering_is_pinned_to_its_revision() {
    use sha2::{Digest as _, Sha256};
    let home = tempfile::tempdir().unwrap();
    let samples = Path::new(&sample("debian.tar"))
        .parent()
        .unwrap()
        .to_owned();
    let tree = home.path().join("tree");
    cache_fixtures::write_project(&tree, 20).unwrap();
    // A root file system with OS packages and no OS (family `none`, packages without PURLs).
    let bare = home.path().join("bare");
    fs::create_dir_all(bare.join("var/lib/dpkg")).unwrap();
    fs::write(
        bare.join("var/lib/dpkg/status"),
        "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\n\
         Version: 12.4\nMaintainer: Test <test@example.org>\nDescription: base\n\n",
    )
    .unwrap();
    let mut hash = Sha256::new();
    for format in ["table", "json", "cyclonedx", "spdx-json"] {
        let scans: Vec<(&Path, Vec<&str>)> = vec![
            (&samples, vec!["image", "--input", "debian.tar"]),
            (&samples, vec!["image", "--input", "alpine.tar"]),
            (&samples, vec!["image", "--input", "lang.tar"]),
            (&tree, vec!["fs", "."]),
            (&bare, vec!["rootfs", "."]),
        ];
        for (dir, args) in scans {
            // Paths relative to the working directory, so the report names no temporary
            // or checkout directory.
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
            cmd.current_dir(dir)
                .args(["--cache-backend", "memory"])
                .args(&args)
                .args(["--format", format])
                .env("SOURCE_DATE_EPOCH", "1700000000");
            let run = run_cmd(cmd, home.path(), None).ok();
            hash.update(format!("{args:?} {format} {}\n", run.out.stdout.len()));
            hash.update(&run.out.stdout);
        }
    }
    let rendered = hex::encode(hash.finalize());
    let &(revision, pinned) = RENDERINGS.last().unwrap();
    assert!(
        RENDERINGS
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1),
        "RENDERINGS: each entry has a higher revision and another hash"
    );
    let next = revision + 1;
    assert_eq!(
        rendered, pinned,
        "the sample reports render differently from revision {revision}: raise \
         cache_scan::REPORT_RENDERING to {next} (it retires the reports stored by the old \
         rendering) and append ({next}, \"{rendered}\") to RENDERINGS"
    );
    assert_eq!(
        cache_scan::REPORT_RENDERING,
        revision,
        "cache_scan::REPORT_RENDERING is not the last revision of RENDERINGS"
    );
}
