//! Running one phase of a plan on a destination session.
//!
//! The session is set up once (`sql_mode` for table DDL, `foreign_key_checks = 0` so foreign keys
//! are added without re-checking rows the source already checked), each statement that carries
//! its own settings runs under them and the baseline comes back right after, and the session's
//! own settings are restored at the end, also after a failure.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::error::SchemaError;
use super::plan::{DdlStatement, Phase, SchemaPlan, SessionVars, TABLE_DDL_SQL_MODE};
use super::quote::quote_string;

/// Server errors that mean "it already exists".
const ER_DB_CREATE_EXISTS: u16 = 1007;
const ER_TABLE_EXISTS_ERROR: u16 = 1050;
const ER_SP_ALREADY_EXISTS: u16 = 1304;
const ER_TRG_ALREADY_EXISTS: u16 = 1359;
const ER_DUP_KEYNAME: u16 = 1061;
const ER_FK_DUP_NAME: u16 = 1826;

/// Runs the statements of `phase`, in order; returns how many ran.
#[tracing::instrument(skip_all, fields(phase = phase.as_str()))]
pub async fn apply(conn: &mut Conn, plan: &SchemaPlan, phase: Phase) -> Result<usize, SchemaError> {
    let statements: Vec<&DdlStatement> = plan.phase(phase).collect();
    apply_statements(conn, &statements, OnExisting::Fail).await
}

/// What [`apply_statements`] does with an object that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExisting {
    /// [`SchemaError::AlreadyExists`] (databases excepted: their DDL says IF NOT EXISTS).
    Fail,
    /// Leave it and go on: the object is taken to be the one an earlier attempt of the same plan
    /// made (an incremental task's first cycle, run again after a failure).
    Keep,
}

/// Runs `statements` in order under the applier's session handling; returns how many ran
/// (kept existing objects included).
pub async fn apply_statements(
    conn: &mut Conn,
    statements: &[&DdlStatement],
    on_existing: OnExisting,
) -> Result<usize, SchemaError> {
    let session_err = |e: mysql_async::Error| SchemaError::Session {
        detail: e.to_string(),
    };
    let saved: Option<(String, String, String, i64)> = conn
        .query_first(
            "SELECT @@session.sql_mode, @@session.character_set_client, \
             @@session.collation_connection, @@session.foreign_key_checks",
        )
        .await
        .map_err(session_err)?;
    let Some((sql_mode, client, collation, fk_checks)) = saved else {
        return Err(SchemaError::Session {
            detail: "the server returned no session settings".into(),
        });
    };
    let baseline = format!(
        "SET SESSION sql_mode = {}, foreign_key_checks = 0",
        quote_string(TABLE_DDL_SQL_MODE, true)
    );
    conn.query_drop(&baseline).await.map_err(session_err)?;
    let original = SessionVars {
        sql_mode,
        character_set_client: client,
        collation_connection: collation,
    };
    let result = run_all(conn, statements, on_existing, &original).await;
    let restore = format!(
        "{}, foreign_key_checks = {}",
        original.set_statement(),
        i64::from(fk_checks != 0)
    );
    let restored = conn.query_drop(restore).await.map_err(session_err);
    let count = result?;
    restored?;
    Ok(count)
}

async fn run_all(
    conn: &mut Conn,
    statements: &[&DdlStatement],
    on_existing: OnExisting,
    original: &SessionVars,
) -> Result<usize, SchemaError> {
    let mut count = 0;
    for statement in statements {
        match run_one(conn, statement, original).await {
            Ok(()) => {}
            Err(SchemaError::AlreadyExists { .. }) if on_existing == OnExisting::Keep => {}
            Err(e) => return Err(e),
        }
        count += 1;
    }
    Ok(count)
}

async fn run_one(
    conn: &mut Conn,
    statement: &DdlStatement,
    original: &SessionVars,
) -> Result<(), SchemaError> {
    let fail = |e: mysql_async::Error| match &e {
        mysql_async::Error::Server(s)
            if matches!(
                s.code,
                ER_DB_CREATE_EXISTS
                    | ER_TABLE_EXISTS_ERROR
                    | ER_SP_ALREADY_EXISTS
                    | ER_TRG_ALREADY_EXISTS
                    | ER_DUP_KEYNAME
                    | ER_FK_DUP_NAME
            ) =>
        {
            SchemaError::AlreadyExists {
                object: Box::new(statement.object.clone()),
            }
        }
        e if crate::error::is_transient(e) => SchemaError::Connection {
            side: "destination",
            doing: format!("creating {}", statement.object),
            detail: e.to_string(),
        },
        _ => SchemaError::Apply {
            object: Box::new(statement.object.clone()),
            detail: e.to_string(),
            sql: statement.sql.clone(),
        },
    };
    tracing::debug!(object = %statement.object, "creating");
    let Some(session) = &statement.session else {
        return conn.query_drop(&statement.sql).await.map_err(fail);
    };
    conn.query_drop(session.set_statement())
        .await
        .map_err(fail)?;
    let result = conn.query_drop(&statement.sql).await.map_err(fail);
    // Back to the baseline whatever happened: the next statement must not inherit these.
    let reset = SessionVars {
        sql_mode: TABLE_DDL_SQL_MODE.to_owned(),
        ..original.clone()
    };
    let reset_result =
        conn.query_drop(reset.set_statement())
            .await
            .map_err(|e| SchemaError::Session {
                detail: e.to_string(),
            });
    result?;
    reset_result
}
