//! The secret-store contract: a read returns the password and the username last written and the
//! secret's version, which stays put between writes and moves with every write (a rotation, a
//! task's password replaced, a secret deleted and made again), never showing the password. Copy
//! pools are keyed by it, so a rotated secret gets sessions of its own. Every store runs these through
//! [`crate::secret_store_contract!`], each case as its own test.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tidemark_core::ports::{EndpointRole, SecretStore, StoredPassword};

use crate::harness::unique_name;

/// A store under test.
pub type Secrets = Arc<dyn SecretStore>;

async fn write(store: &Secrets, task_id: &str, password: &str) -> String {
    write_as(store, task_id, "dts", password).await
}

async fn write_as(store: &Secrets, task_id: &str, username: &str, password: &str) -> String {
    store
        .create_secret(
            task_id,
            EndpointRole::Source,
            username,
            &SecretString::from(password.to_owned()),
        )
        .await
        .expect("write the secret")
}

async fn read(store: &Secrets, reference: &str) -> StoredPassword {
    let read = store.read_password(reference).await.expect("read");
    assert!(!read.version.is_empty(), "a version");
    read
}

pub async fn a_read_returns_the_password_and_a_version_that_stays_put(store: Secrets) {
    let task = unique_name("contract");
    let password = unique_name("pw");
    let reference = write(&store, &task, &password).await;
    let first = read(&store, &reference).await;
    assert_eq!(first.password.expose_secret(), password);
    assert_eq!(first.username.as_deref(), Some("dts"));
    assert!(
        !first.version.contains(&password),
        "the version shows the password"
    );
    let again = read(&store, &reference).await;
    assert_eq!(again.version, first.version, "no write, no new version");
    store.delete_secret(&reference).await.expect("delete");
}

pub async fn every_write_moves_the_version(store: Secrets) {
    let task = unique_name("contract");
    let reference = write(&store, &task, "first-pw").await;
    let v1 = read(&store, &reference).await.version;
    assert_eq!(write(&store, &task, "rotated-pw").await, reference);
    let rotated = read(&store, &reference).await;
    assert_eq!(rotated.password.expose_secret(), "rotated-pw");
    assert_ne!(rotated.version, v1, "a rewrite keeps the version");
    assert_eq!(write(&store, &task, "third-pw").await, reference);
    let v3 = read(&store, &reference).await.version;
    assert!(v3 != v1 && v3 != rotated.version, "a version came back");
    store.delete_secret(&reference).await.expect("delete");
}

/// A rotation that alternates between two users (as Secrets Manager's alternating-users
/// rotation does): each read returns the user written with the password.
pub async fn a_rotation_to_the_other_user_returns_that_user(store: Secrets) {
    let task = unique_name("contract");
    let reference = write_as(&store, &task, "dts_a", "pw-a").await;
    let a = read(&store, &reference).await;
    assert_eq!(a.username.as_deref(), Some("dts_a"));
    assert_eq!(write_as(&store, &task, "dts_b", "pw-b").await, reference);
    let b = read(&store, &reference).await;
    assert_eq!(
        (b.username.as_deref(), b.password.expose_secret()),
        (Some("dts_b"), "pw-b")
    );
    assert_ne!(b.version, a.version);
    store.delete_secret(&reference).await.expect("delete");
}

pub async fn a_secret_made_again_after_its_deletion_has_a_new_version(store: Secrets) {
    let task = unique_name("contract");
    let reference = write(&store, &task, "old-pw").await;
    let before = read(&store, &reference).await.version;
    store.delete_secret(&reference).await.expect("delete");
    let again = write(&store, &task, "new-pw").await;
    let after = read(&store, &again).await;
    assert_eq!(after.password.expose_secret(), "new-pw");
    assert_ne!(
        after.version, before,
        "a deleted secret's version came back"
    );
    store.delete_secret(&again).await.expect("delete");
}

/// One test per contract case. `$make` is an async function returning the store and whatever
/// must live as long as the test (a temporary directory).
#[macro_export]
macro_rules! secret_store_contract {
    ($make:expr) => {
        $crate::secret_store_contract!(@cases $make;
            a_read_returns_the_password_and_a_version_that_stays_put,
            every_write_moves_the_version,
            a_rotation_to_the_other_user_returns_that_user,
            a_secret_made_again_after_its_deletion_has_a_new_version);
    };
    (@cases $make:expr; $($case:ident),+) => {$(
        #[tokio::test]
        async fn $case() {
            let (store, _keep) = $make().await;
            $crate::contract::secret_store::$case(store).await;
        }
    )+};
}
