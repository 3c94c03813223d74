//! `scancache image --server`: the reference client's flow against `scancache server`
//! and against the reference's own `trivy server`, compared with `trivy image --server`
//! on the same archive and server; and every way it can fail, in one line.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cache_fixtures::{Compression, LayerBuilder, alpine_image, docker_save};
use cache_testkit::{
    http::ScancacheServer,
    proxy::DelayProxy,
    redis::{Certs, free_port},
    trivy::{self, TrivyServer, require_trivy},
};
use serde_json::{Value, json};

use crate::support::{BIN, TOKEN, metric, run, sample, tempdir};

/// `trivy image --server URL --token T --input ARCHIVE --format json --list-all-pkgs
/// EXTRA…`, its report.
fn trivy_scan(trivy: &Path, dir: &Path, url: &str, archive: &Path, extra: &[&str]) -> Value {
    let cache = dir.join("trivy-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let archive = archive.display().to_string();
    let out = trivy::command(trivy, &cache)
        .args([
            "image", "--server", url, "--token", TOKEN, "--input", &archive,
        ])
        .args(["--format", "json", "--list-all-pkgs"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trivy {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `scancache image --server URL --token T --input ARCHIVE --format json EXTRA…`.
fn our_scan(url: &str, archive: &Path, extra: &[&str]) -> crate::support::Run {
    let archive = archive.display().to_string();
    let mut args = vec![
        "image", "--server", url, "--token", TOKEN, "--input", &archive,
    ];
    if !extra.contains(&"--format") {
        args.extend(["--format", "json"]);
    }
    args.extend_from_slice(extra);
    run(&args)
}

/// What both clients must agree on: the OS, and per result of packages its class,
/// type and packages (name, versions, architecture, source, licenses, layer), and the
/// vulnerabilities.
fn comparable(report: &Value) -> Value {
    let results: Vec<Value> = report["Results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| matches!(r["Class"].as_str(), Some("os-pkgs" | "lang-pkgs")))
        .map(|r| {
            let mut packages: Vec<Value> = r["Packages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    json!({
                        "Name": p["Name"], "Version": p["Version"], "Release": p["Release"],
                        "Epoch": p["Epoch"], "Arch": p["Arch"], "SrcName": p["SrcName"],
                        "SrcVersion": p["SrcVersion"], "SrcRelease": p["SrcRelease"],
                        "Licenses": p["Licenses"], "DiffID": p["Layer"]["DiffID"],
                    })
                })
                .collect();
            packages.sort_by_key(|p| p.to_string());
            json!({
                "Class": r["Class"], "Type": r["Type"], "Packages": packages,
                "Vulnerabilities": r.get("Vulnerabilities").cloned().unwrap_or(json!([])),
            })
        })
        .collect();
    json!({
        "OS": {"Family": report["Metadata"]["OS"]["Family"], "Name": report["Metadata"]["OS"]["Name"]},
        "Results": results,
    })
}

/// The samples both clients scan: dpkg (docker-save) and apk (an OCI layout, which the
/// reference reads as a directory).
fn archives(dir: &Path) -> Vec<PathBuf> {
    let oci = dir.join("alpine-oci");
    cache_fixtures::write_oci_dir(&[&alpine_image()], &oci).unwrap();
    vec![sample("debian.tar"), oci]
}

/// Against `scancache server`: the same OS and packages as `trivy image --server`, no
/// vulnerabilities; a second scan uploads nothing; `--scanners vuln` is refused with the
/// server's message, exit 1, as the reference client is refused.
#[test]
fn against_scancache_server_the_report_is_the_reference_clients() {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempdir();
    let server = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "--token", TOKEN],
        &[],
        &[],
    );
    for archive in archives(dir.path()) {
        let theirs = trivy_scan(
            &trivy,
            dir.path(),
            &server.url(),
            &archive,
            &["--scanners", "license"],
        );
        let ours = our_scan(&server.url(), &archive, &[])
            .ok()
            .shows_no_secret();
        let ours: Value = serde_json::from_str(&ours.stdout()).unwrap();
        assert_eq!(
            comparable(&ours),
            comparable(&theirs),
            "{}",
            archive.display()
        );
        assert!(
            !comparable(&ours)["Results"][0]["Packages"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let uploaded = metric(&server, "scancache_server_put_blobs_total");
        let again = our_scan(&server.url(), &archive, &["--format", "table"]).ok();
        assert!(
            again.stdout().contains("already on the server"),
            "{}",
            again.explain()
        );
        assert_eq!(
            metric(&server, "scancache_server_put_blobs_total"),
            uploaded,
            "the second scan of {} uploaded a blob",
            archive.display()
        );
    }
    let debian = sample("debian.tar");
    our_scan(&server.url(), &debian, &["--scanners", "vuln"])
        .fails_with(1, "this server has no vulnerability database");
}

/// Against the reference's `trivy server` (an empty vulnerability database): the same
/// OS, packages and (empty) vulnerabilities as `trivy image --server`, with `--scanners
/// vuln` and without.
#[test]
fn against_trivy_server_the_report_is_the_reference_clients() {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempdir();
    let server = TrivyServer::start(&trivy, &["--token", TOKEN]);
    for archive in archives(dir.path()) {
        for scanners in ["vuln", "license"] {
            let theirs = trivy_scan(
                &trivy,
                dir.path(),
                &server.url(),
                &archive,
                &["--scanners", scanners],
            );
            let ours = our_scan(&server.url(), &archive, &["--scanners", scanners])
                .ok()
                .shows_no_secret();
            let ours: Value = serde_json::from_str(&ours.stdout()).unwrap();
            let packages = &comparable(&ours)["Results"][0]["Packages"];
            assert!(!packages.as_array().unwrap().is_empty(), "{ours}");
            assert_eq!(
                comparable(&ours),
                comparable(&theirs),
                "{} with --scanners {scanners}\nserver log:\n{}",
                archive.display(),
                server.log()
            );
        }
    }
    let table = our_scan(
        &server.url(),
        &sample("debian.tar"),
        &["--scanners", "vuln", "--format", "table"],
    )
    .ok();
    assert!(
        table.stdout().contains("Vulnerabilities  0"),
        "{}",
        table.explain()
    );
    assert!(
        table.stdout().contains("OS        debian 12.11"),
        "{}",
        table.explain()
    );
}

/// A server that is not there, a wrong token, a certificate that is not trusted, a
/// malformed URL: one line each (exit 1; a malformed URL is a usage error, 2) and no
/// report file.
#[test]
fn failures_are_one_line_and_write_nothing() {
    let dir = tempdir();
    let out = dir.path().join("report.json");
    let out_arg = out.display().to_string();
    let input = sample("debian.tar");
    let nobody = format!("http://127.0.0.1:{}", free_port());
    our_scan(&nobody, &input, &["-o", &out_arg])
        .fails_with(1, "is unavailable: MissingBlobs: cannot connect");
    let server = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "--token", TOKEN],
        &[],
        &[],
    );
    let r = run(&[
        "image",
        "--server",
        &server.url(),
        "--token",
        "wrong-never-shown",
        "--input",
        &input.display().to_string(),
        "-o",
        &out_arg,
    ])
    .fails_with(1, "MissingBlobs: unauthenticated: invalid token");
    assert!(!r.stderr().contains("wrong-never-shown"));
    let certs = Certs::generate(dir.path());
    let tls = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "--token", TOKEN],
        &[
            "--tls-cert",
            &certs.server_cert.display().to_string(),
            "--tls-key",
            &certs.server_key.display().to_string(),
        ],
        &[],
    );
    let https = format!("https://127.0.0.1:{}", tls.port());
    our_scan(&https, &input, &["-o", &out_arg]).fails_with(1, "TLS handshake failed");
    our_scan(
        &https,
        &input,
        &[
            "-o",
            &out_arg,
            "--server-ca",
            &certs.ca.display().to_string(),
        ],
    )
    .ok();
    assert!(out.exists(), "the trusted scan wrote its report");
    std::fs::remove_file(&out).unwrap();
    let r = our_scan("http://host:port", &input, &["-o", &out_arg]);
    assert_eq!(r.code(), Some(2), "{}", r.explain());
    assert!(r.stderr().contains("not a number"), "{}", r.explain());
    assert!(!out.exists(), "no report after a failure");
}

/// The server restarts (its memory cache lost) while the client uploads: the scan
/// fails in one line, exit 1, and no report file is written.
#[test]
fn a_server_restarting_mid_scan_fails_cleanly() {
    let dir = tempdir();
    let mut image = alpine_image();
    for i in 0..16 {
        image = image.layer(
            &LayerBuilder::new().file(&format!("srv/file-{i}"), format!("layer {i}")),
            Compression::Gzip,
            &format!("RUN step {i}"),
        );
    }
    let archive = dir.path().join("many.tar");
    std::fs::write(&archive, docker_save(&[&image])).unwrap();
    let mut server = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "--token", TOKEN],
        &[],
        &[],
    );
    // Every upload takes a round trip of 100 ms, so the upload lasts a second or more.
    let proxy = DelayProxy::start(server.port(), Duration::from_millis(50));
    let url = format!("http://127.0.0.1:{}", proxy.port());
    let out = dir.path().join("report.json");
    let child = Command::new(BIN)
        .args([
            "image", "--server", &url, "--token", TOKEN, "--format", "json",
        ])
        .args(["--input", &archive.display().to_string()])
        .args(["-o", &out.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&server, "scancache_server_put_blobs_total") < 3.0 {
        assert!(Instant::now() < deadline, "the upload did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.restart(BIN);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("\tERROR\t")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("layer cache missing") || errors[0].contains("unavailable"),
        "{stderr}"
    );
    eprintln!("{}", errors[0]);
    assert!(!out.exists(), "no report after a failure");
}
