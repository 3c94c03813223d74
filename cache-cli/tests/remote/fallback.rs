//! A cache is an accelerator, never the point of failure: on every backend that can fail
//! (fs, Redis, a scancache server), a cache that is unavailable before or during a scan
//! — unreachable, killed, corrupt, unreadable, out of disk space — leaves the scan to go
//! on uncached: exit 0, the same report as with a working cache, one warning naming the
//! cause and the fix. `--cache-required` makes that a failure; a misconfiguration (a wrong
//! password or token) fails either way; the `cache` commands fail clearly.
//!
//! The Redis forms count too: a Redis Cluster whose nodes are all down, and a Redis
//! Sentinel setup whose sentinels are down.
//!
//! (The memory backend cannot be unavailable: it is the process's own memory.)

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cache_fixtures::{Compression, LayerBuilder, alpine_image, docker_save};
use cache_testkit::{
    http::ScancacheServer,
    proxy::DelayProxy,
    redis::{
        RedisCluster, RedisServer, SentinelOptions, SentinelSetup, ServerOptions, Tls, free_port,
        require_redis,
    },
    tmpfs::Tmpfs,
};
use serde_json::Value;

use crate::support::{BIN, Run, TOKEN, metric, run, run_env, sample, start_server, tempdir};

/// The beginning of the warning of a scan without its cache.
const WARNING: &str = "the scan cache is unavailable, scanning without it (every layer \
                       analysed, nothing stored): ";

/// An Alpine image with 16 more small layers, so that a scan stores a result many times.
fn many_layers(dir: &Path) -> PathBuf {
    let mut image = alpine_image();
    for i in 0..16 {
        image = image.layer(
            &LayerBuilder::new().file(&format!("srv/file-{i}"), format!("layer {i}")),
            Compression::Gzip,
            &format!("RUN step {i}"),
        );
    }
    let path = dir.join("many.tar");
    std::fs::write(&path, docker_save(&[&image])).unwrap();
    path
}

/// The JSON report of a scan with a working (memory) cache: what every scan without
/// its cache must print too.
fn expected_report(input: &Path) -> Value {
    let r = run(&[
        "--cache-backend",
        "memory",
        "image",
        "--format",
        "json",
        "--input",
        &input.display().to_string(),
    ])
    .ok();
    serde_json::from_str(&r.stdout()).unwrap()
}

/// `scancache GLOBAL… image --format json --input INPUT`.
fn scan(global: &[&str], input: &Path) -> Run {
    let input = input.display().to_string();
    let mut args = global.to_vec();
    args.extend(["image", "--format", "json", "--input", &input]);
    run(&args)
}

/// Asserts a scan that went on without its cache: exit 0, the expected report with every
/// layer analysed, and exactly one warning, which names the cause (`cause`) and how to
/// mend it (`fix`).
fn went_on_uncached(r: Run, want: &Value, cause: &str, fix: &str) {
    let r = r.ok().shows_no_secret();
    let report: Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}: {}", r.explain()));
    assert_eq!(&report, want, "{}", r.explain());
    let stderr = r.stderr();
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("\tWARN\t")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {}", r.explain());
    let w = warnings[0];
    assert!(w.contains(WARNING), "{}", r.explain());
    assert!(
        w.to_lowercase().contains(&cause.to_lowercase()),
        "cause {cause:?}: {}",
        r.explain()
    );
    assert!(w.contains(fix), "fix {fix:?}: {}", r.explain());
    assert!(
        w.contains("--cache-required makes this an error"),
        "{}",
        r.explain()
    );
    eprintln!("{w}");
    let summary = stderr
        .lines()
        .find(|l| l.contains("scanned image"))
        .unwrap_or_default();
    assert!(
        summary.contains("cached=0"),
        "every layer analysed: {}",
        r.explain()
    );
    assert!(!stderr.contains("\tERROR\t"), "{}", r.explain());
}

/// Starts `scancache GLOBAL… image --format json --input INPUT` without waiting.
fn spawn_scan(global: &[&str], input: &Path) -> std::process::Child {
    Command::new(BIN)
        .args(global)
        .args([
            "image",
            "--format",
            "json",
            "--input",
            &input.display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child, global: &[&str]) -> Run {
    Run {
        args: global.iter().map(|s| s.to_string()).collect(),
        out: child.wait_with_output().unwrap(),
    }
}

/// Waits until `done()` holds (at most 30 s).
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The number of keys in database 0 of the Redis server at `port` (`DBSIZE`).
fn dbsize(port: u16) -> u64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"DBSIZE\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.trim().trim_start_matches(':').parse().unwrap()
}

#[test]
fn fs_corrupt_unreadable_and_required() {
    let dir = tempdir();
    let input = sample("debian.tar");
    let want = expected_report(&input);
    let cache_dir = dir.path().join("cache");
    let cache = cache_dir.display().to_string();
    scan(&["--cache-dir", &cache], &input).ok();
    std::fs::write(cache_dir.join("fanal/data.mdb"), vec![0xa5u8; 64 << 10]).unwrap();
    went_on_uncached(
        scan(&["--cache-dir", &cache], &input),
        &want,
        "not an LMDB database",
        "scancache clean --scan-cache",
    );
    scan(&["--cache-dir", &cache, "--cache-required"], &input)
        .fails_with(1, "not an LMDB database");
    // The fix the warning names works.
    run(&["--cache-dir", &cache, "clean", "--scan-cache"]).ok();
    let r = scan(&["--cache-dir", &cache], &input).ok();
    assert!(!r.stderr().contains("\tWARN\t"), "{}", r.explain());

    // A cache directory that cannot be opened: `fanal` is a file.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir_all(&blocked).unwrap();
    std::fs::write(blocked.join("fanal"), b"not a directory").unwrap();
    let blocked = blocked.display().to_string();
    went_on_uncached(
        scan(&["--cache-dir", &blocked], &input),
        &want,
        "fanal",
        "is readable and writable by this user",
    );
    let r = run_env(
        &[
            "--cache-dir",
            &blocked,
            "image",
            "--input",
            &input.display().to_string(),
        ],
        &[("SCANCACHE_CACHE_REQUIRED", "true")],
    );
    assert_eq!(r.code(), Some(1), "{}", r.explain());
    // The cache commands are about the cache: they fail.
    run(&["--cache-dir", &blocked, "cache", "stats"]).fails_with(1, "fanal");
}

/// The disk fills up under the cache while a scan stores its results.
#[test]
fn fs_full_disk_during_put() {
    let Some(mount) = Tmpfs::mount("4m") else {
        return;
    };
    let dir = tempdir();
    let input = many_layers(dir.path());
    let want = expected_report(&input);
    let cache = mount.path().join("cache").display().to_string();
    run(&["--cache-dir", &cache, "cache", "stats"]).ok();
    // Fill what is left of the file system.
    let mut ballast = std::fs::File::create(mount.path().join("ballast")).unwrap();
    while ballast.write_all(&[0u8; 4096]).is_ok() {}
    let _ = ballast.sync_all();
    went_on_uncached(
        scan(&["--cache-dir", &cache], &input),
        &want,
        "no space left",
        "free space",
    );
}

#[test]
fn redis_killed_before_and_during_a_scan() {
    if !require_redis() {
        return;
    }
    let dir = tempdir();
    let input = many_layers(dir.path());
    let want = expected_report(&input);

    let mut redis = RedisServer::start(ServerOptions::default());
    let url = redis.url(0);
    redis.kill();
    went_on_uncached(
        scan(&["--cache-backend", &url], &input),
        &want,
        "is unavailable",
        "check that Redis is running",
    );
    scan(&["--cache-backend", &url, "--cache-required"], &input).fails_with(1, "is unavailable");
    run(&["--cache-backend", &url, "cache", "stats"]).fails_with(1, "is unavailable");

    // Killed while the scan stores its results: each store takes a delayed round trip.
    let mut redis = RedisServer::start(ServerOptions::default());
    let proxy = DelayProxy::start(redis.port(), Duration::from_millis(30));
    let url = format!("redis://127.0.0.1:{}/0", proxy.port());
    let global = ["--cache-backend", url.as_str()];
    let child = spawn_scan(&global, &input);
    let port = redis.port();
    wait_for("a stored result", || dbsize(port) >= 1);
    redis.kill();
    went_on_uncached(
        finish(child, &global),
        &want,
        "is unavailable",
        "check that Redis",
    );

    // A wrong password is a misconfiguration: the scan fails.
    let secured = RedisServer::start(ServerOptions {
        password: Some("right-pw".into()),
        ..ServerOptions::default()
    });
    let wrong = secured.url_with_auth("", "wrong-pw-never-shown", 0);
    let r = scan(&["--cache-backend", &wrong], &input).fails_with(1, "refused the request");
    assert!(
        !r.stderr().contains("wrong-pw-never-shown"),
        "{}",
        r.explain()
    );
}

/// A Redis Cluster whose every node is down, and a Sentinel setup whose sentinels are
/// down (so no master can be found): the scan goes on uncached with one warning, and
/// fails with `--cache-required`; a cluster that is up stores the scan's layers.
#[test]
fn redis_cluster_and_sentinel_unreachable() {
    if !require_redis() {
        return;
    }
    let dir = tempdir();
    let input = many_layers(dir.path());
    let want = expected_report(&input);

    let mut cluster = RedisCluster::start(3, 0, Tls::Off);
    let urls = cluster.urls();
    let stored = scan(&["--cache-backend", &urls], &input).ok();
    assert_eq!(
        serde_json::from_str::<Value>(&stored.stdout()).unwrap(),
        want
    );
    assert!(cluster.key_count() > 0, "a working cluster stores the scan");
    for i in 0..cluster.nodes().len() {
        cluster.node_mut(i).kill();
    }
    went_on_uncached(
        scan(&["--cache-backend", &urls], &input),
        &want,
        "is unavailable",
        "check that Redis is running",
    );
    scan(&["--cache-backend", &urls, "--cache-required"], &input).fails_with(1, "is unavailable");

    let mut setup = SentinelSetup::start(SentinelOptions {
        replicas: 0,
        ..SentinelOptions::default()
    });
    let url = setup.url(0);
    scan(&["--cache-backend", &url], &input).ok();
    for sentinel in &mut setup.sentinels {
        sentinel.kill();
    }
    went_on_uncached(
        scan(&["--cache-backend", &url], &input),
        &want,
        "is unavailable",
        "check that Redis is running",
    );
    scan(&["--cache-backend", &url, "--cache-required"], &input).fails_with(1, "is unavailable");
}

#[test]
fn remote_server_down_before_and_during_a_scan() {
    let dir = tempdir();
    let input = many_layers(dir.path());
    let want = expected_report(&input);
    let down = format!("http://127.0.0.1:{}", free_port());
    let global = ["--cache-backend", down.as_str(), "--token", TOKEN];
    went_on_uncached(
        scan(&global, &input),
        &want,
        "is unavailable: Missing: cannot connect",
        "check that the scancache server is running",
    );
    let r = run_env(
        &[
            &global[..],
            &["image", "--input", &input.display().to_string()],
        ]
        .concat(),
        &[("SCANCACHE_CACHE_REQUIRED", "true")],
    );
    assert_eq!(r.code(), Some(1), "{}", r.explain());

    // Killed while the scan uploads: each upload takes a delayed round trip.
    let mut server = start_server(&["--cache-backend".into(), "memory".into()]);
    let proxy = DelayProxy::start(server.port(), Duration::from_millis(30));
    let url = format!("http://127.0.0.1:{}", proxy.port());
    let global = ["--cache-backend", url.as_str(), "--token", TOKEN];
    let child = spawn_scan(&global, &input);
    wait_for("an uploaded result", || {
        metric(&server, "scancache_server_put_blobs_total") >= 1.0
    });
    server.kill();
    went_on_uncached(
        finish(child, &global),
        &want,
        "is unavailable",
        "scancache server",
    );

    // A wrong token is a misconfiguration: the scan fails.
    let server = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "--token", TOKEN],
        &[],
        &[],
    );
    let url = server.url();
    scan(&["--cache-backend", &url, "--token", "nope"], &input)
        .fails_with(1, "unauthenticated: invalid token");
}
