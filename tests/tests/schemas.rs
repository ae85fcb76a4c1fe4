//! Servers in schemas of one shared database (`<Database><Schema>`): each
//! keeps its own tables, change capture and migrations in its schema, and
//! sees nothing of the others'.

use rampart_tests::{ServerOptions, TestServer, PG_BASE};
use serde_json::{json, Value};

fn in_schema(database: &str, instance: &str, schema: &str) -> ServerOptions {
    ServerOptions {
        instance: instance.into(),
        database: database.into(),
        schema: Some(schema.into()),
        ..ServerOptions::standalone()
    }
}

fn names(list: &Value) -> Vec<String> {
    let items = list.get("items").unwrap_or(list);
    items.as_array().unwrap_or(&Vec::new()).iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn two_servers_in_two_schemas_of_one_database_see_only_their_own_data() {
    let database = format!("rt_{}", uuid::Uuid::new_v4().simple());
    // Started together: both create the shared extension and their schema
    // at the same moment.
    let (a, b) = tokio::join!(
        TestServer::spawn(in_schema(&database, "site-a", "site_a")),
        TestServer::spawn(in_schema(&database, "site-b", "site_b")),
    );

    let (status, body) = a.post("/api/policies", json!({"name": "Only in A"})).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = a.post("/api/groups", json!({"name": "Group of A"})).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = b.post("/api/policies", json!({"name": "Only in B"})).await;
    assert!(status.is_success(), "{status} {body}");

    let policies_a = names(&a.get_ok("/api/policies").await);
    let policies_b = names(&b.get_ok("/api/policies").await);
    assert!(policies_a.contains(&"Only in A".into()) && !policies_a.contains(&"Only in B".into()), "{policies_a:?}");
    assert!(policies_b.contains(&"Only in B".into()) && !policies_b.contains(&"Only in A".into()), "{policies_b:?}");
    let groups_b = names(&b.get_ok("/api/groups").await);
    assert!(!groups_b.contains(&"Group of A".into()), "{groups_b:?}");
    assert!(names(&a.get_ok("/api/groups").await).contains(&"Group of A".into()));

    // In the database: each schema has its migrations, its change capture
    // and its policies; public has no table of either, only the extension.
    let url = format!("{PG_BASE}/{database}");
    let client = rampart_tests::connect_database(&url).await;
    let one = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap() }
    };
    let row = one(
        "SELECT (SELECT max(version) FROM site_a.schema_migrations), (SELECT max(version) FROM site_b.schema_migrations)",
    )
    .await;
    let (va, vb): (i32, i32) = (row.get(0), row.get(1));
    assert!(va >= 18 && va == vb, "both schemas migrated: {va} {vb}");
    let row = one(
        "SELECT string_agg(n.nspname, ',' ORDER BY n.nspname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE p.proname = 'stamp_change'",
    )
    .await;
    assert_eq!(row.get::<_, String>(0), "site_a,site_b", "the change capture is made in each schema");
    let row = one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").await;
    assert_eq!(row.get::<_, i64>(0), 0, "no table in public");
    let row = one("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'").await;
    assert_eq!(row.get::<_, String>(0), "public");
    let row = one("SELECT (SELECT count(*) FROM site_a.policies WHERE name = 'Only in B'), \
                (SELECT count(*) FROM site_b.policies WHERE name = 'Only in B')")
    .await;
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 1));
    drop(client);

    // Stopping one drops its schema only; the other still works.
    a.stop(&[]).await;
    let (status, body) = b.post("/api/policies", json!({"name": "B after A went"})).await;
    assert!(status.is_success(), "{status} {body}");
    b.stop(&[]).await;
    let client = rampart_tests::connect_database(&url).await;
    let row =
        client.query_one("SELECT count(*) FROM pg_namespace WHERE nspname IN ('site_a', 'site_b')", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
    drop(client);
    rampart_shared::db::drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn a_schema_server_refuses_a_database_that_holds_a_plain_instance() {
    let plain = TestServer::spawn(ServerOptions::standalone()).await;
    let options = in_schema(&plain.options.database, "site-c", "site_c");
    let err = match rampart_server::startup::Application::build(options.settings()).await {
        Ok(_) => panic!("a schema server started beside a plain instance's tables"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("<Database>/<Schema>") && err.contains("public schema holds an instance"), "{err}");
    plain.stop(&[]).await;
}
