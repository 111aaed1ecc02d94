//! Unit tests of the body rewriter: views, triggers, unselected columns, strings and comments.

use super::super::lexer::{Dialect, tokenize};
use super::super::names::{DatabaseNames, RelationKind};
use super::*;

fn names() -> NameMap {
    let rel = |s: &str, t: &str, cols: Option<Vec<(&str, &str)>>| RelationNames {
        source: s.into(),
        target: t.into(),
        kind: RelationKind::Table,
        columns: cols.map(|c| {
            c.into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect()
        }),
    };
    NameMap {
        databases: vec![DatabaseNames {
            source: "s1".into(),
            target: "d1".into(),
            relations: vec![
                rel(
                    "orders",
                    "orders_v2",
                    Some(vec![
                        ("id", "id"),
                        ("qty", "quantity"),
                        ("cat_id", "cat_id"),
                    ]),
                ),
                rel("cat", "cat", None),
                rel("logs", "journal", None),
            ],
        }],
    }
}

fn run(sql: &str, trigger_table: Option<&str>) -> Rewritten {
    let names = names();
    let scope = BodyScope {
        names: &names,
        database: "s1",
        trigger_table,
    };
    rewrite_references(&tokenize(sql, Dialect::SHOW_CREATE), scope)
}

#[test]
fn views_rewrite_databases_tables_aliases_and_columns() {
    let r = run(
        "select `o`.`qty` AS `qty`,`orders`.`id` AS `id`,`c`.`name` AS `name` from (`s1`.`orders` `o` join `s1`.`cat` `c` on(`c`.`id` = `o`.`cat_id`)) join `s1`.`orders` where `s1`.`orders`.`qty` > 0",
        None,
    );
    assert_eq!(
        r.sql,
        "select `o`.`quantity` AS `qty`,`orders_v2`.`id` AS `id`,`c`.`name` AS `name` from (`d1`.`orders_v2` `o` join `d1`.`cat` `c` on(`c`.`id` = `o`.`cat_id`)) join `d1`.`orders_v2` where `d1`.`orders_v2`.`quantity` > 0"
    );
    assert!(r.unsafe_references.is_empty(), "{:?}", r.unsafe_references);
    assert_eq!(
        r.relations,
        [
            ("s1".to_owned(), "orders".to_owned()),
            ("s1".to_owned(), "cat".to_owned())
        ]
    );
}

#[test]
fn trigger_bodies_rewrite_new_old_tables_and_insert_columns() {
    let r = run(
        "BEGIN INSERT INTO logs (id, msg) VALUES (NEW.id, NEW.qty); UPDATE orders SET qty = OLD.qty WHERE id = 1; SELECT COUNT(*) INTO logs FROM s1.logs l; END",
        Some("orders"),
    );
    assert_eq!(
        r.sql,
        "BEGIN INSERT INTO `journal` (id, msg) VALUES (NEW.id, NEW.`quantity`); UPDATE `orders_v2` SET qty = OLD.`quantity` WHERE id = 1; SELECT COUNT(*) INTO logs FROM `d1`.`journal` l; END"
    );
    // `qty` after SET is bare: it may be the column or a variable.
    assert!(
        r.unsafe_references.iter().any(|m| m.contains("`qty`")),
        "{:?}",
        r.unsafe_references
    );
    // `INTO logs` after SELECT is a variable, and a bare renamed table name: reported.
    assert!(
        r.unsafe_references.iter().any(|m| m.contains("`logs`")),
        "{:?}",
        r.unsafe_references
    );
}

#[test]
fn unselected_columns_are_reported() {
    let r = run(
        "select `s1`.`orders`.`secret` AS `x` from `s1`.`orders`",
        None,
    );
    assert_eq!(r.missing_columns.len(), 1, "{r:?}");
    assert!(r.missing_columns[0].contains("`secret`"));
    let r = run("SET NEW.secret = 1", Some("orders"));
    assert_eq!(r.missing_columns.len(), 1, "{r:?}");
}

#[test]
fn strings_comments_and_unknown_names_are_left_alone() {
    let sql = "SELECT 'orders.qty', `x`.`qty` /* orders */ FROM other.orders";
    let r = run(sql, None);
    assert_eq!(r.sql, sql);
}
