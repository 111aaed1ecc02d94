//! STACK.json — `infra/local/aws/stack.py render`'s output: template.yaml translated by
//! aws-sam-translator with every intrinsic resolved for one stack — read into what the host
//! runs: functions, SQS event source mappings, asynchronous invocation settings, queues, the
//! table, schedules and the HTTP API's routes.
//!
//! The document is rendered once per test process for placeholder names ([`STACK_TOKEN`],
//! [`STAGE_TOKEN`]) and each stack's names are put in their place ([`StackDoc::for_names`]):
//! rendering costs seconds of CPU that the scenarios, running at once, need.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

/// The stack name the document is rendered with, replaced by each stack's.
pub const STACK_TOKEN: &str = "tmstackzz";
/// The `StageName` parameter it is rendered with, replaced by each stack's.
pub const STAGE_TOKEN: &str = "tmstagezz";

/// One resource of the rendered stack.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub properties: Value,
    pub metadata: Value,
    /// What `Ref` gives.
    pub physical_id: String,
    /// What `Fn::GetAtt` gives.
    pub attributes: Map<String, Value>,
}

impl Resource {
    pub fn prop(&self, key: &str) -> &Value {
        &self.properties[key]
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
}

/// An HTTP API route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, ... or `ANY`.
    pub method: String,
    /// `/tasks/{id}/precheck`, `/tasks/{proxy+}`.
    pub path: String,
    /// The function's logical id.
    pub function: String,
}

/// The rendered stack.
#[derive(Debug, Clone)]
pub struct StackDoc {
    pub name: String,
    pub region: String,
    pub account: String,
    pub parameters: Map<String, Value>,
    pub resources: BTreeMap<String, Resource>,
    pub routes: Vec<Route>,
}

/// A function as the template declares it.
#[derive(Debug, Clone)]
pub struct FunctionDoc {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    /// `Metadata.BuildProperties.Binary`: the cargo binary `sam build` makes the bootstrap of.
    pub binary: String,
    pub variables: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub role_arn: String,
    pub log_format: String,
    pub log_level: Option<String>,
    pub reserved_concurrency: Option<usize>,
}

/// An SQS event source mapping.
#[derive(Debug, Clone)]
pub struct MappingDoc {
    pub logical_id: String,
    /// The function's logical id.
    pub function: String,
    pub queue_arn: String,
    pub batch_size: usize,
    pub report_batch_item_failures: bool,
    pub maximum_concurrency: Option<usize>,
}

/// A function's asynchronous invocation settings (`AWS::Lambda::EventInvokeConfig`).
#[derive(Debug, Clone)]
pub struct InvokeConfigDoc {
    pub function: String,
    pub maximum_retry_attempts: u32,
    pub on_failure: Option<String>,
    pub on_success: Option<String>,
}

/// An SQS queue.
#[derive(Debug, Clone)]
pub struct QueueDoc {
    pub logical_id: String,
    pub name: String,
    pub url: String,
    pub arn: String,
    pub visibility_timeout: Duration,
    pub retention: Option<u64>,
    /// The dead-letter queue's ARN and `maxReceiveCount`.
    pub redrive: Option<(String, u32)>,
}

/// An EventBridge Scheduler schedule the template itself declares (SAM's `ScheduleV2`).
#[derive(Debug, Clone)]
pub struct ScheduleDoc {
    pub logical_id: String,
    pub expression: String,
    pub target_arn: String,
    pub input: Option<String>,
}

impl StackDoc {
    pub fn parse(doc: &Value) -> Result<StackDoc, String> {
        let text = |v: &Value, what: &str| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("STACK.json: {what} is not a string"))
        };
        let stack = &doc["Stack"];
        let mut resources = BTreeMap::new();
        for (id, r) in doc["Resources"]
            .as_object()
            .ok_or("STACK.json has no Resources")?
        {
            resources.insert(
                id.clone(),
                Resource {
                    kind: text(&r["Type"], &format!("{id}.Type"))?,
                    properties: r["Properties"].clone(),
                    metadata: r["Metadata"].clone(),
                    physical_id: text(&r["PhysicalId"], &format!("{id}.PhysicalId"))?,
                    attributes: r["Attributes"].as_object().cloned().unwrap_or_default(),
                },
            );
        }
        let mut routes = Vec::new();
        for r in doc["Routes"].as_array().ok_or("STACK.json has no Routes")? {
            routes.push(Route {
                method: text(&r["method"], "a route's method")?,
                path: text(&r["path"], "a route's path")?,
                function: text(&r["function"], "a route's function")?,
            });
        }
        Ok(StackDoc {
            name: text(&stack["name"], "Stack.name")?,
            region: text(&stack["region"], "Stack.region")?,
            account: text(&stack["account"], "Stack.account")?,
            parameters: doc["Parameters"].as_object().cloned().unwrap_or_default(),
            resources,
            routes,
        })
    }

    /// Renders `template` with `stack.py` (the pinned translator's Python) for `names`.
    pub fn render(
        python: &Path,
        stack_py: &Path,
        template: &Path,
        names: &Value,
        dir: &Path,
    ) -> Result<Value, String> {
        let names_file = dir.join("names.json");
        let out_file = dir.join("stack.json");
        std::fs::write(&names_file, names.to_string()).map_err(|e| e.to_string())?;
        let output = std::process::Command::new(python)
            .arg(stack_py)
            .args(["render", "--template"])
            .arg(template)
            .arg("--names")
            .arg(&names_file)
            .arg("--out")
            .arg(&out_file)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        if !output.status.success() {
            return Err(format!(
                "stack.py render failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let text = std::fs::read_to_string(&out_file).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("STACK.json: {e}"))
    }

    /// The document rendered for the placeholder names, with `stack` and `stage` in their place.
    pub fn for_names(rendered: &Value, stack: &str, stage: &str) -> Result<StackDoc, String> {
        let text = rendered
            .to_string()
            .replace(STACK_TOKEN, stack)
            .replace(STAGE_TOKEN, stage);
        let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        StackDoc::parse(&value)
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Resource)> {
        self.resources
            .iter()
            .filter(move |(_, r)| r.kind == kind)
            .map(|(id, r)| (id.as_str(), r))
    }

    pub fn resource(&self, logical_id: &str) -> Result<&Resource, String> {
        self.resources
            .get(logical_id)
            .ok_or_else(|| format!("STACK.json has no resource {logical_id}"))
    }

    /// The logical id of the function a `FunctionName` (name or ARN, maybe qualified) names.
    pub fn function_id(&self, name: &str) -> Result<String, String> {
        let bare = name.strip_suffix(":$LATEST").unwrap_or(name);
        self.of_kind("AWS::Lambda::Function")
            .find(|(_, r)| r.physical_id == bare || r.attribute("Arn") == Some(bare))
            .map(|(id, _)| id.to_owned())
            .ok_or_else(|| format!("no function named {name} in STACK.json"))
    }

    pub fn functions(&self) -> Result<Vec<FunctionDoc>, String> {
        let mut out = Vec::new();
        for (id, r) in self.of_kind("AWS::Lambda::Function") {
            let binary = r.metadata["BuildProperties"]["Binary"]
                .as_str()
                .ok_or_else(|| format!("{id} has no Metadata.BuildProperties.Binary"))?;
            let variables = r.prop("Environment")["Variables"]
                .as_object()
                .map(|vars| {
                    vars.iter()
                        .map(|(k, v)| (k.clone(), scalar(v)))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default();
            let logging = r.prop("LoggingConfig");
            out.push(FunctionDoc {
                logical_id: id.to_owned(),
                name: r.physical_id.clone(),
                arn: r.attribute("Arn").unwrap_or_default().to_owned(),
                binary: binary.to_owned(),
                variables,
                // CloudFormation's defaults: 3 s and 128 MB.
                timeout: Duration::from_secs(number(r.prop("Timeout")).unwrap_or(3)),
                memory_mb: u32::try_from(number(r.prop("MemorySize")).unwrap_or(128))
                    .unwrap_or(128),
                role_arn: r.prop("Role").as_str().unwrap_or_default().to_owned(),
                log_format: logging["LogFormat"].as_str().unwrap_or("Text").to_owned(),
                log_level: logging["ApplicationLogLevel"].as_str().map(str::to_owned),
                reserved_concurrency: number(r.prop("ReservedConcurrentExecutions"))
                    .and_then(|n| usize::try_from(n).ok()),
            });
        }
        Ok(out)
    }

    pub fn sqs_mappings(&self) -> Result<Vec<MappingDoc>, String> {
        let mut out = Vec::new();
        for (id, r) in self.of_kind("AWS::Lambda::EventSourceMapping") {
            let queue_arn = r.prop("EventSourceArn").as_str().unwrap_or_default();
            if !queue_arn.contains(":sqs:") || r.prop("Enabled") == &Value::Bool(false) {
                continue;
            }
            let function = self.function_id(r.prop("FunctionName").as_str().unwrap_or(""))?;
            let types = r.prop("FunctionResponseTypes");
            out.push(MappingDoc {
                logical_id: id.to_owned(),
                function,
                queue_arn: queue_arn.to_owned(),
                // Lambda's default for SQS.
                batch_size: number(r.prop("BatchSize"))
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(10),
                report_batch_item_failures: types
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures")),
                maximum_concurrency: number(&r.prop("ScalingConfig")["MaximumConcurrency"])
                    .and_then(|n| usize::try_from(n).ok()),
            });
        }
        Ok(out)
    }

    pub fn invoke_configs(&self) -> Result<Vec<InvokeConfigDoc>, String> {
        let mut out = Vec::new();
        for (_, r) in self.of_kind("AWS::Lambda::EventInvokeConfig") {
            let function = self.function_id(r.prop("FunctionName").as_str().unwrap_or(""))?;
            let destination = |key: &str| {
                r.prop("DestinationConfig")[key]["Destination"]
                    .as_str()
                    .map(str::to_owned)
            };
            out.push(InvokeConfigDoc {
                function,
                // Lambda's default: two retries.
                maximum_retry_attempts: number(r.prop("MaximumRetryAttempts"))
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(2),
                on_failure: destination("OnFailure"),
                on_success: destination("OnSuccess"),
            });
        }
        Ok(out)
    }

    pub fn queues(&self) -> Vec<QueueDoc> {
        self.of_kind("AWS::SQS::Queue")
            .map(|(id, r)| {
                let redrive = r.prop("RedrivePolicy");
                QueueDoc {
                    logical_id: id.to_owned(),
                    name: r.attribute("QueueName").unwrap_or_default().to_owned(),
                    url: r.physical_id.clone(),
                    arn: r.attribute("Arn").unwrap_or_default().to_owned(),
                    // SQS's default: 30 s.
                    visibility_timeout: Duration::from_secs(
                        number(r.prop("VisibilityTimeout")).unwrap_or(30),
                    ),
                    retention: number(r.prop("MessageRetentionPeriod")),
                    redrive: redrive["deadLetterTargetArn"].as_str().map(|arn| {
                        (
                            arn.to_owned(),
                            number(&redrive["maxReceiveCount"])
                                .and_then(|n| u32::try_from(n).ok())
                                .unwrap_or(1),
                        )
                    }),
                }
            })
            .collect()
    }

    pub fn schedules(&self) -> Vec<ScheduleDoc> {
        self.of_kind("AWS::Scheduler::Schedule")
            .map(|(id, r)| ScheduleDoc {
                logical_id: id.to_owned(),
                expression: r
                    .prop("ScheduleExpression")
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                target_arn: r.prop("Target")["Arn"].as_str().unwrap_or("").to_owned(),
                input: r.prop("Target")["Input"].as_str().map(str::to_owned),
            })
            .collect()
    }

    /// A parameter's value.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.get(key).and_then(Value::as_str)
    }
}

/// A CloudFormation number, written as a number or as a string.
fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// An environment variable's value: strings as they are, anything else as JSON text.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `rate(N unit)` as a duration (EventBridge's rate expressions).
pub fn rate(expression: &str) -> Option<Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let secs = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86400,
        _ => return None,
    };
    Some(Duration::from_secs(n * secs))
}
