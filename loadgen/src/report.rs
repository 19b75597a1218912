//! The `--json FILE` report: one document with the run's settings, its
//! totals (histograms included, so reports can be merged later) and the
//! per-interval timeline.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub use crate::printer::RunInfo;
use crate::stats::{Interval, Totals};

#[derive(Serialize)]
struct DocumentRef<'a> {
    run: &'a RunInfo,
    totals: &'a Totals,
    intervals: &'a [Interval],
}

#[derive(Deserialize)]
struct Document {
    run: RunInfo,
    totals: Totals,
    #[serde(default)]
    intervals: Vec<Interval>,
}

/// Writes the report as pretty JSON. The file appears whole or not at all
/// (temporary file in the same directory, then rename), so a reader never
/// sees half a report, even if the run is killed while writing.
pub fn write_json(
    path: &Path,
    run: &RunInfo,
    totals: &Totals,
    intervals: &[Interval],
) -> anyhow::Result<()> {
    let doc = DocumentRef {
        run,
        totals,
        intervals,
    };
    let mut text = serde_json::to_vec_pretty(&doc).context("serializing the JSON report")?;
    text.push(b'\n');

    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);

    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()));
    }
    Ok(())
}

/// Reads a report written by [`write_json`] (e.g. to merge the totals of
/// several agents). Histograms are decoded and checked here, so a corrupt
/// file fails now rather than at merge time.
pub fn read_json(path: &Path) -> anyhow::Result<(RunInfo, Totals, Vec<Interval>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Document = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a loadgen JSON report", path.display()))?;
    Ok((doc.run, doc.totals, doc.intervals))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::{Closed, Latency, Recorder};

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "loadgen-report-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn recorded() -> (RunInfo, Totals, Vec<Interval>) {
        let r = Recorder::new();
        let mut intervals = Vec::new();
        for i in 1..=500u64 {
            r.attempted();
            r.connected();
            r.latency(Latency::Connect, Duration::from_micros(100 + i));
            r.latency(Latency::RoundTrip, Duration::from_micros(10 * i));
            r.sent(1, 64);
            r.received(10, 640);
            if i % 100 == 0 {
                r.connect_failed("HTTP 503");
                r.disconnected(Closed::ByServer { code: Some(1013) });
                intervals.push(r.interval());
            }
        }
        let run = RunInfo {
            target_connections: 500,
            duration_secs: 1.5,
            workload: "chat-json".to_string(),
            saturation: crate::saturation::Saturation {
                cores: 2,
                loadgen_cpu_max: 42.5,
                loadgen_secs: vec![1],
                ..Default::default()
            },
            notes: vec!["a note".to_string()],
            ..RunInfo::default()
        };
        (run, r.totals(), intervals)
    }

    #[test]
    fn json_round_trips() {
        let dir = scratch_dir("round-trip");
        let path = dir.join("sub/run.json");
        let (run, totals, intervals) = recorded();
        write_json(&path, &run, &totals, &intervals).unwrap();
        let (run2, totals2, intervals2) = read_json(&path).unwrap();
        assert_eq!(run2, run);
        assert_eq!(totals2.latencies, totals.latencies);
        assert_eq!(totals2.connect_errors, totals.connect_errors);
        assert_eq!(totals2.closes_unexpected["1013"], 5);
        assert_eq!(totals2.messages_received, 5_000);
        assert!((totals2.elapsed_secs - totals.elapsed_secs).abs() < 1e-9);
        assert_eq!(intervals2.len(), 5);
        for (a, b) in intervals.iter().zip(&intervals2) {
            assert_eq!(a.messages_sent, b.messages_sent);
            assert_eq!(
                a.latencies.keys().collect::<Vec<_>>(),
                b.latencies.keys().collect::<Vec<_>>()
            );
            for (x, y) in a.latencies.values().zip(b.latencies.values()) {
                assert_eq!(x.count, y.count);
                assert!((x.p99_ms - y.p99_ms).abs() < 1e-9);
            }
        }
        let rt = totals2.latency(Latency::RoundTrip).unwrap();
        assert_eq!(rt.count, 500);
        // 5 ms sits in a bucket 4 µs wide; max reports its top
        assert_eq!(rt.to_histogram().unwrap().max(), 5_003);

        // the document has the promised shape and no temporary file is left
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["run"]["workload"], "chat-json");
        assert_eq!(v["totals"]["connects_ok"], 500);
        assert!(v["totals"]["latencies"]["round_trip"]["hdr"].is_string());
        assert_eq!(v["intervals"].as_array().unwrap().len(), 5);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("run.json")]);

        // rewriting replaces the file whole
        write_json(&path, &run, &Totals::default(), &[]).unwrap();
        let (_, t, ivs) = read_json(&path).unwrap();
        assert_eq!(t, Totals::default());
        assert!(ivs.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reports_merge_like_the_recorders() {
        let dir = scratch_dir("merge");
        let (run, a, _) = recorded();
        let (_, b, _) = recorded();
        write_json(&dir.join("a.json"), &run, &a, &[]).unwrap();
        write_json(&dir.join("b.json"), &run, &b, &[]).unwrap();
        let (_, ra, _) = read_json(&dir.join("a.json")).unwrap();
        let (_, rb, _) = read_json(&dir.join("b.json")).unwrap();
        let from_files = Totals::merged([&ra, &rb]);
        let in_memory = Totals::merged([&a, &b]);
        assert_eq!(from_files.latencies, in_memory.latencies);
        assert_eq!(from_files.messages_sent, 1_000);
        assert_eq!(from_files.latency(Latency::Connect).unwrap().count, 1_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = scratch_dir("bad");
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        let err = format!("{:#}", read_json(&missing).unwrap_err());
        assert!(
            err.contains("reading") && err.contains("missing.json"),
            "{err}"
        );

        let (run, totals, _) = recorded();
        let path = dir.join("corrupt.json");
        write_json(&path, &run, &totals, &[]).unwrap();
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["totals"]["latencies"]["connect"]["hdr"] = serde_json::json!("garbage");
        std::fs::write(&path, v.to_string()).unwrap();
        let err = format!("{:#}", read_json(&path).unwrap_err());
        assert!(err.contains("not a loadgen JSON report"), "{err}");
        assert!(err.contains("latency histogram"), "{err}");

        std::fs::write(&path, "{}").unwrap();
        assert!(read_json(&path).is_err());

        // a directory where the file should go
        let err = write_json(&dir, &run, &totals, &[]).unwrap_err();
        assert!(format!("{err:#}").contains("renaming"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
