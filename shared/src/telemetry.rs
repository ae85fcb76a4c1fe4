//! Logging setup: `tracing` with a text or JSON format and an env filter.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Targets capped at INFO whatever level is asked: at DEBUG, tokio-postgres
/// logs every statement's parameters, which carry the hierarchy's keys, the
/// license key and the stored SMTP password.
const SECRET_BEARING: &[&str] = &["tokio_postgres=info", "tokio_postgres::query=info"];

/// The filter for `default_level`, or `RUST_LOG` when set; either way the
/// [`SECRET_BEARING`] targets stay at INFO. lapin logs every returned
/// (unroutable) message at WARN with its payload; callers see returns
/// through the publisher, so that logger is kept quiet by default.
fn filter(env: Option<&str>, default_level: &str) -> EnvFilter {
    let asked = env.and_then(|directives| EnvFilter::try_new(directives).ok());
    let mut filter =
        asked.unwrap_or_else(|| EnvFilter::new(format!("{default_level},lapin=warn,lapin::returned_messages=error")));
    for directive in SECRET_BEARING {
        filter = filter.add_directive(directive.parse().expect("the capped targets are valid directives"));
    }
    filter
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_level`.
/// Colours only on a terminal: a log file or a pipe gets plain text.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(format: LogFormat, default_level: &str) {
    let env = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let builder = fmt()
        .with_env_filter(filter(env.as_deref(), default_level))
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_parameters_stay_out_whatever_level_is_asked() {
        for (env, level) in
            [(None, "debug"), (None, "trace"), (Some("trace"), "info"), (Some("tokio_postgres=trace,debug"), "info")]
        {
            let shown = filter(env, level).to_string();
            assert!(
                shown.contains("tokio_postgres=info") && !shown.contains("tokio_postgres=trace"),
                "{env:?} {level}: {shown}"
            );
            assert!(shown.contains("tokio_postgres::query=info"), "{env:?} {level}: {shown}");
        }
    }
}
