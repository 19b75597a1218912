//! The page around the sections: escaping, the style sheet, tables.
//!
//! Everything a scenario author, an agent or a file controls goes through
//! [`esc`] before it reaches the markup; the helpers here take finished
//! HTML only where their parameter says so.

use std::fmt::Write;

/// `text` made safe for HTML text and for quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The style sheet, inline: the page must open from a file with no
/// network, and system fonts are all it uses.
const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1f2328; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1500px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 20px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 16px; margin: 20px 0 8px; }
p.description { margin: 4px 0 12px; white-space: pre-wrap; color: #424a53; max-width: 100ch; }
header .top { display: flex; gap: 24px; align-items: flex-start; justify-content: space-between; flex-wrap: wrap; }
.verdict { font-size: 34px; font-weight: 800; letter-spacing: 0.05em; color: #fff; padding: 8px 28px; border-radius: 8px; }
.verdict.pass { background: #1a7f37; }
.verdict.fail { background: #cf222e; }
.badge { display: inline-block; font-weight: 700; font-size: 12px; padding: 1px 8px; border-radius: 10px; color: #fff; }
.badge.pass { background: #1a7f37; }
.badge.fail { background: #cf222e; }
.badge.warn { background: #9a6700; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
dl.facts dt { color: #59636e; }
dl.facts dd { margin: 0; word-break: break-word; }
.failures { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; padding: 8px 16px; margin: 12px 0; }
.failures h3 { margin: 4px 0; color: #a40e26; }
.failures li { white-space: pre-wrap; word-break: break-word; }
nav.toc { margin: 8px 0; }
nav.toc a { margin-right: 14px; }
table { border-collapse: collapse; background: #fff; border: 1px solid #d0d7de; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e8eb; text-align: left; vertical-align: top; }
th { background: #f0f2f4; font-weight: 600; vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
td.text { overflow-wrap: break-word; max-width: 48ch; }
.nowrap { white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
tr.failed td { background: #fff5f5; }
.muted { color: #59636e; }
.warn { color: #9a6700; font-weight: 600; }
.note { display: block; min-width: 22ch; }
.stats { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 12px; }
.stat { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.stat .k { color: #59636e; font-size: 12px; text-transform: uppercase; letter-spacing: 0.03em; }
.stat .v { font-size: 22px; font-weight: 700; font-variant-numeric: tabular-nums; }
.stat .sub { color: #59636e; font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 600px), 1fr)); gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 10px; }
figure h4 { margin: 0 0 2px; font-size: 14px; }
figcaption { color: #59636e; font-size: 12px; margin-top: 2px; }
svg.chart { display: block; width: 100%; max-width: 720px; height: auto; }
svg.chart rect.hover:hover { fill-opacity: 0.07; }
.nodata { color: #59636e; font-style: italic; padding: 28px 0; text-align: center; background: repeating-linear-gradient(45deg, #fafbfc, #fafbfc 8px, #f3f4f6 8px, #f3f4f6 16px); border-radius: 4px; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #0969da; }
"#;

/// The whole document. `title` is plain text; `body` is finished HTML.
pub fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + STYLE.len() + 512);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        esc(title)
    );
    out
}

/// A table column: its heading (plain text) and whether it holds numbers,
/// which are right-aligned.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    pub num: bool,
}

pub const fn text(name: &'static str) -> Col {
    Col { name, num: false }
}

pub const fn num(name: &'static str) -> Col {
    Col { name, num: true }
}

/// A row: its cells as finished HTML, and whether to mark it as failed.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub cells: Vec<String>,
    pub failed: bool,
}

/// A table of `rows` under `cols`; cells beyond the columns are dropped,
/// missing ones are left empty.
pub fn table(class: &str, cols: &[Col], rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<div class=\"scroll\"><table class=\"{}\"><thead><tr>",
        esc(class)
    );
    for c in cols {
        let class = if c.num { " class=\"num\"" } else { "" };
        let _ = write!(out, "<th{class}>{}</th>", esc(c.name));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(if r.failed {
            "<tr class=\"failed\">"
        } else {
            "<tr>"
        });
        for (i, c) in cols.iter().enumerate() {
            let class = if c.num { "num" } else { "text" };
            let cell = r.cells.get(i).map_or("", String::as_str);
            let _ = write!(out, "<td class=\"{class}\">{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A PASS or FAIL badge.
pub fn pass_badge(passed: bool) -> &'static str {
    if passed {
        "<span class=\"badge pass\">PASS</span>"
    } else {
        "<span class=\"badge fail\">FAIL</span>"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn tables_align_numbers_and_escape_headings() {
        let t = table(
            "t",
            &[text("name"), num("count")],
            &[Row {
                cells: vec![esc("<a>"), "1,000".into(), "extra".into()],
                failed: true,
            }],
        );
        assert!(t.starts_with("<div class=\"scroll\"><table class=\"t\">"));
        assert!(t.contains("<th class=\"num\">count</th>"));
        assert!(t.contains("<tr class=\"failed\"><td class=\"text\">&lt;a&gt;</td><td class=\"num\">1,000</td></tr>"));
        assert!(!t.contains("extra"));
    }

    #[test]
    fn the_page_escapes_its_title_and_loads_nothing() {
        let p = page("<b>x</b>", "<p>body</p>");
        assert!(p.contains("<title>&lt;b&gt;x&lt;/b&gt;</title>"));
        assert!(p.contains("<p>body</p>"));
        for external in ["http:", "https:", "@import", "url(", "<link", "<script"] {
            assert!(!p.contains(external), "{external}");
        }
    }
}
