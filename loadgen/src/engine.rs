//! One run of the load generator in this process: check that the
//! connections can exist, ramp them up at the asked rate with a cap on
//! upgrades in flight, let them work until the end, close them, and return
//! what was measured.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::capacity;
use crate::clock::{HostClock, PayloadClock};
use crate::conn::{self, ConnectOptions};
use crate::connection::{Client, RunContext};
use crate::opts::RunOpts;
use crate::proc_stats::{CpuMeter, HostCpuMeter, Memory};
use crate::saturation::Saturation;
use crate::source_ips;
use crate::stats::{Closed, Interval, Latency, Recorder, Totals};
use crate::target::{self, Target};
use crate::transport::{self, TlsSetup};
use crate::workload::Workload;
use rustls::pki_types::ServerName;

/// Between the end of the ramp and the first send.
const JOIN_SETTLE: Duration = Duration::from_millis(50);
/// How long closing may take after the drain before tasks are dropped.
pub const FINISH_GRACE: Duration = Duration::from_secs(5);

/// Everything a run produced. Serializable: a worker process sends its
/// outcome to the parent as one JSON line.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub totals: Totals,
    #[serde(skip)]
    pub intervals: Vec<Interval>,
    /// Connections open when the ramp had finished.
    pub held_after_ramp: u64,
    /// Cores the load generator could use: its runtime threads (all
    /// processes), at most the machine's cores.
    pub threads: usize,
    /// Whether the load generator or its host ran out of CPU in the seconds
    /// that carried measurements, and its busiest seconds.
    #[serde(default)]
    pub saturation: Saturation,
    /// How long the ramp took (from the start until every attempt had
    /// resolved), in seconds.
    #[serde(default)]
    pub ramp_secs: f64,
    /// Connections attempted during the ramp: with `ramp_secs`, the ramp
    /// that happened ([`Outcome::ramp_achieved`]), to set beside the one
    /// asked. Summed over processes and agents, as `ramp_secs` takes the
    /// longest.
    #[serde(default)]
    pub ramp_attempted: u64,
    /// How long senders sent: from the end of the ramp to the end of the
    /// run (or Ctrl-C). Message rates are per second of this.
    #[serde(default)]
    pub sending_secs: f64,
    /// Connections never attempted: the run ended before the ramp reached
    /// them.
    #[serde(default)]
    pub not_attempted: u64,
    /// Connections whose close handshake had not finished a grace period
    /// after the drain, dropped without it.
    #[serde(default)]
    pub dropped_at_end: u64,
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
    /// Connections per second the ramp achieved: attempted during the
    /// ramp over its length; None when there was no ramp to measure.
    pub fn ramp_achieved(&self) -> Option<f64> {
        achieved_ramp(self.ramp_secs, self.ramp_attempted)
    }
}

/// Connections per second of a ramp that attempted `attempted` in `secs`;
/// None when there was no ramp to measure.
pub fn achieved_ramp(secs: f64, attempted: u64) -> Option<f64> {
    (secs > 0.0 && attempted > 0).then(|| attempted as f64 / secs)
}

/// The cores `threads` runtime threads can really use on this machine.
pub fn usable_cores(threads: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    threads.clamp(1, cores)
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
            let extra_roots = match &opts.ca_pem {
                Some(pem) => transport::parse_ca_pem(pem).context("the CA certificates")?,
                None => Vec::new(),
            };
            let config =
                transport::client_config(opts.insecure, &extra_roots).context("setting up TLS")?;
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
        let per_target = workload.target_counts(connections, addrs.len());
        capacity::check_spread(
            connections,
            sources.len(),
            &addrs,
            &per_target,
            ports,
            nofile,
            processes,
        )?;
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
/// (Ctrl-C) with everything measured so far. `host_clock` names the other
/// connections on this host (other `--processes` workers, other agents),
/// whose copies this process can time too ([`crate::clock`]).
pub async fn run(
    opts: &RunOpts,
    plan: Plan,
    slice: Range<u64>,
    host_clock: Option<&HostClock>,
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
    let (clock, unshared) = PayloadClock::new(slice.clone(), host_clock);
    if let Some(why) = unshared {
        warn!("fan-out is timed between this process's own connections only: {why}");
    }
    let ctx = Arc::new(RunContext::new(
        plan.workload,
        recorder.clone(),
        epoch,
        clock,
        epoch + opts.duration,
        opts.drain,
        opts.loss_timeout,
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
    // The end of the ramp takes every permit back in one call, which counts
    // in u32; --max-inflight is bounded far below that anyway.
    let permits = opts.max_inflight.clamp(1, u32::MAX as usize) as u32;
    let inflight = Arc::new(Semaphore::new(permits as usize));
    let mut tasks = JoinSet::new();
    let (ramp_done_tx, mut ramp_done) = watch::channel(false);
    let spawned = Arc::new(AtomicU64::new(0));
    let spawner = {
        let spawned = spawned.clone();
        let ctx = ctx.clone();
        let plan = plan.clone();
        let stop = stop.clone();
        let connect_timeout = opts.connect_timeout;
        let ramp = opts.ramp;
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
                spawned.fetch_add(1, Ordering::Relaxed);
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
            let _ = inflight.acquire_many(permits).await;
            let _ = ramp_done_tx.send(true);
            let mut panics = Panics::default();
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = done {
                    panics.note(e);
                }
            }
            panics
        })
    };
    tasks.spawn(async move {
        match spawner.await {
            Ok(panics) => panics,
            Err(e) => {
                let mut panics = Panics::default();
                panics.note(e);
                panics
            }
        }
    });

    // Progress, CPU sampling and the end of the run.
    let mut intervals = Vec::new();
    let mut cpu = CpuMeter::of_self();
    let mut host = HostCpuMeter::start();
    let mut held_after_ramp = None;
    let mut ramp_secs = 0.0;
    let mut sending_from: Option<Instant> = None;
    // When Ctrl-C came, if it did.
    let mut stopped_at: Option<Instant> = None;
    let mut rss_growth_bytes = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let finish_by = ctx.end + ctx.drain + FINISH_GRACE;
    let mut panics = Panics::default();
    let mut dropped_at_end = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut iv = recorder.interval();
                iv.cpu_percent = cpu.percent_since_last().unwrap_or(0.0);
                (iv.host_cpu_percent, iv.steal_percent) = host.percent_since_last().unwrap_or_default();
                on_interval(&iv, &recorder);
                intervals.push(iv);
            }
            changed = ramp_done.changed(), if held_after_ramp.is_none() => {
                if changed.is_ok() {
                    // Joins travel with the upgrade; a short pause lets the
                    // server finish the last ones before anyone chats.
                    let from = Instant::now() + JOIN_SETTLE;
                    ctx.start_sending(from);
                    sending_from = Some(from);
                    ramp_secs = epoch.elapsed().as_secs_f64();
                    held_after_ramp = Some(recorder.open_connections());
                    rss_growth_bytes = rss_bytes() as i64 - rss_at_start as i64;
                }
            }
            _ = stop.changed(), if stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
                warn!("interrupted: closing every connection, then the summary");
            }
            done = tasks.join_next() => {
                match done {
                    None => break,
                    Some(Ok(p)) => panics = p,
                    Some(Err(e)) => panics.note(e),
                }
            }
            _ = tokio::time::sleep_until(finish_by.into()) => {
                dropped_at_end = recorder.open_connections();
                warn!(left = dropped_at_end, "connections still open after the grace period: dropping them");
                tasks.abort_all();
                break;
            }
        }
    }
    let mut last = recorder.interval();
    last.cpu_percent = cpu.percent_since_last().unwrap_or(0.0);
    (last.host_cpu_percent, last.steal_percent) = host.percent_since_last().unwrap_or_default();
    on_interval(&last, &recorder);
    intervals.push(last);
    let threads = usable_cores(tokio::runtime::Handle::current().metrics().num_workers());
    let saturation = Saturation::judge(&intervals, threads);
    let sending_secs = sending_from.map_or(0.0, |from| {
        let until = stopped_at.map_or(ctx.end, |s| s.min(ctx.end));
        until.saturating_duration_since(from).as_secs_f64()
    });
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
        threads,
        saturation,
        ramp_secs,
        // The ramp ends once the spawner has stopped and its attempts have
        // resolved: every slot it started was attempted during the ramp.
        ramp_attempted: spawned.load(Ordering::Relaxed),
        sending_secs,
        not_attempted: total.saturating_sub(spawned.load(Ordering::Relaxed)),
        dropped_at_end,
        interrupted: stopped_at.is_some(),
        rss_growth_bytes,
        processes: 1,
        failures: panics.failure().into_iter().collect(),
    })
}

/// Connection tasks that panicked. A panic is a bug in loadgen, but its
/// connection would otherwise still count as held, and the run could pass
/// on figures that were never measured.
#[derive(Default)]
struct Panics {
    count: u64,
    first: Option<String>,
}

impl Panics {
    fn note(&mut self, e: tokio::task::JoinError) {
        if !e.is_panic() {
            return;
        }
        self.count += 1;
        if self.first.is_none() {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            self.first = Some(msg);
        }
    }

    fn failure(&self) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "{} connection tasks panicked, a bug in loadgen (first: {}); the figures are incomplete",
                self.count,
                self.first.as_deref().unwrap_or("no message")
            )
        })
    }
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
    let (t, s) = ctx.workload.endpoints(i, targets.len(), sources.len());
    let target = &targets[t];
    let role = ctx.workload.role(i);
    let opts = ConnectOptions {
        server: target.addr,
        source: s.map(|s| sources[s]),
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

    #[tokio::test]
    async fn a_panicked_task_is_a_failure_with_its_message() {
        let mut panics = Panics::default();
        assert_eq!(panics.failure(), None);
        for _ in 0..2 {
            let e = tokio::spawn(async { panic!("slot 7 broke") })
                .await
                .unwrap_err();
            panics.note(e);
        }
        // a task aborted at the end of the run is not a panic
        let aborted = tokio::spawn(std::future::pending::<()>());
        aborted.abort();
        panics.note(aborted.await.unwrap_err());
        let failure = panics.failure().unwrap();
        assert!(
            failure.starts_with("2 connection tasks panicked"),
            "{failure}"
        );
        assert!(failure.contains("(first: slot 7 broke)"), "{failure}");
    }

    #[test]
    fn usable_cores_are_at_most_the_machines() {
        assert_eq!(usable_cores(0), 1);
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(usable_cores(cores * 6), cores);
    }

    /// Every held connection is one of these tasks: keep it small.
    #[tokio::test]
    async fn connection_task_future_stays_small() {
        let opts = crate::opts::Cli::run_opts_for_tests(["loadgen", "run", "ws://127.0.0.1:9/"]);
        let workload = Workload::from_opts(&opts).unwrap();
        let ctx = Arc::new(RunContext::new(
            workload,
            Arc::new(Recorder::new()),
            Instant::now(),
            PayloadClock::own(Instant::now(), 0..1),
            Instant::now(),
            Duration::ZERO,
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
