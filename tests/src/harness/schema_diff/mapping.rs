//! How source names become destination names, for comparing a migration made with a mapping.

use super::normalize::normalize_sql;

/// How source names become destination names.
#[derive(Debug, Clone, Default)]
pub struct NameMapping {
    /// database -> new name
    pub databases: Vec<(String, String)>,
    /// (database, table) -> new table name
    pub tables: Vec<(String, String, String)>,
    /// (database, table, column) -> new column name
    pub columns: Vec<(String, String, String, String)>,
}

impl NameMapping {
    /// The mapping a task spec describes.
    pub fn from_spec(spec: &tidemark_core::TaskSpec) -> NameMapping {
        let mut mapping = NameMapping::default();
        for db in &spec.objects {
            if let Some(rename) = &db.rename {
                mapping
                    .databases
                    .push((db.database.clone(), rename.clone()));
            }
            for table in db.tables.iter().flatten() {
                if let Some(rename) = &table.rename {
                    mapping
                        .tables
                        .push((db.database.clone(), table.name.clone(), rename.clone()));
                }
                for column in table.columns.iter().flatten() {
                    if let Some(rename) = &column.rename {
                        mapping.columns.push((
                            db.database.clone(),
                            table.name.clone(),
                            column.name.clone(),
                            rename.clone(),
                        ));
                    }
                }
            }
        }
        mapping
    }

    pub(super) fn database(&self, db: &str) -> String {
        find(&self.databases, |(s, _)| eq(s, db)).map_or_else(|| db.to_owned(), |(_, d)| d.clone())
    }

    pub(super) fn table(&self, db: &str, table: &str) -> String {
        find(&self.tables, |(d, t, _)| eq(d, db) && eq(t, table))
            .map_or_else(|| table.to_owned(), |(_, _, n)| n.clone())
    }

    pub(super) fn column(&self, db: &str, table: &str, column: &str) -> String {
        find(&self.columns, |(d, t, c, _)| {
            eq(d, db) && eq(t, table) && eq(c, column)
        })
        .map_or_else(|| column.to_owned(), |(_, _, _, n)| n.clone())
    }

    /// Renames the identifiers of a piece of SQL (an expression, a view, a body) for comparison:
    /// every identifier token equal to a renamed database, table or column of `db` becomes the
    /// new name. Coarse on purpose (a column and a table of the same name both map), which is
    /// enough for comparing a migration made from the same mapping.
    pub(super) fn sql(&self, db: &str, sql: &str) -> String {
        let rename = |word: &str| -> Option<String> {
            if let Some((_, new)) = find(&self.databases, |(s, _)| eq(s, word)) {
                return Some(new.clone());
            }
            if let Some((_, _, new)) = find(&self.tables, |(d, t, _)| eq(d, db) && eq(t, word)) {
                return Some(new.clone());
            }
            find(&self.columns, |(d, _, c, _)| eq(d, db) && eq(c, word))
                .map(|(_, _, _, new)| new.clone())
        };
        normalize_sql(sql, &rename)
    }
}

fn find<T>(items: &[T], pred: impl Fn(&T) -> bool) -> Option<&T> {
    items.iter().find(|item| pred(item))
}

fn eq(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}
