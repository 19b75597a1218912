//! What machine a figure was measured on, read once per bench run and
//! printed with every output. The lab's VMs are not all alike (some are
//! Intel Xeon, some AMD EPYC, under the same name), so a figure without
//! the CPU it ran on cannot be compared with another; and a shared machine's
//! load average at the start says how busy it already was.

use serde::Serialize;

/// The CPU model, cores, date and load of the machine a bench ran on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// `model name` of the first processor in /proc/cpuinfo, or
    /// [`UNKNOWN_MODEL`] when there is none (some architectures, or no /proc).
    pub cpu_model: String,
    /// Cores this process may use (affinity and cgroup limits included):
    /// what the bench, the server and everything else shared.
    pub cores: usize,
    /// When the bench started, UTC, RFC 3339 to the second.
    pub date: String,
    /// The 1-minute load average at the start, from /proc/loadavg: on a
    /// shared machine, how much else was running.
    pub load_average_1m: Option<f64>,
}

/// The model written when /proc/cpuinfo names none.
pub const UNKNOWN_MODEL: &str = "unknown CPU model";

impl Machine {
    /// Reads this machine now. Never fails: a file that cannot be read
    /// leaves its field unknown rather than losing the measurement.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Machine {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| UNKNOWN_MODEL.to_string()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            load_average_1m: load_average_1m(&loadavg),
        }
    }

    /// One line for people: `machine: MODEL, N cores, DATE, load average L at start`.
    pub fn line(&self) -> String {
        let load = self
            .load_average_1m
            .map_or_else(|| "unknown".to_string(), |l| format!("{l:.2}"));
        format!(
            "machine: {}, {} cores, {}, load average {load} at start",
            self.cpu_model, self.cores, self.date
        )
    }
}

/// The `model name` of the first processor listed in /proc/cpuinfo text.
/// Every processor of these VMs has the same model, so the first speaks for
/// all.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.trim() == "model name" && !value.is_empty()).then(|| value.to_string())
    })
}

/// The first field of /proc/loadavg text: the 1-minute load average.
pub fn load_average_1m(loadavg: &str) -> Option<f64> {
    loadavg
        .split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|l: &f64| l.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of /proc/cpuinfo on one of the lab's Intel VMs, tabs and
    /// all; the AMD ones differ only in the values.
    const INTEL: &str =
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n\
model name\t: Intel(R) Xeon(R) Processor\nstepping\t: 8\nflags\t\t: fpu vme de pse\n\n\
processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n";

    #[test]
    fn the_model_name_is_the_first_processors() {
        assert_eq!(
            cpu_model(INTEL).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        let amd = "processor\t: 0\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7R13 Processor\n";
        assert_eq!(cpu_model(amd).as_deref(), Some("AMD EPYC 7R13 Processor"));
    }

    #[test]
    fn no_model_name_gives_none() {
        // `model` is not `model name`; ARM's cpuinfo has neither
        assert_eq!(cpu_model("processor\t: 0\nmodel\t\t: 143\n"), None);
        assert_eq!(cpu_model("model name\t:\n"), None);
        assert_eq!(cpu_model(""), None);
    }

    #[test]
    fn the_load_average_is_the_first_field() {
        assert_eq!(load_average_1m("1.42 0.98 0.80 3/412 12345\n"), Some(1.42));
        assert_eq!(load_average_1m(""), None);
        assert_eq!(load_average_1m("busy"), None);
    }

    #[test]
    fn the_line_names_model_cores_date_and_load() {
        let m = Machine {
            cpu_model: "Intel(R) Xeon(R) Processor".into(),
            cores: 2,
            date: "2026-12-05T10:00:00Z".into(),
            load_average_1m: Some(0.5),
        };
        assert_eq!(
            m.line(),
            "machine: Intel(R) Xeon(R) Processor, 2 cores, 2026-12-05T10:00:00Z, load average 0.50 at start"
        );
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["cpu_model"], "Intel(R) Xeon(R) Processor");
        assert_eq!(json["cores"], 2);
    }

    #[test]
    fn this_machine_reads_without_failing() {
        let m = Machine::read();
        assert!(m.cores >= 1);
        assert!(!m.cpu_model.is_empty());
        // RFC 3339 to the second, UTC
        assert!(m.date.ends_with('Z') && m.date.len() == 20, "{}", m.date);
    }
}
