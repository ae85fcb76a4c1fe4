//! The versioned envelope every Rampart message travels in.
//!
//! ```json
//! { "v": 1, "id": "…uuid…", "kind": "agent.heartbeat", "from": "ep-0001",
//!   "seq": 42, "sent_at": "2026-11-26T10:00:00Z", "body": { … } }
//! ```
//!
//! The AMQP properties mirror it: `message_id` = id, `type` = kind,
//! `content_type` = `application/json`, persistent delivery. A consumer calls
//! [`Envelope::decode`] and gets either a trusted envelope or a
//! [`Rejection`] whose text becomes the dead-letter reason.

use chrono::{DateTime, Utc};
use lapin::{
    types::{AMQPValue, FieldTable, ShortString},
    BasicProperties,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// The only envelope version this build understands.
pub const VERSION: u32 = 1;
/// Largest message body accepted by any consumer (1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Header carrying the HMAC-SHA256 signature of the body (see [`crate::signing`]).
pub const SIGNATURE_HEADER: &str = "x-rampart-signature";
/// Header set on dead-lettered messages: why the message was refused.
pub const REASON_HEADER: &str = "x-rampart-reason";
/// Header set on dead-lettered messages: the queue the message came from.
pub const SOURCE_QUEUE_HEADER: &str = "x-rampart-queue";
/// Header of a parked message: the AMQP `user_id` the original carried
/// (the broker-validated sender; the parked copy cannot carry it).
pub const USER_ID_HEADER: &str = "x-rampart-user-id";
pub const CONTENT_TYPE: &str = "application/json";

/// A message as it travels on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u32,
    pub id: Uuid,
    pub kind: String,
    /// The sender: an instance id, or an endpoint id for agent messages.
    pub from: String,
    /// Per-sender sequence number, increasing.
    pub seq: u64,
    pub sent_at: DateTime<Utc>,
    /// The body as the JSON text it travels as. It is parsed once, straight
    /// into the type its kind promises, by [`Envelope::body`]: a replication
    /// batch of several megabytes is never built as a tree of values.
    pub body: Box<RawValue>,
}

/// Envelopes are equal when they say the same thing in the same words (the
/// body compared as text).
impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        (self.v, self.id, &self.kind, &self.from, self.seq, self.sent_at)
            == (other.v, other.id, &other.kind, &other.from, other.seq, other.sent_at)
            && self.body.get() == other.body.get()
    }
}

/// Why a delivery was refused. Its `Display` is the dead-letter reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("message is {size} bytes, over the {limit}-byte limit")]
    Oversized { size: usize, limit: usize },
    #[error("message is not a valid envelope: {0}")]
    Malformed(String),
    #[error("envelope version {0} is not supported (expected {VERSION})")]
    UnknownVersion(u32),
    #[error("unknown message kind '{0}'")]
    UnknownKind(String),
    #[error("body of '{kind}' is invalid: {detail}")]
    InvalidBody { kind: String, detail: String },
    #[error("AMQP type '{property}' does not match envelope kind '{kind}'")]
    KindMismatch { property: String, kind: String },
    #[error("signature missing or invalid")]
    BadSignature,
    /// An AMQP `content_encoding` this build cannot read (see [`crate::compression`]).
    #[error("content encoding '{0}' is not supported (only {lz4})", lz4 = crate::compression::LZ4)]
    UnknownEncoding(String),
    #[error("sender '{0}' is not allowed here")]
    UnknownSender(String),
    /// An endpoint command whose site seal does not hold (see [`crate::site_key`]).
    #[error(transparent)]
    Seal(#[from] crate::site_key::SealError),
    /// An endpoint command accepted once already.
    #[error("command {0} was accepted before (replayed)")]
    Replayed(Uuid),
    /// An agent message without the agent identity it needs: no
    /// broker-validated AMQP `user_id`, or one that does not own the endpoint.
    #[error("agent identity: {0}")]
    Identity(String),
}

impl From<crate::compression::DecodeError> for Rejection {
    fn from(e: crate::compression::DecodeError) -> Self {
        use crate::compression::DecodeError;
        match e {
            DecodeError::Oversized { size, limit } => Self::Oversized { size, limit },
            DecodeError::Corrupt(_) => Self::Malformed(e.to_string()),
            DecodeError::UnknownEncoding(encoding) => Self::UnknownEncoding(encoding),
        }
    }
}

impl Envelope {
    /// Wraps a typed body.
    pub fn new(kind: &str, from: &str, seq: u64, body: &impl Serialize) -> Self {
        Self {
            v: VERSION,
            id: Uuid::new_v4(),
            kind: kind.to_owned(),
            from: from.to_owned(),
            seq,
            sent_at: Utc::now(),
            body: serde_json::value::to_raw_value(body).expect("message bodies always serialize"),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("envelopes always serialize")
    }

    /// AMQP properties for publishing this envelope, with an optional signature header.
    pub fn properties(&self, signature: Option<String>) -> BasicProperties {
        properties(self.id, &self.kind, signature)
    }

    /// Parses and checks a raw payload: size, JSON shape, version, and that
    /// the AMQP `type` property (when present) agrees with the kind.
    pub fn decode(payload: &[u8], amqp_type: Option<&str>) -> Result<Self, Rejection> {
        Self::decode_limited(payload, amqp_type, MAX_MESSAGE_BYTES)
    }

    /// [`decode`](Self::decode) with another size limit, for the few kinds
    /// that carry bulk data (replication batches).
    pub fn decode_limited(payload: &[u8], amqp_type: Option<&str>, limit: usize) -> Result<Self, Rejection> {
        if payload.len() > limit {
            return Err(Rejection::Oversized { size: payload.len(), limit });
        }
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(envelope) => envelope,
            // A v2 envelope may well not parse as a v1 one: say so, rather
            // than what it lacks.
            Err(e) => return Err(other_version(payload).unwrap_or_else(|| Rejection::Malformed(e.to_string()))),
        };
        if envelope.v != VERSION {
            return Err(Rejection::UnknownVersion(envelope.v));
        }
        if let Some(t) = amqp_type {
            if t != envelope.kind {
                return Err(Rejection::KindMismatch { property: t.to_owned(), kind: envelope.kind });
            }
        }
        Ok(envelope)
    }

    /// [`decode_limited`](Self::decode_limited) of a payload as it
    /// travelled: decompressed first when its AMQP `content_encoding` says
    /// so ([`crate::compression`]). `limit` bounds both the bytes received
    /// and the envelope they hold.
    pub fn decode_wire(
        payload: &[u8],
        encoding: Option<&str>,
        amqp_type: Option<&str>,
        limit: usize,
    ) -> Result<Self, Rejection> {
        if payload.len() > limit {
            return Err(Rejection::Oversized { size: payload.len(), limit });
        }
        let envelope = crate::compression::decompress(payload, encoding, limit)?;
        Self::decode_limited(&envelope, amqp_type, limit)
    }

    /// Deserializes the body into the type its kind promises.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, Rejection> {
        serde_json::from_str(self.body.get())
            .map_err(|e| Rejection::InvalidBody { kind: self.kind.clone(), detail: e.to_string() })
    }
}

/// The rejection of a payload that does not parse as an envelope of this
/// version but says it is of another one.
fn other_version(payload: &[u8]) -> Option<Rejection> {
    #[derive(Deserialize)]
    struct Version {
        v: u64,
    }
    let Version { v } = serde_json::from_slice(payload).ok()?;
    (v != u64::from(VERSION)).then(|| Rejection::UnknownVersion(v.min(u64::from(u32::MAX)) as u32))
}

/// AMQP properties of an envelope known by its id and kind (e.g. stored
/// bytes in an outbox), with an optional signature header.
pub fn properties(id: Uuid, kind: &str, signature: Option<String>) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_message_id(ShortString::from(id.to_string()))
        .with_type(ShortString::from(kind.to_owned()))
        .with_content_type(ShortString::from(CONTENT_TYPE))
        .with_delivery_mode(2);
    if let Some(signature) = signature {
        let mut headers = FieldTable::default();
        headers.insert(SIGNATURE_HEADER.into(), AMQPValue::LongString(signature.into()));
        props = props.with_headers(headers);
    }
    props
}

/// The AMQP `content_encoding` of a message, if any (see [`crate::compression`]).
pub fn content_encoding(props: &BasicProperties) -> Option<&str> {
    props.content_encoding().as_ref().map(|e| e.as_str())
}

/// Reads a string header from AMQP properties.
pub fn header_str<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a str> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope::new("agent.heartbeat", "ep-1", 7, &serde_json::json!({"a": 1}))
    }

    #[test]
    fn round_trips() {
        let e = sample();
        let back = Envelope::decode(&e.to_bytes(), Some("agent.heartbeat")).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        let err = Envelope::decode(b"{not json", None).unwrap_err();
        assert!(matches!(err, Rejection::Malformed(_)), "{err}");
    }

    #[test]
    fn refuses_unknown_version() {
        let mut raw = serde_json::to_value(sample()).unwrap();
        raw["v"] = 2.into();
        let err = Envelope::decode(&serde_json::to_vec(&raw).unwrap(), None).unwrap_err();
        assert_eq!(err, Rejection::UnknownVersion(2));
        assert_eq!(err.to_string(), "envelope version 2 is not supported (expected 1)");
    }

    #[test]
    fn a_newer_version_is_named_even_when_its_shape_changed() {
        let mut raw = serde_json::to_value(sample()).unwrap();
        raw["v"] = 2.into();
        raw["trace"] = "abc".into();
        let err = Envelope::decode(&serde_json::to_vec(&raw).unwrap(), None).unwrap_err();
        assert_eq!(err, Rejection::UnknownVersion(2));
        raw.as_object_mut().unwrap().remove("v");
        let err = Envelope::decode(&serde_json::to_vec(&raw).unwrap(), None).unwrap_err();
        assert!(matches!(&err, Rejection::Malformed(m) if m.contains("`v`") || m.contains("trace")), "{err}");
    }

    #[test]
    fn bodies_parse_into_their_type_from_the_text() {
        let e = sample();
        assert_eq!(e.body.get(), r#"{"a":1}"#);
        let body: std::collections::BTreeMap<String, u32> = e.body().unwrap();
        assert_eq!(body["a"], 1);
        let err = e.body::<Vec<u32>>().unwrap_err();
        assert!(matches!(err, Rejection::InvalidBody { .. }), "{err}");
    }

    #[test]
    fn compressed_envelopes_decode_as_they_travel() {
        let e = Envelope::new("replication.batch", "paris", 7, &vec!["row"; 10_000]);
        let (wire, encoding) = crate::compression::compress(e.to_bytes());
        assert_eq!(encoding, Some(crate::compression::LZ4));
        assert_eq!(Envelope::decode_wire(&wire, encoding, None, MAX_MESSAGE_BYTES).unwrap(), e);
        let err = Envelope::decode_wire(&wire, encoding, None, 1000).unwrap_err();
        assert!(matches!(err, Rejection::Oversized { limit: 1000, .. }), "{err}");
        let err = Envelope::decode_wire(&wire, None, None, MAX_MESSAGE_BYTES).unwrap_err();
        assert!(matches!(err, Rejection::Malformed(_)), "{err}");
    }

    #[test]
    fn refuses_oversized() {
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(Envelope::decode(&big, None), Err(Rejection::Oversized { .. })));
    }

    #[test]
    fn refuses_type_property_that_disagrees() {
        let e = sample();
        let err = Envelope::decode(&e.to_bytes(), Some("agent.detection")).unwrap_err();
        assert!(matches!(err, Rejection::KindMismatch { .. }));
    }

    #[test]
    fn refuses_unknown_fields() {
        let mut raw = serde_json::to_value(sample()).unwrap();
        raw["extra"] = true.into();
        let err = Envelope::decode(&serde_json::to_vec(&raw).unwrap(), None).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }
}
