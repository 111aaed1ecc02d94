//! Endpoint passwords in Secrets Manager.
//!
//! An inline password given at creation becomes a secret named `<prefix><task-id>/<source|
//! destination>` holding RDS's JSON (`{"username": ..., "password": ...}`), so the same reader
//! serves it and an RDS-managed secret whose ARN the user gave. Passwords only ever travel as
//! [`SecretString`] or inside the SDK's request (whose `Debug` redacts `SecretString`); no log
//! line or error carries one, nor a secret's content.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tidemark_core::ports::{EndpointRole, SecretError, SecretStore, StoredPassword};

use crate::error::{Failure, failure};

/// Secrets Manager as the secret store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
}

/// RDS's secret format; other keys (engine, host, ...) are ignored. A secret without
/// `username` serves an endpoint whose spec names the `user`.
#[derive(Deserialize)]
struct RdsSecret {
    #[serde(default)]
    username: Option<String>,
    password: SecretString,
}

fn backend(f: Failure) -> SecretError {
    SecretError::Backend {
        detail: f.detail,
        retryable: f.retryable,
    }
}

impl SecretsManagerStore {
    /// `prefix` starts every secret name this store creates (e.g. `tidemark/prod/`), and only
    /// secrets under it are ever deleted; IAM policies can grant exactly that prefix.
    pub fn new(client: Client, prefix: impl Into<String>) -> SecretsManagerStore {
        SecretsManagerStore {
            client,
            prefix: prefix.into(),
        }
    }

    /// The name of the secret holding a task endpoint's inline password.
    pub fn secret_name(&self, task_id: &str, role: EndpointRole) -> String {
        format!("{}{task_id}/{}", self.prefix, role.as_str())
    }
}

/// A failed call on `reference`: a missing secret, a refusal (IAM or KMS), or the backend's.
fn read_failure(operation: &str, reference: &str, f: Failure) -> SecretError {
    let reference = reference.to_owned();
    if f.is("ResourceNotFoundException") {
        SecretError::NotFound { reference }
    } else if f.is("AccessDeniedException") {
        // Logged with its detail (which may name the KMS key); the caller's error says the fix.
        tracing::warn!(operation, %reference, detail = %f.detail, "Secrets Manager refused");
        SecretError::Denied { reference }
    } else {
        backend(f)
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    #[tracing::instrument(skip_all, fields(task_id = %task_id, role = role.as_str()), err)]
    async fn create_secret(
        &self,
        task_id: &str,
        role: EndpointRole,
        username: &str,
        password: &SecretString,
    ) -> Result<String, SecretError> {
        let name = self.secret_name(task_id, role);
        let value = serde_json::json!({
            "username": username,
            "password": password.expose_secret(),
        })
        .to_string();
        let created = self
            .client
            .create_secret()
            .name(&name)
            .description(format!(
                "Tidemark: the {} password of task {task_id}; deleted with the task",
                role.as_str()
            ))
            .secret_string(value.clone())
            .tags(
                Tag::builder()
                    .key("tidemark:task-id")
                    .value(task_id)
                    .build(),
            )
            .send()
            .await;
        match created {
            Ok(out) => out.arn.ok_or_else(|| SecretError::Backend {
                detail: format!("CreateSecret {name}: the answer has no ARN"),
                retryable: false,
            }),
            Err(e) => {
                let f = failure("CreateSecret", &e);
                if !f.is("ResourceExistsException") {
                    return Err(backend(f));
                }
                // A creation retried after it succeeded (task ids are unique, so the secret
                // is this task's): store the password as its current value.
                let out = self
                    .client
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| backend(failure("PutSecretValue", &e)))?;
                out.arn.ok_or_else(|| SecretError::Backend {
                    detail: format!("PutSecretValue {name}: the answer has no ARN"),
                    retryable: false,
                })
            }
        }
    }

    #[tracing::instrument(skip_all, err)]
    async fn read_password(&self, reference: &str) -> Result<StoredPassword, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(reference)
            .send()
            .await
            .map_err(|e| {
                read_failure("GetSecretValue", reference, failure("GetSecretValue", &e))
            })?;
        let malformed = || SecretError::Malformed {
            reference: reference.to_owned(),
        };
        // The parser's own error could quote the secret: it is dropped, never shown.
        let text = out.secret_string().ok_or_else(malformed)?;
        let secret: RdsSecret = serde_json::from_str(text).map_err(|_| malformed())?;
        // The version the value was read at: a rotation (or a task's password replaced) makes a
        // new one, so copy pools keyed by it log in again with the new password.
        let version =
            out.version_id()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SecretError::Backend {
                    detail: format!("GetSecretValue {reference}: the answer has no VersionId"),
                    retryable: false,
                })?;
        Ok(StoredPassword {
            password: secret.password,
            username: secret.username.filter(|u| !u.is_empty()),
            version: version.to_owned(),
        })
    }

    /// Whether `reference` (an ARN or a name) names a secret under this store's prefix.
    fn owns(&self, reference: &str) -> bool {
        // ARN: arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
        let name = match reference.split_once(":secret:") {
            Some((_, name)) => name,
            None => reference,
        };
        !self.prefix.is_empty() && name.starts_with(&self.prefix)
    }

    #[tracing::instrument(skip_all, err)]
    async fn tags(&self, reference: &str) -> Result<Vec<(String, String)>, SecretError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(reference)
            .send()
            .await
            .map_err(|e| {
                read_failure("DescribeSecret", reference, failure("DescribeSecret", &e))
            })?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect())
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_secret(&self, reference: &str) -> Result<(), SecretError> {
        if !self.owns(reference) {
            return Err(SecretError::NotOwned {
                reference: reference.to_owned(),
            });
        }
        // Without recovery: the task is gone, and the name must be free for no one else.
        match self
            .client
            .delete_secret()
            .secret_id(reference)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = failure("DeleteSecret", &e);
                if f.is("ResourceNotFoundException") {
                    Ok(())
                } else {
                    Err(backend(f))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> SecretsManagerStore {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .build();
        SecretsManagerStore::new(Client::from_conf(config), prefix)
    }

    #[test]
    fn only_secrets_under_the_prefix_are_ours() {
        let s = store("tidemark/prod/");
        assert_eq!(
            s.secret_name("t1", EndpointRole::Source),
            "tidemark/prod/t1/source"
        );
        assert!(s.owns(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:tidemark/prod/t1/source-AbCdEf"
        ));
        assert!(s.owns("tidemark/prod/t1/destination"));
        assert!(!s.owns("arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1234-AbCdEf"));
        assert!(!s.owns(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:tidemark/staging/t1/source-AbCdEf"
        ));
        assert!(!store("").owns("anything"), "an empty prefix owns nothing");
    }
}
