//! License keys: a seat count and an expiry, signed by the vendor (Ed25519).
//!
//! A key reads `RAMPART1.<payload>.<signature>`, both parts base64url. The
//! payload is JSON ([`License`]). Servers verify with the vendor's public key
//! compiled into the build (`RAMPART_VENDOR_PUBLIC_KEY` at build time, else
//! the development key whose private half is `ops/license/vendor-dev.key`), so
//! editing the seat count by hand breaks the signature.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use chrono::NaiveDate;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const PREFIX: &str = "RAMPART1";

/// Public half of the development vendor key (see `ops/license/`).
const DEV_VENDOR_PUBLIC_KEY: &str = "ab59979523f8c3a3bd19ce73cd184d3f71e99938b236e7a0125bd885ac415e20";

/// The vendor public key this build trusts (hex).
pub const VENDOR_PUBLIC_KEY: &str = match option_env!("RAMPART_VENDOR_PUBLIC_KEY") {
    Some(key) => key,
    None => DEV_VENDOR_PUBLIC_KEY,
};

/// What a license grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    pub license_id: Uuid,
    pub customer: String,
    /// How many endpoints may be managed as licensed.
    pub seats: u32,
    pub issued_on: NaiveDate,
    /// Last day the license is valid.
    pub expires_on: NaiveDate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LicenseError {
    #[error("license key is not in the RAMPART1.<payload>.<signature> format")]
    Format,
    #[error("license key signature does not match: the key was altered or not issued by the vendor")]
    Forged,
    #[error("license {license_id} expired on {expires_on}")]
    Expired { license_id: Uuid, expires_on: NaiveDate },
    #[error("vendor key is invalid: {0}")]
    VendorKey(String),
}

impl License {
    /// Signs the license with the vendor's private key, giving the key text.
    pub fn issue(&self, vendor: &VendorKey) -> String {
        let payload = serde_json::to_vec(self).expect("license serializes");
        let signature = vendor.0.sign(&payload);
        format!("{PREFIX}.{}.{}", B64.encode(&payload), B64.encode(signature.to_bytes()))
    }

    /// Verifies a key against this build's vendor key and checks it has not
    /// expired on `today`.
    pub fn verify(key: &str, today: NaiveDate) -> Result<Self, LicenseError> {
        Self::verify_with(key, today, VENDOR_PUBLIC_KEY)
    }

    pub fn verify_with(key: &str, today: NaiveDate, public_key_hex: &str) -> Result<Self, LicenseError> {
        let public = parse_public_key(public_key_hex)?;
        let mut parts = key.trim().split('.');
        let (Some(PREFIX), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LicenseError::Format);
        };
        let payload = B64.decode(payload).map_err(|_| LicenseError::Format)?;
        let signature = B64.decode(signature).map_err(|_| LicenseError::Format)?;
        let signature = Signature::from_slice(&signature).map_err(|_| LicenseError::Format)?;
        public.verify(&payload, &signature).map_err(|_| LicenseError::Forged)?;
        let license: License = serde_json::from_slice(&payload).map_err(|_| LicenseError::Format)?;
        if license.expires_on < today {
            return Err(LicenseError::Expired { license_id: license.license_id, expires_on: license.expires_on });
        }
        Ok(license)
    }
}

fn parse_public_key(hex: &str) -> Result<VerifyingKey, LicenseError> {
    let bytes: [u8; 32] = crate::signing::decode_hex(hex.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LicenseError::VendorKey("public key must be 32 bytes of hex".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| LicenseError::VendorKey(e.to_string()))
}

/// The vendor's private signing key (32 bytes, hex in a file).
pub struct VendorKey(SigningKey);

impl std::fmt::Debug for VendorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VendorKey(***)")
    }
}

impl VendorKey {
    pub fn from_hex(hex: &str) -> Result<Self, LicenseError> {
        let bytes: [u8; 32] = crate::signing::decode_hex(hex.trim())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| LicenseError::VendorKey("private key must be 32 bytes of hex".into()))?;
        Ok(Self(SigningKey::from_bytes(&bytes)))
    }

    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn public_key_hex(&self) -> String {
        crate::signing::encode_hex(self.0.verifying_key().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn sample() -> License {
        License {
            license_id: Uuid::new_v4(),
            customer: "ACME".into(),
            seats: 100,
            issued_on: day("2026-01-01"),
            expires_on: day("2027-01-01"),
        }
    }

    #[test]
    fn issued_keys_verify() {
        let vendor = VendorKey::generate();
        let key = sample().issue(&vendor);
        let back = License::verify_with(&key, day("2026-06-01"), &vendor.public_key_hex()).unwrap();
        assert_eq!(back, License { ..back.clone() });
        assert_eq!(back.seats, 100);
    }

    #[test]
    fn edited_seats_are_forged() {
        let vendor = VendorKey::generate();
        let key = sample().issue(&vendor);
        let parts: Vec<&str> = key.split('.').collect();
        let mut payload: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        payload["seats"] = 100000.into();
        let edited = format!("{}.{}.{}", parts[0], B64.encode(serde_json::to_vec(&payload).unwrap()), parts[2]);
        assert_eq!(
            License::verify_with(&edited, day("2026-06-01"), &vendor.public_key_hex()),
            Err(LicenseError::Forged)
        );
        // Signed by someone else.
        let other = sample().issue(&VendorKey::generate());
        assert_eq!(
            License::verify_with(&other, day("2026-06-01"), &vendor.public_key_hex()),
            Err(LicenseError::Forged)
        );
    }

    #[test]
    fn expired_keys_are_refused() {
        let vendor = VendorKey::generate();
        let key = sample().issue(&vendor);
        let err = License::verify_with(&key, day("2027-01-02"), &vendor.public_key_hex()).unwrap_err();
        assert!(err.to_string().contains("expired on 2027-01-01"), "{err}");
    }

    #[test]
    fn garbage_is_a_format_error() {
        assert_eq!(License::verify("hello", day("2026-01-01")), Err(LicenseError::Format));
    }

    #[test]
    fn dev_vendor_key_matches_the_compiled_public_key() {
        let text = include_str!("../../ops/license/vendor-dev.key");
        let vendor = VendorKey::from_hex(text).unwrap();
        assert_eq!(vendor.public_key_hex(), DEV_VENDOR_PUBLIC_KEY);
    }
}
