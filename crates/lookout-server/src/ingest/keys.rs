//! The client keys ingest authenticates with, cached.

use crate::http::error::ApiError;
use crate::store::{KeyInfo, Store};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Client keys, cached for a few seconds so that keys and projects created or disabled
/// from the CLI on the same data directory take effect without a restart.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (Option<KeyInfo>, Instant)>>,
}

const KEY_TTL: Duration = Duration::from_secs(5);

impl KeyCache {
    /// The key `key`, from the cache when it was read less than a few seconds ago.
    pub async fn get(&self, store: &Store, key: &str) -> Result<Option<KeyInfo>, ApiError> {
        if let Some((info, at)) = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            && at.elapsed() < KEY_TTL
        {
            return Ok(info.clone());
        }
        let store = store.clone();
        let owned = key.to_owned();
        let info = tokio::task::spawn_blocking(move || store.find_key(&owned))
            .await
            .map_err(|e| ApiError::Internal(format!("key lookup task failed: {e}")))?
            .map_err(ApiError::from)?;
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() > 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < KEY_TTL);
            if entries.len() > 10_000 {
                entries.clear();
            }
        }
        entries.insert(key.to_owned(), (info.clone(), Instant::now()));
        Ok(info)
    }
}
