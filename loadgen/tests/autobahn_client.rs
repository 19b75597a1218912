//! loadgen's reading of RFC 6455 judged by Autobahn: kosoku's fuzzing
//! server (from `.ci/install-kosoku`, path in `KOSOKU`) plays sections 1–7,
//! 9 and 10 to the `autobahn-testee` binary, which echoes with loadgen's
//! own connect, frame reader and writer; every case's verdict must be at
//! least as good as `tests/autobahn/expected.json` says.
//!
//! Without `KOSOKU` the test fails rather than skips: a conformance check
//! that quietly does not run is worse than none.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const TESTEE: &str = env!("CARGO_BIN_EXE_autobahn-testee");
/// The whole run takes ~15 s in a debug build on a loaded 2-core machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
/// For kosoku to bind, and to write its reports after the run.
const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// Kills a child process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Verdicts from best to worst; anything else (kosoku's ERROR) is worst.
fn rank(behavior: &str) -> usize {
    const ORDER: [&str; 5] = [
        "OK",
        "NON-STRICT",
        "INFORMATIONAL",
        "UNIMPLEMENTED",
        "FAILED",
    ];
    ORDER
        .iter()
        .position(|b| *b == behavior)
        .unwrap_or(ORDER.len())
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("expected.json: {key:?} is not a list"))
        .iter()
        .map(|s| s.as_str().expect("expected.json: a string").to_string())
        .collect()
}

/// Waits for `child` to exit, killing it at `deadline`.
fn wait_until(child: &mut Child, deadline: Instant, what: &str) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{what} did not finish in time (killed)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn autobahn_fuzzing_server_judges_loadgens_client() {
    let Some(kosoku) = std::env::var_os("KOSOKU") else {
        panic!(
            "KOSOKU is not set: run `export KOSOKU=$(.ci/install-kosoku)` \
             (installs kosoku, Autobahn's fuzzing server, under target/) and test again"
        );
    };
    let expected_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/autobahn/expected.json");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&expected_path).expect("reading tests/autobahn/expected.json"),
    )
    .expect("tests/autobahn/expected.json is JSON");
    let cases: BTreeMap<String, String> = expected["cases"]
        .as_object()
        .expect("expected.json: \"cases\" is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("a behavior").to_string()))
        .collect();
    for (case, behavior) in &cases {
        assert!(
            behavior == "OK" || expected["why"][case].is_string(),
            "expected.json: case {case} is {behavior} without a \"why\""
        );
    }

    let outdir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("autobahn-client");
    let _ = std::fs::remove_dir_all(&outdir);
    let mut server = Command::new(&kosoku);
    server
        .args(["-m", "fuzzingserver", "127.0.0.1:0", "-o"])
        .arg(&outdir);
    for case in strings(&expected, "include") {
        server.args(["-i", &case]);
    }
    for case in strings(&expected, "exclude") {
        server.args(["-x", &case]);
    }
    let mut server = Killed(
        server
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {kosoku:?}: {e}")),
    );
    // kosoku says where it listens on stderr; the rest of its stderr is
    // kept for the failure message.
    let stderr = server.0.stderr.take().expect("kosoku's stderr");
    let (tx, rx) = mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("fuzzingserver listening on ws://") {
                let _ = tx.send(addr.trim().to_string());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let addr = match rx.recv_timeout(SERVER_TIMEOUT) {
        Ok(addr) => addr,
        Err(_) => {
            drop(server);
            panic!(
                "kosoku did not start listening: {}",
                log.join().unwrap_or_default()
            );
        }
    };

    let started = Instant::now();
    let mut testee = Killed(
        Command::new(TESTEE)
            .arg(&addr)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting autobahn-testee"),
    );
    let status = wait_until(&mut testee.0, started + RUN_TIMEOUT, "autobahn-testee");
    assert!(status.success(), "autobahn-testee: {status}");
    eprintln!(
        "autobahn: {} cases in {:.1?}",
        cases.len(),
        started.elapsed()
    );
    let status = wait_until(
        &mut server.0,
        Instant::now() + SERVER_TIMEOUT,
        "kosoku (writing its reports)",
    );
    let kosoku_log = log.join().unwrap_or_default();
    // kosoku exits 1 when a case is not OK (UNIMPLEMENTED included): the
    // per-case reports are the verdicts, and it must have written them.
    assert!(
        status.code().is_some(),
        "kosoku ended by a signal: {status}\n{kosoku_log}"
    );

    let mut worse = Vec::new();
    let mut counts: BTreeMap<(u32, String), usize> = BTreeMap::new();
    for (case, want) in &cases {
        let file = outdir.join(format!("loadgen_case_{}.json", case.replace('.', "_")));
        let got = match std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        {
            Some(report) => report["behavior"].as_str().unwrap_or("?").to_string(),
            None => {
                worse.push(format!("{case}: no report ({})", file.display()));
                continue;
            }
        };
        let section: u32 = case
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        *counts.entry((section, got.clone())).or_default() += 1;
        if rank(&got) > rank(want) {
            worse.push(format!("{case}: {got}, expected {want}"));
        } else if rank(&got) < rank(want) {
            eprintln!("autobahn: {case} is now {got} (expected.json says {want}): update it");
        }
    }
    // A case kosoku ran that the file does not list is not judged: list it.
    let listed = std::fs::read_dir(&outdir)
        .expect("kosoku's report directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("loadgen_case_") && n.ends_with(".json"))
        .count();
    if listed != cases.len() {
        worse.push(format!(
            "kosoku reported {listed} cases, expected.json lists {}",
            cases.len()
        ));
    }
    for ((section, behavior), n) in &counts {
        eprintln!("autobahn: section {section}: {n} {behavior}");
    }
    assert!(
        worse.is_empty(),
        "cases worse than tests/autobahn/expected.json (reports in {}):\n{}\n{kosoku_log}",
        outdir.display(),
        worse.join("\n")
    );
}
