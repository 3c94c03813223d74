//! `scancache fs|rootfs|sbom --server`: the reference client's flow for a directory and
//! an SBOM against `scancache server` — the same packages as the local scans; the
//! reference's own `trivy fs|rootfs|sbom --server` against `scancache server`, the same
//! packages as `trivy fs|rootfs|sbom` alone; and every way it can fail, in one line.

use std::path::Path;

use cache_fixtures::{data, write_project};
use cache_testkit::{
    http::ScancacheServer,
    redis::free_port,
    trivy::{self, report_packages, require_trivy},
};
use serde_json::Value;

use crate::support::{BIN, TOKEN, metric, run, sample, tempdir};

/// A small unpacked root file system: Debian's os-release, debian_version (which the
/// reference needs to name the OS) and dpkg status, and one installed npm package.
fn rootfs(root: &Path) {
    let put = |p: &str, text: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    put("etc/os-release", data::DEBIAN_OS_RELEASE);
    put("etc/debian_version", "12.11\n");
    put("var/lib/dpkg/status", data::DEBIAN_STATUS);
    put(
        "usr/lib/node_modules/left-pad/package.json",
        r#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#,
    );
}

/// `scancache ARGS… --format json` (which must succeed), its report.
fn report(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let r = run(&all).ok().shows_no_secret();
    serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}: {}", r.explain()))
}

fn server() -> ScancacheServer {
    ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "--token", TOKEN],
        &[],
        &[],
    )
}

/// `fs`, `rootfs` and `sbom` with `--server` report the packages the local scans report;
/// a second scan sends nothing; `--include-dev-deps` reaches the server.
#[test]
fn through_scancache_server_the_packages_are_the_local_scans() {
    let dir = tempdir();
    let project = dir.path().join("project");
    write_project(&project, 40).unwrap();
    let root = dir.path().join("rootfs");
    rootfs(&root);
    let sbom = dir.path().join("debian.cdx.json");
    run(&[
        "image",
        "--input",
        &sample("debian.tar").display().to_string(),
        "--format",
        "cyclonedx",
        "-o",
        &sbom.display().to_string(),
        "--cache-dir",
        &dir.path().join("cache").display().to_string(),
    ])
    .ok();
    let server = server();
    let url = server.url();
    let url = url.as_str();
    let (project, root, sbom) = (
        project.display().to_string(),
        root.display().to_string(),
        sbom.display().to_string(),
    );
    for (command, target, extra) in [
        ("fs", &project, None),
        ("fs", &project, Some("--include-dev-deps")),
        ("rootfs", &root, None),
        ("sbom", &sbom, None),
    ] {
        let mut local = vec![command, target.as_str()];
        local.extend(extra);
        let mut remote = local.clone();
        remote.extend(["--server", url, "--token", TOKEN]);
        let (mine, theirs) = (report(&local), report(&remote));
        let want = report_packages(&mine);
        assert!(want.len() > 2, "{command}: {mine}");
        assert_eq!(report_packages(&theirs), want, "{command} {extra:?}");
        assert_eq!(theirs["ArtifactType"], mine["ArtifactType"], "{command}");
        assert_eq!(theirs["ArtifactName"], mine["ArtifactName"], "{command}");
        assert_eq!(
            theirs["Metadata"]["OS"], mine["Metadata"]["OS"],
            "{command}"
        );
        let sent = metric(&server, "scancache_server_put_blobs_total");
        remote.extend(["--format", "table"]);
        let again = run(&remote).ok();
        assert!(
            again.stdout().contains("Result    already on the server"),
            "{}",
            again.explain()
        );
        assert_eq!(
            metric(&server, "scancache_server_put_blobs_total"),
            sent,
            "the second {command} scan uploaded its result"
        );
    }
    let dev = |extra: &[&str]| {
        let mut args = vec!["fs", project.as_str(), "--server", url, "--token", TOKEN];
        args.extend_from_slice(extra);
        report_packages(&report(&args)).len()
    };
    assert!(dev(&["--include-dev-deps"]) > dev(&[]));
}

/// With a persistent local cache, a tree the server lacks (a server restarted with an
/// empty memory cache) is uploaded from the local cache, reading no file.
#[test]
fn the_local_cache_serves_what_the_server_lost() {
    let dir = tempdir();
    let project = dir.path().join("project");
    write_project(&project, 10).unwrap();
    let cache = dir.path().join("cache").display().to_string();
    let project = project.display().to_string();
    let mut server = server();
    let scan = |url: &str| {
        run(&[
            "--cache-backend",
            "fs",
            "--cache-dir",
            cache.as_str(),
            "fs",
            project.as_str(),
            "--server",
            url,
            "--token",
            TOKEN,
        ])
        .ok()
        .stdout()
    };
    assert!(scan(&server.url()).contains("Result    analysed and uploaded"));
    server.restart(BIN);
    let table = scan(&server.url());
    assert!(
        table.contains("Result    uploaded from the local cache"),
        "{table}"
    );
    assert!(table.contains("rust/Cargo.lock (cargo)"), "{table}");
}

/// `trivy SUBCOMMAND ARGS… --format json --list-all-pkgs --scanners license EXTRA…`, its
/// report.
fn trivy_report(trivy: &Path, cache: &Path, args: &[&str], extra: &[&str]) -> Value {
    let out = trivy::command(trivy, cache)
        .args(args)
        .args([
            "--format",
            "json",
            "--list-all-pkgs",
            "--scanners",
            "license",
            "--quiet",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trivy {args:?} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The reference's client against `scancache server`: `trivy fs|rootfs|sbom --server`
/// reports the packages `trivy fs|rootfs|sbom` reports alone (its blob is stored with no
/// artifact entry, which the server does without).
#[test]
fn the_reference_client_gets_the_packages_it_finds_alone() {
    let Some(trivy) = require_trivy() else { return };
    let dir = tempdir();
    let project = dir.path().join("project");
    write_project(&project, 40).unwrap();
    // The reference resolves a pom.xml over the network.
    std::fs::remove_file(project.join("java/pom.xml")).unwrap();
    let root = dir.path().join("rootfs");
    rootfs(&root);
    // Packages without an OS: the reference reports them as OS family `none`.
    let bare = dir.path().join("bare");
    rootfs(&bare);
    std::fs::remove_file(bare.join("etc/os-release")).unwrap();
    std::fs::remove_file(bare.join("etc/debian_version")).unwrap();
    let sbom = dir.path().join("debian.cdx.json");
    let cache = dir.path().join("trivy-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let server = server();
    let url = server.url();
    let url = url.as_str();
    let sample = sample("debian.tar").display().to_string();
    let out = trivy::command(&trivy, &cache)
        .args([
            "image",
            "--input",
            &sample,
            "--format",
            "cyclonedx",
            "--quiet",
        ])
        .args(["--scanners", "license", "-o", &sbom.display().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (project, root, bare, sbom) = (
        project.display().to_string(),
        root.display().to_string(),
        bare.display().to_string(),
        sbom.display().to_string(),
    );
    for (command, target) in [
        ("fs", &project),
        ("rootfs", &root),
        ("rootfs", &bare),
        ("sbom", &sbom),
    ] {
        let alone = trivy_report(&trivy, &cache, &[command, target], &[]);
        let remote = trivy_report(
            &trivy,
            &cache,
            &[command, target],
            &["--server", url, "--token", TOKEN],
        );
        let want = report_packages(&alone);
        assert!(want.len() > 2, "{command}: {alone}");
        assert_eq!(
            report_packages(&remote),
            want,
            "trivy {command} --server\nserver log:\n{}",
            server.log()
        );
    }
    assert!(metric(&server, "scancache_server_put_blobs_total") >= 4.0);
}

/// An unreachable server, a wrong token, an SBOM format: one line each, exit 1, and no
/// report file; a malformed URL is a usage error (2).
#[test]
fn failures_are_one_line_and_write_nothing() {
    let dir = tempdir();
    let project = dir.path().join("project");
    write_project(&project, 5).unwrap();
    let project = project.display().to_string();
    let out = dir.path().join("report.json");
    let out_arg = out.display().to_string();
    let sbom = dir.path().join("doc.cdx.json");
    run(&[
        "fs",
        &project,
        "--format",
        "cyclonedx",
        "-o",
        &sbom.display().to_string(),
    ])
    .ok();
    let sbom = sbom.display().to_string();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let server = server();
    let url = server.url();
    let url = url.as_str();
    for (command, target) in [("fs", &project), ("rootfs", &project), ("sbom", &sbom)] {
        let scan = |url: &str, token: &str, extra: &[&str]| {
            let mut args = vec![command, target.as_str(), "--server", url, "--token", token];
            args.extend(["-o", out_arg.as_str()]);
            args.extend_from_slice(extra);
            run(&args)
        };
        scan(&nobody, TOKEN, &[]).fails_with(1, "is unavailable: MissingBlobs: cannot connect");
        let r = scan(url, "wrong-never-shown", &[])
            .fails_with(1, "MissingBlobs: unauthenticated: invalid token");
        assert!(!r.stderr().contains("wrong-never-shown"), "{}", r.explain());
        for format in ["cyclonedx", "spdx-json"] {
            scan(url, TOKEN, &["--format", format]).fails_with(
                1,
                &format!("--format {format} cannot be used with --server"),
            );
        }
        let r = scan("http://host:port", TOKEN, &[]);
        assert_eq!(r.code(), Some(2), "{}", r.explain());
        assert!(!out.exists(), "{command}: no report after a failure");
        scan(url, TOKEN, &[]).ok();
        assert!(out.exists(), "{command}: the report is written");
        std::fs::remove_file(&out).unwrap();
    }
}
