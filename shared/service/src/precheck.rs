//! The precheck of a task: the schema plan's mapping warnings (dependent objects that the name
//! mapping cannot rewrite) fed into the engine's checks, so one report says everything that would
//! make a cycle fail or lose data.

use jiff::Timestamp;
use tidemark_core::precheck::{CheckStatus, MappingWarningInput, PrecheckReport, ids};
use tidemark_core::{EndpointSpec, MigrationType, TaskSpec};
use tidemark_engine::{ConnectOptions, connect, plan_from_source, run_precheck};

use crate::endpoints::ignored_user;

/// Runs every check for `spec`, logging in with `source` and `destination` (their users and
/// passwords already read). Never fails: an endpoint that cannot be reached is a failed check in
/// the report, with the reason. A spec's `user` that a secret's `username` overrode is a
/// warning on the endpoint's connectivity check.
pub async fn precheck_task(
    spec: &TaskSpec,
    source: &ConnectOptions,
    destination: &ConnectOptions,
    now: Timestamp,
) -> PrecheckReport {
    let warnings = mapping_warnings(spec, source).await;
    let mut report = run_precheck(spec, source, destination, &warnings, now).await;
    note_ignored_user(
        &mut report,
        ids::SOURCE_CONNECTIVITY,
        "source",
        &spec.source,
        source,
    );
    note_ignored_user(
        &mut report,
        ids::DESTINATION_CONNECTIVITY,
        "destination",
        &spec.destination,
        destination,
    );
    report
}

/// The spec's `user` differs from the secret's `username`, which is used: said on the
/// connectivity check, a warning when the check passed.
fn note_ignored_user(
    report: &mut PrecheckReport,
    id: &str,
    role: &str,
    endpoint: &EndpointSpec,
    options: &ConnectOptions,
) {
    let Some(spec_user) = ignored_user(endpoint, options) else {
        return;
    };
    let Some(check) = report.checks.iter_mut().find(|c| c.id == id) else {
        return;
    };
    let used = &options.user;
    check.message = format!(
        "{}; `{role}.user` is `{spec_user}` but the secret in `{role}.password_secret` names \
         `{used}`, the account used (the secret's username wins)",
        check.message
    );
    if check.status == CheckStatus::Pass {
        check.status = CheckStatus::Warn;
        check.remedy = Some(format!(
            "remove `{role}.user` from the task, or make it `{used}` (create the task again: \
             endpoints cannot be patched)"
        ));
    }
}

/// The schema plan's warnings, when the schema is migrated and the source can be read; when it
/// cannot, the connectivity and object checks report why.
async fn mapping_warnings(spec: &TaskSpec, source: &ConnectOptions) -> Vec<MappingWarningInput> {
    if !spec.migration_types.contains(&MigrationType::Schema) {
        return Vec::new();
    }
    let Ok(mut conn) = connect(source).await else {
        return Vec::new();
    };
    let plan = plan_from_source(&mut conn, &spec.objects).await;
    let _ = conn.disconnect().await;
    match plan {
        Ok(plan) => plan
            .warnings
            .iter()
            .map(|w| MappingWarningInput {
                object: w.object.to_string(),
                message: w.message.clone(),
            })
            .collect(),
        Err(e) => vec![MappingWarningInput {
            object: "the schema".into(),
            message: format!("the schema could not be planned: {e}"),
        }],
    }
}
