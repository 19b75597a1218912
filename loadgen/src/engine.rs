//! One run of the load generator in this process: check that the
//! connections can exist, ramp them up at the asked rate with a cap on
//! upgrades in flight, let them work until the end, close them, and return
//! what was measured.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::capacity;
use crate::conn::{self, ConnectOptions};
use crate::connection::{Client, RunContext};
use crate::opts::RunOpts;
use crate::proc_stats::{CpuSample, Memory};
use crate::source_ips;
use crate::stats::{Closed, Interval, Latency, Recorder, Totals};
use crate::target::{self, Target};
use crate::transport::{self, TlsSetup};
use crate::workload::Workload;
use rustls::pki_types::ServerName;

/// Above this share of one core per worker thread, the generator is the
/// bottleneck and its latencies describe itself.
const SATURATED_CPU_PERCENT: f64 = 90.0;
/// Between the end of the ramp and the first send.
const JOIN_SETTLE: Duration = Duration::from_millis(50);
/// How long closing may take after the drain before tasks are dropped.
const FINISH_GRACE: Duration = Duration::from_secs(5);

/// Everything a run produced. Serializable: a worker process sends its
/// outcome to the parent as one JSON line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub totals: Totals,
    #[serde(skip)]
    pub intervals: Vec<Interval>,
    /// Connections open when the ramp had finished.
    pub held_after_ramp: u64,
    pub cpu_percent_max: f64,
    pub threads: usize,
    /// Set when the run was cut short (Ctrl-C).
    pub interrupted: bool,
    /// Growth of resident memory from start to the end of the ramp.
    pub rss_growth_bytes: i64,
    pub processes: u64,
    /// Why parts of the run are missing (a worker process that died).
    #[serde(default)]
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn cpu_saturated(&self) -> bool {
        self.cpu_percent_max >= SATURATED_CPU_PERCENT * self.threads as f64
    }
}

/// The resolved plan: where each connection goes and from where.
pub struct Plan {
    pub targets: Vec<Target>,
    /// TLS set-up per target (`None` for ws://).
    pub tls: Vec<Option<TlsSetup>>,
    pub sources: Vec<IpAddr>,
    pub workload: Workload,
    pub extras: Arc<conn::UpgradeExtras>,
    /// `--metrics-listen`, bound here so that a bad address fails before the run.
    pub metrics: Option<std::net::TcpListener>,
}

impl Plan {
    /// Resolves and checks everything before the first connection: bad
    /// URLs, source addresses not on this host and a capacity the
    /// addresses, ports or open-file limit cannot hold are errors here.
    /// `connections` over `processes` is the share being checked.
    pub fn new(opts: &RunOpts, connections: u64, processes: u64) -> anyhow::Result<Plan> {
        let targets = target::parse_targets(&opts.targets)?;
        let tls = if targets.iter().any(|t| t.scheme == target::Scheme::Wss) {
            if opts.insecure {
                warn!("--insecure: server certificates are not verified");
            }
            let config = transport::client_config(opts.insecure).context("setting up TLS")?;
            Some(tokio_rustls::TlsConnector::from(config))
        } else {
            None
        };
        let tls: Vec<Option<TlsSetup>> = targets
            .iter()
            .map(|t| match (&tls, t.scheme) {
                (Some(connector), target::Scheme::Wss) => {
                    let name =
                        ServerName::try_from(t.server_name().to_string()).with_context(|| {
                            format!("{}: not a valid TLS server name", t.server_name())
                        })?;
                    Ok(Some(TlsSetup {
                        connector: connector.clone(),
                        server_name: name,
                    }))
                }
                _ => Ok(None),
            })
            .collect::<anyhow::Result<_>>()?;
        let sources = match &opts.source_ips {
            Some(spec) => {
                let ips = source_ips::parse(spec).context("--source-ips")?;
                source_ips::check_bindable(&ips).context("checking --source-ips")?;
                ips
            }
            None => Vec::new(),
        };
        let workload = Workload::from_opts(opts)?;
        let extras = Arc::new(
            conn::UpgradeExtras::parse(&opts.headers, &opts.subprotocols)
                .map_err(anyhow::Error::msg)?,
        );
        let nofile = capacity::raise_nofile();
        let ports = capacity::local_port_range().context("reading net.ipv4.ip_local_port_range")?;
        let addrs: Vec<_> = targets.iter().map(|t| t.addr).collect();
        capacity::check(connections, sources.len(), &addrs, ports, nofile, processes)?;
        capacity::check_families(&sources, &addrs)?;
        let metrics = opts
            .metrics_listen
            .map(crate::prometheus::bind)
            .transpose()?;
        Ok(Plan {
            targets,
            tls,
            sources,
            workload,
            extras,
            metrics,
        })
    }
}

/// Runs connections `slice` of the plan (all of them in a single process);
/// `on_interval` gets each second's figures; `stop` ends the run early
/// (Ctrl-C) with everything measured so far.
pub async fn run(
    opts: &RunOpts,
    plan: Plan,
    slice: Range<u64>,
    mut stop: watch::Receiver<bool>,
    mut on_interval: impl FnMut(&Interval, &Recorder),
) -> anyhow::Result<Outcome> {
    let recorder = Arc::new(Recorder::new());
    let epoch = Instant::now();
    let rss_at_start = rss_bytes();
    let total = slice.end - slice.start;
    // The endpoint lives as long as this call: dropping the sender stops it.
    let (_metrics_stop, metrics_stop) = watch::channel(false);
    if let Some(listener) = plan.metrics {
        crate::prometheus::serve(listener, recorder.clone(), total, metrics_stop)?;
    }
    let ctx = Arc::new(RunContext::new(
        plan.workload,
        recorder.clone(),
        epoch,
        slice.clone(),
        epoch + opts.duration,
        opts.drain,
    ));
    info!(
        connections = total,
        first = slice.start,
        targets = plan.targets.len(),
        sources = plan.sources.len(),
        duration = ?opts.duration,
        "starting"
    );

    let plan = Arc::new((plan.targets, plan.tls, plan.sources, plan.extras));
    let inflight = Arc::new(Semaphore::new(opts.max_inflight.max(1)));
    let mut tasks = JoinSet::new();
    let (ramp_done_tx, mut ramp_done) = watch::channel(false);
    let spawner = {
        let ctx = ctx.clone();
        let plan = plan.clone();
        let stop = stop.clone();
        let connect_timeout = opts.connect_timeout;
        let ramp = opts.ramp;
        let max_inflight = opts.max_inflight.max(1) as u32;
        tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            for (n, i) in slice.enumerate() {
                if *stop.borrow() || Instant::now() >= ctx.end {
                    break;
                }
                if ramp.is_finite() && ramp > 0.0 {
                    let due = epoch + Duration::from_secs_f64(n as f64 / ramp);
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                }
                let Ok(permit) = inflight.clone().acquire_owned().await else {
                    break;
                };
                let ctx = ctx.clone();
                let plan = plan.clone();
                let stop = stop.clone();
                tasks.spawn(connection_task(
                    i,
                    ctx,
                    plan,
                    connect_timeout,
                    permit,
                    inflight.clone(),
                    stop,
                ));
            }
            // The ramp is over once every attempt has resolved.
            let _ = inflight.acquire_many(max_inflight).await;
            let _ = ramp_done_tx.send(true);
            while tasks.join_next().await.is_some() {}
        })
    };
    tasks.spawn(async move {
        let _ = spawner.await;
    });

    // Progress, CPU sampling and the end of the run.
    let mut intervals = Vec::new();
    let mut cpu = CpuSample::of_self().ok();
    let mut cpu_percent_max: f64 = 0.0;
    let mut held_after_ramp = None;
    let mut rss_growth_bytes = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let finish_by = ctx.end + ctx.drain + FINISH_GRACE;
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let iv = recorder.interval();
                if let Some(prev) = cpu.take() {
                    if let Ok(now) = CpuSample::of_self() {
                        cpu_percent_max = cpu_percent_max.max(prev.percent_until(&now));
                        cpu = Some(now);
                    }
                }
                on_interval(&iv, &recorder);
                intervals.push(iv);
            }
            changed = ramp_done.changed(), if held_after_ramp.is_none() => {
                if changed.is_ok() {
                    // Joins travel with the upgrade; a short pause lets the
                    // server finish the last ones before anyone chats.
                    ctx.start_sending(Instant::now() + JOIN_SETTLE);
                    held_after_ramp = Some(recorder.open_connections());
                    rss_growth_bytes = rss_bytes() as i64 - rss_at_start as i64;
                }
            }
            _ = stop.changed(), if !interrupted => {
                interrupted = true;
                warn!("interrupted: closing every connection, then the summary");
            }
            done = tasks.join_next() => {
                if done.is_none() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(finish_by.into()) => {
                warn!(left = recorder.open_connections(), "connections still open after the grace period: dropping them");
                tasks.abort_all();
                break;
            }
        }
    }
    let last = recorder.interval();
    on_interval(&last, &recorder);
    intervals.push(last);
    let mut totals = recorder.totals();
    totals.elapsed_secs = epoch.elapsed().as_secs_f64();
    // "Held at end": every connection that lasted until we closed it (a
    // snapshot at the end would race with the first closes).
    totals.open_connections = totals
        .connects_ok
        .saturating_sub(totals.closes_unexpected_total() + totals.churned);
    Ok(Outcome {
        totals,
        intervals,
        held_after_ramp: held_after_ramp.unwrap_or(0),
        cpu_percent_max,
        threads: tokio::runtime::Handle::current().metrics().num_workers(),
        interrupted,
        rss_growth_bytes,
        processes: 1,
        failures: Vec::new(),
    })
}

/// The targets and source addresses, shared by every connection task.
type Endpoints = Arc<(
    Vec<Target>,
    Vec<Option<TlsSetup>>,
    Vec<IpAddr>,
    Arc<conn::UpgradeExtras>,
)>;

/// One connection slot's task: connect (boxed, so the upgrade's buffers
/// and timer are freed once it is done), then drive the connection; under
/// churn, reconnect each time it retires, until the end of the run.
async fn connection_task(
    i: u64,
    ctx: Arc<RunContext>,
    endpoints: Endpoints,
    connect_timeout: Duration,
    first_permit: OwnedSemaphorePermit,
    inflight: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) {
    let mut permit = Some(first_permit);
    let mut generation = 0;
    loop {
        let permit = match permit.take() {
            Some(p) => p,
            // Reconnects respect the cap on upgrades in flight too.
            None => match inflight.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let Some(mut up) =
            Box::pin(connect_once(i, &ctx, &endpoints, connect_timeout, permit)).await
        else {
            return;
        };
        let lifetime = ctx.workload.lifetime(i, generation);
        let role = ctx.workload.role(i);
        let mut client = Client::new(
            up.stream,
            &mut up.leftover,
            role,
            ctx.clone(),
            stop.clone(),
            lifetime,
        );
        drop(up.leftover);
        let closed = client.drive().await;
        let again = closed == Closed::Churn && Instant::now() < ctx.end && !*stop.borrow();
        // Retiring too late to reconnect is an ordinary end-of-run close.
        client.finish(match closed {
            Closed::Churn if !again => Closed::ByUs,
            other => other,
        });
        if !again {
            return;
        }
        generation += 1;
    }
}

/// One connect and upgrade of slot `i`, recorded.
async fn connect_once(
    i: u64,
    ctx: &RunContext,
    endpoints: &Endpoints,
    connect_timeout: Duration,
    permit: OwnedSemaphorePermit,
) -> Option<conn::Upgraded> {
    let (targets, tls, sources, extras) = &**endpoints;
    let t = (i % targets.len() as u64) as usize;
    let target = &targets[t];
    let role = ctx.workload.role(i);
    let opts = ConnectOptions {
        server: target.addr,
        source: (!sources.is_empty()).then(|| sources[(i % sources.len() as u64) as usize]),
        path_and_query: match ctx.workload.query(&role) {
            Some(q) => target.with_query(&q),
            None => target.path_and_query.clone(),
        },
        host: Some(target.host.clone()),
        extra: extras.clone(),
        tls: tls[t].clone(),
        timeout: connect_timeout,
        nodelay: true,
    };
    ctx.recorder.attempted();
    let started = Instant::now();
    let result = conn::connect(&opts).await;
    let up = match result {
        Ok(up) => {
            ctx.recorder.latency(Latency::Connect, started.elapsed());
            ctx.recorder.connected();
            Some(up)
        }
        Err(e) => {
            ctx.recorder.connect_failed(&e.kind());
            None
        }
    };
    // Released only once the attempt is recorded: the end of the ramp is
    // "every permit back", and "held after the ramp" is read right then.
    drop(permit);
    up
}

fn rss_bytes() -> u64 {
    Memory::of_self().map_or(0, |m| m.vm_rss_kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every held connection is one of these tasks: keep it small.
    #[tokio::test]
    async fn connection_task_future_stays_small() {
        let opts = crate::opts::Cli::run_opts_for_tests(["loadgen", "run", "ws://127.0.0.1:9/"]);
        let workload = Workload::from_opts(&opts).unwrap();
        let ctx = Arc::new(RunContext::new(
            workload,
            Arc::new(Recorder::new()),
            Instant::now(),
            0..1,
            Instant::now(),
            Duration::ZERO,
        ));
        let permit = Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap();
        let (_tx, stop) = watch::channel(false);
        let endpoints: Endpoints =
            Arc::new((Vec::new(), Vec::new(), Vec::new(), Default::default()));
        let task = connection_task(
            0,
            ctx,
            endpoints,
            Duration::ZERO,
            permit,
            Arc::new(Semaphore::new(1)),
            stop,
        );
        let size = std::mem::size_of_val(&task);
        eprintln!("connection task future: {size} bytes");
        assert!(size <= 896, "connection task future grew to {size} bytes");
    }
}
