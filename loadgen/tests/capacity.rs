//! The early capacity check: a plan the ports or the open-file limit cannot
//! hold fails before the first connect with a message that says what to
//! change; the largest plan that fits goes ahead. Runs here last 0 s, so a
//! plan that passes connects nothing and then fails for holding nothing
//! (exit 1), which tells it apart from a refused plan (exit 2).

mod common;

use std::time::Duration;

use common::{closed_port, no_connections, run, silent_listener, Finished};

const LIMIT: Duration = Duration::from_secs(20);

/// The open-file limit loadgen raises itself to.
fn nofile_hard() -> u64 {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    if hard == rlimit::INFINITY {
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open").unwrap();
        nr_open.trim().parse().unwrap()
    } else {
        hard
    }
}

/// Connections one process can hold within the open-file limit.
fn per_process() -> u64 {
    nofile_hard() - loadgen::capacity::RESERVED_FDS
}

/// Ports in net.ipv4.ip_local_port_range: connections per (source, target).
fn ports() -> u64 {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut f = text.split_whitespace().map(|p| p.parse::<u64>().unwrap());
    let (lo, hi) = (f.next().unwrap(), f.next().unwrap());
    hi - lo + 1
}

fn zero_length_run(connections: u64, extra: &[&str]) -> Finished {
    let url = format!("ws://127.0.0.1:{}/", closed_port());
    let n = connections.to_string();
    let mut args = vec![
        "run",
        &url,
        "--connections",
        &n,
        "--duration",
        "0s",
        "--progress",
        "never",
    ];
    args.extend_from_slice(extra);
    run(&args, LIMIT)
}

fn assert_passed_the_check(run: &Finished, connections: u64) {
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("0 of {connections}")),
        "{}",
        run.describe()
    );
}

fn assert_refused(run: &Finished, says: &str) {
    run.assert_code(2);
    assert!(
        run.stderr.contains(says),
        "should say {says:?}: {}",
        run.describe()
    );
    assert!(
        run.stdout.trim().is_empty(),
        "no summary: {}",
        run.describe()
    );
    assert!(run.elapsed < Duration::from_secs(5), "{}", run.describe());
}

#[test]
fn too_many_connections_for_one_source_address_fail_before_connecting() {
    let (listener, addr) = silent_listener();
    let run = run(
        &[
            "run",
            &format!("ws://{addr}/"),
            "--connections",
            "100000",
            "--duration",
            "2s",
            "--source-ips",
            "127.0.0.1",
        ],
        LIMIT,
    );
    // The exact range that would do: 127.0.0.2 onwards, one address per
    // port range's worth of connections.
    let needed = 100_000u64.div_ceil(ports());
    assert_refused(
        &run,
        &format!("--source-ips 127.0.0.2-127.0.0.{}", 1 + needed),
    );
    assert!(no_connections(&listener), "nothing may be attempted");
}

#[test]
fn one_process_names_the_open_file_limit_and_the_way_around_it() {
    let (listener, addr) = silent_listener();
    let run = run(
        &[
            "run",
            &format!("ws://{addr}/"),
            "--connections",
            "100000",
            "--duration",
            "2s",
            "--processes",
            "1",
            "--source-ips",
            "127.0.0.1",
        ],
        LIMIT,
    );
    if 100_000 > per_process() {
        assert_refused(&run, &format!("({})", nofile_hard()));
        assert!(run.stderr.contains("--processes"), "{}", run.describe());
    }
    assert!(run.stderr.contains("--source-ips"), "{}", run.describe());
    assert!(no_connections(&listener), "nothing may be attempted");
}

#[test]
fn the_port_range_is_the_limit_per_source_address() {
    let max = ports();
    // One address named: without --source-ips, loopback runs get enough
    // addresses picked for them (loadgen::source_plan).
    let one = ["--source-ips", "127.0.0.1"];
    assert_passed_the_check(&zero_length_run(max, &one), max);
    assert_refused(
        &zero_length_run(max + 1, &one),
        "--source-ips 127.0.0.2-127.0.0.3",
    );
    // Picked: 3 addresses, none past half the range, named in the summary.
    let picked = zero_length_run(max + 1, &[]);
    assert_passed_the_check(&picked, max + 1);
    for says in [
        "from 3 source addresses",
        "source addresses 127.1.0.1-127.1.0.3 picked automatically (no --source-ips, every \
         target on loopback)",
    ] {
        assert!(
            picked.stdout.contains(says),
            "{says:?}: {}",
            picked.describe()
        );
    }
    let two = ["--source-ips", "127.0.0.2-127.0.0.3"];
    assert_passed_the_check(&zero_length_run(max + 1, &two), max + 1);
    assert_refused(
        &zero_length_run(2 * max + 1, &two),
        "--source-ips 127.0.0.2-127.0.0.4",
    );
}

#[test]
fn the_open_file_limit_is_the_limit_per_process() {
    let max = per_process().min(ports());
    assert_passed_the_check(&zero_length_run(max, &["--processes", "1"]), max);
    if per_process() < ports() {
        assert_refused(
            &zero_length_run(max + 1, &["--processes", "1"]),
            "--processes 2",
        );
        assert_passed_the_check(&zero_length_run(max + 1, &["--processes", "2"]), max + 1);
    }
}

/// Chat spreads connections by room (room mod targets), so with zipf rooms
/// the target of the largest rooms takes far more than an even share: with
/// zipf:1 over 100 rooms the first of six targets gets about 29 %. Five
/// port ranges' worth over six targets would fit one source address if
/// shared evenly (83 % of the range each), but the first target's 41,000
/// do not: the check counts that target's pairs.
#[test]
fn a_target_crowded_by_its_rooms_is_judged_by_its_own_count() {
    let n = (5 * ports()).to_string();
    let mut ports_seen = std::collections::BTreeSet::new();
    while ports_seen.len() < 6 {
        ports_seen.insert(closed_port());
    }
    let urls: Vec<String> = ports_seen
        .iter()
        .map(|p| format!("ws://127.0.0.1:{p}/"))
        .collect();
    let run = run(
        &[
            "run",
            &urls.join(","),
            "--connections",
            &n,
            "--rooms",
            "100",
            "--room-dist",
            "zipf:1",
            "--source-ips",
            "127.0.0.1",
            "--duration",
            "0s",
            "--progress",
            "never",
        ],
        LIMIT,
    );
    assert_refused(&run, "need 2 source addresses for 6 targets");
}
