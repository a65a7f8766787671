//! The crate's own errors (configuration, serving); service errors are HTTP bodies, see
//! `http.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

/// Errors from configuring or running the sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The fault file could not be read.
    #[error("cannot read fault file {path}: {source}")]
    ReadFaults {
        /// The file that was asked for.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The fault TOML did not parse into a [`crate::FaultConfig`].
    #[error("invalid fault config TOML: {0}")]
    FaultToml(#[from] toml::de::Error),
    /// The fault config parsed but a value is out of range; the message names the key.
    #[error("invalid fault config: {0}")]
    InvalidFaults(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("sandbox server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A deposit through the Rust API was refused; the message says why.
    #[error("deposit refused: {0}")]
    Deposit(String),
    /// The clock was asked to move backwards.
    #[error("the sandbox clock cannot go backwards (now {now}, requested {requested})")]
    ClockBackwards {
        /// The clock's current time.
        now: DateTime<Utc>,
        /// The earlier time that was requested.
        requested: DateTime<Utc>,
    },
}
