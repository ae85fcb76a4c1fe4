//! The report service's schema migrations, applied in order at start.

use rampart_shared::db::Migration;

pub const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "read model", sql: include_str!("../migrations/0001_read_model.sql") }];
