//! `loadgen`: see `loadgen run --help`.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use loadgen::agent::{self, AgentOpts};
use loadgen::engine::{self, Outcome, Plan};
use loadgen::multiproc::{self, Job, WorkerLine};
use loadgen::opts::{Cli, Command, Progress, RunOpts};
use loadgen::signals::StopSignals;
use loadgen::{capacity, printer, report, source_plan, verdict};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Worker) => worker().map(|()| ExitCode::SUCCESS),
        Some(Command::Agent(opts)) => agent(opts).map(|()| ExitCode::SUCCESS),
        _ => cli.into_run().map_err(anyhow::Error::msg).and_then(run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    builder.enable_all().build().context("starting the runtime")
}

/// SIGINT and SIGTERM caught from now on: either ends the run early with
/// what was measured (see [`loadgen::signals`]).
fn stop_signals() -> anyhow::Result<StopSignals> {
    StopSignals::listen().context("listening for SIGINT and SIGTERM")
}

/// `--ca-file`'s contents, checked to hold at least one certificate so a
/// wrong file fails before anything connects (exit 2).
fn read_ca_file(path: &std::path::Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("--ca-file {}: cannot read it", path.display()))?;
    loadgen::transport::parse_ca_pem(&pem)
        .with_context(|| format!("--ca-file {}", path.display()))?;
    Ok(pem)
}

/// A room prefix no other run is likely to use.
fn run_prefix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("lg{:06x}-", h.finish() & 0xff_ffff)
}

fn run(mut opts: RunOpts) -> anyhow::Result<ExitCode> {
    if let Some(path) = &opts.ca_file {
        opts.ca_pem = Some(read_ca_file(path)?);
    }
    // Chosen once here, so every worker process uses the same rooms.
    opts.room_prefix.get_or_insert_with(run_prefix);
    // Source addresses before anything else: picked ones go to every
    // worker with the options, and the capacity check counts them.
    let sources = source_plan::for_run(&opts, opts.connections, true)?;
    sources.log();
    if let Some(picked) = &sources.picked {
        opts.source_ips = Some(picked.clone());
    }
    let processes = multiproc::processes_for(&opts, capacity::raise_nofile());
    // Checked here for the whole run, so a plan that cannot fit fails
    // before any process starts.
    let plan = Plan::new(&opts, opts.connections, processes)?;
    let show_progress = match opts.progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let started = std::time::Instant::now();
    let progress = |iv: &loadgen::stats::Interval| {
        if show_progress {
            eprintln!(
                "{}",
                printer::progress_line(iv, opts.connections, started.elapsed())
            );
        }
    };
    let (outcome, signals): (Outcome, StopSignals) = runtime(opts.threads)?.block_on(async {
        let signals = stop_signals()?;
        let stop = signals.flag();
        let outcome = if processes > 1 {
            tracing::info!(processes, "spreading the connections over worker processes");
            multiproc::run(
                multiproc::jobs(&opts, processes),
                plan.metrics,
                None,
                stop,
                progress,
            )
            .await
        } else {
            engine::run(&opts, plan, 0..opts.connections, None, stop, |iv, _| {
                progress(iv)
            })
            .await
        }?;
        anyhow::Ok((outcome, signals))
    })?;

    let mut verdict = verdict::judge(&opts, &outcome, signals.received());
    let half = source_plan::half_range(sources.port_range);
    verdict.notes.extend(sources.notes());
    verdict.notes.extend(verdict::ramp_note(
        &opts,
        &outcome,
        sources.busiest_pair,
        half,
    ));
    let info = verdict.run_info(&opts, &outcome);
    println!("{}", printer::summary(&outcome.totals, &info));
    if let Some(path) = &opts.json {
        report::write_json(path, &info, &outcome.totals, &outcome.intervals)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for problem in &verdict.problems {
        eprintln!("loadgen: {problem}");
    }
    Ok(if verdict.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `loadgen agent`: serves coordinators until SIGINT or SIGTERM, then stops
/// a running phase (its coordinator still gets what was measured) and
/// exits 0: being stopped is how an agent's life normally ends.
fn agent(opts: AgentOpts) -> anyhow::Result<()> {
    runtime(opts.threads)?.block_on(async {
        // Before the ready line: whoever started us may signal right after.
        let signals = stop_signals()?;
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listening on {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let metrics = match opts.metrics_listen {
            Some(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("--metrics-listen {at}"))?,
            ),
            None => None,
        };
        let metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
        println!("{}", agent::ready_line(addr, metrics_addr));
        let _ = std::io::stdout().flush();
        agent::serve(listener, metrics, &opts, signals.flag()).await
    })
}

/// One process of a `--processes` run: the job comes on stdin, each
/// second's figures and the outcome go to stdout as JSON lines.
fn worker() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the job")?;
    let job: Job = serde_json::from_str(&input).context("parsing the job")?;
    let plan = Plan::new(&job.opts, job.count, 1)?;
    let emit = |line: &WorkerLine| {
        let mut out = std::io::stdout().lock();
        // The parent reads these; if it is gone there is no one to tell.
        if let Ok(text) = serde_json::to_string(line) {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    };
    let outcome = runtime(job.opts.threads)?.block_on(async {
        // SIGTERM too, not only the parent's SIGINT: systemd (the whole
        // cgroup), `timeout` and a terminal (the process group) signal the
        // workers themselves.
        let stop = stop_signals()?.flag();
        let mut seconds: usize = 0;
        let slice = job.first..job.first + job.count;
        engine::run(
            &job.opts,
            plan,
            slice,
            job.clock.as_ref(),
            stop,
            |iv, recorder| {
                emit(&WorkerLine::Interval(iv.clone()));
                seconds += 1;
                if job.stream_totals && seconds.is_multiple_of(multiproc::TOTALS_EVERY_SECS) {
                    emit(&WorkerLine::Totals(Box::new(recorder.totals())));
                }
            },
        )
        .await
    })?;
    emit(&WorkerLine::Done(Box::new(outcome)));
    Ok(())
}
