//! Small helpers for the benchmark programs run by `cargo xtask bench`: timing with
//! warm-up and repetitions, and reporting figures in the harness's `BENCH {json}` format.

use std::{future::Future, time::Instant};

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
    /// The target for the ratio, e.g. `<= 1.5`.
    pub target: Option<&'a str>,
    /// How to read the figure.
    pub note: Option<&'a str>,
}

impl Figure<'_> {
    /// Prints the figure for people and as a `BENCH {json}` line for `cargo xtask bench`.
    pub fn report(&self) {
        let ratio = self.baseline.map(|(_, b)| self.spread.median / b.median);
        let base = self.baseline.map_or(String::new(), |(name, b)| {
            format!(
                "  vs {name} {:.2} {} → ratio {:.2}",
                b.median,
                self.unit,
                ratio.unwrap_or_default()
            )
        });
        println!(
            "{:<40} {:>10.2} {} ({:.2}–{:.2}){base}",
            self.name, self.spread.median, self.unit, self.spread.min, self.spread.max
        );
        let json = serde_json::json!({
            "name": self.name,
            "unit": self.unit,
            "median": self.spread.median,
            "min": self.spread.min,
            "max": self.spread.max,
            "baseline": self.baseline.map(|(n, _)| n),
            "baseline_median": self.baseline.map(|(_, b)| b.median),
            "ratio": ratio,
            "target": self.target,
            "note": self.note,
        });
        println!("BENCH {json}");
    }
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
}
