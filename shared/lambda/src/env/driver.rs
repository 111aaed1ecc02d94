//! The run driver's durations and counts ([`DriverConfig`]) from the environment. Every variable
//! is optional: unset (or blank) is the default, which is also `tidemark serve`'s; a value that
//! does not parse, or is out of range, fails the function's start with an error naming it.

use std::ops::RangeInclusive;
use std::time::Duration;

use tidemark_aws::queue::MAX_DELAY;
use tidemark_service::DriverConfig;

use super::EnvError;

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
/// The sweep (run-cycle) sends again a step queued this long ago that nobody took.
pub const RESEND_AFTER_SECONDS: &str = "TIDEMARK_RESEND_AFTER_SECONDS";
/// The sweep fails a run without progress for this long.
pub const RUN_LEASE_SECONDS: &str = "TIDEMARK_RUN_LEASE_SECONDS";
/// A pooled database session idle longer than this is pinged before use (0: every reused one).
pub const IDLE_PING_SECONDS: &str = "TIDEMARK_IDLE_PING_SECONDS";

/// Every optional variable of the driver (the README lists them with their defaults).
pub const DRIVER_VARIABLES: [&str; 8] = [
    STEP_BUDGET_SECONDS,
    STEP_LEASE_SECONDS,
    STEP_ATTEMPTS,
    FIRST_BACKOFF_MS,
    MAX_BACKOFF_SECONDS,
    RESEND_AFTER_SECONDS,
    RUN_LEASE_SECONDS,
    IDLE_PING_SECONDS,
];

const DAY: u64 = 24 * 60 * 60;

/// The driver's configuration: [`DriverConfig::new`]'s defaults, each replaced by its variable
/// when set.
pub fn driver_config(
    lookup: &impl Fn(&str) -> Option<String>,
    owner: &str,
) -> Result<DriverConfig, EnvError> {
    let defaults = DriverConfig::new(owner);
    let number = |name: &'static str, unit: &str, range: RangeInclusive<u64>, default: u64| {
        let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(default);
        };
        value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| EnvError::Invalid {
                name,
                message: format!(
                    "`{value}` is not a number of {unit} from {} to {} (leave it unset for {default})",
                    range.start(),
                    range.end()
                ),
            })
    };
    let seconds = |name, range, default: Duration| {
        number(name, "seconds", range, default.as_secs()).map(Duration::from_secs)
    };
    let max_delay = MAX_DELAY.as_secs();
    let config = DriverConfig {
        step_budget: seconds(STEP_BUDGET_SECONDS, 1..=900, defaults.step_budget)?,
        step_lease: seconds(STEP_LEASE_SECONDS, 1..=3600, defaults.step_lease)?,
        step_attempts: number(
            STEP_ATTEMPTS,
            "attempts",
            1..=100,
            u64::from(defaults.step_attempts),
        )
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))?,
        first_backoff: number(
            FIRST_BACKOFF_MS,
            "milliseconds",
            1..=max_delay * 1000,
            u64::try_from(defaults.first_backoff.as_millis()).unwrap_or(u64::MAX),
        )
        .map(Duration::from_millis)?,
        max_backoff: seconds(MAX_BACKOFF_SECONDS, 1..=max_delay, defaults.max_backoff)?,
        resend_after: seconds(RESEND_AFTER_SECONDS, 1..=DAY, defaults.resend_after)?,
        run_lease: seconds(RUN_LEASE_SECONDS, 1..=7 * DAY, defaults.run_lease)?,
        idle_ping: seconds(IDLE_PING_SECONDS, 0..=3600, defaults.idle_ping)?,
        ..defaults
    };
    if config.max_backoff < config.first_backoff {
        return Err(EnvError::Invalid {
            name: MAX_BACKOFF_SECONDS,
            message: format!(
                "{} s is shorter than the first backoff ({FIRST_BACKOFF_MS} = {} ms); raise it or lower {FIRST_BACKOFF_MS}",
                config.max_backoff.as_secs(),
                config.first_backoff.as_millis()
            ),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<DriverConfig, EnvError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        driver_config(&|name| vars.get(name).cloned(), "t")
    }

    /// A configuration without its owner (which carries the process and the time).
    fn timings(config: DriverConfig) -> DriverConfig {
        DriverConfig {
            owner: String::new(),
            ..config
        }
    }

    #[test]
    fn unset_or_blank_is_the_default_of_every_host() {
        let default = timings(DriverConfig::new("t"));
        assert_eq!(timings(read(&[]).expect("defaults")), default);
        let blank: Vec<(&str, &str)> = DRIVER_VARIABLES.iter().map(|n| (*n, " ")).collect();
        assert_eq!(timings(read(&blank).expect("blank")), default);
        assert!(read(&[]).expect("owner").owner.starts_with("t:"));
    }

    #[test]
    fn every_variable_is_read_into_its_field() {
        let config = read(&[
            (STEP_BUDGET_SECONDS, "30"),
            (STEP_LEASE_SECONDS, "9"),
            (STEP_ATTEMPTS, " 3 "),
            (FIRST_BACKOFF_MS, "200"),
            (MAX_BACKOFF_SECONDS, "2"),
            (RESEND_AFTER_SECONDS, "45"),
            (RUN_LEASE_SECONDS, "600"),
            (IDLE_PING_SECONDS, "0"),
        ])
        .expect("all set");
        let secs = Duration::from_secs;
        assert_eq!(
            timings(config),
            DriverConfig {
                owner: String::new(),
                step_budget: secs(30),
                step_lease: secs(9),
                step_attempts: 3,
                first_backoff: Duration::from_millis(200),
                max_backoff: secs(2),
                resend_after: secs(45),
                run_lease: secs(600),
                idle_ping: Duration::ZERO,
                // Not Lambda's: the cancel check and the in-process sweep keep their defaults.
                cancel_check: secs(2),
                sweep_every: secs(5),
            }
        );
    }

    #[test]
    fn a_value_that_does_not_parse_or_is_out_of_range_names_its_variable() {
        for (name, bad) in [
            (STEP_BUDGET_SECONDS, "0"),
            (STEP_BUDGET_SECONDS, "901"),
            (STEP_LEASE_SECONDS, "1m"),
            (STEP_ATTEMPTS, "0"),
            (STEP_ATTEMPTS, "-1"),
            (FIRST_BACKOFF_MS, "1.5"),
            (MAX_BACKOFF_SECONDS, "901"),
            (RESEND_AFTER_SECONDS, "x"),
            (RUN_LEASE_SECONDS, "0"),
            (IDLE_PING_SECONDS, "3601"),
        ] {
            let e = read(&[(name, bad)]).expect_err(name);
            assert!(
                matches!(e, EnvError::Invalid { name: n, .. } if n == name),
                "{name}: {e}"
            );
            let text = e.to_string();
            assert!(text.starts_with(name), "{text}");
            assert!(text.contains(&format!("`{bad}`")), "{text}");
            assert!(text.contains("leave it unset for"), "{text}");
        }
    }

    #[test]
    fn the_longest_backoff_is_not_shorter_than_the_first() {
        let e = read(&[(FIRST_BACKOFF_MS, "5000"), (MAX_BACKOFF_SECONDS, "4")])
            .expect_err("max below first");
        assert!(e.to_string().starts_with(MAX_BACKOFF_SECONDS), "{e}");
        assert!(e.to_string().contains(FIRST_BACKOFF_MS), "{e}");
        read(&[(FIRST_BACKOFF_MS, "4000"), (MAX_BACKOFF_SECONDS, "4")]).expect("equal is fine");
    }
}
