//! Memory and CPU figures of a process, read from /proc (Linux only).

use std::fs;
use std::io;
use std::time::{Duration, Instant};

/// Resident memory in kB. VmRSS counts file-backed pages (the binary's
/// text) as well; RssAnon is the heap and stacks, the part that grows with
/// connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    pub vm_rss_kb: u64,
    pub rss_anon_kb: u64,
}

impl Memory {
    pub fn of_pid(pid: u32) -> io::Result<Memory> {
        parse_status(&fs::read_to_string(format!("/proc/{pid}/status"))?)
    }

    pub fn of_self() -> io::Result<Memory> {
        parse_status(&fs::read_to_string("/proc/self/status")?)
    }
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Parses the `VmRSS:` and `RssAnon:` lines of /proc/PID/status.
pub fn parse_status(text: &str) -> io::Result<Memory> {
    let field = |name: &str| -> io::Result<u64> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or_else(|| bad(format!("no {name} line in /proc status")))?;
        let mut parts = line.split_whitespace();
        let value = parts
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| bad(format!("malformed {name} line: {line:?}")))?;
        match parts.next() {
            Some("kB") => Ok(value),
            other => Err(bad(format!("{name} in unexpected unit {other:?}"))),
        }
    };
    Ok(Memory {
        vm_rss_kb: field("VmRSS:")?,
        rss_anon_kb: field("RssAnon:")?,
    })
}

/// User plus system CPU time in clock ticks from a /proc/PID/stat text.
pub fn parse_stat_cpu_ticks(text: &str) -> io::Result<u64> {
    promhttp::process::stat_cpu_ticks(text)
        .ok_or_else(|| bad(format!("malformed /proc stat: {text:?}")))
}

/// A CPU-time reading of one process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    ticks: u64,
    at: Instant,
}

impl CpuSample {
    pub fn of_pid(pid: u32) -> io::Result<CpuSample> {
        Self::read(&format!("/proc/{pid}/stat"))
    }

    pub fn of_self() -> io::Result<CpuSample> {
        Self::read("/proc/self/stat")
    }

    fn read(path: &str) -> io::Result<CpuSample> {
        let at = Instant::now();
        let ticks = parse_stat_cpu_ticks(&fs::read_to_string(path)?)?;
        Ok(CpuSample { ticks, at })
    }

    /// CPU used between `self` and `later` as a percentage of one core
    /// (200 = two cores busy the whole time).
    pub fn percent_until(&self, later: &CpuSample) -> f64 {
        let wall = later.at.saturating_duration_since(self.at);
        cpu_percent(
            later.ticks.saturating_sub(self.ticks),
            clock_ticks_per_sec(),
            wall,
        )
    }
}

/// Successive CPU readings of one process, for a per-second series: each
/// call gives the CPU used since the previous one.
#[derive(Debug)]
pub struct CpuMeter {
    /// `None`: this process.
    pid: Option<u32>,
    last: Option<CpuSample>,
}

impl CpuMeter {
    pub fn of_self() -> CpuMeter {
        CpuMeter::start(None)
    }

    pub fn of_pid(pid: u32) -> CpuMeter {
        CpuMeter::start(Some(pid))
    }

    fn start(pid: Option<u32>) -> CpuMeter {
        let mut meter = CpuMeter { pid, last: None };
        meter.last = meter.read();
        meter
    }

    fn read(&self) -> Option<CpuSample> {
        match self.pid {
            Some(pid) => CpuSample::of_pid(pid),
            None => CpuSample::of_self(),
        }
        .ok()
    }

    /// Percent of one core used since the previous call (or since the
    /// meter started); `None` when /proc could not be read then or now.
    pub fn percent_since_last(&mut self) -> Option<f64> {
        let now = self.read();
        let percent = match (&self.last, &now) {
            (Some(before), Some(now)) => Some(before.percent_until(now)),
            _ => None,
        };
        self.last = now;
        percent
    }
}

/// The whole machine's CPU time from /proc/stat's `cpu` line, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostTicks {
    /// Every state: user, nice, system, idle, iowait, irq, softirq, steal.
    pub total: u64,
    /// Busy: all but idle and iowait (steal included: the host lost it).
    pub busy: u64,
    pub steal: u64,
}

/// Parses the first (`cpu `) line of /proc/stat.
pub fn parse_host_ticks(text: &str) -> io::Result<HostTicks> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| bad("no cpu line in /proc/stat".to_string()))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(format!("malformed cpu line in /proc/stat: {line:?}")))?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields[..] else {
        return Err(bad(format!("short cpu line in /proc/stat: {line:?}")));
    };
    let busy = user + nice + system + irq + softirq + steal;
    Ok(HostTicks {
        total: busy + idle + iowait,
        busy,
        steal,
    })
}

/// Successive readings of the whole machine's CPU: what else runs beside
/// the load generator (the server under test, on a one-machine lab)
/// saturates it just as surely.
#[derive(Debug)]
pub struct HostCpuMeter {
    last: Option<HostTicks>,
}

impl Default for HostCpuMeter {
    fn default() -> Self {
        HostCpuMeter::start()
    }
}

impl HostCpuMeter {
    pub fn start() -> HostCpuMeter {
        HostCpuMeter { last: Self::read() }
    }

    fn read() -> Option<HostTicks> {
        parse_host_ticks(&fs::read_to_string("/proc/stat").ok()?).ok()
    }

    /// (busy, stolen) since the previous call, each in percent of all the
    /// machine's cores; `None` when /proc/stat could not be read or no
    /// tick passed.
    pub fn percent_since_last(&mut self) -> Option<(f64, f64)> {
        let now = Self::read();
        let out = match (self.last, now) {
            (Some(a), Some(b)) => host_percent(a, b),
            _ => None,
        };
        self.last = now;
        out
    }
}

/// Busy and stolen between two readings, in percent of all cores.
pub fn host_percent(before: HostTicks, after: HostTicks) -> Option<(f64, f64)> {
    let total = after.total.checked_sub(before.total).filter(|&t| t > 0)? as f64;
    let busy = after.busy.saturating_sub(before.busy) as f64;
    let steal = after.steal.saturating_sub(before.steal) as f64;
    Some((
        (busy / total * 100.0).min(100.0),
        (steal / total * 100.0).min(100.0),
    ))
}

pub fn cpu_percent(ticks: u64, ticks_per_sec: u64, wall: Duration) -> f64 {
    if wall.is_zero() || ticks_per_sec == 0 {
        return 0.0;
    }
    ticks as f64 / ticks_per_sec as f64 / wall.as_secs_f64() * 100.0
}

pub use promhttp::process::clock_ticks_per_sec;

/// This process's open-file limit (soft), which bounds the connections a
/// process can hold.
pub fn open_file_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_is_busy_and_stolen_over_all_states() {
        let a =
            parse_host_ticks("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n").unwrap();
        assert_eq!(
            a,
            HostTicks {
                total: 1000,
                busy: 150,
                steal: 0
            }
        );
        let b = parse_host_ticks("cpu  400 0 150 850 50 10 30 10 0 0\n").unwrap();
        // 450 more busy of 500 more in all, 10 of them stolen
        let (busy, steal) = host_percent(a, b).unwrap();
        assert_eq!((busy, steal), (90.0, 2.0));
        assert_eq!(host_percent(b, b), None, "no tick passed");
        assert!(parse_host_ticks("cpu0 1 2 3\n").is_err());
        assert!(parse_host_ticks("cpu  1 2 x 4 5 6 7 8\n").is_err());
        assert!(parse_host_ticks("cpu  1 2 3\n").is_err());
        // this machine's own reading works
        let mut meter = HostCpuMeter::start();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        let (busy, steal) = meter.percent_since_last().unwrap();
        assert!(busy > 0.0 && busy <= 100.0 && (0.0..=100.0).contains(&steal));
    }

    const STATUS: &str = "Name:\tserver\nVmPeak:\t  100 kB\nVmRSS:\t    5120 kB\nRssAnon:\t    1024 kB\nRssFile:\t    4096 kB\n";

    #[test]
    fn a_meter_reads_the_cpu_used_since_its_last_reading() {
        // Not a timing test: spin until the tick counter has moved since
        // the meter started (bounded), then the meter must see it.
        let mut meter = CpuMeter::of_self();
        let start = CpuSample::of_self().unwrap();
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
            if x.is_multiple_of(1_000_000) {
                let now = CpuSample::of_self().unwrap();
                if now.ticks >= start.ticks + 3 || start.at.elapsed() > Duration::from_secs(20) {
                    break;
                }
            }
        }
        assert!(meter.percent_since_last().unwrap() > 0.0);
        // a process that is gone reads as nothing, not as 0 %
        assert_eq!(CpuMeter::of_pid(u32::MAX).percent_since_last(), None);
    }

    #[test]
    fn open_file_limit_is_known() {
        assert!(open_file_limit().unwrap() > 3);
    }

    #[test]
    fn status_fields_parse() {
        assert_eq!(
            parse_status(STATUS).unwrap(),
            Memory {
                vm_rss_kb: 5120,
                rss_anon_kb: 1024
            }
        );
        assert!(parse_status("Name:\tx\nVmRSS:\t 5 kB\n").is_err());
        assert!(parse_status("VmRSS:\t x kB\nRssAnon:\t 1 kB\n").is_err());
        assert!(parse_status("VmRSS:\t 5 MB\nRssAnon:\t 1 kB\n").is_err());
    }

    #[test]
    fn own_status_is_readable() {
        let m = Memory::of_self().unwrap();
        assert!(m.vm_rss_kb >= m.rss_anon_kb && m.rss_anon_kb > 0);
        assert!(Memory::of_pid(std::process::id()).unwrap().vm_rss_kb > 0);
    }

    #[test]
    fn stat_cpu_survives_odd_command_names() {
        let line =
            "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 70 30 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat_cpu_ticks(line).unwrap(), 100);
        assert!(parse_stat_cpu_ticks("1234 (x) S 1").is_err());
        assert!(parse_stat_cpu_ticks("no paren").is_err());
    }

    #[test]
    fn spinning_advances_own_cpu_time() {
        // Not a timing test: spin until the tick counter moves (bounded),
        // which fails only if the reading never changes.
        let a = CpuSample::of_self().unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        let b = loop {
            x = std::hint::black_box(x.wrapping_add(1));
            if x.is_multiple_of(1_000_000) {
                let b = CpuSample::of_self().unwrap();
                if b.ticks >= a.ticks + 3 || start.elapsed() > Duration::from_secs(20) {
                    break b;
                }
            }
        };
        assert!(b.ticks >= a.ticks + 3, "CPU time did not advance");
        assert!(a.percent_until(&b) > 0.0);
        assert_eq!(cpu_percent(50, 100, Duration::from_secs(1)), 50.0);
        assert_eq!(cpu_percent(50, 100, Duration::ZERO), 0.0);
    }
}
