//! report.html: one self-contained page a person opens from disk, with no
//! network: inline style, charts drawn here as inline SVG, no scripts.
//!
//! Layout: `sections` builds the header, the thresholds, each phase and
//! the agents; `charts` turns a phase's series and histograms into
//! `svg` line charts; `html` escapes and wraps; `format` writes numbers
//! and times for people. Only [`write_html`] touches the file system.

mod charts;
mod format;
mod html;
mod sections;
mod svg;

use std::path::Path;

use anyhow::Context;

use crate::results::Results;

/// The whole page.
pub fn render(results: &Results) -> String {
    let mut body = sections::header(results);
    body.push_str(&sections::thresholds(results));
    if results.phases.is_empty() {
        body.push_str("<h2>Phases</h2><p class=\"muted\">No phase ran.</p>");
    }
    for (slot, phase) in results.phases.iter().enumerate() {
        body.push_str(&sections::phase(results, phase, slot));
    }
    body.push_str(&sections::agents(results));
    let name = if results.scenario.name.is_empty() {
        "unnamed scenario"
    } else {
        &results.scenario.name
    };
    let verdict = if results.passed { "PASS" } else { "FAIL" };
    html::page(&format!("{verdict}: {name} (wslab report)"), &body)
}

/// Writes render() to path.
pub fn write_html(results: &Results, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, render(results)).with_context(|| format!("writing {}", path.display()))
}
