//! The real sentry-cli (installed by `scripts/test`) against the server: releases new,
//! finalize, list, info, set-commits (local history, --auto, --commit), deploys.

mod common;

use common::{TestServer, sentry_cli};
use serde_json::json;
use std::path::Path;
use std::process::Output;

struct Cli<'a> {
    s: &'a TestServer,
    token: String,
    home: tempfile::TempDir,
}

impl Cli<'_> {
    async fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        tokio::process::Command::new(sentry_cli())
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("SENTRY_URL", self.s.server.base_url())
            .env("SENTRY_AUTH_TOKEN", &self.token)
            .env("SENTRY_ORG", "default")
            .env("SENTRY_PROJECT", "default")
            .env("SENTRY_DISABLE_UPDATE_CHECK", "1")
            .output()
            .await
            .expect("sentry-cli runs")
    }

    async fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args).await;
        assert!(
            out.status.success(),
            "sentry-cli {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Agent Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Agent Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn repo_with_commits(n: usize) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    let mut shas = Vec::new();
    for i in 0..n {
        std::fs::write(
            dir.path().join(format!("strategy_{i}.rs")),
            format!("// v{i}\n"),
        )
        .unwrap();
        git(dir.path(), &["add", "."]);
        git(
            dir.path(),
            &["commit", "-q", "-m", &format!("tune strategy {i}")],
        );
        shas.push(git(dir.path(), &["rev-parse", "HEAD"]));
    }
    (dir, shas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_new_finalize_list_and_deploys() {
    let s = TestServer::start().await;
    let cli = Cli {
        s: &s,
        token: s.token(),
        home: tempfile::tempdir().unwrap(),
    };
    let cwd = tempfile::tempdir().unwrap();
    let token = cli.token.clone();

    cli.ok(
        cwd.path(),
        &["releases", "new", "vol-arb@1.0.0", "-p", "default"],
    )
    .await;
    // Idempotent: the second call is answered 208 and succeeds.
    cli.ok(
        cwd.path(),
        &["releases", "new", "vol-arb@1.0.0", "-p", "default"],
    )
    .await;
    let bad = cli
        .run(
            cwd.path(),
            &["releases", "new", "vol-arb@1.0.0", "-p", "no-such-project"],
        )
        .await;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("Invalid project slugs") || err.contains("projects"),
        "{err}"
    );

    let (status, r) = s
        .api(
            &token,
            "/api/0/organizations/default/releases/vol-arb@1.0.0/",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["version"], "vol-arb@1.0.0");
    assert!(r["dateReleased"].is_null());
    assert_eq!(r["projects"][0]["slug"], "default");

    cli.ok(cwd.path(), &["releases", "finalize", "vol-arb@1.0.0"])
        .await;
    let (_, r) = s
        .api(
            &token,
            "/api/0/organizations/default/releases/vol-arb@1.0.0/",
        )
        .await;
    assert!(r["dateReleased"].is_string(), "{r}");

    cli.ok(
        cwd.path(),
        &["releases", "new", "vol-arb@1.1.0", "-p", "default"],
    )
    .await;
    let list = cli.ok(cwd.path(), &["releases", "list"]).await;
    assert!(
        list.contains("vol-arb@1.0.0") && list.contains("vol-arb@1.1.0"),
        "{list}"
    );
    let list = cli
        .ok(cwd.path(), &["releases", "list", "-p", "default"])
        .await;
    assert!(list.contains("vol-arb@1.1.0"), "{list}");
    let info = cli
        .ok(cwd.path(), &["releases", "info", "vol-arb@1.1.0"])
        .await;
    assert!(info.contains("vol-arb@1.1.0"), "{info}");

    cli.ok(
        cwd.path(),
        &[
            "releases",
            "deploys",
            "vol-arb@1.1.0",
            "new",
            "-e",
            "paper",
            "-n",
            "canary",
        ],
    )
    .await;
    cli.ok(
        cwd.path(),
        &["deploys", "new", "-r", "vol-arb@1.1.0", "-e", "production"],
    )
    .await;
    let deploys = cli
        .ok(
            cwd.path(),
            &["releases", "deploys", "vol-arb@1.1.0", "list"],
        )
        .await;
    assert!(
        deploys.contains("paper") && deploys.contains("production"),
        "{deploys}"
    );
    let (_, r) = s
        .api(
            &token,
            "/api/0/organizations/default/releases/vol-arb@1.1.0/",
        )
        .await;
    assert_eq!(r["deployCount"], 2);
    assert_eq!(r["lastDeploy"]["environment"], "production");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_commits_from_local_history_auto_and_explicit() {
    let s = TestServer::start().await;
    let cli = Cli {
        s: &s,
        token: s.token(),
        home: tempfile::tempdir().unwrap(),
    };
    let token = cli.token.clone();
    let (repo, shas) = repo_with_commits(3);

    // No repositories configured: --auto falls back to the local git history.
    cli.ok(
        repo.path(),
        &["releases", "new", "agent@1", "-p", "default"],
    )
    .await;
    cli.ok(
        repo.path(),
        &["releases", "set-commits", "agent@1", "--auto"],
    )
    .await;
    let (_, r) = s
        .api(&token, "/api/0/organizations/default/releases/agent@1/")
        .await;
    assert_eq!(r["commitCount"], 3, "{r}");
    assert_eq!(r["lastCommit"]["id"], shas[2].as_str());

    // The next release sends only what came after the previous release's last commit.
    std::fs::write(repo.path().join("risk.rs"), "// tighter limits\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "tighten risk limits"]);
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    cli.ok(
        repo.path(),
        &["releases", "new", "agent@2", "-p", "default"],
    )
    .await;
    cli.ok(
        repo.path(),
        &["releases", "set-commits", "agent@2", "--auto"],
    )
    .await;
    let (_, r) = s
        .api(&token, "/api/0/organizations/default/releases/agent@2/")
        .await;
    assert_eq!(r["lastCommit"]["id"], head.as_str());
    assert_eq!(r["commitCount"], 1, "only the new commit: {r}");

    // With a repository configured, --commit and --auto send refs.
    s.api_client(&token)
        .post(
            "/api/0/organizations/default/repos/",
            &json!({"name": "acme/agent", "url": "https://github.com/acme/agent", "provider": "github"}),
        )
        .await
        .expect(201);
    cli.ok(
        repo.path(),
        &["releases", "new", "agent@3", "-p", "default"],
    )
    .await;
    cli.ok(
        repo.path(),
        &[
            "releases",
            "set-commits",
            "agent@3",
            "--commit",
            &format!("acme/agent@{}", shas[1]),
        ],
    )
    .await;
    let (_, r) = s
        .api(&token, "/api/0/organizations/default/releases/agent@3/")
        .await;
    assert_eq!(r["lastCommit"]["id"], shas[1].as_str(), "{r}");
    let unknown = cli
        .run(
            repo.path(),
            &[
                "releases",
                "set-commits",
                "agent@3",
                "--commit",
                "nope/nope@abc123",
            ],
        )
        .await;
    assert!(!unknown.status.success());

    git(
        repo.path(),
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/acme/agent.git",
        ],
    );
    cli.ok(
        repo.path(),
        &["releases", "new", "agent@4", "-p", "default"],
    )
    .await;
    cli.ok(
        repo.path(),
        &["releases", "set-commits", "agent@4", "--auto"],
    )
    .await;
    let (_, r) = s
        .api(&token, "/api/0/organizations/default/releases/agent@4/")
        .await;
    assert_eq!(r["lastCommit"]["id"], head.as_str(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_endpoints_need_the_releases_scope() {
    let s = TestServer::start().await;
    let (_, read_only) = s
        .server
        .store
        .create_token("ro", &["event:read".into()])
        .unwrap();
    let cli = Cli {
        s: &s,
        token: read_only,
        home: tempfile::tempdir().unwrap(),
    };
    let cwd = tempfile::tempdir().unwrap();
    let out = cli
        .run(cwd.path(), &["releases", "new", "x@1", "-p", "default"])
        .await;
    assert!(!out.status.success());
    let (status, body) = s
        .api(&cli.token, "/api/0/organizations/default/releases/")
        .await;
    assert_eq!(status, 403, "{body}");
}
