//! Releases, their commits, refs and deploys; repositories. What `sentry-cli releases …`
//! drives through the API.

use super::db::Db;
use super::sql::{Conn, OptionalExtension, params};
use super::{Result, StoreError};
use std::sync::Arc;

/// A release as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// Row id.
    pub id: i64,
    /// Version string.
    pub version: String,
    /// URL, if given.
    pub url: Option<String>,
    /// When it was created (ms since the epoch).
    pub date_created: i64,
    /// When work on it started (ms since the epoch), if set.
    pub date_started: Option<i64>,
    /// ms (set by `finalize`).
    pub date_released: Option<i64>,
    /// (id, slug) of its projects.
    pub projects: Vec<(i64, String)>,
    /// Commits recorded.
    pub commit_count: i64,
    /// Newest commit id.
    pub last_commit: Option<String>,
    /// Deploys.
    pub deploy_count: i64,
    /// Latest deploy.
    pub last_deploy: Option<Deploy>,
    /// Issues first seen in this release.
    pub new_groups: i64,
}

/// A deploy of a release to an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    /// Row id.
    pub id: i64,
    /// Where it was deployed.
    pub environment: String,
    /// The deploy's name, if given.
    pub name: Option<String>,
    /// URL.
    pub url: Option<String>,
    /// When the deploy started (ms since the epoch), if known.
    pub date_started: Option<i64>,
    /// When the deploy finished (ms since the epoch).
    pub date_finished: i64,
}

/// What a client sends to record a deploy.
#[derive(Debug, Clone, Default)]
pub struct NewDeploy {
    /// Environment (required).
    pub environment: String,
    /// The deploy's name, if given.
    pub name: Option<String>,
    /// URL.
    pub url: Option<String>,
    /// When the deploy started (ms since the epoch), if known.
    pub date_started: Option<i64>,
    /// ms; now when absent.
    pub date_finished: Option<i64>,
}

/// A repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Repo {
    /// Row id.
    pub id: i64,
    /// Name (`owner/repo`).
    pub name: String,
    /// URL.
    pub url: Option<String>,
    /// Provider id (`git`, `github`, …).
    pub provider: String,
    /// When it was created (ms since the epoch).
    pub date_created: i64,
}

/// A commit sent by `set-commits` from local git history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// SHA.
    pub id: String,
    /// Repository name.
    pub repository: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Author.
    pub author_name: Option<String>,
    /// Author email.
    pub author_email: Option<String>,
    /// RFC 3339.
    pub timestamp: Option<String>,
    /// `[{path, type}]` as JSON.
    pub patch_set: Option<String>,
}

/// A ref sent by `set-commits --auto` / `--commit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// Repository name.
    pub repository: String,
    /// Commit.
    pub commit: String,
    /// Previous commit.
    pub previous_commit: Option<String>,
}

/// What `new` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// The release was created, or projects were added.
    Created,
    /// Nothing changed.
    Unchanged,
}

/// Fields of `PUT …/releases/{version}/`.
#[derive(Debug, Clone, Default)]
pub struct ReleaseUpdate {
    /// `dateReleased`.
    pub date_released: Option<i64>,
    /// `url`.
    pub url: Option<String>,
    /// `projects` to add.
    pub projects: Vec<String>,
    /// `commits` (replaces the list).
    pub commits: Option<Vec<Commit>>,
    /// `refs` (replaces the list).
    pub refs: Option<Vec<Ref>>,
}

/// Release storage.
#[derive(Debug, Clone)]
pub struct Releases {
    db: Arc<Db>,
}

fn org_id(conn: &Conn, org: &str) -> Result<i64> {
    conn.query_row("SELECT id FROM organizations WHERE slug = ?1", [org], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("organization {org}")))
}

fn project_ids(conn: &Conn, org_id: i64, slugs: &[String]) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for slug in slugs {
        let id: Option<i64> = conn
            .query_row(
                "SELECT id FROM projects WHERE org_id = ?1 AND (slug = ?2 OR CAST(id AS TEXT) = ?2)",
                params![org_id, slug],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => out.push(id),
            None => return Err(StoreError::Invalid("Invalid project slugs".into())),
        }
    }
    Ok(out)
}

impl Release {
    /// A release only seen in sessions, issues or agents, never created through the API:
    /// dated by when it was first seen, with `new_groups` issues first seen in it.
    fn seen_only(version: String, first_seen: i64, new_groups: i64) -> Release {
        Release {
            id: 0,
            version,
            url: None,
            date_created: first_seen,
            date_started: None,
            date_released: None,
            projects: Vec::new(),
            commit_count: 0,
            last_commit: None,
            deploy_count: 0,
            last_deploy: None,
            new_groups,
        }
    }
}

impl Releases {
    pub(crate) fn new(db: Arc<Db>) -> Releases {
        Releases { db }
    }

    fn load(&self, conn: &Conn, org_id: i64, version: &str) -> Result<Option<Release>> {
        type Row = (i64, Option<String>, i64, Option<i64>, Option<i64>);
        let row: Option<Row> = conn
            .query_row(
                "SELECT id, url, date_created, date_started, date_released FROM releases WHERE org_id = ?1 AND version = ?2",
                params![org_id, version],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((id, url, date_created, date_started, date_released)) = row else {
            return Ok(None);
        };
        let mut stmt = conn.prepare_cached(
            "SELECT p.id, p.slug FROM release_projects rp JOIN projects p ON p.id = rp.project_id WHERE rp.release_id = ?1 ORDER BY p.id",
        )?;
        let projects = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<(i64, String)>>>()?;
        let commit_count: i64 = conn.query_row(
            "SELECT COUNT(*) FROM release_commits WHERE release_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let last_commit: Option<String> = conn
            .query_row(
                "SELECT commit_id FROM release_commits WHERE release_id = ?1 ORDER BY position LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .or(conn
                .query_row("SELECT commit_id FROM release_refs WHERE release_id = ?1 LIMIT 1", [id], |r| r.get(0))
                .optional()?);
        let deploys = self.deploys_of(conn, id)?;
        let new_groups: i64 = conn.query_row(
            "SELECT COUNT(*) FROM issues WHERE first_release = ?1 AND project_id IN (SELECT project_id FROM release_projects WHERE release_id = ?2)",
            params![version, id],
            |r| r.get(0),
        )?;
        Ok(Some(Release {
            id,
            version: version.to_owned(),
            url,
            date_created,
            date_started,
            date_released,
            projects,
            commit_count,
            last_commit,
            deploy_count: deploys.len() as i64,
            last_deploy: deploys.into_iter().next(),
            new_groups,
        }))
    }

    fn deploys_of(&self, conn: &Conn, release_id: i64) -> Result<Vec<Deploy>> {
        let mut stmt = conn.prepare_cached(
            "SELECT id, environment, name, url, date_started, date_finished FROM deploys WHERE release_id = ?1 ORDER BY date_finished DESC, id DESC",
        )?;
        let rows = stmt.query_map([release_id], |r| {
            Ok(Deploy {
                id: r.get(0)?,
                environment: r.get(1)?,
                name: r.get(2)?,
                url: r.get(3)?,
                date_started: r.get(4)?,
                date_finished: r.get(5)?,
            })
        })?;
        rows.collect::<Result<Vec<_>>>()
    }

    /// `releases new`: create, or add projects; idempotent.
    pub fn upsert(
        &self,
        org: &str,
        version: &str,
        projects: &[String],
        url: Option<String>,
        date_started: Option<i64>,
        date_released: Option<i64>,
    ) -> Result<(Release, Upsert)> {
        if version.trim().is_empty()
            || version.len() > 250
            || version.contains(['\n', '/'])
            || version == "."
            || version == ".."
        {
            return Err(StoreError::Invalid("invalid release version".into()));
        }
        let conn = self.db.writer()?;
        let tx = conn.begin()?;
        let org_id = org_id(&tx, org)?;
        let ids = project_ids(&tx, org_id, projects)?;
        let now = chrono::Utc::now().timestamp_millis();
        let created = tx.execute(
            "INSERT INTO releases (org_id, version, url, date_created, date_started, date_released) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![org_id, version, url, now, date_started, date_released],
        )? > 0;
        let release_id: i64 = tx.query_row(
            "SELECT id FROM releases WHERE org_id = ?1 AND version = ?2",
            params![org_id, version],
            |r| r.get(0),
        )?;
        let mut added = false;
        for p in ids {
            added |= tx.execute(
                "INSERT INTO release_projects (release_id, project_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![release_id, p],
            )? > 0;
        }
        tx.commit()?;
        let release = self
            .load(&conn, org_id, version)?
            .ok_or_else(|| StoreError::NotFound(format!("release {version}")))?;
        Ok((
            release,
            if created || added {
                Upsert::Created
            } else {
                Upsert::Unchanged
            },
        ))
    }

    /// Every release of organisation `org` (as [`Releases::list`]) and also those seen in
    /// sessions, issues and agents but never created through the API, newest first.
    pub fn list_with_seen(&self, org: &str) -> Result<Vec<Release>> {
        let mut list = self.list(org, None)?;
        let conn = self.db.reader()?;
        let mut seen = conn.prepare_cached(
            "SELECT release, MIN(at) FROM (
                 SELECT release, MIN(minute) AS at FROM rollup_sessions GROUP BY release
                 UNION ALL SELECT first_release, MIN(first_seen) FROM issues WHERE first_release IS NOT NULL GROUP BY first_release
                 UNION ALL SELECT release, MIN(first_seen) FROM agents WHERE release IS NOT NULL GROUP BY release) AS firsts
             WHERE release != '' GROUP BY release",
        )?;
        let mut new_issues =
            conn.prepare_cached("SELECT COUNT(*) FROM issues WHERE first_release = ?1")?;
        let known: std::collections::HashSet<String> =
            list.iter().map(|r| r.version.clone()).collect();
        let rows = seen
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>>>()?;
        for (version, first) in rows {
            if known.contains(&version) {
                continue;
            }
            let new_groups: i64 = new_issues.query_row([&version], |r| r.get(0))?;
            list.push(Release::seen_only(version, first, new_groups));
        }
        list.sort_by_key(|r| std::cmp::Reverse(r.date_created));
        Ok(list)
    }

    /// `PUT …/releases/{version}/`: finalize, set commits or refs, add projects.
    pub fn update(&self, org: &str, version: &str, update: ReleaseUpdate) -> Result<Release> {
        let conn = self.db.writer()?;
        let tx = conn.begin()?;
        let org_id = org_id(&tx, org)?;
        let release_id: i64 = tx
            .query_row(
                "SELECT id FROM releases WHERE org_id = ?1 AND version = ?2",
                params![org_id, version],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("release {version}")))?;
        for p in project_ids(&tx, org_id, &update.projects)? {
            tx.execute(
                "INSERT INTO release_projects (release_id, project_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![release_id, p],
            )?;
        }
        if let Some(d) = update.date_released {
            tx.execute(
                "UPDATE releases SET date_released = ?2 WHERE id = ?1",
                params![release_id, d],
            )?;
        }
        if let Some(url) = update.url {
            tx.execute(
                "UPDATE releases SET url = ?2 WHERE id = ?1",
                params![release_id, url],
            )?;
        }
        if let Some(commits) = update.commits {
            tx.execute(
                "DELETE FROM release_commits WHERE release_id = ?1",
                [release_id],
            )?;
            for (i, c) in commits.iter().enumerate() {
                tx.execute(
                    "INSERT INTO release_commits (release_id, position, commit_id, repository, message, author_name, author_email, timestamp, patch_set)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![release_id, i as i64, c.id, c.repository, c.message, c.author_name, c.author_email, c.timestamp, c.patch_set],
                )?;
            }
        }
        if let Some(refs) = update.refs {
            let known: Vec<String> = {
                let mut stmt = tx.prepare("SELECT name FROM repos WHERE org_id = ?1")?;
                let rows = stmt.query_map([org_id], |r| r.get(0))?;
                rows.collect::<Result<Vec<_>>>()?
            };
            tx.execute(
                "DELETE FROM release_refs WHERE release_id = ?1",
                [release_id],
            )?;
            for r in &refs {
                if !known.contains(&r.repository) {
                    return Err(StoreError::Invalid(format!(
                        "Unknown repository {}",
                        r.repository
                    )));
                }
                tx.execute(
                    "INSERT INTO release_refs (release_id, repository, commit_id, previous_commit) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (release_id, repository) DO UPDATE SET commit_id = excluded.commit_id, previous_commit = excluded.previous_commit",
                    params![release_id, r.repository, r.commit, r.previous_commit],
                )?;
            }
        }
        tx.commit()?;
        self.load(&conn, org_id, version)?
            .ok_or_else(|| StoreError::NotFound(format!("release {version}")))
    }

    /// One release.
    pub fn get(&self, org: &str, version: &str) -> Result<Release> {
        let conn = self.db.reader()?;
        let org_id = org_id(&conn, org)?;
        self.load(&conn, org_id, version)?
            .ok_or_else(|| StoreError::NotFound(format!("release {version}")))
    }

    /// One release for its page: as [`Releases::get`], or, for a version seen only in
    /// sessions, issues or agents (never created through the API), a release with no
    /// deploys dated by when it was first seen. `NotFound` when nothing names it.
    pub fn get_or_seen(&self, org: &str, version: &str) -> Result<Release> {
        let conn = self.db.reader()?;
        let org_id = org_id(&conn, org)?;
        if let Some(r) = self.load(&conn, org_id, version)? {
            return Ok(r);
        }
        let first: Option<i64> = conn
            .prepare_cached(
                "SELECT MIN(at) FROM (
                     SELECT MIN(minute) AS at FROM rollup_sessions WHERE release = ?1
                     UNION ALL SELECT MIN(first_seen) FROM issues WHERE first_release = ?1
                     UNION ALL SELECT MIN(first_seen) FROM agents WHERE release = ?1) AS firsts",
            )?
            .query_row([version], |r| r.get(0))?;
        let Some(first) = first.filter(|_| !version.is_empty()) else {
            return Err(StoreError::NotFound(format!("release {version}")));
        };
        let new_groups: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM issues WHERE first_release = ?1")?
            .query_row([version], |r| r.get(0))?;
        Ok(Release::seen_only(version.to_owned(), first, new_groups))
    }

    /// Every deploy of `release` (as [`Releases::get_or_seen`] returns it), newest first;
    /// none for a release that was only seen.
    pub fn deploys_of_release(&self, release: &Release) -> Result<Vec<Deploy>> {
        if release.id == 0 {
            return Ok(Vec::new());
        }
        let conn = self.db.reader()?;
        self.deploys_of(&conn, release.id)
    }

    /// Releases of an organisation, or of one project, newest first.
    pub fn list(&self, org: &str, project: Option<&str>) -> Result<Vec<Release>> {
        let conn = self.db.reader()?;
        let org_id = org_id(&conn, org)?;
        let versions: Vec<String> = match project {
            Some(slug) => {
                let pid = project_ids(&conn, org_id, &[slug.to_owned()])
                    .map_err(|_| StoreError::NotFound(format!("project {org}/{slug}")))?[0];
                let mut stmt = conn.prepare(
                    "SELECT r.version FROM releases r JOIN release_projects rp ON rp.release_id = r.id WHERE r.org_id = ?1 AND rp.project_id = ?2 ORDER BY r.date_created DESC, r.id DESC",
                )?;
                let rows = stmt.query_map(params![org_id, pid], |r| r.get(0))?;
                rows.collect::<Result<Vec<_>>>()?
            }
            None => {
                let mut stmt = conn.prepare("SELECT version FROM releases WHERE org_id = ?1 ORDER BY date_created DESC, id DESC")?;
                let rows = stmt.query_map([org_id], |r| r.get(0))?;
                rows.collect::<Result<Vec<_>>>()?
            }
        };
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            if let Some(r) = self.load(&conn, org_id, &v)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The newest earlier release (of the same projects) that has commits.
    pub fn previous_with_commits(&self, org: &str, version: &str) -> Result<Option<Release>> {
        let conn = self.db.reader()?;
        let org_id = org_id(&conn, org)?;
        let current = self
            .load(&conn, org_id, version)?
            .ok_or_else(|| StoreError::NotFound(format!("release {version}")))?;
        let prev: Option<String> = conn
            .query_row(
                "SELECT r.version FROM releases r WHERE r.org_id = ?1 AND r.id <> ?2 AND r.date_created <= ?3
                   AND (EXISTS (SELECT 1 FROM release_commits c WHERE c.release_id = r.id) OR EXISTS (SELECT 1 FROM release_refs f WHERE f.release_id = r.id))
                 ORDER BY r.date_created DESC, r.id DESC LIMIT 1",
                params![org_id, current.id, current.date_created],
                |r| r.get(0),
            )
            .optional()?;
        match prev {
            Some(v) => self.load(&conn, org_id, &v),
            None => Ok(None),
        }
    }

    /// Record a deploy.
    pub fn create_deploy(&self, org: &str, version: &str, new: NewDeploy) -> Result<Deploy> {
        let NewDeploy {
            environment,
            name,
            url,
            date_started,
            date_finished,
        } = new;
        let environment = environment.as_str();
        if environment.trim().is_empty() {
            return Err(StoreError::Invalid("environment is required".into()));
        }
        let conn = self.db.writer()?;
        let org_id = org_id(&conn, org)?;
        let release = self
            .load(&conn, org_id, version)?
            .ok_or_else(|| StoreError::NotFound(format!("release {version}")))?;
        let finished = date_finished.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let id: i64 = conn.query_row(
            "INSERT INTO deploys (release_id, environment, name, url, date_started, date_finished) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            params![release.id, environment, name, url, date_started, finished],
            |r| r.get(0),
        )?;
        Ok(Deploy {
            id,
            environment: environment.to_owned(),
            name,
            url,
            date_started,
            date_finished: finished,
        })
    }

    /// Deploys of a release, newest first.
    pub fn deploys(&self, org: &str, version: &str) -> Result<Vec<Deploy>> {
        let conn = self.db.reader()?;
        let org_id = org_id(&conn, org)?;
        let release = self
            .load(&conn, org_id, version)?
            .ok_or_else(|| StoreError::NotFound(format!("release {version}")))?;
        self.deploys_of(&conn, release.id)
    }

    /// Repositories of an organisation.
    pub fn repos(&self, org: &str) -> Result<Vec<Repo>> {
        let conn = self.db.reader()?;
        let org_id = org_id(&conn, org)?;
        let mut stmt = conn.prepare(
            "SELECT id, name, url, provider, date_created FROM repos WHERE org_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([org_id], |r| {
            Ok(Repo {
                id: r.get(0)?,
                name: r.get(1)?,
                url: r.get(2)?,
                provider: r.get(3)?,
                date_created: r.get(4)?,
            })
        })?;
        rows.collect::<Result<Vec<_>>>()
    }

    /// Add a repository (so `set-commits --auto` and `--commit` can name it).
    pub fn create_repo(
        &self,
        org: &str,
        name: &str,
        url: Option<String>,
        provider: &str,
    ) -> Result<Repo> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid("repository name is required".into()));
        }
        let conn = self.db.writer()?;
        let org_id = org_id(&conn, org)?;
        let now = chrono::Utc::now().timestamp_millis();
        let id: Option<i64> = conn
            .query_row(
                "INSERT INTO repos (org_id, name, url, provider, date_created) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING RETURNING id",
                params![org_id, name, url, provider, now],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            return Err(StoreError::Exists(format!("repository {name}")));
        };
        Ok(Repo {
            id,
            name: name.to_owned(),
            url,
            provider: provider.to_owned(),
            date_created: now,
        })
    }

    /// Issues of a release's projects first seen within `minutes` after one of its deploys
    /// (any environment); `(issue id, first seen ms)`.
    pub fn issues_after_deploys(
        &self,
        org: &str,
        version: &str,
        minutes: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let conn = self.db.reader()?;
        let org_id = org_id(&conn, org)?;
        let release = self
            .load(&conn, org_id, version)?
            .ok_or_else(|| StoreError::NotFound(format!("release {version}")))?;
        let mut stmt = conn.prepare(
            "SELECT DISTINCT i.id, i.first_seen FROM issues i JOIN deploys d ON d.release_id = ?1
             WHERE i.project_id IN (SELECT project_id FROM release_projects WHERE release_id = ?1)
               AND i.first_seen >= d.date_finished AND i.first_seen < d.date_finished + ?2 * 60000
             ORDER BY i.first_seen",
        )?;
        let rows = stmt.query_map(params![release.id, minutes], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<Vec<_>>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_is_idempotent_and_checks_projects() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(dir.path()).unwrap();
        store.ensure_default_project().unwrap();
        let r = store.releases();
        let (rel, up) = r
            .upsert("default", "a@1", &["default".into()], None, None, None)
            .unwrap();
        assert_eq!((rel.version.as_str(), up), ("a@1", Upsert::Created));
        let (_, up) = r
            .upsert("default", "a@1", &["default".into()], None, None, None)
            .unwrap();
        assert_eq!(up, Upsert::Unchanged);
        assert!(matches!(
            r.upsert("default", "a@1", &["nope".into()], None, None, None),
            Err(StoreError::Invalid(_))
        ));
    }
}
