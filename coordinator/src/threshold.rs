//! Threshold expressions: `FIGURE OP NUMBER`, e.g. `rtt_p99_ms < 50`,
//! `messages_lost == 0`, `connections_held >= 1_000_000`.
//!
//! - FIGURE is a name from [`crate::figures::FIGURES`]; its unit is part of
//!   the name, so the number stands alone (no `50ms`).
//! - OP is one of `<`, `<=`, `>`, `>=`, `==`, `!=`.
//! - NUMBER is a decimal number with optional `_` digit separators and
//!   exponent (`1_000_000`, `1e6`, `0.001`). Figures whose unit is a
//!   ratio also take a percentage: `connect_errors_ratio < 0.1%` is
//!   `< 0.001`. A `%` anywhere else is refused, since `rtt_p99_ms < 5%`
//!   can only be a mistake.

use std::fmt;

use crate::figures::{self, FIGURES};
use crate::results::{Figures, ThresholdResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Eq => value == limit,
            Op::Ne => value != limit,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written.
    pub expr: String,
    pub metric: String,
    pub op: Op,
    pub limit: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error("{expr:?} is not FIGURE OP NUMBER (e.g. \"rtt_p99_ms < 50\"): {reason}")]
    Syntax { expr: String, reason: String },
    #[error("{name:?} is not a figure{hint}")]
    UnknownFigure { name: String, hint: String },
    #[error("{expr:?}: {number:?} is not a number{hint}")]
    BadNumber {
        expr: String,
        number: String,
        hint: String,
    },
}

const OPS: [(&str, Op); 6] = [
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<", Op::Lt),
    (">", Op::Gt),
];

/// A failed result for an expression that does not parse. `validate`
/// refuses such scenarios, so a run meets one only if checks and parser
/// ever disagree; it then fails visibly instead of being skipped.
pub fn unparsable(expr: &str, scope: &str, why: &str) -> ThresholdResult {
    ThresholdResult {
        expr: expr.to_string(),
        scope: scope.to_string(),
        passed: false,
        detail: format!("not a threshold: {why}"),
        ..ThresholdResult::default()
    }
}

/// Parses one threshold; see the module documentation for the syntax.
pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
    let syntax = |reason: &str| ThresholdError::Syntax {
        expr: expr.to_string(),
        reason: reason.to_string(),
    };
    let at = expr
        .find(['<', '>', '=', '!'])
        .ok_or_else(|| syntax("no comparison (<, <=, >, >=, ==, !=)"))?;
    let (metric, rest) = expr.split_at(at);
    let (op_text, op) = OPS
        .iter()
        .copied()
        .find(|(text, _)| rest.starts_with(text))
        .ok_or_else(|| syntax("write == for equality, != for inequality"))?;
    let metric = metric.trim();
    let number = rest[op_text.len()..].trim();
    if metric.is_empty() {
        return Err(syntax("no figure before the comparison"));
    }
    if number.is_empty() {
        return Err(syntax("no number after the comparison"));
    }
    if number.starts_with(['<', '>', '=', '!']) {
        return Err(syntax("one comparison only"));
    }
    let Some(unit) = figures::unit(metric) else {
        return Err(ThresholdError::UnknownFigure {
            name: metric.to_string(),
            hint: unknown_hint(metric),
        });
    };
    let limit = parse_number(expr, number, unit)?;
    Ok(Threshold {
        expr: expr.to_string(),
        metric: metric.to_string(),
        op,
        limit,
    })
}

/// The number, `%` turned into a ratio where the unit is one.
fn parse_number(expr: &str, number: &str, unit: &str) -> Result<f64, ThresholdError> {
    let bad = |hint: String| ThresholdError::BadNumber {
        expr: expr.to_string(),
        number: number.to_string(),
        hint,
    };
    let (digits, percent) = match number.strip_suffix('%') {
        Some(d) if unit == "ratio" => (d.trim_end(), true),
        Some(_) => {
            return Err(bad(format!(
                " (a percentage only fits a ratio; this figure is in {unit})"
            )))
        }
        None => (number, false),
    };
    let plain = digits.replace('_', "");
    let well_formed = !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && plain
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    let value = plain
        .parse::<f64>()
        .ok()
        .filter(|v| well_formed && v.is_finite())
        .ok_or_else(|| {
            let trailing = digits.trim_start_matches(|c: char| {
                c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '+')
            });
            if !trailing.is_empty() && trailing.len() < digits.len() {
                bad(format!(
                    " (the unit is part of the figure's name, {unit}: write the number alone)"
                ))
            } else {
                bad(String::new())
            }
        })?;
    Ok(if percent { value / 100.0 } else { value })
}

/// Names near an unknown one, else every name: a typo is usually one or
/// two letters off, and a wrong guess needs the whole list.
/// Figures that were removed, with what replaces them and why.
const REMOVED: &[(&str, &str)] = &[(
    "messages_received_per_sec",
    "; it was removed because it counted join and leave notices as traffic: use copies_received_per_sec (copies of the sent messages per second of sending)",
)];

fn unknown_hint(name: &str) -> String {
    if let Some((_, why)) = REMOVED.iter().find(|(removed, _)| *removed == name) {
        return why.to_string();
    }
    let mut near: Vec<(usize, &str)> = FIGURES
        .iter()
        .map(|f| (edit_distance(name, f.0), f.0))
        .filter(|&(d, known)| d <= 2 || (d <= 4 && known.starts_with(prefix_of(name))))
        .collect();
    near.sort();
    if near.is_empty() {
        let all: Vec<&str> = FIGURES.iter().map(|f| f.0).collect();
        format!("; the figures are: {}", all.join(", "))
    } else {
        let near: Vec<&str> = near.iter().take(4).map(|&(_, n)| n).collect();
        let list = match near.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        format!("; did you mean {list}? (every figure: scenarios/README.md)")
    }
}

/// The part of a name before its first `_`, e.g. "rtt" of "rtt_p95_ms".
fn prefix_of(name: &str) -> &str {
    let p = name.split('_').next().unwrap_or(name);
    if p.is_empty() {
        name
    } else {
        p
    }
}

/// Levenshtein distance over bytes (figure names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Threshold {
    /// Judges the threshold against `figures`; `scope` is `run` or the
    /// phase's name. A figure that is absent (nothing measured it) or not
    /// a number fails: a limit on something unmeasured guarantees nothing.
    pub fn check(&self, figures: &Figures, scope: &str) -> ThresholdResult {
        let value = figures.get(&self.metric).copied();
        let (passed, detail) = match value {
            None => (false, format!("nothing measured {}", self.metric)),
            Some(v) if v.is_nan() => (false, format!("{} is not a number", self.metric)),
            Some(v) => {
                let passed = self.op.holds(v, self.limit);
                let detail = if passed {
                    format!(
                        "{} was {} (limit {} {})",
                        self.metric,
                        num(v),
                        self.op,
                        num(self.limit)
                    )
                } else {
                    self.miss(v)
                };
                (passed, detail)
            }
        };
        ThresholdResult {
            expr: self.expr.clone(),
            scope: scope.to_string(),
            metric: self.metric.clone(),
            op: self.op.as_str().to_string(),
            limit: self.limit,
            value,
            passed,
            detail,
            caveat: None,
        }
    }

    /// Says by how much `v` misses the limit.
    fn miss(&self, v: f64) -> String {
        let (m, limit) = (&self.metric, num(self.limit));
        let by = |side: &str| {
            let gap = (v - self.limit).abs();
            let relative = if self.limit != 0.0 {
                format!(" ({})", percent(gap / self.limit.abs()))
            } else {
                String::new()
            };
            format!("{m} was {}, {}{relative} {side}", num(v), num(gap))
        };
        match self.op {
            Op::Lt | Op::Le if v == self.limit => {
                format!("{m} was {limit}, not below the limit of {limit}")
            }
            Op::Gt | Op::Ge if v == self.limit => {
                format!("{m} was {limit}, not above the limit of {limit}")
            }
            Op::Lt | Op::Le => by(&format!("above the limit of {limit}")),
            Op::Gt | Op::Ge => by(&format!("below the limit of {limit}")),
            Op::Eq if v > self.limit => by(&format!("above the required {limit}")),
            Op::Eq => by(&format!("below the required {limit}")),
            Op::Ne => format!("{m} was {limit}, which it must not be"),
        }
    }
}

/// A figure for a sentence: whole numbers without decimals, others to
/// about three significant digits.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(1, 12) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

/// A ratio as a percentage for a sentence: 46%, 4.6%, 0.46%.
fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else {
        format!("{}%", num(p))
    }
}

fn trim_zeros(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(pairs: &[(&str, f64)]) -> Figures {
        pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn parses_the_forms_the_docs_promise() {
        let t = parse("rtt_p99_ms < 50").unwrap();
        assert_eq!(
            t,
            Threshold {
                expr: "rtt_p99_ms < 50".into(),
                metric: "rtt_p99_ms".into(),
                op: Op::Lt,
                limit: 50.0
            }
        );
        for (expr, op, limit) in [
            ("messages_lost == 0", Op::Eq, 0.0),
            ("connections_held >= 1000000", Op::Ge, 1e6),
            ("connections_held>=1_000_000", Op::Ge, 1e6),
            ("connections_held >= 1e6", Op::Ge, 1e6),
            ("connect_errors_ratio < 0.001", Op::Lt, 0.001),
            ("connect_errors_ratio < 0.1%", Op::Lt, 0.001),
            ("messages_lost_ratio <= 5 %", Op::Le, 0.05),
            ("churned > 10", Op::Gt, 10.0),
            ("agents_failed != 1", Op::Ne, 1.0),
            ("  fanout_p999_ms   <=  2.5  ", Op::Le, 2.5),
        ] {
            let t = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!((t.op, t.limit), (op, limit), "{expr}");
            assert_eq!(t.expr, expr);
        }
    }

    #[test]
    fn syntax_errors_say_what_is_wrong() {
        let msg = |expr: &str| parse(expr).unwrap_err().to_string();
        assert!(
            msg("rtt_p99_ms 50").contains("no comparison"),
            "{}",
            msg("rtt_p99_ms 50")
        );
        assert!(msg("messages_lost = 0").contains("write =="));
        assert!(msg("< 50").contains("no figure before"));
        assert!(msg("rtt_p99_ms <").contains("no number after"));
        assert!(msg("rtt_p99_ms <<= 5").contains("one comparison only"));
        assert_eq!(
            msg("rtt_p99_ms < 50ms"),
            "\"rtt_p99_ms < 50ms\": \"50ms\" is not a number (the unit is part of the figure's name, ms: write the number alone)"
        );
        assert_eq!(
            msg("rtt_p99_ms < 5%"),
            "\"rtt_p99_ms < 5%\": \"5%\" is not a number (a percentage only fits a ratio; this figure is in ms)"
        );
        for bad in ["1__000", "_1", "1_", "fifty", "1e999", "NaN", "inf", "0x10"] {
            let e = parse(&format!("churned < {bad}")).unwrap_err();
            assert!(matches!(e, ThresholdError::BadNumber { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_figures_name_the_near_ones_or_all() {
        let e = parse("rtt_p95_ms < 50").unwrap_err();
        assert!(matches!(&e, ThresholdError::UnknownFigure { name, .. } if name == "rtt_p95_ms"));
        let msg = e.to_string();
        assert!(
            msg.starts_with("\"rtt_p95_ms\" is not a figure; did you mean "),
            "{msg}"
        );
        assert!(msg.contains("rtt_p99_ms"), "{msg}");
        assert!(msg.contains("rtt_p90_ms"), "{msg}");
        let msg = parse("latency < 5").unwrap_err().to_string();
        assert!(msg.contains("the figures are: connections_held, "), "{msg}");
        assert!(msg.contains("agents_failed"), "{msg}");
        // The loadgen key of a histogram is not a figure name.
        let msg = parse("round_trip_p99_ms < 5").unwrap_err().to_string();
        assert!(msg.contains("is not a figure"), "{msg}");
        // A removed figure says what replaces it.
        let msg = parse("messages_received_per_sec > 5")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("use copies_received_per_sec"), "{msg}");
    }

    #[test]
    fn failures_say_which_way_and_by_how_much() {
        let f = figures(&[
            ("rtt_p99_ms", 73.2),
            ("connections_held", 2990.0),
            ("messages_lost", 3.0),
            ("connect_errors_ratio", 0.0),
        ]);
        let r = parse("rtt_p99_ms < 50").unwrap().check(&f, "ramp");
        assert!(!r.passed);
        assert_eq!(r.value, Some(73.2));
        assert_eq!(r.scope, "ramp");
        assert_eq!(r.op, "<");
        assert_eq!(
            r.detail,
            "rtt_p99_ms was 73.2, 23.2 (46%) above the limit of 50"
        );

        let r = parse("connections_held >= 3000").unwrap().check(&f, "run");
        assert!(!r.passed);
        assert_eq!(
            r.detail,
            "connections_held was 2990, 10 (0.333%) below the limit of 3000"
        );

        let r = parse("messages_lost == 0").unwrap().check(&f, "run");
        assert!(!r.passed);
        assert_eq!(r.detail, "messages_lost was 3, 3 above the required 0");

        let r = parse("rtt_p99_ms < 73.2").unwrap().check(&f, "run");
        assert!(!r.passed);
        assert_eq!(r.detail, "rtt_p99_ms was 73.2, not below the limit of 73.2");

        let r = parse("connect_errors_ratio != 0").unwrap().check(&f, "run");
        assert!(!r.passed);
        assert_eq!(r.detail, "connect_errors_ratio was 0, which it must not be");
    }

    #[test]
    fn passes_and_boundaries() {
        let f = figures(&[("rtt_p99_ms", 50.0), ("connect_errors_ratio", 0.0004)]);
        let check = |expr: &str| parse(expr).unwrap().check(&f, "run").passed;
        assert!(check("rtt_p99_ms <= 50"));
        assert!(!check("rtt_p99_ms < 50"));
        assert!(check("rtt_p99_ms >= 50"));
        assert!(!check("rtt_p99_ms > 50"));
        assert!(check("rtt_p99_ms == 50"));
        assert!(check("rtt_p99_ms != 49"));
        assert!(check("connect_errors_ratio < 0.1%"));
        assert!(!check("connect_errors_ratio < 0.01%"));
        let r = parse("connect_errors_ratio < 0.1%")
            .unwrap()
            .check(&f, "run");
        assert_eq!(r.detail, "connect_errors_ratio was 0.0004 (limit < 0.001)");
    }

    #[test]
    fn nothing_measured_fails() {
        let r = parse("rtt_p99_ms < 50")
            .unwrap()
            .check(&figures(&[("connections_held", 10.0)]), "run");
        assert!(!r.passed);
        assert_eq!(r.value, None);
        assert_eq!(r.detail, "nothing measured rtt_p99_ms");
        let r = parse("rtt_p99_ms < 50")
            .unwrap()
            .check(&figures(&[("rtt_p99_ms", f64::NAN)]), "run");
        assert!(!r.passed);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(3000.0), "3000");
        assert_eq!(num(73.2), "73.2");
        assert_eq!(num(23.200000000000003), "23.2");
        assert_eq!(num(0.00123456), "0.00123");
        assert_eq!(num(1234.5678), "1234.6");
        assert_eq!(num(-2.5), "-2.5");
        assert_eq!(percent(0.464), "46%");
        assert_eq!(percent(0.0464), "4.64%");
        assert_eq!(percent(0.000464), "0.0464%");
    }
}
