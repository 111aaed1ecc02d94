//! The Schema step: the policy's preparation, then every chunk and the Finalize step written.

use std::collections::HashMap;

use tidemark_core::Policy;
use tidemark_core::state::{RunPhase, StepKind, StepRecord};
use tidemark_engine::copy::{CopyEndpoints, chunk_bytes};
use tidemark_engine::crash;

use crate::context::{Ctx, update_run};
use crate::error::ServiceError;
use crate::payload::{FinalizePayload, SCHEMA_STEP, encode, encode_finalize, step};

/// The Schema step's work: the policy's preparation, then the chunk and Finalize steps written
/// (the Finalize step last). Returns the number of chunks. A run taken over after a crash may
/// find steps of an earlier, incomplete attempt: they are overwritten.
pub(crate) async fn schema(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
) -> Result<u32, ServiceError> {
    ctx.phase(RunPhase::Schema).await?;
    let prepared = match ctx.spec().policy.clone() {
        Policy::MultiReplica(_) => crate::policies::replica::prepare(ctx, endpoints).await?,
        Policy::Resync(_) => crate::policies::resync::prepare(ctx, endpoints).await?,
        Policy::Incremental(policy) => {
            crate::policies::incremental::prepare(ctx, endpoints, &policy).await?
        }
    };
    super::caps::settle_caps(ctx, endpoints, &prepared.plans, &prepared.tables).await?;
    // Test hook: the policy prepared the destination, no step is written yet.
    crash::point("schema.planned");
    let planned = super::grouping::chunk_steps(
        &prepared.plans,
        &prepared.tables,
        ctx.spec().channel.workers,
        chunk_bytes(ctx.spec().channel.chunk_mb),
    )?;
    let chunks: Vec<StepRecord> = (1..)
        .zip(&planned)
        .map(|(n, s)| {
            Ok(step(
                ctx.key,
                ctx.expires_at,
                n,
                StepKind::Chunk,
                encode(&s.work)?,
            ))
        })
        .collect::<Result<_, ServiceError>>()?;
    let total = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    let finalize = step(
        ctx.key,
        ctx.expires_at,
        total + 1,
        StepKind::Finalize,
        encode_finalize(&FinalizePayload {
            tables: prepared.tables,
            finish: prepared.finish,
        })?,
    );
    write_steps(ctx, chunks).await?;
    update_run(ctx.store, ctx.key, |r| {
        r.chunks_total = total;
        r.chunks_done = 0;
    })
    .await?;
    write_steps(ctx, vec![finalize]).await?;
    ctx.save_record().await?;
    // Test hook: the plan is complete, the Schema step is not marked done.
    crash::point("schema.steps_written");
    Ok(total)
}

/// Writes steps, replacing any of the same number an earlier attempt left.
async fn write_steps(ctx: &Ctx<'_>, steps: Vec<StepRecord>) -> Result<(), ServiceError> {
    let existing: HashMap<u32, u64> = ctx
        .store
        .list_steps(ctx.key)
        .await?
        .into_iter()
        .filter(|s| s.n != SCHEMA_STEP)
        .map(|s| (s.n, s.version))
        .collect();
    let (replace, create): (Vec<StepRecord>, Vec<StepRecord>) =
        steps.into_iter().partition(|s| existing.contains_key(&s.n));
    for batch in create.chunks(25) {
        ctx.store.put_steps(batch).await?;
    }
    for mut s in replace {
        s.version = existing[&s.n];
        ctx.store.update_step(&s).await?;
    }
    Ok(())
}
