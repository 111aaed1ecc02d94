//! Puts the pieces in the order a run executes them.
//!
//! Pre-data: each database, then its tables, referenced tables before the tables whose foreign
//! keys reference them (foreign keys come later anyway; the order keeps the DDL readable and
//! deterministic). Post-data: every table's secondary indexes (one ALTER per table, then one per
//! FULLTEXT index), every foreign key, procedures and functions (a view may call a function, and
//! CREATE VIEW checks that it exists), views with the views they read first, triggers last (they
//! must not fire for copied rows, and the resync policy recreates them after its swap).

use std::collections::HashSet;

use super::catalog::SourceSchema;
use super::error::SchemaError;
use super::objects::{ObjectDdl, routine_ddl, trigger_ddl, view_ddl};
use super::plan::{
    DdlStatement, InlineCreate, MappingWarning, ObjectKind, ObjectRef, Phase, SchemaPlan,
};
use super::quote::{quote_ident, quote_qualified};
use super::table::parse_create_table;
use super::table_ddl::table_ddl;

/// The plan for everything `source` holds. Pure: no I/O.
pub fn plan_schema(source: &SourceSchema) -> Result<SchemaPlan, SchemaError> {
    let names = &source.names;
    let mut plan = SchemaPlan {
        warnings: source.warnings.clone(),
        ..SchemaPlan::default()
    };
    let mut indexes = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut routines = Vec::new();
    let mut triggers = Vec::new();
    let mut views = Vec::new();

    for db in &source.databases {
        let Some(db_names) = names.database(&db.name) else {
            continue;
        };
        plan.statements.push(DdlStatement {
            phase: Phase::PreData,
            object: ObjectRef::new(ObjectKind::Database, &db_names.target, ""),
            sql: format!(
                "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {} COLLATE {}",
                quote_ident(&db_names.target),
                quote_ident(&db.charset),
                quote_ident(&db.collation)
            ),
            session: None,
        });
        let mut built = Vec::new();
        for table in &db.tables {
            let Some(rel) = db_names.relation(&table.name) else {
                continue;
            };
            let def =
                parse_create_table(&table.create_sql).map_err(|detail| SchemaError::Parse {
                    object: format!("table {}", quote_qualified(&db.name, &table.name)),
                    detail,
                })?;
            built.push((table.name.clone(), table_ddl(names, db_names, rel, &def)?));
        }
        let deps: Vec<Vec<usize>> = built
            .iter()
            .map(|(_, ddl)| {
                ddl.references
                    .iter()
                    .filter(|(d, _)| *d == db.name)
                    .filter_map(|(_, t)| built.iter().position(|(n, _)| n == t))
                    .collect()
            })
            .collect();
        for i in dependency_order(&deps) {
            let ddl = &mut built[i].1;
            plan.statements.append(&mut ddl.pre_data);
            indexes.append(&mut ddl.indexes);
            foreign_keys.append(&mut ddl.foreign_keys);
            plan.warnings.append(&mut ddl.warnings);
            if let (Some(sql), Some(table)) = (ddl.inline_create.take(), &ddl.plan) {
                plan.inline.push(InlineCreate {
                    table: ObjectRef::new(
                        ObjectKind::Table,
                        &table.target_database,
                        &table.target_table,
                    ),
                    sql,
                });
            }
            plan.tables.extend(ddl.plan.take());
        }
        for routine in &db.routines {
            let mut ddl = routine_ddl(names, db_names, routine)?;
            plan.warnings.append(&mut ddl.warnings);
            routines.extend(ddl.statement);
        }
        for view in &db.views {
            views.push((
                db.name.clone(),
                view.name.clone(),
                view_ddl(names, db_names, view),
            ));
        }
        for trigger in &db.triggers {
            let mut ddl = trigger_ddl(names, db_names, trigger);
            plan.warnings.append(&mut ddl.warnings);
            triggers.extend(ddl.statement);
        }
    }

    plan.statements.append(&mut indexes);
    plan.statements.append(&mut foreign_keys);
    plan.statements.append(&mut routines);
    plan_views(&mut plan, views);
    plan.statements.append(&mut triggers);
    Ok(plan)
}

/// Views in dependency order; a view left out takes the views that read it along, with a
/// warning each.
fn plan_views(plan: &mut SchemaPlan, mut views: Vec<(String, String, ObjectDdl)>) {
    let deps: Vec<Vec<usize>> = views
        .iter()
        .map(|(_, _, ddl)| {
            ddl.relations
                .iter()
                .filter_map(|(d, r)| views.iter().position(|(vd, vn, _)| vd == d && vn == r))
                .collect()
        })
        .collect();
    let order = dependency_order(&deps);
    let mut left_out: HashSet<usize> = HashSet::new();
    for &i in &order {
        plan.warnings.append(&mut views[i].2.warnings);
        let missing = deps[i].iter().find(|d| left_out.contains(d)).copied();
        match (views[i].2.statement.take(), missing) {
            (None, _) => {
                left_out.insert(i);
            }
            (Some(_), Some(d)) => {
                left_out.insert(i);
                plan.warnings.push(MappingWarning {
                    object: ObjectRef::new(ObjectKind::View, &views[i].0, &views[i].1),
                    message: format!(
                        "it reads view {}, which is left out; it is left out too",
                        quote_qualified(&views[d].0, &views[d].1)
                    ),
                });
            }
            (Some(statement), None) => plan.statements.push(statement),
        }
    }
}

/// A deterministic topological order: nodes in input order, each after the nodes it depends on;
/// a cycle (a self-reference, or tables referencing each other) is broken at input order.
pub fn dependency_order(deps: &[Vec<usize>]) -> Vec<usize> {
    fn visit(i: usize, deps: &[Vec<usize>], state: &mut [u8], out: &mut Vec<usize>) {
        // 0 = new, 1 = in progress, 2 = done.
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        for &d in &deps[i] {
            if d != i {
                visit(d, deps, state, out);
            }
        }
        state[i] = 2;
        out.push(i);
    }
    let mut state = vec![0u8; deps.len()];
    let mut out = Vec::with_capacity(deps.len());
    for i in 0..deps.len() {
        visit(i, deps, &mut state, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_first_and_cycles_terminate() {
        // 0 reads 2, 2 reads 1, 1 reads nothing, 3 reads itself.
        assert_eq!(
            dependency_order(&[vec![2], vec![], vec![1], vec![3]]),
            [1, 2, 0, 3]
        );
        // 0 <-> 1.
        assert_eq!(dependency_order(&[vec![1], vec![0]]), [1, 0]);
    }

    #[test]
    fn a_table_can_be_created_with_its_secondary_indexes_but_not_its_fulltext_ones() {
        use crate::schema::catalog::{SourceDatabase, SourceTable};
        use crate::schema::names::{DatabaseNames, NameMap, RelationKind, RelationNames};
        let create = "CREATE TABLE `t` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT,\n  \
            `a` int(11) NOT NULL,\n  `b` varchar(64) NOT NULL,\n  PRIMARY KEY (`id`),\n  \
            UNIQUE KEY `ub` (`b`),\n  KEY `ix_a` (`a`),\n  FULLTEXT KEY `fb` (`b`)\n) \
            ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        let schema = SourceSchema {
            databases: vec![SourceDatabase {
                name: "s".into(),
                charset: "utf8mb4".into(),
                collation: "utf8mb4_general_ci".into(),
                tables: vec![SourceTable {
                    name: "t".into(),
                    create_sql: create.into(),
                }],
                views: Vec::new(),
                triggers: Vec::new(),
                routines: Vec::new(),
            }],
            names: NameMap {
                databases: vec![DatabaseNames {
                    source: "s".into(),
                    target: "d".into(),
                    relations: vec![RelationNames {
                        source: "t".into(),
                        target: "t2".into(),
                        kind: RelationKind::Table,
                        columns: None,
                    }],
                }],
            },
            warnings: Vec::new(),
        };
        let mut plan = plan_schema(&schema).expect("plan");
        let deferred = plan.statements[1].sql.clone();
        assert!(
            !deferred.contains("ix_a") && deferred.contains("PRIMARY KEY"),
            "{deferred}"
        );
        assert_eq!(plan.inline_indexes(|_| true), 1);
        let create = &plan.statements[1].sql;
        assert!(create.starts_with("CREATE TABLE `d`.`t2`"), "{create}");
        for key in [
            "PRIMARY KEY (`id`)",
            "UNIQUE KEY `ub` (`b`)",
            "KEY `ix_a` (`a`)",
        ] {
            assert!(create.contains(key), "{key} missing: {create}");
        }
        assert!(
            create.ends_with("ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"),
            "{create}"
        );
        let post: Vec<&str> = plan
            .phase(Phase::PostData)
            .map(|s| s.sql.as_str())
            .collect();
        assert_eq!(post.len(), 1, "{post:?}");
        assert!(post[0].contains("ADD FULLTEXT KEY `fb`"), "{post:?}");
    }
}
