//! template.yaml and the functions agree: every variable a function reads is set for it, the
//! precheck window matches the precheck function's timeout, and every function whose crate exists
//! builds the binary the template names.
//!
//! The template keeps resources at two spaces of indentation and their properties deeper, which
//! is all these checks read (cfn-lint and `sam validate --lint` check the rest).

use std::collections::BTreeSet;

use tidemark_lambda::env::{PRECHECK_TIMEOUT, VARIABLES};

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

#[test]
fn every_variable_a_function_reads_is_set_in_globals_and_no_other() {
    let text = template();
    let globals = block(&text, "Globals:");
    let set: BTreeSet<&str> = globals
        .iter()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("TIDEMARK_"))
        .collect();
    let read: BTreeSet<&str> = VARIABLES.into_iter().collect();
    assert_eq!(set, read);
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
