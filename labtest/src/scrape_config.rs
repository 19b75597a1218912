//! The lab's prometheus.yml pointed at loopback: only the targets change.
//! Every job's targets become the addresses of the processes the test
//! started (service discovery becomes a static list), rule files are made
//! absolute so they still resolve from a temporary directory, and every
//! other setting (intervals, timeouts, labels, relabelling) is kept, so
//! the Prometheus under test runs the lab's own configuration.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::{Mapping, Value};

use crate::Error;

/// `text` with each job's targets replaced by `targets[job]`. A job in the
/// file without an entry in `targets`, or an entry without a job, is an
/// error: the test and the config must name the same jobs. Relative
/// `rule_files` are resolved against `config_dir`.
pub fn rewrite(
    text: &str,
    targets: &BTreeMap<String, Vec<String>>,
    config_dir: &Path,
) -> Result<String, Error> {
    let mut doc: Value = serde_yaml::from_str(text).map_err(|source| Error::Yaml {
        what: "prometheus.yml".to_string(),
        source,
    })?;
    let root = doc
        .as_mapping_mut()
        .ok_or_else(|| Error::ScrapeConfig("the top level is not a mapping".into()))?;

    if let Some(files) = root.get_mut("rule_files").and_then(Value::as_sequence_mut) {
        for f in files.iter_mut() {
            let Some(name) = f.as_str() else {
                return Err(Error::ScrapeConfig(format!(
                    "rule_files entry {f:?} is not a string"
                )));
            };
            if Path::new(name).is_relative() {
                *f = Value::String(config_dir.join(name).display().to_string());
            }
        }
    }

    let jobs = root
        .get_mut("scrape_configs")
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| Error::ScrapeConfig("no scrape_configs list".into()))?;
    let mut seen = Vec::new();
    for job in jobs.iter_mut() {
        let job = job
            .as_mapping_mut()
            .ok_or_else(|| Error::ScrapeConfig("a scrape_configs entry is not a mapping".into()))?;
        let name = job
            .get("job_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::ScrapeConfig("a scrape config without job_name".into()))?
            .to_string();
        let addrs = targets.get(&name).ok_or_else(|| {
            Error::ScrapeConfig(format!(
                "job {name:?} has no loopback address in the test: add it to the test's targets"
            ))
        })?;
        point_at(job, addrs);
        seen.push(name);
    }
    for job in targets.keys() {
        if !seen.contains(job) {
            return Err(Error::ScrapeConfig(format!(
                "the lab's job {job:?} is missing from prometheus.yml"
            )));
        }
    }
    serde_yaml::to_string(&doc).map_err(|source| Error::Yaml {
        what: "rewritten prometheus.yml".to_string(),
        source,
    })
}

/// Replaces a job's service discovery and static targets with `addrs`,
/// keeping the labels of a single static group.
fn point_at(job: &mut Mapping, addrs: &[String]) {
    let sd: Vec<Value> = job
        .keys()
        .filter(|k| k.as_str().is_some_and(|k| k.ends_with("_sd_configs")))
        .cloned()
        .collect();
    for k in sd {
        job.remove(&k);
    }
    let mut group = match job.get("static_configs").and_then(Value::as_sequence) {
        Some(groups) if groups.len() == 1 => groups[0].as_mapping().cloned().unwrap_or_default(),
        _ => Mapping::new(),
    };
    group.insert(
        Value::from("targets"),
        Value::Sequence(addrs.iter().map(|a| Value::from(a.as_str())).collect()),
    );
    job.insert(
        Value::from("static_configs"),
        Value::Sequence(vec![Value::Mapping(group)]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_targets() -> BTreeMap<String, Vec<String>> {
        [
            ("prometheus", vec!["127.0.0.1:1"]),
            ("server", vec!["127.0.0.1:2"]),
            ("agents", vec!["127.0.0.1:3", "127.0.0.1:4"]),
            ("coordinator", vec!["127.0.0.1:5"]),
            ("node", vec!["127.0.0.1:6"]),
        ]
        .into_iter()
        .map(|(j, a)| (j.to_string(), a.into_iter().map(String::from).collect()))
        .collect()
    }

    fn job<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|j| j["job_name"].as_str() == Some(name))
            .unwrap()
    }

    /// The lab's own file: only targets and rule paths change.
    #[test]
    fn the_lab_config_keeps_everything_but_its_targets() {
        let root = crate::repo_root();
        let text = std::fs::read_to_string(root.join("prometheus/prometheus.yml")).unwrap();
        let out = rewrite(&text, &lab_targets(), Path::new("/lab/prometheus")).unwrap();
        let before: Value = serde_yaml::from_str(&text).unwrap();
        let after: Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(before["global"], after["global"]);
        assert_eq!(after["global"]["scrape_interval"].as_str(), Some("5s"));
        assert_eq!(
            after["rule_files"],
            serde_yaml::from_str::<Value>("[/lab/prometheus/alerts.yml]").unwrap()
        );
        let agents = job(&after, "agents");
        assert!(agents.get("dns_sd_configs").is_none(), "{out}");
        assert_eq!(
            agents["static_configs"],
            serde_yaml::from_str::<Value>("[{targets: ['127.0.0.1:3', '127.0.0.1:4']}]").unwrap()
        );
        assert_eq!(
            job(&after, "server")["static_configs"],
            serde_yaml::from_str::<Value>("[{targets: ['127.0.0.1:2']}]").unwrap()
        );
        assert!(
            !out.contains("server:9090") && !out.contains("names:"),
            "{out}"
        );
    }

    #[test]
    fn jobs_must_match_both_ways_and_labels_survive() {
        let text = "rule_files: [/abs/a.yml]\nscrape_configs:\n- job_name: x\n  scrape_interval: 1s\n  static_configs: [{targets: ['x:1'], labels: {role: r}}]\n";
        let t: BTreeMap<String, Vec<String>> =
            [("x".to_string(), vec!["127.0.0.1:9".to_string()])].into();
        let out: Value =
            serde_yaml::from_str(&rewrite(text, &t, Path::new("/d")).unwrap()).unwrap();
        assert_eq!(
            out,
            serde_yaml::from_str::<Value>("rule_files: [/abs/a.yml]\nscrape_configs:\n- job_name: x\n  scrape_interval: 1s\n  static_configs: [{targets: ['127.0.0.1:9'], labels: {role: r}}]\n").unwrap()
        );
        let err = rewrite(text, &BTreeMap::new(), Path::new("/d")).unwrap_err();
        assert!(
            err.to_string()
                .contains("job \"x\" has no loopback address"),
            "{err}"
        );
        let mut more = t.clone();
        more.insert("y".into(), vec![]);
        let err = rewrite(text, &more, Path::new("/d")).unwrap_err();
        assert!(err.to_string().contains("\"y\" is missing"), "{err}");
    }
}
