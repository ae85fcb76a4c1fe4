//! The broker's management API client against a private RabbitMQ node with
//! the management plugin: users, permissions and topic permissions round
//! trip, a user's connections are listed and closed, and a wrong password
//! or an unreachable URL fail with an error that says so.

use std::time::Duration;

use rampart_shared::{
    amqp::Broker,
    broker_admin::{grants::url_with_user, AdminError, ManagementClient, Permissions, TopicPermissions},
    Secret,
};
use rampart_tests::{
    faults::{broker::PrivateBroker, free_port, take_turn},
    wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_permissions_and_connections_round_trip() {
    let _turn = take_turn().await;
    let broker = PrivateBroker::start_with_management().await;
    let admin = broker.management();

    // A fresh node reports its running plugins after its first statistics round.
    let overview = wait_for("the plugins listed", || async {
        let overview = admin.overview().await.expect("overview");
        overview.plugins.iter().any(|p| p == "rabbitmq_management").then_some(overview)
    })
    .await;
    assert!(!overview.rabbitmq_version.is_empty());
    assert!(admin.vhost_exists("/").await.unwrap());
    assert!(!admin.vhost_exists("no-such-vhost").await.unwrap());
    assert!(admin.whoami().await.unwrap().has_tag("administrator"));

    let user = admin.create_user("rt.roundtrip", &["monitoring"]).await.expect("create user");
    assert_eq!(admin.user("rt.roundtrip").await.unwrap().tags, ["monitoring"]);
    let refused = admin.create_user("rt.forger", &["impersonator"]).await.unwrap_err();
    assert!(matches!(refused, AdminError::Invalid(_)), "{refused}");

    let permissions =
        Permissions { configure: r"^rt\.q$".into(), write: r"^rt\.(x|q)$".into(), read: r"^rt\.q$".into() };
    admin.set_permissions("/", "rt.roundtrip", &permissions).await.expect("set permissions");
    assert_eq!(admin.permissions("/", "rt.roundtrip").await.unwrap(), permissions);
    let topic = TopicPermissions { exchange: "rt.x".into(), write: r"^site\.a\.".into(), read: "^$".into() };
    admin.set_topic_permissions("/", "rt.roundtrip", &topic).await.expect("set topic permissions");
    assert_eq!(admin.topic_permissions("/", "rt.roundtrip").await.unwrap(), [topic]);
    admin.clear_topic_permissions("/", "rt.roundtrip").await.unwrap();
    assert!(admin.topic_permissions("/", "rt.roundtrip").await.unwrap().is_empty());

    // The user connects with its generated password; the broker lists the
    // connection, and closing it from the API ends it.
    let client = Broker::connect(Secret::new(url_with_user(&broker.url(), &user).unwrap()), "rt roundtrip")
        .await
        .expect("the new user connects");
    let listed = wait_for("the connection listed", || async {
        let found = admin.connections_of("rt.roundtrip").await.unwrap();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(listed[0].client_name(), Some("rt roundtrip"));
    assert_eq!(admin.close_connections_of("rt.roundtrip", "revoked by the test").await.unwrap(), 1);
    wait_for("the connection closed", || async {
        admin.connections_of("rt.roundtrip").await.unwrap().is_empty().then_some(())
    })
    .await;
    client.close().await;

    admin.delete_user("rt.roundtrip").await.expect("delete user");
    assert!(admin.user("rt.roundtrip").await.unwrap_err().is_not_found());
    admin.delete_user("rt.roundtrip").await.expect("deleting a deleted user is not an error");
    let stale = Broker::new(Secret::new(url_with_user(&broker.url(), &user).unwrap()), "rt stale");
    assert!(stale.channel().await.is_err(), "a deleted user cannot connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unreachable_url_say_so() {
    let _turn = take_turn().await;
    let broker = PrivateBroker::start_with_management().await;

    let wrong = ManagementClient::new(&broker.management_url(), "guest", Secret::new("not-the-password".into()))
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let error = wrong.overview().await.unwrap_err();
    assert!(matches!(error, AdminError::Unauthorized { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("refused the credentials of 'guest'") && text.contains(&broker.management_url()), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let unreachable = ManagementClient::new(&nowhere, "guest", Secret::new("guest".into()))
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let error = unreachable.create_user("rt.nobody", &[]).await.unwrap_err();
    assert!(matches!(error, AdminError::Unreachable { .. } | AdminError::Timeout { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&nowhere) && text.contains("create user"), "{text}");
}
