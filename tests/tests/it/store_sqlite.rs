//! The SQLite state store passes the store contract, on a real file.

use std::sync::Arc;

use tidemark_local::SqliteStore;
use tidemark_tests::contract::state_store::Store;

async fn store() -> Store {
    // A file (not :memory:) so WAL mode and the on-disk path are what is tested. The directory is
    // leaked on purpose: it must outlive the store, and the OS temp dir is cleaned anyway.
    let dir = tempfile::tempdir().expect("a temp dir").keep();
    Arc::new(SqliteStore::open(&dir.join("state.sqlite")).expect("open the store"))
}

tidemark_tests::state_store_contract!(store());

#[tokio::test]
async fn state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("state.sqlite");
    let t = tidemark_tests::contract::state_store::task("reopened");
    {
        let store = SqliteStore::open(&path).expect("open");
        tidemark_core::ports::StateStore::create_task(&store, &t)
            .await
            .expect("create");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let read = tidemark_core::ports::StateStore::get_task(&store, "reopened")
        .await
        .expect("get");
    assert_eq!(read, Some(t));
}
