//! Development tasks, run as `cargo xtask <task>`.
//!
//! - `itest`: everything CI checks, in order, stopping at the first failure: formatting,
//!   clippy with warnings denied (which also compiles the benchmark programs, so they
//!   cannot rot), the API docs with rustdoc warnings denied (broken links, private items,
//!   bad HTML), and every test of the workspace.
//! - `bench [--quick] [--json FILE] [NAME…]`: the benchmarks, each figure with its ratio to
//!   a baseline measured in the same run.
//! - `fuzz [TARGET…] [--seconds N] [--seed S]`: the fuzzing harness (`cache-fuzz`, in
//!   release mode); not part of `itest`, which replays the saved regression inputs.
//! - `gen-samples`: rewrites the sample archives in `samples/` (deterministic: the same
//!   bytes every time; a cache-scan test checks the committed ones match).

mod bench;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  itest    run every check CI runs: cargo fmt --check, cargo clippy (warnings denied),
           cargo doc (rustdoc warnings denied), cargo test --workspace; stops at the
           first failure
  bench [--quick] [--json FILE] [NAME...]
           build in release mode and run the benchmarks (memory, fs, redis, scan), each
           figure with its ratio to a baseline measured in the same run
  fuzz [TARGET...] [--seconds N] [--seed S]
           fuzz the readers and parsers (tar, compression, layer, archive, dpkg, apk,
           os-release; all by default) for N seconds each (60), saving every input that
           panics, hangs or blows a cap under cache-fuzz/regressions/
  gen-samples
           rewrite the sample image archives in samples/";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("itest") if args.len() == 1 => itest(),
        Some("bench") => bench::parse(&args[1..]).and_then(|o| bench::run(&o)),
        Some("gen-samples") if args.len() == 1 => gen_samples(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the fuzzing harness in release mode with `args`.
fn fuzz(args: &[String]) -> Result<()> {
    let status = cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "cache-fuzz",
            "--",
        ])
        .args(args)
        .status()
        .context("cannot run cargo for the fuzzing harness")?;
    if !status.success() {
        bail!("cache-fuzz failed ({status})");
    }
    Ok(())
}

/// Writes the sample archives with the generator of cache-fixtures.
fn gen_samples() -> Result<()> {
    let dir = root().join("samples");
    let written = cache_fixtures::write_samples(&dir)
        .with_context(|| format!("cannot write the samples in {}", dir.display()))?;
    for path in written {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        eprintln!("wrote {} ({size} bytes)", path.display());
    }
    Ok(())
}

/// The workspace root (the parent of this crate's directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    // Never pass our standard input on: when it is closed (CI runs without one), the
    // first file a child opens becomes its fd 0, and cargo's `rustc -` probe then reads
    // that file as source code.
    cmd.stdin(Stdio::null());
    cmd
}

/// One named step of `itest`: cargo's arguments and the environment it runs with.
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const STEPS: &[Step] = &[
    Step {
        name: "format",
        args: &["fmt", "--all", "--check"],
        env: &[],
    },
    Step {
        name: "clippy",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        name: "docs",
        args: &[
            "doc",
            "--workspace",
            "--no-deps",
            "--document-private-items",
        ],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
    Step {
        name: "tests",
        args: &["test", "--workspace", "--all-features"],
        env: &[],
    },
];

fn itest() -> Result<()> {
    let started = Instant::now();
    let mut done = Vec::new();
    for step in STEPS {
        let t = Instant::now();
        eprintln!("==> xtask itest: {} ({})", step.name, command_line(step));
        let status = cargo()
            .args(step.args)
            .envs(step.env.iter().copied())
            .status()
            .with_context(|| format!("cannot run cargo for step {}", step.name))?;
        if !status.success() {
            summary(&done);
            bail!(
                "step {:?} failed ({status}): {}",
                step.name,
                command_line(step)
            );
        }
        done.push((step.name, t.elapsed().as_secs_f64()));
    }
    summary(&done);
    eprintln!(
        "xtask itest: all {} steps passed in {:.0}s",
        done.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The step as a shell command line, its environment first
/// (`RUSTDOCFLAGS='-D warnings' cargo doc …`).
fn command_line(step: &Step) -> String {
    let env: String = step
        .env
        .iter()
        .map(|(k, v)| format!("{k}='{v}' "))
        .collect();
    format!("{env}cargo {}", step.args.join(" "))
}

fn summary(done: &[(&str, f64)]) {
    for (name, secs) in done {
        eprintln!("    passed: {name} ({secs:.0}s)");
    }
}
