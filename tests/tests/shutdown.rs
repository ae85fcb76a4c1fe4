//! A server and an agent that stop cleanly log no error: every channel is
//! closed before its broker connection, in the server, the agent and the
//! harness's own teardown. (A channel left to close itself on drop races
//! the connection's close, and lapin logs each race as a connection error,
//! which an operator would read as a fault at every restart.)
//!
//! Its own test binary (not a module of `main.rs`): it installs the
//! process-wide log subscriber that records every error event, whichever
//! thread logs it. Measured in one binary with the other areas: with
//! `RAMPART_TEST_LOG` set, another test's server installed its log
//! subscriber first and this test failed at `try_init`
//! (`-- api:: shutdown::`); and the other areas' error events (failpoints,
//! killed brokers and servers) would land in `ERRORS` whenever they run
//! at the same time.

use std::sync::Mutex;

use rampart_tests::{ServerOptions, TestAgent, TestServer};
use tracing::{
    field::{Field, Visit},
    Event, Level, Subscriber,
};
use tracing_subscriber::{
    layer::{Context, SubscriberExt},
    util::SubscriberInitExt,
    Layer,
};

/// Every error event logged in this process, as `target: fields`.
static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct RecordErrors;

impl<S: Subscriber> Layer<S> for RecordErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            ERRORS.lock().unwrap().push(format!("{}:{}", event.metadata().target(), fields.0));
        }
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_and_its_agent_stop_without_logging_an_error() {
    tracing_subscriber::registry().with(RecordErrors).try_init().expect("no other subscriber in this test binary");

    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let agent = TestAgent::spawn(&server, 20, |_| {});
    // Both sides have published and consumed: the server's inbox applied
    // every computer's heartbeat.
    server.wait_for_endpoints(20).await;
    agent.stop().await;
    server.stop(&[]).await;

    let errors = ERRORS.lock().unwrap().clone();
    assert!(errors.is_empty(), "errors were logged while stopping: {errors:#?}");
}
