//! The loop never waits for monitoring: with a server that accepts connections and never
//! answers, capturing returns at once and what does not fit the queue is dropped and counted.

use std::net::TcpListener;
use std::time::Duration;

use lookout_agent::{Options, TradingError, TradingErrorKind, capture_trading_error};
use sentry::Hub;

/// A server that accepts (the kernel completes the handshake) but never reads or answers,
/// and an agent pointed at it with a send queue of 4.
fn stalled(agent_id: &str) -> (TcpListener, Options) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let options = Options::new(agent_id)
        .dsn(format!("http://public@127.0.0.1:{port}/1"))
        .release("bot@1.0.0")
        .queue_capacity(4);
    (listener, options)
}

#[test]
fn a_stalled_server_costs_the_loop_nothing_and_drops_are_counted() {
    let (listener, options) = stalled("ag_stall");
    let counters = options.counters();
    let hub = options.hub();
    Hub::run(hub.clone(), || {
        for i in 0..100 {
            capture_trading_error(
                &TradingError::new(TradingErrorKind::OrderRejected, format!("reject {i}"))
                    .with_asset("BTC"),
            );
        }
    });
    let counts = counters.snapshot();
    assert_eq!(
        counts.enqueued + counts.dropped_queue_full,
        100,
        "{counts:?}"
    );
    // At most one batch is with the (stuck) HTTP worker and four wait in the queue.
    assert!(counts.enqueued <= 8, "{counts:?}");
    assert!(counts.dropped_queue_full >= 92, "{counts:?}");
    if let Some(client) = hub.client() {
        client.close(Some(Duration::from_millis(50)));
    }
    drop(listener);
}

#[test]
fn finished_pipelines_that_do_not_fit_are_counted_not_waited_for() {
    use lookout_agent::{OrderPipeline, Outcome, Side, Stage};

    let (listener, options) = stalled("ag_stall_tx");
    let options = options.traces_sample_rate(1.0);
    let counters = options.counters();
    let hub = options.hub();
    Hub::run(hub.clone(), || {
        for _ in 0..100 {
            let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
            let _ = pipeline.stage(Stage::OrderSize, |s| {
                s.size_usd(10.0);
                Ok(())
            });
            pipeline.finish(Outcome::Filled);
        }
    });
    let counts = counters.snapshot();
    assert_eq!(
        counts.enqueued + counts.dropped_queue_full,
        100,
        "{counts:?}"
    );
    assert!(counts.dropped_queue_full >= 92, "{counts:?}");
    if let Some(client) = hub.client() {
        client.close(Some(Duration::from_millis(50)));
    }
    drop(listener);
}
