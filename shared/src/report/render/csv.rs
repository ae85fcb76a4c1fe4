//! CSV (RFC 4180): every table of every section, in order.
//!
//! Each table opens with a comment line `# <section> / <table>`, then its
//! header row and its rows; one empty line separates two tables. Lines end
//! in CRLF. Charts are left out: their numbers are in the tables already.

use crate::report::document::{Document, Table};

const CRLF: &str = "\r\n";

/// The document's tables as CSV.
pub fn render(doc: &Document) -> String {
    let mut out = String::new();
    let tables = doc.sections.iter().flat_map(|s| s.tables.iter().map(move |t| (s, t)));
    for (i, (section, table)) in tables.enumerate() {
        if i > 0 {
            out.push_str(CRLF);
        }
        // The comment is a single line whatever the titles hold.
        let comment = format!("# {} / {}", section.title, table.title).replace(['\r', '\n'], " ");
        out.push_str(&comment);
        out.push_str(CRLF);
        write_table(&mut out, table);
    }
    out
}

fn write_table(out: &mut String, table: &Table) {
    write_record(out, &table.columns);
    for row in &table.rows {
        write_record(out, row);
    }
}

fn write_record(out: &mut String, fields: &[String]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote(field));
    }
    out.push_str(CRLF);
}

/// `field`, quoted when it holds a comma, a double quote, CR or LF.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::report::document::{Chart, Section};

    fn table(title: &str, columns: &[&str], rows: &[&[&str]]) -> Table {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| (*c).into()).collect(),
            rows: rows.iter().map(|r| r.iter().map(|c| (*c).into()).collect()).collect(),
        }
    }

    fn doc(sections: Vec<Section>) -> Document {
        Document {
            title: "Security status".into(),
            subtitle: "Made by hq".into(),
            generated_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
            sections,
        }
    }

    #[test]
    fn quotes_commas_quotes_and_newlines() {
        assert_eq!(quote("paris"), "paris");
        assert_eq!(quote("paris, france"), "\"paris, france\"");
        assert_eq!(quote("the \"main\" site"), "\"the \"\"main\"\" site\"");
        assert_eq!(quote("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(quote("cr\rhere"), "\"cr\rhere\"");
    }

    #[test]
    fn writes_comment_header_and_rows_with_crlf() {
        let d = doc(vec![Section {
            title: "Security status".into(),
            charts: vec![Chart::Bars { title: "not in csv".into(), color: "#000", bars: vec![("x".into(), 1)] }],
            tables: vec![table("Per site", &["site", "infected"], &[&["paris, fr", "12"], &["say \"hi\"\nlyon", "3"]])],
        }]);
        assert_eq!(
            render(&d),
            "# Security status / Per site\r\n\
             site,infected\r\n\
             \"paris, fr\",12\r\n\
             \"say \"\"hi\"\"\nlyon\",3\r\n"
        );
    }

    #[test]
    fn separates_tables_with_one_empty_line_across_sections() {
        let d = doc(vec![
            Section {
                title: "Malware".into(),
                charts: vec![],
                tables: vec![table("Top", &["malware"], &[&["eicar"]]), table("Empty", &["day", "n"], &[])],
            },
            Section { title: "Health".into(), charts: vec![], tables: vec![table("Slaves", &["slave"], &[&["s1"]])] },
        ]);
        assert_eq!(
            render(&d),
            "# Malware / Top\r\nmalware\r\neicar\r\n\
             \r\n\
             # Malware / Empty\r\nday,n\r\n\
             \r\n\
             # Health / Slaves\r\nslave\r\ns1\r\n"
        );
    }

    #[test]
    fn a_document_without_tables_is_empty() {
        assert_eq!(render(&doc(vec![])), "");
    }
}
