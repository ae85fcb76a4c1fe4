//! Plain text: each table with its columns aligned, for a terminal.

use crate::report::document::Document;

pub fn render(doc: &Document) -> String {
    let mut out =
        format!("{} ({})\nGenerated {}\n", doc.title, doc.subtitle, doc.generated_at.format("%Y-%m-%d %H:%M:%S UTC"));
    for section in &doc.sections {
        for table in &section.tables {
            out.push_str(&format!("\n{}\n", table.title));
            if table.rows.is_empty() {
                out.push_str("  (none)\n");
                continue;
            }
            let mut widths: Vec<usize> = table.columns.iter().map(|c| c.chars().count()).collect();
            for row in &table.rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for row in std::iter::once(&table.columns).chain(&table.rows) {
                let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
                out.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::document::{Section, Table};

    #[test]
    fn columns_line_up() {
        let doc = Document {
            title: "Security status".into(),
            subtitle: "Made by hq".into(),
            generated_at: chrono::Utc::now(),
            sections: vec![Section {
                title: "s".into(),
                charts: vec![],
                tables: vec![Table {
                    title: "Per site".into(),
                    columns: vec!["site".into(), "computers".into()],
                    rows: vec![vec!["paris".into(), "300".into()], vec!["lyon-north".into(), "7".into()]],
                }],
            }],
        };
        let text = render(&doc);
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  ")).collect();
        assert_eq!(lines, ["  site        computers", "  paris       300", "  lyon-north  7"]);
    }
}
