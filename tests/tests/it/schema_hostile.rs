//! Hostile identifiers: backticks, single and double quotes, spaces, a reserved word, non-ASCII
//! and 64 characters, as source names and as renames. Each one names exactly one object, and
//! none runs SQL of its own: a database the names try to drop is still there.

use mysql_async::prelude::Queryable;
use tidemark_engine::schema::quote_ident;
use tidemark_tests::harness::{destination, source, unique_name};

use crate::schema::{drop_databases, migrate, rows, value};

#[tokio::test]
async fn hostile_identifiers_round_trip_and_never_run_sql() {
    let victim = unique_name("victim");
    let db = format!("{} `it's` \"q\" 名", unique_name("hostile"));
    let db_dst = format!("{} 'dst' `b`", unique_name("hostile"));
    let table = format!("t`; DROP DATABASE {victim}; --");
    let c64 = "é".repeat(64);
    let view = format!("v \"x' `; DROP DATABASE {victim}; --");
    let trigger = format!("tr`; DROP DATABASE {victim}; --");
    let procedure = "p'q\"r `select`".to_owned();
    let function = "f 名前".to_owned();
    assert_eq!(c64.chars().count(), 64);
    for name in [&db, &db_dst, &table, &view, &trigger] {
        assert!(
            name.chars().count() <= 64,
            "{name} is too long for the test"
        );
    }

    let (d, t, c) = (quote_ident(&db), quote_ident(&table), quote_ident(&c64));
    for server in [source(), destination()] {
        server
            .exec(&[&format!("CREATE DATABASE {}", quote_ident(&victim))])
            .await;
    }
    source()
        .exec(&[
            &format!("CREATE DATABASE {d}"),
            &format!(
                "CREATE TABLE {d}.{t} (`select` INT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 `a``b` VARCHAR(10) DEFAULT 'x''`y', `sp ace \"q\"` INT, `名前` TEXT, {c} INT, \
                 KEY `ix ``k`` x` (`a``b`, `sp ace \"q\"`), CONSTRAINT `ch'k` CHECK ({c} >= 0))"
            ),
            &format!(
                "CREATE VIEW {d}.{} AS SELECT `select`, `a``b`, {c} FROM {d}.{t}",
                quote_ident(&view)
            ),
            &format!(
                "CREATE TRIGGER {d}.{} BEFORE INSERT ON {d}.{t} FOR EACH ROW \
                 SET NEW.`sp ace \"q\"` = NEW.{c} + 1, NEW.`a``b` = 'trg'",
                quote_ident(&trigger)
            ),
            &format!(
                "CREATE PROCEDURE {d}.{}(OUT n INT) SELECT COUNT(*) INTO n FROM {t}",
                quote_ident(&procedure)
            ),
            &format!(
                "CREATE FUNCTION {d}.{}() RETURNS INT READS SQL DATA \
                 RETURN (SELECT COUNT(*) FROM {d}.{t} WHERE {t}.`a``b` = 'trg')",
                quote_ident(&function)
            ),
        ])
        .await;

    let plan = migrate(serde_json::json!([{
        "database": db, "rename": db_dst,
        "tables": [
            { "name": table, "rename": "select",
              "columns": [ { "name": "select" }, { "name": "a`b", "rename": "b`a \"x\"" },
                           { "name": "sp ace \"q\"" }, { "name": "名前" }, { "name": c64 } ] },
            { "name": view }
        ]
    }]))
    .await;
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);

    let dst = destination();
    let dd = quote_ident(&db_dst);
    // Every name arrived exactly, and only those.
    let relations = rows(
        &dst,
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
        (&db_dst,),
    )
    .await;
    assert_eq!(
        relations,
        [
            [Some("select".to_owned()), Some("BASE TABLE".to_owned())],
            [Some(view.clone()), Some("VIEW".to_owned())]
        ]
    );
    let columns = rows(
        &dst,
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'select' ORDER BY ORDINAL_POSITION",
        (&db_dst,),
    )
    .await;
    let columns: Vec<String> = columns.into_iter().flatten().flatten().collect();
    assert_eq!(
        columns,
        ["select", "b`a \"x\"", "sp ace \"q\"", "名前", c64.as_str()]
    );
    let index = value(
        &dst,
        "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND INDEX_NAME = 'ix `k` x'",
        (&db_dst,),
    )
    .await;
    assert_eq!(index.as_deref(), Some("b`a \"x\",sp ace \"q\""));
    let check = value(
        &dst,
        "SELECT CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?",
        (&db_dst,),
    )
    .await;
    assert_eq!(check.as_deref(), Some("ch'k"));
    let triggers = rows(
        &dst,
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
        (&db_dst,),
    )
    .await;
    assert_eq!(
        triggers,
        [[Some(trigger.clone()), Some("select".to_owned())]]
    );
    let routines = rows(
        &dst,
        "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME",
        (&db_dst,),
    )
    .await;
    let routines: Vec<String> = routines.into_iter().flatten().flatten().collect();
    assert_eq!(routines, [function.clone(), procedure.clone()]);

    // No name ran as SQL: the victim is still on both servers.
    for server in [source(), destination()] {
        assert_eq!(
            value(
                &server,
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (&victim,)
            )
            .await
            .as_deref(),
            Some("1"),
            "the victim database is gone from the {} server",
            server.role
        );
    }

    // And everything works under its new names.
    dst.exec(&[&format!("INSERT INTO {dd}.`select` ({c}) VALUES (5)")])
        .await;
    let row = rows(
        &dst,
        &format!("SELECT `sp ace \"q\"`, `b``a \"x\"` FROM {dd}.`select`"),
        (),
    )
    .await;
    assert_eq!(
        row,
        [[Some("6".to_owned()), Some("trg".to_owned())]],
        "the trigger ran"
    );
    assert_eq!(
        value(
            &dst,
            &format!("SELECT COUNT(*) FROM {dd}.{}", quote_ident(&view)),
            ()
        )
        .await
        .as_deref(),
        Some("1")
    );
    let mut conn = dst.conn().await;
    conn.query_drop(format!("CALL {dd}.{}(@n)", quote_ident(&procedure)))
        .await
        .expect("CALL the procedure");
    let n: Option<i64> = conn.query_first("SELECT @n").await.expect("@n");
    assert_eq!(n, Some(1));
    let f: Option<i64> = conn
        .query_first(format!("SELECT {dd}.{}()", quote_ident(&function)))
        .await
        .expect("the function");
    assert_eq!(f, Some(1));
    let _ = conn.disconnect().await;

    drop_databases(&[&db, &db_dst, &victim]).await;
}
