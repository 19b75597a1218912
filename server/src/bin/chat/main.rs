//! Interactive chat client for people: lines typed on stdin go to the room,
//! the room's traffic comes out on stdout, one line per message. Local
//! feedback and errors go to stderr so stdout can be piped or scripted.
//!
//! `chat ws://127.0.0.1:8080 --room lobby --username alice --proto binary`,
//! or `chat wss://chat.example --ca-file ca.pem --username alice`

mod command;
mod connection;
mod render;
mod session;
mod tls;
mod url;
mod wire;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use protocol::Proto;

#[derive(Debug, Parser)]
#[command(
    name = "chat",
    about = "Chat with people on the lab's WebSocket server"
)]
pub struct Args {
    /// Server URL; username, room and proto are added to its query.
    #[arg(env = "CHAT_URL", default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Room joined on connect; empty joins none.
    #[arg(long, env = "CHAT_ROOM", default_value = "lobby")]
    pub room: String,
    #[arg(long, env = "CHAT_USERNAME")]
    pub username: String,
    /// Encoding we send and ask the server to answer in.
    #[arg(long, env = "CHAT_PROTO", default_value = "json", value_parser = parse_proto)]
    pub proto: Proto,
    #[arg(long, env = "CHAT_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// How long to wait for the server's close reply before exiting anyway.
    #[arg(long, env = "CHAT_CLOSE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub close_timeout: Duration,
    /// For wss:// URLs: accept any server certificate (self-signed test
    /// servers). Without it, certificates are verified against Mozilla's
    /// roots (plus --ca-file's) and must name the URL's host.
    #[arg(long, env = "CHAT_INSECURE")]
    pub insecure: bool,
    /// For wss:// URLs: a PEM file of CA certificates to trust beside
    /// Mozilla's roots (a private CA, or a self-signed server's own
    /// certificate).
    #[arg(long, env = "CHAT_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

fn parse_proto(name: &str) -> Result<Proto, String> {
    Proto::from_name(name).ok_or_else(|| format!("{name:?} is neither json nor binary"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match connection::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e:#}");
            ExitCode::FAILURE
        }
    }
}
