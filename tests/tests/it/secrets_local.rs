//! The local secret file passes the secret-store contract.

use std::sync::Arc;

use tidemark_local::LocalSecretStore;
use tidemark_tests::contract::secret_store::Secrets;

async fn store() -> (Secrets, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store: Secrets = Arc::new(LocalSecretStore::new(&dir.path().join("secrets.json")));
    (store, dir)
}

tidemark_tests::secret_store_contract!(store);
