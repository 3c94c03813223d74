//! `scancache`: scans container images through a shared, layer-aware scan cache, and
//! manages that cache.
//!
//! This binary is the only place that knows clap, environment variables, the log format
//! and every backend; the work is done by the library crates through `cache_core::Cache`.
//! Exit status: 0 success, 1 failure, 2 usage error. Failures are one line on stderr.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, error::ErrorKind};

mod backend;
mod cli;
mod commands;
mod log;
mod ndjson;

use cli::{Cli, Command};

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!("scancache: internal error{}: {msg}", at.unwrap_or_default());
    }));

    let cli = Cli::parse();
    if let Command::Clean(args) = &cli.command
        && !(args.all
            || args.scan_cache
            || args.vuln_db
            || args.java_db
            || args.checks_bundle
            || args.vex_repo)
    {
        Cli::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "no clean option is specified",
            )
            .exit();
    }
    log::init(cli.global.quiet, cli.global.debug);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    if let Command::Completion { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "scancache",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    let settings = backend::Settings::from_opts(g)?;
    if let Command::Clean(args) = &cli.command {
        return commands::clean::run(args, &settings, g).await;
    }
    let cache = backend::open(&settings, g).await?;
    let result = match &cli.command {
        Command::Image(args) => commands::image::run(args, cache.as_ref(), g.quiet).await,
        Command::Cache(cmd) => commands::cache::run(cmd, cache.as_ref()).await,
        Command::Completion { .. } | Command::Clean(_) => Ok(()),
    };
    let closed = cache.close().await;
    result?;
    Ok(closed?)
}

/// The error and its causes on one line: `what failed: why: deeper why`.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}
