//! A function's configuration, read once from its environment (template.yaml's `Globals`), and
//! the AWS ports built from it with one SDK configuration.
//!
//! [`FunctionEnv::from_env`] fails fast with the name of the first variable that is missing;
//! [`AwsWiring::new`] takes any [`SdkConfig`], so tests build exactly what a function builds,
//! pointed at the emulator. The run driver's durations and counts are optional variables
//! ([`driver`]), each with its default.

mod driver;

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use tidemark_aws::{
    DynamoDbStore, EventBridgeScheduler, SchedulerConfig, SecretsManagerStore, SqsPrecheckQueue,
    SqsStepQueue,
};
use tidemark_core::ports::SystemClock;
use tidemark_service::driver::EndpointPools;
use tidemark_service::secret_scope::ScopeError;
use tidemark_service::{
    Allowlist, DriverConfig, Host, Ports, SecretScope, TaskService, WorkerConfig,
};

pub use driver::{
    DRIVER_VARIABLES, FIRST_BACKOFF_MS, IDLE_PING_SECONDS, MAX_BACKOFF_SECONDS,
    RECORD_RETENTION_DAYS, RESEND_AFTER_SECONDS, RUN_LEASE_SECONDS, STEP_ATTEMPTS,
    STEP_BUDGET_SECONDS, STEP_LEASE_SECONDS, SWEEP_SECONDS, WORKER_TIMEOUT_SECONDS, driver_config,
};

/// The DynamoDB table holding every record.
pub const TABLE: &str = "TIDEMARK_TABLE";
/// The run steps' SQS queue (the run-worker function consumes it).
pub const STEP_QUEUE_URL: &str = "TIDEMARK_STEP_QUEUE_URL";
/// The prechecks' SQS queue (the precheck function consumes it).
pub const PRECHECK_QUEUE_URL: &str = "TIDEMARK_PRECHECK_QUEUE_URL";
/// The EventBridge Scheduler group holding one schedule per started task.
pub const SCHEDULE_GROUP: &str = "TIDEMARK_SCHEDULE_GROUP";
/// CIDRs, host names and domain suffixes endpoints must be in; `*` allows any host (required:
/// an empty list is refused rather than taken for any host).
pub const ALLOW_HOSTS: &str = "TIDEMARK_ALLOW_HOSTS";
/// The name prefix of the secrets Tidemark creates (and the only ones it deletes).
pub const SECRET_PREFIX: &str = "TIDEMARK_SECRET_PREFIX";
/// Comma-separated ARN patterns of the secrets a task may name (the `AllowedSecretArns`
/// parameter; may be empty).
pub const ALLOWED_SECRET_ARNS: &str = "TIDEMARK_ALLOWED_SECRET_ARNS";
/// `key=value`: a secret carrying this tag may be named (the `AllowedSecretTag` parameter; may
/// be empty).
pub const ALLOWED_SECRET_TAG: &str = "TIDEMARK_ALLOWED_SECRET_TAG";
/// What a task's schedule invokes: the run-cycle function's ARN.
pub const RUN_CYCLE_ARN: &str = "TIDEMARK_RUN_CYCLE_ARN";
/// The role EventBridge Scheduler assumes to invoke run-cycle.
pub const SCHEDULER_ROLE_ARN: &str = "TIDEMARK_SCHEDULER_ROLE_ARN";
/// Where EventBridge Scheduler sends the invocations it gave up on.
pub const SCHEDULER_DEAD_LETTER_ARN: &str = "TIDEMARK_SCHEDULER_DEAD_LETTER_ARN";

/// Every variable a function reads (each is set in template.yaml's `Globals`; a test holds the
/// two to each other).
pub const VARIABLES: [&str; 11] = [
    TABLE,
    STEP_QUEUE_URL,
    PRECHECK_QUEUE_URL,
    SCHEDULE_GROUP,
    ALLOW_HOSTS,
    SECRET_PREFIX,
    ALLOWED_SECRET_ARNS,
    ALLOWED_SECRET_TAG,
    RUN_CYCLE_ARN,
    SCHEDULER_ROLE_ARN,
    SCHEDULER_DEAD_LETTER_ARN,
];

/// The precheck function's timeout (template.yaml's `PrecheckFunction.Timeout`; a test holds the
/// two to each other).
pub const PRECHECK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a precheck message may wait in its queue before the function takes it.
pub const PRECHECK_QUEUE_WAIT: Duration = Duration::from_secs(60);
/// How long a queued precheck counts as running after its POST: past it, GET answers 409
/// `precheck_interrupted` and a late delivery is dropped.
pub const PRECHECK_WINDOW: Duration =
    Duration::from_secs(PRECHECK_TIMEOUT.as_secs() + PRECHECK_QUEUE_WAIT.as_secs());

/// Why a function cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(
        "{name} is not set ({what}): deploy the function with template.yaml, which sets it in Globals, or set it by hand"
    )]
    Missing {
        name: &'static str,
        what: &'static str,
    },
    #[error("{name} is not usable: {message}")]
    Invalid { name: &'static str, message: String },
}

/// A function's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionEnv {
    pub table: String,
    pub step_queue_url: String,
    pub precheck_queue_url: String,
    pub schedule_group: String,
    /// As given; `*` allows any host.
    pub allow_hosts: String,
    pub secret_prefix: String,
    /// As given; with [`FunctionEnv::allowed_secret_tag`] the secrets a task may name besides
    /// the ones Tidemark makes (both empty: none).
    pub allowed_secret_arns: String,
    pub allowed_secret_tag: String,
    pub run_cycle_arn: String,
    pub scheduler_role_arn: String,
    pub scheduler_dead_letter_arn: String,
    /// The run driver's durations and counts ([`DRIVER_VARIABLES`]).
    pub driver: DriverConfig,
}

impl FunctionEnv {
    /// From the process environment.
    pub fn from_env() -> Result<FunctionEnv, EnvError> {
        FunctionEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any lookup of a variable by name (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<FunctionEnv, EnvError> {
        let required = |name: &'static str, what: &'static str| match lookup(name) {
            Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
            _ => Err(EnvError::Missing { name, what }),
        };
        Ok(FunctionEnv {
            table: required(TABLE, "the DynamoDB table")?,
            step_queue_url: required(STEP_QUEUE_URL, "the step queue's URL")?,
            precheck_queue_url: required(PRECHECK_QUEUE_URL, "the precheck queue's URL")?,
            schedule_group: required(SCHEDULE_GROUP, "the EventBridge Scheduler group")?,
            allow_hosts: required(
                ALLOW_HOSTS,
                "the allowed endpoint hosts: CIDRs, host names, domain suffixes, or * for any",
            )?,
            secret_prefix: required(SECRET_PREFIX, "the prefix of the secrets Tidemark creates")?,
            // Present but empty is the template's default: only the secrets Tidemark makes.
            allowed_secret_arns: lookup(ALLOWED_SECRET_ARNS).ok_or(EnvError::Missing {
                name: ALLOWED_SECRET_ARNS,
                what: "the ARN patterns of the secrets a task may name; may be empty",
            })?,
            allowed_secret_tag: lookup(ALLOWED_SECRET_TAG).ok_or(EnvError::Missing {
                name: ALLOWED_SECRET_TAG,
                what: "the key=value tag of the secrets a task may name; may be empty",
            })?,
            run_cycle_arn: required(RUN_CYCLE_ARN, "the run-cycle function's ARN")?,
            scheduler_role_arn: required(SCHEDULER_ROLE_ARN, "the scheduler's role ARN")?,
            scheduler_dead_letter_arn: required(
                SCHEDULER_DEAD_LETTER_ARN,
                "the scheduler's dead-letter queue ARN",
            )?,
            driver: driver_config(&lookup, "lambda")?,
        })
    }

    /// The endpoint allowlist (`*`: any host).
    pub fn allowlist(&self) -> Result<Allowlist, EnvError> {
        Allowlist::parse(&self.allow_hosts).map_err(|message| EnvError::Invalid {
            name: ALLOW_HOSTS,
            message: format!("{message} (fix the AllowHosts parameter)"),
        })
    }

    /// The secrets a task may name: always a scope on AWS (the IAM policy grants no more).
    pub fn secret_scope(&self) -> Result<SecretScope, EnvError> {
        SecretScope::parse(&self.allowed_secret_arns, &self.allowed_secret_tag).map_err(|e| match e
        {
            ScopeError::Arns(message) => EnvError::Invalid {
                name: ALLOWED_SECRET_ARNS,
                message: format!("{message} (fix the AllowedSecretArns parameter)"),
            },
            ScopeError::Tag(message) => EnvError::Invalid {
                name: ALLOWED_SECRET_TAG,
                message: format!("{message} (fix the AllowedSecretTag parameter)"),
            },
        })
    }
}

/// The AWS adapters of every port a function may use, built once per cold start.
#[derive(Clone)]
pub struct AwsWiring {
    pub ports: Ports,
    pub driver: DriverConfig,
    pub allowlist: Allowlist,
    pub secret_scope: SecretScope,
    pub precheck_queue: Arc<SqsPrecheckQueue>,
    pub step_queue: Arc<SqsStepQueue>,
}

impl AwsWiring {
    /// The adapters over `sdk` (the function's own configuration, or the emulator's in tests).
    pub fn new(env: &FunctionEnv, sdk: &SdkConfig) -> Result<AwsWiring, EnvError> {
        let allowlist = env.allowlist()?;
        let secret_scope = env.secret_scope()?;
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let scheduler = EventBridgeScheduler::new(
            aws_sdk_scheduler::Client::new(sdk),
            SchedulerConfig::new(
                &env.schedule_group,
                &env.run_cycle_arn,
                &env.scheduler_role_arn,
                &env.scheduler_dead_letter_arn,
            ),
        );
        Ok(AwsWiring {
            driver: env.driver.clone(),
            ports: Ports {
                store: Arc::new(DynamoDbStore::new(
                    aws_sdk_dynamodb::Client::new(sdk),
                    &env.table,
                )),
                secrets: Arc::new(SecretsManagerStore::new(
                    aws_sdk_secretsmanager::Client::new(sdk),
                    &env.secret_prefix,
                )),
                scheduler: Arc::new(scheduler),
                clock: Arc::new(SystemClock),
            },
            allowlist,
            secret_scope,
            precheck_queue: Arc::new(SqsPrecheckQueue::new(sqs.clone(), &env.precheck_queue_url)),
            step_queue: Arc::new(SqsStepQueue::new(sqs, &env.step_queue_url)),
        })
    }

    /// The use cases as every Lambda function runs them: prechecks go through the queue.
    pub fn task_service(&self) -> Arc<TaskService> {
        // Runs go through the step queue: run-cycle and run-now send, run-worker takes.
        // The pools live as long as the container: a warm one's next messages reuse them.
        let driver = DriverConfig {
            // Each service holds leases of its own, as each function does.
            owner: DriverConfig::new("lambda").owner,
            ..self.driver.clone()
        };
        let worker = WorkerConfig {
            queue: self.step_queue.clone(),
            pools: Arc::new(EndpointPools::with_idle_ping(driver.idle_ping)),
            driver,
        };
        let host = Host::new(worker)
            .with_precheck_queue(self.precheck_queue.clone(), PRECHECK_WINDOW)
            .with_secret_scope(self.secret_scope.clone());
        TaskService::new(self.ports.clone(), self.allowlist.clone(), host)
    }
}

/// The function's wiring from its environment, with one load of the SDK's configuration
/// (region and credentials from Lambda's environment). The error names the variable to fix.
pub async fn wiring_from_env() -> Result<AwsWiring, EnvError> {
    let env = FunctionEnv::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    AwsWiring::new(&env, &sdk)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn full() -> HashMap<&'static str, String> {
        VARIABLES
            .iter()
            .map(|name| (*name, format!("value-of-{name}")))
            .collect()
    }

    fn read(vars: &HashMap<&'static str, String>) -> Result<FunctionEnv, EnvError> {
        FunctionEnv::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn every_variable_is_read_into_its_field() {
        let env = read(&full()).expect("complete");
        assert_eq!(env.table, "value-of-TIDEMARK_TABLE");
        assert_eq!(
            env.precheck_queue_url,
            "value-of-TIDEMARK_PRECHECK_QUEUE_URL"
        );
        assert_eq!(env.run_cycle_arn, "value-of-TIDEMARK_RUN_CYCLE_ARN");
        assert_eq!(
            env.scheduler_dead_letter_arn,
            "value-of-TIDEMARK_SCHEDULER_DEAD_LETTER_ARN"
        );
    }

    #[test]
    fn a_missing_or_blank_variable_is_named_in_the_error() {
        for name in VARIABLES {
            let mut vars = full();
            vars.remove(name);
            let e = read(&vars).expect_err(name);
            assert!(
                matches!(e, EnvError::Missing { name: n, .. } if n == name),
                "{name}: {e}"
            );
            assert!(
                e.to_string().starts_with(&format!("{name} is not set")),
                "{e}"
            );
            assert!(e.to_string().contains("template.yaml"), "{e}");
            if name != ALLOWED_SECRET_ARNS && name != ALLOWED_SECRET_TAG {
                vars.insert(name, "  ".into());
                assert!(read(&vars).is_err(), "{name} blank");
            }
        }
    }

    #[test]
    fn the_drivers_variables_are_optional_and_a_bad_one_stops_the_start() {
        let defaults = read(&full()).expect("complete").driver;
        assert_eq!(defaults.step_budget, DriverConfig::new("t").step_budget);
        let mut vars = full();
        vars.insert(STEP_BUDGET_SECONDS, "2".into());
        vars.insert(RUN_LEASE_SECONDS, "90".into());
        let env = read(&vars).expect("set");
        assert_eq!(
            (env.driver.step_budget, env.driver.run_lease),
            (Duration::from_secs(2), Duration::from_secs(90))
        );
        vars.insert(STEP_ATTEMPTS, "many".into());
        let e = read(&vars).expect_err("not a number");
        assert!(e.to_string().starts_with(STEP_ATTEMPTS), "{e}");
    }

    #[test]
    fn only_a_star_allows_any_host_and_a_bad_list_is_refused() {
        let mut vars = full();
        vars.insert(ALLOW_HOSTS, String::new());
        let e = read(&vars).expect_err("an empty list is not any host");
        assert!(e.to_string().contains("* for any"), "{e}");
        vars.insert(ALLOW_HOSTS, "*".into());
        let env = read(&vars).expect("a star");
        assert!(!env.allowlist().expect("allow all").is_restricted());
        vars.insert(
            ALLOW_HOSTS,
            "10.0.0.0/8, db.internal, *.abc123xyz.us-east-1.rds.amazonaws.com".into(),
        );
        assert!(
            read(&vars)
                .expect("env")
                .allowlist()
                .expect("a list")
                .is_restricted()
        );
        vars.insert(ALLOW_HOSTS, "10.0.0.0/99".into());
        let e = read(&vars).expect("env").allowlist().expect_err("bad CIDR");
        assert!(e.to_string().starts_with(ALLOW_HOSTS), "{e}");
        assert!(e.to_string().contains("AllowHosts"), "{e}");
    }

    #[test]
    fn the_secret_scope_is_always_in_force_and_a_bad_one_names_its_parameter() {
        let mut vars = full();
        vars.insert(ALLOWED_SECRET_ARNS, String::new());
        vars.insert(ALLOWED_SECRET_TAG, String::new());
        let scope = read(&vars)
            .expect("env")
            .secret_scope()
            .expect("own secrets only");
        assert!(scope.is_restricted());
        vars.insert(
            ALLOWED_SECRET_ARNS,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/*".into(),
        );
        vars.insert(ALLOWED_SECRET_TAG, "tidemark-access=prod".into());
        assert!(read(&vars).expect("env").secret_scope().is_ok());
        vars.insert(ALLOWED_SECRET_TAG, "prod".into());
        let e = read(&vars).expect("env").secret_scope().expect_err("no =");
        assert!(e.to_string().starts_with(ALLOWED_SECRET_TAG), "{e}");
        assert!(e.to_string().contains("AllowedSecretTag"), "{e}");
        vars.insert(ALLOWED_SECRET_TAG, String::new());
        vars.insert(ALLOWED_SECRET_ARNS, "app/*".into());
        let e = read(&vars)
            .expect("env")
            .secret_scope()
            .expect_err("not an ARN");
        assert!(e.to_string().contains("AllowedSecretArns"), "{e}");
    }
}
