//! The two sides' sessions, configured once in each pool's setup (a pool resets a connection
//! when it is returned, which erases plain `SET`s; the setup runs again after every reset).
//!
//! mysql_async runs the setup statements in *reverse* order, so each side's settings are one
//! `SET` statement plus order-independent ones.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts};

use super::pooled::{IdleClock, Session};
use super::sql::push_string_literal;
use super::types::{DigestSql, WriteMethod};
use crate::connect::{ConnectOptions, ServerInfo, connect};
use crate::error::{CopyError, Side};

/// How long one side may wait for the other (a slow destination stalls the source's stream,
/// and a slow source stalls the destination's LOAD).
const NET_TIMEOUT_SECONDS: u32 = 600;

/// How long an idle pooled session stays open (the copy's pools are closed at the end of a run
/// or an invocation anyway).
const IDLE_SESSION_TTL: Duration = Duration::from_secs(60);

/// A pooled session idle longer than this is pinged before use when the caller does not say
/// (see [`CopyEndpoints::idle_ping`]).
pub const DEFAULT_IDLE_PING: Duration = Duration::from_secs(5);

/// Parameter bytes per bulk execution (see [`CopyEndpoints::bulk_batch_bytes`]).
const BULK_BATCH_BYTES: usize = 64 * 1024;

/// Parameter bytes per bulk execution: 64 KB (measured best, BENCHMARKS.md), or a quarter of a
/// smaller `max_allowed_packet` (a batch may overshoot by a row just under its size, and must
/// stay one packet).
pub fn bulk_batch_bytes(max_allowed_packet: u64) -> usize {
    let quarter = usize::try_from(max_allowed_packet / 4).unwrap_or(usize::MAX);
    quarter.clamp(1, BULK_BATCH_BYTES)
}

/// sql_mode flags the destination session drops: values the source holds must load as they are.
const DROPPED_MODES: &[&str] = &[
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_DATE",
    "NO_ZERO_IN_DATE",
    "TRADITIONAL",
    // Values and key bounds are escaped with backslashes (see sql.rs).
    "NO_BACKSLASH_ESCAPES",
];

/// The destination session's `sql_mode`: the source's minus STRICT_* and NO_ZERO_* (the source
/// may hold zero dates and values a strict mode rejects), plus NO_AUTO_VALUE_ON_ZERO (an
/// AUTO_INCREMENT key of 0 stays 0).
pub fn destination_sql_mode(source_sql_mode: &str) -> String {
    let mut modes: Vec<&str> = source_sql_mode
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && !DROPPED_MODES.iter().any(|d| d.eq_ignore_ascii_case(m)))
        .collect();
    if !modes
        .iter()
        .any(|m| m.eq_ignore_ascii_case("NO_AUTO_VALUE_ON_ZERO"))
    {
        modes.push("NO_AUTO_VALUE_ON_ZERO");
    }
    modes.join(",")
}

/// The source session's `sql_mode`: its own, without NO_BACKSLASH_ESCAPES (key bounds are
/// escaped with backslashes).
pub fn source_sql_mode(source_sql_mode: &str) -> String {
    source_sql_mode
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && !m.eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES"))
        .collect::<Vec<_>>()
        .join(",")
}

fn sql_mode_literal(mode: &str) -> String {
    let mut out = Vec::new();
    push_string_literal(&mut out, None, mode.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// Session setup for reading the source: UTC, the column's own bytes (no conversion to the
/// connection's character set), repeatable-read snapshots.
pub fn source_setup(source_sql_mode_value: &str) -> Vec<String> {
    vec![
        format!(
            "SET SESSION time_zone = '+00:00', character_set_results = NULL, sql_mode = {}, \
             net_write_timeout = {NET_TIMEOUT_SECONDS}, net_read_timeout = {NET_TIMEOUT_SECONDS}",
            sql_mode_literal(&source_sql_mode(source_sql_mode_value))
        ),
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_owned(),
    ]
}

/// Session setup for writing the destination: no foreign-key checks, UTC, the permissive
/// `sql_mode`, read-committed (no gap locks between parallel chunks' ranges).
pub fn destination_setup(source_sql_mode_value: &str) -> Vec<String> {
    vec![
        format!(
            "SET SESSION foreign_key_checks = 0, time_zone = '+00:00', character_set_results = NULL, \
             sql_mode = {}, net_write_timeout = {NET_TIMEOUT_SECONDS}, \
             net_read_timeout = {NET_TIMEOUT_SECONDS}",
            sql_mode_literal(&destination_sql_mode(source_sql_mode_value))
        ),
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_owned(),
    ]
}

/// The two servers a copy runs between: a pool each, configured for copying.
pub struct CopyEndpoints {
    source: Pool,
    destination: Pool,
    source_endpoint: String,
    destination_endpoint: String,
    connect_timeout: Duration,
    /// Whether the destination accepts `LOAD DATA LOCAL INFILE`; when it does not (and is not
    /// MariaDB), chunks are written with multi-row INSERTs.
    pub local_infile: bool,
    /// Whether the destination runs prepared statements in bulk (`COM_STMT_BULK_EXECUTE`:
    /// MariaDB 10.2 and later), the cheapest way to write rows there.
    pub bulk_insert: bool,
    /// The destination's `max_allowed_packet`: bulk batches stay well below it.
    pub max_allowed_packet: u64,
    /// The source's global `sql_mode`, from which both sessions' modes are derived.
    pub source_sql_mode: String,
    /// How each side computes the verification digest in SQL.
    pub source_digest: DigestSql,
    pub destination_digest: DigestSql,
    /// How many chunks run at once (the pools hold one session more).
    pub workers: u32,
    /// A pooled session idle longer than this is pinged before it is handed out, and replaced
    /// when it does not answer within the connect timeout (see [`super::pooled`]).
    pub idle_ping: Duration,
    source_idle: Arc<IdleClock>,
    destination_idle: Arc<IdleClock>,
}

impl CopyEndpoints {
    /// Connects to both sides once (bounded in time, with precise errors), reads the source's
    /// `sql_mode` and whether the destination allows LOAD DATA LOCAL, and builds the pools.
    /// `workers` is how many chunks will run at once.
    pub async fn open(
        source: &ConnectOptions,
        destination: &ConnectOptions,
        workers: u32,
    ) -> Result<CopyEndpoints, CopyError> {
        let source_endpoint = source.endpoint();
        let destination_endpoint = destination.endpoint();
        let mut probe = connect(source).await?;
        let mode: Option<String> = probe
            .query_first("SELECT @@GLOBAL.sql_mode")
            .await
            .map_err(|e| CopyError::source_sql(&source_endpoint, "reading sql_mode", e))?;
        let source_digest = DigestSql::probe(&mut probe).await;
        let _ = probe.disconnect().await;
        let source_sql_mode = mode.unwrap_or_default();

        let mut probe = connect(destination).await?;
        let settings: Option<(String, u64)> = probe
            .query_first("SELECT @@GLOBAL.local_infile, @@max_allowed_packet")
            .await
            .map_err(|e| {
                CopyError::dest_sql(
                    &destination_endpoint,
                    "reading local_infile and max_allowed_packet",
                    e,
                )
            })?;
        let info = ServerInfo::read(&mut probe)
            .await
            .map_err(|e| CopyError::dest_sql(&destination_endpoint, "reading the version", e))?;
        let destination_digest = DigestSql::probe(&mut probe).await;
        let _ = probe.disconnect().await;
        let (local, max_allowed_packet) = settings.unwrap_or_default();
        let local_infile = matches!(local.as_str(), "1" | "ON");

        let max = usize::try_from(workers.max(1)).unwrap_or(1) + 1;
        let pool = |opts: &ConnectOptions, setup: Vec<String>| {
            let mut opts = opts.clone();
            opts.setup.extend(setup);
            let constraints = PoolConstraints::new(0, max).unwrap_or_default();
            // A returned session is kept (reset, its setup run again) for the next chunk. With
            // mysql_async's default TTL of zero a pool of `min = 0` closes every returned
            // session, and each chunk paid a new connection and login on both sides.
            let pool_opts = PoolOpts::default()
                .with_constraints(constraints)
                .with_inactive_connection_ttl(IDLE_SESSION_TTL);
            Pool::new(OptsBuilder::from_opts(opts.to_mysql_opts()).pool_opts(pool_opts))
        };
        Ok(CopyEndpoints {
            source: pool(source, source_setup(&source_sql_mode)),
            destination: pool(destination, destination_setup(&source_sql_mode)),
            source_endpoint,
            destination_endpoint,
            connect_timeout: source.connect_timeout.max(destination.connect_timeout),
            local_infile,
            bulk_insert: info.runs_bulk_executions(),
            max_allowed_packet,
            source_sql_mode,
            source_digest,
            destination_digest,
            workers: workers.max(1),
            idle_ping: DEFAULT_IDLE_PING,
            source_idle: Arc::new(IdleClock::new(2 * IDLE_SESSION_TTL)),
            destination_idle: Arc::new(IdleClock::new(2 * IDLE_SESSION_TTL)),
        })
    }

    /// How chunks are written unless a caller says otherwise: bulk executions on MariaDB,
    /// LOAD DATA LOCAL where it is allowed, else INSERTs.
    pub fn default_method(&self) -> WriteMethod {
        if self.bulk_insert {
            WriteMethod::Bulk
        } else if self.local_infile {
            WriteMethod::LoadData
        } else {
            WriteMethod::Insert
        }
    }

    /// Parameter bytes per bulk execution (see [`bulk_batch_bytes`]).
    pub fn bulk_batch_bytes(&self) -> usize {
        bulk_batch_bytes(self.max_allowed_packet)
    }

    /// A configured source session.
    pub async fn source_conn(&self) -> Result<Session, CopyError> {
        self.get(Side::Source).await
    }

    /// A configured destination session.
    pub async fn destination_conn(&self) -> Result<Session, CopyError> {
        self.get(Side::Destination).await
    }

    /// A session of `side`'s pool that answers: one idle longer than `idle_ping` is pinged
    /// first, and one that does not answer is dropped (a failed ping leaves it marked broken,
    /// so the pool discards it) for the next, up to the pool's size, then a new one.
    async fn get(&self, side: Side) -> Result<Session, CopyError> {
        let (endpoint, clock) = match side {
            Side::Source => (&self.source_endpoint, &self.source_idle),
            Side::Destination => (&self.destination_endpoint, &self.destination_idle),
        };
        for _ in 0..=self.workers.saturating_add(1) {
            let mut conn = self.take(side).await?;
            let Some(idle) = clock.idle_for(conn.id()) else {
                return Ok(Session::new(conn, clock));
            };
            if idle <= self.idle_ping {
                return Ok(Session::new(conn, clock));
            }
            match tokio::time::timeout(self.connect_timeout, conn.ping()).await {
                Ok(Ok(())) => return Ok(Session::new(conn, clock)),
                Ok(Err(e)) => {
                    tracing::info!(%endpoint, idle_seconds = idle.as_secs(), error = %e, "a pooled session idle too long did not answer its ping; replaced")
                }
                Err(_) => {
                    tracing::info!(%endpoint, idle_seconds = idle.as_secs(), "a pooled session idle too long did not answer its ping in time; replaced")
                }
            }
        }
        Err(CopyError::sql(
            side,
            endpoint,
            "opening a session",
            mysql_async::Error::Other(
                "no pooled session answered a ping, and no new one came instead".into(),
            ),
        ))
    }

    /// A session from `side`'s pool, within the connect timeout.
    async fn take(&self, side: Side) -> Result<Conn, CopyError> {
        let (pool, endpoint) = match side {
            Side::Source => (&self.source, &self.source_endpoint),
            Side::Destination => (&self.destination, &self.destination_endpoint),
        };
        match tokio::time::timeout(self.connect_timeout, pool.get_conn()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(CopyError::sql(side, endpoint, "opening a session", e)),
            Err(_) => Err(CopyError::sql(
                side,
                endpoint,
                "opening a session",
                mysql_async::Error::Other(
                    format!(
                        "no session within {} s (connections exhausted, or the server stopped answering)",
                        self.connect_timeout.as_secs()
                    )
                    .into(),
                ),
            )),
        }
    }

    /// Closes both pools.
    pub async fn disconnect(self) {
        let _ = self.source.disconnect().await;
        let _ = self.destination.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_mode_is_permissive_and_keeps_zero_ids() {
        assert_eq!(
            destination_sql_mode(
                "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION"
            ),
            "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"
        );
        assert_eq!(destination_sql_mode(""), "NO_AUTO_VALUE_ON_ZERO");
        assert_eq!(
            destination_sql_mode("NO_AUTO_VALUE_ON_ZERO,NO_BACKSLASH_ESCAPES,ANSI_QUOTES"),
            "NO_AUTO_VALUE_ON_ZERO,ANSI_QUOTES"
        );
        assert_eq!(
            source_sql_mode("NO_BACKSLASH_ESCAPES,STRICT_ALL_TABLES"),
            "STRICT_ALL_TABLES"
        );
    }

    #[test]
    fn bulk_batches_are_64_kb_or_a_quarter_of_a_smaller_packet() {
        assert_eq!(bulk_batch_bytes(64 << 20), 64 * 1024);
        assert_eq!(bulk_batch_bytes(256 * 1024), 64 * 1024);
        assert_eq!(bulk_batch_bytes(16 * 1024), 4096);
        assert_eq!(bulk_batch_bytes(0), 1);
    }

    #[test]
    fn each_side_is_one_set_statement_plus_the_isolation_level() {
        let setup = destination_setup("STRICT_ALL_TABLES");
        assert_eq!(setup.len(), 2);
        assert!(setup[0].contains("foreign_key_checks = 0"), "{}", setup[0]);
        assert!(setup[0].contains("time_zone = '+00:00'"), "{}", setup[0]);
        assert!(
            setup[0].contains("sql_mode = 'NO_AUTO_VALUE_ON_ZERO'"),
            "{}",
            setup[0]
        );
        assert!(source_setup("")[0].contains("character_set_results = NULL"));
    }
}
