//! The lines of the results table and how their numbers are written.

use serde::Serialize;

use crate::stats::Percentiles;

pub const MB: f64 = 1024.0 * 1024.0;

/// One line of the table.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub figure: String,
    pub measured: String,
    pub limit: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub met: Option<bool>,
}

pub fn figure(
    name: impl Into<String>,
    measured: impl Into<String>,
    limit: impl Into<String>,
    ratio: Option<f64>,
    target: impl Into<String>,
    met: Option<bool>,
) -> Figure {
    Figure { figure: name.into(), measured: measured.into(), limit: limit.into(), ratio, target: target.into(), met }
}

pub fn rate(v: f64, unit: &str) -> String {
    format!("{} {unit}/s", thousands(v.round() as u64))
}

pub fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ms(p: &Percentiles) -> String {
    format!("p50 {:.1} ms, p99 {:.1} ms", p.p50_ms, p.p99_ms)
}

pub fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / MB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(5_400_000), "5,400,000");
        assert_eq!(rate(31234.6, "rows"), "31,235 rows/s");
    }
}
