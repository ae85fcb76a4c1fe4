//! The scale part's cost curve as an SVG: four panels against the
//! computers the master holds (time per million rows applied, query p99,
//! database size, master peak memory), the partitioned copy as hollow
//! marks at the largest size. Written by hand: a few dozen elements, no
//! plotting crate needed.

use std::fmt::Write as _;

use super::{ScaleRun, SizeRun};
use crate::table::MB;

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 280.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 40.0;
const COLORS: [&str; 7] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];

/// One line: its points (computers, value) and, where measured, the
/// partitioned copy's value at the largest size.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    partitioned: Option<(f64, f64)>,
}

struct Panel {
    title: &'static str,
    series: Vec<Series>,
    /// A target drawn as a dashed line.
    target: Option<f64>,
}

fn series(name: &str, run: &ScaleRun, value: impl Fn(&SizeRun) -> Option<f64>) -> Series {
    let at = |s: &SizeRun| value(s).map(|v| (s.computers as f64, v));
    Series {
        name: name.to_owned(),
        points: run.sizes.iter().filter_map(at).collect(),
        partitioned: run.partitioned.as_ref().and_then(at),
    }
}

fn panels(run: &ScaleRun) -> Vec<Panel> {
    let mut queries = vec![series("report, via master", run, |s| s.report.as_ref().map(|r| r.via_master.p99_ms))];
    let names: Vec<String> =
        run.sizes.first().map(|s| s.lists.iter().map(|l| l.query.clone()).collect()).unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        queries.push(series(&format!("list: {name}"), run, move |s| s.lists.get(i).map(|l| l.latency.p99_ms)));
    }
    queries.push(series("verify's read of a slave", run, |s| Some(s.verify_read.p99_ms)));
    vec![
        Panel {
            title: "seconds per million rows applied",
            series: vec![
                series("replication (real slaves)", run, SizeRun::seconds_per_million),
                series("raw UNNEST upsert", run, |s| Some(1e6 / s.upsert_rows_per_s)),
            ],
            target: None,
        },
        Panel { title: "query p99, ms", series: queries, target: Some(super::figures::QUERY_TARGET_MS) },
        Panel {
            title: "database size, GB",
            series: vec![series("pg_database_size", run, |s| Some(s.database_bytes as f64 / 1e9))],
            target: None,
        },
        Panel {
            title: "master peak memory (VmHWM), MB",
            series: vec![series("master", run, |s| Some(s.master_peak_rss as f64 / MB))],
            target: Some(super::figures::RSS_TARGET_MB),
        },
    ]
}

/// The SVG document.
pub fn svg(run: &ScaleRun) -> String {
    let panels = panels(run);
    let width = 2.0 * PANEL_W;
    let height = (panels.len() as f64 / 2.0).ceil() * PANEL_H + 30.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let slaves = run.sizes.first().map_or(0, |s| s.slaves);
    let _ = writeln!(
        out,
        r#"<text x="10" y="18" font-size="13" font-weight="bold">One master: cost against computers held ({slaves} slaves; hollow marks: replica_rows in {} hash partitions)</text>"#,
        run.partitions
    );
    for (i, panel) in panels.iter().enumerate() {
        let x0 = (i % 2) as f64 * PANEL_W;
        let y0 = 30.0 + (i / 2) as f64 * PANEL_H;
        draw(&mut out, panel, x0, y0);
    }
    out.push_str("</svg>\n");
    out
}

fn draw(out: &mut String, panel: &Panel, x0: f64, y0: f64) {
    let all = panel.series.iter().flat_map(|s| s.points.iter().chain(s.partitioned.iter()));
    let max_x = all.clone().map(|p| p.0).fold(0.0, f64::max).max(1.0) * 1.05;
    let max_y = all.map(|p| p.1).chain(panel.target).fold(0.0, f64::max).max(1e-9) * 1.1;
    let (w, h) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let px = |x: f64| x0 + LEFT + x / max_x * w;
    let py = |y: f64| y0 + TOP + h - y / max_y * h;
    let _ = writeln!(out, r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#, x0 + LEFT, y0 + 20.0, panel.title);
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="{}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##,
        x0 + LEFT,
        y0 + TOP
    );
    for k in 0..=4 {
        let (xv, yv) = (max_x / 1.05 * k as f64 / 4.0, max_y / 1.1 * k as f64 / 4.0);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            px(xv),
            y0 + TOP + h + 14.0,
            millions(xv),
            x0 + LEFT - 4.0,
            py(yv) + 4.0,
            short(yv)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">computers held</text>"#,
        x0 + LEFT + w / 2.0,
        y0 + TOP + h + 30.0
    );
    if let Some(t) = panel.target {
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#444" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="#444">target {}</text>"##,
            px(0.0),
            py(t),
            px(max_x),
            py(t),
            px(0.0) + 4.0,
            py(t) - 3.0,
            short(t)
        );
    }
    for (i, s) in panel.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = s.points.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ =
            writeln!(out, r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#, points.join(" "));
        for (x, y) in &s.points {
            let _ = writeln!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#, px(*x), py(*y));
        }
        if let Some((x, y)) = s.partitioned {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="5" fill="none" stroke="{color}" stroke-width="2"/>"#,
                px(x),
                py(y)
            );
        }
        let ly = y0 + TOP + 8.0 + i as f64 * 15.0;
        let lx = x0 + PANEL_W - RIGHT + 10.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            lx + 14.0,
            lx + 18.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
}

/// `1M`, `2.5M`, `60k`.
fn millions(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", short(x / 1e6))
    } else if x >= 1e3 {
        format!("{}k", short(x / 1e3))
    } else {
        short(x)
    }
}

fn short(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(millions(10_000_000.0), "10M");
        assert_eq!(millions(2_500_000.0), "2.50M");
        assert_eq!(millions(60_000.0), "60k");
        assert_eq!(short(256.0), "256");
        assert_eq!(escape("a<b & c"), "a&lt;b &amp; c");
    }
}
