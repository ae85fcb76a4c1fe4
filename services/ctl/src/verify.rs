//! `rampartctl verify`: does a master's copy of each slave's data match the
//! slave's own?
//!
//! The master asks each slave for checksums of its replicated tables; the
//! slave sends them with its next batch and the master compares them with
//! its copy. That takes a round trip over the message bus, so the command
//! starts the verifications, then asks about them every
//! [`POLL_INTERVAL`] until each has finished or `--timeout` has passed.
//!
//! The exit code is for scripts, as with `diff`: 0 every slave is in sync,
//! 1 a slave's data differs, 2 the answer is unknown (a verification did not
//! finish in time, or a request failed); 2 wins over 1.

use std::future::Future;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::client::{Answer, ApiClient, ApiError};
use crate::output::{count, emit, items, plural, reindent_json, text, time};
use crate::session::Session;
use crate::ExitError;

/// Exit code when a slave's data differs from the master's copy.
pub const OUT_OF_SYNC: u8 = 1;
/// Exit code when it is not known whether the copies match.
pub const UNDECIDED: u8 = 2;
/// How often a pending verification is asked about.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The exit codes, as `verify --help` shows them.
pub const EXIT_CODES: &str = "Exit codes:
  0  every slave verified is in sync
  1  a slave's data differs from the master's copy
  2  a verification did not finish within --timeout, or a request failed
     (run the command again)";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify only this slave (default: every active slave).
    #[arg(long, value_name = "ID")]
    slave: Option<String>,
    /// Stop waiting for the slaves' answers after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

/// A verification the master started.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Started {
    id: String,
    slave: String,
}

/// Where the verifications stand once polling is over.
#[derive(Debug)]
struct Polled {
    /// The finished verifications, as the server sent them, in the order
    /// they were started.
    finished: Vec<Answer>,
    /// The ones not finished when polling stopped.
    unfinished: Vec<Started>,
    /// Why polling stopped early, if it did.
    failure: Option<anyhow::Error>,
}

pub async fn run(args: VerifyArgs, session: &Session) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let client = &session.client;
    let started = start(client, args.slave.as_deref()).await.map_err(|e| ExitError::new(UNDECIDED, e))?;
    let polled = poll(started, deadline, POLL_INTERVAL, move |id| async move {
        client.get(&["api", "verifications", &id], &[]).await
    })
    .await;
    if session.json() {
        emit(&json_array(&polled.finished))?;
    } else {
        let rendered: String = polled.finished.iter().map(|a| render_verification(&a.value)).collect();
        emit(&rendered)?;
    }
    verdict(polled, args.timeout)
}

/// `POST /api/verifications`: one verification per slave asked about.
async fn start(client: &ApiClient, slave: Option<&str>) -> anyhow::Result<Vec<Started>> {
    let body = match slave {
        Some(slave) => json!({ "slave": slave }),
        None => json!({}),
    };
    let answer = client.post(&["api", "verifications"], &body).await?;
    let started: Vec<Started> = items(&answer.value["verifications"])
        .iter()
        .filter_map(|v| Some(Started { id: v["id"].as_str()?.to_owned(), slave: text(&v["slave"]) }))
        .collect();
    anyhow::ensure!(!started.is_empty(), "the master started no verification");
    Ok(started)
}

/// Asks about each unfinished verification every `interval` until all have
/// finished, `deadline` has passed, or a request fails.
async fn poll<F, Fut>(started: Vec<Started>, deadline: Instant, interval: Duration, mut fetch: F) -> Polled
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let mut results: Vec<(Started, Option<Answer>)> = started.into_iter().map(|s| (s, None)).collect();
    let mut failure = None;
    loop {
        for (verification, result) in results.iter_mut().filter(|(_, r)| r.is_none()) {
            match timeout_at(deadline, fetch(verification.id.clone())).await {
                Ok(Ok(answer)) if answer.value["state"] == "finished" => *result = Some(answer),
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(error)) => {
                    failure = Some(anyhow::Error::new(error).context(format!(
                        "Failed to read the verification of slave '{}' ({}); run the command again",
                        verification.slave, verification.id
                    )));
                    break;
                }
            }
        }
        let done = results.iter().all(|(_, r)| r.is_some());
        if done || failure.is_some() || Instant::now() >= deadline {
            break;
        }
        sleep_until(deadline.min(Instant::now() + interval)).await;
    }
    let mut polled = Polled { finished: Vec::new(), unfinished: Vec::new(), failure };
    for (verification, result) in results {
        match result {
            Some(answer) => polled.finished.push(answer),
            None => polled.unfinished.push(verification),
        }
    }
    polled
}

/// The exit: `Ok` when every slave is in sync, else an [`ExitError`]
/// saying why not.
fn verdict(polled: Polled, timeout_seconds: u64) -> anyhow::Result<()> {
    if let Some(failure) = polled.failure {
        return Err(ExitError::new(UNDECIDED, failure).into());
    }
    if !polled.unfinished.is_empty() {
        let (what, again) = match polled.unfinished.as_slice() {
            [one] => (
                format!("the verification of slave '{}'", one.slave),
                format!("rampartctl verify --slave {}", one.slave),
            ),
            all => (
                format!("the verifications of {}", quoted(all.iter().map(|v| v.slave.as_str()))),
                "rampartctl verify".to_owned(),
            ),
        };
        let error = anyhow::anyhow!(
            "{what} did not finish within {timeout_seconds} s; it can be re-run: `{again}` \
             (a slave answers only while it is online; a longer --timeout gives it more time)"
        );
        return Err(ExitError::new(UNDECIDED, error).into());
    }
    let differing: Vec<&str> = polled
        .finished
        .iter()
        .filter(|a| a.value["in_sync"] != true)
        .map(|a| a.value["slave"].as_str().unwrap_or("-"))
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    let error = anyhow::anyhow!("the master's copy of {} differs from the slave's data", quoted(differing.into_iter()));
    Err(ExitError::new(OUT_OF_SYNC, error).into())
}

/// `slave 'paris'`, `slaves 'paris', 'lyon'`.
fn quoted<'a>(slaves: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = slaves.map(|s| format!("'{s}'")).collect();
    let noun = if names.len() == 1 { "slave" } else { "slaves" };
    format!("{noun} {}", names.join(", "))
}

/// The finished verifications as one JSON array, each as the server sent it.
fn json_array(finished: &[Answer]) -> String {
    let bodies: Vec<&str> = finished.iter().map(|a| a.body.trim()).collect();
    reindent_json(&format!("[{}]", bodies.join(",")))
}

/// `paris: in sync (...)`, or `paris: OUT OF SYNC` with a line per table
/// that differs.
fn render_verification(v: &Value) -> String {
    let slave = text(&v["slave"]);
    let result = &v["result"];
    let tables = items(&result["tables"]);
    let as_of = time(&result["as_of"]);
    let skipped = match count(&result["pending"]) {
        0 => String::new(),
        n => format!(", {} pending on the slave not compared", plural(n, "row")),
    };
    if v["in_sync"] == true {
        let rows: u64 = tables.iter().map(|t| count(&t["slave_rows"])).sum();
        return format!(
            "{slave}: in sync ({}, {}, as of {as_of}{skipped})\n",
            plural(tables.len() as u64, "table"),
            plural(rows, "row")
        );
    }
    let mut out = format!("{slave}: OUT OF SYNC (as of {as_of}{skipped})\n");
    for table in tables.iter().filter(|t| t["in_sync"] != true) {
        out.push_str(&format!("  {}\n", table_difference(table)));
    }
    out
}

/// `endpoints: slave 300 rows, master 299 rows; missing on master: {"id":"x"}`.
fn table_difference(t: &Value) -> String {
    let mut parts = vec![format!(
        "{}: slave {}, master {}",
        text(&t["table"]),
        plural(count(&t["slave_rows"]), "row"),
        plural(count(&t["master_rows"]), "row")
    )];
    for (label, total, keys) in [
        ("missing on master", "missing_on_master", "missing_keys"),
        ("extra on master", "extra_on_master", "extra_keys"),
        ("different", "different", "different_keys"),
    ] {
        let total = count(&t[total]);
        if total == 0 {
            continue;
        }
        let keys = items(&t[keys]);
        let mut listed: Vec<String> = keys.iter().map(Value::to_string).collect();
        let more = total.saturating_sub(keys.len() as u64);
        if more > 0 {
            listed.push(format!("and {more} more"));
        }
        parts.push(format!("{label}: {}", listed.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, slave_rows: u64, master_rows: u64) -> Value {
        json!({"table": name, "in_sync": true, "slave_rows": slave_rows, "master_rows": master_rows,
               "slave_checksum": "ab", "master_checksum": "ab", "missing_on_master": 0, "extra_on_master": 0,
               "different": 0, "missing_keys": [], "extra_keys": [], "different_keys": []})
    }

    fn finished(slave: &str, in_sync: bool, tables: Vec<Value>) -> Value {
        json!({"id": format!("v-{slave}"), "slave": slave, "requested_at": "x", "state": "finished",
               "finished_at": "x", "in_sync": in_sync,
               "result": {"as_of": "2026-11-26 at noon", "pending": 0, "tables": tables}})
    }

    fn answer(value: Value) -> Answer {
        Answer { body: value.to_string(), value }
    }

    fn started(slave: &str) -> Started {
        Started { id: format!("v-{slave}"), slave: slave.to_owned() }
    }

    fn polled(finished: Vec<Answer>, unfinished: &[&str], failure: Option<&str>) -> Polled {
        Polled {
            finished,
            unfinished: unfinished.iter().map(|s| started(s)).collect(),
            failure: failure.map(|f| anyhow::anyhow!("{f}")),
        }
    }

    #[test]
    fn a_slave_in_sync_is_one_line() {
        let tables = vec![table("endpoints", 300, 300), table("tasks", 9934, 9934)];
        let mut v = finished("paris", true, tables);
        assert_eq!(render_verification(&v), "paris: in sync (2 tables, 10234 rows, as of 2026-11-26 at noon)\n");
        v["result"]["pending"] = json!(3);
        assert!(render_verification(&v).ends_with(", 3 rows pending on the slave not compared)\n"));
    }

    #[test]
    fn a_slave_out_of_sync_names_the_rows() {
        let mut endpoints = table("endpoints", 300, 299);
        endpoints["in_sync"] = json!(false);
        endpoints["missing_on_master"] = json!(1);
        endpoints["missing_keys"] = json!([{"id": "x"}]);
        endpoints["different"] = json!(22);
        endpoints["different_keys"] = json!([{"id": "a"}, {"id": "b"}]);
        let mut groups = table("network_groups", 3, 4);
        groups["in_sync"] = json!(false);
        groups["extra_on_master"] = json!(1);
        groups["extra_keys"] = json!([{"id": 7}]);
        let tables = vec![endpoints, table("tasks", 5, 5), groups];
        assert_eq!(
            render_verification(&finished("paris", false, tables)),
            "paris: OUT OF SYNC (as of 2026-11-26 at noon)\n  \
             endpoints: slave 300 rows, master 299 rows; missing on master: {\"id\":\"x\"}; \
             different: {\"id\":\"a\"}, {\"id\":\"b\"}, and 20 more\n  \
             network_groups: slave 3 rows, master 4 rows; extra on master: {\"id\":7}\n"
        );
    }

    #[test]
    fn exit_codes_tell_in_sync_from_out_of_sync_from_unknown() {
        let code = |polled| verdict(polled, 120).map_err(|e| crate::exit_code(&e));
        let in_sync = || answer(finished("paris", true, vec![]));
        let differs = || answer(finished("lyon", false, vec![]));
        assert_eq!(code(polled(vec![in_sync()], &[], None)), Ok(()));
        assert_eq!(code(polled(vec![in_sync(), differs()], &[], None)), Err(1));
        assert_eq!(code(polled(vec![differs()], &["nice"], None)), Err(2));
        assert_eq!(code(polled(vec![in_sync()], &[], Some("gone"))), Err(2));
    }

    #[test]
    fn errors_name_the_slaves_and_how_to_run_it_again() {
        let message = |polled| format!("{:#}", verdict(polled, 30).unwrap_err());
        assert_eq!(
            message(polled(vec![], &["nice"], None)),
            "the verification of slave 'nice' did not finish within 30 s; it can be re-run: \
             `rampartctl verify --slave nice` (a slave answers only while it is online; \
             a longer --timeout gives it more time)"
        );
        let two = message(polled(vec![], &["nice", "lyon"], None));
        assert!(two.starts_with("the verifications of slaves 'nice', 'lyon' did not finish"), "{two}");
        assert!(two.contains("re-run: `rampartctl verify` ("), "{two}");
        let differs = answer(finished("lyon", false, vec![]));
        assert_eq!(
            message(polled(vec![differs], &[], None)),
            "the master's copy of slave 'lyon' differs from the slave's data"
        );
    }

    #[test]
    fn json_output_is_the_array_of_finished_verifications() {
        let finished = [answer(json!({"id": "v1", "state": "finished"})), answer(json!({"id": "v2"}))];
        assert_eq!(
            json_array(&finished),
            "[\n  {\n    \"id\": \"v1\",\n    \"state\": \"finished\"\n  },\n  {\n    \"id\": \"v2\"\n  }\n]\n"
        );
        assert_eq!(json_array(&[]), "[]\n");
    }

    #[tokio::test]
    async fn polling_waits_for_each_verification_to_finish() {
        let mut calls = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        let polled = poll(vec![started("paris")], deadline, Duration::from_millis(1), |id| {
            calls += 1;
            let state = if calls < 3 { "pending" } else { "finished" };
            async move { Ok(answer(json!({"id": id, "state": state}))) }
        })
        .await;
        assert_eq!(calls, 3);
        assert_eq!(polled.finished.len(), 1);
        assert!(polled.unfinished.is_empty() && polled.failure.is_none());
    }

    #[tokio::test]
    async fn polling_stops_at_the_deadline_and_on_a_failed_request() {
        let deadline = Instant::now() + Duration::from_millis(50);
        let polled =
            poll(vec![started("paris"), started("nice")], deadline, Duration::from_millis(10), |id| async move {
                let state = if id == "v-paris" { "finished" } else { "pending" };
                Ok(answer(json!({"id": id, "state": state})))
            })
            .await;
        assert!(Instant::now() >= deadline);
        assert_eq!(polled.finished.len(), 1);
        assert_eq!(polled.unfinished, vec![started("nice")]);

        let deadline = Instant::now() + Duration::from_secs(5);
        let polled = poll(vec![started("paris")], deadline, POLL_INTERVAL, |_| async {
            Err(ApiError::TimedOut { server: "http://hq:7073".to_owned() })
        })
        .await;
        let failure = format!("{:#}", polled.failure.unwrap());
        assert!(
            failure.starts_with(
                "Failed to read the verification of slave 'paris' (v-paris); run the command again: the Rampart server at http://hq:7073 did not answer"
            ),
            "{failure}"
        );
        assert_eq!(polled.unfinished, vec![started("paris")]);
    }
}
