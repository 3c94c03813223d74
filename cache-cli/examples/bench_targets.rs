//! Benchmark of the directory scans, each against a baseline measured in the same run:
//!
//! - `scancache fs` on a tree of 10,000 files holding 50 lockfiles (every kind the `fs`
//!   analysers read, `cache_fixtures::write_project` three times over plus two, 1,500
//!   entries each; the rest small source files in 100 directories) vs the reference
//!   scanner's `trivy fs` on the same tree (`--list-all-pkgs --scanners license`, no
//!   database), wall time of the process; target ≤ 0.5×;
//! - a warm `scancache fs` rescan of that tree with the persistent fs backend (the
//!   metadata walk and the stored report written, no file read; the warm-up is the cold
//!   scan that stores it) vs the cold scan into a fresh fs cache; target ≤ 0.2×;
//! - `scancache rootfs` of a ~600 MB unpacked root file system (~60 MB with `--quick`:
//!   a dpkg status and os-release, ELF executables with Go build information for about
//!   40 % of the bytes, `package.json` and `METADATA` files, text) vs `scancache image`
//!   of the same content as a docker-save archive with one uncompressed layer, both on
//!   the memory backend; target ≤ 1×.
//!
//! ```text
//! cargo build --release -p cache-cli
//! cargo run --release -p cache-cli --example bench_targets -- [--quick]
//!   (or cargo xtask bench [--quick] targets)
//! ```
//!
//! Everything generated stays in the page cache, so neither side reads the disk.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::{
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use cache_fixtures::{binaries, data, project_files, write_project};
use cache_testkit::{
    bench::{Figure, Spread},
    trivy::{command, require_trivy},
};
use sha2::{Digest as _, Sha256};

/// The allocator the `scancache` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (reps, rootfs_mb) = if quick { (3, 60) } else { (7, 600) };
    let scancache = cache_testkit::bench::scancache_binary();
    let dir = tempfile::tempdir().unwrap();

    let tree = dir.path().join("tree");
    let (files, lockfiles) = project_tree(&tree, 10_000);
    eprintln!("bench_targets: tree of {files} files, {lockfiles} lockfiles");
    let ours = time_ms(reps, || {
        run(Command::new(&scancache)
            .args(["-q", "fs"])
            .arg(&tree)
            .args(["-f", "json", "-o", "/dev/null"]));
    });
    match require_trivy() {
        Some(trivy) => {
            let cache = dir.path().join("trivy-cache");
            let theirs = time_ms(reps, || {
                run(command(&trivy, &cache).arg("fs").arg(&tree).args([
                    "--format",
                    "json",
                    "--list-all-pkgs",
                    "--scanners",
                    "license",
                    "--quiet",
                    "-o",
                    "/dev/null",
                ]));
            });
            Figure {
                name: "fs, 10,000 files, 50 lockfiles",
                unit: "ms",
                spread: ours,
                baseline: Some(("trivy fs of the same tree", theirs)),
                target: Some("<= 0.5"),
                note: Some("process wall time; memory backend (the default)"),
            }
            .report();
        }
        None => eprintln!("bench_targets: no trivy, the fs figure is skipped"),
    }

    let caches = dir.path().join("caches");
    let mut n = 0;
    let cold = time_ms(reps, || {
        n += 1;
        run(Command::new(&scancache)
            .args(["-q", "--cache-backend", "fs", "--cache-dir"])
            .arg(caches.join(n.to_string()))
            .arg("fs")
            .arg(&tree)
            .args(["-f", "json", "-o", "/dev/null"]));
    });
    let warm_dir = caches.join("warm");
    let warm = time_ms(reps, || {
        run(Command::new(&scancache)
            .args(["-q", "--cache-backend", "fs", "--cache-dir"])
            .arg(&warm_dir)
            .arg("fs")
            .arg(&tree)
            .args(["-f", "json", "-o", "/dev/null"]));
    });
    Figure {
        name: "fs warm rescan, fs backend",
        unit: "ms",
        spread: warm,
        baseline: Some(("cold fs scan into a fresh fs cache", cold)),
        target: Some("<= 0.2"),
        note: Some("the warm scan walks metadata, reads no file and writes the stored report"),
    }
    .report();

    let root = dir.path().join("rootfs");
    let bytes = root_fs(&root, rootfs_mb << 20);
    let archive = image_of(&root, dir.path());
    eprintln!(
        "bench_targets: rootfs of {} MB, archive of {} MB",
        bytes >> 20,
        fs::metadata(&archive).unwrap().len() >> 20
    );
    let rootfs = time_ms(reps, || {
        run(Command::new(&scancache)
            .args(["-q", "rootfs"])
            .arg(&root)
            .args(["-f", "json", "-o", "/dev/null"]));
    });
    let image = time_ms(reps, || {
        run(Command::new(&scancache)
            .args(["-q", "--cache-backend", "memory", "image", "-i"])
            .arg(&archive)
            .args(["-f", "json", "-o", "/dev/null"]));
    });
    Figure {
        name: &format!("rootfs, {} MB unpacked", bytes >> 20),
        unit: "ms",
        spread: rootfs,
        baseline: Some(("image of the same content, one uncompressed layer", image)),
        target: Some("<= 1"),
        note: Some("memory backend on both sides; the walk reads only the files analysers take"),
    }
    .report();
}

/// Median, min and max wall time in ms of `reps` runs of `op` after one warm-up.
fn time_ms(reps: usize, mut op: impl FnMut()) -> Spread {
    op();
    let samples = (0..reps)
        .map(|_| {
            let t = Instant::now();
            op();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    Spread::of(samples)
}

fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the tree of `files` files with 50 lockfiles; returns both counts.
fn project_tree(root: &Path, files: usize) -> (usize, usize) {
    for k in 0..3 {
        write_project(&root.join(format!("svc-{k}")), 1_500).unwrap();
    }
    for (path, text) in project_files(1_500) {
        if path == "rust/Cargo.lock" || path == "go/go.mod" {
            let p = root.join("extra").join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
    }
    // 16 per project (pom.xml included), the `.git` and `node_modules` copies not read.
    let lockfiles = 3 * 16 + 2;
    let mut count = 3 * 18 + 2;
    let mut i = 0;
    while count < files {
        let p = root.join(format!("src/mod-{}/file-{i}.rs", i % 100));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(
            p,
            format!("// file {i}\npub fn f{i}() -> u64 {{ {i} }}\n").repeat(8),
        )
        .unwrap();
        count += 1;
        i += 1;
    }
    (count, lockfiles)
}

/// Writes an unpacked root file system of about `size` bytes; returns its size.
fn root_fs(root: &Path, size: u64) -> u64 {
    let put = |p: &str, bytes: &[u8], mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        bytes.len() as u64
    };
    let mut total = put("etc/os-release", data::DEBIAN_OS_RELEASE.as_bytes(), 0o644);
    total += put("var/lib/dpkg/status", data::DEBIAN_STATUS.as_bytes(), 0o644);
    let mut i = 0u64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    while total < size {
        i += 1;
        total += match i % 10 {
            // Executables: Go binaries with build information, padded to 1 MiB.
            0..=3 => {
                let mut elf = binaries::go_binary(
                    "go1.22.5",
                    &format!(
                        "path\texample.com/cmd{i}\nmod\texample.com/cmd{i}\tv1.0.{i}\t\ndep\tgithub.com/a/b\tv1.2.3\t\n"
                    ),
                );
                elf.extend(noise((1 << 20) - elf.len().min(1 << 20)));
                put(&format!("usr/local/bin/tool-{i}"), &elf, 0o755)
            }
            4 if i % 25 == 4 => put(
                &format!("usr/lib/node_modules/pkg-{i}/package.json"),
                format!("{{\"name\":\"pkg-{i}\",\"version\":\"1.0.{i}\",\"license\":\"MIT\"}}")
                    .as_bytes(),
                0o644,
            ),
            5 if i % 25 == 5 => put(
                &format!("usr/lib/python3/dist-packages/py_{i}-1.0.dist-info/METADATA"),
                format!("Metadata-Version: 2.1\nName: py-{i}\nVersion: 1.0.{i}\nLicense: MIT\n")
                    .as_bytes(),
                0o644,
            ),
            _ => put(
                &format!("usr/share/data/d{}/f-{i}.bin", i % 50),
                &noise(256 << 10),
                0o644,
            ),
        };
    }
    total
}

/// A docker-save archive of `root` as one uncompressed layer, written under `work`.
fn image_of(root: &Path, work: &Path) -> PathBuf {
    let image = work.join("image");
    fs::create_dir_all(&image).unwrap();
    let layer = image.join("layer.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&layer)
        .arg("-C")
        .arg(root)
        .arg("."));
    let mut h = Sha256::new();
    let mut f = fs::File::open(&layer).unwrap();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let diff_id = format!("sha256:{}", hex::encode(h.finalize()));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "ADD rootfs /"}],
    })
    .to_string();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(config.as_bytes())));
    fs::write(image.join(&config_name), &config).unwrap();
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["bench/rootfs:1"], "Layers": ["layer.tar"]}]);
    fs::File::create(image.join("manifest.json"))
        .unwrap()
        .write_all(manifest.to_string().as_bytes())
        .unwrap();
    let archive = work.join("image.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&image)
        .args(["manifest.json", &config_name, "layer.tar"]));
    fs::remove_dir_all(&image).unwrap();
    archive
}
