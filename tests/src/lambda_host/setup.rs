//! What a deployment needs before it runs: the template's resources in the emulator, the run
//! driver's durations scaled, and the binaries, built and current.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

use super::TimeScale;
use super::function::{FunctionConfig, LambdaEnv};
use super::iam::Credentials;
use super::instance::InstanceSpec;
use super::stack::StackOptions;
use super::stack_doc::{FunctionDoc, StackDoc};
use crate::harness::stack::repo_dir;

/// The pinned Python of the AWS suite's tools (`install.sh` makes it).
pub fn tools_python() -> PathBuf {
    let tools = std::env::var_os("TIDEMARK_TOOLS_DIR").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/tidemark-tools")
        },
        PathBuf::from,
    );
    tools.join("aws/bin/python")
}

/// The template's table, queues (dead-letter queues first, the visibility timeouts scaled) and
/// schedule group, in the emulator.
pub async fn create_resources(doc: &StackDoc, sdk: &SdkConfig, scale: TimeScale) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    for (id, table) in doc.of_kind("AWS::DynamoDB::Table") {
        let mut create = dynamodb
            .create_table()
            .table_name(&table.physical_id)
            .billing_mode(BillingMode::PayPerRequest);
        for a in table
            .prop("AttributeDefinitions")
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = a["AttributeName"].as_str().unwrap_or_default();
            let kind = ScalarAttributeType::from(a["AttributeType"].as_str().unwrap_or("S"));
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(kind)
                    .build()
                    .expect("an attribute"),
            );
        }
        for k in table.prop("KeySchema").as_array().into_iter().flatten() {
            let name = k["AttributeName"].as_str().unwrap_or_default();
            let kind = KeyType::from(k["KeyType"].as_str().unwrap_or("HASH"));
            create = create.key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .expect("a key"),
            );
        }
        create
            .send()
            .await
            .unwrap_or_else(|e| panic!("{id}: CreateTable: {e:?}"));
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queues = doc.queues();
    queues.sort_by_key(|q| q.redrive.is_some());
    for q in queues {
        let mut create = sqs.create_queue().queue_name(&q.name).attributes(
            QueueAttributeName::VisibilityTimeout,
            scale.whole_seconds(q.visibility_timeout).to_string(),
        );
        if let Some(retention) = q.retention {
            create = create.attributes(
                QueueAttributeName::MessageRetentionPeriod,
                retention.to_string(),
            );
        }
        if let Some((dlq, max)) = &q.redrive {
            let policy = json!({ "deadLetterTargetArn": dlq, "maxReceiveCount": max });
            create = create.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = create
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: CreateQueue: {e:?}", q.logical_id))
            .queue_url
            .unwrap_or_default();
        assert_eq!(url, q.url, "{}: the emulator's URL", q.logical_id);
    }
    let scheduler = aws_sdk_scheduler::Client::new(sdk);
    for (id, group) in doc.of_kind("AWS::Scheduler::ScheduleGroup") {
        scheduler
            .create_schedule_group()
            .name(&group.physical_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{id}: CreateScheduleGroup: {e:?}"));
    }
}

/// The run driver's durations for a function: the template's value where it sets one, else the
/// Lambda default (derived from `TIDEMARK_WORKER_TIMEOUT_SECONDS` when the template sets it),
/// divided by the time scale (within each variable's range); the worker's timeout itself as the
/// host gives it ([`TimeScale::timeout`], whole seconds).
pub fn driver_variables(
    template: &BTreeMap<String, String>,
    scale: TimeScale,
) -> Vec<(String, String)> {
    use tidemark_lambda::env::{
        FIRST_BACKOFF_MS, IDLE_PING_SECONDS, MAX_BACKOFF_SECONDS, RESEND_AFTER_SECONDS,
        RUN_LEASE_SECONDS, STEP_BUDGET_SECONDS, STEP_LEASE_SECONDS, SWEEP_SECONDS,
        WORKER_TIMEOUT_SECONDS, driver_config,
    };
    let config = driver_config(&|name| template.get(name).cloned(), "lambda")
        .unwrap_or_else(|e| panic!("the template's driver variables: {e}"));
    let secs = |d: Duration, min: f64| format!("{:.3}", scale.scale(d).as_secs_f64().max(min));
    let first_ms = (scale.scale(config.first_backoff).as_millis() as u64).max(1);
    let max_backoff = scale
        .scale(config.max_backoff)
        .as_secs_f64()
        .max(1.0)
        .max(first_ms as f64 / 1000.0);
    let mut out = Vec::new();
    if let Some(timeout) = template
        .get(WORKER_TIMEOUT_SECONDS)
        .and_then(|t| t.trim().parse::<u64>().ok())
    {
        let scaled = scale.timeout(Duration::from_secs(timeout));
        out.push((
            WORKER_TIMEOUT_SECONDS.to_owned(),
            scaled.as_secs_f64().ceil().to_string(),
        ));
    }
    out.extend([
        (STEP_BUDGET_SECONDS.into(), secs(config.step_budget, 1.0)),
        (
            STEP_LEASE_SECONDS.into(),
            secs(config.step_lease, super::MIN_LEASE.as_secs_f64()),
        ),
        (FIRST_BACKOFF_MS.into(), first_ms.to_string()),
        (MAX_BACKOFF_SECONDS.into(), format!("{max_backoff:.3}")),
        (RESEND_AFTER_SECONDS.into(), secs(config.resend_after, 0.1)),
        (RUN_LEASE_SECONDS.into(), secs(config.run_lease, 1.0)),
        (IDLE_PING_SECONDS.into(), secs(config.idle_ping, 0.0)),
        (SWEEP_SECONDS.into(), secs(config.sweep_every, 0.05)),
    ]);
    out
}

/// Where cargo put the workspace's binaries: the directory above this test executable's
/// (`target/debug/deps/aws-…`), so `CARGO_TARGET_DIR` and `--target` are honoured.
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the target directory")
}

/// Fails unless `binary` exists and is newer than every source it is built from (the test
/// command builds the binaries first: `cargo build --workspace --bins --locked`).
pub fn check_binary(binary: &Path) {
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build --workspace --bins --locked` before this suite \
                 (infra/local/test.sh does)",
                binary.display()
            )
        });
    let newest = newest_source();
    if let Some((when, path)) = newest
        && when > built
    {
        panic!(
            "{} is older than {}: run `cargo build --workspace --bins --locked` before this suite",
            binary.display(),
            path.display()
        );
    }
}

/// The newest Rust source the binaries are built from (`functions/*/src`, `shared/*/src`),
/// found once. (Not `Cargo.toml` or `Cargo.lock`: a change there that leaves the binaries as
/// they were does not make cargo write them again.)
fn newest_source() -> Option<(SystemTime, PathBuf)> {
    static NEWEST: std::sync::OnceLock<Option<(SystemTime, PathBuf)>> = std::sync::OnceLock::new();
    NEWEST
        .get_or_init(|| {
            let repo = repo_dir();
            let mut newest: Option<(SystemTime, PathBuf)> = None;
            let mut consider = |path: PathBuf| {
                if let Ok(when) = std::fs::metadata(&path).and_then(|m| m.modified())
                    && newest.as_ref().is_none_or(|(n, _)| when > *n)
                {
                    newest = Some((when, path));
                }
            };
            let mut dirs = vec![repo.join("functions"), repo.join("shared")];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        if !path.ends_with("tests") && !path.ends_with("benches") {
                            dirs.push(path);
                        }
                    } else if path.extension().is_some_and(|e| e == "rs") {
                        consider(path);
                    }
                }
            }
            newest
        })
        .clone()
}

/// How the host runs one function: its binary, Lambda's environment with the template's
/// variables (the driver's durations scaled, the options' changes made), its role's credentials,
/// its scaled timeout and its concurrency bound.
pub fn function_config(
    f: &FunctionDoc,
    options: &StackOptions,
    credentials: &Credentials,
    endpoint: &str,
    dir: &Path,
    scale: TimeScale,
) -> FunctionConfig {
    let mut variables = f.variables.clone();
    for (k, v) in driver_variables(&f.variables, scale) {
        variables.insert(k, v);
    }
    for (function, var, value) in &options.env_changes {
        if *function == f.logical_id {
            match value {
                Some(v) => variables.insert(var.clone(), v.clone()),
                None => variables.remove(var),
            };
        }
    }
    let bin = binary_dir();
    let binary = bin.join(&f.binary);
    check_binary(&binary);
    let empty_config = dir.join("empty-aws-config");
    std::fs::write(&empty_config, "").expect("an empty AWS config file");
    let env = LambdaEnv {
        function_name: &f.name,
        memory_mb: f.memory_mb,
        region: super::REGION,
        log_format: &f.log_format,
        log_level: f.log_level.as_deref(),
        credentials,
        endpoint_url: endpoint,
        no_config_file: &empty_config.display().to_string(),
        task_root: &bin.display().to_string(),
        variables: &variables,
    }
    .build();
    FunctionConfig {
        logical_id: f.logical_id.clone(),
        name: f.name.clone(),
        arn: f.arn.clone(),
        instance: InstanceSpec {
            function: f.logical_id.clone(),
            binary,
            env,
            init_timeout: Duration::from_secs(10),
        },
        timeout: scale.timeout(f.timeout),
        template_timeout: f.timeout,
        concurrency: f
            .reserved_concurrency
            .unwrap_or(options.default_concurrency),
    }
}
