//! Reading the server's Prometheus text exposition: one value per series,
//! looked up by name and labels, so tests assert numbers, not substrings.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed `/metrics` answer.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the text format (version 0.0.4); comments are skipped.
    pub fn parse(text: &str) -> anyhow::Result<Exposition> {
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_line(line).with_context(|| format!("line {}: {line:?}", n + 1))?);
        }
        Ok(Exposition { samples })
    }

    /// The value of the series named `name` whose labels are exactly
    /// `labels` (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    /// Like `get`, but a missing series is an error naming it.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        self.get(name, labels)
            .ok_or_else(|| anyhow!("no series {name}{labels:?} in the exposition"))
    }

    /// The sum over every series named `name` that carries at least
    /// `labels`; 0 when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether any series is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// One series a line, as in the exposition (without the comments), so a
/// failed wait prints something readable.
impl std::fmt::Display for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

fn parse_line(line: &str) -> anyhow::Result<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or_else(|| anyhow!("no value"))?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let end = loop {
            // label name up to '=' (or the closing brace)
            while chars
                .next_if(|(_, c)| *c == ',' || c.is_ascii_whitespace())
                .is_some()
            {}
            let Some(&(start, c)) = chars.peek() else {
                bail!("unterminated labels")
            };
            if c == '}' {
                break start + 1;
            }
            let mut key_end = start;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key_end = i + c.len_utf8();
            }
            let key = inner[start..key_end].trim().to_owned();
            if chars.next().map(|(_, c)| c) != Some('"') {
                bail!("label {key} has no quoted value");
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => bail!("unterminated escape"),
                    },
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated label value"),
                }
            }
            labels.push((key, value));
        };
        rest = &inner[end..];
    }
    let value_text = rest
        .split_ascii_whitespace()
        .next()
        .ok_or_else(|| anyhow!("no value"))?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().with_context(|| format!("value {v:?}"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// GETs `/metrics` from `addr` and parses it.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<Exposition> {
    let (status, body) = crate::http_get(addr, "/metrics").await?;
    if status != 200 {
        bail!("GET /metrics answered {status}: {body}");
    }
    Exposition::parse(&body)
}

/// Scrapes until `ready` holds, for figures the server updates after the
/// event a test caused (a close, say); errors with the last scrape after
/// `within`.
pub async fn scrape_until(
    addr: SocketAddr,
    within: Duration,
    mut ready: impl FnMut(&Exposition) -> bool,
) -> anyhow::Result<Exposition> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let exposition = scrape(addr).await?;
        if ready(&exposition) {
            return Ok(exposition);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("condition not met within {within:?}; last scrape:\n{exposition}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_special_values() {
        let text = "# HELP x y\n# TYPE a counter\na 1\nb{k=\"v\",q=\"a\\\"b\\\\c\"} 2.5\n\
                    c_bucket{le=\"+Inf\"} 3 1700000000\nd NaN\ne{} -Inf\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.get("a", &[]), Some(1.0));
        assert_eq!(e.get("b", &[("q", "a\"b\\c"), ("k", "v")]), Some(2.5));
        assert_eq!(e.get("b", &[("k", "v")]), None);
        assert_eq!(e.sum("b", &[("k", "v")]), 2.5);
        assert_eq!(e.get("c_bucket", &[("le", "+Inf")]), Some(3.0));
        assert!(e.get("d", &[]).unwrap().is_nan());
        assert_eq!(e.get("e", &[]), Some(f64::NEG_INFINITY));
        assert!(Exposition::parse("x{a=\"1\" 1").is_err());
        assert!(Exposition::parse("x").is_err());
    }
}
