//! The copy pools of a worker across its steps, on the SQS path with the password in Secrets
//! Manager: a rotated secret (a new version) makes the next step log in anew and close the pools
//! of the old version; a secret that no longer logs in fails the run with an error naming the
//! endpoint; sessions the network dropped while the worker idled (a frozen Lambda container's)
//! are pinged and replaced, so the next run's first step works.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tidemark_core::ports::EndpointRole;
use tidemark_core::state::{RunKey, RunStatus, RunTrigger};
use tidemark_service::StepOutcome;
use tidemark_service::driver::EndpointPools;
use tidemark_tests::harness::net::SeveringProxy;
use tidemark_tests::harness::{Server, source};

use super::{Rig, create_task, drain, drain_one, rig, rig_with, source_db, task_json};
use crate::precheck::user;

/// The ids of `user`'s sessions on the source.
async fn sessions(admin: &Server, user: &str) -> BTreeSet<u64> {
    admin
        .query_one(&format!(
            "SELECT GROUP_CONCAT(ID) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        ))
        .await
        .unwrap_or_default()
        .split(',')
        .filter_map(|id| id.parse().ok())
        .collect()
}

async fn step(rig: &Rig) -> StepOutcome {
    drain_one(rig).await.expect("a step message")
}

/// Writes the task's source secret again (a rotation: a new version).
async fn rotate(rig: &Rig, task_id: &str, user: &str, password: &str) {
    rig.service
        .ports()
        .secrets
        .create_secret(
            task_id,
            EndpointRole::Source,
            user,
            &SecretString::from(password.to_owned()),
        )
        .await
        .expect("the secret rewritten");
}

/// A resync task of `db` on `source` with one worker (one chunk message at a time), and its run
/// at `at` triggered; the task's id.
async fn resync_with_one_worker(
    rig: &Rig,
    source: &Server,
    db: &str,
    at: jiff::Timestamp,
) -> String {
    let policy = serde_json::json!({"mode": "resync"});
    let mut spec: serde_json::Value =
        serde_json::from_str(&task_json(source, db, policy)).expect("json");
    spec["channel"]["workers"] = 1.into();
    let id = create_task(rig, &spec.to_string()).await;
    rig.service
        .begin_cycle(&id, at, RunTrigger::Schedule)
        .await
        .expect("trigger");
    id
}

#[tokio::test]
async fn a_rotated_secret_gets_new_pools_and_the_old_ones_close() {
    let admin = source();
    let db = source_db(&admin, 3, 200).await;
    let counted = user(&admin, "rotated", &["ALL ON *.*".to_owned()]).await;
    let rig = rig(Duration::from_secs(1)).await;
    let at: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    let id = resync_with_one_worker(&rig, &counted, &db, at).await;

    // Schema, then the first of three chunks, with the first password.
    assert_eq!(step(&rig).await, StepOutcome::Ran, "schema");
    assert_eq!(step(&rig).await, StepOutcome::Ran, "chunk 1");
    let first = sessions(&admin, &counted.user).await;
    assert!(
        !first.is_empty(),
        "the pool keeps its sessions between steps"
    );

    // The password rotated on the server and in the secret: the next chunk logs in anew, and the
    // first version's sessions are closed.
    let new_password = format!("{}-rotated", counted.user);
    admin
        .exec(&[&format!(
            "ALTER USER '{}'@'127.0.0.1' IDENTIFIED BY '{new_password}'",
            counted.user
        )])
        .await;
    rotate(&rig, &id, &counted.user, &new_password).await;
    assert_eq!(step(&rig).await, StepOutcome::Ran, "chunk 2");
    let started = Instant::now();
    let second = loop {
        let now = sessions(&admin, &counted.user).await;
        if now.is_disjoint(&first) || started.elapsed() > Duration::from_secs(3) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        second.is_disjoint(&first),
        "the old version's sessions are still open: {first:?} then {second:?}"
    );
    assert!(
        !second.is_empty(),
        "the new version's pool keeps its sessions"
    );

    // A secret that no longer logs in: the run fails naming the endpoint.
    rotate(&rig, &id, &counted.user, "not-the-password").await;
    assert_eq!(step(&rig).await, StepOutcome::Ran, "chunk 3 ends the run");
    let key = RunKey {
        task_id: id.clone(),
        scheduled_time: at,
    };
    let run = rig.service.ports().store.get_run(&key).await.expect("read");
    let run = run.expect("the run");
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(error.starts_with("source: "), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
    admin
        .exec(&[&format!("DROP USER '{}'@'127.0.0.1'", counted.user)])
        .await;
}

#[tokio::test]
async fn a_rotation_to_the_other_user_between_runs_keeps_the_runs_working() {
    let admin = source();
    let db = source_db(&admin, 2, 200).await;
    let grants = ["ALL ON *.*".to_owned()];
    let (a, b) = (
        user(&admin, "alt_a", &grants).await,
        user(&admin, "alt_b", &grants).await,
    );
    let rig = rig(Duration::from_secs(1)).await;
    let first: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    // Created as user a: the task's secret holds a's username and password.
    let id = resync_with_one_worker(&rig, &a, &db, first).await;
    drain(&rig).await;
    assert_eq!(run_status(&rig, &id, first).await, RunStatus::Succeeded);
    assert!(!sessions(&admin, &a.user).await.is_empty(), "a's pool kept");

    // Secrets Manager's alternating-users rotation: the secret now names user b, and user a
    // can no longer log in. The spec still says a; the secret's username wins.
    rotate(&rig, &id, &b.user, b.password().expose_secret()).await;
    admin
        .exec(&[&format!("DROP USER '{}'@'127.0.0.1'", a.user)])
        .await;
    let next: jiff::Timestamp = "2026-12-02T02:30:00Z".parse().expect("time");
    rig.service
        .begin_cycle(&id, next, RunTrigger::Schedule)
        .await
        .expect("trigger");
    drain(&rig).await;
    let key = RunKey {
        task_id: id.clone(),
        scheduled_time: next,
    };
    let run = rig.service.ports().store.get_run(&key).await.expect("read");
    let run = run.expect("the run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert!(!sessions(&admin, &b.user).await.is_empty(), "b's pool");
    let started = Instant::now();
    while !sessions(&admin, &a.user).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the old user's pool was not closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin
        .exec(&[&format!("DROP USER '{}'@'127.0.0.1'", b.user)])
        .await;
}

/// The run of `id` at `at`, as stored.
async fn run_status(rig: &Rig, id: &str, at: jiff::Timestamp) -> RunStatus {
    let key = RunKey {
        task_id: id.to_owned(),
        scheduled_time: at,
    };
    let run = rig.service.ports().store.get_run(&key).await.expect("read");
    run.expect("the run").status
}

#[tokio::test]
async fn sessions_dropped_by_the_network_between_runs_are_pinged_and_replaced() {
    let src = source();
    let proxy = SeveringProxy::start(src.port).await;
    let via_proxy = Server::new(
        "source via proxy",
        proxy.port,
        &src.user,
        src.password().clone(),
    );
    let db = source_db(&src, 2, 200).await;
    let rig = rig_with(|worker| {
        worker.driver.step_budget = Duration::from_secs(1);
        worker.pools = Arc::new(EndpointPools::with_idle_ping(Duration::from_millis(200)));
    })
    .await;
    let first: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    let id = resync_with_one_worker(&rig, &via_proxy, &db, first).await;
    drain(&rig).await;
    assert_eq!(run_status(&rig, &id, first).await, RunStatus::Succeeded);

    // The worker idles; the network forgets its sessions without a word to it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.sever();
    let next: jiff::Timestamp = "2026-12-02T02:30:00Z".parse().expect("time");
    rig.service
        .begin_cycle(&id, next, RunTrigger::Schedule)
        .await
        .expect("trigger");
    assert_eq!(
        step(&rig).await,
        StepOutcome::Ran,
        "the next run's Schema step, on the kept pools"
    );
    drain(&rig).await;
    assert_eq!(run_status(&rig, &id, next).await, RunStatus::Succeeded);
}
