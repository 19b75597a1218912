//! serde_yaml's errors as Problems: its path becomes the key, worded for
//! scenario files, and the one error serde cannot place (an untagged
//! static agent that matches neither form) is found by trying each agent.

use super::locate::locate;
use super::schema::StaticAgentFull;
use super::Problem;

/// A serde_yaml error as a Problem: its path becomes the key (with the
/// offending key for unknown and missing ones), its position the line.
pub(super) fn problem(file: String, source: &str, e: &serde_yaml::Error) -> Problem {
    let (mut key, mut message) = key_and_message(&e.to_string());
    let mut position = e.location().map(|l| (l.line(), l.column()));
    if message.contains("untagged enum StaticAgent") {
        // serde cannot say which agent or why; find out by trying each.
        (key, message) = static_agent_problem(source);
        position = locate(source, &key).or(position);
    }
    let position = position.or_else(|| locate(source, &key));
    Problem {
        file,
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
        key,
        message,
    }
}

/// A serde_yaml message split into the key it is about (its path, plus
/// the key named by "unknown/missing field") and the message itself,
/// worded for scenario files ("key", not "field").
fn key_and_message(serde_text: &str) -> (String, String) {
    let text = strip_positions(serde_text);
    let (mut key, mut message) = match text.split_once(": ") {
        Some((path, rest))
            if !path.is_empty()
                && path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.[]?".contains(&b)) =>
        {
            (path.to_string(), rest.to_string())
        }
        _ => (String::new(), text.clone()),
    };
    for (serde_says, we_say) in [
        ("unknown field `", "unknown key `"),
        ("missing field `", "missing key `"),
    ] {
        if let Some(rest) = message.strip_prefix(serde_says) {
            if let Some(name) = rest.split('`').next() {
                key = join(&key, name);
            }
            message = format!("{we_say}{rest}");
        }
    }
    (key, message)
}

fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => parent.to_string(),
        _ => format!("{parent}.{child}"),
    }
}

/// The first static agent that is neither "HOST:PORT" nor a valid long
/// form, and what is wrong with it (key, message).
fn static_agent_problem(source: &str) -> (String, String) {
    let general = "an agent is \"HOST:PORT\", or a mapping of addr: HOST:PORT with optional \
                   weight: NUMBER and source_ips: ADDRESSES";
    let doc: serde_yaml::Value = serde_yaml::from_str(source).unwrap_or_default();
    let items = doc
        .get("agents")
        .and_then(|a| a.get("static"))
        .and_then(|s| s.as_sequence())
        .cloned()
        .unwrap_or_default();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("agents.static[{i}]");
        if item.is_string() {
            continue;
        }
        if !item.is_mapping() {
            return (key, general.to_string());
        }
        // Through text, not from_value: only the text parser tracks paths.
        let text = serde_yaml::to_string(&item).unwrap_or_default();
        if let Err(e) = serde_yaml::from_str::<StaticAgentFull>(&text) {
            let (inner, message) = key_and_message(&e.to_string());
            return (join(&key, &inner), message);
        }
    }
    ("agents.static".to_string(), general.to_string())
}

/// Drops serde_yaml's " at line N column M" (the Problem carries them).
fn strip_positions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" at line ") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + " at line ".len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let n = digits(tail);
        match tail[n..].strip_prefix(" column ") {
            Some(col) if n > 0 => rest = &col[digits(col)..],
            _ => {
                out.push_str(" at line ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_serde_positions_only() {
        assert_eq!(
            strip_positions("phases[0]: unknown field `x` at line 3 column 5"),
            "phases[0]: unknown field `x`"
        );
        assert_eq!(
            strip_positions("did not find expected key at line 9 column 1, while parsing a block mapping at line 1 column 1"),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(
            strip_positions("arrived at line end"),
            "arrived at line end"
        );
    }

    fn problem_of(text: &str) -> Problem {
        let e = serde_yaml::from_str::<super::super::Scenario>(text).unwrap_err();
        problem("f.yaml".into(), text, &e)
    }

    const HEAD: &str =
        "name: x\ntarget: {urls: [ws://127.0.0.1:1]}\nagents:\n  static:\n    - 10.0.0.1:7070\n";
    const PHASES: &str = "phases: [{name: a, duration: 5s, connections: 1}]\n";

    #[test]
    fn static_agents_are_tried_one_by_one() {
        let p = problem_of(&format!(
            "{HEAD}    - addr: 10.0.0.2:7070\n      wieght: 2\n{PHASES}"
        ));
        assert_eq!(
            p.to_string(),
            "f.yaml:7:7: agents.static[1].wieght: unknown key `wieght`, expected one of `addr`, `weight`, `source_ips`"
        );
        let p = problem_of(&format!(
            "{HEAD}    - addr: 10.0.0.2:7070\n      weight: two\n{PHASES}"
        ));
        assert_eq!(
            p.to_string(),
            "f.yaml:7:7: agents.static[1].weight: invalid type: string \"two\", expected f64"
        );
        let p = problem_of(&format!("{HEAD}    - 7070\n{PHASES}"));
        assert_eq!((p.line, p.key.as_str()), (Some(6), "agents.static[1]"));
        assert!(
            p.message.starts_with("an agent is \"HOST:PORT\""),
            "{}",
            p.message
        );
        let p = problem_of(&format!("{HEAD}    - weight: 2\n{PHASES}"));
        assert_eq!((p.line, p.key.as_str()), (Some(6), "agents.static[1].addr"));
        assert_eq!(p.message, "missing key `addr`");
    }

    #[test]
    fn syntax_errors_have_a_position_but_no_key() {
        let p = problem_of("name: x\ntarget:\n  urls: [ws://a:1\nagents: {}\n");
        assert_eq!(p.key, "");
        assert_eq!(p.line, Some(4));
        assert!(
            p.message.starts_with("did not find expected ',' or ']'"),
            "{}",
            p.message
        );
        assert!(!p.message.contains(" at line "), "{}", p.message);
    }
}
