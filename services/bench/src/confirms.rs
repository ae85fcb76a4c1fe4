//! How the raw limits publish: persistent messages, and a publisher
//! confirm that counts only as a plain ack (a returned or nacked message is
//! an error, not a measurement).

use lapin::{BasicProperties, Confirmation, PublisherConfirm};
use rampart_shared::amqp::bounded;

/// Properties of a persistent message.
pub(crate) fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Waits for a confirm; anything but a plain ack is an error.
pub(crate) async fn confirmed(confirm: PublisherConfirm) -> anyhow::Result<()> {
    match bounded("publisher confirm", confirm).await? {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => {
            anyhow::bail!("The raw limits queue is gone: the broker returned a message.")
        }
        Confirmation::Nack(_) => anyhow::bail!("The broker refused (nacked) a raw limits message."),
        Confirmation::NotRequested => {
            anyhow::bail!("Publisher confirms are off on the raw limits channel.")
        }
    }
}
