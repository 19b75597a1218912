//! The sections of the page, each from its part of [`Results`].

use std::collections::BTreeMap;
use std::fmt::Write;

use loadgen::stats::{Latency, Totals};

use super::charts::{self, Figure};
use super::format::{self, int, NONE};
use super::html::{esc, num, pass_badge, table, text, Row};
use crate::results::{
    AgentPhase, AgentResult, Figures, PhaseResult, Results, ServerSample, ServerSeries,
};

pub fn header(r: &Results) -> String {
    let s = &r.scenario;
    let mut out = String::from("<header>");
    let verdict = if r.passed {
        "<div class=\"verdict pass\" role=\"status\">PASS</div>"
    } else {
        "<div class=\"verdict fail\" role=\"status\">FAIL</div>"
    };
    let name = if s.name.is_empty() {
        "(unnamed scenario)"
    } else {
        &s.name
    };
    let _ = write!(
        out,
        "<div class=\"top\"><div><div class=\"muted\">wslab load test report</div><h1>{}</h1>",
        esc(name)
    );
    if !s.description.trim().is_empty() {
        let _ = write!(
            out,
            "<p class=\"description\">{}</p>",
            esc(s.description.trim())
        );
    }
    let _ = write!(out, "</div>{verdict}</div>");

    let duration = r
        .finished_unix_ms
        .checked_sub(r.started_unix_ms)
        .filter(|_| r.started_unix_ms > 0 && r.finished_unix_ms > 0);
    let targets = if s.targets.is_empty() {
        NONE.to_string()
    } else {
        s.targets
            .iter()
            .map(|t| esc(t))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let interrupted = if r.interrupted {
        "<span class=\"badge fail\">yes</span> the run was cut short".to_string()
    } else {
        "no".to_string()
    };
    let facts: [(&str, String); 8] = [
        ("Started", esc(&format::utc(r.started_unix_ms))),
        (
            "Duration",
            esc(&duration.map_or(NONE.to_string(), |ms| format::duration(ms as f64 / 1000.0))),
        ),
        ("Targets", targets),
        ("Workload", esc(or_none(&s.workload))),
        (
            "Mode",
            if s.local {
                "local: the coordinator started the server and the agents on this machine"
                    .to_string()
            } else {
                "remote agents".to_string()
            },
        ),
        ("Agents", int(r.agents.len() as u64)),
        ("Scenario file", esc(or_none(&s.file))),
        ("Interrupted", interrupted),
    ];
    out.push_str("<dl class=\"facts\">");
    for (k, v) in facts {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    }
    out.push_str("</dl>");

    if !r.failures.is_empty() {
        out.push_str("<div class=\"failures\"><h3>Failures</h3><ol>");
        for f in &r.failures {
            let _ = write!(out, "<li>{}</li>", esc(f));
        }
        out.push_str("</ol></div>");
    }
    if !r.phases.is_empty() {
        out.push_str("<nav class=\"toc\">Phases: ");
        for (slot, p) in r.phases.iter().enumerate() {
            let _ = write!(
                out,
                "<a href=\"#phase-{slot}\">{}</a>",
                esc(&phase_title(p, slot))
            );
        }
        out.push_str("</nav>");
    }
    out.push_str("</header>");
    out
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        NONE
    } else {
        s
    }
}

pub fn thresholds(r: &Results) -> String {
    let mut out = String::from("<section id=\"thresholds\"><h2>Thresholds</h2>");
    if r.thresholds.is_empty() {
        out.push_str("<p class=\"muted\">The scenario set no thresholds.</p></section>");
        return out;
    }
    let failed = r.thresholds.iter().filter(|t| !t.passed).count();
    let _ = write!(
        out,
        "<p>{} of {} held.</p>",
        int((r.thresholds.len() - failed) as u64),
        int(r.thresholds.len() as u64)
    );
    let rows: Vec<Row> = r
        .thresholds
        .iter()
        .map(|t| Row {
            cells: vec![
                esc(&t.scope),
                format!("<code>{}</code>", esc(&t.expr)),
                t.value.map_or_else(
                    || "<span class=\"muted\">not measured</span>".to_string(),
                    |v| esc(&format::value(v)),
                ),
                pass_badge(t.passed).to_string(),
                match &t.caveat {
                    Some(caveat) => format!(
                        "{}<span class=\"warn note\">{}</span>",
                        esc(&t.detail),
                        esc(caveat)
                    ),
                    None => esc(&t.detail),
                },
            ],
            failed: !t.passed,
        })
        .collect();
    out.push_str(&table(
        "thresholds",
        &[
            text("scope"),
            text("threshold"),
            num("measured"),
            text("result"),
            text("detail"),
        ],
        &rows,
    ));
    out.push_str("</section>");
    out
}

fn phase_title(p: &PhaseResult, slot: usize) -> String {
    if p.name.is_empty() {
        format!("phase {}", slot + 1)
    } else {
        p.name.clone()
    }
}

pub fn phase(r: &Results, p: &PhaseResult, slot: usize) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<section class=\"phase\" id=\"phase-{slot}\"><h2>Phase {}: {}</h2>",
        slot + 1,
        esc(&phase_title(p, slot))
    );
    let interrupted = if p.interrupted {
        " <span class=\"badge fail\">interrupted</span>"
    } else {
        ""
    };
    let _ = write!(
        out,
        "<p class=\"muted\">Started {}; planned {}, measured {}.{interrupted}</p>",
        esc(&format::utc(p.started_unix_ms)),
        esc(&format::duration(p.duration_secs)),
        esc(&format::duration(p.totals.elapsed_secs)),
    );
    out.push_str(&key_figures(p));
    out.push_str(&latency_table(&p.totals));

    // The server's charts right below the clients' over the same seconds,
    // the distributions after both.
    let charts = charts::phase_charts(p, slot);
    out.push_str("<h3>Charts</h3><div class=\"charts\">");
    for f in &charts.over_time {
        out.push_str(&figure(f));
    }
    out.push_str("</div>");
    if let Some(server) = &p.server {
        out.push_str(&server_part(p, server, slot));
    }
    out.push_str("<h3>Latency distributions</h3><div class=\"charts\">");
    for f in &charts.distributions {
        out.push_str(&figure(f));
    }
    out.push_str("</div>");

    out.push_str("<h3>Agents</h3>");
    out.push_str(&agents_table(r, p));
    out.push_str(&figures_details(
        &p.figures,
        "All named figures of this phase",
    ));
    out.push_str("</section>");
    out
}

/// What the server's metrics endpoint said during the phase: where it was
/// scraped, how the scrapes went, its key figures and its charts.
fn server_part(p: &PhaseResult, s: &ServerSeries, slot: usize) -> String {
    let mut out = format!("<div class=\"server\" id=\"phase-{slot}-server\"><h3>Server</h3>");
    let failed = if s.scrape_failures > 0 {
        format!(
            ", <span class=\"warn\">{} failed</span>{}",
            int(s.scrape_failures),
            s.first_error
                .as_deref()
                .map(|e| format!(" (the first: {})", esc(e)))
                .unwrap_or_default()
        )
    } else {
        ", none failed".to_string()
    };
    let _ = write!(
        out,
        "<p class=\"muted\">Scraped from <code>{}</code> about once a second: {} scrape{}{failed}. \
         Its time axis is the clients': seconds since the phase started.</p>",
        esc(&s.url),
        int(s.scrapes),
        if s.scrapes == 1 { "" } else { "s" },
    );
    if s.samples.is_empty() {
        out.push_str(
            "<p class=\"warn\">No scrape succeeded: there are no server figures for this phase.</p></div>",
        );
        return out;
    }
    let peak = |f: fn(&ServerSample) -> Option<f64>| s.peak(f);
    let or_none = |v: Option<String>| v.unwrap_or_else(|| NONE.to_string());
    let t = &s.totals;
    out.push_str("<div class=\"stats\">");
    stat(
        &mut out,
        "CPU, peak",
        or_none(peak(|x| x.cpu_percent).map(format::percent)),
        format!(
            "of one core; {} CPU-seconds in all",
            esc(&or_none(t.cpu_seconds.map(format::value)))
        ),
    );
    stat(
        &mut out,
        "memory, peak",
        or_none(peak(|x| x.rss_bytes.map(|b| b as f64)).map(format::mib)),
        format!(
            "resident; {} at the end",
            esc(&or_none(
                s.samples
                    .iter()
                    .rev()
                    .find_map(|x| x.rss_bytes)
                    .map(|b| format::mib(b as f64))
            ))
        ),
    );
    stat(
        &mut out,
        "connections, peak",
        or_none(peak(|x| x.connections.map(|c| c as f64)).map(|c| format::thousands(c, 0))),
        format!("the clients' peak: {}", int(p.totals.peak_connections)),
    );
    let per_sec_peak = |f| esc(&format!("peak {}/s", or_none(peak(f).map(format::rate))));
    stat(
        &mut out,
        "messages in",
        or_none(t.messages_in.map(|v| format::thousands(v, 0))),
        per_sec_peak(|x| x.messages_in_per_sec),
    );
    stat(
        &mut out,
        "messages out",
        or_none(t.messages_out.map(|v| format::thousands(v, 0))),
        per_sec_peak(|x| x.messages_out_per_sec),
    );
    let drops_sub = match t.drops {
        Some(d) if d > 0.0 => "<span class=\"warn\">for slow readers</span>".to_string(),
        _ => "for slow readers".to_string(),
    };
    stat(
        &mut out,
        "dropped",
        or_none(t.drops.map(|v| format::thousands(v, 0))),
        drops_sub,
    );
    out.push_str("</div><div class=\"charts\">");
    for f in charts::server_charts(p, s, slot) {
        out.push_str(&figure(&f));
    }
    out.push_str("</div></div>");
    out
}

fn figure(f: &Figure) -> String {
    let body = match &f.svg {
        Ok(svg) => svg.clone(),
        Err(why) => format!("<div class=\"nodata\">{}</div>", esc(why)),
    };
    let caption = f
        .caption
        .as_ref()
        .filter(|_| f.svg.is_ok())
        .map(|c| format!("<figcaption>{}</figcaption>", esc(c)))
        .unwrap_or_default();
    format!("<figure><h4>{}</h4>{body}{caption}</figure>", esc(&f.title))
}

fn stat(out: &mut String, key: &str, value: String, sub: String) {
    let _ = write!(
        out,
        "<div class=\"stat\"><div class=\"k\">{}</div><div class=\"v\">{}</div><div class=\"sub\">{}</div></div>",
        esc(key),
        esc(&value),
        sub
    );
}

fn key_figures(p: &PhaseResult) -> String {
    let t = &p.totals;
    let held_after_ramp: u64 = p.agents.iter().map(|a| a.held_after_ramp).sum();
    // The rates of the summary, results.json and thresholds: over the
    // seconds of sending, copies only.
    let per_sec =
        |r: Option<f64>| r.map_or_else(|| NONE.to_string(), |r| format!("{}/s", format::rate(r)));
    let mut out = String::from("<div class=\"stats\">");
    if let Some(d) = t.latency(Latency::Delivery).filter(|h| h.count > 0) {
        let timed = match t.timed_share() {
            Some(share) if share < loadgen::printer::TIMED_SHARE_WARNING => format!(
                "p50 {} ms; <span class=\"warn\">only {} of copies timed</span>",
                esc(&format::ms(d.p50_ms)),
                esc(&format::percent(share * 100.0))
            ),
            Some(share) => format!(
                "p50 {} ms; {} of copies timed",
                esc(&format::ms(d.p50_ms)),
                esc(&format::percent(share * 100.0))
            ),
            None => format!("p50 {} ms", esc(&format::ms(d.p50_ms))),
        };
        stat(
            &mut out,
            "delivery p99",
            format!("{} ms", format::ms(d.p99_ms)),
            timed,
        );
    }
    let short = p.connections.saturating_sub(t.open_connections);
    let held_sub = if short > 0 && p.connections > 0 {
        format!(
            "of {} target, <span class=\"warn\">{} short</span>",
            int(p.connections),
            int(short)
        )
    } else {
        format!("of {} target", int(p.connections))
    };
    stat(&mut out, "held at end", int(t.open_connections), held_sub);
    stat(
        &mut out,
        "held after ramp",
        int(held_after_ramp),
        format!("peak {}", int(t.peak_connections)),
    );
    if let Some(achieved) = p.ramp_achieved {
        // the ramp that happened beside the ramp that was asked
        let asked = match p.ramp_asked {
            Some(asked) if achieved < asked * 0.9 => format!(
                "<span class=\"warn\">asked {}/s</span>",
                esc(&format::rate(asked))
            ),
            Some(asked) => format!("asked {}/s", esc(&format::rate(asked))),
            None => "unpaced".to_string(),
        };
        stat(
            &mut out,
            "ramp achieved",
            format!("{}/s", format::rate(achieved)),
            format!("{asked}; over {:.1} s", p.ramp_secs),
        );
    }
    let errors = t.connect_errors_total();
    let errors_sub = if errors > 0 {
        format!("<span class=\"warn\">{} errors</span>", int(errors))
    } else {
        "no errors".to_string()
    };
    stat(
        &mut out,
        "connects ok",
        int(t.connects_ok),
        format!("of {} attempted, {errors_sub}", int(t.connects_attempted)),
    );
    stat(
        &mut out,
        "messages sent",
        int(t.messages_sent),
        esc(&per_sec(t.sent_per_sec(p.sending_secs))),
    );
    stat(
        &mut out,
        "copies received",
        int(t.copies_received),
        format!(
            "{}; {} notices apart",
            esc(&per_sec(t.copies_per_sec(p.sending_secs))),
            int(t.notices_received())
        ),
    );
    let lost_sub = match format::percent_of(t.messages_lost, t.messages_sent) {
        Some(pc) if t.messages_lost > 0 => {
            format!(
                "<span class=\"warn\">{} of sent</span>",
                esc(&format::percent(pc))
            )
        }
        _ => "own copies that never came back".to_string(),
    };
    stat(&mut out, "messages lost", int(t.messages_lost), lost_sub);
    out.push_str("</div>");

    if let Some(saturated) = p.saturation.describe() {
        let _ = write!(out, "<p class=\"warn\">Saturated: {}.</p>", esc(&saturated));
    }
    out.push_str(&counts_line("Connect errors", &t.connect_errors));
    out.push_str(&counts_line("Unexpected closes", &t.closes_unexpected));
    out
}

/// "Connect errors: timeout 3, refused 2", or "none".
fn counts_line(title: &str, counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return format!("<p>{}: <span class=\"muted\">none</span></p>", esc(title));
    }
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(label, n)| format!("{} <b>{}</b>", esc(label), int(*n)))
        .collect();
    format!(
        "<p>{} ({}): <span class=\"warn\">{}</span></p>",
        esc(title),
        int(total),
        parts.join(", ")
    )
}

fn latency_table(t: &Totals) -> String {
    let rows: Vec<Row> = Latency::DISPLAY
        .into_iter()
        .filter_map(|k| t.latency(k).map(|h| (k, h)))
        .filter(|(_, h)| h.count > 0)
        .map(|(k, h)| Row {
            cells: vec![
                esc(Latency::label(k)),
                int(h.count),
                esc(&format::ms(h.p50_ms)),
                esc(&format::ms(h.p90_ms)),
                esc(&format::ms(h.p99_ms)),
                esc(&format::ms(h.p999_ms)),
                esc(&format::ms(h.max_ms)),
            ],
            failed: false,
        })
        .collect();
    if rows.is_empty() {
        return "<h3>Latency</h3><p class=\"muted\">no samples</p>".to_string();
    }
    let mut out = String::from("<h3>Latency (ms, exact: merged histograms)</h3>");
    out.push_str(&table(
        "latency",
        &[
            text("kind"),
            num("samples"),
            num("p50"),
            num("p90"),
            num("p99"),
            num("p99.9"),
            num("max"),
        ],
        &rows,
    ));
    out
}

fn agent_label(agents: &[AgentResult], index: usize) -> String {
    match agents.get(index) {
        Some(a) => format!(
            "{}<br><span class=\"muted nowrap\">{}</span>",
            esc(or_none(&a.name)),
            esc(&a.addr)
        ),
        None => format!("agent #{index} <span class=\"muted\">(not in the agent list)</span>"),
    }
}

/// The agent's delivery p99.
fn delivery_p99(t: &Totals) -> Option<f64> {
    t.latency(Latency::Delivery)
        .filter(|h| h.count > 0)
        .map(|h| h.p99_ms)
}

fn cpu_cell(a: &AgentPhase) -> String {
    let sat = &a.saturation;
    if !sat.loadgen_cpu_max.is_finite() {
        return NONE.to_string();
    }
    let threads = a.threads.max(1);
    let mut cell = format!(
        "<span class=\"nowrap\">{:.0} % of one core</span>",
        sat.loadgen_cpu_max
    );
    if a.threads > 0 {
        let _ = write!(
            cell,
            " <span class=\"muted nowrap\">({} core{} = {} %)</span>",
            int(threads as u64),
            if threads == 1 { "" } else { "s" },
            int(threads as u64 * 100)
        );
    }
    if sat.loadgen() {
        let _ = write!(
            cell,
            "<span class=\"warn note\">saturated in second {}: its latencies describe itself</span>",
            esc(&loadgen::saturation::seconds(&sat.loadgen_secs))
        );
    }
    if !sat.host_secs.is_empty() {
        let _ = write!(
            cell,
            "<span class=\"warn note\">its host saturated in second {} (busiest {:.0} % of all cores)</span>",
            esc(&loadgen::saturation::seconds(&sat.host_secs)),
            sat.host_cpu_max
        );
    }
    cell
}

fn agents_table(r: &Results, p: &PhaseResult) -> String {
    if p.agents.is_empty() {
        return "<p class=\"muted\">No agent took part in this phase.</p>".to_string();
    }
    let rows: Vec<Row> = p
        .agents
        .iter()
        .map(|a| {
            let slice = format!("{}..{}", int(a.first), int(a.first.saturating_add(a.count)));
            let t = a.totals.as_ref();
            let from_totals = |f: fn(&Totals) -> u64| t.map_or(NONE.to_string(), |t| int(f(t)));
            let failure = a
                .failure
                .as_deref()
                .map(|f| format!("<span class=\"warn\">{}</span>", esc(f)))
                .unwrap_or_default();
            Row {
                cells: vec![
                    agent_label(&r.agents, a.agent),
                    slice,
                    int(a.held_after_ramp),
                    from_totals(|t| t.open_connections),
                    from_totals(|t| t.connects_ok),
                    from_totals(Totals::connect_errors_total),
                    from_totals(|t| t.messages_sent),
                    from_totals(|t| t.copies_received),
                    from_totals(|t| t.messages_lost),
                    t.and_then(delivery_p99)
                        .map_or(NONE.to_string(), |v| esc(&format::ms(v))),
                    cpu_cell(a),
                    failure,
                ],
                failed: a.failure.is_some() || t.is_none(),
            }
        })
        .collect();
    table(
        "agents",
        &[
            text("agent"),
            num("slice"),
            num("held after ramp"),
            num("held at end"),
            num("connects ok"),
            num("connect errors"),
            num("sent"),
            num("copies received"),
            num("lost"),
            num("delivery p99 (ms)"),
            text("CPU max"),
            text("failure"),
        ],
        &rows,
    )
}

fn figures_details(figures: &Figures, summary: &str) -> String {
    if figures.is_empty() {
        return String::new();
    }
    let rows: Vec<Row> = figures
        .iter()
        .map(|(name, v)| Row {
            cells: vec![
                format!("<code>{}</code>", esc(name)),
                esc(&format::value(*v)),
            ],
            failed: false,
        })
        .collect();
    format!(
        "<details><summary>{}</summary>{}</details>",
        esc(summary),
        table("figures", &[text("figure"), num("value")], &rows)
    )
}

/// The agents of the run, with what each one is and whether it failed.
pub fn agents(r: &Results) -> String {
    let mut out = String::from("<section id=\"agents\"><h2>Agents</h2>");
    if r.agents.is_empty() {
        out.push_str("<p class=\"muted\">No agents.</p>");
    } else {
        let rows: Vec<Row> = r
            .agents
            .iter()
            .map(|a| Row {
                cells: vec![
                    esc(or_none(&a.name)),
                    esc(&a.addr),
                    esc(&format::value(a.weight)),
                    esc(a.source_ips.as_deref().unwrap_or(NONE)),
                    esc(or_none(&a.build)),
                    a.failure
                        .as_deref()
                        .map(|f| format!("<span class=\"warn\">{}</span>", esc(f)))
                        .unwrap_or_default(),
                ],
                failed: a.failure.is_some(),
            })
            .collect();
        out.push_str(&table(
            "agent-list",
            &[
                text("name"),
                text("control address"),
                num("weight"),
                text("source addresses"),
                text("build"),
                text("failure"),
            ],
            &rows,
        ));
    }
    out.push_str(&figures_details(
        &r.run_figures,
        "All named figures of the run",
    ));
    out.push_str("</section>");
    out
}
