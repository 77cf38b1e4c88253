//! Log output (`log.format`): human-readable text or one JSON object per line, to stderr, at
//! the level `RUST_LOG` sets (default `info`). Lines about a call or an activeflow carry its ids
//! through the spans `call::span` and `engine::span` open: in text as `call{call_id=..}:`, in
//! JSON under `"span"` (`{"span":{"activeflow_id":..,"call_id":..,"sip_call_id":..}}`), so one
//! `grep` on an id finds every line of that call. Installed once, by the binary, after the
//! config is read; nothing else in the library sets a subscriber.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is unset or unreadable.
const DEFAULT_FILTER: &str = "info";

/// Installs the process-wide subscriber writing `format` to stderr, and routes the `log`
/// records of dependencies through it. A second call (one is installed already) changes
/// nothing.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours for a person at a terminal only: a file, a pipe or journald gets plain text.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = subscriber(format, filter, colour, std::io::stderr).try_init();
}

/// The subscriber `init` installs, writing to `writer` (tests and benchmarks pass their own);
/// `colour`: ANSI colours in text lines.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    colour: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour && format == LogFormat::Text)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        // The event's fields at the top level beside `message`; the current span's fields
        // (the ids) under `span`. The list of every entered span adds nothing: call and
        // activeflow spans are roots, and each carries all three ids itself.
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests;
