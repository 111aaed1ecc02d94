//! Schema migration: read the selected objects from the source, turn them into DDL for the
//! destination in two phases around the data copy, and apply a phase.
//!
//! ```text
//! read_source_schema(source conn, &spec.objects) -> SourceSchema   (catalog)
//! plan_schema(&SourceSchema)                    -> SchemaPlan      (pure)
//! apply(dest conn, &plan, Phase::PreData)    ... copy data ...    apply(dest conn, &plan, Phase::PostData)
//! ```
//!
//! ## Layout
//! - [`quote`]: the one identifier-quoting and the one string-escaping function.
//! - [`lexer`]: a lossless SQL tokenizer (strings, quoted names, comments, versioned comments).
//! - [`names`]: the name mapping resolved against the source ([`NameMap`]).
//! - [`catalog`]: reading databases, tables, views, triggers and routines from the source.
//! - [`table`]: `SHOW CREATE TABLE` parsed into columns, keys, constraints, options, partitions.
//! - [`table_ddl`]: one table's pre-data `CREATE TABLE` and post-data indexes and foreign keys,
//!   with column selection and renames applied.
//! - [`rewrite`]: rewriting references inside view, trigger and routine bodies.
//! - [`objects`]: views, triggers, procedures and functions: no DEFINER, SQL SECURITY INVOKER,
//!   stored session settings.
//! - [`planner`]: the order of everything; [`plan`]: the plan's types and its script form.
//! - [`apply`]: running one phase on a destination session.
//! - [`error`]: the errors, [`SchemaError`].

pub mod apply;
pub mod catalog;
pub mod error;
pub mod lexer;
pub mod names;
pub mod objects;
pub mod plan;
pub mod planner;
pub mod quote;
pub mod rewrite;
pub mod table;
pub mod table_ddl;

pub use apply::{OnExisting, apply, apply_statements};
pub use catalog::{SourceSchema, read_source_schema};
pub use error::SchemaError;
pub use names::NameMap;
pub use plan::{
    ColumnPlan, DdlStatement, InlineCreate, MappingWarning, ObjectKind, ObjectRef, Phase,
    SchemaPlan, SessionVars, TablePlan,
};
pub use planner::plan_schema;
pub use quote::{quote_ident, quote_qualified, quote_string};

use mysql_async::Conn;
use tidemark_core::DatabaseSelection;

/// Reads the selection from the source and plans its schema migration: what `tidemark plan`
/// prints and what a run's Schema step executes.
pub async fn plan_from_source(
    source: &mut Conn,
    selection: &[DatabaseSelection],
) -> Result<SchemaPlan, SchemaError> {
    let schema = read_source_schema(source, selection).await?;
    plan_schema(&schema)
}
