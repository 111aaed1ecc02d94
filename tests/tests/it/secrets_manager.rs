//! Secrets Manager (the emulator) passes the secret-store contract: its `VersionId` is the
//! version.

use std::sync::Arc;

use tidemark_aws::SecretsManagerStore;
use tidemark_tests::contract::secret_store::Secrets;
use tidemark_tests::harness::aws::sdk_config;
use tidemark_tests::harness::unique_name;

async fn store() -> (Secrets, ()) {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let store: Secrets = Arc::new(SecretsManagerStore::new(
        client,
        format!("{}/", unique_name("tidemark")),
    ));
    (store, ())
}

tidemark_tests::secret_store_contract!(store);
