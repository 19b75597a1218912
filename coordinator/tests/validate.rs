//! `coordinator validate` as people run it: the real binary on the shipped
//! scenarios and on broken fixtures (tests/scenarios/), checking the exit
//! code and that each problem names the file, the line and the key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validate(file: &Path, local: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    cmd.arg("validate").arg(file);
    if local {
        cmd.arg("--local");
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn shipped_scenarios_validate_for_their_mode() {
    for (name, local, summary) in [
        (
            "smoke",
            true,
            "ok (1 phase, 3000 connections at most, 3 agents)",
        ),
        (
            "broadcast",
            true,
            "ok (1 phase, 2000 connections at most, 2 agents)",
        ),
        (
            "churn",
            true,
            "ok (1 phase, 2000 connections at most, 2 agents)",
        ),
        (
            "1m",
            false,
            "ok (1 phase, 1000000 connections at most, 10 agents)",
        ),
        // The docker compose lab's: agents found through DNS at run time.
        (
            "local",
            false,
            "ok (1 phase, 16000 connections at most, agents: every address of agent:7070)",
        ),
    ] {
        let file = repo().join("scenarios").join(format!("{name}.yaml"));
        let out = validate(&file, local);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        assert_eq!(stdout, format!("{}: {summary}\n", file.display()), "{name}");
        assert_eq!(stderr, "", "{name}");
    }
}

#[test]
fn local_scenarios_need_local_and_the_million_cannot_run_locally() {
    let file = repo().join("scenarios/smoke.yaml");
    let out = validate(&file, false);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:10:3: target.urls: no target URLs",
            file.display()
        )),
        "{stderr}"
    );

    // Only on a machine whose open-file limit is below a million.
    let (soft, hard) = rlimit_nofile();
    if soft.max(hard) < 1_000_064 {
        let file = repo().join("scenarios/1m.yaml");
        let out = validate(&file, true);
        assert_eq!(out.status.code(), Some(2));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(":37:5: phases[0].connections: 1000000 connections cannot fit"),
            "{stderr}"
        );
    }
}

/// The open-file limits this test process runs with (the binary raises its
/// soft limit to the hard one).
fn rlimit_nofile() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0);
    (limit.rlim_cur, limit.rlim_max)
}

/// Each broken fixture: (file, --local, the problem lines expected on
/// stderr as `LINE:COLUMN: KEY: start of message`).
const BROKEN: &[(&str, bool, &[&str])] = &[
    (
        "unknown_key.yaml",
        false,
        &["15:5: phases[1].conections: unknown key `conections`, expected one of `name`"],
    ),
    (
        "wrong_type.yaml",
        false,
        &["12:18: phases[0].connections: invalid type: string \"lots\", expected u64"],
    ),
    (
        "bad_duration.yaml",
        false,
        &["11:15: phases[0].duration: \"5 minutes or so\" is not a duration"],
    ),
    (
        "chatters.yaml",
        false,
        &["13:5: phases[0].chatters: chatters must be between 0 and 1, not 1.5"],
    ),
    (
        "bad_room_distribution.yaml",
        false,
        &["13:24: phases[0].room_distribution: expected uniform or zipf:S with S > 0, got \"zipf:0\""],
    ),
    (
        "two_agent_forms.yaml",
        false,
        &["7:1: agents: give one of local, static and dns, not local and static"],
    ),
    (
        "unknown_metric.yaml",
        false,
        &["15:3: thresholds[1]: \"rtt_p95_ms\" is not a figure; did you mean rtt_p90_ms, rtt_p99_ms"],
    ),
    (
        "bad_threshold.yaml",
        false,
        &["13:37: phases[0].thresholds[1]: \"messages_lost = 0\" is not FIGURE OP NUMBER"],
    ),
    (
        "capacity.yaml",
        false,
        &["10:5: agents.static[0]: its share of phase \"big\", 30000 of phases[1].connections = 60000, cannot fit: 1 source address × 28232 ports × 1 target = 28232; give it 2 source addresses"],
    ),
    (
        "duplicate_phase.yaml",
        false,
        &["13:5: phases[1].name: \"hold\" is also the name of phases[0]; phase names must be unique"],
    ),
    (
        "bad_url.yaml",
        false,
        &["8:5: target.urls[1]: \"http://127.0.0.1:8080/\": only ws:// and wss:// URLs are supported"],
    ),
    (
        "many.yaml",
        false,
        &[
            "4:1: name: must not be empty",
            "7:13: target.headers[0]: \"Authorization Bearer x\" is not `Name: value`",
            "11:7: agents.static[0].weight: must be a number above 0, not 0",
            "12:5: agents.static[1]: \"10.0.0.2\" is not HOST:PORT",
            "15:5: phases[0].duration: must be longer than 0s",
            "16:5: phases[0].connections: must be at least 1",
            "17:5: phases[0].ramp: must be a number of connections per second above 0, not -5",
            "18:5: phases[0].chatters: chatters must be between 0 and 1, not 2",
            "19:5: phases[0].rate: rate must be 0.001 to 1000000 messages per second, not 0",
            "20:5: phases[0].size: size must be at least 24 bytes",
            "21:5: phases[0].rooms: rooms must be at least 1",
            "22:5: phases[0].churn: churn must be a number of connections per second, 0 (none) or 0.001 to 10000000, not -1",
            "23:5: phases[0].drain: 10m is longer than 1m",
            "24:18: phases[0].thresholds[0]: \"rtt_p99_ms < 50ms\": \"50ms\" is not a number",
            "26:3: output.dir: \"results/{scenario}\": {scenario} is not a placeholder",
        ],
    ),
];

#[test]
fn broken_fixtures_exit_2_naming_file_line_and_key() {
    for &(name, local, expected) in BROKEN {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scenarios")
            .join(name);
        let out = validate(&file, local);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{name}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{name}:\n{stderr}");
        for (line, want) in lines.iter().zip(expected) {
            let want = format!("{}:{want}", file.display());
            assert!(
                line.starts_with(&want),
                "{name}:\n  got  {line}\n  want {want}..."
            );
        }
    }
}

#[test]
fn every_fixture_is_tested() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut tested: Vec<String> = BROKEN.iter().map(|b| b.0.to_string()).collect();
    tested.sort();
    assert_eq!(on_disk, tested);
}

#[test]
fn missing_file_and_usage_errors_exit_2() {
    let out = validate(Path::new("/nonexistent/scenario.yaml"), false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("/nonexistent/scenario.yaml: cannot read it: "),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
