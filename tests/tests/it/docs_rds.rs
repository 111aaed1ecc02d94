//! The RDS quick start's GRANTs are what the precheck's privilege checks ask for: granted as the
//! README writes them (on the shared MariaDB servers, so the source's MariaDB variant: `SELECT`
//! on `mysql`.`proc` rather than MySQL's `EXECUTE`), a precheck of the README's task passes both
//! privilege checks; with any one privilege left out, the check of its side fails.

use serde_json::{Value, json};
use tidemark_core::parse_task_spec;
use tidemark_core::precheck::{CheckStatus, PrecheckReport, ids};
use tidemark_tests::harness::{Server, destination, source, unique_name};

use crate::docs::{blocks, readme};
use crate::precheck::{check, database, endpoint, precheck_with, user};

/// One `GRANT <privilege> ON <object>`, one privilege each.
#[derive(Debug, Clone, PartialEq)]
struct Grant {
    privilege: String,
    object: String,
}

/// The grants of a README SQL block, one per privilege.
fn grants(sql: &str) -> Vec<Grant> {
    sql.lines()
        .filter_map(|l| l.strip_prefix("GRANT "))
        .flat_map(|l| {
            let (privileges, rest) = l.split_once(" ON ").expect("GRANT ... ON");
            let (object, _) = rest.split_once(" TO ").expect("ON ... TO");
            privileges.split(", ").map(move |p| Grant {
                privilege: p.to_owned(),
                object: object.to_owned(),
            })
        })
        .collect()
}

/// The README's task with the local servers' users as its endpoints and `db` as its database.
fn readme_task(src: &Server, dst: &Server, db: &str, target: &str) -> tidemark_core::TaskSpec {
    let text = blocks(&readme(), "json")
        .into_iter()
        .find(|b| b.info == "json" && b.text.contains("rds.amazonaws.com"))
        .expect("the RDS quick start's task")
        .text;
    let mut task: Value = serde_json::from_str(&text).expect("JSON");
    task["source"] = endpoint(src);
    task["destination"] = endpoint(dst);
    task["objects"] = json!([{ "database": db, "rename": target }]);
    parse_task_spec(&task.to_string()).expect("the README's task, made local")
}

async fn privileges(
    side: &Server,
    tag: &str,
    granted: &[Grant],
    rename: &[(&str, &str)],
) -> Server {
    let clauses: Vec<String> = granted
        .iter()
        .map(|g| {
            let object = rename
                .iter()
                .fold(g.object.clone(), |o, (from, to)| o.replace(from, to));
            format!("{} ON {object}", g.privilege)
        })
        .collect();
    user(side, tag, &clauses).await
}

/// Where the README's names point on the local servers.
struct Local<'a> {
    db: &'a str,
    target: &'a str,
    rename: &'a [(&'a str, &'a str)],
}

/// The precheck of the README's task, by users with these grants on each side.
async fn privilege_checks(src: &[Grant], dst: &[Grant], local: &Local<'_>) -> PrecheckReport {
    let src = privileges(&source(), "rdsq_src", src, local.rename).await;
    let dst = privileges(&destination(), "rdsq_dst", dst, local.rename).await;
    let spec = readme_task(&src, &dst, local.db, local.target);
    precheck_with(&spec, &[], jiff::Timestamp::now()).await
}

fn status(report: &PrecheckReport, id: &str) -> CheckStatus {
    check(report, id).status
}

#[tokio::test]
async fn the_quick_starts_grants_pass_the_privilege_checks_and_none_is_too_many() {
    let readme = readme();
    let section: String = readme
        .lines()
        .skip_while(|l| *l != "## The RDS quick start")
        .take_while(|l| *l != "## Upgrading")
        .collect::<Vec<_>>()
        .join("\n");
    let sql = blocks(&section, "sql");
    assert_eq!(sql.len(), 2, "a source and a destination block");
    let all_source = grants(&sql[0].text);
    // MySQL's way to read routine definitions, shown beside MariaDB's.
    let execute = Grant {
        privilege: "EXECUTE".into(),
        object: "`shop`.*".into(),
    };
    assert!(all_source.contains(&execute), "{all_source:?}");
    let source_grants: Vec<Grant> = all_source.into_iter().filter(|g| *g != execute).collect();
    let destination_grants = grants(&sql[1].text);
    assert!(source_grants.len() >= 4 && destination_grants.len() >= 11);

    // A database with what every privilege is there for: a table, a view, a trigger, a routine.
    let db = database(
        &source(),
        "rds_quick",
        &[
            "CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2), KEY (total))",
            "INSERT INTO orders VALUES (1, 9.50), (2, 12.00)",
            "CREATE VIEW big_orders AS SELECT id FROM orders WHERE total > 10",
            "CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW SET NEW.total = ABS(NEW.total)",
            "CREATE PROCEDURE order_count() SELECT COUNT(*) FROM orders",
        ],
    )
    .await;
    let target = unique_name("rds_quick_dw");
    let rename = [
        ("`shop`", format!("`{db}`")),
        ("`shop_dw`", format!("`{target}`")),
    ];
    let rename: Vec<(&str, &str)> = rename.iter().map(|(a, b)| (*a, b.as_str())).collect();

    let local = Local {
        db: &db,
        target: &target,
        rename: &rename,
    };
    let report = privilege_checks(&source_grants, &destination_grants, &local).await;
    for id in [ids::SOURCE_PRIVILEGES, ids::DESTINATION_PRIVILEGES] {
        assert_eq!(
            status(&report, id),
            CheckStatus::Pass,
            "{:#?}",
            check(&report, id)
        );
    }
    // Each privilege is needed: without it, its side's check fails.
    for (side, id) in [ids::SOURCE_PRIVILEGES, ids::DESTINATION_PRIVILEGES]
        .into_iter()
        .enumerate()
    {
        let count = [source_grants.len(), destination_grants.len()][side];
        for i in 0..count {
            let mut sides = [source_grants.clone(), destination_grants.clone()];
            let left_out = sides[side].remove(i);
            let report = privilege_checks(&sides[0], &sides[1], &local).await;
            assert_eq!(
                status(&report, id),
                CheckStatus::Fail,
                "{id} without {left_out:?}"
            );
        }
    }
    crate::schema::drop_databases(&[&db]).await;
}
