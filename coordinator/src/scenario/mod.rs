//! Scenario files: [`load`] reads and parses one, [`check`] finds every
//! semantic problem in it before anything starts, each named by file,
//! line and key, so a scenario that would fail minutes into a run (or
//! could never fit the machines) fails in a second with the fix named.
//!
//! `schema` is the file's shape, `yaml_error` words parse errors, `locate`
//! finds a key's line in the text, `validate` holds the checks of values
//! and `capacity` the arithmetic of what fits.

mod capacity;
pub mod locate;
pub mod schema;
mod validate;
mod yaml_error;

use std::fmt;
use std::path::{Path, PathBuf};

pub use capacity::local_agents_needed;
pub use schema::Scenario;

/// A parsed scenario with the text it came from, kept so later problems
/// can still be placed on a line.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub scenario: Scenario,
    pub source: String,
    pub path: PathBuf,
}

/// One thing wrong with a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as given on the command line.
    pub file: String,
    /// 1-based; `None` when the key is not written anywhere.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key path, e.g. `phases[1].connections`; empty for the file as a
    /// whole (unreadable, not YAML).
    pub key: String,
    pub message: String,
}

impl Problem {
    /// A problem with `key`, placed on the line where `loaded` writes it
    /// (or its nearest written parent).
    pub fn at(loaded: &Loaded, key: impl Into<String>, message: impl Into<String>) -> Problem {
        let key = key.into();
        let position = locate::locate(&loaded.source, &key);
        Problem {
            file: loaded.path.display().to_string(),
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            key,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// `scenarios/x.yaml:12:5: phases[1].connections: MESSAGE`, with the
    /// parts that are unknown left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Reads and parses a scenario. YAML syntax errors, wrong types, unknown
/// keys and missing required keys become one Problem with file, line and
/// column (parsing stops at the first).
pub fn load(path: &Path) -> Result<Loaded, Problems> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        Problems(vec![Problem {
            file: file.clone(),
            line: None,
            column: None,
            key: String::new(),
            message: format!("cannot read it: {e}"),
        }])
    })?;
    match serde_yaml::from_str::<Scenario>(&source) {
        Ok(mut scenario) => {
            // A file that cannot be read is `check`'s problem, placed on
            // its line there.
            scenario.target.ca_pem =
                ca_path(path, &scenario.target).and_then(|ca| std::fs::read_to_string(ca).ok());
            Ok(Loaded {
                scenario,
                source,
                path: path.to_path_buf(),
            })
        }
        Err(e) => Err(Problems(vec![yaml_error::problem(file, &source, &e)])),
    }
}

/// Where `target.ca_file` is: relative paths start at the scenario file's
/// directory, so a scenario and its CA can move together.
pub fn ca_path(scenario: &Path, target: &schema::Target) -> Option<PathBuf> {
    let ca = target.ca_file.as_ref()?;
    Some(match scenario.parent() {
        Some(dir) => dir.join(ca),
        None => ca.clone(),
    })
}

/// Facts about the machine the coordinator runs on, for the capacity
/// checks of `--local` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// net.ipv4.ip_local_port_range.
    pub port_range: (u16, u16),
    /// The open-file limit each process here gets (the soft limit raised
    /// to the hard limit, as the server and loadgen do at start).
    pub nofile: u64,
}

impl Machine {
    /// Reads this machine's facts. Raises this process's soft open-file
    /// limit to the hard limit on the way, which the coordinator wants
    /// anyway for its own connections. An unreadable port range counts as
    /// Linux's default.
    pub fn this_host() -> Machine {
        Machine {
            port_range: loadgen::capacity::local_port_range().unwrap_or(DEFAULT_PORT_RANGE),
            nofile: loadgen::capacity::raise_nofile(),
        }
    }
}

/// Linux's default net.ipv4.ip_local_port_range: 28,232 ports.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (32768, 60999);

/// How a scenario is about to be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// `--local`: the coordinator starts the server and the agents on this
    /// machine, and fills in empty target URLs.
    pub local: bool,
    pub machine: Machine,
}

/// Finds every semantic problem (not just the first), each naming file,
/// line and key: values out of range, malformed URLs, headers, addresses
/// and thresholds, and numbers the agents or the local machine cannot
/// hold.
pub fn check(loaded: &Loaded, opts: &CheckOptions) -> Result<(), Problems> {
    let mut problems = validate::problems(loaded, opts);
    problems.extend(capacity::problems(loaded, opts));
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    Err(Problems(problems))
}

/// What `coordinator validate FILE [--local]` does: loads and checks the
/// file against this machine and says what it would run, e.g.
/// `scenarios/smoke.yaml: ok (1 phase, 3000 connections at most, 3 agents)`.
pub fn validate_cmd(path: &Path, local: bool) -> Result<String, Problems> {
    let loaded = load(path)?;
    let opts = CheckOptions {
        local,
        machine: Machine::this_host(),
    };
    check(&loaded, &opts)?;
    Ok(summary(&loaded, &opts))
}

/// The success line of `validate`.
pub fn summary(loaded: &Loaded, opts: &CheckOptions) -> String {
    let s = &loaded.scenario;
    let phases = s.phases.len();
    let most = s.phases.iter().map(|p| p.connections).max().unwrap_or(0);
    let agents = if opts.local || s.agents.local.is_some() {
        plural(u64::from(local_agents_needed(s, &opts.machine)), "agent")
    } else if let Some(dns) = &s.agents.dns {
        format!("agents: every address of {dns}")
    } else {
        plural(s.agents.static_list.len() as u64, "agent")
    };
    format!(
        "{}: ok ({}, {} at most, {agents})",
        loaded.path.display(),
        plural(phases as u64, "phase"),
        plural(most, "connection"),
    )
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A scenario parsed from text, as `load` would from a file.
    pub fn loaded(text: &str) -> Loaded {
        Loaded {
            scenario: serde_yaml::from_str(text).unwrap(),
            source: text.to_string(),
            path: PathBuf::from("test.yaml"),
        }
    }

    pub const MACHINE: Machine = Machine {
        port_range: DEFAULT_PORT_RANGE,
        nofile: 20_000,
    };

    pub fn problems(text: &str, local: bool) -> Vec<Problem> {
        let opts = CheckOptions {
            local,
            machine: MACHINE,
        };
        match check(&loaded(text), &opts) {
            Ok(()) => Vec::new(),
            Err(p) => p.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// `target.ca_file` is read relative to the scenario's directory, and
    /// its contents are what the orders carry (`split::phase_opts`).
    #[test]
    fn ca_file_is_read_beside_the_scenario_and_sent_as_contents() {
        let dir = std::env::temp_dir().join(format!("wslab-ca-load-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        std::fs::write(dir.join("certs/ca.pem"), "PEM TEXT").unwrap();
        let scenario = dir.join("s.yaml");
        std::fs::write(
            &scenario,
            "name: s\ntarget:\n  urls: [wss://h:1]\n  ca_file: certs/ca.pem\nagents:\n  local: 1\n\
             phases:\n  - name: one\n    duration: 10s\n    connections: 10\n",
        )
        .unwrap();
        let loaded = load(&scenario).unwrap();
        let target = &loaded.scenario.target;
        assert_eq!(target.ca_pem.as_deref(), Some("PEM TEXT"));
        let opts = crate::split::phase_opts(target, &target.urls, &loaded.scenario.phases[0], "");
        assert_eq!(
            (opts.ca_file, opts.ca_pem.as_deref()),
            (None, Some("PEM TEXT"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn problems_display_with_what_is_known() {
        let mut p = Problem {
            file: "scenarios/x.yaml".into(),
            line: Some(12),
            column: Some(5),
            key: "phases[1].connections".into(),
            message: "too many".into(),
        };
        assert_eq!(
            p.to_string(),
            "scenarios/x.yaml:12:5: phases[1].connections: too many"
        );
        p.column = None;
        assert_eq!(
            p.to_string(),
            "scenarios/x.yaml:12: phases[1].connections: too many"
        );
        p.line = None;
        p.key.clear();
        assert_eq!(p.to_string(), "scenarios/x.yaml: too many");
        let two = Problems(vec![p.clone(), p]);
        assert_eq!(
            two.to_string(),
            "scenarios/x.yaml: too many\nscenarios/x.yaml: too many"
        );
    }

    #[test]
    fn load_reports_unreadable_files_and_yaml_errors_with_positions() {
        let err = load(Path::new("/nonexistent/x.yaml")).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert!(err.0[0].message.starts_with("cannot read it: "), "{err}");
        assert_eq!(err.0[0].line, None);
    }

    #[test]
    fn summary_counts_phases_connections_and_agents() {
        let text = "name: s\ntarget: {urls: []}\nagents: {local: 1}\nphases:\n\
                    - {name: a, duration: 10s, connections: 30000, ramp: 10000}\n\
                    - {name: b, duration: 10s, connections: 5}\n";
        let opts = CheckOptions {
            local: true,
            machine: Machine {
                port_range: DEFAULT_PORT_RANGE,
                nofile: 1_000_000,
            },
        };
        // 30,000 connections need two agents at 20,000 files each.
        let l = loaded(text);
        assert_eq!(
            summary(
                &l,
                &CheckOptions {
                    machine: MACHINE,
                    ..opts
                }
            ),
            "test.yaml: ok (2 phases, 30000 connections at most, 2 agents)"
        );
        assert_eq!(
            summary(&l, &opts),
            "test.yaml: ok (2 phases, 30000 connections at most, 1 agent)"
        );
    }
}
