//! What `lookout demo` asks the store before it starts the server.

use super::{Result, Store};

impl Store {
    /// Whether the data directory holds any issue yet, in any project. The demo warns that
    /// alerts on a *new* issue fire only once per data directory.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub fn has_issues(&self) -> Result<bool> {
        self.with_conn(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM issues", [], |r| r.get::<_, i64>(0))? > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_data_directory_has_no_issues() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_default_project().unwrap();
        assert!(!store.has_issues().unwrap());
    }
}
