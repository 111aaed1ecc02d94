//! The Lambda functions end to end: each function's handler, wired as its `main` wires it
//! ([`tidemark_lambda::AwsWiring`]) but over the emulator's SDK configuration, fed the events
//! Lambda delivers — API Gateway HTTP API (payload 2.0) requests and SQS batches, built as JSON
//! and parsed with lambda_http's and aws_lambda_events' own types.
//!
//! - `api`: the three API functions (create-task, precheck, manage-task) and the precheck queue.
//! - `secrets`: a `password_secret` the user gives: its username, its scope.
//! - `cycle`: run-cycle (the scheduler's payload) and run-worker (SQS batches from the step
//!   queue, short deadlines, duplicate deliveries), the copy checked against the source.
//!
//! Each function gets its own service, as separate Lambda functions do: nothing passes between
//! them but the emulator's table, queues, schedules and secrets. What the functions log is read
//! with [`tidemark_lambda::logs::LogBuffer`], through their own JSON subscriber.

mod api;
mod cycle;
mod expiry;
mod lifecycle;
mod secrets;

use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use serde_json::{Value, json};
use tidemark_lambda::api::{HttpApp, answer, http_app};
use tidemark_lambda::env::{
    ALLOW_HOSTS, ALLOWED_SECRET_ARNS, ALLOWED_SECRET_TAG, PRECHECK_QUEUE_URL, RUN_CYCLE_ARN,
    SCHEDULE_GROUP, SCHEDULER_DEAD_LETTER_ARN, SCHEDULER_ROLE_ARN, SECRET_PREFIX,
    STEP_BUDGET_SECONDS, STEP_QUEUE_URL, TABLE,
};
use tidemark_lambda::precheck::{PrecheckAnswer, PrecheckEvent, PrecheckHandler};
use tidemark_lambda::worker::WorkerHandler;
use tidemark_lambda::{AwsWiring, FunctionEnv};
use tidemark_service::TaskService;
use tidemark_tests::harness::aws::sdk_config;
use tidemark_tests::harness::unique_name;
use tidemark_tests::lambda_host::apigw::HttpEvent;

/// The stage the events carry, as template.yaml's default `StageName` makes API Gateway send it.
pub const STAGE: &str = "prod";
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// The functions that answer HTTP, as template.yaml routes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    CreateTask,
    Precheck,
    ManageTask,
}

/// Which function API Gateway sends `method path` to, and the route key it matched.
pub fn route(method: &str, path: &str) -> (Function, &'static str) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("POST", ["tasks"]) => (Function::CreateTask, "POST /tasks"),
        ("POST", ["connections", "test"]) => (Function::Precheck, "POST /connections/test"),
        ("POST", ["tasks", _, "precheck"]) => (Function::Precheck, "POST /tasks/{id}/precheck"),
        ("GET", ["tasks"]) => (Function::ManageTask, "GET /tasks"),
        _ => (Function::ManageTask, "ANY /tasks/{proxy+}"),
    }
}

/// An HTTP API (payload 2.0) request as API Gateway sends it for an IAM-signed call through the
/// named stage (the AWS suite's event builder).
pub fn http_event(method: &str, path_and_query: &str, body: Option<&str>) -> Value {
    let path = path_and_query.split('?').next().unwrap_or(path_and_query);
    let (_, route_key) = route(method, path);
    HttpEvent {
        method,
        path_and_query,
        body,
        route_key,
        stage: STAGE,
        path_parameters: None,
        account: ACCOUNT,
        api_id: "a1b2c3d4e5",
        request_id: &unique_name("req"),
    }
    .to_json()
}

/// An SQS batch as Lambda's event source mapping delivers it, from received messages.
pub fn sqs_event(queue_arn: &str, messages: &[aws_sdk_sqs::types::Message]) -> Value {
    tidemark_tests::lambda_host::sqs_source::sqs_event(queue_arn, REGION, messages)
}

/// The three API functions over the emulator, with a table, queues, a schedule group and a
/// secret prefix of their own.
pub struct Deployment {
    pub sdk: SdkConfig,
    pub env: FunctionEnv,
    pub precheck_queue_arn: String,
    pub step_queue_arn: String,
    /// The step dead-letter queue run-worker also consumes (redriven steps, the scheduler's and
    /// run-cycle's dead letters).
    pub step_dead_letter_arn: String,
    /// run-cycle's service and run-worker's handler.
    pub run_cycle: Arc<TaskService>,
    pub run_worker: WorkerHandler,
    create_task: HttpApp,
    manage_task: HttpApp,
    precheck: PrecheckHandler,
}

impl Deployment {
    /// The functions with template.yaml's defaults: only the secrets they make may be named.
    pub async fn new() -> Deployment {
        Deployment::with(&[]).await
    }

    /// The functions with some variables (the secret scope's) set otherwise.
    pub async fn with(overrides: &[(&str, &str)]) -> Deployment {
        let sdk = sdk_config().await;
        let table = unique_name("lambda_state");
        tidemark_aws::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
            .await
            .expect("the table");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue = |tag: &'static str| {
            let sqs = sqs.clone();
            async move {
                let url = sqs
                    .create_queue()
                    .queue_name(unique_name(tag))
                    .send()
                    .await
                    .expect("a queue")
                    .queue_url
                    .expect("its URL");
                let arn = queue_arn(&sqs, &url).await;
                (url, arn)
            }
        };
        let (step_url, step_arn) = queue("steps").await;
        let (_, step_dead_letter_arn) = queue("steps_dlq").await;
        let (precheck_url, precheck_arn) = queue("prechecks").await;
        let (_, dead_letter_arn) = queue("scheduler_dlq").await;
        let group = unique_name("lambda_group");
        aws_sdk_scheduler::Client::new(&sdk)
            .create_schedule_group()
            .name(&group)
            .send()
            .await
            .expect("the schedule group");
        let vars = vec![
            (TABLE, table),
            (STEP_QUEUE_URL, step_url),
            (PRECHECK_QUEUE_URL, precheck_url),
            (SCHEDULE_GROUP, group),
            (ALLOW_HOSTS, "127.0.0.1/32,::1".to_owned()),
            (SECRET_PREFIX, format!("tidemark/{}/", unique_name("stage"))),
            (ALLOWED_SECRET_ARNS, String::new()),
            (ALLOWED_SECRET_TAG, String::new()),
            (
                RUN_CYCLE_ARN,
                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:tidemark-run-cycle"),
            ),
            (
                SCHEDULER_ROLE_ARN,
                format!("arn:aws:iam::{ACCOUNT}:role/tidemark-SchedulerRole-AbC123"),
            ),
            (SCHEDULER_DEAD_LETTER_ARN, dead_letter_arn),
            // Short, so a test's short deadlines postpone some steps.
            (STEP_BUDGET_SECONDS, "2".to_owned()),
        ];
        let env = FunctionEnv::from_lookup(|name| {
            let overridden = overrides.iter().find(|(n, _)| *n == name);
            match overridden {
                Some((_, v)) => Some((*v).to_owned()),
                None => vars
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone()),
            }
        })
        .expect("a complete environment");
        // One wiring per function, as each function's cold start builds its own.
        let service = || {
            AwsWiring::new(&env, &sdk)
                .expect("the wiring")
                .task_service()
        };
        Deployment {
            create_task: http_app(service()),
            manage_task: http_app(service()),
            precheck: PrecheckHandler::new(service()),
            run_cycle: service(),
            run_worker: WorkerHandler::new(service(), Some(step_dead_letter_arn.clone())),
            step_dead_letter_arn,
            precheck_queue_arn: precheck_arn,
            step_queue_arn: step_arn,
            env,
            sdk,
        }
    }

    /// Calls the API as API Gateway would: the event to the function the route belongs to; the
    /// status and the JSON body (`Null` when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (function, _) = route(method, path.split('?').next().unwrap_or(path));
        let event = http_event(method, path, body);
        let response = match function {
            Function::CreateTask => self.answer(&self.create_task, event).await,
            Function::ManageTask => self.answer(&self.manage_task, event).await,
            Function::Precheck => {
                let event: PrecheckEvent =
                    serde_json::from_value(event).expect("the precheck function's event");
                match self
                    .precheck
                    .handle(LambdaEvent::new(event, Context::default()))
                    .await
                    .expect("an answer")
                {
                    PrecheckAnswer::Http(response) => response,
                    other => panic!("an HTTP event answered {other:?}"),
                }
            }
        };
        let status = response["statusCode"].as_u64().expect("a statusCode");
        let body = match response["body"].as_str() {
            None | Some("") => Value::Null,
            Some(text) => serde_json::from_str(text).expect("a JSON body"),
        };
        (u16::try_from(status).expect("a status"), body)
    }

    async fn answer(&self, app: &HttpApp, event: Value) -> Value {
        let request: LambdaRequest = serde_json::from_value(event).expect("an HTTP API request");
        answer(app, LambdaEvent::new(request, Context::default()))
            .await
            .expect("an answer")
    }

    /// Takes what is on the precheck queue and delivers it to the precheck function as one SQS
    /// batch, then deletes the messages the function did not report as failed (as Lambda's event
    /// source mapping does). The batch event and the function's answer.
    pub async fn deliver_prechecks(&self) -> (Value, Value) {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let received = sqs
            .receive_message()
            .queue_url(&self.env.precheck_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let messages = received.messages();
        let batch = sqs_event(&self.precheck_queue_arn, messages);
        let event: PrecheckEvent =
            serde_json::from_value(batch.clone()).expect("the precheck function's event");
        let answer = self
            .precheck
            .handle(LambdaEvent::new(event, Context::default()))
            .await
            .expect("an answer");
        let answer = serde_json::to_value(answer).expect("JSON");
        for m in messages {
            let failed = answer["batchItemFailures"].as_array().is_some_and(|f| {
                f.iter()
                    .any(|f| f["itemIdentifier"] == json!(m.message_id()))
            });
            if !failed {
                sqs.delete_message()
                    .queue_url(&self.env.precheck_queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        (batch, answer)
    }

    /// Hands the step queue's messages to run-worker, one an invocation (BatchSize 1), until the
    /// run at `run_path` is over; returns it.
    pub async fn drain_steps(&self, run_path: &str) -> Value {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let started = std::time::Instant::now();
        loop {
            let (_, run) = self.call("GET", run_path, None).await;
            if run["status"] != "pending" && run["status"] != "running" {
                return run;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "the run did not end: {run}"
            );
            let received = sqs
                .receive_message()
                .queue_url(&self.env.step_queue_url)
                .max_number_of_messages(1)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            for message in received.messages() {
                let event = sqs_event(&self.step_queue_arn, std::slice::from_ref(message));
                let mut context = Context::default();
                context.deadline = u64::try_from(jiff::Timestamp::now().as_millisecond() + 60_000)
                    .expect("after the epoch");
                let answer = self
                    .run_worker
                    .handle(LambdaEvent::new(
                        serde_json::from_value(event).expect("an SQS batch"),
                        context,
                    ))
                    .await;
                assert!(answer.batch_item_failures.is_empty(), "a step errored");
                sqs.delete_message()
                    .queue_url(&self.env.step_queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// Hands run-worker one message of the step dead-letter queue, as its event source mapping
    /// would: `body` with string message `attributes`. The batch's answer.
    pub async fn deliver_dead_letter(&self, body: &str, attributes: &[(&str, &str)]) -> Value {
        let attributes: serde_json::Map<String, Value> = attributes
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    json!({ "stringValue": v, "dataType": "String" }),
                )
            })
            .collect();
        let event = json!({ "Records": [ {
            "messageId": unique_name("msg"),
            "receiptHandle": "AQEB-dead-letter",
            "body": body,
            "attributes": { "ApproximateReceiveCount": "1", "SentTimestamp": "1795426200000" },
            "messageAttributes": attributes,
            "md5OfBody": "0",
            "eventSource": "aws:sqs",
            "eventSourceARN": self.step_dead_letter_arn,
            "awsRegion": REGION
        } ] });
        let answer = self
            .run_worker
            .handle(LambdaEvent::new(
                serde_json::from_value(event).expect("an SQS batch"),
                Context::default(),
            ))
            .await;
        serde_json::to_value(answer).expect("JSON")
    }

    /// Every item of the table, as text (for "nothing secret here" checks).
    pub async fn table_text(&self) -> String {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut text = String::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(&self.env.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                text.push_str(&format!("{item:?}\n"));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return text;
            }
        }
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .expect("a queue ARN")
}
