//! A step's record: claimed with a short lease, settled, or given back.

use jiff::{SignedDuration, Timestamp};
use tidemark_core::state::{RunKey, StepKind, StepRecord, StepStatus};

use crate::context::Ctx;
use crate::error::ServiceError;
use crate::payload::{SCHEMA_STEP, step};

/// Makes sure the Schema step's record exists (a run's first step), expiring with its run.
pub(crate) async fn ensure_schema_step(
    store: &dyn tidemark_core::ports::StateStore,
    key: &RunKey,
) -> Result<(), ServiceError> {
    let expires_at = store.get_run(key).await?.and_then(|r| r.expires_at);
    store
        .put_steps(&[step(
            key,
            expires_at,
            SCHEMA_STEP,
            StepKind::Schema,
            serde_json::Value::Null,
        )])
        .await?;
    Ok(())
}

/// Claims a step for `owner` with a lease of `lease`, from the record as the caller read it:
/// the claimed record, or `None` when it is done, failed, or held by a live lease of someone
/// else. A record that changed since it was read is read again, once.
pub(crate) async fn claim(
    ctx: &Ctx<'_>,
    read: StepRecord,
    owner: &str,
    lease: SignedDuration,
) -> Result<Option<StepRecord>, ServiceError> {
    let n = read.n;
    match claim_as_read(ctx, read, owner, lease).await? {
        Claim::Stale => match ctx.store.get_step(ctx.key, n).await? {
            Some(fresh) => match claim_as_read(ctx, fresh, owner, lease).await? {
                Claim::Claimed(record) => Ok(Some(*record)),
                Claim::Stale | Claim::Not => Ok(None),
            },
            None => Ok(None),
        },
        Claim::Claimed(record) => Ok(Some(*record)),
        Claim::Not => Ok(None),
    }
}

enum Claim {
    Claimed(Box<StepRecord>),
    /// Done, failed, or held by a live lease.
    Not,
    /// The record changed since it was read.
    Stale,
}

async fn claim_as_read(
    ctx: &Ctx<'_>,
    mut record: StepRecord,
    owner: &str,
    lease: SignedDuration,
) -> Result<Claim, ServiceError> {
    let now = ctx.clock.now();
    let n = record.n;
    match record.status {
        StepStatus::Done | StepStatus::Failed => return Ok(Claim::Not),
        StepStatus::Leased if record.lease_until.is_some_and(|until| until > now) => {
            return Ok(Claim::Not);
        }
        StepStatus::Pending | StepStatus::Queued | StepStatus::Leased => {}
    }
    if record.status == StepStatus::Leased {
        tracing::info!(task = %ctx.key.task_id, run = %ctx.key.time_key(), step = n, holder = ?record.lease_owner, "a step whose holder's lease lapsed is taken over");
    }
    record.status = StepStatus::Leased;
    record.lease_owner = Some(owner.to_owned());
    record.lease_until = Some(now.saturating_add(lease).unwrap_or(now));
    record.attempts += 1;
    record.error = None;
    record.started_at = Some(now);
    record.finished_at = None;
    match ctx.store.update_step(&record).await {
        Ok(version) => {
            record.version = version;
            Ok(Claim::Claimed(Box::new(record)))
        }
        Err(e) if e.is_conflict() => Ok(Claim::Stale),
        Err(e) => Err(e.into()),
    }
}

/// Writes a step its holder changed. The holder's lease renewals move the stored version, so a
/// conflict is settled by reading it again: still held by `owner`, the change is written over
/// the newer version; taken by someone else, the conflict stands.
pub(crate) async fn write_own(
    ctx: &Ctx<'_>,
    record: &mut StepRecord,
    owner: Option<&str>,
) -> Result<(), ServiceError> {
    loop {
        match ctx.store.update_step(record).await {
            Ok(version) => {
                record.version = version;
                return Ok(());
            }
            Err(e) if e.is_conflict() => {
                let fresh = ctx.store.get_step(ctx.key, record.n).await?;
                match fresh {
                    Some(fresh)
                        if fresh.status == StepStatus::Leased
                            && fresh.lease_owner.as_deref() == owner =>
                    {
                        record.version = fresh.version;
                    }
                    _ => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Gives a claimed step back untouched (its work postponed), for another delivery to take.
pub(crate) async fn release(ctx: &Ctx<'_>, mut record: StepRecord) -> Result<(), ServiceError> {
    let owner = record.lease_owner.take();
    record.status = StepStatus::Queued;
    record.lease_until = None;
    record.attempts = record.attempts.saturating_sub(1);
    match write_own(ctx, &mut record, owner.as_deref()).await {
        Err(ServiceError::Store(e)) if e.is_conflict() => Ok(()),
        other => other,
    }
}

/// Records a claimed step as done (or failed, with its error).
pub(crate) async fn settle(
    ctx: &Ctx<'_>,
    mut record: StepRecord,
    outcome: Result<(u64, u64, Option<String>), String>,
) -> Result<StepRecord, ServiceError> {
    record.lease_until = None;
    record.finished_at = Some(ctx.clock.now());
    match outcome {
        Ok((rows, bytes, checksum)) => {
            record.status = StepStatus::Done;
            record.rows = rows;
            record.bytes = bytes;
            record.checksum = checksum;
        }
        Err(error) => {
            record.status = StepStatus::Failed;
            record.error = Some(error);
        }
    }
    let owner = record.lease_owner.clone();
    write_own(ctx, &mut record, owner.as_deref()).await?;
    Ok(record)
}

/// The owner name a lease carries: the process (and, on Lambda, the invocation).
pub fn owner_id(prefix: &str) -> String {
    format!(
        "{prefix}:{}:{}",
        std::process::id(),
        Timestamp::now().as_millisecond()
    )
}
