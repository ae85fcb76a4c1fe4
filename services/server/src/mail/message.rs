//! The e-mail as handed to the relay, built with `lettre`'s message builder:
//! RFC 5322 headers and a MIME `multipart/mixed` body (the text, then the
//! attachment), both parts in base64 so that no line is too long.

use lettre::{
    address::{Address, Envelope},
    message::{header::ContentTransferEncoding, header::ContentType, Mailbox, MultiPart, SinglePart},
    Message,
};
use uuid::Uuid;

use super::{Mail, MailError};

/// What [`super::relay`] sends: the SMTP envelope and the formatted message.
pub(super) struct Outgoing {
    pub(super) envelope: Envelope,
    pub(super) bytes: Vec<u8>,
}

/// Builds `mail`, refusing addresses that could break the SMTP dialogue.
pub(super) fn build(mail: &Mail) -> Result<Outgoing, MailError> {
    check_addresses(mail)?;
    let mut builder = Message::builder()
        .from(mailbox(&mail.from)?)
        .subject(mail.subject.as_str())
        .message_id(Some(format!("<{}@rampart>", Uuid::new_v4().simple())));
    for to in &mail.to {
        builder = builder.to(mailbox(to)?);
    }
    // As bytes, so that the text arrives exactly as written.
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .header(ContentTransferEncoding::Base64)
        .body(mail.text.as_bytes().to_vec());
    let mut body = MultiPart::mixed().singlepart(text);
    if let Some(a) = &mail.attachment {
        let content_type = ContentType::parse(&a.content_type)
            .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("a valid MIME type"));
        body = body.singlepart(
            lettre::message::Attachment::new(header_safe_filename(&a.filename)).body(a.bytes.clone(), content_type),
        );
    }
    let message = builder.multipart(body).map_err(|e| MailError::Message(e.to_string()))?;
    Ok(Outgoing { envelope: message.envelope().clone(), bytes: message.formatted() })
}

fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    let address: Address = address.parse().map_err(|_| MailError::InvalidAddress { address: address.to_owned() })?;
    Ok(Mailbox::new(None, address))
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

/// A filename without quotes, backslashes or control characters, and with
/// `_` for non-ASCII characters: plain ASCII is what every mail client reads.
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

    fn mail(from: &str, to: &[&str]) -> Mail {
        Mail {
            from: from.into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            subject: "s".into(),
            text: "t".into(),
            attachment: None,
        }
    }

    fn report_mail() -> Mail {
        Mail {
            subject: "Rapport hebdo: détections".into(),
            text: "Hello,\n.hidden line\nthe report is attached.".into(),
            attachment: Some(Attachment {
                filename: "report\"\r\n.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: (0..=255u8).cycle().take(5000).collect(),
            }),
            ..mail("rampart@example.com", &["ops@example.com", "ciso@example.com"])
        }
    }

    #[test]
    fn refuses_addresses_that_would_inject_commands() {
        assert!(check_addresses(&mail("a@x", &["b@y", "c@z"])).is_ok());
        assert!(matches!(check_addresses(&mail("a@x", &[])), Err(MailError::NoRecipients)));
        for bad in ["b@y>\r\nRCPT TO:<evil@z", "b@y, c@z", "", "<b@y>"] {
            assert!(matches!(check_addresses(&mail("a@x", &[bad])), Err(MailError::InvalidAddress { .. })), "{bad:?}");
        }
        assert!(matches!(build(&mail("a@x", &["no-at-sign"])), Err(MailError::InvalidAddress { .. })));
    }

    #[test]
    fn builds_envelope_headers_and_parts() {
        let outgoing = build(&report_mail()).unwrap();
        assert_eq!(outgoing.envelope.from().map(ToString::to_string).as_deref(), Some("rampart@example.com"));
        let to: Vec<String> = outgoing.envelope.to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["ops@example.com", "ciso@example.com"]);

        let message = String::from_utf8(outgoing.bytes).unwrap();
        let head = message.split("\r\n\r\n").next().unwrap();
        assert!(head.contains("From: rampart@example.com\r\n"), "{head}");
        assert!(head.contains("To: ops@example.com, ciso@example.com\r\n"), "{head}");
        let subject = head.split("\r\n").find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(subject.contains("=?utf-8?b?") && !subject.contains('é'), "a non-ASCII subject is encoded: {head}");
        assert!(head.contains("@rampart>\r\n") && head.contains("Date: ") && head.contains("MIME-Version: 1.0"));
        assert!(head.contains("Content-Type: multipart/mixed"), "{head}");
        assert!(message.contains("filename=\"report.pdf\""), "the filename is made header-safe");
        assert!(message.contains("Content-Transfer-Encoding: base64"));
    }

    #[test]
    fn every_line_ends_in_crlf_and_is_short() {
        let message = String::from_utf8(build(&report_mail()).unwrap().bytes).unwrap();
        assert!(!message.replace("\r\n", "").contains(['\r', '\n']), "bare CR or LF");
        for line in message.split("\r\n") {
            assert!(line.len() <= 998, "line too long: {}", line.len());
        }
    }
}
