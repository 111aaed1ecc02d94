//! The precheck of a task: the schema plan's mapping warnings (dependent objects that the name
//! mapping cannot rewrite) fed into the engine's checks, so one report says everything that would
//! make a cycle fail or lose data.

use jiff::Timestamp;
use secrecy::SecretString;
use tidemark_core::precheck::{MappingWarningInput, PrecheckReport};
use tidemark_core::{MigrationType, TaskSpec};
use tidemark_engine::{ConnectOptions, connect, plan_from_source, run_precheck};

/// Runs every check for `spec`. Never fails: an endpoint that cannot be reached is a failed check
/// in the report, with the reason.
pub async fn precheck_task(
    spec: &TaskSpec,
    source_password: SecretString,
    destination_password: SecretString,
    now: Timestamp,
) -> PrecheckReport {
    let source = ConnectOptions::from_endpoint(&spec.source, source_password);
    let destination = ConnectOptions::from_endpoint(&spec.destination, destination_password);
    let warnings = mapping_warnings(spec, &source).await;
    run_precheck(spec, &source, &destination, &warnings, now).await
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
