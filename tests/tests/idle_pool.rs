//! A server gives idle database connections back to PostgreSQL
//! (`<Database><IdleTimeout>`): after a burst of work that opened its whole
//! pool, its backends (counted in `pg_stat_activity` of its own database)
//! go down to what its steady work keeps in use, and it still serves.

use std::time::Duration;

use rampart_tests::{wait_for, ServerOptions, TestServer, PG_BASE};
use serde_json::json;

const POOL: usize = 4;

/// Backends connected to `database`, not counting the one counting them.
async fn backends(client: &tokio_postgres::Client, database: &str) -> i64 {
    let row = client
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&database])
        .await
        .expect("pg_stat_activity readable");
    row.get(0)
}

/// A server with `idle_timeout_s`, after a burst that checked its whole
/// pool out at once (a query on each connection) and handed it back; with
/// a connection that counts its backends and its database's name. The
/// counting connection lives in the maintenance database, so it is not one
/// of the server's.
async fn after_a_burst(idle_timeout_s: u64) -> (TestServer, tokio_postgres::Client, String) {
    let options =
        ServerOptions { pool_size: POOL, idle_timeout_s: Some(idle_timeout_s), ..ServerOptions::standalone() };
    let database = options.database.clone();
    let server = TestServer::spawn(options).await;
    let client = rampart_tests::connect_database(&format!("{PG_BASE}/postgres")).await;
    let held = futures_util::future::try_join_all((0..POOL).map(|_| server.state.pool.get()))
        .await
        .expect("the whole pool at once");
    for connection in &held {
        connection.query_one("SELECT 1", &[]).await.expect("a query on each connection");
    }
    drop(held);
    (server, client, database)
}

#[tokio::test]
async fn an_idle_pool_closes_its_connections_and_the_server_still_works() {
    let (server, client, database) = after_a_burst(2).await;
    assert!(backends(&client, &database).await >= POOL as i64, "the burst opened the whole pool");

    // Two seconds idle, swept every second: the connections the relay's
    // once-a-second poll does not keep in use are closed.
    let left = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let open = backends(&client, &database).await;
            if open <= 1 {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("idle connections closed within 20 s");
    assert!(left <= 1, "{left} backends left");
    assert!(server.state.pool.status().size <= 1, "{:?}", server.state.pool.status());

    // The server still works: a write and a read through the API open what
    // they need again.
    let (status, body) = server.post("/api/policies", json!({"name": "After the idle time"})).await;
    assert!(status.is_success(), "{status} {body}");
    wait_for("the new policy in the list", || async {
        let list = server.get_ok("/api/policies").await;
        list.to_string().contains("After the idle time").then_some(())
    })
    .await;

    server.stop(&[]).await;
}

#[tokio::test]
async fn a_pool_in_use_keeps_its_connections() {
    let (server, client, database) = after_a_burst(60).await;
    // Well within the timeout, a sweep closes nothing.
    assert_eq!(rampart_shared::db::idle::sweep(&server.state.pool, Duration::from_secs(60)), 0);
    assert!(backends(&client, &database).await >= POOL as i64);
    server.stop(&[]).await;
}
