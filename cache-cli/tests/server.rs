//! End-to-end tests of `scancache server`: the real process on a free loopback port, the
//! reference scanner's real client (`trivy image --server …`) against it, on every
//! backend (fs, memory, Redis, Redis over mutual TLS), compared with the same client
//! scanning on its own; second runs that upload nothing; the token; the default scanners;
//! two replicas over one Redis; HTTPS with a CA the test generates; start, logs and stop.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use cache_fixtures::{Compression, LayerBuilder, alpine_image, docker_save};
use cache_testkit::{
    http::{self, ScancacheServer},
    redis::{Certs, RedisServer, ServerOptions, Tls, require_redis},
    trivy::{self, require_trivy},
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_scancache");

/// What the reference's scanners need to report without a vulnerability database.
const SCANNERS: [&str; 2] = ["--scanners", "license"];

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name)
}

/// An Alpine image with language packages on top: npm packages in `node_modules`, a
/// Python package in `site-packages`, and a layer that deletes one of the npm packages.
fn lang_archive(dir: &Path) -> PathBuf {
    let package = |name: &str, version: &str, license: &str| {
        json!({"name": name, "version": version, "license": license}).to_string()
    };
    let image = alpine_image()
        .layer(
            &LayerBuilder::new()
                .file(
                    "app/node_modules/left-pad/package.json",
                    package("left-pad", "1.3.0", "WTFPL"),
                )
                .file(
                    "app/node_modules/is-odd/package.json",
                    package("is-odd", "3.0.1", "MIT"),
                )
                .file(
                    "usr/lib/python3.12/site-packages/requests-2.31.0.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n\n",
                ),
            Compression::Gzip,
            "COPY app /app",
        )
        .layer(
            &LayerBuilder::new().whiteout("app/node_modules/is-odd"),
            Compression::None,
            "RUN npm uninstall is-odd",
        );
    let path = dir.join("lang.tar");
    std::fs::write(&path, docker_save(&[&image])).unwrap();
    path
}

/// An OCI image layout directory of the Alpine sample (the reference reads OCI layouts
/// as directories, not as tars).
fn oci_dir(dir: &Path) -> PathBuf {
    let path = dir.join("alpine-oci");
    cache_fixtures::write_oci_dir(&[&alpine_image()], &path).unwrap();
    path
}

/// The inputs every backend is checked with: a classic docker-save tar, language
/// packages with a whiteout (docker-save), an OCI layout directory, and the sample with
/// packages of every language analyser (Go and Rust binaries, .NET, Composer, conda,
/// gems, Python, Node.js, Debian copyright files; a later layer uninstalling one).
fn archives(dir: &Path) -> Vec<PathBuf> {
    vec![
        sample("debian.tar"),
        lang_archive(dir),
        oci_dir(dir),
        sample("lang.tar"),
    ]
}

/// A trivy run and what to show when it fails.
struct TrivyRun {
    args: Vec<String>,
    out: Output,
}

impl TrivyRun {
    fn ok(&self) -> bool {
        self.out.status.success()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn explain(&self) -> String {
        format!(
            "trivy {}\nstatus: {}\nstderr:\n{}",
            self.args.join(" "),
            self.out.status,
            self.stderr()
        )
    }

    fn report(&self) -> Value {
        assert!(self.ok(), "{}", self.explain());
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", self.explain()))
    }
}

/// Runs `trivy ARGS` with its own cache dir under `dir` and no network.
fn run_trivy(trivy: &Path, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> TrivyRun {
    let cache = dir.join("trivy-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mut cmd = trivy::command(trivy, &cache);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    TrivyRun {
        args: args.iter().map(|s| s.to_string()).collect(),
        out: cmd.output().expect("cannot run trivy"),
    }
}

/// `trivy image --server URL --input ARCHIVE --format json --list-all-pkgs EXTRA…`.
fn client_scan(trivy: &Path, dir: &Path, url: &str, archive: &Path, extra: &[&str]) -> TrivyRun {
    let archive = archive.display().to_string();
    let mut args = vec![
        "image",
        "--server",
        url,
        "--input",
        &archive,
        "--format",
        "json",
        "--list-all-pkgs",
    ];
    args.extend_from_slice(extra);
    run_trivy(trivy, dir, &args, &[])
}

/// What both ways of scanning must agree on: the OS and every result, packages with
/// their PURLs but without their UIDs (the reference's package hash; this server's are
/// its own). Every package must have a PURL.
fn comparable(report: &Value) -> Value {
    let mut results = report["Results"].clone();
    for result in results.as_array_mut().into_iter().flatten() {
        for pkg in result["Packages"].as_array_mut().into_iter().flatten() {
            let id = pkg["Identifier"].as_object_mut().unwrap();
            assert!(
                id.get("PURL")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.starts_with("pkg:")),
                "no PURL: {pkg}"
            );
            id.remove("UID");
        }
    }
    json!({"OS": report["Metadata"]["OS"], "Results": results})
}

/// The standalone answers for `archives`, computed once.
fn standalone(trivy: &Path, dir: &Path, archives: &[PathBuf]) -> Vec<Value> {
    archives
        .iter()
        .map(|a| {
            let archive = a.display().to_string();
            let mut args = vec![
                "image",
                "--input",
                &archive,
                "--format",
                "json",
                "--list-all-pkgs",
            ];
            args.extend(SCANNERS);
            comparable(&run_trivy(trivy, dir, &args, &[]).report())
        })
        .collect()
}

/// A counter's value in the server's metrics.
fn metric(server: &ScancacheServer, name: &str) -> u64 {
    let text = http::get(server.port(), "/metrics").unwrap().text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// Scans every archive through the server twice: the first scan answers what the
/// client alone answers; the second uploads no blob.
fn check_backend(global: &[&str]) {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempfile::tempdir().unwrap();
    let archives = archives(dir.path());
    let want = standalone(&trivy, dir.path(), &archives);
    let server = ScancacheServer::start(BIN, global, &[], &[]);
    for (archive, want) in archives.iter().zip(&want) {
        let first = client_scan(&trivy, dir.path(), &server.url(), archive, &SCANNERS);
        assert_eq!(
            comparable(&first.report()),
            *want,
            "{}: the server's answer differs from the standalone scan\nserver log:\n{}",
            archive.display(),
            server.log()
        );
        let uploaded = metric(&server, "scancache_server_put_blobs_total");
        let second = client_scan(&trivy, dir.path(), &server.url(), archive, &SCANNERS);
        assert_eq!(comparable(&second.report()), *want, "{}", archive.display());
        assert_eq!(
            metric(&server, "scancache_server_put_blobs_total"),
            uploaded,
            "the second scan of {} uploaded a blob",
            archive.display()
        );
    }
    // The language packages really passed through: the deleted one is gone.
    let lang = want[1]["Results"].to_string();
    assert!(
        lang.contains("left-pad") && lang.contains("requests"),
        "{lang}"
    );
    assert!(!lang.contains("is-odd"), "{lang}");
    // Every language analyser's packages, with their PURLs, passed through too.
    let sample = want[3]["Results"].to_string();
    for purl in [
        "pkg:golang/github.com/google/uuid@",
        "pkg:cargo/",
        "pkg:nuget/",
        "pkg:composer/psr/log@1.1.4",
        "pkg:conda/zlib@1.2.13",
        "pkg:gem/rake@13.0.6",
        "pkg:pypi/requests@2.31.0",
        "pkg:npm/left-pad@1.3.0",
        "pkg:deb/debian/bash@",
    ] {
        assert!(sample.contains(purl), "no {purl} in {sample}");
    }
    assert!(!sample.contains("pkg:pypi/six@"), "{sample}");
}

#[test]
fn the_trivy_client_gets_the_standalone_answer_on_fs() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().display().to_string();
    check_backend(&["--cache-dir", &cache_dir]);
}

#[test]
fn the_trivy_client_gets_the_standalone_answer_on_memory() {
    check_backend(&["--cache-backend", "memory"]);
}

#[test]
fn the_trivy_client_gets_the_standalone_answer_on_redis() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start(ServerOptions::default());
    check_backend(&["--cache-backend", &redis.url(0)]);
}

#[test]
fn the_trivy_client_gets_the_standalone_answer_on_redis_over_mutual_tls() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start(ServerOptions {
        tls: Tls::Mutual,
        ..ServerOptions::default()
    });
    let certs = redis.certs.clone().unwrap();
    let (ca, cert, key) = (
        certs.ca.display().to_string(),
        certs.client_cert.display().to_string(),
        certs.client_key.display().to_string(),
    );
    check_backend(&[
        "--cache-backend",
        &redis.url(0),
        "--redis-ca",
        &ca,
        "--redis-cert",
        &cert,
        "--redis-key",
        &key,
    ]);
}

#[test]
fn a_wrong_or_missing_token_is_refused_and_stores_nothing() {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache").display().to_string();
    let secret = "tok-9f2e1c";
    let server = ScancacheServer::start(
        BIN,
        &["--cache-dir", &cache_dir],
        &[],
        &[("SCANCACHE_TOKEN", secret)],
    );
    let archive = sample("debian.tar");
    for extra in [&[][..], &["--token", "wrong"][..]] {
        let mut args = SCANNERS.to_vec();
        args.extend_from_slice(extra);
        let run = client_scan(&trivy, dir.path(), &server.url(), &archive, &args);
        assert!(!run.ok(), "{}", run.explain());
        assert!(
            run.stderr().contains("unauthenticated"),
            "{}",
            run.explain()
        );
    }
    // Nothing was read or written.
    assert_eq!(metric(&server, "scancache_server_put_blobs_total"), 0);
    assert_eq!(
        metric(&server, "scancache_server_missing_blobs_misses_total"),
        0
    );
    let stats = std::process::Command::new(BIN)
        .args([
            "--cache-dir",
            &cache_dir,
            "cache",
            "stats",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        (stats["artifacts"].as_u64(), stats["blobs"].as_u64()),
        (Some(0), Some(0)),
        "{stats}"
    );
    // The right token, in the reference client's header.
    let mut args = SCANNERS.to_vec();
    args.extend(["--token", secret]);
    let run = client_scan(&trivy, dir.path(), &server.url(), &archive, &args);
    assert!(run.ok(), "{}", run.explain());
    assert!(metric(&server, "scancache_server_put_blobs_total") > 0);
    // The token never shows in the log, not even for the refused requests.
    let log = server.log();
    assert!(log.contains("unauthenticated"), "{log}");
    assert!(!log.contains(secret), "the token is in the log:\n{log}");
}

#[test]
fn default_scanners_get_the_message_that_says_which_to_use() {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = ScancacheServer::start(BIN, &["--cache-backend", "memory"], &[], &[]);
    let run = client_scan(
        &trivy,
        dir.path(),
        &server.url(),
        &sample("debian.tar"),
        &[],
    );
    assert!(!run.ok(), "{}", run.explain());
    assert!(
        run.stderr().contains("failed_precondition"),
        "{}",
        run.explain()
    );
    assert!(
        run.stderr().contains(cache_server::NO_VULN_DB),
        "{}",
        run.explain()
    );
}

#[test]
fn two_replicas_over_one_redis_serve_one_cache() {
    let Some(trivy) = require_trivy() else { return };
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start(ServerOptions::default());
    let global = ["--cache-backend", &redis.url(0)];
    let a = ScancacheServer::start(BIN, &global, &[], &[]);
    let b = ScancacheServer::start(BIN, &global, &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let archive = lang_archive(dir.path());
    let through_a = client_scan(&trivy, dir.path(), &a.url(), &archive, &SCANNERS);
    assert!(metric(&a, "scancache_server_put_blobs_total") > 0);
    let through_b = client_scan(&trivy, dir.path(), &b.url(), &archive, &SCANNERS);
    assert_eq!(
        comparable(&through_b.report()),
        comparable(&through_a.report())
    );
    assert_eq!(
        metric(&b, "scancache_server_put_blobs_total"),
        0,
        "{}",
        b.log()
    );
    assert_eq!(metric(&b, "scancache_server_missing_blobs_misses_total"), 0);
    assert!(metric(&b, "scancache_server_missing_blobs_hits_total") >= 3);
}

#[test]
fn https_with_a_ca_the_client_trusts() {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    let (cert, key) = (
        certs.server_cert.display().to_string(),
        certs.server_key.display().to_string(),
    );
    let server = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory"],
        &["--tls-cert", &cert, "--tls-key", &key],
        &[],
    );
    let url = format!("https://127.0.0.1:{}", server.port());
    let archive = sample("debian.tar").display().to_string();
    let mut args = vec![
        "image",
        "--server",
        &url,
        "--input",
        &archive,
        "--format",
        "json",
        "--list-all-pkgs",
    ];
    args.extend(SCANNERS);
    let ca = certs.ca.display().to_string();
    let run = run_trivy(&trivy, dir.path(), &args, &[("SSL_CERT_FILE", &ca)]);
    let report = run.report();
    assert_eq!(
        report["Metadata"]["OS"]["Family"],
        "debian",
        "{}",
        server.log()
    );
    // Without the CA the client does not trust the server.
    let run = run_trivy(
        &trivy,
        dir.path(),
        &args,
        &[("SSL_CERT_FILE", "/nonexistent")],
    );
    assert!(!run.ok(), "{}", run.explain());
}

#[test]
fn bad_tls_files_are_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    for (cert, key, names) in [
        (&missing, &certs.server_key, &missing),
        (&junk, &certs.server_key, &junk),
        (&certs.server_cert, &junk, &junk),
        (&certs.server_cert, &certs.client_key, &certs.client_key),
    ] {
        let out = std::process::Command::new(BIN)
            .args([
                "--cache-backend",
                "memory",
                "server",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("\tERROR\t")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(&names.display().to_string()), "{stderr}");
    }
}

#[test]
fn the_server_logs_its_start_each_request_with_debug_and_a_summary_at_stop() {
    let metrics_port = cache_testkit::redis::free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let mut server = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "-d"],
        &["--metrics-listen", &metrics_listen],
        &[],
    );
    assert_eq!(http::get(server.port(), "/healthz").unwrap().text(), "ok");
    // The metrics moved to their own address.
    assert_eq!(http::get(server.port(), "/metrics").unwrap().status, 404);
    let metrics = http::get(metrics_port, "/metrics").unwrap();
    assert!(
        metrics
            .text()
            .contains("scancache_server_requests_in_flight"),
        "{}",
        metrics.text()
    );
    let body = json!({"artifact_id": "sha256:0", "blob_ids": []}).to_string();
    let resp = http::post(
        server.port(),
        "/twirp/trivy.cache.v1.Cache/MissingBlobs",
        "application/json",
        &[],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.twirp_code().as_deref(), Some("invalid_argument"));
    let status = server.stop().unwrap();
    assert!(status.success(), "{status}\n{}", server.log());
    let log = server.log();
    let has = |level: &str, text: &str| {
        log.lines()
            .any(|l| l.contains(&format!("\t{level}\t")) && l.contains(text))
    };
    assert!(has("WARN", "accepts requests from anyone"), "{log}");
    assert!(has("INFO", "listening on http://127.0.0.1:"), "{log}");
    assert!(has("DEBUG", "GET /healthz"), "{log}");
    assert!(
        has(
            "WARN",
            "POST /twirp/trivy.cache.v1.Cache/MissingBlobs from 127.0.0.1:"
        ),
        "{log}"
    );
    assert!(has("INFO", "stopped: 1 requests (1 failed)"), "{log}");
}
