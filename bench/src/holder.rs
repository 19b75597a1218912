//! A holder: one process that opens its share of idle connections and keeps
//! them open, reporting to its parent bench as JSON lines on stdout. The
//! bench splits the connections over several holders because each process
//! may have at most 20,000 open files.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use loadgen::conn::{self, ConnectOptions};
use loadgen::proc_stats::Memory;
use loadgen::source_ips::{self, SourceIpsError};
use loadgen::transport::Transport;

/// The command line of a holder process (the hidden `hold` subcommand).
/// Kept next to [`HoldArgs::to_args`] so the two cannot drift apart; no
/// env vars, so a holder does exactly what its parent says.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct HoldArgs {
    /// WebSocket addresses of the servers, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub servers: Vec<SocketAddr>,
    /// Source addresses (range or list); empty for the kernel's choice.
    #[arg(long, default_value = "")]
    pub source_ips: String,
    /// First connection of this holder in the global numbering.
    #[arg(long)]
    pub first: usize,
    #[arg(long)]
    pub count: usize,
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Exit this long after start even if stdin stays open.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    #[arg(long, default_value = "/")]
    pub path: String,
}

impl HoldArgs {
    /// The arguments that make a holder parse back to `self`.
    pub fn to_args(&self) -> Vec<String> {
        let servers: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
        vec![
            "--servers".into(),
            servers.join(","),
            format!("--source-ips={}", self.source_ips),
            "--first".into(),
            self.first.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--concurrency".into(),
            self.concurrency.to_string(),
            "--connect-timeout".into(),
            humantime::format_duration(self.connect_timeout).to_string(),
            "--deadline".into(),
            humantime::format_duration(self.deadline).to_string(),
            format!("--path={}", self.path),
        ]
    }

    pub fn plan(&self) -> Result<HoldPlan, SourceIpsError> {
        let source_ips = if self.source_ips.trim().is_empty() {
            Vec::new()
        } else {
            source_ips::parse(&self.source_ips)?
        };
        Ok(HoldPlan {
            servers: self.servers.clone(),
            source_ips,
            first: self.first,
            count: self.count,
            concurrency: self.concurrency,
            connect_timeout: self.connect_timeout,
            path_and_query: self.path.clone(),
        })
    }
}

/// The holder process: opens its connections, reports on stdout, then holds
/// them until stdin closes (the parent is done or gone) or the deadline.
pub async fn run_holder(args: HoldArgs) -> anyhow::Result<()> {
    use std::io::Write;
    use tokio::io::AsyncReadExt;

    let start = tokio::time::Instant::now();
    let plan = args.plan()?;
    let emit = |event: HolderEvent| {
        let mut out = std::io::stdout().lock();
        // A parent that stopped reading has gone; the deadline ends us.
        let _ = writeln!(out, "{}", event.to_line()).and_then(|()| out.flush());
    };
    let establishing = establish(&plan, emit);
    let held = tokio::select! {
        held = establishing => held,
        () = tokio::time::sleep_until(start + args.deadline) => return Ok(()),
    };
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    let wait_for_eof = async { while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {} };
    tokio::select! {
        () = wait_for_eof => {}
        () = tokio::time::sleep_until(start + args.deadline) => {}
    }
    drop(held);
    Ok(())
}

/// What a holder tells its parent, one JSON object per stdout line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HolderEvent {
    /// Before the first connection: the baseline for the holder's own
    /// memory per connection.
    Started { memory: Memory },
    Progress {
        held: usize,
        failed: usize,
        elapsed_ms: u64,
    },
    /// Every connection has been tried; the holder now holds `held` of them
    /// until its stdin closes or its deadline passes.
    Done {
        held: usize,
        failed: usize,
        /// Failures counted by [`conn::ConnectError::kind`].
        errors: BTreeMap<String, usize>,
        /// The first failure in full, for diagnosis.
        first_error: Option<String>,
        elapsed_ms: u64,
        memory: Memory,
    },
}

impl HolderEvent {
    pub fn to_line(&self) -> String {
        // A tagged enum of plain fields always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_line(line: &str) -> Result<HolderEvent, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// Which connections of the global numbering this holder opens, and how.
#[derive(Debug, Clone)]
pub struct HoldPlan {
    pub servers: Vec<SocketAddr>,
    /// Empty: let the kernel choose the source address.
    pub source_ips: Vec<IpAddr>,
    pub first: usize,
    pub count: usize,
    /// Handshakes in flight at once; more only fills the accept backlog.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    pub path_and_query: String,
}

impl HoldPlan {
    /// Connection `g` of the global numbering goes to server `g % servers`
    /// from source address `g % source_ips`, so every server gets its exact
    /// share whichever holders open it.
    pub fn options_for(&self, g: usize) -> ConnectOptions {
        ConnectOptions {
            server: self.servers[g % self.servers.len()],
            source: (!self.source_ips.is_empty())
                .then(|| self.source_ips[g % self.source_ips.len()]),
            path_and_query: self.path_and_query.clone(),
            host: None,
            extra: Default::default(),
            tls: None,
            timeout: self.connect_timeout,
            nodelay: false,
        }
    }
}

/// Opens every connection of the plan with at most `concurrency` in
/// flight, and returns the open streams. Nothing is read after the upgrade:
/// the welcome frame stays in the kernel's buffer, as it would for an idle
/// client that is not being scheduled.
pub async fn establish(plan: &HoldPlan, mut report: impl FnMut(HolderEvent)) -> Vec<Transport> {
    let start = Instant::now();
    report(HolderEvent::Started {
        memory: Memory::of_self().unwrap_or_default(),
    });
    let mut held = Vec::with_capacity(plan.count);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut first_error = None;
    let mut failed = 0;
    let mut next = 0;
    let mut tasks = JoinSet::new();
    let mut last_progress = Instant::now();
    if plan.servers.is_empty() {
        failed = plan.count;
        errors.insert("no servers".to_string(), plan.count);
        next = plan.count;
    }
    while next < plan.count || !tasks.is_empty() {
        while next < plan.count && tasks.len() < plan.concurrency.max(1) {
            let opts = plan.options_for(plan.first + next);
            tasks.spawn(async move { conn::connect(&opts).await });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(up)) => held.push(up.stream),
            Ok(Err(e)) => {
                failed += 1;
                *errors.entry(e.kind()).or_default() += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                failed += 1;
                *errors.entry("task failed".to_string()).or_default() += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            report(HolderEvent::Progress {
                held: held.len(),
                failed,
                elapsed_ms: start.elapsed().as_millis() as u64,
            });
        }
    }
    report(HolderEvent::Done {
        held: held.len(),
        failed,
        errors,
        first_error,
        elapsed_ms: start.elapsed().as_millis() as u64,
        memory: Memory::of_self().unwrap_or_default(),
    });
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_lines() {
        let done = HolderEvent::Done {
            held: 3,
            failed: 1,
            errors: BTreeMap::from([("timeout".to_string(), 1)]),
            first_error: Some("connect and upgrade timed out".into()),
            elapsed_ms: 12,
            memory: Memory {
                vm_rss_kb: 10,
                rss_anon_kb: 5,
            },
        };
        let line = done.to_line();
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"event":"done""#), "{line}");
        assert_eq!(HolderEvent::from_line(&line).unwrap(), done);
        assert!(HolderEvent::from_line(r#"{"event":"nope"}"#).is_err());
    }

    #[test]
    fn hold_args_survive_the_command_line() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            hold: HoldArgs,
        }
        let args = HoldArgs {
            servers: vec![
                "127.0.0.1:4000".parse().unwrap(),
                "127.0.0.1:4001".parse().unwrap(),
            ],
            source_ips: "127.0.0.2-127.0.0.9".into(),
            first: 15_000,
            count: 14_999,
            concurrency: 64,
            connect_timeout: Duration::from_millis(2500),
            deadline: Duration::from_secs(600),
            path: "/?room=a&username=-b".into(),
        };
        let mut argv = vec!["hold".to_string()];
        argv.extend(args.to_args());
        let back = <Cli as clap::Parser>::try_parse_from(argv).unwrap().hold;
        assert_eq!(back, args);
        let empty = HoldArgs {
            source_ips: String::new(),
            ..args
        };
        let mut argv = vec!["hold".to_string()];
        argv.extend(empty.to_args());
        let back = <Cli as clap::Parser>::try_parse_from(argv).unwrap().hold;
        assert!(back.plan().unwrap().source_ips.is_empty());
    }

    #[test]
    fn plan_spreads_over_servers_and_sources() {
        let plan = HoldPlan {
            servers: vec![
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
            ],
            source_ips: loadgen::source_ips::parse("127.0.0.2-127.0.0.4").unwrap(),
            first: 0,
            count: 6,
            concurrency: 1,
            connect_timeout: Duration::from_secs(1),
            path_and_query: "/".into(),
        };
        let o = plan.options_for(5);
        assert_eq!(o.server.port(), 2);
        assert_eq!(o.source, Some("127.0.0.4".parse().unwrap()));
        let o = plan.options_for(4);
        assert_eq!(o.server.port(), 1);
        assert_eq!(o.source, Some("127.0.0.3".parse().unwrap()));
        let no_sources = HoldPlan {
            source_ips: vec![],
            ..plan
        };
        assert_eq!(no_sources.options_for(1).source, None);
    }
}
