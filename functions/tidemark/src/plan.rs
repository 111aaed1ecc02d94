//! `tidemark plan TASK.json`: the schema DDL a run would execute, in order.

use std::path::Path;
use std::process::ExitCode;

use tidemark_core::schedule::Schedule;
use tidemark_core::{MigrationType, Policy, TaskSpec};
use tidemark_engine::policy::objects::SwapTable;
use tidemark_engine::schema::{DdlStatement, ObjectKind, ObjectRef, Phase, quote_qualified};
use tidemark_engine::{ConnectOptions, SchemaPlan, connect, plan_from_source};
use tidemark_service::passwords::local_password;
use tidemark_service::policies::replica::replica_objects;
use tidemark_service::policies::resync;

use crate::spec_file::{BAD_SPEC, FAILED, read_spec};

pub async fn run(path: &Path, scheduled_time: Option<jiff::Timestamp>) -> ExitCode {
    let spec = match read_spec(path) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(BAD_SPEC);
        }
    };
    if !spec.migration_types.contains(&MigrationType::Schema) {
        println!("-- the task does not migrate the schema (migration_types has no \"schema\")");
        return ExitCode::SUCCESS;
    }
    let password = match local_password(&spec.source, "source") {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(BAD_SPEC);
        }
    };
    let opts = ConnectOptions::from_endpoint(&spec.source, password);
    let mut conn = match connect(&opts).await {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("error: source: {e}");
            return ExitCode::from(FAILED);
        }
    };
    // The cycle shown: --scheduled-time, else the next scheduled one, else now.
    let at = scheduled_time
        .or_else(|| {
            Schedule::from_spec(&spec.schedule)
                .ok()
                .and_then(|s| s.next_after(jiff::Timestamp::now()))
                .map(|z| z.timestamp())
        })
        .unwrap_or_else(jiff::Timestamp::now);
    let plan = policy_plan(&mut conn, &spec, at).await;
    // Nothing is left to do on the session; a failed goodbye changes nothing.
    let _ = conn.disconnect().await;
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(FAILED);
        }
    };
    for warning in &plan.0.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}{}", plan.1, plan.0.to_script());
    ExitCode::SUCCESS
}

/// The plan of the cycle at `at` under the task's policy, and a comment header saying what the
/// policy does around it.
async fn policy_plan(
    conn: &mut mysql_async::Conn,
    spec: &TaskSpec,
    at: jiff::Timestamp,
) -> Result<(SchemaPlan, String), String> {
    match &spec.policy {
        Policy::MultiReplica(p) => {
            let objects = replica_objects(spec, at).map_err(|e| e.to_string())?;
            let names: Vec<String> = objects.iter().filter_map(|d| d.rename.clone()).collect();
            let plan = plan_from_source(conn, &objects)
                .await
                .map_err(|e| e.to_string())?;
            let keep = match p.keep_replicas {
                Some(n) => format!(
                    "; after success, replicas of this task beyond the newest {n} are dropped"
                ),
                None => String::new(),
            };
            Ok((
                plan,
                format!(
                    "-- policy: multi_replica; the cycle at {at} creates {}{keep}\n",
                    names.join(", ")
                ),
            ))
        }
        Policy::Resync(_) => {
            let mut plan = resync::plan(conn, &spec.objects, None)
                .await
                .map_err(|e| e.to_string())?;
            // Shown as on a later cycle (a first cycle has no previous copy to retire).
            for t in plan.tables.iter_mut() {
                t.live_exists = true;
            }
            let mut statements = plan.pre_load();
            statements.extend(plan.shadow_indexes().into_iter().map(|s| DdlStatement {
                phase: Phase::PostData,
                ..s
            }));
            let table_ref =
                |t: &SwapTable, name: &str| ObjectRef::new(ObjectKind::Table, &t.database, name);
            if let (Some(sql), Some(first)) = (plan.swap_sql(), plan.tables.first()) {
                statements.push(DdlStatement {
                    phase: Phase::PostData,
                    object: table_ref(first, &first.table),
                    sql,
                    session: None,
                });
            }
            for t in &plan.tables {
                statements.push(DdlStatement {
                    phase: Phase::PostData,
                    object: table_ref(t, &t.retired),
                    sql: format!(
                        "DROP TABLE IF EXISTS {}",
                        quote_qualified(&t.database, &t.retired)
                    ),
                    session: None,
                });
            }
            statements.extend(plan.after_swap());
            let script = SchemaPlan {
                statements,
                warnings: plan.live.warnings.clone(),
                tables: plan.live.tables.clone(),
                inline: Vec::new(),
            };
            Ok((
                script,
                "-- policy: resync; shadow tables are loaded (copy between the phases), then one \
                 RENAME TABLE swaps them all in; the first cycle only renames the shadows\n"
                    .to_owned(),
            ))
        }
        Policy::Incremental(p) => {
            let plan = plan_from_source(conn, &spec.objects)
                .await
                .map_err(|e| e.to_string())?;
            Ok((
                plan,
                format!(
                    "-- policy: incremental; this DDL runs on a table's first cycle only. Later \
                     cycles run no DDL: each table upserts the rows with \
                     watermark - {}s <= column <= \
                     GREATEST(watermark, LEAST(MAX(column), NOW(6) - {}s)), with the \
                     destination's triggers on it set aside during the load\n",
                    p.lookback_seconds, p.lag_seconds
                ),
            ))
        }
    }
}
