//! The dashboards as the test reads them: static checks on the JSON, and
//! every query with Grafana's variables replaced by what Grafana would
//! send to Prometheus.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::Error;

/// The datasource uid every panel and query must name (provisioned in
/// grafana/provisioning/datasources/prometheus.yml).
pub const DATASOURCE_UID: &str = "prometheus";

/// Grafana's built-in variables and the values the test gives them. With
/// the provisioned datasource's `timeInterval: 5s` (the scrape interval):
///
/// | variable | value | why |
/// |---|---|---|
/// | `$__rate_interval` | `20s` | Grafana's max(4 × scrape interval, step + scrape interval) at a fine step |
/// | `$__interval` | `5s` | the step of a short time range, never below the scrape interval |
/// | `$__range` | `1m` | a short dashboard time range |
///
/// A dashboard's own query variables (`$agent`, `$instance`) take their
/// `allValue` (`.*`), as Grafana sends them with "All" selected. Any `$`
/// left after that is an error, so a new variable must be added here.
pub const BUILTINS: [(&str, &str); 6] = [
    ("${__rate_interval}", "20s"),
    ("$__rate_interval", "20s"),
    ("${__interval}", "5s"),
    ("$__interval", "5s"),
    ("${__range}", "1m"),
    ("$__range", "1m"),
];

/// A dashboard file, parsed.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// The file name, for messages.
    pub file: String,
    pub json: Value,
}

/// One query of one panel, ready for Prometheus.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelQuery {
    /// "file / panel title / refId", for messages.
    pub place: String,
    pub expr: String,
}

/// A query variable of the form `label_values(METRIC, LABEL)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelValues {
    pub place: String,
    pub metric: String,
    pub label: String,
}

impl Dashboard {
    pub fn load(path: &Path) -> Result<Dashboard, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Dashboard::parse(&path.display().to_string(), &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Dashboard, Error> {
        let json = serde_json::from_str(text).map_err(|source| Error::Json {
            what: file.to_string(),
            source,
        })?;
        Ok(Dashboard {
            file: file.to_string(),
            json,
        })
    }

    fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
            if let Some(list) = v.get("panels").and_then(Value::as_array) {
                for p in list {
                    out.push(p);
                    // collapsed rows keep their panels inside
                    walk(p, out);
                }
            }
        }
        walk(&self.json, &mut out);
        out
    }

    fn title_of(panel: &Value) -> String {
        panel
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("(untitled)")
            .to_string()
    }

    /// Everything wrong with the JSON itself, one line each: panel ids
    /// missing or repeated, a panel without a unit or a description, a
    /// datasource other than [`DATASOURCE_UID`], a panel without queries.
    pub fn static_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let f = &self.file;
        for key in ["uid", "title"] {
            if self
                .json
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                problems.push(format!("{f}: no dashboard {key}"));
            }
        }
        if self
            .json
            .get("schemaVersion")
            .and_then(Value::as_u64)
            .is_none()
        {
            problems.push(format!("{f}: no schemaVersion"));
        }
        let mut ids = HashSet::new();
        for p in self.panels() {
            let title = Dashboard::title_of(p);
            let at = format!("{f} / {title}");
            match p.get("id").and_then(Value::as_u64) {
                Some(id) if !ids.insert(id) => {
                    problems.push(format!("{at}: panel id {id} used twice"))
                }
                Some(_) => {}
                None => problems.push(format!("{at}: no panel id")),
            }
            if p.get("type").and_then(Value::as_str) == Some("row") {
                continue;
            }
            let unit = p
                .pointer("/fieldConfig/defaults/unit")
                .and_then(Value::as_str);
            if unit.is_none_or(|u| u.trim().is_empty()) {
                problems.push(format!("{at}: no fieldConfig.defaults.unit"));
            }
            let desc = p.get("description").and_then(Value::as_str);
            if desc.is_none_or(|d| d.trim().is_empty()) {
                problems.push(format!("{at}: no description"));
            }
            check_datasource(p.get("datasource"), &at, &mut problems);
            let targets = p.get("targets").and_then(Value::as_array);
            match targets {
                Some(ts) if !ts.is_empty() => {
                    for t in ts {
                        let at = format!(
                            "{at} / {}",
                            t.get("refId").and_then(Value::as_str).unwrap_or("?")
                        );
                        check_datasource(t.get("datasource"), &at, &mut problems);
                        if t.get("expr")
                            .and_then(Value::as_str)
                            .is_none_or(|e| e.trim().is_empty())
                        {
                            problems.push(format!("{at}: no expr"));
                        }
                    }
                }
                _ => problems.push(format!("{at}: no queries")),
            }
        }
        for v in self.variables() {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
            if v.get("type").and_then(Value::as_str) == Some("query") {
                check_datasource(
                    v.get("datasource"),
                    &format!("{f} / variable {name}"),
                    &mut problems,
                );
            }
        }
        // and nowhere else (annotations, library panels) another one
        let mut all = Vec::new();
        every_datasource(&self.json, "", &mut all);
        for (at, ds) in all {
            if ds.get("uid").and_then(Value::as_str) != Some(DATASOURCE_UID) {
                problems.push(format!(
                    "{f}: datasource {ds} at {at} is not uid {DATASOURCE_UID:?}"
                ));
            }
        }
        problems
    }

    fn variables(&self) -> Vec<&Value> {
        self.json
            .pointer("/templating/list")
            .and_then(Value::as_array)
            .map(|l| l.iter().collect())
            .unwrap_or_default()
    }

    /// The dashboard's own variables as `(name, value)`: each takes its
    /// `allValue`. A variable without one is an error: the test would not
    /// know what Grafana sends.
    fn own_substitutions(&self) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        for v in self.variables() {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
            let all = v.get("allValue").and_then(Value::as_str).ok_or_else(|| {
                Error::Dashboard(format!(
                    "{}: variable {name} has no allValue; give it one or teach grafana::BUILTINS its value",
                    self.file
                ))
            })?;
            out.push((name.to_string(), all.to_string()));
        }
        Ok(out)
    }

    /// Every query of every panel with variables substituted. Hidden
    /// queries are included: they are still shipped.
    pub fn queries(&self) -> Result<Vec<PanelQuery>, Error> {
        let own = self.own_substitutions()?;
        let mut out = Vec::new();
        for p in self.panels() {
            let title = Dashboard::title_of(p);
            for t in p
                .get("targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(expr) = t.get("expr").and_then(Value::as_str) else {
                    continue;
                };
                let place = format!(
                    "{} / {title} / {}",
                    self.file,
                    t.get("refId").and_then(Value::as_str).unwrap_or("?")
                );
                let expr = substitute(expr, &own)
                    .map_err(|e| Error::Dashboard(format!("{place}: {e}")))?;
                out.push(PanelQuery { place, expr });
            }
        }
        Ok(out)
    }

    /// The `label_values(METRIC, LABEL)` query variables.
    pub fn label_values(&self) -> Result<Vec<LabelValues>, Error> {
        let mut out = Vec::new();
        for v in self.variables() {
            if v.get("type").and_then(Value::as_str) != Some("query") {
                continue;
            }
            let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
            let place = format!("{} / variable {name}", self.file);
            let q = v
                .pointer("/query/query")
                .or_else(|| v.get("query"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let inner = q
                .trim()
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    Error::Dashboard(format!(
                        "{place}: query {q:?} is not label_values(METRIC, LABEL)"
                    ))
                })?;
            let (metric, label) = inner.rsplit_once(',').ok_or_else(|| {
                Error::Dashboard(format!(
                    "{place}: query {q:?} is not label_values(METRIC, LABEL)"
                ))
            })?;
            out.push(LabelValues {
                place,
                metric: metric.trim().to_string(),
                label: label.trim().to_string(),
            });
        }
        Ok(out)
    }
}

/// Every value under a "datasource" key, with its JSON pointer.
fn every_datasource<'a>(v: &'a Value, at: &str, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{at}/{k}");
                if k == "datasource" {
                    out.push((here.clone(), child));
                }
                every_datasource(child, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                every_datasource(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn check_datasource(ds: Option<&Value>, at: &str, problems: &mut Vec<String>) {
    match ds.and_then(|d| d.get("uid")).and_then(Value::as_str) {
        Some(DATASOURCE_UID) => {}
        Some(other) => problems.push(format!(
            "{at}: datasource uid {other:?}, not {DATASOURCE_UID:?}"
        )),
        None => problems.push(format!("{at}: no datasource uid")),
    }
}

/// `expr` with [`BUILTINS`] and `own` variables (`$name`, `${name}`,
/// `${name:regex}`) replaced; an error names any `$` left over.
pub fn substitute(expr: &str, own: &[(String, String)]) -> Result<String, String> {
    let mut out = expr.to_string();
    for (var, value) in BUILTINS {
        out = out.replace(var, value);
    }
    // longest names first, so $agent does not eat the front of $agents
    let mut own: Vec<&(String, String)> = own.iter().collect();
    own.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in own {
        for form in [
            format!("${{{name}:regex}}"),
            format!("${{{name}}}"),
            format!("${name}"),
        ] {
            out = out.replace(&form, value);
        }
    }
    match out.find('$') {
        Some(at) => Err(format!(
            "unknown variable at {:?}: add it to labtest's substitution table",
            &out[at..]
        )),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "uid": "x", "title": "X", "schemaVersion": 39,
      "templating": {"list": [{"name": "agent", "type": "query", "allValue": ".*",
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "query": {"query": "label_values(loadgen_agent_info, instance)"}}]},
      "panels": [
        {"id": 1, "type": "timeseries", "title": "A", "description": "a",
         "datasource": {"uid": "prometheus"}, "fieldConfig": {"defaults": {"unit": "cps"}},
         "targets": [{"refId": "A", "datasource": {"uid": "prometheus"},
                      "expr": "rate(x{instance=~\"$agent\"}[$__rate_interval])"}]},
        {"id": 2, "type": "stat", "title": "B", "description": "b",
         "datasource": {"uid": "prometheus"}, "fieldConfig": {"defaults": {"unit": "short"}},
         "targets": [{"refId": "A", "datasource": {"uid": "prometheus"}, "expr": "y{i=~\"${agent:regex}\"}"}]}
      ]}"#;

    #[test]
    fn a_good_dashboard_has_no_problems_and_its_queries_are_substituted() {
        let d = Dashboard::parse("good.json", GOOD).unwrap();
        assert_eq!(d.static_problems(), Vec::<String>::new());
        let q = d.queries().unwrap();
        assert_eq!(
            q,
            [
                PanelQuery {
                    place: "good.json / A / A".into(),
                    expr: "rate(x{instance=~\".*\"}[20s])".into()
                },
                PanelQuery {
                    place: "good.json / B / A".into(),
                    expr: "y{i=~\".*\"}".into()
                },
            ]
        );
        assert_eq!(
            d.label_values().unwrap(),
            [LabelValues {
                place: "good.json / variable agent".into(),
                metric: "loadgen_agent_info".into(),
                label: "instance".into()
            }]
        );
    }

    #[test]
    fn every_kind_of_problem_is_named() {
        let bad = GOOD
            .replace(r#""id": 2"#, r#""id": 1"#)
            .replace(r#""unit": "cps""#, r#""unit": """#)
            .replace(r#""description": "b","#, "")
            .replace(
                r#""datasource": {"uid": "prometheus"}, "expr": "y{i=~\"${agent:regex}\"}""#,
                r#""datasource": {"uid": "other"}, "expr": "y""#,
            )
            .replace(
                r#""panels": ["#,
                r#""annotations": {"list": [{"datasource": "-- Grafana --"}]}, "panels": ["#,
            );
        let d = Dashboard::parse("bad.json", &bad).unwrap();
        let problems = d.static_problems();
        for expected in [
            "bad.json / B: panel id 1 used twice",
            "bad.json / A: no fieldConfig.defaults.unit",
            "bad.json / B: no description",
            "bad.json / B / A: datasource uid \"other\", not \"prometheus\"",
            "bad.json: datasource \"-- Grafana --\" at /annotations/list/0/datasource is not uid \"prometheus\"",
            "bad.json: datasource {\"uid\":\"other\"} at /panels/1/targets/0/datasource is not uid \"prometheus\"",
        ] {
            assert!(
                problems.iter().any(|p| p == expected),
                "{expected:?} not in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }

    #[test]
    fn an_unknown_variable_is_an_error() {
        let err = substitute("rate(x[$__rate_interval]) * $unknown", &[]).unwrap_err();
        assert!(err.contains("$unknown"), "{err}");
        let own = [
            ("a".to_string(), "1".to_string()),
            ("ab".to_string(), "2".to_string()),
        ];
        assert_eq!(substitute("$ab $a ${a}", &own).unwrap(), "2 1 1");
        assert!(Dashboard::parse("x.json", "{").is_err());
    }
}
