//! The message handed over after `DATA`: RFC 5322 headers and a MIME
//! `multipart/mixed` body (the text, then the attachment), both parts in
//! base64 so that no line is too long or starts with a dot. Every line ends
//! in CRLF.

use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Mail;

/// Base64 line length in MIME bodies (RFC 2045).
const BASE64_LINE: usize = 76;
/// Raw bytes per RFC 2047 encoded word: 45 bytes are 60 base64 characters,
/// which with `=?UTF-8?B?` and `?=` stays within the 75 allowed.
const WORD_BYTES: usize = 45;
/// Longer plain subjects are sent as folded encoded words instead.
const MAX_PLAIN_SUBJECT: usize = 900;

/// Builds the message with the current date and fresh identifiers.
pub(super) fn build(mail: &Mail) -> String {
    let boundary = format!("=_rampart_{}", Uuid::new_v4().simple());
    build_with(mail, Utc::now(), Uuid::new_v4(), &boundary)
}

/// Builds the message (without dot-stuffing); `boundary` must not occur in
/// base64 text (the `_` in ours guarantees it).
fn build_with(mail: &Mail, date: DateTime<Utc>, message_id: Uuid, boundary: &str) -> String {
    let mut m = String::new();
    m += &format!("From: {}\r\n", mail.from);
    m += &format!("To: {}\r\n", fold_list(&mail.to));
    m += &format!("Subject: {}\r\n", encode_subject(&mail.subject));
    m += &format!("Date: {}\r\n", date.to_rfc2822());
    m += &format!("Message-ID: <{}@rampart>\r\n", message_id.simple());
    m += "MIME-Version: 1.0\r\n";
    m += &format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n");
    m += "\r\nThis is a multi-part message in MIME format.\r\n";
    m += &format!("--{boundary}\r\n");
    m += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    m += &base64_lines(mail.text.as_bytes());
    if let Some(a) = &mail.attachment {
        let filename = header_safe_filename(&a.filename);
        let content_type: String = a.content_type.chars().filter(|c| !c.is_control()).collect();
        m += &format!("--{boundary}\r\n");
        m += &format!("Content-Type: {content_type}; name=\"{filename}\"\r\n");
        m += &format!("Content-Disposition: attachment; filename=\"{filename}\"\r\n");
        m += "Content-Transfer-Encoding: base64\r\n\r\n";
        m += &base64_lines(&a.bytes);
    }
    m += &format!("--{boundary}--\r\n");
    m
}

/// Doubles a leading dot on every line (RFC 5321 4.5.2) and makes sure the
/// payload ends in CRLF, ready for the final `.` line.
pub(super) fn dot_stuff(payload: &str) -> String {
    let mut out = String::with_capacity(payload.len() + 2);
    for line in payload.split_inclusive('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out += line;
    }
    if !out.ends_with("\r\n") {
        out += "\r\n";
    }
    out
}

/// `bytes` in base64, lines of 76 characters, each ending in CRLF.
fn base64_lines(bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / BASE64_LINE * 2 + 2);
    for chunk in encoded.as_bytes().chunks(BASE64_LINE) {
        out += std::str::from_utf8(chunk).expect("base64 is ASCII");
        out += "\r\n";
    }
    out
}

/// The subject as is when it is short printable ASCII, else as RFC 2047
/// `=?UTF-8?B?...?=` words, folded one per line.
fn encode_subject(subject: &str) -> String {
    let plain = subject.len() <= MAX_PLAIN_SUBJECT
        && !subject.contains("=?")
        && subject.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
    if plain {
        return subject.to_owned();
    }
    let mut words = Vec::new();
    let mut rest = subject;
    while !rest.is_empty() {
        let mut end = rest.len().min(WORD_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&rest[..end])));
        rest = &rest[end..];
    }
    words.join("\r\n ")
}

/// Addresses comma-separated, folded so that no line grows past ~78.
fn fold_list(addresses: &[String]) -> String {
    let mut out = String::new();
    let mut line_len = "To: ".len();
    for (i, a) in addresses.iter().enumerate() {
        if i > 0 {
            out.push(',');
            if line_len + a.len() + 2 > 78 {
                out += "\r\n ";
                line_len = 1;
            } else {
                out.push(' ');
                line_len += 2;
            }
        }
        out += a;
        line_len += a.len();
    }
    out
}

/// A filename fit for a quoted header parameter: no quotes, backslashes or
/// control characters; non-ASCII characters become `_` (plain ASCII is what
/// every mail client reads).
fn header_safe_filename(name: &str) -> String {
    let safe: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    if safe.trim().is_empty() {
        "attachment".to_owned()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::Attachment;

    fn report_mail() -> Mail {
        Mail {
            from: "rampart@example.com".into(),
            to: vec!["ops@example.com".into(), "ciso@example.com".into()],
            subject: "Weekly report".into(),
            text: "Hello,\n.hidden line\nthe report is attached.".into(),
            attachment: Some(Attachment {
                filename: "report\"\r\n.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: (0..=255u8).cycle().take(5000).collect(),
            }),
        }
    }

    fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
        let head = message.split("\r\n\r\n").next().unwrap();
        head.split("\r\n").find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    /// The base64 body of the MIME part whose headers contain `marker`.
    fn part_body(message: &str, marker: &str) -> Vec<u8> {
        let part = message.split("--=_b").find(|p| p.contains(marker)).expect("part present");
        let body = part.split("\r\n\r\n").nth(1).unwrap();
        STANDARD.decode(body.split_whitespace().collect::<String>()).unwrap()
    }

    #[test]
    fn builds_headers_and_parts() {
        let date = DateTime::parse_from_rfc3339("2024-05-06T07:08:09Z").unwrap().with_timezone(&Utc);
        let id = Uuid::nil();
        let message = build_with(&report_mail(), date, id, "=_b");
        assert_eq!(header(&message, "From"), Some("rampart@example.com"));
        assert_eq!(header(&message, "To"), Some("ops@example.com, ciso@example.com"));
        assert_eq!(header(&message, "Subject"), Some("Weekly report"));
        assert_eq!(header(&message, "Date"), Some("Mon, 6 May 2024 07:08:09 +0000"));
        assert_eq!(header(&message, "Message-ID"), Some("<00000000000000000000000000000000@rampart>"));
        assert_eq!(header(&message, "MIME-Version"), Some("1.0"));
        assert_eq!(header(&message, "Content-Type"), Some("multipart/mixed; boundary=\"=_b\""));

        assert_eq!(part_body(&message, "text/plain"), report_mail().text.as_bytes());
        assert!(message.contains("Content-Disposition: attachment; filename=\"report.pdf\"\r\n"));
        assert_eq!(part_body(&message, "application/pdf"), report_mail().attachment.unwrap().bytes);
        assert!(message.ends_with("--=_b--\r\n"));
    }

    #[test]
    fn every_line_ends_in_crlf_and_is_short() {
        let message = build(&report_mail());
        assert!(message.ends_with("\r\n"));
        assert!(!message.replace("\r\n", "").contains(['\r', '\n']), "bare CR or LF");
        for line in message.split("\r\n") {
            assert!(line.len() <= 998, "line too long: {}", line.len());
        }
    }

    #[test]
    fn dot_stuffs_every_line_that_starts_with_a_dot() {
        assert_eq!(dot_stuff(".\r\nok\r\n..x\r\n"), "..\r\nok\r\n...x\r\n");
        assert_eq!(dot_stuff("a\r\n.b"), "a\r\n..b\r\n");
        assert_eq!(dot_stuff("no dots here\r\n"), "no dots here\r\n");
    }

    #[test]
    fn encodes_non_ascii_subjects_as_rfc2047_words() {
        assert_eq!(encode_subject("Weekly report"), "Weekly report");
        assert_eq!(encode_subject("Rapport hebdo: détections"), "=?UTF-8?B?UmFwcG9ydCBoZWJkbzogZMOpdGVjdGlvbnM=?=");
        assert!(encode_subject("a\r\nBcc: x@y").starts_with("=?UTF-8?B?"));

        let long = "é".repeat(100);
        let encoded = encode_subject(&long);
        let mut decoded = Vec::new();
        for word in encoded.split("\r\n ") {
            assert!(word.len() <= 75, "encoded word too long: {word}");
            let b64 = word.strip_prefix("=?UTF-8?B?").and_then(|w| w.strip_suffix("?=")).unwrap();
            let bytes = STANDARD.decode(b64).unwrap();
            assert!(std::str::from_utf8(&bytes).is_ok(), "a word splits a character");
            decoded.extend(bytes);
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), long);
    }

    #[test]
    fn folds_long_recipient_lists() {
        let many: Vec<String> = (0..20).map(|i| format!("recipient{i}@example.com")).collect();
        let folded = fold_list(&many);
        assert!(folded.split("\r\n").all(|l| l.len() < 78));
        assert_eq!(folded.replace("\r\n ", " "), many.join(", "));
    }
}
