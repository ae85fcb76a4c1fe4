//! The site's command key: Ed25519 seals on the commands a site sends its
//! endpoints (`endpoint.task`, `endpoint.policy`, `endpoint.deploy`,
//! `endpoint.cancel`).
//!
//! A site signs each command once, when it is written to the outbox. The
//! seal travels in the [`SIGNATURE_HEADER`](crate::envelope::SIGNATURE_HEADER)
//! as `ed25519:<expires>:<signature hex>`, `<expires>` in Unix seconds. The
//! signature covers, in this order and separated by NUL bytes, a domain tag
//! ([`DOMAIN`]), the routing key (so a command for one endpoint cannot be
//! redirected to another), the expiry, and the exact published bytes. An
//! agent knows the site's public key ([`SitePublicKey`]) and
//! [`opens`](SitePublicKey::open) every command before it applies it; it
//! remembers the ids of the commands it accepted until they expire, so a
//! replay is refused too (see `docs/protocol.md`, "Signed endpoint commands").

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::signing::{decode_hex, encode_hex};

/// What every signed byte string starts with: a seal made for anything else
/// never verifies as a command seal.
pub const DOMAIN: &[u8] = b"rampart endpoint command v1";
/// How long a command stays valid after the site signed it: far beyond the
/// broker or agent outages commands wait out in the outbox or in an agent's
/// queue (minutes), short enough that an agent's memory of accepted ids
/// stays small.
pub const COMMAND_VALIDITY: Duration = Duration::hours(6);
/// How far the clocks of a site and an agent may disagree.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);
/// The scheme named at the start of a seal.
pub const SCHEME: &str = "ed25519";

/// The site's private signing key. Kept in the site's database, never
/// printed: `Debug` shows only the fingerprint of its public half.
#[derive(Clone)]
pub struct SiteKey(SigningKey);

impl fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiteKey({})", self.public().fingerprint())
    }
}

impl SiteKey {
    /// A fresh random key (a site's first start).
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The key as stored: 32 secret bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let secret: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(SigningKey::from_bytes(&secret)))
    }

    /// The 32 secret bytes, for the site's database only.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> SitePublicKey {
        SitePublicKey(self.0.verifying_key())
    }

    /// The seal of `payload` published with `routing_key`, valid until `expires_at`.
    pub fn seal(&self, routing_key: &str, payload: &[u8], expires_at: DateTime<Utc>) -> String {
        let expires = expires_at.timestamp();
        let signature = self.0.sign(&signed_bytes(routing_key, expires, payload));
        format!("{SCHEME}:{expires}:{}", encode_hex(&signature.to_bytes()))
    }

    /// The seal of a command signed now, valid for [`COMMAND_VALIDITY`].
    pub fn seal_now(&self, routing_key: &str, payload: &[u8]) -> String {
        self.seal(routing_key, payload, Utc::now() + COMMAND_VALIDITY)
    }
}

/// The public half of a site's command key: what its agents verify with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SitePublicKey(VerifyingKey);

impl fmt::Debug for SitePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SitePublicKey({})", self.to_hex())
    }
}

/// Why a command's seal is refused. Its `Display` is the dead-letter reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("command is not signed by the site")]
    Unsigned,
    #[error("command signature is malformed: {0}")]
    Malformed(&'static str),
    #[error("command signature does not verify with the site key (altered, or signed by another key)")]
    BadSignature,
    #[error("command expired at {0} (stale)")]
    Expired(DateTime<Utc>),
    #[error("command expiry {0} is further ahead than the site ever signs (stale clock or forged expiry)")]
    TooFarAhead(DateTime<Utc>),
}

impl SitePublicKey {
    /// Reads 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes: [u8; 32] = decode_hex(hex.trim())?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(Self)
    }

    pub fn to_hex(&self) -> String {
        encode_hex(self.0.as_bytes())
    }

    /// The first 16 bytes of the SHA-256 of the key, as `xxxx:xxxx:...`:
    /// short enough for an operator to compare by eye.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest[..16].chunks(2).map(encode_hex).collect::<Vec<_>>().join(":")
    }

    /// Checks the seal of `payload` received with `routing_key` at `now`,
    /// and returns the command's expiry. The signature is checked before the
    /// time, so a forged seal is never reported as merely stale.
    pub fn open(
        &self,
        routing_key: &str,
        payload: &[u8],
        seal: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, SealError> {
        let seal = seal.ok_or(SealError::Unsigned)?;
        let mut parts = seal.splitn(3, ':');
        let (Some(scheme), Some(expires), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Malformed("expected ed25519:<expires>:<signature>"));
        };
        if scheme != SCHEME {
            return Err(SealError::Malformed("not an ed25519 seal"));
        }
        let expires: i64 = expires.parse().map_err(|_| SealError::Malformed("expiry is not a number"))?;
        let signature: [u8; 64] = decode_hex(signature)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(SealError::Malformed("signature is not 64 bytes of hex"))?;
        self.0
            .verify(&signed_bytes(routing_key, expires, payload), &Signature::from_bytes(&signature))
            .map_err(|_| SealError::BadSignature)?;
        let expires_at = DateTime::from_timestamp(expires, 0).ok_or(SealError::Malformed("expiry is out of range"))?;
        if expires_at <= now {
            return Err(SealError::Expired(expires_at));
        }
        if expires_at > now + COMMAND_VALIDITY + CLOCK_SKEW {
            return Err(SealError::TooFarAhead(expires_at));
        }
        Ok(expires_at)
    }
}

/// `DOMAIN \0 routing key \0 expiry \0 payload`: the bytes a seal signs.
fn signed_bytes(routing_key: &str, expires: i64, payload: &[u8]) -> Vec<u8> {
    let expires = expires.to_string();
    let mut bytes = Vec::with_capacity(DOMAIN.len() + routing_key.len() + expires.len() + payload.len() + 3);
    for part in [DOMAIN, routing_key.as_bytes(), expires.as_bytes()] {
        bytes.extend_from_slice(part);
        bytes.push(0);
    }
    bytes.extend_from_slice(payload);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "site.paris.endpoint.sim1-00001";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_seal_opens_with_the_sites_public_key_only() {
        let site = SiteKey::generate();
        let seal = site.seal(KEY, b"{\"v\":1}", now() + Duration::hours(1));
        assert_eq!(site.public().open(KEY, b"{\"v\":1}", Some(&seal), now()), Ok(now() + Duration::hours(1)));
        let other = SiteKey::generate().public();
        assert_eq!(other.open(KEY, b"{\"v\":1}", Some(&seal), now()), Err(SealError::BadSignature));
    }

    #[test]
    fn the_seal_covers_the_bytes_the_routing_key_and_the_expiry() {
        let site = SiteKey::generate();
        let public = site.public();
        let seal = site.seal(KEY, b"payload", now() + Duration::hours(1));
        assert_eq!(public.open(KEY, b"payload!", Some(&seal), now()), Err(SealError::BadSignature));
        let elsewhere = "site.paris.endpoint.sim1-00002";
        assert_eq!(public.open(elsewhere, b"payload", Some(&seal), now()), Err(SealError::BadSignature));
        let later = (now() + Duration::hours(2)).timestamp();
        let stretched = format!("ed25519:{later}:{}", seal.rsplit(':').next().unwrap());
        assert_eq!(public.open(KEY, b"payload", Some(&stretched), now()), Err(SealError::BadSignature));
    }

    #[test]
    fn unsigned_malformed_stale_and_far_ahead_are_refused() {
        let site = SiteKey::generate();
        let public = site.public();
        assert_eq!(public.open(KEY, b"p", None, now()), Err(SealError::Unsigned));
        for bad in ["", "ed25519:12", "hmac:1:00", "ed25519:x:00", "ed25519:1:zz", "ed25519:1:00"] {
            assert!(matches!(public.open(KEY, b"p", Some(bad), now()), Err(SealError::Malformed(_))), "{bad}");
        }
        let expired = site.seal(KEY, b"p", now() - Duration::seconds(1));
        assert_eq!(
            public.open(KEY, b"p", Some(&expired), now()),
            Err(SealError::Expired(now() - Duration::seconds(1)))
        );
        let far = now() + COMMAND_VALIDITY + CLOCK_SKEW + Duration::seconds(1);
        let ahead = site.seal(KEY, b"p", far);
        assert_eq!(public.open(KEY, b"p", Some(&ahead), now()), Err(SealError::TooFarAhead(far)));
        let fresh = site.seal_now(KEY, b"p");
        assert!(public.open(KEY, b"p", Some(&fresh), Utc::now()).is_ok());
    }

    #[test]
    fn keys_round_trip_and_never_print_their_secret() {
        let site = SiteKey::generate();
        let back = SiteKey::from_bytes(&site.to_bytes()).unwrap();
        assert_eq!(back.public(), site.public());
        assert_eq!(SitePublicKey::from_hex(&site.public().to_hex()), Some(site.public()));
        assert_eq!(SitePublicKey::from_hex("abc"), None);
        assert!(SiteKey::from_bytes(&[1; 31]).is_none());
        let printed = format!("{site:?}");
        assert!(!printed.contains(&encode_hex(&site.to_bytes())), "{printed}");
        assert_eq!(site.public().fingerprint().len(), 39, "{}", site.public().fingerprint());
    }
}
