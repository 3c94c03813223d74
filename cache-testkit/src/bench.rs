//! The benchmark figure format, and small helpers for the benchmark programs that
//! `cargo xtask bench` runs: timing with warm-up and repetitions.
//!
//! A program builds a [`Figure`] and calls [`Figure::report`], which prints a line for
//! people and a `BENCH {json}` line holding a [`Record`]; the harness reads those lines
//! back with [`Record::parse_line`]. [`Record`] is the one definition of that format.

use std::{future::Future, path::PathBuf, time::Instant};

use serde::{Deserialize, Serialize};

/// The prefix of a figure's line in a benchmark program's output.
pub const LINE_PREFIX: &str = "BENCH ";

/// The spread of one measured quantity over several repetitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Fastest.
    pub min: f64,
    /// Slowest.
    pub max: f64,
}

impl Spread {
    /// Summarises samples (at least one).
    pub fn of(mut samples: Vec<f64>) -> Spread {
        assert!(!samples.is_empty(), "a spread needs at least one sample");
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Spread {
            median,
            min: samples[0],
            max: samples[n - 1],
        }
    }
}

/// Runs `op` once to warm up, then `reps` times, and returns microseconds per item, where
/// one run of `op` handles `items` items.
pub async fn time_async<F, Fut>(reps: usize, items: usize, mut op: F) -> Spread
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    op().await;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        op().await;
        samples.push(t.elapsed().as_secs_f64() * 1e6 / items.max(1) as f64);
    }
    Spread::of(samples)
}

/// [`time_async`] for synchronous work.
pub fn time_sync(reps: usize, items: usize, mut op: impl FnMut()) -> Spread {
    op();
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        op();
        samples.push(t.elapsed().as_secs_f64() * 1e6 / items.max(1) as f64);
    }
    Spread::of(samples)
}

/// One figure for the harness.
#[derive(Clone, Debug)]
pub struct Figure<'a> {
    /// What was measured.
    pub name: &'a str,
    /// Unit of the spread, e.g. `us/op`.
    pub unit: &'a str,
    /// The measurement.
    pub spread: Spread,
    /// The baseline's name and measurement from the same run.
    pub baseline: Option<(&'a str, Spread)>,
    /// The project's target for the ratio, e.g. `<= 1.5`.
    pub target: Option<&'a str>,
    /// How to read the figure.
    pub note: Option<&'a str>,
}

impl Figure<'_> {
    /// The figure as the harness records it.
    pub fn record(&self) -> Record {
        Record {
            group: String::new(),
            name: self.name.to_owned(),
            unit: self.unit.to_owned(),
            median: self.spread.median,
            min: self.spread.min,
            max: self.spread.max,
            baseline: self.baseline.map(|(n, _)| n.to_owned()),
            baseline_median: self.baseline.map(|(_, b)| b.median),
            ratio: self.baseline.map(|(_, b)| self.spread.median / b.median),
            target: self.target.map(str::to_owned),
            note: self.note.map(str::to_owned),
        }
    }

    /// Prints the figure for people and as a `BENCH {json}` line for `cargo xtask bench`.
    #[allow(clippy::print_stdout)] // Benchmark programs report on standard output.
    pub fn report(&self) {
        let record = self.record();
        let base = self.baseline.map_or(String::new(), |(name, b)| {
            format!(
                "  vs {name} {:.2} {} → ratio {:.2}",
                b.median,
                self.unit,
                record.ratio.unwrap_or_default()
            )
        });
        println!(
            "{:<40} {:>10.2} {} ({:.2}–{:.2}){base}",
            self.name, self.spread.median, self.unit, self.spread.min, self.spread.max
        );
        let json = serde_json::to_string(&record).expect("a record always serializes");
        println!("{LINE_PREFIX}{json}");
    }
}

/// One measured figure as the harness records it (and `--json FILE` writes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Which program reported it (filled in by the harness).
    #[serde(default)]
    pub group: String,
    /// What was measured, e.g. `get_blob 10KB`.
    pub name: String,
    /// Unit of `median`/`min`/`max`, e.g. `us/op`, `MB/s`, `ms`.
    pub unit: String,
    /// Median over the repetitions.
    pub median: f64,
    /// Fastest repetition.
    pub min: f64,
    /// Slowest repetition.
    pub max: f64,
    /// The baseline it is compared with, measured in the same run, if any.
    #[serde(default)]
    pub baseline: Option<String>,
    /// Median of the baseline in the same unit.
    #[serde(default)]
    pub baseline_median: Option<f64>,
    /// `median / baseline_median`. Whether lower or higher is better follows from the unit
    /// (time per operation: lower; throughput: higher) and is spelled out by `target`.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// The project's target for the ratio, e.g. `<= 1.5`.
    #[serde(default)]
    pub target: Option<String>,
    /// Anything the reader needs to interpret the figure.
    #[serde(default)]
    pub note: Option<String>,
}

impl Record {
    /// The record on a line of a benchmark program's output; `None` for any other line.
    pub fn parse_line(line: &str) -> Option<serde_json::Result<Record>> {
        line.strip_prefix(LINE_PREFIX).map(serde_json::from_str)
    }
}

/// The release `scancache` binary that `cargo xtask bench` builds, found beside the
/// directory of the running benchmark program (`target/release/examples/bench_x` →
/// `target/release/scancache`). Without it the program exits with one line saying how to
/// build it.
pub fn scancache_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let found = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|d| d.join("scancache"))
        .filter(|p| p.is_file());
    found.unwrap_or_else(|| {
        let program = exe
            .file_stem()
            .map_or_else(|| "benchmark".into(), |s| s.to_string_lossy());
        eprintln!(
            "{program}: the release scancache binary is missing next to {} (expected \
             target/release/scancache); build it with `cargo build --release -p cache-cli` \
             (cargo xtask bench does)",
            exe.display()
        );
        std::process::exit(1);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_samples() {
        assert_eq!(
            Spread::of(vec![3.0, 1.0, 2.0]),
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of(vec![4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn records_survive_the_line_format() {
        let spread = Spread::of(vec![2.0]);
        let figure = Figure {
            name: "put",
            unit: "us/op",
            spread,
            baseline: Some(("raw", Spread::of(vec![1.0]))),
            target: Some("<= 2"),
            note: None,
        };
        let record = figure.record();
        assert_eq!(record.ratio, Some(2.0));
        let line = format!("{LINE_PREFIX}{}", serde_json::to_string(&record).unwrap());
        assert_eq!(Record::parse_line(&line).unwrap().unwrap(), record);
        assert!(Record::parse_line("put 2.0 us/op").is_none());
    }
}
