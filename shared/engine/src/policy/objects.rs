//! Destination objects the policies create, find, swap and drop.

use std::collections::HashSet;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::PolicyError;
use crate::schema::quote::{quote_ident, quote_qualified};

/// Whether a database exists on the destination.
pub async fn database_exists(conn: &mut Conn, database: &str) -> Result<bool, PolicyError> {
    let found: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (database,),
        )
        .await
        .map_err(PolicyError::sql(
            "looking for the database",
            quote_ident(database),
        ))?;
    Ok(found.is_some())
}

/// Drops a database the policy made (a replica); a database that is gone is not an error.
pub async fn drop_database(conn: &mut Conn, database: &str) -> Result<(), PolicyError> {
    conn.query_drop(format!("DROP DATABASE IF EXISTS {}", quote_ident(database)))
        .await
        .map_err(PolicyError::sql(
            "dropping the database",
            quote_ident(database),
        ))
}

/// The base tables of `database` among `names` that exist on the destination.
pub async fn existing_tables(
    conn: &mut Conn,
    database: &str,
) -> Result<HashSet<String>, PolicyError> {
    let rows: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
            (database,),
        )
        .await
        .map_err(PolicyError::sql(
            "listing the tables",
            quote_ident(database),
        ))?;
    Ok(rows.into_iter().collect())
}

/// Drops tables (shadow leftovers, retired copies) if they exist, with foreign-key checks off so
/// that a foreign key pointing at one does not keep it.
pub async fn drop_tables(conn: &mut Conn, tables: &[(String, String)]) -> Result<(), PolicyError> {
    if tables.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = tables
        .iter()
        .map(|(db, t)| quote_qualified(db, t))
        .collect();
    let list = names.join(", ");
    conn.query_drop("SET SESSION foreign_key_checks = 0")
        .await
        .map_err(PolicyError::sql("turning foreign-key checks off", &list))?;
    conn.query_drop(format!("DROP TABLE IF EXISTS {list}"))
        .await
        .map_err(PolicyError::sql("dropping the tables", list))
}

/// Drops those of `tables` that exist (listed once per database first): a `DROP TABLE IF
/// EXISTS` of an absent table still costs the server work per name, and after a failure most
/// working tables usually are not there.
pub async fn drop_present_tables(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<(), PolicyError> {
    let mut present: std::collections::HashMap<&str, HashSet<String>> = Default::default();
    for (db, _) in tables {
        if !present.contains_key(db.as_str()) {
            let found = existing_tables(conn, db).await?;
            present.insert(db, found.into_iter().map(|t| t.to_lowercase()).collect());
        }
    }
    let doomed: Vec<(String, String)> = tables
        .iter()
        .filter(|(db, t)| {
            present
                .get(db.as_str())
                .is_some_and(|set| set.contains(&t.to_lowercase()))
        })
        .cloned()
        .collect();
    drop_tables(conn, &doomed).await
}

/// One table of a resync swap: the live table, its loaded shadow, and the name the previous copy
/// takes until it is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapTable {
    pub database: String,
    pub table: String,
    pub shadow: String,
    pub retired: String,
    /// Whether a previous copy exists (not on the first cycle).
    pub live_exists: bool,
}

/// The one `RENAME TABLE` that swaps every shadow in at once: `t TO retired, shadow TO t, ...`.
/// MariaDB and MySQL run a multi-table RENAME atomically: a reader sees the old tables or the
/// new ones, never a missing or half-loaded table.
pub fn swap_statement(tables: &[SwapTable]) -> Option<String> {
    let mut parts = Vec::new();
    for t in tables {
        if t.live_exists {
            parts.push(format!(
                "{} TO {}",
                quote_qualified(&t.database, &t.table),
                quote_qualified(&t.database, &t.retired)
            ));
        }
        parts.push(format!(
            "{} TO {}",
            quote_qualified(&t.database, &t.shadow),
            quote_qualified(&t.database, &t.table)
        ));
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!("RENAME TABLE {}", parts.join(", ")))
}

/// Runs the swap.
pub async fn swap(conn: &mut Conn, tables: &[SwapTable]) -> Result<(), PolicyError> {
    let Some(sql) = swap_statement(tables) else {
        return Ok(());
    };
    let what = tables
        .iter()
        .map(|t| quote_qualified(&t.database, &t.table))
        .collect::<Vec<_>>()
        .join(", ");
    conn.query_drop(sql).await.map_err(PolicyError::sql(
        "swapping the loaded shadow tables in",
        what,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rename_swaps_all_and_first_cycles_only_move_the_shadow() {
        let t = |table: &str, live| SwapTable {
            database: "d`b".into(),
            table: table.into(),
            shadow: format!("s_{table}"),
            retired: format!("o_{table}"),
            live_exists: live,
        };
        assert_eq!(
            swap_statement(&[t("a", true), t("b", false)]).unwrap(),
            "RENAME TABLE `d``b`.`a` TO `d``b`.`o_a`, `d``b`.`s_a` TO `d``b`.`a`, \
             `d``b`.`s_b` TO `d``b`.`b`"
        );
        assert_eq!(swap_statement(&[]), None);
    }
}
