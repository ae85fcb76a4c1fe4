//! Broker users: created with a generated password, tagged, deleted.

use rand::{distributions::Alphanumeric, Rng};
use serde::{Deserialize, Deserializer};

use super::{client::segment, ManagementClient, Result};
use crate::Secret;

/// Characters of a generated password (alphanumeric: ~190 bits).
const PASSWORD_LENGTH: usize = 32;

/// A broker user as the broker describes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct BrokerUser {
    pub name: String,
    /// `administrator`, `monitoring`, `impersonator`... (RabbitMQ 3.8 sends
    /// a comma-separated string, later versions a list; both are read.)
    #[serde(deserialize_with = "tags")]
    pub tags: Vec<String>,
}

impl BrokerUser {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// A user just created, with the password the broker now expects from it.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub name: String,
    pub password: Secret<String>,
}

/// A fresh random password, alphanumeric so it needs no escaping in an
/// `amqp://user:password@host` URL.
pub fn generate_password() -> Secret<String> {
    let mut rng = rand::thread_rng();
    Secret::new((0..PASSWORD_LENGTH).map(|_| rng.sample(Alphanumeric) as char).collect())
}

fn tags<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Tags::deserialize(d)? {
        Tags::Text(text) => text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        Tags::List(list) => list,
    })
}

#[derive(serde::Serialize)]
struct UserBody<'a> {
    password: &'a str,
    tags: String,
}

impl ManagementClient {
    /// Creates `name` (or replaces its password and tags if it exists) with
    /// a generated password. Refuses the `impersonator` tag: no Rampart
    /// user may forge another user's `user_id`.
    pub async fn create_user(&self, name: &str, tags: &[&str]) -> Result<NewUser> {
        let password = generate_password();
        self.put_user(name, &password, tags).await?;
        Ok(NewUser { name: name.to_owned(), password })
    }

    /// Creates or updates `name` with the given password and tags.
    pub async fn put_user(&self, name: &str, password: &Secret<String>, tags: &[&str]) -> Result<()> {
        if tags.contains(&"impersonator") {
            return Err(super::AdminError::Invalid(format!("'{name}' may not have the impersonator tag")));
        }
        let body = UserBody { password: password.expose(), tags: tags.join(",") };
        self.put("create user", &format!("/api/users/{}", segment(name)), &body).await
    }

    /// The user `name`.
    pub async fn user(&self, name: &str) -> Result<BrokerUser> {
        self.get("read user", &format!("/api/users/{}", segment(name))).await
    }

    /// Every user of the broker.
    pub async fn users(&self) -> Result<Vec<BrokerUser>> {
        self.get("list users", "/api/users").await
    }

    /// The user this client authenticates as.
    pub async fn whoami(&self) -> Result<BrokerUser> {
        self.get("whoami", "/api/whoami").await
    }

    /// Deletes `name` (its permissions go with it; its open connections stay
    /// until closed: see [`close_connections_of`](Self::close_connections_of)).
    /// Deleting a user that does not exist is not an error.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        match self.delete("delete user", &format!("/api/users/{}", segment(name))).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_as_text_or_list() {
        let old: BrokerUser = serde_json::from_str(r#"{"name":"a","tags":"administrator, monitoring"}"#).unwrap();
        assert_eq!(old.tags, ["administrator", "monitoring"]);
        let new: BrokerUser = serde_json::from_str(r#"{"name":"a","tags":["administrator"]}"#).unwrap();
        assert!(new.has_tag("administrator"));
        let none: BrokerUser = serde_json::from_str(r#"{"name":"a","tags":""}"#).unwrap();
        assert!(none.tags.is_empty());
    }

    #[test]
    fn generated_passwords_differ_and_need_no_escaping() {
        let (a, b) = (generate_password(), generate_password());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), PASSWORD_LENGTH);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
