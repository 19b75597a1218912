//! Several targets and several source addresses together: every source
//! must reach every target, or a (source, target) pair's port range is
//! used twice as fast as needed while other pairs sit unused, and the
//! early capacity check, which counts every pair, promises connections
//! that cannot exist.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::raw_server::{Behaviour, RawServer};
use common::run_json;

/// 12 connections over 2 sources and 2 targets: 3 on each of the 4 pairs,
/// as each server sees its peers' addresses.
#[test]
fn every_source_reaches_every_target() {
    const N: u64 = 12;
    let (a, b) = (
        RawServer::start(Behaviour::Echo),
        RawServer::start(Behaviour::Echo),
    );
    let run = run_json(
        &[
            "run",
            &format!("{},{}", a.url(), b.url()),
            "--workload",
            "idle",
            "-c",
            &N.to_string(),
            "--source-ips",
            "127.0.0.2-127.0.0.3",
            "--duration",
            "1s",
            "--progress",
            "never",
        ],
        Duration::from_secs(20),
    );
    run.assert_code(0);
    let why = run.describe();
    assert_eq!(run.totals().u("connects_ok"), N, "{why}");
    let by_source = |server: &RawServer| -> BTreeMap<IpAddr, u64> {
        let mut seen = BTreeMap::new();
        for accepted in server.counters.accepted() {
            *seen.entry(accepted.peer.ip()).or_default() += 1;
        }
        seen
    };
    let even: BTreeMap<IpAddr, u64> = [2, 3]
        .map(|d| (IpAddr::V4(Ipv4Addr::new(127, 0, 0, d)), N / 4))
        .into();
    assert_eq!(by_source(&a), even, "target A by source: {why}");
    assert_eq!(by_source(&b), even, "target B by source: {why}");
}
