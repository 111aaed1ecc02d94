//! template.yaml as an operator reads it: every function logs to a log group of the stack with
//! a retention (never to the `/aws/lambda/<name>` groups Lambda made for stacks of earlier
//! templates), the metric filters watch the groups the functions write to, and the state table
//! expires records on the attribute the stores write.

use tidemark_tests::cloudwatch::{TemplateResource, template_resources};
use tidemark_tests::harness::stack::repo_dir;

fn resources() -> Vec<TemplateResource> {
    let text = std::fs::read_to_string(repo_dir().join("template.yaml")).expect("template.yaml");
    template_resources(&text)
}

fn of_kind<'r>(resources: &'r [TemplateResource], kind: &str) -> Vec<&'r TemplateResource> {
    resources.iter().filter(|r| r.kind == kind).collect()
}

/// The logical id a `!Ref <id>` names.
fn referenced(value: Option<&str>) -> Option<&str> {
    value?.strip_prefix("!Ref ")
}

#[test]
fn every_function_logs_to_a_stack_log_group_with_a_retention_that_its_filters_watch() {
    let resources = resources();
    let functions = of_kind(&resources, "AWS::Serverless::Function");
    let groups = of_kind(&resources, "AWS::Logs::LogGroup");
    assert_eq!(functions.len(), 5);
    let mut used = Vec::new();
    for function in &functions {
        let group_id = referenced(function.get("LogGroup"))
            .unwrap_or_else(|| panic!("{} has no LoggingConfig.LogGroup", function.id));
        let group = groups
            .iter()
            .find(|g| g.id == group_id)
            .unwrap_or_else(|| panic!("{}: no log group {group_id}", function.id));
        assert_eq!(
            group.get("RetentionInDays"),
            Some("!Ref LogRetentionDays"),
            "{group_id}"
        );
        let name = group.get("LogGroupName").expect("a name");
        assert!(
            name.starts_with("!Sub \"/tidemark/${AWS::StackName}/"),
            "{group_id}: {name} (not /aws/lambda/, which Lambda made for earlier stacks)"
        );
        used.push(group_id);
    }
    assert_eq!(
        groups.len(),
        used.len(),
        "a log group no function writes to"
    );
    let filters = of_kind(&resources, "AWS::Logs::MetricFilter");
    assert!(filters.len() >= 3);
    for filter in filters {
        let group = referenced(filter.get("LogGroupName"));
        assert!(
            group.is_some_and(|g| used.contains(&g)),
            "{} watches {group:?}, which no function writes to",
            filter.id
        );
    }
}

#[test]
fn the_state_table_expires_records_on_the_attribute_the_stores_write() {
    let resources = resources();
    let table = resources
        .iter()
        .find(|r| r.id == "StateTable")
        .expect("StateTable");
    // The one attribute the two stores name `expires_at` (and the records serialize).
    assert_eq!(table.get("AttributeName"), Some("pk"));
    let text = std::fs::read_to_string(repo_dir().join("template.yaml")).expect("template.yaml");
    let ttl: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim() != "TimeToLiveSpecification:")
        .skip(1)
        .take(2)
        .map(str::trim)
        .collect();
    assert_eq!(ttl, ["AttributeName: expires_at", "Enabled: true"]);
    let run = tidemark_tests::contract::state_store::run("t", "2026-12-01T02:30:00Z");
    let run = tidemark_core::state::RunRecord {
        expires_at: Some(jiff::Timestamp::from_second(1_800_000_000).expect("time")),
        ..run
    };
    let json = serde_json::to_value(&run).expect("JSON");
    assert_eq!(
        json["expires_at"], 1_800_000_000,
        "epoch seconds, as TTL reads them"
    );
}

/// The lines of resource `id` (or any block opened by a line equal to `  id:`), as text.
fn block(text: &str, id: &str) -> String {
    let header = format!("  {id}:");
    text.lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("   "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_taggable_resource_carries_the_stacks_tags_and_every_role_the_boundary() {
    let text = std::fs::read_to_string(repo_dir().join("template.yaml")).expect("template.yaml");
    let globals = block(&text, "Function");
    for line in [
        "Application: Tidemark",
        "Stage: !Ref StageName",
        "PropagateTags: true",
        "PermissionsBoundary: !If [HasPermissionsBoundary, !Ref PermissionsBoundaryArn, !Ref AWS::NoValue]",
    ] {
        assert!(globals.lines().any(|l| l.trim() == line), "Globals: {line}");
    }
    const TAGS: &str =
        "Tags: [{Key: Application, Value: Tidemark}, {Key: Stage, Value: !Ref StageName}]";
    // CloudFormation types that take Tags (the SAM ones take them as a map; metric filters,
    // subscriptions and queue policies take none).
    let taggable = [
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::KMS::Key",
        "AWS::IAM::Role",
        "AWS::Scheduler::ScheduleGroup",
        "AWS::Logs::LogGroup",
        "AWS::CloudWatch::Alarm",
        "AWS::Serverless::HttpApi",
    ];
    let resources = resources();
    for resource in resources
        .iter()
        .filter(|r| taggable.contains(&r.kind.as_str()))
    {
        let body = block(&text, &resource.id);
        let tagged = body.lines().any(|l| l.trim() == TAGS)
            || (body.contains("Application: Tidemark") && body.contains("Stage: !Ref StageName"));
        assert!(tagged, "{} ({}) has no tags", resource.id, resource.kind);
    }
    let kinds: Vec<&str> = resources.iter().map(|r| r.kind.as_str()).collect();
    for kind in &kinds {
        assert!(
            taggable.contains(kind)
                || [
                    "AWS::Serverless::Function",
                    "AWS::Logs::MetricFilter",
                    "AWS::SNS::Subscription",
                    "AWS::SQS::QueuePolicy",
                    // CloudFormation's AWS::IAM::ManagedPolicy has no Tags property.
                    "AWS::IAM::ManagedPolicy",
                ]
                .contains(kind),
            "is {kind} taggable? add it to one list"
        );
    }
    // The roles SAM does not make from Globals: the scheduler's, and the sweep schedule's.
    let boundary = "PermissionsBoundary: !If [HasPermissionsBoundary, !Ref PermissionsBoundaryArn, !Ref AWS::NoValue]";
    for id in ["SchedulerRole", "RunCycleFunction"] {
        assert!(
            block(&text, id).lines().any(|l| l.trim() == boundary),
            "{id} has no permissions boundary"
        );
    }
}

#[test]
fn every_function_has_an_alarm_on_its_errors_and_throttles() {
    let text = std::fs::read_to_string(repo_dir().join("template.yaml")).expect("template.yaml");
    let resources = resources();
    let alarms: Vec<String> = of_kind(&resources, "AWS::CloudWatch::Alarm")
        .iter()
        .map(|a| block(&text, &a.id))
        .collect();
    for function in of_kind(&resources, "AWS::Serverless::Function") {
        let dimension = format!("Value: !Ref {}", function.id);
        let watching: Vec<&String> = alarms
            .iter()
            .filter(|a| a.lines().any(|l| l.trim() == dimension))
            .collect();
        assert_eq!(watching.len(), 1, "{}: one alarm", function.id);
        let alarm = watching[0];
        let lines: Vec<&str> = alarm.lines().map(str::trim).collect();
        for metric in ["MetricName: Errors", "MetricName: Throttles"] {
            assert!(lines.contains(&metric), "{}: {metric}", function.id);
        }
        assert!(lines.contains(&"Namespace: AWS/Lambda"));
        assert!(lines.contains(&"- Name: FunctionName"));
        assert!(lines.contains(&"Expression: errors + throttles"));
        assert!(lines.contains(&"AlarmActions: [!Ref AlarmTopic]"));
        assert_eq!(
            alarm.matches(&dimension).count(),
            2,
            "both metrics of {}",
            function.id
        );
    }
}
