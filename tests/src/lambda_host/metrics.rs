//! What CloudWatch would make of the functions' real output: the stack's metric filters
//! (`AWS::Logs::MetricFilter`, with the filter-pattern evaluation of [`crate::cloudwatch`]) run
//! over the lines each function wrote to its log group, and the alarms over those metrics.

use serde_json::Value;

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

/// Whether alarm `logical_id` (a `Sum` over the period, compared with its threshold) would be in
/// ALARM on what the functions logged so far — the whole of a scenario lies within one period.
pub fn alarm_rings(doc: &StackDoc, logs: &LogSink, logical_id: &str) -> bool {
    let alarm = doc.resource(logical_id).unwrap_or_else(|e| panic!("{e}"));
    let namespace = alarm.prop("Namespace").as_str().unwrap_or_default();
    let name = alarm.prop("MetricName").as_str().unwrap_or_default();
    assert_eq!(
        alarm.prop("Statistic"),
        "Sum",
        "{logical_id}: only Sum is evaluated here"
    );
    let threshold = alarm.prop("Threshold");
    let threshold = threshold
        .as_f64()
        .or_else(|| threshold.as_str().and_then(|t| t.parse().ok()))
        .unwrap_or(0.0);
    let sum = metric_sum(doc, logs, namespace, name);
    match alarm.prop("ComparisonOperator").as_str() {
        Some("GreaterThanThreshold") => sum > threshold,
        Some("GreaterThanOrEqualToThreshold") => sum >= threshold,
        Some("LessThanThreshold") => sum < threshold,
        Some("LessThanOrEqualToThreshold") => sum <= threshold,
        other => panic!("{logical_id}: comparison {other:?}"),
    }
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
