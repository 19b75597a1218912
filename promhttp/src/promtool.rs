//! Test support: the project checks its expositions with the real
//! `promtool check metrics` (parser and linter of Prometheus itself), not
//! with a parser of our own that would share our misreadings.
//!
//! Debian's `prometheus` package installs `/usr/bin/promtool`. Without it
//! the checks are skipped with a note, unless `REQUIRE_PROMTOOL=1` (CI),
//! which turns a missing promtool into a failure.

use std::io::Write;
use std::process::{Command, Stdio};

/// The program run: `$PROMTOOL` if set, else `promtool` on the PATH.
pub fn program() -> String {
    std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string())
}

/// What `promtool check metrics` said about a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Parsed, and the linter had nothing to say.
    Valid,
    /// A parse error or lint problems, with promtool's exit status and output.
    Invalid(String),
    /// promtool could not be started (not installed); the reason.
    Unavailable(String),
}

/// Pipes `text` through `promtool check metrics`.
pub fn check(text: &str) -> Verdict {
    check_with(&program(), text)
}

/// [`check`] with the promtool at `prog`.
pub fn check_with(prog: &str, text: &str) -> Verdict {
    let child = Command::new(prog)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Verdict::Unavailable(format!("cannot run `{prog}`: {e}")),
    };
    // promtool reads all of stdin before answering; a write error means it
    // exited early, and its output below says why.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    match child.wait_with_output() {
        Ok(out) => {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && said.trim().is_empty() {
                Verdict::Valid
            } else {
                Verdict::Invalid(format!("promtool {}: {}", out.status, said.trim()))
            }
        }
        Err(e) => Verdict::Unavailable(format!("waiting for `{prog}`: {e}")),
    }
}

/// Whether a missing promtool must fail the test (`REQUIRE_PROMTOOL=1`).
pub fn required() -> bool {
    std::env::var("REQUIRE_PROMTOOL").is_ok_and(|v| v == "1")
}

/// For tests: panics with promtool's complaints when `text` is not a clean
/// exposition. Returns `false` (after printing a note) when promtool is not
/// installed and not [`required`]; panics when it is required.
pub fn assert_valid(text: &str) -> bool {
    match check(text) {
        Verdict::Valid => true,
        Verdict::Invalid(why) => panic!("promtool check metrics refused the exposition: {why}\n--- exposition ---\n{text}"),
        Verdict::Unavailable(why) if required() => panic!(
            "REQUIRE_PROMTOOL=1 but {why}; install it with `apt-get install -y --no-install-recommends prometheus` or set PROMTOOL=/path/to/promtool"
        ),
        Verdict::Unavailable(why) => {
            eprintln!("note: promtool check skipped ({why}); install Debian's `prometheus` package to run it, REQUIRE_PROMTOOL=1 makes this a failure");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker must be able to fail: promtool refuses a counter without
    /// `_total`, a metric without HELP and a line that does not parse.
    #[test]
    fn promtool_refuses_bad_expositions_and_accepts_good_ones() {
        let good =
            "# HELP up_total Ups.\n# TYPE up_total counter\nup_total{k=\"a b: (c)\\\"\"} 1\n";
        if !assert_valid(good) {
            return;
        }
        for bad in [
            "# HELP up Ups.\n# TYPE up counter\nup 1\n",
            "# TYPE up_total counter\nup_total 1\n",
            "up_total{k=\"unterminated} 1\n",
        ] {
            assert!(
                matches!(check(bad), Verdict::Invalid(_)),
                "promtool accepted:\n{bad}"
            );
        }
    }

    #[test]
    fn a_missing_promtool_is_unavailable_not_valid() {
        let verdict = check_with("/nonexistent/promtool", "up 1\n");
        assert!(
            matches!(&verdict, Verdict::Unavailable(why) if why.contains("/nonexistent/promtool")),
            "{verdict:?}"
        );
    }
}
