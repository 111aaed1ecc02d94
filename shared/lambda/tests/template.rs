//! template.yaml and the functions agree: every variable a function reads is set for it, the
//! precheck window matches the precheck function's timeout, the step queue's visibility follows
//! the worker's timeout, the architecture is a parameter build.sh builds, and every function
//! whose crate exists builds the binary the template names.
//!
//! The template keeps resources at two spaces of indentation and their properties deeper, which
//! is all these checks read (cfn-lint and `sam validate --lint` check the rest).

use std::collections::BTreeSet;

use tidemark_lambda::env::{
    DRIVER_VARIABLES, PRECHECK_TIMEOUT, VARIABLES, WORKER_TIMEOUT_SECONDS, driver_config,
};

fn repo_file(path: &str) -> String {
    let full = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn template() -> String {
    repo_file("template.yaml")
}

/// The lines of the block that `header` opens (a line equal to it), up to the next line as
/// little indented as the header.
fn block<'t>(text: &'t str, header: &str) -> Vec<&'t str> {
    let indent = header.len() - header.trim_start().len();
    let mut lines = text.lines().skip_while(|l| *l != header);
    assert!(lines.next().is_some(), "no `{header}` in template.yaml");
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .collect()
}

/// The value of the first `key: value` line in `lines`.
fn value<'t>(lines: &[&'t str], key: &str) -> Option<&'t str> {
    let prefix = format!("{key}:");
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(&prefix).map(str::trim))
}

/// The `TIDEMARK_*` variables set in `lines`.
fn tidemark_variables<'t>(lines: &[&'t str]) -> BTreeSet<&'t str> {
    lines
        .iter()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("TIDEMARK_"))
        .collect()
}

#[test]
fn every_required_variable_is_set_in_globals_and_no_unknown_one() {
    let text = template();
    let set = tidemark_variables(&block(&text, "Globals:"));
    let read: BTreeSet<&str> = VARIABLES.into_iter().collect();
    let optional: BTreeSet<&str> = DRIVER_VARIABLES.into_iter().collect();
    assert!(
        set.is_superset(&read),
        "missing: {:?}",
        read.difference(&set)
    );
    let unknown: Vec<&&str> = set
        .difference(&read)
        .filter(|v| !optional.contains(*v))
        .collect();
    assert!(unknown.is_empty(), "no function reads {unknown:?}");
}

#[test]
fn a_function_sets_only_variables_it_reads() {
    let text = template();
    let optional: BTreeSet<&str> = DRIVER_VARIABLES.into_iter().collect();
    let resources = block(&text, "Resources:");
    let own = tidemark_variables(&resources);
    let unknown: Vec<&&str> = own
        .iter()
        .filter(|v| !optional.contains(**v) && **v != "TIDEMARK_STEP_DEAD_LETTER_ARN")
        .collect();
    assert!(unknown.is_empty(), "no function reads {unknown:?}");
}

/// A parameter's `AllowedValues: [a, b]` as numbers.
fn allowed_numbers(text: &str, parameter: &str) -> Vec<u64> {
    let lines = block(text, &format!("  {parameter}:"));
    value(&lines, "AllowedValues")
        .unwrap_or_else(|| panic!("{parameter} has AllowedValues"))
        .trim_matches(['[', ']'])
        .split(',')
        .map(|v| v.trim().parse().expect("a number"))
        .collect()
}

#[test]
fn every_worker_timeout_has_a_step_queue_visibility_of_at_least_six_times_it() {
    let text = template();
    let timeouts = allowed_numbers(&text, "WorkerTimeout");
    assert!(timeouts.contains(&300) && timeouts.iter().all(|t| (1..=900).contains(t)));
    let mapping = block(&text, "  WorkerTimeouts:");
    let mut rows = Vec::new();
    let mut lines = mapping.iter().map(|l| l.trim()).filter(|l| !l.is_empty());
    while let Some(key) = lines.next() {
        let timeout: u64 = key
            .trim_end_matches(':')
            .trim_matches('"')
            .parse()
            .expect(key);
        let visibility: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("StepQueueVisibility: "))
            .expect("StepQueueVisibility under each timeout")
            .parse()
            .expect("a number");
        rows.push(timeout);
        // Lambda's SQS guidance: six times the function's timeout; SQS's longest is 12 h.
        assert!(
            visibility >= 6 * timeout && visibility <= 12 * 3600,
            "WorkerTimeout {timeout}: visibility {visibility} s is not 6x the timeout (or over 12 h)"
        );
    }
    assert_eq!(rows, timeouts, "one mapping row per allowed WorkerTimeout");
    let worker = block(&text, "  RunWorkerFunction:");
    assert_eq!(value(&worker, "Timeout"), Some("!Ref WorkerTimeout"));
    assert_eq!(value(&worker, "MemorySize"), Some("!Ref WorkerMemory"));
    assert_eq!(
        value(&worker, "MaximumConcurrency"),
        Some("!Ref WorkerMaxConcurrency"),
        "the step queue's event source is bounded"
    );
    assert_eq!(
        value(&block(&text, "  WorkerMemory:"), "Default"),
        Some("1769"),
        "one vCPU"
    );
    assert_eq!(
        value(&block(&text, "  StepQueue:"), "VisibilityTimeout"),
        Some("!FindInMap [WorkerTimeouts, !Ref WorkerTimeout, StepQueueVisibility]")
    );
    assert_eq!(
        value(&block(&text, "Globals:"), WORKER_TIMEOUT_SECONDS),
        Some("!Ref WorkerTimeout"),
        "every function derives its durations from the worker's timeout"
    );
    for timeout in timeouts {
        let config = driver_config(
            &|n: &str| (n == WORKER_TIMEOUT_SECONDS).then(|| timeout.to_string()),
            "t",
        )
        .unwrap_or_else(|e| panic!("WorkerTimeout {timeout}: {e}"));
        assert!(config.step_budget.as_secs() < timeout, "{timeout}");
    }
}

#[test]
fn the_precheck_window_matches_the_function_and_its_queue() {
    let text = template();
    let function = block(&text, "  PrecheckFunction:");
    let timeout: u64 = value(&function, "Timeout")
        .expect("PrecheckFunction has a Timeout")
        .parse()
        .expect("a number");
    assert_eq!(timeout, PRECHECK_TIMEOUT.as_secs());
    assert!(
        function
            .iter()
            .any(|l| l.trim() == "Queue: !GetAtt PrecheckQueue.Arn"),
        "PrecheckFunction consumes PrecheckQueue"
    );
    let queue = block(&text, "  PrecheckQueue:");
    let visibility: u64 = value(&queue, "VisibilityTimeout")
        .expect("PrecheckQueue has a VisibilityTimeout")
        .parse()
        .expect("a number");
    assert!(
        visibility >= 6 * timeout,
        "Lambda asks for a visibility timeout of 6x the function's timeout: {visibility} < 6 x {timeout}"
    );
}

#[test]
fn every_function_crate_builds_the_binary_the_template_names() {
    let text = template();
    let binaries: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary: "))
        .collect();
    assert!(binaries.len() >= 5, "{binaries:?}");
    let mut found = 0;
    for binary in binaries {
        let manifest = format!(
            "{}/../../functions/{binary}/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let Ok(manifest) = std::fs::read_to_string(&manifest) else {
            continue; // its crate is still to come (infra/deploy/build.sh skips it too)
        };
        assert!(
            manifest.contains(&format!("[[bin]]\nname = \"{binary}\"")),
            "functions/{binary}/Cargo.toml must build a binary named {binary}"
        );
        found += 1;
    }
    assert!(found >= 3, "create-task, precheck and manage-task exist");
}

#[test]
fn the_deploy_guide_lists_every_driver_variable_with_its_default() {
    let readme = repo_file("infra/DEPLOY.md");
    let timings = |config: tidemark_service::DriverConfig| tidemark_service::DriverConfig {
        owner: String::new(),
        ..config
    };
    let defaults = timings(driver_config(&|_| None, "t").expect("defaults"));
    for name in DRIVER_VARIABLES {
        let row = readme
            .lines()
            .find_map(|l| l.strip_prefix(&format!("| `{name}` | ")))
            .unwrap_or_else(|| panic!("infra/DEPLOY.md's table has no row for {name}"));
        let default = row.split(" |").next().unwrap_or_default().to_owned();
        let set = driver_config(&|n: &str| (n == name).then(|| default.clone()), "t")
            .unwrap_or_else(|e| panic!("{name}'s default in infra/DEPLOY.md: {e}"));
        assert_eq!(
            timings(set),
            defaults,
            "{name}'s default in infra/DEPLOY.md"
        );
    }
}

#[test]
fn the_architecture_is_a_parameter_that_build_sh_builds_each_value_of() {
    let text = template();
    let parameter = block(&text, "  Architecture:");
    assert_eq!(value(&parameter, "Default"), Some("arm64"));
    assert_eq!(value(&parameter, "AllowedValues"), Some("[arm64, x86_64]"));
    assert_eq!(
        value(&block(&text, "Globals:"), "Architectures"),
        Some("[!Ref Architecture]"),
        "every function runs on the parameter's architecture"
    );
    let build = repo_file("infra/deploy/build.sh");
    assert!(
        build.lines().any(|l| l == "ARCHES=(arm64 x86_64)"),
        "infra/deploy/build.sh --arch takes the parameter's values"
    );
    for (arch, target) in [
        ("arm64", "aarch64-unknown-linux-gnu"),
        ("x86_64", "x86_64-unknown-linux-gnu"),
    ] {
        assert!(
            build.contains(&format!("[{arch}]={target}")),
            "build.sh builds {arch} for {target}"
        );
    }
}
