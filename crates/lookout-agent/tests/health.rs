//! Agent sessions, heartbeats, the watchdog and cron monitors.

mod common;

use std::time::Duration;

use common::{Agent, capture, check_ins, events, options, sessions};
use lookout_agent::cron::{CronMonitor, MonitorError};
use lookout_agent::health::{AgentSession, HealthOptions};
use sentry::protocol::{MonitorCheckInStatus, MonitorIntervalUnit, MonitorSchedule, SessionStatus};

#[test]
fn a_session_starts_ok_for_the_agent_and_ends_exited() {
    let agent = Agent::new(options("ag_sess"));
    agent.run(|| {
        let session = AgentSession::start("ag_sess", HealthOptions::new().heartbeats(false));
        session.tick();
        sentry::capture_message("one handled error", sentry::Level::Error);
        session.end();
    });
    let envelopes = agent.envelopes();
    let updates = sessions(&envelopes);
    assert!(!updates.is_empty());
    let first = &updates[0];
    assert!(first.init);
    assert_eq!(first.distinct_id.as_deref(), Some("ag_sess"));
    assert_eq!(first.attributes.release, "test-bot@1.0.0");
    assert_eq!(first.attributes.environment.as_deref(), Some("test"));
    let last = updates.last().expect("an update");
    assert_eq!(last.status, SessionStatus::Exited);
    assert_eq!(last.errors, 1);
    assert!(updates.iter().all(|u| u.session_id == first.session_id));
}

#[test]
fn a_session_begun_without_an_id_belongs_to_the_agent_the_client_was_set_up_for() {
    let agent = Agent::new(options("ag_begin"));
    let slug = agent.run(|| {
        let session = AgentSession::begin(HealthOptions::new().heartbeats(false));
        let slug = session.monitor_slug().to_owned();
        session.end();
        slug
    });
    assert_eq!(slug, "agent-ag_begin-heartbeat");
    // The id can still be given, overriding the client's.
    let other = agent.run(|| {
        let session = AgentSession::start("ag_other", HealthOptions::new().heartbeats(false));
        let slug = session.monitor_slug().to_owned();
        session.end();
        slug
    });
    assert_eq!(other, "agent-ag_other-heartbeat");
}

#[test]
fn heartbeats_upsert_the_agent_monitor_while_the_loop_ticks() {
    let agent = Agent::new(options("ag_hb"));
    let session = agent.run(|| {
        AgentSession::start(
            "ag_hb",
            HealthOptions::new()
                .heartbeat_interval(Duration::from_millis(20))
                .checkin_margin_minutes(2)
                .watchdog_timeout(Duration::from_secs(30)),
        )
    });
    assert_eq!(session.monitor_slug(), "agent-ag_hb-heartbeat");
    let envelopes = agent.envelopes_until(|all| {
        session.tick();
        check_ins(all).len() >= 3
    });
    let beats = check_ins(&envelopes);
    for beat in &beats {
        assert_eq!(beat.monitor_slug, "agent-ag_hb-heartbeat");
        assert_eq!(beat.status, MonitorCheckInStatus::Ok);
        assert_eq!(beat.environment.as_deref(), Some("test"));
        let config = beat.monitor_config.as_ref().expect("monitor_config upsert");
        assert_eq!(
            config.schedule,
            MonitorSchedule::Interval {
                value: 1,
                unit: MonitorIntervalUnit::Minute
            }
        );
        assert_eq!(config.checkin_margin, Some(2));
    }
    assert_eq!(session.stalls(), 0);
    drop(session);
}

#[test]
fn the_watchdog_reports_a_hung_loop_once_and_ends_the_session_abnormal() {
    let agent = Agent::new(options("ag_wd"));
    let session = agent.run(|| {
        AgentSession::start(
            "ag_wd",
            HealthOptions::new()
                .heartbeat_interval(Duration::from_millis(10))
                .watchdog_timeout(Duration::from_millis(60)),
        )
    });
    // The loop never ticks: it is hung from the start.
    let envelopes = agent.envelopes_until(|all| {
        check_ins(all)
            .iter()
            .any(|c| c.status == MonitorCheckInStatus::Error)
            && sessions(all)
                .iter()
                .any(|s| s.status == SessionStatus::Abnormal)
    });
    assert_eq!(session.stalls(), 1);
    let stalled: Vec<_> = events(&envelopes)
        .into_iter()
        .filter(|e| e.exception.values.iter().any(|x| x.ty == "AgentStalled"))
        .collect();
    assert_eq!(stalled.len(), 1, "one event per stall");
    assert_eq!(stalled[0].tags["agent_id"], "ag_wd");
    let errors = check_ins(&envelopes)
        .iter()
        .filter(|c| c.status == MonitorCheckInStatus::Error)
        .count();
    assert_eq!(errors, 1);
    // While hung, no ok heartbeat follows the error.
    let after_error = check_ins(&envelopes)
        .iter()
        .skip_while(|c| c.status != MonitorCheckInStatus::Error)
        .skip(1)
        .count();
    assert_eq!(after_error, 0);
    let abnormal = sessions(&envelopes)
        .into_iter()
        .find(|s| s.status == SessionStatus::Abnormal)
        .expect("abnormal session");
    // The loop recovers: heartbeats resume, in a new session that ends exited.
    let resumed = agent.envelopes_until(|all| {
        session.tick();
        check_ins(all)
            .iter()
            .any(|c| c.status == MonitorCheckInStatus::Ok)
    });
    assert!(!resumed.is_empty());
    assert_eq!(session.stalls(), 1);
    session.end();
    let ended = sessions(&agent.envelopes());
    let last = ended.last().expect("the new session's update");
    assert_eq!(last.status, SessionStatus::Exited);
    assert_ne!(last.session_id, abnormal.session_id);
}

#[test]
fn a_cron_job_checks_in_progress_then_ok_with_one_id_duration_and_config() {
    let monitor = CronMonitor::crontab("rebalance", "*/15 * * * *")
        .expect("valid")
        .checkin_margin(2)
        .max_runtime(10)
        .timezone("Europe/Berlin")
        .failure_issue_threshold(3)
        .recovery_threshold(2);
    let envelopes = capture(options("ag_cron"), || {
        let n: Result<u32, std::io::Error> = monitor.run(|| Ok(7));
        assert_eq!(n.expect("ok"), 7);
    });
    let checks = check_ins(&envelopes);
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].status, MonitorCheckInStatus::InProgress);
    assert_eq!(checks[1].status, MonitorCheckInStatus::Ok);
    assert_eq!(checks[0].check_in_id, checks[1].check_in_id);
    assert_eq!(checks[0].duration, None);
    assert!(checks[1].duration.is_some_and(|d| d >= 0.0));
    for check in &checks {
        assert_eq!(check.monitor_slug, "rebalance");
        assert_eq!(check.environment.as_deref(), Some("test"));
        let config = check.monitor_config.as_ref().expect("config");
        assert_eq!(
            config.schedule,
            MonitorSchedule::Crontab {
                value: "*/15 * * * *".into()
            }
        );
        assert_eq!(config.checkin_margin, Some(2));
        assert_eq!(config.max_runtime, Some(10));
        assert_eq!(config.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(config.failure_issue_threshold, Some(3));
        assert_eq!(config.recovery_threshold, Some(2));
    }
}

#[test]
fn a_failing_or_panicking_cron_job_checks_in_error() {
    let monitor =
        CronMonitor::interval("settle-escrows", 5, MonitorIntervalUnit::Minute).expect("valid");
    let envelopes = capture(options("ag_cron_err"), || {
        let failed: Result<(), &str> = monitor.run(|| Err("escrow API down"));
        assert!(failed.is_err());
        let panicked = std::panic::catch_unwind(|| {
            let _: Result<(), ()> = monitor.run(|| panic!("job bug"));
        });
        assert!(panicked.is_err(), "the panic is resumed");
    });
    let statuses: Vec<_> = check_ins(&envelopes).iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            MonitorCheckInStatus::InProgress,
            MonitorCheckInStatus::Error,
            MonitorCheckInStatus::InProgress,
            MonitorCheckInStatus::Error
        ]
    );
    let config = check_ins(&envelopes)[0]
        .monitor_config
        .clone()
        .expect("config");
    assert_eq!(
        config.schedule,
        MonitorSchedule::Interval {
            value: 5,
            unit: MonitorIntervalUnit::Minute
        }
    );
}

#[test]
fn async_cron_jobs_check_in_and_a_cancelled_one_reports_error() {
    let monitor = CronMonitor::crontab("sweep", "0 * * * *").expect("valid");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let envelopes = capture(options("ag_cron_async"), || {
        runtime.block_on(async {
            let ok: Result<u8, ()> = monitor
                .run_async(async {
                    tokio::task::yield_now().await;
                    Ok(1)
                })
                .await;
            assert_eq!(ok, Ok(1));
            // Cancelled by a timeout while the job is still running.
            let cancelled = tokio::time::timeout(
                Duration::from_millis(5),
                monitor.run_async(std::future::pending::<Result<(), ()>>()),
            )
            .await;
            assert!(cancelled.is_err());
        });
    });
    let checks = check_ins(&envelopes);
    let statuses: Vec<_> = checks.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            MonitorCheckInStatus::InProgress,
            MonitorCheckInStatus::Ok,
            MonitorCheckInStatus::InProgress,
            MonitorCheckInStatus::Error
        ]
    );
    assert_eq!(checks[2].check_in_id, checks[3].check_in_id);
    assert_ne!(checks[0].check_in_id, checks[2].check_in_id);
}

#[test]
fn invalid_monitor_configs_are_refused() {
    assert!(matches!(
        CronMonitor::crontab("x", "every tuesday"),
        Err(MonitorError::InvalidCrontab { .. })
    ));
    assert!(matches!(
        CronMonitor::crontab("", "0 * * * *"),
        Err(MonitorError::InvalidSlug(_))
    ));
}
