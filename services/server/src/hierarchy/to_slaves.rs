//! Master side: the way to each slave, its command queue. Every command is
//! signed with that slave's command key and written to the outbox in the
//! caller's transaction, so it goes out exactly when the change that caused
//! it commits. Fan-out of policies and tasks ([`super::fanout`]),
//! removals ([`super::slaves`]) and replication's answers and requests
//! ([`crate::replication`]) all send through here.

use deadpool_postgres::GenericClient;
use rampart_shared::{hierarchy::MasterCommand, topology::Topology};

use crate::{outbox, state::AppState};

/// A command to `slave`, signed with its command key.
pub fn command(state: &AppState, slave: &str, command: &MasterCommand) -> outbox::Command {
    outbox::Command {
        exchange: state.site.topology.commands_exchange(),
        routing_key: Topology::slave_key(slave),
        envelope: command.to_envelope(&state.site.instance),
        signer: state.keyring.command_key_for(slave).map(outbox::Signer::Shared),
    }
}

/// Queues `cmd` to each of `slaves`.
pub async fn send<C: GenericClient>(
    tx: &C,
    state: &AppState,
    slaves: &[String],
    cmd: &MasterCommand,
) -> Result<(), tokio_postgres::Error> {
    let commands: Vec<_> = slaves.iter().map(|s| command(state, s, cmd)).collect();
    outbox::enqueue(tx, &commands).await
}
