//! What the checks share: the selected tables as found on the source, and message helpers.

use tidemark_core::{DatabaseSelection, MigrationType, TableSelection, TaskSpec};

use crate::precheck::facts::{ColumnFacts, ServerFacts, TableFacts, TableKind};

/// A selected table (or view) that exists on the source.
#[derive(Debug, Clone, Copy)]
pub struct SelectedTable<'a> {
    pub database: &'a DatabaseSelection,
    /// The spec's entry; none when the whole database is selected.
    pub selection: Option<&'a TableSelection>,
    pub facts: &'a TableFacts,
}

impl<'a> SelectedTable<'a> {
    /// `db.table` on the source.
    pub fn name(&self) -> String {
        object(&self.database.database, &self.facts.name)
    }

    /// The table's name on the destination.
    pub fn target_table(&self) -> &'a str {
        self.selection
            .and_then(|s| s.rename.as_deref())
            .unwrap_or(&self.facts.name)
    }

    pub fn is_view(&self) -> bool {
        self.facts.kind == TableKind::View
    }

    /// The selected columns that exist, in the spec's order (all columns when none are listed).
    pub fn columns(&self) -> Vec<&'a ColumnFacts> {
        match self.selection.and_then(|s| s.columns.as_ref()) {
            Some(list) => list
                .iter()
                .filter_map(|c| self.facts.column(&c.name))
                .collect(),
            None => self.facts.columns.iter().collect(),
        }
    }

    /// The timestamp column's facts, when one is set and exists.
    pub fn timestamp_column(&self) -> Option<&'a ColumnFacts> {
        let name = self.selection?.timestamp_column.as_deref()?;
        self.facts.column(name)
    }
}

/// Every selected table and view that exists on the source, in the spec's order.
pub fn selected_tables<'a>(spec: &'a TaskSpec, source: &'a ServerFacts) -> Vec<SelectedTable<'a>> {
    let mut out = Vec::new();
    for database in &spec.objects {
        let Some(schema) = source.schema(&database.database) else {
            continue;
        };
        match &database.tables {
            Some(list) => out.extend(list.iter().filter_map(|selection| {
                source
                    .table(&database.database, &selection.name)
                    .map(|facts| SelectedTable {
                        database,
                        selection: Some(selection),
                        facts,
                    })
            })),
            None => out.extend(schema.tables.iter().map(|facts| SelectedTable {
                database,
                selection: None,
                facts,
            })),
        }
    }
    out
}

/// Whether the spec migrates schema (views, triggers and routines of whole databases).
pub fn migrates_schema(spec: &TaskSpec) -> bool {
    spec.migration_types.contains(&MigrationType::Schema)
}

/// Whether the spec copies rows.
pub fn migrates_data(spec: &TaskSpec) -> bool {
    spec.migration_types.contains(&MigrationType::Data)
}

/// The databases selected whole (their views, triggers and routines are migrated with them).
pub fn whole_databases(spec: &TaskSpec) -> impl Iterator<Item = &DatabaseSelection> {
    spec.objects.iter().filter(|d| d.tables.is_none())
}

/// `a.b`, `a.b.c`: how reports name objects.
pub fn object(database: &str, name: &str) -> String {
    format!("{database}.{name}")
}

/// A list for a message: backticked, the first ten, then how many more.
pub fn listing(items: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = items
        .iter()
        .take(SHOWN)
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_cut() {
        let items: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        let text = listing(&items);
        assert!(text.starts_with("`t0`, `t1`"), "{text}");
        assert!(text.ends_with("`t9` and 2 more"), "{text}");
    }
}
