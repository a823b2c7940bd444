//! The log subscriber: human lines or JSON on stderr, progress bars only on a terminal.

use std::io::IsTerminal;

use mkplan_engine::sinks::PROGRESS_TARGET;
use tracing_indicatif::style::ProgressStyle;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::globals::{Globals, LogFormat};

impl Globals {
    /// Installs the log subscriber: progress bars only for people on a terminal.
    pub fn init_logging(&self) {
        let level = if self.quiet {
            LevelFilter::WARN
        } else if self.verbose {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        };
        let registry = tracing_subscriber::registry();
        let _ = match self.log_format {
            LogFormat::Json => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        // A closed stderr drops log lines; the default would panic.
                        .log_internal_errors(false)
                        .json()
                        .with_current_span(false)
                        .with_span_list(false)
                        .with_writer(std::io::stderr)
                        .with_filter(level),
                )
                .try_init(),
            LogFormat::Human if std::io::stderr().is_terminal() => {
                // The step's own words, `n of N`, rate and ETA, not the span's `step{name=…}`.
                let style = ProgressStyle::with_template(
                    "{spinner} {wide_msg} {pos}/{len} {per_sec} ETA {eta} [{elapsed}]",
                )
                .expect("the template is valid");
                let bars = tracing_indicatif::IndicatifLayer::new().with_progress_style(style);
                // The bar shows what the progress log lines say.
                let not_progress = filter_fn(|meta| meta.target() != PROGRESS_TARGET);
                registry
                    .with(
                        tracing_subscriber::fmt::layer()
                            // A closed stderr drops log lines; the default would panic.
                            .log_internal_errors(false)
                            .fmt_fields(message_only())
                            .with_target(false)
                            .with_writer(bars.get_stderr_writer())
                            .with_filter(level.and(not_progress)),
                    )
                    .with(bars.with_filter(level))
                    .try_init()
            }
            LogFormat::Human => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        // A closed stderr drops log lines; the default would panic.
                        .log_internal_errors(false)
                        .fmt_fields(message_only())
                        .with_target(false)
                        .with_ansi(false)
                        .with_writer(std::io::stderr)
                        .with_filter(level),
                )
                .try_init(),
        };
    }
}

/// People read the message; the structured fields (seq, kind, step…) are for the JSON format.
fn message_only() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() == "message" {
            write!(writer, "{value:?}")
        } else {
            Ok(())
        }
    })
}
