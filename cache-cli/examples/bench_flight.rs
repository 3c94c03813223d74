//! Benchmark of the single-flight: concurrent cold scans of images sharing a large base,
//! each figure against a baseline measured in the same run.
//!
//! ```text
//! cargo build --release -p cache-cli
//! cargo run --release -p cache-cli --example bench_flight -- [--quick]
//!   (or cargo xtask bench [--quick] flight)
//! ```
//!
//! - **Eight at once, fs**: eight release `scancache image` processes started together
//!   on one fresh fs cache, each scanning one of eight images of a generated OCI layout
//!   that share a 512 MiB base layer (64 MiB with `--quick`) and have a 1 MiB upper
//!   layer each: wall time until the last finishes, vs one cold scan of one of those
//!   images alone. Also the layer bytes the eight analysed (from their reports'
//!   `Metadata.Layers`) vs one base plus the eight uppers.
//!   The same eight without claims (`--lease-timeout 0`), for comparison.
//! - **Eight at once, Redis**: the same on a `redis-server` started here (skipped with a
//!   note without one).
//! - **Claim overhead**: a cold scan of one of the eight images alone, on fs and on
//!   Redis, with claims vs `--lease-timeout 0` (no claims), alternating, a fresh cache
//!   each run; and the same on fs for an image of 201 one-file layers (the worst case:
//!   a lock file per layer, each layer far cheaper to analyse than that; no target).

#![allow(clippy::unwrap_used)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Instant,
};

use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, data::DEBIAN_OS_RELEASE, write_oci_dir,
};
use cache_testkit::bench::{Figure, Spread};
use serde_json::Value;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (base_mib, reps) = if quick { (64, 2) } else { (512, 3) };
    let scancache = cache_testkit::bench::scancache_binary();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("images");
    let upper = 1 << 20;
    write_images(&layout, base_mib << 20, upper);

    let redis = cache_testkit::redis::require_redis()
        .then(|| cache_testkit::redis::RedisServer::start(Default::default()));
    let mut backends: Vec<(&str, Option<String>)> = vec![("fs", None)];
    match &redis {
        Some(server) => backends.push(("redis", Some(server.url(0)))),
        None => println!("eight at once, redis: skipped (no redis-server)"),
    }
    let mut db = 0;
    for (name, url) in &backends {
        let (mut one, mut eight, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        let mut unclaimed = Vec::new();
        for rep in 0..=reps {
            // Rep 0 warms the page cache and is not counted.
            let backend = |db: &mut u32| -> (tempfile::TempDir, Vec<String>) {
                let dir = tempfile::tempdir().unwrap();
                *db += 1;
                let args = match url {
                    Some(url) => vec![
                        "--cache-backend".into(),
                        url.replace("/0", &format!("/{db}")),
                    ],
                    None => Vec::new(),
                };
                (dir, args)
            };
            let (dir, args) = backend(&mut db);
            let started = Instant::now();
            let out = scan(&scancache, dir.path(), &args, &layout, 7, "30s")
                .wait_with_output()
                .unwrap();
            let alone = started.elapsed().as_secs_f64();
            check(&out);
            let (dir, args) = backend(&mut db);
            let started = Instant::now();
            let children: Vec<Child> = (0..8)
                .map(|i| scan(&scancache, dir.path(), &args, &layout, i, "30s"))
                .collect();
            let outs: Vec<_> = children
                .into_iter()
                .map(|c| c.wait_with_output().unwrap())
                .collect();
            let together = started.elapsed().as_secs_f64();
            let analysed: u64 = outs
                .iter()
                .map(|o| {
                    let report = check(o);
                    let sources = report["Metadata"]["Layers"].as_array().unwrap().clone();
                    let sizes = [(base_mib << 20) as u64, upper as u64];
                    sources
                        .iter()
                        .zip(sizes)
                        .filter(|(s, _)| s["Source"] == "analysed")
                        .map(|(_, size)| size)
                        .sum::<u64>()
                })
                .sum();
            if *name == "fs" {
                // The same without claims: what eight scans cost before single-flight.
                let (dir, args) = backend(&mut db);
                let started = Instant::now();
                let children: Vec<Child> = (0..8)
                    .map(|i| scan(&scancache, dir.path(), &args, &layout, i, "0"))
                    .collect();
                for c in children {
                    check(&c.wait_with_output().unwrap());
                }
                if rep > 0 {
                    unclaimed.push(started.elapsed().as_secs_f64());
                }
            }
            if rep > 0 {
                one.push(alone);
                eight.push(together);
                bytes.push(analysed as f64 / (1 << 20) as f64);
            }
        }
        let title = format!("8 concurrent cold scans sharing a {base_mib} MiB base ({name})");
        let note = format!(
            "wall time of 8 release `scancache image` processes started together on one fresh {name} cache"
        );
        Figure {
            name: &title,
            unit: "s",
            spread: Spread::of(eight),
            baseline: Some((
                "one cold scan of one of the images alone",
                Spread::of(one.clone()),
            )),
            target: Some("ratio <= 1.5"),
            note: Some(&note),
        }
        .report();
        if !unclaimed.is_empty() {
            let title = format!("8 concurrent cold scans, no claims, {base_mib} MiB base ({name})");
            Figure {
                name: &title,
                unit: "s",
                spread: Spread::of(unclaimed),
                baseline: Some((
                    "one cold scan of one of the images alone",
                    Spread::of(one.clone()),
                )),
                target: None,
                note: Some("--lease-timeout 0: every scan analyses the base (the old behaviour)"),
            }
            .report();
        }
        let ideal = (base_mib + 8) as f64;
        let title = format!("layer MiB analysed by the 8 scans ({name})");
        Figure {
            name: &title,
            unit: "MiB",
            spread: Spread::of(bytes),
            baseline: Some(("one base plus the 8 uppers", Spread::of(vec![ideal]))),
            target: Some("ratio ~= 1"),
            note: Some("the layers each report's Metadata.Layers says it analysed, by size"),
        }
        .report();
    }

    // Claim overhead on a fully cold single scan: one of the eight images (two layers,
    // 513 MiB), on fs and on Redis; then the worst case, 201 one-file layers on fs.
    for (name, url) in &backends {
        let title = format!("claim overhead, cold scan of one of the images ({name})");
        let (with, without) = overhead(reps * 2, |lease| {
            let dir = tempfile::tempdir().unwrap();
            let args = match url {
                Some(url) => {
                    db += 1;
                    vec![
                        "--cache-backend".into(),
                        url.replace("/0", &format!("/{db}")),
                    ]
                }
                None => Vec::new(),
            };
            let started = Instant::now();
            check(
                &scan(&scancache, dir.path(), &args, &layout, 7, lease)
                    .wait_with_output()
                    .unwrap(),
            );
            started.elapsed().as_secs_f64() * 1e3
        });
        Figure {
            name: &title,
            unit: "ms",
            spread: Spread::of(with),
            baseline: Some((
                "the same with --lease-timeout 0 (no claims)",
                Spread::of(without),
            )),
            target: Some("ratio <= 1.05"),
            note: Some("one claim call per scan, released per stored batch; fresh cache each run"),
        }
        .report();
    }
    let many = work.path().join("many");
    let mut image = ImageBuilder::new(&["many:1"]).layer(
        &LayerBuilder::new().file("etc/os-release", DEBIAN_OS_RELEASE),
        Compression::None,
        "ADD base",
    );
    for i in 0..200 {
        image = image.layer(
            &LayerBuilder::new().file(&format!("opt/f{i}"), vec![i as u8; 1024]),
            Compression::None,
            "RUN touch",
        );
    }
    write_oci_dir(&[&image], &many).unwrap();
    let (with, without) = overhead(reps * 3, |lease| {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        check(
            &scan_path(&scancache, dir.path(), &[], &many, None, lease)
                .wait_with_output()
                .unwrap(),
        );
        started.elapsed().as_secs_f64() * 1e3
    });
    Figure {
        name: "claim overhead, cold scan of 201 one-file layers (fs, worst case)",
        unit: "ms",
        spread: Spread::of(with),
        baseline: Some((
            "the same with --lease-timeout 0 (no claims)",
            Spread::of(without),
        )),
        target: None,
        note: Some(
            "a lock file created per layer, against layers that take well under a millisecond \
             each to analyse: the most claims can cost relative to the work",
        ),
    }
    .report();
}

/// Runs `scan(lease)` with claims (`30s`) and without (`0`), alternating, `reps` times
/// each after one uncounted round; returns the wall times of both.
fn overhead(reps: usize, mut scan: impl FnMut(&str) -> f64) -> (Vec<f64>, Vec<f64>) {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for rep in 0..=reps {
        for (lease, into) in [("30s", &mut with), ("0", &mut without)] {
            let ms = scan(lease);
            if rep > 0 {
                into.push(ms);
            }
        }
    }
    (with, without)
}

/// The OCI layout of eight images `app:0`…`app:7`: one base of `base` bytes shared by
/// all (stored once), and an upper layer of `upper` bytes each.
fn write_images(dir: &Path, base: usize, upper: usize) {
    let file = 2 << 20;
    let mut layer = LayerBuilder::new()
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .file("var/lib/dpkg/status", stanza("base"));
    for i in 0..base / file {
        let bytes: Vec<u8> = (0..file).map(|j| (j as u8) ^ (i as u8)).collect();
        layer = layer.file(&format!("opt/base/f{i}"), bytes);
    }
    let base_layer = ImageBuilder::new(&[])
        .layer(&layer, Compression::None, "ADD base")
        .layers
        .remove(0);
    drop(layer);
    let images: Vec<ImageBuilder> = (0..8)
        .map(|i| {
            let mut image = ImageBuilder::new(&[&format!("app:{i}")]);
            image.layers.push(base_layer.clone());
            image.layer(
                &LayerBuilder::new()
                    .file(
                        "var/lib/dpkg/status",
                        format!("{}{}", stanza("base"), stanza(&format!("pkg-{i}"))),
                    )
                    .file("opt/app/bulk.bin", vec![i as u8; upper]),
                Compression::None,
                "RUN install",
            )
        })
        .collect();
    let refs: Vec<&ImageBuilder> = images.iter().collect();
    write_oci_dir(&refs, dir).unwrap();
}

fn stanza(name: &str) -> String {
    format!(
        "Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1-1\nDescription: {name}\n\n"
    )
}

fn scan(
    bin: &Path,
    cache_dir: &Path,
    backend: &[String],
    layout: &Path,
    i: usize,
    lease: &str,
) -> Child {
    scan_path(
        bin,
        cache_dir,
        backend,
        layout,
        Some(&format!("app:{i}")),
        lease,
    )
}

fn scan_path(
    bin: &Path,
    cache_dir: &Path,
    backend: &[String],
    input: &Path,
    image: Option<&str>,
    lease: &str,
) -> Child {
    let mut cmd = Command::new(bin);
    cmd.arg("--cache-dir")
        .arg(cache_dir)
        .args(backend)
        .args([
            "--lease-timeout",
            lease,
            "-q",
            "image",
            "--format",
            "json",
            "--input",
        ])
        .arg(input);
    if let Some(image) = image {
        cmd.args(["--image", image]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn check(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "scancache failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
