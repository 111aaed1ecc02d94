//! The checks: pure functions of the spec, both servers' facts, the mapping warnings and the time.
//! One module per concern; [`run_checks`] lists them in report order ([`ids::ALL`]).

mod autoinc;
mod binlog;
mod charsets;
mod connectivity;
mod destination;
mod mapping;
mod objects;
mod privileges;
mod servers;
mod support;

#[cfg(test)]
pub(crate) mod fixtures;

use jiff::Timestamp;
use tidemark_core::TaskSpec;
use tidemark_core::precheck::{CheckResult, MappingWarningInput, ids};

use super::facts::ServerFacts;

pub use connectivity::{connectivity, skipped_reason};
pub use support::{SelectedTable, selected_tables};

/// The destination databases whose contents the checks look at: the target databases (for
/// multi-replica, whose replicas are new databases, none: only the list of names is needed).
pub fn target_databases_for_reading(input: &CheckInput<'_>) -> Vec<String> {
    match input.spec.policy {
        tidemark_core::Policy::MultiReplica(_) => Vec::new(),
        _ => privileges::target_databases(input),
    }
}

/// The facts of one endpoint, or why there are none (`skipped: the source (h:p) is unreachable`).
pub type EndpointFacts<'a> = Result<&'a ServerFacts, &'a str>;

/// Everything a check may look at.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub spec: &'a TaskSpec,
    pub source: EndpointFacts<'a>,
    pub destination: EndpointFacts<'a>,
    pub mapping_warnings: &'a [MappingWarningInput],
    pub now: Timestamp,
}

impl<'a> CheckInput<'a> {
    /// The source's facts, or the skipped result for check `id`.
    fn source(&self, id: &str) -> Result<&'a ServerFacts, CheckResult> {
        self.source.map_err(|why| skipped(id, why))
    }

    /// The destination's facts, or the skipped result for check `id`.
    fn destination(&self, id: &str) -> Result<&'a ServerFacts, CheckResult> {
        self.destination.map_err(|why| skipped(id, why))
    }

    /// Both, or the skipped result (the source's reason first).
    fn both(&self, id: &str) -> Result<(&'a ServerFacts, &'a ServerFacts), CheckResult> {
        Ok((self.source(id)?, self.destination(id)?))
    }
}

fn skipped(id: &str, why: &str) -> CheckResult {
    CheckResult::fail(
        id,
        why.to_owned(),
        "fix the connectivity check first, then run the precheck again",
    )
}

/// A check: its result, or (as `Err`) the result saying why it was skipped.
pub type Check = fn(&CheckInput<'_>) -> Result<CheckResult, CheckResult>;

/// Every check after the two connectivity checks, in report order.
pub fn run_checks(input: &CheckInput<'_>) -> Vec<CheckResult> {
    let checks: [Check; 21] = [
        servers::server_versions,
        privileges::source_privileges,
        privileges::destination_privileges,
        binlog::binlog_routines,
        objects::objects_exist,
        objects::timestamp_column_type,
        objects::timestamp_column_indexed,
        objects::timestamp_column_nulls,
        objects::primary_keys,
        destination::destination_conflicts,
        mapping::name_mapping,
        mapping::mapping_warnings,
        charsets::storage_engines,
        charsets::charsets_collations,
        servers::destination_local_infile,
        servers::max_allowed_packet,
        autoinc::autoinc_lock_mode,
        destination::foreign_keys,
        destination::destination_triggers,
        servers::lower_case_table_names,
        mapping::schedule_window,
    ];
    let results: Vec<CheckResult> = checks
        .iter()
        .map(|check| check(input).unwrap_or_else(|skipped| skipped))
        .collect();
    debug_assert_eq!(
        results.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ids::ALL[2..].to_vec()
    );
    results
}
