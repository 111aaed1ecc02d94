//! Planning many tables at once: the questions [`super::plan`] asks one table at a time (its
//! columns and keys, a sample of its rows, where its first chunk ends) asked of every table in
//! a few round trips ([`crate::batch`]). A table that holds more than one chunk is then walked on
//! its own, as before; the many small tables of an application schema never are.
//!
//! Nothing here trusts the server's statistics: a table is one chunk only when its sample held
//! every row (fewer than the sample's size) and they fit, or when no row exists where its first
//! chunk would end.

use mysql_async::Row;
use mysql_async::prelude::FromRow;

use super::plan::{Chunk, Sample, explain_sql, first_boundary_sql, plan_chunks_split, sample_sql};
use super::range::KeyRange;
use super::session::CopyEndpoints;
use super::shape::{
    COLUMNS_SQL, ColumnRow, IndexRow, KEYS_SQL, TableCopySpec, TableShape, shape_of,
};
use super::sql::{push_string_literal, qualified};
use crate::batch::{BatchError, read_all};
use crate::error::CopyError;

/// One table's source side, planned: its shape and its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePlan {
    pub shape: TableShape,
    pub chunks: Vec<Chunk>,
    /// The bytes the planner expects its rows to carry (from the sample; 0 when unknown).
    pub estimated_bytes: u64,
}

/// A group of tables planned on a session of its own has at least this many: below it, a second
/// session's login costs more than the round trips it shares out.
const TABLES_PER_SESSION: usize = 50;

/// Reads the shapes of `specs` and plans their chunks of about `target_bytes`, every table's
/// questions batched; tables of more than one chunk are walked one by one
/// ([`plan_chunks_split`]). Many tables are shared out, in order, over up to `channel.workers`
/// source sessions at once (the source's reads are the Schema step's longest part: measured,
/// 0.8 s of its 1.4 s for 400 tables on one session). In `specs` order.
pub async fn plan_sources(
    endpoints: &CopyEndpoints,
    specs: &[TableCopySpec],
    target_bytes: u64,
) -> Result<Vec<SourcePlan>, CopyError> {
    let sessions = usize::try_from(endpoints.workers)
        .unwrap_or(1)
        .min(specs.len() / TABLES_PER_SESSION)
        .max(1);
    let per = specs.len().div_ceil(sessions).max(1);
    let groups = specs
        .chunks(per)
        .map(|group| plan_group(endpoints, group, target_bytes));
    let mut planned: Vec<SourcePlan> = futures_util::future::try_join_all(groups)
        .await?
        .into_iter()
        .flatten()
        .collect();
    spread_big_tables(endpoints, &mut planned).await?;
    Ok(planned)
}

/// A table planned as one chunk is walked in smaller chunks when the workers would otherwise
/// idle beside it: one holding more than a worker's share of the run's bytes, and at least
/// [`SPREAD_MIN_BYTES`], is cut into about `channel.workers` chunks. (A run of one 40 MB table
/// otherwise loads it on one session while the others wait: measured, 300,000 rows keyed by
/// UUIDs took 1.6 s that way.)
async fn spread_big_tables(
    endpoints: &CopyEndpoints,
    planned: &mut [SourcePlan],
) -> Result<(), CopyError> {
    let workers = u64::from(endpoints.workers.max(1));
    let total: u64 = planned.iter().map(|p| p.estimated_bytes).sum();
    if workers < 2 {
        return Ok(());
    }
    for plan in planned.iter_mut() {
        let bytes = plan.estimated_bytes;
        let big = bytes >= SPREAD_MIN_BYTES && bytes.saturating_mul(workers) > total;
        if plan.chunks.len() != 1 || !big || plan.shape.key_columns().is_empty() {
            continue;
        }
        let target = bytes.div_ceil(workers).max(SPREAD_MIN_BYTES / 2);
        let chunks =
            super::plan::plan_chunks(&mut *endpoints.source_conn().await?, &plan.shape, target)
                .await?;
        if chunks.len() > 1 {
            plan.chunks = chunks;
        }
    }
    Ok(())
}

/// The smallest table [`spread_big_tables`] cuts: below it, a second session's fixed costs
/// (a deferred index build, more statements) outweigh the load it takes over.
const SPREAD_MIN_BYTES: u64 = 8 << 20;

/// [`plan_sources`] for one group of tables, on one session.
async fn plan_group(
    endpoints: &CopyEndpoints,
    specs: &[TableCopySpec],
    target_bytes: u64,
) -> Result<Vec<SourcePlan>, CopyError> {
    let mut src = endpoints.source_conn().await?;
    let shapes = read_shapes(&mut src, specs).await?;
    let keyed: Vec<usize> = (0..shapes.len())
        .filter(|&i| !shapes[i].key_columns().is_empty())
        .collect();
    let samples = read_all(
        &mut src,
        &keyed
            .iter()
            .map(|&i| sample_sql(&shapes[i]).into_bytes())
            .collect::<Vec<_>>(),
    )
    .await
    .map_err(|e| source_err(&shapes[keyed[e.index]], "sampling row sizes", e))?;
    let mut plans: Vec<Option<SourcePlan>> = vec![None; shapes.len()];
    // Tables whose sample was full: where does their first chunk end?
    let mut probes: Vec<(usize, u64, Sample)> = Vec::new();
    for (&i, rows) in keyed.iter().zip(samples) {
        let (count, bytes): (u64, String) = first_row(rows).unwrap_or((0, "0".into()));
        let sample = Sample::of(count, &bytes);
        match sample.rows_per_chunk(target_bytes) {
            None => plans[i] = Some(whole(&shapes[i], 0, 0)),
            Some(_) if sample.is_whole_table() && sample.bytes <= target_bytes => {
                plans[i] = Some(whole(&shapes[i], sample.rows, sample.bytes));
            }
            Some(_) if sample.is_whole_table() => {} // a few big rows: walked below
            Some(per_chunk) => probes.push((i, per_chunk, sample)),
        }
    }
    let probed = read_all(
        &mut src,
        &probes
            .iter()
            .flat_map(|&(i, per_chunk, _)| {
                [
                    first_boundary_sql(&shapes[i], per_chunk),
                    explain_sql(&shapes[i]),
                ]
            })
            .collect::<Vec<_>>(),
    )
    .await
    .map_err(|e| source_err(&shapes[probes[e.index / 2].0], "walking the key", e))?;
    let mut probed = probed.into_iter();
    for &(i, per_chunk, sample) in &probes {
        let (boundary, explained) = (probed.next(), probed.next());
        if boundary.is_some_and(|rows| rows.is_empty()) {
            // No row where the first chunk would end: the table is one chunk.
            let estimate = explained
                .and_then(|rows| rows.into_iter().next())
                .and_then(|row| row.get_opt::<Option<u64>, &str>("rows"))
                .and_then(Result::ok)
                .flatten()
                .unwrap_or(per_chunk)
                .clamp(sample.rows, per_chunk.saturating_sub(1).max(sample.rows));
            let avg = sample.bytes / sample.rows.max(1);
            plans[i] = Some(whole(&shapes[i], estimate, estimate.saturating_mul(avg)));
        }
    }
    drop(src);
    let mut out = Vec::with_capacity(shapes.len());
    for (shape, planned) in shapes.into_iter().zip(plans) {
        match planned {
            Some(plan) => out.push(plan),
            None if shape.key_columns().is_empty() => {
                if let Some(warning) = &shape.key_warning {
                    tracing::warn!("{warning}");
                }
                out.push(whole(&shape, 0, 0));
            }
            None => {
                let chunks =
                    plan_chunks_split(endpoints, &shape, target_bytes, endpoints.workers).await?;
                let estimated_bytes =
                    target_bytes.saturating_mul(u64::try_from(chunks.len()).unwrap_or(u64::MAX));
                out.push(SourcePlan {
                    shape,
                    chunks,
                    estimated_bytes,
                });
            }
        }
    }
    Ok(out)
}

/// Whether each destination table holds no row, `tables` as `(database, table)`, in order.
pub async fn destinations_empty(
    endpoints: &CopyEndpoints,
    tables: &[(String, String)],
) -> Result<Vec<bool>, CopyError> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut dst = endpoints.destination_conn().await?;
    let statements: Vec<Vec<u8>> = tables
        .iter()
        .map(|(db, t)| format!("SELECT 1 FROM {} LIMIT 1", qualified(db, t)).into_bytes())
        .collect();
    let found = read_all(&mut dst, &statements).await.map_err(|e| {
        let (db, t) = &tables[e.index];
        CopyError::dest_sql(
            &qualified(db, t),
            "checking whether the table is empty",
            e.error,
        )
    })?;
    Ok(found.into_iter().map(|rows| rows.is_empty()).collect())
}

/// The shapes of `specs`: each table's columns and keys, two statements a table, batched.
async fn read_shapes(
    src: &mut mysql_async::Conn,
    specs: &[TableCopySpec],
) -> Result<Vec<TableShape>, CopyError> {
    let bound = |sql: &str, spec: &TableCopySpec| {
        // The two `?` of the statement, as escaped literals (a multi-statement query takes no
        // parameters).
        let mut out = Vec::with_capacity(sql.len() + 64);
        let mut values = [spec.source_db.as_bytes(), spec.source_table.as_bytes()].into_iter();
        for part in sql.split('?').enumerate() {
            if part.0 > 0 {
                push_string_literal(&mut out, None, values.next().unwrap_or_default());
            }
            out.extend_from_slice(part.1.as_bytes());
        }
        out
    };
    let statements: Vec<Vec<u8>> = specs
        .iter()
        .flat_map(|spec| [bound(COLUMNS_SQL, spec), bound(KEYS_SQL, spec)])
        .collect();
    let rows = read_all(src, &statements).await.map_err(|e| {
        CopyError::source_sql(
            &specs[e.index / 2].display(),
            "reading the table's columns and keys",
            e.error,
        )
    })?;
    let mut rows = rows.into_iter();
    let mut shapes = Vec::with_capacity(specs.len());
    for spec in specs {
        let columns = typed::<ColumnRow>(rows.next().unwrap_or_default(), spec)?;
        let keys = typed::<IndexRow>(rows.next().unwrap_or_default(), spec)?;
        shapes.push(shape_of(spec, columns, &keys)?);
    }
    Ok(shapes)
}

fn typed<T: FromRow>(rows: Vec<Row>, spec: &TableCopySpec) -> Result<Vec<T>, CopyError> {
    rows.into_iter()
        .map(|row| {
            T::from_row_opt(row).map_err(|_| CopyError::Invariant {
                table: spec.display(),
                detail: "information_schema answered in an unexpected form".into(),
            })
        })
        .collect()
}

fn first_row<T: FromRow>(rows: Vec<Row>) -> Option<T> {
    rows.into_iter()
        .next()
        .and_then(|r| T::from_row_opt(r).ok())
}

fn source_err(shape: &TableShape, doing: &str, e: BatchError) -> CopyError {
    CopyError::source_sql(&shape.spec.display(), doing, e.error)
}

/// The whole table as one chunk.
fn whole(shape: &TableShape, estimated_rows: u64, estimated_bytes: u64) -> SourcePlan {
    SourcePlan {
        shape: shape.clone(),
        chunks: vec![Chunk {
            source_db: shape.spec.source_db.clone(),
            source_table: shape.spec.source_table.clone(),
            index: 0,
            range: KeyRange::default(),
            estimated_rows,
            window: None,
        }],
        estimated_bytes,
    }
}
