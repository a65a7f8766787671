//! Agent health: every agent of an organisation with a status derived from everything
//! Lookout knows of it, and the reasons for that status in words; and the agent page.
//!
//! The store reads the facts ([`crate::store::agents`], one query per kind of fact for all
//! agents); [`assess`] is the pure function from one agent's facts to its status and reasons.
//!
//! **Status.** Its lifecycle first: `crashed` (its latest session crashed), `hung` (the
//! watchdog ended its session abnormally, or its heartbeat is missed, timed out or failed
//! while its session is open), `stopped` (its latest session ended cleanly), `silent`
//! (nothing heard for [`SILENT_AFTER_MS`], or its heartbeat failed without an open session).
//! An agent otherwise up is `degraded` when any figure of the last hour is outside its
//! threshold, one of its crons missed, failed or timed out, or an alert about it is firing;
//! else `healthy`. Every status but `healthy` comes with its reasons, and the other reasons
//! are listed whatever the lifecycle status (a crashed agent may also have failed every
//! order before it crashed).
//!
//! **Thresholds** come from the active metric rules of the agent's project that measure the
//! same thing for the agent as a whole (a query naming nothing narrower than its id, its
//! environment, its release or `order.pipeline`): `error_rate()` and `failure_rate()` for the
//! error rate, `p99(transaction.duration)` of `order.pipeline` for the p99, and
//! `tag_ratio(outcome, rejected_risk)` for risk check rejections. A rule naming the agent
//! (`agent_id:…`) wins over a project-wide one; among equals the lowest threshold (a
//! warning trigger before a critical one). Without a rule: [`DEFAULT_ERROR_RATE_PCT`],
//! [`DEFAULT_P99_MS`], [`DEFAULT_RISK_REJECTED_PCT`] (the trading presets' values). The
//! overview judges the last hour against the threshold; the rule itself judges its own
//! window, and fires (shown as a firing alert) on its own.
//!
//! **Error rate** is the share of the agent's transactions of the last hour that failed; an
//! agent that sent none has no error rate (`–`), however many errors it reported.

use std::collections::BTreeMap;

use super::{ServiceError, blocking};
use crate::alerts::rules::{self, Aggregate, Duration as Dur, ThresholdType};
use crate::store::agents::{
    ActiveRule, AgentDetail, AgentRow, MonitorState, OpenIncident, OverviewFacts, PIPELINE,
    RISK_REJECTED, monitor_belongs,
};
use crate::store::read::{Term, parse_query};
use crate::store::{Store, StoreError};
use lookout_protocol::sketch::DDSketch;

/// An agent seen longer ago than this, with no session or heartbeat saying otherwise, is
/// `silent`.
pub const SILENT_AFTER_MS: i64 = 10 * 60_000;
/// Error rate threshold (%) without a rule.
pub const DEFAULT_ERROR_RATE_PCT: f64 = 5.0;
/// p99 of `order.pipeline` threshold (ms) without a rule.
pub const DEFAULT_P99_MS: f64 = 2000.0;
/// Threshold (%) of order pipelines rejected by a risk check, without a rule.
pub const DEFAULT_RISK_REJECTED_PCT: f64 = 20.0;

/// An agent's status, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Its latest session crashed.
    Crashed,
    /// Its session is open but it stopped beating, or the watchdog ended it.
    Hung,
    /// Nothing heard from it for a while.
    Silent,
    /// Up, with something outside its threshold.
    Degraded,
    /// Up and within every threshold.
    Healthy,
    /// Its latest session ended cleanly.
    Stopped,
}

impl Status {
    /// Every status, worst first.
    pub const ALL: [Status; 6] = [
        Status::Crashed,
        Status::Hung,
        Status::Silent,
        Status::Degraded,
        Status::Healthy,
        Status::Stopped,
    ];

    /// Its name as pages and tests show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Crashed => "crashed",
            Status::Hung => "hung",
            Status::Silent => "silent",
            Status::Degraded => "degraded",
            Status::Healthy => "healthy",
            Status::Stopped => "stopped",
        }
    }
}

/// What a reason is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonKind {
    /// Sessions and heartbeats.
    Lifecycle,
    /// The error rate.
    ErrorRate,
    /// The p99 of `order.pipeline`.
    Latency,
    /// Risk check rejections.
    RiskChecks,
    /// A cron of the agent.
    Cron,
    /// A firing alert about the agent.
    Alert,
}

/// One reason for an agent's status, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// What it is about.
    pub kind: ReasonKind,
    /// The reason (`error rate 100 % over 1 h > 5 %`).
    pub text: String,
    /// Where its threshold comes from, or more detail.
    pub detail: String,
    /// The incident's page for a firing alert.
    pub incident_id: Option<i64>,
}

/// A threshold and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The value (% or ms).
    pub value: f64,
    /// The rule it comes from (id, name); `None` for the default.
    pub rule: Option<(i64, String)>,
}

impl Threshold {
    fn default_of(value: f64) -> Threshold {
        Threshold { value, rule: None }
    }

    /// Where it comes from, in words.
    pub fn source(&self) -> String {
        match &self.rule {
            Some((id, name)) => format!("threshold of alert rule {name:?} (#{id})"),
            None => "default threshold (no alert rule of the project measures this)".into(),
        }
    }
}

/// The thresholds an agent's figures are judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Error rate, %.
    pub error_rate_pct: Threshold,
    /// p99 of `order.pipeline`, ms.
    pub p99_ms: Threshold,
    /// Order pipelines rejected by a risk check, %.
    pub risk_rejected_pct: Threshold,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            error_rate_pct: Threshold::default_of(DEFAULT_ERROR_RATE_PCT),
            p99_ms: Threshold::default_of(DEFAULT_P99_MS),
            risk_rejected_pct: Threshold::default_of(DEFAULT_RISK_REJECTED_PCT),
        }
    }
}

/// An agent with its status, the reasons for it and what it was judged by.
#[derive(Debug, Clone)]
pub struct AgentHealth {
    /// The facts.
    pub agent: AgentRow,
    /// `crashed`, `hung`, `silent`, `degraded`, `healthy` or `stopped`.
    pub status: &'static str,
    /// Why, worst first.
    pub reasons: Vec<Reason>,
    /// The thresholds its figures were judged by.
    pub thresholds: Thresholds,
    /// Its monitors (heartbeat and crons) in every environment.
    pub monitors: Vec<MonitorState>,
    /// Firing alerts about it.
    pub alerts: Vec<OpenIncident>,
}

impl std::ops::Deref for AgentHealth {
    type Target = AgentRow;
    fn deref(&self) -> &AgentRow {
        &self.agent
    }
}

impl AgentHealth {
    /// Whether its error rate is above its threshold.
    pub fn error_rate_over(&self) -> bool {
        self.error_rate()
            .is_some_and(|v| v > self.thresholds.error_rate_pct.value)
    }

    /// Whether its p99 is above its threshold.
    pub fn p99_over(&self) -> bool {
        self.p99_ms
            .is_some_and(|v| v > self.thresholds.p99_ms.value)
    }

    /// Whether its risk check rejections are above their threshold.
    pub fn risk_over(&self) -> bool {
        self.risk_rejected_rate()
            .is_some_and(|v| v > self.thresholds.risk_rejected_pct.value)
    }
}

/// A percentage for reading: `100 %`, `40.6 %`.
pub fn pct_text(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{:.0} %", v.round())
    } else {
        format!("{v:.1} %")
    }
}

/// A duration for reading: `850 ms`, `2 s`, `2.5 s`.
pub fn ms_text(v: f64) -> String {
    if v >= 1000.0 {
        let s = format!("{:.2}", v / 1000.0);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s} s")
    } else {
        format!("{v:.0} ms")
    }
}

fn ago_text(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// How a rule's query relates to an agent: `None` when it measures something narrower than
/// the agent as a whole (or another agent), else whether it names the agent.
fn rule_scope(terms: &[Term], agent: &AgentRow, environment: Option<&str>) -> Option<bool> {
    if environment.is_some_and(|e| agent.environment.as_deref() != Some(e)) {
        return None;
    }
    let mut names_agent = false;
    for t in terms {
        match t {
            Term::Tag {
                key,
                value,
                negated: false,
            } if key == "agent_id" => {
                if *value != agent.agent_id {
                    return None;
                }
                names_agent = true;
            }
            Term::Tag {
                key,
                value,
                negated: true,
            } if key == "agent_id" => {
                if *value == agent.agent_id {
                    return None;
                }
            }
            Term::Tag { key, value, .. }
                if matches!(key.as_str(), "transaction.op" | "transaction")
                    && value == PIPELINE => {}
            Term::Tag { key, .. } if key == "event.type" => {}
            Term::Environment(e) if agent.environment.as_deref() == Some(e.as_str()) => {}
            Term::Release(r) if agent.release.as_deref() == Some(r.as_str()) => {}
            _ => return None,
        }
    }
    Some(names_agent)
}

fn selects_pipeline(terms: &[Term]) -> bool {
    terms.iter().any(|t| {
        matches!(t, Term::Tag { key, value, negated: false }
            if matches!(key.as_str(), "transaction.op" | "transaction") && value == PIPELINE)
    })
}

/// The thresholds of `agent` from the active metric `rules` of the organisation (see the
/// module docs for which rules apply), else the defaults.
pub fn thresholds_for(agent: &AgentRow, rules: &[ActiveRule], channel_ids: &[i64]) -> Thresholds {
    // (names the agent, value, rule) of the best candidate per figure.
    type Best = Option<(bool, f64, i64, String)>;
    let (mut error, mut p99, mut risk): (Best, Best, Best) = (None, None, None);
    let consider = |best: &mut Best, names: bool, value: f64, r: &ActiveRule| {
        let better = match best {
            None => true,
            Some((n, v, _, _)) => (names && !*n) || (names == *n && value < *v),
        };
        if better {
            *best = Some((names, value, r.id, r.name.clone()));
        }
    };
    for r in rules.iter().filter(|r| r.project_id == agent.project_id) {
        let Ok(rule) = rules::parse_metric_rule(&r.spec, channel_ids) else {
            continue;
        };
        if rule.threshold_type != ThresholdType::Above {
            continue;
        }
        let Some(value) = rule
            .triggers
            .iter()
            .map(|t| t.alert_threshold)
            .min_by(f64::total_cmp)
        else {
            continue;
        };
        let Some(names) = rule_scope(&rule.query, agent, rule.environment.as_deref()) else {
            continue;
        };
        match &rule.aggregate {
            Aggregate::ErrorRate => consider(&mut error, names, value, r),
            Aggregate::FailureRate => consider(&mut error, names, value * 100.0, r),
            Aggregate::Percentile {
                q,
                of: Dur::Transaction,
            } if (*q - 0.99).abs() < 1e-9 && selects_pipeline(&rule.query) => {
                consider(&mut p99, names, value, r)
            }
            Aggregate::TagRatio { key, value: v } if key == "outcome" && v == RISK_REJECTED => {
                consider(&mut risk, names, value, r)
            }
            _ => {}
        }
    }
    let pick = |best: Best, default: f64| match best {
        Some((_, value, id, name)) => Threshold {
            value,
            rule: Some((id, name)),
        },
        None => Threshold::default_of(default),
    };
    Thresholds {
        error_rate_pct: pick(error, DEFAULT_ERROR_RATE_PCT),
        p99_ms: pick(p99, DEFAULT_P99_MS),
        risk_rejected_pct: pick(risk, DEFAULT_RISK_REJECTED_PCT),
    }
}

/// Whether open incident `i` is about `agent`: a per-agent rule firing for it, or a rule
/// whose query names it.
pub fn incident_about(i: &OpenIncident, agent: &AgentRow) -> bool {
    i.project_id == agent.project_id
        && (i.key == agent.agent_id
            || i.rule_query.as_deref().is_some_and(|q| {
                parse_query(q).iter().any(|t| {
                    matches!(t, Term::Tag { key, value, negated: false }
                        if key == "agent_id" && *value == agent.agent_id)
                })
            }))
}

fn failed_heartbeat(status: Option<&str>) -> bool {
    matches!(
        status,
        Some("missed_checkin" | "missed" | "timeout" | "error")
    )
}

/// The status of `agent` at `now` and the reasons for it. `monitors`: its crons (its
/// heartbeat is read from the agent's facts); `alerts`: firing alerts about it.
pub fn assess(
    agent: &AgentRow,
    thresholds: &Thresholds,
    monitors: &[MonitorState],
    alerts: &[OpenIncident],
    now: i64,
) -> (Status, Vec<Reason>) {
    let mut reasons = Vec::new();
    let mut reason = |kind, text: String, detail: String, incident_id| {
        reasons.push(Reason {
            kind,
            text,
            detail,
            incident_id,
        })
    };
    let since = |at: Option<i64>| at.map(|t| ago_text(now - t)).unwrap_or_default();
    let session = agent.session_status.as_deref();
    let heartbeat = agent.heartbeat_status.as_deref();
    let lifecycle = match session {
        Some("crashed") => {
            reason(
                ReasonKind::Lifecycle,
                format!("crashed {} ago", since(agent.session_updated)),
                "its latest session ended in a crash".into(),
                None,
            );
            Status::Crashed
        }
        Some("abnormal") => {
            reason(
                ReasonKind::Lifecycle,
                "hung: the watchdog ended its session".into(),
                format!(
                    "session ended abnormally {} ago",
                    since(agent.session_updated)
                ),
                None,
            );
            Status::Hung
        }
        // Ended its session cleanly: stopped on purpose, whatever its heartbeat says.
        Some("exited") => Status::Stopped,
        _ if failed_heartbeat(heartbeat) => {
            let last = agent
                .last_heartbeat
                .map(|t| format!("last heartbeat {} ago", ago_text(now - t)))
                .unwrap_or_else(|| "no heartbeat yet".into());
            let what = match heartbeat {
                Some("error") => "heartbeat failed",
                Some("timeout") => "heartbeat timed out",
                _ => "heartbeat missed",
            };
            if session == Some("ok") {
                reason(
                    ReasonKind::Lifecycle,
                    format!("hung: {what}"),
                    format!("its session is open; {last}"),
                    None,
                );
                Status::Hung
            } else {
                reason(ReasonKind::Lifecycle, format!("silent: {what}"), last, None);
                Status::Silent
            }
        }
        _ if now - agent.last_seen > SILENT_AFTER_MS => {
            reason(
                ReasonKind::Lifecycle,
                format!("silent for {}", ago_text(now - agent.last_seen)),
                "no event, session update or heartbeat since".into(),
                None,
            );
            Status::Silent
        }
        _ => Status::Healthy,
    };
    let mut trouble = false;
    if let Some(rate) = agent.error_rate()
        && rate > thresholds.error_rate_pct.value
    {
        trouble = true;
        reason(
            ReasonKind::ErrorRate,
            format!(
                "error rate {} over 1 h > {}",
                pct_text(rate),
                pct_text(thresholds.error_rate_pct.value)
            ),
            format!(
                "{} of {} transactions failed; {}",
                agent.failed_transactions_1h,
                agent.transactions_1h,
                thresholds.error_rate_pct.source()
            ),
            None,
        );
    }
    if let Some(p99) = agent.p99_ms
        && p99 > thresholds.p99_ms.value
    {
        trouble = true;
        reason(
            ReasonKind::Latency,
            format!(
                "p99 {} > {}",
                ms_text(p99),
                ms_text(thresholds.p99_ms.value)
            ),
            format!(
                "p99 of {PIPELINE} over 1 h ({} runs); {}",
                agent.cycles_1h,
                thresholds.p99_ms.source()
            ),
            None,
        );
    }
    if let Some(rate) = agent.risk_rejected_rate()
        && rate > thresholds.risk_rejected_pct.value
    {
        trouble = true;
        reason(
            ReasonKind::RiskChecks,
            format!(
                "risk checks rejected {} of orders > {}",
                pct_text(rate),
                pct_text(thresholds.risk_rejected_pct.value)
            ),
            format!(
                "{} of {} order pipelines over 1 h; {}",
                agent.risk_rejected_1h,
                agent.cycles_1h,
                thresholds.risk_rejected_pct.source()
            ),
            None,
        );
    }
    // Its crons (its heartbeat is its lifecycle, above). A stopped agent's crons are not
    // expected to run.
    if lifecycle != Status::Stopped {
        let heartbeat_slug = format!("agent-{}-heartbeat", agent.agent_id);
        for m in monitors.iter().filter(|m| m.slug != heartbeat_slug) {
            let what = match m.status.as_str() {
                "missed_checkin" | "missed" => "missed",
                "timeout" => "timed out",
                "error" => "failed",
                _ => continue,
            };
            trouble = true;
            reason(
                ReasonKind::Cron,
                format!("cron {} {what}", m.slug),
                format!(
                    "environment {}; last check-in {}",
                    if m.environment.is_empty() {
                        "(none)"
                    } else {
                        &m.environment
                    },
                    m.last_checkin
                        .map(|t| format!("{} ago", ago_text(now - t)))
                        .unwrap_or_else(|| "never".into())
                ),
                None,
            );
        }
    }
    for i in alerts {
        trouble = true;
        reason(
            ReasonKind::Alert,
            format!("alert firing: {}", i.title),
            format!("{} since {} ago", i.severity, ago_text(now - i.opened_at)),
            Some(i.id),
        );
    }
    let status = match lifecycle {
        Status::Healthy if trouble => Status::Degraded,
        other => other,
    };
    (status, reasons)
}

/// Every agent of `facts` with its status and reasons, troubled agents first (worst status,
/// then most reasons, then by id).
pub fn assess_all(facts: OverviewFacts, now: i64) -> Vec<AgentHealth> {
    let OverviewFacts {
        agents,
        monitors,
        incidents,
        rules,
        channel_ids,
    } = facts;
    let mut out: Vec<(Status, AgentHealth)> = agents
        .into_iter()
        .map(|agent| {
            let thresholds = thresholds_for(&agent, &rules, &channel_ids);
            let mine: Vec<MonitorState> = monitors
                .iter()
                .filter(|m| {
                    m.project_id == agent.project_id
                        && monitor_belongs(&m.slug, &agent.agent_id, agent.strategy.as_deref())
                })
                .cloned()
                .collect();
            let alerts: Vec<OpenIncident> = incidents
                .iter()
                .filter(|i| incident_about(i, &agent))
                .cloned()
                .collect();
            let (status, reasons) = assess(&agent, &thresholds, &mine, &alerts, now);
            (
                status,
                AgentHealth {
                    agent,
                    status: status.as_str(),
                    reasons,
                    thresholds,
                    monitors: mine,
                    alerts,
                },
            )
        })
        .collect();
    out.sort_by(|(sa, a), (sb, b)| {
        sa.cmp(sb)
            .then_with(|| b.reasons.len().cmp(&a.reasons.len()))
            .then_with(|| a.agent_id.cmp(&b.agent_id))
            .then_with(|| a.project_slug.cmp(&b.project_slug))
    });
    out.into_iter().map(|(_, a)| a).collect()
}

/// Every agent of organisation `org` as of `now` (ms), troubled first (blocking; the
/// pages call [`overview`]).
pub fn overview_now(store: &Store, org: &str, now: i64) -> Result<Vec<AgentHealth>, StoreError> {
    Ok(assess_all(store.agents().overview(org, now)?, now))
}

/// Every agent of organisation `org` as of `now` (ms), troubled first.
pub async fn overview(
    store: &Store,
    org: &str,
    now: i64,
) -> Result<Vec<AgentHealth>, ServiceError> {
    let store = store.clone();
    let org = org.to_owned();
    blocking(move || overview_now(&store, &org, now)).await
}

/// What happened to an agent, for its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A session started.
    Session,
    /// A session started after a crash or hang.
    Restart,
    /// A session crashed.
    Crash,
    /// A session ended abnormally (the watchdog) or errored.
    Hang,
    /// A session ended cleanly.
    Stop,
    /// A deploy of its release.
    Deploy,
    /// An alert opened.
    AlertOpened,
    /// An alert resolved.
    AlertResolved,
    /// A check-in of its heartbeat or crons.
    CheckIn,
    /// The kill switch paused its trading.
    Paused,
    /// Its trading was resumed.
    Resumed,
}

impl EntryKind {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            EntryKind::Session => "session",
            EntryKind::Restart => "restart",
            EntryKind::Crash => "crash",
            EntryKind::Hang => "hang",
            EntryKind::Stop => "stop",
            EntryKind::Deploy => "deploy",
            EntryKind::AlertOpened => "alert",
            EntryKind::AlertResolved => "resolved",
            EntryKind::CheckIn => "check-in",
            EntryKind::Paused => "paused",
            EntryKind::Resumed => "resumed",
        }
    }

    /// Whether it is bad news.
    pub fn bad(self) -> bool {
        matches!(
            self,
            EntryKind::Crash | EntryKind::Hang | EntryKind::AlertOpened | EntryKind::Paused
        )
    }
}

/// One entry of an agent's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When (ms).
    pub at: i64,
    /// What.
    pub kind: EntryKind,
    /// In words.
    pub text: String,
    /// Where to read more (a path in the UI), if anywhere.
    pub link: Option<String>,
    /// A failed check-in (`kind` is [`EntryKind::CheckIn`]).
    pub failed: bool,
}

/// The timeline of an agent from its facts: sessions (with restarts, crashes, hangs and
/// stops), deploys of its releases, alerts opened and resolved, check-ins; newest first, at
/// most `limit` entries.
pub fn timeline(d: &AgentDetail, limit: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    // Oldest first, so a start after a crash reads as a restart.
    let mut sessions = d.sessions.clone();
    sessions.sort_by_key(|s| s.started);
    let mut previous_bad = false;
    for s in &sessions {
        let restart = previous_bad;
        out.push(Entry {
            at: s.started,
            kind: if restart {
                EntryKind::Restart
            } else {
                EntryKind::Session
            },
            text: format!(
                "{} ({})",
                if restart {
                    "restarted after a crash or hang"
                } else {
                    "session started"
                },
                s.release
            ),
            link: None,
            failed: false,
        });
        let end = match s.status.as_str() {
            "crashed" => Some((EntryKind::Crash, "crashed".to_owned())),
            "abnormal" => Some((
                EntryKind::Hang,
                "session ended abnormally (watchdog)".to_owned(),
            )),
            "exited" => Some((EntryKind::Stop, "session ended cleanly".to_owned())),
            _ => None,
        };
        previous_bad = matches!(s.status.as_str(), "crashed" | "abnormal");
        if let Some((kind, text)) = end {
            let errors = if s.errors > 0 {
                format!(" after {} errors", s.errors)
            } else {
                String::new()
            };
            out.push(Entry {
                at: s.updated,
                kind,
                text: format!("{text}{errors}"),
                link: None,
                failed: false,
            });
        }
    }
    for dep in &d.deploys {
        out.push(Entry {
            at: dep.finished,
            kind: EntryKind::Deploy,
            text: format!(
                "release {} deployed to {}{}",
                dep.release,
                dep.environment,
                dep.name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
            link: Some("/releases".into()),
            failed: false,
        });
    }
    for i in &d.incidents {
        let link = Some(format!("/alerts/incidents/{}", i.id));
        // An issue alert fires once; a metric alert opens, and later resolves.
        let fired = i.status == "fired";
        out.push(Entry {
            at: i.opened_at,
            kind: EntryKind::AlertOpened,
            text: if fired {
                format!("alert fired: {}", i.title)
            } else {
                format!("alert opened ({}): {}", i.severity, i.title)
            },
            link: link.clone(),
            failed: false,
        });
        if let Some(closed) = i.closed_at.filter(|_| !fired) {
            out.push(Entry {
                at: closed,
                kind: EntryKind::AlertResolved,
                text: format!("alert resolved: {}", i.title),
                link,
                failed: false,
            });
        }
    }
    for c in &d.check_ins {
        let failed = !matches!(c.status.as_str(), "ok" | "in_progress");
        out.push(Entry {
            at: c.at,
            kind: EntryKind::CheckIn,
            text: format!(
                "{} {}{}",
                c.slug,
                match c.status.as_str() {
                    "missed" | "missed_checkin" => "missed",
                    "timeout" => "timed out",
                    "error" => "failed",
                    "in_progress" => "started",
                    other => other,
                },
                c.duration_ms
                    .map(|d| format!(" in {}", ms_text(d)))
                    .unwrap_or_default()
            ),
            link: Some("/crons".into()),
            failed,
        });
    }
    for t in &d.trading_changes {
        let paused = t.action == "pause";
        out.push(Entry {
            at: t.at,
            kind: if paused {
                EntryKind::Paused
            } else {
                EntryKind::Resumed
            },
            text: if paused {
                format!(
                    "trading paused by {}: {}{}",
                    t.by.describe(),
                    t.reason.as_deref().unwrap_or(""),
                    t.until
                        .map(|u| format!(" (until {} UTC)", crate::time::iso(u)))
                        .unwrap_or_default()
                )
            } else {
                format!("trading resumed by {}", t.by.describe())
            },
            link: None,
            failed: false,
        });
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out.truncate(limit);
    out
}

/// Latency and outcomes of one stage in one bucket of time.
#[derive(Debug, Clone, PartialEq)]
pub struct StageBucket {
    /// Bucket start (ms).
    pub start: i64,
    /// Runs.
    pub count: i64,
    /// Failed runs.
    pub failed: i64,
    /// p50, p95, p99 (ms).
    pub p50: Option<f64>,
    /// p95 (ms).
    pub p95: Option<f64>,
    /// p99 (ms).
    pub p99: Option<f64>,
}

/// One stage of the agent's pipelines over the period.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSeries {
    /// Span op (`order.pipeline` is the pipeline as a whole).
    pub op: String,
    /// The whole period.
    pub total: StageBucket,
    /// Per bucket, oldest first (only buckets with runs).
    pub buckets: Vec<StageBucket>,
}

/// Outcomes in one bucket of time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutcomeBucket {
    /// Bucket start (ms).
    pub start: i64,
    /// Pipeline runs that succeeded.
    pub ok: i64,
    /// Pipeline runs that failed.
    pub failed: i64,
    /// Of the failed, rejected by a risk check.
    pub risk_rejected: i64,
    /// Error events.
    pub errors: i64,
}

fn bucket_of(minute: i64, since: i64, bucket_ms: i64) -> i64 {
    since + (minute - since).div_euclid(bucket_ms) * bucket_ms
}

/// The agent's pipeline stages in buckets of `bucket_ms` from `since`: the pipeline first,
/// then stages by op.
pub fn stage_series(d: &AgentDetail, since: i64, bucket_ms: i64) -> Vec<StageSeries> {
    let bucket_ms = bucket_ms.max(60_000);
    // Sketch, runs, failed runs: for the whole period, and per bucket.
    type Acc = (DDSketch, i64, i64);
    let mut by_op: BTreeMap<&str, (Acc, BTreeMap<i64, Acc>)> = BTreeMap::new();
    for row in &d.stages {
        let (whole, buckets) = by_op.entry(&row.op).or_default();
        for acc in [
            whole,
            buckets
                .entry(bucket_of(row.minute, since, bucket_ms))
                .or_default(),
        ] {
            acc.0.merge(&row.sketch);
            acc.1 += row.count;
            acc.2 += row.failed;
        }
    }
    let bucket = |start, sk: &DDSketch, count, failed| StageBucket {
        start,
        count,
        failed,
        p50: sk.quantile(0.5),
        p95: sk.quantile(0.95),
        p99: sk.quantile(0.99),
    };
    let mut out: Vec<StageSeries> = by_op
        .into_iter()
        .map(|(op, ((sk, count, failed), buckets))| StageSeries {
            op: op.to_owned(),
            total: bucket(since, &sk, count, failed),
            buckets: buckets
                .iter()
                .map(|(start, (sk, c, f))| bucket(*start, sk, *c, *f))
                .collect(),
        })
        .collect();
    out.sort_by_key(|s| (s.op != PIPELINE, s.op.clone()));
    out
}

/// The agent's pipeline outcomes in buckets of `bucket_ms` from `since`, every bucket up to
/// `now`, oldest first.
pub fn outcome_series(d: &AgentDetail, since: i64, now: i64, bucket_ms: i64) -> Vec<OutcomeBucket> {
    let bucket_ms = bucket_ms.max(60_000);
    let mut out: BTreeMap<i64, OutcomeBucket> = BTreeMap::new();
    let mut t = since;
    while t <= now {
        out.insert(
            t,
            OutcomeBucket {
                start: t,
                ..OutcomeBucket::default()
            },
        );
        t += bucket_ms;
    }
    for m in &d.outcomes {
        let start = bucket_of(m.minute, since, bucket_ms);
        let b = out.entry(start).or_insert_with(|| OutcomeBucket {
            start,
            ..OutcomeBucket::default()
        });
        b.ok += m.cycles - m.failed;
        b.failed += m.failed;
        b.risk_rejected += m.risk_rejected;
        b.errors += m.errors;
    }
    out.into_values().collect()
}

/// A decision breadcrumb (`trade.*`) of one of the agent's latest events.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// When (ms), if the breadcrumb says.
    pub at: Option<i64>,
    /// `trade.signal`, `trade.risk`, `trade.api`, `trade.position`.
    pub category: String,
    /// Its level.
    pub level: String,
    /// Its message.
    pub message: String,
    /// Its data as `key=value` pairs.
    pub data: Vec<(String, String)>,
    /// The event it came with.
    pub event_id: String,
    /// That event's issue.
    pub issue_id: Option<i64>,
}

fn crumb_time(v: &serde_json::Value) -> Option<i64> {
    match v.get("timestamp")? {
        serde_json::Value::Number(n) => n.as_f64().map(|s| (s * 1000.0) as i64),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis()),
        _ => None,
    }
}

/// The decision breadcrumbs (category `trade.*`) of the agent's latest events, newest
/// first, at most `limit`, each once (events of one run share their breadcrumbs).
pub fn decisions(d: &AgentDetail, limit: usize) -> Vec<Decision> {
    let mut out: Vec<Decision> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in &d.events {
        for b in &e.breadcrumbs {
            let category = b.get("category").and_then(|c| c.as_str()).unwrap_or("");
            if !category.starts_with("trade.") {
                continue;
            }
            let message = b
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_owned();
            let at = crumb_time(b);
            if !seen.insert((at, category.to_owned(), message.clone())) {
                continue;
            }
            let data = b
                .get("data")
                .and_then(|d| d.as_object())
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                match v {
                                    serde_json::Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                },
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Decision {
                at,
                category: category.to_owned(),
                level: b
                    .get("level")
                    .and_then(|l| l.as_str())
                    .unwrap_or("info")
                    .to_owned(),
                message,
                data,
                event_id: e.event_id.clone(),
                issue_id: e.issue_id,
            });
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out.truncate(limit);
    out
}

/// The agent page: the agent with its status and reasons, and what its page shows.
#[derive(Debug, Clone)]
pub struct AgentPage {
    /// Its status, reasons, figures of the last hour.
    pub health: AgentHealth,
    /// The store's facts about it.
    pub detail: AgentDetail,
}

/// Agent `agent_id` of organisation `org` at `now`, with its timeline and pipelines since
/// `since`; `None` for an unknown agent.
pub async fn agent(
    store: &Store,
    org: &str,
    agent_id: &str,
    since: i64,
    now: i64,
) -> Result<Option<AgentPage>, ServiceError> {
    let agents = store.agents();
    let (org, agent_id) = (org.to_owned(), agent_id.to_owned());
    let detail = blocking(move || agents.detail(&org, &agent_id, since, now)).await?;
    Ok(detail.and_then(|detail| {
        let health = assess_all(detail.facts.clone(), now).into_iter().next()?;
        Some(AgentPage { health, detail })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn agent(id: &str) -> AgentRow {
        AgentRow {
            project_id: 1,
            project_slug: "default".into(),
            agent_id: id.into(),
            strategy: Some("vol-arb".into()),
            release: Some("vol-arb@1.0.0".into()),
            environment: Some("paper".into()),
            first_seen: NOW - 3_600_000,
            last_seen: NOW - 1000,
            session_status: Some("ok".into()),
            session_updated: Some(NOW - 1000),
            heartbeat_status: Some("ok".into()),
            last_heartbeat: Some(NOW - 1000),
            ..AgentRow::default()
        }
    }

    fn rule(id: i64, aggregate: &str, query: &str, threshold: f64) -> ActiveRule {
        ActiveRule {
            id,
            project_id: 1,
            name: format!("rule {id}"),
            spec: json!({"name": format!("rule {id}"), "aggregate": aggregate, "query": query,
                         "timeWindow": 5, "thresholdType": 0,
                         "triggers": [{"label": "critical", "alertThreshold": threshold, "actions": []}]}),
        }
    }

    fn cron(slug: &str, status: &str) -> MonitorState {
        MonitorState {
            project_id: 1,
            slug: slug.into(),
            environment: "paper".into(),
            status: status.into(),
            last_checkin: Some(NOW - 120_000),
        }
    }

    fn judge(a: &AgentRow) -> (Status, Vec<String>) {
        let (s, r) = assess(a, &Thresholds::default(), &[], &[], NOW);
        (s, r.into_iter().map(|r| r.text).collect())
    }

    #[test]
    fn lifecycle_statuses() {
        let mut a = agent("a");
        assert_eq!(judge(&a).0, Status::Healthy);
        a.session_status = Some("crashed".into());
        assert_eq!(judge(&a).0, Status::Crashed);
        a.session_status = Some("abnormal".into());
        assert_eq!(judge(&a).0, Status::Hung);
        a.session_status = Some("ok".into());
        a.heartbeat_status = Some("missed_checkin".into());
        let (s, r) = judge(&a);
        assert_eq!(s, Status::Hung);
        assert_eq!(r, ["hung: heartbeat missed"]);
        // A clean end is a stop, whatever the heartbeat says after it.
        a.session_status = Some("exited".into());
        assert_eq!(judge(&a), (Status::Stopped, vec![]));
        a.session_status = None;
        a.heartbeat_status = None;
        a.last_seen = NOW - SILENT_AFTER_MS - 60_000;
        assert_eq!(
            judge(&a),
            (Status::Silent, vec!["silent for 11 min".into()])
        );
    }

    #[test]
    fn figures_outside_thresholds_degrade_with_reasons_in_words() {
        let mut a = agent("a");
        a.transactions_1h = 10;
        a.failed_transactions_1h = 10;
        assert_eq!(
            judge(&a),
            (
                Status::Degraded,
                vec!["error rate 100 % over 1 h > 5 %".into()]
            )
        );
        let mut a = agent("b");
        a.transactions_1h = 32;
        a.failed_transactions_1h = 13;
        a.cycles_1h = 32;
        a.p99_ms = Some(2500.0);
        let (s, r) = judge(&a);
        assert_eq!(s, Status::Degraded);
        assert_eq!(r, ["error rate 40.6 % over 1 h > 5 %", "p99 2.5 s > 2 s"]);
        let mut a = agent("c");
        a.cycles_1h = 10;
        a.risk_rejected_1h = 5;
        assert_eq!(judge(&a).1, ["risk checks rejected 50 % of orders > 20 %"]);
    }

    #[test]
    fn no_transactions_no_error_rate() {
        let mut a = agent("a");
        a.errors_1h = 40;
        a.events_1h = 40;
        assert_eq!(a.error_rate(), None);
        assert_eq!(judge(&a), (Status::Healthy, vec![]));
    }

    #[test]
    fn crons_and_alerts_degrade() {
        let a = agent("ag_vol_arb");
        let crons = [
            cron("vol-arb-recalibrate", "missed_checkin"),
            cron("vol-arb-rebalance", "ok"),
            cron("agent-ag_vol_arb-heartbeat", "ok"),
        ];
        let (s, r) = assess(&a, &Thresholds::default(), &crons, &[], NOW);
        assert_eq!(s, Status::Degraded);
        assert_eq!(r[0].text, "cron vol-arb-recalibrate missed");
        assert_eq!(r.len(), 1);
        let alert = OpenIncident {
            id: 7,
            project_id: 1,
            key: "ag_vol_arb".into(),
            title: "Agent crashed or hung (agent ag_vol_arb)".into(),
            severity: "critical".into(),
            opened_at: NOW - 60_000,
            rule_query: Some(String::new()),
        };
        assert!(incident_about(&alert, &a));
        let (s, r) = assess(&a, &Thresholds::default(), &[], &[alert], NOW);
        assert_eq!(s, Status::Degraded);
        assert_eq!(r[0].incident_id, Some(7));
        assert!(r[0].text.starts_with("alert firing: Agent crashed"));
        // A project-wide incident is not about the agent; one whose rule names it is.
        let other = OpenIncident {
            id: 8,
            project_id: 1,
            key: String::new(),
            title: "Error rate spike".into(),
            severity: "critical".into(),
            opened_at: NOW,
            rule_query: Some(String::new()),
        };
        assert!(!incident_about(&other, &a));
        let named = OpenIncident {
            rule_query: Some("agent_id:ag_vol_arb".into()),
            ..other
        };
        assert!(incident_about(&named, &a));
        // A stopped agent's crons are not expected to run.
        let mut stopped = agent("ag_vol_arb");
        stopped.session_status = Some("exited".into());
        let (s, r) = assess(&stopped, &Thresholds::default(), &crons, &[], NOW);
        assert_eq!((s, r.len()), (Status::Stopped, 0));
    }

    #[test]
    fn thresholds_come_from_the_agents_rules() {
        let a = agent("ag_1");
        assert_eq!(thresholds_for(&a, &[], &[]), Thresholds::default());
        let rules = [
            rule(1, "error_rate()", "", 10.0),
            rule(
                2,
                "p99(transaction.duration)",
                "transaction.op:order.pipeline",
                1500.0,
            ),
            // Narrower than the agent: not its threshold.
            rule(3, "error_rate()", "trade.asset:BTC", 1.0),
            // Another agent's.
            rule(4, "error_rate()", "agent_id:ag_2", 1.0),
            // p99 of something else.
            rule(
                5,
                "p99(transaction.duration)",
                "transaction.op:http.server",
                100.0,
            ),
            rule(
                6,
                "tag_ratio(outcome, rejected_risk)",
                "transaction.op:order.pipeline",
                30.0,
            ),
        ];
        let t = thresholds_for(&a, &rules, &[]);
        assert_eq!(t.error_rate_pct.value, 10.0);
        assert_eq!(t.error_rate_pct.rule, Some((1, "rule 1".into())));
        assert_eq!(t.p99_ms.value, 1500.0);
        assert_eq!(t.risk_rejected_pct.value, 30.0);
        // A rule naming the agent wins over a project-wide one, even when looser.
        let mut more = rules.to_vec();
        more.push(rule(7, "error_rate()", "agent_id:ag_1", 50.0));
        let t = thresholds_for(&a, &more, &[]);
        assert_eq!(t.error_rate_pct.value, 50.0);
        assert_eq!(t.error_rate_pct.rule.as_ref().map(|r| r.0), Some(7));
        // Rules of another project do not apply.
        let mut elsewhere = rule(8, "error_rate()", "", 0.1);
        elsewhere.project_id = 2;
        assert_eq!(
            thresholds_for(&a, &[elsewhere], &[]).error_rate_pct.value,
            DEFAULT_ERROR_RATE_PCT
        );
        // The p99 judged against a rule's threshold.
        let mut slow = agent("ag_1");
        slow.cycles_1h = 20;
        slow.p99_ms = Some(1800.0);
        let (s, r) = assess(&slow, &t, &[], &[], NOW);
        assert_eq!(s, Status::Degraded);
        assert_eq!(r[0].text, "p99 1.8 s > 1.5 s");
        assert!(r[0].detail.contains("rule 2"), "{}", r[0].detail);
    }

    #[test]
    fn troubled_agents_first() {
        let healthy = agent("a_healthy");
        let mut degraded = agent("z_degraded");
        degraded.transactions_1h = 4;
        degraded.failed_transactions_1h = 4;
        let mut crashed = agent("m_crashed");
        crashed.session_status = Some("crashed".into());
        let mut stopped = agent("b_stopped");
        stopped.session_status = Some("exited".into());
        let facts = OverviewFacts {
            agents: vec![healthy, degraded, crashed, stopped],
            ..OverviewFacts::default()
        };
        let order: Vec<&str> = assess_all(facts, NOW).iter().map(|a| a.status).collect();
        assert_eq!(order, ["crashed", "degraded", "healthy", "stopped"]);
    }

    #[test]
    fn numbers_for_reading() {
        assert_eq!(pct_text(100.0), "100 %");
        assert_eq!(pct_text(40.625), "40.6 %");
        assert_eq!(ms_text(2500.0), "2.5 s");
        assert_eq!(ms_text(2000.0), "2 s");
        assert_eq!(ms_text(850.4), "850 ms");
    }
}
