//! `coordinator run`: from a scenario file to a verdict. Loads and checks
//! the scenario, finds or starts the agents (and, with `--local`, the
//! server), connects to every agent, runs the phases, writes results.json
//! and report.html, prints the summary and stops whatever it started.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use loadgen::signals::StopSignals;
use promhttp::MetricsUrl;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::client;
use crate::live::Live;
use crate::local::{self, LocalLab, LocalPlan};
use crate::opts::RunArgs;
use crate::progress::Progress;
use crate::results::{Results, ScenarioInfo};
use crate::run::{Member, RunSetup, Runner};
use crate::scenario::schema::{Scenario, StaticAgent};
use crate::scenario::{self, CheckOptions, Machine};
use crate::split;
use crate::{report, summary};

/// How long connecting to one agent may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// Exit codes: the verdict, or a set-up problem.
pub enum Exit {
    Passed,
    Failed,
    Setup,
}

/// An agent before it is connected.
struct Planned {
    addr: String,
    weight: f64,
    source_ips: Option<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<Exit> {
    let loaded = match scenario::load(&args.file) {
        Ok(l) => l,
        Err(problems) => {
            eprintln!("{problems}");
            return Ok(Exit::Setup);
        }
    };
    let check = CheckOptions {
        local: args.local,
        machine: Machine::this_host(),
    };
    let machine = &check.machine;
    if let Err(problems) = scenario::check(&loaded, &check) {
        eprintln!("{problems}");
        return Ok(Exit::Setup);
    }
    let s = &loaded.scenario;
    let output = output_dir(args.output.as_deref(), &s.output.dir, &s.name);
    std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;

    // Agents: started here, or found.
    let local_count = if args.local {
        Some(scenario::local_agents_needed(s, machine))
    } else {
        s.agents.local
    };
    let mut lab: Option<LocalLab> = None;
    let mut urls = if args.targets.is_empty() {
        s.target.urls.clone()
    } else {
        args.targets.clone()
    };
    let (planned, token) = match local_count {
        Some(n) => {
            let n = n.max(1) as usize;
            let bin_dir = local::bin_dir(args.bin_dir.as_deref())?;
            let loads = local_loads(s, n);
            let ports = u64::from(machine.port_range.1.saturating_sub(machine.port_range.0)) + 1;
            eprintln!(
                "local lab: {}{n} agent process{} on loopback (each process here may hold {} connections: the open-file limit is {}); logs in {}",
                if args.local { "a chat server and " } else { "" },
                if n == 1 { "" } else { "es" },
                loadgen::printer::int(loadgen::multiproc::per_process(machine.nofile)),
                machine.nofile,
                output.join("logs").display()
            );
            let started = LocalLab::start(LocalPlan {
                bin_dir: &bin_dir,
                logs: &output.join("logs"),
                start_server: args.local,
                agent_loads: loads,
                ports_per_address: ports,
            })
            .await?;
            if let Some(url) = &started.server_url {
                if args.targets.is_empty() {
                    urls = vec![url.clone()];
                }
            }
            let planned = started
                .agents
                .iter()
                .zip(&started.source_ips)
                .map(|(addr, src)| Planned {
                    addr: addr.clone(),
                    weight: 1.0,
                    source_ips: Some(src.clone()),
                })
                .collect();
            let token = started.token.clone();
            lab = Some(started);
            (planned, token)
        }
        None => {
            let Some(token) = args.token.clone().filter(|t| !t.is_empty()) else {
                bail!("remote agents need their token: pass --token or set LOADGEN_AGENT_TOKEN");
            };
            (remote_agents(s).await?, token)
        }
    };
    if urls.is_empty() {
        stop_lab(&mut lab).await;
        bail!("no target: the scenario has no target.urls; give --target URL or run with --local");
    }
    let server_metrics = match server_metrics_url(s, lab.as_ref(), args.targets.is_empty()) {
        Ok(url) => url,
        Err(e) => {
            stop_lab(&mut lab).await;
            return Err(e);
        }
    };
    if let Some(url) = &server_metrics {
        eprintln!("server metrics: {url}, sampled every second of every phase");
    }

    let result = drive(
        &args,
        &loaded,
        planned,
        &token,
        urls,
        lab.is_some() && args.local,
        server_metrics,
    )
    .await;
    stop_lab(&mut lab).await;
    let results = result?;
    let json = output.join("results.json");
    let html = output.join("report.html");
    results.write_json(&json)?;
    report::write_html(&results, &html)?;
    println!("{}", summary::render(&results));
    println!("results: {}\nreport:  {}", json.display(), html.display());
    Ok(if results.passed {
        Exit::Passed
    } else {
        Exit::Failed
    })
}

async fn stop_lab(lab: &mut Option<LocalLab>) {
    if let Some(lab) = lab {
        lab.stop().await;
    }
}

/// Connects to the agents and runs the scenario.
async fn drive(
    args: &RunArgs,
    loaded: &scenario::Loaded,
    planned: Vec<Planned>,
    token: &str,
    urls: Vec<String>,
    local: bool,
    server_metrics: Option<MetricsUrl>,
) -> anyhow::Result<Results> {
    let s = &loaded.scenario;
    let (events_tx, events) = mpsc::unbounded_channel();
    let connecting = planned
        .iter()
        .enumerate()
        .map(|(i, p)| client::connect(i, &p.addr, token, events_tx.clone(), CONNECT_WITHIN));
    let links = futures_util::future::join_all(connecting).await;
    drop(events_tx);
    let mut members = Vec::with_capacity(links.len());
    let mut problems = Vec::new();
    for (link, p) in links.into_iter().zip(planned) {
        match link {
            Ok(link) => members.push(Member {
                link,
                weight: p.weight,
                source_ips: p.source_ips,
            }),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if !problems.is_empty() {
        bail!("cannot reach every agent:\n  {}", problems.join("\n  "));
    }
    info!(agents = members.len(), "every agent connected");

    // SIGINT (Ctrl-C) and SIGTERM (`docker stop`, systemd, `timeout`)
    // alike: every agent is stopped and the partial results written.
    let signals = StopSignals::listen().context("listening for SIGINT and SIGTERM")?;
    let live = Live::new(&s.name, s.phases.len(), members.len());
    let (_metrics_stop, metrics_stop) = watch::channel(false);
    if let Some(addr) = args.metrics_listen {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("--metrics-listen {addr}"))?;
        eprintln!("metrics: http://{}/metrics", listener.local_addr()?);
        live.serve(listener, metrics_stop)?;
    }
    let progress = Progress::new(args.progress);
    let setup = RunSetup {
        scenario: s,
        info: ScenarioInfo {
            name: s.name.clone(),
            description: s.description.clone(),
            file: args.file.display().to_string(),
            targets: urls.clone(),
            workload: s.target.workload.name().to_string(),
            local,
        },
        urls,
        room_prefix: local::random_token()[..6].to_string() + "-",
        server_metrics,
    };
    Ok(
        Runner::new(setup, members, events, signals.watch(), &progress, &live)
            .run()
            .await,
    )
}

/// Whose metrics the phases sample: the server started here when the
/// agents load it (`local_is_target`), else the scenario's
/// `server_metrics`, else nobody's.
fn server_metrics_url(
    s: &Scenario,
    lab: Option<&LocalLab>,
    local_is_target: bool,
) -> anyhow::Result<Option<MetricsUrl>> {
    if let Some(url) = lab.and_then(|l| l.server_url.as_ref()) {
        if local_is_target {
            let Some(addr) = lab.and_then(|l| l.server_metrics) else {
                warn!("the local server {url} has no metrics endpoint: the report shows the clients only");
                return Ok(None);
            };
            if let Some(given) = &s.server_metrics {
                eprintln!(
                    "server_metrics {given} is not scraped: this run loads the server it started"
                );
            }
            let url = format!("http://{addr}/metrics");
            return url
                .parse()
                .map(Some)
                .with_context(|| format!("the local server's metrics endpoint {url}"));
        }
    }
    s.server_metrics
        .as_deref()
        .map(|url| url.parse().context("server_metrics"))
        .transpose()
}

/// The most connections each of `n` equal local agents holds in any phase.
fn local_loads(s: &Scenario, n: usize) -> Vec<u64> {
    let mut loads = vec![0; n];
    for phase in &s.phases {
        for (load, share) in loads
            .iter_mut()
            .zip(split::shares(phase.connections, &vec![1.0; n]))
        {
            *load = (*load).max(share);
        }
    }
    loads
}

/// Static agents as listed, or every address a DNS name resolves to.
async fn remote_agents(s: &Scenario) -> anyhow::Result<Vec<Planned>> {
    if let Some(name) = &s.agents.dns {
        let mut addrs: Vec<_> = tokio::net::lookup_host(name.as_str())
            .await
            .with_context(|| format!("agents.dns: resolving {name:?}"))?
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            bail!("agents.dns: {name:?} resolves to no address");
        }
        eprintln!("agents: {} found at {name}", addrs.len());
        return Ok(addrs
            .into_iter()
            .map(|a| Planned {
                addr: a.to_string(),
                weight: 1.0,
                source_ips: s.agents.source_ips.clone(),
            })
            .collect());
    }
    Ok(s.agents
        .static_list
        .iter()
        .map(|a| match a {
            StaticAgent::Addr(addr) => Planned {
                addr: addr.clone(),
                weight: 1.0,
                source_ips: None,
            },
            StaticAgent::Full(f) => Planned {
                addr: f.addr.clone(),
                weight: f.weight,
                source_ips: f.source_ips.clone(),
            },
        })
        .collect())
}

/// `dir` with `{name}` and `{time}` filled in (UTC, 20261124-143005).
fn output_dir(given: Option<&Path>, pattern: &str, name: &str) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_path_buf();
    }
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    let time = format!(
        "{}-{}",
        &stamp[..8.min(stamp.len())],
        &stamp[8.min(stamp.len())..]
    );
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(pattern.replace("{name}", &safe).replace("{time}", &time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_dir_fills_placeholders() {
        let d = output_dir(None, "results/{name}-{time}", "smoke test/1");
        let s = d.to_string_lossy();
        assert!(s.starts_with("results/smoke_test_1-"), "{s}");
        assert_eq!(s.len(), "results/smoke_test_1-".len() + 15, "{s}");
        assert_eq!(
            output_dir(Some(Path::new("x")), "y", "z"),
            PathBuf::from("x")
        );
    }
}
