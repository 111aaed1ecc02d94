//! Crash points of the step queue (issue #17): between a step's end — a chunk committed and
//! recorded, what follows it sent — and its message's acknowledgement (`step.before_ack`); and in
//! the sweep, between marking a step whose message was not taken queued again and sending that
//! message (`sweep.resend`). Either way the restarted server takes the run over from its steps:
//! nothing done is done again, nothing queued is lost. And between a run's end and its task's
//! update (`run.ended`): the redelivered Finalize tells the task.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use tidemark_core::state::{StepRecord, StepStatus};
use tidemark_tests::harness::PrivateServer;

use crate::serve::{RESEND_VAR, SWEEP_VAR, Serve};
use crate::support::{Policy, Scenario, chunk_steps};

/// Waits for the armed server to die at `point`: by `abort()` (SIGABRT), with the crash module's
/// line in its log.
async fn died_at(serve: &mut Serve, point: &str, within: Duration) {
    let status = serve.wait_exit(within).await;
    let log = serve.log_text();
    let status = status
        .unwrap_or_else(|| panic!("tidemark serve did not reach {point} in {within:?}:\n{log}"));
    assert!(
        log.contains(&format!("crash point {point} reached")),
        "the process ended ({status}) but not at {point}:\n{log}"
    );
    assert_eq!(status.signal(), Some(6), "aborted (SIGABRT): {status}");
}

/// The chunk steps done, with how often each was attempted.
fn done(steps: &[StepRecord]) -> Vec<(u32, u32)> {
    steps
        .iter()
        .filter(|s| s.status == StepStatus::Done)
        .map(|s| (s.n, s.attempts))
        .collect()
}

/// Chunks done before the crash were not attempted again after the restart.
fn none_redone(before: &[(u32, u32)], after: &[StepRecord]) {
    for (n, attempts) in before {
        let step = after.iter().find(|s| s.n == *n).expect("the step");
        assert_eq!(
            step.attempts, *attempts,
            "chunk step {n}, done before the crash, was attempted again after the restart"
        );
    }
}

/// The third acknowledgement (the Schema step's, then two chunks') never happens: the chunk is
/// committed and recorded and the next chunk sent, but the message that carried it is still
/// unacknowledged when the process dies. The restarted server resumes the run: the chunk is not
/// copied again (a keyless table would show a second copy) and no row is lost or doubled.
#[tokio::test]
async fn crash_after_a_chunk_is_recorded_before_its_message_is_acknowledged() {
    let scenario = Scenario::new("fault_ack", Policy::Replica).await;
    let data_dir = scenario.data_dir();
    let mut serve = Serve::start(&data_dir, Some("step.before_ack#3")).await;
    let task = serve.create_prechecked(&scenario.spec()).await;
    let run = serve.run_now(&task).await;
    died_at(&mut serve, "step.before_ack", Duration::from_secs(90)).await;
    drop(serve);
    let at_crash = done(&chunk_steps(&data_dir, &task, &run).await);
    assert!(
        !at_crash.is_empty(),
        "the acknowledged steps' chunks are done"
    );

    let serve = Serve::start(&data_dir, None).await;
    let finished = serve.wait_run(&task, &run, Duration::from_secs(120)).await;
    assert!(
        serve.log_text().contains("run resumed"),
        "the restarted server did not resume the run:\n{}",
        serve.log_text()
    );
    scenario.verify(&task, &finished).await;
    none_redone(&at_crash, &chunk_steps(&data_dir, &task, &run).await);
    serve.stop().await;
    scenario.cleanup().await;
}

/// The process dies once the run's end is recorded and before its task is told (`run.ended`:
/// the task still reads `running`). The Finalize step's message, never acknowledged, comes back
/// to the restarted server (after a short lease, its visibility timeout here), which finds the
/// step done and gives the task the run's end: `last_run` recorded, the task no longer running.
#[tokio::test]
async fn crash_after_a_run_ended_before_its_task_was_told() {
    let scenario = Scenario::new("fault_ended", Policy::Replica).await;
    let data_dir = scenario.data_dir();
    let short = [("TIDEMARK_STEP_LEASE_SECONDS", "3")];
    let mut serve = Serve::start_with(&data_dir, Some("run.ended"), &short).await;
    let task = serve.create_prechecked(&scenario.spec()).await;
    let run = serve.run_now(&task).await;
    died_at(&mut serve, "run.ended", Duration::from_secs(90)).await;
    drop(serve);

    let serve = Serve::start_with(&data_dir, None, &short).await;
    let finished = serve.wait_run(&task, &run, Duration::from_secs(60)).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let told = loop {
        let (_, body) = serve.call("GET", &format!("/tasks/{task}"), None).await;
        if body["status"] != "running" {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the task still reads running a minute after the restart: {body}\n{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(told["status"], "prechecked", "{told}");
    assert_eq!(told["last_run"]["id"], run.as_str(), "{told}");
    assert_eq!(told["last_run"]["status"], "succeeded", "{told}");
    scenario.verify(&task, &finished).await;
    serve.stop().await;
    scenario.cleanup().await;
}

/// The destination (a private server) stops in the middle of the copy: the step in flight fails
/// after its chunk's own retries and waits out its backoff, queued, its message delayed. The
/// sweep (every 0.1 s here, re-sending a step queued untaken for 0.2 s) marks it queued again
/// and dies before sending the message. With the destination back, the restarted server resumes
/// the run to an exact copy.
#[tokio::test]
async fn crash_while_the_sweep_resends_a_step_then_resume_exactly() {
    let private = PrivateServer::start("fault_resend", &[]);
    let scenario = Scenario::on(private.server.clone(), "fault_resend", Policy::Replica).await;
    let data_dir = scenario.data_dir();
    let short = [(SWEEP_VAR, "0.1"), (RESEND_VAR, "0.2")];
    let mut serve = Serve::start_with(&data_dir, Some("sweep.resend"), &short).await;
    let mut spec = scenario.spec();
    // One chunk at a time: the outage surely falls inside the run.
    spec["channel"]["workers"] = 1.into();
    let task = serve.create_prechecked(&spec).await;
    let run = serve.run_now(&task).await;
    serve
        .wait_until(&task, &run, "no chunk done", |r| {
            r["chunks_done"].as_u64().unwrap_or(0) >= 1
        })
        .await;
    private.stop();
    died_at(&mut serve, "sweep.resend", Duration::from_secs(60)).await;
    let log = serve.log_text();
    assert!(
        log.contains("a step failed; it will be retried"),
        "the step in flight failed retryably before the sweep re-sent it:\n{log}"
    );
    drop(serve);
    let steps = chunk_steps(&data_dir, &task, &run).await;
    let at_crash = done(&steps);
    assert!(!at_crash.is_empty(), "a chunk was done before the outage");

    private.start_again();
    let serve = Serve::start(&data_dir, None).await;
    let finished = serve.wait_run(&task, &run, Duration::from_secs(120)).await;
    scenario.verify(&task, &finished).await;
    none_redone(&at_crash, &chunk_steps(&data_dir, &task, &run).await);
    serve.stop().await;
    scenario.cleanup().await;
}
