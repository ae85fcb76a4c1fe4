//! Renders a [`Report`] in a [`Format`].

mod csv;
mod html;
mod text;

use super::{Format, Report};

/// The report's bytes in `format`.
pub fn render(report: &Report, format: Format) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec_pretty(report).expect("reports serialize"),
        Format::Csv => csv::render(&report.document()).into_bytes(),
        Format::Html => html::render(&report.document()).into_bytes(),
        Format::Text => text::render(&report.document()).into_bytes(),
    }
}
