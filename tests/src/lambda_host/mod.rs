//! The functions as AWS Lambda runs them, on this machine: each `functions/*` binary (built by
//! `cargo build --bins`, run as Lambda runs a `bootstrap`) under a Lambda Runtime API served on
//! loopback, fed by the event sources template.yaml declares, against the AWS emulator.
//!
//! - [`runtime_api`]: the Runtime API of one execution environment (next invocation, response,
//!   error, init error; the deadline, request-id, function-ARN and trace headers), freezing the
//!   process once an invocation is done.
//! - [`instance`]: one execution environment — the binary with the environment Lambda gives it,
//!   its output captured ([`LogSink`]), killed at its timeout.
//! - [`function`]: a function's environments, warm ones reused, at most its concurrency bound at
//!   once; [`Outcome`] is how an invocation ended.
//! - [`stack_doc`]: STACK.json (`infra/local/aws/stack.py render`): template.yaml translated and
//!   resolved, read into functions, mappings, queues, routes.
//! - [`apigw`]: the HTTP API's routes and payload-2.0 events (another route is API Gateway's 404).
//! - [`sqs_source`]: SQS event source mappings (batch size, partial batch responses).
//! - [`async_invoke`]: asynchronous invocation with retries and the on-failure destination.
//! - [`metrics`]: the stack's metric filters and alarms over the functions' real output.
//! - [`schedules`]: the scheduler's invocations of the task schedules in the emulator.
//! - [`stack`]: [`AwsStack`], one deployment of the template in the emulator with every function
//!   and event source running — what a scenario of the `aws` test target drives.
//!
//! ## Time
//!
//! The template's durations — function timeouts, queue visibility timeouts, rate schedules,
//! Lambda's asynchronous retry waits — are divided by one factor, [`TimeScale`]
//! ([`TimeScale::DEFAULT_DIVISOR`], or `TIDEMARK_AWS_TIME_DIVISOR`), and the run driver's
//! durations (`TIDEMARK_STEP_BUDGET_SECONDS`, `TIDEMARK_STEP_LEASE_SECONDS`, ...: the template's
//! value where it sets one, else the default) are set in every function's environment divided by
//! the same factor, as an operator would set them in `Globals`. Durations that wait are scaled;
//! the two that bound work done at this machine's speed have a floor: a function's timeout is at
//! least [`MIN_TIMEOUT`] (30 s: run-worker's 300 s would be 10 s, less than a cold worker's
//! first Schema step took on a busy two-core machine through the IAM emulator) and a step's lease
//! at least [`MIN_LEASE`] (its renewal, a third of it, is a write through that emulator). Lambda's
//! 10-second init limit is not scaled. Nothing else is changed.
//!
//! ## Concurrency
//!
//! A function runs at most its `ReservedConcurrentExecutions` environments at once (an SQS
//! mapping's `ScalingConfig.MaximumConcurrency` bounds its pollers); the template sets neither,
//! so the harness's default bound, [`DEFAULT_CONCURRENCY`], applies.

pub mod apigw;
pub mod async_invoke;
pub mod function;
pub mod iam;
pub mod instance;
pub mod metrics;
pub mod runtime_api;
pub mod schedules;
pub mod setup;
pub mod sqs_source;
pub mod stack;
pub mod stack_doc;

use std::time::Duration;

pub use function::{Function, Outcome};
pub use instance::{LogLine, LogSink};
pub use stack::{AwsStack, StackOptions};

/// The region of every stack (NAMES.json's), as AWS's endpoints and ARNs name it.
pub const REGION: &str = "us-east-1";

/// Environments of one function at once when the template sets no bound: enough for the
/// scenarios' two or three chunks in flight, few enough for many stacks on two cores.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The shortest function timeout the harness gives: a timeout bounds an invocation's own work —
/// calls to the emulator and the servers, which run at this machine's speed, not scaled —
/// so a scaled one below what those take here would measure the machine, not the function. On a
/// two-core machine busy with other builds, a first Schema step (a cold worker: secrets read,
/// pools made, the tables read and their chunks planned) took more than 15 s.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The shortest step lease the harness gives (`TIDEMARK_STEP_LEASE_SECONDS`): its holder renews
/// it every third of it with a write through the emulator, which a busy machine delays by seconds.
pub const MIN_LEASE: Duration = Duration::from_secs(5);

/// The one factor the template's durations are divided by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale {
    divisor: f64,
}

impl TimeScale {
    /// 30: the step queue's 1800 s visibility timeout is 60 s, the step budget 4 s, run-cycle's
    /// 15-minute sweep 30 s, a run's hour-long lease 2 minutes, Lambda's asynchronous retries 2 s
    /// and 4 s apart; every function's timeout 30 s ([`MIN_TIMEOUT`]), a step's lease 5 s
    /// ([`MIN_LEASE`]).
    pub const DEFAULT_DIVISOR: f64 = 30.0;

    pub fn new(divisor: f64) -> TimeScale {
        TimeScale {
            divisor: if divisor.is_finite() && divisor >= 1.0 {
                divisor
            } else {
                1.0
            },
        }
    }

    /// [`TimeScale::DEFAULT_DIVISOR`], or `TIDEMARK_AWS_TIME_DIVISOR` when set.
    pub fn from_env() -> TimeScale {
        let divisor = std::env::var("TIDEMARK_AWS_TIME_DIVISOR")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(TimeScale::DEFAULT_DIVISOR);
        TimeScale::new(divisor)
    }

    pub fn divisor(&self) -> f64 {
        self.divisor
    }

    /// `d` divided by the factor.
    pub fn scale(&self, d: Duration) -> Duration {
        Duration::from_secs_f64(d.as_secs_f64() / self.divisor)
    }

    /// A function's timeout divided by the factor, but at least [`MIN_TIMEOUT`].
    pub fn timeout(&self, d: Duration) -> Duration {
        self.scale(d).max(MIN_TIMEOUT.min(d))
    }

    /// `d` divided by the factor, in whole seconds rounded up and at least one (what SQS's
    /// `VisibilityTimeout` takes).
    pub fn whole_seconds(&self, d: Duration) -> u64 {
        (d.as_secs_f64() / self.divisor).ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_divided_by_one_factor() {
        let scale = TimeScale::new(30.0);
        assert_eq!(
            scale.scale(Duration::from_secs(300)),
            Duration::from_secs(10)
        );
        assert_eq!(scale.whole_seconds(Duration::from_secs(1800)), 60);
        assert_eq!(scale.whole_seconds(Duration::from_secs(1)), 1);
        assert_eq!(TimeScale::new(0.0).divisor(), 1.0);
        assert_eq!(
            scale.timeout(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            scale.timeout(Duration::from_secs(1800)),
            Duration::from_secs(60)
        );
        assert_eq!(
            scale.timeout(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
