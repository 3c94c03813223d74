//! What the tests share: the binary, servers with a backend behind them, runs of the
//! binary with their output.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use cache_testkit::{http::ScancacheServer, redis::RedisServer};
use tempfile::TempDir;

/// The `scancache` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_scancache");

/// The token every test server requires.
pub const TOKEN: &str = "t0ken-never-shown";

/// The admin token every test server requires for admin RPCs.
pub const ADMIN: &str = "adm1n-never-shown";

/// A committed sample archive.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name)
}

/// The backend behind a test server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behind {
    /// A cache directory of its own.
    Fs,
    /// The server's memory.
    Memory,
    /// A database of a test `redis-server`.
    Redis,
}

/// The global options that select `behind` (`dir` for fs, `redis` and `db` for Redis).
pub fn backend_args(
    behind: Behind,
    dir: &Path,
    redis: Option<&RedisServer>,
    db: u32,
) -> Vec<String> {
    match behind {
        Behind::Fs => vec!["--cache-dir".into(), dir.display().to_string()],
        Behind::Memory => vec!["--cache-backend".into(), "memory".into()],
        Behind::Redis => {
            let redis = redis.expect("a Redis server for a Redis backend");
            vec!["--cache-backend".into(), redis.url(db)]
        }
    }
}

/// Starts `scancache GLOBAL… server` with the test tokens.
pub fn start_server(global: &[String]) -> ScancacheServer {
    let mut args: Vec<&str> = global.iter().map(String::as_str).collect();
    args.extend(["--token", TOKEN, "--admin-token", ADMIN]);
    ScancacheServer::start(BIN, &args, &[], &[])
}

/// A finished run of the binary.
pub struct Run {
    pub args: Vec<String>,
    pub out: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// What to show when an assertion about the run fails.
    pub fn explain(&self) -> String {
        format!(
            "scancache {}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.out.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts exit status 0.
    pub fn ok(self) -> Run {
        assert_eq!(self.code(), Some(0), "{}", self.explain());
        self
    }

    /// Asserts exit status `code` and exactly one error line, which contains `what`.
    pub fn fails_with(self, code: i32, what: &str) -> Run {
        assert_eq!(self.code(), Some(code), "{}", self.explain());
        let stderr = self.stderr();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("\tERROR\t")).collect();
        assert_eq!(errors.len(), 1, "one error line: {}", self.explain());
        assert!(
            errors[0].contains(what),
            "{what:?} not in: {}",
            self.explain()
        );
        self
    }

    /// Asserts that no token appears anywhere in the output.
    pub fn shows_no_secret(self) -> Run {
        for secret in [TOKEN, ADMIN] {
            assert!(
                !self.stdout().contains(secret) && !self.stderr().contains(secret),
                "a secret was shown: {}",
                self.explain()
            );
        }
        self
    }
}

/// Runs the binary with `args` (and no `SCANCACHE_*` variables from the environment).
pub fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// Runs the binary with `args` and `envs`.
pub fn run_env(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("SCANCACHE_") && !k.starts_with("SCANCACHE_SKIP") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        out: cmd.output().expect("cannot run scancache"),
    }
}

/// One counter of a server's `/metrics` (0 when absent).
pub fn metric(server: &cache_testkit::http::ScancacheServer, name: &str) -> f64 {
    let text = cache_testkit::http::get(server.port(), "/metrics")
        .unwrap()
        .text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A fresh temp dir.
pub fn tempdir() -> TempDir {
    tempfile::tempdir().unwrap()
}
