//! loadgen's `/metrics` over a real socket, checked by the real `promtool
//! check metrics` (skipped with a note when promtool is not installed,
//! a failure when `REQUIRE_PROMTOOL=1`), and by the rules promtool does not
//! check: no duplicate series, cumulative buckets, `+Inf` equal to `_count`,
//! and values equal to the recorder's totals.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use loadgen::prometheus::{self, MetricsError, MAX_LABEL_VALUES};
use loadgen::stats::{Closed, Latency, Recorder, PROMETHEUS_BUCKETS_MS};
use testkit::{http_get, Exposition};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A recorder with a bit of everything, including the label values that
/// need escaping and more error kinds than the cap.
fn busy_recorder() -> Recorder {
    let r = Recorder::new();
    for i in 0..40u64 {
        r.attempted();
        r.connected();
        r.latency(Latency::Connect, Duration::from_micros(300 + i * 97));
    }
    // sorting after the kinds below, so those keep their own series
    for i in 0..70u64 {
        r.attempted();
        r.connect_failed(&format!("upgrade: x{i:02}"));
    }
    for kind in [
        "connect: Connection refused (os error 111)",
        "bind: Cannot assign requested address (os error 99)",
        "upgrade: missing header \"Sec-WebSocket-Accept\"",
        "odd \\ kind\nwith a newline",
        "timeout",
    ] {
        r.attempted();
        r.connect_failed(kind);
    }
    r.disconnected(Closed::ByServer { code: Some(1001) });
    r.disconnected(Closed::ByServer { code: None });
    r.disconnected(Closed::Error(
        "connection ended without a close frame".into(),
    ));
    r.disconnected(Closed::ByUs);
    for i in 0..5_000u64 {
        r.latency(
            Latency::RoundTrip,
            Duration::from_micros(1 + i * i % 3_000_000),
        );
        r.latency(Latency::Fanout, Duration::from_micros(20 + i % 900));
    }
    r.latency(Latency::Echo, Duration::from_secs(7_200)); // clamped to 1 h
    r.sent(5_000, 5_000 * 70);
    r.received(9_999, 9_999 * 66);
    r.lost(3);
    r
}

/// GETs `path` and returns the status line, the headers and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut raw))
        .await
        .expect("the endpoint answers")
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

/// The checks promtool 2.42 does not make (it accepts duplicate series,
/// decreasing buckets and a missing `+Inf`).
fn check_structure(text: &str, e: &Exposition) {
    let mut seen = BTreeSet::new();
    for s in &e.samples {
        let mut labels = s.labels.clone();
        labels.sort();
        assert!(
            seen.insert((s.name.clone(), labels)),
            "duplicate series {s:?}"
        );
        assert!(s.value.is_finite() && s.value >= 0.0, "{s:?}");
    }
    for kind in Latency::ALL {
        let kind = kind.as_str();
        let mut last = 0.0;
        for &le in PROMETHEUS_BUCKETS_MS {
            // the closest double to le/1000, as a decimal label parses
            let le: f64 = format!("{le}e-3").parse().unwrap();
            let v = e
                .samples
                .iter()
                .find(|s| {
                    s.name == "loadgen_latency_seconds_bucket"
                        && s.labels.iter().any(|(k, v)| k == "kind" && v == kind)
                        && s.labels
                            .iter()
                            .any(|(k, v)| k == "le" && v.parse::<f64>().ok() == Some(le))
                })
                .unwrap_or_else(|| panic!("no {kind} bucket le={le} in\n{text}"))
                .value;
            assert!(v >= last, "{kind}: bucket le={le} went down");
            last = v;
        }
        let inf = e
            .value(
                "loadgen_latency_seconds_bucket",
                &[("kind", kind), ("le", "+Inf")],
            )
            .unwrap();
        let count = e
            .value("loadgen_latency_seconds_count", &[("kind", kind)])
            .unwrap();
        assert!(
            inf >= last && inf == count,
            "{kind}: +Inf {inf}, count {count}"
        );
    }
}

#[tokio::test]
async fn promtool_accepts_the_served_exposition_and_values_match_the_totals() {
    let recorder = Arc::new(busy_recorder());
    let listener = prometheus::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let addr = prometheus::serve(listener, Arc::clone(&recorder), 1_000, stop).unwrap();

    let (status, headers, body) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("Content-Type: text/plain; version=0.0.4"),
        "{headers}"
    );
    promhttp::promtool::assert_valid(&body);

    let e = Exposition::parse(&body).unwrap();
    check_structure(&body, &e);
    let t = recorder.totals();
    let v = |name: &str, labels: &[(&str, &str)]| e.value(name, labels).unwrap();
    assert_eq!(v("loadgen_connections_target", &[]), 1_000.0);
    assert_eq!(v("loadgen_connections_open", &[]), 36.0);
    assert_eq!(v("loadgen_connections_peak", &[]), 40.0);
    assert_eq!(v("loadgen_connects_total", &[]), 40.0);
    assert_eq!(v("loadgen_connect_attempts_total", &[]), 115.0);
    assert_eq!(e.sum("loadgen_connect_errors_total", &[]), 75.0);
    assert_eq!(
        e.samples
            .iter()
            .filter(|s| s.name == "loadgen_connect_errors_total")
            .count(),
        MAX_LABEL_VALUES + 1
    );
    // label values arrive intact through the escaping
    assert_eq!(
        v(
            "loadgen_connect_errors_total",
            &[("kind", "upgrade: missing header \"Sec-WebSocket-Accept\"")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "loadgen_connect_errors_total",
            &[("kind", "connect: Connection refused (os error 111)")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "loadgen_connect_errors_total",
            &[(
                "kind",
                "bind: Cannot assign requested address (os error 99)"
            )]
        ),
        1.0
    );
    assert_eq!(
        v(
            "loadgen_closes_unexpected_total",
            &[("code", "connection ended without a close frame")]
        ),
        1.0
    );
    assert_eq!(
        v("loadgen_closes_unexpected_total", &[("code", "1001")]),
        1.0
    );
    assert_eq!(e.sum("loadgen_closes_unexpected_total", &[]), 3.0);
    assert_eq!(
        v("loadgen_messages_sent_total", &[]),
        t.messages_sent as f64
    );
    assert_eq!(
        v("loadgen_messages_received_total", &[]),
        t.messages_received as f64
    );
    assert_eq!(v("loadgen_sent_bytes_total", &[]), t.bytes_sent as f64);
    assert_eq!(
        v("loadgen_received_bytes_total", &[]),
        t.bytes_received as f64
    );
    assert_eq!(v("loadgen_messages_lost_total", &[]), 3.0);
    for kind in Latency::ALL {
        let h = t.latency(kind).unwrap();
        let k = kind.as_str();
        assert_eq!(
            v("loadgen_latency_seconds_count", &[("kind", k)]),
            h.count as f64,
            "{k}"
        );
        // the sum agrees with the HDR mean to its resolution
        let sum = v("loadgen_latency_seconds_sum", &[("kind", k)]);
        let expect = h.mean_ms * h.count as f64 / 1e3;
        assert!(
            (sum - expect).abs() <= expect * 1e-3 + 1e-6,
            "{k}: sum {sum}, mean × count {expect}"
        );
    }
    assert_eq!(
        v("loadgen_latency_seconds_count", &[("kind", "round_trip")]),
        5_000.0
    );
    assert_eq!(
        v(
            "loadgen_latency_seconds_bucket",
            &[("kind", "echo"), ("le", "10")]
        ),
        0.0,
        "an hour is above the top bucket"
    );
    assert!(e.has("process_resident_memory_bytes"));

    // figures are read at each scrape
    recorder.sent(1, 10);
    let (_, _, again) = get(addr, "/metrics").await;
    let again = Exposition::parse(&again).unwrap();
    assert_eq!(
        again.value("loadgen_messages_sent_total", &[]).unwrap(),
        t.messages_sent as f64 + 1.0
    );
    assert_eq!(
        http_get(addr, "/healthz").await.unwrap(),
        (200, "ok\n".into())
    );
    assert_eq!(http_get(addr, "/nope").await.unwrap().0, 404);

    // the endpoint goes away with the run
    drop(stop_tx);
    let gone = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("the listener closes once the stop sender is dropped");
}

#[tokio::test]
async fn a_fresh_recorder_is_a_valid_exposition_too() {
    let mut text = String::new();
    prometheus::render(&Recorder::new(), 0, &mut text);
    promhttp::promtool::assert_valid(&text);
    let e = Exposition::parse(&text).unwrap();
    check_structure(&text, &e);
    assert_eq!(e.value("loadgen_connects_total", &[]).unwrap(), 0.0);
    assert!(!e.has("loadgen_connect_errors_total"));
}

#[test]
fn binding_fails_early_with_the_address_in_the_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = prometheus::bind(addr).unwrap_err();
    assert!(matches!(err, MetricsError::Bind { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("--metrics-listen") && msg.contains(&addr.to_string()),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("in use"), "{msg}");
    // said once, also when the error chain is printed
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err))
            .matches("os error")
            .count(),
        1
    );

    // TEST-NET-1 is on no host
    let err = prometheus::bind("192.0.2.1:9091".parse().unwrap()).unwrap_err();
    assert!(err.to_string().contains("192.0.2.1:9091"), "{err}");
}
