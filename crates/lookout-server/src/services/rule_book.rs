//! The alert rule book: validating, merging and storing issue and metric alert rules, the
//! same for the REST API (Sentry's rule bodies) and the web UI's forms.

use super::{ServiceError, blocking};
use crate::alerts::rules;
use crate::store::alerts::StoredRule;
use crate::store::{Store, StoreError};
use serde_json::{Map, Value, json};

/// The fields of an issue rule body that are stored (what Sentry's serializer keeps).
pub const ISSUE_FIELDS: &[&str] = &[
    "name",
    "actionMatch",
    "filterMatch",
    "frequency",
    "conditions",
    "filters",
    "actions",
    "environment",
    "owner",
];

/// The fields of a metric rule body that are stored.
pub const METRIC_FIELDS: &[&str] = &[
    "name",
    "aggregate",
    "query",
    "timeWindow",
    "thresholdType",
    "triggers",
    "resolveThreshold",
    "environment",
    "dataset",
    "queryType",
    "eventTypes",
    "thresholdPeriod",
    "comparisonDelta",
    "owner",
];

/// How a save treats the fields the body leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Save {
    /// Keep the stored values of absent fields (the API's `PUT`, as Sentry's).
    Merge,
    /// The body is the whole rule (the UI's JSON editor).
    Replace,
}

/// The body as stored: the fields Sentry's serializer keeps.
pub fn keep(body: &Value, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for f in fields {
        if let Some(v) = body.get(*f) {
            out.insert((*f).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

fn merged(existing: &Value, body: &Value) -> Value {
    let mut merged = existing.clone();
    if let (Some(m), Some(b)) = (merged.as_object_mut(), body.as_object()) {
        for (k, v) in b {
            m.insert(k.clone(), v.clone());
        }
    }
    merged
}

fn object(body: &Value) -> Result<(), ServiceError> {
    if body.is_object() {
        Ok(())
    } else {
        Err(ServiceError::Invalid(
            "the body must be a JSON object".into(),
        ))
    }
}

/// Create (`id` = `None`) or update issue rule `id` of `org`/`project` from `body`.
pub async fn save_issue_rule(
    store: &Store,
    org: &str,
    project: &str,
    id: Option<i64>,
    body: Value,
    mode: Save,
) -> Result<StoredRule, ServiceError> {
    object(&body)?;
    let s = store.alerts();
    let (org, project) = (org.to_owned(), project.to_owned());
    blocking(move || {
        let (pid, oid) = s.project(&org, &project)?;
        let body = match id {
            Some(id) => {
                let existing = s.rule(oid, id, "issue")?;
                if existing.project_id != pid {
                    return Err(StoreError::NotFound(format!("rule {id}")));
                }
                match mode {
                    Save::Merge => merged(&existing.spec, &body),
                    Save::Replace => body,
                }
            }
            None => body,
        };
        let ids: Vec<i64> = s.integrations(oid)?.iter().map(|i| i.id).collect();
        match rules::parse_issue_rule(&body, &ids) {
            Err(e) => Ok(Err(e)),
            Ok(r) => {
                let spec = keep(&body, ISSUE_FIELDS);
                let rid = match id {
                    Some(id) => {
                        s.update_rule(id, pid, &r.name, &spec)?;
                        id
                    }
                    None => s.create_rule(pid, "issue", &r.name, &spec)?,
                };
                Ok(Ok(s.rule(oid, rid, "issue")?))
            }
        }
    })
    .await?
    .map_err(ServiceError::Fields)
}

/// Which project a metric rule body is for: the path's, or `projects: [slug]`.
fn body_project(body: &Value, path_project: Option<&str>) -> Result<String, ServiceError> {
    if let Some(p) = path_project {
        return Ok(p.to_owned());
    }
    match body
        .get("projects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([Value::String(slug)]) => Ok(slug.clone()),
        Some([_, _, ..]) => Err(ServiceError::Fields(
            json!({"projects": ["Only one project per alert rule."]}),
        )),
        _ => Err(ServiceError::Fields(
            json!({"projects": ["This field is required."]}),
        )),
    }
}

/// Create (`id` = `None`) or update metric rule `id` of `org` from `body`, merging absent
/// fields from the stored rule. `project` is the path's project, when the route has one;
/// otherwise the body's `projects`.
pub async fn save_metric_rule(
    store: &Store,
    org: &str,
    project: Option<&str>,
    id: Option<i64>,
    body: Value,
) -> Result<StoredRule, ServiceError> {
    object(&body)?;
    let stage = store.alert_stage();
    let s = store.alerts();
    let org = org.to_owned();
    let (merged, project_slug) = if let Some(id) = id {
        let (s2, org2) = (s.clone(), org.clone());
        let existing = blocking(move || {
            let oid = s2.org_id(&org2)?;
            s2.rule(oid, id, "metric")
        })
        .await?;
        if project.is_some_and(|p| p != existing.project_slug) {
            return Err(StoreError::NotFound(format!("rule {id}")).into());
        }
        let slug = match body.get("projects") {
            Some(_) if project.is_none() => body_project(&body, None)?,
            _ => existing.project_slug.clone(),
        };
        (merged(&existing.spec, &body), slug)
    } else {
        let slug = body_project(&body, project)?;
        (body, slug)
    };
    blocking(move || {
        let (pid, oid) = match s.project(&org, &project_slug) {
            Ok(p) => p,
            Err(StoreError::NotFound(_)) => {
                return Ok(Err(json!({"projects": ["Invalid project slugs"]})));
            }
            Err(e) => return Err(e),
        };
        let ids: Vec<i64> = s.integrations(oid)?.iter().map(|i| i.id).collect();
        match rules::parse_metric_rule(&merged, &ids) {
            Err(e) => Ok(Err(e)),
            Ok(r) => {
                let spec = keep(&merged, METRIC_FIELDS);
                let rid = match id {
                    Some(id) => {
                        s.update_rule(id, pid, &r.name, &spec)?;
                        id
                    }
                    None => s.create_rule(pid, "metric", &r.name, &spec)?,
                };
                // The digest counts the rule's tags from now on.
                crate::alerts::sync_rollup_keys(&stage)?;
                Ok(Ok(s.rule(oid, rid, "metric")?))
            }
        }
    })
    .await?
    .map_err(ServiceError::Fields)
}
