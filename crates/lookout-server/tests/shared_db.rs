//! What keeps work single when several nodes share one PostgreSQL, checked on the store of
//! two nodes at once: inbox claims, outbox claims and the leader lease.

mod common;

use common::{TestDb, test_config};
use lookout_server::Server;
use lookout_server::store::Store;
use lookout_server::store::alerting::Notification;

fn envelope(n: usize) -> Vec<u8> {
    let id = format!("{n:032x}");
    let p = format!("{{\"event_id\":\"{id}\",\"message\":\"claim {n}\"}}");
    format!(
        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{p}\n",
        p.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claim_disjoint_inbox_rows_and_each_retakes_only_its_own() {
    let db = TestDb::create_required();
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = test_config(dir.path(), Some(&db));
    // Envelopes stay in the shared inbox: the two readers below are the digesting nodes.
    config.digest_paused = true;
    let server = Server::builder(config).start().await.expect("server");
    let p = server.store.list_projects().expect("projects").remove(0);
    let client = reqwest::Client::new();
    for n in 0..10 {
        let r = client
            .post(format!("{}/api/{}/envelope/", server.base_url(), p.id))
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={}, sentry_version=7", p.public_key),
            )
            .body(envelope(n))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    let (a, b) = (
        Store::open_postgres(&db.url).expect("node a"),
        Store::open_postgres(&db.url).expect("node b"),
    );
    assert_ne!(a.node(), b.node());
    let (ra, rb) = (
        a.inbox_reader().expect("reader a"),
        b.inbox_reader().expect("reader b"),
    );
    let first: Vec<i64> = ra
        .after(0, 6)
        .expect("claim a")
        .iter()
        .map(|r| r.id)
        .collect();
    let second: Vec<i64> = rb
        .after(0, 100)
        .expect("claim b")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(first.len(), 6);
    assert_eq!(second.len(), 4, "b gets only what a did not claim");
    assert!(first.iter().all(|id| !second.contains(id)));
    assert!(first.windows(2).all(|w| w[0] < w[1]), "in inbox order");
    // Past its own claims, nothing is left for b while a's claims last.
    let b_last = *second.last().expect("b claimed rows");
    assert!(rb.after(b_last, 100).expect("claim b again").is_empty());
    // A node takes its own claims again (after a failed write) …
    assert_eq!(ra.after(0, 100).expect("a again").len(), 6);
    // … and every row still waits to be digested.
    assert_eq!(ra.count_after(0).expect("count"), 10);
    server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_taken_by_one_node_is_not_sent_by_another_until_its_claim_lapses() {
    let db = TestDb::create_required();
    let (a, b) = (
        Store::open_postgres(&db.url).expect("node a"),
        Store::open_postgres(&db.url).expect("node b"),
    );
    let now = chrono::Utc::now().timestamp_millis();
    a.alert_stage()
        .run(None, |tx| {
            tx.enqueue(&Notification {
                incident_id: 1,
                integration_id: 1,
                provider: "webhook",
                url: "http://127.0.0.1:9/hook",
                body: "{}",
                at: now,
            })
        })
        .expect("enqueue");
    let taken = a.outbox().due(now, 10).expect("a takes");
    assert_eq!(taken.len(), 1);
    assert!(
        b.outbox().due(now, 10).expect("b looks").is_empty(),
        "held by a while a delivers"
    );
    // A taker that died: the row is due again once its claim has lapsed.
    let later = now + lookout_server::store::outbox::CLAIM_MS + 1;
    let again = b.outbox().due(later, 10).expect("b takes over");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, taken[0].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_holds_the_lease_and_another_takes_it_when_released() {
    let db = TestDb::create_required();
    let (a, b) = (
        Store::open_postgres(&db.url).expect("node a"),
        Store::open_postgres(&db.url).expect("node b"),
    );
    let (la, lb) = (a.leases(), b.leases());
    assert!(la.try_hold("leader", 5_000).expect("a"));
    assert!(!lb.try_hold("leader", 5_000).expect("b"), "held by a");
    assert!(la.try_hold("leader", 5_000).expect("a renews"));
    assert_eq!(
        la.holder("leader").expect("holder").map(|(h, _)| h),
        Some(a.node().to_owned())
    );
    la.release("leader").expect("release");
    assert!(lb.try_hold("leader", 5_000).expect("b takes it"));
    assert!(!la.try_hold("leader", 5_000).expect("a"), "now held by b");
    // A lapsed lease is free for the taking: b's, made to expire at once.
    assert!(lb.try_hold("leader", -1).expect("b, already lapsed"));
    assert!(
        la.try_hold("leader", 5_000)
            .expect("a takes the lapsed lease")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let db = TestDb::create_required();
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || Store::open_postgres(&url).map(|s| s.node().to_owned()))
        })
        .collect();
    for o in opened {
        o.join()
            .expect("thread")
            .expect("every node opens the store");
    }
    let store = Store::open_postgres(&db.url).expect("store");
    assert!(store.ensure_default_project().expect("default").is_some());
    assert!(store.ensure_default_project().expect("again").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_feed_row_committed_late_by_another_node_is_still_evaluated() {
    let db = TestDb::create_required();
    let store = Store::open_postgres(&db.url).expect("store");
    let project = store
        .ensure_default_project()
        .expect("default")
        .expect("created")
        .id;
    let url = db.url.clone();
    // Node 1's digest has appended a feed row (numbered first) and not committed yet; node
    // 2's row, numbered after it, commits first.
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let (written, wait_written) = std::sync::mpsc::channel::<()>();
    let slow = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let mut tx = c.transaction().expect("begin");
        tx.execute(
            "INSERT INTO alert_feed (project_id, event) VALUES ($1, NULL)",
            &[&project],
        )
        .expect("slow feed row");
        written.send(()).expect("signal");
        release.recv().expect("released");
        tx.commit().expect("commit");
    });
    wait_written.recv().expect("slow row written");
    let url = db.url.clone();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        c.execute(
            "INSERT INTO alert_feed (project_id, event) VALUES ($1, NULL)",
            &[&project],
        )
        .expect("fast feed row");
    })
    .join()
    .expect("fast");
    // The alert stage evaluates what it sees: the later-numbered row.
    let stage = store.alert_stage();
    let first: Vec<i64> = stage
        .feed(stage.cursor().expect("cursor"), 100)
        .expect("feed")
        .iter()
        .map(|i| i.seq)
        .collect();
    assert_eq!(first.len(), 1);
    stage.run(Some(&first), |_| Ok(())).expect("step");
    // Node 1 commits: its row, numbered below the one evaluated, is evaluated next.
    hold.send(()).expect("release");
    slow.join().expect("slow");
    let next: Vec<i64> = stage
        .feed(stage.cursor().expect("cursor"), 100)
        .expect("feed")
        .iter()
        .map(|i| i.seq)
        .collect();
    assert_eq!(next.len(), 1, "the late row is not skipped");
    assert!(next[0] < first[0], "it was numbered first");
    stage.run(Some(&next), |_| Ok(())).expect("step");
    assert!(
        stage
            .feed(stage.cursor().expect("cursor"), 100)
            .expect("feed")
            .is_empty(),
        "each row evaluated once"
    );
}
