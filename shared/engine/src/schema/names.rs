//! The name mapping of one task, resolved against what the source holds: which databases, tables
//! and columns are selected, and what each is called on the destination.

use tidemark_core::ident::same_name;

/// What a relation is, for messages and for what may reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    Table,
    View,
}

/// One selected table or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationNames {
    pub source: String,
    pub target: String,
    pub kind: RelationKind,
    /// Selected columns as (source, target); `None` means every column, unrenamed.
    pub columns: Option<Vec<(String, String)>>,
}

impl RelationNames {
    /// The destination name of source column `column`, or `None` when it is not selected.
    pub fn column<'a>(&'a self, column: &'a str) -> Option<&'a str> {
        match &self.columns {
            None => Some(column),
            Some(cols) => cols
                .iter()
                .find(|(s, _)| same_name(s, column))
                .map(|(_, t)| t.as_str()),
        }
    }

    /// Whether any selected column gets another name.
    pub fn renames_columns(&self) -> bool {
        self.renamed_columns().next().is_some()
    }

    /// The selected columns that get another name, as (source, target).
    pub fn renamed_columns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.columns
            .iter()
            .flatten()
            .filter(|(s, t)| s != t)
            .map(|(s, t)| (s.as_str(), t.as_str()))
    }

    /// Whether the relation is selected with only some of its columns.
    pub fn is_column_subset(&self) -> bool {
        self.columns.is_some()
    }
}

/// One selected database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseNames {
    pub source: String,
    pub target: String,
    pub relations: Vec<RelationNames>,
}

impl DatabaseNames {
    /// A selected table or view by its source name (exact first, then case-insensitively, as a
    /// server with `lower_case_table_names` would resolve it).
    pub fn relation(&self, name: &str) -> Option<&RelationNames> {
        self.relations
            .iter()
            .find(|r| r.source == name)
            .or_else(|| self.relations.iter().find(|r| same_name(&r.source, name)))
    }
}

/// Every selected database with its relations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameMap {
    pub databases: Vec<DatabaseNames>,
}

impl NameMap {
    /// A selected database by its source name.
    pub fn database(&self, name: &str) -> Option<&DatabaseNames> {
        self.databases
            .iter()
            .find(|d| d.source == name)
            .or_else(|| self.databases.iter().find(|d| same_name(&d.source, name)))
    }

    /// A selected relation by its source database and name.
    pub fn relation(&self, db: &str, name: &str) -> Option<&RelationNames> {
        self.database(db)?.relation(name)
    }

    /// Whether any name changes at all (nothing needs rewriting otherwise).
    pub fn renames_anything(&self) -> bool {
        self.databases.iter().any(|d| {
            d.source != d.target
                || d.relations
                    .iter()
                    .any(|r| r.source != r.target || r.renames_columns())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> NameMap {
        NameMap {
            databases: vec![DatabaseNames {
                source: "shop".into(),
                target: "shop_dw".into(),
                relations: vec![
                    RelationNames {
                        source: "orders".into(),
                        target: "orders_v2".into(),
                        kind: RelationKind::Table,
                        columns: Some(vec![
                            ("id".into(), "id".into()),
                            ("note".into(), "memo".into()),
                        ]),
                    },
                    RelationNames {
                        source: "cust".into(),
                        target: "cust".into(),
                        kind: RelationKind::Table,
                        columns: None,
                    },
                ],
            }],
        }
    }

    #[test]
    fn looks_up_databases_tables_and_columns() {
        let m = map();
        let orders = m.relation("shop", "orders").expect("orders");
        assert_eq!(orders.target, "orders_v2");
        assert_eq!(orders.column("NOTE"), Some("memo"));
        assert_eq!(orders.column("secret"), None);
        assert_eq!(
            m.relation("shop", "cust").and_then(|c| c.column("x")),
            Some("x")
        );
        assert!(m.relation("other", "orders").is_none());
        assert!(m.renames_anything());
        assert_eq!(
            orders.renamed_columns().collect::<Vec<_>>(),
            [("note", "memo")]
        );
    }
}
