//! The `switch` command: runs the transaction switch, or checks a configuration file.
//!
//! With no arguments it runs on the embedded default configuration (`config/switch.toml`): the
//! journal under `./data`, the bundled Alipay simulator started in-process as the upstream over
//! loopback TLS. Exit codes: 0 clean shutdown, 1 runtime failure, 2 usage or configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The acquirer's transaction switch for Alipay barcode payments.
///
/// Merchants and system integrators send Alipay MAPI requests (pay, query, cancel, refund) to
/// /gateway.do exactly as they would to Alipay; the switch authenticates them, journals every
/// transaction durably, forwards it to Alipay over pooled TLS and answers. Metrics at /metrics,
/// health at /healthz and /readyz. Logs go to stderr; set RUST_LOG (e.g. `info`,
/// `switch=debug`) to choose what is logged. SIGTERM or Ctrl-C stops it gracefully.
#[derive(Debug, Parser)]
#[command(name = "switch", version, about, long_about)]
struct Cli {
    /// The configuration file (TOML; reference: config/README.md). Without it:
    /// ./config/switch.toml if present, else the compiled-in copy of it (paths in it are
    /// relative to ./config).
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "SWITCH_CONFIG"
    )]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the switch (the default when no command is given).
    Run,
    /// Validates the configuration, loads every key it references, and explains each error
    /// with its file and key. Exit code 0 when valid, 2 otherwise.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    switch::app::init_logging();
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => match switch::config::check(cli.config.as_deref()) {
            Ok(summary) => {
                eprintln!("{summary}");
                eprintln!("configuration OK");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        },
        Command::Run => {
            let config = match switch::config::Config::load_or_default(cli.config.as_deref()) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(2);
                }
            };
            match switch::app::run_blocking(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "the switch stopped on an error");
                    eprintln!("switch: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
    }
}
