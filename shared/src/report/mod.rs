//! Consolidated reports: the events a master publishes for them, the
//! reports themselves, and their formats.
//!
//! * [`events`]: what travels on `<ns>.events` (wire contract).
//! * [`kind`]: which reports there are, and their formats.
//! * [`model`]: the reports, built from per-site data.
//! * [`document`]: a report as tables and charts.
//! * [`render`]: JSON, CSV and HTML (charts as inline SVG, no external assets).

pub mod document;
pub mod events;
pub mod kind;
pub mod model;
pub mod render;

pub use kind::{Format, Kind};
pub use model::{build, Input, Report, SiteData};
