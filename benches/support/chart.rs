//! A dependency-free SVG bar chart for the benchmark summaries (the benchmark protocol in
//! DESIGN.md asks for a table and a picture of every comparison).
//!
//! Bars are horizontal and the axis is logarithmic: one chart holds a task (tens of
//! nanoseconds, hundreds of bytes) next to an OS thread (microseconds, kilobytes), which a
//! linear axis would flatten to nothing. Every bar carries its exact value as a label.

use std::fmt::Write as _;

/// Height of one bar's row, in pixels.
const ROW_PX: f64 = 22.0;
/// Width reserved for the row labels on the left.
const LABEL_PX: f64 = 220.0;
/// Length of the longest possible bar (one axis decade spans an equal share of it).
const BAR_PX: f64 = 520.0;
/// Room for the value printed after a bar.
const VALUE_PX: f64 = 140.0;
/// Room above the first row for the title and below the last for the axis.
const TITLE_PX: f64 = 40.0;
const AXIS_PX: f64 = 30.0;
/// One fill per contender, in the order they are first seen.
const COLOURS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];

/// One bar: `section` groups bars (a workload), `contender` picks the colour.
pub struct Bar {
    pub section: String,
    pub contender: String,
    pub value: f64,
}

/// Renders `bars` (all values > 0, in `unit`) as an SVG document.
pub fn svg(title: &str, unit: &str, bars: &[Bar]) -> String {
    let positive = || bars.iter().map(|b| b.value).filter(|v| *v > 0.0);
    let lo = positive().fold(f64::INFINITY, f64::min).log10().floor();
    let hi = positive().fold(0.0, f64::max).log10().ceil().max(lo + 1.0);
    let x_of = |v: f64| LABEL_PX + (v.max(10f64.powf(lo)).log10() - lo) / (hi - lo) * BAR_PX;

    let mut contenders: Vec<&str> = Vec::new();
    for b in bars {
        if !contenders.contains(&b.contender.as_str()) {
            contenders.push(&b.contender);
        }
    }
    let width = LABEL_PX + BAR_PX + VALUE_PX;
    let height = TITLE_PX + ROW_PX * bars.len() as f64 + AXIS_PX;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">{} ({unit}, log scale)</text>"#,
        escape(title)
    );
    for (row, b) in bars.iter().enumerate() {
        let y = TITLE_PX + ROW_PX * row as f64;
        let colour = contenders
            .iter()
            .position(|c| *c == b.contender)
            .map_or(COLOURS[0], |i| COLOURS[i % COLOURS.len()]);
        let end = x_of(b.value);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{} / {}</text><rect x="{LABEL_PX}" y="{}" width="{:.1}" height="{}" fill="{colour}"/><text x="{:.1}" y="{}">{}</text>"#,
            LABEL_PX - 6.0,
            y + ROW_PX * 0.7,
            escape(&b.section),
            escape(&b.contender),
            y + 3.0,
            (end - LABEL_PX).max(1.0),
            ROW_PX - 6.0,
            end + 4.0,
            y + ROW_PX * 0.7,
            format_value(b.value),
        );
    }
    let axis_y = TITLE_PX + ROW_PX * bars.len() as f64 + 4.0;
    let _ = writeln!(
        out,
        r#"<line x1="{LABEL_PX}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
        LABEL_PX + BAR_PX
    );
    let mut decade = lo;
    while decade <= hi {
        let x = x_of(10f64.powf(decade));
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{axis_y}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            axis_y + 4.0,
            axis_y + 18.0,
            format_value(10f64.powf(decade))
        );
        decade += 1.0;
    }
    out.push_str("</svg>\n");
    out
}

/// Three significant figures, without an exponent.
pub fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
