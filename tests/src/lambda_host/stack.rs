//! [`AwsStack`]: one deployment of template.yaml in the emulator, its resources named for this
//! stack alone (table, queues, schedule group, secrets' prefix, function names), every function
//! of the template runnable, its SQS event source mappings polling, its rate schedules firing,
//! and its HTTP API answering.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use super::apigw::{self, HttpEvent};
use super::async_invoke::{AsyncInvoker, Destinations};
use super::function::{Credentials, Function, FunctionConfig, LambdaEnv, Outcome, request_id};
use super::instance::{InstanceSpec, LogSink};
use super::schedules::{Due, due_at};
use super::sqs_source::SqsSource;
use super::stack_doc::{STACK_TOKEN, STAGE_TOKEN, StackDoc, rate};
use super::{DEFAULT_CONCURRENCY, TimeScale};
use crate::harness::aws::{emulator_endpoint, sdk_config};
use crate::harness::stack::{repo_dir, stack_dir};

/// How a stack is deployed.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Changes to functions' environments, to deploy a broken stack on purpose: (the function's
    /// logical id, the variable, its value or `None` to remove it).
    pub env_changes: Vec<(String, String, Option<String>)>,
    /// Whether the template's own rate schedules (run-cycle's sweep) fire.
    pub rate_schedules: bool,
    /// The bound of a function the template does not bound.
    pub default_concurrency: usize,
    /// The `AllowHosts` parameter: loopback only.
    pub allow_hosts: String,
}

impl Default for StackOptions {
    fn default() -> StackOptions {
        StackOptions {
            env_changes: Vec::new(),
            rate_schedules: true,
            default_concurrency: DEFAULT_CONCURRENCY,
            allow_hosts: "127.0.0.1/32,::1".into(),
        }
    }
}

/// One deployment, running. Dropping it kills every process and stops every poller.
pub struct AwsStack {
    pub doc: StackDoc,
    pub scale: TimeScale,
    /// The harness's own SDK configuration for the emulator.
    pub sdk: SdkConfig,
    pub logs: LogSink,
    /// `$TIDEMARK_STACK_DIR/aws-suite/<stack>`: names.json, stack.json, functions.log.
    pub dir: PathBuf,
    pub stage: String,
    functions: BTreeMap<String, Arc<Function>>,
    invokers: BTreeMap<String, Arc<AsyncInvoker>>,
    pub sources: Vec<Arc<SqsSource>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Requests API Gateway answered 500 for, with the function's outcome.
    gateway_failures: Mutex<Vec<String>>,
}

impl Drop for AwsStack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The template rendered once for the placeholder names.
static RENDERED: OnceCell<Value> = OnceCell::const_new();

async fn rendered(sqs_endpoint: &str, allow_hosts: &str) -> Value {
    let names = json!({
        "stack_name": STACK_TOKEN,
        "region": "us-east-1",
        "account": "123456789012",
        "parameters": { "StageName": STAGE_TOKEN, "AllowHosts": allow_hosts },
        "sqs_endpoint": sqs_endpoint,
    });
    RENDERED
        .get_or_init(|| async move {
            let dir = stack_dir().join("aws-suite");
            std::fs::create_dir_all(&dir).expect("the suite's directory");
            tokio::task::spawn_blocking(move || {
                let repo = repo_dir();
                StackDoc::render(
                    &tools_python(),
                    &repo.join("infra/local/aws/stack.py"),
                    &repo.join("template.yaml"),
                    &names,
                    &dir,
                )
            })
            .await
            .expect("the render")
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .await
        .clone()
}

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

/// Names no other stack on this emulator has: `tm-<id>` and the stage `s<id>` (at most 20
/// characters, `StageName`'s pattern).
fn unique_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{n:x}x{:05x}", std::process::id(), nanos >> 12)
}

impl AwsStack {
    /// Deploys the template: resources created in the emulator, functions ready, event sources
    /// polling.
    pub async fn deploy(options: StackOptions) -> AwsStack {
        let endpoint = emulator_endpoint();
        let rendered = rendered(&endpoint, &options.allow_hosts).await;
        let id = unique_id();
        let (name, stage) = (format!("tm-{id}"), format!("s{id}"));
        let doc = StackDoc::for_names(&rendered, &name, &stage).unwrap_or_else(|e| panic!("{e}"));
        let dir = stack_dir().join("aws-suite").join(&name);
        std::fs::create_dir_all(&dir).expect("the stack's directory");
        let _ = std::fs::write(
            dir.join("stack.json"),
            rendered
                .to_string()
                .replace(STACK_TOKEN, &name)
                .replace(STAGE_TOKEN, &stage),
        );
        let logs = LogSink::to_file(&dir.join("functions.log")).expect("the log file");
        let sdk = sdk_config().await;
        let scale = TimeScale::from_env();
        create_resources(&doc, &sdk, scale).await;

        let mut functions = BTreeMap::new();
        let bin = binary_dir();
        let empty_config = dir.join("empty-aws-config");
        std::fs::write(&empty_config, "").expect("an empty AWS config file");
        for f in doc.functions().unwrap_or_else(|e| panic!("{e}")) {
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
            let credentials = role_credentials(&f.role_arn);
            let binary = bin.join(&f.binary);
            check_binary(&binary);
            let no_config = empty_config.display().to_string();
            let env = LambdaEnv {
                function_name: &f.name,
                memory_mb: f.memory_mb,
                region: &doc.region,
                log_format: &f.log_format,
                log_level: f.log_level.as_deref(),
                credentials: &credentials,
                endpoint_url: &endpoint,
                no_config_file: &no_config,
                task_root: &bin.display().to_string(),
                variables: &variables,
            }
            .build();
            let config = FunctionConfig {
                logical_id: f.logical_id.clone(),
                name: f.name.clone(),
                arn: f.arn.clone(),
                instance: InstanceSpec {
                    function: f.logical_id.clone(),
                    binary,
                    env,
                    init_timeout: Duration::from_secs(10),
                },
                timeout: scale.scale(f.timeout),
                template_timeout: f.timeout,
                concurrency: f
                    .reserved_concurrency
                    .unwrap_or(options.default_concurrency),
            };
            functions.insert(
                f.logical_id.clone(),
                Arc::new(Function::new(config, logs.clone())),
            );
        }

        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queues = doc.queues();
        let destinations = Destinations {
            sqs: sqs.clone(),
            queues: queues
                .iter()
                .map(|q| (q.arn.clone(), q.url.clone()))
                .collect(),
        };
        let configs = doc.invoke_configs().unwrap_or_else(|e| panic!("{e}"));
        let invokers = functions
            .iter()
            .map(|(id, f)| {
                let config = configs.iter().find(|c| c.function == *id);
                let invoker = AsyncInvoker::new(
                    Arc::clone(f),
                    config.map_or(2, |c| c.maximum_retry_attempts),
                    config.and_then(|c| c.on_failure.clone()),
                    destinations.clone(),
                    scale,
                );
                (id.clone(), Arc::new(invoker))
            })
            .collect();

        let mut sources = Vec::new();
        let mut tasks = Vec::new();
        for m in doc.sqs_mappings().unwrap_or_else(|e| panic!("{e}")) {
            let queue = queues
                .iter()
                .find(|q| q.arn == m.queue_arn)
                .unwrap_or_else(|| panic!("{}: no queue {}", m.logical_id, m.queue_arn));
            let function: &Arc<Function> = &functions[&m.function];
            let pollers = m
                .maximum_concurrency
                .unwrap_or(function.config.concurrency)
                .min(function.config.concurrency);
            let source = Arc::new(SqsSource {
                logical_id: m.logical_id.clone(),
                queue_url: queue.url.clone(),
                queue_arn: queue.arn.clone(),
                region: doc.region.clone(),
                batch_size: m.batch_size,
                report_batch_item_failures: m.report_batch_item_failures,
                function: Arc::clone(function),
                sqs: sqs.clone(),
                stats: Default::default(),
                duplicate_every: Default::default(),
            });
            tasks.extend(source.start(pollers));
            sources.push(source);
        }
        let stack = AwsStack {
            doc,
            scale,
            sdk,
            logs,
            dir,
            stage,
            functions,
            invokers,
            sources,
            tasks: Mutex::new(tasks),
            gateway_failures: Mutex::new(Vec::new()),
        };
        if options.rate_schedules {
            stack.start_rate_schedules();
        }
        stack
    }

    /// The template's rate schedules (run-cycle's sweep), each invoking its target
    /// asynchronously at its scaled rate.
    fn start_rate_schedules(&self) {
        for s in self.doc.schedules() {
            let Some(every) = rate(&s.expression) else {
                continue;
            };
            let Ok(function) = self.doc.function_id(&s.target_arn) else {
                continue;
            };
            let invoker = Arc::clone(&self.invokers[&function]);
            let input: Value = s
                .input
                .as_deref()
                .and_then(|i| serde_json::from_str(i).ok())
                .unwrap_or(json!({}));
            let every = self.scale.scale(every);
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    invoker.invoke_event(input.clone());
                }
            });
            if let Ok(mut tasks) = self.tasks.lock() {
                tasks.push(task);
            }
        }
    }

    /// A function by its logical id (`RunWorkerFunction`).
    #[track_caller]
    pub fn function(&self, logical_id: &str) -> &Arc<Function> {
        self.functions
            .get(logical_id)
            .unwrap_or_else(|| panic!("the template has no function {logical_id}"))
    }

    /// A function's asynchronous invocations.
    #[track_caller]
    pub fn invoker(&self, logical_id: &str) -> &Arc<AsyncInvoker> {
        self.invokers
            .get(logical_id)
            .unwrap_or_else(|| panic!("the template has no function {logical_id}"))
    }

    /// A call through the HTTP API, as API Gateway serves it: the status and the JSON body
    /// (`Null` when empty). A function that cannot start fails the test here.
    pub async fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let bare = path.split('?').next().unwrap_or(path);
        let Some((route, params)) = apigw::match_route(&self.doc.routes, method, bare) else {
            return apigw::not_found();
        };
        let route_key = format!("{} {}", route.method, route.path);
        let api_id = self
            .doc
            .of_kind("AWS::ApiGatewayV2::Api")
            .next()
            .map(|(_, r)| r.physical_id.clone())
            .unwrap_or_default();
        let request_id = request_id();
        let event = HttpEvent {
            method,
            path_and_query: path,
            body,
            route_key: &route_key,
            stage: &self.stage,
            path_parameters: (!params.is_empty()).then_some(params),
            account: &self.doc.account,
            api_id: &api_id,
            request_id: &request_id,
        }
        .to_json();
        match self.function(&route.function).invoke(&event).await {
            Outcome::Response(response) => apigw::http_answer(&response),
            Outcome::InitFailed(reason) => panic!("{method} {path}: {reason}"),
            other => {
                if let Ok(mut failures) = self.gateway_failures.lock() {
                    failures.push(format!("{method} {path}: {other:?}"));
                }
                apigw::internal_error()
            }
        }
    }

    /// Delivers one scheduler invocation: its target invoked asynchronously with its input.
    /// The request id.
    pub fn deliver(&self, due: &Due) -> String {
        let function = self
            .doc
            .function_id(&due.target_arn)
            .unwrap_or_else(|e| panic!("{e}"));
        self.invoker(&function).invoke_event(due.input.clone())
    }

    /// Delivers the invocation of the task schedule `name` (in the stack's group) scheduled at
    /// `at`. The request id.
    pub async fn fire_schedule(&self, name: &str, at: jiff::Timestamp) -> String {
        let group = self.physical_id("ScheduleGroup");
        let scheduler = aws_sdk_scheduler::Client::new(&self.sdk);
        let due = due_at(&scheduler, &group, name, at)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.deliver(&due)
    }

    /// An SQS event source mapping by its logical id (`RunWorkerFunctionSteps`).
    #[track_caller]
    pub fn source(&self, logical_id: &str) -> &Arc<SqsSource> {
        self.sources
            .iter()
            .find(|s| s.logical_id == logical_id)
            .unwrap_or_else(|| panic!("the template has no event source mapping {logical_id}"))
    }

    /// A queue's URL by its logical id.
    #[track_caller]
    pub fn queue_url(&self, logical_id: &str) -> String {
        self.doc
            .queues()
            .into_iter()
            .find(|q| q.logical_id == logical_id)
            .map(|q| q.url)
            .unwrap_or_else(|| panic!("the template has no queue {logical_id}"))
    }

    /// A resource's physical id (what `Ref` gives) by its logical id.
    #[track_caller]
    pub fn physical_id(&self, logical_id: &str) -> String {
        self.doc
            .resource(logical_id)
            .unwrap_or_else(|e| panic!("{e}"))
            .physical_id
            .clone()
    }

    /// Why the stack is not healthy: a function that could not start, or a request API Gateway
    /// answered 500 for.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .functions
            .values()
            .flat_map(|f| f.init_errors())
            .collect();
        if let Ok(failures) = self.gateway_failures.lock() {
            problems.extend(failures.iter().cloned());
        }
        problems
    }

    /// Stops the pollers and the schedules, and kills every process.
    pub fn stop(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        for invoker in self.invokers.values() {
            invoker.abort();
        }
        for function in self.functions.values() {
            function.shut_down();
        }
    }
}

/// The template's table, queues (dead-letter queues first, the visibility timeouts scaled) and
/// schedule group, in the emulator.
async fn create_resources(doc: &StackDoc, sdk: &SdkConfig, scale: TimeScale) {
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
/// Lambda default, divided by the time scale (within each variable's range).
pub fn driver_variables(
    template: &BTreeMap<String, String>,
    scale: TimeScale,
) -> Vec<(String, String)> {
    use tidemark_lambda::env::{
        FIRST_BACKOFF_MS, IDLE_PING_SECONDS, MAX_BACKOFF_SECONDS, RESEND_AFTER_SECONDS,
        RUN_LEASE_SECONDS, STEP_BUDGET_SECONDS, STEP_LEASE_SECONDS, SWEEP_SECONDS, driver_config,
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
    vec![
        (STEP_BUDGET_SECONDS.into(), secs(config.step_budget, 1.0)),
        (STEP_LEASE_SECONDS.into(), secs(config.step_lease, 1.0)),
        (FIRST_BACKOFF_MS.into(), first_ms.to_string()),
        (MAX_BACKOFF_SECONDS.into(), format!("{max_backoff:.3}")),
        (RESEND_AFTER_SECONDS.into(), secs(config.resend_after, 0.1)),
        (RUN_LEASE_SECONDS.into(), secs(config.run_lease, 1.0)),
        (IDLE_PING_SECONDS.into(), secs(config.idle_ping, 0.0)),
        (SWEEP_SECONDS.into(), secs(config.sweep_every, 0.05)),
    ]
}

/// The credentials of a function's role. Until the suite's IAM-enforcing emulator assumes the
/// template's roles, every function gets the emulator's static test credentials.
pub fn role_credentials(_role_arn: &str) -> Credentials {
    Credentials {
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        session_token: None,
    }
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
fn check_binary(binary: &Path) {
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
