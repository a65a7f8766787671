//! Helpers shared by the agent library's tests: run code on a hub whose client is built
//! exactly as `lookout_agent::init` builds it (noise filter, scrubbing, bounded queue), with
//! `sentry::test::TestTransport` standing in for HTTP.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_agent::Options;
use sentry::protocol::{EnvelopeItem, Event, MonitorCheckIn, SessionUpdate, Transaction};
use sentry::test::TestTransport;
use sentry::{Envelope, Hub};

pub const TEST_DSN: &str = "https://public@sentry.invalid/1";

/// Options for a test agent: DSN set, release explicit.
pub fn options(agent_id: &str) -> Options {
    Options::new(agent_id)
        .dsn(TEST_DSN)
        .strategy("mean_reversion")
        .release("test-bot@1.0.0")
        .environment("test")
}

/// A hub built from the options, with a test transport behind the library's own queue.
pub struct Agent {
    pub hub: Arc<Hub>,
    pub transport: Arc<TestTransport>,
}

impl Agent {
    pub fn new(options: Options) -> Self {
        let transport = TestTransport::new();
        let hub = options.transport(transport.clone()).hub();
        Self { hub, transport }
    }

    /// Run `f` on the agent's hub.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        Hub::run(self.hub.clone(), f)
    }

    /// Flush the client (sessions included) and take every envelope sent so far.
    pub fn envelopes(&self) -> Vec<Envelope> {
        if let Some(client) = self.hub.client() {
            assert!(
                client.flush(Some(Duration::from_secs(10))),
                "flush timed out"
            );
        }
        self.transport.fetch_and_clear_envelopes()
    }

    /// Take envelopes until `done` says the collected ones are enough (or fail after 10 s).
    pub fn envelopes_until(&self, done: impl Fn(&[Envelope]) -> bool) -> Vec<Envelope> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut all = Vec::new();
        loop {
            all.extend(self.envelopes());
            if done(&all) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met in 10 s: {all:#?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Run `f` on a fresh agent hub and return what it sent.
pub fn capture(options: Options, f: impl FnOnce()) -> Vec<Envelope> {
    let agent = Agent::new(options);
    agent.run(f);
    agent.envelopes()
}

pub fn events(envelopes: &[Envelope]) -> Vec<Event<'static>> {
    items(envelopes)
        .filter_map(|item| match item {
            EnvelopeItem::Event(event) => Some((**event).clone()),
            _ => None,
        })
        .collect()
}

pub fn transactions(envelopes: &[Envelope]) -> Vec<Transaction<'static>> {
    items(envelopes)
        .filter_map(|item| match item {
            EnvelopeItem::Transaction(tx) => Some((**tx).clone()),
            _ => None,
        })
        .collect()
}

pub fn check_ins(envelopes: &[Envelope]) -> Vec<MonitorCheckIn> {
    items(envelopes)
        .filter_map(|item| match item {
            EnvelopeItem::MonitorCheckIn(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub fn sessions(envelopes: &[Envelope]) -> Vec<SessionUpdate<'static>> {
    items(envelopes)
        .filter_map(|item| match item {
            EnvelopeItem::SessionUpdate(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

pub fn items(envelopes: &[Envelope]) -> impl Iterator<Item = &EnvelopeItem> {
    envelopes.iter().flat_map(|e| e.items())
}

/// The envelopes as the bytes that would go on the wire.
pub fn wire(envelopes: &[Envelope]) -> String {
    let mut out = Vec::new();
    for envelope in envelopes {
        envelope.to_writer(&mut out).expect("serialize envelope");
        out.push(b'\n');
    }
    String::from_utf8_lossy(&out).into_owned()
}
