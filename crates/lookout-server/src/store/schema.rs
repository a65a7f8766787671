//! Schema migrations, versioned in code. `PRAGMA user_version` records the version reached;
//! each migration runs in its own transaction, so a crash mid-way leaves the previous version.

use super::{Result, StoreError};
use rusqlite::Connection;

/// The migrations in order; index + 1 is the version each one produces.
const MIGRATIONS: &[&str] = &[
    // 1: organisations, projects, keys and tokens.
    "
    CREATE TABLE organizations (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        slug TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        created_at INTEGER NOT NULL,
        UNIQUE (org_id, slug)
    );
    CREATE TABLE project_keys (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        public_key TEXT NOT NULL UNIQUE,
        secret_key TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        rate_limit_per_minute INTEGER,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    );
    ",
    // 2: the digest's output: issues, events, tags, transactions and spans, rollups,
    // sessions, check-ins, client reports, rejections, and the digest cursor.
    "
    CREATE TABLE digest_cursor (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_inbox_id INTEGER NOT NULL
    );
    INSERT INTO digest_cursor (id, last_inbox_id) VALUES (1, 0);
    CREATE TABLE issues (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        short_seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        title TEXT NOT NULL,
        culprit TEXT NOT NULL DEFAULT '',
        level TEXT NOT NULL,
        kind TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'unresolved',
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        times_seen INTEGER NOT NULL DEFAULT 0,
        user_count INTEGER NOT NULL DEFAULT 0,
        first_release TEXT,
        resolved_at INTEGER,
        regressed_at INTEGER,
        UNIQUE (project_id, hash),
        UNIQUE (project_id, short_seq)
    );
    CREATE INDEX issues_last_seen ON issues (project_id, last_seen);
    CREATE TABLE issue_users (
        issue_id INTEGER NOT NULL,
        user_key TEXT NOT NULL,
        PRIMARY KEY (issue_id, user_key)
    ) WITHOUT ROWID;
    CREATE TABLE issue_tags (
        issue_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        times_seen INTEGER NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (issue_id, key, value)
    ) WITHOUT ROWID;
    -- Every stored error/message event and transaction; payload is the normalised,
    -- scrubbed JSON, zstd-compressed.
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        issue_id INTEGER,
        kind TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        level TEXT NOT NULL,
        release TEXT,
        environment TEXT,
        transaction_name TEXT,
        trace_id TEXT,
        user_key TEXT,
        title TEXT NOT NULL,
        payload BLOB NOT NULL,
        UNIQUE (project_id, event_id)
    );
    CREATE INDEX events_issue ON events (issue_id, timestamp);
    CREATE INDEX events_project_time ON events (project_id, timestamp);
    CREATE INDEX events_trace ON events (trace_id);
    CREATE TABLE event_tags (
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        event_row INTEGER NOT NULL,
        PRIMARY KEY (key, value, event_row)
    ) WITHOUT ROWID;
    CREATE INDEX event_tags_row ON event_tags (event_row);
    CREATE TABLE spans (
        event_row INTEGER NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT,
        op TEXT NOT NULL,
        description TEXT,
        status TEXT,
        start_ms REAL NOT NULL,
        duration_ms REAL NOT NULL,
        data TEXT,
        PRIMARY KEY (event_row, span_id)
    ) WITHOUT ROWID;
    CREATE INDEX spans_trace ON spans (trace_id);
    -- Per-minute event counts.
    CREATE TABLE rollup_events (
        project_id INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        issue_id INTEGER NOT NULL,
        release TEXT NOT NULL,
        environment TEXT NOT NULL,
        level TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (project_id, minute, issue_id, release, environment, level)
    ) WITHOUT ROWID;
    -- Per-minute transaction and span latency: count, errors, a mergeable sketch.
    -- kind 'transaction' rows are keyed by transaction name and op; kind 'span' rows by
    -- span op (name = the span op too).
    CREATE TABLE rollup_latency (
        project_id INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        op TEXT NOT NULL,
        count INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        sketch BLOB NOT NULL,
        PRIMARY KEY (project_id, kind, name, op, minute)
    ) WITHOUT ROWID;
    -- Release health, per minute of session start.
    CREATE TABLE rollup_sessions (
        project_id INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        release TEXT NOT NULL,
        environment TEXT NOT NULL,
        init INTEGER NOT NULL DEFAULT 0,
        exited INTEGER NOT NULL DEFAULT 0,
        errored INTEGER NOT NULL DEFAULT 0,
        abnormal INTEGER NOT NULL DEFAULT 0,
        crashed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, release, environment, minute)
    ) WITHOUT ROWID;
    -- Distinct session users per release and environment, with their worst state.
    CREATE TABLE session_users (
        project_id INTEGER NOT NULL,
        release TEXT NOT NULL,
        environment TEXT NOT NULL,
        did TEXT NOT NULL,
        errored INTEGER NOT NULL DEFAULT 0,
        crashed INTEGER NOT NULL DEFAULT 0,
        abnormal INTEGER NOT NULL DEFAULT 0,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (project_id, release, environment, did)
    ) WITHOUT ROWID;
    -- Individual sessions (for per-agent state and errored-session counting).
    CREATE TABLE sessions (
        project_id INTEGER NOT NULL,
        sid TEXT NOT NULL,
        did TEXT,
        release TEXT NOT NULL,
        environment TEXT NOT NULL,
        status TEXT NOT NULL,
        errors INTEGER NOT NULL,
        started INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        duration REAL,
        counted_errored INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, sid)
    ) WITHOUT ROWID;
    CREATE TABLE check_ins (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        check_in_id TEXT NOT NULL,
        monitor_slug TEXT NOT NULL,
        environment TEXT NOT NULL,
        status TEXT NOT NULL,
        duration_ms REAL,
        release TEXT,
        monitor_config TEXT,
        received_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX check_ins_monitor ON check_ins (project_id, monitor_slug, environment, received_at);
    CREATE TABLE client_reports (
        project_id INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        reason TEXT NOT NULL,
        category TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        PRIMARY KEY (project_id, minute, reason, category)
    ) WITHOUT ROWID;
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        timestamp INTEGER NOT NULL,
        level TEXT NOT NULL,
        body TEXT NOT NULL,
        trace_id TEXT,
        attributes TEXT
    );
    CREATE INDEX logs_time ON logs (project_id, timestamp);
    -- Items the digest refused, one row each, with the reason.
    CREATE TABLE digest_rejections (
        id INTEGER PRIMARY KEY,
        inbox_id INTEGER NOT NULL,
        project_id INTEGER NOT NULL,
        item_type TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    ",
    // 3: releases, their projects, commits, refs, deploys; repositories.
    "
    CREATE TABLE releases (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        version TEXT NOT NULL,
        url TEXT,
        date_created INTEGER NOT NULL,
        date_started INTEGER,
        date_released INTEGER,
        UNIQUE (org_id, version)
    );
    CREATE TABLE release_projects (
        release_id INTEGER NOT NULL REFERENCES releases(id),
        project_id INTEGER NOT NULL REFERENCES projects(id),
        PRIMARY KEY (release_id, project_id)
    ) WITHOUT ROWID;
    CREATE TABLE repos (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        name TEXT NOT NULL,
        url TEXT,
        provider TEXT NOT NULL DEFAULT 'git',
        date_created INTEGER NOT NULL,
        UNIQUE (org_id, name)
    );
    CREATE TABLE release_commits (
        release_id INTEGER NOT NULL REFERENCES releases(id),
        position INTEGER NOT NULL,
        commit_id TEXT NOT NULL,
        repository TEXT,
        message TEXT,
        author_name TEXT,
        author_email TEXT,
        timestamp TEXT,
        patch_set TEXT,
        PRIMARY KEY (release_id, position)
    ) WITHOUT ROWID;
    CREATE TABLE release_refs (
        release_id INTEGER NOT NULL REFERENCES releases(id),
        repository TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        previous_commit TEXT,
        PRIMARY KEY (release_id, repository)
    ) WITHOUT ROWID;
    CREATE TABLE deploys (
        id INTEGER PRIMARY KEY,
        release_id INTEGER NOT NULL REFERENCES releases(id),
        environment TEXT NOT NULL,
        name TEXT,
        url TEXT,
        date_started INTEGER,
        date_finished INTEGER NOT NULL
    );
    CREATE INDEX deploys_release ON deploys (release_id, date_finished);
    CREATE INDEX issues_first_release ON issues (project_id, first_release);
    ",
    // 4: cron and heartbeat monitors.
    "
    CREATE TABLE monitors (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        slug TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        config TEXT NOT NULL,
        date_created INTEGER NOT NULL,
        UNIQUE (project_id, slug)
    );
    -- One state per monitor and environment.
    CREATE TABLE monitor_environments (
        monitor_id INTEGER NOT NULL,
        environment TEXT NOT NULL,
        status TEXT NOT NULL,
        last_checkin INTEGER,
        next_checkin INTEGER,
        next_checkin_latest INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        successes INTEGER NOT NULL DEFAULT 0,
        issue_id INTEGER,
        PRIMARY KEY (monitor_id, environment)
    ) WITHOUT ROWID;
    CREATE INDEX monitor_environments_due ON monitor_environments (next_checkin_latest);
    CREATE INDEX check_ins_status ON check_ins (status);
    ",
    // 5: alert rules, their state, incidents and the notification outbox.
    "
    -- Notification channels of an organisation (Slack, PagerDuty, webhook, Telegram).
    CREATE TABLE integrations (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        provider TEXT NOT NULL,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        date_created INTEGER NOT NULL
    );
    -- Issue alerts (kind 'issue') and metric alerts (kind 'metric'), as Sentry-shaped JSON.
    CREATE TABLE alert_rules (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        preset TEXT,
        status TEXT NOT NULL DEFAULT 'active',
        date_created INTEGER NOT NULL,
        date_modified INTEGER NOT NULL
    );
    CREATE INDEX alert_rules_project ON alert_rules (project_id, kind);
    CREATE TABLE alert_presets_installed (
        project_id INTEGER PRIMARY KEY
    );
    -- The state of a metric rule, per key ('' for the rule as a whole, an agent id for
    -- per-agent rules): what was last notified.
    CREATE TABLE alert_state (
        rule_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        state TEXT NOT NULL,
        value REAL,
        since INTEGER NOT NULL,
        incident_id INTEGER,
        PRIMARY KEY (rule_id, key)
    ) WITHOUT ROWID;
    -- When an issue rule last acted for an issue (the action interval).
    CREATE TABLE alert_issue_fires (
        rule_id INTEGER NOT NULL,
        issue_id INTEGER NOT NULL,
        last_fired INTEGER NOT NULL,
        PRIMARY KEY (rule_id, issue_id)
    ) WITHOUT ROWID;
    -- Fired alerts: metric incidents (open until resolved) and issue-alert firings.
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        rule_id INTEGER NOT NULL,
        project_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        issue_id INTEGER,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        value REAL,
        opened_at INTEGER NOT NULL,
        closed_at INTEGER
    );
    CREATE INDEX incidents_rule ON incidents (rule_id, opened_at);
    CREATE INDEX incidents_project ON incidents (project_id, opened_at);
    CREATE TABLE incident_activity (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX incident_activity_incident ON incident_activity (incident_id, at);
    -- Notifications to deliver, written in the transaction that changed an alert's state.
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL,
        integration_id INTEGER NOT NULL,
        provider TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        delivered_at INTEGER,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    CREATE INDEX outbox_incident ON outbox (incident_id);
    CREATE TABLE delivery_attempts (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL,
        at INTEGER NOT NULL,
        status_code INTEGER,
        error TEXT,
        duration_ms REAL NOT NULL
    );
    CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id);
    ",
    // 6: the web UI: users and their sessions; agents as the digest sees them, with
    // per-minute counts and latency per agent; indexes the UI's reads need.
    "
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE ui_sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE agents (
        project_id INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        strategy TEXT,
        release TEXT,
        environment TEXT,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        last_error INTEGER,
        session_status TEXT,
        session_updated INTEGER,
        PRIMARY KEY (project_id, agent_id)
    ) WITHOUT ROWID;
    CREATE TABLE agent_minutes (
        project_id INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        minute INTEGER NOT NULL,
        events INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        cycles INTEGER NOT NULL DEFAULT 0,
        failed_cycles INTEGER NOT NULL DEFAULT 0,
        sketch BLOB,
        PRIMARY KEY (project_id, agent_id, minute)
    ) WITHOUT ROWID;
    CREATE INDEX issue_tags_value ON issue_tags (key, value);
    CREATE INDEX sessions_did ON sessions (project_id, did, started);
    CREATE INDEX rollup_events_issue ON rollup_events (issue_id, minute);
    CREATE INDEX events_transactions ON events (project_id, timestamp) WHERE kind = 'transaction';
    ",
    // The alert stage runs after the digest's transaction, not inside it: the digest appends
    // what it stored to a feed, and the alert stage consumes the feed behind its own cursor.
    "
    CREATE TABLE alert_feed (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        event BLOB
    );
    CREATE TABLE alert_cursor (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL
    );
    INSERT INTO alert_cursor (id, last_seq) VALUES (1, 0);
    CREATE TABLE rollup_tags (
        project_id INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        kind TEXT NOT NULL,
        environment TEXT NOT NULL,
        op TEXT NOT NULL,
        level TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (project_id, key, minute, kind, environment, op, level, value)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_users (
        project_id INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        kind TEXT NOT NULL,
        environment TEXT NOT NULL,
        user_key TEXT NOT NULL,
        PRIMARY KEY (project_id, minute, kind, environment, user_key)
    ) WITHOUT ROWID;
    CREATE TABLE rollup_keys (
        project_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (project_id, key)
    ) WITHOUT ROWID;
    ",
    // Per-project settings: in-app include and exclude prefixes (JSON arrays of strings).
    "
    CREATE TABLE project_settings (
        project_id INTEGER PRIMARY KEY REFERENCES projects(id),
        in_app_include TEXT NOT NULL DEFAULT '[]',
        in_app_exclude TEXT NOT NULL DEFAULT '[]'
    );
    -- What the server last said about itself (the base URL SDKs reach it at).
    CREATE TABLE server_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    ",
    // Failed web UI logins per account and per client address, for throttling.
    "
    CREATE TABLE login_failures (
        subject TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        locked_until INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // The agent each session belongs to: the `agent_id` tag of the events it travelled
    // with, else the agent its distinct id names (the agent library sets the user id to the
    // agent id). Existing sessions take the agent their distinct id names.
    "
    ALTER TABLE sessions ADD COLUMN agent TEXT;
    UPDATE sessions SET agent = CASE WHEN did LIKE 'id:%' THEN substr(did, 4) ELSE did END
     WHERE did IS NOT NULL;
    CREATE INDEX sessions_agent ON sessions (project_id, agent, started);
    ",
    // Agent health (issue 22): per agent and minute, transactions and failed ones (the error
    // rate's denominator and numerator) and order pipelines a risk check rejected; per agent,
    // op and minute, the latency of its order pipelines' stages.
    "
    ALTER TABLE agent_minutes ADD COLUMN transactions INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE agent_minutes ADD COLUMN failed_transactions INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE agent_minutes ADD COLUMN risk_rejected INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE agent_stage_minutes (
        project_id INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        op TEXT NOT NULL,
        minute INTEGER NOT NULL,
        count INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        sketch BLOB NOT NULL,
        PRIMARY KEY (project_id, agent_id, op, minute)
    ) WITHOUT ROWID;
    CREATE INDEX agent_stage_minutes_time ON agent_stage_minutes (minute);
    ",
    // Kill switch (issue 24): each agent's trading state and the audit of its changes.
    "
    CREATE TABLE agent_trading (
        project_id INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        actor_kind TEXT,
        actor_id TEXT,
        actor_name TEXT,
        since INTEGER NOT NULL,
        until INTEGER,
        origin TEXT,
        version INTEGER NOT NULL,
        PRIMARY KEY (project_id, agent_id)
    );
    CREATE TABLE agent_trading_changes (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        reason TEXT,
        actor_kind TEXT NOT NULL,
        actor_id TEXT,
        actor_name TEXT NOT NULL,
        until INTEGER,
        version INTEGER NOT NULL
    );
    CREATE INDEX agent_trading_changes_agent ON agent_trading_changes (project_id, agent_id, at);
    ",
    "
    -- Profiles (issue 26): one row per profile, compressed, with the summary aggregation
    -- reads, and per-minute function self times.
    CREATE TABLE profiles (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        profile_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        event_id TEXT,
        trace_id TEXT,
        profiler_id TEXT,
        transaction_name TEXT,
        platform TEXT NOT NULL,
        release TEXT,
        environment TEXT,
        start_ms INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        payload BLOB NOT NULL,
        summary BLOB NOT NULL,
        UNIQUE (project_id, profile_id)
    );
    CREATE INDEX profiles_event ON profiles (project_id, event_id);
    CREATE INDEX profiles_trace ON profiles (trace_id);
    CREATE INDEX profiles_transaction ON profiles (project_id, transaction_name, start_ms);
    CREATE INDEX profiles_time ON profiles (start_ms);
    CREATE TABLE profile_functions (
        project_id INTEGER NOT NULL,
        transaction_name TEXT NOT NULL,
        span_op TEXT NOT NULL,
        minute INTEGER NOT NULL,
        function_name TEXT NOT NULL,
        module TEXT NOT NULL,
        in_app INTEGER NOT NULL,
        self_ns INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        PRIMARY KEY (project_id, transaction_name, span_op, minute, function_name, module)
    ) WITHOUT ROWID;
    CREATE INDEX profile_functions_time ON profile_functions (minute);
    ",
];

/// Bring the main database up to date.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_with(conn, MIGRATIONS)
}

/// Apply `migrations` (index + 1 = version) that the database has not seen yet.
pub(crate) fn migrate_with(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let latest = migrations.len() as i64;
    if current > latest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: latest,
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut c = Connection::open(&path).unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        c.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut c),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
