//! The in-memory state store passes the store contract, and keeps what the real stores keep.

use std::sync::Arc;

use tidemark_core::ports::{StateStore, StoreError};
use tidemark_local::MemoryStore;
use tidemark_tests::contract::state_store::{Store, run, task};

async fn store() -> Store {
    Arc::new(MemoryStore::new())
}

tidemark_tests::state_store_contract!(store());

#[tokio::test]
async fn an_inline_password_is_not_kept() {
    // The real stores write records as JSON, which never holds an inline password; a memory
    // store that kept typed values would hand it back and hide a service that forgot to move it.
    let store = MemoryStore::new();
    let mut t = task("inline");
    t.spec.source.password = Some("Pw-never-stored".to_owned().into());
    store.create_task(&t).await.expect("create");
    let read = store
        .get_task("inline")
        .await
        .expect("get")
        .expect("exists");
    assert!(read.spec.source.password.is_none());
    assert_eq!(read.spec.source.password_env, t.spec.source.password_env);
}

#[tokio::test]
async fn a_foreign_cursor_is_refused() {
    let store = MemoryStore::new();
    for bad in [
        "garbage!",
        "tsk-1",
        "eyJwayI6IlRBU0sjeCIsInNrIjoiUlVOI3gifQ",
    ] {
        let tasks = store.list_tasks(2, Some(bad)).await;
        assert!(matches!(tasks, Err(StoreError::BadCursor)), "{tasks:?}");
    }
    // A cursor of one task's runs does not page through another task's, nor through the tasks.
    for time in ["2026-12-01T02:30:00Z", "2026-12-02T02:30:00Z"] {
        store.create_run(&run("t", time)).await.expect("run");
    }
    let page = store.list_runs("t", 1, None).await.expect("page");
    let cursor = page.next.expect("a second page");
    let other = store.list_runs("another-task", 1, Some(&cursor)).await;
    assert!(matches!(other, Err(StoreError::BadCursor)), "{other:?}");
    let tasks = store.list_tasks(1, Some(&cursor)).await;
    assert!(matches!(tasks, Err(StoreError::BadCursor)), "{tasks:?}");
    let rest = store
        .list_runs("t", 1, Some(&cursor))
        .await
        .expect("page 2");
    assert_eq!((rest.items.len(), rest.next), (1, None));
}
