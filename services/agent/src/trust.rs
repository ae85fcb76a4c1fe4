//! Whether a command really comes from the site: its seal verifies with the
//! site's public key (`--site-key`), it has not expired, and it was not
//! accepted before. Every refusal is counted by reason ([`CommandRefusals`]);
//! the consumer loop dead-letters the command with the reason and logs it.
//!
//! Accepted command ids are remembered until their seal expires: a replay
//! before then is refused as replayed, after then as stale. The memory lives
//! as long as the process (see `docs/security.md` for what that leaves open).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use chrono::{DateTime, Utc};
use rampart_shared::{
    envelope::Rejection,
    site_key::{SealError, SitePublicKey},
};
use uuid::Uuid;

/// Commands refused, by reason: printed in the fleet's summary line.
#[derive(Debug, Default)]
pub struct CommandRefusals {
    /// No seal at all.
    pub unsigned: AtomicU64,
    /// A seal that is malformed, altered, made with another key, or that
    /// this process cannot check (no site key configured).
    pub bad_signature: AtomicU64,
    /// A command accepted before, seen again.
    pub replayed: AtomicU64,
    /// Expired, or with an expiry further ahead than the site signs.
    pub stale: AtomicU64,
}

impl CommandRefusals {
    /// `(unsigned, bad_signature, replayed, stale)` as they are now.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (read(&self.unsigned), read(&self.bad_signature), read(&self.replayed), read(&self.stale))
    }

    fn count(&self, rejection: &Rejection) {
        let counter = match rejection {
            Rejection::Seal(SealError::Unsigned) => &self.unsigned,
            Rejection::Seal(SealError::Expired(_) | SealError::TooFarAhead(_)) => &self.stale,
            Rejection::Replayed(_) => &self.replayed,
            _ => &self.bad_signature,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ids of accepted commands, until their seals expire.
#[derive(Debug, Default)]
struct Accepted {
    expiry: HashMap<Uuid, DateTime<Utc>>,
    /// In the order accepted, which is nearly the order of expiry: the
    /// front is forgotten once expired.
    order: VecDeque<(DateTime<Utc>, Uuid)>,
}

impl Accepted {
    /// Remembers `id` until `expires_at`; `false` if it is remembered already.
    fn insert(&mut self, id: Uuid, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        while self.order.front().is_some_and(|(expires, _)| *expires <= now) {
            let (_, old) = self.order.pop_front().expect("front exists");
            self.expiry.remove(&old);
        }
        if self.expiry.contains_key(&id) {
            return false;
        }
        self.expiry.insert(id, expires_at);
        self.order.push_back((expires_at, id));
        true
    }
}

/// The checks every command passes before the fleet sees it.
#[derive(Debug)]
pub struct CommandTrust {
    /// `None`: no `--site-key` given, so no command can be verified.
    site_key: Option<SitePublicKey>,
    accepted: Mutex<Accepted>,
    refusals: std::sync::Arc<CommandRefusals>,
}

impl CommandTrust {
    pub fn new(site_key: Option<SitePublicKey>, refusals: std::sync::Arc<CommandRefusals>) -> Self {
        Self { site_key, accepted: Mutex::default(), refusals }
    }

    /// Accepts command `id` published as `payload` with `routing_key` and
    /// `seal`, or says (and counts) why not.
    pub fn check(
        &self,
        id: Uuid,
        routing_key: &str,
        payload: &[u8],
        seal: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        let outcome = self.verify(id, routing_key, payload, seal, now);
        if let Err(rejection) = &outcome {
            self.refusals.count(rejection);
        }
        outcome
    }

    fn verify(
        &self,
        id: Uuid,
        routing_key: &str,
        payload: &[u8],
        seal: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        let Some(site_key) = &self.site_key else {
            return Err(Rejection::Seal(SealError::Malformed(
                "this agent has no site key (--site-key) to verify with",
            )));
        };
        let expires_at = site_key.open(routing_key, payload, seal, now)?;
        let fresh = self.accepted.lock().expect("the accepted ids are never poisoned").insert(id, expires_at, now);
        if fresh {
            Ok(())
        } else {
            Err(Rejection::Replayed(id))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Duration;
    use rampart_shared::site_key::{SiteKey, COMMAND_VALIDITY};

    use super::*;

    const KEY: &str = "site.paris.endpoint.sim1-00001";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn trust(site: &SiteKey) -> (CommandTrust, Arc<CommandRefusals>) {
        let refusals = Arc::new(CommandRefusals::default());
        (CommandTrust::new(Some(site.public()), refusals.clone()), refusals)
    }

    #[test]
    fn each_refusal_is_counted_by_reason() {
        let site = SiteKey::generate();
        let (trust, refusals) = trust(&site);
        let good = site.seal(KEY, b"p", now() + COMMAND_VALIDITY);
        let id = Uuid::new_v4();
        assert_eq!(trust.check(id, KEY, b"p", Some(&good), now()), Ok(()));
        assert_eq!(trust.check(id, KEY, b"p", Some(&good), now()), Err(Rejection::Replayed(id)));
        assert!(trust.check(Uuid::new_v4(), KEY, b"p", None, now()).is_err());
        let other = SiteKey::generate().seal(KEY, b"p", now() + COMMAND_VALIDITY);
        assert!(trust.check(Uuid::new_v4(), KEY, b"p", Some(&other), now()).is_err());
        let expired = site.seal(KEY, b"p", now() - Duration::seconds(1));
        assert!(trust.check(Uuid::new_v4(), KEY, b"p", Some(&expired), now()).is_err());
        assert_eq!(refusals.snapshot(), (1, 1, 1, 1));
        let blind = CommandTrust::new(None, refusals.clone());
        assert!(blind.check(Uuid::new_v4(), KEY, b"p", Some(&good), now()).is_err());
        assert_eq!(refusals.snapshot(), (1, 2, 1, 1));
    }

    #[test]
    fn ids_are_forgotten_once_their_seal_expired() {
        let mut accepted = Accepted::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(accepted.insert(a, now() + Duration::minutes(1), now()));
        assert!(accepted.insert(b, now() + Duration::minutes(2), now()));
        assert!(!accepted.insert(a, now() + Duration::minutes(1), now() + Duration::seconds(59)));
        assert!(accepted.insert(Uuid::new_v4(), now() + Duration::minutes(3), now() + Duration::seconds(61)));
        assert_eq!(accepted.expiry.len(), 2, "a is forgotten, b and the new one are remembered");
        assert!(!accepted.expiry.contains_key(&a));
    }
}
