//! Alert rules, channels (integrations), incidents and deliveries: the store side of the
//! alerts API and pages. What the alert stage itself reads and writes is in
//! [`super::alerting`].

use super::db::Db;
use super::sql::{Conn, OptionalExtension, params};
use super::{Result, StoreError};
use serde_json::Value;
use std::sync::Arc;

/// A channel.
#[derive(Debug, Clone)]
pub struct Integration {
    /// The channel's id (what rules name in their actions).
    pub id: i64,
    /// slack, pagerduty, webhook, telegram.
    pub provider: String,
    /// The name the operator gave it (`#trading-alerts`, `on-call`).
    pub name: String,
    /// Provider config (secrets included: never echo it whole).
    pub config: Value,
    /// When it was created (ms since the epoch).
    pub date_created: i64,
}

/// A stored rule.
#[derive(Debug, Clone)]
pub struct StoredRule {
    /// The rule's id.
    pub id: i64,
    /// The project it belongs to.
    pub project_id: i64,
    /// Its project's slug.
    pub project_slug: String,
    /// Its organisation.
    pub org_id: i64,
    /// issue or metric.
    pub kind: String,
    /// The rule's name, as notifications show it.
    pub name: String,
    /// The body it was created with.
    pub spec: Value,
    /// Which preset it came from.
    pub preset: Option<String>,
    /// When it was created (ms since the epoch).
    pub date_created: i64,
    /// When it last changed (ms since the epoch).
    pub date_modified: i64,
}

/// An incident (a metric alert that fired, or one firing of an issue alert).
#[derive(Debug, Clone)]
pub struct Incident {
    /// The incident's id (its page is `/alerts/incidents/{id}/`).
    pub id: i64,
    /// The rule that opened it.
    pub rule_id: i64,
    /// The name of that rule.
    pub rule_name: String,
    /// Its project's slug.
    pub project_slug: String,
    /// Agent id or short id for per-key rules.
    pub key: String,
    /// Issue (issue alerts).
    pub issue_id: Option<i64>,
    /// open, closed, fired.
    pub status: String,
    /// critical, warning, error, …
    pub severity: String,
    /// Title as shown in lists.
    pub title: String,
    /// Last value.
    pub value: Option<f64>,
    /// When it opened (ms since the epoch).
    pub opened_at: i64,
    /// When it closed (ms since the epoch), if it has.
    pub closed_at: Option<i64>,
}

/// One step of an incident's timeline.
#[derive(Debug, Clone)]
pub struct Activity {
    /// When it happened (ms since the epoch).
    pub at: i64,
    /// fired, critical, warning, resolved, channel_error.
    pub kind: String,
    /// What happened, in words.
    pub detail: String,
}

/// One notification and its delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Outbox id.
    pub id: i64,
    /// The incident it is about.
    pub incident_id: i64,
    /// The channel it goes to.
    pub integration_id: i64,
    /// The channel's kind: `slack`, `pagerduty`, `webhook`, `telegram` or `email`.
    pub provider: String,
    /// pending, delivered, failed.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Why the latest attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was queued (ms since the epoch).
    pub created_at: i64,
    /// When it was delivered (ms since the epoch), if it was.
    pub delivered_at: Option<i64>,
}

/// The alerts side of the store.
#[derive(Debug, Clone)]
pub struct Alerts {
    db: Arc<Db>,
}

const RULE_COLUMNS: &str = "r.id, r.project_id, p.slug, p.org_id, r.kind, r.name, r.spec, r.preset, r.date_created, r.date_modified";

/// The channels of organisation `org_id`, oldest first.
pub(super) fn integrations_of(conn: &Conn, org_id: i64) -> Result<Vec<Integration>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, provider, name, config, date_created FROM integrations WHERE org_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([org_id], |r| {
        Ok(Integration {
            id: r.get(0)?,
            provider: r.get(1)?,
            name: r.get(2)?,
            config: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or(Value::Null),
            date_created: r.get(4)?,
        })
    })?;
    rows.collect::<Result<_>>()
}

pub(super) fn rule_of(r: &super::sql::Row<'_>) -> Result<StoredRule> {
    Ok(StoredRule {
        id: r.get(0)?,
        project_id: r.get(1)?,
        project_slug: r.get(2)?,
        org_id: r.get(3)?,
        kind: r.get(4)?,
        name: r.get(5)?,
        spec: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or(Value::Null),
        preset: r.get(7)?,
        date_created: r.get(8)?,
        date_modified: r.get(9)?,
    })
}

impl Alerts {
    pub(crate) fn new(db: Arc<Db>) -> Alerts {
        Alerts { db }
    }

    /// The id of organisation `org`.
    pub fn org_id(&self, org: &str) -> Result<i64> {
        self.db
            .reader()?
            .query_row("SELECT id FROM organizations WHERE slug = ?1", [org], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("organization {org}")))
    }

    /// (project id, org id) of `org/slug`.
    pub fn project(&self, org: &str, slug: &str) -> Result<(i64, i64)> {
        self.db.reader()?
            .query_row(
                "SELECT p.id, o.id FROM projects p JOIN organizations o ON o.id = p.org_id WHERE o.slug = ?1 AND p.slug = ?2",
                [org, slug],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("project {org}/{slug}")))
    }

    /// Channels of an organisation.
    pub fn integrations(&self, org_id: i64) -> Result<Vec<Integration>> {
        integrations_of(&*self.db.reader()?, org_id)
    }

    /// Add a channel (validated by the caller).
    pub fn create_integration(
        &self,
        org_id: i64,
        provider: &str,
        name: &str,
        config: &Value,
    ) -> Result<i64> {
        self.db.writer()?.query_row(
            "INSERT INTO integrations (org_id, provider, name, config, date_created) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            params![org_id, provider, name, config.to_string(), chrono::Utc::now().timestamp_millis()],
            |r| r.get(0),
        )
    }

    /// Remove a channel.
    pub fn delete_integration(&self, org_id: i64, id: i64) -> Result<()> {
        let n = self.db.writer()?.execute(
            "DELETE FROM integrations WHERE org_id = ?1 AND id = ?2",
            params![org_id, id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("integration {id}")));
        }
        Ok(())
    }

    /// Rules of an organisation (optionally one project), of one kind.
    pub fn rules(
        &self,
        org_id: i64,
        project_id: Option<i64>,
        kind: &str,
    ) -> Result<Vec<StoredRule>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules r JOIN projects p ON p.id = r.project_id
             WHERE p.org_id = ?1 AND (?2 IS NULL OR r.project_id = ?2) AND r.kind = ?3 ORDER BY r.id"
        ))?;
        let rows = stmt.query_map(params![org_id, project_id, kind], rule_of)?;
        rows.collect::<Result<_>>()
    }

    /// One rule of an organisation.
    pub fn rule(&self, org_id: i64, id: i64, kind: &str) -> Result<StoredRule> {
        let conn = self.db.reader()?;
        conn.query_row(
            &format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules r JOIN projects p ON p.id = r.project_id
                 WHERE p.org_id = ?1 AND r.id = ?2 AND r.kind = ?3"
            ),
            params![org_id, id, kind],
            rule_of,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("rule {id}")))
    }

    /// Store a new rule.
    pub fn create_rule(
        &self,
        project_id: i64,
        kind: &str,
        name: &str,
        spec: &Value,
    ) -> Result<i64> {
        let now = chrono::Utc::now().timestamp_millis();
        self.db.writer()?.query_row(
            "INSERT INTO alert_rules (project_id, kind, name, spec, date_created, date_modified) VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
            params![project_id, kind, name, spec.to_string(), now],
            |r| r.get(0),
        )
    }

    /// Replace a rule's body (its state and incidents stay).
    pub fn update_rule(&self, id: i64, project_id: i64, name: &str, spec: &Value) -> Result<()> {
        self.db.writer()?.execute(
            "UPDATE alert_rules SET name = ?2, spec = ?3, project_id = ?4, date_modified = ?5 WHERE id = ?1",
            params![id, name, spec.to_string(), project_id, chrono::Utc::now().timestamp_millis()],
        )?;
        Ok(())
    }

    /// Delete a rule and its state (its incidents stay in the history).
    pub fn delete_rule(&self, id: i64) -> Result<()> {
        self.db.write(|tx| {
            tx.execute("DELETE FROM alert_rules WHERE id = ?1", [id])?;
            tx.execute("DELETE FROM alert_state WHERE rule_id = ?1", [id])?;
            tx.execute("DELETE FROM alert_issue_fires WHERE rule_id = ?1", [id])?;
            tx.execute(
                "UPDATE incidents SET status = 'closed', closed_at = COALESCE(closed_at, ?2) WHERE rule_id = ?1 AND status = 'open'",
                params![id, chrono::Utc::now().timestamp_millis()],
            )?;
            Ok(())
        })
    }

    /// Incidents of an organisation, newest first.
    pub fn incidents(
        &self,
        org_id: i64,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Incident>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT i.id, i.rule_id, COALESCE(r.name, ''), p.slug, i.key, i.issue_id, i.status, i.severity, i.title, i.value, i.opened_at, i.closed_at
             FROM incidents i JOIN projects p ON p.id = i.project_id LEFT JOIN alert_rules r ON r.id = i.rule_id
             WHERE p.org_id = ?1 AND (?2 IS NULL OR i.status = ?2) ORDER BY i.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![org_id, status, limit], incident_of)?;
        rows.collect::<Result<_>>()
    }

    /// One incident with its timeline and deliveries.
    pub fn incident(
        &self,
        org_id: i64,
        id: i64,
    ) -> Result<(Incident, Vec<Activity>, Vec<Delivery>)> {
        let conn = self.db.reader()?;
        let incident = conn
            .query_row(
                "SELECT i.id, i.rule_id, COALESCE(r.name, ''), p.slug, i.key, i.issue_id, i.status, i.severity, i.title, i.value, i.opened_at, i.closed_at
                 FROM incidents i JOIN projects p ON p.id = i.project_id LEFT JOIN alert_rules r ON r.id = i.rule_id
                 WHERE p.org_id = ?1 AND i.id = ?2",
                params![org_id, id],
                incident_of,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("incident {id}")))?;
        let mut stmt = conn.prepare(
            "SELECT at, kind, detail FROM incident_activity WHERE incident_id = ?1 ORDER BY at, id",
        )?;
        let activity = stmt
            .query_map([id], |r| {
                Ok(Activity {
                    at: r.get(0)?,
                    kind: r.get(1)?,
                    detail: r.get(2)?,
                })
            })?
            .collect::<Result<_>>()?;
        let deliveries = self.deliveries_where(&conn, "o.incident_id = ?1", id, 1000)?;
        Ok((incident, activity, deliveries))
    }

    /// Deliveries of an organisation, newest first.
    pub fn deliveries(&self, org_id: i64, limit: i64) -> Result<Vec<Delivery>> {
        let conn = self.db.reader()?;
        self.deliveries_where(&conn, "p.org_id = ?1", org_id, limit)
    }

    fn deliveries_where(
        &self,
        conn: &Conn,
        cond: &str,
        arg: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT o.id, o.incident_id, o.integration_id, o.provider, o.status, o.attempts, o.last_error, o.created_at, o.delivered_at
             FROM outbox o JOIN incidents i ON i.id = o.incident_id JOIN projects p ON p.id = i.project_id
             WHERE {cond} ORDER BY o.id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![arg, limit], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                incident_id: r.get(1)?,
                integration_id: r.get(2)?,
                provider: r.get(3)?,
                status: r.get(4)?,
                attempts: r.get(5)?,
                last_error: r.get(6)?,
                created_at: r.get(7)?,
                delivered_at: r.get(8)?,
            })
        })?;
        rows.collect::<Result<_>>()
    }
}

fn incident_of(r: &super::sql::Row<'_>) -> Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        rule_id: r.get(1)?,
        rule_name: r.get(2)?,
        project_slug: r.get(3)?,
        key: r.get(4)?,
        issue_id: r.get(5)?,
        status: r.get(6)?,
        severity: r.get(7)?,
        title: r.get(8)?,
        value: r.get(9)?,
        opened_at: r.get(10)?,
        closed_at: r.get(11)?,
    })
}
