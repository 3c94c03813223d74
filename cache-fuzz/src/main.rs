//! `cache-fuzz [TARGET…] [--seconds N] [--seed S]`: fuzzes each target (every one by
//! default) for N seconds (60 by default), saving every input that panics, runs longer
//! than `SLOW` or allocates more than `MEMORY_CAP` under `regressions/<target>/`, and
//! stopping the whole run, after saving it, on an input that hangs.

// The one unsafe block of the workspace: a counting global allocator that forwards to
// the system allocator, to measure what each input allocates.
#![allow(unsafe_code)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    fs,
    panic::{self, AssertUnwindSafe},
    path::Path,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use cache_fuzz::{Fuzzer, MEMORY_CAP, SLOW, TARGETS, Target, regressions_dir};

/// Counts allocated bytes and their peak, so an input that allocates out of proportion
/// is caught.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only counts are
// kept besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A run that takes this long is a hang: it is saved and the run stops.
const HANG: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut names, mut seconds, mut seed) = (Vec::new(), 60u64, 0x5ca7_cac4_e000_0001u64);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => match args.next().and_then(|s| s.parse().ok()) {
                Some(n) => seconds = n,
                None => return usage(),
            },
            "--seed" => match args.next().and_then(|s| s.parse().ok()) {
                Some(n) => seed = n,
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            name if cache_fuzz::target(name).is_some() => names.push(name.to_owned()),
            _ => return usage(),
        }
    }
    let targets: Vec<&Target> = if names.is_empty() {
        TARGETS.iter().collect()
    } else {
        names.iter().filter_map(|n| cache_fuzz::target(n)).collect()
    };
    // Panics are findings, reported by the loop; the default hook's message is noise.
    panic::set_hook(Box::new(|_| {}));
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cache-fuzz: cannot create a scratch directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut found = 0;
    for target in targets {
        found += fuzz(
            target,
            Duration::from_secs(seconds),
            seed,
            &scratch.path().join("input"),
        );
    }
    if found > 0 {
        eprintln!("cache-fuzz: {found} finding(s) saved; fix them and keep them as regressions");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    eprintln!(
        "usage: cache-fuzz [TARGET...] [--seconds N] [--seed S]\ntargets: {}",
        names.join(", ")
    );
    ExitCode::from(2)
}

/// Fuzzes one target for `budget`; returns the number of inputs saved.
fn fuzz(target: &Target, budget: Duration, seed: u64, scratch: &Path) -> usize {
    let mut fuzzer = Fuzzer::new(target, seed);
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let started_ms = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    spawn_watchdog(
        target.name,
        epoch,
        Arc::clone(&current),
        Arc::clone(&started_ms),
    );
    let (mut runs, mut found, mut slowest) = (0u64, 0usize, Duration::ZERO);
    let mut peak_seen = 0usize;
    while epoch.elapsed() < budget {
        let input = if (runs as usize) < fuzzer.seeds().len() {
            fuzzer.seeds()[runs as usize].clone()
        } else {
            fuzzer.next_input()
        };
        if let Ok(mut slot) = current.lock() {
            slot.clone_from(&input);
        }
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        started_ms.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
        let t = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input, scratch)));
        let took = t.elapsed();
        started_ms.store(0, Ordering::Relaxed);
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        peak_seen = peak_seen.max(peak);
        slowest = slowest.max(took);
        runs += 1;
        let finding = if outcome.is_err() {
            Some("panic")
        } else if took > SLOW {
            Some("slow")
        } else if peak as u64 > MEMORY_CAP {
            Some("memory")
        } else {
            None
        };
        if let Some(kind) = finding {
            found += 1;
            let path = save(target.name, &input);
            eprintln!(
                "cache-fuzz {}: {kind} ({took:?}, peak {} MiB, {} bytes) saved as {}",
                target.name,
                peak >> 20,
                input.len(),
                path
            );
        }
    }
    eprintln!(
        "cache-fuzz {}: {runs} runs in {:?} ({:.0}/s), {found} finding(s), slowest {slowest:?}, peak allocation {:.1} MiB",
        target.name,
        epoch.elapsed(),
        runs as f64 / epoch.elapsed().as_secs_f64(),
        peak_seen as f64 / f64::from(1 << 20)
    );
    found
}

/// Saves an input under the target's regressions directory, named by its digest.
fn save(target: &str, input: &[u8]) -> String {
    let dir = regressions_dir(target);
    let name = cache_fixtures::sha256_digest(input);
    let name = name
        .trim_start_matches("sha256:")
        .get(..16)
        .unwrap_or("input")
        .to_owned();
    let path = dir.join(name);
    if let Err(e) = fs::create_dir_all(&dir).and_then(|()| fs::write(&path, input)) {
        eprintln!("cache-fuzz: cannot save {}: {e}", path.display());
    }
    path.display().to_string()
}

/// Watches the running input: one that has run for [`HANG`] is saved and the process
/// ends, since a hung thread cannot be stopped.
fn spawn_watchdog(
    target: &'static str,
    epoch: Instant,
    current: Arc<Mutex<Vec<u8>>>,
    started_ms: Arc<AtomicU64>,
) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let started = started_ms.load(Ordering::Relaxed);
            if started == 0 {
                continue;
            }
            // Both clocks count from `epoch`; `started` is one more than its millisecond.
            let since = Duration::from_millis(
                (Instant::now().duration_since(epoch).as_millis() as u64).saturating_sub(started),
            );
            if since > HANG {
                let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                let path = save(target, &input);
                eprintln!("cache-fuzz {target}: hang (over {HANG:?}) saved as {path}");
                std::process::exit(3);
            }
        }
    });
}
