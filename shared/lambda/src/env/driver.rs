//! The run driver's durations and counts ([`DriverConfig`]) from the function's environment:
//! the service's one reader ([`tidemark_service::driver::env`]), its error made the function's.
//! Every variable is optional: unset (or blank) is the default; a value that does not parse, or
//! is out of range, fails the function's start with an error naming it.

#[cfg(test)]
use std::time::Duration;

use tidemark_service::DriverConfig;
pub use tidemark_service::driver::env::{
    DRIVER_VARIABLES, FIRST_BACKOFF_MS, IDLE_PING_SECONDS, MAX_BACKOFF_SECONDS,
    RECORD_RETENTION_DAYS, RESEND_AFTER_SECONDS, RUN_LEASE_SECONDS, STEP_ATTEMPTS,
    STEP_BUDGET_SECONDS, STEP_LEASE_SECONDS, SWEEP_SECONDS, WORKER_TIMEOUT_SECONDS,
};

use super::EnvError;

/// The driver's configuration: [`DriverConfig::new`]'s defaults, each replaced by its variable
/// when set.
pub fn driver_config(
    lookup: &impl Fn(&str) -> Option<String>,
    owner: &str,
) -> Result<DriverConfig, EnvError> {
    DriverConfig::new(owner)
        .with_variables(lookup)
        .map_err(|e| EnvError::Invalid {
            name: e.name,
            message: e.message,
        })
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
            (RECORD_RETENTION_DAYS, "0.5"),
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
                record_retention: Some(secs(43_200)),
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
            (RECORD_RETENTION_DAYS, "-1"),
            (RECORD_RETENTION_DAYS, "36501"),
            (RECORD_RETENTION_DAYS, "90d"),
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
    fn the_worker_timeout_gives_the_budget_and_run_lease_that_their_own_variables_replace() {
        let secs = Duration::from_secs;
        let derived = read(&[(WORKER_TIMEOUT_SECONDS, "900")]).expect("900 s");
        assert_eq!(
            (derived.step_budget, derived.run_lease),
            (secs(360), secs(6300))
        );
        let set = read(&[
            (WORKER_TIMEOUT_SECONDS, "900"),
            (STEP_BUDGET_SECONDS, "100"),
            (RUN_LEASE_SECONDS, "7200"),
        ])
        .expect("both set");
        assert_eq!((set.step_budget, set.run_lease), (secs(100), secs(7200)));
        for bad in ["0", "901", "1.5", "5m"] {
            let e = read(&[(WORKER_TIMEOUT_SECONDS, bad)]).expect_err(bad);
            assert!(e.to_string().starts_with(WORKER_TIMEOUT_SECONDS), "{e}");
        }
        let e = read(&[(WORKER_TIMEOUT_SECONDS, "60"), (STEP_BUDGET_SECONDS, "60")])
            .expect_err("a budget as long as the timeout");
        assert!(e.to_string().starts_with(STEP_BUDGET_SECONDS), "{e}");
        assert!(e.to_string().contains(WORKER_TIMEOUT_SECONDS), "{e}");
    }

    #[test]
    fn a_retention_of_zero_days_keeps_records() {
        assert_eq!(
            read(&[(RECORD_RETENTION_DAYS, "0")])
                .expect("0")
                .record_retention,
            None
        );
        let days = read(&[(RECORD_RETENTION_DAYS, "90")]).expect("90");
        assert_eq!(
            days.record_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
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
