//! The command line shared by the example binaries:
//! `--dsn DSN --sandbox URL [--agent-id ID] [--release R] [--environment E] [--cycle-ms N] [--funding-usd N]`.

use std::time::Duration;

use crate::common::{AgentConfig, Monitoring};

/// A command-line error, with the usage.
#[derive(Debug, thiserror::Error)]
#[error("{message}\nusage: {usage}")]
pub struct CliError {
    message: String,
    usage: String,
}

/// Parse `args` (without the program name) into a config for `default_agent_id`. The DSN
/// defaults to `LOOKOUT_DSN` / `SENTRY_DSN`, the sandbox to `http://127.0.0.1:9100`.
pub fn parse(
    program: &str,
    default_agent_id: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<AgentConfig, CliError> {
    let usage = format!(
        "{program} [--dsn DSN] [--sandbox URL] [--agent-id ID] [--release NAME@VERSION] \
         [--environment ENV] [--cycle-ms N] [--funding-usd N]"
    );
    let fail = |message: String| CliError {
        message,
        usage: usage.clone(),
    };
    let mut config =
        AgentConfig::new(default_agent_id, "http://127.0.0.1:9100").monitoring(Monitoring::Global);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(fail("help".into()));
        }
        let value = args
            .next()
            .ok_or_else(|| fail(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--dsn" => config.dsn = Some(value),
            "--sandbox" => config.sandbox_url = value,
            "--agent-id" => {
                let release = format!("{value}@1.0.0");
                config.agent_id = value;
                config.release = release;
            }
            "--release" => config.release = value,
            "--environment" => config.environment = value,
            "--cycle-ms" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| fail(format!("--cycle-ms: not a number: {value:?}")))?;
                config.cycle = Duration::from_millis(ms.max(100));
            }
            "--funding-usd" => {
                let usd: f64 = value
                    .parse()
                    .map_err(|_| fail(format!("--funding-usd: not a number: {value:?}")))?;
                config.funding_usd = Some(usd);
            }
            other => return Err(fail(format!("unknown flag {other}"))),
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let c = parse(
            "vol_arb",
            "ag_vol",
            [
                "--dsn",
                "http://k@h/1",
                "--sandbox",
                "http://s",
                "--cycle-ms",
                "500",
            ]
            .map(String::from),
        )
        .expect("parses");
        assert_eq!(c.dsn.as_deref(), Some("http://k@h/1"));
        assert_eq!(c.sandbox_url, "http://s");
        assert_eq!(c.cycle, Duration::from_millis(500));
        assert_eq!(c.release, "ag_vol@1.0.0");
        assert!(parse("x", "a", ["--dsn".to_owned()]).is_err());
        assert!(parse("x", "a", ["--nope".to_owned(), "1".to_owned()]).is_err());
    }
}
