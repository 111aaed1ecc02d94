//! Schema migration of a sample with every kind of object a DBA checks, from the source server to
//! the destination server, compared object by object through SHOW CREATE and information_schema.
//! The helpers here are shared with `schema_mapping` and `schema_hostile`.

use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value};
use tidemark_core::DatabaseSelection;
use tidemark_engine::connect;
use tidemark_engine::schema::{Phase, SchemaPlan, apply, plan_from_source, quote_ident};
use tidemark_tests::harness::schema_diff::{NameMapping, compare};
use tidemark_tests::harness::{Server, destination, source, unique_name};

/// Plans the migration of `objects` (the spec's JSON) from the source and applies both phases on
/// the destination.
pub async fn migrate(objects: serde_json::Value) -> SchemaPlan {
    let selection: Vec<DatabaseSelection> =
        serde_json::from_value(objects).expect("objects JSON is a selection");
    let mut src = connect(&source().connect_options())
        .await
        .expect("connect to the source");
    let plan = plan_from_source(&mut src, &selection)
        .await
        .unwrap_or_else(|e| panic!("planning failed: {e}"));
    let _ = src.disconnect().await;
    let mut dst = connect(&destination().connect_options())
        .await
        .expect("connect to the destination");
    for phase in [Phase::PreData, Phase::PostData] {
        if let Err(e) = apply(&mut dst, &plan, phase).await {
            panic!(
                "{} failed: {e}\n\nplan:\n{}",
                phase.as_str(),
                plan.to_script()
            );
        }
    }
    let _ = dst.disconnect().await;
    plan
}

/// Every row of a query as text (NULL as `None`), parameters bound.
pub async fn rows(
    server: &Server,
    sql: &str,
    params: impl Into<Params> + Send,
) -> Vec<Vec<Option<String>>> {
    let mut conn = server.conn().await;
    let result: Vec<mysql_async::Row> = match conn.exec(sql, params).await {
        Ok(r) => r,
        Err(e) => panic!("on the {} server, `{sql}` failed: {e}", server.role),
    };
    let _ = conn.disconnect().await;
    result
        .into_iter()
        .map(|row| row.unwrap().into_iter().map(text).collect())
        .collect()
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// One text value.
pub async fn value(server: &Server, sql: &str, params: impl Into<Params> + Send) -> Option<String> {
    rows(server, sql, params)
        .await
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten()
}

/// `SHOW CREATE TABLE`, normalised for comparison: the body's lines sorted (the server lists
/// secondary indexes in creation order, and the destination creates them later), the rest as is.
pub async fn show_create_table(server: &Server, db: &str, table: &str) -> Vec<String> {
    let sql = format!(
        "SHOW CREATE TABLE {}.{}",
        quote_ident(db),
        quote_ident(table)
    );
    let mut conn = server.conn().await;
    let row: Option<(String, String)> = conn.query_first(&sql).await.expect(&sql);
    let _ = conn.disconnect().await;
    let (_, create) = row.unwrap_or_else(|| panic!("{sql}: no row"));
    let mut lines: Vec<String> = create
        .lines()
        .map(|l| l.trim_end_matches(',').to_owned())
        .collect();
    let body_end = lines
        .iter()
        .position(|l| l.starts_with(')'))
        .unwrap_or(lines.len());
    lines[1..body_end].sort();
    lines
}

/// Drops the databases on both servers.
pub async fn drop_databases(names: &[&str]) {
    for server in [source(), destination()] {
        let mut conn = server.conn().await;
        for db in names {
            let _ = conn
                .query_drop(format!("DROP DATABASE IF EXISTS {}", quote_ident(db)))
                .await;
        }
        let _ = conn.disconnect().await;
    }
}

/// The sample: five object kinds, views on views, a trigger that writes another table, a
/// procedure and a function that read tables, generated and invisible columns, an AUTO_INCREMENT
/// column that is not first in the primary key, two FULLTEXT indexes on one table, a
/// self-referencing foreign key, a partitioned table, CHECK constraints, expression defaults, ON
/// UPDATE CURRENT_TIMESTAMP, a table comment, a row format, and a DEFINER that exists only here.
pub fn sample_schema(db: &str, definer: &str) -> Vec<String> {
    let d = quote_ident(db);
    vec![
        format!("CREATE DATABASE {d} CHARACTER SET latin1 COLLATE latin1_swedish_ci"),
        format!(
            "CREATE TABLE {d}.cat (id INT PRIMARY KEY, parent INT NULL, \
             name VARCHAR(50) CHARACTER SET utf8mb4 NOT NULL DEFAULT 'x''y', \
             CONSTRAINT fk_parent FOREIGN KEY (parent) REFERENCES {d}.cat(id) ON DELETE SET NULL) \
             COMMENT 'tree of ''cats''' ROW_FORMAT=COMPACT"
        ),
        format!(
            "CREATE TABLE {d}.orders (tenant INT NOT NULL, id BIGINT NOT NULL AUTO_INCREMENT, \
             qty INT NOT NULL DEFAULT 1 CHECK (qty > 0), price DECIMAL(10,2) NOT NULL DEFAULT 0, \
             total DECIMAL(12,2) AS (qty*price) STORED, note TEXT, \
             secret INT INVISIBLE DEFAULT 7, created DATETIME DEFAULT (NOW() + INTERVAL 1 DAY), \
             updated TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), \
             cat_id INT, lower_note VARCHAR(20) AS (LOWER(LEFT(note,20))) VIRTUAL, \
             PRIMARY KEY (tenant, id), KEY ix_id (id), UNIQUE KEY uq (tenant, price), \
             KEY ix_cat (cat_id), FULLTEXT KEY ft1 (note), FULLTEXT ft2 (note), \
             CONSTRAINT chk_price CHECK (price >= 0), \
             CONSTRAINT fk_cat FOREIGN KEY (cat_id) REFERENCES {d}.cat(id)) AUTO_INCREMENT=1000"
        ),
        format!(
            "CREATE TABLE {d}.logs (id INT NOT NULL, at DATE NOT NULL, msg VARCHAR(100), \
             PRIMARY KEY (id, at)) PARTITION BY RANGE (YEAR(at)) \
             (PARTITION p2020 VALUES LESS THAN (2021) COMMENT 'old', \
              PARTITION pmax VALUES LESS THAN MAXVALUE)"
        ),
        format!(
            "CREATE DEFINER = {definer} SQL SECURITY DEFINER VIEW {d}.v_orders AS \
             SELECT o.id, o.qty, c.name FROM {d}.orders o JOIN {d}.cat c ON c.id = o.cat_id"
        ),
        format!(
            "CREATE DEFINER = {definer} VIEW {d}.v_big AS SELECT id, qty FROM {d}.v_orders \
             WHERE qty > 1 WITH CHECK OPTION"
        ),
        format!(
            "CREATE DEFINER = {definer} VIEW {d}.v_top AS SELECT MAX(qty) AS top FROM {d}.v_big"
        ),
        "SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_ALL_TABLES'".to_owned(),
        format!(
            "CREATE DEFINER = {definer} TRIGGER {d}.trg_orders AFTER INSERT ON {d}.orders FOR EACH ROW \
             BEGIN INSERT INTO logs (id, at, msg) VALUES (NEW.id, '2024-01-01', CONCAT('order \\ ', NEW.qty)); END"
        ),
        "SET SESSION sql_mode = DEFAULT".to_owned(),
        "SET SESSION character_set_client = latin1".to_owned(),
        format!(
            "CREATE DEFINER = {definer} PROCEDURE {d}.count_orders(IN t INT, OUT n INT) \
             READS SQL DATA COMMENT 'count' BEGIN SELECT COUNT(*) INTO n FROM orders WHERE tenant = t; END"
        ),
        "SET SESSION character_set_client = DEFAULT".to_owned(),
        format!(
            "CREATE DEFINER = {definer} FUNCTION {d}.cat_name(t INT) RETURNS VARCHAR(50) CHARSET utf8mb4 \
             DETERMINISTIC READS SQL DATA BEGIN RETURN (SELECT name FROM cat WHERE id = t); END"
        ),
    ]
}

/// A user that exists on the source only.
pub async fn source_only_user(tag: &str) -> String {
    let user = unique_name(tag);
    let account = format!("'{user}'@'%'");
    source()
        .exec(&[
            &format!("CREATE USER {account} IDENTIFIED BY 'x-not-a-secret'"),
            &format!("GRANT SELECT, INSERT, EXECUTE ON *.* TO {account}"),
        ])
        .await;
    assert_eq!(
        value(
            &destination(),
            "SELECT COUNT(*) FROM mysql.user WHERE User = ?",
            (user.clone(),)
        )
        .await
        .as_deref(),
        Some("0")
    );
    account
}

pub async fn exec_all(server: &Server, statements: &[String]) {
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    server.exec(&refs).await;
}

/// Compares the information_schema rows of `query` (parameter: the database) on both sides.
async fn same_rows(query: &str, src_db: &str, dst_db: &str, what: &str) {
    let s = rows(&source(), query, (src_db,)).await;
    let d = rows(&destination(), query, (dst_db,)).await;
    assert!(!s.is_empty(), "no {what} on the source");
    assert_eq!(s, d, "{what} differ");
}

#[tokio::test]
async fn the_sample_schema_migrates_with_everything_a_dba_checks() {
    let db = unique_name("schema_sample");
    let definer = source_only_user("definer").await;
    exec_all(&source(), &sample_schema(&db, &definer)).await;

    let plan = migrate(serde_json::json!([{ "database": db }])).await;
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let dst = destination();

    // The independent judge: every attribute information_schema shows, compared.
    let diffs = compare(&source(), &dst, &db, &NameMapping::default()).await;
    assert!(
        diffs.is_empty(),
        "the migrated schema differs:{}",
        diffs.iter().map(|d| format!("\n  {d}")).collect::<String>()
    );

    // The database keeps its character set and collation.
    same_rows(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        &db, &db, "database defaults",
    )
    .await;
    // Tables: SHOW CREATE TABLE, identical but for the order of index lines.
    for table in ["cat", "orders", "logs"] {
        assert_eq!(
            show_create_table(&source(), &db, table).await,
            show_create_table(&dst, &db, table).await,
            "SHOW CREATE TABLE {table}"
        );
    }
    // Columns with everything: type, default, nullability, generation, invisibility, charsets.
    same_rows(
        "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE, \
         CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, GENERATION_EXPRESSION, IS_GENERATED, COLUMN_COMMENT \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
        &db, &db, "columns",
    )
    .await;
    same_rows(
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, INDEX_TYPE \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        &db, &db, "indexes",
    )
    .await;
    same_rows(
        "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE \
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY CONSTRAINT_NAME",
        &db, &db, "foreign keys",
    )
    .await;
    same_rows(
        "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME",
        &db, &db, "checks",
    )
    .await;
    same_rows(
        "SELECT TABLE_NAME, PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION, PARTITION_COMMENT \
         FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = ? AND PARTITION_NAME IS NOT NULL ORDER BY TABLE_NAME, PARTITION_ORDINAL_POSITION",
        &db, &db, "partitions",
    )
    .await;
    same_rows(
        "SELECT TABLE_NAME, ENGINE, ROW_FORMAT, TABLE_COLLATION, TABLE_COMMENT, CREATE_OPTIONS, AUTO_INCREMENT \
         FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        &db, &db, "table options",
    )
    .await;

    // Views: the same definition, check option and character sets; INVOKER, and no DEFINER
    // from the source.
    let views = "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, ALGORITHM \
                 FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME";
    same_rows(views, &db, &db, "views").await;
    let dst_views = rows(
        &dst,
        "SELECT TABLE_NAME, SECURITY_TYPE, DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
        (&db,),
    )
    .await;
    assert_eq!(dst_views.len(), 3);
    for v in &dst_views {
        assert_eq!(v[1].as_deref(), Some("INVOKER"), "{v:?}");
        assert!(
            !v[2].as_deref().unwrap_or("").contains("t_definer"),
            "{v:?}"
        );
    }
    // Views on views were created in dependency order and work.
    let top = value(
        &dst,
        &format!("SELECT COUNT(*) FROM {}.v_top", quote_ident(&db)),
        (),
    )
    .await;
    assert_eq!(top.as_deref(), Some("1"));

    // Triggers and routines: same bodies and stored settings; no DEFINER from the source.
    same_rows(
        "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, ACTION_STATEMENT, ACTION_TIMING, \
         SQL_MODE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
        &db, &db, "triggers",
    )
    .await;
    same_rows(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_DEFINITION, IS_DETERMINISTIC, SQL_DATA_ACCESS, \
         ROUTINE_COMMENT, SQL_MODE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION \
         FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME",
        &db, &db, "routines",
    )
    .await;
    same_rows(
        "SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER \
         FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = ? ORDER BY SPECIFIC_NAME, ORDINAL_POSITION",
        &db, &db, "routine parameters",
    )
    .await;
    let security = rows(
        &dst,
        "SELECT ROUTINE_NAME, SECURITY_TYPE, DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
        (&db,),
    )
    .await;
    assert_eq!(security.len(), 2);
    for r in &security {
        assert_eq!(r[1].as_deref(), Some("INVOKER"), "{r:?}");
        assert!(
            !r[2].as_deref().unwrap_or("").contains("t_definer"),
            "{r:?}"
        );
    }
    let trigger_definer = value(
        &dst,
        "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
        (&db,),
    )
    .await;
    assert!(!trigger_definer.unwrap_or_default().contains("t_definer"));

    // The order: pre-data is the database and tables only; FULLTEXT indexes one per ALTER.
    let pre: Vec<_> = plan.phase(Phase::PreData).collect();
    assert_eq!(pre.len(), 4, "{pre:?}");
    assert!(pre[0].sql.starts_with("CREATE DATABASE"));
    let fulltext: Vec<_> = plan
        .phase(Phase::PostData)
        .filter(|s| s.sql.contains("FULLTEXT"))
        .collect();
    assert_eq!(fulltext.len(), 2);
    assert!(
        fulltext
            .iter()
            .all(|s| s.sql.matches("FULLTEXT").count() == 1)
    );
    let orders_create = &pre
        .iter()
        .find(|s| s.sql.contains("`orders`"))
        .expect("orders")
        .sql;
    assert!(
        orders_create.contains("KEY `ix_id` (`id`)"),
        "{orders_create}"
    );
    assert!(!orders_create.contains("`uq`"), "{orders_create}");

    drop_databases(&[&db]).await;
}

/// The schema reader and the precheck read a database's triggers by EVENT_OBJECT_SCHEMA, the
/// column MariaDB looks triggers up by: filtered by TRIGGER_SCHEMA the server opens the tables of
/// every database it holds ("Scanned all databases"), which on a server with many databases
/// costs every run milliseconds to seconds each time the schema is read.
#[tokio::test]
async fn triggers_are_read_from_their_own_database_only() {
    let db = unique_name("trigger_lookup");
    let q = quote_ident(&db);
    exec_all(
        &source(),
        &[
            format!("CREATE DATABASE {q}"),
            format!("CREATE TABLE {q}.t (id INT PRIMARY KEY, n INT)"),
            format!("CREATE TRIGGER {q}.t_bi BEFORE INSERT ON {q}.t FOR EACH ROW SET NEW.n = 1"),
        ],
    )
    .await;
    for sql in [
        tidemark_engine::schema::catalog::TRIGGERS_SQL,
        tidemark_engine::precheck::read::TRIGGER_NAMES_SQL,
    ] {
        let found = rows(&source(), sql, (&db,)).await;
        assert_eq!(found.len(), 1, "{sql}: {found:?}");
        assert_eq!(found[0][0].as_deref(), Some("t_bi"), "{sql}");
        assert_eq!(found[0][1].as_deref(), Some("t"), "{sql}");
        let plan = rows(&source(), &format!("EXPLAIN {sql}"), (&db,)).await;
        let extra = plan[0].last().cloned().flatten().unwrap_or_default();
        assert!(
            extra.contains("Scanned 1 database"),
            "{sql} scans more than its database: {extra}"
        );
    }
    drop_databases(&[&db]).await;
}
