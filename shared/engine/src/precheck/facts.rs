//! What the precheck knows about one server, read once ([`super::read`]) and then only looked at.
//! Plain data: the checks are pure functions of these, so every check is unit-tested on recorded
//! facts (a MySQL 8 server cannot be installed here; its facts are written by hand in tests).

use std::collections::BTreeSet;

use super::grants::Grants;
use crate::connect::{Flavor, ServerInfo};

/// One server, as far as the precheck needs it.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub info: ServerInfo,
    /// `CURRENT_USER()`, e.g. `dts@%`.
    pub current_user: String,
    /// The account's authentication plugin, when the user may read it (`mysql.user`).
    pub auth_plugin: Option<String>,
    pub variables: ServerVariables,
    /// Character sets the server has (lower case).
    pub charsets: BTreeSet<String>,
    /// Collations the server has (lower case).
    pub collations: BTreeSet<String>,
    /// Storage engines the server supports (upper case), `SUPPORT` YES or DEFAULT.
    pub engines: BTreeSet<String>,
    pub grants: Grants,
    /// Every database the user can see.
    pub databases: BTreeSet<String>,
    /// The databases the task concerns that exist: the selected ones on the source, the target
    /// ones on the destination.
    pub schemas: Vec<SchemaFacts>,
}

/// Server variables the checks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVariables {
    pub lower_case_table_names: u8,
    pub local_infile: bool,
    pub max_allowed_packet: u64,
    pub log_bin: bool,
    pub log_bin_trust_function_creators: bool,
    pub sql_mode: String,
    pub time_zone: String,
    pub system_time_zone: String,
    /// `innodb_autoinc_lock_mode`: 0 or 1 take a table-level AUTO-INC lock for some inserts; 2
    /// ("interleaved") never does.
    pub innodb_autoinc_lock_mode: u64,
    /// `binlog_format` (upper case): mode 2 is unsafe for a `STATEMENT` binary log.
    pub binlog_format: String,
    /// Where the server runs: a plain server takes `SET GLOBAL`; RDS and Aurora take changes
    /// through parameter groups only (and refuse `SUPER`).
    pub hosting: Hosting,
}

/// Where a server runs, as far as fixing its settings goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hosting {
    #[default]
    Plain,
    /// Amazon RDS for MySQL or MariaDB: a DB instance's parameter group.
    Rds,
    /// Aurora MySQL: a DB cluster parameter group (or the instance's).
    Aurora,
}

impl Hosting {
    /// From what the server says of itself and the host it was reached at: `@@aurora_version`
    /// exists only on Aurora; RDS installs its binaries under `/rdsdbbin/`; an endpoint under
    /// `.rds.amazonaws.com` is one of the two.
    pub fn detect(basedir: &str, aurora_version: Option<&str>, host: &str) -> Hosting {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        if aurora_version.is_some_and(|v| !v.is_empty()) {
            Hosting::Aurora
        } else if basedir.starts_with("/rdsdbbin/") || host.ends_with(".rds.amazonaws.com") {
            Hosting::Rds
        } else {
            Hosting::Plain
        }
    }

    /// How to set server variable `name` to `value` on the `role` server. Every variable a
    /// check asks for here is dynamic on RDS and Aurora: a parameter group change applies
    /// without a reboot.
    pub fn set_variable(self, role: &str, name: &str, value: &str) -> String {
        match self {
            Hosting::Plain => format!(
                "SET GLOBAL {name} = {value} on the {role} (and {name}={value} in its config file)"
            ),
            Hosting::Rds => format!(
                "on the {role} (Amazon RDS; SET GLOBAL is not allowed there): set {name} to \
                 {value} in the DB instance's custom parameter group (a dynamic parameter: it \
                 applies without a reboot)"
            ),
            Hosting::Aurora => format!(
                "on the {role} (Aurora MySQL; SET GLOBAL is not allowed there): set {name} to \
                 {value} in the DB cluster parameter group (a dynamic parameter: it applies \
                 without a reboot)"
            ),
        }
    }
}

/// One database and what is in it.
#[derive(Debug, Clone, Default)]
pub struct SchemaFacts {
    pub name: String,
    pub charset: String,
    pub collation: String,
    /// Tables and views.
    pub tables: Vec<TableFacts>,
    pub triggers: Vec<TriggerFacts>,
    pub routines: Vec<RoutineFacts>,
}

/// Base table or view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TableKind {
    #[default]
    Table,
    View,
}

/// One table or view.
#[derive(Debug, Clone, Default)]
pub struct TableFacts {
    pub name: String,
    pub kind: TableKind,
    /// Upper case, e.g. `INNODB`; none for views.
    pub engine: Option<String>,
    pub collation: Option<String>,
    /// `information_schema.TABLES.TABLE_ROWS` (an estimate for InnoDB).
    pub rows_estimate: u64,
    pub columns: Vec<ColumnFacts>,
    pub keys: Vec<KeyFacts>,
    pub foreign_keys: Vec<ForeignKeyFacts>,
    /// The largest row in bytes: measured for tables with BLOB, TEXT or JSON columns, InnoDB's
    /// row limit (65,535 bytes) otherwise; none when not read (destination tables, views).
    pub largest_row_bytes: Option<u64>,
    /// Whether the table holds any row (read on the destination only).
    pub has_rows: Option<bool>,
    /// Whether a column is AUTO_INCREMENT.
    pub auto_increment: bool,
}

/// One column.
#[derive(Debug, Clone, Default)]
pub struct ColumnFacts {
    pub name: String,
    /// `DATA_TYPE`, lower case (`datetime`, `varchar`).
    pub data_type: String,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// Whether some row holds NULL here: read for incremental timestamp columns only.
    pub has_nulls: Option<bool>,
}

/// One index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFacts {
    pub name: String,
    pub unique: bool,
    /// Columns in index order.
    pub columns: Vec<String>,
}

impl KeyFacts {
    pub fn is_primary(&self) -> bool {
        self.name == "PRIMARY"
    }
}

/// One foreign key of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignKeyFacts {
    pub name: String,
    /// `db.table` it references.
    pub references: String,
}

/// One trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerFacts {
    pub name: String,
    pub table: String,
}

/// One stored procedure or function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutineFacts {
    pub name: String,
    /// `PROCEDURE` or `FUNCTION`.
    pub kind: String,
    /// `user@host`.
    pub definer: String,
    /// Whether the user can read its body (`ROUTINE_DEFINITION` not NULL).
    pub definition_readable: bool,
}

impl ServerFacts {
    /// Whether the server compares table and database names case-insensitively.
    pub fn folds_case(&self) -> bool {
        self.variables.lower_case_table_names != 0
    }

    pub fn is_mariadb(&self) -> bool {
        self.info.flavor == Flavor::MariaDb
    }

    /// `(major, minor)` of the version.
    pub fn major_minor(&self) -> (u32, u32) {
        self.info.major_minor()
    }

    /// A database by name, as the server would find it.
    pub fn schema(&self, name: &str) -> Option<&SchemaFacts> {
        self.schemas.iter().find(|s| s.name == name).or_else(|| {
            self.folds_case()
                .then(|| {
                    self.schemas
                        .iter()
                        .find(|s| s.name.eq_ignore_ascii_case(name))
                })
                .flatten()
        })
    }

    /// A table by name, as the server would find it.
    pub fn table(&self, db: &str, table: &str) -> Option<&TableFacts> {
        let schema = self.schema(db)?;
        schema.tables.iter().find(|t| t.name == table).or_else(|| {
            self.folds_case()
                .then(|| {
                    schema
                        .tables
                        .iter()
                        .find(|t| t.name.eq_ignore_ascii_case(table))
                })
                .flatten()
        })
    }

    /// Whether a database of this name exists, as the server would compare names.
    pub fn has_database(&self, name: &str) -> bool {
        self.databases.contains(name)
            || (self.folds_case() && self.databases.iter().any(|d| d.eq_ignore_ascii_case(name)))
    }
}

impl TableFacts {
    /// A column by name (column names are case-insensitive on every server).
    pub fn column(&self, name: &str) -> Option<&ColumnFacts> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The primary key, or a unique key over NOT NULL columns (which identifies rows as well).
    pub fn row_key(&self) -> Option<&KeyFacts> {
        self.keys.iter().find(|k| k.is_primary()).or_else(|| {
            self.keys.iter().find(|k| {
                k.unique
                    && k.columns
                        .iter()
                        .all(|c| self.column(c).is_some_and(|col| !col.nullable))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Hosting;

    /// What RDS for MySQL 8, Aurora MySQL 3 and a plain MariaDB report of themselves.
    #[test]
    fn rds_and_aurora_are_told_apart_from_a_plain_server() {
        let rds = Hosting::detect(
            "/rdsdbbin/mysql-8.0.39.R2/",
            None,
            "db1.abc123xyz.us-east-1.rds.amazonaws.com:3306",
        );
        assert_eq!(rds, Hosting::Rds);
        let aurora = Hosting::detect(
            "/rdsdbbin/oscar-8.0.mysql_aurora.3.05.2.0.29187.0/",
            Some("3.05.2"),
            "c1.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:3306",
        );
        assert_eq!(aurora, Hosting::Aurora);
        // Reached through a tunnel on loopback, RDS still says where its binaries are.
        assert_eq!(
            Hosting::detect("/rdsdbbin/mysql-8.0.39.R2/", None, "127.0.0.1:3306"),
            Hosting::Rds
        );
        assert_eq!(
            Hosting::detect("/usr/", None, "127.0.0.1:33062"),
            Hosting::Plain
        );
        assert_eq!(
            Hosting::detect("/usr/", Some(""), "db.example.internal:3306"),
            Hosting::Plain
        );
    }
}
