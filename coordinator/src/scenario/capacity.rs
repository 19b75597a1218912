//! Whether a scenario's numbers can fit where it will run, decided before
//! the run: an agent that runs out of ports, or a server out of file
//! descriptors, shows up minutes in as thousands of connect errors that
//! say nothing about the fix.
//!
//! - `--local`: one server process here holds every connection, so the
//!   largest phase must fit this machine's open-file limit. Local agents
//!   are as many as needed ([`local_agents_needed`]) and get loopback
//!   source ranges computed for them, so only the server limits.
//! - static agents: each agent's share of the largest phase must fit its
//!   source addresses × ports per address × distinct targets (loadgen
//!   binds without a port, so each (source, target) pair has every port).
//! - dns agents: how many there are is known only at run time, when each
//!   agent checks its own share and refuses a phase it cannot hold.

use std::collections::HashSet;

use loadgen::capacity::RESERVED_FDS;

use super::schema::{Scenario, StaticAgent};
use super::{CheckOptions, Loaded, Machine, Problem};

/// Ports per source address and target on Linux's default
/// ip_local_port_range (32768-60999).
pub const DEFAULT_PORTS_PER_ADDRESS: u64 = 28_232;

/// How many local agent processes a scenario needs here: as many as it
/// asks for (`agents.local`, or one per static agent when a static
/// scenario is run with `--local`, at least one), more when the largest
/// phase needs more than that many processes' connection slots. One
/// agent process holds the open-file limit minus loadgen's reserve.
pub fn local_agents_needed(s: &Scenario, m: &Machine) -> u32 {
    let asked = match (s.agents.local, s.agents.static_list.len()) {
        (Some(n), _) => u64::from(n),
        (None, n) => n as u64,
    }
    .max(1);
    // What one agent process holds without splitting into worker processes.
    let per_agent = loadgen::multiproc::per_process(m.nofile);
    let needed = most_connections(s).div_ceil(per_agent);
    u32::try_from(asked.max(needed)).unwrap_or(u32::MAX)
}

fn most_connections(s: &Scenario) -> u64 {
    s.phases.iter().map(|p| p.connections).max().unwrap_or(0)
}

pub(super) fn problems(loaded: &Loaded, opts: &CheckOptions) -> Vec<Problem> {
    if opts.local {
        local_server(loaded, &opts.machine)
    } else {
        static_agents(loaded)
    }
}

fn local_server(loaded: &Loaded, m: &Machine) -> Vec<Problem> {
    let room = m.nofile.saturating_sub(RESERVED_FDS);
    let s = &loaded.scenario;
    s.phases
        .iter()
        .enumerate()
        .filter(|(_, p)| p.connections > room)
        .map(|(i, p)| {
            Problem::at(
                loaded,
                format!("phases[{i}].connections"),
                format!(
                    "{} connections cannot fit: with --local one server process holds them all, \
                     and this machine's open-file limit of {} leaves it {room} ({RESERVED_FDS} \
                     descriptors are reserved); raise the hard limit (ulimit -Hn, systemd \
                     LimitNOFILE, docker --ulimit nofile), lower connections, or run against a \
                     server elsewhere",
                    p.connections, m.nofile
                ),
            )
        })
        .collect()
}

fn static_agents(loaded: &Loaded) -> Vec<Problem> {
    let s = &loaded.scenario;
    let agents = &s.agents.static_list;
    let Some((phase_index, phase)) = s
        .phases
        .iter()
        .enumerate()
        .max_by_key(|(i, p)| (p.connections, std::cmp::Reverse(*i)))
    else {
        return Vec::new();
    };
    // Without valid targets and weights there is nothing to count; those
    // problems are reported by the value checks.
    let mut targets = HashSet::new();
    for url in &s.target.urls {
        match loadgen::target::parse_url(url) {
            Ok(u) => targets.insert((u.host.to_ascii_lowercase(), u.port)),
            Err(_) => return Vec::new(),
        };
    }
    let weights: Vec<f64> = agents.iter().map(weight).collect();
    if targets.is_empty() || weights.iter().any(|w| !(*w > 0.0 && w.is_finite())) {
        return Vec::new();
    }
    let total_weight: f64 = weights.iter().sum();
    let ports = s
        .agents
        .ports_per_address
        .unwrap_or(DEFAULT_PORTS_PER_ADDRESS);
    let per_address = ports.saturating_mul(targets.len() as u64);
    let mut out = Vec::new();
    for (i, (agent, w)) in agents.iter().zip(&weights).enumerate() {
        let share = (phase.connections as f64 * w / total_weight).ceil() as u64;
        let (addresses, key) = match agent {
            StaticAgent::Full(full) => match &full.source_ips {
                Some(ips) => match loadgen::source_ips::parse(ips) {
                    Ok(list) => (list.len() as u64, format!("agents.static[{i}].source_ips")),
                    Err(_) => continue,
                },
                None => (1, format!("agents.static[{i}]")),
            },
            StaticAgent::Addr(_) => (1, format!("agents.static[{i}]")),
        };
        let capacity = addresses.saturating_mul(per_address);
        if share > capacity {
            out.push(Problem::at(
                loaded,
                key,
                format!(
                    "its share of phase {:?}, {share} of phases[{phase_index}].connections = {}, \
                     cannot fit: {} × {ports} ports × {} = {capacity}; give it {} source \
                     addresses (source_ips), or add agents or target addresses",
                    phase.name,
                    phase.connections,
                    count(addresses, "source address", "source addresses"),
                    count(targets.len() as u64, "target", "targets"),
                    share.div_ceil(per_address.max(1)),
                ),
            ));
        }
    }
    out
}

fn weight(agent: &StaticAgent) -> f64 {
    match agent {
        StaticAgent::Addr(_) => 1.0,
        StaticAgent::Full(full) => full.weight,
    }
}

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::testing::{loaded, problems, MACHINE};

    fn scenario(agents: &str, urls: &str, connections: u64) -> String {
        format!(
            "name: cap\ntarget:\n  urls: {urls}\nagents:\n{agents}\nphases:\n  - name: small\n    \
             duration: 10m\n    connections: 10\n  - name: big\n    duration: 10m\n    \
             connections: {connections}\n"
        )
    }

    #[test]
    fn local_agents_cover_the_largest_phase() {
        let needed = |agents: &str, connections: u64, nofile: u64| {
            let s = loaded(&scenario(agents, "[]", connections)).scenario;
            local_agents_needed(&s, &Machine { nofile, ..MACHINE })
        };
        assert_eq!(needed("  local: 3", 3000, 20_000), 3);
        // 19,920 slots per agent process at 20,000 files (loadgen keeps 80
        // for itself): 100,000 need 6.
        assert_eq!(needed("  local: 3", 100_000, 20_000), 6);
        assert_eq!(needed("  local: 3", 19_920 * 3, 20_000), 3);
        assert_eq!(needed("  local: 3", 19_920 * 3 + 1, 20_000), 4);
        assert_eq!(needed("  static: [a:1, b:1, c:1, d:1]", 10, 20_000), 4);
        assert_eq!(needed("  dns: agents:7070", 10, 20_000), 1);
        assert_eq!(needed("  local: 0", 10, 20_000), 1);
        // A limit below the reserve still gives a count, not a division by 0.
        assert_eq!(needed("  local: 1", 1000, 10), 1000);
    }

    #[test]
    fn local_runs_are_limited_by_the_one_server_process() {
        let text = scenario("  local: 2", "[]", 19_936);
        assert!(problems(&text, true).is_empty());
        let text = scenario("  local: 2", "[]", 19_937);
        let p = problems(&text, true);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "phases[1].connections");
        assert_eq!(p[0].line, Some(12));
        assert!(
            p[0].message.starts_with(
                "19937 connections cannot fit: with --local one server process holds them all, \
                 and this machine's open-file limit of 20000 leaves it 19936"
            ),
            "{}",
            p[0].message
        );
        assert!(p[0].message.contains("ulimit -Hn"), "{}", p[0].message);
        // The same numbers against a remote server: the server is not ours.
        let text = scenario("  local: 2", "[ws://10.0.0.1:80]", 19_937);
        assert!(problems(&text, false).is_empty());
    }

    #[test]
    fn static_agents_get_their_weighted_share_of_the_largest_phase() {
        let agents = "  static:\n    - 10.0.0.11:7070\n    - addr: 10.0.0.12:7070\n      \
                      weight: 3\n      source_ips: 10.0.0.100-10.0.0.101";
        // 100,000: agent 0 takes 25,000 (fits one address), agent 1 takes
        // 75,000, more than 2 × 28,232.
        let p = problems(&scenario(agents, "[ws://10.0.0.1:80]", 100_000), false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "agents.static[1].source_ips");
        assert_eq!(p[0].line, Some(9));
        assert_eq!(
            p[0].message,
            "its share of phase \"big\", 75000 of phases[1].connections = 100000, cannot fit: \
             2 source addresses × 28232 ports × 1 target = 56464; give it 3 source addresses \
             (source_ips), or add agents or target addresses"
        );
        // A second target port doubles every pair's ports.
        let urls = "[ws://10.0.0.1:80, ws://10.0.0.1:81]";
        assert!(problems(&scenario(agents, urls, 100_000), false).is_empty());
        // Paths do not make targets distinct.
        let urls = "[ws://10.0.0.1:80/a, ws://10.0.0.1:80/b]";
        assert_eq!(problems(&scenario(agents, urls, 100_000), false).len(), 1);
        // Exactly full fits.
        assert!(problems(
            &scenario(agents, "[ws://10.0.0.1:80]", 4 * 28_232 / 3),
            false
        )
        .is_empty());
    }

    #[test]
    fn ports_per_address_overrides_the_linux_default() {
        let agents = "  ports_per_address: 1000\n  static: [10.0.0.11:7070]";
        let p = problems(&scenario(agents, "[ws://10.0.0.1:80]", 1001), false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "agents.static[0]");
        assert!(
            p[0].message
                .contains("1 source address × 1000 ports × 1 target = 1000; give it 2"),
            "{}",
            p[0].message
        );
        assert!(problems(&scenario(agents, "[ws://10.0.0.1:80]", 1000), false).is_empty());
    }

    #[test]
    fn dns_agents_are_counted_only_at_run_time() {
        let text = scenario("  dns: agents:7070", "[ws://10.0.0.1:80]", 1_000_000);
        assert!(problems(&text, false).is_empty());
    }
}
