//! Charts as inline SVG: drawn here, styled by the page's `<style>`.
//!
//! Every chart is 720 wide; horizontal bar charts grow 24 px per bar. Each
//! bar, segment and column carries a `<title>` (its tooltip), and every
//! coordinate is written with at most one decimal.

use super::escape;
use crate::report::document::{Chart, Series};

const WIDTH: f64 = 720.0;
/// Room for the visible chart title above the drawing.
const TITLE_H: f64 = 28.0;
const BOTTOM_PAD: f64 = 8.0;

// Horizontal bars: label | bar | total.
const ROW_H: f64 = 24.0;
const BAR_H: f64 = 16.0;
const LABEL_W: f64 = 180.0;
const VALUE_W: f64 = 70.0;
const BAR_W: f64 = WIDTH - LABEL_W - VALUE_W;
/// Longest label shown whole; longer ones are cut, whole in their tooltip.
const LABEL_CHARS: usize = 26;
const LEGEND_ITEM_W: f64 = 120.0;
const LEGEND_ROW_H: f64 = 20.0;

// Columns: y axis | plot, dates under it.
const AXIS_W: f64 = 60.0;
const PLOT_W: f64 = WIDTH - AXIS_W - 10.0;
const PLOT_H: f64 = 160.0;
/// Above this many columns, they touch: no gap between them.
const GAPLESS_OVER: usize = 120;

/// The chart as an `<svg>` element.
pub(super) fn chart(chart: &Chart) -> String {
    match chart {
        Chart::StackedBars { title, series, bars } => horizontal(title, series, bars, true),
        Chart::Bars { title, color, bars } => {
            let series = [Series { name: String::new(), color }];
            let bars: Vec<(String, Vec<i64>)> = bars.iter().map(|(label, v)| (label.clone(), vec![*v])).collect();
            horizontal(title, &series, &bars, false)
        }
        Chart::Columns { title, color, points } => columns(title, color, points),
    }
}

/// One bar per label, its values stacked in series order, scaled to the
/// largest row total.
fn horizontal(title: &str, series: &[Series], bars: &[(String, Vec<i64>)], legend: bool) -> String {
    if bars.is_empty() {
        return no_data(title);
    }
    let legend_lines = if legend { series.len().div_ceil(legend_per_line()) } else { 0 };
    let legend_h = if legend_lines > 0 { 8.0 + legend_lines as f64 * LEGEND_ROW_H } else { 0.0 };
    let height = TITLE_H + bars.len() as f64 * ROW_H + legend_h + BOTTOM_PAD;
    let mut out = open(title, height);

    let max = bars.iter().map(|(_, values)| drawn_total(values)).max().unwrap_or(0);
    let scale = if max > 0 { BAR_W / max as f64 } else { 0.0 };
    for (i, (label, values)) in bars.iter().enumerate() {
        let top = TITLE_H + i as f64 * ROW_H;
        let text_y = num(top + ROW_H / 2.0 + 4.0);
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{text_y}\" text-anchor=\"end\">{}</text>\n",
            num(LABEL_W - 8.0),
            label_text(label)
        ));
        let mut drawn = 0;
        for (j, &value) in values.iter().enumerate() {
            let (name, color) = series.get(j).map(|s| (s.name.as_str(), s.color)).unwrap_or(("other", "#9e9e9e"));
            let x0 = round1(LABEL_W + drawn as f64 * scale);
            drawn += value.max(0);
            let x1 = round1(LABEL_W + drawn as f64 * scale);
            if x1 <= x0 {
                continue;
            }
            let tip = if name.is_empty() { format!("{label}: {value}") } else { format!("{label}: {name} {value}") };
            out.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}</title></rect>\n",
                num(x0),
                num(top + (ROW_H - BAR_H) / 2.0),
                num(x1 - x0),
                num(BAR_H),
                escape(color),
                escape(&tip)
            ));
        }
        let end = LABEL_W + drawn as f64 * scale;
        let total: i64 = values.iter().sum();
        out.push_str(&format!("<text x=\"{}\" y=\"{text_y}\">{total}</text>\n", num(end + 6.0)));
    }
    if legend {
        write_legend(&mut out, series, TITLE_H + bars.len() as f64 * ROW_H + 8.0);
    }
    out.push_str("</svg>\n");
    out
}

/// What a row's bar is drawn for: its values, negatives counted as none.
fn drawn_total(values: &[i64]) -> i64 {
    values.iter().map(|v| (*v).max(0)).sum()
}

fn legend_per_line() -> usize {
    (WIDTH / LEGEND_ITEM_W) as usize
}

fn write_legend(out: &mut String, series: &[Series], top: f64) {
    for (k, s) in series.iter().enumerate() {
        let x = (k % legend_per_line()) as f64 * LEGEND_ITEM_W;
        let y = top + (k / legend_per_line()) as f64 * LEGEND_ROW_H;
        out.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
            num(x),
            num(y),
            escape(s.color)
        ));
        out.push_str(&format!("<text x=\"{}\" y=\"{}\">{}</text>\n", num(x + 16.0), num(y + 10.0), escape(&s.name)));
    }
}

/// Vertical columns in label order, scaled to the largest value, with that
/// value on the y axis and the first and last labels under the x axis.
fn columns(title: &str, color: &str, points: &[(String, i64)]) -> String {
    if points.is_empty() {
        return no_data(title);
    }
    let top = TITLE_H + 8.0;
    let bottom = top + PLOT_H;
    let mut out = open(title, bottom + 24.0);

    let max = points.iter().map(|(_, v)| (*v).max(0)).max().unwrap_or(0);
    let scale = if max > 0 { PLOT_H / max as f64 } else { 0.0 };
    let (left, right) = (num(AXIS_W), num(AXIS_W + PLOT_W));
    out.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{t}\" x2=\"{right}\" y2=\"{t}\" stroke-dasharray=\"3 3\"/>\n\
         <line x1=\"{left}\" y1=\"{t}\" x2=\"{left}\" y2=\"{b}\"/>\n\
         <line x1=\"{left}\" y1=\"{b}\" x2=\"{right}\" y2=\"{b}\"/>\n",
        t = num(top),
        b = num(bottom),
    ));
    let axis_label_x = num(AXIS_W - 6.0);
    out.push_str(&format!("<text x=\"{axis_label_x}\" y=\"{}\" text-anchor=\"end\">{max}</text>\n", num(top + 4.0)));
    out.push_str(&format!("<text x=\"{axis_label_x}\" y=\"{}\" text-anchor=\"end\">0</text>\n", num(bottom + 4.0)));

    let slot = PLOT_W / points.len() as f64;
    let gap = if points.len() > GAPLESS_OVER { 0.0 } else { slot * 0.2 };
    for (i, (label, value)) in points.iter().enumerate() {
        let x0 = round1(AXIS_W + i as f64 * slot + gap / 2.0);
        let x1 = round1(AXIS_W + (i + 1) as f64 * slot - gap / 2.0);
        let h = round1((*value).max(0) as f64 * scale);
        out.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}</title></rect>\n",
            num(x0),
            num(bottom - h),
            num(x1 - x0),
            num(h),
            escape(color),
            escape(&format!("{label}: {value}"))
        ));
    }

    let label_y = num(bottom + 16.0);
    out.push_str(&format!("<text x=\"{left}\" y=\"{label_y}\">{}</text>\n", escape(&points[0].0)));
    if let [_, .., last] = points {
        out.push_str(&format!("<text x=\"{right}\" y=\"{label_y}\" text-anchor=\"end\">{}</text>\n", escape(&last.0)));
    }
    out.push_str("</svg>\n");
    out
}

/// A small chart saying there is nothing to draw.
fn no_data(title: &str) -> String {
    let mut out = open(title, TITLE_H + ROW_H);
    out.push_str(&format!("<text class=\"empty\" x=\"0\" y=\"{}\">no data</text>\n</svg>\n", num(TITLE_H + 16.0)));
    out
}

/// The `<svg>` opening, its accessible title and its visible title.
fn open(title: &str, height: f64) -> String {
    let (w, h, title) = (num(WIDTH), num(height), escape(title));
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{title}\">\n\
         <title>{title}</title>\n<text class=\"chart-title\" x=\"0\" y=\"18\">{title}</text>\n"
    )
}

/// A bar's label, cut to fit left of the bars; a cut label keeps its whole
/// text as a tooltip.
fn label_text(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return escape(label);
    }
    let cut: String = label.chars().take(LABEL_CHARS - 1).collect();
    format!("{}\u{2026}<title>{}</title>", escape(&cut), escape(label))
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `v` with at most one decimal, and none when it is whole.
fn num(v: f64) -> String {
    let v = round1(v);
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(names: &[&'static str]) -> Vec<Series> {
        names.iter().map(|n| Series { name: (*n).into(), color: "#123456" }).collect()
    }

    fn stacked(bars: Vec<(&str, Vec<i64>)>) -> Chart {
        Chart::StackedBars {
            title: "By status".into(),
            series: series(&["protected", "infected"]),
            bars: bars.into_iter().map(|(l, v)| (l.to_owned(), v)).collect(),
        }
    }

    /// The (tooltip, width) of every `<rect>` carrying a tooltip.
    fn rects(svg: &str) -> Vec<(String, f64)> {
        svg.split("<rect ")
            .skip(1)
            .filter_map(|piece| {
                let end = piece.find('>')?;
                let title = piece[end..].strip_prefix("><title>")?;
                let title = &title[..title.find("</title>")?];
                let width = piece[..end].split("width=\"").nth(1)?.split('"').next()?;
                Some((title.to_owned(), width.parse().ok()?))
            })
            .collect()
    }

    fn width_of(svg: &str, label: &str) -> f64 {
        rects(svg).iter().filter(|(t, _)| t.starts_with(&format!("{label}: "))).map(|(_, w)| w).sum()
    }

    #[test]
    fn stacked_bar_length_is_proportional_to_row_total() {
        let svg = chart(&stacked(vec![("paris", vec![60, 40]), ("lyon", vec![25, 25]), ("nice", vec![10, 0])]));
        let paris = width_of(&svg, "paris");
        assert_eq!(paris, BAR_W);
        assert_eq!(width_of(&svg, "lyon"), paris / 2.0);
        assert_eq!(width_of(&svg, "nice"), paris / 10.0);
    }

    #[test]
    fn segments_stack_in_series_order_with_tooltips() {
        let svg = chart(&stacked(vec![("paris", vec![30, 12])]));
        let tips: Vec<String> = rects(&svg).into_iter().map(|(t, _)| t).collect();
        assert_eq!(tips, ["paris: protected 30", "paris: infected 12"]);
        assert!(svg.contains(">42</text>"), "total at the end of the bar");
        assert!(svg.contains("role=\"img\"") && svg.contains("<title>By status</title>"));
    }

    #[test]
    fn legend_names_every_series_with_its_colour() {
        let svg = chart(&stacked(vec![("paris", vec![1, 1])]));
        assert!(svg.contains("width=\"12\" height=\"12\" fill=\"#123456\"/>"));
        assert!(svg.contains(">protected</text>") && svg.contains(">infected</text>"));
    }

    #[test]
    fn zero_totals_draw_no_segment_and_no_nan() {
        let svg = chart(&stacked(vec![("paris", vec![0, 0]), ("lyon", vec![0, 0])]));
        assert!(rects(&svg).is_empty());
        assert!(svg.contains(">0</text>"));
        assert!(!svg.contains("NaN") && !svg.contains("\"inf") && !svg.contains("\"-inf"));
    }

    #[test]
    fn empty_charts_say_no_data() {
        let empty = [
            stacked(vec![]),
            Chart::Bars { title: "Lag".into(), color: "#000", bars: vec![] },
            Chart::Columns { title: "Per day".into(), color: "#000", points: vec![] },
        ];
        for c in &empty {
            let svg = chart(c);
            assert!(svg.starts_with("<svg") && svg.contains(">no data</text>"), "{svg}");
        }
    }

    #[test]
    fn bars_grow_24px_per_bar_and_label_values() {
        let bars = vec![("s1".to_owned(), 30), ("s2".to_owned(), 15)];
        let svg = chart(&Chart::Bars { title: "Lag".into(), color: "#1565c0", bars });
        assert!(svg.contains("height=\"84\""), "28 title + 2 × 24 + 8: {svg}");
        assert_eq!(width_of(&svg, "s2"), width_of(&svg, "s1") / 2.0);
        assert!(svg.contains("<title>s1: 30</title>") && svg.contains(">15</text>"));
    }

    #[test]
    fn columns_label_the_max_and_the_first_and_last_day() {
        let points: Vec<(String, i64)> = (1..=365).map(|d| (format!("day {d}"), d % 7)).collect();
        let svg = chart(&Chart::Columns { title: "Per day".into(), color: "#c62828", points });
        let cols = rects(&svg);
        assert_eq!(cols.len(), 365);
        assert!(cols.iter().all(|(_, w)| *w > 0.0));
        assert!(svg.contains("text-anchor=\"end\">6</text>"), "max on the y axis");
        assert!(svg.contains(">day 1</text>") && svg.contains(">day 365</text>"));
        assert!(!svg.contains(">day 2</text>"));
    }

    #[test]
    fn long_labels_are_cut_and_kept_whole_in_a_tooltip() {
        let long = "a-very-long-site-name-from-far-away";
        let svg = chart(&stacked(vec![(long, vec![1, 0])]));
        assert!(svg.contains("a-very-long-site-name-fro\u{2026}<title>a-very-long-site-name-from-far-away</title>"));
    }

    #[test]
    fn numbers_have_at_most_one_decimal() {
        assert_eq!(num(470.0), "470");
        assert_eq!(num(117.5), "117.5");
        assert_eq!(num(1.7808), "1.8");
        assert_eq!(num(0.04), "0");
        assert_eq!(num(-0.04), "0");
    }
}
