//! Consolidated reports: the events a master publishes for them, the
//! reports themselves, and their formats.
//!
//! * [`events`]: what travels on `<ns>.events` (wire contract).
//! * [`model`]: the reports, built from per-site data.
//! * [`document`]: a report as tables and charts.
//! * [`render`]: JSON, CSV and HTML (charts as inline SVG, no external assets).

pub mod document;
pub mod events;
pub mod model;
pub mod render;

pub use model::{build, Format, Input, Kind, Report, SiteData};
