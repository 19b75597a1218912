//! The one line the server prints on stdout when it is ready,
//! `listening ws=ADDR metrics=ADDR|off`: the way scripts, tests and
//! benchmarks learn the ports of a server started on port 0.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyLine {
    pub ws: SocketAddr,
    pub metrics: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected ready line {0:?} (want `listening ws=ADDR metrics=ADDR|off`)")]
pub struct BadReadyLine(pub String);

impl fmt::Display for ReadyLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listening ws={} metrics=", self.ws)?;
        match self.metrics {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("off"),
        }
    }
}

impl FromStr for ReadyLine {
    type Err = BadReadyLine;

    fn from_str(line: &str) -> Result<ReadyLine, BadReadyLine> {
        let bad = || BadReadyLine(line.to_string());
        let mut words = line.split_whitespace();
        if words.next() != Some("listening") {
            return Err(bad());
        }
        let (mut ws, mut metrics) = (None, None);
        for word in words {
            match word.split_once('=') {
                Some(("ws", v)) => ws = Some(v.parse().map_err(|_| bad())?),
                Some(("metrics", "off")) => metrics = Some(None),
                Some(("metrics", v)) => metrics = Some(Some(v.parse().map_err(|_| bad())?)),
                _ => return Err(bad()),
            }
        }
        match (ws, metrics) {
            (Some(ws), Some(metrics)) => Ok(ReadyLine { ws, metrics }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_lines_parse_back() {
        for line in [
            "listening ws=127.0.0.1:43123 metrics=127.0.0.1:43124",
            "listening ws=[::1]:80 metrics=off",
        ] {
            let parsed: ReadyLine = line.parse().unwrap();
            assert_eq!(parsed.to_string(), line);
        }
        let r: ReadyLine = "listening ws=[::1]:80 metrics=off".parse().unwrap();
        assert_eq!((r.ws, r.metrics), ("[::1]:80".parse().unwrap(), None));
    }

    #[test]
    fn bad_ready_lines_are_refused() {
        for line in [
            "",
            "listening",
            "listening ws=127.0.0.1:1",
            "listening metrics=off",
            "ready ws=127.0.0.1:1 metrics=off",
            "listening ws=localhost:1 metrics=off",
            "listening ws=127.0.0.1:1 metrics=off extra=1",
        ] {
            assert!(line.parse::<ReadyLine>().is_err(), "{line:?}");
        }
    }
}
