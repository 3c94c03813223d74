//! Replays every seed and every saved regression input of every fuzz target: each must
//! return, without a panic, in reasonable time. Saved inputs are the ones that once
//! crashed, hung or blew a cap (`cargo xtask fuzz` saves them).

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use cache_fuzz::{Fuzzer, TARGETS, regressions_dir};

/// Generous for an unoptimised build on a busy machine; the fuzzer's own bound is
/// `cache_fuzz::SLOW` in release mode.
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn every_seed_and_saved_input_returns_promptly() {
    let scratch = tempfile::tempdir().unwrap();
    let mut replayed = 0;
    for target in &TARGETS {
        let mut inputs: Vec<(String, Vec<u8>)> = Fuzzer::new(target, 1)
            .seeds()
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("seed {i}"), s.clone()))
            .collect();
        if let Ok(dir) = std::fs::read_dir(regressions_dir(target.name)) {
            for entry in dir {
                let path = entry.unwrap().path();
                inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
        for (name, input) in inputs {
            let started = Instant::now();
            (target.run)(&input, &scratch.path().join("input"));
            let took = started.elapsed();
            assert!(took < LIMIT, "{} {name} took {took:?}", target.name);
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len());
}

#[test]
fn mutations_are_reproducible_from_the_seed() {
    let target = cache_fuzz::target("dpkg").unwrap();
    let (mut a, mut b) = (Fuzzer::new(target, 7), Fuzzer::new(target, 7));
    for _ in 0..50 {
        assert_eq!(a.next_input(), b.next_input());
    }
}
