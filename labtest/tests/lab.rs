//! The lab's monitoring proven against real processes: promtool accepts
//! prometheus.yml and alerts.yml; then, on loopback, the real server, two
//! real `loadgen agent`s, the real coordinator running a scenario, the
//! node exporter, and a real Prometheus running the lab's prometheus.yml
//! (only its targets pointed here) and its alert rules. While a phase
//! runs, every query of every dashboard panel and every alert rule is
//! evaluated by that Prometheus and must work and find data.
//!
//! Needs Debian's `prometheus` (prometheus, promtool) and
//! `prometheus-node-exporter`; without them these tests print a note and
//! pass, unless REQUIRE_PROMTOOL=1 (CI), which makes a missing one a
//! failure. `PROMETHEUS`, `PROMTOOL` and `NODE_EXPORTER` override the
//! paths. The server, loadgen and coordinator binaries must be built
//! (`cargo test --workspace` builds them; alone: `cargo build -p server
//! -p loadgen -p coordinator`).
//!
//! Grafana itself is not run. Its variables are replaced by what Grafana
//! would send with the provisioned datasource (`timeInterval: 5s`) and
//! "All" selected (`labtest::grafana::BUILTINS`):
//!
//! | in a panel query | becomes |
//! |---|---|
//! | `$__rate_interval` | `20s` (4 × the 5 s scrape interval) |
//! | `$__interval` | `5s` |
//! | `$__range` | `1m` |
//! | `$agent`, `$instance` (any query variable) | its `allValue`, `.*` |

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use labtest::alerts;
use labtest::grafana::{self, Dashboard};
use labtest::prom_api::{self, Prometheus};
use labtest::promql;
use labtest::scrape_config;
use testkit::{AgentProcess, ServerProcess};

const TOKEN: &str = "labtest-agent-token-0123456789";
const DASHBOARDS: [&str; 3] = ["server", "loadtest", "host"];

/// Alerts the lab's operators were promised (docs and the lead's brief).
const REQUIRED_ALERTS: [&str; 5] = [
    "AgentCpuSaturated",
    "ConnectErrorRatioHigh",
    "ServerDroppingMessages",
    "ConnectionsFarBelowTarget",
    "TargetDown",
];

/// Metric name prefixes the node exporter only has on some hosts. A query
/// that reads nothing else may find no series, but only where the node
/// exporter here does not export that prefix at all, so a misspelt name
/// still fails wherever the host has it.
const HOST_DEPENDENT: [&str; 1] = ["node_nf_conntrack_"];

/// Alerts whose condition depends on the whole machine (other processes
/// included), so a healthy run of ours may still meet it.
const MACHINE_WIDE: [&str; 2] = ["HostListenQueueOverflows", "HostConntrackNearFull"];

fn root() -> PathBuf {
    labtest::repo_root()
}

fn dashboards() -> Vec<Dashboard> {
    DASHBOARDS
        .iter()
        .map(|n| {
            let file = format!("grafana/dashboards/{n}.json");
            let mut d = Dashboard::load(&root().join(&file)).unwrap();
            d.file = file;
            d
        })
        .collect()
}

fn rules() -> Vec<alerts::Rule> {
    alerts::load(&root().join("prometheus/alerts.yml")).unwrap()
}

/// A tool from Debian's packages: its path, or `None` after a note when it
/// is missing and not required.
fn tool(env: &str, default: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    let found = if path.components().count() == 1 {
        // a bare name: look on the PATH
        Command::new(&path)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    } else {
        path.is_file()
    };
    if found {
        return Some(path);
    }
    if promhttp::promtool::required() {
        panic!(
            "REQUIRE_PROMTOOL=1 but {} is missing: install Debian's `{package}` package or set {env}",
            path.display()
        );
    }
    eprintln!(
        "note: skipped: {} is missing (Debian package `{package}`, or set {env}); REQUIRE_PROMTOOL=1 makes this a failure",
        path.display()
    );
    None
}

/// A temporary directory, removed on drop (after the processes using it,
/// which are declared later and so dropped first).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "labtest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process with its output in a log file; killed on drop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { name, child, log }
    }

    /// The end of its log, for failure messages.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!(
            "--- {} log (last lines)\n{}",
            self.name,
            lines[from..].join("\n")
        )
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free now on loopback, for programs that cannot report the one
/// they bound (the node exporter, Prometheus) or whose address must be in
/// the scrape config before they start (the coordinator).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ok` every 200 ms for up to `within`.
fn wait_for(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    ok()
}

#[test]
fn promtool_accepts_the_config_and_the_rules() {
    let Some(promtool) = tool("PROMTOOL", &promhttp::promtool::program(), "prometheus") else {
        return;
    };
    let run = |args: &[&str]| {
        Command::new(&promtool)
            .args(args)
            .current_dir(root())
            .output()
            .unwrap()
    };
    for args in [
        ["check", "config", "prometheus/prometheus.yml"],
        ["check", "rules", "prometheus/alerts.yml"],
    ] {
        let out = run(&args);
        assert!(
            out.status.success(),
            "promtool {}: {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The checker can fail: a rule whose expression does not parse.
    let dir = TempDir::new();
    let bad = dir.0.join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(up[1m] > 1\n",
    )
    .unwrap();
    let out = run(&["check", "rules", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "promtool accepted a broken rule");
}

#[test]
fn dashboards_are_well_formed() {
    let boards = dashboards();
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for d in &boards {
        problems.extend(d.static_problems());
        let uid = d.json["uid"].as_str().unwrap_or("").to_string();
        if !uids.insert(uid.clone()) {
            problems.push(format!("{}: uid {uid:?} used by another dashboard", d.file));
        }
        match d.queries() {
            Ok(qs) => {
                for q in qs {
                    if let Err(e) = promql::metric_names(&q.expr) {
                        problems.push(format!("{}: {e}", q.place));
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
        if let Err(e) = d.label_values() {
            problems.push(e.to_string());
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );

    // The panels' datasource uid is the provisioned one.
    let ds: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("grafana/provisioning/datasources/prometheus.yml"))
            .unwrap(),
    )
    .unwrap();
    let source = &ds["datasources"][0];
    assert_eq!(source["uid"].as_str(), Some(grafana::DATASOURCE_UID));
    assert_eq!(source["name"].as_str(), Some("Prometheus"));
    assert_eq!(source["url"].as_str(), Some("http://prometheus:9090"));
    assert_eq!(source["isDefault"].as_bool(), Some(true));
    let provider: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("grafana/provisioning/dashboards/dashboards.yml"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        provider["providers"][0]["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );
}

#[test]
fn alert_rules_are_complete() {
    let rules = rules();
    let problems = alerts::problems(&rules);
    assert!(
        problems.is_empty(),
        "alert rule problems:\n{}",
        problems.join("\n")
    );
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r.alert.as_deref()).collect();
    for required in REQUIRED_ALERTS {
        assert!(names.contains(required), "no alert {required} in {names:?}");
    }
}

/// What was wrong with the expressions, one entry each.
#[derive(Default)]
struct Findings {
    bad: Vec<String>,
    notes: Vec<String>,
    checked: usize,
}

struct Checker<'a> {
    prom: Prometheus,
    known: &'a BTreeSet<String>,
    /// The node exporter's exposition, for [`HOST_DEPENDENT`].
    node_text: &'a str,
}

impl Checker<'_> {
    /// Whether every name `names` reads is host-dependent and this host's
    /// node exporter has none of that prefix.
    fn absent_here(&self, names: &[String]) -> bool {
        !names.is_empty()
            && names.iter().all(|n| {
                HOST_DEPENDENT
                    .iter()
                    .any(|p| n.starts_with(p) && !self.node_text.contains(&format!("\n{p}")))
            })
    }

    /// `expr` must be accepted, read only names Prometheus knows, and,
    /// when `want_series`, return at least one series.
    fn check(&self, place: &str, expr: &str, want_series: bool, f: &mut Findings) {
        f.checked += 1;
        let names = match promql::metric_names(expr) {
            Ok(n) => n,
            Err(e) => {
                f.bad.push(format!("{place}: {e}\n    {expr}"));
                return;
            }
        };
        let absent_here = self.absent_here(&names);
        let unknown: Vec<&String> = names.iter().filter(|n| !self.known.contains(*n)).collect();
        if !unknown.is_empty() && !absent_here {
            f.bad.push(format!(
                "{place}: Prometheus has never seen {unknown:?}\n    {expr}"
            ));
            return;
        }
        match self.prom.query(expr) {
            Err(e) => f.bad.push(format!("{place}: {e}\n    {expr}")),
            Ok(series) if series.is_empty() && want_series => {
                if absent_here {
                    f.notes.push(format!(
                        "{place}: no series, and this host's node exporter has no {names:?}"
                    ));
                } else {
                    f.bad.push(format!("{place}: no series\n    {expr}"));
                }
            }
            Ok(_) => {}
        }
    }
}

fn scenario(dir: &Path, server: &ServerProcess, agents: &[&AgentProcess]) -> PathBuf {
    let list: Vec<String> = agents.iter().map(|a| format!("\"{}\"", a.addr)).collect();
    // Two phases: thresholds are judged when a phase ends, so the short
    // first one gives coordinator_threshold_passing its series while the
    // second one runs and is measured (about 12 to 25 s into it; the
    // test stops everything once it has measured, without waiting for
    // the end).
    let text = format!(
        "name: labtest
target:
  urls: [\"{url}\"]
  workload: chat-binary
agents:
  static: [{agents}]
phases:
  - name: warmup
    duration: 4s
    connections: 100
    ramp: 1000
    rooms: 5
    chatters: 0.1
    rate: 2
    drain: 1s
    thresholds: [\"connections_held >= 100\", \"messages_lost == 0\"]
  - name: chat
    duration: 35s
    connections: 400
    ramp: 400
    rooms: 8
    chatters: 0.1
    rate: 2
    drain: 1s
thresholds:
  - connect_errors_ratio < 0.01
  - messages_lost == 0
",
        url = server.url(),
        agents = list.join(", ")
    );
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `query`'s single value, if it has exactly one series.
fn scalar(prom: &Prometheus, query: &str) -> Option<f64> {
    match prom.query(query) {
        Ok(s) if s.len() == 1 => s[0].number(),
        _ => None,
    }
}

#[test]
fn every_query_finds_data_in_a_real_run() {
    let started = Instant::now();
    let Some(prometheus) = tool("PROMETHEUS", "/usr/bin/prometheus", "prometheus") else {
        return;
    };
    let Some(node_exporter) = tool(
        "NODE_EXPORTER",
        "/usr/bin/prometheus-node-exporter",
        "prometheus-node-exporter",
    ) else {
        return;
    };
    let boards = dashboards();
    let rules = rules();
    let dir = TempDir::new();

    let server =
        ServerProcess::spawn(testkit::server_bin().to_str().unwrap(), &["--workers", "2"]).unwrap();
    let server_metrics = server.metrics.expect("the server serves metrics");
    let loadgen = testkit::workspace_bin("loadgen");
    let agents = [
        AgentProcess::spawn(&loadgen, TOKEN, &["--metrics-listen", "127.0.0.1:0"]).unwrap(),
        AgentProcess::spawn(&loadgen, TOKEN, &["--metrics-listen", "127.0.0.1:0"]).unwrap(),
    ];
    let agent_metrics: Vec<String> = agents
        .iter()
        .map(|a| a.metrics.expect("the agent serves metrics").to_string())
        .collect();

    let node_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let node = Proc::spawn(
        "node-exporter",
        Command::new(&node_exporter).arg(format!("--web.listen-address={node_addr}")),
        &dir.0,
    );
    assert!(
        wait_for(Duration::from_secs(10), || matches!(
            prom_api::http_get(node_addr, "/metrics"),
            Ok((200, _))
        )),
        "the node exporter did not answer on {node_addr}\n{}",
        node.tail()
    );

    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let coord_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let targets: BTreeMap<String, Vec<String>> = [
        ("prometheus", vec![prom_addr.to_string()]),
        ("server", vec![server_metrics.to_string()]),
        ("agents", agent_metrics.clone()),
        ("coordinator", vec![coord_addr.to_string()]),
        ("node", vec![node_addr.to_string()]),
    ]
    .into_iter()
    .map(|(j, a)| (j.to_string(), a))
    .collect();
    let config_dir = root().join("prometheus");
    let config = scrape_config::rewrite(
        &std::fs::read_to_string(config_dir.join("prometheus.yml")).unwrap(),
        &targets,
        &config_dir,
    )
    .unwrap();
    let config_path = dir.0.join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let prom_proc = Proc::spawn(
        "prometheus",
        Command::new(&prometheus).args([
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.0.join("data").display()),
            format!("--web.listen-address={prom_addr}"),
            "--log.level=warn".to_string(),
        ]),
        &dir.0,
    );
    let prom = Prometheus::new(prom_addr);
    assert!(
        wait_for(Duration::from_secs(20), || prom.ready()),
        "Prometheus was not ready within 20 s\n{}",
        prom_proc.tail()
    );

    let scenario = scenario(&dir.0, &server, &agents.iter().collect::<Vec<_>>());
    let mut coordinator = Proc::spawn(
        "coordinator",
        Command::new(testkit::workspace_bin("coordinator"))
            .args(["run", scenario.to_str().unwrap(), "--metrics-listen"])
            .arg(coord_addr.to_string())
            .args(["--progress", "never", "-o"])
            .arg(dir.0.join("out"))
            .env("LOADGEN_AGENT_TOKEN", TOKEN),
        &dir.0,
    );

    // Wait until Prometheus has seen the measured phase for 12 s (so a
    // 20 s rate window holds two or more of its scrapes) and every target
    // has answered three scrapes in the last minute.
    let coord_started = Instant::now();
    let mut phase2_seen: Option<Instant> = None;
    loop {
        if let Some(status) = coordinator.exited() {
            panic!(
                "the coordinator exited ({status}) before the measurement\n{}",
                coordinator.tail()
            );
        }
        if phase2_seen.is_none() && scalar(&prom, "coordinator_phase") == Some(2.0) {
            phase2_seen = Some(Instant::now());
        }
        let scrapes: BTreeMap<String, f64> = prom
            .query("sum_over_time(up[1m])")
            .map(|s| {
                s.iter()
                    .map(|s| {
                        (
                            format!(
                                "{}/{}",
                                s.labels.get("job").map_or("?", |v| v.as_str()),
                                s.labels.get("instance").map_or("?", |v| v.as_str())
                            ),
                            s.number().unwrap_or(0.0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let all_scraped = scrapes.len() == 6 && scrapes.values().all(|n| *n >= 3.0);
        if all_scraped && phase2_seen.is_some_and(|t| t.elapsed() >= Duration::from_secs(12)) {
            break;
        }
        assert!(
            coord_started.elapsed() < Duration::from_secs(32),
            "not ready to measure 32 s after the coordinator started: phase 2 seen {:?} ago, successful scrapes in the last minute {scrapes:?}\n{}\n{}",
            phase2_seen.map(|t| t.elapsed()),
            coordinator.tail(),
            prom_proc.tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let known = prom.known_names().unwrap();
    let node_text = prom_api::http_get(node_addr, "/metrics").unwrap().1;
    let checker = Checker {
        prom,
        known: &known,
        node_text: &node_text,
    };
    let mut f = Findings::default();

    for d in &boards {
        for q in d.queries().unwrap() {
            checker.check(&q.place, &q.expr, true, &mut f);
        }
        for v in d.label_values().unwrap() {
            let expr = format!("count by ({}) ({})", v.label, v.metric);
            checker.check(&v.place, &expr, true, &mut f);
        }
    }
    for r in &rules {
        let Some(name) = &r.alert else { continue };
        let place = format!("alert {}", r.place());
        let cmp = r.comparison().unwrap();
        checker.check(&format!("{place} (its left side)"), &cmp.left, true, &mut f);
        checker.check(&place, &r.expr, false, &mut f);
        // A healthy run meets no condition of ours: an alert true now is
        // written the wrong way round or measures the wrong thing.
        if !MACHINE_WIDE.contains(&name.as_str()) {
            if let Ok(series) = checker.prom.query(&r.expr) {
                if !series.is_empty() {
                    f.bad.push(format!(
                        "{place}: its condition is true on a healthy run: {series:?}\n    {}",
                        r.expr
                    ));
                }
            }
        }
    }

    // Prometheus itself loaded the rule file and evaluates every rule
    // without error.
    let (_, body) = checker.prom.get("/api/v1/rules").unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut evaluated = BTreeSet::new();
    for g in json["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap_or("?").to_string();
            if r["health"].as_str() != Some("ok") {
                f.bad.push(format!(
                    "Prometheus evaluates rule {name}: health {} {}",
                    r["health"], r["lastError"]
                ));
            }
            evaluated.insert(name);
        }
    }
    let in_file: BTreeSet<String> = rules.iter().filter_map(|r| r.alert.clone()).collect();
    assert_eq!(
        evaluated, in_file,
        "Prometheus did not load alerts.yml's rules"
    );

    // The measurement happened while the phase ran.
    assert_eq!(
        scalar(&checker.prom, "coordinator_phase"),
        Some(2.0),
        "the measured phase had ended before the queries were evaluated\n{}",
        coordinator.tail()
    );
    for n in &f.notes {
        eprintln!("note: {n}");
    }
    eprintln!(
        "checked {} expressions against a real run, {:.1} s after the start",
        f.checked,
        started.elapsed().as_secs_f64()
    );
    assert!(
        f.bad.is_empty(),
        "{} problems with the {} expressions evaluated against a real run:\n{}",
        f.bad.len(),
        f.checked,
        f.bad.join("\n")
    );
    drop(coordinator);
    drop(prom_proc);
    drop(node);
}
