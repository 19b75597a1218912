//! `loadgen run --metrics-listen` serves the run's figures while it runs.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{chat_server, Loadgen};
use testkit::Exposition;

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Scrapes `lg`'s endpoint at `addr` until `ready` holds, within 10 s.
/// Failed scrapes are retried: the endpoint is up only once loadgen has
/// started, and a connect to a port nobody listens on yet can even
/// connect to itself (same local and peer port) and read back garbage.
/// Fails at once, with loadgen's output, if the run ends first.
fn scrape_when(
    mut lg: Loadgen,
    addr: SocketAddr,
    mut ready: impl FnMut(&Exposition) -> bool,
) -> (Loadgen, Exposition) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = String::from("(no scrape answered)");
    loop {
        let failed = match rt.block_on(testkit::prom::scrape(addr)) {
            Ok(e) if ready(&e) => return (lg, e),
            Ok(e) => {
                seen = e.to_string();
                String::new()
            }
            Err(e) => format!("the last scrape failed: {e:#}; "),
        };
        let why = if lg.has_exited() {
            "the run ended before the expected figures showed"
        } else if std::time::Instant::now() >= deadline {
            "the expected figures never showed within 10 s"
        } else {
            std::thread::sleep(Duration::from_millis(25));
            continue;
        };
        lg.fail(&format!("{why}; {failed}the last answer:\n{seen}"));
    }
}

#[test]
fn a_running_load_is_scraped_with_the_connections_it_holds() {
    let server = chat_server();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let lg = Loadgen::spawn_json(&[
        "run",
        &server.url(),
        "-c",
        "40",
        "--chatters",
        "0.25",
        "--rate",
        "10",
        "--duration",
        "5s",
        "--metrics-listen",
        &listen,
        "--progress",
        "never",
    ]);
    let addr = listen.parse().unwrap();
    let (lg, exposition) = scrape_when(lg, addr, |e| {
        e.get("loadgen_connections_open", &[]) == Some(40.0)
            && e.get("loadgen_messages_sent_total", &[]).unwrap_or(0.0) > 0.0
    });
    assert_eq!(
        exposition.value("loadgen_connections_target", &[]).unwrap(),
        40.0
    );
    assert!(exposition.has("loadgen_latency_seconds_bucket"));
    let done = lg.wait(Duration::from_secs(20));
    done.assert_code(0);
    // The endpoint ends with the run.
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening after the run"
    );
}

#[test]
fn a_multi_process_run_serves_its_workers_merged_figures() {
    let server = chat_server();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let lg = Loadgen::spawn_json(&[
        "run",
        &server.url(),
        "--processes",
        "2",
        "-c",
        "40",
        "--chatters",
        "0.25",
        "--rate",
        "10",
        "--duration",
        "5s",
        "--metrics-listen",
        &listen,
        "--progress",
        "never",
    ]);
    let addr = listen.parse().unwrap();
    // Workers report every 2 s; both halves must be in the merged figures.
    let (lg, exposition) = scrape_when(lg, addr, |e| {
        e.get("loadgen_connections_open", &[]) == Some(40.0)
    });
    assert_eq!(
        exposition
            .value("loadgen_latency_seconds_count", &[("kind", "connect")])
            .unwrap(),
        40.0
    );
    assert_eq!(
        exposition.value("loadgen_connections_target", &[]).unwrap(),
        40.0
    );
    // The process figures are the workers' too: the CPU time the parent
    // and its two workers have used so far is all in the next scrape.
    let workers = children(lg.pid());
    assert_eq!(workers.len(), 2, "workers of {}: {workers:?}", lg.pid());
    let used: u64 = [lg.pid()]
        .iter()
        .chain(&workers)
        .map(|pid| cpu_ticks(*pid))
        .sum();
    let (lg, exposition) = scrape_when(lg, addr, |_| true);
    let reported = exposition.value("process_cpu_seconds_total", &[]).unwrap();
    // in clock ticks, so float rounding cannot tip the comparison
    let ticks_per_sec = promhttp::process::clock_ticks_per_sec() as f64;
    assert!(
        (reported * ticks_per_sec).round() as u64 >= used,
        "process_cpu_seconds_total {reported} s < {used} ticks used by loadgen and its workers"
    );
    lg.wait(Duration::from_secs(30)).assert_code(0);
}

/// The child processes of `pid`, from each of its threads' `children`
/// list (any thread may have started one).
fn children(pid: i32) -> Vec<i32> {
    let mut all = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        let list = std::fs::read_to_string(path).unwrap_or_default();
        all.extend(list.split_whitespace().map(|p| p.parse::<i32>().unwrap()));
    }
    all
}

/// User and system CPU time `pid` has used, in clock ticks, from /proc.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    promhttp::process::stat_cpu_ticks(&stat).unwrap()
}
