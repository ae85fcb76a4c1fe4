//! What a narrow broker user may not do, proven on the broker itself: a
//! confirmed publish, and an attempt on a fresh channel that must end in
//! `ACCESS_REFUSED` (403).

use lapin::{options::BasicPublishOptions, BasicProperties, Channel};
use rampart_shared::amqp::{close_channel, Broker};

/// Publishes one message with confirms; `Ok` only if the broker took it.
pub async fn publish(channel: &Channel, exchange: &str, key: &str) -> Result<(), lapin::Error> {
    channel.confirm_select(Default::default()).await?;
    let confirm = channel
        .basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), b"{}", BasicProperties::default())
        .await?;
    confirm.await.map(drop)
}

/// Whether `attempt` on a fresh channel of `broker` is refused with 403.
pub async fn refused<F, Fut, T>(broker: &Broker, what: &str, attempt: F)
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, lapin::Error>>,
{
    let channel = broker.channel().await.expect("a channel");
    let result = tokio::time::timeout(crate::WAIT, attempt(channel.clone())).await.expect("bounded");
    let error = match result {
        Ok(_) => panic!("{what}: the broker allowed it"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("ACCESS_REFUSED") || error.contains("403"), "{what}: {error}");
    let _ = close_channel(&channel, "done").await;
}
