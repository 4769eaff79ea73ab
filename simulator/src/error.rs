//! The one error type of the simulator.
//!
//! Errors here are about starting and running the simulator (configuration, keys, TLS, sockets,
//! the HTTP client); what the simulated Alipay answers a merchant is never an error of this type
//! but an Alipay code written into a response.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = SimError> = std::result::Result<T, E>;

/// Everything that can go wrong outside the protocol itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The configuration is unreadable or invalid; `key` names the offending key.
    #[error("{file}: {key}: {message}")]
    Config {
        file: String,
        key: String,
        message: String,
    },
    /// The configuration is not valid TOML of the expected shape: the message has the line,
    /// the column and what is wrong, never the source text (it may hold an inline key).
    #[error("{file}: {message}")]
    ConfigParse { file: String, message: String },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TLS setup failed (certificate, key, rustls configuration).
    #[error("TLS: {0}")]
    Tls(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A command-line value is invalid.
    #[error("invalid option {option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    /// The client could not connect; nothing was sent.
    #[error("connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    /// The request may have left: its outcome at the server is unknown.
    #[error("request to {addr} failed after sending began (outcome unknown): {message}")]
    OutcomeUnknown { addr: String, message: String },
    /// The response body was larger than the client accepts (the request was processed).
    #[error("the response from {addr} is over {limit_bytes} bytes")]
    ResponseTooLarge { addr: String, limit_bytes: usize },
    /// The admin API answered something other than what was asked for.
    #[error("admin API {path}: {message}")]
    Admin { path: String, message: String },
    /// The client's deadline passed.
    #[error("request to {addr} timed out after {timeout_ms} ms (outcome unknown)")]
    Timeout { addr: String, timeout_ms: u64 },
    /// A wire-format error from the alipay crate (building or signing a message).
    #[error("wire format: {0}")]
    Wire(#[from] alipay::Error),
}
