//! Process figures (`process_*`, the Prometheus client convention), read
//! from /proc at scrape time. Open fds are not counted: listing
//! /proc/self/fd costs a second at a million connections;
//! the caller's own connection gauge says the same thing for free.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Whose resources the `process_*` figures count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This process alone (a server, a coordinator whose children have
    /// endpoints of their own).
    Process,
    /// This process and its children, live or ended: a load generator whose
    /// `--processes` workers do the work. A CPU alert that saw only the
    /// parent would stay quiet while every worker is saturated.
    WithChildren,
}

/// Appends `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes` and `process_max_fds` of this process as
/// read now; a figure /proc cannot give is left out rather than reported
/// as 0.
pub fn render_process(out: &mut String) {
    render(Scope::Process, out)
}

/// [`render_process`] for `scope`. With [`Scope::WithChildren`] CPU time
/// adds the live children's (and theirs of their ended children) to this
/// process's own and its ended children's, and memory adds the live
/// children's; `process_max_fds` stays this process's limit (each process
/// has its own).
pub fn render(scope: Scope, out: &mut String) {
    let page = page_size();
    let usage = match scope {
        Scope::Process => own_usage(),
        Scope::WithChildren => tree_usage(),
    };
    let Some(usage) = usage else {
        render_max_fds(out);
        return;
    };
    let cpu = usage.cpu_ticks as f64 / clock_ticks_per_sec() as f64;
    let _ = write!(
        out,
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
         # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n\
         # HELP process_resident_memory_bytes Resident memory size in bytes.\n\
         # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n\
         # HELP process_virtual_memory_bytes Virtual memory size in bytes.\n\
         # TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {}\n",
        usage.rss_pages * page,
        usage.virtual_bytes,
    );
    render_max_fds(out);
}

fn render_max_fds(out: &mut String) {
    if let Some(max) = max_fds() {
        let _ = write!(
            out,
            "# HELP process_max_fds Maximum number of open file descriptors.\n\
             # TYPE process_max_fds gauge\nprocess_max_fds {max}\n"
        );
    }
}

/// What one /proc/PID/stat line says about a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    /// utime + stime, in clock ticks (plus, where said, cutime + cstime).
    cpu_ticks: u64,
    rss_pages: u64,
    virtual_bytes: u64,
}

/// One /proc/PID/stat line, read by field number (man 5 proc).
struct Stat<'a> {
    /// Fields 3 onwards: the command name (field 2) may hold spaces and
    /// parentheses, so fields are counted from the last ')'.
    after_name: Vec<&'a str>,
}

impl<'a> Stat<'a> {
    fn parse(text: &'a str) -> Option<Stat<'a>> {
        let after = &text[text.rfind(')')? + 1..];
        Some(Stat {
            after_name: after.split_ascii_whitespace().collect(),
        })
    }

    /// Field `n` (1-based, as in man 5 proc; `n` >= 3) as a number.
    fn field(&self, n: usize) -> Option<u64> {
        self.after_name.get(n.checked_sub(3)?)?.parse().ok()
    }

    fn ppid(&self) -> Option<u64> {
        self.field(4)
    }

    /// utime + stime, with `children` also cutime + cstime (the CPU time
    /// of its children that have ended and been waited for).
    fn usage(&self, children: bool) -> Option<Usage> {
        let mut cpu_ticks = self.field(14)? + self.field(15)?;
        if children {
            cpu_ticks += self.field(16)? + self.field(17)?;
        }
        Some(Usage {
            cpu_ticks,
            virtual_bytes: self.field(23)?,
            rss_pages: self.field(24)?,
        })
    }
}

/// User plus system CPU time in clock ticks from a /proc/PID/stat text
/// (fields 14 and 15).
pub fn stat_cpu_ticks(text: &str) -> Option<u64> {
    let stat = Stat::parse(text)?;
    Some(stat.field(14)? + stat.field(15)?)
}

fn own_usage() -> Option<Usage> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    Stat::parse(&text)?.usage(false)
}

/// This process's usage with its children's. Children are found by their
/// parent pid in /proc (a few hundred small reads on a load generator's
/// host, on the blocking pool). A child that ends between the reads of
/// its stat and ours is missed or counted twice once, so CPU time is
/// kept from ever going down: a counter that drops reads as a reset and
/// a burst of CPU to `rate()`.
fn tree_usage() -> Option<Usage> {
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut usage = Stat::parse(&own)?.usage(true)?;
    let me = u64::from(std::process::id());
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue; // gone since the listing
            };
            let Some(stat) = Stat::parse(&text) else {
                continue;
            };
            if stat.ppid() != Some(me) {
                continue;
            }
            if let Some(child) = stat.usage(true) {
                usage.cpu_ticks += child.cpu_ticks;
                usage.rss_pages += child.rss_pages;
                usage.virtual_bytes += child.virtual_bytes;
            }
        }
    }
    static MOST_TICKS: AtomicU64 = AtomicU64::new(0);
    let before = MOST_TICKS.fetch_max(usage.cpu_ticks, Ordering::Relaxed);
    usage.cpu_ticks = usage.cpu_ticks.max(before);
    Some(usage)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// The kernel's clock ticks per second (the unit of /proc CPU times).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct we pass.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_all_process_series() {
        let mut out = String::new();
        super::render_process(&mut out);
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_max_fds ",
        ] {
            let line = out
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing in {out}"));
            let value: f64 = line[name.len()..].parse().unwrap();
            assert!(value >= 0.0);
        }
    }

    #[test]
    fn reads_stat_fields_after_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17) ... vsize(23) rss(24)
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 3 0 99 123456 78 18446744073709551615";
        let stat = super::Stat::parse(line).unwrap();
        assert_eq!(stat.ppid(), Some(7));
        let own = stat.usage(false).unwrap();
        assert_eq!(
            (own.cpu_ticks, own.virtual_bytes, own.rss_pages),
            (33, 123456, 78)
        );
        assert_eq!(stat.usage(true).unwrap().cpu_ticks, 110);
        assert_eq!(super::stat_cpu_ticks(line), Some(33));
        assert!(super::Stat::parse("no paren").is_none());
        assert!(super::Stat::parse("1 (x) S 1")
            .unwrap()
            .usage(false)
            .is_none());
    }

    /// A busy child's CPU time and memory are in the figures with
    /// children, and only there.
    #[test]
    fn with_children_counts_a_busy_child() {
        use super::{render, Scope};
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "end=$(($(date +%s) + 30)); while [ $(date +%s) -lt $end ]; do :; done",
            ])
            .spawn()
            .unwrap();
        let path = format!("/proc/{}/stat", child.id());
        let child_ticks =
            || super::stat_cpu_ticks(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while child_ticks() < 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never got CPU"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // in clock ticks, so float rounding cannot tip the comparisons
        let ticks = |scope: Scope| {
            let mut out = String::new();
            render(scope, &mut out);
            let seconds = value(&out, "process_cpu_seconds_total ");
            (seconds * super::clock_ticks_per_sec() as f64).round() as u64
        };
        let own_before = ticks(Scope::Process);
        let child_before = child_ticks();
        let tree = ticks(Scope::WithChildren);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            tree >= own_before + child_before,
            "with children {tree} ticks < own {own_before} + child {child_before}"
        );
        // ...and the child's time stays in once it has ended and been waited
        // for: it is in our cutime + cstime (read here without the
        // never-go-down guard).
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after = super::Stat::parse(&stat).unwrap().usage(true).unwrap();
        assert!(
            after.cpu_ticks >= own_before + child_before,
            "after the child ended: {} ticks < own {own_before} + child {child_before}",
            after.cpu_ticks
        );
    }

    fn value(out: &str, name: &str) -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in {out}"));
        line[name.len()..].parse().unwrap()
    }

    #[test]
    fn promtool_accepts_the_process_series() {
        for scope in [super::Scope::Process, super::Scope::WithChildren] {
            let mut out = String::new();
            super::render(scope, &mut out);
            crate::promtool::assert_valid(&out);
        }
    }
}
