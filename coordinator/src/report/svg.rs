//! Line charts as inline SVG, drawn here so the report needs no script
//! library and renders in any browser without JavaScript or a network.
//!
//! Styling is in presentation attributes, not the page's CSS, so a chart
//! copied out of the page still looks the same. Hover read-outs are SVG
//! `<title>` elements on invisible bands, which browsers show as native
//! tooltips, again without script.

use std::fmt::Write;

use super::format;
use super::html::esc;

pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 250.0;
const MARGIN_LEFT: f64 = 66.0;
const MARGIN_RIGHT: f64 = 24.0;
const MARGIN_BOTTOM: f64 = 44.0;
const FONT_SIZE: f64 = 12.0;
/// Average advance of a 12 px sans-serif character, for laying out the
/// legend without measuring text (a browser is not there to ask).
const CHAR_WIDTH: f64 = 6.8;
const LEGEND_ROW: f64 = 17.0;
/// More hover bands than this are thinned out: a band narrower than about
/// two pixels cannot be pointed at anyway.
const MAX_BANDS: usize = 320;
const AXIS_COLOR: &str = "#444";
const GRID_COLOR: &str = "#e3e3e3";
const REF_COLOR: &str = "#777";

/// What the values on an axis are, for ticks and read-outs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    Seconds,
    /// Whole things (connections): no fractional ticks.
    Count,
    PerSecond,
    Ms,
    /// Percent of one CPU core.
    Percent,
    /// Mebibytes (memory).
    Mib,
}

impl Unit {
    /// The finest tick step that makes sense for the unit.
    fn min_step(self) -> f64 {
        match self {
            Unit::Seconds | Unit::Count | Unit::PerSecond | Unit::Percent => 1.0,
            Unit::Ms => 0.001,
            Unit::Mib => 0.1,
        }
    }

    fn read_out(self, v: f64) -> String {
        match self {
            Unit::Seconds => format!("{} s", format::value((v * 10.0).round() / 10.0)),
            Unit::Count => format::thousands(v, 0),
            Unit::PerSecond => format!("{}/s", format::rate(v)),
            Unit::Ms => format!("{} ms", format::ms(v)),
            Unit::Percent => format!("{} %", format::value((v * 10.0).round() / 10.0)),
            Unit::Mib => format!("{} MiB", format::value((v * 10.0).round() / 10.0)),
        }
    }
}

/// The horizontal axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XScale {
    Linear(Unit),
    /// Percentiles as "nines": x = -log10(1 - p), so 90 %, 99 %, 99.9 %
    /// are equally spaced, as HdrHistogram's plotter draws them. The axis
    /// runs from 0 to `max` nines.
    Nines {
        max: u32,
    },
}

/// One line. `None` values break the line (an interval without samples
/// is a gap, not a zero).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub dashed: bool,
    /// Ascending x.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A horizontal reference line across the plot, such as a target.
#[derive(Debug, Clone)]
pub struct RefLine {
    pub name: String,
    pub y: f64,
}

#[derive(Debug, Clone)]
pub struct Chart {
    /// Unique in the page: the accessible name and description refer to
    /// it.
    pub id: String,
    pub title: String,
    /// A sentence for screen readers with the chart's main figures.
    pub desc: String,
    pub x: XScale,
    /// The span of a linear x axis, so charts of one phase share it and
    /// line up; `None` fits the axis to the data. Data outside the span
    /// widens it rather than being drawn off the plot.
    pub x_range: Option<(f64, f64)>,
    pub x_label: String,
    pub y: Unit,
    pub y_label: String,
    pub series: Vec<Series>,
    pub refs: Vec<RefLine>,
}

/// Plot area and value ranges: maps values to pixels.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_lo: f64,
    x_hi: f64,
    y_lo: f64,
    y_hi: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x_lo) / (self.x_hi - self.x_lo) * (self.right - self.left)
    }

    fn py(&self, y: f64) -> f64 {
        self.bottom - (y - self.y_lo) / (self.y_hi - self.y_lo) * (self.bottom - self.top)
    }
}

/// The chart as an `<svg>` element, or `None` when no series has a single
/// finite point (the caller says "no samples" instead of drawing empty
/// axes).
pub fn render(chart: &Chart) -> Option<String> {
    let finite = |v: f64| v.is_finite();
    let points: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter_map(|&(x, y)| y.map(|y| (x, y)))
        .filter(|&(x, y)| finite(x) && finite(y))
        .collect();
    if points.is_empty() {
        return None;
    }

    let legend = legend_layout(chart);
    let legend_rows = legend.last().map_or(0.0, |item| item.row + 1.0);
    let top = 12.0 + legend_rows * LEGEND_ROW;

    let (x_lo, x_hi, x_step) = match chart.x {
        XScale::Linear(unit) => {
            let (given_lo, given_hi) = chart
                .x_range
                .filter(|(lo, hi)| lo.is_finite() && hi.is_finite())
                .unwrap_or((0.0, 0.0));
            let lo = points.iter().map(|p| p.0).fold(given_lo.min(0.0), f64::min);
            let hi = points.iter().map(|p| p.0).fold(given_hi.max(lo), f64::max);
            let hi = if hi > lo { hi } else { lo + unit.min_step() };
            (lo, hi, nice_step((hi - lo) / 8.0, unit.min_step()))
        }
        XScale::Nines { max } => (0.0, f64::from(max.max(1)), 1.0),
    };
    let ref_ys = chart.refs.iter().map(|r| r.y).filter(|y| y.is_finite());
    let y_lo = points
        .iter()
        .map(|p| p.1)
        .chain(ref_ys.clone())
        .fold(0.0, f64::min);
    let y_max = points
        .iter()
        .map(|p| p.1)
        .chain(ref_ys)
        .fold(y_lo, f64::max);
    let y_step = nice_step((y_max - y_lo) / 5.0, chart.y.min_step());
    let y_lo = (y_lo / y_step).floor() * y_step;
    // Headroom above the highest value, so a line at the top is not drawn
    // on the frame.
    let y_hi = ((y_max / y_step).floor() + 1.0) * y_step;

    let f = Frame {
        left: MARGIN_LEFT,
        right: WIDTH - MARGIN_RIGHT,
        top,
        bottom: HEIGHT - MARGIN_BOTTOM,
        x_lo,
        x_hi,
        y_lo,
        y_hi,
    };

    let mut out = String::new();
    let id = esc(&chart.id);
    // Time charts are marked so a reader (or a test) can find every chart
    // that shares a phase's time axis.
    let class = if chart.x == XScale::Linear(Unit::Seconds) {
        "chart time"
    } else {
        "chart"
    };
    let _ = write!(
        out,
        r#"<svg class="{class}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-labelledby="{id}-t {id}-d" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="{FONT_SIZE}">"#,
        w = WIDTH,
        h = HEIGHT,
    );
    let _ = write!(
        out,
        r#"<title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        esc(&chart.title),
        esc(&chart.desc)
    );

    // Grid and y ticks.
    out.push_str(r#"<g class="y-axis">"#);
    for y in ticks(f.y_lo, f.y_hi, y_step) {
        let py = f.py(y);
        let _ = write!(
            out,
            r#"<line x1="{}" x2="{}" y1="{py}" y2="{py}" stroke="{GRID_COLOR}"/><text x="{}" y="{}" text-anchor="end" fill="{AXIS_COLOR}">{}</text>"#,
            n(f.left),
            n(f.right),
            n(f.left - 6.0),
            n(py + 4.0),
            esc(&format::tick(y, y_step)),
            py = n(py),
        );
    }
    out.push_str("</g>");

    // X ticks.
    out.push_str(r#"<g class="x-axis">"#);
    for x in ticks(f.x_lo, f.x_hi, x_step) {
        let px = f.px(x);
        let label = match chart.x {
            XScale::Linear(_) => format::tick(x, x_step),
            XScale::Nines { .. } => nines_label(x),
        };
        // A label that would run off the right edge ends at its tick
        // instead of centring on it.
        let half = label.chars().count() as f64 * CHAR_WIDTH / 2.0;
        let anchor = if px + half > WIDTH - 2.0 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            out,
            r#"<line x1="{px}" x2="{px}" y1="{}" y2="{}" stroke="{AXIS_COLOR}"/><text x="{px}" y="{}" text-anchor="{anchor}" fill="{AXIS_COLOR}">{}</text>"#,
            n(f.bottom),
            n(f.bottom + 5.0),
            n(f.bottom + 18.0),
            esc(&label),
            px = n(px),
        );
    }
    out.push_str("</g>");

    // Frame and axis titles.
    let _ = write!(
        out,
        r#"<path d="M{l} {t}V{b}H{r}" fill="none" stroke="{AXIS_COLOR}"/>"#,
        l = n(f.left),
        t = n(f.top),
        b = n(f.bottom),
        r = n(f.right),
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" fill="{AXIS_COLOR}">{}</text>"#,
        n((f.left + f.right) / 2.0),
        n(HEIGHT - 8.0),
        esc(&chart.x_label)
    );
    let y_mid = n((f.top + f.bottom) / 2.0);
    let _ = write!(
        out,
        r#"<text x="16" y="{y_mid}" text-anchor="middle" transform="rotate(-90 16 {y_mid})" fill="{AXIS_COLOR}">{}</text>"#,
        esc(&chart.y_label)
    );

    // Reference lines, then the data on top of them.
    for r in chart.refs.iter().filter(|r| r.y.is_finite()) {
        let py = n(f.py(r.y));
        let _ = write!(
            out,
            r#"<line class="ref" x1="{}" x2="{}" y1="{py}" y2="{py}" stroke="{REF_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
            n(f.left),
            n(f.right),
        );
    }
    for s in &chart.series {
        for segment in segments(s) {
            if let [(x, y)] = segment.as_slice() {
                let _ = write!(
                    out,
                    r#"<circle data-series="{}" cx="{}" cy="{}" r="2.5" fill="{}"/>"#,
                    esc(&s.name),
                    n(f.px(*x)),
                    n(f.py(*y)),
                    s.color
                );
                continue;
            }
            let coords: Vec<String> = segment
                .iter()
                .map(|&(x, y)| format!("{},{}", n(f.px(x)), n(f.py(y))))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            };
            let _ = write!(
                out,
                r#"<polyline class="series" data-series="{}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round"{dash} points="{}"/>"#,
                esc(&s.name),
                s.color,
                coords.join(" ")
            );
        }
    }

    write_legend(&mut out, &legend);
    write_hover_bands(&mut out, chart, &f);
    out.push_str("</svg>");
    Some(out)
}

/// A legend entry's place: row and x offset from the left margin.
struct LegendItem {
    row: f64,
    x: f64,
    name: String,
    color: &'static str,
    dashed: bool,
}

fn legend_layout(chart: &Chart) -> Vec<LegendItem> {
    let entries = chart
        .series
        .iter()
        .map(|s| (s.name.clone(), s.color, s.dashed))
        .chain(chart.refs.iter().map(|r| (r.name.clone(), REF_COLOR, true)));
    let width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let mut items = Vec::new();
    let (mut row, mut x) = (0.0, 0.0);
    for (name, color, dashed) in entries {
        let advance = 24.0 + name.chars().count() as f64 * CHAR_WIDTH + 18.0;
        if x > 0.0 && x + advance > width {
            row += 1.0;
            x = 0.0;
        }
        items.push(LegendItem {
            row,
            x,
            name,
            color,
            dashed,
        });
        x += advance;
    }
    items
}

fn write_legend(out: &mut String, items: &[LegendItem]) {
    let _ = write!(
        out,
        r#"<g class="legend" aria-label="legend: {}">"#,
        esc(&items
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", "))
    );
    for item in items {
        let x = MARGIN_LEFT + item.x;
        let y = 12.0 + item.row * LEGEND_ROW;
        let dash = if item.dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r##"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="{}" stroke-width="2.5"{dash}/><text x="{}" y="{}" fill="#222">{}</text>"##,
            n(x),
            n(x + 20.0),
            item.color,
            n(x + 24.0),
            n(y + 4.0),
            esc(&item.name),
            y = n(y),
        );
    }
    out.push_str("</g>");
}

/// Invisible full-height bands, one per x value, whose `<title>` lists
/// every series' value there.
fn write_hover_bands(out: &mut String, chart: &Chart, f: &Frame) {
    let mut xs: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_some_and(f64::is_finite))
        .map(|&(x, _)| x)
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let keep = xs.len().div_ceil(MAX_BANDS).max(1);
    let xs: Vec<f64> = xs.into_iter().step_by(keep).collect();

    out.push_str(r#"<g class="hover-bands">"#);
    for (i, &x) in xs.iter().enumerate() {
        let px = f.px(x);
        let left = match i.checked_sub(1).and_then(|j| xs.get(j)) {
            Some(&prev) => (f.px(prev) + px) / 2.0,
            None => f.left,
        };
        let right = match xs.get(i + 1) {
            Some(&next) => (px + f.px(next)) / 2.0,
            None => f.right,
        };
        let mut tip = match chart.x {
            XScale::Linear(unit) => unit.read_out(x),
            XScale::Nines { .. } => format!("p{}", percentile_of_nines(x)),
        };
        for s in &chart.series {
            let at = s
                .points
                .iter()
                .find(|(px, _)| *px == x)
                .and_then(|(_, y)| *y)
                .filter(|y| y.is_finite());
            if let Some(y) = at {
                let _ = write!(tip, "\n{}: {}", s.name, chart.y.read_out(y));
            }
        }
        for r in &chart.refs {
            let _ = write!(tip, "\n{}: {}", r.name, chart.y.read_out(r.y));
        }
        let _ = write!(
            out,
            r##"<rect class="hover" x="{}" y="{}" width="{}" height="{}" fill="#000" fill-opacity="0"><title>{}</title></rect>"##,
            n(left),
            n(f.top),
            n((right - left).max(0.0)),
            n(f.bottom - f.top),
            esc(&tip)
        );
    }
    out.push_str("</g>");
}

/// Runs of consecutive finite points of a series.
fn segments(s: &Series) -> Vec<Vec<(f64, f64)>> {
    let mut all = Vec::new();
    let mut run = Vec::new();
    for &(x, y) in &s.points {
        match y {
            Some(y) if x.is_finite() && y.is_finite() => run.push((x, y)),
            _ => {
                if !run.is_empty() {
                    all.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        all.push(run);
    }
    all
}

/// A tick step of 1, 2 or 5 times a power of ten near `raw`, at least
/// `min_step`; any degenerate input gives `min_step`.
fn nice_step(raw: f64, min_step: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return min_step;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    (nice * magnitude).max(min_step)
}

/// Multiples of `step` within `lo..=hi` (a little slack for rounding).
fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && step.is_finite() && step > 0.0) {
        return Vec::new();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).take(100).map(|k| k as f64 * step).collect()
}

/// The tick label at `nines`: 0 %, 90 %, 99 %, 99.9 % ...
fn nines_label(nines: f64) -> String {
    format!("{}%", percentile_of_nines(nines))
}

/// The percentile (0..100) that lies `nines` nines out, with as many
/// decimals as the nines need: 2.5 nines is 99.68.
pub fn percentile_of_nines(nines: f64) -> String {
    if !nines.is_finite() || nines <= 0.0 {
        return "0".to_string();
    }
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.ceil() as usize).saturating_sub(1).min(8);
    let s = format!("{p:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A coordinate with one decimal; anything not finite (which the ranges
/// above should never produce) becomes 0 rather than "NaN" in the markup.
fn n(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    } else {
        "0".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            id: "c1".into(),
            title: "t".into(),
            desc: "d".into(),
            x: XScale::Linear(Unit::Seconds),
            x_range: None,
            x_label: "time (s)".into(),
            y: Unit::Count,
            y_label: "connections".into(),
            series,
            refs: vec![RefLine {
                name: "target".into(),
                y: 100.0,
            }],
        }
    }

    #[test]
    fn steps_are_one_two_five_and_ticks_cover_the_range() {
        assert_eq!(nice_step(7.0, 1.0), 10.0);
        assert_eq!(nice_step(0.3, 1.0), 1.0);
        assert_eq!(nice_step(0.3, 0.001), 0.5);
        assert_eq!(nice_step(1400.0, 1.0), 2000.0);
        assert_eq!(nice_step(f64::NAN, 1.0), 1.0);
        assert_eq!(ticks(0.0, 30.0, 5.0).len(), 7);
        assert!(ticks(0.0, f64::INFINITY, 5.0).is_empty());
    }

    #[test]
    fn nines_map_to_percentiles() {
        assert_eq!(percentile_of_nines(0.0), "0");
        assert_eq!(percentile_of_nines(1.0), "90");
        assert_eq!(percentile_of_nines(2.0), "99");
        assert_eq!(percentile_of_nines(3.0), "99.9");
        assert_eq!(percentile_of_nines(4.0), "99.99");
        assert_eq!(percentile_of_nines(2.5), "99.68");
    }

    #[test]
    fn gaps_split_lines_and_points_land_inside_the_plot() {
        let s = Series {
            name: "open".into(),
            color: "#000",
            dashed: false,
            points: vec![
                (1.0, Some(10.0)),
                (2.0, Some(50.0)),
                (3.0, None),
                (4.0, Some(f64::NAN)),
                (5.0, Some(90.0)),
                (6.0, Some(95.0)),
            ],
        };
        assert_eq!(segments(&s).len(), 2);
        let svg = render(&chart(vec![s])).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        // every polyline coordinate is inside the plot area
        for poly in svg.split("points=\"").skip(1) {
            let coords = poly.split('"').next().unwrap();
            for pair in coords.split(' ') {
                let (x, y) = pair.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((MARGIN_LEFT..=WIDTH - MARGIN_RIGHT).contains(&x), "{x}");
                assert!((0.0..=HEIGHT - MARGIN_BOTTOM).contains(&y), "{y}");
            }
        }
        // the target line is drawn and in the legend
        assert!(svg.contains(r#"class="ref""#));
        assert!(svg.contains(">target</text>"));
    }

    /// The x-axis group of a rendered chart: its ticks and their places.
    fn x_axis(svg: &str) -> &str {
        let from = svg.find(r#"<g class="x-axis">"#).unwrap();
        let to = svg[from..].find("</g>").unwrap() + from;
        &svg[from..to]
    }

    #[test]
    fn a_given_x_range_is_kept_whatever_the_data_covers() {
        let line = |from: f64, to: f64| Series {
            name: "s".into(),
            color: "#000",
            dashed: false,
            points: vec![(from, Some(1.0)), (to, Some(2.0))],
        };
        let mut short = chart(vec![line(1.0, 4.0)]);
        let mut long = chart(vec![line(0.0, 31.5)]);
        // fitted to the data, they differ
        assert_ne!(
            x_axis(&render(&short).unwrap()),
            x_axis(&render(&long).unwrap())
        );
        short.x_range = Some((0.0, 31.5));
        long.x_range = Some((0.0, 31.5));
        let (a, b) = (render(&short).unwrap(), render(&long).unwrap());
        assert_eq!(x_axis(&a), x_axis(&b));
        assert!(a.contains(r#"class="chart time""#));
        assert!(a.contains(r#"data-series="s""#));
        // data beyond the range widens it instead of leaving the plot
        short.x_range = Some((0.0, 2.0));
        let svg = render(&short).unwrap();
        assert!(x_axis(&svg).contains(">4</text>"), "{}", x_axis(&svg));
        // a range that is not finite is ignored
        short.x_range = Some((0.0, f64::INFINITY));
        assert!(!render(&short).unwrap().contains("inf"));
    }

    #[test]
    fn nothing_finite_draws_nothing_and_flat_data_has_a_range() {
        let empty = Series {
            name: "x".into(),
            color: "#000",
            dashed: false,
            points: vec![(1.0, None), (f64::NAN, Some(1.0))],
        };
        assert!(render(&chart(vec![empty])).is_none());
        let flat = Series {
            name: "zero".into(),
            color: "#000",
            dashed: false,
            points: vec![(0.0, Some(0.0))],
        };
        let mut c = chart(vec![flat]);
        c.refs.clear();
        let svg = render(&c).unwrap();
        assert!(svg.contains("<circle"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
