//! One coordinator's session: orders in, reports out, one phase at a time.
//! The session owns the phase it runs: if the coordinator goes away or the
//! agent shuts down, the phase is stopped (connections close politely)
//! rather than left loading a server nobody watches.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{info, warn};

use super::{allow, Shared};
use crate::control::{self, Order, PhaseJob, Report};
use crate::engine::{self, Outcome, Plan};
use crate::multiproc;
use crate::opts::{Processes, Progress};

/// A phase checked by Prepare, waiting for Start.
struct Prepared {
    phase: usize,
    job: PhaseJob,
    processes: u64,
    /// Built (and checked) at Prepare for a single-process phase.
    plan: Option<Plan>,
}

struct Running {
    phase: usize,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub(super) async fn run(
    ws: WebSocketStream<TcpStream>,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
    let writer = tokio::spawn(async move {
        while let Some(report) = rx.recv().await {
            let Ok(text) = serde_json::to_string(&report) else {
                continue;
            };
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let _ = tx.send(Report::Hello {
        agent: shared.info.clone(),
    });
    let mut prepared: Option<Prepared> = None;
    let mut running: Option<Running> = None;
    let ended = loop {
        tokio::select! {
            msg = stream.next() => {
                let order = match msg {
                    None => break "the coordinator closed the connection".to_string(),
                    Some(Err(e)) => break format!("control connection failed: {e}"),
                    Some(Ok(Message::Close(_))) => break "the coordinator said goodbye".to_string(),
                    Some(Ok(Message::Text(text))) => serde_json::from_str::<Order>(text.as_str()),
                    Some(Ok(_)) => continue,
                };
                match order {
                    Ok(order) => {
                        if let Some(stop) = obey(order, shared, &tx, &mut prepared, &mut running).await {
                            break stop;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Report::Error { message: format!("unreadable order: {e}") });
                    }
                }
            }
            _ = shutdown.changed() => break "the agent is shutting down".to_string(),
            _ = finished(&mut running) => {
                running = None;
            }
        }
    };
    if let Some(r) = running.take() {
        info!(phase = r.phase, "stopping the running phase: {ended}");
        let _ = r.stop.send(true);
        let _ = r.task.await;
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// Resolves when the running phase's task ends; never without one.
async fn finished(running: &mut Option<Running>) {
    match running.as_mut() {
        Some(r) => {
            let _ = (&mut r.task).await;
        }
        None => std::future::pending().await,
    }
}

/// Carries out one order; `Some(reason)` ends the session.
async fn obey(
    order: Order,
    shared: &Arc<Shared>,
    tx: &mpsc::UnboundedSender<Report>,
    prepared: &mut Option<Prepared>,
    running: &mut Option<Running>,
) -> Option<String> {
    let tell = |message: String| {
        let _ = tx.send(Report::Error { message });
    };
    match order {
        Order::Hello { version } => {
            if version != control::VERSION {
                tell(format!(
                    "this agent speaks control version {}, the coordinator {version}: use the same build on both",
                    control::VERSION
                ));
                return Some(format!("control version mismatch ({version})"));
            }
        }
        Order::Prepare { phase, job } => {
            if let Some(r) = running {
                tell(format!("phase {} is still running", r.phase));
                return None;
            }
            let report = match prepare(phase, *job, shared).await {
                Ok(p) => {
                    let ready = Report::Ready {
                        phase,
                        processes: p.processes,
                    };
                    *prepared = Some(p);
                    ready
                }
                Err(e) => {
                    *prepared = None;
                    Report::Refused {
                        phase,
                        error: format!("{e:#}"),
                    }
                }
            };
            let _ = tx.send(report);
        }
        Order::Start { phase } => {
            if running.is_some() {
                tell("a phase is already running".to_string());
                return None;
            }
            match prepared.take() {
                Some(p) if p.phase == phase => {
                    let _ = tx.send(Report::Started {
                        phase,
                        unix_ms: control::unix_ms(),
                    });
                    *running = Some(start(p, tx.clone(), shared));
                }
                _ => tell(format!("phase {phase} was not prepared")),
            }
        }
        Order::Stop => {
            *prepared = None;
            if let Some(r) = running {
                let _ = r.stop.send(true);
            }
        }
    }
    None
}

/// Checks that this agent can carry `job`: a sane slice, allowed targets,
/// and addresses, ports and file limits enough for its share.
async fn prepare(phase: usize, mut job: PhaseJob, shared: &Shared) -> anyhow::Result<Prepared> {
    // Nothing the coordinator sends may make the agent write files or bind
    // ports of its choosing.
    job.opts.json = None;
    job.opts.metrics_listen = None;
    // Never serialized, so always `None` here; `ca_pem` carries the
    // contents instead.
    job.opts.ca_file = None;
    job.opts.progress = Progress::Never;
    job.opts.processes = Processes::Auto;
    job.opts.threads = shared.threads;
    let end = job.first.checked_add(job.count);
    if job.count == 0 || end.is_none_or(|end| end > job.opts.connections) {
        anyhow::bail!(
            "connections {}..+{} are not a slice of the phase's {}",
            job.first,
            job.count,
            job.opts.connections
        );
    }
    let allow = shared.allow.clone();
    let nofile = shared.info.nofile;
    tokio::task::spawn_blocking(move || -> anyhow::Result<Prepared> {
        let targets = crate::target::parse_targets(&job.opts.targets)?;
        if let Some(why) = allow::refused(&allow, &targets) {
            anyhow::bail!(why);
        }
        // A share crowding one (source, target) pair past half the port
        // range is warned about in the agent's log; the coordinator chose
        // the addresses, so none are picked here. Errors are Plan::new's.
        if let Ok(sources) = crate::source_plan::for_run(&job.opts, job.count, false) {
            sources.log();
        }
        let processes = multiproc::processes_for_share(Processes::Auto, job.count, nofile);
        let plan = Plan::new(&job.opts, job.count, processes)
            .context("this agent cannot take its share")?;
        Ok(Prepared {
            phase,
            processes,
            plan: (processes == 1).then_some(plan),
            job,
        })
    })
    .await
    .context("checking the phase")?
}

/// Starts the prepared phase; its figures stream through `tx`.
fn start(p: Prepared, tx: mpsc::UnboundedSender<Report>, shared: &Arc<Shared>) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let phase = p.phase;
    shared.phase.store(phase + 1, Ordering::Relaxed);
    shared.phases_run.fetch_add(1, Ordering::Relaxed);
    let shared = shared.clone();
    info!(
        phase,
        first = p.job.first,
        count = p.job.count,
        processes = p.processes,
        "phase starting"
    );
    let task = tokio::spawn(async move {
        let job = p.job;
        let slice = job.first..job.first + job.count;
        let interval_tx = tx.clone();
        let send_interval = move |iv: &crate::stats::Interval| {
            let _ = interval_tx.send(Report::Interval {
                phase,
                interval: iv.clone(),
            });
        };
        let snapshot = shared.snapshot.clone();
        let count = job.count;
        let outcome = match p.plan {
            Some(plan) => {
                let mut seconds = 0usize;
                engine::run(
                    &job.opts,
                    plan,
                    slice,
                    job.host_clock.as_ref(),
                    stop_rx,
                    |iv, recorder| {
                        send_interval(iv);
                        // Full totals cost milliseconds: often enough for scrapes.
                        seconds += 1;
                        if seconds.is_multiple_of(multiproc::TOTALS_EVERY_SECS) {
                            snapshot.set(recorder.totals(), count);
                        }
                    },
                )
                .await
            }
            None => {
                let mut jobs = multiproc::jobs_for_slice(
                    &job.opts,
                    slice,
                    p.processes,
                    job.host_clock.as_ref(),
                );
                for j in &mut jobs {
                    j.stream_totals = true;
                }
                multiproc::run(jobs, None, Some(snapshot.clone()), stop_rx, send_interval).await
            }
        };
        let outcome = outcome.unwrap_or_else(|e| {
            warn!(phase, "phase failed: {e:#}");
            failed_outcome(format!("{e:#}"))
        });
        info!(phase, held = outcome.totals.open_connections, "phase done");
        snapshot.set(outcome.totals.clone(), count);
        shared.phase.store(0, Ordering::Relaxed);
        let _ = tx.send(Report::Done {
            phase,
            outcome: Box::new(outcome),
        });
    });
    Running { phase, stop, task }
}

fn failed_outcome(why: String) -> Outcome {
    Outcome {
        failures: vec![why],
        ..Outcome::default()
    }
}
