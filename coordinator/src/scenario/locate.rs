//! Finds where a key path ("phases[1].connections") is written in a
//! scenario's source text. serde_yaml reports positions for syntax and
//! type errors only; semantic checks run on the parsed structs, which have
//! forgotten their lines, so this scans the text again.
//!
//! It is a rough reader of block YAML, enough for scenario files: block
//! mappings, `- ` sequences (compact ones at their key's indentation too),
//! flow collections (`thresholds: ["a", "b"]`, `{addr: x, weight: 2}`),
//! comments, quoted keys and block scalars (`description: |`). When a
//! key is not written (a default was used), it answers with the nearest
//! parent that is.

/// A line and column, both 1-based, as editors count them.
pub type Position = (usize, usize);

/// Where `key` (e.g. `phases[1].connections`, `agents.static[0]`) is
/// written in `source`, or its nearest written parent; `None` when not
/// even its first part is there (or `key` is empty).
pub fn locate(source: &str, key: &str) -> Option<Position> {
    let path = split_key(key);
    if path.is_empty() {
        return None;
    }
    let lines: Vec<Vec<char>> = source.lines().map(|l| l.chars().collect()).collect();
    let tokens = tokenize(&lines);
    walk(&lines, &tokens, &path).map(|(line, col)| (line + 1, col + 1))
}

/// `phases[1].connections` → `["phases", "1", "connections"]`.
pub fn split_key(key: &str) -> Vec<String> {
    key.split(['.', '[', ']'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[derive(Debug)]
enum Kind {
    /// `- ` of a block sequence item.
    Dash,
    /// `name:`; `value` is where its value starts on the same line.
    Key { name: String, value: Option<usize> },
    /// Anything else that starts a node (a scalar or flow collection as a
    /// sequence item).
    Other,
}

#[derive(Debug)]
struct Token {
    line: usize,
    col: usize,
    kind: Kind,
}

/// One token per node start, in document order; lines inside block
/// scalars and multi-line flow collections are skipped.
fn tokenize(lines: &[Vec<char>]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut skip_deeper_than: Option<usize> = None;
    let mut skip_until_line = 0;
    for (n, line) in lines.iter().enumerate() {
        if n < skip_until_line {
            continue;
        }
        let Some(indent) = line.iter().position(|c| !c.is_whitespace()) else {
            continue;
        };
        if let Some(limit) = skip_deeper_than {
            if indent > limit {
                continue;
            }
            skip_deeper_than = None;
        }
        if line[indent] == '#' || starts_with(line, 0, "---") || starts_with(line, 0, "...") {
            continue;
        }
        let mut col = indent;
        while line.get(col) == Some(&'-') && line.get(col + 1).is_none_or(|c| c.is_whitespace()) {
            tokens.push(Token {
                line: n,
                col,
                kind: Kind::Dash,
            });
            col += 1;
            while line.get(col).is_some_and(|c| c.is_whitespace()) {
                col += 1;
            }
        }
        if col >= line.len() || line[col] == '#' {
            continue;
        }
        let (kind, value) = match key_at(line, col) {
            Some((name, value)) => (Kind::Key { name, value }, value),
            None => (Kind::Other, Some(col)),
        };
        let key_col = col;
        tokens.push(Token { line: n, col, kind });
        match value.and_then(|v| line.get(v)) {
            Some('|' | '>') => skip_deeper_than = Some(key_col.min(indent)),
            Some('[' | '{') => {
                let start = value.unwrap_or(col);
                let (_, end_line) = flow_items(lines, n, start);
                skip_until_line = end_line + 1;
            }
            _ => {}
        }
    }
    tokens
}

fn starts_with(line: &[char], at: usize, text: &str) -> bool {
    let mut chars = line[at.min(line.len())..].iter();
    text.chars().all(|c| chars.next() == Some(&c))
}

/// A mapping key starting at `col`: its name, unquoted, and where its
/// value starts on this line, if it does.
fn key_at(line: &[char], col: usize) -> Option<(String, Option<usize>)> {
    let (name, after) = match line[col] {
        q @ ('"' | '\'') => {
            let close = (col + 1..line.len()).find(|&i| line[i] == q)?;
            (line[col + 1..close].iter().collect::<String>(), close + 1)
        }
        _ => {
            let colon = (col..line.len())
                .find(|&i| line[i] == ':' && line.get(i + 1).is_none_or(|c| c.is_whitespace()))?;
            let name: String = line[col..colon].iter().collect();
            if name.contains(" #") || name.starts_with(['[', '{', '"', '\'']) {
                return None;
            }
            (name.trim_end().to_string(), colon)
        }
    };
    if line.get(after) != Some(&':') || !line.get(after + 1).is_none_or(|c| c.is_whitespace()) {
        return None;
    }
    let value = (after + 1..line.len()).find(|&i| !line[i].is_whitespace());
    let value = value.filter(|&v| line[v] != '#');
    Some((name, value))
}

/// The items of the flow collection whose `[` or `{` is at (line, col):
/// where each starts, and the line the collection ends on.
fn flow_items(lines: &[Vec<char>], line: usize, col: usize) -> (Vec<(usize, usize)>, usize) {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut want_item = false;
    let (mut n, mut i) = (line, col);
    while n < lines.len() {
        let l = &lines[n];
        while i < l.len() {
            let c = l[i];
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            if c == '#' && (i == 0 || l[i - 1].is_whitespace()) {
                break;
            }
            if want_item && !c.is_whitespace() && !matches!(c, ']' | '}') {
                items.push((n, i));
                want_item = false;
            }
            match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth == 1 {
                        want_item = true;
                    }
                }
                ']' | '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return (items, n);
                    }
                }
                ',' if depth == 1 => want_item = true,
                _ => {}
            }
            i += 1;
        }
        n += 1;
        i = 0;
    }
    (items, lines.len().saturating_sub(1))
}

/// Follows `path` down the tokens; the last position found.
fn walk(lines: &[Vec<char>], tokens: &[Token], path: &[String]) -> Option<(usize, usize)> {
    let mut region: &[Token] = tokens;
    // The token the next segment looks into, once there is one.
    let mut owner: Option<&Token> = None;
    let mut found = None;
    for segment in path {
        if let Some((line, col)) = owner.and_then(|o| flow_value(lines, o, region)) {
            return in_flow(lines, line, col, segment).or(found);
        }
        let Some(first) = region.first() else {
            return found;
        };
        let child_col = first.col;
        let mut children = region
            .iter()
            .enumerate()
            .filter(|(_, t)| t.col == child_col);
        let hit = match segment.parse::<usize>() {
            Ok(k) => children
                .filter(|(_, t)| matches!(t.kind, Kind::Dash))
                .nth(k),
            Err(_) => {
                children.find(|(_, t)| matches!(&t.kind, Kind::Key { name, .. } if name == segment))
            }
        };
        let Some((at, token)) = hit else {
            return found;
        };
        found = Some((token.line, token.col));
        owner = Some(token);
        let rest = &region[at + 1..];
        // A key's block sequence may sit at the key's own indentation.
        let is_key = matches!(token.kind, Kind::Key { .. });
        let end = rest
            .iter()
            .position(|t| {
                t.col < token.col
                    || (t.col == token.col && !(is_key && matches!(t.kind, Kind::Dash)))
            })
            .unwrap_or(rest.len());
        region = &rest[..end];
    }
    found
}

/// Where `owner`'s value starts when it is a flow collection on the
/// owner's own line: a key's value, or a sequence item's.
fn flow_value(lines: &[Vec<char>], owner: &Token, region: &[Token]) -> Option<(usize, usize)> {
    let col = match owner.kind {
        Kind::Key { value, .. } => value?,
        Kind::Dash => {
            region
                .first()
                .filter(|t| t.line == owner.line && matches!(t.kind, Kind::Other))?
                .col
        }
        Kind::Other => return None,
    };
    matches!(lines[owner.line].get(col), Some('[' | '{')).then_some((owner.line, col))
}

/// Position of `segment` (an index, or a key of a flow mapping) inside the
/// flow collection at (line, col).
fn in_flow(lines: &[Vec<char>], line: usize, col: usize, segment: &str) -> Option<(usize, usize)> {
    let (items, _) = flow_items(lines, line, col);
    match segment.parse::<usize>() {
        Ok(k) => items.get(k).copied(),
        Err(_) => items
            .into_iter()
            .find(|&(n, i)| key_at(&lines[n], i).is_some_and(|(name, _)| name == segment)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"# a comment
name: smoke   # trailing comment
description: |
  phases: not a key
  - not a dash
target:
  urls: []
  headers:
  - "Authorization: Bearer x"
  - 'X-Other: y'
agents:
  static:
    - 10.0.0.1:7070
    - addr: 10.0.0.2:7070
      weight: 2
    - {addr: "10.0.0.3:7070", weight: 0}
phases:
- name: warm
  duration: 5s
  connections: 10
  thresholds: ["rtt_p99_ms < 5", "bogus > 1"]
- name: hold
  "connections": 2000000
  thresholds:
    - connect_errors_ratio < 0.001
    - >-
      messages_lost == 0
  rooms: 3
thresholds: [
  "a < 1",
  "b < 2"
]
output:
  dir: results/{name}
"#;

    fn at(key: &str) -> Option<Position> {
        locate(DOC, key)
    }

    #[test]
    fn keys_in_block_mappings() {
        assert_eq!(at("name"), Some((2, 1)));
        assert_eq!(at("target"), Some((6, 1)));
        assert_eq!(at("target.urls"), Some((7, 3)));
        assert_eq!(at("output.dir"), Some((34, 3)));
    }

    #[test]
    fn block_scalars_hide_their_text() {
        assert_eq!(at("description"), Some((3, 1)));
        assert_eq!(at("phases"), Some((17, 1)));
    }

    #[test]
    fn sequence_items_compact_and_indented() {
        assert_eq!(at("target.headers[1]"), Some((10, 3)));
        assert_eq!(at("agents.static[0]"), Some((13, 5)));
        assert_eq!(at("agents.static[1].weight"), Some((15, 7)));
        assert_eq!(at("phases[0]"), Some((18, 1)));
        assert_eq!(at("phases[0].connections"), Some((20, 3)));
        assert_eq!(at("phases[1].name"), Some((22, 3)));
        assert_eq!(at("phases[1].connections"), Some((23, 3)));
        assert_eq!(at("phases[1].thresholds[0]"), Some((25, 5)));
        assert_eq!(at("phases[1].thresholds[1]"), Some((26, 5)));
        assert_eq!(at("phases[1].rooms"), Some((28, 3)));
    }

    #[test]
    fn flow_collections() {
        assert_eq!(at("phases[0].thresholds[1]"), Some((21, 34)));
        assert_eq!(at("phases[0].thresholds[0]"), Some((21, 16)));
        assert_eq!(at("agents.static[2].weight"), Some((16, 31)));
        assert_eq!(at("thresholds[0]"), Some((30, 3)));
        assert_eq!(at("thresholds[1]"), Some((31, 3)));
        assert_eq!(at("target.urls[0]"), Some((7, 3)));
    }

    #[test]
    fn missing_keys_fall_back_to_the_nearest_parent() {
        assert_eq!(at("phases[0].ramp"), Some((18, 1)));
        assert_eq!(at("phases[5].ramp"), Some((17, 1)));
        assert_eq!(at("target.workload"), Some((6, 1)));
        assert_eq!(at("agents.local"), Some((11, 1)));
        assert_eq!(at("on_agent_failure"), None);
        assert_eq!(at(""), None);
        // A key of the same name deeper down is not a top-level key.
        assert_eq!(at("weight"), None);
        assert_eq!(at("connections"), None);
    }

    #[test]
    fn splits_key_paths() {
        assert_eq!(
            split_key("phases[1].connections"),
            ["phases", "1", "connections"]
        );
        assert_eq!(split_key("agents.static[0]"), ["agents", "static", "0"]);
        assert!(split_key("").is_empty());
    }
}
