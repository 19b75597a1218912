//! The few calls of Prometheus' HTTP API the proof needs, over a plain
//! blocking HTTP/1.0 exchange (one request per connection, no chunked
//! bodies) with timeouts, so a stuck Prometheus fails the test instead of
//! hanging it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::Error;

/// How long one request may take, connect and answer together.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One series of a query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    /// As Prometheus writes it: "1", "0.25", "NaN", "+Inf".
    pub value: String,
}

impl Series {
    pub fn number(&self) -> Option<f64> {
        match self.value.as_str() {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            v => v.parse().ok(),
        }
    }
}

/// A Prometheus server's API.
#[derive(Debug, Clone, Copy)]
pub struct Prometheus {
    pub addr: SocketAddr,
}

impl Prometheus {
    pub fn new(addr: SocketAddr) -> Prometheus {
        Prometheus { addr }
    }

    /// GET `path` (with its query string): (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String), Error> {
        http_get(self.addr, path)
    }

    /// Whether `/-/ready` answers 200 (config loaded, storage open).
    pub fn ready(&self) -> bool {
        matches!(self.get("/-/ready"), Ok((200, _)))
    }

    /// Evaluates `expr` now. An expression Prometheus refuses is
    /// `Err(Error::Api)` with its error type and message.
    pub fn query(&self, expr: &str) -> Result<Vec<Series>, Error> {
        let qs = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", expr)
            .finish();
        let data = self.data(&format!("/api/v1/query?{qs}"))?;
        parse_result(&data)
    }

    /// Every metric name Prometheus knows: those with samples in its
    /// database, and those its targets declared (`# TYPE`) without a
    /// sample yet, such as a labelled counter before its first increment.
    pub fn known_names(&self) -> Result<BTreeSet<String>, Error> {
        let mut names = BTreeSet::new();
        let values = self.data("/api/v1/label/__name__/values")?;
        for v in values.as_array().into_iter().flatten() {
            if let Some(n) = v.as_str() {
                names.insert(n.to_string());
            }
        }
        let meta = self.data("/api/v1/metadata")?;
        if let Some(m) = meta.as_object() {
            names.extend(m.keys().cloned());
        }
        Ok(names)
    }

    /// The `data` member of a successful API answer.
    fn data(&self, path: &str) -> Result<Value, Error> {
        let (status, body) = self.get(path)?;
        let json: Value = serde_json::from_str(&body).map_err(|source| Error::Json {
            what: format!("answer to {path} (HTTP {status})"),
            source,
        })?;
        if json.get("status").and_then(Value::as_str) != Some("success") {
            let kind = json.get("errorType").and_then(Value::as_str).unwrap_or("?");
            let msg = json.get("error").and_then(Value::as_str).unwrap_or(&body);
            return Err(Error::Api(format!("HTTP {status}, {kind}: {msg}")));
        }
        json.get("data")
            .cloned()
            .ok_or_else(|| Error::Api(format!("no data in the answer to {path}")))
    }
}

/// The series of an instant query's `data`: a vector's elements, a
/// matrix's series, or a scalar as one series without labels.
pub fn parse_result(data: &Value) -> Result<Vec<Series>, Error> {
    let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    let result = data
        .get("result")
        .ok_or_else(|| Error::Api("no result in the answer".into()))?;
    let value_of = |pair: &Value| {
        pair.get(1)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match kind {
        "vector" | "matrix" => Ok(result
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Series {
                labels: s
                    .get("metric")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                value: match s.get("value") {
                    Some(v) => value_of(v),
                    None => s
                        .get("values")
                        .and_then(Value::as_array)
                        .and_then(|v| v.last())
                        .map(value_of)
                        .unwrap_or_default(),
                },
            })
            .collect()),
        "scalar" | "string" => Ok(vec![Series {
            labels: BTreeMap::new(),
            value: value_of(result),
        }]),
        other => Err(Error::Api(format!("unknown resultType {other:?}"))),
    }
}

/// A plain HTTP/1.0 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), Error> {
    let fail = |e: std::io::Error| Error::Api(format!("GET http://{addr}{path}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(fail)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\n\r\n").as_bytes())
        .map_err(fail)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(fail)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::Api(format!("GET http://{addr}{path}: no end of headers")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::Api(format!("GET http://{addr}{path}: no status in {head:?}")))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vectors_scalars_and_refuses_unknown_shapes() {
        let v: Value = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1.5,"1"]},{"metric":{},"value":[1.5,"NaN"]}]}"#,
        )
        .unwrap();
        let s = parse_result(&v).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["job"], "a");
        assert_eq!(s[0].number(), Some(1.0));
        assert!(s[1].number().unwrap().is_nan());
        let v: Value =
            serde_json::from_str(r#"{"resultType":"scalar","result":[1.5,"+Inf"]}"#).unwrap();
        assert_eq!(parse_result(&v).unwrap()[0].number(), Some(f64::INFINITY));
        let v: Value = serde_json::from_str(r#"{"resultType":"vector","result":[]}"#).unwrap();
        assert!(parse_result(&v).unwrap().is_empty());
        let v: Value = serde_json::from_str(r#"{"resultType":"odd","result":[]}"#).unwrap();
        assert!(parse_result(&v).is_err());
    }

    #[test]
    fn a_closed_port_is_an_error_naming_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = Prometheus::new(port).query("up").unwrap_err().to_string();
        assert!(
            err.contains(&format!("http://{port}/api/v1/query")),
            "{err}"
        );
        assert!(!Prometheus::new(port).ready());
    }
}
