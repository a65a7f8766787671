//! Run the Kelly casino bettor standalone against a sandbox and a Lookout server.
//!
//! ```text
//! lookout sandbox &                      # http://127.0.0.1:9100
//! LOOKOUT_ADMIN_PASSWORD=… lookout serve # prints the DSN
//! cargo run -p lookout-examples --example casino_kelly -- --dsn DSN --sandbox http://127.0.0.1:9100
//! ```
//!
//! Ctrl-C ends the session cleanly (`exited`); the guard flushes what is queued.
#![allow(clippy::print_stderr)]

use lookout_examples::{Shutdown, casino_kelly, cli};

fn main() -> std::process::ExitCode {
    let config = match cli::parse("casino_kelly", "ag_casino_kelly", std::env::args().skip(1)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("casino_kelly: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            match tokio::signal::ctrl_c().await {
                Ok(()) => trigger.trigger(),
                // No signal handler: run until killed (dropping the trigger would stop us).
                Err(_) => std::future::pending::<()>().await,
            }
        });
        casino_kelly::run(config, shutdown).await
    });
    match result {
        Ok(summary) => {
            eprintln!("casino_kelly: stopped after {summary:?}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("casino_kelly: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
