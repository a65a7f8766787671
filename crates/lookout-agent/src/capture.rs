//! Capturing [`TradingError`]s with their fingerprint, tags and trade context.

use sentry::protocol::{Event, Exception, Level, TraceContext, Value};
use sentry::{Hub, event_from_error};
use uuid::Uuid;

use crate::error::TradingError;
use crate::filter::tags;

/// The fingerprint of an error: `["{{ default }}", kind, asset or "unknown_asset", phase or
/// "unknown_phase"]`.
pub fn fingerprint(error: &TradingError) -> [String; 4] {
    [
        "{{ default }}".to_owned(),
        error.kind().as_str().to_owned(),
        error.asset().unwrap_or("unknown_asset").to_owned(),
        error
            .phase()
            .map_or_else(|| "unknown_phase".to_owned(), |p| p.as_str().to_owned()),
    ]
}

/// The event for an error: one exception per error in the source chain (oldest first), the
/// last one typed by the error's kind (e.g. `OrderRejected`) so the server groups by it.
pub fn event_from_trading_error(error: &TradingError) -> Event<'static> {
    let mut event = match error.source_error() {
        Some(source) => event_from_error(source),
        None => Event::default(),
    };
    event.exception.values.push(Exception {
        ty: error.kind().as_str().to_owned(),
        value: Some(error.message().to_owned()),
        module: error.service().map(|s| format!("purpleflea::{s}")),
        ..Default::default()
    });
    event.level = Level::Error;
    event
}

/// Capture a trading error on the current hub; see [`capture_trading_error_with`].
pub fn capture_trading_error(error: &TradingError) -> Uuid {
    capture_trading_error_with(error, None)
}

/// Capture a trading error on the current hub, in a scope of its own so nothing leaks into
/// later events: fingerprint ([`fingerprint`]), tags `trade.asset`, `trade.phase`,
/// `trade.error_type`, `trade.order_id`, `service`, `http.status_code` and the service's own
/// tags, and the `trade_context` extra (if given).
///
/// An error that was already captured ([`TradingError::event_id`] is set) is not sent again;
/// its event id is returned.
pub fn capture_trading_error_with(error: &TradingError, trade_context: Option<Value>) -> Uuid {
    if let Some(id) = error.event_id() {
        return id;
    }
    let hub = Hub::current();
    capture_on(&hub, error, trade_context, None)
}

/// Capture a trading error on this hub, in a scope of its own.
///
/// `trace`, when given, is the event's trace context (the span the error happened in), in
/// place of the hub's current span.
pub(crate) fn capture_on(
    hub: &Hub,
    error: &TradingError,
    trade_context: Option<Value>,
    trace: Option<TraceContext>,
) -> Uuid {
    let fingerprint = fingerprint(error);
    let mut event = event_from_trading_error(error);
    if let Some(trace) = trace {
        event.contexts.insert("trace".to_owned(), trace.into());
    }
    hub.with_scope(
        |scope| {
            let fp: Vec<&str> = fingerprint.iter().map(String::as_str).collect();
            scope.set_fingerprint(Some(&fp));
            scope.set_tag(tags::ERROR_TYPE, error.kind().as_str());
            scope.set_tag(tags::ASSET, error.asset().unwrap_or("unknown_asset"));
            scope.set_tag(
                tags::PHASE,
                error.phase().map_or("unknown_phase", |p| p.as_str()),
            );
            if let Some(order_id) = error.order_id() {
                scope.set_tag(tags::ORDER_ID, order_id);
            }
            if let Some(service) = error.service() {
                scope.set_tag(tags::SERVICE, service.as_str());
            }
            if let Some(status) = error.http_status() {
                scope.set_tag(tags::HTTP_STATUS, status);
            }
            for (key, value) in error.service_tags() {
                scope.set_tag(key, value);
            }
            if let Some(context) = trade_context {
                scope.set_extra("trade_context", context);
            }
        },
        || hub.capture_event(event),
    )
}
