//! The driver's durations and counts ([`DriverConfig`]) from environment variables, the same on
//! every host: Lambda's functions read them at start, `tidemark run` and `tidemark serve` too
//! (the fault suite shortens the sweep with them). Every variable is optional: unset (or blank)
//! keeps the host's default; a value that does not parse, or is out of range, is an error
//! naming the variable.

use std::time::Duration;

use super::DriverConfig;

/// The timeout of the function that runs the steps (run-worker; template.yaml's `WorkerTimeout`):
/// the step budget and the run lease follow from it ([`DriverConfig::for_worker_timeout`])
/// unless their own variables are set.
pub const WORKER_TIMEOUT_SECONDS: &str = "TIDEMARK_WORKER_TIMEOUT_SECONDS";
/// A step is not started closer than this to the invocation's deadline (run-worker); it goes
/// back to the queue as a new message instead. Below the function's timeout.
pub const STEP_BUDGET_SECONDS: &str = "TIDEMARK_STEP_BUDGET_SECONDS";
/// How long a claim on a step lasts without renewal (its holder renews it every third of it).
pub const STEP_LEASE_SECONDS: &str = "TIDEMARK_STEP_LEASE_SECONDS";
/// Attempts of a step with retryable failures before its run fails.
pub const STEP_ATTEMPTS: &str = "TIDEMARK_STEP_ATTEMPTS";
/// The wait before a failed step's first retry, in milliseconds; it doubles, with jitter.
pub const FIRST_BACKOFF_MS: &str = "TIDEMARK_FIRST_BACKOFF_MS";
/// The longest wait between a step's retries (at most SQS's 15-minute delay).
pub const MAX_BACKOFF_SECONDS: &str = "TIDEMARK_MAX_BACKOFF_SECONDS";
/// The sweep sends again a step queued this long ago that nobody took.
pub const RESEND_AFTER_SECONDS: &str = "TIDEMARK_RESEND_AFTER_SECONDS";
/// The sweep fails a run without progress for this long.
pub const RUN_LEASE_SECONDS: &str = "TIDEMARK_RUN_LEASE_SECONDS";
/// A pooled database session idle longer than this is pinged before use (0: every reused one).
pub const IDLE_PING_SECONDS: &str = "TIDEMARK_IDLE_PING_SECONDS";
/// How long a run's records and precheck reports are kept, in days (fractions allowed; 0 keeps
/// them for good): each gets its expiry when it is made.
pub const RECORD_RETENTION_DAYS: &str = "TIDEMARK_RECORD_RETENTION_DAYS";
/// How often a host that drives runs in-process (`tidemark run`, `tidemark serve`) sweeps them
/// (on AWS the sweep is run-cycle's, on its own schedule).
pub const SWEEP_SECONDS: &str = "TIDEMARK_SWEEP_SECONDS";

/// Every optional variable of the driver (infra/DEPLOY.md lists them with their defaults).
pub const DRIVER_VARIABLES: [&str; 11] = [
    WORKER_TIMEOUT_SECONDS,
    STEP_BUDGET_SECONDS,
    STEP_LEASE_SECONDS,
    STEP_ATTEMPTS,
    FIRST_BACKOFF_MS,
    MAX_BACKOFF_SECONDS,
    RESEND_AFTER_SECONDS,
    RUN_LEASE_SECONDS,
    IDLE_PING_SECONDS,
    SWEEP_SECONDS,
    RECORD_RETENTION_DAYS,
];

/// Lambda's longest timeout.
const MAX_FUNCTION_TIMEOUT_SECONDS: f64 = 900.0;
/// The longest delay an SQS message may have, which bounds the backoffs.
const MAX_DELAY_SECONDS: f64 = 900.0;
const DAY: f64 = 24.0 * 60.0 * 60.0;

/// A variable that does not parse or is out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarError {
    pub name: &'static str,
    pub message: String,
}

impl std::fmt::Display for VarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl DriverConfig {
    /// `self` (the host's defaults), each duration or count replaced by its variable when
    /// `lookup` (the environment; tests pass a map) sets it. Seconds may have fractions.
    pub fn with_variables(
        self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<DriverConfig, VarError> {
        let set = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let out_of_range = |name: &'static str,
                            value: &str,
                            unit: &str,
                            min: f64,
                            max: f64,
                            default: f64| {
            VarError {
                name,
                message: format!(
                    "`{value}` is not a number of {unit} from {min} to {max} (leave it unset for {default})"
                ),
            }
        };
        let seconds = |name: &'static str, min: f64, max: f64, default: Duration| {
            let Some(value) = set(name) else {
                return Ok(default);
            };
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| (min..=max).contains(s))
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    out_of_range(name, &value, "seconds", min, max, default.as_secs_f64())
                })
        };
        let whole = |name: &'static str, unit: &str, max: u64, default: u64| {
            let Some(value) = set(name) else {
                return Ok(default);
            };
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| out_of_range(name, &value, unit, 1.0, max as f64, default as f64))
        };
        // The worker's timeout first: the durations derived from it are the defaults that the
        // other variables replace.
        let worker_timeout = set(WORKER_TIMEOUT_SECONDS)
            .map(|value| {
                value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=MAX_FUNCTION_TIMEOUT_SECONDS as u64).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| VarError {
                        name: WORKER_TIMEOUT_SECONDS,
                        message: format!(
                            "`{value}` is not a whole number of seconds from 1 to {MAX_FUNCTION_TIMEOUT_SECONDS} (Lambda's timeouts; leave it unset for 300)"
                        ),
                    })
            })
            .transpose()?;
        let this = match worker_timeout {
            Some(timeout) => self.for_worker_timeout(timeout),
            None => self,
        };
        let first_backoff_ms = u64::try_from(this.first_backoff.as_millis()).unwrap_or(u64::MAX);
        let config = DriverConfig {
            step_budget: seconds(STEP_BUDGET_SECONDS, 1.0, 900.0, this.step_budget)?,
            step_lease: seconds(STEP_LEASE_SECONDS, 1.0, 3600.0, this.step_lease)?,
            step_attempts: whole(
                STEP_ATTEMPTS,
                "attempts",
                100,
                u64::from(this.step_attempts),
            )
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))?,
            first_backoff: whole(
                FIRST_BACKOFF_MS,
                "milliseconds",
                (MAX_DELAY_SECONDS as u64) * 1000,
                first_backoff_ms,
            )
            .map(Duration::from_millis)?,
            max_backoff: seconds(
                MAX_BACKOFF_SECONDS,
                1.0,
                MAX_DELAY_SECONDS,
                this.max_backoff,
            )?,
            resend_after: seconds(RESEND_AFTER_SECONDS, 0.1, DAY, this.resend_after)?,
            run_lease: seconds(RUN_LEASE_SECONDS, 1.0, 7.0 * DAY, this.run_lease)?,
            idle_ping: seconds(IDLE_PING_SECONDS, 0.0, 3600.0, this.idle_ping)?,
            sweep_every: seconds(SWEEP_SECONDS, 0.05, 3600.0, this.sweep_every)?,
            record_retention: match set(RECORD_RETENTION_DAYS) {
                None => this.record_retention,
                Some(days) => {
                    let kept = this.record_retention.map_or(0.0, |d| d.as_secs_f64() / DAY);
                    days.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|d| (0.0..=36_500.0).contains(d))
                        .map(|d| (d > 0.0).then(|| Duration::from_secs_f64(d * DAY)))
                        .ok_or_else(|| {
                            out_of_range(RECORD_RETENTION_DAYS, &days, "days", 0.0, 36_500.0, kept)
                        })?
                }
            },
            ..this
        };
        if config.max_backoff < config.first_backoff {
            return Err(VarError {
                name: MAX_BACKOFF_SECONDS,
                message: format!(
                    "{} s is shorter than the first backoff ({FIRST_BACKOFF_MS} = {} ms); raise it or lower {FIRST_BACKOFF_MS}",
                    config.max_backoff.as_secs_f64(),
                    config.first_backoff.as_millis()
                ),
            });
        }
        if let Some(timeout) = worker_timeout
            && config.step_budget >= timeout
        {
            return Err(VarError {
                name: STEP_BUDGET_SECONDS,
                message: format!(
                    "{} s is not below the worker's timeout ({WORKER_TIMEOUT_SECONDS} = {} s): no step would ever start; lower it or leave it unset",
                    config.step_budget.as_secs_f64(),
                    timeout.as_secs()
                ),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<DriverConfig, VarError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        DriverConfig::new("t").with_variables(&|name| vars.get(name).cloned())
    }

    #[test]
    fn the_sweep_and_resend_durations_take_fractions_of_a_second() {
        let config =
            read(&[(SWEEP_SECONDS, "0.1"), (RESEND_AFTER_SECONDS, " 0.2 ")]).expect("valid");
        assert_eq!(config.sweep_every, Duration::from_millis(100));
        assert_eq!(config.resend_after, Duration::from_millis(200));
        assert_eq!(config.run_lease, DriverConfig::new("t").run_lease);
        for bad in ["soon", "-1", "NaN", "1e400", "0"] {
            let error = read(&[(RESEND_AFTER_SECONDS, bad)]).expect_err(bad);
            assert_eq!(error.name, RESEND_AFTER_SECONDS);
            assert!(
                error.to_string().starts_with(RESEND_AFTER_SECONDS),
                "{error}"
            );
        }
    }

    #[test]
    fn a_hosts_own_default_is_kept_when_its_variable_is_unset() {
        let mut serve = DriverConfig::new("serve");
        serve.run_lease = Duration::from_secs(900);
        let config = serve.clone().with_variables(&|_| None).expect("defaults");
        assert_eq!(config, serve);
    }
}
