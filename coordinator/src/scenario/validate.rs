//! The checks of one scenario's values, each problem placed on its key's
//! line. Rules that loadgen already enforces (workload knobs, URLs,
//! headers, source addresses) are asked of loadgen's own parsers, so a
//! scenario that passes here is one the agents accept.

use std::collections::HashMap;
use std::time::Duration;

use loadgen::conn::UpgradeExtras;
use loadgen::opts::WorkloadKind;

use super::schema::{Phase, StaticAgent, Target};
use super::{CheckOptions, Loaded, Problem};
use crate::threshold;

/// Longer than this, copies still in flight are lost rather than late;
/// a drain of minutes is a unit typo ("2m" for "2s").
const MAX_DRAIN: Duration = Duration::from_secs(60);

/// Pings more often than this would be load of their own.
const MIN_PING_INTERVAL: Duration = Duration::from_secs(1);

/// Collects problems against one loaded file.
struct Found<'a> {
    loaded: &'a Loaded,
    problems: Vec<Problem>,
}

impl Found<'_> {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::at(self.loaded, key, message));
    }
}

/// Every problem of the values in `loaded` (capacity is `capacity.rs`'s).
pub(super) fn problems(loaded: &Loaded, opts: &CheckOptions) -> Vec<Problem> {
    let mut found = Found {
        loaded,
        problems: Vec::new(),
    };
    let s = &loaded.scenario;
    if s.name.trim().is_empty() {
        found.add(
            "name",
            "must not be empty (it names the results directory and the report)",
        );
    }
    target(&mut found, &s.target, opts.local);
    ca_file(&mut found);
    if let Some(url) = &s.server_metrics {
        if let Err(e) = url.parse::<promhttp::MetricsUrl>() {
            found.add("server_metrics", e.to_string());
        }
    }
    agents(&mut found);
    if s.phases.is_empty() {
        found.add("phases", "no phases: a scenario needs at least one");
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, p) in s.phases.iter().enumerate() {
        let key = format!("phases[{i}]");
        if p.name.trim().is_empty() {
            found.add(
                format!("{key}.name"),
                "must not be empty (results and thresholds name phases)",
            );
        } else if let Some(first) = names.get(p.name.as_str()) {
            found.add(
                format!("{key}.name"),
                format!(
                    "{:?} is also the name of phases[{first}]; phase names must be unique",
                    p.name
                ),
            );
        } else {
            names.insert(&p.name, i);
        }
        phase(&mut found, &key, &s.target, p);
        thresholds(
            &mut found,
            &format!("{key}.thresholds"),
            &p.thresholds,
            Some(std::slice::from_ref(p)),
        );
    }
    thresholds(&mut found, "thresholds", &s.thresholds, None);
    output_dir(&mut found, &s.output.dir);
    found.problems
}

fn target(found: &mut Found, t: &Target, local: bool) {
    if t.urls.is_empty() && !local {
        found.add(
            "target.urls",
            "no target URLs: give at least one ws:// or wss:// URL, or run with --local, \
             which starts a server here and fills them in",
        );
    }
    for (i, url) in t.urls.iter().enumerate() {
        if let Err(e) = loadgen::target::parse_url(url) {
            found.add(format!("target.urls[{i}]"), e.to_string());
        }
    }
    // One at a time, so each problem lands on its own line.
    for (i, h) in t.headers.iter().enumerate() {
        if let Err(e) = UpgradeExtras::parse(std::slice::from_ref(h), &[]) {
            let e = e.trim_start_matches("--header ");
            found.add(
                format!("target.headers[{i}]"),
                e.replace("--subprotocol", "target.subprotocols")
                    .replace("per --header", "per item"),
            );
        }
    }
    for (i, p) in t.subprotocols.iter().enumerate() {
        if let Err(e) = UpgradeExtras::parse(&[], std::slice::from_ref(p)) {
            found.add(
                format!("target.subprotocols[{i}]"),
                e.trim_start_matches("--subprotocol "),
            );
        }
    }
}

/// `target.ca_file` must be readable and hold a certificate, as loadgen's
/// `--ca-file` must: checked on the file itself rather than `ca_pem`, so
/// the problem says why it could not be read.
fn ca_file(found: &mut Found) {
    let loaded = found.loaded;
    let Some(path) = super::ca_path(&loaded.path, &loaded.scenario.target) else {
        return;
    };
    let problem = match std::fs::read_to_string(&path) {
        Err(e) => format!("cannot read {}: {e}", path.display()),
        Ok(pem) => match loadgen::transport::parse_ca_pem(&pem) {
            Ok(_) => return,
            Err(e) => format!("{}: {e}", path.display()),
        },
    };
    found.add("target.ca_file", problem);
}

fn agents(found: &mut Found) {
    let a = &found.loaded.scenario.agents;
    let forms: Vec<&str> = [
        (a.local.is_some(), "local"),
        (!a.static_list.is_empty(), "static"),
        (a.dns.is_some(), "dns"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    match forms.len() {
        0 => found.add(
            "agents",
            "no agents: give one of local: N, static: [HOST:PORT, ...] or dns: NAME:PORT",
        ),
        1 => {}
        _ => found.add(
            "agents",
            format!(
                "give one of local, static and dns, not {}",
                forms.join(" and ")
            ),
        ),
    }
    if a.local == Some(0) {
        found.add("agents.local", "must be at least 1");
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, agent) in a.static_list.iter().enumerate() {
        let key = format!("agents.static[{i}]");
        let (addr, addr_key) = match agent {
            StaticAgent::Addr(addr) => (addr, key.clone()),
            StaticAgent::Full(full) => {
                if !(full.weight > 0.0 && full.weight.is_finite()) {
                    found.add(
                        format!("{key}.weight"),
                        format!("must be a number above 0, not {}", full.weight),
                    );
                }
                if let Some(ips) = &full.source_ips {
                    if let Err(e) = loadgen::source_ips::parse(ips) {
                        found.add(format!("{key}.source_ips"), e.to_string());
                    }
                }
                (&full.addr, format!("{key}.addr"))
            }
        };
        match host_port(addr) {
            Err(e) => found.add(addr_key, e),
            Ok(()) => {
                if let Some(first) = seen.get(addr.as_str()) {
                    found.add(
                        addr_key,
                        format!("{addr} is also agents.static[{first}]; list each agent once (weight gives one a larger share)"),
                    );
                } else {
                    seen.insert(addr, i);
                }
            }
        }
    }
    if let Some(dns) = &a.dns {
        if let Err(e) = host_port(dns) {
            found.add("agents.dns", e);
        }
    }
    if let Some(ips) = &a.source_ips {
        if a.dns.is_none() {
            found.add(
                "agents.source_ips",
                "applies to dns agents only: give static agents their own source_ips, \
                 and local agents get loopback addresses computed for them",
            );
        } else if let Err(e) = loadgen::source_ips::parse(ips) {
            found.add("agents.source_ips", e.to_string());
        }
    }
    if let Some(ports) = a.ports_per_address {
        if ports == 0 || ports > 65535 {
            found.add(
                "agents.ports_per_address",
                format!(
                    "must be 1 to 65535 (ports in the agents' ip_local_port_range), not {ports}"
                ),
            );
        }
    }
}

/// `host:port` with a port 1-65535 and a host that is an IP address or a
/// name (not resolved: it may exist only where the run happens).
fn host_port(s: &str) -> Result<(), String> {
    let example = "e.g. 10.0.1.11:7070, agent-1:7070 or [fd00::1]:7070";
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} is not HOST:PORT ({example})"));
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) || !matches!(port.parse::<u16>(), Ok(1..)) {
        return Err(format!("{s:?}: bad port {port:?} (expected 1-65535)"));
    }
    let ok = if let Some(inside) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inside.parse::<std::net::Ipv6Addr>().is_ok()
    } else if host.contains(':') {
        return Err(format!(
            "{s:?}: write IPv6 addresses in brackets ({example})"
        ));
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?}: {host:?} is not a host name or IP address"))
    }
}

fn phase(found: &mut Found, key: &str, target: &Target, p: &Phase) {
    // The coordinator's own rules first (stricter than loadgen's for a
    // scenario), then loadgen's limits; one problem per key, the first.
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut add = |field: &str, message: String| problems.push((field.to_string(), message));
    if p.duration.is_zero() {
        add("duration", "must be longer than 0s".into());
    }
    if p.connections == 0 {
        add("connections", "must be at least 1".into());
    }
    if !(p.ramp > 0.0 && p.ramp.is_finite()) {
        add(
            "ramp",
            format!(
                "must be a number of connections per second above 0, not {}",
                p.ramp
            ),
        );
    }
    if p.max_inflight == 0 {
        add("max_inflight", "must be at least 1".into());
    }
    if let Some(rooms) = p.rooms {
        if rooms > p.connections && p.connections > 0 {
            add(
                "rooms",
                format!(
                    "{rooms} rooms for {} connections would leave rooms empty; \
                     give at most one room per connection",
                    p.connections
                ),
            );
        }
    }
    if !p.ping_interval.is_zero() && p.ping_interval < MIN_PING_INTERVAL {
        add(
            "ping_interval",
            format!(
                "{} is too often to be anything but load of its own; use 1s or more, or 0s for no pings",
                humantime::format_duration(p.ping_interval)
            ),
        );
    }
    if p.connect_timeout.is_zero() {
        add("connect_timeout", "must be longer than 0s".into());
    }
    if p.drain > MAX_DRAIN {
        add(
            "drain",
            format!(
                "{} is longer than {}: a copy that late is lost, not slow (did you mean seconds?)",
                humantime::format_duration(p.drain),
                humantime::format_duration(MAX_DRAIN)
            ),
        );
    }
    // The very check `loadgen run` makes of its options, so a scenario
    // that passes here is one the agents accept.
    let opts = crate::split::phase_opts(target, &target.urls, p, "");
    for bad in opts.bad_values() {
        let field = scenario_key(bad.flag);
        let message = format!("{field} {}", scenario_words(&bad.why));
        problems.push((field, message));
    }
    let ramp_ok = !problems.iter().any(|(f, _)| f == "ramp");
    if ramp_ok && !p.duration.is_zero() {
        // Within loadgen's limits, but it may not fit the phase.
        if let Ok(ramp) = Duration::try_from_secs_f64(p.connections as f64 / p.ramp) {
            if ramp > p.duration {
                problems.push((
                    "ramp".into(),
                    format!(
                        "opening {} connections at {}/s takes {}, longer than the phase's duration of {}: \
                         raise ramp or lengthen the phase",
                        p.connections,
                        p.ramp,
                        humantime::format_duration(Duration::from_secs(ramp.as_secs().max(1))),
                        humantime::format_duration(p.duration)
                    ),
                ));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (field, message) in problems {
        if seen.insert(field.clone()) {
            found.add(format!("{key}.{field}"), message);
        }
    }
}

/// A loadgen flag (`max-inflight`) as its scenario key (`max_inflight`).
fn scenario_key(flag: &str) -> String {
    match flag {
        "room-dist" => "room_distribution".into(),
        _ => flag.replace('-', "_"),
    }
}

/// loadgen's words with its flags as scenario keys: "cannot be used with
/// --rooms" reads "cannot be used with rooms".
fn scenario_words(why: &str) -> String {
    let mut out = String::with_capacity(why.len());
    let mut rest = why;
    while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
            .unwrap_or(after.len());
        out.push_str(&scenario_key(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Parses each threshold, and refuses the ones that could only fail:
/// a latency this workload never measures, or a run-level figure in a
/// phase. `phase` is `Some` for a phase's own thresholds.
fn thresholds(found: &mut Found, key: &str, list: &[String], phase: Option<&[Phase]>) {
    let s = &found.loaded.scenario;
    let workload = s.target.workload;
    let phases = phase.unwrap_or(&s.phases);
    let nobody_sends = !phases.is_empty() && phases.iter().all(|p| p.chatters == 0.0);
    let mut problems = Vec::new();
    for (i, expr) in list.iter().enumerate() {
        let t = match threshold::parse(expr) {
            Ok(t) => t,
            Err(e) => {
                problems.push((i, e.to_string()));
                continue;
            }
        };
        let m = t.metric.as_str();
        let measured_by_chat = m.starts_with("rtt_") || m.starts_with("fanout_");
        let chat = matches!(workload, WorkloadKind::ChatBinary | WorkloadKind::ChatJson);
        let never = |why: String| format!("{m} is {why}, so this threshold could only fail");
        let problem = if phase.is_some() && m == "agents_failed" {
            Some(format!(
                "{m} is a figure of the whole run, so in a phase this threshold could only \
                 fail; put it in the top-level thresholds"
            ))
        } else if measured_by_chat && !chat {
            Some(never(format!(
                "never measured by the {} workload (chat workloads measure rtt_* and fanout_*, \
                 echo measures echo_*, both delivery_*)",
                workload.name()
            )))
        } else if m.starts_with("echo_") && workload != WorkloadKind::Echo {
            Some(never(format!(
                "measured by the echo workload only, and this is {}",
                workload.name()
            )))
        } else if m.starts_with("delivery_") && workload == WorkloadKind::Idle {
            Some(never(
                "never measured by the idle workload (nobody sends)".into(),
            ))
        } else if (measured_by_chat || m.starts_with("echo_") || m.starts_with("delivery_"))
            && nobody_sends
        {
            Some(never(
                "never measured when chatters is 0 (nobody sends)".into(),
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            problems.push((i, message));
        }
    }
    for (i, message) in problems {
        found.add(format!("{key}[{i}]"), message);
    }
}

fn output_dir(found: &mut Found, dir: &str) {
    if dir.trim().is_empty() {
        found.add("output.dir", "must not be empty");
        return;
    }
    let mut rest = dir;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            found.add("output.dir", format!("{dir:?}: a {{ without its }}"));
            return;
        };
        let name = &after[..close];
        if !matches!(name, "name" | "time") {
            found.add(
                "output.dir",
                format!(
                    "{dir:?}: {{{name}}} is not a placeholder; there are {{name}} and {{time}}"
                ),
            );
        }
        rest = &after[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_without_resolving() {
        for ok in [
            "10.0.1.11:7070",
            "agent-1:7070",
            "lab_agent.example:1",
            "[fd00::1]:7070",
        ] {
            host_port(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            ("10.0.1.11", "is not HOST:PORT"),
            ("10.0.1.11:0", "bad port"),
            ("10.0.1.11:70000", "bad port"),
            ("10.0.1.11:+80", "bad port"),
            (":7070", "is not a host name"),
            ("fd00::1:7070", "brackets"),
            ("[fd00::zz]:7070", "is not a host name"),
            ("a b:7070", "is not a host name"),
        ] {
            let e = host_port(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}

#[cfg(test)]
mod check_tests {
    use crate::scenario::testing::problems;

    const GOOD: &str = "name: good
target:
  urls: [ws://127.0.0.1:8080]
agents:
  local: 1
phases:
  - name: one
    duration: 10s
    connections: 100
";

    /// GOOD with `from` replaced by `to`; the keys of its problems.
    fn keys(from: &str, to: &str, local: bool) -> Vec<String> {
        assert!(GOOD.contains(from), "{from}");
        problems(&GOOD.replacen(from, to, 1), local)
            .into_iter()
            .map(|p| format!("{}:{}", p.line.unwrap_or(0), p.key))
            .collect()
    }

    #[test]
    fn good_is_good_both_ways() {
        assert!(problems(GOOD, false).is_empty());
        assert!(problems(GOOD, true).is_empty());
    }

    #[test]
    fn empty_urls_need_local() {
        let from = "urls: [ws://127.0.0.1:8080]";
        assert_eq!(keys(from, "urls: []", false), ["3:target.urls"]);
        assert!(keys(from, "urls: []", true).is_empty());
        assert_eq!(keys(from, "workload: echo", false), ["2:target.urls"]);
    }

    #[test]
    fn ca_file_must_be_readable_and_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("wslab-ca-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.pem");
        let certified = rcgen::generate_simple_self_signed(vec!["lab".to_string()]).unwrap();
        std::fs::write(&good, certified.cert.pem()).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let missing = dir.join("missing.pem");
        let from = "  urls: [ws://127.0.0.1:8080]";
        let with = |path: &std::path::Path| {
            let to = format!("{from}\n  ca_file: {}", path.display());
            problems(&GOOD.replacen(from, &to, 1), false)
        };
        assert!(with(&good).is_empty(), "{:?}", with(&good));
        for (path, says) in [(&empty, "holds no certificate"), (&missing, "cannot read")] {
            let p = with(path);
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!((p[0].line, p[0].column), (Some(4), Some(3)), "{p:?}");
            assert_eq!(p[0].key, "target.ca_file");
            assert!(p[0].message.contains(says), "{p:?}");
            assert!(p[0]
                .to_string()
                .starts_with("test.yaml:4:3: target.ca_file: "));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn urls_are_checked_without_resolving() {
        let from = "urls: [ws://127.0.0.1:8080]";
        assert!(keys(from, "urls: [wss://lab-server.invalid/chat]", false).is_empty());
        assert_eq!(
            keys(
                from,
                "urls: [ws://a:1, \"ws://b:x\", \"ws://[::1]:2\"]",
                false
            ),
            ["3:target.urls[1]"]
        );
    }

    #[test]
    fn headers_and_subprotocols_follow_loadgen() {
        let from = "  urls: [ws://127.0.0.1:8080]";
        let to = "  urls: [ws://127.0.0.1:8080]\n  headers:\n    - \"X-Token: a\"\n    - \"Host: b\"\n  subprotocols: [chat, \"bad proto\"]";
        let p = problems(&GOOD.replacen(from, to, 1), false);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            (p[0].line, p[0].key.as_str()),
            (Some(6), "target.headers[1]")
        );
        assert!(
            p[0].message.contains("loadgen sets that header itself"),
            "{}",
            p[0].message
        );
        assert_eq!(
            (p[1].line, p[1].key.as_str()),
            (Some(7), "target.subprotocols[1]")
        );
        assert_eq!(
            p[1].message,
            "\"bad proto\" is not a valid subprotocol name (an RFC 7230 token)"
        );
    }

    #[test]
    fn headers_with_line_breaks_or_control_characters_are_refused() {
        let from = "  urls: [ws://127.0.0.1:8080]";
        // YAML's double quotes read \r, \n and \e as the characters.
        let to = "  urls: [ws://127.0.0.1:8080]\n  headers:\n    - \"X-A: b\\r\\nX-Inject: 1\"\n    - \"X-A: b\\r\"\n    - \"X-A: b\\nHost: evil\"\n    - \"X-A: \\e[2J\"\n    - \"X-Ok: a\\tb\"\n    - \"Sec-WebSocket-Extensions: permessage-deflate\"";
        let p = problems(&GOOD.replacen(from, to, 1), false);
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "target.headers[0]",
                "target.headers[1]",
                "target.headers[2]",
                "target.headers[3]",
                "target.headers[5]"
            ],
            "{p:?}"
        );
        for p in &p[..4] {
            assert!(
                p.message
                    .contains("line break or another control character")
                    && p.message.ends_with("(one header per item)"),
                "{}",
                p.message
            );
        }
        assert!(
            p[4].message.contains("loadgen sets that header itself"),
            "{}",
            p[4].message
        );
    }

    #[test]
    fn agent_forms() {
        let from = "  local: 1";
        assert_eq!(keys(from, "  local: 0", false), ["5:agents.local"]);
        assert_eq!(keys(from, "  static: []", false), ["4:agents"]);
        assert_eq!(keys(from, "  dns: lab-agent", false), ["5:agents.dns"]);
        assert!(keys(
            from,
            "  dns: lab-agent:7070\n  source_ips: 10.0.0.0/28",
            false
        )
        .is_empty());
        assert_eq!(
            keys(
                from,
                "  dns: lab-agent:7070\n  source_ips: 10.0.0.1/28",
                false
            ),
            ["6:agents.source_ips"]
        );
        assert_eq!(
            keys(from, "  local: 1\n  source_ips: 127.0.0.2", false),
            ["6:agents.source_ips"]
        );
        assert_eq!(
            keys(
                from,
                "  static: [10.0.0.1:7070, 10.0.0.2:7070, 10.0.0.1:7070]",
                false
            ),
            ["5:agents.static[2]"]
        );
        assert_eq!(
            keys(from, "  static:\n    - {addr: 10.0.0.1:7070, source_ips: 10.0.0.300}\n    - {addr: a:1, weight: .inf}", false),
            ["6:agents.static[0].source_ips", "7:agents.static[1].weight"]
        );
        assert_eq!(
            keys(from, "  dns: a:1\n  ports_per_address: 0", false),
            ["6:agents.ports_per_address"]
        );
    }

    #[test]
    fn phase_rules() {
        let from = "    connections: 100";
        assert_eq!(
            keys(from, "    connections: 100\n    rooms: 101", false),
            ["10:phases[0].rooms"]
        );
        assert!(keys(from, "    connections: 100\n    rooms: 100", false).is_empty());
        assert_eq!(
            keys(from, "    connections: 100\n    ramp: 5", false),
            ["10:phases[0].ramp"]
        );
        assert_eq!(
            keys(
                from,
                "    connections: 100\n    ping_interval: 100ms",
                false
            ),
            ["10:phases[0].ping_interval"]
        );
        assert!(keys(from, "    connections: 100\n    ping_interval: 0s", false).is_empty());
        assert_eq!(
            keys(from, "    connections: 100\n    connect_timeout: 0s", false),
            ["10:phases[0].connect_timeout"]
        );
        assert_eq!(
            keys(from, "    connections: 100\n    churn: .nan", false),
            ["10:phases[0].churn"]
        );
        assert_eq!(
            keys(from, "    connections: 100\n    max_inflight: 0", false),
            ["10:phases[0].max_inflight"]
        );
        assert_eq!(
            keys("  - name: one", "  - name: \" \"", false),
            ["7:phases[0].name"]
        );
        assert_eq!(
            keys(
                "phases:\n  - name: one\n    duration: 10s\n    connections: 100\n",
                "phases: []\n",
                false
            ),
            ["6:phases"]
        );
    }

    #[test]
    fn room_keys() {
        let from = "    connections: 100";
        let with = |extra: &str| keys(from, &format!("{from}\n{extra}"), false);
        assert!(with("    room_size: 7\n    room_distribution: zipf:1.2").is_empty());
        assert!(with("    rooms: 7\n    room_distribution: uniform").is_empty());
        assert_eq!(
            with("    rooms: 7\n    room_size: 10"),
            ["11:phases[0].room_size"]
        );
        assert_eq!(with("    room_size: 0"), ["10:phases[0].room_size"]);
        let p = problems(
            &GOOD.replacen(
                from,
                "    connections: 100\n    rooms: 7\n    room_size: 10",
                1,
            ),
            false,
        );
        assert_eq!(
            p[0].message,
            "room_size cannot be used with rooms: give the number of rooms or their size"
        );
        // A distribution loadgen cannot read stops parsing: see
        // tests/scenarios/bad_room_distribution.yaml.
    }

    #[test]
    fn loadgen_limits_are_the_scenario_s_limits() {
        let from = "    connections: 100";
        let with = |extra: &str| {
            problems(&GOOD.replacen(from, &format!("{from}\n{extra}"), 1), false)
                .into_iter()
                .map(|p| format!("{}:{}: {}", p.line.unwrap_or(0), p.key, p.message))
                .collect::<Vec<_>>()
        };
        for (extra, says) in [
            ("    rate: 1e-20", "10:phases[0].rate: rate must be 0.001 to 1000000 messages per second, not 1e-20"),
            ("    ramp: 1e-300", "10:phases[0].ramp: ramp must be 0.001 to 10000000 connections per second"),
            ("    ramp: 1e8", "10:phases[0].ramp: ramp must be 0.001 to 10000000"),
            ("    max_inflight: 18446744073709551615", "10:phases[0].max_inflight: max_inflight must be 1 to 1000000"),
            ("    size: 100000000000", "10:phases[0].size: size must be at least 24 bytes (the payload carries the send time) and at most 67108864"),
            ("    ping_interval: 500000000000years", "10:phases[0].ping_interval: ping_interval must be at most 30days"),
            ("    connect_timeout: 31days", "10:phases[0].connect_timeout: connect_timeout must be at most 30days"),
            ("    churn: .inf", "10:phases[0].churn: churn must be a number of connections per second"),
            ("    chatters: .nan", "10:phases[0].chatters: chatters must be between 0 and 1, not NaN"),
            ("    max_loss: 1.5", "10:phases[0].max_loss: max_loss must be between 0 and 1, not 1.5"),
        ] {
            let p = with(extra);
            assert_eq!(p.len(), 1, "{extra}: {p:?}");
            assert!(p[0].starts_with(says), "{extra}:\n  got  {}\n  want {says}", p[0]);
        }
        // The coordinator's own, stricter rule comes alone.
        let p = with("    drain: 500000000000years");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("did you mean seconds?"), "{p:?}");
        let p = problems(
            &GOOD.replacen(from, "    connections: 200000000\n    ramp: 1e7", 1),
            false,
        );
        assert_eq!(
            (p[0].key.as_str(), p[0].message.as_str()),
            (
                "phases[0].connections",
                "connections must be at most 100000000, not 200000000"
            )
        );
    }

    #[test]
    fn the_ramp_must_fit_the_phase() {
        // 100 at 10/s: exactly the 10 s.
        let from = "    connections: 100";
        assert!(keys(from, "    connections: 100\n    ramp: 10", false).is_empty());
        let p = problems(
            &GOOD.replacen(from, "    connections: 100\n    ramp: 9", 1),
            false,
        );
        assert_eq!(
            p[0].message,
            "opening 100 connections at 9/s takes 11s, longer than the phase's duration of 10s: \
             raise ramp or lengthen the phase"
        );
    }

    #[test]
    fn server_metrics_is_a_plain_http_url() {
        let with = |url: &str| {
            problems(
                &GOOD.replacen("agents:\n", &format!("server_metrics: {url}\nagents:\n"), 1),
                false,
            )
        };
        for ok in [
            "http://10.0.1.10:9090/metrics",
            "http://lab-server:9090",
            "\"http://[fd00::1]:9090/metrics\"",
        ] {
            assert!(with(ok).is_empty(), "{ok}: {:?}", with(ok));
        }
        for (bad, says) in [
            ("https://10.0.1.10:9090/metrics", "https is not supported"),
            ("10.0.1.10:9090", "not a URL"),
            ("http://10.0.1.10:0/metrics", "the port must be 1-65535"),
        ] {
            let p = with(bad);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert_eq!(
                (p[0].line, p[0].column, p[0].key.as_str()),
                (Some(4), Some(1), "server_metrics"),
                "{bad}"
            );
            assert!(p[0].message.contains(says), "{bad}: {}", p[0].message);
        }
    }

    #[test]
    fn output_dir_placeholders() {
        let to = |dir: &str| format!("{GOOD}output:\n  dir: \"{dir}\"\n");
        assert!(problems(&to("out/{name}/{time}"), false).is_empty());
        for bad in ["", "out/{nam}", "out/{name"] {
            let p = problems(&to(bad), false);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert_eq!((p[0].line, p[0].key.as_str()), (Some(11), "output.dir"));
        }
    }

    #[test]
    fn thresholds_that_could_only_fail() {
        let with = |extra: &str, thresholds: &str| {
            let text = format!(
                "{}{thresholds}",
                GOOD.replacen(
                    "  urls: [ws://127.0.0.1:8080]",
                    &format!("  urls: [ws://127.0.0.1:8080]{extra}"),
                    1
                )
            );
            problems(&text, false)
                .into_iter()
                .map(|p| format!("{}:{}: {}", p.line.unwrap_or(0), p.key, p.message))
                .collect::<Vec<_>>()
        };
        let run = "thresholds: [rtt_p99_ms < 5, echo_p99_ms < 5, connect_p99_ms < 5, agents_failed == 0]\n";
        assert_eq!(
            with("", run),
            ["10:thresholds[1]: echo_p99_ms is measured by the echo workload only, and this is chat-binary, so this threshold could only fail"]
        );
        let p = with("\n  workload: echo", run);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("11:thresholds[0]: rtt_p99_ms is never measured by the echo workload"),
            "{p:?}"
        );
        assert_eq!(with("\n  workload: idle", run).len(), 2);
        // Nobody sends: no round trips, but connects are still timed.
        let quiet = GOOD.replacen("    connections: 100", "    connections: 100\n    chatters: 0\n    thresholds: [rtt_p99_ms < 5, connect_p99_ms < 5]", 1);
        let p = problems(&quiet, false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "phases[0].thresholds[0]");
        assert!(
            p[0].message.contains("never measured when chatters is 0"),
            "{}",
            p[0].message
        );
        // agents_failed belongs to the run.
        let p = problems(
            &GOOD.replacen(
                "    connections: 100",
                "    connections: 100\n    thresholds: [agents_failed == 0]",
                1,
            ),
            false,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].message.contains("put it in the top-level thresholds"),
            "{}",
            p[0].message
        );
    }
}
