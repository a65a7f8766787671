//! The agents overview: every agent of an organisation with its health, worst first.

use super::{ServiceError, blocking};
use crate::store::Store;
use crate::store::agents::AgentRow;

/// Every agent of organisation `org` as of `now` (ms), worst status first, then by id.
pub async fn overview(store: &Store, org: &str, now: i64) -> Result<Vec<AgentRow>, ServiceError> {
    let agents = store.agents();
    let org = org.to_owned();
    blocking(move || agents.list(&org, now)).await
}
