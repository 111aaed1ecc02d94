//! After the scenarios: every AWS call the functions made — recorded by the IAM-enforcing
//! emulator with the key of the function's assumed role — judged by `simulate.mjs` against the
//! template's unmodified policies (resources and conditions as written; the emulator itself only
//! checked actions), with the calls of [`UNREACHED`]. A statement removed from the template
//! makes a call it allowed denied here. Over the whole suite, every statement, and every action
//! and resource entry of one, must be needed by some call (a statement of one of the template's
//! own managed policies, shared by the roles it is attached to, by some call of one of them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};
use tidemark_tests::harness::stack::StackEnv;
use tidemark_tests::lambda_host::iam::{StackFiles, simulate};
use tidemark_tests::lambda_host::stack::deployed;

/// Calls the functions make on paths no scenario reaches: the function, the action, the
/// resource (`{partition}`, `{region}`, `{account}` and `{stage}` are the first stack's), and
/// where in the code. Each is judged as a recorded call would be: it must be allowed, and it
/// makes its statement needed.
const UNREACHED: &[(&str, &str, &str, &str)] = &[
    (
        "CreateTaskFunction",
        "secretsmanager:PutSecretValue",
        "arn:{partition}:secretsmanager:{region}:{account}:secret:tidemark/{stage}/t0/source-AbCdEf",
        "a creation retried after it made its secret stores the password as the secret's \
         value (SecretsManagerStore::create, on ResourceExistsException)",
    ),
    (
        "CreateTaskFunction",
        "secretsmanager:DeleteSecret",
        "arn:{partition}:secretsmanager:{region}:{account}:secret:tidemark/{stage}/t0/source-AbCdEf",
        "a creation that fails after making its secrets deletes them (TaskService::create)",
    ),
];

fn calls() -> PathBuf {
    StackEnv::get().var("TIDEMARK_IAM_CALLS").into()
}

fn stacks() -> Result<Vec<StackFiles>, String> {
    let stacks = deployed();
    if stacks.is_empty() {
        return Err("no scenario deployed a stack".into());
    }
    Ok(stacks)
}

fn read_json(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`UNREACHED`] as simulate.mjs's probes for `stack`, written beside its files.
fn probes(stack: &StackFiles) -> Result<PathBuf, String> {
    let doc = read_json(&stack.stack_json)?;
    let value = |v: &Value| v.as_str().map(str::to_owned).ok_or("a stack value");
    let (partition, region, account, stage) = (
        value(&doc["Stack"]["partition"])?,
        value(&doc["Stack"]["region"])?,
        value(&doc["Stack"]["account"])?,
        value(&doc["Parameters"]["StageName"])?,
    );
    let mut lines = String::new();
    for (function, action, resource, why) in UNREACHED {
        let resource = resource
            .replace("{partition}", &partition)
            .replace("{region}", &region)
            .replace("{account}", &account)
            .replace("{stage}", &stage);
        let line = json!({
            "function": function, "action": action, "resources": [resource],
            "expect": "allowed", "why": why,
        });
        lines.push_str(&format!("{line}\n"));
    }
    let path = stack.stack_json.with_file_name("unreached.jsonl");
    std::fs::write(&path, lines).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

pub fn every_recorded_call_is_allowed_by_the_unmodified_policies() -> Result<(), String> {
    let stacks = stacks()?;
    let probes = probes(&stacks[0])?;
    let (code, report) = simulate(&calls(), &stacks, Some(&probes), false)?;
    if code == 0 && report["denied"] == 0 && report["unexpected"] == 0 {
        return Ok(());
    }
    let refused = |list: &str| -> Vec<Value> {
        report[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["result"] != "Allowed")
            .cloned()
            .collect()
    };
    Err(format!(
        "simulate.mjs exited {code}; denied calls: {}; denied unreached-path calls: {}",
        serde_json::to_string_pretty(&refused("verdicts")).unwrap_or_default(),
        serde_json::to_string_pretty(&refused("probes")).unwrap_or_default(),
    ))
}

pub fn every_statement_is_needed_by_a_recorded_call() -> Result<(), String> {
    let stacks = stacks()?;
    let probes = probes(&stacks[0])?;
    let (_, report) = simulate(&calls(), &stacks, Some(&probes), true)?;
    let statements = report["necessity"].as_array().cloned().unwrap_or_default();
    let shared = managed_policies(&stacks[0])?;
    let is_shared = |s: &Value| {
        s["policy"]
            .as_str()
            .is_some_and(|p| shared.iter().any(|m| m == p))
    };
    let mut unused = BTreeSet::new();
    // A shared statement's entries: those unused in every role that needs the statement.
    let mut shared_entries: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    for s in &statements {
        let entries = || {
            ["unused_actions", "unused_resources"]
                .iter()
                .flat_map(|k| s[*k].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<BTreeSet<String>>()
        };
        if is_shared(s) {
            let id = format!(
                "{} #{} (every role)",
                s["policy"].as_str().unwrap_or("?"),
                s["statement"]
            );
            let slot = shared_entries.entry(id).or_insert(None);
            if s["unused"] != true {
                *slot = Some(match slot.take() {
                    Some(so_far) => so_far.intersection(&entries()).cloned().collect(),
                    None => entries(),
                });
            }
        } else if s["unused"] == true {
            unused.insert(statement(s));
        } else {
            for entry in entries() {
                unused.insert(format!("{}: {entry}", statement(s)));
            }
        }
    }
    for (id, entries) in shared_entries {
        match entries {
            None => {
                unused.insert(id);
            }
            Some(entries) => unused.extend(entries.into_iter().map(|e| format!("{id}: {e}"))),
        }
    }
    if unused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "statements, actions or resources no recorded call needs (remove them, or a \
             scenario is missing): {unused:#?}"
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
    let doc = read_json(&stack.stack_json)?;
    Ok(doc["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::ManagedPolicy")
        .map(|(id, _)| id.clone())
        .collect())
}
