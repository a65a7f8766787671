//! Order pipeline tracing and client-side scrubbing, on the envelopes the client produces.

mod common;

use common::{Agent, capture, events, options, transactions, wire};
use lookout_agent::breadcrumbs::Signal;
use lookout_agent::{
    OrderPipeline, Outcome, Side, Stage, TradingError, TradingErrorKind, capture_trading_error,
};
use sentry::protocol::{SpanStatus, Value};
use serde_json::json;

fn filled_cycle() -> Result<(), TradingError> {
    let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
    pipeline.stage(Stage::SignalValidate, |s| {
        s.z_score(2.31);
        s.valid(true);
        Ok(())
    })?;
    pipeline.stage(Stage::RiskCheck, |s| {
        s.risk_pass(true);
        Ok(())
    })?;
    let size = pipeline.stage(Stage::OrderSize, |s| {
        s.size_usd(250.0);
        Ok(250.0)
    })?;
    assert!((size - 250.0_f64).abs() < f64::EPSILON);
    let order = pipeline.stage(Stage::http("POST", "/v1/trade/open"), |s| {
        s.order_id("ord_1");
        Ok("ord_1".to_owned())
    })?;
    pipeline.stage(Stage::OrderConfirm, |s| {
        s.order_id(&order);
        s.fill_price(64_000.5);
        s.fill_confirmed(true);
        Ok(())
    })?;
    pipeline.finish(Outcome::Filled);
    Ok(())
}

/// The ops of `filled_cycle`'s stage spans, in order.
const FIVE_STAGES: [&str; 5] = [
    "signal.validate",
    "risk.check",
    "order.size",
    "http.client",
    "order.confirm",
];

fn span_ops<'a>(tx: &'a sentry::protocol::Transaction<'_>) -> Vec<&'a str> {
    tx.spans
        .iter()
        .map(|s| s.op.as_deref().unwrap_or(""))
        .collect()
}

#[test]
fn a_filled_order_is_one_transaction_with_five_spans_and_their_data() {
    let envelopes = capture(options("ag_pipe"), || filled_cycle().expect("fills"));
    let txs = transactions(&envelopes);
    assert_eq!(txs.len(), 1);
    let tx = &txs[0];
    assert_eq!(tx.name.as_deref(), Some("Order Pipeline: BTC buy"));
    let trace = tx.contexts.get("trace").expect("trace context");
    let sentry::protocol::Context::Trace(trace) = trace else {
        panic!("trace context of another kind")
    };
    assert_eq!(trace.op.as_deref(), Some("order.pipeline"));
    assert_eq!(trace.status, Some(SpanStatus::Ok));
    assert_eq!(tx.tags["outcome"], "filled");
    assert_eq!(tx.tags["trade.asset"], "BTC");
    assert_eq!(tx.tags["trade.side"], "buy");
    assert_eq!(tx.tags["agent_id"], "ag_pipe");

    assert_eq!(span_ops(tx), FIVE_STAGES);
    for span in &tx.spans {
        assert_eq!(span.parent_span_id, Some(trace.span_id), "{:?}", span.op);
        assert_eq!(span.status, Some(SpanStatus::Ok));
    }
    let data = |i: usize, key: &str| tx.spans[i].data.get(key).cloned();
    assert_eq!(data(0, "z_score"), Some(json!(2.31)));
    assert_eq!(data(0, "valid"), Some(json!(true)));
    assert_eq!(data(1, "risk_pass"), Some(json!(true)));
    assert!(data(1, "duration_ms").is_some_and(|v| v.as_f64().is_some()));
    assert_eq!(data(2, "size_usd"), Some(json!(250.0)));
    assert_eq!(
        tx.spans[3].description.as_deref(),
        Some("POST /v1/trade/open")
    );
    assert!(data(3, "latency_ms").is_some_and(|v| v.as_f64().is_some()));
    assert_eq!(data(3, "order_id"), Some(json!("ord_1")));
    assert_eq!(data(4, "fill_price"), Some(json!(64_000.5)));
    assert_eq!(data(4, "fill_confirmed"), Some(json!(true)));
}

#[test]
fn an_error_in_a_stage_marks_its_span_and_is_captured_once() {
    let envelopes = capture(options("ag_err"), || {
        let result: Result<(), TradingError> = (|| {
            let mut pipeline = OrderPipeline::start("ETH", Side::Sell);
            pipeline.stage(Stage::SignalValidate, |s| {
                s.valid(true);
                Ok(())
            })?;
            pipeline.stage(Stage::http("POST", "/v1/trade/open"), |_| {
                Err(TradingError::new(
                    TradingErrorKind::InsufficientMargin,
                    "margin 12.5 below required 40",
                )
                .with_http_status(400))
            })?;
            pipeline.finish(Outcome::Filled);
            Ok(())
        })();
        let error = result.expect_err("the order stage fails");
        assert!(error.event_id().is_some());
        // The caller reports the error it got back, as agents do: nothing new is sent.
        assert_eq!(capture_trading_error(&error), error.event_id().expect("id"));
    });
    let events = events(&envelopes);
    assert_eq!(events.len(), 1, "captured exactly once");
    let event = &events[0];
    let fp: Vec<&str> = event.fingerprint.iter().map(|s| s.as_ref()).collect();
    assert_eq!(
        fp,
        [
            "{{ default }}",
            "InsufficientMargin",
            "ETH",
            "order_placement"
        ]
    );
    assert_eq!(
        event.level,
        sentry::Level::Fatal,
        "order placement escalates"
    );

    let txs = transactions(&envelopes);
    assert_eq!(txs.len(), 1);
    let tx = &txs[0];
    assert_eq!(tx.tags["outcome"], "api_error");
    let http = tx
        .spans
        .iter()
        .find(|s| s.op.as_deref() == Some("http.client"))
        .expect("http span");
    assert_eq!(http.status, Some(SpanStatus::FailedPrecondition));
    // The event is linked to the failing span of the trace.
    let Some(sentry::protocol::Context::Trace(trace)) = event.contexts.get("trace") else {
        panic!("event without trace context")
    };
    assert_eq!(trace.trace_id, http.trace_id);
    assert_eq!(trace.span_id, http.span_id);
    assert!(
        !tx.spans
            .iter()
            .any(|s| s.op.as_deref() == Some("order.confirm"))
    );
}

#[test]
fn rejections_set_the_outcome_of_validation_and_risk() {
    let envelopes = capture(options("ag_rej"), || {
        let mut pipeline = OrderPipeline::start("SOL", Side::Buy);
        let valid = pipeline
            .stage(Stage::SignalValidate, |s| {
                s.z_score(0.4);
                s.valid(false);
                Ok(false)
            })
            .expect("stage runs");
        assert!(!valid);
        pipeline.reject(&Stage::SignalValidate);
        drop(pipeline);

        let mut pipeline = OrderPipeline::start("SOL", Side::Buy);
        let _ = pipeline.stage(Stage::RiskCheck, |s| {
            s.risk_pass(false);
            Err::<(), _>(TradingError::new(
                TradingErrorKind::RiskLimitBreach,
                "daily loss limit",
            ))
        });
        drop(pipeline);
    });
    let outcomes: Vec<_> = transactions(&envelopes)
        .iter()
        .map(|tx| tx.tags["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["rejected_validation", "rejected_risk"]);
    let events = events(&envelopes);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tags["trade.phase"], "risk_check");
    assert_eq!(events[0].tags["trade.asset"], "SOL");
}

#[test]
fn async_stages_and_instrumented_spans_nest_under_the_pipeline() {
    use tracing_subscriber::layer::SubscriberExt;

    #[tracing::instrument]
    fn compute_position_size(balance: f64) -> f64 {
        balance * 0.02
    }

    #[tracing::instrument]
    fn sign_request(order: &str) -> usize {
        order.len()
    }

    let subscriber = tracing_subscriber::registry().with(lookout_agent::tracing_layer());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let agent = Agent::new(options("ag_async"));
    tracing::subscriber::with_default(subscriber, || {
        agent.run(|| {
            runtime.block_on(async {
                let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
                pipeline
                    .stage(Stage::OrderSize, |s| {
                        s.size_usd(compute_position_size(10_000.0));
                        Ok(())
                    })
                    .expect("sizes");
                let id = pipeline
                    .stage_async(Stage::http("POST", "/v1/trade/open"), |s| async move {
                        tokio::task::yield_now().await;
                        sign_request("ord_async");
                        s.order_id("ord_async");
                        Ok::<_, TradingError>("ord_async")
                    })
                    .await
                    .expect("places");
                assert_eq!(id, "ord_async");
                pipeline.finish(Outcome::Partial);
            })
        });
    });
    let txs = transactions(&agent.envelopes());
    assert_eq!(
        txs.len(),
        1,
        "one transaction, the instrumented fns are child spans"
    );
    let tx = &txs[0];
    assert_eq!(tx.tags["outcome"], "partial");
    let Some(sentry::protocol::Context::Trace(trace)) = tx.contexts.get("trace") else {
        panic!("no trace context: {tx:#?}")
    };
    let named = |name: &str| {
        tx.spans
            .iter()
            .find(|s| {
                s.op.as_deref().is_some_and(|op| op.ends_with(name))
                    || s.description.as_deref() == Some(name)
            })
            .unwrap_or_else(|| panic!("instrumented span {name} missing: {:#?}", tx.spans))
    };
    let size = tx
        .spans
        .iter()
        .find(|s| s.op.as_deref() == Some("order.size"))
        .expect("size span");
    assert_eq!(size.data.get("size_usd"), Some(&json!(200.0)));
    // A synchronous stage is recorded, not made current: what opens inside it belongs to
    // the pipeline's transaction.
    assert_eq!(
        named("compute_position_size").parent_span_id,
        Some(trace.span_id)
    );
    // An asynchronous stage is the current span of its future.
    let http = tx
        .spans
        .iter()
        .find(|s| s.op.as_deref() == Some("http.client"))
        .expect("http span");
    assert_eq!(http.data.get("order_id"), Some(&json!("ord_async")));
    assert_eq!(named("sign_request").parent_span_id, Some(http.span_id));
    assert_eq!(http.parent_span_id, Some(trace.span_id));
}

#[test]
fn sample_rate_zero_sends_no_transaction_but_errors_still_go() {
    let envelopes = capture(options("ag_s0").traces_sample_rate(0.0), || {
        let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
        let _ = pipeline.stage(Stage::OrderConfirm, |_| {
            Err::<(), _>(TradingError::new(
                TradingErrorKind::SlippageLimit,
                "Order not filled",
            ))
        });
    });
    assert!(transactions(&envelopes).is_empty());
    assert_eq!(events(&envelopes).len(), 1);
}

const API_KEY: &str = "sk_trade_0123456789abcdef0123456789abcdef0123456789abcdef";
const PRIVATE_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const SEED: &str =
    "abandon ability able about above absent absorb abstract absurd abuse access accident";
const BEARER: &str = "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.sig_0123456789";

#[test]
fn secrets_never_leave_the_process() {
    let envelopes = capture(options("ag_secret"), || {
        Signal::new("BTC", 1.0)
            .action(format!("retry with Authorization: {BEARER}"))
            .record();
        sentry::add_breadcrumb(sentry::Breadcrumb {
            message: Some(format!("wallet restored from {SEED}")),
            ..Default::default()
        });
        let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
        let _ = pipeline.stage(Stage::http("POST", "/v1/wallet/send"), |s| {
            s.set("private_key", PRIVATE_KEY);
            s.set("request", format!("api_key={API_KEY}&amount=5"));
            s.set("tx_hash", PRIVATE_KEY); // a hash is public and kept
            Ok(())
        });
        pipeline.finish(Outcome::Filled);
        sentry::configure_scope(|scope| {
            scope.set_extra("config", json!({"api_key": API_KEY, "mnemonic": SEED}));
        });
        capture_trading_error(
            &TradingError::new(
                TradingErrorKind::Unauthorized,
                format!("401 for key {API_KEY}"),
            )
            .with_tag("note", format!("private key {PRIVATE_KEY}")),
        );
    });
    assert_eq!(events(&envelopes).len(), 1);
    assert_eq!(transactions(&envelopes).len(), 1);
    let wire = wire(&envelopes);
    for secret in [
        API_KEY,
        SEED,
        "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ",
        "abandon ability able about",
    ] {
        assert!(!wire.contains(secret), "{secret} leaked:\n{wire}");
    }
    assert!(wire.contains("[Filtered]"));
    // The private key only survives where it is a tx hash.
    let tx = &transactions(&envelopes)[0];
    let span = &tx.spans[0];
    assert_eq!(span.data["private_key"], Value::from("[Filtered]"));
    assert_eq!(span.data["tx_hash"], Value::from(PRIVATE_KEY));
    assert_eq!(wire.matches(PRIVATE_KEY).count(), 1, "{wire}");
}

#[test]
fn a_pipeline_on_a_plain_sentry_hub_sends_the_same_transaction() {
    // Not an agent's client (no lookout integration, sentry's own test transport): the stages
    // are `sentry` spans finished on the loop, with the same shape.
    let envelopes = sentry::test::with_captured_envelopes_options(
        || filled_cycle().expect("fills"),
        sentry::ClientOptions::new().traces_sample_rate(1.0),
    );
    let txs = transactions(&envelopes);
    assert_eq!(txs.len(), 1, "{envelopes:#?}");
    let tx = &txs[0];
    assert_eq!(tx.name.as_deref(), Some("Order Pipeline: BTC buy"));
    assert_eq!(tx.tags["outcome"], "filled");
    assert_eq!(span_ops(tx), FIVE_STAGES);
    assert_eq!(tx.spans[2].data.get("size_usd"), Some(&json!(250.0)));
    assert!(tx.spans[1].data.contains_key("duration_ms"));
}

#[test]
fn pipelines_still_queued_when_the_client_closes_are_sent() {
    let agent = Agent::new(options("ag_close"));
    agent.run(|| {
        for _ in 0..3 {
            filled_cycle().expect("fills");
        }
    });
    // No flush first: closing the client drains the queue, building the transactions.
    let client = agent.hub.client().expect("client");
    assert!(client.close(Some(std::time::Duration::from_secs(10))));
    let txs = transactions(&agent.transport.fetch_and_clear_envelopes());
    assert_eq!(txs.len(), 3);
    assert!(txs.iter().all(|tx| tx.spans.len() == 5));
}

#[test]
fn agent_client_options_under_sentrys_test_transport_still_send_the_transaction() {
    // `client_options()` passed to sentry's test helper, which swaps in its own transport: the
    // agent's queue is not there, so the pipeline is built on the loop and sent directly.
    let envelopes = sentry::test::with_captured_envelopes_options(
        || filled_cycle().expect("fills"),
        options("ag_swapped").client_options(),
    );
    let txs = transactions(&envelopes);
    assert_eq!(txs.len(), 1, "{envelopes:#?}");
    assert_eq!(txs[0].spans.len(), 5);
    assert_eq!(txs[0].tags["outcome"], "filled");
    assert_eq!(txs[0].tags["trade.asset"], "BTC");
}
