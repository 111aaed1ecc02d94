//! The local secret store: the passwords given inline to `tidemark serve`, in one JSON file that
//! only its owner can read (mode 0600), never in the SQLite state.
//!
//! A reference looks like a Secrets Manager ARN (`arn:local:secretsmanager:local:000000000000:
//! secret:tidemark/<task>/<role>`) so a stored spec passes the same validation as on AWS, and the
//! `local` partition says at a glance that no cloud holds it. The file is rewritten whole through
//! a temporary file and a rename, so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tidemark_core::ports::{EndpointRole, SecretError, SecretStore, StoredPassword};
use tokio::sync::Mutex;

/// The prefix of every reference this store hands out.
const REFERENCE_PREFIX: &str = "arn:local:secretsmanager:local:000000000000:secret:tidemark/";

/// One stored password, as the file holds it.
#[derive(Serialize, Deserialize)]
struct Entry {
    task_id: String,
    role: EndpointRole,
    username: String,
    password: String,
    /// When the password was written, in nanoseconds since the epoch (one more than the
    /// previous version if the clock went back): the secret's version, which changes with every
    /// write and never repeats, made without the password. 0 in a file written before versions.
    #[serde(default)]
    version: u64,
}

/// The version of a value written now over one at `previous`.
fn next_version(previous: Option<u64>) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    now.max(previous.map_or(0, |v| v.saturating_add(1)))
}

/// The secrets file. Cheap to clone; clones share the file's lock.
#[derive(Clone)]
pub struct LocalSecretStore {
    path: Arc<PathBuf>,
    lock: Arc<Mutex<()>>,
}

impl LocalSecretStore {
    /// The store in `path` (created on the first secret, with mode 0600).
    pub fn new(path: &Path) -> LocalSecretStore {
        LocalSecretStore {
            path: Arc::new(path.to_owned()),
            lock: Arc::new(Mutex::new(())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The reference of a task's endpoint password.
    pub fn reference(task_id: &str, role: EndpointRole) -> String {
        format!("{REFERENCE_PREFIX}{task_id}/{}", role.as_str())
    }

    fn read(&self) -> Result<BTreeMap<String, Entry>, SecretError> {
        let path = self.path.as_path();
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                // serde_json's message names a position, never the content.
                backend(format!(
                    "the secrets file {} does not decode ({e}); restore it from a backup or remove it and give the passwords again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(backend(format!(
                "cannot read the secrets file {}: {e}",
                path.display()
            ))),
        }
    }

    fn write(&self, entries: &BTreeMap<String, Entry>) -> Result<(), SecretError> {
        let path = self.path.as_path();
        let text = serde_json::to_string_pretty(entries)
            .map_err(|e| backend(format!("cannot encode the secrets file: {e}")))?;
        let tmp = path.with_extension("tmp");
        let io = |what: &str, e: std::io::Error| {
            backend(format!(
                "cannot {what} the secrets file {}: {e}",
                path.display()
            ))
        };
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io("create", e))?;
            // An existing temporary file keeps its old mode through `open`: set it again.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io("protect", e))?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io("write", e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| io("replace", e))
    }
}

fn backend(detail: String) -> SecretError {
    SecretError::Backend {
        detail,
        retryable: false,
    }
}

#[async_trait]
impl SecretStore for LocalSecretStore {
    async fn create_secret(
        &self,
        task_id: &str,
        role: EndpointRole,
        username: &str,
        password: &SecretString,
    ) -> Result<String, SecretError> {
        let _guard = self.lock.lock().await;
        let mut entries = self.read()?;
        let reference = Self::reference(task_id, role);
        let version = next_version(entries.get(&reference).map(|e| e.version));
        entries.insert(
            reference.clone(),
            Entry {
                task_id: task_id.to_owned(),
                role,
                username: username.to_owned(),
                password: password.expose_secret().to_owned(),
                version,
            },
        );
        self.write(&entries)?;
        Ok(reference)
    }

    async fn read_password(&self, reference: &str) -> Result<StoredPassword, SecretError> {
        let _guard = self.lock.lock().await;
        let entries = self.read()?;
        entries
            .get(reference)
            .map(|e| StoredPassword {
                password: SecretString::from(e.password.clone()),
                username: Some(e.username.clone()).filter(|u| !u.is_empty()),
                version: e.version.to_string(),
            })
            .ok_or_else(|| SecretError::NotFound {
                reference: reference.to_owned(),
            })
    }

    fn owns(&self, reference: &str) -> bool {
        reference.starts_with(REFERENCE_PREFIX)
    }

    /// The file holds no tags: a secret it has carries none.
    async fn tags(&self, reference: &str) -> Result<Vec<(String, String)>, SecretError> {
        let _guard = self.lock.lock().await;
        if self.read()?.contains_key(reference) {
            Ok(Vec::new())
        } else {
            Err(SecretError::NotFound {
                reference: reference.to_owned(),
            })
        }
    }

    async fn delete_secret(&self, reference: &str) -> Result<(), SecretError> {
        if !self.owns(reference) {
            return Err(SecretError::NotOwned {
                reference: reference.to_owned(),
            });
        }
        let _guard = self.lock.lock().await;
        let mut entries = self.read()?;
        if entries.remove(reference).is_some() {
            self.write(&entries)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_reads_and_deletes_in_a_file_only_its_owner_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secrets.json");
        let store = LocalSecretStore::new(&path);
        let pw = SecretString::from("s3cret-pw".to_owned());
        let reference = store
            .create_secret("t1", EndpointRole::Source, "dts", &pw)
            .await
            .expect("create");
        assert!(reference.starts_with("arn:") && reference.contains(":secretsmanager:"));
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let read = store.read_password(&reference).await.expect("read");
        assert_eq!(read.password.expose_secret(), "s3cret-pw");

        // Again for the same endpoint: replaced, same reference.
        let again = store
            .create_secret(
                "t1",
                EndpointRole::Source,
                "dts",
                &SecretString::from("new".to_owned()),
            )
            .await
            .expect("replace");
        assert_eq!(again, reference);
        assert_eq!(
            store
                .read_password(&reference)
                .await
                .expect("read")
                .password
                .expose_secret(),
            "new"
        );

        store.delete_secret(&reference).await.expect("delete");
        store.delete_secret(&reference).await.expect("delete twice");
        assert!(matches!(
            store.read_password(&reference).await,
            Err(SecretError::NotFound { .. })
        ));
        assert!(
            !std::fs::read_to_string(&path)
                .expect("file")
                .contains("new")
        );
        assert!(matches!(
            store
                .delete_secret("arn:aws:secretsmanager:us-east-1:1:secret:x")
                .await,
            Err(SecretError::NotOwned { .. })
        ));
    }

    #[tokio::test]
    async fn a_file_written_before_versions_loads_and_its_next_write_moves_the_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secrets.json");
        let reference = LocalSecretStore::reference("t1", EndpointRole::Source);
        let old = serde_json::json!({ &reference: {
            "task_id": "t1", "role": "source", "username": "dts", "password": "old-pw" } });
        std::fs::write(&path, old.to_string()).expect("write");
        let store = LocalSecretStore::new(&path);
        let read = store.read_password(&reference).await.expect("read");
        assert_eq!(
            (read.password.expose_secret(), read.version.as_str()),
            ("old-pw", "0")
        );
        store
            .create_secret("t1", EndpointRole::Source, "dts", &SecretString::from("x"))
            .await
            .expect("rewrite");
        assert_ne!(
            store.read_password(&reference).await.expect("read").version,
            "0"
        );
        assert!(next_version(Some(u64::MAX - 1)) == u64::MAX, "never back");
    }
}
