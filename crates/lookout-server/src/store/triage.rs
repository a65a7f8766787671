//! Triage: what operators do about alerts. Incident acknowledgements (who, when), rules
//! muted until a time (no notifications meanwhile; decisions and incidents are still
//! recorded), the Telegram poller's next update offset per channel, and the audit of who
//! did which. The alert stage reads acknowledgements and mutes inside its own transaction
//! ([`AlertTx::muted_until`], [`AlertTx::acked`]), so a decision and the mute it obeyed
//! are one snapshot.

use super::alerting::{AlertTx, Measurer};
use super::db::Db;
use super::sql::{Conn, OptionalExtension, params};
use super::{Result, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

/// Who acknowledged an incident, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The incident.
    pub incident_id: i64,
    /// `user:<name>`, `token:<name>` or `telegram:<user id>`.
    pub by: String,
    /// When (ms since the epoch).
    pub at: i64,
}

/// A rule's mute: no notifications until `until` (`None`: until unmuted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    /// The rule.
    pub rule_id: i64,
    /// Muted until (ms since the epoch); `None`: until someone unmutes it.
    pub until: Option<i64>,
    /// Who muted it.
    pub by: String,
    /// When (ms since the epoch).
    pub at: i64,
}

impl Mute {
    /// Whether the mute holds at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

/// One line of the audit: who did what to which rule or incident.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// When (ms since the epoch).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// `acknowledge`, `mute`, `unmute`, …
    pub action: String,
    /// The rule, if about one.
    pub rule_id: Option<i64>,
    /// The incident, if about one.
    pub incident_id: Option<i64>,
    /// What was done, in words.
    pub detail: String,
}

/// How an acknowledgement went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acked {
    /// Acknowledged now.
    Now(Ack),
    /// Someone had acknowledged it already (their acknowledgement is kept).
    Already(Ack),
}

impl Acked {
    /// The acknowledgement in force.
    pub fn ack(&self) -> &Ack {
        match self {
            Acked::Now(a) | Acked::Already(a) => a,
        }
    }
}

/// The triage repository.
#[derive(Debug, Clone)]
pub struct Triage {
    db: Arc<Db>,
}

fn ack_of(conn: &Conn, incident: i64) -> Result<Option<Ack>> {
    conn.prepare_cached("SELECT acked_by, acked_at FROM incident_acks WHERE incident_id = ?1")?
        .query_row([incident], |r| {
            Ok(Ack {
                incident_id: incident,
                by: r.get(0)?,
                at: r.get(1)?,
            })
        })
        .optional()
}

fn mute_of(conn: &Conn, rule: i64) -> Result<Option<Mute>> {
    conn.prepare_cached(
        "SELECT until, created_by, created_at FROM rule_snoozes WHERE rule_id = ?1",
    )?
    .query_row([rule], |r| {
        Ok(Mute {
            rule_id: rule,
            until: r.get(0)?,
            by: r.get(1)?,
            at: r.get(2)?,
        })
    })
    .optional()
}

/// What an audit line is about.
#[derive(Debug, Clone, Copy)]
enum About {
    Rule(i64),
    Incident(i64),
    Nothing,
}

fn audit(
    conn: &Conn,
    org: i64,
    at: i64,
    actor: &str,
    action: &str,
    about: About,
    detail: &str,
) -> Result<()> {
    let (rule, incident) = match about {
        About::Rule(r) => (Some(r), None),
        About::Incident(i) => (None, Some(i)),
        About::Nothing => (None, None),
    };
    conn.prepare_cached(
        "INSERT INTO alert_audit (org_id, at, actor, action, rule_id, incident_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![org, at, actor, action, rule, incident, detail])?;
    Ok(())
}

impl Triage {
    pub(crate) fn new(db: Arc<Db>) -> Triage {
        Triage { db }
    }

    /// Acknowledge incident `id` of organisation `org` as `by` at `now`. An incident that is
    /// closed is refused ([`StoreError::Invalid`]); one already acknowledged keeps its first
    /// acknowledgement. Audited, and written to the incident's timeline.
    pub fn acknowledge(&self, org: i64, id: i64, by: &str, now: i64) -> Result<Acked> {
        self.db.write(|tx| {
            let status: Option<String> = tx
                .prepare_cached(
                    "SELECT i.status FROM incidents i JOIN projects p ON p.id = i.project_id WHERE p.org_id = ?1 AND i.id = ?2",
                )?
                .query_row(params![org, id], |r| r.get(0))
                .optional()?;
            match status.as_deref() {
                None => return Err(StoreError::NotFound(format!("incident {id}"))),
                Some("closed") => {
                    return Err(StoreError::Invalid(format!(
                        "incident {id} is resolved: only an open incident can be acknowledged"
                    )));
                }
                Some(_) => {}
            }
            if let Some(a) = ack_of(tx, id)? {
                return Ok(Acked::Already(a));
            }
            tx.prepare_cached(
                "INSERT INTO incident_acks (incident_id, acked_by, acked_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, by, now])?;
            tx.prepare_cached(
                "INSERT INTO incident_activity (incident_id, at, kind, detail) VALUES (?1, ?2, 'acknowledged', ?3)",
            )?
            .execute(params![id, now, format!("acknowledged by {by}")])?;
            audit(tx, org, now, by, "acknowledge", About::Incident(id), &format!("incident {id}"))?;
            Ok(Acked::Now(Ack {
                incident_id: id,
                by: by.to_owned(),
                at: now,
            }))
        })
    }

    /// The acknowledgement of incident `id`, if any.
    pub fn ack(&self, id: i64) -> Result<Option<Ack>> {
        let conn = self.db.reader()?;
        ack_of(&conn, id)
    }

    /// The acknowledgements of `ids` (those that have one).
    pub fn acks(&self, ids: &[i64]) -> Result<HashMap<i64, Ack>> {
        let conn = self.db.reader()?;
        let list = serde_json::to_string(&ids.iter().map(i64::to_string).collect::<Vec<_>>())
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        conn.prepare_cached(
            "SELECT incident_id, acked_by, acked_at FROM incident_acks
             WHERE incident_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))",
        )?
        .query_map([list], |r| {
            Ok(Ack {
                incident_id: r.get(0)?,
                by: r.get(1)?,
                at: r.get(2)?,
            })
        })?
        .map(|a| a.map(|a| (a.incident_id, a)))
        .collect()
    }

    /// Mute rule `rule` of organisation `org` until `until` (`None`: until unmuted), as `by`
    /// at `now`; a mute already there is replaced. Audited.
    pub fn mute(
        &self,
        org: i64,
        rule: i64,
        until: Option<i64>,
        by: &str,
        now: i64,
    ) -> Result<Mute> {
        self.db.write(|tx| {
            rule_of_org(tx, org, rule)?;
            tx.prepare_cached(
                "INSERT INTO rule_snoozes (rule_id, until, created_by, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (rule_id) DO UPDATE SET until = excluded.until, created_by = excluded.created_by, created_at = excluded.created_at",
            )?
            .execute(params![rule, until, by, now])?;
            let detail = match until {
                Some(u) => format!("muted until {}", crate::time::iso(u)),
                None => "muted until unmuted".to_owned(),
            };
            audit(tx, org, now, by, "mute", About::Rule(rule), &detail)?;
            Ok(Mute {
                rule_id: rule,
                until,
                by: by.to_owned(),
                at: now,
            })
        })
    }

    /// Lift rule `rule`'s mute (nothing to lift is not an error). Audited.
    pub fn unmute(&self, org: i64, rule: i64, by: &str, now: i64) -> Result<()> {
        self.db.write(|tx| {
            rule_of_org(tx, org, rule)?;
            let n = tx
                .prepare_cached("DELETE FROM rule_snoozes WHERE rule_id = ?1")?
                .execute([rule])?;
            if n > 0 {
                audit(tx, org, now, by, "unmute", About::Rule(rule), "unmuted")?;
            }
            Ok(())
        })
    }

    /// The mute of rule `rule`, if any (possibly lapsed: see [`Mute::active`]).
    pub fn mute_of(&self, rule: i64) -> Result<Option<Mute>> {
        let conn = self.db.reader()?;
        mute_of(&conn, rule)
    }

    /// Every mute, by rule.
    pub fn mutes(&self) -> Result<HashMap<i64, Mute>> {
        let conn = self.db.reader()?;
        conn.prepare_cached("SELECT rule_id, until, created_by, created_at FROM rule_snoozes")?
            .query_map([], |r| {
                Ok(Mute {
                    rule_id: r.get(0)?,
                    until: r.get(1)?,
                    by: r.get(2)?,
                    at: r.get(3)?,
                })
            })?
            .map(|m| m.map(|m| (m.rule_id, m)))
            .collect()
    }

    /// The audit of organisation `org`, newest first.
    pub fn audit(&self, org: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        let conn = self.db.reader()?;
        conn.prepare_cached(
            "SELECT at, actor, action, rule_id, incident_id, detail FROM alert_audit WHERE org_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
        )?
        .query_map(params![org, limit], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                rule_id: r.get(3)?,
                incident_id: r.get(4)?,
                detail: r.get(5)?,
            })
        })?
        .collect()
    }

    /// Record in the audit something done elsewhere (a Telegram command's effect).
    pub fn record(&self, org: i64, at: i64, actor: &str, action: &str, detail: &str) -> Result<()> {
        self.db
            .write(|tx| audit(tx, org, at, actor, action, About::Nothing, detail))
    }

    /// The next `getUpdates` offset of Telegram channel `integration` (0: none yet).
    pub fn telegram_offset(&self, integration: i64) -> Result<i64> {
        Ok(self
            .db
            .reader()?
            .prepare_cached("SELECT next_offset FROM telegram_offsets WHERE integration_id = ?1")?
            .query_row([integration], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// Move channel `integration`'s offset to `next` (never backwards).
    pub fn set_telegram_offset(&self, integration: i64, next: i64) -> Result<()> {
        self.db.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO telegram_offsets (integration_id, next_offset) VALUES (?1, ?2)
                 ON CONFLICT (integration_id) DO UPDATE SET next_offset = max(telegram_offsets.next_offset, excluded.next_offset)",
            )?
            .execute(params![integration, next])?;
            Ok(())
        })
    }
}

/// A Telegram channel as its poller needs it.
#[derive(Debug, Clone)]
pub struct TelegramChannel {
    /// Integration id.
    pub id: i64,
    /// Its organisation.
    pub org_id: i64,
    /// Its organisation's slug.
    pub org_slug: String,
    /// The channel's config.
    pub config: serde_json::Value,
}

impl Triage {
    /// Every Telegram channel, of every organisation.
    pub fn telegram_channels(&self) -> Result<Vec<TelegramChannel>> {
        let conn = self.db.reader()?;
        let rows: Vec<(i64, i64, String, String)> = conn
            .prepare_cached(
                "SELECT i.id, i.org_id, o.slug, i.config FROM integrations i JOIN organizations o ON o.id = i.org_id
                 WHERE i.provider = 'telegram' ORDER BY i.id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_>>()?;
        Ok(rows
            .into_iter()
            .map(|(id, org_id, org_slug, config)| TelegramChannel {
                id,
                org_id,
                org_slug,
                config: serde_json::from_str(&config).unwrap_or_default(),
            })
            .collect())
    }

    /// The issue of organisation `org` that `ident` names: its short id (`DEFAULT-1A`, any
    /// case) or its numeric id. Returns (id, short id).
    pub fn find_issue(&self, org: i64, ident: &str) -> Result<Option<(i64, String)>> {
        let conn = self.db.reader()?;
        let by_id = |id: i64| -> Result<Option<(i64, String, i64)>> {
            conn.prepare_cached(
                "SELECT i.id, p.slug, i.short_seq FROM issues i JOIN projects p ON p.id = i.project_id WHERE p.org_id = ?1 AND i.id = ?2",
            )?
            .query_row(params![org, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
        };
        let found = if let Ok(id) = ident.parse::<i64>() {
            by_id(id)?
        } else if let Some((slug, seq)) = ident.rsplit_once('-')
            && let Ok(seq) = i64::from_str_radix(seq, 36)
        {
            conn.prepare_cached(
                "SELECT i.id, p.slug, i.short_seq FROM issues i JOIN projects p ON p.id = i.project_id
                 WHERE p.org_id = ?1 AND p.slug = ?2 AND i.short_seq = ?3",
            )?
            .query_row(params![org, slug.to_ascii_lowercase(), seq], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?
        } else {
            None
        };
        Ok(found.map(|(id, slug, seq): (i64, String, i64)| {
            (
                id,
                format!("{}-{}", slug.to_ascii_uppercase(), super::read::base36(seq)),
            )
        }))
    }
}

impl Triage {
    /// Change channel `id` of organisation `org`: its name and config, as `edit` makes them
    /// from what is stored (provider, name, config); `edit` refuses with a message. Audited.
    pub fn edit_channel(
        &self,
        org: i64,
        id: i64,
        by: &str,
        now: i64,
        edit: impl FnOnce(
            &str,
            &str,
            &serde_json::Value,
        ) -> std::result::Result<(String, serde_json::Value), String>,
    ) -> Result<()> {
        self.db.write(|tx| {
            let (provider, name, config): (String, String, String) = tx
                .prepare_cached(
                    "SELECT provider, name, config FROM integrations WHERE org_id = ?1 AND id = ?2",
                )?
                .query_row(params![org, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("integration {id}")))?;
            let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
            let (name, config) = edit(&provider, &name, &config).map_err(StoreError::Invalid)?;
            tx.prepare_cached(
                "UPDATE integrations SET name = ?3, config = ?4 WHERE org_id = ?1 AND id = ?2",
            )?
            .execute(params![org, id, name, config.to_string()])?;
            audit(
                tx,
                org,
                now,
                by,
                "edit_channel",
                About::Nothing,
                &format!("channel {id} ({provider})"),
            )
        })
    }
}

fn rule_of_org(conn: &Conn, org: i64, rule: i64) -> Result<()> {
    conn.prepare_cached(
        "SELECT r.id FROM alert_rules r JOIN projects p ON p.id = r.project_id WHERE p.org_id = ?1 AND r.id = ?2",
    )?
    .query_row(params![org, rule], |r| r.get::<_, i64>(0))
    .optional()?
    .map(|_| ())
    .ok_or_else(|| StoreError::NotFound(format!("rule {rule}")))
}

impl AlertTx<'_> {
    /// Until when rule `rule` is muted at `now` (`Some(None)`: until unmuted), if it is.
    pub fn muted_until(&self, rule: i64, now: i64) -> Result<Option<Option<i64>>> {
        Ok(mute_of(self.conn(), rule)?
            .filter(|m| m.active(now))
            .map(|m| m.until))
    }

    /// Who acknowledged incident `id`, if anyone.
    pub fn acked(&self, id: i64) -> Result<Option<Ack>> {
        ack_of(self.conn(), id)
    }
}

/// What one service's errors in a window were: for venue incidents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceErrors {
    /// Distinct agents (their `agent_id` tag) that hit an error from the service.
    pub agents: Vec<String>,
    /// Endpoints that failed (`METHOD /path`), most frequent first.
    pub endpoints: Vec<String>,
    /// HTTP status codes answered, most frequent first.
    pub statuses: Vec<String>,
    /// Error events.
    pub errors: i64,
}

impl Measurer<'_> {
    /// Per value of tag `per` (a Purple Flea `service`), the error events of `project` since
    /// `since` (ms) that carry it: the distinct values of tag `count` (`agent_id`) among
    /// them, their endpoints and status codes. Reads the events of the window.
    pub fn errors_per_tag(
        &self,
        project: i64,
        since: i64,
        per: &str,
        count: &str,
    ) -> Result<HashMap<String, ServiceErrors>> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
        );
        let rows: Vec<Row> = self
            .conn()
            .prepare_cached(
                "SELECT s.value,
                        (SELECT a.value FROM event_tags a WHERE a.event_row = e.id AND a.key = ?4),
                        (SELECT h.value FROM event_tags h WHERE h.event_row = e.id AND h.key = 'http.status_code'),
                        (SELECT n.value FROM event_tags n WHERE n.event_row = e.id AND n.key = 'endpoint'),
                        e.title, e.transaction_name
                 FROM events e JOIN event_tags s ON s.event_row = e.id AND s.key = ?3
                 WHERE e.project_id = ?1 AND e.timestamp >= ?2 AND e.kind IN ('error', 'default')
                   AND e.level IN ('error', 'fatal')
                 ORDER BY e.id DESC LIMIT 5000",
            )?
            .query_map(params![project, since, per, count], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })?
            .collect::<Result<_>>()?;
        let mut tallies: HashMap<String, Tally> = HashMap::new();
        for (service, agent, status, endpoint, title, transaction) in rows {
            let t = tallies.entry(service).or_default();
            t.errors += 1;
            if let Some(a) = agent
                && !t.agents.contains(&a)
            {
                t.agents.push(a);
            }
            if let Some(s) = status {
                *t.statuses.entry(s).or_default() += 1;
            }
            if let Some(e) = endpoint.or_else(|| endpoint_in(&title)).or(transaction) {
                *t.endpoints.entry(e).or_default() += 1;
            }
        }
        let ranked = |m: HashMap<String, i64>| {
            let mut v: Vec<(String, i64)> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        Ok(tallies
            .into_iter()
            .map(|(service, mut t)| {
                t.agents.sort();
                (
                    service,
                    ServiceErrors {
                        agents: t.agents,
                        endpoints: ranked(t.endpoints),
                        statuses: ranked(t.statuses),
                        errors: t.errors,
                    },
                )
            })
            .collect())
    }
}

/// One service's errors being counted.
#[derive(Debug, Default)]
struct Tally {
    agents: Vec<String>,
    endpoints: HashMap<String, i64>,
    statuses: HashMap<String, i64>,
    errors: i64,
}

/// The `METHOD /path` a Purple Flea client error names in its message
/// (`trading POST /v1/orders: HTTP 503`).
fn endpoint_in(title: &str) -> Option<String> {
    let words: Vec<&str> = title.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        let method = ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&w[0]);
        let path = w[1].trim_end_matches(':');
        (method && path.starts_with('/')).then(|| format!("{} {path}", w[0]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_read_from_client_messages() {
        assert_eq!(
            endpoint_in("TradingError: trading POST /v1/orders: HTTP 503").as_deref(),
            Some("POST /v1/orders")
        );
        assert_eq!(endpoint_in("no endpoint here"), None);
    }

    /// A preset added by a release reaches a project that had the earlier ones, once; a
    /// preset the operator deleted is not put back.
    #[test]
    fn a_preset_added_later_reaches_existing_projects_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        store.ensure_default_project().unwrap();
        let stage = store.alert_stage();
        let all = crate::alerts::rules::presets();
        let six: Vec<_> = all
            .iter()
            .filter(|p| p.0 != "venue_outage")
            .cloned()
            .collect();
        stage.ensure_presets(&six, 0).unwrap();
        let alerts = store.alerts();
        let org = alerts.org_id("default").unwrap();
        let presets = || {
            let mut v: Vec<String> = ["issue", "metric"]
                .iter()
                .flat_map(|k| alerts.rules(org, None, k).unwrap())
                .filter_map(|r| r.preset)
                .collect();
            v.sort();
            v
        };
        assert_eq!(presets().len(), 6);
        let deleted = alerts.rules(org, None, "issue").unwrap()[0].clone();
        alerts.delete_rule(deleted.id).unwrap();
        stage.ensure_presets(&all, 0).unwrap();
        stage.ensure_presets(&all, 0).unwrap();
        let now = presets();
        assert_eq!(now.len(), 6, "{now:?}");
        assert!(now.contains(&"venue_outage".to_owned()));
        assert!(!now.contains(deleted.preset.as_ref().unwrap()));
    }

    #[test]
    fn a_mute_without_end_holds_until_lifted() {
        let m = Mute {
            rule_id: 1,
            until: None,
            by: "x".into(),
            at: 0,
        };
        assert!(m.active(i64::MAX));
        let m = Mute {
            until: Some(10),
            ..m
        };
        assert!(m.active(9) && !m.active(10));
    }
}
