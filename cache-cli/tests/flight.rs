//! The single-flight across processes: `scancache image` processes started together on
//! one cache — an fs cache directory, a Redis, or a `scancache server` reached through
//! the remote backend — analyse a shared base layer once, the others wait for its result;
//! a killed owner hands the layer to a waiter.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, data::DEBIAN_OS_RELEASE, docker_save,
};
use cache_testkit::{http::ScancacheServer, redis::RedisServer};
use serde_json::Value;

fn stanza(name: &str, version: &str) -> String {
    format!(
        "Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 100\nMaintainer: Test <test@example.org>\nArchitecture: amd64\nVersion: {version}\nDescription: the {name} package\n\n"
    )
}

/// `count` images: one base layer with `bulk` bytes of `fill` shared by all, and an upper
/// layer each (another `fill`, other layer keys).
fn images(dir: &Path, count: usize, bulk: usize, fill: u8) -> Vec<PathBuf> {
    let base = LayerBuilder::new()
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .file("var/lib/dpkg/status", stanza("base", "1-1"))
        .file("opt/bulk.bin", vec![fill; bulk]);
    (0..count)
        .map(|i| {
            let status = format!(
                "{}{}",
                stanza("base", "1-1"),
                stanza(&format!("pkg-{i}"), &format!("2-{fill}"))
            );
            let image = ImageBuilder::new(&[&format!("app:{i}")])
                .layer(&base, Compression::None, "ADD base")
                .layer(
                    &LayerBuilder::new().file("var/lib/dpkg/status", status),
                    Compression::None,
                    "RUN install",
                );
            let path = dir.join(format!("app-{i}.tar"));
            std::fs::write(&path, docker_save(&[&image])).unwrap();
            path
        })
        .collect()
}

fn scancache(cache_dir: &Path, backend: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scancache"));
    cmd.arg("--cache-dir")
        .arg(cache_dir)
        .args(backend)
        .args(args)
        .env_remove("SCANCACHE_CACHE_BACKEND")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A JSON scan of `input`, to start.
fn scan_command(cache_dir: &Path, backend: &[&str], input: &Path, lease: &str) -> Command {
    let input = input.display().to_string();
    scancache(
        cache_dir,
        backend,
        &[
            "--lease-timeout",
            lease,
            "image",
            "--input",
            &input,
            "--format",
            "json",
        ],
    )
}

/// A JSON scan of `input` started in the background.
fn start_scan(cache_dir: &Path, backend: &[&str], input: &Path, lease: &str) -> Child {
    scan_command(cache_dir, backend, input, lease)
        .spawn()
        .unwrap()
}

/// The JSON report of a finished scan, which must have succeeded.
fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "scan failed: {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Where each layer's result came from, as the report says.
fn sources(report: &Value) -> Vec<String> {
    report["Metadata"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["Source"].as_str().unwrap().to_owned())
        .collect()
}

/// The report without the layer sources, which differ between a cold and a shared scan.
fn without_sources(mut report: Value) -> Value {
    report["Metadata"].as_object_mut().unwrap().remove("Layers");
    report
}

/// Each image scanned alone by a process of its own on an empty cache.
fn cold_reports(inputs: &[PathBuf]) -> Vec<Value> {
    inputs
        .iter()
        .map(|input| {
            let dir = tempfile::tempdir().unwrap();
            let out = start_scan(dir.path(), &["--cache-backend", "memory"], input, "30s")
                .wait_with_output()
                .unwrap();
            let r = report(&out);
            assert_eq!(sources(&r), ["analysed", "analysed"]);
            without_sources(r)
        })
        .collect()
}

/// Eight processes on one cache, all running while the base is being analysed: the base
/// is analysed once in all, the seven others wait for it, and every report equals the
/// image's cold single-process report. The first scan is held (SIGSTOP) from the moment
/// it has claimed the base until the seven others found it claimed, so they overlap it
/// however fast this machine analyses the base. Returns how many times a scan was told
/// the base was claimed, over all attempts.
fn eight_processes_analyse_the_base_once(
    cache_dir: &Path,
    backend: &[&str],
    probe: &dyn Probe,
) -> usize {
    // The stop lands a moment after the claim; the base's analysis takes a few
    // milliseconds, so on a loaded machine it can be over by then. Such an attempt shows
    // nothing and is done again on images with a new base (a new key, unknown to the
    // cache).
    let mut busy = 0;
    for attempt in 0..4 {
        match eight_processes_attempt(cache_dir, backend, probe, attempt) {
            Attempt::Shown(n) => return busy + n,
            Attempt::TooLate(n) => {
                eprintln!(
                    "attempt {attempt}: the first scan finished the base before it was \
                     stopped; again with a new base"
                );
                busy += n;
            }
        }
    }
    panic!("the first scan finished the base before it was stopped, in every attempt");
}

/// How one attempt of [`eight_processes_analyse_the_base_once`] ended, with how many
/// scans were told the base was claimed.
enum Attempt {
    /// It checked what it is for.
    Shown(usize),
    /// The first scan finished the base before it was stopped.
    TooLate(usize),
}

fn eight_processes_attempt(
    cache_dir: &Path,
    backend: &[&str],
    probe: &dyn Probe,
    attempt: u8,
) -> Attempt {
    let dir = tempfile::tempdir().unwrap();
    let inputs = images(dir.path(), 8, 6 << 20, b'a' + attempt);
    let cold = cold_reports(&inputs);
    let base_id = base_blob_id(&inputs[0]);
    // Every scan logs its debug lines to a file, watched for what it did.
    let logs: Vec<PathBuf> = (0..inputs.len())
        .map(|i| dir.path().join(format!("scan-{i}.log")))
        .collect();
    let first = start_logged(cache_dir, backend, &inputs[0], "30s", &logs[0]);
    stop_once_claimed(&first, &logs[0]);
    let mut children = vec![first];
    children.extend(
        inputs[1..]
            .iter()
            .zip(&logs[1..])
            .map(|(input, log)| start_logged(cache_dir, backend, input, "30s", log)),
    );
    let claimed = |log: &PathBuf| read_log(log).contains("layer claimed by another scan");
    let found_stored = |log: &PathBuf| {
        read_log(log).lines().any(|l| {
            l.contains("layer cache lookup") && l.contains(&base_id) && l.contains("hit=true")
        })
    };
    let too_late = !probe.held(&base_id);
    let started = Instant::now();
    while !too_late && !logs[1..].iter().all(|l| claimed(l) || found_stored(l)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not every other scan looked the base up and found it claimed or stored: {:?}; \
             the log of scan 1:\n{}",
            logs[1..].iter().map(claimed).collect::<Vec<_>>(),
            read_log(&logs[1])
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&children[0], "-CONT");
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for (out, log) in outs.iter().zip(&logs) {
        assert!(
            out.status.success(),
            "scan failed: {}\nlog:\n{}",
            out.status,
            read_log(log)
        );
    }
    let busy = logs
        .iter()
        .map(|l| read_log(l).matches("layer claimed by another scan").count())
        .sum();
    if too_late || logs[1..].iter().any(found_stored) {
        return Attempt::TooLate(busy);
    }
    let reports: Vec<Value> = outs.iter().map(report).collect();
    let base: Vec<String> = reports.iter().map(|r| sources(r)[0].clone()).collect();
    let analysed = base.iter().filter(|s| *s == "analysed").count();
    assert_eq!(
        analysed, 1,
        "the base was analysed {analysed} times: {base:?}"
    );
    assert_eq!(
        base.iter().filter(|s| *s == "waited").count(),
        7,
        "the others did not all wait: {base:?}"
    );
    for (i, (r, c)) in reports.into_iter().zip(&cold).enumerate() {
        assert_eq!(sources(&r)[1], "analysed");
        assert_eq!(
            &without_sources(r),
            c,
            "report {i} differs from its cold report"
        );
    }
    // The INFO summary counts waited layers.
    let waited: u64 = logs
        .iter()
        .map(|log| {
            let err = read_log(log);
            err.lines()
                .find(|l| l.contains("scanned image"))
                .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("waited=")))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no waited= in the summary:\n{err}"))
        })
        .sum();
    assert_eq!(
        waited as usize,
        base.iter().filter(|s| *s == "waited").count()
    );
    Attempt::Shown(busy)
}

/// A JSON scan of `input` started in the background with its debug lines (stderr) going
/// to the file `log`.
fn start_logged(
    cache_dir: &Path,
    backend: &[&str],
    input: &Path,
    lease: &str,
    log: &Path,
) -> Child {
    let debug: Vec<&str> = ["-d"].iter().chain(backend).copied().collect();
    let mut cmd = scan_command(cache_dir, &debug, input, lease);
    cmd.stderr(std::fs::File::create(log).unwrap());
    cmd.spawn().unwrap()
}

/// The log file of a scan so far.
fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Stops a scan (SIGSTOP) as soon as its log says its claim call returned. Not at the
/// first sight of the base's claim: the fs backend makes a scan's claims under a lock, and
/// a scan stopped inside that call would keep every other scan from claiming at all.
fn stop_once_claimed(scan: &Child, log: &Path) {
    let started = Instant::now();
    while !read_log(log).contains("layer claims taken") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the scan never claimed its layers; its log:\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(scan, "-STOP");
}

/// How a test sees, from outside the scans, the claim on one blob. A scan claims all its
/// layers at once and releases each as it is stored, so only the base's own claim tells
/// whether the base is still being analysed.
trait Probe {
    /// True while a scan holds the claim on `id`; asked only while no scan is claiming.
    fn held(&self, id: &str) -> bool;
}

/// The claims of an fs cache directory (that of a `scancache server` for remote scans):
/// a lock file per claim, locked while held; the file stays after the release.
struct FsClaims<'a>(&'a Path);

impl Probe for FsClaims<'_> {
    /// Tries the lock: an instant's hold would make a claiming scan find the key taken,
    /// hence only while none claims.
    fn held(&self, id: &str) -> bool {
        std::fs::File::open(claim_file(self.0, id))
            .is_ok_and(|file| fs4::FileExt::try_lock(&file).is_err())
    }
}

/// The claim keys of a database of a Redis server.
struct RedisClaims<'a>(&'a RedisServer, u32);

impl Probe for RedisClaims<'_> {
    /// The claim key exists (it is deleted at the release, and runs out with the lease).
    fn held(&self, id: &str) -> bool {
        let key = format!("fanal::claim::{id}");
        self.0
            .cli(&["-n", &self.1.to_string(), "EXISTS", &key])
            .trim()
            == "1"
    }
}

/// Sends `sig` (`-STOP`, `-CONT`) to a scan.
fn signal(child: &Child, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {sig} failed");
}

#[test]
fn eight_processes_on_one_fs_cache_analyse_a_shared_base_once() {
    let cache = tempfile::tempdir().unwrap();
    eight_processes_analyse_the_base_once(cache.path(), &[], &FsClaims(cache.path()));
}

#[test]
fn eight_processes_on_one_redis_analyse_a_shared_base_once() {
    let Some(server) =
        cache_testkit::redis::require_redis().then(|| RedisServer::start(Default::default()))
    else {
        return;
    };
    let url = server.url(5);
    let cache = tempfile::tempdir().unwrap();
    let probe = RedisClaims(&server, 5);
    eight_processes_analyse_the_base_once(cache.path(), &["--cache-backend", &url], &probe);
}

/// A `scancache server` over the fs cache at `dir`, for scans through the remote backend.
fn server_over(dir: &Path) -> ScancacheServer {
    let dir = dir.display().to_string();
    ScancacheServer::start(
        env!("CARGO_BIN_EXE_scancache"),
        &["--cache-dir", &dir],
        &[],
        &[],
    )
}

/// One counter of a server's `/metrics` (0 when absent).
fn server_metric(server: &ScancacheServer, name: &str) -> f64 {
    let text = cache_testkit::http::get(server.port(), "/metrics")
        .unwrap()
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn eight_processes_through_one_server_analyse_a_shared_base_once() {
    // The remote backend forwards the claims to the server's backend (fs here), so the
    // base's claim is the server's lock file.
    let served = tempfile::tempdir().unwrap();
    let server = server_over(served.path());
    let url = server.url();
    let cache = tempfile::tempdir().unwrap();
    let probe = FsClaims(served.path());
    let busy =
        eight_processes_analyse_the_base_once(cache.path(), &["--cache-backend", &url], &probe);
    // Seven in the attempt that showed the wait, and any of attempts done again.
    assert!(busy >= 7, "{busy}");
    assert_eq!(
        server_metric(&server, "scancache_server_forwarded_claims_busy_total"),
        busy as f64,
        "the server did not count every busy claim its clients were told of"
    );
}

/// The blob ID (cache key) of the base layer of `input`.
fn base_blob_id(input: &Path) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let keys = rt
        .block_on(cache_scan::image_keys_of(
            input,
            &cache_scan::ScanOptions::default(),
        ))
        .unwrap();
    keys.blobs[0].as_str().to_owned()
}

/// The claim file of the blob `id` in the fs cache at `cache_dir`.
fn claim_file(cache_dir: &Path, id: &str) -> PathBuf {
    cache_dir
        .join("fanal/claims-v1")
        .join(format!("{}.lock", id.replace(':', "-")))
}

/// Kills the owner of the base mid-analysis (SIGKILL) with three scans waiting: one takes
/// the base over, the other two wait for it, and all finish within `bound` of the kill.
fn killed_owner(cache: &Path, backend: &[&str], lease: &str, probe: &dyn Probe, bound: Duration) {
    let dir = tempfile::tempdir().unwrap();
    // A base large enough that its owner is still analysing it when it is stopped, a
    // log poll after it claimed it.
    let inputs = images(dir.path(), 4, 64 << 20, b'z');
    let base_id = base_blob_id(&inputs[0]);
    let log = dir.path().join("owner.log");
    let mut owner = start_logged(cache, backend, &inputs[0], lease, &log);
    // Stopped at once, so it is still mid-analysis when it is killed however fast this
    // machine analyses the base; it keeps its claim (lock held, lease running) meanwhile.
    stop_once_claimed(&owner, &log);
    assert!(
        probe.held(&base_id),
        "the owner finished the base before it was stopped"
    );
    let waiters: Vec<Child> = inputs[1..4]
        .iter()
        .map(|input| start_scan(cache, backend, input, lease))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        owner.try_wait().unwrap().is_none(),
        "the owner finished before it was killed"
    );
    owner.kill().unwrap();
    let killed = Instant::now();
    let _ = owner.wait();
    let reports: Vec<Value> = waiters
        .into_iter()
        .map(|c| report(&c.wait_with_output().unwrap()))
        .collect();
    let took = killed.elapsed();
    let base: Vec<String> = reports.iter().map(|r| sources(r)[0].clone()).collect();
    assert_eq!(
        base.iter().filter(|s| *s == "analysed").count(),
        1,
        "{base:?}"
    );
    assert_eq!(
        base.iter().filter(|s| *s == "waited").count(),
        2,
        "{base:?}"
    );
    assert!(took < bound, "the scans took {took:?} after the kill");
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["Metadata"]["RepoTags"][0], format!("app:{}", i + 1));
    }
}

#[test]
fn a_killed_owner_hands_the_layer_to_a_waiter_and_every_scan_finishes() {
    // The kernel ends a dead owner's flock at once: the takeover does not wait for the
    // (long) lease; the time is the taker's analysis of the base.
    let cache = tempfile::tempdir().unwrap();
    let probe = FsClaims(cache.path());
    killed_owner(cache.path(), &[], "10m", &probe, Duration::from_secs(60));
}

#[test]
fn a_killed_owner_on_redis_is_taken_over_when_its_lease_runs_out() {
    let Some(server) =
        cache_testkit::redis::require_redis().then(|| RedisServer::start(Default::default()))
    else {
        return;
    };
    let url = server.url(6);
    let cache = tempfile::tempdir().unwrap();
    let probe = RedisClaims(&server, 6);
    // Lease 2 s: the takeover comes within it; the rest is the taker's analysis.
    killed_owner(
        cache.path(),
        &["--cache-backend", &url],
        "2s",
        &probe,
        Duration::from_secs(60),
    );
}

#[test]
fn a_killed_owner_through_a_server_is_taken_over_when_its_lease_runs_out() {
    // The server holds the claims of its remote clients, so a client's death does not
    // end them: its claim runs out with its lease (2 s), and a waiter takes it over.
    let served = tempfile::tempdir().unwrap();
    let server = server_over(served.path());
    let url = server.url();
    let cache = tempfile::tempdir().unwrap();
    let probe = FsClaims(served.path());
    killed_owner(
        cache.path(),
        &["--cache-backend", &url],
        "2s",
        &probe,
        Duration::from_secs(60),
    );
}

#[test]
fn a_claims_guard_kept_by_a_stopped_process_does_not_hold_a_scan_up() {
    // A process stopped inside its claim call keeps the fs claims guard; a scan waits for
    // it a bounded time (2 s), then analyses its layers without claims, with a warning.
    let dir = tempfile::tempdir().unwrap();
    let inputs = images(dir.path(), 1, 1 << 10, b'g');
    let cache = tempfile::tempdir().unwrap();
    let claims = cache.path().join("fanal/claims-v1");
    std::fs::create_dir_all(&claims).unwrap();
    let guard = std::fs::File::create(claims.join("guard.lock")).unwrap();
    fs4::FileExt::lock(&guard).unwrap();
    let started = Instant::now();
    let out = scan_command(cache.path(), &[], &inputs[0], "30s")
        .output()
        .unwrap();
    let took = started.elapsed();
    let r = report(&out);
    assert_eq!(sources(&r), ["analysed", "analysed"]);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("another process keeps the claims guard")
            .count(),
        1,
        "{err}"
    );
    // Once it is free, a scan claims again: a new image's layers get their lock files.
    drop(guard);
    let inputs = images(dir.path(), 1, 1 << 10, b'h');
    let out = scan_command(cache.path(), &[], &inputs[0], "30s")
        .output()
        .unwrap();
    assert_eq!(sources(&report(&out)), ["analysed", "analysed"]);
    assert!(
        claim_file(cache.path(), &base_blob_id(&inputs[0])).exists(),
        "the scan did not claim its base"
    );
}

/// `--lease-timeout` is in the help with its variable, and a bad value is a usage error
/// naming it, from the command line or the environment.
#[test]
fn lease_timeout_is_documented_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let help = scancache(dir.path(), &[], &["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.contains("--lease-timeout") && help.contains("SCANCACHE_LEASE_TIMEOUT"),
        "{help}"
    );
    for (args, env) in [
        (vec!["--lease-timeout", "soon", "cache", "stats"], None),
        (vec!["cache", "stats"], Some("-5s")),
    ] {
        let mut cmd = scancache(dir.path(), &["--cache-backend", "memory"], &args);
        if let Some(v) = env {
            cmd.env("SCANCACHE_LEASE_TIMEOUT", v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--lease-timeout"), "{err}");
    }
}
