//! Benchmark of bounded cost on hostile and extreme images, each figure against a
//! baseline measured in the same run.
//!
//! ```text
//! cargo build --release -p cache-cli
//! cargo run --release -p cache-cli --example bench_extreme -- [--quick]
//!   (or cargo xtask bench [--quick] extreme)
//! ```
//!
//! - **The hostile image**: a single-layer docker-save archive whose
//!   `var/lib/dpkg/status` is 3,000,000 identical stanzas (150 MB; generated here, never
//!   committed). Cold `scancache image --format json` with a fresh fs cache: wall time vs
//!   the same image with half the stanzas (linear time means a ratio of 2), and peak RSS
//!   (`/usr/bin/time -f %M`, else VmHWM of an in-process scan) vs that of the sample
//!   Debian image. The report must list one package.
//! - **At the packages cap**: one layer of 100,000 distinct packages (the default cap):
//!   peak RSS, vs the sample image.
//! - **Many layers**: 1,000 layers of one 1 KiB file each vs the same files in one layer,
//!   cold: through the release binary on fs, and in-process on the memory, fs and Redis
//!   backends (a `redis-server` started here; skipped with a note without one), with the
//!   per-layer overhead (many − one) / 1,000.
//! - **Group commits**: 1,000 layer results stored on fs with one `put_blob` each (a
//!   commit per layer) vs `put_blobs` in batches of 256 (what a scan does).
//!
//! `--quick`: 600,000 stanzas, 200 layers, fewer repetitions.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use cache_core::{BlobId, BlobInfo, Cache, CacheOptions, Digest};
use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, debian_image, docker_save,
    extreme::{hostile_image, many_layers},
};
use cache_scan::ScanOptions;
use cache_testkit::bench::{Figure, Spread};
use tokio::runtime::Runtime;

/// The allocator the `scancache` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--rss-child") {
        rss_child(Path::new(&args[2]), Path::new(&args[3]));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (stanzas, layers, reps) = if quick {
        (600_000, 200, 3)
    } else {
        (3_000_000, 1000, 5)
    };
    let tools = Tools::find();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    println!(
        "hostile image of {stanzas} identical stanzas, {layers} one-file layers, {reps} \
         repetitions after a warm-up; RSS via {}",
        if tools.time.is_some() {
            "/usr/bin/time -f %M of scancache"
        } else {
            "VmHWM of an in-process fs scan"
        }
    );

    let sample = write(root.path(), "sample.tar", &docker_save(&[&debian_image()]));
    let (_, sample_rss) = cold_runs(&tools, &sample, reps);

    hostile(&tools, root.path(), stanzas, reps, sample_rss);
    at_the_package_cap(&tools, root.path(), reps, sample_rss);
    many(&tools, &rt, root.path(), layers, reps);
    group_commits(&rt, root.path(), layers, reps);
}

fn hostile(tools: &Tools, dir: &Path, stanzas: usize, reps: usize, sample_rss: Spread) {
    let full = write(dir, "hostile.tar", &docker_save(&[&hostile_image(stanzas)]));
    let half = write(
        dir,
        "half.tar",
        &docker_save(&[&hostile_image(stanzas / 2)]),
    );
    let (full_s, full_rss) = cold_runs(tools, &full, reps);
    let (half_s, _) = cold_runs(tools, &half, reps);
    let report = report_of(tools, &full, dir);
    let packages = report["Results"][0]["Packages"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(packages, 1, "the hostile image lists one package");
    let mb = std::fs::metadata(&full).unwrap().len() as f64 / 1e6;
    let name = format!("hostile image cold scan ({stanzas} identical stanzas, {mb:.0} MB)");
    let base = format!("the same with {} stanzas", stanzas / 2);
    Figure {
        name: &name,
        unit: "s",
        spread: full_s,
        baseline: Some((&base, half_s)),
        target: Some("ratio <= 2.3 (linear)"),
        note: Some(
            "wall time of release `scancache image --format json -o FILE` with a fresh fs \
             --cache-dir; the report lists 1 package",
        ),
    }
    .report();
    Figure {
        name: "peak RSS hostile image",
        unit: "MB",
        spread: full_rss,
        baseline: Some(("peak RSS of the sample Debian image", sample_rss)),
        target: Some("median <= 256 MB"),
        note: Some("the same runs as the figure above"),
    }
    .report();
    std::fs::remove_file(full).unwrap();
    std::fs::remove_file(half).unwrap();
}

fn at_the_package_cap(tools: &Tools, dir: &Path, reps: usize, sample_rss: Spread) {
    let n = usize::try_from(cache_scan::DEFAULT_MAX_PACKAGES_PER_LAYER).unwrap();
    let status: String = (0..n)
        .map(|i| format!("Package: p{i:06}\nStatus: install ok installed\nVersion: 1\n\n"))
        .collect();
    let image = ImageBuilder::new(&["extreme/cap:1"]).layer(
        &LayerBuilder::new().file("var/lib/dpkg/status", status),
        Compression::Gzip,
        "packages",
    );
    let archive = write(dir, "cap.tar", &docker_save(&[&image]));
    let (secs, rss) = cold_runs(tools, &archive, reps);
    let note = format!(
        "release `scancache image --format json -o FILE`, fresh fs --cache-dir; median \
         {:.1} s",
        secs.median
    );
    let name = format!("peak RSS at the packages cap ({n} distinct packages in one layer)");
    Figure {
        name: &name,
        unit: "MB",
        spread: rss,
        baseline: Some(("peak RSS of the sample Debian image", sample_rss)),
        target: Some("median <= 256 MB"),
        note: Some(&note),
    }
    .report();
    std::fs::remove_file(archive).unwrap();
}

fn many(tools: &Tools, rt: &Runtime, dir: &Path, layers: usize, reps: usize) {
    let (many, one) = many_layers(layers, 1024);
    let many_tar = write(dir, "many.tar", &docker_save(&[&many]));
    let one_tar = write(dir, "one.tar", &docker_save(&[&one]));
    let (many_s, _) = cold_runs(tools, &many_tar, reps);
    let (one_s, _) = cold_runs(tools, &one_tar, reps);
    let name = format!("cold scan {layers} one-file layers (scancache, fs)");
    Figure {
        name: &name,
        unit: "s",
        spread: many_s,
        baseline: Some(("the same files in one layer", one_s)),
        target: Some("ratio <= 3"),
        note: Some("wall time of release `scancache image` with a fresh fs --cache-dir"),
    }
    .report();

    let redis = cache_testkit::redis::require_redis()
        .then(|| cache_testkit::redis::RedisServer::start(Default::default()));
    for backend in ["memory", "fs", "redis"] {
        let Some(open) = opener(backend, redis.as_ref()) else {
            println!("per-layer overhead, redis: skipped (no redis-server)");
            continue;
        };
        let run = |archive: &Path| {
            let mut samples = Vec::new();
            for rep in 0..=reps {
                let scratch = tempfile::tempdir().unwrap();
                let cache = rt.block_on(open(scratch.path()));
                let started = Instant::now();
                rt.block_on(cache_scan::scan(archive, &*cache, &ScanOptions::default()))
                    .unwrap();
                if rep > 0 {
                    samples.push(started.elapsed().as_secs_f64() * 1e3);
                }
                rt.block_on(cache.close()).unwrap();
            }
            samples
        };
        let many_ms = run(&many_tar);
        let one_ms = run(&one_tar);
        let per_layer: Vec<f64> = many_ms
            .iter()
            .zip(&one_ms)
            .map(|(m, o)| (m - o) * 1e3 / layers as f64)
            .collect();
        let per_layer = Spread::of(per_layer);
        let name = format!("cold scan {layers} one-file layers, {backend} (in-process)");
        let base = format!("the same files in one layer, {backend}");
        let note = format!(
            "cache_scan::scan with a fresh cache each rep; per-layer overhead (many - \
             one) / {layers}: median {:.0} us (min {:.0}, max {:.0}){}",
            per_layer.median,
            per_layer.min,
            per_layer.max,
            if backend == "redis" {
                "; puts pipelined (put_blobs)"
            } else {
                ""
            }
        );
        Figure {
            name: &name,
            unit: "ms",
            spread: Spread::of(many_ms),
            baseline: Some((&base, Spread::of(one_ms))),
            target: (backend == "fs").then_some("ratio <= 3"),
            note: Some(&note),
        }
        .report();
    }
}

/// Opens a fresh, empty cache of `backend` (fs in the given directory).
type Open<'a> = Box<
    dyn Fn(&Path) -> std::pin::Pin<Box<dyn std::future::Future<Output = Box<dyn Cache>> + '_>> + 'a,
>;

fn opener<'a>(
    backend: &'static str,
    redis: Option<&'a cache_testkit::redis::RedisServer>,
) -> Option<Open<'a>> {
    Some(match backend {
        "memory" => Box::new(|_: &Path| {
            Box::pin(async {
                Box::new(cache_mem::MemCache::new(&CacheOptions::default())) as Box<dyn Cache>
            })
        }),
        "fs" => Box::new(|dir: &Path| {
            let cache = cache_fs::FsCache::open(dir, &CacheOptions::default()).unwrap();
            Box::pin(async move { Box::new(cache) as Box<dyn Cache> })
        }),
        _ => {
            let url = redis?.url(0);
            Box::new(move |_: &Path| {
                let url = url.clone();
                Box::pin(async move {
                    let c = cache_redis::RedisCache::connect(
                        cache_redis::RedisConfig::new(url),
                        &CacheOptions::default(),
                    )
                    .await
                    .unwrap();
                    c.clear().await.unwrap();
                    Box::new(c) as Box<dyn Cache>
                })
            })
        }
    })
}

fn group_commits(rt: &Runtime, dir: &Path, n: usize, reps: usize) {
    let blob = BlobInfo {
        schema_version: BlobInfo::SCHEMA_VERSION,
        diff_id: Digest::from_sha256([7; 32]).to_string(),
        ..BlobInfo::default()
    };
    let results: Vec<(BlobId, BlobInfo)> = (0..n)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            (BlobId::from(Digest::from_sha256(id)), blob.clone())
        })
        .collect();
    let time = |batched: bool| {
        let mut samples = Vec::new();
        for rep in 0..=reps {
            let scratch = tempfile::tempdir_in(dir).unwrap();
            let cache = cache_fs::FsCache::open(scratch.path(), &CacheOptions::default()).unwrap();
            let started = Instant::now();
            rt.block_on(async {
                if batched {
                    for chunk in results.chunks(256) {
                        cache.put_blobs(chunk).await.unwrap();
                    }
                } else {
                    for (id, blob) in &results {
                        cache.put_blob(id, blob).await.unwrap();
                    }
                }
            });
            if rep > 0 {
                samples.push(started.elapsed().as_secs_f64() * 1e3);
            }
            rt.block_on(cache.close()).unwrap();
        }
        Spread::of(samples)
    };
    let one_by_one = time(false);
    let batched = time(true);
    let name = format!("store {n} layer results, put_blobs in batches of 256 (fs)");
    let base = format!("{n} put_blob calls, a commit each");
    Figure {
        name: &name,
        unit: "ms",
        spread: batched,
        baseline: Some((&base, one_by_one)),
        target: None,
        note: Some("fresh FsCache each rep; every commit is synchronous (no NOSYNC)"),
    }
    .report();
}

/// External programs the benchmark runs.
struct Tools {
    scancache: PathBuf,
    time: Option<PathBuf>,
}

impl Tools {
    fn find() -> Tools {
        let scancache = cache_testkit::bench::scancache_binary();
        Tools {
            scancache,
            time: Some(PathBuf::from("/usr/bin/time")).filter(|p| p.is_file()),
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `reps` cold scans (after one warm-up) of `archive` through the release binary, each
/// with a fresh fs cache: wall seconds and peak RSS in MB.
fn cold_runs(tools: &Tools, archive: &Path, reps: usize) -> (Spread, Spread) {
    let (mut secs, mut rss) = (Vec::new(), Vec::new());
    for rep in 0..=reps {
        let cache = tempfile::tempdir().unwrap();
        let (s, kb) = run_scancache(tools, archive, cache.path());
        if rep > 0 {
            secs.push(s);
            rss.push(kb as f64 / 1024.0);
        }
    }
    (Spread::of(secs), Spread::of(rss))
}

/// One cold `scancache image --format json -o FILE`: wall seconds and peak RSS in KiB.
fn run_scancache(tools: &Tools, archive: &Path, cache_dir: &Path) -> (f64, u64) {
    let args = scancache_args(archive, cache_dir);
    let Some(time) = &tools.time else {
        let started = Instant::now();
        run_quiet(Command::new(&tools.scancache).args(&args));
        let secs = started.elapsed().as_secs_f64();
        return (secs, rss_child_kb(archive, cache_dir));
    };
    let out = cache_dir.join("maxrss");
    let started = Instant::now();
    run_quiet(
        Command::new(time)
            .args(["-f", "%M", "-o"])
            .arg(&out)
            .arg(&tools.scancache)
            .args(&args),
    );
    let secs = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&out).unwrap();
    let kb = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected /usr/bin/time output {text:?}"));
    (secs, kb)
}

fn scancache_args(archive: &Path, cache_dir: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "image".into(),
        "--input".into(),
        archive.into(),
        "--format".into(),
        "json".into(),
        "-o".into(),
        cache_dir.join("report.json").into(),
        "--cache-dir".into(),
        cache_dir.into(),
    ]
}

/// The JSON report of one more cold scan.
fn report_of(tools: &Tools, archive: &Path, dir: &Path) -> serde_json::Value {
    let cache = tempfile::tempdir_in(dir).unwrap();
    run_quiet(Command::new(&tools.scancache).args(scancache_args(archive, cache.path())));
    let text = std::fs::read(cache.path().join("report.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

/// Runs `cmd` with stdout discarded; panics with its stderr when it fails.
fn run_quiet(cmd: &mut Command) {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Peak RSS (KiB) of a child of this program scanning `archive` in-process with a fresh
/// fs cache: the fallback without `/usr/bin/time`.
fn rss_child_kb(archive: &Path, dir: &Path) -> u64 {
    let scratch = tempfile::tempdir_in(dir).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("--rss-child")
        .arg(archive)
        .arg(scratch.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "--rss-child failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `--rss-child ARCHIVE DIR`: scans with a fresh fs cache in DIR and prints VmHWM in KiB.
fn rss_child(archive: &Path, dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = cache_fs::FsCache::open(dir, &CacheOptions::default()).unwrap();
    rt.block_on(cache_scan::scan(archive, &cache, &ScanOptions::default()))
        .unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    println!("{kb}");
}
