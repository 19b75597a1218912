//! Reading the text exposition format (version 0.0.4) back into numbers:
//! the coordinator samples servers with it during runs, and the tests of
//! every crate assert figures rather than substrings. It lives here, once,
//! beside the code that writes the format, so reader and writer agree on
//! the escaping.
//!
//! Grammar, as Prometheus's own parser reads it: a line is blank, a
//! comment (`# HELP`, `# TYPE` or any other `#` line, all skipped), or a
//! sample `name[{label="value",...}] value [timestamp]`. Label values
//! escape `\\`, `\"` and `\n`; values are floats including `+Inf`, `-Inf`
//! and `NaN`; the timestamp is integer milliseconds. Anything else is a
//! [`ParseError`] naming the line, never a panic: the text comes from a
//! peer.

use std::fmt;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written; names are unique within a sample.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the Unix epoch, when the line carries one.
    pub timestamp_ms: Option<i64>,
}

/// A parsed exposition: its samples in the order written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

/// A line the format does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}: {text:?}")]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    /// The line, cut to [`SHOWN_CHARS`] characters.
    pub text: String,
    pub why: String,
}

/// A series asked for by [`Exposition::value`] that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no series {name}{labels} in the exposition")]
pub struct MissingSeries {
    pub name: String,
    /// `{k="v",...}` as asked, or empty.
    pub labels: String,
}

/// How much of a bad line an error repeats: enough to recognise it, not
/// a megabyte of one.
pub const SHOWN_CHARS: usize = 120;

impl Exposition {
    /// Parses a whole exposition; the first bad line is the error.
    pub fn parse(text: &str) -> Result<Exposition, ParseError> {
        let mut samples = Vec::new();
        for (n, line) in text.split('\n').enumerate() {
            // Tolerate CRLF line ends: a proxy may have added them.
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            match parse_sample(line) {
                Ok(sample) => samples.push(sample),
                Err(why) => {
                    return Err(ParseError {
                        line: n + 1,
                        text: line.chars().take(SHOWN_CHARS).collect(),
                        why,
                    })
                }
            }
        }
        Ok(Exposition { samples })
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
    }

    /// The value of the series named `name` whose labels are exactly
    /// `labels` (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels)
            .find(|s| s.labels.len() == labels.len())
            .map(|s| s.value)
    }

    /// Like [`get`](Self::get), but a missing series is an error naming it.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, MissingSeries> {
        self.get(name, labels).ok_or_else(|| MissingSeries {
            name: name.to_string(),
            labels: if labels.is_empty() {
                String::new()
            } else {
                let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                format!("{{{}}}", inner.join(","))
            },
        })
    }

    /// The sum over every series named `name` that carries at least
    /// `labels`; 0 when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The sum over every series named `name`, whatever its labels, or
    /// `None` when the exposition has none: a counter split by labels
    /// (type, encoding) read as one figure, and told apart from a figure
    /// this exporter does not have.
    pub fn total(&self, name: &str) -> Option<f64> {
        let mut series = self.matching(name, &[]).peekable();
        series.peek()?;
        Some(series.map(|s| s.value).sum())
    }

    /// Whether any series is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// One series a line, as in the exposition (without the comments and
/// timestamps), so a failed wait in a test prints something readable.
impl fmt::Display for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.samples {
            f.write_str(&s.name)?;
            if !s.labels.is_empty() {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                write!(f, "{{{}}}", labels.join(","))?;
            }
            writeln!(f, " {}", s.value)?;
        }
        Ok(())
    }
}

/// A position in one line; every step works on ASCII bytes, so slicing at
/// `pos` always lands on a character boundary.
struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// `[a-zA-Z_(:)][a-zA-Z0-9_(:)]*`; colons only in metric names.
    fn name(&mut self, colons: bool) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            let ok = b.is_ascii_alphabetic()
                || b == b'_'
                || (colons && b == b':')
                || (self.pos > start && b.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    /// Up to the next blank or the end of the line.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while !matches!(self.peek(), None | Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    /// A label value after its opening quote, unescaped.
    fn quoted(&mut self, label: &str) -> Result<String, String> {
        let rest = &self.line[self.pos..];
        let mut value = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => {
                        return Err(format!(
                        "label {label}: \\{other} is not an escape (only \\\\, \\\" and \\n are)"
                    ))
                    }
                    None => break,
                },
                c => value.push(c),
            }
        }
        Err(format!("label {label}: the value has no closing quote"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let mut c = Cursor { line, pos: 0 };
    c.skip_blank();
    let name = c.name(true);
    if name.is_empty() {
        return Err("expected a metric name".to_string());
    }
    let mut labels: Vec<(String, String)> = Vec::new();
    let after_name = c.pos;
    c.skip_blank();
    if c.eat(b'{') {
        loop {
            c.skip_blank();
            if c.eat(b'}') {
                break;
            }
            let key = c.name(false);
            if key.is_empty() {
                return Err(format!(
                    "expected a label name or }} at column {}",
                    c.pos + 1
                ));
            }
            c.skip_blank();
            if !c.eat(b'=') {
                return Err(format!("label {key}: expected ="));
            }
            c.skip_blank();
            if !c.eat(b'"') {
                return Err(format!("label {key}: expected a quoted value"));
            }
            let value = c.quoted(key)?;
            if labels.iter().any(|(k, _)| k == key) {
                return Err(format!("label {key} appears twice"));
            }
            labels.push((key.to_string(), value));
            c.skip_blank();
            if c.eat(b',') {
                continue;
            }
            if c.eat(b'}') {
                break;
            }
            return Err(format!("label {key}: expected , or }} after its value"));
        }
    } else if c.pos == after_name && !c.at_end() {
        return Err(format!(
            "unexpected {:?} after the metric name",
            char::from(line.as_bytes()[c.pos])
        ));
    }
    c.skip_blank();
    let text = c.token();
    if text.is_empty() {
        return Err("no value".to_string());
    }
    let value = parse_value(text)?;
    c.skip_blank();
    let timestamp_ms = if c.at_end() {
        None
    } else {
        let t = c.token();
        Some(
            t.parse::<i64>()
                .map_err(|_| format!("timestamp {t:?} is not a whole number of milliseconds"))?,
        )
    };
    c.skip_blank();
    if !c.at_end() {
        return Err("unexpected text after the timestamp".to_string());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// A float as Go's `ParseFloat` (Prometheus's) reads one: decimal or
/// exponent notation, and `+Inf`, `-Inf`, `NaN` (in any case, as Go
/// allows). Rust's parser agrees on all of these, and like Prometheus's
/// refuses hex and digit separators.
fn parse_value(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .map_err(|_| format!("value {text:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Sample {
        let e = Exposition::parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(e.samples.len(), 1, "{line:?}");
        e.samples.into_iter().next().unwrap()
    }

    fn error(text: &str) -> ParseError {
        match Exposition::parse(text) {
            Ok(e) => panic!("{text:?} parsed: {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn reads_names_labels_values_and_timestamps() {
        let text = "# HELP chat_messages_sent_total Messages written.\n\
                    # TYPE chat_messages_sent_total counter\n\
                    chat_messages_sent_total{type=\"chat\",encoding=\"binary\"} 1027\n\
                    chat_messages_sent_total{type=\"chat\",encoding=\"json\"} 3 1700000000123\n\
                    \n\
                    # a free comment\n\
                    process_cpu_seconds_total 1.25e1\n\
                    up 1\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.samples.len(), 4);
        assert_eq!(
            e.samples[0],
            Sample {
                name: "chat_messages_sent_total".into(),
                labels: vec![
                    ("type".into(), "chat".into()),
                    ("encoding".into(), "binary".into())
                ],
                value: 1027.0,
                timestamp_ms: None,
            }
        );
        assert_eq!(e.samples[1].timestamp_ms, Some(1_700_000_000_123));
        assert_eq!(e.get("process_cpu_seconds_total", &[]), Some(12.5));
        assert_eq!(
            e.get(
                "chat_messages_sent_total",
                &[("encoding", "json"), ("type", "chat")]
            ),
            Some(3.0)
        );
        // get wants the exact label set; sum and total add up the rest
        assert_eq!(e.get("chat_messages_sent_total", &[("type", "chat")]), None);
        assert_eq!(
            e.sum("chat_messages_sent_total", &[("type", "chat")]),
            1030.0
        );
        assert_eq!(e.total("chat_messages_sent_total"), Some(1030.0));
        assert_eq!(e.total("chat_messages_dropped_total"), None);
        assert_eq!(e.sum("chat_messages_dropped_total", &[]), 0.0);
        assert!(e.has("up") && !e.has("down"));
        assert_eq!(e.value("up", &[]), Ok(1.0));
        assert_eq!(
            e.value("down", &[("a", "b")]).unwrap_err().to_string(),
            "no series down{a=\"b\"} in the exposition"
        );
    }

    #[test]
    fn label_values_unescape_exactly_what_the_writer_escapes() {
        let raw = "a\\b\"c\nd\te é {x=\"y\"},";
        let line = format!(
            "errors_total{{reason=\"{}\",other=\"\"}} 2",
            crate::escape_label_value(raw)
        );
        let s = one(&line);
        assert_eq!(s.labels[0], ("reason".to_string(), raw.to_string()));
        assert_eq!(s.labels[1], ("other".to_string(), String::new()));
        // braces, commas and equals signs inside a value are the value's
        let s = one(r#"x{a="}",b="=,{"} 1"#);
        assert_eq!(
            s.labels,
            [("a".into(), "}".into()), ("b".into(), "=,{".into())]
        );
    }

    #[test]
    fn special_values_and_spacing() {
        assert_eq!(one("a +Inf").value, f64::INFINITY);
        assert_eq!(one("a -Inf").value, f64::NEG_INFINITY);
        assert!(one("a NaN").value.is_nan());
        assert_eq!(one("a -0.5e-3").value, -0.0005);
        let bucket = one("h_bucket{le=\"+Inf\"} 7 -5");
        assert_eq!(bucket.labels, [("le".into(), "+Inf".into())]);
        assert_eq!(bucket.timestamp_ms, Some(-5));
        // blanks around the parts, an empty label set, a trailing comma
        let s = one("  m:rate { a = \"1\" , b=\"2\", }\t3  \t");
        assert_eq!(s.name, "m:rate");
        assert_eq!(s.labels.len(), 2);
        assert_eq!(s.value, 3.0);
        assert!(one("e{} 4").labels.is_empty());
        // CRLF line ends
        let e = Exposition::parse("a 1\r\nb 2\r\n").unwrap();
        assert_eq!(e.get("b", &[]), Some(2.0));
    }

    #[test]
    fn garbage_is_an_error_naming_the_line_never_a_panic() {
        for (text, says) in [
            ("x", "no value"),
            ("x ", "no value"),
            ("x{a=\"1\"}", "no value"),
            ("x{a=\"1\" 1", "expected , or }"),
            ("x{a=\"1} 1", "no closing quote"),
            ("x{a=\"\\q\"} 1", "\\q is not an escape"),
            ("x{a=\"1\\", "no closing quote"),
            ("x{a=1} 1", "expected a quoted value"),
            ("x{a} 1", "expected ="),
            ("x{=\"1\"} 1", "expected a label name"),
            ("x{1a=\"1\"} 1", "expected a label name"),
            ("x{a=\"1\",a=\"2\"} 1", "appears twice"),
            ("x{a:b=\"1\"} 1", "expected ="),
            ("x one", "value \"one\" is not a number"),
            ("x 1,5", "is not a number"),
            ("x 1_000", "is not a number"),
            ("x 0x10", "is not a number"),
            ("x 1 12.5", "is not a whole number"),
            ("x 1 2 3", "unexpected text after the timestamp"),
            ("9x 1", "expected a metric name"),
            ("{a=\"b\"} 1", "expected a metric name"),
            ("x$ 1", "unexpected '$'"),
            ("é 1", "expected a metric name"),
            ("x{é=\"1\"} 1", "expected a label name"),
        ] {
            let e = error(&format!("ok 1\n# c\n{text}\n"));
            assert_eq!(e.line, 3, "{text:?}");
            assert!(e.why.contains(says), "{text:?}: {e}");
            assert!(e.to_string().starts_with("line 3: "), "{e}");
        }
        // a long line is shown cut
        let long = format!("x {}", "9".repeat(10_000));
        let e = error(&format!("{long} z"));
        assert_eq!(e.text.chars().count(), SHOWN_CHARS);
        // multi-byte text anywhere does not split a character
        for text in ["x{a=\"é\"} é", "é", "x{a=\"é", "x é", "x{a=\"\\é\"} 1"] {
            let _ = Exposition::parse(text);
        }
    }

    #[test]
    fn display_lists_one_series_a_line() {
        let e = Exposition::parse("a{k=\"v\"} 1 5\nb 2\n").unwrap();
        assert_eq!(e.to_string(), "a{k=\"v\"} 1\nb 2\n");
    }
}
