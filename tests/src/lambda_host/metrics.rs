//! What CloudWatch would make of the functions' real output: the stack's metric filters
//! (`AWS::Logs::MetricFilter`, with the filter-pattern evaluation of [`crate::cloudwatch`]) run
//! over the lines each function wrote to its log group, and the alarms over those metrics.

use serde_json::{Value, json};

use super::instance::LogSink;
use super::stack_doc::StackDoc;
use crate::cloudwatch::FilterPattern;

/// The sum of metric `namespace`/`name` the stack's metric filters would have put so far.
pub fn metric_sum(doc: &StackDoc, logs: &LogSink, namespace: &str, name: &str) -> f64 {
    let mut sum = 0.0;
    for (id, filter) in doc.of_kind("AWS::Logs::MetricFilter") {
        let group = filter.prop("LogGroupName").as_str().unwrap_or_default();
        // A filter on a group no function logs to would never count: the template is wrong.
        let function = function_of_group(doc, group)
            .unwrap_or_else(|| panic!("{id}: no function logs to log group {group:?}"));
        let pattern = filter.prop("FilterPattern").as_str().unwrap_or_default();
        let pattern =
            FilterPattern::parse(pattern).unwrap_or_else(|e| panic!("{id}'s FilterPattern: {e}"));
        for t in filter
            .prop("MetricTransformations")
            .as_array()
            .into_iter()
            .flatten()
        {
            if t["MetricNamespace"] != namespace || t["MetricName"] != name {
                continue;
            }
            let value = match &t["MetricValue"] {
                Value::String(s) => s.parse().unwrap_or(0.0),
                v => v.as_f64().unwrap_or(0.0),
            };
            let hits = logs
                .of(&function)
                .iter()
                .filter(|l| pattern.matches(&l.text))
                .count();
            sum += value * hits as f64;
        }
    }
    sum
}

/// AWS/Lambda's metric `name` (`Errors`, `Throttles`) of a function (its logical id), as the
/// host counted it.
pub type LambdaMetric<'a> = &'a dyn Fn(&str, &str) -> f64;

/// Whether alarm `logical_id` (a `Sum` over the period, compared with its threshold; one metric,
/// or `Metrics` whose returned expression adds metrics up) would be in ALARM on what the
/// functions logged and did so far — the whole of a scenario lies within one period. A metric on
/// AWS/Lambda must name a function of the stack (its `FunctionName` dimension), else this panics.
pub fn alarm_rings(doc: &StackDoc, logs: &LogSink, lambda: LambdaMetric, logical_id: &str) -> bool {
    let alarm = doc.resource(logical_id).unwrap_or_else(|e| panic!("{e}"));
    let threshold = alarm.prop("Threshold");
    let threshold = threshold
        .as_f64()
        .or_else(|| threshold.as_str().and_then(|t| t.parse().ok()))
        .unwrap_or(0.0);
    let sum = match alarm.prop("Metrics").as_array() {
        Some(metrics) => metrics_value(doc, logs, lambda, logical_id, metrics),
        None => {
            assert_eq!(
                alarm.prop("Statistic"),
                "Sum",
                "{logical_id}: only Sum is evaluated here"
            );
            let metric = json!({
                "Namespace": alarm.prop("Namespace"),
                "MetricName": alarm.prop("MetricName"),
                "Dimensions": alarm.prop("Dimensions"),
            });
            metric_value(doc, logs, lambda, logical_id, &metric)
        }
    };
    match alarm.prop("ComparisonOperator").as_str() {
        Some("GreaterThanThreshold") => sum > threshold,
        Some("GreaterThanOrEqualToThreshold") => sum >= threshold,
        Some("LessThanThreshold") => sum < threshold,
        Some("LessThanOrEqualToThreshold") => sum <= threshold,
        other => panic!("{logical_id}: comparison {other:?}"),
    }
}

/// The logical ids of the functions an alarm's AWS/Lambda metrics name, or why one names none.
pub fn alarm_functions(doc: &StackDoc, logical_id: &str) -> Result<Vec<String>, String> {
    let alarm = doc.resource(logical_id)?;
    let mut metrics: Vec<Value> = alarm
        .prop("Metrics")
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["MetricStat"]["Metric"].clone())
        .filter(|m| !m.is_null())
        .collect();
    if alarm.prop("Namespace").is_string() {
        metrics.push(json!({
            "Namespace": alarm.prop("Namespace"),
            "Dimensions": alarm.prop("Dimensions"),
        }));
    }
    metrics
        .iter()
        .filter(|m| m["Namespace"] == "AWS/Lambda")
        .map(|m| lambda_function(doc, logical_id, m))
        .collect()
}

/// The value a `Metrics` array returns: its one `ReturnData` entry, a metric or a sum of ids.
fn metrics_value(
    doc: &StackDoc,
    logs: &LogSink,
    lambda: LambdaMetric,
    alarm: &str,
    metrics: &[Value],
) -> f64 {
    let value_of = |id: &str| -> f64 {
        let entry = metrics
            .iter()
            .find(|m| m["Id"] == id)
            .unwrap_or_else(|| panic!("{alarm}: no metric {id}"));
        let stat = &entry["MetricStat"];
        assert_eq!(
            stat["Stat"], "Sum",
            "{alarm}/{id}: only Sum is evaluated here"
        );
        metric_value(doc, logs, lambda, alarm, &stat["Metric"])
    };
    let returned: Vec<&Value> = metrics
        .iter()
        .filter(|m| m["ReturnData"] != Value::Bool(false))
        .collect();
    assert_eq!(returned.len(), 1, "{alarm}: one metric returns data");
    let entry = returned[0];
    match entry["Expression"].as_str() {
        None => value_of(entry["Id"].as_str().unwrap_or_default()),
        Some(expression) => expression
            .split('+')
            .map(|term| {
                let id = term.trim();
                assert!(
                    id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{alarm}: only sums of metrics are evaluated here, not {expression:?}"
                );
                value_of(id)
            })
            .sum(),
    }
}

/// One metric's sum: AWS/Lambda's from the host's counts, others from the metric filters.
fn metric_value(
    doc: &StackDoc,
    logs: &LogSink,
    lambda: LambdaMetric,
    alarm: &str,
    metric: &Value,
) -> f64 {
    let namespace = metric["Namespace"].as_str().unwrap_or_default();
    let name = metric["MetricName"].as_str().unwrap_or_default();
    if namespace == "AWS/Lambda" {
        let function = lambda_function(doc, alarm, metric).unwrap_or_else(|e| panic!("{e}"));
        lambda(&function, name)
    } else {
        metric_sum(doc, logs, namespace, name)
    }
}

/// The function an AWS/Lambda metric's `FunctionName` dimension names (its logical id).
fn lambda_function(doc: &StackDoc, alarm: &str, metric: &Value) -> Result<String, String> {
    let named = metric["Dimensions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["Name"] == "FunctionName")
        .and_then(|d| d["Value"].as_str())
        .ok_or_else(|| format!("{alarm}: an AWS/Lambda metric without a FunctionName"))?;
    doc.function_id(named)
        .map_err(|e| format!("{alarm}'s FunctionName: {e}"))
}

/// The logical id of the function whose log group is `group`.
fn function_of_group(doc: &StackDoc, group: &str) -> Option<String> {
    // A function logs to its `LoggingConfig.LogGroup`, else to Lambda's default group.
    doc.of_kind("AWS::Lambda::Function")
        .find(
            |(_, r)| match r.prop("LoggingConfig")["LogGroup"].as_str() {
                Some(own) => own == group,
                None => group.strip_prefix("/aws/lambda/") == Some(r.physical_id.as_str()),
            },
        )
        .map(|(id, _)| id.to_owned())
}
