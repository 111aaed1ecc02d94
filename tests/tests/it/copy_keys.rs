//! Keys and the planner: composite, sparse, UUID, collated, absent; an empty table; a row near
//! max_allowed_packet; chunk boundaries that cover every row once at about the target size.

use mysql_async::prelude::Queryable;
use tidemark_engine::Side;
use tidemark_engine::copy::verify::checksum;
use tidemark_engine::copy::{
    Chunk, TableCopySpec, plan_chunks, plan_chunks_split, plan_sources, read_shape,
};
use tidemark_tests::harness::{destination, source, unique_name};

use crate::copy_support::{assert_same, copy, create_both, endpoints, fill_source, options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_sparse_uuid_collated_keyless_and_empty_tables_copy_exactly_in_small_chunks() {
    let (source, dest) = (source(), destination());
    let db = unique_name("copy_keys");
    create_both(
        &source,
        &dest,
        &db,
        &[
            "CREATE TABLE composite (a INT NOT NULL, b VARCHAR(20) CHARACTER SET latin1 \
             COLLATE latin1_swedish_ci NOT NULL, v VARCHAR(50), PRIMARY KEY (a, b))",
            "CREATE TABLE sparse (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(50))",
            "CREATE TABLE uuids (id CHAR(36) NOT NULL PRIMARY KEY, v INT)",
            "CREATE TABLE unique_only (u VARCHAR(10) NOT NULL, n INT NULL, v TEXT, UNIQUE KEY (n), \
             UNIQUE KEY uu (u))",
            "CREATE TABLE keyless (v VARCHAR(10), n INT)",
            "CREATE TABLE empty (id INT PRIMARY KEY, v TEXT)",
        ],
    )
    .await;
    fill_source(
        &source,
        &db,
        &[
            // Case and accents in a case-insensitive latin1 key: the ranges must follow the
            // collation's order, not the bytes'.
            "INSERT INTO composite SELECT seq % 7, CONCAT(ELT(1 + seq % 4, 'a', 'B', 'ä', 'Z'), seq), \
             REPEAT('x', seq % 40) FROM seq_1_to_3000",
            "INSERT INTO sparse VALUES (-9223372036854775808, 'min'), (-1, 'neg'), (0, 'zero'), \
             (1, 'one'), (1000000, 'm'), (1000000000000, 't'), (9223372036854775806, 'max-1'), \
             (9223372036854775807, 'max')",
            "INSERT INTO sparse SELECT seq * 1000003, 'filler' FROM seq_1_to_2000",
            "INSERT INTO uuids SELECT UUID(), seq FROM seq_1_to_2000",
            "INSERT INTO unique_only SELECT CONCAT('k', seq), IF(seq % 2, NULL, seq), \
             REPEAT('y', seq % 30) FROM seq_1_to_1500",
            "INSERT INTO keyless SELECT 'dup', 1 FROM seq_1_to_300",
            "INSERT INTO keyless VALUES (NULL, NULL), (NULL, NULL), ('', 0)",
        ],
    )
    .await;
    let engine = endpoints(&source, &dest, 3).await;
    let tables = [
        "composite",
        "sparse",
        "uuids",
        "unique_only",
        "keyless",
        "empty",
    ];
    let (reports, _) = copy(&engine, &db, &tables, 8 * 1024, options(3, true)).await;
    let by_name = |n: &str| {
        reports
            .iter()
            .find(|r| r.table.ends_with(&format!("`{n}`")))
            .unwrap_or_else(|| panic!("no report for {n}"))
            .clone()
    };
    assert_eq!(by_name("composite").rows, 3000);
    assert!(
        by_name("composite").chunks > 3,
        "{:?}",
        by_name("composite")
    );
    assert_eq!(by_name("sparse").rows, 2008);
    assert!(by_name("sparse").chunks > 3);
    assert_eq!(by_name("uuids").rows, 2000);
    assert!(
        by_name("unique_only").chunks > 1,
        "the unique NOT NULL key is walked"
    );
    let keyless = by_name("keyless");
    assert_eq!((keyless.rows, keyless.chunks), (303, 1));
    assert!(keyless.warning.unwrap().contains("one stream"));
    assert_eq!(by_name("empty").rows, 0);

    assert_same(&source, &dest, &db, "composite", "a, b").await;
    assert_same(&source, &dest, &db, "sparse", "id").await;
    assert_same(&source, &dest, &db, "uuids", "id").await;
    assert_same(&source, &dest, &db, "unique_only", "u").await;
    assert_same(&source, &dest, &db, "keyless", "v, n").await;
    assert_same(&source, &dest, &db, "empty", "id").await;

    // Copying again changes nothing: every chunk clears its range first.
    let (again, _) = copy(&engine, &db, &tables, 8 * 1024, options(3, true)).await;
    assert_eq!(
        again.iter().map(|r| r.rows).sum::<u64>(),
        3000 + 2008 + 2000 + 1500 + 303
    );
    assert_same(&source, &dest, &db, "keyless", "v, n").await;
    assert_same(&source, &dest, &db, "sparse", "id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_chunks_cover_every_row_once_at_about_the_target_size() {
    let (source, dest) = (source(), destination());
    let db = unique_name("copy_plan");
    create_both(
        &source,
        &dest,
        &db,
        &["CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY, pad VARCHAR(200))"],
    )
    .await;
    // 50k rows of ~100 bytes, on a sparse key with holes.
    fill_source(
        &source,
        &db,
        &["INSERT INTO t SELECT seq * seq, REPEAT('p', 80 + seq % 40) FROM seq_1_to_50000"],
    )
    .await;
    let engine = endpoints(&source, &dest, 1).await;
    let mut src = engine.source_conn().await.expect("source session");
    let shape = read_shape(&mut src, &TableCopySpec::same_names(&db, "t"))
        .await
        .expect("shape");
    let target = 512 * 1024;
    let chunks = plan_chunks(&mut src, &shape, target).await.expect("plan");
    assert!(
        chunks.len() >= 8 && chunks.len() <= 14,
        "{} chunks",
        chunks.len()
    );
    assert!(chunks[0].range.lower.is_none());
    assert!(chunks.last().and_then(|c| c.range.upper.as_ref()).is_none());
    let mut total = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        // Contiguous: each chunk starts where the previous one ended.
        if i > 0 {
            assert_eq!(chunk.range.lower, chunks[i - 1].range.upper, "chunk {i}");
        }
        let rows = checksum(&mut src, &shape, chunk, Side::Source)
            .await
            .expect("count")
            .rows;
        let bytes: Option<String> = src
            .query_first(format!(
                "SELECT SUM(LENGTH(pad) + LENGTH(id) + 2) FROM \
                 (SELECT id, pad FROM `{db}`.t ORDER BY id LIMIT {rows} OFFSET {total}) s"
            ))
            .await
            .expect("bytes");
        let bytes: f64 = bytes.and_then(|b| b.parse().ok()).unwrap_or(0.0);
        if i + 1 < chunks.len() {
            let ratio = bytes / target as f64;
            assert!(
                (0.7..1.3).contains(&ratio),
                "chunk {i}: {rows} rows, {bytes} bytes, {ratio:.2} of the target"
            );
        }
        total += rows;
    }
    assert_eq!(
        total, 50_000,
        "the chunks do not cover the table exactly once"
    );
    // Chunks travel in queue messages: JSON and back, unchanged.
    let json = serde_json::to_string(&chunks).expect("serialize");
    let back: Vec<tidemark_engine::copy::Chunk> = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, chunks);
}

/// A table the planner would copy as one chunk, but that holds more than a worker's share of the
/// run (and at least 8 MB), is cut so that every worker has a chunk; a small table beside it is
/// not, and with one worker nothing is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_fits_one_chunk_but_is_most_of_the_run_is_cut_for_every_worker() {
    let (source, dest) = (source(), destination());
    let db = unique_name("copy_spread");
    let ddl = "CREATE TABLE big (id BIGINT NOT NULL PRIMARY KEY, pad VARCHAR(200))";
    create_both(
        &source,
        &dest,
        &db,
        &[ddl, "CREATE TABLE small (id INT PRIMARY KEY)"],
    )
    .await;
    // About 12 MB: one chunk of the default 64 MB.
    fill_source(
        &source,
        &db,
        &[
            "INSERT INTO big SELECT seq, REPEAT('p', 150) FROM seq_1_to_80000",
            "INSERT INTO small SELECT seq FROM seq_1_to_100",
        ],
    )
    .await;
    let specs = [
        TableCopySpec::same_names(&db, "big"),
        TableCopySpec::same_names(&db, "small"),
    ];
    for (workers, expected) in [(1, 1), (3, 3)] {
        let engine = endpoints(&source, &dest, workers).await;
        let plans = plan_sources(&engine, &specs, 64 << 20).await.expect("plan");
        assert_eq!(plans[0].chunks.len(), expected, "big, {workers} worker(s)");
        assert_eq!(plans[1].chunks.len(), 1, "small, {workers} worker(s)");
        let mut src = engine.source_conn().await.expect("source session");
        let rows = rows_per_range(&mut src, &plans[0].shape, &plans[0].chunks).await;
        assert_eq!(rows.iter().sum::<u64>(), 80_000, "{rows:?}");
        assert!(rows.iter().all(|&r| r > 20_000), "{rows:?}");
    }
}

/// Rows of `db.t` in each chunk's range, checking that the chunks are contiguous from the start
/// of the key to its end.
async fn rows_per_range(
    src: &mut mysql_async::Conn,
    shape: &tidemark_engine::copy::TableShape,
    chunks: &[Chunk],
) -> Vec<u64> {
    assert!(chunks[0].range.lower.is_none());
    assert!(chunks.last().and_then(|c| c.range.upper.as_ref()).is_none());
    let mut rows = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.index as usize, i, "chunks are numbered in order");
        if i > 0 {
            assert_eq!(chunk.range.lower, chunks[i - 1].range.upper, "chunk {i}");
        }
        let counted = checksum(src, shape, chunk, Side::Source)
            .await
            .expect("count")
            .rows;
        rows.push(counted);
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_split_in_parts_covers_every_row_once_also_on_a_key_with_far_outliers() {
    let (source, dest) = (source(), destination());
    let db = unique_name("copy_split");
    create_both(
        &source,
        &dest,
        &db,
        &[
            "CREATE TABLE dense (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, pad VARCHAR(100))",
            "CREATE TABLE outliers (id BIGINT NOT NULL PRIMARY KEY, pad VARCHAR(100))",
            "CREATE TABLE uuids (id CHAR(36) NOT NULL PRIMARY KEY, pad VARCHAR(100))",
        ],
    )
    .await;
    fill_source(
        &source,
        &db,
        &[
            "INSERT INTO dense SELECT seq, REPEAT('d', 60 + seq % 40) FROM seq_1_to_40000",
            // Almost every row between 1 and 40000, and two rows at the ends of BIGINT: the
            // parts cut MIN..MAX evenly by value, so nearly all rows fall in the middle parts.
            "INSERT INTO outliers SELECT seq, REPEAT('o', 60 + seq % 40) FROM seq_1_to_40000",
            "INSERT INTO outliers VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max')",
            "INSERT INTO uuids SELECT UUID(), REPEAT('u', 80) FROM seq_1_to_20000",
            "ANALYZE TABLE dense, outliers, uuids",
        ],
    )
    .await;
    let engine = endpoints(&source, &dest, 4).await;
    let mut src = engine.source_conn().await.expect("source session");
    let target = 256 * 1024;
    for (table, total) in [("dense", 40_000), ("outliers", 40_002), ("uuids", 20_000)] {
        let shape = read_shape(&mut src, &TableCopySpec::same_names(&db, table))
            .await
            .expect("shape");
        let whole = plan_chunks(&mut src, &shape, target).await.expect("plan");
        let split = plan_chunks_split(&engine, &shape, target, 4)
            .await
            .expect("split plan");
        let rows = rows_per_range(&mut src, &shape, &split).await;
        assert_eq!(
            rows.iter().sum::<u64>(),
            total,
            "{table}: the chunks do not cover the table exactly once: {rows:?}"
        );
        // No chunk is bigger than a walked one (within the row-size sample's spread).
        let per_chunk = whole[0].estimated_rows;
        assert!(
            rows.iter().all(|&r| r <= per_chunk),
            "{table}: a chunk over {per_chunk} rows: {rows:?}"
        );
        // A walk's last chunk is estimated by the server (EXPLAIN), not as a full one: exactly
        // on a range of a few rows (the outliers' own parts), below a full chunk on any.
        for (chunk, &counted) in split.iter().zip(&rows) {
            if counted < per_chunk {
                assert!(
                    chunk.estimated_rows < per_chunk,
                    "{table}: {chunk:?}, {counted} rows"
                );
            }
            if counted <= 10 {
                assert!(
                    chunk.estimated_rows <= 10,
                    "{table}: {chunk:?}, {counted} rows"
                );
            }
        }
        match table {
            // Four parts of 10,000 keys: each ends in a short chunk of its own.
            "dense" => assert!(
                split.len() > whole.len() && split.len() <= whole.len() + 3,
                "dense: {} chunks split, {} walked whole",
                split.len(),
                whole.len()
            ),
            // Not an integer key: walked whole.
            "uuids" => assert_eq!(split, whole, "uuids"),
            _ => {}
        }
    }
    // The split plan copies exactly.
    let (reports, _) = copy(
        &engine,
        &db,
        &["dense", "outliers"],
        target,
        options(4, true),
    )
    .await;
    assert_eq!(reports.iter().map(|r| r.rows).sum::<u64>(), 80_002);
    assert_same(&source, &dest, &db, "dense", "id").await;
    assert_same(&source, &dest, &db, "outliers", "id").await;
}

/// A chunk's sessions come back to the pool and serve the next chunks (no new connection and
/// login per chunk), with the side's settings restored whatever the last user changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_sessions_are_reused_with_their_settings_restored() {
    let (source, dest) = (source(), destination());
    // Pools of at most 3 sessions (workers + 1).
    let engine = endpoints(&source, &dest, 2).await;
    for side in ["source", "destination"] {
        let mut ids = std::collections::BTreeSet::new();
        for _ in 0..12 {
            let mut conn = match side {
                "source" => engine.source_conn().await,
                _ => engine.destination_conn().await,
            }
            .expect("a session");
            let (id, zone): (u64, String) = conn
                .query_first("SELECT CONNECTION_ID(), @@session.time_zone")
                .await
                .expect("a query")
                .expect("a row");
            assert_eq!(zone, "+00:00", "{side}: the setup's time zone");
            ids.insert(id);
            conn.query_drop("SET SESSION time_zone = '+05:00'")
                .await
                .expect("a change");
            drop(conn);
            // The pool resets a returned session in the background.
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        assert!(
            ids.len() <= 3,
            "{side}: 12 uses opened {} sessions: {ids:?}",
            ids.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_megabyte_row_streams_through() {
    let (source, dest) = (source(), destination());
    let db = unique_name("copy_big_row");
    create_both(
        &source,
        &dest,
        &db,
        &["CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB, t LONGTEXT)"],
    )
    .await;
    fill_source(
        &source,
        &db,
        &[
            "INSERT INTO big VALUES (1, CONCAT(REPEAT(UNHEX('00095C0A41'), 12 * 1024 * 1024), 'end'), 'x')",
            "INSERT INTO big VALUES (2, 'small', REPEAT('é', 1000))",
        ],
    )
    .await;
    let engine = endpoints(&source, &dest, 1).await;
    let (reports, _) = copy(&engine, &db, &["big"], 1024 * 1024, options(1, true)).await;
    assert_eq!(reports[0].rows, 2);
    let digest =
        format!("SELECT GROUP_CONCAT(LENGTH(b), MD5(b), MD5(t) ORDER BY id) FROM `{db}`.big");
    let want = source.query_one(&digest).await;
    assert!(
        want.as_deref().unwrap_or("").starts_with("62914563"),
        "{want:?}"
    );
    assert_eq!(dest.query_one(&digest).await, want);
    let _ = dest
        .conn()
        .await
        .query_drop(format!("DROP DATABASE `{db}`"))
        .await;
    let _ = source
        .conn()
        .await
        .query_drop(format!("DROP DATABASE `{db}`"))
        .await;
}
