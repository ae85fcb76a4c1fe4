//! The SMTP client against an in-process SMTP sink: a report with its
//! attachment arrives intact, a refused recipient is named in the error, and
//! STARTTLS is never silently dropped.

use std::time::Duration;

use rampart_server::mail::{self, Attachment, Mail, MailError, SmtpSettings};
use rampart_tests::smtp::{Options, SmtpSink};

const WAIT: Duration = Duration::from_secs(10);

fn settings(sink: &SmtpSink) -> SmtpSettings {
    SmtpSettings { host: "127.0.0.1".into(), port: sink.port, username: None, password: None, starttls: false }
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

#[tokio::test]
async fn starttls_is_refused_rather_than_dropped() {
    for advertised in [true, false] {
        let sink = SmtpSink::start_with(Options { advertise_starttls: advertised, ..Options::default() }).await;
        let settings = SmtpSettings { starttls: true, ..settings(&sink) };

        let error = mail::send(&settings, &report(&["ops@example.com"])).await.expect_err("no TLS in this build");

        assert!(matches!(error, MailError::TlsUnavailable), "advertised: {advertised}: {error:?}");
        assert!(error.to_string().contains("set starttls to false"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(sink.received().is_empty(), "advertised: {advertised}: a mail went out in clear");
    }
}

#[tokio::test]
async fn an_unreachable_relay_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let settings = SmtpSettings { host: "127.0.0.1".into(), port, username: None, password: None, starttls: false };

    let error = mail::send(&settings, &report(&["ops@example.com"])).await.expect_err("nobody listens");

    assert!(
        matches!(&error, MailError::Connect { address, .. } if address == &format!("127.0.0.1:{port}")),
        "{error:?}"
    );
}
