//! `server --healthcheck`, as a container healthcheck runs it: against a
//! running server it exits 0, against nothing it exits 1 and says why.

use std::process::Command;

use testkit::ServerProcess;

const SERVER: &str = env!("CARGO_BIN_EXE_server");

fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(SERVER)
        .arg("--healthcheck")
        .args(args)
        .env_remove("SERVER_METRICS_LISTEN")
        .env_remove("SERVER_LISTEN")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn healthcheck_asks_the_running_server() {
    let server = ServerProcess::spawn(SERVER, &["--workers", "1"]).unwrap();
    let metrics = server.metrics.unwrap().to_string();
    assert_eq!(check(&["--metrics-listen", &metrics]).0, Some(0));
    // The WebSocket port, when metrics are off.
    let ws = server.ws.to_string();
    assert_eq!(check(&["--no-metrics", "--listen", &ws]).0, Some(0));
    // A wildcard address is checked on loopback, as in a container.
    let wildcard = format!("0.0.0.0:{}", server.metrics.unwrap().port());
    assert_eq!(check(&["--metrics-listen", &wildcard]).0, Some(0));
    // The WebSocket port is not the health endpoint.
    let (code, why) = check(&["--metrics-listen", &ws]);
    assert_eq!(code, Some(1), "{why}");
    drop(server);
    let (code, why) = check(&["--metrics-listen", &metrics]);
    assert_eq!(code, Some(1));
    assert!(why.contains("unhealthy") && why.contains(&metrics), "{why}");
}
