//! The kill switch: pause and resume an agent's trading, list every agent's state. The REST
//! API (`api/agents.rs`), the web UI (`ui/agents.rs`) and the Telegram bot call these; the
//! alert stage pauses through the store inside its own transaction (`AlertTx::pause_agent`).
//!
//! Every function here blocks (store calls): from async code, run it through
//! [`super::blocking`]. `now` is the server's clock in ms (`AppState::clock`), so tests with
//! a manual clock see pauses expire when they move it.

use super::ServiceError;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::trading::Pause;
pub use crate::store::trading::{Actor, TradingChange, TradingState};
use serde_json::json;

/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest pause with an end, in minutes (a week); without `minutes` a pause lasts until
/// someone resumes the agent.
pub const MAX_MINUTES: i64 = 10_080;

/// An agent of a project with its health status and its trading state.
#[derive(Debug, Clone)]
pub struct AgentTrading {
    /// The agent's id.
    pub agent_id: String,
    /// Its health as the agents overview computes it (`services::agents`): `crashed`,
    /// `hung`, `silent`, `degraded`, `healthy` or `stopped`.
    pub status: &'static str,
    /// Its trading state now.
    pub trading: TradingState,
}

/// Check a pause's reason: required, at most [`MAX_REASON_CHARS`] characters, no control
/// characters. Returns it trimmed.
pub fn check_reason(reason: &str) -> Result<String, ServiceError> {
    let r = reason.trim();
    let problem = if r.is_empty() {
        Some("A reason is required.".to_owned())
    } else if r.chars().count() > MAX_REASON_CHARS {
        Some(format!(
            "Ensure this field has no more than {MAX_REASON_CHARS} characters."
        ))
    } else if r.chars().any(char::is_control) {
        Some("The reason cannot hold control characters.".to_owned())
    } else {
        None
    };
    match problem {
        Some(p) => Err(ServiceError::Fields(json!({ "reason": [p] }))),
        None => Ok(r.to_owned()),
    }
}

/// Check a pause's length in minutes (1 to [`MAX_MINUTES`]) and turn it into its end (ms).
pub fn until_of(minutes: Option<i64>, now: i64) -> Result<Option<i64>, ServiceError> {
    match minutes {
        None => Ok(None),
        Some(m) if (1..=MAX_MINUTES).contains(&m) => Ok(Some(now + m * 60_000)),
        Some(_) => Err(ServiceError::Fields(json!({
            "minutes": [format!("Ensure this value is between 1 and {MAX_MINUTES}.")]
        }))),
    }
}

/// Pause agent `agent_id` of project `project_id` with `reason`, by `by`, until `until_ms`
/// (ms; `None`: until resumed). Audited, shown in the agent's timeline, and told to the
/// agent's control channel at once. Pausing a paused agent replaces its reason, actor and
/// end. An agent the digest never saw in that project is [`StoreError::NotFound`] naming it.
pub fn pause(
    store: &Store,
    project_id: i64,
    agent_id: &str,
    reason: &str,
    by: Actor,
    until_ms: Option<i64>,
    now: i64,
) -> Result<TradingState, ServiceError> {
    let reason = check_reason(reason)?;
    if until_ms.is_some_and(|u| u <= now) {
        return Err(ServiceError::Invalid(
            "a pause must end in the future".into(),
        ));
    }
    Ok(store.trading().pause(
        project_id,
        agent_id,
        &Pause {
            reason: &reason,
            by: &by,
            until: until_ms,
            origin: None,
        },
        now,
    )?)
}

/// Resume agent `agent_id` of project `project_id`, by `by`. Audited when it was paused; an
/// active agent stays as it is. Unknown agents are [`StoreError::NotFound`].
pub fn resume(
    store: &Store,
    project_id: i64,
    agent_id: &str,
    by: Actor,
    now: i64,
) -> Result<TradingState, ServiceError> {
    Ok(store.trading().resume(project_id, agent_id, &by, now)?)
}

/// The trading state of agent `agent_id` of project `project_id`; [`StoreError::NotFound`]
/// for an agent neither seen nor ever paused there.
pub fn get(
    store: &Store,
    project_id: i64,
    agent_id: &str,
    now: i64,
) -> Result<TradingState, ServiceError> {
    let trading = store.trading();
    let state = trading.get(project_id, agent_id, now)?;
    if state.version == 0 && !trading.is_known(project_id, agent_id)? {
        return Err(StoreError::NotFound(format!("agent {agent_id:?}")).into());
    }
    Ok(state)
}

/// Every agent of project `project_id` (of organisation `org`) with its health status and
/// trading state, by agent id; agents paused but no longer seen are listed too (status
/// `stopped`).
pub fn list(
    store: &Store,
    org: &str,
    project_id: i64,
    now: i64,
) -> Result<Vec<AgentTrading>, ServiceError> {
    let health = super::agents::overview_now(store, org, now)?;
    let mut states: std::collections::HashMap<String, TradingState> = store
        .trading()
        .list(project_id, now)?
        .into_iter()
        .map(|s| (s.agent_id.clone(), s))
        .collect();
    let mut out: Vec<AgentTrading> = health
        .iter()
        .filter(|h| h.project_id == project_id)
        .map(|h| AgentTrading {
            agent_id: h.agent_id.clone(),
            status: h.status,
            trading: states.remove(&h.agent_id).unwrap_or_else(|| TradingState {
                project_id,
                agent_id: h.agent_id.clone(),
                paused: false,
                reason: None,
                by: None,
                since: None,
                until: None,
                version: 0,
            }),
        })
        .collect();
    out.extend(states.into_values().map(|t| AgentTrading {
        agent_id: t.agent_id.clone(),
        status: "stopped",
        trading: t,
    }));
    out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    Ok(out)
}

/// The audited changes of an agent since `since` (ms), newest first.
pub fn history(
    store: &Store,
    project_id: i64,
    agent_id: &str,
    since: i64,
) -> Result<Vec<TradingChange>, ServiceError> {
    Ok(store.trading().changes(project_id, agent_id, since, 200)?)
}
