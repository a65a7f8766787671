//! The alert stage: trading alert rules evaluated as events are digested, in a stage of its
//! own after the digest.
//!
//! The digest appends each stored event (with what it did to its issue) and each project
//! whose transactions or sessions it stored to the alert feed, in the batch's transaction.
//! The alert stage ([`AlertEngine::step`]) reads the feed after its cursor and, in one
//! transaction of its own, evaluates and records what it decided, the cursor included: a
//! crash (even `kill -9`) between the digest and the alert stage neither loses nor repeats
//! a notification, and the digest's transaction no longer waits for rule evaluation.
//!
//! * Issue alerts run on every fed event: conditions (first seen, regression, frequency,
//!   users, percent of sessions, new issue after a deploy), filters, then the action
//!   interval per rule and issue.
//! * Metric alerts are recomputed for the projects a step touched (at most every
//!   [`BATCH_EVAL_INTERVAL_MS`] per rule) and for every project on each clock tick
//!   ([`TickJob`]), which is how what is *absent* is noticed: a window that emptied, an
//!   agent that crashed and did not come back, a missed heartbeat. Every aggregate reads
//!   per-minute rollups (latency sketches, event levels, sessions, and for the counting
//!   aggregates the tag and user rollups), so one evaluation reads at most window-minutes
//!   rows per combination, whatever the event rate.
//! * A state change (ok → warning/critical → resolved) opens or updates an incident and
//!   writes one outbox row per channel **in the same transaction**; the [`notify::Notifier`]
//!   delivers them.

pub mod notify;
pub mod rules;
pub mod telegram_bot;

use crate::clock::TickJob;
use crate::store::Result;
use crate::store::StoreError;
use crate::store::alerting::{
    AlertStage, AlertTx, FedEvent, KeyState, Measurer, NewIncident, Notification, RollupFilter,
    TagSel,
};
use crate::store::alerts::StoredRule;
use crate::store::read::Term;
use rules::{
    Action, Aggregate, Condition, Duration as Dur, Filter, IssueRule, MetricRule, RollupQuery,
    ThresholdType,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// A metric rule is recomputed after a step at most this often (the tick catches the rest).
pub const BATCH_EVAL_INTERVAL_MS: i64 = 100;

/// Feed rows evaluated per step (one transaction).
const FEED_ROWS: i64 = 512;

/// Severity of a metric rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Level {
        match s {
            "warning" => Level::Warning,
            "critical" => Level::Critical,
            _ => Level::Ok,
        }
    }
}

/// The alert stage: consumes the alert feed after the digest, and runs as a tick job.
#[derive(Debug)]
pub struct AlertEngine {
    stage: AlertStage,
    public_url: String,
    /// Last step-time evaluation per metric rule (ms).
    last_eval: Mutex<HashMap<i64, i64>>,
    /// Wakes the notifier after a commit that wrote to the outbox.
    wake: Arc<Notify>,
    clock: crate::clock::Clock,
    /// One step or tick at a time: both write rule states.
    running: Mutex<()>,
}

/// A running alert stage (the task that follows the digest).
#[derive(Debug)]
pub struct AlertRunner {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AlertRunner {
    /// Finish the step in hand and stop; what is left in the feed is evaluated at the next
    /// start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "alert stage ended badly");
        }
    }
}

impl AlertEngine {
    /// An alert stage over `stage`; notification links point at `public_url`.
    pub fn new(
        stage: AlertStage,
        public_url: String,
        wake: Arc<Notify>,
        clock: crate::clock::Clock,
    ) -> AlertEngine {
        AlertEngine {
            stage,
            public_url,
            last_eval: Mutex::default(),
            wake,
            clock,
            running: Mutex::new(()),
        }
    }

    /// Install the preset rules on every project that has not had them yet, and have the
    /// digest roll up the tags the rules count.
    pub fn ensure_presets(&self) -> Result<()> {
        self.stage
            .ensure_presets(&rules::presets(), chrono::Utc::now().timestamp_millis())?;
        sync_rollup_keys(&self.stage)
    }

    /// Follow the digest: after each wake-up on `digested` (and every half second), run
    /// steps until the feed is empty.
    /// Only while `role` leads: one node at a time evaluates.
    pub fn start(
        self: &Arc<Self>,
        digested: Arc<Notify>,
        role: crate::cluster::Role,
    ) -> AlertRunner {
        let (stop, mut stopped) = watch::channel(false);
        let engine = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                let e = Arc::clone(&engine);
                let leads = role.is_leader();
                match tokio::task::spawn_blocking(move || if leads { e.step() } else { Ok(0) })
                    .await
                {
                    Ok(Ok(n)) if n > 0 => continue,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "alert step failed; retrying"),
                    Err(e) => tracing::error!(error = %e, "alert step panicked; retrying"),
                }
                if *stopped.borrow() {
                    return;
                }
                tokio::select! {
                    () = digested.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        AlertRunner { stop, task }
    }

    /// Evaluate the next feed rows after the cursor, and move the cursor past them in the
    /// same transaction. Returns how many rows were evaluated (0: the feed was empty).
    pub fn step(&self) -> Result<usize> {
        let _one = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cursor = self.stage.cursor()?;
        let items = self.stage.feed(cursor, FEED_ROWS)?;
        if items.is_empty() {
            return Ok(0);
        }
        let consumed: Vec<i64> = items.iter().map(|i| i.seq).collect();
        let now = self.clock.now_ms();
        let projects: HashSet<i64> = items.iter().map(|i| i.project_id).collect();
        self.stage.run(Some(&consumed), |tx| {
            let rules = tx.rules(Some(&projects))?;
            if rules.is_empty() {
                return Ok(());
            }
            let ctx = Ctx {
                tx,
                now,
                public_url: &self.public_url,
            };
            let mut channels = ChannelIds::default();
            let of_org = |org| Ok(tx.channels(org)?.iter().map(|c| c.id).collect());
            let mut issue_rules: Vec<(&StoredRule, IssueRule)> = Vec::new();
            for r in rules.iter().filter(|r| r.kind == "issue") {
                let ids = channels.of(r.org_id, of_org)?;
                if let Ok(parsed) = rules::parse_issue_rule(&r.spec, ids) {
                    issue_rules.push((r, parsed));
                }
            }
            if !issue_rules.is_empty() {
                for item in &items {
                    let Some(event) = &item.event else {
                        continue;
                    };
                    for (row, rule) in issue_rules
                        .iter()
                        .filter(|(r, _)| r.project_id == item.project_id)
                    {
                        evaluate_issue_rule(&ctx, row, rule, item.project_id, event)?;
                    }
                }
            }
            let mut due = Vec::new();
            {
                let mut last = self
                    .last_eval
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for r in rules.iter().filter(|r| r.kind == "metric") {
                    let at = last.entry(r.id).or_insert(i64::MIN);
                    if now.saturating_sub(*at) >= BATCH_EVAL_INTERVAL_MS {
                        *at = now;
                        due.push(r);
                    }
                }
            }
            for r in due {
                let Some(rule) = parse_metric(r, channels.of(r.org_id, of_org)?) else {
                    continue;
                };
                let values = metric_values(&tx.measurer(), now, r, &rule)?;
                apply_values(&ctx, r, &rule, &values, None)?;
            }
            Ok(())
        })?;
        self.wake.notify_one();
        Ok(items.len())
    }
}

impl TickJob for AlertEngine {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn tick(&self, now_ms: i64) -> Result<()> {
        // Measure without the writer (the digest keeps writing meanwhile)…
        let snapshot = self.stage.states()?;
        let mut measured: Vec<Measured> = Vec::new();
        for (r, rule) in metric_rules(&self.stage)? {
            let values = self
                .stage
                .measure(|m| metric_values(m, now_ms, &r, &rule))?;
            measured.push((r, rule, values));
        }
        // Every active metric rule was just parsed: the rollup keys follow from them.
        set_rollup_keys(&self.stage, measured.iter().map(|(r, rule, _)| (r, rule)))?;
        // …then take it only to record the state changes, one step or tick at a time.
        let _one = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.stage.run(None, |tx| {
            tx.ensure_presets(&rules::presets(), now_ms)?;
            let ctx = Ctx {
                tx,
                now: now_ms,
                public_url: &self.public_url,
            };
            for (row, rule, values) in &measured {
                apply_values(&ctx, row, rule, values, Some(&snapshot))?;
            }
            Ok(())
        })?;
        self.wake.notify_one();
        Ok(())
    }
}

/// The channel ids of each organisation, read once per evaluation.
#[derive(Debug, Default)]
struct ChannelIds(HashMap<i64, Vec<i64>>);

impl ChannelIds {
    /// The channel ids of `org`, from `read` the first time.
    fn of(&mut self, org: i64, read: impl FnOnce(i64) -> Result<Vec<i64>>) -> Result<&[i64]> {
        Ok(match self.0.entry(org) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(read(org)?),
        })
    }
}

/// Every active metric rule that still parses (a rule naming a channel that is gone is
/// skipped, loudly), with its parsed form.
fn metric_rules(stage: &AlertStage) -> Result<Vec<(StoredRule, MetricRule)>> {
    let mut channels = ChannelIds::default();
    let mut out = Vec::new();
    for r in stage
        .rules(None)?
        .into_iter()
        .filter(|r| r.kind == "metric")
    {
        if let Some(rule) = parse_metric(&r, channels.of(r.org_id, |org| stage.channel_ids(org))?) {
            out.push((r, rule));
        }
    }
    Ok(out)
}

/// Have the digest roll up exactly the tag keys the active metric rules count (per
/// project). Run at start and after a rule is saved; each tick does the same from the
/// rules it has just parsed.
pub fn sync_rollup_keys(stage: &AlertStage) -> Result<()> {
    let rules = metric_rules(stage)?;
    set_rollup_keys(stage, rules.iter().map(|(r, rule)| (r, rule)))
}

/// Make the rollup keys those `rules` count.
fn set_rollup_keys<'a>(
    stage: &AlertStage,
    rules: impl Iterator<Item = (&'a StoredRule, &'a MetricRule)>,
) -> Result<()> {
    let mut wanted = std::collections::BTreeSet::new();
    for (r, rule) in rules {
        if let Ok(q) = RollupQuery::of(&rule.aggregate, &rule.query) {
            for key in q.tag_keys(&rule.aggregate) {
                wanted.insert((r.project_id, key.to_owned()));
            }
        }
    }
    if stage.set_rollup_keys(&wanted)? {
        tracing::info!(keys = wanted.len(), "tag rollup keys changed");
    }
    Ok(())
}

/// A metric rule and its values per key, measured before the writer is taken.
type Measured = (StoredRule, MetricRule, Vec<(String, Option<f64>)>);

/// The state rows of every rule when a measurement started.
type StateSnapshot = HashMap<(i64, String), KeyState>;

struct Ctx<'a> {
    tx: &'a AlertTx<'a>,
    now: i64,
    public_url: &'a str,
}

fn tag<'a>(event: &'a FedEvent, key: &str) -> Option<&'a str> {
    event
        .tags
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn attribute(event: &FedEvent, name: &str) -> Option<String> {
    let meta = || serde_json::from_str::<Value>(&event.metadata).ok();
    match name {
        "exception.type" | "type" => meta()?.get("type")?.as_str().map(str::to_owned),
        "exception.value" | "value" => meta()?.get("value")?.as_str().map(str::to_owned),
        "message" | "title" => Some(event.title.clone()),
        "culprit" => Some(event.culprit.clone()),
        "level" => Some(event.level.clone()),
        "environment" => event.environment.clone(),
        "release" => event.release.clone(),
        "transaction" => event.transaction.clone(),
        other => tag(event, other).map(str::to_owned),
    }
}

fn evaluate_issue_rule(
    ctx: &Ctx<'_>,
    row: &StoredRule,
    rule: &IssueRule,
    project_id: i64,
    event: &FedEvent,
) -> Result<()> {
    if let Some(env) = &rule.environment
        && event.environment.as_deref() != Some(env.as_str())
    {
        return Ok(());
    }
    let tx = ctx.tx;
    let issue = tx.issue(event.issue_id)?;
    let mut results = Vec::with_capacity(rule.conditions.len());
    for c in &rule.conditions {
        let passed = match c {
            Condition::FirstSeen => event.new_issue,
            Condition::Regression => event.regression,
            Condition::EventFrequency { value, interval_ms } => {
                tx.issue_events_since(event.issue_id, ctx.now - interval_ms)? as f64 > *value
            }
            Condition::UniqueUsers { value, interval_ms } => {
                tx.issue_users_since(event.issue_id, ctx.now - interval_ms)? as f64 > *value
            }
            Condition::PercentSessions { value, interval_ms } => {
                let since = ctx.now - interval_ms;
                let n = tx.issue_events_since(event.issue_id, since)?;
                let (sessions, _) =
                    tx.measurer()
                        .sessions(project_id, since - since.rem_euclid(60_000), None)?;
                sessions > 0 && (n as f64 / sessions as f64) * 100.0 > *value
            }
            Condition::NewIssueAfterDeploy { minutes } => {
                event.new_issue && {
                    let at = issue.first_seen;
                    tx.deployed_between(
                        project_id,
                        at - minutes * 60_000,
                        at.max(event.received_ms),
                    )?
                }
            }
        };
        results.push(passed);
    }
    if rule.conditions.is_empty() || !rule.action_match.combine(results) {
        return Ok(());
    }
    let filters_pass = rule.filters.is_empty()
        || rule
            .filter_match
            .combine(rule.filters.iter().map(|f| match f {
                Filter::Level {
                    cmp,
                    or_equal,
                    level,
                } => {
                    let n = rules::level_number(&event.level);
                    n.cmp(level) == *cmp || (*or_equal && n == *level)
                }
                Filter::Tag { key, op, value } => op.test(tag(event, key), value),
                Filter::Age { newer, age_ms } => {
                    let age = ctx.now - issue.first_seen;
                    if *newer { age < *age_ms } else { age > *age_ms }
                }
                Filter::Occurrences { value } => issue.times_seen.max(1) >= *value,
                Filter::Attribute {
                    attribute: a,
                    op,
                    value,
                } => op.test(attribute(event, a).as_deref(), value),
            }));
    if !filters_pass {
        return Ok(());
    }
    // The action interval: at most once per `frequency` minutes per rule and issue.
    let last = tx.last_fired(row.id, event.issue_id)?;
    if last.is_some_and(|l| ctx.now - l < rule.frequency_min * 60_000) {
        return Ok(());
    }
    tx.set_fired(row.id, event.issue_id, ctx.now)?;
    let short_id = format!(
        "{}-{}",
        row.project_slug.to_ascii_uppercase(),
        crate::store::read::base36(issue.short_seq)
    );
    let severity = match issue.level.as_str() {
        "fatal" => "critical",
        "error" => "error",
        "warning" => "warning",
        _ => "info",
    };
    let title = &issue.title;
    let incident = tx.open_incident(&NewIncident {
        rule_id: row.id,
        project_id: row.project_id,
        key: &short_id,
        issue_id: Some(event.issue_id),
        status: "fired",
        severity,
        title: &format!("{}: {title}", row.name),
        value: None,
        at: ctx.now,
    })?;
    tx.activity(incident, ctx.now, "fired", &format!("{short_id} {title}"))?;
    // An agent's report of an order the kill switch refused never pauses it again.
    if rule
        .actions
        .iter()
        .any(|a| matches!(a, Action::PauseAgent { .. }))
        && tag(event, "trade.error_type") != Some("Paused")
    {
        let reason = format!("{}: {short_id} {title}", row.name);
        pause_agent(ctx, row, incident, tag(event, "agent_id"), &reason)?;
    }
    let message = notify::Message {
        kind: "issue",
        action: notify::Act::Trigger,
        rule_id: row.id,
        rule_name: row.name.clone(),
        project: row.project_slug.clone(),
        incident_id: incident,
        severity: severity.to_owned(),
        title: title.clone(),
        text: format!("{}: {short_id} {title}", row.name),
        culprit: issue.culprit.clone(),
        value: None,
        url: format!("{}/issues/{}/", ctx.public_url, event.issue_id),
        dedup_key: short_id.clone(),
        issue: Some(json!({
            "id": event.issue_id.to_string(), "shortId": short_id, "title": title,
            "culprit": issue.culprit, "level": issue.level, "firstSeen": crate::time::iso(issue.first_seen),
            "count": issue.times_seen.max(1),
        })),
        event: Some(json!({
            "eventId": event.event_id, "level": event.level, "release": event.release,
            "environment": event.environment,
            "tags": event.tags.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        })),
        agent: tag(event, "agent_id").map(str::to_owned),
        at: ctx.now,
    };
    enqueue(ctx.tx, row, &rule.actions, &message)
}

/// Write one outbox row per channel the actions reach.
fn enqueue(
    tx: &AlertTx<'_>,
    row: &StoredRule,
    actions: &[Action],
    message: &notify::Message,
) -> Result<()> {
    // A muted rule still decides and records; it only notifies no one.
    if let Some(until) = tx.muted_until(row.id, message.at)? {
        let until = until.map_or_else(|| "it is unmuted".to_owned(), crate::time::iso);
        tx.activity(
            message.incident_id,
            message.at,
            "muted",
            &format!("rule muted until {until}: no notification sent"),
        )?;
        return Ok(());
    }
    let channels: Vec<notify::Channel> = tx
        .channels(row.org_id)?
        .into_iter()
        .map(|c| notify::Channel {
            id: c.id,
            provider: c.provider,
            name: c.name,
            config: c.config,
        })
        .collect();
    let mut targets: Vec<(&notify::Channel, Option<&str>)> = Vec::new();
    for a in actions {
        match a {
            Action::AllChannels => targets.extend(channels.iter().map(|c| (c, None))),
            Action::Email { to } => {
                let emails: Vec<_> = channels.iter().filter(|c| c.provider == "email").collect();
                if emails.is_empty() {
                    targets.extend(channels.iter().map(|c| (c, None)));
                } else {
                    targets.extend(emails.into_iter().map(|c| (c, to.as_deref())));
                }
            }
            // The kill switch acts in the alert's transaction, not through a channel.
            Action::PauseAgent { .. } => {}
            Action::Integration { id, target } => {
                targets.extend(
                    channels
                        .iter()
                        .filter(|c| c.id == *id)
                        .map(|c| (c, target.as_deref())),
                );
            }
        }
    }
    let mut seen = HashSet::new();
    for (channel, target) in targets {
        if !seen.insert(channel.id) {
            continue;
        }
        match notify::render(channel, target, message) {
            Ok((url, body)) => {
                tx.enqueue(&Notification {
                    incident_id: message.incident_id,
                    integration_id: channel.id,
                    provider: &channel.provider,
                    url: &url,
                    body: &body.to_string(),
                    at: message.at,
                })?;
            }
            Err(e) => {
                tracing::warn!(channel = channel.id, error = %e, "channel misconfigured; notification skipped");
                tx.activity(
                    message.incident_id,
                    message.at,
                    "channel_error",
                    &format!("{}: {e}", channel.name),
                )?;
            }
        }
    }
    Ok(())
}

/// The kinds a rule's dataset counts: events (errors and messages) or transactions.
fn dataset_kinds(rule: &MetricRule) -> &'static [&'static str] {
    if rule.dataset == "transactions" {
        &["transaction"]
    } else {
        &["error", "default"]
    }
}

/// Events of `kinds` and `levels` (empty: any) that match `q` and the rule's environment,
/// counting tag rows `tag`, from the per-minute rollups. The query's own tag, when it has
/// one and `tag` is the total, narrows the count (or, negated, is taken out of it).
#[allow(clippy::too_many_arguments)]
fn rollup_count(
    m: &Measurer<'_>,
    project: i64,
    minute_since: i64,
    rule: &MetricRule,
    q: &RollupQuery,
    kinds: &[&'static str],
    levels: &[&str],
    tag: TagSel<'_>,
) -> Result<i64> {
    let kinds = q.kinds_of(kinds);
    let levels: Vec<&str> = match (levels.is_empty(), q.levels.is_empty()) {
        (_, true) => levels.to_vec(),
        (true, false) => q.levels.iter().map(String::as_str).collect(),
        (false, false) => levels
            .iter()
            .copied()
            .filter(|l| q.levels.iter().any(|x| x == l))
            .collect(),
    };
    if !q.levels.is_empty() && levels.is_empty() {
        // The query's levels and the aggregate's have nothing in common.
        return Ok(0);
    }
    let environment = q.environment.as_deref().or(rule.environment.as_deref());
    let filter = |tag| RollupFilter {
        kinds: &kinds,
        environment,
        op: q.op.as_deref(),
        levels: &levels,
        tag,
    };
    match (&q.tag, tag) {
        (Some((k, v, false)), TagSel::Total) => {
            m.rollup_count(project, minute_since, &filter(TagSel::Value(k, v)))
        }
        (Some((k, v, true)), TagSel::Total) => {
            Ok(
                m.rollup_count(project, minute_since, &filter(TagSel::Total))?
                    - m.rollup_count(project, minute_since, &filter(TagSel::Value(k, v)))?,
            )
        }
        (_, tag) => m.rollup_count(project, minute_since, &filter(tag)),
    }
}

/// The value of a metric rule at `now`, per key (`""` for the rule as a whole).
fn metric_values(
    m: &Measurer<'_>,
    now: i64,
    row: &StoredRule,
    rule: &MetricRule,
) -> Result<Vec<(String, Option<f64>)>> {
    let since = now - rule.time_window_min * 60_000;
    let minute_since = since - since.rem_euclid(60_000);
    let project = row.project_id;
    let env = rule.environment.as_deref();
    let value = match &rule.aggregate {
        Aggregate::AgentDown { grace_secs } => return agents_down(m, now, row, *grace_secs),
        Aggregate::UniquePer { of, per } => return unique_per(m, since, row, of, per),
        Aggregate::Percentile { .. } | Aggregate::Avg { .. } | Aggregate::FailureRate => {
            let (kind, name, op) = latency_filter(rule);
            let w = m.latency(project, kind, name.as_deref(), op.as_deref(), minute_since)?;
            match &rule.aggregate {
                Aggregate::Percentile { q, .. } => w.sketch.quantile(*q),
                Aggregate::Avg { .. } => {
                    (w.sketch.count() > 0).then(|| w.sketch.sum() / w.sketch.count() as f64)
                }
                _ => (w.count > 0).then(|| w.errors as f64 / w.count as f64),
            }
        }
        Aggregate::CrashFreeSessions => {
            let (init, crashed) = m.sessions(project, minute_since, env)?;
            (init > 0).then(|| (1.0 - crashed as f64 / init as f64) * 100.0)
        }
        Aggregate::CrashFreeUsers => {
            let (users, crashed) = m.users(project, since, env)?;
            (users > 0).then(|| (1.0 - crashed as f64 / users as f64) * 100.0)
        }
        Aggregate::Count
        | Aggregate::CountUniqueUsers
        | Aggregate::ErrorRate
        | Aggregate::TagRatio { .. } => {
            let q = match RollupQuery::of(&rule.aggregate, &rule.query) {
                Ok(q) => q,
                Err(why) => {
                    tracing::warn!(
                        rule = row.id,
                        why,
                        "metric rule query not answerable; skipped"
                    );
                    return Ok(Vec::new());
                }
            };
            counted(m, project, minute_since, rule, &q)?
        }
    };
    Ok(vec![(String::new(), value)])
}

/// The value of a counting aggregate (`count()`, `count_unique(user)`, `error_rate()`,
/// `tag_ratio()`), from the per-minute tag and user rollups: a window of N minutes reads
/// at most N rows per combination of dimensions, whatever the event rate.
fn counted(
    m: &Measurer<'_>,
    project: i64,
    minute_since: i64,
    rule: &MetricRule,
    q: &RollupQuery,
) -> Result<Option<f64>> {
    const ALL: &[&str] = &["error", "default", "transaction"];
    const EVENTS: &[&str] = &["error", "default"];
    let total = |kinds, levels: &[&str], tag| {
        rollup_count(m, project, minute_since, rule, q, kinds, levels, tag)
    };
    Ok(match &rule.aggregate {
        Aggregate::Count => Some(total(dataset_kinds(rule), &[], TagSel::Total)? as f64),
        Aggregate::CountUniqueUsers => {
            let kinds = q.kinds_of(dataset_kinds(rule));
            let env = q.environment.as_deref().or(rule.environment.as_deref());
            Some(m.rollup_users(project, minute_since, &kinds, env)? as f64)
        }
        Aggregate::ErrorRate if *q == RollupQuery::default() && rule.environment.is_none() => {
            // No filter: the event and latency rollups answer, with their full history.
            let (errors, events) = m.event_levels(project, minute_since, None)?;
            let all = events + m.transactions(project, minute_since)?;
            (all > 0).then(|| errors as f64 / all as f64 * 100.0)
        }
        Aggregate::ErrorRate => {
            let all = total(ALL, &[], TagSel::Total)?;
            let errors = total(EVENTS, &["error", "fatal"], TagSel::Total)?;
            (all > 0).then(|| errors as f64 / all as f64 * 100.0)
        }
        Aggregate::TagRatio { key, value } => {
            let with_key = total(dataset_kinds(rule), &[], TagSel::Key(key))?;
            let with_value = total(dataset_kinds(rule), &[], TagSel::Value(key, value))?;
            (with_key > 0).then(|| with_value as f64 / with_key as f64 * 100.0)
        }
        _ => None,
    })
}

fn latency_filter(rule: &MetricRule) -> (&'static str, Option<String>, Option<String>) {
    let of = match rule.aggregate {
        Aggregate::Percentile { of, .. } | Aggregate::Avg { of } => of,
        _ => Dur::Transaction,
    };
    let (mut name, mut op) = (None, None);
    for t in &rule.query {
        if let Term::Tag { key, value, .. } = t {
            match key.as_str() {
                "transaction" => name = Some(value.clone()),
                "transaction.op" | "span.op" => op = Some(value.clone()),
                _ => {}
            }
        }
    }
    match of {
        Dur::Transaction => ("transaction", name, op),
        // Span rows are keyed by op in both name and op.
        Dur::Span => ("span", None, op),
    }
}

/// Per agent: 1.0 when down. An agent is known by its events' `agent_id` tag, its session's
/// distinct id (the agent library sets it to the agent id) or its heartbeat monitor
/// `agent-<id>-heartbeat`; the store resolves all three to the same id.
fn agents_down(
    m: &Measurer<'_>,
    now: i64,
    row: &StoredRule,
    grace_secs: i64,
) -> Result<Vec<(String, Option<f64>)>> {
    let grace = grace_secs * 1000;
    let mut out: HashMap<String, f64> = HashMap::new();
    // The latest session of each agent seen in the last day.
    for (agent, status, updated) in m.latest_sessions(row.project_id, now - 86_400_000)? {
        let down = matches!(status.as_str(), "crashed" | "abnormal") && now - updated >= grace;
        // The same agent id as its events, its heartbeat monitor and the agents overview use.
        let v = out.entry(agent).or_insert(0.0);
        if down {
            *v = 1.0;
        }
    }
    // Heartbeat monitors in a failed state.
    for (slug, status) in m.heartbeats(row.project_id)? {
        let agent = crate::store::agents::agent_of_monitor(&slug)
            .unwrap_or(&slug)
            .to_owned();
        let failed = matches!(status.as_str(), "error" | "missed_checkin" | "timeout");
        let v = out.entry(agent).or_insert(0.0);
        if failed {
            *v = 1.0;
        }
    }
    // Agents with a known state row stay evaluated so they can resolve.
    for k in m.alerting_keys(row.id)? {
        out.entry(k).or_insert(0.0);
    }
    Ok(out.into_iter().map(|(k, v)| (k, Some(v))).collect())
}

/// Per value of tag `per` (a service): the distinct values of tag `of` (agents) that hit
/// error events since `since`. Keys with an open alert stay evaluated so they can resolve.
fn unique_per(
    m: &Measurer<'_>,
    since: i64,
    row: &StoredRule,
    of: &str,
    per: &str,
) -> Result<Vec<(String, Option<f64>)>> {
    let mut out: HashMap<String, f64> = m
        .errors_per_tag(row.project_id, since, per, of)?
        .into_iter()
        .map(|(k, e)| (k, e.agents.len() as f64))
        .collect();
    for k in m.alerting_keys(row.id)? {
        out.entry(k).or_insert(0.0);
    }
    Ok(out.into_iter().map(|(k, v)| (k, Some(v))).collect())
}

fn parse_metric(row: &StoredRule, channel_ids: &[i64]) -> Option<MetricRule> {
    match rules::parse_metric_rule(&row.spec, channel_ids) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(rule = row.id, errors = %e, "stored metric rule no longer valid; skipped");
            None
        }
    }
}

/// Move a rule's states to where `values` put them (inside a write transaction). With a
/// `snapshot` (values measured before the writer was taken), a state that changed since is
/// left alone: whoever changed it measured later.
fn apply_values(
    ctx: &Ctx<'_>,
    row: &StoredRule,
    rule: &MetricRule,
    values: &[(String, Option<f64>)],
    snapshot: Option<&StateSnapshot>,
) -> Result<()> {
    for (key, value) in values.iter().cloned() {
        let current = ctx.tx.state(row.id, &key)?;
        if let Some(snapshot) = snapshot {
            let then = snapshot
                .get(&(row.id, key.clone()))
                .map(|s| (s.state.as_str(), s.since));
            let now = current.as_ref().map(|s| (s.state.as_str(), s.since));
            if then != now {
                continue;
            }
        }
        let (current_level, incident) = current
            .map(|s| (Level::parse(&s.state), s.incident_id))
            .unwrap_or((Level::Ok, None));
        let Some(value) = value else {
            // No data in the window: an open alert on absence of data resolves.
            if current_level != Level::Ok {
                transition(
                    ctx,
                    row,
                    rule,
                    &key,
                    current_level,
                    Level::Ok,
                    incident,
                    None,
                )?;
            }
            continue;
        };
        let next = next_level(rule, current_level, value);
        if next != current_level {
            transition(
                ctx,
                row,
                rule,
                &key,
                current_level,
                next,
                incident,
                Some(value),
            )?;
        }
    }
    Ok(())
}

fn breaches(t: ThresholdType, value: f64, threshold: f64) -> bool {
    match t {
        ThresholdType::Above => value > threshold,
        ThresholdType::Below => value < threshold,
    }
}

/// Where a rule goes from `current` given `value` (hysteresis via resolve thresholds).
fn next_level(rule: &MetricRule, current: Level, value: f64) -> Level {
    let t = rule.threshold_type;
    let critical = rule.triggers.iter().find(|x| x.label == "critical");
    let warning = rule.triggers.iter().find(|x| x.label == "warning");
    if critical.is_some_and(|c| breaches(t, value, c.alert_threshold)) {
        return Level::Critical;
    }
    if warning.is_some_and(|w| breaches(t, value, w.alert_threshold)) {
        return Level::Warning;
    }
    if current == Level::Ok {
        return Level::Ok;
    }
    // Not breaching any more: resolve only past the resolve threshold, if one is set.
    let active = if current == Level::Critical {
        critical
    } else {
        warning.or(critical)
    };
    let resolve = active
        .and_then(|a| a.resolve_threshold)
        .or(rule.resolve_threshold);
    match resolve {
        Some(r) => {
            let past = match t {
                ThresholdType::Above => value < r,
                ThresholdType::Below => value > r,
            };
            if past {
                Level::Ok
            } else if current == Level::Critical && warning.is_some() {
                Level::Warning
            } else {
                current
            }
        }
        None => {
            if current == Level::Critical
                && warning.is_some_and(|w| breaches(t, value, w.alert_threshold))
            {
                Level::Warning
            } else {
                Level::Ok
            }
        }
    }
}

fn format_value(rule: &MetricRule, v: f64) -> String {
    match rule.aggregate {
        Aggregate::Percentile { .. } | Aggregate::Avg { .. } => format!("{v:.0} ms"),
        Aggregate::FailureRate => format!("{:.1}%", v * 100.0),
        Aggregate::CrashFreeSessions
        | Aggregate::CrashFreeUsers
        | Aggregate::ErrorRate
        | Aggregate::TagRatio { .. } => {
            format!("{v:.1}%")
        }
        Aggregate::UniquePer { .. } => format!("{v:.0} agents"),
        Aggregate::AgentDown { .. } => {
            if v > 0.0 {
                "down".into()
            } else {
                "up".into()
            }
        }
        _ => format!("{v}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn transition(
    ctx: &Ctx<'_>,
    row: &StoredRule,
    rule: &MetricRule,
    key: &str,
    from: Level,
    to: Level,
    incident: Option<i64>,
    value: Option<f64>,
) -> Result<()> {
    let tx = ctx.tx;
    let subject = match (&rule.aggregate, key.is_empty()) {
        (_, true) => row.name.clone(),
        (Aggregate::AgentDown { .. }, false) => format!("{} (agent {key})", row.name),
        (Aggregate::UniquePer { per, .. }, false) => format!("{} ({per} {key})", row.name),
        _ => format!("{} ({key})", row.name),
    };
    let mut shown = value
        .map(|v| format_value(rule, v))
        .unwrap_or_else(|| "no data".into());
    // A venue incident names what failed: endpoints, status codes, the agents affected.
    if let Aggregate::UniquePer { of, per } = &rule.aggregate
        && to != Level::Ok
    {
        let since = ctx.now - rule.time_window_min * 60_000;
        if let Some(e) = tx
            .measurer()
            .errors_per_tag(row.project_id, since, per, of)?
            .remove(key)
        {
            let list = |v: &[String]| {
                let mut s = v.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
                if v.len() > 10 {
                    s.push_str(", …");
                }
                if s.is_empty() {
                    "unknown".to_owned()
                } else {
                    s
                }
            };
            shown = format!(
                "{shown} ({}) failing on {} with status {} ({} errors in {} min)",
                list(&e.agents),
                list(&e.endpoints),
                list(&e.statuses),
                e.errors,
                rule.time_window_min
            );
        }
    }
    let detail = format!("{subject}: {shown}");
    let (incident, act) = if from == Level::Ok {
        let id = tx.open_incident(&NewIncident {
            rule_id: row.id,
            project_id: row.project_id,
            key,
            issue_id: None,
            status: "open",
            severity: to.as_str(),
            title: &subject,
            value,
            at: ctx.now,
        })?;
        tx.activity(id, ctx.now, to.as_str(), &detail)?;
        (id, notify::Act::Trigger)
    } else {
        let id = incident.ok_or_else(|| {
            StoreError::Invalid(format!("rule {} has state without incident", row.id))
        })?;
        if to == Level::Ok {
            tx.close_incident(id, ctx.now, value)?;
            tx.activity(id, ctx.now, "resolved", &detail)?;
            (id, notify::Act::Resolve)
        } else {
            tx.escalate_incident(id, to.as_str(), value)?;
            tx.activity(id, ctx.now, to.as_str(), &detail)?;
            (id, notify::Act::Trigger)
        }
    };
    tx.set_state(
        row.id,
        key,
        to.as_str(),
        value,
        ctx.now,
        (to != Level::Ok).then_some(incident),
    )?;
    // Actions: of the trigger now active, or (on resolve) of the one that was.
    let label = if to == Level::Ok { from } else { to };
    let actions: Vec<Action> = rule
        .triggers
        .iter()
        .find(|t| t.label == label.as_str())
        .or_else(|| rule.triggers.first())
        .map(|t| t.actions.clone())
        .unwrap_or_default();
    kill_switch(ctx, row, rule, key, &actions, incident, act, &detail)?;
    let verb = match (act, to) {
        (notify::Act::Resolve, _) => "Resolved",
        (_, Level::Warning) => "Warning",
        _ => "Critical",
    };
    let message = notify::Message {
        kind: "metric",
        action: act,
        rule_id: row.id,
        rule_name: row.name.clone(),
        project: row.project_slug.clone(),
        incident_id: incident,
        severity: if to == Level::Ok {
            "resolved".into()
        } else {
            to.as_str().into()
        },
        title: subject.clone(),
        text: format!("{verb}: {subject}: {shown}"),
        culprit: String::new(),
        value,
        url: format!("{}/alerts/incidents/{incident}/", ctx.public_url),
        dedup_key: format!("lookout-incident-{incident}"),
        issue: None,
        event: None,
        agent: agent_of_metric(rule, key).map(str::to_owned),
        at: ctx.now,
    };
    // An acknowledged incident is not notified again until it resolves (its actions,
    // the kill switch's included, still run).
    if from != Level::Ok
        && to != Level::Ok
        && let Some(ack) = tx.acked(incident)?
    {
        tx.activity(
            incident,
            ctx.now,
            "acknowledged",
            &format!("{detail}: not notified (acknowledged by {})", ack.by),
        )?;
        return Ok(());
    }
    enqueue(tx, row, &actions, &message)
}

/// The kill switch on an incident: pause the agent it is about (`agent`), in the alert
/// stage's transaction; noted in the incident's activity either way (an alert not about an
/// agent, or about one the digest never saw, pauses nothing and says so).
fn pause_agent(
    ctx: &Ctx<'_>,
    row: &StoredRule,
    incident: i64,
    agent: Option<&str>,
    reason: &str,
) -> Result<()> {
    let tx = ctx.tx;
    let Some(agent) = agent.filter(|a| !a.is_empty()) else {
        tx.activity(
            incident,
            ctx.now,
            "pause_skipped",
            "pause_agent: the alert is not about one agent (no agent_id)",
        )?;
        return Ok(());
    };
    let origin = format!("incident:{incident}");
    if tx
        .paused_by_origin(row.project_id, &origin)?
        .iter()
        .any(|a| a == agent)
    {
        return Ok(());
    }
    let by = crate::store::trading::Actor::Rule {
        id: row.id,
        name: row.name.clone(),
    };
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(crate::services::trading::MAX_REASON_CHARS)
        .collect();
    let pause = crate::store::trading::Pause {
        reason: &reason,
        by: &by,
        until: None,
        origin: Some(&origin),
    };
    match tx.pause_agent(row.project_id, agent, &pause, ctx.now) {
        Ok(_) => {
            tracing::info!(rule = row.id, incident, agent, "agent paused by an alert");
            tx.activity(
                incident,
                ctx.now,
                "agent_paused",
                &format!("paused agent {agent}"),
            )
        }
        Err(StoreError::NotFound(what)) => tx.activity(
            incident,
            ctx.now,
            "pause_skipped",
            &format!("pause_agent: {what} not found in this project"),
        ),
        Err(e) => Err(e),
    }
}

/// A metric alert's `pause_agent` actions: pause the agent of a per-agent key when the
/// incident opens or escalates; on resolve, with `resumeOnResolve`, resume the agents whose
/// current pause is the one this incident made.
#[allow(clippy::too_many_arguments)]
fn kill_switch(
    ctx: &Ctx<'_>,
    row: &StoredRule,
    rule: &MetricRule,
    key: &str,
    actions: &[Action],
    incident: i64,
    act: notify::Act,
    detail: &str,
) -> Result<()> {
    let Some(resume_on_resolve) = actions.iter().find_map(|a| match a {
        Action::PauseAgent { resume_on_resolve } => Some(*resume_on_resolve),
        _ => None,
    }) else {
        return Ok(());
    };
    if act == notify::Act::Resolve {
        if !resume_on_resolve {
            return Ok(());
        }
        let origin = format!("incident:{incident}");
        let by = crate::store::trading::Actor::Rule {
            id: row.id,
            name: row.name.clone(),
        };
        for agent in ctx.tx.paused_by_origin(row.project_id, &origin)? {
            if ctx
                .tx
                .resume_agent(row.project_id, &agent, &by, &origin, ctx.now)?
            {
                ctx.tx.activity(
                    incident,
                    ctx.now,
                    "agent_resumed",
                    &format!("resumed agent {agent}"),
                )?;
            }
        }
        return Ok(());
    }
    pause_agent(ctx, row, incident, agent_of_metric(rule, key), detail)
}

/// The agent a metric incident is about: the key of a rule measured per agent
/// (`agent_down`), else the agent a rule's query names (`agent_id:ag_x`), else none.
fn agent_of_metric<'a>(rule: &'a MetricRule, key: &'a str) -> Option<&'a str> {
    if matches!(rule.aggregate, Aggregate::AgentDown { .. }) && !key.is_empty() {
        return Some(key);
    }
    rule.query.iter().find_map(|t| match t {
        Term::Tag {
            key,
            value,
            negated: false,
            ..
        } if key == "agent_id" => Some(value.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(body: Value) -> MetricRule {
        rules::parse_metric_rule(&body, &[]).unwrap()
    }

    /// The alert stage's writes and its cursor commit together: an evaluation that dies
    /// before its commit (a `kill -9` between the digest and the alert stage) leaves the feed
    /// to be evaluated again, once, and a finished one is never repeated.
    #[test]
    fn a_feed_row_is_evaluated_exactly_once_across_a_failed_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let project = store.ensure_default_project().unwrap().unwrap();
        let alerts = store.alerts();
        let org = alerts.org_id("default").unwrap();
        alerts
            .create_integration(
                org,
                "webhook",
                "hook",
                &json!({"url": "http://127.0.0.1:9/x"}),
            )
            .unwrap();
        alerts
            .create_rule(
                project.id,
                "issue",
                "First seen",
                &json!({"name": "First seen", "actionMatch": "all", "frequency": 5,
                        "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
                        "actions": [{"id": rules::ids::ALL_CHANNELS}]}),
            )
            .unwrap();
        // One event, digested: one feed row.
        let row = crate::store::inbox::InboxRow {
            id: 1,
            project_id: project.id,
            received_at: chrono::Utc::now().timestamp_millis(),
            encoding: "identity".into(),
            envelope: b"{}\n{\"type\":\"event\"}\n{\"message\":\"order 7 failed\"}\n".to_vec(),
        };
        let mut batch = crate::store::digest::Batch::default();
        crate::digest::process::process_row(&row, &mut batch);
        batch.last_inbox_id = 1;
        store.digest_writer().apply(&batch).unwrap();
        let stage = store.alert_stage();
        let feed = stage.feed(0, 10).unwrap();
        assert_eq!(feed.len(), 1);

        // A step that dies after deciding, before its commit, leaves no trace.
        let died: Result<()> = stage.run(Some(&[feed[0].seq]), |tx| {
            tx.open_incident(&NewIncident {
                rule_id: 1,
                project_id: project.id,
                key: "x",
                issue_id: None,
                status: "fired",
                severity: "error",
                title: "half-done",
                value: None,
                at: 0,
            })?;
            Err(StoreError::Invalid("killed".into()))
        });
        assert!(died.is_err());
        assert_eq!(stage.cursor().unwrap(), 0);
        assert!(alerts.incidents(org, None, 10).unwrap().is_empty());

        let engine = AlertEngine::new(
            stage.clone(),
            "http://lookout".into(),
            Arc::new(Notify::new()),
            crate::clock::Clock::manual(chrono::Utc::now().timestamp_millis()),
        );
        assert_eq!(
            engine.step().unwrap(),
            1,
            "the feed row is evaluated after the failure"
        );
        assert_eq!(engine.step().unwrap(), 0, "and never again");
        let incidents = alerts.incidents(org, None, 10).unwrap();
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(alerts.deliveries(org, 10).unwrap().len(), 1);
        assert_eq!(stage.cursor().unwrap(), feed[0].seq);
        assert!(
            stage.feed(0, 10).unwrap().is_empty(),
            "consumed rows are dropped"
        );
    }

    #[test]
    fn hysteresis_of_the_p99_preset() {
        let (_, _, body) = rules::presets()
            .into_iter()
            .find(|p| p.0 == "p99_latency_breach")
            .unwrap();
        let r = rule(body);
        assert_eq!(next_level(&r, Level::Ok, 2500.0), Level::Critical);
        assert_eq!(next_level(&r, Level::Ok, 1500.0), Level::Ok);
        // Between the resolve (1 s) and alert (2 s) thresholds it stays critical.
        assert_eq!(next_level(&r, Level::Critical, 1500.0), Level::Critical);
        assert_eq!(next_level(&r, Level::Critical, 900.0), Level::Ok);
    }

    #[test]
    fn warning_and_below_thresholds() {
        let r = rule(
            json!({"name": "crash", "aggregate": "percentage(sessions_crashed, sessions)", "query": "",
            "timeWindow": 60, "thresholdType": 1,
            "triggers": [{"label": "critical", "alertThreshold": 95, "actions": []},
                         {"label": "warning", "alertThreshold": 99, "actions": []}]}),
        );
        assert_eq!(next_level(&r, Level::Ok, 99.5), Level::Ok);
        assert_eq!(next_level(&r, Level::Ok, 98.0), Level::Warning);
        assert_eq!(next_level(&r, Level::Warning, 90.0), Level::Critical);
        assert_eq!(next_level(&r, Level::Critical, 98.0), Level::Warning);
        assert_eq!(next_level(&r, Level::Warning, 99.9), Level::Ok);
    }
}
