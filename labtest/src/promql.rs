//! Just enough PromQL lexing for the proof: which metric names an
//! expression reads, and where an alert's final comparison is.
//!
//! Prometheus 2.42 (Debian 12) has no endpoint that parses an expression
//! without running it, and a query that finds nothing cannot tell a quiet
//! counter from a misspelt name. So the test checks every name read here
//! against the names Prometheus has scraped.

use crate::Error;

/// Words that look like metric names but are PromQL's own: operators,
/// modifiers and the aggregations (which may be followed by `by (...)`
/// rather than by their parenthesis).
const KEYWORDS: [&str; 25] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
];

/// Keywords followed by a parenthesised list of label names, not of
/// expressions.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The comparison operators, longest first so `>=` is not read as `>`.
const COMPARISONS: [&str; 6] = ["==", "!=", ">=", "<=", ">", "<"];

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Open,
    Close,
    /// A comparison operator.
    Cmp(&'a str),
    /// Anything else: numbers, strings, `{...}`, `[...]`, other operators.
    Other,
}

/// Tokens of `expr` at their byte offsets. Label matchers and ranges are
/// one token each: names inside them are label names and durations.
fn tokens(expr: &str) -> Result<Vec<(usize, Token<'_>)>, Error> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' | b'\'' | b'`' => {
                i = skip_string(expr, i)?;
                out.push((start, Token::Other));
            }
            b'{' => {
                i = skip_group(expr, i, b'{', b'}')?;
                out.push((start, Token::Other));
            }
            b'[' => {
                i = skip_group(expr, i, b'[', b']')?;
                out.push((start, Token::Other));
            }
            b'(' => {
                i += 1;
                out.push((start, Token::Open));
            }
            b')' => {
                i += 1;
                out.push((start, Token::Close));
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                out.push((start, Token::Ident(&expr[start..i])));
            }
            c if c.is_ascii_digit() || c == b'.' => {
                // numbers, 1e3, 0x1f, durations such as 5m after offset
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_')
                {
                    i += 1;
                }
                out.push((start, Token::Other));
            }
            _ => {
                if let Some(op) = COMPARISONS.iter().find(|op| expr[i..].starts_with(**op)) {
                    i += op.len();
                    out.push((start, Token::Cmp(op)));
                } else {
                    i += 1;
                    out.push((start, Token::Other));
                }
            }
        }
    }
    Ok(out)
}

/// The offset just past the string literal opening at `start`.
fn skip_string(expr: &str, start: usize) -> Result<usize, Error> {
    let bytes = expr.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(Error::Promql(format!(
        "unterminated string at byte {start} in {expr:?}"
    )))
}

/// The offset just past the `close` matching the `open` at `start`,
/// strings inside included.
fn skip_group(expr: &str, start: usize, open: u8, close: u8) -> Result<usize, Error> {
    let bytes = expr.as_bytes();
    let mut depth = 0;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(expr, i)?;
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(Error::Promql(format!(
        "unclosed {:?} at byte {start} in {expr:?}",
        open as char
    )))
}

/// The metric names `expr` selects, in order of first appearance. A name
/// given only as `{__name__="..."}` is not seen.
pub fn metric_names(expr: &str) -> Result<Vec<String>, Error> {
    let toks = tokens(expr)?;
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if let Token::Ident(word) = toks[i].1 {
            let next_is_open = matches!(toks.get(i + 1), Some((_, Token::Open)));
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) && next_is_open {
                i = after_parens(&toks, i + 1);
                continue;
            }
            let is_word = KEYWORDS.contains(&lower.as_str())
                || lower == "inf"
                || lower == "nan"
                || next_is_open;
            if !is_word && !names.iter().any(|n| n == word) {
                names.push(word.to_string());
            }
        }
        i += 1;
    }
    Ok(names)
}

/// The index just past the `)` matching the `(` at `open`.
fn after_parens(toks: &[(usize, Token<'_>)], open: usize) -> usize {
    let mut depth = 0;
    for (j, (_, t)) in toks.iter().enumerate().skip(open) {
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// An alert expression cut at its final comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The expression before the comparison: what the alert measures.
    pub left: String,
    pub op: String,
    pub threshold: f64,
}

/// Splits `expr` written as `<expression> <op> <number>`. Refuses any
/// other shape, including a top-level `and`/`or`/`unless` (which binds
/// looser than the comparison, so the left side would not be what the
/// alert compares) and a `bool` modifier.
pub fn split_comparison(expr: &str) -> Result<Comparison, Error> {
    let toks = tokens(expr)?;
    let mut depth = 0i32;
    let mut found: Option<(usize, &str)> = None;
    for (pos, t) in &toks {
        match t {
            Token::Open => depth += 1,
            Token::Close => depth -= 1,
            Token::Cmp(op) if depth == 0 => {
                if found.is_some() {
                    return Err(Error::Promql(format!(
                        "more than one top-level comparison in {expr:?}"
                    )));
                }
                found = Some((*pos, op));
            }
            Token::Ident(w)
                if depth == 0
                    && ["and", "or", "unless"].contains(&w.to_ascii_lowercase().as_str()) =>
            {
                return Err(Error::Promql(format!(
                    "top-level `{w}` in {expr:?}: put the expression in parentheses before the comparison"
                )));
            }
            _ => {}
        }
    }
    let (pos, op) = found.ok_or_else(|| {
        Error::Promql(format!(
            "no top-level comparison in {expr:?}: write `<expression> <op> <number>`"
        ))
    })?;
    let left = expr[..pos].trim();
    let right = expr[pos + op.len()..].trim();
    let threshold: f64 = right.parse().map_err(|_| {
        Error::Promql(format!(
            "{right:?} after `{op}` is not a number in {expr:?}: write `<expression> <op> <number>`"
        ))
    })?;
    if left.is_empty() {
        return Err(Error::Promql(format!("nothing before `{op}` in {expr:?}")));
    }
    Ok(Comparison {
        left: left.to_string(),
        op: op.to_string(),
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).unwrap()
    }

    #[test]
    fn finds_metric_names_and_skips_functions_labels_and_keywords() {
        assert_eq!(
            names(
                r#"sum by (le, kind) (rate(loadgen_latency_seconds_bucket{kind="round_trip",instance=~"a|b"}[20s]))"#
            ),
            ["loadgen_latency_seconds_bucket"]
        );
        assert_eq!(
            names(
                "sum by (instance, mode) (rate(node_cpu_seconds_total{mode!=\"idle\"}[20s])) / on(instance) group_left count by (instance) (node_cpu_seconds_total{mode=\"idle\"})"
            ),
            ["node_cpu_seconds_total"]
        );
        assert_eq!(
            names(
                r#"sum by (kind) (rate(loadgen_connect_errors_total[1m])) or on() label_replace(vector(0), "kind", "none", "", "")"#
            ),
            ["loadgen_connect_errors_total"]
        );
        assert_eq!(
            names("up{job!=\"coordinator\"} == 0 and ignoring(job) foo:bar offset 5m unless Inf > NaN"),
            ["up", "foo:bar"]
        );
        assert_eq!(
            names("sum without (instance) (a) / b # c is a comment\n + c"),
            ["a", "b", "c"]
        );
        assert_eq!(
            names(r#"{__name__="hidden"} + 1e3 + 0x1f"#),
            Vec::<String>::new()
        );
    }

    #[test]
    fn refuses_unbalanced_expressions() {
        assert!(metric_names("rate(x{a=\"b}[1m])").is_err());
        assert!(metric_names("x[1m").is_err());
    }

    #[test]
    fn splits_at_the_final_top_level_comparison() {
        let c = split_comparison("(sum(a) / sum(b) and on() max(c) > 0) < 0.9").unwrap();
        assert_eq!(c.left, "(sum(a) / sum(b) and on() max(c) > 0)");
        assert_eq!(c.op, "<");
        assert_eq!(c.threshold, 0.9);
        let c = split_comparison(r#"up{job!="coordinator"} == 0"#).unwrap();
        assert_eq!(
            (c.left.as_str(), c.op.as_str()),
            (r#"up{job!="coordinator"}"#, "==")
        );
        let c = split_comparison("rate(x[1m]) / y >= 9e-1").unwrap();
        assert_eq!((c.op.as_str(), c.threshold), (">=", 0.9));
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "sum(a)",
            "a > b",
            "a and b > 1",
            "a > 1 < 2",
            "a > bool 1",
            "0.5 < a + 1",
            "> 1",
        ] {
            assert!(split_comparison(bad).is_err(), "accepted {bad:?}");
        }
    }
}
