//! TEMP stub (helper A replaces).
pub mod schema;
use schema::Scenario;
use std::path::{Path, PathBuf};
pub struct Loaded {
    pub scenario: Scenario,
    pub source: String,
    pub path: PathBuf,
}
#[derive(Debug)]
pub struct Problems(pub Vec<String>);
impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}
pub fn load(path: &Path) -> Result<Loaded, Problems> {
    let source = std::fs::read_to_string(path).map_err(|e| Problems(vec![e.to_string()]))?;
    let scenario = serde_yaml::from_str(&source).map_err(|e| Problems(vec![e.to_string()]))?;
    Ok(Loaded {
        scenario,
        source,
        path: path.to_path_buf(),
    })
}
pub struct Machine {
    pub port_range: (u16, u16),
    pub nofile: u64,
}
impl Machine {
    pub fn this_host() -> Machine {
        Machine {
            port_range: loadgen::capacity::local_port_range().unwrap_or((32768, 60999)),
            nofile: loadgen::capacity::raise_nofile(),
        }
    }
}
pub struct CheckOptions {
    pub local: bool,
    pub machine: Machine,
}
pub fn check(_l: &Loaded, _o: &CheckOptions) -> Result<(), Problems> {
    Ok(())
}
pub fn local_agents_needed(s: &Scenario, m: &Machine) -> u32 {
    let max = s.phases.iter().map(|p| p.connections).max().unwrap_or(1);
    let per = loadgen::multiproc::per_process(m.nofile);
    (s.agents.local.unwrap_or(1) as u64).max(max.div_ceil(per)) as u32
}
pub fn validate_cmd(_f: &Path, _l: bool) -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
