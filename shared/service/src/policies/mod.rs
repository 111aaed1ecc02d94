//! The three scheduling policies as cycle flows over [`crate::cycle::Ctx`]: what is planned,
//! created, copied, swapped and dropped, in which order, and what each leaves after a failure.
//!
//! - [`replica`]: multi-replica — new databases named after the scheduled time; `keep_replicas`.
//! - [`resync`]: shadow tables, one atomic swap, dependent objects recreated.
//! - [`incremental`]: first cycle full, then one window per table per run, upserted.

pub mod incremental;
pub mod replica;
pub mod resync;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mysql_async::Conn;
use tidemark_core::FieldError;
use tidemark_engine::schema::{DdlStatement, ObjectKind, OnExisting, apply_statements};

use crate::cycle::Ctx;
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
/// Everything else (foreign keys, which need the indexes, then routines, views and triggers)
/// runs afterwards, in order, on `dst`.
pub(crate) async fn apply_post_data(
    ctx: &Ctx<'_>,
    dst: &mut Conn,
    statements: &[&DdlStatement],
    on_existing: OnExisting,
) -> Result<(), ServiceError> {
    let is_index =
        |s: &DdlStatement| matches!(s.object.kind, ObjectKind::Indexes | ObjectKind::Index);
    let mut tables: Vec<((&str, &str), Vec<&DdlStatement>)> = Vec::new();
    for s in statements.iter().copied().filter(|s| is_index(s)) {
        let table = (s.object.database.as_str(), s.object.name.as_str());
        match tables.iter_mut().find(|(t, _)| *t == table) {
            Some((_, group)) => group.push(s),
            None => tables.push((table, vec![s])),
        }
    }
    let workers = usize::try_from(ctx.spec().channel.workers.max(1)).unwrap_or(1);
    if tables.len() > 1 && workers > 1 {
        let mut pending = tables.into_iter().map(|(_, group)| group);
        let mut running = FuturesUnordered::new();
        // After a failure no new build starts; those running finish (each ALTER is atomic) and
        // the first error is reported.
        let mut first_error = None;
        loop {
            while first_error.is_none() && running.len() < workers {
                let Some(group) = pending.next() else { break };
                running.push(build_indexes(ctx, group, on_existing));
            }
            match running.next().await {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                None => break,
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
    } else {
        let indexes: Vec<&DdlStatement> =
            statements.iter().copied().filter(|s| is_index(s)).collect();
        apply_statements(dst, &indexes, on_existing).await?;
    }
    let rest: Vec<&DdlStatement> = statements
        .iter()
        .copied()
        .filter(|s| !is_index(s))
        .collect();
    apply_statements(dst, &rest, on_existing).await?;
    Ok(())
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
