//! What each kind of Rampart process may do on the broker, and the users
//! made for them.
//!
//! Every regex is anchored (`^...$`) on a name of the namespace, so a user
//! of namespace `rampart` gets nothing in `rampart_demo`, and an agent gets
//! nothing of another site or another agent. `docs/security.md` has the
//! same table in prose.
//!
//! | user                          | configure           | write                                  | read                                   |
//! |-------------------------------|---------------------|----------------------------------------|----------------------------------------|
//! | `<ns>.server.<instance>`      | `^<ns>\.`           | `^<ns>\.`                              | `^<ns>\.`                              |
//! | `<ns>.report`                 | its queue + parking | `<ns>.dlx`, its queue + parking        | `<ns>.events`, `<ns>.dlx`, its queue   |
//! | `<ns>.agent.<site>.<agent>`   | nothing             | `<ns>.site`, `<ns>.dlx`                | its queue                              |
//! | `<ns>.link.<slave>`           | its command queue   | `<ns>.status`, `<ns>.replication`      | its command queue                      |
//!
//! Topic permissions narrow the routing keys on every exchange a report
//! service or an agent may write to or bind from: an agent publishes on
//! `<ns>.site` only with `site.<its site>.*` keys (its queue is declared
//! and bound by its site, see `rampart-server`'s `agents` module), and
//! each on `<ns>.dlx` only its own queue's name. A slave's link user (on
//! the master's broker, for the shovels defined on the slave's broker)
//! writes status only with `slave.<id>.*` keys and replication only with
//! `slave.<id>` (bulk) and `slave.<id>.live` (caught-up batches). A user with write on a topic exchange and no topic permission for
//! it could publish with any key, so none is left without one.

use super::{ManagementClient, NewUser, Permissions, Result, TopicPermissions};
use crate::topology::Topology;

/// Matches nothing (a permission or topic permission that grants nothing).
const NOTHING: &str = "^$";

/// One Rampart process's broker user and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerGrant {
    /// The user name, derived from the namespace and the process.
    pub user: String,
    pub permissions: Permissions,
    /// One entry per exchange the process may write to or bind from.
    pub topics: Vec<TopicPermissions>,
}

impl BrokerGrant {
    /// A server (stand-alone, slave or master) of `instance`: it declares
    /// the namespace's topology and speaks on every exchange of it.
    pub fn server(topology: &Topology, instance: &str) -> Self {
        let everything = format!("^{}\\.", escape(topology.namespace()));
        Self {
            user: format!("{}.server.{instance}", topology.namespace()),
            permissions: Permissions { configure: everything.clone(), write: everything.clone(), read: everything },
            topics: Vec::new(),
        }
    }

    /// The report service of the namespace's master: reads its events queue.
    pub fn report_service(topology: &Topology) -> Self {
        let queue = topology.report_events_queue();
        Self::queue_owner(
            format!("{}.report", topology.namespace()),
            topology,
            &queue,
            &[],
            &[(topology.events_exchange(), "^report\\.".to_owned())],
        )
    }

    /// One enrolled agent process of `site`, identity `agent`: publishes
    /// its endpoints' messages to the site exchange (its site's keys only)
    /// and reads its own command queue. No `configure` at all: the site
    /// declares that queue and binds it to the endpoints the identity owns,
    /// so the agent can neither bind it to other endpoints' commands nor
    /// declare or delete anything.
    pub fn agent(topology: &Topology, site: &str, agent: &str) -> Self {
        let queue = topology.agent_queue(site, agent);
        let (site_exchange, dlx) = (topology.site_exchange(), topology.dead_letter_exchange());
        Self {
            user: format!("{}.agent.{site}.{agent}", topology.namespace()),
            permissions: Permissions {
                configure: NOTHING.into(),
                write: format!("^{}$|^{}$", escape(&site_exchange), escape(&dlx)),
                read: format!("^{}$", escape(&queue)),
            },
            topics: vec![
                TopicPermissions {
                    exchange: site_exchange,
                    write: format!("^site\\.{}\\.", escape(site)),
                    read: NOTHING.into(),
                },
                // It parks a refused command with its reason through the
                // dead-letter exchange, keyed by its own queue's name only.
                TopicPermissions { exchange: dlx, write: format!("^{}$", escape(&queue)), read: NOTHING.into() },
            ],
        }
    }

    /// The links of `slave`'s own broker on the master's broker: they read
    /// its command queue (and redeclare it, as a shovel does on start) and
    /// publish its status and replication under its own keys only.
    pub fn slave_link(topology: &Topology, slave: &str) -> Self {
        let queue = format!("^{}$", escape(&topology.slave_commands_queue(slave)));
        let (status, replication) = (topology.status_exchange(), topology.replication_exchange());
        let own = escape(slave);
        Self {
            user: topology.link_user(slave),
            permissions: Permissions {
                configure: queue.clone(),
                write: format!("^{}$|^{}$", escape(&status), escape(&replication)),
                read: queue,
            },
            topics: vec![
                TopicPermissions { exchange: status, write: format!("^slave\\.{own}\\."), read: NOTHING.into() },
                TopicPermissions {
                    exchange: replication,
                    write: format!("^slave\\.{own}(\\.live)?$"),
                    read: NOTHING.into(),
                },
            ],
        }
    }

    /// A process that declares and reads one queue (with its parking queue
    /// and dead-letter wiring), publishes to `publishes` (exchange, routing
    /// keys) and binds its queue from `binds` (exchange, binding keys).
    fn queue_owner(
        user: String,
        topology: &Topology,
        queue: &str,
        publishes: &[(String, String)],
        binds: &[(String, String)],
    ) -> Self {
        let dlx = topology.dead_letter_exchange();
        let own = format!("^{}(\\.parking)?$", escape(queue));
        let names = |extra: Vec<&String>| extra.iter().map(|e| format!("^{}$", escape(e))).collect::<Vec<_>>();
        let mut write = names(publishes.iter().map(|(e, _)| e).chain([&dlx]).collect());
        write.push(own.clone());
        let mut read = names(binds.iter().map(|(e, _)| e).chain([&dlx]).collect());
        read.push(format!("^{}$", escape(queue)));
        let only_queue = format!("^{}$", escape(queue));
        let mut topics: Vec<TopicPermissions> = publishes
            .iter()
            .map(|(exchange, keys)| TopicPermissions {
                exchange: exchange.clone(),
                write: keys.clone(),
                read: NOTHING.into(),
            })
            .chain(binds.iter().map(|(exchange, keys)| TopicPermissions {
                exchange: exchange.clone(),
                write: NOTHING.into(),
                read: keys.clone(),
            }))
            .collect();
        // Dead-lettering is the broker's, keyed by the queue's name; the
        // process itself may only name its own queue there.
        topics.push(TopicPermissions { exchange: dlx, write: only_queue.clone(), read: only_queue });
        Self { user, permissions: Permissions { configure: own, write: write.join("|"), read: read.join("|") }, topics }
    }
}

/// Creates (or resets) the grant's user on `vhost` with a fresh password,
/// no tags, exactly the grant's permissions and topic permissions.
pub async fn provision(client: &ManagementClient, vhost: &str, grant: &BrokerGrant) -> Result<NewUser> {
    let user = client.create_user(&grant.user, &[]).await?;
    apply(client, vhost, grant).await?;
    Ok(user)
}

/// Sets an existing user's permissions and topic permissions to `grant`'s
/// (its password unchanged), e.g. when a newer version grants a little
/// more.
pub async fn apply(client: &ManagementClient, vhost: &str, grant: &BrokerGrant) -> Result<()> {
    client.set_permissions(vhost, &grant.user, &grant.permissions).await?;
    client.clear_topic_permissions(vhost, &grant.user).await?;
    for topic in &grant.topics {
        client.set_topic_permissions(vhost, &grant.user, topic).await?;
    }
    Ok(())
}

/// `amqp_url` with its user and password replaced by `user`'s, e.g. to hand
/// a process the URL it connects with.
pub fn url_with_user(amqp_url: &str, user: &NewUser) -> std::result::Result<String, String> {
    let (scheme, rest) = amqp_url.split_once("://").ok_or_else(|| "not a URL".to_owned())?;
    let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    Ok(format!("{scheme}://{}:{}@{host_and_path}", userinfo(&user.name), userinfo(user.password.expose())))
}

/// Percent-encodes a URL user or password.
fn userinfo(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `name` with every regex metacharacter escaped.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{topology::NameSegment, Secret};

    fn topology() -> Topology {
        Topology::new(&NameSegment::parse("rt").unwrap())
    }

    #[test]
    fn an_agent_gets_its_queue_and_its_site_keys_only() {
        let grant = BrokerGrant::agent(&topology(), "paris", "a1");
        assert_eq!(grant.user, "rt.agent.paris.a1");
        assert_eq!(grant.permissions.configure, "^$", "the site declares and binds the agent's queue");
        assert_eq!(grant.permissions.write, r"^rt\.site$|^rt\.dlx$");
        assert_eq!(grant.permissions.read, r"^rt\.agents\.paris\.a1$");
        let site = grant.topics.iter().find(|t| t.exchange == "rt.site").unwrap();
        assert_eq!((site.write.as_str(), site.read.as_str()), (r"^site\.paris\.", "^$"));
        let dlx = grant.topics.iter().find(|t| t.exchange == "rt.dlx").unwrap();
        assert_eq!(dlx.write, r"^rt\.agents\.paris\.a1$");
        assert_eq!(grant.topics.len(), 2);
    }

    #[test]
    fn every_exchange_a_narrow_user_writes_to_has_topic_permissions() {
        for grant in [
            BrokerGrant::agent(&topology(), "paris", "a1"),
            BrokerGrant::report_service(&topology()),
            BrokerGrant::slave_link(&topology(), "paris"),
        ] {
            for exchange in
                ["rt.site", "rt.dlx", "rt.events", "rt.agents", "rt.commands", "rt.status", "rt.replication"]
            {
                let writes = grant.permissions.write.split('|').any(|re| re == format!("^{}$", escape(exchange)));
                if writes {
                    assert!(grant.topics.iter().any(|t| t.exchange == exchange), "{} on {exchange}", grant.user);
                }
            }
        }
    }

    #[test]
    fn a_slave_link_gets_its_queue_and_its_own_keys() {
        let grant = BrokerGrant::slave_link(&topology(), "par");
        assert_eq!(grant.user, "rt.link.par");
        assert_eq!(grant.permissions.configure, r"^rt\.slave\.par\.commands$");
        assert_eq!(grant.permissions.read, r"^rt\.slave\.par\.commands$");
        assert_eq!(grant.permissions.write, r"^rt\.status$|^rt\.replication$");
        let status = grant.topics.iter().find(|t| t.exchange == "rt.status").unwrap();
        assert_eq!(status.write, r"^slave\.par\.");
        let replication = grant.topics.iter().find(|t| t.exchange == "rt.replication").unwrap();
        assert_eq!(replication.write, r"^slave\.par(\.live)?$");
        let re = |p: &str, text: &str| regex_lite_match(p, text);
        assert!(re(&status.write, "slave.par.heartbeat") && !re(&status.write, "slave.paris.heartbeat"));
        assert!(re(&replication.write, "slave.par") && !re(&replication.write, "slave.paris"));
        assert!(re(&replication.write, "slave.par.live") && !re(&replication.write, "slave.paris.live"));
        assert!(!re(&replication.write, "slave.par.x") && !re(&replication.write, "slave.par.live.x"));
    }

    /// Enough of a regex for the anchored patterns above: `^`, literal
    /// characters, `\.`, one trailing optional group `(...)?`, and an
    /// optional trailing `$`.
    fn regex_lite_match(pattern: &str, text: &str) -> bool {
        let body = pattern.strip_prefix('^').expect("anchored");
        let (body, exact) = body.strip_suffix('$').map_or((body, false), |b| (b, true));
        let alternatives = match body.strip_suffix(")?").and_then(|b| b.split_once('(')) {
            Some((head, group)) => vec![head.to_owned(), format!("{head}{group}")],
            None => vec![body.to_owned()],
        };
        alternatives.iter().map(|a| a.replace("\\.", ".")).any(|literal| {
            if exact {
                text == literal
            } else {
                text.starts_with(&literal)
            }
        })
    }

    #[test]
    fn a_server_gets_its_namespace() {
        let grant = BrokerGrant::server(&topology(), "paris");
        assert_eq!(grant.user, "rt.server.paris");
        assert_eq!(grant.permissions.configure, r"^rt\.");
    }

    #[test]
    fn the_url_gets_the_users_credentials() {
        let user = NewUser { name: "rt.agent.p.a".into(), password: Secret::new("pa:ss".into()) };
        assert_eq!(
            url_with_user("amqp://guest:guest@127.0.0.1:5672/%2f", &user).unwrap(),
            "amqp://rt.agent.p.a:pa%3Ass@127.0.0.1:5672/%2f"
        );
        assert_eq!(url_with_user("amqp://h:1/v", &user).unwrap(), "amqp://rt.agent.p.a:pa%3Ass@h:1/v");
    }
}
