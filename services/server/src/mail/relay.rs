//! The SMTP dialogue with the relay, one `lettre` step at a time so that an
//! error names the step: connect (and TLS for port 465), STARTTLS, AUTH,
//! MAIL FROM, each RCPT TO, DATA, the message. Nothing but the greeting and
//! EHLO is said before the connection is encrypted, unless the settings ask
//! for plain SMTP.

use std::{future::Future, time::Duration};

use lettre::transport::smtp::{
    authentication::{Credentials, Mechanism},
    client::{AsyncSmtpConnection, TlsParameters},
    commands::{Data, Mail as MailFrom, Rcpt},
    extension::ClientId,
    Error as SmtpError,
};

use super::{message::Outgoing, MailError, SmtpSettings, TlsMode};

/// How long to wait for the TCP connection to the relay.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long each step (a command and its answer, a handshake) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The name we give in `EHLO`.
const EHLO_NAME: &str = "rampart";
/// Offered in this order, as the relay supports them.
const AUTH_MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

/// Connects as `settings` say and hands `message` over.
pub(super) async fn deliver(
    settings: &SmtpSettings,
    tls: Option<TlsParameters>,
    message: &Outgoing,
) -> Result<(), MailError> {
    let address = format!("{}:{}", settings.host, settings.port);
    let hello = ClientId::Domain(EHLO_NAME.into());
    let implicit = tls.clone().filter(|_| settings.tls == TlsMode::Implicit);
    tracing::debug!(%address, tls = ?settings.tls, "Connecting to the mail server.");
    let connect = AsyncSmtpConnection::connect_tokio1(
        (settings.host.as_str(), settings.port),
        Some(CONNECT_TIMEOUT),
        &hello,
        implicit,
        None,
    );
    let mut connection = bounded("connect", CONNECT_TIMEOUT + STEP_TIMEOUT, connect)
        .await?
        .map_err(|e| MailError::opening(&address, "connect", e))?;

    if settings.tls == TlsMode::Starttls {
        if !connection.can_starttls() {
            quit(&mut connection).await;
            return Err(MailError::StarttlsUnavailable { address });
        }
        let parameters = tls.expect("TLS parameters for STARTTLS");
        bounded("STARTTLS", STEP_TIMEOUT, connection.starttls(parameters, &hello))
            .await?
            .map_err(|e| MailError::opening(&address, "STARTTLS", e))?;
    }

    let result = converse(&mut connection, settings, message).await;
    if matches!(result, Ok(()) | Err(MailError::Protocol { .. } | MailError::Authentication { .. })) {
        // The server is still talking to us: say goodbye, whatever it answers.
        quit(&mut connection).await;
    }
    result
}

/// From AUTH to the relay's acceptance of the message.
async fn converse(
    connection: &mut AsyncSmtpConnection,
    settings: &SmtpSettings,
    message: &Outgoing,
) -> Result<(), MailError> {
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        let credentials = Credentials::new(user.clone(), password.clone());
        bounded("AUTH", STEP_TIMEOUT, connection.auth(&AUTH_MECHANISMS, &credentials)).await?.map_err(|e| {
            match super::error::refusal(&e) {
                Some(reply) => MailError::Authentication { user: user.clone(), reply },
                None if e.is_client() => {
                    MailError::Authentication { user: user.clone(), reply: super::error::reason(&e) }
                }
                None => MailError::at_step("AUTH", e),
            }
        })?;
    }
    let from = MailFrom::new(message.envelope.from().cloned(), vec![]);
    step("MAIL FROM", connection.command(from)).await?;
    for to in message.envelope.to() {
        step("RCPT TO", connection.command(Rcpt::new(to.clone(), vec![]))).await.map_err(|e| match e {
            MailError::Protocol { step, reply } => {
                MailError::Protocol { step, reply: format!("{reply} (recipient <{to}>)") }
            }
            other => other,
        })?;
    }
    step("DATA", connection.command(Data)).await?;
    step("end of message", connection.message(&message.bytes)).await?;
    Ok(())
}

/// Runs one command within [`STEP_TIMEOUT`].
async fn step<T>(name: &'static str, work: impl Future<Output = Result<T, SmtpError>>) -> Result<T, MailError> {
    let result = bounded(name, STEP_TIMEOUT, work).await?;
    tracing::debug!(step = name, ok = result.is_ok(), "SMTP step.");
    result.map_err(|e| MailError::at_step(name, e))
}

async fn bounded<T>(name: &'static str, limit: Duration, work: impl Future<Output = T>) -> Result<T, MailError> {
    tokio::time::timeout(limit, work).await.map_err(|_| MailError::Timeout { step: name })
}

async fn quit(connection: &mut AsyncSmtpConnection) {
    let _ = bounded("QUIT", STEP_TIMEOUT, connection.quit()).await;
}
