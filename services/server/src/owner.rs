//! Who owns a policy or task on a site: authored here (`local`), or pushed
//! by the master (`master`) and so read-only here.

use serde::Serialize;
use tokio_postgres::types::{FromSql, Type};

/// The `owner` column of `policies` and `tasks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Authored on this server.
    Local,
    /// Sent by this server's master; changed only there.
    Master,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Master => "master",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "master" => Some(Self::Master),
            _ => None,
        }
    }
}

impl<'a> FromSql<'a> for Owner {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let s = <&str as FromSql>::from_sql(ty, raw)?;
        Self::parse(s).ok_or_else(|| format!("owner '{s}' is neither local nor master").into())
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_and_serialize_as_stored() {
        for owner in [Owner::Local, Owner::Master] {
            assert_eq!(Owner::parse(owner.as_str()), Some(owner));
            assert_eq!(serde_json::to_value(owner).unwrap(), owner.as_str());
        }
        assert_eq!(Owner::parse("slave"), None);
    }
}
