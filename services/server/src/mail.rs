//! Sending reports by e-mail: a minimal SMTP client for one message with at
//! most one attachment, sent through the operator's relay.
//!
//! There is no TLS library in this build, so mail goes out in plain text:
//! fine for a relay on a trusted network, and refused (never silently
//! downgraded) when the settings ask for STARTTLS. The message itself is
//! built in [`message`].

mod message;

use std::{fmt, io, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// How long to wait for the TCP connection to the relay.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long each command, or the greeting, may take to be answered.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The name we give in `EHLO`.
const EHLO_NAME: &str = "rampart";
/// Longest reply line we read (RFC 5321 allows 512 octets).
const MAX_REPLY_LINE: u64 = 4096;

/// Where and how to hand mail over: the operator's SMTP relay.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// With `password`, enables `AUTH PLAIN`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Requires STARTTLS, which this build cannot do: sending then fails
    /// with [`MailError::TlsUnavailable`] rather than going out in clear.
    pub starttls: bool,
}

/// Hides the password from logs and panics.
impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("starttls", &self.starttls)
            .finish()
    }
}

/// One e-mail: plain bare addresses (`ops@example.com`), a UTF-8 text body.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub attachment: Option<Attachment>,
}

/// A file sent with the mail, such as a rendered report.
#[derive(Clone)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `application/pdf`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Shows the size, not the bytes.
impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot connect to the mail server at {address}: {source}")]
    Connect { address: String, source: io::Error },
    /// The server's answer was not the one expected at `step`.
    #[error("the mail server refused {step}: {reply}")]
    Protocol { step: &'static str, reply: String },
    #[error("the connection to the mail server failed: {0}")]
    Io(#[from] io::Error),
    #[error("the mail server did not answer {step} within the time limit")]
    Timeout { step: &'static str },
    #[error(
        "STARTTLS is requested in the e-mail settings but this build sends mail without TLS; \
         set starttls to false for a relay on a trusted network"
    )]
    TlsUnavailable,
    /// An address that would break the SMTP dialogue or the headers.
    #[error("{address:?} is not a usable e-mail address (no spaces, line breaks or angle brackets)")]
    InvalidAddress { address: String },
    #[error("the e-mail has no recipients")]
    NoRecipients,
}

/// Sends `mail` through the relay in `settings`.
pub async fn send(settings: &SmtpSettings, mail: &Mail) -> Result<(), MailError> {
    check_addresses(mail)?;
    let payload = message::build(mail);
    let mut session = Session::connect(settings).await?;
    let result = deliver(&mut session, settings, mail, &payload).await;
    if matches!(result, Ok(()) | Err(MailError::Protocol { .. } | MailError::TlsUnavailable)) {
        // The server is still talking to us: say goodbye, whatever it answers.
        let _ = session.command("QUIT", "QUIT", 221).await;
    }
    result?;
    tracing::info!(recipients = mail.to.len(), subject = %mail.subject, "E-mail sent.");
    Ok(())
}

/// The dialogue from the greeting to the server's acceptance of the message.
async fn deliver(session: &mut Session, settings: &SmtpSettings, mail: &Mail, payload: &str) -> Result<(), MailError> {
    session.expect("greeting", 220).await?;
    let ehlo = session.command("EHLO", &format!("EHLO {EHLO_NAME}"), 250).await?;
    if settings.starttls {
        tracing::debug!(advertised = ehlo.advertises("STARTTLS"), "STARTTLS requested but unavailable in this build.");
        return Err(MailError::TlsUnavailable);
    }
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        let token = STANDARD.encode(format!("\0{user}\0{password}"));
        session.command("AUTH PLAIN", &format!("AUTH PLAIN {token}"), 235).await?;
    }
    session.command("MAIL FROM", &format!("MAIL FROM:<{}>", mail.from), 250).await?;
    for to in &mail.to {
        session.command("RCPT TO", &format!("RCPT TO:<{to}>"), 250).await.map_err(|e| match e {
            MailError::Protocol { step, reply } => {
                MailError::Protocol { step, reply: format!("{reply} (recipient <{to}>)") }
            }
            other => other,
        })?;
    }
    session.command("DATA", "DATA", 354).await?;
    session.write("message", &message::dot_stuff(payload)).await?;
    session.command("end of message", ".", 250).await?;
    Ok(())
}

/// Refuses addresses that could smuggle SMTP commands or headers.
fn check_addresses(mail: &Mail) -> Result<(), MailError> {
    if mail.to.is_empty() {
        return Err(MailError::NoRecipients);
    }
    for address in std::iter::once(&mail.from).chain(&mail.to) {
        let unusable =
            address.is_empty() || address.chars().any(|c| c.is_control() || c.is_whitespace() || "<>,".contains(c));
        if unusable {
            return Err(MailError::InvalidAddress { address: address.clone() });
        }
    }
    Ok(())
}

/// One SMTP connection.
struct Session {
    /// Buffered for reading replies; writes pass straight through.
    stream: BufReader<TcpStream>,
}

impl Session {
    async fn connect(settings: &SmtpSettings) -> Result<Self, MailError> {
        let address = format!("{}:{}", settings.host, settings.port);
        tracing::debug!(%address, "Connecting to the mail server.");
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((settings.host.as_str(), settings.port)))
            .await
            .map_err(|_| MailError::Timeout { step: "connect" })?
            .map_err(|source| MailError::Connect { address, source })?;
        Ok(Self { stream: BufReader::new(stream) })
    }

    /// Sends `line` (never logged: it may hold credentials) and expects `code`.
    async fn command(&mut self, step: &'static str, line: &str, code: u16) -> Result<Reply, MailError> {
        self.write(step, &format!("{line}\r\n")).await?;
        self.expect(step, code).await
    }

    async fn write(&mut self, step: &'static str, data: &str) -> Result<(), MailError> {
        let stream = &mut self.stream;
        bounded(step, async move {
            stream.write_all(data.as_bytes()).await?;
            stream.flush().await
        })
        .await
    }

    async fn expect(&mut self, step: &'static str, code: u16) -> Result<Reply, MailError> {
        let reply = bounded(step, read_reply(&mut self.stream)).await?;
        tracing::debug!(step, code = reply.code, "SMTP reply.");
        if reply.code == code {
            Ok(reply)
        } else {
            Err(MailError::Protocol { step, reply: reply.to_string() })
        }
    }
}

/// Runs one step within [`STEP_TIMEOUT`].
async fn bounded<T>(
    step: &'static str,
    work: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, MailError> {
    match tokio::time::timeout(STEP_TIMEOUT, work).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(MailError::Timeout { step }),
    }
}

/// A server reply: its code and the text of each line.
#[derive(Debug, PartialEq)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// Whether an EHLO reply lists the extension `keyword`.
    fn advertises(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|l| l.split_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case(keyword)))
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// Reads one reply, following `250-` continuation lines to the `250 ` one.
async fn read_reply<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Reply> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if (&mut *reader).take(MAX_REPLY_LINE).read_line(&mut line).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the mail server closed the connection"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let malformed = || io::Error::new(io::ErrorKind::InvalidData, format!("malformed SMTP reply line {line:?}"));
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(malformed)?;
        let (more, text) = match line.as_bytes().get(3) {
            None => (false, ""),
            Some(b' ') => (false, &line[4..]),
            Some(b'-') => (true, &line[4..]),
            Some(_) => return Err(malformed()),
        };
        lines.push(text.to_owned());
        if !more {
            return Ok(Reply { code, lines });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(input: &str) -> io::Result<Reply> {
        read_reply(&mut input.as_bytes()).await
    }

    #[tokio::test]
    async fn reads_multiline_replies() {
        let reply =
            parse("250-mx.example.com hello\r\n250-SIZE 1000\r\n250-starttls\r\n250 AUTH PLAIN\r\n221 next\r\n")
                .await
                .unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.example.com hello", "SIZE 1000", "starttls", "AUTH PLAIN"]);
        assert!(reply.advertises("STARTTLS"));
        assert!(reply.advertises("AUTH"));
        assert!(!reply.advertises("8BITMIME"));
    }

    #[tokio::test]
    async fn reads_single_and_bare_replies() {
        assert_eq!(parse("220 ready\r\n").await.unwrap(), Reply { code: 220, lines: vec!["ready".into()] });
        assert_eq!(parse("354\r\n").await.unwrap(), Reply { code: 354, lines: vec![String::new()] });
        assert_eq!(parse("550 no such user\n").await.unwrap().to_string(), "550 no such user");
    }

    #[tokio::test]
    async fn rejects_malformed_and_truncated_replies() {
        assert_eq!(parse("hello\r\n").await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse("250x\r\n").await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(parse("250-first\r\n").await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    fn mail(from: &str, to: &[&str]) -> Mail {
        Mail {
            from: from.into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            subject: "s".into(),
            text: "t".into(),
            attachment: None,
        }
    }

    #[test]
    fn refuses_addresses_that_would_inject_commands() {
        assert!(check_addresses(&mail("a@x", &["b@y", "c@z"])).is_ok());
        assert!(matches!(check_addresses(&mail("a@x", &[])), Err(MailError::NoRecipients)));
        for bad in ["b@y>\r\nRCPT TO:<evil@z", "b@y, c@z", "", "<b@y>"] {
            assert!(matches!(check_addresses(&mail("a@x", &[bad])), Err(MailError::InvalidAddress { .. })), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let settings = SmtpSettings {
            host: "relay".into(),
            port: 25,
            username: Some("u".into()),
            password: Some("hunter2".into()),
            starttls: false,
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
