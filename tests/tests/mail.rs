//! The SMTP client against an in-process SMTP sink: a report with its
//! attachment arrives intact, a refused recipient is named in the error,
//! STARTTLS and implicit TLS work with a relay certificate from a private CA
//! named in `ca_file`, and an untrusted certificate or a relay without
//! STARTTLS is refused before anything is sent in clear.

use std::time::Duration;

use rampart_server::mail::{self, Attachment, Mail, MailError, SmtpSettings, TlsMode};
use rampart_tests::smtp::{ca::TestCa, Options, SmtpSink};

const WAIT: Duration = Duration::from_secs(10);

fn settings(sink: &SmtpSink) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port,
        username: None,
        password: None,
        tls: TlsMode::None,
        ca_file: None,
    }
}

fn report(to: &[&str]) -> Mail {
    Mail {
        from: "rampart@example.com".into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: "Rapport hebdomadaire: 3 détections".into(),
        text: "Hello,\n.a line starting with a dot\nThe weekly report is attached.\n".into(),
        attachment: Some(Attachment {
            filename: "weekly-report.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: (0..=255u8).cycle().take(10_000).collect(),
        }),
    }
}

#[tokio::test]
async fn a_report_arrives_with_its_attachment() {
    let sink = SmtpSink::start().await;
    let mail = report(&["ops@example.com", "ciso@example.com"]);
    let settings =
        SmtpSettings { username: Some("rampart".into()), password: Some("s3cret".into()), ..settings(&sink) };

    mail::send(&settings, &mail).await.expect("the mail is sent");

    let received = sink.wait_for_mail(WAIT).await;
    assert_eq!(received.from, "rampart@example.com");
    assert_eq!(received.to, ["ops@example.com", "ciso@example.com"]);
    assert_eq!(received.auth_user.as_deref(), Some("rampart"));
    assert_eq!(received.header("Subject").as_deref(), Some("Rapport hebdomadaire: 3 détections"));
    assert_eq!(received.header("To").as_deref(), Some("ops@example.com, ciso@example.com"));
    assert!(received.header("Message-ID").is_some_and(|id| id.ends_with("@rampart>")));
    assert_eq!(received.text(), mail.text);
    let attachments = received.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].0, "weekly-report.pdf");
    assert_eq!(attachments[0].1, mail.attachment.unwrap().bytes);
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_refused_recipient_is_named_in_the_error() {
    let sink =
        SmtpSink::start_with(Options { reject_rcpt: Some("nobody@example.com".into()), ..Options::default() }).await;

    let error = mail::send(&settings(&sink), &report(&["ops@example.com", "nobody@example.com"]))
        .await
        .expect_err("a refused recipient fails the sending");

    assert!(matches!(error, MailError::Protocol { step: "RCPT TO", .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("RCPT TO") && message.contains("nobody@example.com") && message.contains("550"),
        "{message}"
    );
    assert!(sink.received().is_empty());
}

/// Verbs that carry the envelope, the credentials or the message.
const SENSITIVE: [&str; 5] = ["AUTH", "MAIL", "RCPT", "DATA", "RSET"];

fn assert_nothing_sensitive_in_clear(sink: &SmtpSink) {
    let in_clear: Vec<_> = sink.commands().into_iter().filter(|c| !c.tls).map(|c| c.verb).collect();
    assert!(in_clear.iter().all(|v| !SENSITIVE.contains(&v.as_str())), "said in clear: {in_clear:?}");
}

#[tokio::test]
async fn starttls_with_the_relay_ca_in_ca_file() {
    let ca = TestCa::new();
    let sink = SmtpSink::start_with(Options { tls: Some(ca.acceptor()), ..Options::default() }).await;
    let settings = SmtpSettings {
        tls: TlsMode::Starttls,
        ca_file: Some(ca.ca_file.clone()),
        username: Some("rampart".into()),
        password: Some("s3cret".into()),
        ..settings(&sink)
    };
    let mail = report(&["ops@example.com"]);

    mail::send(&settings, &mail).await.expect("the mail is sent over STARTTLS");

    let received = sink.wait_for_mail(WAIT).await;
    assert!(received.tls, "the mail came over TLS");
    assert_eq!(received.auth_user.as_deref(), Some("rampart"));
    assert_eq!(received.attachments()[0].1, mail.attachment.unwrap().bytes);
    let verbs: Vec<_> = sink.commands().into_iter().map(|c| (c.verb, c.tls)).collect();
    assert_eq!(verbs[..2], [("EHLO".to_owned(), false), ("STARTTLS".to_owned(), false)], "{verbs:?}");
    assert_nothing_sensitive_in_clear(&sink);
}

#[tokio::test]
async fn a_relay_certificate_from_an_unknown_ca_is_refused() {
    let ca = TestCa::new();
    let sink = SmtpSink::start_with(Options { tls: Some(ca.acceptor()), ..Options::default() }).await;
    let settings = SmtpSettings {
        tls: TlsMode::Starttls,
        username: Some("rampart".into()),
        password: Some("s3cret".into()),
        ..settings(&sink)
    };

    let error = mail::send(&settings, &report(&["ops@example.com"])).await.expect_err("the CA is not trusted");

    assert!(matches!(&error, MailError::Tls { address, .. } if address == &format!("127.0.0.1:{}", sink.port)));
    let message = error.to_string();
    assert!(message.contains("certificate") && message.contains("ca_file"), "{message}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sink.received().is_empty());
    assert_nothing_sensitive_in_clear(&sink);
    assert!(sink.commands().iter().all(|c| !c.tls), "no command after a failed handshake");
}

#[tokio::test]
async fn starttls_is_refused_rather_than_dropped() {
    for advertised in [false, true] {
        // Without TLS: it advertises STARTTLS or not, and refuses the command.
        let sink = SmtpSink::start_with(Options { advertise_starttls: advertised, ..Options::default() }).await;
        let settings = SmtpSettings { tls: TlsMode::Starttls, password: Some("s3cret".into()), ..settings(&sink) };
        let settings = SmtpSettings { username: Some("rampart".into()), ..settings };

        let error = mail::send(&settings, &report(&["ops@example.com"])).await.expect_err("no STARTTLS, no mail");

        if advertised {
            assert!(matches!(&error, MailError::Protocol { step: "STARTTLS", reply } if reply.starts_with("454")));
        } else {
            assert!(matches!(error, MailError::StarttlsUnavailable { .. }), "{error:?}");
            assert!(error.to_string().contains("does not offer STARTTLS"), "{error}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(sink.received().is_empty(), "advertised: {advertised}: a mail went out in clear");
        assert_nothing_sensitive_in_clear(&sink);
    }
}

#[tokio::test]
async fn implicit_tls_from_the_first_byte() {
    let ca = TestCa::new();
    let sink =
        SmtpSink::start_with(Options { tls: Some(ca.acceptor()), implicit_tls: true, ..Options::default() }).await;
    let settings = SmtpSettings { tls: TlsMode::Implicit, ca_file: Some(ca.ca_file.clone()), ..settings(&sink) };

    mail::send(&settings, &report(&["ops@example.com"])).await.expect("the mail is sent over TLS");

    let received = sink.wait_for_mail(WAIT).await;
    assert!(received.tls);
    assert!(sink.commands().iter().all(|c| c.tls), "{:?}", sink.commands());

    // The same settings against a plain relay fail in the handshake.
    let plain = SmtpSink::start().await;
    let error = mail::send(&SmtpSettings { port: plain.port, ..settings }, &report(&["ops@example.com"]))
        .await
        .expect_err("a plain relay is no TLS relay");
    assert!(matches!(error, MailError::Tls { .. }), "{error:?}");
    assert_nothing_sensitive_in_clear(&plain);
}

#[tokio::test]
async fn an_unreachable_relay_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let settings = SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        username: None,
        password: None,
        tls: TlsMode::None,
        ca_file: None,
    };

    let error = mail::send(&settings, &report(&["ops@example.com"])).await.expect_err("nobody listens");

    assert!(
        matches!(&error, MailError::Connect { address, .. } if address == &format!("127.0.0.1:{port}")),
        "{error:?}"
    );
}
