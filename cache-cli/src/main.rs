//! `scancache`: scans container images through a shared, layer-aware scan cache, and
//! manages that cache.
//!
//! This binary is the only place that knows clap, environment variables, the log format
//! and every backend; the work is done by the library crates through `cache_core::Cache`.
//! Exit status: 0 success, 1 failure, 2 usage error. Failures are one line on stderr.

use std::process::ExitCode;

use cache_scan::TreeKind;
use clap::{CommandFactory, Parser, error::ErrorKind};

mod backend;
mod cli;
mod commands;
mod log;
mod ndjson;
mod output;
mod server_report;

use cli::{CacheCommand, Cli, Command};

/// mimalloc rather than the system allocator: decoding a cached layer allocates hundreds
/// of small strings, and glibc's malloc made that a third slower (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option: its index in mimalloc 3's `mi_option_t`, which the
/// bindings do not name — read from the header vendored by libmimalloc-sys 0.1.49
/// (`c_src/mimalloc/v3/include/mimalloc.h`); check it again when that crate is upgraded.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return freed pages to the OS at once instead of 10 ms later. A scan
/// frees and reallocates layer buffers faster than that, and the delayed pages doubled a
/// cold 1 GB scan's peak RSS (about 25 MB live, 60–70 MB resident) for no measurable
/// speed (BENCHMARKS.md). `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores an integer in mimalloc's option table; the
        // option exists (index checked against the vendored header) and 0 is valid.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
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
        && !args.any()
    {
        Cli::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "no clean option is specified",
            )
            .exit();
    }
    // A bad option value is a usage error (exit 2). The message masks any password,
    // which is why the backend is not parsed by clap, which would echo the raw value.
    let settings = match backend::Settings::from_opts(&cli.global, cli.command.default_backend()) {
        Ok(s) => s,
        Err(e) => Cli::command()
            .error(ErrorKind::ValueValidation, format!("{e:#}"))
            .exit(),
    };
    if let Some(url) = cli.command.remote().and_then(|r| r.server.as_deref())
        && let Err(e) = backend::remote_config(url, &cli.global).validate()
    {
        let reason = e
            .config_parts()
            .map_or_else(|| e.to_string(), |(_, r)| r.to_owned());
        Cli::command()
            .error(
                ErrorKind::ValueValidation,
                format!("invalid --server: {reason}"),
            )
            .exit()
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
    // The panic hook has already printed the one line; a panic is a failure (1), not 101.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(run(cli, settings))
    }));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!("{}", one_line(&e));
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::FAILURE,
    }
}

async fn run(cli: Cli, settings: backend::Settings) -> anyhow::Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "scancache", &mut std::io::stdout());
            return Ok(());
        }
        Command::Clean(args) => return commands::clean::run(args, &settings, g).await,
        Command::Image(args) if args.remote.server.is_some() => {
            return commands::image::run_on_server(args, g).await;
        }
        Command::Fs(args) if args.remote.server.is_some() => {
            return commands::tree::run_on_server(args, TreeKind::Fs, &settings, g).await;
        }
        Command::Rootfs(args) if args.remote.server.is_some() => {
            return commands::tree::run_on_server(args, TreeKind::Rootfs, &settings, g).await;
        }
        Command::Sbom(args) if args.remote.server.is_some() => {
            return commands::sbom::run_on_server(args, g).await;
        }
        Command::Image(args) if !g.cache_required => {
            // A scan goes on without its cache when the cache is down (docs/cli.md).
            return commands::image::run_best_effort(args, &settings, g).await;
        }
        // Checks the whole file before it opens the backend (or, for a dry run, never).
        Command::Cache(CacheCommand::Import {
            from_trivy: Some(path),
            dry_run,
            strict,
            ..
        }) => {
            let opts = commands::import_trivy::Options {
                dry_run: *dry_run,
                strict: *strict,
                quiet: g.quiet,
            };
            return commands::import_trivy::run(path, opts, &settings, g).await;
        }
        Command::Image(_)
        | Command::Cache(_)
        | Command::Server(_)
        | Command::Fs(_)
        | Command::Rootfs(_)
        | Command::Sbom(_) => {}
    }
    let cache = backend::open(&settings, g).await?;
    let result = match &cli.command {
        Command::Image(args) => {
            commands::image::run(args, cache.as_ref(), g.quiet, g.lease_timeout).await
        }
        Command::Cache(cmd) => commands::cache::run(cmd, cache.as_ref()).await,
        Command::Server(args) => commands::server::run(args, cache.clone(), g).await,
        Command::Fs(args) => commands::tree::run(args, TreeKind::Fs, cache.as_ref()).await,
        Command::Rootfs(args) => commands::tree::run(args, TreeKind::Rootfs, cache.as_ref()).await,
        Command::Sbom(args) => commands::sbom::run(args, cache.as_ref()).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Library errors that quote their cause do not also return it as their source, so
    /// the chain names it once.
    #[test]
    fn causes_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(cache_core::Error::io("cannot read", "/x/ca.pem", io))
            .context("cannot open the cache");
        assert_eq!(
            one_line(&e),
            "cannot open the cache: cannot read /x/ca.pem: no such file"
        );
        let e = anyhow::anyhow!("deeper\nwhy")
            .context("why")
            .context("what failed");
        assert_eq!(one_line(&e), "what failed: why: deeper why");
    }
}
