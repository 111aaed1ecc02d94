//! The precheck: everything that would make a cycle fail or lose data, found before the first one.
//!
//! [`run_precheck`] connects to both endpoints at once, reads each server's facts once
//! ([`read::read_facts`] into [`facts::ServerFacts`]), then runs the checks — pure functions of
//! the spec, both servers' facts, schema migration's mapping warnings and the time
//! ([`checks::run_checks`]). The check ids and what each does are in `tidemark_core::precheck`.
//!
//! - [`facts`]: what is known about one server (plain data, built by hand in unit tests).
//! - [`grants`]: the user's privileges, parsed from `SHOW GRANTS`.
//! - [`read`]: reading the facts (information_schema, variables, a few bounded scans).
//! - [`checks`]: the checks, one module per concern.
//! - [`sql`]: identifier quoting for the statements above.

pub mod checks;
pub mod facts;
pub mod grants;
pub mod read;
pub mod sql;

use jiff::Timestamp;
use tidemark_core::TaskSpec;
use tidemark_core::precheck::{CheckResult, MappingWarningInput, PrecheckReport, ids};

use crate::connect::{ConnectOptions, ServerInfo, connect};
use crate::error::FactsError;
use checks::{CheckInput, connectivity, run_checks, skipped_reason};
use facts::ServerFacts;
use read::{Side, read_facts};

/// Runs every check and returns the report. Never fails: an unreachable endpoint is a failed
/// connectivity check, and the checks that need its facts fail as `skipped: ...`. `now` is the
/// time the schedule and the replica names are computed from; the report's `started_at` and
/// `finished_at` are the wall clock.
#[tracing::instrument(skip_all, fields(source = %source.endpoint(), destination = %destination.endpoint()))]
pub async fn run_precheck(
    spec: &TaskSpec,
    source: &ConnectOptions,
    destination: &ConnectOptions,
    mapping_warnings: &[MappingWarningInput],
    now: Timestamp,
) -> PrecheckReport {
    let started_at = Timestamp::now();
    let input = CheckInput {
        spec,
        source: Err(""),
        destination: Err(""),
        mapping_warnings,
        now,
    };
    let targets = checks::target_databases_for_reading(&input);
    let (src, dst) = tokio::join!(
        gather(source, Side::Source(spec)),
        gather(destination, Side::Destination(&targets)),
    );
    let source_skip = skipped_reason("source", &source.endpoint());
    let destination_skip = skipped_reason("destination", &destination.endpoint());
    let input = CheckInput {
        source: src.as_ref().map_err(|_| source_skip.as_str()),
        destination: dst.as_ref().map_err(|_| destination_skip.as_str()),
        ..input
    };
    let mut results: Vec<CheckResult> = vec![
        connectivity(
            ids::SOURCE_CONNECTIVITY,
            "source",
            &source.endpoint(),
            source.tls.mode,
            src.as_ref(),
        ),
        connectivity(
            ids::DESTINATION_CONNECTIVITY,
            "destination",
            &destination.endpoint(),
            destination.tls.mode,
            dst.as_ref(),
        ),
    ];
    results.extend(run_checks(&input));
    let report = PrecheckReport {
        checks: results,
        started_at,
        finished_at: Timestamp::now(),
    };
    tracing::info!(
        passed = report.passed(),
        failed = ?report.failed_ids(),
        warned = ?report.warned_ids(),
        "precheck done"
    );
    report
}

/// Connects, reads the facts, disconnects.
pub async fn gather(opts: &ConnectOptions, side: Side<'_>) -> Result<ServerFacts, FactsError> {
    let mut conn = connect(opts).await?;
    let endpoint = opts.endpoint();
    let info = ServerInfo::read(&mut conn)
        .await
        .map_err(|e| FactsError::Query {
            endpoint: endpoint.clone(),
            what: "the server version",
            detail: e.to_string(),
        })?;
    let facts = read_facts(&mut conn, &endpoint, info, side).await;
    // A failed goodbye changes nothing: the facts were read (or their error is returned).
    let _ = conn.disconnect().await;
    facts
}
