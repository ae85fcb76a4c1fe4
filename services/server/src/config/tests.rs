//! Tests of `server.xml` parsing: defaults, overrides and the errors that
//! name the element at fault.

use super::*;

const MINIMAL: &str = r#"<Server>
  <Instance><Name>paris</Name></Instance>
  <Database><Url>postgres://root@127.0.0.1:5432/rampart_paris</Url></Database>
  <Broker><Url>amqp://guest:guest@127.0.0.1:5672/%2f</Url></Broker>
  <Api><Token>0123456789abcdef0123</Token></Api>
</Server>"#;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(text, |_| None, None)
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn defaults_apply_when_elements_are_absent() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.replication_interval, 1800);
    assert_eq!(s.service.api_listen.port(), 7073);
    assert_eq!(s.service.namespace.as_str(), "rampart");
    assert_eq!(s.role, ConfiguredRole::Standalone);
    assert!(s.license_key.is_none());
    assert!(s.require_agent_identity, "agent identities are required unless said otherwise");
}

#[test]
fn the_management_api_may_come_from_the_environment() {
    use rampart_shared::service_config::{ENV_BROKER_MANAGEMENT_CREDENTIALS_FILE, ENV_BROKER_MANAGEMENT_URL};
    let file = std::env::temp_dir().join(format!("admin-{}.credentials", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, "rampart-admin:pw\n").unwrap();
    let path = file.display().to_string();
    let both = |name: &str| match name {
        ENV_BROKER_MANAGEMENT_URL => Some("http://rabbitmq:15672".to_owned()),
        ENV_BROKER_MANAGEMENT_CREDENTIALS_FILE => Some(path.clone()),
        _ => None,
    };
    let management = Settings::parse(MINIMAL, both, None).unwrap().service.broker_management.unwrap();
    assert_eq!((management.url.as_str(), management.user.as_str()), ("http://rabbitmq:15672", "rampart-admin"));
    let one = |name: &str| (name == ENV_BROKER_MANAGEMENT_URL).then(|| "http://rabbitmq:15672".to_owned());
    let err = Settings::parse(MINIMAL, one, None).unwrap_err().to_string();
    assert!(err.contains("or neither"), "{err}");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn agent_identities_may_be_switched_off_in_the_file_or_the_environment() {
    let text = MINIMAL.replace("</Server>", "<Agents><RequireIdentity>false</RequireIdentity></Agents></Server>");
    assert!(!parse(&text).unwrap().require_agent_identity);
    let env = |value: &'static str| move |name: &str| (name == ENV_REQUIRE_AGENT_IDENTITY).then(|| value.to_owned());
    assert!(!Settings::parse(MINIMAL, env("false"), None).unwrap().require_agent_identity);
    let err = Settings::parse(MINIMAL, env("no"), None).unwrap_err().to_string();
    assert!(err.contains(ENV_REQUIRE_AGENT_IDENTITY) && err.contains("'no'"), "{err}");
}

#[test]
fn the_example_files_are_valid() {
    for file in ["standalone.xml", "lyon.xml", "master.xml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/config").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let s = Settings::parse(&text, |_| None, path.parent()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(s.service.api_listen.port(), 7073, "{file}");
    }
}

#[test]
fn reads_every_element() {
    let text = MINIMAL
        .replace("</Server>", "<ReplicationInterval>60</ReplicationInterval><Log><Format>json</Format></Log></Server>")
        .replace("<Name>paris</Name>", "<Name>hq</Name><Role>master</Role>");
    let s = parse(&text).unwrap();
    assert_eq!(s.replication_interval, 60);
    assert_eq!(s.role, ConfiguredRole::Master);
    assert_eq!(s.service.log_format, rampart_shared::telemetry::LogFormat::Json);
}

#[test]
fn console_sessions_idle_out_after_a_bounded_time() {
    assert_eq!(parse(MINIMAL).unwrap().console.idle_minutes, 30);
    let text = MINIMAL.replace("</Server>", "<Console><IdleMinutes>5</IdleMinutes></Console></Server>");
    assert_eq!(parse(&text).unwrap().console.idle_minutes, 5);
    let text = MINIMAL.replace("</Server>", "<Console><IdleMinutes>0</IdleMinutes></Console></Server>");
    assert_eq!(error(&text), "<Server>/<Console>/<IdleMinutes>: must be between 1 and 1440");
}

#[test]
fn refuses_zero_interval() {
    let text = MINIMAL.replace("</Server>", "<ReplicationInterval>0</ReplicationInterval></Server>");
    assert_eq!(error(&text), "<Server>/<ReplicationInterval>: must be at least 1 second");
}

#[test]
fn refuses_wrong_types_naming_the_element() {
    let text = MINIMAL.replace("</Server>", "<ReplicationInterval>soon</ReplicationInterval></Server>");
    assert!(error(&text).starts_with("<Server>/<ReplicationInterval>:"), "{}", error(&text));
    let text = MINIMAL.replace("<Name>paris</Name>", "<Name>paris</Name><Role>boss</Role>");
    let e = error(&text);
    assert!(e.starts_with("<Server>/<Instance>/<Role>:") && e.contains("boss"), "{e}");
}

#[test]
fn refuses_unknown_elements() {
    let text = MINIMAL.replace("</Server>", "<Colour>red</Colour></Server>");
    assert!(error(&text).contains("Colour"), "{}", error(&text));
}

#[test]
fn refuses_missing_required_values() {
    let text = MINIMAL.replace("<Database><Url>postgres://root@127.0.0.1:5432/rampart_paris</Url></Database>", "");
    assert!(error(&text).contains("missing field `Database`"), "{}", error(&text));
    let text = MINIMAL.replace("<Api><Token>0123456789abcdef0123</Token></Api>", "");
    assert!(error(&text).contains("API token is required"), "{}", error(&text));
}

#[test]
fn refuses_bad_values() {
    let text = MINIMAL.replace("<Name>paris</Name>", "<Name>Paris Site</Name>");
    let e = error(&text);
    assert!(e.starts_with("<Server>/<Instance>/<Name>:"), "{e}");
    let text = MINIMAL.replace("0123456789abcdef0123", "short");
    assert!(error(&text).contains("at least 16 characters"));
    let text = MINIMAL.replace("amqp://guest", "http://guest");
    assert!(error(&text).starts_with("<Server>/<Broker>/<Url>"));
    let text = MINIMAL.replace("</Api>", "<Listen>7073</Listen></Api>");
    assert!(error(&text).starts_with("<Server>/<Api>/<Listen>"), "{}", error(&text));
}

#[test]
fn the_list_counts_exactly_up_to_its_cap() {
    assert_eq!(parse(MINIMAL).unwrap().exact_total_up_to, DEFAULT_EXACT_TOTAL_UP_TO);
    let text = MINIMAL.replace("</Server>", "<Endpoints><ExactTotalUpTo>40</ExactTotalUpTo></Endpoints></Server>");
    assert_eq!(parse(&text).unwrap().exact_total_up_to, 40);
    let text = MINIMAL.replace("</Server>", "<Endpoints><ExactTotalUpTo>0</ExactTotalUpTo></Endpoints></Server>");
    let e = error(&text);
    assert!(e.starts_with("<Server>/<Endpoints>/<ExactTotalUpTo>: must be between 1"), "{e}");
}

#[test]
fn refuses_doctype_and_malformed_xml() {
    let text = format!("<!DOCTYPE Server [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n{MINIMAL}");
    assert!(error(&text).contains("DOCTYPE"), "{}", error(&text));
    let text = MINIMAL.replace("</Broker>", "</Brokr>");
    assert!(error(&text).starts_with("malformed XML at line 4"), "{}", error(&text));
}

#[test]
fn refuses_a_license_key_that_is_not_the_vendors() {
    let text = MINIMAL.replace("</Server>", "<License><Key>RAMPART1.e30.c2lnbmF0dXJl</Key></License></Server>");
    let e = error(&text);
    assert!(e.starts_with("<Server>/<License>/<Key>: license key is not in the"), "{e}");
    assert!(!e.contains("c2lnbmF0dXJl"), "the key is not echoed: {e}");
}

#[test]
fn environment_overrides_win() {
    let s = Settings::parse(
        MINIMAL,
        |name| match name {
            ENV_API_LISTEN => Some("127.0.0.1:0".into()),
            ENV_NAMESPACE => Some("t_abc".into()),
            _ => None,
        },
        None,
    )
    .unwrap();
    assert_eq!(s.service.api_listen.port(), 0);
    assert_eq!(s.service.namespace.as_str(), "t_abc");
}

#[test]
fn reports_belong_to_the_right_role() {
    let master = MINIMAL.replace("<Name>paris</Name>", "<Name>hq</Name><Role>master</Role>");
    let with = |text: &str, reports: &str| text.replace("</Server>", &format!("<Reports>{reports}</Reports></Server>"));
    let s = parse(&with(&master, "<ServiceUrl>http://127.0.0.1:7080/</ServiceUrl><ServiceToken>t</ServiceToken><EventKey>0123456789abcdef</EventKey>")).unwrap();
    assert_eq!(s.reports.service_url.as_deref(), Some("http://127.0.0.1:7080"));
    let e = error(&with(&master, "<Directory>/tmp</Directory>"));
    assert!(e.starts_with("<Server>/<Reports>/<Directory>: scheduled reports do not exist on a master"), "{e}");
    let e = error(&with(&master, "<ServiceUrl>http://x</ServiceUrl><ServiceToken>t</ServiceToken>"));
    assert!(e.contains("needs <EventKey>"), "{e}");
    let e = error(&with(&master, "<EventKey>short</EventKey>"));
    assert!(e.starts_with("<Server>/<Reports>/<EventKey>"), "{e}");
    let e = error(&with(MINIMAL, "<EventKey>0123456789abcdef</EventKey>"));
    assert!(e.contains("are for a master"), "{e}");
    let s = parse(&with(MINIMAL, "<Directory>/var/lib/rampart/reports</Directory>")).unwrap();
    assert_eq!(s.reports.directory.unwrap(), Path::new("/var/lib/rampart/reports"));
}

#[test]
fn the_api_serves_tls_unless_plain_is_asked_for() {
    let s = parse(MINIMAL).unwrap();
    assert!(matches!(s.tls.transport, Transport::Tls { files: None, .. }));
    assert!(!s.tls.plain_registration);
    let with = |api: &str| MINIMAL.replace("</Api>", &format!("{api}</Api>"));
    let s = parse(&with("<Plain>true</Plain><PlainRegistration>true</PlainRegistration>")).unwrap();
    assert!(matches!(s.tls.transport, Transport::Plain) && s.tls.plain_registration);
    let s = Settings::parse(
        &with("<Tls><Certificate>api.crt</Certificate><Key>/k.pem</Key><Names><Name>hq.example</Name></Names></Tls>"),
        |_| None,
        Some(Path::new("/etc/rampart")),
    )
    .unwrap();
    let Transport::Tls { files: Some(files), names } = s.tls.transport else { panic!("configured files") };
    assert_eq!(
        (files.certificate.as_path(), files.key.as_path()),
        (Path::new("/etc/rampart/api.crt"), Path::new("/k.pem"))
    );
    assert_eq!(names, ["hq.example"]);
    let e = error(&with("<Tls><Certificate>a.crt</Certificate></Tls>"));
    assert_eq!(e, "<Server>/<Api>/<Tls>: <Certificate> and <Key> go together");
    assert!(error(&with("<Tls/><Plain>true</Plain>")).contains("remove <Tls> or <Plain>"));
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let s = parse(MINIMAL).unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("0123456789abcdef0123"));
    assert!(!debug.contains("guest:guest"));
}

#[test]
fn a_schema_of_a_shared_database_must_be_a_plain_identifier() {
    assert!(parse(MINIMAL).unwrap().service.database_schema.is_none());
    let with =
        |schema: &str| MINIMAL.replace("</Url></Database>", &format!("</Url><Schema>{schema}</Schema></Database>"));
    let settings = parse(&with("site_0042")).unwrap();
    assert_eq!(settings.service.database_schema.unwrap().as_str(), "site_0042");
    let err = error(&with("site-0042"));
    assert!(err.contains("<Server>/<Database>/<Schema>") && err.contains("contains '-'"), "{err}");
    let err = error(&with("public"));
    assert!(err.contains("<Server>/<Database>/<Schema>") && err.contains("reserved"), "{err}");
    let err = error(&with("x; DROP TABLE policies"));
    assert!(err.contains("<Server>/<Database>/<Schema>"), "{err}");
}

#[test]
fn idle_connections_close_after_a_bounded_time() {
    use std::time::Duration;
    assert_eq!(parse(MINIMAL).unwrap().service.database_idle_timeout, Duration::from_secs(300));
    let with = |seconds: &str| {
        MINIMAL.replace("</Url></Database>", &format!("</Url><IdleTimeout>{seconds}</IdleTimeout></Database>"))
    };
    assert_eq!(parse(&with("30")).unwrap().service.database_idle_timeout, Duration::from_secs(30));
    for bad in ["0", "86401"] {
        let err = error(&with(bad));
        assert!(err.contains("<Server>/<Database>/<IdleTimeout>") && err.contains("between 1 and 86400"), "{err}");
    }
    assert!(error(&with("soon")).contains("<Server>/<Database>"), "a word is refused");
}
