//! Helpers of the abuse suite (`tests/tests/abuse_*.rs`): raw HTTP requests
//! that bypass the JSON helpers, a snapshot of a database to prove a refused
//! request or message changed nothing, raw AMQP publishes (bodies no sender
//! of ours would produce) and the parking queues' reasons.

use std::{collections::BTreeMap, time::Duration};

use lapin::{options::BasicGetOptions, types::AMQPValue, BasicProperties};
use rampart_shared::{
    amqp::{publisher::Outgoing, Broker},
    compression,
    envelope::{header_str, properties, REASON_HEADER, SOURCE_QUEUE_HEADER},
    signing::SigningKey,
    topology::Topology,
    Envelope, Secret,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{TestServer, AMQP_URL, TOKEN, WAIT};

/// What a raw request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The JSON body, or the text as a JSON string when it is not JSON.
    pub body: Value,
    pub content_type: String,
}

impl Answer {
    /// The `error.code` of a JSON error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The `error.message` of a JSON error.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

/// How a raw request authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Auth {
    None,
    Wrong,
    Right,
}

/// Sends `body` as is to `server`, with `content_type` when given.
pub async fn request(
    server: &TestServer,
    method: Method,
    path: &str,
    auth: Auth,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Answer {
    let mut request = server.http.request(method, format!("{}{path}", server.base)).timeout(Duration::from_secs(30));
    request = match auth {
        Auth::None => request,
        Auth::Wrong => request.bearer_auth("not-the-token-0123456789"),
        Auth::Right => request.bearer_auth(TOKEN),
    };
    if let Some(ct) = content_type.as_ref() {
        request = request.header("content-type", *ct);
    }
    let body_len = body.as_ref().map(Vec::len);
    if let Some(body) = body {
        request = request.body(body);
    }
    let response =
        request.send().await.unwrap_or_else(|e| panic!("{path}: no answer to a {body_len:?}-byte body: {e}"));
    let status = response.status();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = response.text().await.unwrap_or_default();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)), content_type }
}

/// A JSON request with the right token.
pub async fn json(server: &TestServer, method: Method, path: &str, body: impl Into<Vec<u8>>) -> Answer {
    request(server, method, path, Auth::Right, Some("application/json"), Some(body.into())).await
}

/// Every row of every table of a database, as (row count, checksum) per
/// table: equal snapshots mean nothing was written in between.
pub async fn snapshot(pool: &deadpool_postgres::Pool) -> BTreeMap<String, (i64, String)> {
    let client = pool.get().await.expect("a database connection");
    let tables: Vec<String> = client
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", &[])
        .await
        .expect("tables listed")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut snapshot = BTreeMap::new();
    for table in tables {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table}\" t"
                ),
                &[],
            )
            .await
            .expect("table read");
        snapshot.insert(table, (row.get(0), row.get(1)));
    }
    snapshot
}

/// The tables whose content differs between two snapshots.
pub fn changed(before: &BTreeMap<String, (i64, String)>, after: &BTreeMap<String, (i64, String)>) -> Vec<String> {
    after.iter().filter(|(t, v)| before.get(*t) != Some(v)).map(|(t, _)| t.clone()).collect()
}

/// A raw message: `payload` as is, with `kind` as the AMQP type (when given)
/// and `headers` (e.g. a signature).
pub fn raw(
    exchange: &str,
    routing_key: &str,
    payload: Vec<u8>,
    kind: Option<&str>,
    headers: &[(&str, &str)],
) -> Outgoing {
    let mut properties = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
    if let Some(kind) = kind {
        properties = properties.with_type(kind.into());
    }
    if !headers.is_empty() {
        let mut table = lapin::types::FieldTable::default();
        for (name, value) in headers {
            table.insert((*name).into(), AMQPValue::LongString((*value).into()));
        }
        properties = properties.with_headers(table);
    }
    Outgoing { exchange: exchange.to_owned(), routing_key: routing_key.to_owned(), payload, properties }
}

/// One message found in a parking queue.
#[derive(Clone, Debug)]
pub struct Parked {
    pub reason: String,
    /// `x-rampart-queue`: where the consumer refused it.
    pub queue: String,
    pub kind: String,
    /// The broker's own `x-death` reason (`delivery_limit`, ...), if it dead-lettered it.
    pub death: Option<String>,
}

/// Takes (and acks) the messages of `queue`'s parking queue until `count`
/// are there, failing after [`WAIT`].
pub async fn parked(queue: &str, count: usize) -> Vec<Parked> {
    let broker = Broker::new(Secret::new(AMQP_URL.to_owned()), "rampart-tests parking");
    let channel = broker.channel().await.expect("a broker channel");
    let parking = Topology::parking_queue(queue);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut found = Vec::new();
    while found.len() < count {
        let got =
            channel.basic_get(parking.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("basic.get");
        let Some(message) = got else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{parking} holds {} of {count} messages: {found:?}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let p = &message.delivery.properties;
        found.push(Parked {
            reason: header_str(p, REASON_HEADER).unwrap_or_default().to_owned(),
            queue: header_str(p, SOURCE_QUEUE_HEADER).unwrap_or_default().to_owned(),
            kind: p.kind().as_ref().map(|k| k.to_string()).unwrap_or_default(),
            death: death_reason(p),
        });
    }
    broker.close().await;
    found
}

fn death_reason(properties: &BasicProperties) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = properties.headers().as_ref()?.inner().get("x-death")? else { return None };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else { return None };
    match first.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Asserts that for every expected reason one parked message says it.
pub fn assert_reasons(parked: &[Parked], expected: &[&str]) {
    for reason in expected {
        assert!(parked.iter().any(|p| p.reason.contains(reason)), "no parked message says '{reason}': {parked:#?}");
    }
}

/// The queues of `namespace` on the broker with their arguments, from
/// `rabbitmqctl list_queues` (JSON).
pub fn queue_arguments(namespace: &str) -> BTreeMap<String, Value> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "--quiet", "--formatter", "json", "name", "arguments"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl: {}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("rabbitmqctl prints JSON");
    let prefix = format!("{namespace}.");
    listed
        .into_iter()
        .filter_map(|q| {
            let name = q["name"].as_str()?.to_owned();
            name.starts_with(&prefix).then(|| (name, arguments_object(&q["arguments"])))
        })
        .collect()
}

/// `rabbitmqctl` prints arguments as `[[name, type, value], ...]`.
fn arguments_object(arguments: &Value) -> Value {
    match arguments {
        Value::Array(triples) => Value::Object(
            triples
                .iter()
                .filter_map(|t| Some((t.get(0)?.as_str()?.to_owned(), t.as_array()?.last()?.clone())))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A message one consumer must refuse, and the words its parked copy's
/// `x-rampart-reason` must hold.
pub struct Bad {
    pub message: Outgoing,
    pub reason: String,
}

/// The five ways any consumer's input can be broken, built from a valid
/// envelope `good` for `exchange`/`routing_key`, signed with `key` when the
/// consumer checks signatures (so each reaches the check it is about):
/// malformed JSON, an unknown kind, an unknown version, a body over
/// `limit` bytes and an AMQP `type` that disagrees with the kind.
pub fn broken_variants(
    exchange: &str,
    routing_key: &str,
    good: &Envelope,
    key: Option<&SigningKey>,
    limit: usize,
) -> Vec<Bad> {
    let signed = |payload: Vec<u8>, kind: &str| {
        signed_as_it_travels(exchange, routing_key, payload, key, |signature| properties(good.id, kind, signature))
    };
    let mut unknown = good.clone();
    unknown.kind = format!("{}_unheard_of", good.kind);
    let mut version = serde_json::to_value(good).expect("envelopes serialize");
    version["v"] = 9.into();
    let mut oversized = good.clone();
    oversized.body = serde_json::value::to_raw_value(&serde_json::json!({"padding": "x".repeat(limit)}))
        .expect("a padding body serializes");
    vec![
        Bad { message: signed(b"{this is not json".to_vec(), &good.kind), reason: "not a valid envelope".into() },
        Bad {
            message: signed(unknown.to_bytes(), &unknown.kind),
            reason: format!("unknown message kind '{}'", unknown.kind),
        },
        Bad {
            message: signed(serde_json::to_vec(&version).unwrap(), &good.kind),
            reason: "envelope version 9 is not supported".into(),
        },
        Bad { message: signed(oversized.to_bytes(), &good.kind), reason: format!("over the {limit}-byte limit") },
        Bad {
            message: signed(good.to_bytes(), "some.other_kind"),
            reason: format!("AMQP type 'some.other_kind' does not match envelope kind '{}'", good.kind),
        },
    ]
}

/// Three ways a compressed body ([`rampart_shared::compression`]) can be
/// broken, built from a valid envelope `good` and signed with `key` as they
/// travel: a size over `limit` announced, a block cut short, an encoding
/// no consumer reads.
pub fn broken_encodings(
    exchange: &str,
    routing_key: &str,
    good: &Envelope,
    key: Option<&SigningKey>,
    limit: usize,
) -> Vec<Bad> {
    let encoded = |payload: Vec<u8>, encoding: &str| {
        signed_as_it_travels(exchange, routing_key, payload, key, |signature| {
            properties(good.id, &good.kind, signature).with_content_encoding(encoding.into())
        })
    };
    let block = compression::lz4(&good.to_bytes());
    let mut oversized = u32::try_from(limit + 1).expect("limits fit a u32").to_le_bytes().to_vec();
    oversized.extend_from_slice(&block[4..]);
    vec![
        Bad { message: encoded(oversized, compression::LZ4), reason: format!("over the {limit}-byte limit") },
        Bad {
            message: encoded(block[..block.len() / 2].to_vec(), compression::LZ4),
            reason: "lz4-compressed body is corrupt".into(),
        },
        Bad { message: encoded(good.to_bytes(), "gzip"), reason: "content encoding 'gzip' is not supported".into() },
    ]
}

/// `payload` for `exchange`/`routing_key`, its properties made with the
/// signature of those very bytes (with `key`, when given).
fn signed_as_it_travels(
    exchange: &str,
    routing_key: &str,
    payload: Vec<u8>,
    key: Option<&SigningKey>,
    properties: impl FnOnce(Option<String>) -> BasicProperties,
) -> Outgoing {
    let signature = key.map(|k| k.sign(&payload));
    Outgoing {
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        properties: properties(signature),
        payload,
    }
}

/// A well-formed message that passes every check of its consumer but that
/// the database can never store (a NUL character in a text): the consumer
/// must park it, not retry it forever.
pub fn poison(exchange: &str, routing_key: &str, envelope: &Envelope, key: Option<&SigningKey>) -> Bad {
    Bad {
        message: Outgoing::envelope(exchange, routing_key, envelope, key),
        reason: "database refused the message".into(),
    }
}

/// Publishes the messages of `bad` (confirmed and routed); returns the reasons to expect.
pub async fn inject_bad(bad: Vec<Bad>) -> Vec<String> {
    let reasons = bad.iter().map(|b| b.reason.clone()).collect();
    crate::inject(bad.into_iter().map(|b| b.message).collect()).await;
    reasons
}

/// Asserts that every queue of `namespace` that a consumer reads has the
/// delivery limit, the dead-letter wiring and a parking queue, that every
/// parking queue is a plain quorum queue (no limit: an operator reads it),
/// and that `expected` queues are among them; returns the consumed queues.
pub fn assert_delivery_limits(namespace: &str, expected: &[String]) -> Vec<String> {
    let queues = queue_arguments(namespace);
    let consumed: Vec<String> = queues.keys().filter(|q| !q.ends_with(".parking")).cloned().collect();
    for queue in expected {
        assert!(consumed.contains(queue), "{queue} is not declared: {queues:#?}");
    }
    for queue in &consumed {
        let args = &queues[queue];
        let dlx = format!("{namespace}.dlx");
        let want = serde_json::json!({
            "x-queue-type": "quorum", "x-delivery-limit": rampart_shared::topology::DELIVERY_LIMIT,
            "x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": queue,
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish",
        });
        assert_eq!(args, &want, "arguments of {queue}");
        let parking = Topology::parking_queue(queue);
        assert_eq!(queues.get(&parking), Some(&serde_json::json!({"x-queue-type": "quorum"})), "{parking} of {queue}");
    }
    for parking in queues.keys().filter(|q| q.ends_with(".parking")) {
        assert!(consumed.contains(&parking.trim_end_matches(".parking").to_owned()), "{parking} parks for no queue");
    }
    consumed
}
