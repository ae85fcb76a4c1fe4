//! An in-process SMTP server that keeps what it receives, for tests of the
//! e-mail a server sends. It speaks just enough SMTP for a client: EHLO,
//! STARTTLS, AUTH PLAIN (any credentials), MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT; over TLS (after STARTTLS, or from the first byte) with a
//! certificate from a [`ca::TestCa`]. It records every command with whether
//! it came encrypted, so a test can tell that nothing went out in clear.

pub mod ca;
mod received;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;

/// How the sink behaves.
#[derive(Clone, Default)]
pub struct Options {
    /// Lists STARTTLS in the EHLO reply even without `tls`, when the
    /// command itself is then refused.
    pub advertise_starttls: bool,
    /// A recipient answered with `550`.
    pub reject_rcpt: Option<String>,
    /// Serves TLS with this certificate: after STARTTLS (then advertised),
    /// or from the first byte with `implicit_tls`.
    pub tls: Option<TlsAcceptor>,
    /// TLS from the first byte, as on port 465 (needs `tls`).
    pub implicit_tls: bool,
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The raw message after DATA, dot-unstuffed, CRLF line ends kept.
    pub data: String,
    /// The user name given with AUTH PLAIN, if the client authenticated.
    pub auth_user: Option<String>,
    /// Whether the message came over TLS.
    pub tls: bool,
}

/// A command as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenCommand {
    /// The verb in capitals: `EHLO`, `MAIL`, ...
    pub verb: String,
    /// Whether it came over TLS.
    pub tls: bool,
}

/// A running sink; it stops when dropped.
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
    commands: Arc<Mutex<Vec<SeenCommand>>>,
    /// Mails in arrival order, for [`SmtpSink::wait_for_mail`].
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<ReceivedMail>>,
    accept: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// A sink on 127.0.0.1 without TLS that does not advertise STARTTLS.
    pub async fn start() -> SmtpSink {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("SMTP sink binds");
        let port = listener.local_addr().expect("SMTP sink address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let (store, log) = (received.clone(), commands.clone());
        let accept = tokio::spawn(async move {
            // Dropped with the accept task, which aborts every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let session = Session {
                    options: options.clone(),
                    store: store.clone(),
                    commands: log.clone(),
                    arrivals: tx.clone(),
                };
                connections.spawn(session.serve(stream));
            }
        });
        SmtpSink { port, received, commands, arrivals: tokio::sync::Mutex::new(rx), accept }
    }

    /// The next mail not yet returned by this method, in arrival order.
    pub async fn wait_for_mail(&self, timeout: Duration) -> ReceivedMail {
        let mut arrivals = self.arrivals.lock().await;
        match tokio::time::timeout(timeout, arrivals.recv()).await {
            Ok(Some(mail)) => mail,
            Ok(None) => panic!("the SMTP sink on port {} stopped", self.port),
            Err(_) => panic!("no e-mail reached the SMTP sink on port {} within {timeout:?}", self.port),
        }
    }

    /// Every mail received so far.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.received.lock().unwrap().clone()
    }

    /// Every command received so far, on every connection.
    pub fn commands(&self) -> Vec<SeenCommand> {
        self.commands.lock().unwrap().clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A connection, in clear or over TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a dialogue on one stream ended.
enum Ended {
    Closed,
    /// The client asked for STARTTLS and was told to go ahead.
    StartTls,
}

/// One client connection.
struct Session {
    options: Options,
    store: Arc<Mutex<Vec<ReceivedMail>>>,
    commands: Arc<Mutex<Vec<SeenCommand>>>,
    arrivals: mpsc::UnboundedSender<ReceivedMail>,
}

impl Session {
    async fn serve(self, tcp: TcpStream) {
        let _ = self.serve_stream(tcp).await;
    }

    async fn serve_stream(&self, tcp: TcpStream) -> std::io::Result<()> {
        let (mut stream, mut tls): (Box<dyn Io>, bool) = match &self.options.tls {
            Some(acceptor) if self.options.implicit_tls => (Box::new(acceptor.accept(tcp).await?), true),
            _ => (Box::new(tcp), false),
        };
        stream.write_all(b"220 sink.rampart.test ESMTP ready\r\n").await?;
        stream.flush().await?;
        loop {
            let mut reader = BufReader::new(stream);
            match self.converse(&mut reader, tls).await? {
                Ended::Closed => return Ok(()),
                Ended::StartTls => {
                    let acceptor = self.options.tls.as_ref().expect("STARTTLS is accepted only with TLS");
                    stream = Box::new(acceptor.accept(reader.into_inner()).await?);
                    tls = true;
                }
            }
        }
    }

    fn can_starttls(&self, tls: bool) -> bool {
        !tls && self.options.tls.is_some() && !self.options.implicit_tls
    }

    /// The dialogue on one stream; it starts afresh after STARTTLS.
    async fn converse<S: Io>(&self, stream: &mut BufReader<S>, tls: bool) -> std::io::Result<Ended> {
        let mut envelope: Option<(String, Vec<String>)> = None;
        let mut auth_user = None;
        loop {
            let Some(line) = read_line(stream).await? else { return Ok(Ended::Closed) };
            let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
            let verb = verb.to_ascii_uppercase();
            self.commands.lock().unwrap().push(SeenCommand { verb: verb.clone(), tls });
            let reply = match verb.as_str() {
                "EHLO" => {
                    let advertise = self.options.advertise_starttls || self.can_starttls(tls);
                    let starttls = if advertise && !tls { "250-STARTTLS\r\n" } else { "" };
                    format!("250-sink.rampart.test hello {arg}\r\n250-8BITMIME\r\n{starttls}250 AUTH PLAIN\r\n")
                }
                "HELO" => "250 sink.rampart.test\r\n".into(),
                "AUTH" => {
                    let token = match arg.split_once(' ') {
                        Some((_, token)) => token.to_owned(),
                        None => {
                            say(stream, b"334 \r\n").await?;
                            read_line(stream).await?.unwrap_or_default()
                        }
                    };
                    auth_user = plain_user(&token);
                    if auth_user.is_some() { "235 2.7.0 accepted\r\n" } else { "501 bad AUTH PLAIN token\r\n" }.into()
                }
                "MAIL" => {
                    envelope = Some((path(arg), Vec::new()));
                    "250 ok\r\n".into()
                }
                "RCPT" => match &mut envelope {
                    None => "503 MAIL first\r\n".into(),
                    Some((_, to)) => {
                        let rcpt = path(arg);
                        if self.options.reject_rcpt.as_deref() == Some(rcpt.as_str()) {
                            format!("550 5.1.1 <{rcpt}>: no such user\r\n")
                        } else {
                            to.push(rcpt);
                            "250 ok\r\n".into()
                        }
                    }
                },
                "DATA" => match envelope.take() {
                    Some((from, to)) if !to.is_empty() => {
                        say(stream, b"354 end with <CRLF>.<CRLF>\r\n").await?;
                        let data = read_data(stream).await?;
                        let mail = ReceivedMail { from, to, data, auth_user: auth_user.clone(), tls };
                        self.store.lock().unwrap().push(mail.clone());
                        let _ = self.arrivals.send(mail);
                        "250 queued\r\n".into()
                    }
                    _ => "503 no valid recipients\r\n".into(),
                },
                "RSET" => {
                    envelope = None;
                    "250 ok\r\n".into()
                }
                "NOOP" => "250 ok\r\n".into(),
                "STARTTLS" if self.can_starttls(tls) => {
                    say(stream, b"220 2.0.0 ready to start TLS\r\n").await?;
                    return Ok(Ended::StartTls);
                }
                "STARTTLS" => "454 TLS not available in this sink\r\n".into(),
                "QUIT" => {
                    say(stream, b"221 bye\r\n").await?;
                    return Ok(Ended::Closed);
                }
                _ => "502 command not implemented\r\n".into(),
            };
            say(stream, reply.as_bytes()).await?;
        }
    }
}

/// Writes `text` and flushes it through TLS, if any.
async fn say<S: Io>(stream: &mut BufReader<S>, text: &[u8]) -> std::io::Result<()> {
    stream.write_all(text).await?;
    stream.flush().await
}

/// One line without its line end; `None` at the end of the stream.
async fn read_line<R: AsyncBufRead + Unpin>(stream: &mut R) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The message up to the lone `.` line, with leading dots unstuffed.
async fn read_data<R: AsyncBufRead + Unpin>(stream: &mut R) -> std::io::Result<String> {
    let mut data = String::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" {
            return Ok(data);
        }
        data += line.strip_prefix('.').unwrap_or(&line);
    }
}

/// The address in `FROM:<a@b>` or `TO:<a@b> SIZE=1`.
fn path(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_owned()
}

/// The user name in an AUTH PLAIN token (`authzid\0user\0password`).
fn plain_user(token: &str) -> Option<String> {
    let decoded = String::from_utf8(STANDARD.decode(token.trim()).ok()?).ok()?;
    let mut fields = decoded.split('\0');
    let (_authzid, user, _password) = (fields.next()?, fields.next()?, fields.next()?);
    Some(user.to_owned())
}
