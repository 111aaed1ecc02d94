//! After the scenarios: every AWS call the functions made — recorded by the IAM-enforcing
//! emulator with the key of the function's assumed role — judged by `simulate.mjs` against the
//! template's unmodified policies (resources and conditions as written; the emulator itself only
//! checked actions). A statement removed from the template makes a call it allowed denied here.
//! Over the whole suite, every statement must be needed by some call (a statement of one of the
//! template's own managed policies, shared by the roles it is attached to, by some call of one
//! of them).

use serde_json::Value;
use tidemark_tests::harness::stack::StackEnv;
use tidemark_tests::lambda_host::iam::{StackFiles, simulate};
use tidemark_tests::lambda_host::stack::deployed;

fn calls() -> std::path::PathBuf {
    StackEnv::get().var("TIDEMARK_IAM_CALLS").into()
}

fn stacks() -> Result<Vec<StackFiles>, String> {
    let stacks = deployed();
    if stacks.is_empty() {
        return Err("no scenario deployed a stack".into());
    }
    Ok(stacks)
}

pub fn every_recorded_call_is_allowed_by_the_unmodified_policies() -> Result<(), String> {
    let (code, report) = simulate(&calls(), &stacks()?, false)?;
    if code == 0 && report["denied"] == 0 {
        return Ok(());
    }
    let denied: Vec<&Value> = report["verdicts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["result"] != "Allowed")
        .collect();
    Err(format!(
        "simulate.mjs exited {code}; denied: {}",
        serde_json::to_string_pretty(&denied).unwrap_or_default()
    ))
}

pub fn every_statement_is_needed_by_a_recorded_call() -> Result<(), String> {
    let stacks = stacks()?;
    let (_, report) = simulate(&calls(), &stacks, true)?;
    let statements = report["necessity"].as_array().cloned().unwrap_or_default();
    // A statement of one of the template's own managed policies is shared by every role the
    // policy is attached to: it is needed when one of them needs it.
    let shared = managed_policies(&stacks[0])?;
    let needed_somewhere = |s: &Value| {
        statements.iter().any(|o| {
            o["policy"] == s["policy"] && o["statement"] == s["statement"] && o["unused"] != true
        })
    };
    let mut unused: Vec<String> = statements
        .iter()
        .filter(|s| s["unused"] == true)
        .filter(|s| {
            !(s["policy"]
                .as_str()
                .is_some_and(|p| shared.iter().any(|m| m == p))
                && needed_somewhere(s))
        })
        .map(|s| {
            if s["policy"]
                .as_str()
                .is_some_and(|p| shared.iter().any(|m| m == p))
            {
                format!(
                    "{} #{} (every role)",
                    s["policy"].as_str().unwrap_or("?"),
                    s["statement"]
                )
            } else {
                statement(s)
            }
        })
        .collect();
    unused.sort();
    unused.dedup();
    // Actions no call needs inside a statement some call needs: most come with SAM's policy
    // templates (DynamoDBCrudPolicy's), which the template cannot trim; printed, not failed.
    for s in &statements {
        if let Some(actions) = s["unused_actions"].as_array().filter(|a| !a.is_empty()) {
            println!(
                "note: {}: no call needs {}",
                statement(s),
                Value::Array(actions.clone())
            );
        }
    }
    if unused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "statements no recorded call needs (remove them, or a scenario is missing): {unused:#?}"
        ))
    }
}

/// `Role Policy #n`.
fn statement(s: &Value) -> String {
    format!(
        "{} {} #{}",
        s["role"].as_str().unwrap_or("?"),
        s["policy"].as_str().unwrap_or("?"),
        s["statement"]
    )
}

/// The logical ids of the template's own `AWS::IAM::ManagedPolicy` resources.
fn managed_policies(stack: &StackFiles) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(&stack.stack_json).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(doc["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::ManagedPolicy")
        .map(|(id, _)| id.clone())
        .collect())
}
