//! The server's schema migrations, applied in order at start.

use rampart_shared::db::Migration;

/// Extensions the migrations use. PostgreSQL keeps an extension once per
/// database: an instance in a schema of a shared database (`<Database>
/// <Schema>`) has them made in `public` first, where every schema finds
/// them (0017's `CREATE EXTENSION IF NOT EXISTS` then finds it made).
pub const EXTENSIONS: &[&str] = &["pg_trgm"];

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "site", sql: include_str!("../migrations/0001_site.sql") },
    Migration { version: 2, name: "hierarchy", sql: include_str!("../migrations/0002_hierarchy.sql") },
    Migration { version: 3, name: "changes", sql: include_str!("../migrations/0003_changes.sql") },
    Migration { version: 4, name: "replication", sql: include_str!("../migrations/0004_replication.sql") },
    Migration { version: 5, name: "reports", sql: include_str!("../migrations/0005_reports.sql") },
    Migration { version: 6, name: "report_due", sql: include_str!("../migrations/0006_report_due.sql") },
    Migration { version: 7, name: "refused_messages", sql: include_str!("../migrations/0007_refused_messages.sql") },
    Migration { version: 8, name: "heartbeat_order", sql: include_str!("../migrations/0008_heartbeat_order.sql") },
    Migration { version: 9, name: "operators", sql: include_str!("../migrations/0009_operators.sql") },
    Migration { version: 10, name: "api_certificate", sql: include_str!("../migrations/0010_api_certificate.sql") },
    Migration { version: 11, name: "site_key", sql: include_str!("../migrations/0011_site_key.sql") },
    Migration { version: 12, name: "agent_identities", sql: include_str!("../migrations/0012_agent_identities.sql") },
    Migration { version: 13, name: "site_brokers", sql: include_str!("../migrations/0013_site_brokers.sql") },
    Migration { version: 14, name: "console", sql: include_str!("../migrations/0014_console.sql") },
    Migration {
        version: 17,
        name: "replica_endpoint_indexes",
        sql: include_str!("../migrations/0017_replica_endpoint_indexes.sql"),
    },
    Migration { version: 18, name: "departure_link", sql: include_str!("../migrations/0018_departure_link.sql") },
    Migration { version: 19, name: "seat_counts", sql: include_str!("../migrations/0019_seat_counts.sql") },
    Migration {
        version: 20,
        name: "seat_counts_emptied",
        sql: include_str!("../migrations/0020_seat_counts_emptied.sql"),
    },
];
