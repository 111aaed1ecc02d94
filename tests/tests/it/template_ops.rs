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
