//! The demo's client of the server's REST API: the few endpoints it sets up and watches
//! (channels, alert rules, releases, monitors), with typed bodies, as an outside user of the
//! API would write it. The server's tests have their own, generic client with assertions
//! (`crates/lookout-server/tests/common`); this one never panics and words every failure as
//! a [`DemoError::Setup`].

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::DemoError;

/// The server's REST API with the demo's token.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A notification channel (`/integrations/`), as far as the demo reads it.
#[derive(Debug, Deserialize)]
struct Channel {
    id: String,
    #[serde(default)]
    name: String,
}

/// An issue or metric alert rule, as far as the demo reads it.
#[derive(Debug, Deserialize)]
struct Rule {
    id: String,
    #[serde(default)]
    preset: Option<String>,
}

/// A cron or heartbeat monitor with the status of each of its environments.
#[derive(Debug, Deserialize)]
pub(crate) struct Monitor {
    /// The monitor's slug (`…-heartbeat` for an agent's heartbeat).
    #[serde(default)]
    pub(crate) slug: String,
    #[serde(default)]
    environments: Vec<MonitorEnvironment>,
}

#[derive(Debug, Deserialize)]
struct MonitorEnvironment {
    #[serde(default)]
    status: Option<String>,
}

impl Monitor {
    /// The first failing status of any environment (`missed_checkin`, `error` or
    /// `timeout`), if one is failing.
    pub(crate) fn failing_status(&self) -> Option<&str> {
        self.environments
            .iter()
            .filter_map(|e| e.status.as_deref())
            .find(|s| matches!(*s, "missed_checkin" | "error" | "timeout"))
    }
}

const CHANNELS: &str = "/api/0/organizations/default/integrations/";

impl Api {
    /// A client of the server at `base` (`http://host:port`) with an API `token`.
    pub(crate) fn new(base: String, token: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
            token,
        }
    }

    /// One call; a non-2xx answer is an error that quotes the server's body.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, DemoError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req
            .send()
            .await
            .map_err(|e| DemoError::Setup(format!("{method} {path}: {e}")))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(DemoError::Setup(format!(
                "{method} {path}: {status}: {text}"
            )));
        }
        // A 204 has no body: read it as JSON null.
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text)
            .map_err(|e| DemoError::Setup(format!("{method} {path}: unexpected answer: {e}")))
    }

    /// Point the demo's channels at this run's receiver (replacing an earlier run's).
    pub(crate) async fn replace_channels(
        &self,
        receiver: &str,
        secret: &str,
    ) -> Result<(), DemoError> {
        let existing: Vec<Channel> = self.call(Method::GET, CHANNELS, None).await?;
        for channel in existing {
            if channel.name.starts_with("lookout-demo") {
                self.call::<Value>(Method::DELETE, &format!("{CHANNELS}{}/", channel.id), None)
                    .await?;
            }
        }
        self.call::<Value>(
            Method::POST,
            CHANNELS,
            Some(
                json!({"provider": "webhook", "name": "lookout-demo webhook",
                        "config": {"url": format!("{receiver}/webhook"), "secret": secret}}),
            ),
        )
        .await?;
        self.call::<Value>(
            Method::POST,
            CHANNELS,
            Some(json!({"provider": "slack", "name": "lookout-demo slack",
                        "config": {"url": format!("{receiver}/slack"), "channel": "#trading-alerts"}})),
        )
        .await?;
        Ok(())
    }

    /// Rule id → preset, for every rule of the default project.
    pub(crate) async fn presets(&self) -> Result<BTreeMap<String, String>, DemoError> {
        let mut out = BTreeMap::new();
        for path in [
            "/api/0/projects/default/default/rules/",
            "/api/0/organizations/default/alert-rules/",
        ] {
            let rules: Vec<Rule> = self.call(Method::GET, path, None).await?;
            for rule in rules {
                if let Some(preset) = rule.preset {
                    out.insert(rule.id, preset);
                }
            }
        }
        Ok(out)
    }

    /// Create a release and record its deploy, as `sentry-cli releases new` and
    /// `sentry-cli releases deploys new` do.
    pub(crate) async fn deploy(&self, version: &str, environment: &str) -> Result<(), DemoError> {
        self.call::<Value>(
            Method::POST,
            "/api/0/organizations/default/releases/",
            Some(json!({"version": version, "projects": ["default"]})),
        )
        .await?;
        self.call::<Value>(
            Method::POST,
            &format!("/api/0/organizations/default/releases/{version}/deploys/"),
            Some(json!({"environment": environment})),
        )
        .await?;
        Ok(())
    }

    /// The kill switch's rule: a critical trade failure of `agent` (a new `InsufficientMargin`
    /// issue of its) pauses it. Created once per data directory.
    pub(crate) async fn ensure_pause_rule(&self, agent: &str) -> Result<(), DemoError> {
        let name = format!("Critical trade failure pauses {agent}");
        let rules: Vec<Value> = self
            .call(Method::GET, "/api/0/projects/default/default/rules/", None)
            .await?;
        if rules.iter().any(|r| r["name"] == name.as_str()) {
            return Ok(());
        }
        self.call::<Value>(
            Method::POST,
            "/api/0/projects/default/default/rules/",
            Some(json!({"name": name, "actionMatch": "all", "filterMatch": "all", "frequency": 5,
                "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
                "filters": [
                    {"id": "sentry.rules.filters.tagged_event.TaggedEventFilter", "key": "agent_id", "match": "eq", "value": agent},
                    {"id": "sentry.rules.filters.event_attribute.EventAttributeFilter", "attribute": "exception.type", "match": "eq", "value": "InsufficientMargin"}
                ],
                "actions": [{"id": "lookout.rules.actions.PauseAgentAction"}]})),
        )
        .await?;
        Ok(())
    }

    /// The kill-switch state of `agent` (`trading`, `pausedReason`, `pausedBy`…), if listed.
    pub(crate) async fn agent_trading(&self, agent: &str) -> Result<Option<Value>, DemoError> {
        let agents: Vec<Value> = self
            .call(Method::GET, "/api/0/projects/default/default/agents/", None)
            .await?;
        Ok(agents.into_iter().find(|a| a["id"] == agent))
    }

    /// Resume `agent` through the REST API.
    pub(crate) async fn resume_agent(&self, agent: &str) -> Result<(), DemoError> {
        self.call::<Value>(
            Method::POST,
            &format!("/api/0/projects/default/default/agents/{agent}/resume/"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    /// Every monitor of the default organisation.
    pub(crate) async fn monitors(&self) -> Result<Vec<Monitor>, DemoError> {
        self.call(Method::GET, "/api/0/organizations/default/monitors/", None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_fails_when_any_environment_does() {
        let m: Monitor = serde_json::from_value(json!({
            "slug": "vol-arb-recalibrate",
            "environments": [{"status": "ok"}, {"status": "missed_checkin"}],
        }))
        .unwrap();
        assert_eq!(m.failing_status(), Some("missed_checkin"));
        let m: Monitor =
            serde_json::from_value(json!({"slug": "x", "environments": [{"status": "active"}]}))
                .unwrap();
        assert_eq!(m.failing_status(), None);
        let m: Monitor = serde_json::from_value(json!({"slug": "x"})).unwrap();
        assert_eq!(m.failing_status(), None);
    }
}
