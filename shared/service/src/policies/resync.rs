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

use std::collections::{HashMap, HashSet};

use tidemark_core::DatabaseSelection;
use tidemark_core::policy::{retired_table_name, shadow_table_name};
use tidemark_engine::policy::objects::{
    SwapTable, drop_present_tables, existing_tables, swap, swap_statement,
};
use tidemark_engine::schema::names::RelationKind;
use tidemark_engine::schema::{
    DdlStatement, ObjectKind, OnExisting, Phase, SchemaPlan, SourceSchema, apply_statements,
    plan_schema, quote_qualified, read_source_schema,
};

use tidemark_engine::crash;

use tidemark_engine::copy::{CopyEndpoints, TablePlan as EnginePlan};

use crate::context::{CopyJob, Ctx, finish_plans, one_chunk_tables, plan_sources, source_name};
use crate::error::ServiceError;
use crate::payload::{Finish, Prepared, TableEntry};

/// A resync's plan: the task's own (its names, views, routines, triggers), the shadows' (the
/// same tables under their shadow names), and the swap.
pub struct ResyncPlan {
    pub live: SchemaPlan,
    pub shadow: SchemaPlan,
    pub tables: Vec<SwapTable>,
    /// The base tables of each destination database, as the plan found them (empty when it
    /// did not look).
    pub existing: HashMap<String, HashSet<String>>,
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

    /// Whether `table` of `database` existed on the destination when the plan was made.
    pub fn present(&self, database: &str, table: &str) -> bool {
        self.existing
            .get(database)
            .is_some_and(|set| set.iter().any(|n| n.eq_ignore_ascii_case(table)))
    }

    /// The working tables (shadows, retired copies) that exist on the destination: dropping a
    /// table that is not there still costs the server a round of work per name (measured: 10 s
    /// for 800 absent names on a loaded 2-core machine), and on a first cycle none is.
    pub fn working_present(&self) -> Vec<(String, String)> {
        self.working_tables()
            .into_iter()
            .filter(|(db, t)| self.present(db, t))
            .collect()
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

/// The source schema as the shadows' plan reads it: every selected table under its shadow name
/// (views are not loaded, so none is planned). Planned from the one read of the source that the
/// live plan is made from, so the two always agree.
pub fn shadow_schema(schema: &SourceSchema) -> SourceSchema {
    let mut shadow = schema.clone();
    for db in &mut shadow.databases {
        db.views.clear();
    }
    for names in &mut shadow.names.databases {
        names.relations.retain(|r| r.kind == RelationKind::Table);
        for rel in &mut names.relations {
            rel.target = shadow_table_name(&names.target, &rel.target);
        }
    }
    shadow
}

/// Plans a resync: reads the source once and plans it twice (the task's names, then the
/// shadows'), and looks at which tables exist on the destination (with `dst`; without it, as on a
/// first cycle) to shape the swap.
pub async fn plan(
    source: &mut mysql_async::Conn,
    objects: &[DatabaseSelection],
    dst: Option<&mut mysql_async::Conn>,
) -> Result<ResyncPlan, ServiceError> {
    let schema = read_source_schema(source, objects).await?;
    let live = plan_schema(&schema)?;
    let shadow = plan_schema(&shadow_schema(&schema))?;
    let mut existing: HashMap<String, HashSet<String>> = HashMap::new();
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
        existing,
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
    let mut plan = planned?;
    for warning in &plan.live.warnings {
        ctx.warn(warning.to_string());
    }
    // The shadows' names follow from the tables' (they are not listed on the run: a thousand of
    // them would weigh on every write of its record).
    ctx.record
        .insert("shadow_tables".into(), serde_json::json!(plan.tables.len()));
    ctx.save_record().await?;
    let working = plan.working_tables();
    super::drop_tables_at_once(ctx, &mut dst, &plan.working_present()).await?;
    let created = create_shadows(ctx, endpoints, &mut plan, &mut dst).await;
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
    plan: &mut ResyncPlan,
    dst: &mut mysql_async::Conn,
) -> Result<(Vec<EnginePlan>, Vec<TableEntry>), ServiceError> {
    // The chunks are planned first, on the source alone: a table of one chunk is created with
    // its secondary indexes, the others get them after their load.
    let tables = plan.shadow.tables.clone();
    let jobs: Vec<CopyJob<'_>> = tables
        .iter()
        .map(|table| CopyJob {
            table,
            window: None,
        })
        .collect();
    let planned = plan_sources(ctx, endpoints, &jobs).await?;
    let inline = one_chunk_tables(&jobs, &planned);
    plan.shadow
        .inline_indexes(|t| inline.contains(&source_name(t)));
    let pre = plan.pre_load();
    let refs: Vec<&DdlStatement> = pre.iter().collect();
    super::apply_pre_data(ctx, dst, &refs, OnExisting::Fail).await?;
    // Test hook: the shadow tables exist, no chunk is planned.
    crash::point("schema.pre_data");
    let (plans, mut tables) = finish_plans(ctx, endpoints, &jobs, planned, &inline).await?;
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
pub(crate) async fn finalize(
    ctx: &mut Ctx<'_>,
    retry: bool,
    tables: &[TableEntry],
) -> Result<(), ServiceError> {
    let mut dst = ctx.destination_conn().await?;
    let mut src = ctx.source_conn().await?;
    let objects = ctx.spec().objects.clone();
    let planned = plan(&mut src, &objects, Some(&mut dst)).await;
    let _ = src.disconnect().await;
    let mut plan = planned?;
    // The tables the Schema step created with their secondary indexes get none now.
    let inline: HashSet<&str> = tables
        .iter()
        .filter(|t| t.indexes_inline)
        .map(|t| t.table.as_str())
        .collect();
    plan.shadow
        .inline_indexes(|t| inline.contains(source_name(t).as_str()));
    let on_existing = if retry {
        OnExisting::Keep
    } else {
        OnExisting::Fail
    };
    let shadows_left = plan
        .tables
        .iter()
        .filter(|t| plan.present(&t.database, &t.shadow))
        .count();
    let mut retired: Vec<(String, String)> = plan
        .tables
        .iter()
        .filter(|t| plan.present(&t.database, &t.retired))
        .map(|t| (t.database.clone(), t.retired.clone()))
        .collect();
    if shadows_left == plan.tables.len() {
        let indexes = plan.shadow_indexes();
        let refs: Vec<&DdlStatement> = indexes.iter().collect();
        super::apply_post_data(ctx, &mut dst, &refs, on_existing).await?;
        // Test hook: the shadows are loaded and indexed, not swapped in.
        crash::point("resync.shadow_indexes");
        swap(&mut dst, &plan.tables).await?;
        // Test hook: swapped; the retired copies are still there.
        crash::point("resync.swapped");
        // The previous copies, now under their retired names.
        retired.extend(
            plan.tables
                .iter()
                .filter(|t| t.live_exists)
                .map(|t| (t.database.clone(), t.retired.clone())),
        );
    } else if shadows_left > 0 {
        return Err(ServiceError::Invalid {
            field: "objects".into(),
            message: format!(
                "{shadows_left} of {} shadow tables are left on the destination, the others are                  gone: the selection or the destination changed during the run; run it again",
                plan.tables.len()
            ),
        });
    }
    super::drop_tables_at_once(ctx, &mut dst, &retired).await?;
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
    drop_present_tables(&mut dst, working).await?;
    let _ = dst.disconnect().await;
    Ok(())
}
