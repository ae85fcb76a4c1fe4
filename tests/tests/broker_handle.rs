//! The broker handle every server component shares: opening a new
//! connection wakes whoever waits on [`Broker::reconnected`], which is how a
//! consumer waiting out its back-off after an outage learns that another
//! component has already reached the broker again, instead of sleeping up
//! to its 10 s cap.

use std::time::Duration;

use rampart_shared::{amqp::Broker, Secret};
use rampart_tests::AMQP_URL;

/// Longest a wake may take once the connection is open.
const WAKE: Duration = Duration::from_secs(5);
/// How long a channel on the open connection is given to (wrongly) wake.
const NO_WAKE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_new_connection_wakes_whoever_waits_and_a_new_channel_does_not() {
    let broker = Broker::new(Secret::new(AMQP_URL.to_owned()), "rampart-tests broker handle");

    let first = broker.reconnected();
    tokio::pin!(first);
    first.as_mut().enable();
    let channel = broker.channel().await.expect("the machine's broker");
    tokio::time::timeout(WAKE, first).await.expect("opening the first connection wakes the waiter");

    // The connection is open: another channel on it is no reconnection.
    let again = broker.reconnected();
    tokio::pin!(again);
    again.as_mut().enable();
    let other = broker.channel().await.expect("a second channel");
    assert!(
        tokio::time::timeout(NO_WAKE, again.as_mut()).await.is_err(),
        "a channel on the open connection must not count as a reconnection"
    );

    // The connection lost (closed here as a broker restart closes it): the
    // next user reconnects, and the waiter wakes.
    broker.close().await;
    let _ = broker.channel().await.expect("the broker again");
    tokio::time::timeout(WAKE, again).await.expect("reconnecting wakes the waiter");
    drop((channel, other));
    broker.close().await;
}
