//! HTML: one self-contained page (inline style, charts as inline SVG, no
//! script, nothing fetched from elsewhere), so it can be mailed or archived.
//!
//! Every piece of text goes through [`escape`]: site names, threat names and
//! host names come from remote sites and must never turn into markup.

mod svg;

use crate::report::document::{Document, Section, Table};

/// Small, print-friendly, and the only style the page has.
const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#212121;margin:2em auto;max-width:960px;padding:0 1em}
h1{margin-bottom:.2em}
p.meta{margin:.1em 0;color:#616161}
h2{margin-top:2em;border-bottom:2px solid #e0e0e0;padding-bottom:.2em}
svg{display:block;margin:1em 0;max-width:100%;height:auto}
svg text{font-size:12px;fill:#424242}
svg text.chart-title{font-size:14px;font-weight:600;fill:#212121}
svg text.empty{fill:#9e9e9e;font-style:italic}
svg line{stroke:#9e9e9e}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #e0e0e0;padding:.25em .6em;text-align:left}
th{background:#f5f5f5}
tr:nth-child(even) td{background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.empty{text-align:center;color:#9e9e9e;font-style:italic}
";

/// The document as an HTML page.
pub fn render(doc: &Document) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!("<title>{}</title>\n", escape(&doc.title)));
    out.push_str(&format!("<style>\n{STYLE}</style>\n</head>\n<body>\n"));
    out.push_str(&format!("<h1>{}</h1>\n", escape(&doc.title)));
    out.push_str(&format!("<p class=\"meta\">{}</p>\n", escape(&doc.subtitle)));
    out.push_str(&format!(
        "<p class=\"meta\">Generated <time datetime=\"{}\">{}</time></p>\n",
        doc.generated_at.format("%Y-%m-%dT%H:%M:%SZ"),
        doc.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
    ));
    for section in &doc.sections {
        write_section(&mut out, section);
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn write_section(out: &mut String, section: &Section) {
    out.push_str(&format!("<section>\n<h2>{}</h2>\n", escape(&section.title)));
    for chart in &section.charts {
        out.push_str(&svg::chart(chart));
    }
    for table in &section.tables {
        write_table(out, table);
    }
    out.push_str("</section>\n");
}

fn write_table(out: &mut String, table: &Table) {
    out.push_str(&format!("<table>\n<caption>{}</caption>\n<thead><tr>", escape(&table.title)));
    for column in &table.columns {
        out.push_str(&format!("<th>{}</th>", escape(column)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    if table.rows.is_empty() {
        let span = table.columns.len().max(1);
        out.push_str(&format!("<tr><td class=\"empty\" colspan=\"{span}\">no data</td></tr>\n"));
    }
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let class = if is_number(cell) { " class=\"num\"" } else { "" };
            out.push_str(&format!("<td{class}>{}</td>", escape(cell)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Whether a cell reads as a number ("12", "-3", "0.5"; not "inf" or "NaN").
fn is_number(cell: &str) -> bool {
    let cell = cell.trim();
    cell.bytes().any(|b| b.is_ascii_digit()) && cell.parse::<f64>().is_ok()
}

/// `text` safe in element content and in quoted attribute values.
fn escape(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::report::document::{Chart, Series};

    fn doc(sections: Vec<Section>) -> Document {
        Document {
            title: "Security status".into(),
            subtitle: "Made by hq".into(),
            generated_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 0).unwrap(),
            sections,
        }
    }

    fn status_section(site: &str) -> Section {
        let series = vec![
            Series { name: "protected".into(), color: "#2e7d32" },
            Series { name: "infected".into(), color: "#c62828" },
        ];
        Section {
            title: "Security status".into(),
            charts: vec![
                Chart::StackedBars { title: "By status".into(), series, bars: vec![(site.into(), vec![40, 12])] },
                Chart::Columns { title: "Per day".into(), color: "#c62828", points: vec![("2024-05-01".into(), 3)] },
            ],
            tables: vec![Table {
                title: "Per site".into(),
                columns: vec!["site".into(), "infected".into()],
                rows: vec![vec![site.into(), "12".into()]],
            }],
        }
    }

    #[test]
    fn is_a_page_with_title_subtitle_and_time() {
        let html = render(&doc(vec![]));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<h1>Security status</h1>"));
        assert!(html.contains("Made by hq"));
        assert!(html.contains("Generated <time datetime=\"2024-05-01T12:30:00Z\">2024-05-01 12:30:00 UTC</time>"));
    }

    #[test]
    fn escapes_markup_from_remote_sites() {
        let site = "<script>alert('x')</script> & \"co\"";
        let html = render(&doc(vec![status_section(site)]));
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"));
    }

    #[test]
    fn has_one_svg_per_chart_and_no_script_or_external_asset() {
        let html = render(&doc(vec![status_section("paris"), status_section("lyon")]));
        assert_eq!(html.matches("<svg").count(), 4);
        assert_eq!(html.matches("role=\"img\"").count(), 4);
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("url("));
    }

    #[test]
    fn renders_tables_with_numbers_right_aligned() {
        let html = render(&doc(vec![status_section("paris")]));
        assert!(html.contains("<caption>Per site</caption>"));
        assert!(html.contains("<thead><tr><th>site</th><th>infected</th></tr></thead>"));
        assert!(html.contains("<tr><td>paris</td><td class=\"num\">12</td></tr>"));
    }

    #[test]
    fn empty_table_says_no_data_across_its_columns() {
        let section = Section {
            title: "Malware".into(),
            charts: vec![],
            tables: vec![Table {
                title: "Top threats".into(),
                columns: vec!["a".into(), "b".into(), "c".into()],
                rows: vec![],
            }],
        };
        let html = render(&doc(vec![section]));
        assert!(html.contains("<th>a</th><th>b</th><th>c</th>"));
        assert!(html.contains("<td class=\"empty\" colspan=\"3\">no data</td>"));
    }

    #[test]
    fn tells_numbers_from_text() {
        for n in ["12", "-3", "0.5", " 7 "] {
            assert!(is_number(n), "{n}");
        }
        for t in ["", "paris", "inf", "NaN", "2024-05-01", "12 days"] {
            assert!(!is_number(t), "{t}");
        }
    }
}
