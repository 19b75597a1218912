//! `coordinator`: see `coordinator --help` and scenarios/README.md.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use coordinator::app::{self, Exit};
use coordinator::opts::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => {
            match coordinator::scenario::validate_cmd(&args.file, args.local) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    eprintln!("{problems}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("coordinator: starting the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(app::run(args)) {
                Ok(Exit::Passed) => ExitCode::SUCCESS,
                Ok(Exit::Failed) => ExitCode::FAILURE,
                Ok(Exit::Setup) => ExitCode::from(2),
                Err(e) => {
                    eprintln!("coordinator: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
