//! Turning measurements into a markdown table and a JSON file.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::machine::Machine;

/// What every bench writes to its JSON file: which bench, the machine it
/// ran on (CPU model, cores, date, load), then the bench's own fields. One
/// type for both benches, so no output can leave the machine out.
#[derive(Debug, Serialize)]
pub struct Document<'a, T: Serialize> {
    pub bench: &'static str,
    pub machine: &'a Machine,
    #[serde(flatten)]
    pub body: T,
}

/// A GitHub-flavoured markdown table.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    out.push_str(&format!("| {} |\n", headers.join(" | ")));
    out.push_str(&format!(
        "|{}\n",
        headers.iter().map(|_| " ---: |").collect::<String>()
    ));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// Writes `value` as pretty JSON, creating the parent directory.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).context("serializing the results")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

pub fn mib(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

pub fn fixed(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_header_rule_and_rows() {
        let t = markdown_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n| ---: | ---: |\n| 1 | 2 |\n");
    }

    #[test]
    fn json_goes_to_a_new_directory() {
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        let path = dir.join("sub/out.json");
        write_json(&path, &serde_json::json!({"x": 1})).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["x"], 1);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mib(2048), "2.0");
    }

    #[test]
    fn the_json_names_the_machine() {
        let machine = Machine {
            cpu_model: "AMD EPYC 7R13 Processor".into(),
            cores: 2,
            date: "2026-12-05T10:00:00Z".into(),
            load_average_1m: Some(1.25),
        };
        #[derive(Serialize)]
        struct Body {
            result: u32,
        }
        let dir = std::env::temp_dir().join(format!("bench-doc-{}", std::process::id()));
        let path = dir.join("out.json");
        let doc = Document {
            bench: "broadcast",
            machine: &machine,
            body: Body { result: 7 },
        };
        write_json(&path, &doc).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back["bench"], "broadcast");
        assert_eq!(back["machine"]["cpu_model"], "AMD EPYC 7R13 Processor");
        assert_eq!(back["machine"]["cores"], 2);
        assert_eq!(back["machine"]["date"], "2026-12-05T10:00:00Z");
        assert_eq!(back["machine"]["load_average_1m"], 1.25);
        assert_eq!(back["result"], 7);
    }
}
