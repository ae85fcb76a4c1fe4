//! Printing answers: aligned tables, label/value blocks, and `--json`.
//!
//! Everything here builds a `String`; only [`emit`] touches stdout. That keeps
//! the rendering unit-testable, and lets a closed pipe (`rampartctl endpoints
//! list | head`) end the program quietly instead of panicking in `println!`.
//!
//! The value helpers ([`text`], [`time`], ...) read the server's JSON
//! leniently: a missing field prints as `-` rather than failing the command,
//! because a table with one blank cell is more useful than no table.

use std::io::{ErrorKind, Write};

use anyhow::Context;
use serde_json::Value;

/// Space between two table columns.
const GAP: &str = "  ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Align {
    Left,
    /// Counts read better right-aligned.
    Right,
}

/// A table with one header line, every column as wide as its widest cell.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self { headers: headers.to_vec(), align: vec![Align::Left; headers.len()], rows: Vec::new() }
    }

    /// Right-aligns the columns with these headers.
    pub fn numeric(mut self, headers: &[&str]) -> Self {
        for (header, align) in self.headers.iter().zip(self.align.iter_mut()) {
            if headers.contains(header) {
                *align = Align::Right;
            }
        }
        self
    }

    /// Adds a row. Control characters (a newline in a server message) become
    /// spaces so one row stays one line; missing cells are left blank.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells
            .into_iter()
            .map(|cell| cell.into().chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str(GAP);
                }
                let pad = " ".repeat(widths[i] - width(cell));
                match self.align[i] {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width of a cell: one column per `char` (good enough for the
/// hostnames, paths and messages a server sends).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// `Label:  value` lines with the values lined up.
pub fn details(pairs: &[(&str, String)]) -> String {
    let label_width = pairs.iter().map(|(label, _)| width(label) + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value) in pairs {
        let label = format!("{label}:");
        out.push_str(format!("{label:<label_width$}  {value}").trim_end());
        out.push('\n');
    }
    out
}

/// A titled block: a blank line, the title, then the body.
pub fn section(title: &str, body: &str) -> String {
    format!("\n{title}\n{body}")
}

/// A JSON value as a table cell: strings as is, `null` or missing as `-`,
/// booleans as `yes`/`no`, lists joined with commas.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(_) => value.to_string(),
    }
}

/// A count, 0 when the server left it out.
pub fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// An RFC 3339 timestamp in the operator's local time, to the second
/// (`2026-11-26 11:00:00`). Anything else is shown as the server sent it.
pub fn time(value: &Value) -> String {
    match value.as_str().map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(at)) => at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string(),
        _ => text(value),
    }
}

/// [`time`], or `never` when the server sent `null` (nothing happened yet).
pub fn time_or_never(value: &Value) -> String {
    if value.is_null() {
        "never".to_owned()
    } else {
        time(value)
    }
}

/// A switch (`true`/`false`) as `on`/`off`, `-` when the server left it out.
pub fn on_off(value: &Value) -> String {
    match value.as_bool() {
        Some(true) => "on".to_owned(),
        Some(false) => "off".to_owned(),
        None => "-".to_owned(),
    }
}

/// The server's own `message` as a line, when it sent one that is not blank.
pub fn message_line(answer: &Value) -> Option<String> {
    let message = answer["message"].as_str()?;
    (!message.trim().is_empty()).then(|| format!("{message}\n"))
}

/// `1 endpoint`, `2 endpoints`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The value as a JSON array, empty when it is anything else.
pub fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A JSON value of our own making, pretty-printed.
pub fn pretty_json(value: &Value) -> String {
    let mut out = serde_json::to_string_pretty(value).expect("a JSON value serializes");
    out.push('\n');
    out
}

/// Indents valid JSON text the way `serde_json`'s pretty printer does, but
/// keeps everything else as sent: key order, number spelling, escapes. (A
/// round trip through `serde_json::Value` would sort the keys.)
pub fn reindent_json(json: &str) -> String {
    fn newline(out: &mut String, depth: usize) {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    }
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            c if c.is_ascii_whitespace() => {}
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(char::is_ascii_whitespace) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out.push('\n');
    out
}

/// Writes to stdout. A reader that went away (closed pipe) is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other.context("Failed to write to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&["ID", "HOSTNAME", "STATUS"]);
        table.row(["sim1-00001", "pc-1", "protected"]);
        table.row(["x", "a-much-longer-name", "infected"]);
        assert_eq!(
            table.render(),
            "ID          HOSTNAME            STATUS\n\
             sim1-00001  pc-1                protected\n\
             x           a-much-longer-name  infected\n"
        );
    }

    #[test]
    fn numeric_columns_are_right_aligned_and_lines_have_no_trailing_space() {
        let mut table = Table::new(&["STATUS", "COUNT", "NOTE"]).numeric(&["COUNT"]);
        table.row(["protected", "470", ""]);
        table.row(["infected", "5", "look"]);
        assert_eq!(
            table.render(),
            "STATUS     COUNT  NOTE\n\
             protected    470\n\
             infected       5  look\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new(&["NAME", "X"]);
        table.row(["Zürich", "1"]);
        table.row(["Paris", "2"]);
        assert_eq!(table.render(), "NAME    X\nZürich  1\nParis   2\n");
    }

    #[test]
    fn control_characters_and_short_rows_do_not_break_the_layout() {
        let mut table = Table::new(&["A", "B", "C"]);
        table.row(["line1\nline2"]);
        assert_eq!(table.render(), "A            B  C\nline1 line2\n");
    }

    #[test]
    fn details_line_up_values() {
        let out = details(&[("Instance", "paris".into()), ("Role", "standalone".into()), ("Empty", String::new())]);
        assert_eq!(out, "Instance:  paris\nRole:      standalone\nEmpty:\n");
    }

    #[test]
    fn reindented_json_keeps_the_server_order() {
        let body = r#"{"id":"t1","name":"Scan, \"weekly\" {x}","progress":{"total":500,"percent":90},"results":[],"o":{},"n":[1, 2.50]}"#;
        let expected = "{\n  \"id\": \"t1\",\n  \"name\": \"Scan, \\\"weekly\\\" {x}\",\n  \"progress\": {\n    \"total\": 500,\n    \"percent\": 90\n  },\n  \"results\": [],\n  \"o\": {},\n  \"n\": [\n    1,\n    2.50\n  ]\n}\n";
        assert_eq!(reindent_json(body), expected);
        // Same layout as serde_json's pretty printer when the order agrees.
        let sorted = r#"{ "a": [ {"b": null}, true ], "c": "d" }"#;
        let value: Value = serde_json::from_str(sorted).unwrap();
        assert_eq!(reindent_json(sorted), pretty_json(&value));
    }

    #[test]
    fn json_values_as_cells() {
        assert_eq!(text(&json!(null)), "-");
        assert_eq!(text(&json!("")), "-");
        assert_eq!(text(&json!(true)), "yes");
        assert_eq!(text(&json!(42)), "42");
        assert_eq!(text(&json!(["a", 1])), "a, 1");
        assert_eq!(text(&json!({"x": 1})["missing"]), "-");
        assert_eq!(time(&json!("not a time")), "not a time");
        assert_eq!(time(&json!(null)), "-");
        assert_eq!(plural(1, "endpoint"), "1 endpoint");
        assert_eq!(plural(0, "endpoint"), "0 endpoints");
    }
}
