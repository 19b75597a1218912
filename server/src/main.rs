use std::io::Write;

use anyhow::Context;
use clap::Parser;
use server::{Opts, Server};
use tracing::info;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    if opts.healthcheck {
        match server::health::check(&opts) {
            Ok(()) => std::process::exit(0),
            Err(why) => {
                eprintln!("unhealthy: {why}");
                std::process::exit(1);
            }
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let server = Server::bind(opts).context("starting the server")?;
    let metrics = server
        .metrics_addr()
        .map_or_else(|| "off".to_owned(), |a| a.to_string());
    // The one stdout line: scripts and tests read the bound ports from it.
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "listening ws={} metrics={metrics}",
        server.local_addr()
    )?;
    stdout.flush()?;
    let handle = server.start().context("starting the server")?;

    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the signal runtime")?;
    signals.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
        anyhow::Ok(())
    })?;
    handle.shutdown();
    handle.wait();
    info!("stopped");
    Ok(())
}
