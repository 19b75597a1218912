//! Process figures (`process_*`, the Prometheus client convention), read
//! from /proc at scrape time. Open fds are not counted: listing
//! /proc/self/fd costs a second at a million connections;
//! the caller's own connection gauge says the same thing for free.

use std::fmt::Write;

/// Appends `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes` and `process_max_fds` as read now; a
/// figure /proc cannot give is left out rather than reported as 0.
pub fn render_process(out: &mut String) {
    let page = page_size();
    if let Some(cpu) = cpu_seconds() {
        let _ = write!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n"
        );
    }
    if let Some((virt, rss)) = statm() {
        let _ = write!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n\
             # HELP process_virtual_memory_bytes Virtual memory size in bytes.\n\
             # TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {}\n",
            rss * page,
            virt * page
        );
    }
    if let Some(max) = max_fds() {
        let _ = write!(
            out,
            "# HELP process_max_fds Maximum number of open file descriptors.\n\
             # TYPE process_max_fds gauge\nprocess_max_fds {max}\n"
        );
    }
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

/// utime + stime from /proc/self/stat, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = stat_cpu_ticks(&stat)?;
    Some(ticks as f64 / clock_ticks_per_sec() as f64)
}

/// User plus system CPU time in clock ticks from a /proc/PID/stat text
/// (fields 14 and 15). The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last ')'.
pub fn stat_cpu_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    // after ')' come field 3 (state) onwards: utime is the 12th, stime the 13th
    let mut fields = after.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
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

/// (virtual, resident) in pages.
fn statm() -> Option<(u64, u64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut f = statm.split_ascii_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
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
    fn promtool_accepts_the_process_series() {
        let mut out = String::new();
        super::render_process(&mut out);
        crate::promtool::assert_valid(&out);
    }
}
