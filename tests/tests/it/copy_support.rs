//! Helpers for the copy tests: identical tables on both sides, the engine pointed at two servers,
//! and an exact, independent picture of a table's rows to compare.

use std::sync::{Arc, Mutex};

use mysql_async::Value;
use mysql_async::prelude::Queryable;
use tidemark_engine::copy::{
    CopyEndpoints, CopyEvent, CopyOptions, TableCopySpec, TablePlan, TableReport, copy_tables,
    plan_table,
};
use tidemark_tests::harness::Server;

/// Creates `db` on both servers, runs `ddl` on the source, and creates the same tables on the
/// destination from the source's `SHOW CREATE TABLE` (the schema migration's job in a run).
pub async fn create_both(source: &Server, dest: &Server, db: &str, ddl: &[&str]) {
    let create_db = format!("CREATE DATABASE `{db}`");
    source.exec(&[&create_db]).await;
    dest.exec(&[&create_db]).await;
    let mut src = source.conn().await;
    src.query_drop(format!("USE `{db}`")).await.expect("use");
    for sql in ddl {
        src.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("source: `{sql}`: {e}"));
    }
    let tables: Vec<String> = src
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (db,),
        )
        .await
        .expect("list tables");
    let mut dst = dest.conn().await;
    dst.query_drop(format!("USE `{db}`")).await.expect("use");
    for table in tables {
        let (_, create): (String, String) = src
            .query_first(format!("SHOW CREATE TABLE `{db}`.`{table}`"))
            .await
            .expect("show create")
            .expect("a row");
        dst.query_drop(&create)
            .await
            .unwrap_or_else(|e| panic!("destination: `{create}`: {e}"));
    }
}

/// Runs statements on the source in one session that is permissive (zero dates, id 0) and UTC.
pub async fn fill_source(source: &Server, db: &str, statements: &[&str]) {
    let mut src = source.conn().await;
    src.query_drop(format!(
        "USE `{db}`; SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'"
    ))
    .await
    .expect("session");
    for sql in statements {
        src.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("source: `{sql}`: {e}"));
    }
}

/// Every column of a table (generated and invisible ones too), in order.
pub async fn all_columns(server: &Server, db: &str, table: &str) -> Vec<String> {
    let mut conn = server.conn().await;
    conn.exec(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    .await
    .expect("columns")
}

/// The table's rows, exactly, read with the binary protocol in UTC and ordered by `order_by`:
/// every value rendered without loss (floats as their bits, bytes as hex, NULL as NULL).
/// Independent of the engine's own text reads and checksums.
pub async fn exact_rows(server: &Server, db: &str, table: &str, order_by: &str) -> Vec<String> {
    let columns = all_columns(server, db, table).await;
    let list = columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut conn = server.conn().await;
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .expect("tz");
    let rows: Vec<mysql_async::Row> = conn
        .exec(
            format!("SELECT {list} FROM `{db}`.`{table}` ORDER BY {order_by}"),
            (),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: reading `{db}`.`{table}`: {e}", server.role));
    rows.into_iter()
        .map(|row| {
            row.unwrap_raw()
                .into_iter()
                .map(|v| render(v.unwrap_or(Value::NULL)))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn render(v: Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => format!(
            "x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        Value::Float(f) => format!("f{:08x}", f.to_bits()),
        Value::Double(d) => format!("d{:016x}", d.to_bits()),
        other => format!("{other:?}"),
    }
}

/// Opens the engine on two servers.
pub async fn endpoints(source: &Server, dest: &Server, workers: u32) -> Arc<CopyEndpoints> {
    Arc::new(
        CopyEndpoints::open(&source.connect_options(), &dest.connect_options(), workers)
            .await
            .expect("open the copy endpoints"),
    )
}

/// Plans and copies tables (same names on both sides), returning the reports and every event.
pub async fn copy(
    endpoints: &Arc<CopyEndpoints>,
    db: &str,
    tables: &[&str],
    target_bytes: u64,
    options: CopyOptions,
) -> (Vec<TableReport>, Vec<CopyEvent>) {
    let mut plans = Vec::new();
    for table in tables {
        let plan: TablePlan = plan_table(
            endpoints,
            &TableCopySpec::same_names(db, table),
            target_bytes,
        )
        .await
        .unwrap_or_else(|e| panic!("planning {table}: {e}"));
        plans.push(plan);
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let reports = copy_tables(
        Arc::clone(endpoints),
        Arc::new(plans),
        options,
        Arc::new(move |e| sink.lock().expect("events").push(e)),
    )
    .await
    .unwrap_or_else(|e| panic!("copy failed: {e}"));
    let events = events.lock().expect("events").clone();
    (reports, events)
}

pub fn options(workers: u32, verify: bool) -> CopyOptions {
    CopyOptions {
        workers,
        verify,
        method: None,
        retry: tidemark_engine::retry::CHUNK_RETRY,
    }
}

/// Asserts that a table is the same, row for row and bit for bit, on both servers.
pub async fn assert_same(source: &Server, dest: &Server, db: &str, table: &str, order_by: &str) {
    let want = exact_rows(source, db, table, order_by).await;
    let got = exact_rows(dest, db, table, order_by).await;
    assert_eq!(
        got.len(),
        want.len(),
        "`{db}`.`{table}`: {} rows on the destination, {} on the source",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g, w,
            "`{db}`.`{table}` row {i} differs (destination, then source)"
        );
    }
}
