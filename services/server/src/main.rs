//! `rampart-server --config PATH` runs a server;
//! `rampart-server check-config PATH` validates a configuration file;
//! `rampart-server broker-user ...` makes the broker user of one Rampart
//! process through the broker's management API.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_server::{config::Settings, startup::Application};
use rampart_shared::process;

#[derive(Parser)]
#[command(name = "rampart-server", version, about = "Rampart management server (stand-alone, slave or master)")]
struct Cli {
    /// Path to server.xml.
    #[arg(long, env = "RAMPART_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a server.xml and exit: 0 if valid, 2 with the reason if not.
    CheckConfig { path: PathBuf },
    /// Create (or reset) the broker user of one Rampart process, with a new
    /// password and exactly the permissions its role needs; writes
    /// `user:password` to --out (mode 0600) and prints the user name.
    BrokerUser(BrokerUserArgs),
}

#[derive(clap::Args)]
struct BrokerUserArgs {
    /// The broker's management API, e.g. http://127.0.0.1:15672.
    #[arg(long)]
    management_url: String,
    /// One line `user:password` of a broker user with the administrator tag.
    #[arg(long)]
    management_credentials_file: PathBuf,
    /// The AMQP namespace the process works in.
    #[arg(long, default_value = "rampart")]
    namespace: String,
    /// The vhost of the broker URL.
    #[arg(long, default_value = "/")]
    vhost: String,
    /// Where the new credentials are written.
    #[arg(long)]
    out: PathBuf,
    #[command(subcommand)]
    process: BrokerProcess,
}

#[derive(Subcommand)]
enum BrokerProcess {
    /// A server (stand-alone, slave or master) of INSTANCE.
    Server { instance: String },
    /// The report service of the namespace.
    Report,
    /// One agent process NAME of SITE. Its user may declare nothing: the
    /// site declares and binds its queue when it enrols (`rampartctl agents
    /// enrolment-token create`), which also makes its user; this is for
    /// setting one up by hand.
    Agent { site: String, name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match (cli.command, cli.config) {
        (Some(Command::CheckConfig { path }), _) => process::check_config(&path, Settings::load, |s| {
            format!(
                "instance '{}', role {:?}, API {}, replication every {} s",
                s.instance, s.role, s.service.api_listen, s.replication_interval
            )
        }),
        (Some(Command::BrokerUser(args)), _) => match broker_user(args) {
            Ok(user) => {
                println!("{user}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        (None, Some(path)) => process::run(
            "rampart-server",
            &path,
            Settings::load,
            |s| &s.service,
            |settings, stop| async move {
                Application::build(settings).await.context("Failed to start")?.run_until_stopped(stop).await
            },
        ),
        (None, None) => {
            eprintln!("Give --config PATH (or RAMPART_CONFIG), or use check-config PATH.");
            ExitCode::from(process::EXIT_BAD_CONFIG)
        }
    }
}

/// Provisions the broker user `args` describes; returns its name.
fn broker_user(args: BrokerUserArgs) -> anyhow::Result<String> {
    use rampart_shared::{
        broker_admin::{grants, settings::parse_credentials, ManagementClient},
        topology::{NameSegment, Topology},
    };
    let segment = |what: &str, value: &str| NameSegment::parse(value).map_err(|e| anyhow::anyhow!("{what}: {e}"));
    let topology = Topology::new(&segment("--namespace", &args.namespace)?);
    let grant = match &args.process {
        BrokerProcess::Server { instance } => {
            grants::BrokerGrant::server(&topology, segment("INSTANCE", instance)?.as_str())
        }
        BrokerProcess::Report => grants::BrokerGrant::report_service(&topology),
        BrokerProcess::Agent { site, name } => {
            grants::BrokerGrant::agent(&topology, segment("SITE", site)?.as_str(), segment("NAME", name)?.as_str())
        }
    };
    let text =
        rampart_shared::config::read(&args.management_credentials_file, rampart_shared::config::MAX_SECRET_BYTES)?;
    let (admin, password) =
        parse_credentials(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.management_credentials_file.display()))?;
    let client = ManagementClient::new(&args.management_url, &admin, password)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let user = runtime.block_on(grants::provision(&client, &args.vhost, &grant))?;
    write_private(&args.out, &format!("{}:{}\n", user.name, user.password.expose()))
        .with_context(|| format!("Failed to write {}", args.out.display()))?;
    Ok(user.name)
}

/// Writes `text` to a file only its owner may read.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // An existing file keeps its mode on open: narrow it before writing.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}
