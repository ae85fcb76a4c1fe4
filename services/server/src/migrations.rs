//! The server's schema migrations, applied in order at start.

use rampart_shared::db::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "site",
    sql: include_str!("../migrations/0001_site.sql"),
}];
