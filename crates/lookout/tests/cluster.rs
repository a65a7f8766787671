//! Three `lookout serve` nodes on one PostgreSQL, as an operator runs them: SDK clients
//! spread over the nodes, the leader killed with SIGKILL in the middle of the load and
//! started again. Every envelope answered 200 is digested exactly once; an alert delivered
//! by the leader before its death is not delivered again by the next, and one that fires
//! after it is delivered once by the new leader; a cron monitor's miss is still detected
//! after the node that led (and ran the ticks) died.
//!
//! (A leader killed between sending a notification and recording it leaves that one to be
//! sent again once its claim lapses: at least once in that window, as the architecture says.
//! The kill here waits for the first delivery to be recorded, so the test is exact.)

#[path = "../../lookout-server/tests/common/mod.rs"]
mod common;

use common::TestDb;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running node.
struct Node {
    child: Child,
    base: String,
}

/// Start `lookout serve` on `url` with its own (unused) data directory; wait for its address.
async fn node(url: &str, data: &Path) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .env_remove("LOOKOUT_LISTEN")
        .env_remove("LOOKOUT_DATA_DIR")
        .env_remove("LOOKOUT_CONFIG")
        .env("LOOKOUT_LOG", "warn")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("lookout starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("node printed its address in time")
            .expect("read stdout")
            .expect("node exited before printing its address");
        if let Some(b) = line.strip_prefix("lookout listening on ") {
            break b.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Node { child, base }
}

/// Run `sql` on the test database (a thread of its own: the client blocks).
fn query(url: &str, sql: &str) -> Vec<postgres::Row> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.query(sql.as_str(), &[]).expect("query")
    })
    .join()
    .expect("query thread")
}

fn count(url: &str, sql: &str) -> i64 {
    query(url, sql)[0].get(0)
}

async fn health(client: &reqwest::Client, base: &str) -> Option<Value> {
    let r = client.get(format!("{base}/health")).send().await.ok()?;
    r.json().await.ok()
}

/// Poll `check` every 100 ms until it holds, or fail naming `what` after `limit`.
async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A local receiver of webhooks, counting POSTs by body.
#[derive(Clone, Default)]
struct Hooks {
    got: Arc<Mutex<Vec<Value>>>,
}

impl Hooks {
    async fn start(&self) -> String {
        let got = Arc::clone(&self.got);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let got = Arc::clone(&got);
                async move {
                    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    got.lock().expect("hooks").push(v);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn matching(&self, needle: &str) -> usize {
        self.got
            .lock()
            .expect("hooks")
            .iter()
            .filter(|v| v.to_string().contains(needle))
            .count()
    }
}

fn envelope(event_id: &str, message: &str) -> String {
    let p =
        json!({"event_id": event_id, "message": message, "level": "error", "platform": "python",
                   "tags": {"agent_id": "ag_cluster"}})
        .to_string();
    format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{p}\n",
        p.len()
    )
}

const CRON_SCRIPT: &str = r#"
import os, sentry_sdk
from sentry_sdk.crons import monitor
sentry_sdk.init(dsn=os.environ["DSN"], environment="paper")
config = {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1,
          "max_runtime": 1, "failure_issue_threshold": 1, "recovery_threshold": 1, "timezone": "UTC"}
@monitor(monitor_slug="cluster-recalibrate", monitor_config=config)
def recalibrate():
    return 42
recalibrate()
sentry_sdk.flush(timeout=10)
"#;

const SDK_SCRIPT: &str = r#"
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["DSN"], release="cluster@1", environment="paper")
node = os.environ["NODE"]
for i in range(20):
    sentry_sdk.capture_message(f"sdk {node} {i}", level="warning")
sentry_sdk.flush(timeout=30)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_one_truth_through_the_leaders_death() {
    let db = TestDb::create_required();
    let url = db.url.clone();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    // The first node creates the schema and the default project; two more join it.
    let mut nodes = vec![node(&url, dirs[0].path()).await];
    for d in &dirs[1..] {
        nodes.push(node(&url, d.path()).await);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    // Exactly one leader, and every node says it runs on PostgreSQL.
    let mut leaders = Vec::new();
    until(
        "one leader among the three",
        Duration::from_secs(15),
        async || {
            leaders.clear();
            for (i, b) in bases.iter().enumerate() {
                let h = health(&client, b).await.unwrap_or(Value::Null);
                assert_eq!(h["database"], "postgres", "{h}");
                if h["role"] == "leader" {
                    leaders.push(i);
                }
            }
            leaders.len() == 1
        },
    )
    .await;
    let leader = leaders[0];

    // A project key and an API token, straight from the shared store.
    let (key, project, token) = {
        let url = url.clone();
        std::thread::spawn(move || {
            let store = lookout_server::store::Store::open_postgres(&url).expect("store");
            let p = store.list_projects().expect("projects").remove(0);
            let (_, token) = store.create_token("cluster", &[]).expect("token");
            (p.public_key, p.id, token)
        })
        .join()
        .expect("store thread")
    };
    let dsn_of = |base: &str| {
        let rest = base.trim_start_matches("http://");
        format!("http://{key}@{rest}/{project}")
    };

    // A webhook channel and an issue rule on the load's issue, made through a follower.
    let hooks = Hooks::default();
    let hook_url = hooks.start().await;
    let follower = (leader + 1) % 3;
    let api = |path: &str| format!("{}{path}", bases[follower]);
    let channel: Value = client
        .post(api("/api/0/organizations/default/integrations/"))
        .bearer_auth(&token)
        .json(&json!({"provider": "webhook", "name": "cluster-hook", "config": {"url": hook_url}}))
        .send()
        .await
        .expect("channel")
        .json()
        .await
        .expect("channel json");
    let channel_id = channel["id"].as_str().expect("channel id").to_owned();
    let rule = client
        .post(api("/api/0/projects/default/default/rules/"))
        .bearer_auth(&token)
        .json(&json!({
            "name": "cluster storm", "actionMatch": "all", "filterMatch": "all", "frequency": 60,
            "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
            "filters": [{"id": "sentry.rules.filters.tagged_event.TaggedEventFilter", "key": "agent_id", "match": "eq", "value": "ag_cluster"}],
            "actions": [{"id": "sentry.integrations.slack.notify_action.SlackNotifyServiceAction", "workspace": channel_id, "channel": "#cluster"}]
        }))
        .send()
        .await
        .expect("rule");
    assert_eq!(rule.status(), 201, "{:?}", rule.text().await);

    // A cron monitor checks in once, through a third node, with the official SDK: due again
    // in a minute, missed a minute after that.
    let cron_node = (leader + 2) % 3;
    common::run_python(CRON_SCRIPT, &[("DSN", dsn_of(&bases[cron_node]))]).await;
    until(
        "the monitor's first check-in",
        Duration::from_secs(30),
        async || {
            count(
                &url,
                "SELECT COUNT(*) FROM monitor_environments e JOIN monitors m ON m.id = e.monitor_id
             WHERE m.slug = 'cluster-recalibrate' AND e.status = 'ok'",
            ) == 1
        },
    )
    .await;
    let checked_in = Instant::now();

    // The load: three senders, round-robin over the nodes, each envelope sent on until a
    // node answers 200 (as an SDK behind a load balancer would). The leader is killed a
    // third of the way through and started again.
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let live: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(bases.clone()));
    const PER_SENDER: usize = 300;
    let mut senders = Vec::new();
    for s in 0..3 {
        let (client, accepted, live) = (client.clone(), Arc::clone(&accepted), Arc::clone(&live));
        let key = key.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..PER_SENDER {
                let id = format!("{:016x}{:016x}", s as u64 + 1, i as u64);
                let body = envelope(&id, "cluster load storm");
                let mut attempt = s + i;
                loop {
                    let base = {
                        let l = live.lock().expect("live");
                        l[attempt % l.len()].clone()
                    };
                    attempt += 1;
                    let sent = client
                        .post(format!("{base}/api/{project}/envelope/"))
                        .header(
                            "x-sentry-auth",
                            format!("Sentry sentry_key={key}, sentry_version=7"),
                        )
                        .body(body.clone())
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status() == 200) {
                        accepted.lock().expect("accepted").insert(id);
                        break;
                    }
                }
            }
        }));
    }
    // Official SDK clients on the two nodes that stay up.
    let sdk: Vec<_> = [follower, cron_node]
        .into_iter()
        .map(|i| {
            let dsn = dsn_of(&bases[i]);
            tokio::spawn(async move {
                common::run_python(SDK_SCRIPT, &[("DSN", dsn), ("NODE", i.to_string())]).await
            })
        })
        .collect();

    until(
        "a third of the load, and the first alert delivered",
        Duration::from_secs(60),
        async || {
            accepted.lock().expect("accepted").len() >= PER_SENDER
                && hooks.matching("cluster load storm") == 1
                && count(
                    &url,
                    "SELECT COUNT(*) FROM outbox WHERE status <> 'delivered'",
                ) == 0
        },
    )
    .await;
    let killed = leader;
    let dead = bases[killed].clone();
    live.lock().expect("live").retain(|b| *b != dead);
    nodes[killed].child.start_kill().expect("SIGKILL");
    nodes[killed].child.wait().await.expect("killed node exits");
    let before_restart = accepted.lock().expect("accepted").len();

    // Another node takes the lead within 10 s of the death.
    let died = Instant::now();
    let mut new_leader = None;
    until("a new leader", Duration::from_secs(10), async || {
        for (i, b) in bases.iter().enumerate() {
            if i != killed
                && health(&client, b)
                    .await
                    .is_some_and(|h| h["role"] == "leader")
            {
                new_leader = Some(i);
                return true;
            }
        }
        false
    })
    .await;
    assert!(died.elapsed() < Duration::from_secs(10));

    // A new issue after the failover: the new leader alerts on it.
    let survivor = bases[(killed + 1) % 3].clone();
    let late = client
        .post(format!("{survivor}/api/{project}/envelope/"))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=7"),
        )
        .body(envelope(&"f".repeat(32), "cluster after failover"))
        .send()
        .await
        .expect("late event");
    assert_eq!(late.status(), 200);

    // The killed node comes back (a new process on the same database) and takes load again.
    nodes[killed] = node(&url, dirs[killed].path()).await;
    live.lock().expect("live").push(nodes[killed].base.clone());
    for s in senders {
        s.await.expect("sender");
    }
    for s in sdk {
        s.await.expect("sdk client");
    }
    let accepted = accepted.lock().expect("accepted").clone();
    assert_eq!(accepted.len(), 3 * PER_SENDER);
    assert!(
        before_restart < accepted.len(),
        "load went on after the kill"
    );

    // Every envelope answered 200 is digested, exactly once.
    until(
        "every accepted envelope digested",
        Duration::from_secs(60),
        async || {
            count(&url, "SELECT COUNT(*) FROM inbox WHERE digested_at IS NULL") == 0
                && count(
                    &url,
                    "SELECT COUNT(*) FROM events WHERE title = 'cluster load storm'",
                ) >= accepted.len() as i64
        },
    )
    .await;
    let stored: HashMap<String, i64> = query(
        &url,
        "SELECT event_id, COUNT(*) FROM events WHERE title = 'cluster load storm' GROUP BY event_id",
    )
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    for id in &accepted {
        assert_eq!(stored.get(id), Some(&1), "event {id} answered 200");
    }
    // Digested once: the issue counted each stored event once, no more.
    let (times_seen, events): (i64, i64) = {
        let r = query(
            &url,
            "SELECT i.times_seen, (SELECT COUNT(*) FROM events e WHERE e.issue_id = i.id)
             FROM issues i WHERE i.title = 'cluster load storm'",
        );
        assert_eq!(r.len(), 1, "one issue for the load");
        (r[0].get(0), r[0].get(1))
    };
    assert_eq!(times_seen, events);
    // The SDK clients' messages arrived through the surviving nodes.
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM events WHERE title LIKE 'sdk %'"),
        40
    );

    // Each alert fired once and was delivered once: the first by the leader that died, the
    // second by the one after it.
    until(
        "the alert after the failover delivered",
        Duration::from_secs(30),
        async || {
            count(
                &url,
                "SELECT COUNT(*) FROM outbox WHERE status <> 'delivered'",
            ) == 0
                && hooks.matching("cluster after failover") >= 1
        },
    )
    .await;
    let fired: Vec<String> = query(
        &url,
        "SELECT CONCAT(i.id, ' ', i.key, ' ', i.issue_id, ' ', i.status, ' ', o.id, ' ', o.integration_id)
         FROM outbox o JOIN incidents i ON i.id = o.incident_id
         JOIN alert_rules r ON r.id = i.rule_id WHERE r.name = 'cluster storm'",
    )
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert_eq!(
        fired.len(),
        2,
        "two incidents, one notification each: {fired:?}"
    );
    assert_eq!(hooks.matching("cluster load storm"), 1);
    assert_eq!(hooks.matching("cluster after failover"), 1);

    // The monitor's miss is found by the new leader's ticks (the old one was killed).
    let due = checked_in + Duration::from_secs(150);
    until(
        "the missed check-in",
        due.saturating_duration_since(Instant::now()) + Duration::from_secs(30),
        async || {
            count(
                &url,
                "SELECT COUNT(*) FROM monitor_environments e JOIN monitors m ON m.id = e.monitor_id
                 WHERE m.slug = 'cluster-recalibrate' AND e.status = 'missed_checkin'",
            ) == 1
        },
    )
    .await;
    let leader_now = new_leader.expect("a new leader");
    assert_ne!(leader_now, killed);
    drop(nodes);
    drop(db);
}
