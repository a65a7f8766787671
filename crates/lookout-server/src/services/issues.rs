//! Issue search: the issue stream of a project, filtered by Sentry's search syntax, a page
//! at a time, for the API's issue list and the Issues page.

use super::{ServiceError, blocking};
use crate::store::Store;
use crate::store::read::{IssueRow, Term};

/// One page of a project's issue stream.
#[derive(Debug, Clone)]
pub struct IssuePage {
    /// The issues on this page, most recently seen first.
    pub issues: Vec<IssueRow>,
    /// Whether more follow.
    pub more: bool,
}

/// The issues of project `project_id` matching `terms` (seen since `since_ms`, when given),
/// `limit` from `offset` on.
pub async fn search(
    store: &Store,
    project_id: i64,
    terms: Vec<Term>,
    since_ms: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<IssuePage, ServiceError> {
    let reader = store.reader();
    let mut issues =
        blocking(move || reader.issues(project_id, &terms, since_ms, limit + 1, offset)).await?;
    let more = issues.len() as i64 > limit;
    issues.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(IssuePage { issues, more })
}
