//! The three scheduling policies as cycle flows over [`crate::cycle::Ctx`]: what is planned,
//! created, copied, swapped and dropped, in which order, and what each leaves after a failure.
//!
//! - [`replica`]: multi-replica — new databases named after the scheduled time; `keep_replicas`.
//! - [`resync`]: shadow tables, one atomic swap, dependent objects recreated.
//! - [`incremental`]: first cycle full, then one window per table per run, upserted.

pub mod incremental;
pub mod replica;
pub mod resync;

use mysql_async::Conn;
use tidemark_core::FieldError;
use tidemark_engine::policy::objects::drop_tables;
use tidemark_engine::schema::{DdlStatement, ObjectKind, OnExisting, apply_statements};

use crate::context::Ctx;
use crate::error::ServiceError;

pub(crate) fn invalid(e: FieldError) -> ServiceError {
    ServiceError::Invalid {
        field: e.field,
        message: e.message,
    }
}

/// Runs post-data statements like [`apply_statements`], except that the secondary indexes of
/// different tables are built at the same time, `channel.workers` tables at once, each table's
/// own statements in order on its own session. A MariaDB index build uses one core, and a
/// database of many tables would otherwise build them one after the other at the end of the run.
/// The chunks' deferred checks ([`crate::checks::check_deferred`]) run meanwhile, on one session
/// until the builds end, then on `channel.workers`; both finish before anything else (foreign keys, which need the indexes, then
/// routines, views and triggers) runs, in order, on `dst`.
pub(crate) async fn apply_post_data(
    ctx: &Ctx<'_>,
    dst: &mut Conn,
    statements: &[&DdlStatement],
    on_existing: OnExisting,
) -> Result<(), ServiceError> {
    let (tables, rest) = split_post_data(statements);
    let workers = usize::try_from(ctx.spec().channel.workers.max(1)).unwrap_or(1);
    let (built_tx, built_rx) = tokio::sync::oneshot::channel::<()>();
    let builds = async {
        let _built = built_tx; // dropped when the builds end: the checks widen
        if tables.len() > 1 && workers > 1 {
            let builds: Vec<_> = tables
                .into_iter()
                .map(|group| build_indexes(ctx, group, on_existing))
                .collect();
            crate::bounded::run_at_most(workers, builds).await
        } else {
            let indexes: Vec<&DdlStatement> = tables.into_iter().flatten().collect();
            apply_statements(dst, &indexes, on_existing).await?;
            Ok(())
        }
    };
    // Both run to their end (a build is not cut off by a failed check); a mismatch is reported
    // first.
    let checks = crate::checks::check_deferred(ctx, async {
        let _ = built_rx.await;
    });
    let (built, checked) = tokio::join!(builds, checks);
    checked?;
    built?;
    apply_statements(dst, &rest, on_existing).await?;
    Ok(())
}

/// How many destination sessions create (or drop) tables at once. A `CREATE TABLE` costs the
/// server little CPU but a file created and synced; one session waits for each in turn.
/// Measured on the 2-core benchmark machine (400 tables, each with its index, under a load
/// average of 8): 15.9-16.3 s in one session, 6.6-7.8 s in two, 4.4-4.7 s in four, 3.9-4.4 s in
/// eight. `channel.workers` sessions when that is more (at most [`MAX_DDL_SESSIONS`]).
pub(crate) const DDL_SESSIONS: usize = 4;
pub(crate) const MAX_DDL_SESSIONS: usize = 8;

/// The sessions the table DDL of a run spreads over (see [`DDL_SESSIONS`]).
pub(crate) fn ddl_sessions(ctx: &Ctx<'_>, tables: usize) -> usize {
    let workers = usize::try_from(ctx.spec().channel.workers).unwrap_or(1);
    workers
        .clamp(DDL_SESSIONS, MAX_DDL_SESSIONS)
        .min(tables.max(1))
}

/// Runs pre-data statements like [`apply_statements`], except that the tables are created
/// several at once, each session taking every n-th table (see [`DDL_SESSIONS`]); everything
/// else (the databases) runs first, in order, on `dst`, which is also the first session.
pub(crate) async fn apply_pre_data(
    ctx: &Ctx<'_>,
    dst: &mut Conn,
    statements: &[&DdlStatement],
    on_existing: OnExisting,
) -> Result<(), ServiceError> {
    let (tables, rest): (Vec<&DdlStatement>, Vec<&DdlStatement>) = statements
        .iter()
        .partition(|s| s.object.kind == ObjectKind::Table && s.session.is_none());
    apply_statements(dst, &rest, on_existing).await?;
    let sessions = ddl_sessions(ctx, tables.len());
    let lane = |i: usize| -> Vec<&DdlStatement> {
        tables.iter().skip(i).step_by(sessions).copied().collect()
    };
    let first = async {
        apply_statements(dst, &lane(0), on_existing).await?;
        Ok::<(), ServiceError>(())
    };
    let others = (1..sessions).map(|i| {
        let statements = lane(i);
        async move {
            let mut conn = ctx.destination_conn().await?;
            let applied = apply_statements(&mut conn, &statements, on_existing).await;
            let _ = conn.disconnect().await;
            applied?;
            Ok::<(), ServiceError>(())
        }
    });
    let (first, others) = tokio::join!(first, crate::bounded::run_at_most(sessions, others));
    first.and(others)
}

/// Drops tables like [`drop_tables`], spread over several sessions (see [`DDL_SESSIONS`]): the
/// previous copies of a resync, a run's shadows after a failure.
pub(crate) async fn drop_tables_at_once(
    ctx: &Ctx<'_>,
    dst: &mut Conn,
    tables: &[(String, String)],
) -> Result<(), ServiceError> {
    let sessions = ddl_sessions(ctx, tables.len());
    let lane = |i: usize| -> Vec<(String, String)> {
        tables.iter().skip(i).step_by(sessions).cloned().collect()
    };
    let first = async { Ok::<(), ServiceError>(drop_tables(dst, &lane(0)).await?) };
    let others = (1..sessions).map(|i| {
        let tables = lane(i);
        async move {
            let mut conn = ctx.destination_conn().await?;
            let dropped = drop_tables(&mut conn, &tables).await;
            let _ = conn.disconnect().await;
            Ok::<(), ServiceError>(dropped?)
        }
    });
    let (first, others) = tokio::join!(first, crate::bounded::run_at_most(sessions, others));
    first.and(others)
}

/// One table's index statements, on a session of their own.
async fn build_indexes(
    ctx: &Ctx<'_>,
    group: Vec<&DdlStatement>,
    on_existing: OnExisting,
) -> Result<(), ServiceError> {
    let mut conn = ctx.destination_conn().await?;
    let applied = apply_statements(&mut conn, &group, on_existing).await;
    let _ = conn.disconnect().await;
    applied?;
    Ok(())
}

/// Post-data statements split for [`apply_post_data`]: each table's index statements (in plan
/// order, tables in order of first appearance), and everything else in plan order.
fn split_post_data<'a>(
    statements: &[&'a DdlStatement],
) -> (Vec<Vec<&'a DdlStatement>>, Vec<&'a DdlStatement>) {
    let mut tables: Vec<((&str, &str), Vec<&DdlStatement>)> = Vec::new();
    let mut rest = Vec::new();
    for &s in statements {
        if !matches!(s.object.kind, ObjectKind::Indexes | ObjectKind::Index) {
            rest.push(s);
            continue;
        }
        let table = (s.object.database.as_str(), s.object.name.as_str());
        match tables.iter_mut().find(|(t, _)| *t == table) {
            Some((_, group)) => group.push(s),
            None => tables.push((table, vec![s])),
        }
    }
    (tables.into_iter().map(|(_, group)| group).collect(), rest)
}

#[cfg(test)]
mod tests {
    use tidemark_engine::schema::{ObjectRef, Phase};

    use super::*;

    fn statement(kind: ObjectKind, db: &str, table: &str, sql: &str) -> DdlStatement {
        DdlStatement {
            phase: Phase::PostData,
            object: ObjectRef::new(kind, db, table),
            sql: sql.to_owned(),
            session: None,
        }
    }

    #[test]
    fn each_tables_index_builds_stay_together_in_order_and_the_rest_keeps_its_order() {
        let plan = [
            statement(ObjectKind::Indexes, "d", "a", "a keys"),
            statement(ObjectKind::Index, "d", "a", "a fulltext 1"),
            statement(ObjectKind::Indexes, "d", "b", "b keys"),
            statement(ObjectKind::Index, "d", "a", "a fulltext 2"),
            // Same table name in another database: another table.
            statement(ObjectKind::Indexes, "e", "a", "e.a keys"),
            statement(ObjectKind::ForeignKeys, "d", "b", "b fks"),
            statement(ObjectKind::View, "d", "v", "view"),
            statement(ObjectKind::Trigger, "d", "t", "trigger"),
        ];
        let refs: Vec<&DdlStatement> = plan.iter().collect();
        let (tables, rest) = split_post_data(&refs);
        let sql = |list: &[&DdlStatement]| list.iter().map(|s| s.sql.clone()).collect::<Vec<_>>();
        let tables: Vec<Vec<String>> = tables.iter().map(|g| sql(g)).collect();
        assert_eq!(
            tables,
            [
                vec!["a keys", "a fulltext 1", "a fulltext 2"],
                vec!["b keys"],
                vec!["e.a keys"],
            ]
        );
        assert_eq!(sql(&rest), ["b fks", "view", "trigger"]);
    }
}
