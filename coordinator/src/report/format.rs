//! Numbers and times for people. Every function accepts any `f64`: values
//! come from a file anyone may have edited, and a NaN or an infinity must
//! show as a dash, never as "NaN" in a table or an SVG coordinate.

use std::time::{Duration, UNIX_EPOCH};

pub use loadgen::printer::int;

/// What stands in for a value that is missing or not a number.
pub const NONE: &str = "–";

/// Milliseconds at about three significant digits, as the histograms hold
/// them.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        return NONE.to_string();
    }
    if v.abs() >= 1000.0 {
        return thousands(v, 0);
    }
    loadgen::printer::ms(v)
}

/// A figure of unknown unit (threshold values, named figures): whole
/// numbers with separators, fractions at three significant digits.
pub fn value(v: f64) -> String {
    if !v.is_finite() {
        return NONE.to_string();
    }
    if v.fract() == 0.0 || v.abs() >= 1000.0 {
        return thousands(v, 0);
    }
    let a = v.abs();
    let decimals = if a >= 100.0 {
        1
    } else if a >= 10.0 {
        2
    } else if a >= 0.01 {
        3
    } else {
        6
    };
    let s = format!("{v:.decimals$}");
    // 0.500 reads better as 0.5; the separators never apply below 1000.
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Bytes as mebibytes, "52.4 MiB" (memory as `ps` and top show it).
pub fn mib(bytes: f64) -> String {
    if !bytes.is_finite() {
        return NONE.to_string();
    }
    format!("{} MiB", value((bytes / 1048576.0 * 10.0).round() / 10.0))
}

/// A per-second rate rounded to a whole number, with separators.
pub fn rate(per_sec: f64) -> String {
    if per_sec.is_finite() && per_sec > 0.0 {
        thousands(per_sec, 0)
    } else {
        "0".to_string()
    }
}

/// A share of a whole in percent, `None` for an empty whole.
pub fn percent_of(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// A percentage with as many decimals as a small value needs to be
/// distinguishable from zero.
pub fn percent(p: f64) -> String {
    if !p.is_finite() {
        return NONE.to_string();
    }
    if p == 0.0 || p >= 10.0 {
        format!("{p:.0} %")
    } else if p >= 0.1 {
        format!("{p:.1} %")
    } else {
        format!("{p:.3} %")
    }
}

/// `v` with `decimals` decimals and a comma between thousands.
pub fn thousands(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return NONE.to_string();
    }
    let text = format!("{:.decimals$}", v.abs());
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text.as_str(), None),
    };
    let mut out = String::new();
    if v < 0.0 && text.chars().any(|c| c != '0' && c != '.') {
        out.push('-');
    }
    match whole.parse::<u64>() {
        Ok(n) => out.push_str(&int(n)),
        Err(_) => out.push_str(whole), // beyond u64: rare enough to show plain
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// Axis tick labels: `step` decides the decimals, so ticks 0, 0.5, 1 do
/// not read 0, 1, 1; large values are shortened to k and M, which is what
/// fits under a tick.
pub fn tick(v: f64, step: f64) -> String {
    if !v.is_finite() {
        return NONE.to_string();
    }
    let decimals = |step: f64| -> usize {
        if step.is_finite() && step > 0.0 && step < 1.0 {
            (-step.log10().floor()).clamp(0.0, 9.0) as usize
        } else {
            0
        }
    };
    let a = v.abs();
    if a >= 1e12 {
        format!("{v:.1e}")
    } else if a >= 1e9 {
        format!("{}G", thousands(v / 1e9, decimals(step / 1e9)))
    } else if a >= 1e6 {
        format!("{}M", thousands(v / 1e6, decimals(step / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", thousands(v / 1e3, decimals(step / 1e3)))
    } else {
        thousands(v, decimals(step))
    }
}

/// A Unix time in milliseconds as an RFC 3339 UTC time to the second; 0
/// means it was never set.
pub fn utc(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return NONE.to_string();
    }
    match UNIX_EPOCH.checked_add(Duration::from_millis(unix_ms)) {
        Some(t) => humantime::format_rfc3339_seconds(t)
            .to_string()
            .replace('T', " ")
            .replace('Z', " UTC"),
        None => NONE.to_string(),
    }
}

/// A span of seconds as "2m 5s" (whole seconds; sub-second spans as "0.4s").
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return NONE.to_string();
    }
    if secs < 1.0 {
        return format!("{secs:.1}s");
    }
    match Duration::try_from_secs_f64(secs.round()) {
        Ok(d) => humantime::format_duration(d).to_string(),
        Err(_) => NONE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_separators_and_sensible_precision() {
        assert_eq!(thousands(1_234_567.0, 0), "1,234,567");
        assert_eq!(thousands(-1_234.5, 1), "-1,234.5");
        assert_eq!(thousands(-0.0001, 0), "0");
        assert_eq!(ms(0.0421), "0.042");
        assert_eq!(ms(1.234), "1.23");
        assert_eq!(ms(73.21), "73.2");
        assert_eq!(ms(12_345.6), "12,346");
        assert_eq!(value(6000.0), "6,000");
        assert_eq!(value(0.5), "0.5");
        assert_eq!(value(4.2149), "4.215");
        assert_eq!(value(0.0), "0");
        assert_eq!(rate(1_999.6), "2,000");
        assert_eq!(percent(0.0123), "0.012 %");
        assert_eq!(percent(45.6), "46 %");
        assert_eq!(mib(54_945_792.0), "52.4 MiB");
        assert_eq!(mib(3.0 * 1_073_741_824.0), "3,072 MiB");
    }

    #[test]
    fn non_numbers_become_dashes_never_nan() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for s in [
                ms(v),
                value(v),
                rate(v),
                percent(v),
                thousands(v, 2),
                tick(v, 1.0),
                duration(v),
                mib(v),
            ] {
                assert!(s == NONE || s == "0", "{v}: {s}");
            }
        }
        assert_eq!(percent_of(1, 0), None);
    }

    #[test]
    fn ticks_take_decimals_from_the_step_and_shorten_large_values() {
        assert_eq!(tick(0.5, 0.5), "0.5");
        assert_eq!(tick(1.0, 0.5), "1.0");
        assert_eq!(tick(0.02, 0.01), "0.02");
        assert_eq!(tick(1500.0, 500.0), "1,500");
        assert_eq!(tick(15_000.0, 5_000.0), "15k");
        assert_eq!(tick(12_000.0, 2_000.0), "12k");
        assert_eq!(tick(2_000_000.0, 500_000.0), "2.0M");
        assert_eq!(tick(3e9, 1e9), "3G");
        assert_eq!(tick(5e18, 5e18), "5.0e18");
    }

    #[test]
    fn times_are_utc_and_durations_are_short() {
        assert_eq!(utc(0), NONE);
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
        assert_eq!(duration(125.4), "2m 5s");
        assert_eq!(duration(0.4), "0.4s");
    }
}
