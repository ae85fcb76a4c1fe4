//! HMAC-SHA256 signatures of message bodies.
//!
//! The signature covers the exact payload bytes and travels hex-encoded in the
//! [`SIGNATURE_HEADER`](crate::envelope::SIGNATURE_HEADER). Keys are random
//! 32-byte values exchanged out of band (at registration).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A shared secret for signing and verifying messages.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A key configured as text (e.g. `<EventKey>`): its bytes are the key.
    pub fn from_secret(secret: &str) -> Self {
        Self(secret.as_bytes().to_vec())
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        decode_hex(hex).filter(|b| b.len() >= 16).map(Self)
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Hex signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload);
        encode_hex(&mac.finalize().into_bytes())
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, payload: &[u8], signature_hex: &str) -> bool {
        let Some(sig) = decode_hex(signature_hex) else {
            return false;
        };
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload);
        mac.verify_slice(&sig).is_ok()
    }
}

pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let key = SigningKey::generate();
        let sig = key.sign(b"payload");
        assert!(key.verify(b"payload", &sig));
        assert!(!key.verify(b"payload!", &sig));
        assert!(!SigningKey::generate().verify(b"payload", &sig));
        assert!(!key.verify(b"payload", "zz"));
    }

    #[test]
    fn hex_round_trips() {
        let key = SigningKey::generate();
        let back = SigningKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(back.sign(b"x"), key.sign(b"x"));
        assert!(SigningKey::from_hex("abc").is_none());
    }
}
