//! Reading a server's facts from a real MariaDB 10.11: the facts the unit tests' recorded
//! MariaDB server (`precheck::checks::fixtures`) stands for.

use serde_json::json;
use tidemark_core::TaskSpec;
use tidemark_engine::Flavor;
use tidemark_engine::precheck::facts::{ServerFacts, TableKind};
use tidemark_engine::precheck::gather;
use tidemark_engine::precheck::read::{ROW_LIMIT_WITHOUT_LOBS, Side};
use tidemark_tests::harness::{destination, source, unique_name};

use crate::precheck::{database, task};

async fn source_facts(spec: &TaskSpec) -> ServerFacts {
    match gather(&source().connect_options(), Side::Source(spec)).await {
        Ok(f) => f,
        Err(e) => panic!("reading the source's facts: {e}"),
    }
}

#[tokio::test]
async fn server_wide_facts_match_the_server() {
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": "mysql"}]),
    );
    let f = source_facts(&spec).await;
    assert_eq!(f.info.flavor, Flavor::MariaDb);
    assert!(f.info.version.starts_with("10.11."), "{:?}", f.info);
    assert_eq!(f.current_user, "tidemark@127.0.0.1");
    assert_eq!(f.auth_plugin.as_deref(), Some("mysql_native_password"));
    assert_eq!(f.variables.lower_case_table_names, 0);
    assert!(f.variables.local_infile);
    assert_eq!(f.variables.max_allowed_packet, 64 << 20);
    assert!(!f.variables.log_bin);
    assert!(
        f.variables.sql_mode.contains("STRICT_TRANS_TABLES"),
        "{}",
        f.variables.sql_mode
    );
    for c in [
        "utf8mb4_general_ci",
        "utf8mb4_unicode_520_ci",
        "utf8mb4_uca1400_ai_ci",
        "binary",
    ] {
        assert!(f.collations.contains(c), "{c} missing");
    }
    assert!(!f.collations.contains("utf8mb4_0900_ai_ci"));
    assert!(f.charsets.contains("utf8mb4") && f.charsets.contains("utf8mb3"));
    for e in ["INNODB", "ARIA", "MYISAM", "MEMORY", "CSV"] {
        assert!(f.engines.contains(e), "{e} missing from {:?}", f.engines);
    }
    assert!(
        !f.engines.contains("ARCHIVE"),
        "ARCHIVE is not loaded on the shared servers"
    );
    assert!(f.grants.global("SUPER") && f.grants.global("SELECT"));
    assert!(f.databases.contains("mysql"));
}

#[tokio::test]
async fn object_facts_read_keys_foreign_keys_code_and_measurements() {
    let db = database(&source(), "pc_facts", &[
        "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20) COLLATE utf8mb4_unicode_ci NOT NULL, \
         UNIQUE KEY uk_name (name))",
        "CREATE TABLE child (id INT NOT NULL, parent_id INT, body TEXT, updated_at DATETIME NULL, \
         KEY ix_updated (updated_at, id), UNIQUE KEY uk_id (id), \
         CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id))",
        "CREATE TABLE log (msg DATETIME NOT NULL) ENGINE=Aria COLLATE utf8mb4_uca1400_ai_ci",
        "INSERT INTO parent VALUES (1, 'p')",
        "INSERT INTO child VALUES (10, 1, REPEAT('y', 1000), NULL), (11, 1, NULL, NOW())",
        "CREATE VIEW v AS SELECT id FROM parent",
        "CREATE TRIGGER trg BEFORE INSERT ON parent FOR EACH ROW SET NEW.name = TRIM(NEW.name)",
        "CREATE PROCEDURE p() SELECT 1",
    ])
    .await;
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "incremental"}),
        json!([{"database": db, "rename": unique_name("pc_facts_dst"), "tables": [
        {"name": "parent", "timestamp_column": "id"},
        {"name": "child", "timestamp_column": "updated_at"},
        {"name": "log", "timestamp_column": "msg"}]}]),
    );
    let f = source_facts(&spec).await;
    let schema = f.schema(&db).expect("the database");
    assert_eq!(schema.charset, "utf8mb4");
    assert_eq!(schema.collation, "utf8mb4_general_ci");
    let parent = f.table(&db, "parent").expect("parent");
    assert_eq!(parent.engine.as_deref(), Some("INNODB"));
    assert_eq!(parent.keys.len(), 2);
    assert_eq!(parent.row_key().map(|k| k.name.as_str()), Some("PRIMARY"));
    assert_eq!(
        parent.column("name").and_then(|c| c.collation.as_deref()),
        Some("utf8mb4_unicode_ci")
    );
    assert_eq!(parent.largest_row_bytes, Some(ROW_LIMIT_WITHOUT_LOBS));
    let child = f.table(&db, "child").expect("child");
    assert_eq!(child.engine.as_deref(), Some("INNODB"));
    assert_eq!(
        child.row_key().map(|k| k.name.as_str()),
        Some("uk_id"),
        "a NOT NULL unique key"
    );
    let ix = child
        .keys
        .iter()
        .find(|k| k.name == "ix_updated")
        .expect("ix_updated");
    assert_eq!(ix.columns, ["updated_at", "id"]);
    assert!(!ix.unique);
    let log = f.table(&db, "log").expect("log");
    assert_eq!(log.engine.as_deref(), Some("ARIA"));
    assert_eq!(log.collation.as_deref(), Some("utf8mb4_uca1400_ai_ci"));
    assert!(
        f.collations.contains("utf8mb4_uca1400_ai_ci"),
        "named as tables name it"
    );
    assert_eq!(child.foreign_keys.len(), 1, "{:?}", child.foreign_keys);
    assert_eq!(child.foreign_keys[0].references, format!("{db}.parent"));
    // The largest row, measured over the text protocol: 2 + 1 + 1000 bytes.
    assert_eq!(child.largest_row_bytes, Some(1003));
    assert_eq!(
        child.column("updated_at").and_then(|c| c.has_nulls),
        Some(true)
    );
    assert_eq!(
        child.column("body").and_then(|c| c.has_nulls),
        None,
        "only timestamp columns are scanned"
    );
    let schema = f.schema(&db).expect("the database");
    assert!(
        schema
            .tables
            .iter()
            .any(|t| t.name == "v" && t.kind == TableKind::View)
    );
    assert_eq!(schema.triggers.len(), 1);
    assert_eq!(schema.triggers[0].table, "parent");
    assert_eq!(schema.routines.len(), 1);
    assert!(schema.routines[0].definition_readable);
    assert_eq!(schema.routines[0].kind, "PROCEDURE");
}
