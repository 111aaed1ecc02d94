//! Resync: every cycle reloads the same destination tables without ever showing a reader a
//! missing or half-loaded table.
//!
//! ```text
//! drop leftovers (shadows, retired copies: deterministic names, so a retry finds them)
//! -> create shadow tables with their primary keys, load them, add their secondary indexes
//! -> RENAME TABLE t TO retired, shadow TO t, ...   (one statement, atomic, every table)
//! -> drop the retired copies
//! -> foreign keys, views (CREATE OR REPLACE), routines and triggers (DROP + CREATE)
//! ```
//!
//! Foreign keys are added after the swap because constraint names are unique per database
//! (the previous copy still holds them while the shadows load). Triggers too: trigger names are
//! unique per schema, so between the swap and their re-creation — a few statements — writes to
//! the destination tables do not fire them. A run that fails before the swap drops its shadows
//! and leaves the previous copy untouched.

use std::collections::HashMap;

use tidemark_core::policy::{retired_table_name, shadow_table_name};
use tidemark_core::{DatabaseSelection, TableSelection};
use tidemark_engine::policy::objects::{
    SwapTable, drop_tables, existing_tables, swap, swap_statement,
};
use tidemark_engine::schema::{
    DdlStatement, ObjectKind, OnExisting, Phase, SchemaPlan, apply_statements, quote_qualified,
};

use tidemark_engine::crash;
use tidemark_engine::plan_from_source;

use tidemark_engine::copy::{CopyEndpoints, TablePlan as EnginePlan};

use crate::context::{CopyJob, Ctx, plan_copy};
use crate::error::ServiceError;
use crate::payload::{Finish, Prepared, TableEntry};

/// A resync's plan: the task's own (its names, views, routines, triggers), the shadows' (the
/// same tables under their shadow names), and the swap.
pub struct ResyncPlan {
    pub live: SchemaPlan,
    pub shadow: SchemaPlan,
    pub tables: Vec<SwapTable>,
}

impl ResyncPlan {
    /// Statements before the load: databases, then the shadow tables.
    pub fn pre_load(&self) -> Vec<DdlStatement> {
        let databases = self
            .live
            .phase(Phase::PreData)
            .filter(|s| s.object.kind == ObjectKind::Database);
        let tables = self
            .shadow
            .phase(Phase::PreData)
            .filter(|s| s.object.kind != ObjectKind::Database);
        databases.chain(tables).cloned().collect()
    }

    /// The shadows' secondary indexes, after their load and before the swap.
    pub fn shadow_indexes(&self) -> Vec<DdlStatement> {
        self.shadow
            .phase(Phase::PostData)
            .filter(|s| matches!(s.object.kind, ObjectKind::Indexes | ObjectKind::Index))
            .cloned()
            .collect()
    }

    /// After the swap: foreign keys, then views, routines and triggers, replacing the previous
    /// ones.
    pub fn after_swap(&self) -> Vec<DdlStatement> {
        let mut out = Vec::new();
        for s in self.live.phase(Phase::PostData) {
            match s.object.kind {
                ObjectKind::Indexes | ObjectKind::Index => {}
                ObjectKind::View => out.push(DdlStatement {
                    sql: or_replace(&s.sql),
                    ..s.clone()
                }),
                kind @ (ObjectKind::Procedure | ObjectKind::Function | ObjectKind::Trigger) => {
                    out.push(DdlStatement {
                        sql: format!(
                            "DROP {} IF EXISTS {}",
                            kind.as_str().to_uppercase(),
                            quote_qualified(&s.object.database, &s.object.name)
                        ),
                        session: None,
                        ..s.clone()
                    });
                    out.push(s.clone());
                }
                _ => out.push(s.clone()),
            }
        }
        out
    }

    /// The swap as SQL, if there is anything to swap.
    pub fn swap_sql(&self) -> Option<String> {
        swap_statement(&self.tables)
    }

    /// Every shadow and retired name: what a run drops before it starts and after it fails.
    pub fn working_tables(&self) -> Vec<(String, String)> {
        self.tables
            .iter()
            .flat_map(|t| {
                [
                    (t.database.clone(), t.shadow.clone()),
                    (t.database.clone(), t.retired.clone()),
                ]
            })
            .collect()
    }
}

fn or_replace(sql: &str) -> String {
    match sql.strip_prefix("CREATE ") {
        Some(rest) if !rest.starts_with("OR REPLACE") => format!("CREATE OR REPLACE {rest}"),
        _ => sql.to_owned(),
    }
}

/// The selection again, every table listed (the whole database's tables when it listed none)
/// and renamed to its shadow.
pub fn shadow_objects(objects: &[DatabaseSelection], live: &SchemaPlan) -> Vec<DatabaseSelection> {
    objects
        .iter()
        .map(|db| {
            let listed: Vec<TableSelection> = match &db.tables {
                Some(tables) => tables.clone(),
                None => live
                    .tables
                    .iter()
                    .filter(|t| t.source_database == db.database)
                    .map(|t| TableSelection {
                        name: t.source_table.clone(),
                        rename: None,
                        timestamp_column: None,
                        columns: None,
                    })
                    .collect(),
            };
            let tables = listed
                .into_iter()
                .map(|t| TableSelection {
                    rename: Some(shadow_table_name(db.target_name(), t.target_name())),
                    ..t
                })
                .collect();
            DatabaseSelection {
                tables: Some(tables),
                ..db.clone()
            }
        })
        .collect()
}

/// Plans a resync: reads the source twice (the task's names, then the shadows') and looks at
/// which tables exist on the destination (with `dst`; without it, as on a first cycle) to shape
/// the swap.
pub async fn plan(
    source: &mut mysql_async::Conn,
    objects: &[DatabaseSelection],
    dst: Option<&mut mysql_async::Conn>,
) -> Result<ResyncPlan, ServiceError> {
    let live = plan_from_source(source, objects).await?;
    let shadow = plan_from_source(source, &shadow_objects(objects, &live)).await?;
    let mut existing: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    if let Some(dst) = dst {
        for t in &live.tables {
            if !existing.contains_key(&t.target_database) {
                let found = existing_tables(dst, &t.target_database).await?;
                existing.insert(t.target_database.clone(), found);
            }
        }
    }
    let tables = live
        .tables
        .iter()
        .map(|t| SwapTable {
            database: t.target_database.clone(),
            table: t.target_table.clone(),
            shadow: shadow_table_name(&t.target_database, &t.target_table),
            retired: retired_table_name(&t.target_database, &t.target_table),
            live_exists: existing
                .get(&t.target_database)
                .is_some_and(|set| set.iter().any(|n| n.eq_ignore_ascii_case(&t.target_table))),
        })
        .collect();
    Ok(ResyncPlan {
        live,
        shadow,
        tables,
    })
}

/// The Schema step: the plan, leftovers of an earlier attempt dropped (deterministic names),
/// the shadow tables created with their primary keys, their chunks planned. A failure drops the
/// shadows.
pub(crate) async fn prepare(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
) -> Result<Prepared, ServiceError> {
    let mut dst = ctx.destination_conn().await?;
    let mut src = ctx.source_conn().await?;
    let objects = ctx.spec().objects.clone();
    let planned = plan(&mut src, &objects, Some(&mut dst)).await;
    let _ = src.disconnect().await;
    let plan = planned?;
    for warning in &plan.live.warnings {
        ctx.warn(warning.to_string());
    }
    ctx.record.insert(
        "shadow_tables".into(),
        serde_json::json!(
            plan.tables
                .iter()
                .map(|t| format!("{}.{}", t.database, t.shadow))
                .collect::<Vec<_>>()
        ),
    );
    ctx.save_record().await?;
    let working = plan.working_tables();
    drop_tables(&mut dst, &working).await?;
    let created = create_shadows(ctx, endpoints, &plan, &mut dst).await;
    let _ = dst.disconnect().await;
    match created {
        Ok((plans, tables)) => Ok(Prepared {
            plans,
            tables,
            finish: Finish::Resync { working },
        }),
        Err(e) => {
            abort(ctx, &working).await.ok();
            Err(e)
        }
    }
}

async fn create_shadows(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
    plan: &ResyncPlan,
    dst: &mut mysql_async::Conn,
) -> Result<(Vec<EnginePlan>, Vec<TableEntry>), ServiceError> {
    let pre = plan.pre_load();
    let refs: Vec<&DdlStatement> = pre.iter().collect();
    apply_statements(dst, &refs, OnExisting::Fail).await?;
    // Test hook: the shadow tables exist, no chunk is planned.
    crash::point("schema.pre_data");
    let jobs: Vec<CopyJob<'_>> = plan
        .shadow
        .tables
        .iter()
        .map(|table| CopyJob {
            table,
            window: None,
        })
        .collect();
    let (plans, mut tables) = plan_copy(ctx, endpoints, &jobs).await?;
    // Report the tables by the names readers use, not the shadows'.
    for entry in tables.iter_mut() {
        if let Some(live) = plan
            .live
            .tables
            .iter()
            .find(|t| format!("{}.{}", t.source_database, t.source_table) == entry.table)
        {
            entry.dest_table = format!("{}.{}", live.target_database, live.target_table);
        }
    }
    Ok((plans, tables))
}

/// The Finalize step: the shadows' secondary indexes, the swap, the previous copies dropped,
/// then foreign keys, views, routines and triggers. Run again after a crash, it finds where the
/// last attempt stopped: shadows still there = not swapped yet; none left = swapped.
pub(crate) async fn finalize(ctx: &mut Ctx<'_>, retry: bool) -> Result<(), ServiceError> {
    let mut dst = ctx.destination_conn().await?;
    let mut src = ctx.source_conn().await?;
    let objects = ctx.spec().objects.clone();
    let planned = plan(&mut src, &objects, Some(&mut dst)).await;
    let _ = src.disconnect().await;
    let plan = planned?;
    let on_existing = if retry {
        OnExisting::Keep
    } else {
        OnExisting::Fail
    };
    let mut shadows_left = 0;
    for t in &plan.tables {
        let existing = existing_tables(&mut dst, &t.database).await?;
        if existing.iter().any(|n| n.eq_ignore_ascii_case(&t.shadow)) {
            shadows_left += 1;
        }
    }
    if shadows_left == plan.tables.len() {
        let indexes = plan.shadow_indexes();
        let refs: Vec<&DdlStatement> = indexes.iter().collect();
        super::apply_post_data(ctx, &mut dst, &refs, on_existing).await?;
        // Test hook: the shadows are loaded and indexed, not swapped in.
        crash::point("resync.shadow_indexes");
        swap(&mut dst, &plan.tables).await?;
        // Test hook: swapped; the retired copies are still there.
        crash::point("resync.swapped");
    } else if shadows_left > 0 {
        return Err(ServiceError::Invalid {
            field: "objects".into(),
            message: format!(
                "{shadows_left} of {} shadow tables are left on the destination, the others are                  gone: the selection or the destination changed during the run; run it again",
                plan.tables.len()
            ),
        });
    }
    let retired: Vec<(String, String)> = plan
        .tables
        .iter()
        .map(|t| (t.database.clone(), t.retired.clone()))
        .collect();
    drop_tables(&mut dst, &retired).await?;
    // Test hook: the retired copies are gone; no foreign key, trigger or view is redone yet.
    crash::point("resync.retired_dropped");
    if ctx.with_schema() {
        let after = plan.after_swap();
        let refs: Vec<&DdlStatement> = after.iter().collect();
        apply_statements(&mut dst, &refs, on_existing).await?;
    }
    let _ = dst.disconnect().await;
    Ok(())
}

/// A failed run drops its shadow and retired tables (never a live one): before the swap the
/// previous copy stays as it was.
pub(crate) async fn abort(
    ctx: &mut Ctx<'_>,
    working: &[(String, String)],
) -> Result<(), ServiceError> {
    let mut dst = ctx.destination_conn().await?;
    drop_tables(&mut dst, working).await?;
    let _ = dst.disconnect().await;
    Ok(())
}
