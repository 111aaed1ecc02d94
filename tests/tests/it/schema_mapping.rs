//! Name mapping and column selection: a renamed database, a renamed table used by a view and a
//! trigger, a renamed column; the renamed objects still work on the destination. A column
//! selection leaves out what needs an unselected column, with a warning naming it.

use tidemark_engine::schema::{MappingWarning, ObjectKind, quote_ident};
use tidemark_tests::harness::schema_diff::{NameMapping, compare};
use tidemark_tests::harness::{destination, source, unique_name};

use crate::schema::{
    drop_databases, exec_all, migrate, rows, sample_schema, show_create_table, source_only_user,
    value,
};

fn warned(warnings: &[MappingWarning], kind: ObjectKind, name: &str, needle: &str) -> bool {
    warnings.iter().any(|w| {
        w.object.kind == kind
            && (w.object.name == name || w.object.part.as_deref() == Some(name))
            && w.message.contains(needle)
    })
}

#[tokio::test]
async fn renamed_database_table_and_column_keep_views_triggers_and_routines_working() {
    let db = unique_name("schema_map");
    let dw = format!("{db}_dw");
    let definer = source_only_user("definer").await;
    let mut statements = sample_schema(&db, &definer);
    // A bare name equal to a renamed column: it may be the column or a variable, so it is
    // reported, not rewritten.
    statements.push(format!(
        "CREATE PROCEDURE {}.bare_ref() SELECT qty FROM orders",
        quote_ident(&db)
    ));
    exec_all(&source(), &statements).await;

    let columns: Vec<serde_json::Value> = [
        "tenant",
        "id",
        "price",
        "total",
        "note",
        "secret",
        "created",
        "updated",
        "cat_id",
        "lower_note",
    ]
    .iter()
    .map(|c| serde_json::json!({ "name": c }))
    .chain([serde_json::json!({ "name": "qty", "rename": "quantity" })])
    .collect();
    let plan = migrate(serde_json::json!([{
        "database": db, "rename": dw,
        "tables": [
            { "name": "cat" },
            { "name": "orders", "rename": "orders_v2", "columns": columns },
            { "name": "logs", "rename": "journal" },
            { "name": "v_orders" }, { "name": "v_big" }, { "name": "v_top" }
        ]
    }]))
    .await;

    // Exactly one warning: the bare `qty` in bare_ref, naming that procedure.
    assert!(
        warned(&plan.warnings, ObjectKind::Procedure, "bare_ref", "`qty`"),
        "{:?}",
        plan.warnings
    );
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);

    // Nothing was created under the old names.
    let dst = destination();
    assert_eq!(
        value(
            &dst,
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&db,)
        )
        .await
        .as_deref(),
        Some("0")
    );
    // The independent judge, normalised for the mapping. Its normaliser renames every `qty`,
    // so two places differ by design: the views keep their output column `qty`
    // (`quantity AS qty`), and `bare_ref`'s bare `qty` is reported above, not rewritten.
    let mapping = NameMapping {
        databases: vec![(db.clone(), dw.clone())],
        tables: vec![
            (db.clone(), "orders".into(), "orders_v2".into()),
            (db.clone(), "logs".into(), "journal".into()),
        ],
        columns: vec![(db.clone(), "orders".into(), "qty".into(), "quantity".into())],
    };
    let diffs: Vec<_> = compare(&source(), &dst, &db, &mapping)
        .await
        .into_iter()
        .filter(|d| {
            let view_alias = d.kind == "view" && d.attribute == "VIEW_DEFINITION";
            let reported = d.kind == "routine" && d.object.ends_with(".bare_ref");
            !view_alias && !reported
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "the mapped schema differs:{}",
        diffs.iter().map(|d| format!("\n  {d}")).collect::<String>()
    );

    // Tables: equal after normalising the renames.
    let renamed = |lines: Vec<String>| -> Vec<String> {
        let mut lines: Vec<String> = lines
            .into_iter()
            .map(|l| {
                l.replace("`qty`", "`quantity`")
                    .replace("`orders`", "`orders_v2`")
            })
            .collect();
        let end = lines
            .iter()
            .position(|l| l.starts_with(')'))
            .unwrap_or(lines.len());
        lines[1..end].sort();
        lines
    };
    assert_eq!(
        renamed(show_create_table(&source(), &db, "orders").await),
        show_create_table(&dst, &dw, "orders_v2").await
    );
    assert_eq!(
        renamed(show_create_table(&source(), &db, "logs").await)[1..],
        show_create_table(&dst, &dw, "journal").await[1..]
    );
    // The view reads the renamed table and column under its old output names.
    let definition = value(
        &dst,
        "SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'v_orders'",
        (&dw,),
    )
    .await
    .unwrap_or_default();
    assert!(
        definition.contains(&format!("`{dw}`.`orders_v2`")),
        "{definition}"
    );
    assert!(
        definition.contains("`o`.`quantity` AS `qty`"),
        "{definition}"
    );

    // They work: fire the trigger, read the views, call the procedure and the function.
    let d = quote_ident(&dw);
    dst.exec(&[
        &format!("INSERT INTO {d}.cat (id, parent, name) VALUES (1, NULL, 'c1')"),
        &format!(
            "INSERT INTO {d}.orders_v2 (tenant, quantity, price, cat_id) VALUES (7, 3, 2.50, 1)"
        ),
    ])
    .await;
    let journal = rows(&dst, &format!("SELECT msg FROM {d}.journal"), ()).await;
    assert_eq!(
        journal,
        [[Some("order \\ 3".to_owned())]],
        "the trigger's effect"
    );
    assert_eq!(
        value(&dst, &format!("SELECT top FROM {d}.v_top"), ())
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        value(&dst, &format!("SELECT COUNT(*) FROM {d}.v_big"), ())
            .await
            .as_deref(),
        Some("1")
    );
    let mut conn = dst.conn().await;
    use mysql_async::prelude::Queryable;
    conn.query_drop(format!("CALL {d}.count_orders(7, @n)"))
        .await
        .expect("CALL count_orders");
    let n: Option<i64> = conn.query_first("SELECT @n").await.expect("@n");
    assert_eq!(n, Some(1));
    let name: Option<String> = conn
        .query_first(format!("SELECT {d}.cat_name(1)"))
        .await
        .expect("cat_name");
    assert_eq!(name.as_deref(), Some("c1"));
    let _ = conn.disconnect().await;

    drop_databases(&[&db, &dw]).await;
}

#[tokio::test]
async fn column_selection_leaves_out_what_needs_an_unselected_column_with_a_warning() {
    let db = unique_name("schema_cols");
    let d = quote_ident(&db);
    exec_all(
        &source(),
        &[
            format!("CREATE DATABASE {d}"),
            format!("CREATE TABLE {d}.parent (id INT PRIMARY KEY)"),
            format!(
                "CREATE TABLE {d}.t (id INT PRIMARY KEY, a INT, b INT, c INT AS (b * 2) VIRTUAL, \
                 KEY ix_a (a), KEY ix_b (b), KEY ix_ab (a, b), \
                 CONSTRAINT chk_b CHECK (b > 0), CONSTRAINT chk_a CHECK (a > 0), \
                 CONSTRAINT fk_b FOREIGN KEY (b) REFERENCES {d}.parent (id))"
            ),
            format!("CREATE VIEW {d}.v_b AS SELECT id, b FROM {d}.t"),
            format!("CREATE VIEW {d}.v_on_b AS SELECT id FROM {d}.v_b"),
        ],
    )
    .await;
    let plan = migrate(serde_json::json!([{ "database": db, "tables": [
        { "name": "parent" },
        // `c` is selected, but it is generated from `b`, which is not.
        { "name": "t", "columns": [ { "name": "id" }, { "name": "a" }, { "name": "c" } ] },
        { "name": "v_b" },
        { "name": "v_on_b" }
    ] }]))
    .await;
    let w = &plan.warnings;
    assert!(warned(w, ObjectKind::Index, "ix_b", "`b`"), "{w:?}");
    assert!(warned(w, ObjectKind::Index, "ix_ab", "`b`"), "{w:?}");
    assert!(warned(w, ObjectKind::Column, "c", "`b`"), "{w:?}");
    assert!(warned(w, ObjectKind::Check, "chk_b", "`b`"), "{w:?}");
    assert!(warned(w, ObjectKind::ForeignKey, "fk_b", "`b`"), "{w:?}");
    assert!(warned(w, ObjectKind::View, "v_b", "`b`"), "{w:?}");
    assert!(
        warned(w, ObjectKind::View, "v_on_b", "left out too"),
        "{w:?}"
    );
    assert_eq!(w.len(), 7, "{w:?}");

    let dst = destination();
    let columns = rows(
        &dst,
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' ORDER BY ORDINAL_POSITION",
        (&db,),
    )
    .await;
    assert_eq!(columns, [[Some("id".to_owned())], [Some("a".to_owned())]]);
    let indexes = rows(
        &dst,
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' ORDER BY INDEX_NAME",
        (&db,),
    )
    .await;
    assert_eq!(
        indexes,
        [[Some("ix_a".to_owned())], [Some("PRIMARY".to_owned())]]
    );
    let checks = rows(
        &dst,
        "SELECT CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?",
        (&db,),
    )
    .await;
    assert_eq!(checks, [[Some("chk_a".to_owned())]]);
    let plan_t = plan
        .tables
        .iter()
        .find(|t| t.source_table == "t")
        .expect("t is planned");
    let names: Vec<_> = plan_t.columns.iter().map(|c| c.target.as_str()).collect();
    assert_eq!(names, ["id", "a"]);
    assert_eq!(plan_t.key_columns, ["id"]);

    drop_databases(&[&db]).await;
}
