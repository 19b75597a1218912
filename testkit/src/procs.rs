//! Which processes a process started, read from /proc, so a test can prove
//! that a stopped program left nothing running behind: take its
//! descendants while it runs, stop it, then check each of them is gone.

/// Every live descendant of `pid` (children, their children, ...), as
/// found now. Processes that end while the tree is read are left out.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = match std::fs::read_dir("/proc") {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|p| Some((p, stat(p)?.1)))
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, ppid) in &parents {
            if ppid == parent && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// Whether `pid` still runs. A zombie (ended, not yet reaped by whoever
/// inherited it) does not: it holds no sockets and does no work.
pub fn is_running(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The state letter and parent pid from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses,
    // so the fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_found_and_seen_to_end() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep(1) runs");
        let me = std::process::id();
        assert!(descendants(me).contains(&child.id()));
        assert!(is_running(child.id()));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!is_running(child.id()));
    }
}
