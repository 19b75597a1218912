//! prometheus/alerts.yml as the test reads it, and what every rule must
//! carry for an operator: a `for`, a severity, a summary and a
//! description, and an expr the test can cut at its comparison.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::promql::{self, Comparison};
use crate::Error;

/// Severities an alert may carry.
pub const SEVERITIES: [&str; 2] = ["warning", "critical"];

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default)]
    pub record: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The group it is in, for messages.
    #[serde(skip)]
    pub group: String,
}

impl Rule {
    /// "group / name", for messages.
    pub fn place(&self) -> String {
        let name = self
            .alert
            .as_deref()
            .or(self.record.as_deref())
            .unwrap_or("(unnamed)");
        format!("{} / {name}", self.group)
    }

    /// The expr cut at its final comparison (alerts only).
    pub fn comparison(&self) -> Result<Comparison, Error> {
        promql::split_comparison(&self.expr)
    }
}

/// Every rule of every group, in file order.
pub fn parse(text: &str) -> Result<Vec<Rule>, Error> {
    let file: RuleFile = serde_yaml::from_str(text).map_err(|source| Error::Yaml {
        what: "alert rules".to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for g in file.groups {
        for mut r in g.rules {
            r.group = g.name.clone();
            out.push(r);
        }
    }
    Ok(out)
}

pub fn load(path: &Path) -> Result<Vec<Rule>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text)
}

/// What an alert lacks, one line each. Recording rules are not checked.
pub fn problems(rules: &[Rule]) -> Vec<String> {
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for r in rules {
        let Some(name) = &r.alert else { continue };
        let at = r.place();
        if !names.insert(name.clone()) {
            out.push(format!("{at}: the name is used twice"));
        }
        if r.for_.as_deref().is_none_or(|f| f.trim().is_empty()) {
            out.push(format!("{at}: no `for:`"));
        }
        match r.labels.get("severity") {
            Some(s) if SEVERITIES.contains(&s.as_str()) => {}
            Some(s) => out.push(format!("{at}: severity {s:?} is none of {SEVERITIES:?}")),
            None => out.push(format!("{at}: no severity label")),
        }
        for key in ["summary", "description"] {
            if r.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                out.push(format!("{at}: no {key} annotation"));
            }
        }
        if let Err(e) = r.comparison() {
            out.push(format!("{at}: {e}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_alert_passes_and_every_gap_is_named() {
        let good = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 1m\n    labels: {severity: critical}\n    annotations: {summary: s, description: d}\n  - record: r\n    expr: sum(up)\n";
        let rules = parse(good).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(problems(&rules), Vec::<String>::new());
        assert_eq!(rules[0].comparison().unwrap().left, "up");

        let bad = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(up)\n    labels: {severity: page}\n    annotations: {summary: s}\n  - alert: A\n    expr: up == 0\n    for: 1m\n    annotations: {summary: s, description: d}\n";
        let found = problems(&parse(bad).unwrap());
        assert_eq!(
            found[..4],
            [
                "g / A: no `for:`".to_string(),
                "g / A: severity \"page\" is none of [\"warning\", \"critical\"]".to_string(),
                "g / A: no description annotation".to_string(),
                "g / A: no top-level comparison in \"sum(up)\": write `<expression> <op> <number>`"
                    .to_string(),
            ]
        );
        assert_eq!(
            found[4..],
            [
                "g / A: the name is used twice".to_string(),
                "g / A: no severity label".to_string()
            ]
        );
    }
}
