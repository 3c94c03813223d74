//! `cargo xtask bench`: builds the benchmark programs in release mode, runs them, and
//! prints every figure with the ratio to the baseline measured in the same run.
//!
//! Each benchmark program (an example of the crate it measures) prints human-readable
//! progress, plus one line per figure of the form `BENCH {json}` holding a
//! `cache_testkit::bench::Record` (the one definition of that format). This harness collects those lines, prints one table, and with
//! `--json FILE` writes them all as a JSON array.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use cache_testkit::bench::Record;

use crate::{cargo, root};

/// One benchmark program: its name on the command line, the package and example that
/// hold it.
struct Program {
    name: &'static str,
    package: &'static str,
    example: &'static str,
    /// Cargo features the program needs.
    features: &'static str,
}

const PROGRAMS: &[Program] = &[
    Program {
        name: "memory",
        package: "cache-mem",
        example: "bench_mem",
        features: "",
    },
    Program {
        name: "fs",
        package: "cache-fs",
        example: "bench_fs",
        features: "",
    },
    Program {
        name: "redis",
        package: "cache-redis",
        example: "bench_redis",
        features: "",
    },
    Program {
        name: "server",
        package: "cache-server",
        example: "bench_server",
        features: "",
    },
    Program {
        name: "scan",
        package: "cache-scan",
        example: "bench_scan",
        features: "",
    },
    Program {
        name: "import",
        package: "cache-cli",
        example: "bench_import",
        features: "",
    },
    Program {
        name: "extreme",
        package: "cache-cli",
        example: "bench_extreme",
        features: "",
    },
    Program {
        name: "flight",
        package: "cache-cli",
        example: "bench_flight",
        features: "",
    },
    Program {
        name: "targets",
        package: "cache-cli",
        example: "bench_targets",
        features: "",
    },
    Program {
        name: "remote",
        package: "cache-cli",
        example: "bench_remote",
        features: "",
    },
];

/// Options of `cargo xtask bench`.
pub struct Options {
    /// Short runs, for development.
    pub quick: bool,
    /// Programs to run; all when empty.
    pub names: Vec<String>,
    /// Where to write the figures as JSON.
    pub json: Option<PathBuf>,
}

/// Parses `bench` arguments.
pub fn parse(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        quick: false,
        names: Vec::new(),
        json: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--json" => {
                let file = it.next().context("--json needs a file name")?;
                opts.json = Some(PathBuf::from(file));
            }
            name if PROGRAMS.iter().any(|p| p.name == name) => opts.names.push(name.to_owned()),
            other => bail!(
                "unknown benchmark or option {other:?}; benchmarks: {}",
                PROGRAMS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(opts)
}

/// Runs the selected benchmarks.
pub fn run(opts: &Options) -> Result<()> {
    let selected: Vec<&Program> = PROGRAMS
        .iter()
        .filter(|p| opts.names.is_empty() || opts.names.iter().any(|n| n == p.name))
        .collect();
    let started = Instant::now();
    let mut build = cargo();
    // The scan benchmark also times the scancache binary itself. Naming targets
    // (`--example`) selects only those, so the binary is named too.
    build.args([
        "build",
        "--release",
        "-p",
        "cache-cli",
        "--bin",
        "scancache",
    ]);
    for p in &selected {
        build.args(["-p", p.package, "--example", p.example]);
        if !p.features.is_empty() {
            build.args(["--features", p.features]);
        }
    }
    eprintln!("==> xtask bench: building in release mode");
    let status = build.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("building the benchmarks failed ({status})");
    }

    let mut figures = Vec::new();
    for p in &selected {
        eprintln!("==> xtask bench: {}", p.name);
        let exe = root().join("target/release/examples").join(p.example);
        let mut cmd = Command::new(&exe);
        cmd.stdin(Stdio::null());
        if opts.quick {
            cmd.arg("--quick");
        }
        let mut child = cmd
            .current_dir(root())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", exe.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            match Record::parse_line(&line) {
                Some(record) => {
                    let mut f =
                        record.with_context(|| format!("bad figure from {}: {line}", p.name))?;
                    f.group = p.name.to_owned();
                    figures.push(f);
                }
                None => println!("    {line}"),
            }
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("benchmark {} failed ({status})", p.name);
        }
    }

    print_table(&figures);
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    eprintln!(
        "xtask bench: {} figures in {:.0}s{}",
        figures.len(),
        started.elapsed().as_secs_f64(),
        if opts.quick { " (--quick)" } else { "" }
    );
    Ok(())
}

/// Prints the figures as a Markdown table (readable in a terminal, pasteable into
/// BENCHMARKS.md).
fn print_table(figures: &[Record]) {
    println!();
    println!("| group | figure | median (min–max) | baseline (same run) | ratio | target |");
    println!("|---|---|---|---|---|---|");
    for f in figures {
        let baseline = match (&f.baseline, f.baseline_median) {
            (Some(name), Some(m)) => format!("{name}: {} {}", num(m), f.unit),
            (Some(name), None) => name.clone(),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} {} ({}–{}) | {} | {} | {} |",
            f.group,
            f.name,
            num(f.median),
            f.unit,
            num(f.min),
            num(f.max),
            baseline,
            f.ratio.map_or("–".into(), |r| format!("{r:.2}×")),
            f.target.as_deref().unwrap_or("–"),
        );
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
