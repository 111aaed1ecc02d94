//! The schema-equivalence helper reports what it claims to: the same schema on both servers gives
//! no difference, a mapped schema gives none after normalising, and for every attribute it compares
//! a test breaks exactly that attribute on the destination and sees it reported.

use tidemark_tests::harness::schema_diff::{Difference, NameMapping, compare};
use tidemark_tests::harness::{Server, destination, source, unique_name};

/// A schema with every kind of object and attribute the helper compares. `{db}` is replaced.
const BASE: &[&str] = &[
    "CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
    "USE `{db}`",
    "CREATE TABLE plain (id INT PRIMARY KEY, a INT NULL, b VARCHAR(20)) ENGINE=InnoDB COMMENT='plain table'",
    "CREATE TABLE parent (id INT PRIMARY KEY)",
    "CREATE TABLE parent2 (id INT PRIMARY KEY)",
    "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, \
       CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id))",
    "CREATE TABLE items (id INT NOT NULL AUTO_INCREMENT, name VARCHAR(100) NOT NULL, \
       qty INT NOT NULL DEFAULT 1, total INT AS (qty * 2) VIRTUAL, hidden INT INVISIBLE, \
       updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, \
       PRIMARY KEY (id), KEY idx_name (name), FULLTEXT KEY ft_name (name), \
       CONSTRAINT chk_qty CHECK (qty >= 0)) AUTO_INCREMENT=100",
    "CREATE TABLE parts (id INT NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id) \
       (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN (200), \
        PARTITION pmax VALUES LESS THAN MAXVALUE)",
    "CREATE SQL SECURITY INVOKER VIEW v_items AS SELECT id, name FROM items WHERE qty > 0",
    "CREATE SQL SECURITY INVOKER VIEW v_names AS SELECT name FROM v_items",
    "CREATE TRIGGER trg_a BEFORE INSERT ON items FOR EACH ROW SET NEW.qty = NEW.qty + 0",
    "CREATE TRIGGER trg_b BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name)",
    "CREATE FUNCTION f_count() RETURNS INT READS SQL DATA SQL SECURITY INVOKER \
       RETURN (SELECT COUNT(*) FROM items)",
    "CREATE PROCEDURE p_fill(IN n INT, OUT done INT) SQL SECURITY INVOKER COMMENT 'fills' \
       BEGIN INSERT INTO plain (id, a) VALUES (n, n); SET done = 1; END",
];

async fn create_base(server: &Server, db: &str) {
    let statements: Vec<String> = BASE.iter().map(|s| s.replace("{db}", db)).collect();
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    server.exec(&refs).await;
}

async fn drop_db(db: &str) {
    for server in [source(), destination()] {
        server
            .exec(&[&format!("DROP DATABASE IF EXISTS `{db}`")])
            .await;
    }
}

fn show(diffs: &[Difference]) -> String {
    diffs.iter().map(|d| format!("\n  {d}")).collect()
}

/// Creates the base schema on both servers, checks there is no difference, applies `breaking`
/// on the destination (in one session, inside the database), and checks that `kind`/`attribute`
/// is reported.
async fn breaks(kind: &str, attribute: &str, breaking: &[&str]) {
    let db = unique_name(&format!("diff_{attribute}"));
    let (src, dst) = (source(), destination());
    create_base(&src, &db).await;
    create_base(&dst, &db).await;
    let before = compare(&src, &dst, &db, &NameMapping::default()).await;
    assert!(
        before.is_empty(),
        "identical schemas differ:{}",
        show(&before)
    );

    let mut statements = vec![format!("USE `{db}`")];
    statements.extend(breaking.iter().map(|s| s.replace("{db}", &db)));
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    dst.exec(&refs).await;

    let after = compare(&src, &dst, &db, &NameMapping::default()).await;
    assert!(
        after
            .iter()
            .any(|d| d.kind == kind && d.attribute == attribute),
        "breaking {kind} {attribute} was not reported; reported:{}",
        show(&after)
    );
    drop_db(&db).await;
}

macro_rules! breaks {
    ($($name:ident: $kind:literal $attr:literal [$($sql:literal),+ $(,)?];)+) => {$(
        #[tokio::test]
        async fn $name() {
            breaks($kind, $attr, &[$($sql),+]).await;
        }
    )+};
}

breaks! {
    database_collation: "database" "DEFAULT_COLLATION_NAME" ["ALTER DATABASE `{db}` COLLATE utf8mb4_unicode_ci"];
    database_charset: "database" "DEFAULT_CHARACTER_SET_NAME" ["ALTER DATABASE `{db}` CHARACTER SET latin1"];
    table_missing_or_extra: "table" "exists" ["CREATE TABLE extra (id INT PRIMARY KEY)"];
    table_type: "table" "TABLE_TYPE" ["DROP TABLE plain", "CREATE VIEW plain AS SELECT 1 AS id"];
    table_engine: "table" "ENGINE" ["ALTER TABLE plain ENGINE=Aria"];
    table_row_format: "table" "ROW_FORMAT" ["ALTER TABLE plain ROW_FORMAT=COMPACT"];
    table_collation: "table" "TABLE_COLLATION" ["ALTER TABLE plain DEFAULT COLLATE utf8mb4_unicode_ci"];
    table_comment: "table" "TABLE_COMMENT" ["ALTER TABLE plain COMMENT 'another comment'"];
    table_create_options: "table" "CREATE_OPTIONS" ["ALTER TABLE plain STATS_PERSISTENT=0"];
    table_auto_increment: "table" "AUTO_INCREMENT" ["ALTER TABLE items AUTO_INCREMENT=500"];
    column_missing_or_extra: "column" "exists" ["ALTER TABLE plain ADD COLUMN extra INT"];
    column_position: "column" "ORDINAL_POSITION" ["ALTER TABLE plain MODIFY b VARCHAR(20) AFTER id"];
    column_type: "column" "COLUMN_TYPE" ["ALTER TABLE plain MODIFY a BIGINT NULL"];
    column_nullability: "column" "IS_NULLABLE" ["ALTER TABLE plain MODIFY a INT NOT NULL DEFAULT 0"];
    column_default: "column" "COLUMN_DEFAULT" ["ALTER TABLE plain MODIFY a INT NULL DEFAULT 7"];
    column_charset: "column" "CHARACTER_SET_NAME" ["ALTER TABLE plain MODIFY b VARCHAR(20) CHARACTER SET latin1"];
    column_collation: "column" "COLLATION_NAME" ["ALTER TABLE plain MODIFY b VARCHAR(20) COLLATE utf8mb4_bin"];
    column_on_update: "column" "EXTRA" ["ALTER TABLE items MODIFY updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"];
    column_invisible: "column" "EXTRA" ["ALTER TABLE items MODIFY hidden INT"];
    column_generation: "column" "GENERATION_EXPRESSION" ["ALTER TABLE items MODIFY total INT AS (qty * 3) VIRTUAL"];
    column_comment: "column" "COLUMN_COMMENT" ["ALTER TABLE plain MODIFY a INT NULL COMMENT 'a comment'"];
    index_missing: "index" "columns" ["ALTER TABLE items DROP INDEX idx_name"];
    index_uniqueness: "index" "NON_UNIQUE" ["ALTER TABLE items DROP INDEX idx_name, ADD UNIQUE INDEX idx_name (name)"];
    index_type: "index" "INDEX_TYPE" ["ALTER TABLE items DROP INDEX ft_name, ADD INDEX ft_name (name)"];
    index_prefix: "index" "columns" ["ALTER TABLE items DROP INDEX idx_name, ADD INDEX idx_name (name(10))"];
    index_order: "index" "columns" ["ALTER TABLE items DROP INDEX idx_name, ADD INDEX idx_name (name DESC)"];
    index_comment: "index" "INDEX_COMMENT" ["ALTER TABLE items DROP INDEX idx_name, ADD INDEX idx_name (name) COMMENT 'c'"];
    foreign_key_missing: "foreign_key" "columns" ["ALTER TABLE child DROP FOREIGN KEY fk_parent"];
    foreign_key_delete_rule: "foreign_key" "DELETE_RULE" ["ALTER TABLE child DROP FOREIGN KEY fk_parent",
        "ALTER TABLE child ADD CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE"];
    foreign_key_update_rule: "foreign_key" "UPDATE_RULE" ["ALTER TABLE child DROP FOREIGN KEY fk_parent",
        "ALTER TABLE child ADD CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON UPDATE CASCADE"];
    foreign_key_target: "foreign_key" "REFERENCED_TABLE_NAME" ["ALTER TABLE child DROP FOREIGN KEY fk_parent",
        "ALTER TABLE child ADD CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent2 (id)"];
    check_clause: "check" "CHECK_CLAUSE" ["ALTER TABLE items DROP CONSTRAINT chk_qty",
        "ALTER TABLE items ADD CONSTRAINT chk_qty CHECK (qty >= 1)"];
    partition_description: "partition" "PARTITION_DESCRIPTION" ["ALTER TABLE parts REORGANIZE PARTITION p0, p1 INTO \
        (PARTITION p0 VALUES LESS THAN (50), PARTITION p1 VALUES LESS THAN (200))"];
    partition_missing: "partition" "PARTITION_METHOD" ["ALTER TABLE parts DROP PARTITION p1"];
    partition_method: "partition" "PARTITION_METHOD" ["ALTER TABLE parts PARTITION BY HASH (id) PARTITIONS 3"];
    partition_expression: "partition" "PARTITION_EXPRESSION" ["ALTER TABLE parts PARTITION BY RANGE (id DIV 2) \
        (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN (200), PARTITION pmax VALUES LESS THAN MAXVALUE)"];
    partition_position: "partition" "PARTITION_ORDINAL_POSITION" ["ALTER TABLE parts PARTITION BY RANGE (id) \
        (PARTITION p1 VALUES LESS THAN (100), PARTITION p0 VALUES LESS THAN (200), PARTITION pmax VALUES LESS THAN MAXVALUE)"];
    partition_comment: "partition" "PARTITION_COMMENT" ["ALTER TABLE parts REORGANIZE PARTITION p0 INTO \
        (PARTITION p0 VALUES LESS THAN (100) COMMENT 'cold')"];
    subpartition_method: "partition" "SUBPARTITION_METHOD" ["ALTER TABLE parts PARTITION BY RANGE (id) SUBPARTITION BY HASH (id) \
        SUBPARTITIONS 2 (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN (200), PARTITION pmax VALUES LESS THAN MAXVALUE)"];
    view_definition: "view" "VIEW_DEFINITION" ["CREATE OR REPLACE SQL SECURITY INVOKER VIEW v_items AS SELECT id, name FROM items WHERE qty > 1"];
    view_security: "view" "SECURITY_TYPE" ["ALTER SQL SECURITY DEFINER VIEW v_items AS SELECT id, name FROM items WHERE qty > 0"];
    view_check_option: "view" "CHECK_OPTION" ["CREATE OR REPLACE SQL SECURITY INVOKER VIEW v_items AS SELECT id, name FROM items WHERE qty > 0 WITH CHECK OPTION"];
    view_algorithm: "view" "ALGORITHM" ["CREATE OR REPLACE ALGORITHM=TEMPTABLE SQL SECURITY INVOKER VIEW v_items AS SELECT id, name FROM items WHERE qty > 0"];
    trigger_missing: "trigger" "exists" ["DROP TRIGGER trg_b"];
    trigger_statement: "trigger" "ACTION_STATEMENT" ["DROP TRIGGER trg_b",
        "CREATE TRIGGER trg_b BEFORE INSERT ON items FOR EACH ROW SET NEW.name = UPPER(NEW.name)"];
    trigger_event: "trigger" "EVENT_MANIPULATION" ["DROP TRIGGER trg_b",
        "CREATE TRIGGER trg_b BEFORE UPDATE ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name)"];
    trigger_timing: "trigger" "ACTION_TIMING" ["DROP TRIGGER trg_a",
        "CREATE TRIGGER trg_a AFTER INSERT ON items FOR EACH ROW SET @x = NEW.qty + 0"];
    trigger_order: "trigger" "ACTION_ORDER" ["DROP TRIGGER trg_b",
        "CREATE TRIGGER trg_b BEFORE INSERT ON items FOR EACH ROW PRECEDES trg_a SET NEW.name = TRIM(NEW.name)"];
    trigger_sql_mode: "trigger" "SQL_MODE" ["DROP TRIGGER trg_b", "SET SESSION sql_mode = 'ANSI_QUOTES'",
        "CREATE TRIGGER trg_b BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name)"];
    trigger_charset_client: "trigger" "CHARACTER_SET_CLIENT" ["DROP TRIGGER trg_b", "SET NAMES latin1",
        "CREATE TRIGGER trg_b BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name)"];
    trigger_collation_connection: "trigger" "COLLATION_CONNECTION" ["DROP TRIGGER trg_b", "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
        "CREATE TRIGGER trg_b BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name)"];
    trigger_database_collation: "trigger" "DATABASE_COLLATION" ["DROP TRIGGER trg_b", "ALTER DATABASE `{db}` COLLATE utf8mb4_bin",
        "CREATE TRIGGER trg_b BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name)",
        "ALTER DATABASE `{db}` COLLATE utf8mb4_general_ci"];
    routine_missing: "routine" "exists" ["DROP FUNCTION f_count"];
    routine_body: "routine" "ROUTINE_DEFINITION" ["DROP FUNCTION f_count",
        "CREATE FUNCTION f_count() RETURNS INT READS SQL DATA SQL SECURITY INVOKER RETURN (SELECT COUNT(*) + 1 FROM items)"];
    routine_return_type: "routine" "DTD_IDENTIFIER" ["DROP FUNCTION f_count",
        "CREATE FUNCTION f_count() RETURNS BIGINT READS SQL DATA SQL SECURITY INVOKER RETURN (SELECT COUNT(*) FROM items)"];
    routine_deterministic: "routine" "IS_DETERMINISTIC" ["DROP FUNCTION f_count",
        "CREATE FUNCTION f_count() RETURNS INT DETERMINISTIC READS SQL DATA SQL SECURITY INVOKER RETURN (SELECT COUNT(*) FROM items)"];
    routine_data_access: "routine" "SQL_DATA_ACCESS" ["ALTER PROCEDURE p_fill MODIFIES SQL DATA"];
    routine_security: "routine" "SECURITY_TYPE" ["ALTER FUNCTION f_count SQL SECURITY DEFINER"];
    routine_comment: "routine" "ROUTINE_COMMENT" ["ALTER PROCEDURE p_fill COMMENT 'fills more'"];
    routine_sql_mode: "routine" "SQL_MODE" ["DROP FUNCTION f_count", "SET SESSION sql_mode = 'ANSI_QUOTES'",
        "CREATE FUNCTION f_count() RETURNS INT READS SQL DATA SQL SECURITY INVOKER RETURN (SELECT COUNT(*) FROM items)"];
    routine_charset_client: "routine" "CHARACTER_SET_CLIENT" ["DROP FUNCTION f_count", "SET NAMES latin1",
        "CREATE FUNCTION f_count() RETURNS INT READS SQL DATA SQL SECURITY INVOKER RETURN (SELECT COUNT(*) FROM items)"];
    routine_collation_connection: "routine" "COLLATION_CONNECTION" ["DROP FUNCTION f_count", "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
        "CREATE FUNCTION f_count() RETURNS INT READS SQL DATA SQL SECURITY INVOKER RETURN (SELECT COUNT(*) FROM items)"];
    routine_database_collation: "routine" "DATABASE_COLLATION" ["DROP FUNCTION f_count", "ALTER DATABASE `{db}` COLLATE utf8mb4_bin",
        "CREATE FUNCTION f_count() RETURNS INT READS SQL DATA SQL SECURITY INVOKER RETURN (SELECT COUNT(*) FROM items)",
        "ALTER DATABASE `{db}` COLLATE utf8mb4_general_ci"];
    parameter_mode: "parameter" "PARAMETER_MODE" ["DROP PROCEDURE p_fill",
        "CREATE PROCEDURE p_fill(IN n INT, INOUT done INT) SQL SECURITY INVOKER COMMENT 'fills' BEGIN INSERT INTO plain (id, a) VALUES (n, n); SET done = 1; END"];
    parameter_name: "parameter" "PARAMETER_NAME" ["DROP PROCEDURE p_fill",
        "CREATE PROCEDURE p_fill(IN m INT, OUT done INT) SQL SECURITY INVOKER COMMENT 'fills' BEGIN INSERT INTO plain (id, a) VALUES (m, m); SET done = 1; END"];
    parameter_type: "parameter" "DTD_IDENTIFIER" ["DROP PROCEDURE p_fill",
        "CREATE PROCEDURE p_fill(IN n BIGINT, OUT done INT) SQL SECURITY INVOKER COMMENT 'fills' BEGIN INSERT INTO plain (id, a) VALUES (n, n); SET done = 1; END"];
}

#[tokio::test]
async fn a_renamed_copy_has_no_difference_after_mapping() {
    let (src, dst) = (source(), destination());
    let db = unique_name("diff_map_src");
    let new_db = unique_name("diff_map_dst");
    create_base(&src, &db).await;
    // The destination as a mapping would make it: database, table `items` -> `goods`,
    // column `items.name` -> `title`.
    let renamed: Vec<String> = BASE
        .iter()
        .map(|s| {
            s.replace("{db}", &new_db)
                .replace("v_items", "V_ITEMS_KEEP")
                .replace("items", "goods")
                .replace("V_ITEMS_KEEP", "v_items")
                .replace("idx_name (name)", "idx_name (title)")
                .replace("ft_name (name)", "ft_name (title)")
                .replace("name VARCHAR(100)", "title VARCHAR(100)")
                .replace("SELECT id, name FROM", "SELECT id, title AS name FROM")
                .replace("NEW.name = TRIM(NEW.name)", "NEW.title = TRIM(NEW.title)")
        })
        .collect();
    let refs: Vec<&str> = renamed.iter().map(String::as_str).collect();
    dst.exec(&refs).await;
    let mapping = NameMapping {
        databases: vec![(db.clone(), new_db.clone())],
        tables: vec![(db.clone(), "items".into(), "goods".into())],
        columns: vec![(db.clone(), "items".into(), "name".into(), "title".into())],
    };
    let diffs = compare(&src, &dst, &db, &mapping).await;
    // The view's column list differs in one way only: `title AS name` on the destination keeps
    // the view's own column called `name`, which the source expresses without an alias.
    let unexpected: Vec<&Difference> = diffs
        .iter()
        .filter(|d| !(d.kind == "view" && d.attribute == "VIEW_DEFINITION"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "mapped schemas differ:{}",
        show(&diffs)
    );

    // Without the mapping, the same pair is reported as different.
    let unmapped = compare(&src, &dst, &db, &NameMapping::default()).await;
    assert!(!unmapped.is_empty());
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
    dst.exec(&[&format!("DROP DATABASE `{new_db}`")]).await;
}
