//! An in-process SMTP server that keeps what it receives, for tests of the
//! e-mail a server sends. It speaks just enough SMTP for a client: EHLO,
//! AUTH PLAIN (any credentials), MAIL, RCPT, DATA, RSET, NOOP, QUIT. It has
//! no TLS: it can advertise STARTTLS, but refuses the command itself.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinSet,
};

/// How the sink behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Lists STARTTLS in the EHLO reply.
    pub advertise_starttls: bool,
    /// A recipient answered with `550`.
    pub reject_rcpt: Option<String>,
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
}

/// A running sink; it stops when dropped.
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
    /// Mails in arrival order, for [`SmtpSink::wait_for_mail`].
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<ReceivedMail>>,
    accept: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// A sink on 127.0.0.1 that does not advertise STARTTLS.
    pub async fn start() -> SmtpSink {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("SMTP sink binds");
        let port = listener.local_addr().expect("SMTP sink address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let store = received.clone();
        let accept = tokio::spawn(async move {
            // Dropped with the accept task, which aborts every connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let session = Session { options: options.clone(), store: store.clone(), arrivals: tx.clone() };
                connections.spawn(session.serve(stream));
            }
        });
        SmtpSink { port, received, arrivals: tokio::sync::Mutex::new(rx), accept }
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
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One client connection.
struct Session {
    options: Options,
    store: Arc<Mutex<Vec<ReceivedMail>>>,
    arrivals: mpsc::UnboundedSender<ReceivedMail>,
}

impl Session {
    async fn serve(self, stream: TcpStream) {
        let mut stream = BufReader::new(stream);
        let _ = self.converse(&mut stream).await;
    }

    async fn converse(&self, stream: &mut BufReader<TcpStream>) -> std::io::Result<()> {
        let mut envelope: Option<(String, Vec<String>)> = None;
        let mut auth_user = None;
        stream.write_all(b"220 sink.rampart.test ESMTP ready\r\n").await?;
        loop {
            let Some(line) = read_line(stream).await? else { return Ok(()) };
            let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
            let reply = match verb.to_ascii_uppercase().as_str() {
                "EHLO" => {
                    let tls = if self.options.advertise_starttls { "250-STARTTLS\r\n" } else { "" };
                    format!("250-sink.rampart.test hello {arg}\r\n250-8BITMIME\r\n{tls}250 AUTH PLAIN\r\n")
                }
                "HELO" => "250 sink.rampart.test\r\n".into(),
                "AUTH" => {
                    let token = match arg.split_once(' ') {
                        Some((_, token)) => token.to_owned(),
                        None => {
                            stream.write_all(b"334 \r\n").await?;
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
                        stream.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                        let data = read_data(stream).await?;
                        let mail = ReceivedMail { from, to, data, auth_user: auth_user.clone() };
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
                "STARTTLS" => "454 TLS not available in this sink\r\n".into(),
                "QUIT" => {
                    stream.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                _ => "502 command not implemented\r\n".into(),
            };
            stream.write_all(reply.as_bytes()).await?;
        }
    }
}

/// One line without its line end; `None` at the end of the stream.
async fn read_line(stream: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The message up to the lone `.` line, with leading dots unstuffed.
async fn read_data(stream: &mut BufReader<TcpStream>) -> std::io::Result<String> {
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

impl ReceivedMail {
    /// A header of the message (the first of that name), unfolded, with
    /// RFC 2047 `=?UTF-8?B?...?=` words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(head(&self.data), name).map(|v| decode_words(&v))
    }

    /// The text/plain part that is not an attachment, decoded.
    pub fn text(&self) -> String {
        let parts = self.parts();
        let text = parts.iter().find(|p| {
            let kind = header_in(&p.head, "Content-Type").unwrap_or_default().to_ascii_lowercase();
            let disposition = header_in(&p.head, "Content-Disposition").unwrap_or_default();
            kind.starts_with("text/plain") && !disposition.to_ascii_lowercase().starts_with("attachment")
        });
        String::from_utf8(text.expect("the mail has a text/plain part").decoded()).expect("the text is UTF-8")
    }

    /// Each attachment's filename and decoded bytes.
    pub fn attachments(&self) -> Vec<(String, Vec<u8>)> {
        self.parts()
            .iter()
            .filter_map(|p| {
                let disposition = header_in(&p.head, "Content-Disposition")?;
                disposition
                    .to_ascii_lowercase()
                    .starts_with("attachment")
                    .then(|| (param(&disposition, "filename").unwrap_or_default(), p.decoded()))
            })
            .collect()
    }

    /// The MIME parts, or the whole message as one part when not multipart.
    fn parts(&self) -> Vec<Part> {
        let whole = Part { head: head(&self.data).to_owned(), body: body(&self.data).to_owned() };
        let Some(boundary) = self.header("Content-Type").and_then(|t| param(&t, "boundary")) else {
            return vec![whole];
        };
        let delimiter = format!("--{boundary}");
        let mut sections: Vec<&str> = whole.body.split(delimiter.as_str()).collect();
        sections.remove(0); // the preamble
        sections
            .into_iter()
            .take_while(|s| !s.starts_with("--"))
            .map(|s| {
                let s = s.strip_prefix("\r\n").unwrap_or(s);
                Part { head: head(s).to_owned(), body: body(s).to_owned() }
            })
            .collect()
    }
}

/// One MIME part: its headers and its still-encoded body.
struct Part {
    head: String,
    body: String,
}

impl Part {
    fn decoded(&self) -> Vec<u8> {
        let encoding = header_in(&self.head, "Content-Transfer-Encoding").unwrap_or_default();
        if encoding.eq_ignore_ascii_case("base64") {
            let compact: String = self.body.split_whitespace().collect();
            STANDARD.decode(compact).expect("the part is valid base64")
        } else {
            // 8bit or 7bit: the body ends with the CRLF before the delimiter.
            self.body.strip_suffix("\r\n").unwrap_or(&self.body).as_bytes().to_vec()
        }
    }
}

fn head(message: &str) -> &str {
    message.split_once("\r\n\r\n").map_or(message, |(head, _)| head)
}

fn body(message: &str) -> &str {
    message.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// The unfolded value of header `name` in `head`.
fn header_in(head: &str, name: &str) -> Option<String> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

/// A parameter of a header value: `filename` in `attachment; filename="a.pdf"`.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (key, v) = p.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Decodes RFC 2047 B-encoded UTF-8 words; the space between two encoded
/// words is dropped, as the RFC says.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut previous_encoded = false;
    for (i, token) in value.split(' ').enumerate() {
        let word = token
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| w.split_once("?B?").or_else(|| w.split_once("?b?")))
            .filter(|(charset, _)| charset.eq_ignore_ascii_case("UTF-8"))
            .and_then(|(_, b64)| STANDARD.decode(b64).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if i > 0 && !(previous_encoded && word.is_some()) {
            out.push(' ');
        }
        previous_encoded = word.is_some();
        out += word.as_deref().unwrap_or(token);
    }
    out
}
