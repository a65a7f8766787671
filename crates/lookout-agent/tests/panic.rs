//! `init` installs the panic integration: a panic is captured as a crash and the agent's
//! session ends `crashed`. Alone in its binary because it binds the process-wide hub.

mod common;

use std::time::Duration;

use common::{check_ins, events, options, sessions};
use lookout_agent::health::{AgentSession, HealthOptions};
use sentry::protocol::SessionStatus;
use sentry::test::TestTransport;

#[test]
fn a_panic_is_a_fatal_event_and_crashes_the_session() {
    let transport = TestTransport::new();
    let guard = lookout_agent::init(options("ag_crash").transport(transport.clone()));
    assert!(guard.is_enabled());
    let session = AgentSession::start("ag_crash", HealthOptions::new());
    let worker = std::thread::spawn(|| {
        let positions: Vec<u32> = Vec::new();
        // An agent bug: indexing an empty book.
        positions[3]
    });
    assert!(worker.join().is_err(), "the worker panicked");
    session.end();
    assert!(guard.flush(Duration::from_secs(10)));
    let envelopes = transport.fetch_and_clear_envelopes();

    let events = events(&envelopes);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.level, sentry::Level::Fatal);
    let exception = event.exception.values.last().expect("exception");
    assert_eq!(
        exception.mechanism.as_ref().and_then(|m| m.handled),
        Some(false),
        "a panic is unhandled"
    );
    assert_eq!(event.tags["agent_id"], "ag_crash");
    let updates = sessions(&envelopes);
    assert!(
        updates.iter().any(|u| u.status == SessionStatus::Crashed),
        "{updates:#?}"
    );
    assert!(updates.iter().all(|u| u.status != SessionStatus::Exited));
    assert_eq!(
        updates.last().map(|u| u.status),
        Some(SessionStatus::Crashed)
    );
    // The first heartbeat went out with the session.
    assert_eq!(check_ins(&envelopes).len(), 1);
}
