//! Rows as the scenarios write them: computers in a slave's database, and
//! the same computers as a slave ships them (for the raw limits).

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

/// SQL that enrolls `$2` computers named `<$1>-<n>` (n from `$3`) in a slave's
/// database, as the agent inbox would: the change-capture triggers number
/// them for replication.
pub const INSERT_ENDPOINTS: &str = "
INSERT INTO endpoints (id, hostname, ip, os, agent_version, signatures_version, signatures_date,
                       realtime_protection, status, active_threats, licensed, last_seen)
SELECT format('%s-%s', $1::text, lpad(n::text, 6, '0')), format('pc-%s', n),
       ('10.' || (n / 65536) % 256 || '.' || (n / 256) % 256 || '.' || n % 256)::inet,
       (ARRAY['Windows 11', 'Windows 10', 'Ubuntu 24.04', 'macOS 15'])[1 + n % 4], '4.2.1',
       '2026.11.' || (1 + n % 25), current_date - (n % 9)::int, n % 50 <> 0,
       (ARRAY['protected', 'protected', 'protected', 'at_risk', 'infected', 'unprotected'])[1 + n % 6],
       CASE WHEN n % 6 = 4 THEN 1 ELSE 0 END, n % 10 <> 0, now()
  FROM generate_series($3::bigint, $3::bigint + $2::bigint - 1) AS n";

/// SQL that records `$2` detections on the computers `<$1>-<n>` (n below
/// `$3`), as the agent inbox would.
pub const INSERT_DETECTIONS: &str = "
INSERT INTO detections (detection_id, endpoint_id, malware, path, action, detected_at)
SELECT gen_random_uuid(), format('%s-%s', $1::text, lpad((n % $3::bigint)::text, 6, '0')),
       'Trojan.Generic.' || (n % 50), 'C:\\Users\\user\\Downloads\\file' || n || '.exe',
       (ARRAY['quarantined', 'deleted', 'blocked'])[1 + n % 3], now() - make_interval(mins => (n % 1440)::int)
  FROM generate_series(0, $2::bigint - 1) AS n";

/// The key and row of computer `n` of `site`, shaped as the slave ships an
/// `endpoints` row (every column but the change stamps).
pub fn endpoint(site: &str, n: u64) -> (Value, Value) {
    let id = format!("{site}-{n:06}");
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let statuses = ["protected", "protected", "protected", "at_risk", "infected", "unprotected"];
    let systems = ["Windows 11", "Windows 10", "Ubuntu 24.04", "macOS 15"];
    let row = json!({
        "id": id,
        "hostname": format!("pc-{n}"),
        "ip": format!("10.{}.{}.{}", (n / 65536) % 256, (n / 256) % 256, n % 256),
        "os": systems[(n % 4) as usize],
        "group_id": 1,
        "agent_version": "4.2.1",
        "signatures_version": format!("2026.11.{}", 1 + n % 25),
        "signatures_date": "2026-11-20",
        "realtime_protection": !n.is_multiple_of(50),
        "active_threats": u8::from(n % 6 == 4),
        "status": statuses[(n % 6) as usize],
        "licensed": !n.is_multiple_of(10),
        "last_seen": now,
        "enrolled_at": now,
        "policy_id": null,
        "policy_version": null,
        "applied_policy_id": null,
        "applied_policy_version": null,
    });
    (json!({ "id": id }), row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rows_carry_their_key() {
        let (key, row) = endpoint("paris", 42);
        assert_eq!(key, json!({"id": "paris-000042"}));
        assert_eq!(row["id"], "paris-000042");
        assert_eq!(row["ip"], "10.0.0.42");
        assert_eq!(row["status"], "protected");
    }
}
