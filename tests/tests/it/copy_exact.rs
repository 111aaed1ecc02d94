//! Exactness: every MariaDB column type and its edge values arrive byte for byte, through bulk
//! executions (MariaDB's default), LOAD DATA LOCAL and the INSERT fallback, into a destination
//! that runs in another time zone under a strict sql_mode.

use tidemark_engine::copy::{CopyOptions, WriteMethod};
use tidemark_tests::harness::{PrivateServer, Server, source, unique_name};

use crate::copy_support::{
    assert_same, copy, create_both, endpoints, exact_rows, fill_source, options,
};

const ALL_TYPES: &str = "CREATE TABLE all_types (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT, bi BIGINT, biu BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), dec0 DECIMAL(10,0),
  f FLOAT, d DOUBLE,
  b1 BIT(1), b64 BIT(64),
  c CHAR(10), vc VARCHAR(200) CHARACTER SET utf8mb4, vl VARCHAR(300) CHARACTER SET latin1,
  vb VARBINARY(300), bn BINARY(4),
  tx TEXT, lt LONGTEXT CHARACTER SET latin1, bl BLOB,
  e ENUM('a','b','c'), st SET('x','y','z'),
  j JSON,
  g GEOMETRY, pt POINT,
  y YEAR, dt DATE, t TIME, t6 TIME(6), dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
  u UUID, ip INET6,
  gen_v INT AS (i * 2) VIRTUAL, gen_s VARCHAR(250) AS (CONCAT(vc, '!')) STORED,
  inv INT INVISIBLE
)";

/// Rows that hold every edge value (the session is permissive and UTC: see `fill_source`).
fn rows() -> Vec<String> {
    let all_bytes: String = (0u8..=255).map(|b| format!("{b:02X}")).collect();
    let mut rows = vec![
        // NULL everywhere.
        "INSERT INTO all_types (id) VALUES (1)".to_owned(),
        // '' everywhere it can be.
        "INSERT INTO all_types (id, c, vc, vl, vb, bn, tx, lt, bl, j, st) \
         VALUES (2, '', '', '', '', '', '', '', '', '\"\"', '')"
            .to_owned(),
        // The strings 'NULL' and '\\N'.
        "INSERT INTO all_types (id, c, vc, vl, vb, tx, bl) \
         VALUES (3, 'NULL', '\\\\N', 'NULL', '\\\\N', '\\\\N', 'NULL')"
            .to_owned(),
        // Tab, newline, CR, backslash, NUL, quotes in every string kind.
        "INSERT INTO all_types (id, c, vc, vl, vb, tx, lt, bl) VALUES (4, 'a\\tb\\nc', \
         'x\\ty\\nz\\\\w\\0v\\r''\"', 'x\\ty\\nz\\\\w\\0v', 'x\\ty\\nz\\\\w\\0v\\r', \
         '\\t\\n\\\\\\0', '\\n', '\\\\\\\\N\\t')"
            .to_owned(),
        // Every byte 0x00-0xFF in binary, blob and latin1 columns.
        format!(
            "INSERT INTO all_types (id, vb, bl, vl, lt) VALUES (5, UNHEX('{all_bytes}'), \
             UNHEX('{all_bytes}'), CONVERT(UNHEX('{all_bytes}') USING latin1), \
             CONVERT(UNHEX('{all_bytes}') USING latin1))"
        ),
        // utf8mb4 next to latin1 next to binary.
        "INSERT INTO all_types (id, vc, tx, vl, vb, bn, c) VALUES (6, '😀 naïve 中文 \u{1F9EA}', \
         'emoji 🐳 and ä', 'café ÿ', _binary'caf\\xC3', UNHEX('00FF00FF'), 'ü')"
            .to_owned(),
        // Numbers at their limits.
        "INSERT INTO all_types (id, ti, tiu, si, mi, i, bi, biu, dec65, dec0) VALUES \
         (7, -128, 255, -32768, -8388608, -2147483648, -9223372036854775808, 18446744073709551615, \
          '99999999999999999999999999999999999.999999999999999999999999999999', -9999999999), \
         (8, 127, 0, 32767, 8388607, 2147483647, 9223372036854775807, 0, \
          '-99999999999999999999999999999999999.999999999999999999999999999999', 9999999999), \
         (9, 0, 1, 0, 0, 0, 0, 1, '0.000000000000000000000000000001', 0)"
            .to_owned(),
        // Floats and doubles whose last bits a 6-digit print would lose.
        "INSERT INTO all_types (id, f, d) VALUES \
         (10, 0.1, 0.1), (11, 1.4e-45, 4.9e-324), (12, 1.17549435e-38, 2.2250738585072014e-308), \
         (13, 3.4028234663852886e38, 1.7976931348623157e308), (14, -3.4028234663852886e38, \
          -1.7976931348623157e308), (15, -0e0, -0e0), (16, 16777217, 0.30000000000000004), \
         (17, 1.0000001, 1e-300), (18, 123456.789, 1/3)"
            .to_owned(),
        // BIT(1) and BIT(64).
        "INSERT INTO all_types (id, b1, b64) VALUES (19, b'1', 18446744073709551615), \
         (20, b'0', 0), (21, b'1', 9223372036854775808)"
            .to_owned(),
        // ENUM, SET, JSON, geometry.
        "INSERT INTO all_types (id, e, st, j, g, pt) VALUES \
         (22, 'c', 'x,z', '{\"a\": [1, 2.50, {\"b\": null}], \"s\": \"\\\\u00e9\\\\n\\\\t\"}', \
          ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))', 4326), ST_GeomFromText('POINT(1.5 -2.25)')), \
         (23, 'a', 'x,y,z', '[]', ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,2 2))'), \
          ST_GeomFromText('POINT(0.1 1e300)', 3857))"
            .to_owned(),
        // Temporal edges, zero dates, negative and long TIME.
        "INSERT INTO all_types (id, y, dt, t, t6, dtm, ts) VALUES \
         (24, 0, '0000-00-00', '-838:59:59', '-12:34:56.789012', '0000-00-00 00:00:00', \
          '0000-00-00 00:00:00'), \
         (25, 1901, '1000-01-01', '838:59:59', '25:00:00.000001', '1000-01-01 00:00:00.000000', \
          '1970-01-01 00:00:01'), \
         (26, 2155, '9999-12-31', '-00:00:01', '00:00:00', '9999-12-31 23:59:59.999999', \
          '2038-01-19 03:14:07.999999'), \
         (27, 2024, '2024-00-15', '100:00:00', '-838:59:58.999999', '2024-02-00 12:00:00.5', \
          '2024-02-29 12:00:00.123456')"
            .to_owned(),
        // TIMESTAMP around Europe/Berlin's autumn DST change: 02:30 local happens twice
        // (00:30 and 01:30 UTC); and the spring gap.
        "INSERT INTO all_types (id, ts, dtm) VALUES (28, '2024-10-27 00:30:00', '2024-10-27 02:30:00'), \
         (29, '2024-10-27 01:30:00', '2024-10-27 02:30:00'), (30, '2024-03-31 01:00:00.000001', \
          '2024-03-31 02:30:00')"
            .to_owned(),
        // UUID, INET6, invisible column; and generated columns computed from inputs.
        "INSERT INTO all_types (id, u, ip, inv, i, c) VALUES \
         (31, '123e4567-e89b-12d3-a456-426614174000', '::ffff:192.0.2.1', -5, 21, 'gen'), \
         (32, '00000000-0000-0000-0000-000000000000', '2001:db8::1', 0, NULL, NULL)"
            .to_owned(),
        // AUTO_INCREMENT id 0 (the source session has NO_AUTO_VALUE_ON_ZERO).
        "INSERT INTO all_types (id, c, inv) VALUES (0, 'zero', 7)".to_owned(),
    ];
    rows.push("INSERT INTO all_types (c) VALUES ('auto')".to_owned());
    rows
}

/// Copies every type with `method` (`None`: the destination's default); every chunk must report
/// `want_method`.
async fn copy_all_types(dest: &Server, method: Option<WriteMethod>, want_method: WriteMethod) {
    let source = source();
    let db = unique_name("copy_exact");
    create_both(&source, dest, &db, &[ALL_TYPES]).await;
    let rows = rows();
    let statements: Vec<&str> = rows.iter().map(String::as_str).collect();
    fill_source(&source, &db, &statements).await;

    // The test data is what it says: the float's bits, the id 0, the DST pair.
    let src_rows = exact_rows(&source, &db, "all_types", "id").await;
    assert_eq!(src_rows.len(), 34);
    assert!(src_rows[0].starts_with("Int(0)|"), "{}", src_rows[0]);
    let f01 = format!("f{:08x}", 0.1f32.to_bits());
    assert!(src_rows[10].contains(&f01), "row 10: {}", src_rows[10]);
    let ts = source
        .query_one(&format!(
            "SELECT COUNT(DISTINCT ts) FROM `{db}`.all_types WHERE id IN (28, 29)"
        ))
        .await;
    assert_eq!(ts.as_deref(), Some("2"));

    let engine = endpoints(&source, dest, 2).await;
    if method.is_none() {
        assert_eq!(engine.default_method(), want_method);
    }
    let options = CopyOptions {
        method,
        ..options(2, true)
    };
    // Small chunks: several chunks, several transactions.
    let (reports, events) = copy(&engine, &db, &["all_types"], 2048, options).await;
    assert_eq!(reports[0].rows, 34);
    assert!(reports[0].chunks >= 2, "{reports:?}");
    let methods: Vec<WriteMethod> = events
        .iter()
        .filter_map(|e| match e {
            tidemark_engine::copy::CopyEvent::ChunkDone { report, .. } => Some(report.method),
            _ => None,
        })
        .collect();
    assert!(
        !methods.is_empty() && methods.iter().all(|m| *m == want_method),
        "{methods:?}"
    );

    assert_same(&source, dest, &db, "all_types", "id").await;
    same_digest_everywhere(&engine, &db, &events).await;
    // Invisible columns are not in `SELECT *`; check the one we set explicitly.
    assert_eq!(
        dest.query_one(&format!("SELECT inv FROM `{db}`.all_types WHERE id = 0"))
            .await
            .as_deref(),
        Some("7")
    );
    // The same instants, whatever the destination server's own time zone.
    let unix = format!("SELECT GROUP_CONCAT(UNIX_TIMESTAMP(ts) ORDER BY id) FROM `{db}`.all_types");
    assert_eq!(dest.query_one(&unix).await, source.query_one(&unix).await);
    engine_disconnect(engine).await;
}

/// The digest the client computed from the rows it streamed (each chunk's report) is the one both
/// servers compute, in both SQL forms (the chained CRC32 of MariaDB 10.8+, and the CONCAT one every
/// MySQL runs): every type's bytes are hashed alike on every side.
async fn same_digest_everywhere(
    engine: &std::sync::Arc<tidemark_engine::copy::CopyEndpoints>,
    db: &str,
    events: &[tidemark_engine::copy::CopyEvent],
) {
    use tidemark_engine::Side;
    use tidemark_engine::copy::verify::{DigestSql, SumSql, checksum_with};
    let plan = tidemark_engine::copy::plan_table(
        engine,
        &tidemark_engine::copy::TableCopySpec::same_names(db, "all_types"),
        2048,
    )
    .await
    .expect("plan");
    let mut src = engine.source_conn().await.expect("source");
    let mut dst = engine.destination_conn().await.expect("destination");
    for chunk in &plan.chunks {
        let client = events
            .iter()
            .find_map(|e| match e {
                tidemark_engine::copy::CopyEvent::ChunkDone { report, .. }
                    if report.index == chunk.index =>
                {
                    report.checksum.clone()
                }
                _ => None,
            })
            .expect("a verified report for every chunk");
        for form in [DigestSql::Chained, DigestSql::Concat] {
            for sum in [SumSql::Decimal, SumSql::Double] {
                for (side, conn) in [(Side::Source, &mut src), (Side::Destination, &mut dst)] {
                    let server = checksum_with(conn, &plan.shape, chunk, side, form, sum)
                        .await
                        .expect("checksum");
                    assert_eq!(
                        server, client,
                        "chunk {} ({form:?}, {sum:?} on the {side:?}) differs from the client's \
                         digest",
                        chunk.index
                    );
                }
            }
        }
    }
}

async fn engine_disconnect(engine: std::sync::Arc<tidemark_engine::copy::CopyEndpoints>) {
    if let Ok(engine) = std::sync::Arc::try_unwrap(engine) {
        engine.disconnect().await;
    }
}

const STRICT: &str =
    "--sql-mode=STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_byte_for_byte_through_bulk_and_load_data_into_a_strict_destination_in_another_zone()
 {
    let dest = PrivateServer::start(
        "copy_exact_tz",
        &["--default-time-zone=America/New_York", STRICT],
    );
    // MariaDB's default: bulk executions of a prepared INSERT.
    copy_all_types(&dest.server, None, WriteMethod::Bulk).await;
    // MySQL's default (where local_infile is on).
    copy_all_types(
        &dest.server,
        Some(WriteMethod::LoadData),
        WriteMethod::LoadData,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_byte_for_byte_through_inserts_when_local_infile_is_off() {
    let dest = PrivateServer::start(
        "copy_exact_insert",
        &[
            "--local-infile=0",
            "--default-time-zone=Asia/Kolkata",
            STRICT,
        ],
    );
    // LOAD DATA, refused by the server, falls back to INSERTs.
    copy_all_types(
        &dest.server,
        Some(WriteMethod::LoadData),
        WriteMethod::Insert,
    )
    .await;
}
