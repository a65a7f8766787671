//! Telegram, the other way: a Telegram channel with `commands` on takes commands from its
//! chats by long-polling the Bot API's `getUpdates` (no public URL needed), and answers the
//! buttons its alert messages carry (`callback_query`).
//!
//! Only a chat on the channel's list (`chat_id` and `allowed_chat_ids`) *and* a user on
//! `allowed_user_ids` may command; anything else changes nothing, is logged and is counted
//! in `/metrics` (`lookout_telegram_commands_total{outcome="refused"}`). The next update
//! offset is stored per channel after each update is handled, so a restart (or a new
//! leader) resumes after the last handled update: nothing is lost, and an update handled
//! just before a crash and handled again is harmless (every command is idempotent: a second
//! `/ack` keeps the first acknowledgement, a second `/mute` sets the same end).
//!
//! Commands: `/status`, `/alerts`, `/ack <incident>`, `/mute <rule> <duration>`,
//! `/pause <agent> [reason]`, `/resume <agent>`, `/resolve <issue>`, `/help`.

use crate::cluster::Role;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::triage::{Acked, TelegramChannel};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Seconds a `getUpdates` call waits for an update (Telegram's long poll) unless the channel
/// says otherwise (`poll_timeout_secs`).
pub const POLL_TIMEOUT_SECS: u64 = 25;

/// The longest mute a command may set.
pub const MAX_MUTE_MS: i64 = 30 * 86_400_000;

/// At most this many ids in each allow-list.
const MAX_IDS: usize = 100;

/// The short usage reply.
pub const USAGE: &str = "Commands:\n/status: agents and their health\n/alerts: open incidents\n/ack <incident>\n/mute <rule> <duration> (30m, 2h, 1d)\n/pause <agent> [reason]\n/resume <agent>\n/resolve <issue>";

/// Check the command fields of a Telegram channel's config; the message names the key.
pub fn validate(config: &Value) -> Result<(), String> {
    for key in ["allowed_chat_ids", "allowed_user_ids"] {
        match config.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                if list.len() > MAX_IDS {
                    return Err(format!("config.{key} takes at most {MAX_IDS} ids"));
                }
                if let Some(bad) = list.iter().find(|v| id_of(v).is_none()) {
                    return Err(format!(
                        "config.{key} must list numeric Telegram ids, not {bad}"
                    ));
                }
            }
            Some(_) => return Err(format!("config.{key} must be a list of numeric ids")),
        }
    }
    if let Some(v) = config.get("poll_timeout_secs")
        && v.as_u64().is_none_or(|s| s > 50)
    {
        return Err("config.poll_timeout_secs must be a whole number from 0 to 50".into());
    }
    match config.get("commands") {
        None | Some(Value::Null | Value::Bool(false)) => Ok(()),
        Some(Value::Bool(true)) => {
            if ids(config, "allowed_user_ids").is_empty() {
                Err(
                    "config.allowed_user_ids must name at least one user when commands are on"
                        .into(),
                )
            } else {
                Ok(())
            }
        }
        Some(_) => Err("config.commands must be true or false".into()),
    }
}

/// A Telegram id given as a number or a string of digits.
fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn ids(config: &Value, key: &str) -> Vec<i64> {
    config
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(id_of)
        .collect()
}

/// Parse a list of ids typed in a form (`123, -100456`); the message says what is wrong.
pub fn parse_id_list(text: &str) -> Result<Vec<i64>, String> {
    let list: Result<Vec<i64>, String> = text
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| format!("{s:?} is not a numeric Telegram id"))
        })
        .collect();
    let list = list?;
    if list.len() > MAX_IDS {
        return Err(format!("At most {MAX_IDS} ids."));
    }
    Ok(list)
}

/// The inline buttons of an alert message: Ack, Mute 1 h, and Pause agent when the alert is
/// about an agent and pausing is available.
pub fn alert_buttons(m: &super::notify::Message) -> Value {
    let mut row = vec![
        json!({"text": "Ack", "callback_data": format!("ack:{}", m.incident_id)}),
        json!({"text": "Mute 1 h", "callback_data": format!("mute:{}:1h", m.rule_id)}),
    ];
    if PAUSE_AVAILABLE && let Some(agent) = &m.agent {
        let data = format!("pause:{agent}");
        // Telegram takes at most 64 bytes of callback data.
        if data.len() <= 64 {
            row.push(json!({"text": "Pause agent", "callback_data": data}));
        }
    }
    json!({"inline_keyboard": [row]})
}

/// Whether `/pause` and `/resume` reach the trading service in this build.
pub const PAUSE_AVAILABLE: bool = true;

/// A duration as commands take it: `30m`, `2h`, `1d`, `90s`; in ms.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    let ms = match unit {
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    let total = n.checked_mul(ms)?;
    (total > 0 && total <= MAX_MUTE_MS).then_some(total)
}

/// Who sent an update.
#[derive(Debug, Clone)]
struct Sender {
    chat: i64,
    user: i64,
    /// Their username, if they have one.
    name: String,
    /// How the audit names them: `telegram:<id> (@name)`.
    actor: String,
}

fn sender(from: &Value, chat: i64) -> Option<Sender> {
    let user = from.get("id").and_then(Value::as_i64)?;
    let name = from
        .get("username")
        .and_then(Value::as_str)
        .map(|u| clip(u, 32))
        .unwrap_or_default();
    let shown = if name.is_empty() {
        String::new()
    } else {
        format!(" (@{name})")
    };
    Some(Sender {
        chat,
        user,
        actor: format!("telegram:{user}{shown}"),
        name,
    })
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// What the poller does with one update.
#[derive(Debug, Clone)]
enum Update {
    /// A text message in a chat.
    Command {
        from: Sender,
        message_id: i64,
        text: String,
    },
    /// A button pressed.
    Button {
        from: Sender,
        query_id: String,
        data: String,
    },
    /// Anything else (edits, joins, …): skipped.
    Other,
}

fn parse_update(u: &Value) -> Update {
    if let Some(m) = u.get("message") {
        let chat = m.pointer("/chat/id").and_then(Value::as_i64);
        let text = m.get("text").and_then(Value::as_str);
        if let (Some(chat), Some(text), Some(from)) = (chat, text, m.get("from"))
            && let Some(from) = sender(from, chat)
        {
            return Update::Command {
                from,
                message_id: m.get("message_id").and_then(Value::as_i64).unwrap_or(0),
                text: clip(text, 512),
            };
        }
    }
    if let Some(q) = u.get("callback_query") {
        let chat = q.pointer("/message/chat/id").and_then(Value::as_i64);
        if let (Some(chat), Some(from), Some(id)) =
            (chat, q.get("from"), q.get("id").and_then(Value::as_str))
            && let Some(from) = sender(from, chat)
        {
            return Update::Button {
                from,
                query_id: id.to_owned(),
                data: clip(q.get("data").and_then(Value::as_str).unwrap_or(""), 64),
            };
        }
    }
    Update::Other
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Status,
    Alerts,
    Ack(i64),
    Mute(i64, i64, String),
    Pause(String, Option<String>),
    Resume(String),
    Resolve(String),
    Help,
}

/// Parse a command's text, or the usage line that fits what was wrong.
fn parse_command(text: &str) -> Result<Command, String> {
    let mut words = text.split_whitespace();
    let head = words.next().unwrap_or("");
    // `/ack@lookout_bot 12` in groups.
    let name = head.split('@').next().unwrap_or(head);
    let args: Vec<&str> = words.collect();
    let id = |s: &str| s.trim_start_matches('#').parse::<i64>().ok();
    match (name, args.as_slice()) {
        ("/status", []) => Ok(Command::Status),
        ("/alerts", []) => Ok(Command::Alerts),
        ("/ack", [n]) => id(n)
            .map(Command::Ack)
            .ok_or_else(|| "Usage: /ack <incident id>, e.g. /ack 12".into()),
        ("/mute", [rule, d]) => match (id(rule), parse_duration(d)) {
            (Some(r), Some(ms)) => Ok(Command::Mute(r, ms, (*d).to_owned())),
            _ => Err(
                "Usage: /mute <rule id> <duration>, e.g. /mute 3 2h (s, m, h, d; at most 30d)"
                    .into(),
            ),
        },
        ("/pause", [agent, reason @ ..]) => Ok(Command::Pause(
            clip(agent, 128),
            (!reason.is_empty()).then(|| clip(&reason.join(" "), 200)),
        )),
        ("/resume", [agent]) => Ok(Command::Resume(clip(agent, 128))),
        ("/resolve", [issue]) => Ok(Command::Resolve(clip(issue, 64))),
        ("/help" | "/start", _) => Ok(Command::Help),
        ("/ack", _) => Err("Usage: /ack <incident id>, e.g. /ack 12".into()),
        ("/mute", _) => Err("Usage: /mute <rule id> <duration>, e.g. /mute 3 2h".into()),
        ("/pause", _) => Err("Usage: /pause <agent> [reason]".into()),
        ("/resume", _) => Err("Usage: /resume <agent>".into()),
        ("/resolve", _) => {
            Err("Usage: /resolve <issue short id or id>, e.g. /resolve DEFAULT-1".into())
        }
        ("/status" | "/alerts", _) => Err(format!("{name} takes no arguments.\n{USAGE}")),
        _ => Err(format!("Unknown command.\n{USAGE}")),
    }
}

/// The poller of every Telegram channel with commands on; runs on the leader only.
#[derive(Debug)]
pub struct Poller {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What the poller shares with its per-channel work.
#[derive(Debug, Clone)]
struct Ctx {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
}

impl Poller {
    /// Poll while `role` leads, until stopped.
    pub fn start(store: Arc<Store>, role: Role, metrics: Arc<Metrics>) -> Poller {
        let (stop, mut stopped) = watch::channel(false);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(POLL_TIMEOUT_SECS + 15))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let ctx = Ctx {
            store,
            metrics,
            client,
        };
        let task = tokio::spawn(async move {
            loop {
                let started = Instant::now();
                if role.is_leader() {
                    let c = ctx.clone();
                    let channels =
                        tokio::task::spawn_blocking(move || c.store.triage().telegram_channels())
                            .await
                            .ok()
                            .and_then(|r| {
                                r.map_err(
                                    |e| tracing::warn!(error = %e, "telegram channels unreadable"),
                                )
                                .ok()
                            })
                            .unwrap_or_default();
                    let mut set = tokio::task::JoinSet::new();
                    for ch in channels
                        .into_iter()
                        .filter(|c| c.config.get("commands").and_then(Value::as_bool) == Some(true))
                    {
                        let c = ctx.clone();
                        set.spawn(async move { poll_once(&c, &ch).await });
                    }
                    tokio::select! {
                        () = async { while set.join_next().await.is_some() {} } => {}
                        _ = stopped.changed() => { set.abort_all(); return; }
                    }
                }
                if *stopped.borrow() {
                    return;
                }
                // A poll that came back at once (nothing to wait for, or an error): pause a
                // little before the next, so a server that does not hold the poll is not
                // hammered.
                let rest = Duration::from_millis(300).saturating_sub(started.elapsed());
                tokio::select! {
                    () = tokio::time::sleep(rest.max(Duration::from_millis(20))) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Poller { stop, task }
    }

    /// Stop (a poll in flight is dropped; its updates are fetched again by the next leader).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn api(ch: &TelegramChannel, method: &str) -> String {
    let base = ch
        .config
        .get("api_base")
        .and_then(Value::as_str)
        .unwrap_or("https://api.telegram.org");
    let token = ch
        .config
        .get("bot_token")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{}/bot{token}/{method}", base.trim_end_matches('/'))
}

async fn call(c: &Ctx, ch: &TelegramChannel, method: &str, body: &Value) -> Option<Value> {
    match c.client.post(api(ch, method)).json(body).send().await {
        Ok(r) => r.json::<Value>().await.ok(),
        Err(e) => {
            tracing::warn!(channel = ch.id, method, error = %e.without_url(), "telegram call failed");
            None
        }
    }
}

/// One `getUpdates` of channel `ch`, and every update it brought, in order.
async fn poll_once(c: &Ctx, ch: &TelegramChannel) {
    let triage = c.store.triage();
    let id = ch.id;
    let offset = match tokio::task::spawn_blocking(move || triage.telegram_offset(id)).await {
        Ok(Ok(o)) => o,
        _ => return,
    };
    let timeout = ch
        .config
        .get("poll_timeout_secs")
        .and_then(Value::as_u64)
        .unwrap_or(POLL_TIMEOUT_SECS);
    let mut body = json!({"timeout": timeout, "allowed_updates": ["message", "callback_query"]});
    if offset > 0 {
        body["offset"] = json!(offset);
    }
    let Some(answer) = call(c, ch, "getUpdates", &body).await else {
        return;
    };
    let Some(updates) = answer.get("result").and_then(Value::as_array) else {
        tracing::warn!(channel = ch.id, answer = %clip(&answer.to_string(), 200), "getUpdates refused");
        return;
    };
    for u in updates {
        let Some(update_id) = u.get("update_id").and_then(Value::as_i64) else {
            continue;
        };
        if update_id < offset {
            continue;
        }
        handle(c, ch, u).await;
        let triage = c.store.triage();
        let id = ch.id;
        let saved =
            tokio::task::spawn_blocking(move || triage.set_telegram_offset(id, update_id + 1))
                .await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::warn!(channel = ch.id, "telegram offset not saved; will retry");
            return;
        }
    }
}

fn allowed(ch: &TelegramChannel, from: &Sender) -> bool {
    let mut chats = ids(&ch.config, "allowed_chat_ids");
    if let Some(c) = ch.config.get("chat_id").and_then(id_of) {
        chats.push(c);
    }
    chats.contains(&from.chat) && ids(&ch.config, "allowed_user_ids").contains(&from.user)
}

async fn handle(c: &Ctx, ch: &TelegramChannel, u: &Value) {
    let (from, command, reply_to, query) = match parse_update(u) {
        Update::Other => return,
        Update::Command {
            from,
            message_id,
            text,
        } => {
            if !text.starts_with('/') {
                // Chatter in a group, not a command.
                return;
            }
            (from, parse_command(&text), Some(message_id), None)
        }
        Update::Button {
            from,
            query_id,
            data,
        } => (from, parse_button(&data), None, Some(query_id)),
    };
    if !allowed(ch, &from) {
        tracing::warn!(
            channel = ch.id,
            chat = from.chat,
            user = from.user,
            "telegram command from a chat or user not on the allow-list: ignored"
        );
        c.metrics.telegram("refused");
        return;
    }
    let (outcome, text) = match command {
        Err(usage) => ("usage", usage),
        Ok(cmd) => {
            let store = Arc::clone(&c.store);
            let ch2 = ch.clone();
            let who = from.clone();
            match tokio::task::spawn_blocking(move || run(&store, &ch2, &who, cmd)).await {
                Ok(Ok(text)) => ("done", text),
                Ok(Err(text)) => ("failed", text),
                Err(e) => ("failed", format!("That failed: {e}")),
            }
        }
    };
    c.metrics.telegram(outcome);
    tracing::info!(
        channel = ch.id,
        user = from.user,
        outcome,
        "telegram command"
    );
    if let Some(query_id) = query {
        call(
            c,
            ch,
            "answerCallbackQuery",
            &json!({"callback_query_id": query_id, "text": clip(&text, 190)}),
        )
        .await;
    }
    let mut msg =
        json!({"chat_id": from.chat, "text": clip(&text, 4000), "disable_web_page_preview": true});
    if let Some(id) = reply_to.filter(|id| *id > 0) {
        msg["reply_to_message_id"] = json!(id);
    }
    call(c, ch, "sendMessage", &msg).await;
}

fn parse_button(data: &str) -> Result<Command, String> {
    let parts: Vec<&str> = data.split(':').collect();
    match parts.as_slice() {
        ["ack", id] => id.parse().map(Command::Ack).map_err(|_| USAGE.to_owned()),
        ["mute", rule, d] => match (rule.parse(), parse_duration(d)) {
            (Ok(r), Some(ms)) => Ok(Command::Mute(r, ms, (*d).to_owned())),
            _ => Err(USAGE.to_owned()),
        },
        ["pause", agent] => Ok(Command::Pause((*agent).to_owned(), None)),
        _ => Err("Unknown button.".to_owned()),
    }
}

/// Carry out `cmd` for `actor` (blocking); the reply's text, or why it failed.
fn run(store: &Store, ch: &TelegramChannel, from: &Sender, cmd: Command) -> Result<String, String> {
    let now = chrono::Utc::now().timestamp_millis();
    let actor = from.actor.as_str();
    let triage = store.triage();
    let fail = |e: crate::store::StoreError| match e {
        crate::store::StoreError::NotFound(what) => format!("No {what}."),
        crate::store::StoreError::Invalid(why) => why,
        other => {
            tracing::warn!(error = %other, "telegram command failed");
            "That failed on the server; try again.".to_owned()
        }
    };
    match cmd {
        Command::Help => Ok(USAGE.to_owned()),
        Command::Status => {
            let agents =
                crate::services::agents::overview_now(store, &ch.org_slug, now).map_err(fail)?;
            if agents.is_empty() {
                return Ok("No agents seen yet.".into());
            }
            let mut out = format!("{} agents:\n", agents.len());
            for a in agents.iter().take(30) {
                let why = a
                    .reasons
                    .first()
                    .map(|r| format!(": {}", r.text))
                    .unwrap_or_default();
                out.push_str(&format!("• {} {}{why}\n", a.agent_id, a.status));
            }
            Ok(out)
        }
        Command::Alerts => {
            let open = store
                .alerts()
                .incidents(ch.org_id, Some("open"), 30)
                .map_err(fail)?;
            if open.is_empty() {
                return Ok("No open incidents.".into());
            }
            let ids: Vec<i64> = open.iter().map(|i| i.id).collect();
            let acks = triage.acks(&ids).map_err(fail)?;
            let mut out = format!("{} open incidents:\n", open.len());
            for i in &open {
                let ack = acks
                    .get(&i.id)
                    .map(|a| format!(" (acked by {})", a.by))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "#{} {} {} [rule {}]{ack}\n",
                    i.id, i.severity, i.title, i.rule_id
                ));
            }
            Ok(out)
        }
        Command::Ack(id) => match triage
            .acknowledge(ch.org_id, id, actor, now)
            .map_err(fail)?
        {
            Acked::Now(_) => Ok(format!("Incident #{id} acknowledged.")),
            Acked::Already(a) => Ok(format!(
                "Incident #{id} was already acknowledged by {}.",
                a.by
            )),
        },
        Command::Mute(rule, ms, shown) => {
            let m = triage
                .mute(ch.org_id, rule, Some(now + ms), actor, now)
                .map_err(fail)?;
            Ok(format!(
                "Rule {rule} muted for {shown}, until {}.",
                crate::time::iso(m.until.unwrap_or(now + ms))
            ))
        }
        Command::Resolve(ident) => {
            let (id, short) = triage
                .find_issue(ch.org_id, &ident)
                .map_err(fail)?
                .ok_or_else(|| format!("No issue {ident}."))?;
            store.set_issue_status(id, "resolved").map_err(fail)?;
            triage
                .record(ch.org_id, now, actor, "resolve", &format!("issue {short}"))
                .map_err(fail)?;
            Ok(format!("Issue {short} resolved."))
        }
        Command::Pause(agent, reason) => {
            let project = project_of_agent(store, ch, &agent, now)?;
            let reason = reason.unwrap_or_else(|| format!("paused from Telegram by {actor}"));
            let state = crate::services::trading::pause(
                store,
                project,
                &agent,
                &reason,
                telegram_actor(from),
                None,
                now,
            )
            .map_err(service_fail)?;
            Ok(format!(
                "Agent {} paused: {}. /resume {} lets it trade again.",
                state.agent_id,
                state.reason.unwrap_or_default(),
                state.agent_id
            ))
        }
        Command::Resume(agent) => {
            let project = project_of_agent(store, ch, &agent, now)?;
            let state =
                crate::services::trading::resume(store, project, &agent, telegram_actor(from), now)
                    .map_err(service_fail)?;
            Ok(format!("Agent {} may trade again.", state.agent_id))
        }
    }
}

/// The kill switch's name for a Telegram user.
fn telegram_actor(from: &Sender) -> crate::services::trading::Actor {
    crate::services::trading::Actor::Telegram {
        user_id: from.user,
        name: if from.name.is_empty() {
            format!("telegram user {}", from.user)
        } else {
            from.name.clone()
        },
    }
}

/// The project of the channel's organisation that agent `agent` reports to (the first, if
/// several have an agent of that id).
fn project_of_agent(
    store: &Store,
    ch: &TelegramChannel,
    agent: &str,
    now: i64,
) -> Result<i64, String> {
    let agents = crate::services::agents::overview_now(store, &ch.org_slug, now)
        .map_err(|e| service_fail(e.into()))?;
    agents
        .iter()
        .find(|a| a.agent_id == agent)
        .map(|a| a.project_id)
        .ok_or_else(|| format!("No agent {agent:?}. /status lists the agents."))
}

/// A service's refusal as a reply.
fn service_fail(e: crate::services::ServiceError) -> String {
    use crate::services::ServiceError;
    match e {
        ServiceError::Store(crate::store::StoreError::NotFound(what)) => format!("No {what}."),
        ServiceError::Store(crate::store::StoreError::Invalid(why))
        | ServiceError::Invalid(why) => why,
        ServiceError::Fields(v) => v
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(|v| v.get(0))
            .and_then(Value::as_str)
            .unwrap_or("That was refused.")
            .to_owned(),
        other => {
            tracing::warn!(error = %other, "telegram command failed");
            "That failed on the server; try again.".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_or_say_how() {
        assert_eq!(parse_command("/ack 12"), Ok(Command::Ack(12)));
        assert_eq!(parse_command("/ack@lookout_bot #12"), Ok(Command::Ack(12)));
        assert_eq!(
            parse_command("/mute 3 2h"),
            Ok(Command::Mute(3, 7_200_000, "2h".into()))
        );
        assert!(
            parse_command("/mute 3 forever")
                .unwrap_err()
                .contains("Usage")
        );
        assert!(parse_command("/ack").unwrap_err().contains("Usage"));
        assert!(parse_command("/dance").unwrap_err().contains("Unknown"));
        assert_eq!(
            parse_command("/pause ag_1 too risky now"),
            Ok(Command::Pause("ag_1".into(), Some("too risky now".into())))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(1_800_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("31d"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("h"), None);
    }

    #[test]
    fn configs() {
        assert!(validate(&json!({"commands": true})).is_err());
        assert!(validate(&json!({"commands": true, "allowed_user_ids": [5]})).is_ok());
        assert!(validate(&json!({"allowed_chat_ids": ["x"]})).is_err());
        assert!(validate(&json!({"allowed_chat_ids": "5"})).is_err());
        assert_eq!(parse_id_list("1, -100 7").unwrap(), vec![1, -100, 7]);
        assert!(parse_id_list("1, a").is_err());
    }
}
