//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::progress::Mode;

#[derive(Debug, Parser)]
#[command(
    name = "coordinator",
    version,
    about = "Runs YAML load scenarios on loadgen agents and judges them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: drive its agents through every phase, merge, judge,
    /// write results.json and report.html. Exit 0 when every threshold
    /// held, 1 when one failed or the run fell short, 2 on a bad scenario
    /// or set-up.
    Run(RunArgs),
    /// Check a scenario without running it (exit 0 ok, 2 with every
    /// problem listed by file, line and key).
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    pub file: PathBuf,
    /// Check it as `run --local` would run it (on this machine).
    #[arg(long, env = "COORDINATOR_LOCAL")]
    pub local: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    pub file: PathBuf,

    /// Run the whole lab on this machine: start a chat server and as many
    /// local agents as the scenario needs (each process here holds at most
    /// what the open-file limit allows), on loopback, and stop them after.
    #[arg(long, env = "COORDINATOR_LOCAL")]
    pub local: bool,

    /// Target URLs instead of the scenario's (repeat, or comma-separated).
    #[arg(long = "target", env = "COORDINATOR_TARGETS", value_delimiter = ',')]
    pub targets: Vec<String>,

    /// The agents' shared secret (generated for local agents).
    #[arg(long, env = "LOADGEN_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Directory for results.json, report.html and local logs [default:
    /// the scenario's output.dir].
    #[arg(long, short = 'o', env = "COORDINATOR_OUTPUT")]
    pub output: Option<PathBuf>,

    /// Serve the run's figures for Prometheus on http://ADDR/metrics.
    #[arg(long, env = "COORDINATOR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Live progress: bars on a terminal (auto), plain lines every second
    /// (plain), or nothing (never).
    #[arg(long, env = "COORDINATOR_PROGRESS", value_enum, default_value_t = Mode::Auto)]
    pub progress: Mode,

    /// Where the `server` and `loadgen` binaries are, for local runs
    /// [default: beside this program].
    #[arg(long, env = "COORDINATOR_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}
