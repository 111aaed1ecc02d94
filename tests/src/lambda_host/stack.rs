//! [`AwsStack`]: one deployment of template.yaml in the emulator, its resources named for this
//! stack alone (table, queues, schedule group, secrets' prefix, function names), every function
//! of the template runnable, its SQS event source mappings polling, its rate schedules firing,
//! and its HTTP API answering.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use super::apigw::{self, HttpEvent};
use super::async_invoke::{AsyncInvoker, Destinations};
use super::function::{Function, Outcome, request_id};
use super::iam::{Credentials, IamEmulator, StackFiles};
use super::instance::LogSink;
use super::metrics;
use super::schedules::{self, DueReport};
use super::setup::{create_resources, function_config, tools_python};
use super::sqs_source::SqsSource;
use super::stack_doc::{STACK_TOKEN, STAGE_TOKEN, StackDoc, rate};
use super::{DEFAULT_CONCURRENCY, TimeScale};
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
    /// The time scale, when not [`TimeScale::from_env`]'s.
    pub scale: Option<TimeScale>,
    /// Event source mappings (logical ids) that do not poll, as if disabled.
    pub disabled_mappings: Vec<String>,
    /// Template parameters over the suite's own (`SecretKmsKeyArns`, `WorkerMaxConcurrency`,
    /// `LogRetentionDays`): each distinct set is rendered once.
    pub parameters: Vec<(String, String)>,
    /// Whether the suite's checks after the scenarios judge this stack's calls. A stack deployed
    /// for its calls to be refused (a key its policies do not name) is judged by its scenario.
    pub judged_after: bool,
}

impl Default for StackOptions {
    fn default() -> StackOptions {
        StackOptions {
            env_changes: Vec::new(),
            rate_schedules: true,
            default_concurrency: DEFAULT_CONCURRENCY,
            allow_hosts: "127.0.0.1/32,::1".into(),
            scale: None,
            disabled_mappings: Vec::new(),
            parameters: Vec::new(),
            judged_after: true,
        }
    }
}

/// One deployment, running. Dropping it kills every process and stops every poller.
pub struct AwsStack {
    pub doc: StackDoc,
    pub scale: TimeScale,
    /// The harness's own SDK configuration for the emulator (its administrator key).
    pub sdk: SdkConfig,
    pub iam: IamEmulator,
    /// Each function's (and each other role's) credentials, by logical id.
    pub roles: BTreeMap<String, Credentials>,
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

/// The account of every stack (NAMES.json's).
pub const ACCOUNT: &str = "123456789012";

/// The template rendered for the placeholder names, once per distinct set of parameters (each
/// in a directory of its own, `aws-suite/render-<n>`, the first in `aws-suite`).
type Rendered = (PathBuf, Arc<OnceCell<Value>>);
static RENDERED: Mutex<BTreeMap<String, Rendered>> = Mutex::new(BTreeMap::new());

async fn rendered(sqs_endpoint: &str, options: &StackOptions) -> Value {
    let mut parameters = json!({
        "StageName": STAGE_TOKEN,
        "AllowHosts": options.allow_hosts,
        // The users' own secrets a task may name: RDS's, as the scenarios make them.
        "AllowedSecretArns": format!("arn:aws:secretsmanager:{}:{ACCOUNT}:secret:rds!*", super::REGION),
    });
    for (name, value) in &options.parameters {
        parameters[name] = json!(value);
    }
    let names = json!({
        "stack_name": STACK_TOKEN,
        "region": super::REGION,
        "account": ACCOUNT,
        "parameters": parameters,
        "sqs_endpoint": sqs_endpoint,
    });
    let (dir, cell) = {
        let mut cells = RENDERED.lock().unwrap_or_else(|e| e.into_inner());
        let n = cells.len();
        let (dir, cell) = cells.entry(names.to_string()).or_insert_with(|| {
            let suite = stack_dir().join("aws-suite");
            let dir = if n == 0 {
                suite
            } else {
                suite.join(format!("render-{n}"))
            };
            (dir, Arc::default())
        });
        (dir.clone(), Arc::clone(cell))
    };
    cell.get_or_init(|| async move {
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

/// Every stack this process deployed, for the simulator.
static DEPLOYED: Mutex<Vec<StackFiles>> = Mutex::new(Vec::new());

/// The documents of every stack deployed so far.
pub fn deployed() -> Vec<StackFiles> {
    DEPLOYED.lock().map(|d| d.clone()).unwrap_or_default()
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
    /// Deploys the template: resources created in the emulator, roles loaded and assumed,
    /// functions ready, event sources polling.
    pub async fn deploy(options: StackOptions) -> AwsStack {
        let iam = IamEmulator::from_stack_env();
        let rendered = rendered(&iam.endpoint, &options).await;
        let id = unique_id();
        let (name, stage) = (format!("tm-{id}"), format!("s{id}"));
        let doc = StackDoc::for_names(&rendered, &name, &stage).unwrap_or_else(|e| panic!("{e}"));
        let dir = stack_dir().join("aws-suite").join(&name);
        std::fs::create_dir_all(&dir).expect("the stack's directory");
        let files = StackFiles {
            stack_json: dir.join("stack.json"),
            creds_json: dir.join("creds.json"),
        };
        std::fs::write(
            &files.stack_json,
            rendered
                .to_string()
                .replace(STACK_TOKEN, &name)
                .replace(STAGE_TOKEN, &stage),
        )
        .expect("stack.json");
        let logs = LogSink::to_file(&dir.join("functions.log")).expect("the log file");
        let sdk = iam.sdk(&iam.admin).await;
        let scale = options.scale.unwrap_or_else(TimeScale::from_env);
        let load = {
            let (iam, files) = (iam.clone(), files.clone());
            tokio::task::spawn_blocking(move || {
                iam.load_roles(&files.stack_json, &files.creds_json)
            })
        };
        let ((), roles) = tokio::join!(create_resources(&doc, &sdk, scale), load);
        let roles = roles.expect("roles.py").unwrap_or_else(|e| panic!("{e}"));
        if options.judged_after
            && let Ok(mut deployed) = DEPLOYED.lock()
        {
            deployed.push(files);
        }

        let mut functions = BTreeMap::new();
        let mut role_sdks = BTreeMap::new();
        for f in doc.functions().unwrap_or_else(|e| panic!("{e}")) {
            let credentials = roles
                .get(&f.logical_id)
                .unwrap_or_else(|| panic!("roles.py gave {} no credentials", f.logical_id));
            role_sdks.insert(f.logical_id.clone(), iam.sdk(credentials).await);
            let config = function_config(&f, &options, credentials, &iam.endpoint, &dir, scale);
            functions.insert(
                f.logical_id.clone(),
                Arc::new(Function::new(config, logs.clone())),
            );
        }

        let queues = doc.queues();
        let configs = doc.invoke_configs().unwrap_or_else(|e| panic!("{e}"));
        let invokers = functions
            .iter()
            .map(|(id, f)| {
                let config = configs.iter().find(|c| c.function == *id);
                // Lambda sends destination records with the function's execution role.
                let destinations = Destinations {
                    sqs: aws_sdk_sqs::Client::new(&role_sdks[id]),
                    queues: queues
                        .iter()
                        .map(|q| (q.arn.clone(), q.url.clone()))
                        .collect(),
                };
                let invoker = AsyncInvoker::new(
                    Arc::clone(f),
                    config.map_or(2, |c| c.maximum_retry_attempts),
                    config.and_then(|c| c.on_failure.clone()),
                    destinations,
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
                // Lambda polls with the function's execution role.
                sqs: aws_sdk_sqs::Client::new(&role_sdks[&m.function]),
                stats: Default::default(),
                duplicate_every: Default::default(),
            });
            if !options.disabled_mappings.contains(&m.logical_id) {
                tasks.extend(source.start(pollers));
            }
            sources.push(source);
        }
        let stack = AwsStack {
            doc,
            scale,
            sdk,
            iam,
            roles,
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

    /// Delivers the scheduler's invocations due in [from, to) as `fire.py` computes them from
    /// the schedules in the stack's group, each to its target asynchronously; schedules that
    /// completed with `ActionAfterCompletion: DELETE` are deleted. The report.
    pub async fn fire_due(&self, from: jiff::Timestamp, to: jiff::Timestamp) -> DueReport {
        let report = self.due(from, to, true).await;
        for invocation in &report.invocations {
            self.deliver(invocation);
        }
        report
    }

    /// What `fire.py` says is due in [from, to), delivering nothing; with `apply`, completed
    /// schedules whose `ActionAfterCompletion` is `DELETE` are deleted.
    pub async fn due(&self, from: jiff::Timestamp, to: jiff::Timestamp, apply: bool) -> DueReport {
        let group = self.physical_id("ScheduleGroup");
        let iam = self.iam.clone();
        tokio::task::spawn_blocking(move || {
            schedules::due(&tools_python(), &iam, &group, from, to, apply)
        })
        .await
        .expect("fire.py")
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Takes a role's inline policy away in the emulator (the template is unchanged, and the
    /// simulator still judges the role's calls by it): the role's calls that needed it are
    /// refused from then on, as when a service a function needs does not answer it.
    pub async fn revoke(&self, role: &str, policy: &str) {
        let role_name = self.physical_id(role);
        let script = concat!(
            "import boto3, sys; ",
            "boto3.client('iam', endpoint_url=sys.argv[1], region_name=sys.argv[6], ",
            "aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])",
            ".delete_role_policy(RoleName=sys.argv[4], PolicyName=sys.argv[5])"
        );
        let status = tokio::process::Command::new(tools_python())
            .arg("-c")
            .arg(script)
            .arg(&self.iam.endpoint)
            .arg(&self.iam.admin.access_key_id)
            .arg(&self.iam.admin.secret_access_key)
            .arg(&role_name)
            .arg(policy)
            .arg(super::REGION)
            .status()
            .await
            .expect("python");
        assert!(status.success(), "DeleteRolePolicy {role_name} {policy}");
    }

    /// Delivers one scheduler invocation (`fire.py due`'s): its target invoked asynchronously
    /// with its input. The request id.
    pub fn deliver(&self, invocation: &Value) -> String {
        let target = invocation["target_arn"].as_str().unwrap_or_default();
        let function = self
            .doc
            .function_id(target)
            .unwrap_or_else(|e| panic!("{e}"));
        let input: Value = invocation["input"]
            .as_str()
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_else(|| panic!("the invocation's input is not JSON: {invocation}"));
        self.invoker(&function).invoke_event(input)
    }

    /// The scheduler gives up on `invocation` (`fire.py due`'s): the message it writes to the
    /// schedule's dead-letter queue (`fire.py dead-letter`), sent with the schedule's role.
    pub async fn dead_letter(&self, invocation: &Value, error_code: &str, message: &str) -> Value {
        let iam = self.iam.clone();
        let (inv, code, text) = (
            invocation.clone(),
            error_code.to_owned(),
            message.to_owned(),
        );
        let letter = tokio::task::spawn_blocking(move || {
            let attempts = inv["retry_policy"]["MaximumRetryAttempts"]
                .as_u64()
                .unwrap_or(0);
            schedules::dead_letter(&tools_python(), &iam, &inv, &code, &text, attempts as u32)
        })
        .await
        .expect("fire.py")
        .unwrap_or_else(|e| panic!("{e}"));
        let role = invocation["role_arn"].as_str().unwrap_or_default();
        let sdk = self.iam.sdk(self.role_by_arn(role)).await;
        let queue = letter["QueueArn"].as_str().unwrap_or_default();
        let url = self
            .doc
            .queues()
            .into_iter()
            .find(|q| q.arn == queue)
            .map(|q| q.url)
            .unwrap_or_else(|| panic!("the dead-letter queue {queue} is not the stack's"));
        let mut send = aws_sdk_sqs::Client::new(&sdk)
            .send_message()
            .queue_url(url)
            .message_body(letter["MessageBody"].as_str().unwrap_or_default());
        for (name, value) in letter["MessageAttributes"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value["StringValue"].as_str().unwrap_or_default())
                .build()
                .expect("an attribute");
            send = send.message_attributes(name, attribute);
        }
        send.send()
            .await
            .unwrap_or_else(|e| panic!("the scheduler's dead letter: {e:?}"));
        letter
    }

    /// The sum of a metric the stack's metric filters make of the functions' logs so far.
    pub fn metric(&self, namespace: &str, name: &str) -> f64 {
        metrics::metric_sum(&self.doc, &self.logs, namespace, name)
    }

    /// Whether an alarm of the template would be in ALARM on the functions' logs so far.
    pub fn alarm_rings(&self, logical_id: &str) -> bool {
        metrics::alarm_rings(
            &self.doc,
            &self.logs,
            &|f, m| self.lambda_metric(f, m),
            logical_id,
        )
    }

    /// AWS/Lambda's metric `name` of function `logical_id` so far, from the host's counts. The
    /// host never throttles (an invocation over a function's bound waits for a slot), so its
    /// `Throttles` are 0.
    pub fn lambda_metric(&self, logical_id: &str, name: &str) -> f64 {
        let stats = &self.function(logical_id).stats;
        match name {
            "Errors" => stats.errors.load(Ordering::Relaxed) as f64,
            "Invocations" => stats.invocations.load(Ordering::Relaxed) as f64,
            "Throttles" => 0.0,
            other => panic!("AWS/Lambda's {other} is not counted by the host"),
        }
    }

    /// The credentials of the role with ARN `arn`.
    #[track_caller]
    pub fn role_by_arn(&self, arn: &str) -> &Credentials {
        self.doc
            .of_kind("AWS::IAM::Role")
            .find(|(_, r)| r.attribute("Arn") == Some(arn))
            .and_then(|(id, _)| self.roles.get(id))
            .unwrap_or_else(|| panic!("no role {arn} in the stack"))
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
