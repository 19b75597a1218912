//! RFC 6455 conformance: the Autobahn test suite's cases (run by kosoku,
//! their Python 3 runner) against the real server binary's `/echo`
//! endpoint (`--echo`), which reads frames with the chat path's
//! `MessageReader` behind the chat path's upgrade. Every case's outcome is
//! held to autobahn/expected.json: worse fails the test, better is printed
//! so the file can be raised.
//!
//! Needs `KOSOKU`, the path of the kosoku executable: `.ci/install-kosoku`
//! installs it and prints that path (`.ci/run` exports it). Without it the
//! test fails rather than skips, so CI cannot pass it by not running it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::ServerProcess;

/// The whole run is expected to take seconds; past this kosoku is stuck.
const KOSOKU_TIMEOUT: Duration = Duration::from_secs(300);

/// Autobahn's outcomes, best first.
const RANKS: [&str; 5] = [
    "OK",
    "NON-STRICT",
    "INFORMATIONAL",
    "UNIMPLEMENTED",
    "FAILED",
];

/// Lower is better; anything unknown counts as FAILED.
fn rank(behavior: &str) -> usize {
    RANKS
        .iter()
        .position(|r| *r == behavior)
        .unwrap_or(RANKS.len() - 1)
}

#[derive(Debug)]
struct Expected {
    include: Vec<String>,
    cases: BTreeMap<String, String>,
    why: BTreeMap<String, String>,
}

fn expected() -> Expected {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/autobahn/expected.json");
    let text = std::fs::read_to_string(&path).expect("tests/autobahn/expected.json is readable");
    let json: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    let strings = |key: &str| -> BTreeMap<String, String> {
        json[key]
            .as_object()
            .unwrap_or_else(|| panic!("expected.json has no {key:?} object"))
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .unwrap_or_else(|| panic!("{key}.{k} is a string"));
                (k.clone(), v.to_owned())
            })
            .collect()
    };
    let include = json["include"]
        .as_array()
        .expect("expected.json has an \"include\" list")
        .iter()
        .map(|v| v.as_str().expect("include holds strings").to_owned())
        .collect();
    Expected {
        include,
        cases: strings("cases"),
        why: strings("why"),
    }
}

/// The `(behavior, behaviorClose)` of every case kosoku reported in `dir`.
fn results(dir: &Path) -> BTreeMap<String, (String, String)> {
    let mut found = BTreeMap::new();
    let entries = std::fs::read_dir(dir).expect("kosoku's output directory exists");
    for entry in entries.flatten() {
        let path = entry.path();
        let is_case = path.extension().is_some_and(|e| e == "json")
            && path.file_name().is_some_and(|n| n != "index.json");
        if !is_case {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a case report is readable");
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let field = |name: &str| json[name].as_str().unwrap_or("FAILED").to_owned();
        let id = json["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no case id", path.display()));
        found.insert(id.to_owned(), (field("behavior"), field("behaviorClose")));
    }
    found
}

/// Case ids in suite order (1.2.10 after 1.2.9).
fn suite_order(id: &str) -> Vec<u32> {
    id.split('.')
        .map(|n| n.parse().unwrap_or(u32::MAX))
        .collect()
}

fn run_kosoku(kosoku: &str, url: &str, include: &[String], out: &Path) {
    let mut command = Command::new(kosoku);
    command.args(["-m", "fuzzingclient", url, "-o"]).arg(out);
    for glob in include {
        command.args(["-i", glob]);
    }
    // Two cases at a time: the slow ones (16 MiB echoes) overlap with the
    // many short ones, and CI has two cores.
    command.args(["-p", "2"]);
    let log = out.join("kosoku.log");
    let log_file = std::fs::File::create(&log).expect("kosoku's log can be created");
    let mut child = command
        .stdout(log_file.try_clone().expect("the log file handle clones"))
        .stderr(log_file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run KOSOKU={kosoku}: {e}"));
    let deadline = Instant::now() + KOSOKU_TIMEOUT;
    // Its exit status counts UNIMPLEMENTED cases as failures: the case
    // reports are judged instead, below.
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("kosoku did not finish within {KOSOKU_TIMEOUT:?}; its output:\n{text}");
            }
        }
    }
}

#[test]
fn echo_endpoint_passes_the_autobahn_cases() {
    let Ok(kosoku) = std::env::var("KOSOKU") else {
        panic!(
            "KOSOKU is not set: this test runs Autobahn's cases with kosoku; install it \
             with `.ci/install-kosoku` and run KOSOKU=$(.ci/install-kosoku) cargo test -p server --test autobahn"
        );
    };
    let expected = expected();
    for (id, behavior) in &expected.cases {
        assert!(
            RANKS.contains(&behavior.as_str()),
            "expected.json: case {id}: unknown behavior {behavior:?}"
        );
        if behavior != "OK" {
            assert!(
                expected.why.contains_key(id),
                "expected.json: case {id} is expected {behavior} but has no \"why\""
            );
        }
    }

    let server = ServerProcess::spawn(env!("CARGO_BIN_EXE_server"), &["--echo", "--no-metrics"])
        .expect("the server starts");
    let out: PathBuf = std::env::temp_dir().join(format!("wslab-autobahn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("the output directory can be created");
    let url = format!("ws://{}/echo", server.ws);
    let started = Instant::now();
    run_kosoku(&kosoku, &url, &expected.include, &out);
    let took = started.elapsed();
    drop(server);

    let got = results(&out);
    let mut worse = Vec::new();
    let mut better = Vec::new();
    let mut missing = Vec::new();
    let mut counts: BTreeMap<(u32, usize), usize> = BTreeMap::new();
    for (id, want) in &expected.cases {
        let Some((behavior, close)) = got.get(id) else {
            missing.push(id.clone());
            continue;
        };
        let section = suite_order(id)[0];
        *counts.entry((section, rank(behavior))).or_default() += 1;
        // The close handshake is held to the same bar as the case itself.
        let actual = rank(behavior).max(rank(close));
        if actual > rank(want) {
            worse.push(format!("{id}: {behavior} (close {close}), expected {want}"));
        } else if actual < rank(want) {
            better.push(format!("{id}: {behavior} (close {close}), expected {want}"));
        }
    }
    let mut unexpected: Vec<&String> = got
        .keys()
        .filter(|id| !expected.cases.contains_key(*id))
        .collect();
    unexpected.sort_by_key(|id| suite_order(id));

    eprintln!(
        "autobahn: {} cases in {:.1}s, reports in {}",
        got.len(),
        took.as_secs_f64(),
        out.display()
    );
    for ((section, behavior), n) in &counts {
        eprintln!("  section {section}: {n} {}", RANKS[*behavior]);
    }
    for line in &better {
        eprintln!("better than expected.json (update it): {line}");
    }
    let ok = worse.is_empty() && missing.is_empty() && unexpected.is_empty();
    if ok {
        let _ = std::fs::remove_dir_all(&out);
    }
    assert!(
        ok,
        "Autobahn cases worse than expected: {worse:#?}\nmissing from kosoku's reports: {missing:?}\n\
         run but not in expected.json: {unexpected:?}\n(reports and kosoku.log kept in {})",
        out.display()
    );
}
