//! Logging to stderr as `2024-06-21T21:58:21+04:00<TAB>INFO<TAB>message` (docs/cli.md).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    filter::LevelFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

/// Formats each event as one tab-separated line: local RFC 3339 time, level, message and
/// any fields.
struct TabFormat;

impl<S, N> FormatEvent<S, N> for TabFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        write!(writer, "{now}\t{}\t", level_name(*event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Installs the stderr logger: errors only with `quiet`, debug with `debug`, else info.
pub fn init(quiet: bool, debug: bool) {
    let level = if quiet {
        LevelFilter::ERROR
    } else if debug {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let layer = tracing_subscriber::fmt::layer()
        .event_format(TabFormat)
        .with_writer(std::io::stderr);
    // A second init (never happens in the binary) would be the only failure; ignore it.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(level))
        .try_init();
}

use tracing_subscriber::Layer as _;
