//! The rule model: Sentry's issue alerts and metric alerts, parsed and validated from the
//! JSON Sentry's API takes, plus what Sentry cannot express (tag ratios, agents that went
//! down, new issues after a deploy), and the seven trading presets (the seventh: venue outages).
//!
//! Rules are stored as the Sentry-shaped JSON they were created with (normalised) and
//! parsed into these types when evaluated. Validation errors come back in Django REST
//! framework's shape, camelCase keys: `{"aggregate": ["This field is required."]}`.

use crate::store::read::{Term, parse_query_checked};
use serde_json::{Map, Value, json};

/// Condition and filter ids (Sentry's Python paths) and our own additions.
pub mod ids {
    /// A new issue.
    pub const FIRST_SEEN: &str = "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition";
    /// A resolved issue reopened.
    pub const REGRESSION: &str =
        "sentry.rules.conditions.regression_event.RegressionEventCondition";
    /// More than `value` events of the issue in `interval`.
    pub const EVENT_FREQUENCY: &str =
        "sentry.rules.conditions.event_frequency.EventFrequencyCondition";
    /// More than `value` users of the issue in `interval`.
    pub const UNIQUE_USERS: &str =
        "sentry.rules.conditions.event_frequency.EventUniqueUserFrequencyCondition";
    /// The issue's events are more than `value` % of sessions in `interval`.
    pub const PERCENT_SESSIONS: &str =
        "sentry.rules.conditions.event_frequency.EventFrequencyPercentCondition";
    /// Lookout: a new issue within `minutes` after a release of the project was deployed.
    pub const NEW_ISSUE_AFTER_DEPLOY: &str =
        "lookout.rules.conditions.NewIssueAfterDeployCondition";
    /// The event's level.
    pub const LEVEL: &str = "sentry.rules.filters.level.LevelFilter";
    /// A tag of the event.
    pub const TAGGED_EVENT: &str = "sentry.rules.filters.tagged_event.TaggedEventFilter";
    /// The issue's age.
    pub const AGE: &str = "sentry.rules.filters.age_comparison.AgeComparisonFilter";
    /// The issue's occurrences.
    pub const OCCURRENCES: &str = "sentry.rules.filters.issue_occurrences.IssueOccurrencesFilter";
    /// An attribute of the event (`exception.type`, `message`, `level`, …).
    pub const ATTRIBUTE: &str = "sentry.rules.filters.event_attribute.EventAttributeFilter";
    /// Slack.
    pub const SLACK: &str = "sentry.integrations.slack.notify_action.SlackNotifyServiceAction";
    /// PagerDuty.
    pub const PAGERDUTY: &str =
        "sentry.integrations.pagerduty.notify_action.PagerDutyNotifyServiceAction";
    /// Lookout: a signed JSON webhook.
    pub const WEBHOOK: &str = "lookout.actions.WebhookAction";
    /// Lookout: Telegram.
    pub const TELEGRAM: &str = "lookout.actions.TelegramAction";
    /// Lookout: every channel of the organisation.
    pub const ALL_CHANNELS: &str = "lookout.actions.NotifyAllChannelsAction";
    /// Email: the organisation's `email` channels (every channel when there is none).
    pub const EMAIL: &str = "sentry.mail.actions.NotifyEmailAction";
    /// Lookout's kill switch: pause the agent the event came from (`resume_on_resolve` is
    /// refused: an issue alert fires once and never resolves).
    pub const PAUSE_AGENT: &str = "lookout.rules.actions.PauseAgentAction";
}

/// How a list of conditions or filters combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Every one.
    All,
    /// At least one.
    Any,
    /// None of them.
    None,
}

impl Match {
    fn parse(s: &str) -> Option<Match> {
        match s {
            "all" => Some(Match::All),
            "any" => Some(Match::Any),
            "none" => Some(Match::None),
            _ => None,
        }
    }

    /// Combine results.
    pub fn combine(self, results: impl IntoIterator<Item = bool>) -> bool {
        let mut it = results.into_iter();
        match self {
            Match::All => it.all(|r| r),
            Match::Any => it.any(|r| r),
            Match::None => !it.any(|r| r),
        }
    }
}

/// A condition of an issue alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The event created its issue.
    FirstSeen,
    /// The event reopened its issue.
    Regression,
    /// More than `value` events of the issue within `interval_ms`.
    EventFrequency {
        /// Threshold.
        value: f64,
        /// Window.
        interval_ms: i64,
    },
    /// More than `value` distinct users of the issue within `interval_ms`.
    UniqueUsers {
        /// Threshold.
        value: f64,
        /// Window.
        interval_ms: i64,
    },
    /// The issue's events are more than `value` % of the sessions started within `interval_ms`.
    PercentSessions {
        /// Threshold (%).
        value: f64,
        /// Window.
        interval_ms: i64,
    },
    /// A new issue within `minutes` after a release of the project was deployed.
    NewIssueAfterDeploy {
        /// Minutes after the deploy.
        minutes: i64,
    },
}

/// String comparison of the tag and attribute filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrMatch {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Contains.
    Co,
    /// Does not contain.
    Nc,
    /// Is set.
    Is,
    /// Is not set.
    Ns,
}

impl StrMatch {
    fn parse(s: &str) -> Option<StrMatch> {
        Some(match s {
            "eq" => StrMatch::Eq,
            "ne" => StrMatch::Ne,
            "sw" => StrMatch::Sw,
            "ew" => StrMatch::Ew,
            "co" => StrMatch::Co,
            "nc" => StrMatch::Nc,
            "is" => StrMatch::Is,
            "ns" => StrMatch::Ns,
            _ => return None,
        })
    }

    /// Whether `actual` (absent = `None`) matches `want`.
    pub fn test(self, actual: Option<&str>, want: &str) -> bool {
        match (self, actual) {
            (StrMatch::Is, a) => a.is_some(),
            (StrMatch::Ns, a) => a.is_none(),
            (StrMatch::Ne, None) | (StrMatch::Nc, None) => true,
            (_, None) => false,
            (StrMatch::Eq, Some(a)) => a.eq_ignore_ascii_case(want),
            (StrMatch::Ne, Some(a)) => !a.eq_ignore_ascii_case(want),
            (StrMatch::Sw, Some(a)) => a.to_lowercase().starts_with(&want.to_lowercase()),
            (StrMatch::Ew, Some(a)) => a.to_lowercase().ends_with(&want.to_lowercase()),
            (StrMatch::Co, Some(a)) => a.to_lowercase().contains(&want.to_lowercase()),
            (StrMatch::Nc, Some(a)) => !a.to_lowercase().contains(&want.to_lowercase()),
        }
    }
}

/// A filter of an issue alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The event's level compared with `level` (Sentry's numbers: fatal 50 … debug 10).
    Level {
        /// eq, gte or lte.
        cmp: std::cmp::Ordering,
        /// Or equal.
        or_equal: bool,
        /// Level number.
        level: i64,
    },
    /// A tag of the event.
    Tag {
        /// Tag key.
        key: String,
        /// Comparison.
        op: StrMatch,
        /// Value.
        value: String,
    },
    /// The issue is older (or newer) than `age_ms`.
    Age {
        /// `true`: newer than; `false`: older than.
        newer: bool,
        /// Age.
        age_ms: i64,
    },
    /// The issue has been seen at least `value` times.
    Occurrences {
        /// Count.
        value: i64,
    },
    /// An attribute of the event (`exception.type`, `exception.value`, `message`, `level`,
    /// `platform`, `environment`, `release`, `transaction`).
    Attribute {
        /// Attribute.
        attribute: String,
        /// Comparison.
        op: StrMatch,
        /// Value.
        value: String,
    },
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Every channel of the organisation.
    AllChannels,
    /// Sentry's email action: every `email` channel (to this address instead of the
    /// channel's recipients when one is given); every channel when none is configured.
    Email {
        /// A recipient address from the action's `targetIdentifier`, if it is one.
        to: Option<String>,
    },
    /// One integration.
    Integration {
        /// The channel's id (what rules name in their actions).
        id: i64,
        /// Slack channel or PagerDuty severity override, if given.
        target: Option<String>,
    },
    /// The kill switch: pause the agents the alert is about (the event's `agent_id` tag for
    /// an issue alert; the key of a metric alert measured per agent). Sends nothing.
    PauseAgent {
        /// Resume them when the alert resolves, if the pause it made is still the current
        /// one (metric alerts only).
        resume_on_resolve: bool,
    },
}

/// An issue alert.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueRule {
    /// The rule's name.
    pub name: String,
    /// How conditions combine.
    pub action_match: Match,
    /// How filters combine.
    pub filter_match: Match,
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// Filters.
    pub filters: Vec<Filter>,
    /// Actions.
    pub actions: Vec<Action>,
    /// Minimum minutes between two actions for one issue.
    pub frequency_min: i64,
    /// Only events of this environment.
    pub environment: Option<String>,
}

/// What a latency aggregate measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// `transaction.duration`.
    Transaction,
    /// `span.duration` (the query's `span.op` picks the op).
    Span,
}

/// A metric alert's aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// `count()`.
    Count,
    /// `count_unique(user)`.
    CountUniqueUsers,
    /// `failure_rate()`: failed transactions / transactions (0–1).
    FailureRate,
    /// `p50/p75/p95/p99/p100(...)` or `percentile(..., q)`.
    Percentile {
        /// Quantile (0–1).
        q: f64,
        /// What.
        of: Duration,
    },
    /// `avg(...)`.
    Avg {
        /// What.
        of: Duration,
    },
    /// `percentage(sessions_crashed, sessions)`: crash-free sessions, %.
    CrashFreeSessions,
    /// `percentage(users_crashed, users)`: crash-free users, %.
    CrashFreeUsers,
    /// Lookout: `error_rate()`: error events / all events (errors + transactions), %.
    ErrorRate,
    /// Lookout: `tag_ratio(key, value)`: events with tag key=value / events with tag key, %.
    TagRatio {
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
    },
    /// Lookout: `agent_down(grace_secs)`: per agent, 1 when its last session ended crashed
    /// or abnormal, or its heartbeat monitor failed, and no new session started within
    /// `grace_secs`; else 0.
    AgentDown {
        /// Seconds.
        grace_secs: i64,
    },
    /// Lookout: `count_unique_per(agent_id, service)`: per value of tag `per` (a Purple Flea
    /// `service`), how many distinct values of tag `of` (agents) hit error events in the
    /// window; each value of `per` is a key of its own (one incident per service). A
    /// venue incident.
    UniquePer {
        /// The tag whose distinct values are counted (`agent_id`).
        of: String,
        /// The tag each key is a value of (`service`).
        per: String,
    },
}

/// Above or below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdType {
    /// Fires when the value goes above the threshold.
    Above,
    /// Fires when the value goes below it.
    Below,
}

/// A trigger of a metric alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// `critical` or `warning`.
    pub label: String,
    /// Threshold.
    pub alert_threshold: f64,
    /// Resolve threshold, if any.
    pub resolve_threshold: Option<f64>,
    /// Actions.
    pub actions: Vec<Action>,
}

/// A metric alert.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRule {
    /// The rule's name.
    pub name: String,
    /// Aggregate.
    pub aggregate: Aggregate,
    /// Query terms.
    pub query: Vec<Term>,
    /// Window in minutes.
    pub time_window_min: i64,
    /// Above or below.
    pub threshold_type: ThresholdType,
    /// Critical first, then warning.
    pub triggers: Vec<Trigger>,
    /// Rule-level resolve threshold.
    pub resolve_threshold: Option<f64>,
    /// Only this environment.
    pub environment: Option<String>,
    /// `events` or `transactions` (which events `count()` and ratios look at).
    pub dataset: String,
}

/// A field error map being built.
#[derive(Debug, Default)]
struct Errors(Map<String, Value>);

impl Errors {
    fn add(&mut self, field: &str, msg: impl Into<String>) {
        let entry = self
            .0
            .entry(field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = entry {
            a.push(Value::String(msg.into()));
        }
    }

    fn result<T>(self, ok: impl FnOnce() -> T) -> Result<T, Value> {
        if self.0.is_empty() {
            Ok(ok())
        } else {
            Err(Value::Object(self.0))
        }
    }
}

const REQUIRED: &str = "This field is required.";

fn interval_ms(s: &str) -> Option<i64> {
    Some(match s {
        "1m" => 60_000,
        "5m" => 300_000,
        "15m" => 900_000,
        "1h" => 3_600_000,
        "1d" => 86_400_000,
        "1w" => 604_800_000,
        "30d" => 2_592_000_000,
        _ => return None,
    })
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Sentry's level numbers.
pub fn level_number(level: &str) -> i64 {
    match level {
        "fatal" => 50,
        "error" => 40,
        "warning" => 30,
        "info" => 20,
        "debug" => 10,
        _ => 0,
    }
}

fn parse_action(
    node: &Value,
    integration_ids: &[i64],
    errors: &mut Errors,
    field: &str,
) -> Option<Action> {
    let id = node.get("id").and_then(Value::as_str).unwrap_or_default();
    let integration = |key: &str| -> Option<i64> { num(node.get(key)).map(|f| f as i64) };
    let check = |errors: &mut Errors, i: Option<i64>| -> Option<i64> {
        match i {
            Some(i) if integration_ids.contains(&i) => Some(i),
            Some(i) => {
                errors.add(field, format!("Integration {i} does not exist."));
                None
            }
            None => {
                errors.add(field, "An integration is required for this action.");
                None
            }
        }
    };
    match id {
        ids::ALL_CHANNELS => Some(Action::AllChannels),
        ids::EMAIL => Some(Action::Email {
            to: email_target(node.get("targetIdentifier")),
        }),
        ids::SLACK => check(errors, integration("workspace")).map(|id| Action::Integration {
            id,
            target: string(node.get("channel")),
        }),
        ids::PAGERDUTY => check(errors, integration("account")).map(|id| Action::Integration {
            id,
            target: string(node.get("severity")),
        }),
        ids::WEBHOOK | ids::TELEGRAM => check(errors, integration("integration"))
            .map(|id| Action::Integration { id, target: None }),
        ids::PAUSE_AGENT => match node.get("resume_on_resolve") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Some(Action::PauseAgent {
                resume_on_resolve: false,
            }),
            Some(Value::Bool(true)) => {
                errors.add(
                    field,
                    "resume_on_resolve is for metric alerts: an issue alert fires once and never resolves.",
                );
                None
            }
            Some(_) => {
                errors.add(field, "resume_on_resolve must be true or false.");
                None
            }
        },
        other => {
            errors.add(field, format!("Unknown action: {other}"));
            None
        }
    }
}

/// An email address given as an action's target (Sentry also sends member or team ids).
fn email_target(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| s.contains('@') && !s.contains(char::is_whitespace))
        .map(str::to_owned)
}

/// Parse and validate an issue alert body. `integration_ids`: the organisation's channels.
pub fn parse_issue_rule(body: &Value, integration_ids: &[i64]) -> Result<IssueRule, Value> {
    let mut errors = Errors::default();
    let name = match body.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() && n.chars().count() <= 256 => n.to_owned(),
        Some(n) if n.chars().count() > 256 => {
            errors.add("name", "Ensure this field has no more than 256 characters.");
            String::new()
        }
        _ => {
            errors.add("name", REQUIRED);
            String::new()
        }
    };
    let match_of = |errors: &mut Errors, key: &str| -> Match {
        match body.get(key) {
            None | Some(Value::Null) => Match::All,
            Some(v) => v.as_str().and_then(Match::parse).unwrap_or_else(|| {
                errors.add(key, format!("\"{v}\" is not a valid choice."));
                Match::All
            }),
        }
    };
    let action_match = match body.get("actionMatch") {
        None | Some(Value::Null) => {
            errors.add("actionMatch", REQUIRED);
            Match::All
        }
        _ => match_of(&mut errors, "actionMatch"),
    };
    let filter_match = match_of(&mut errors, "filterMatch");
    let frequency_min = match body.get("frequency") {
        None | Some(Value::Null) => 30,
        v => match num(v) {
            Some(f) if (5.0..=43_200.0).contains(&f) => f as i64,
            _ => {
                errors.add(
                    "frequency",
                    "Ensure this value is between 5 and 43200 minutes.",
                );
                30
            }
        },
    };
    let mut conditions = Vec::new();
    match body.get("conditions").and_then(Value::as_array) {
        None => errors.add("conditions", REQUIRED),
        Some(list) => {
            for c in list {
                let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
                let interval = || {
                    c.get("interval")
                        .and_then(Value::as_str)
                        .and_then(interval_ms)
                };
                let parsed = match id {
                    ids::FIRST_SEEN => Some(Condition::FirstSeen),
                    ids::REGRESSION => Some(Condition::Regression),
                    ids::EVENT_FREQUENCY | ids::UNIQUE_USERS | ids::PERCENT_SESSIONS => {
                        match (num(c.get("value")), interval()) {
                            (Some(value), Some(_))
                                if id == ids::PERCENT_SESSIONS
                                    && !(0.0..=100.0).contains(&value) =>
                            {
                                errors.add(
                                    "conditions",
                                    format!("{id}: the percentage must be between 0 and 100 (got {value})."),
                                );
                                None
                            }
                            (Some(value), Some(interval_ms)) if value >= 0.0 => Some(match id {
                                ids::EVENT_FREQUENCY => {
                                    Condition::EventFrequency { value, interval_ms }
                                }
                                ids::UNIQUE_USERS => Condition::UniqueUsers { value, interval_ms },
                                _ => Condition::PercentSessions { value, interval_ms },
                            }),
                            _ => {
                                errors.add(
                                    "conditions",
                                    format!("{id} needs a value and an interval (1m, 5m, 15m, 1h, 1d, 1w, 30d)."),
                                );
                                None
                            }
                        }
                    }
                    ids::NEW_ISSUE_AFTER_DEPLOY => match num(c.get("minutes")) {
                        Some(m) if m > 0.0 => {
                            Some(Condition::NewIssueAfterDeploy { minutes: m as i64 })
                        }
                        _ => {
                            errors.add(
                                "conditions",
                                "NewIssueAfterDeployCondition needs minutes > 0.",
                            );
                            None
                        }
                    },
                    other => {
                        errors.add("conditions", format!("Unknown condition: {other}"));
                        None
                    }
                };
                conditions.extend(parsed);
            }
        }
    }
    let mut filters = Vec::new();
    for f in body
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = f.get("id").and_then(Value::as_str).unwrap_or_default();
        let op = || {
            f.get("match")
                .and_then(Value::as_str)
                .and_then(StrMatch::parse)
        };
        let parsed = match id {
            ids::LEVEL => {
                let level = num(f.get("level")).map(|l| l as i64).or_else(|| {
                    f.get("level")
                        .and_then(Value::as_str)
                        .map(level_number)
                        .filter(|n| *n > 0)
                });
                let cmp = match f.get("match").and_then(Value::as_str) {
                    Some("eq") => Some((std::cmp::Ordering::Equal, true)),
                    Some("gte") => Some((std::cmp::Ordering::Greater, true)),
                    Some("lte") => Some((std::cmp::Ordering::Less, true)),
                    _ => None,
                };
                match (level, cmp) {
                    (Some(level), Some((cmp, or_equal))) => Some(Filter::Level {
                        cmp,
                        or_equal,
                        level,
                    }),
                    _ => {
                        errors.add(
                            "filters",
                            "LevelFilter needs match (eq, gte, lte) and a level.",
                        );
                        None
                    }
                }
            }
            ids::TAGGED_EVENT | ids::ATTRIBUTE => {
                let key_field = if id == ids::TAGGED_EVENT {
                    "key"
                } else {
                    "attribute"
                };
                match (string(f.get(key_field)), op()) {
                    (Some(key), Some(op)) if !key.is_empty() => {
                        let value = string(f.get("value")).unwrap_or_default();
                        Some(if id == ids::TAGGED_EVENT {
                            Filter::Tag { key, op, value }
                        } else {
                            Filter::Attribute {
                                attribute: key,
                                op,
                                value,
                            }
                        })
                    }
                    _ => {
                        errors.add(
                            "filters",
                            format!("{id} needs {key_field}, match (eq, ne, sw, ew, co, nc, is, ns) and value."),
                        );
                        None
                    }
                }
            }
            ids::AGE => {
                let unit = match f.get("time").and_then(Value::as_str) {
                    Some("minute") => Some(60_000),
                    Some("hour") => Some(3_600_000),
                    Some("day") => Some(86_400_000),
                    Some("week") => Some(604_800_000),
                    _ => None,
                };
                let newer = match f.get("comparison_type").and_then(Value::as_str) {
                    Some("newer") => Some(true),
                    Some("older") => Some(false),
                    _ => None,
                };
                match (num(f.get("value")), unit, newer) {
                    (Some(v), Some(unit), Some(newer)) if v >= 0.0 => Some(Filter::Age {
                        newer,
                        age_ms: (v * f64::from(unit)) as i64,
                    }),
                    _ => {
                        errors.add("filters", "AgeComparisonFilter needs comparison_type (older, newer), a value of 0 or more and time (minute, hour, day, week).");
                        None
                    }
                }
            }
            ids::OCCURRENCES => match num(f.get("value")) {
                Some(v) if v >= 0.0 => Some(Filter::Occurrences { value: v as i64 }),
                _ => {
                    errors.add(
                        "filters",
                        "IssueOccurrencesFilter needs a value of 0 or more.",
                    );
                    None
                }
            },
            other => {
                errors.add("filters", format!("Unknown filter: {other}"));
                None
            }
        };
        filters.extend(parsed);
    }
    let mut actions = Vec::new();
    match body.get("actions").and_then(Value::as_array) {
        None => errors.add("actions", REQUIRED),
        Some(list) if list.is_empty() => {
            errors.add("actions", "You must add an action for this alert to fire.")
        }
        Some(list) => {
            for a in list {
                actions.extend(parse_action(a, integration_ids, &mut errors, "actions"));
            }
        }
    }
    let environment = string(body.get("environment")).filter(|e| !e.is_empty());
    errors.result(|| IssueRule {
        name,
        action_match,
        filter_match,
        conditions,
        filters,
        actions,
        frequency_min,
        environment,
    })
}

/// Parse a metric alert's aggregate (`p99(transaction.duration)`, `error_rate()`, …);
/// `None` when Lookout cannot measure it.
pub fn parse_aggregate(s: &str) -> Option<Aggregate> {
    let s = s.split(" AS ").next().unwrap_or(s).trim();
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let (func, arg) = s.strip_suffix(')')?.split_once('(')?;
    let duration = |a: &str| match a {
        "transaction.duration" | "" => Some(Duration::Transaction),
        "span.duration" => Some(Duration::Span),
        _ => None,
    };
    Some(match (func, arg) {
        ("count", "") => Aggregate::Count,
        ("count_unique", "user") => Aggregate::CountUniqueUsers,
        ("failure_rate", "") => Aggregate::FailureRate,
        ("error_rate", "") => Aggregate::ErrorRate,
        ("p50", a) => Aggregate::Percentile {
            q: 0.5,
            of: duration(a)?,
        },
        ("p75", a) => Aggregate::Percentile {
            q: 0.75,
            of: duration(a)?,
        },
        ("p95", a) => Aggregate::Percentile {
            q: 0.95,
            of: duration(a)?,
        },
        ("p99", a) => Aggregate::Percentile {
            q: 0.99,
            of: duration(a)?,
        },
        ("p100", a) => Aggregate::Percentile {
            q: 1.0,
            of: duration(a)?,
        },
        ("avg", a) => Aggregate::Avg { of: duration(a)? },
        ("percentile", a) => {
            let (what, q) = a.split_once(',')?;
            let q: f64 = q.parse().ok()?;
            if !(0.0..=1.0).contains(&q) {
                return None;
            }
            Aggregate::Percentile {
                q,
                of: duration(what)?,
            }
        }
        ("percentage", "sessions_crashed,sessions") => Aggregate::CrashFreeSessions,
        ("percentage", "users_crashed,users") => Aggregate::CrashFreeUsers,
        ("tag_ratio", a) => {
            let (key, value) = a.split_once(',')?;
            if key.is_empty() || value.is_empty() {
                return None;
            }
            Aggregate::TagRatio {
                key: key.to_owned(),
                value: value.to_owned(),
            }
        }
        ("count_unique_per", a) => {
            let (of, per) = a.split_once(',')?;
            let key = |k: &str| {
                !k.is_empty()
                    && k.len() <= 64
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-:".contains(c))
            };
            if !key(of) || !key(per) || of == per {
                return None;
            }
            Aggregate::UniquePer {
                of: of.to_owned(),
                per: per.to_owned(),
            }
        }
        ("agent_down", a) => Aggregate::AgentDown {
            grace_secs: if a.is_empty() {
                60
            } else {
                a.parse().ok().filter(|g: &i64| *g >= 0)?
            },
        },
        _ => return None,
    })
}

/// Query keys a metric alert understands besides plain tags.
const QUERY_KEYS: &[&str] = &["event.type", "transaction", "transaction.op", "span.op"];

/// Parse and validate a metric alert body.
pub fn parse_metric_rule(body: &Value, integration_ids: &[i64]) -> Result<MetricRule, Value> {
    let mut errors = Errors::default();
    let name = match body.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() => n.to_owned(),
        _ => {
            errors.add("name", REQUIRED);
            String::new()
        }
    };
    let aggregate = match body.get("aggregate").and_then(Value::as_str) {
        None => {
            errors.add("aggregate", REQUIRED);
            None
        }
        Some(a) => {
            let parsed = parse_aggregate(a);
            if parsed.is_none() {
                errors.add("aggregate", format!("Invalid Metric: {a}"));
            }
            parsed
        }
    };
    let query_text = match body.get("query") {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Null) | None => {
            errors.add("query", REQUIRED);
            String::new()
        }
        Some(_) => {
            errors.add("query", "Not a valid string.");
            String::new()
        }
    };
    let query = match parse_query_checked(&query_text) {
        Ok(q) => q,
        Err(e) => {
            errors.add("query", format!("Invalid query: {e}."));
            Vec::new()
        }
    };
    if let Some(Aggregate::Percentile { .. } | Aggregate::Avg { .. } | Aggregate::FailureRate) =
        &aggregate
    {
        for t in &query {
            let ok = matches!(t, Term::Tag { key, negated: false, .. } if QUERY_KEYS[1..].contains(&key.as_str()))
                || matches!(t, Term::Tag { key, .. } if key == "event.type");
            if !ok {
                errors.add(
                    "query",
                    "Latency and failure-rate alerts filter only on transaction, transaction.op and span.op.",
                );
                break;
            }
        }
    }
    if let Some(Aggregate::UniquePer { .. }) = &aggregate
        && !query.is_empty()
    {
        errors.add(
            "query",
            "count_unique_per() counts every error event of the window: leave the query empty.",
        );
    }
    let time_window_min = match num(body.get("timeWindow")) {
        None => {
            errors.add("timeWindow", REQUIRED);
            0
        }
        Some(w) => {
            let w = w as i64;
            let allowed: &[i64] = match &aggregate {
                Some(Aggregate::CrashFreeSessions | Aggregate::CrashFreeUsers) => {
                    &[30, 60, 120, 240, 720, 1440]
                }
                Some(Aggregate::AgentDown { .. }) => &[1, 5, 10, 15, 30, 60, 120, 240, 1440],
                _ => &[1, 5, 10, 15, 30, 60, 120, 240, 1440],
            };
            if !allowed.contains(&w) {
                errors.add("nonFieldErrors", format!("Invalid Time Window: {w}"));
            }
            w
        }
    };
    let threshold_type = match num(body.get("thresholdType")) {
        None => {
            errors.add("thresholdType", REQUIRED);
            ThresholdType::Above
        }
        Some(0.0) => ThresholdType::Above,
        Some(1.0) => ThresholdType::Below,
        Some(t) => {
            errors.add("thresholdType", format!("\"{t}\" is not a valid choice."));
            ThresholdType::Above
        }
    };
    let resolve_threshold = num(body.get("resolveThreshold"));
    let mut triggers = Vec::new();
    match body.get("triggers").and_then(Value::as_array) {
        None => errors.add("triggers", REQUIRED),
        Some(list) if list.is_empty() => {
            errors.add("nonFieldErrors", "Must include at least one trigger")
        }
        Some(list) if list.len() > 2 => errors.add("nonFieldErrors", "Must send 1 or 2 triggers."),
        Some(list) => {
            for (i, t) in list.iter().enumerate() {
                let label = t.get("label").and_then(Value::as_str).unwrap_or_default();
                let want = if i == 0 { "critical" } else { "warning" };
                if label != want {
                    errors.add(
                        "nonFieldErrors",
                        format!("Trigger {} must be labeled \"{want}\"", i + 1),
                    );
                }
                let Some(alert_threshold) = num(t.get("alertThreshold")) else {
                    errors.add(
                        "triggers",
                        format!("Trigger {}: alertThreshold is required.", i + 1),
                    );
                    continue;
                };
                let mut actions = Vec::new();
                for a in t
                    .get("actions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let kind = a.get("type").and_then(Value::as_str).unwrap_or_default();
                    let integration = num(a.get("integrationId"))
                        .or_else(|| num(a.get("targetIdentifier")))
                        .map(|f| f as i64);
                    match kind {
                        "email" => actions.push(Action::Email {
                            to: email_target(a.get("targetIdentifier")),
                        }),
                        "all" => actions.push(Action::AllChannels),
                        "pause_agent" => match a.get("resumeOnResolve") {
                            None | Some(Value::Null) => actions.push(Action::PauseAgent {
                                resume_on_resolve: false,
                            }),
                            Some(Value::Bool(b)) => actions.push(Action::PauseAgent {
                                resume_on_resolve: *b,
                            }),
                            Some(_) => errors.add(
                                "triggers",
                                "A pause_agent action's resumeOnResolve must be true or false.",
                            ),
                        },
                        "slack" | "pagerduty" | "webhook" | "telegram" => match integration {
                            Some(id) if integration_ids.contains(&id) => {
                                actions.push(Action::Integration {
                                    id,
                                    target: string(a.get("inputChannelId"))
                                        .or_else(|| string(a.get("priority"))),
                                })
                            }
                            Some(id) => {
                                errors.add("triggers", format!("Integration {id} does not exist."))
                            }
                            None => errors.add(
                                "triggers",
                                format!("A {kind} action needs an integrationId."),
                            ),
                        },
                        other => {
                            errors.add("triggers", format!("Unsupported action type: {other}"))
                        }
                    }
                }
                triggers.push(Trigger {
                    label: label.to_owned(),
                    alert_threshold,
                    resolve_threshold: num(t.get("resolveThreshold")),
                    actions,
                });
            }
        }
    }
    if let Some(a) = &aggregate {
        let bounds = ThresholdBounds::of(a);
        for (i, t) in triggers.iter().enumerate() {
            for (what, v) in [
                ("alert threshold", Some(t.alert_threshold)),
                ("resolve threshold", t.resolve_threshold),
            ] {
                if let Some(m) = v.and_then(|v| bounds.refuse(v)) {
                    errors.add("triggers", format!("Trigger {}: the {what} {m}", i + 1));
                }
            }
        }
        if let Some(m) = resolve_threshold.and_then(|v| bounds.refuse(v)) {
            errors.add("resolveThreshold", format!("The resolve threshold {m}"));
        }
    }
    if let [critical, warning] = triggers.as_slice() {
        let wrong = match threshold_type {
            ThresholdType::Above => warning.alert_threshold > critical.alert_threshold,
            ThresholdType::Below => warning.alert_threshold < critical.alert_threshold,
        };
        if wrong {
            errors.add(
                "nonFieldErrors",
                "The warning threshold must be less severe than the critical threshold.",
            );
        }
    }
    let environment = string(body.get("environment")).filter(|e| !e.is_empty());
    if let Some(
        a @ (Aggregate::Count
        | Aggregate::CountUniqueUsers
        | Aggregate::ErrorRate
        | Aggregate::TagRatio { .. }),
    ) = &aggregate
        && let Err(e) = RollupQuery::of(a, &query)
    {
        errors.add("query", e);
    }
    let dataset = match body.get("dataset").and_then(Value::as_str) {
        None => match &aggregate {
            Some(Aggregate::Percentile { .. } | Aggregate::Avg { .. } | Aggregate::FailureRate) => {
                "transactions".to_owned()
            }
            Some(Aggregate::CrashFreeSessions | Aggregate::CrashFreeUsers) => "metrics".to_owned(),
            _ => "events".to_owned(),
        },
        Some(d @ ("events" | "transactions" | "metrics" | "generic_metrics")) => d.to_owned(),
        Some(d) => {
            errors.add("dataset", format!("\"{d}\" is not a valid choice."));
            String::new()
        }
    };
    errors.result(|| MetricRule {
        name,
        aggregate: aggregate.unwrap_or(Aggregate::Count),
        query,
        time_window_min,
        threshold_type,
        triggers,
        resolve_threshold,
        environment,
        dataset,
    })
}

/// The values a metric alert's thresholds may take, and their unit: what the aggregate can
/// measure (a latency is never negative, a percentage never above 100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdBounds {
    /// Smallest meaningful threshold.
    pub min: f64,
    /// Largest, if bounded.
    pub max: Option<f64>,
    /// The unit the aggregate is measured in (`ms`, `%`, `events`, `users`, `agents`, or
    /// empty for a ratio).
    pub unit: &'static str,
}

impl ThresholdBounds {
    /// The bounds of `a`'s thresholds.
    pub fn of(a: &Aggregate) -> ThresholdBounds {
        let (max, unit) = match a {
            Aggregate::Percentile { .. } | Aggregate::Avg { .. } => (None, "ms"),
            Aggregate::ErrorRate
            | Aggregate::TagRatio { .. }
            | Aggregate::CrashFreeSessions
            | Aggregate::CrashFreeUsers => (Some(100.0), "%"),
            Aggregate::FailureRate => (Some(1.0), ""),
            Aggregate::Count => (None, "events"),
            Aggregate::CountUniqueUsers => (None, "users"),
            Aggregate::AgentDown { .. } | Aggregate::UniquePer { .. } => (None, "agents"),
        };
        ThresholdBounds {
            min: 0.0,
            max,
            unit,
        }
    }

    /// Why `v` is not a meaningful threshold (completing "the threshold …"), or `None`.
    pub fn refuse(&self, v: f64) -> Option<String> {
        let unit = if self.unit.is_empty() {
            String::new()
        } else if self.unit == "%" {
            " %".to_owned()
        } else {
            format!(" {}", self.unit)
        };
        let out = !v.is_finite() || v < self.min || self.max.is_some_and(|m| v > m);
        out.then(|| match self.max {
            Some(max) => format!("must be between {} and {max}{unit} (got {v})", self.min),
            None => format!("must be {}{unit} or more (got {v})", self.min),
        })
    }
}

/// What a counting aggregate (`count()`, `count_unique(user)`, `error_rate()`,
/// `tag_ratio()`) filters on, in the dimensions of the per-minute tag rollups: kinds,
/// environment, transaction op, levels, and at most one tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RollupQuery {
    /// Restrict to these kinds (`error`, `default`, `transaction`); `None`: no restriction.
    pub kinds: Option<Vec<&'static str>>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only transactions of this op.
    pub op: Option<String>,
    /// Only these levels; empty: any.
    pub levels: Vec<String>,
    /// At most one tag: (key, value, negated).
    pub tag: Option<(String, String, bool)>,
}

const KINDS: [&str; 3] = ["error", "default", "transaction"];

impl RollupQuery {
    /// The rollup filter of `query` for `aggregate`, or why the rollups cannot answer it.
    pub fn of(aggregate: &Aggregate, query: &[Term]) -> Result<RollupQuery, String> {
        let mut q = RollupQuery::default();
        for t in query {
            match t {
                Term::Status(_) => {}
                Term::Text(_) => {
                    return Err(
                        "Counting alerts filter on tags, level, release, environment, event.type and transaction.op; free text is not supported.".into(),
                    );
                }
                Term::Level(l) => q.levels.push(l.clone()),
                Term::Environment(e) => q.environment = Some(e.clone()),
                Term::Release(r) => q.set_tag("release", r, false)?,
                Term::Tag {
                    key,
                    value,
                    negated,
                } => match key.as_str() {
                    "event.type" => {
                        let kind = match value.as_str() {
                            "error" => "error",
                            "transaction" => "transaction",
                            _ => "default",
                        };
                        let keep: Vec<&'static str> = q
                            .kinds
                            .take()
                            .unwrap_or_else(|| KINDS.to_vec())
                            .into_iter()
                            .filter(|k| (*k == kind) != *negated)
                            .collect();
                        q.kinds = Some(keep);
                    }
                    "transaction.op" | "span.op" if !negated => q.op = Some(value.clone()),
                    "environment" if !negated => q.environment = Some(value.clone()),
                    "level" if !negated => q.levels.push(value.clone()),
                    _ => q.set_tag(key, value, *negated)?,
                },
            }
        }
        match aggregate {
            Aggregate::CountUniqueUsers if q.tag.is_some() || q.op.is_some() || !q.levels.is_empty() => {
                Err("count_unique(user) filters only on environment and event.type.".into())
            }
            Aggregate::TagRatio { .. } if q.tag.is_some() => Err(
                "tag_ratio() filters on environment, level, event.type and transaction.op, not on another tag.".into(),
            ),
            _ => Ok(q),
        }
    }

    fn set_tag(&mut self, key: &str, value: &str, negated: bool) -> Result<(), String> {
        if self.tag.is_some() {
            return Err("Counting alerts filter on at most one tag.".into());
        }
        self.tag = Some((key.to_owned(), value.to_owned(), negated));
        Ok(())
    }

    /// The kinds of `dataset` (`events`, `transactions`) that the query keeps.
    pub fn kinds_of(&self, dataset: &[&'static str]) -> Vec<&'static str> {
        dataset
            .iter()
            .copied()
            .filter(|k| self.kinds.as_ref().is_none_or(|ks| ks.contains(k)))
            .collect()
    }

    /// The tag key the rollups must keep for this query and `aggregate`, if any.
    pub fn tag_keys<'a>(&'a self, aggregate: &'a Aggregate) -> impl Iterator<Item = &'a str> {
        let ratio = match aggregate {
            Aggregate::TagRatio { key, .. } => Some(key.as_str()),
            _ => None,
        };
        self.tag
            .as_ref()
            .map(|(k, _, _)| k.as_str())
            .into_iter()
            .chain(ratio)
    }
}

/// The seven trading presets, installed on every project (a preset added later reaches
/// existing projects too): (preset id, kind, body).
pub fn presets() -> Vec<(&'static str, &'static str, Value)> {
    let all = json!([{"id": ids::ALL_CHANNELS}]);
    let all_metric = json!([{"type": "all", "targetType": "specific"}]);
    vec![
        (
            "critical_trade_failure",
            "issue",
            json!({
                "name": "Critical trade failure",
                "actionMatch": "all",
                "filterMatch": "any",
                "frequency": 5,
                "conditions": [{"id": ids::FIRST_SEEN}],
                "filters": [
                    {"id": ids::ATTRIBUTE, "attribute": "exception.type", "match": "eq", "value": "OrderRejected"},
                    {"id": ids::ATTRIBUTE, "attribute": "exception.type", "match": "eq", "value": "InsufficientMargin"},
                    {"id": ids::TAGGED_EVENT, "key": "trade.error_type", "match": "eq", "value": "OrderRejected"},
                    {"id": ids::TAGGED_EVENT, "key": "trade.error_type", "match": "eq", "value": "InsufficientMargin"}
                ],
                "actions": all,
            }),
        ),
        (
            "error_rate_spike",
            "metric",
            json!({
                "name": "Error rate spike",
                "aggregate": "error_rate()",
                "query": "",
                "timeWindow": 5,
                "thresholdType": 0,
                "triggers": [{"label": "critical", "alertThreshold": 5, "actions": all_metric}],
            }),
        ),
        (
            "p99_latency_breach",
            "metric",
            json!({
                "name": "P99 latency breach: order.pipeline",
                "aggregate": "p99(transaction.duration)",
                "query": "transaction.op:order.pipeline",
                "timeWindow": 5,
                "thresholdType": 0,
                "resolveThreshold": 1000,
                "triggers": [{"label": "critical", "alertThreshold": 2000, "resolveThreshold": 1000, "actions": all_metric}],
            }),
        ),
        (
            "risk_check_failure_rate",
            "metric",
            json!({
                "name": "Risk check failure rate",
                "aggregate": "tag_ratio(outcome, rejected_risk)",
                "query": "transaction.op:order.pipeline",
                "dataset": "transactions",
                "timeWindow": 60,
                "thresholdType": 0,
                "triggers": [{"label": "critical", "alertThreshold": 20, "actions": all_metric}],
            }),
        ),
        (
            "session_crash",
            "metric",
            json!({
                "name": "Agent crashed or hung",
                "aggregate": "agent_down(60)",
                "query": "",
                "timeWindow": 60,
                "thresholdType": 0,
                "triggers": [{"label": "critical", "alertThreshold": 0, "actions": all_metric}],
            }),
        ),
        (
            "venue_outage",
            "metric",
            json!({
                "name": "Venue outage: agents failing on one service",
                "aggregate": "count_unique_per(agent_id, service)",
                "query": "",
                "timeWindow": 5,
                "thresholdType": 0,
                "resolveThreshold": 2,
                "triggers": [{"label": "critical", "alertThreshold": 2, "resolveThreshold": 2, "actions": all_metric}],
            }),
        ),
        (
            "new_issue_after_deploy",
            "issue",
            json!({
                "name": "New issue after deploy",
                "actionMatch": "all",
                "frequency": 5,
                "conditions": [
                    {"id": ids::FIRST_SEEN},
                    {"id": ids::NEW_ISSUE_AFTER_DEPLOY, "minutes": 10}
                ],
                "filters": [],
                "actions": all,
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_rules() {
        for (id, kind, body) in presets() {
            let ok = match kind {
                "issue" => parse_issue_rule(&body, &[]).map(|_| ()),
                _ => parse_metric_rule(&body, &[]).map(|_| ()),
            };
            assert!(ok.is_ok(), "{id}: {ok:?}");
        }
    }

    #[test]
    fn missing_aggregate_is_a_field_error() {
        let err = parse_metric_rule(
            &json!({"name": "x", "query": "", "timeWindow": 5, "thresholdType": 0,
                    "triggers": [{"label": "critical", "alertThreshold": 1, "actions": []}]}),
            &[],
        )
        .unwrap_err();
        assert_eq!(err, json!({"aggregate": ["This field is required."]}));
        let err = parse_metric_rule(&json!({}), &[]).unwrap_err();
        for f in [
            "name",
            "aggregate",
            "query",
            "timeWindow",
            "thresholdType",
            "triggers",
        ] {
            assert_eq!(err[f], json!([REQUIRED]), "{f}: {err}");
        }
    }

    #[test]
    fn trigger_labels_windows_and_metrics_are_checked() {
        let base = |agg: &str, window: i64, label: &str| {
            json!({"name": "x", "aggregate": agg, "query": "", "timeWindow": window, "thresholdType": 0,
                   "triggers": [{"label": label, "alertThreshold": 1, "actions": []}]})
        };
        let e = parse_metric_rule(&base("count()", 7, "critical"), &[]).unwrap_err();
        assert_eq!(e["nonFieldErrors"][0], "Invalid Time Window: 7");
        let e = parse_metric_rule(&base("count()", 5, "warning"), &[]).unwrap_err();
        assert_eq!(
            e["nonFieldErrors"][0],
            "Trigger 1 must be labeled \"critical\""
        );
        let e = parse_metric_rule(&base("median(x)", 5, "critical"), &[]).unwrap_err();
        assert_eq!(e["aggregate"][0], "Invalid Metric: median(x)");
        let r = parse_metric_rule(
            &base(
                "percentage(sessions_crashed, sessions) AS _crash_rate_alert_aggregate",
                60,
                "critical",
            ),
            &[],
        )
        .unwrap();
        assert_eq!(r.aggregate, Aggregate::CrashFreeSessions);
        assert_eq!(
            parse_aggregate("percentile(transaction.duration, 0.3)"),
            Some(Aggregate::Percentile {
                q: 0.3,
                of: Duration::Transaction
            })
        );
    }

    #[test]
    fn issue_rule_validation() {
        let e = parse_issue_rule(&json!({"name": "r"}), &[]).unwrap_err();
        assert_eq!(e["actionMatch"], json!([REQUIRED]));
        assert_eq!(e["conditions"], json!([REQUIRED]));
        assert_eq!(e["actions"], json!([REQUIRED]));
        let e = parse_issue_rule(
            &json!({"name": "r", "actionMatch": "all", "frequency": 1, "conditions": [{"id": "nope"}],
                    "actions": [{"id": ids::SLACK, "workspace": 9, "channel": "#x"}]}),
            &[1],
        )
        .unwrap_err();
        assert!(
            e["frequency"].is_array() && e["conditions"].is_array() && e["actions"].is_array(),
            "{e}"
        );
        let ok = parse_issue_rule(
            &json!({"name": "r", "actionMatch": "any", "frequency": "10",
                    "conditions": [{"id": ids::EVENT_FREQUENCY, "value": 100, "interval": "1m"}],
                    "filters": [{"id": ids::TAGGED_EVENT, "key": "trade.asset", "match": "eq", "value": "BTC"},
                                {"id": ids::LEVEL, "match": "gte", "level": "40"}],
                    "actions": [{"id": ids::SLACK, "workspace": "1", "channel": "#alerts"}]}),
            &[1],
        )
        .unwrap();
        assert_eq!(ok.frequency_min, 10);
        assert_eq!(
            ok.conditions,
            vec![Condition::EventFrequency {
                value: 100.0,
                interval_ms: 60_000
            }]
        );
        assert_eq!(
            ok.actions,
            vec![Action::Integration {
                id: 1,
                target: Some("#alerts".into())
            }]
        );
    }

    #[test]
    fn string_matches() {
        assert!(StrMatch::Eq.test(Some("BTC"), "btc"));
        assert!(StrMatch::Ne.test(None, "x"));
        assert!(!StrMatch::Eq.test(None, "x"));
        assert!(StrMatch::Sw.test(Some("order_placement"), "order"));
        assert!(StrMatch::Ew.test(Some("order_placement"), "placement"));
        assert!(StrMatch::Nc.test(Some("abc"), "x"));
        assert!(StrMatch::Is.test(Some(""), ""));
        assert!(StrMatch::Ns.test(None, ""));
        assert!(Match::None.combine([false, false]));
        assert!(!Match::All.combine([true, false]));
        assert!(Match::Any.combine([true, false]));
    }

    #[test]
    fn pause_agent_actions_parse_and_are_checked() {
        let issue = |action: Value| {
            parse_issue_rule(
                &json!({"name": "x", "actionMatch": "all", "frequency": 5,
                    "conditions": [{"id": ids::FIRST_SEEN}], "actions": [action]}),
                &[],
            )
        };
        assert_eq!(
            issue(json!({"id": ids::PAUSE_AGENT})).unwrap().actions,
            vec![Action::PauseAgent {
                resume_on_resolve: false
            }]
        );
        assert!(issue(json!({"id": ids::PAUSE_AGENT, "resume_on_resolve": true})).is_err());
        assert!(issue(json!({"id": ids::PAUSE_AGENT, "resume_on_resolve": "no"})).is_err());
        let metric = |action: Value| {
            parse_metric_rule(
                &json!({"name": "m", "aggregate": "agent_down(60)", "query": "", "timeWindow": 60, "thresholdType": 0,
                    "triggers": [{"label": "critical", "alertThreshold": 0, "actions": [action]}]}),
                &[],
            )
        };
        let rule = metric(json!({"type": "pause_agent", "resumeOnResolve": true})).unwrap();
        assert_eq!(
            rule.triggers[0].actions,
            vec![Action::PauseAgent {
                resume_on_resolve: true
            }]
        );
        assert!(metric(json!({"type": "pause_agent", "resumeOnResolve": 1})).is_err());
    }
}
