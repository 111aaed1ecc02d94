//! How the service reaches and logs in to a task's endpoint: the host checked against the
//! allowlist and, for a name, resolved once to the address the connection goes to; a secret
//! checked against the deployment's secret scope before it is read; the password (from the
//! secret store, or for a spec written for the command line the spec or the environment) and
//! the user — a secret's `username` wins over the spec's `user`, so a rotation that alternates
//! between two users keeps the runs working.

use tidemark_core::ports::{SecretError, SecretVersion, StoredPassword};
use tidemark_core::{EndpointSpec, PasswordSource, TaskSpec};
use tidemark_engine::ConnectOptions;

use crate::error::ServiceError;
use crate::tasks::TaskService;

impl TaskService {
    /// The options to connect to `endpoint` with (`role` is `source`, `destination` or
    /// `endpoint`, for the fields errors name): the address its host resolved to now and the
    /// allowlist checked (none for a host to connect to as given); its password and user read
    /// now and, when they come from the secret store, the secret's version (copy pools are
    /// keyed by it: a rotated secret gets sessions of its own).
    pub(crate) async fn endpoint_options(
        &self,
        endpoint: &EndpointSpec,
        role: &'static str,
    ) -> Result<ConnectOptions, ServiceError> {
        let address = self.allowlist.reach(role, &endpoint.host).await?;
        Ok(self.login(endpoint, role).await?.with_address(address))
    }

    async fn login(
        &self,
        endpoint: &EndpointSpec,
        role: &str,
    ) -> Result<ConnectOptions, ServiceError> {
        match endpoint.password_source() {
            Some(PasswordSource::Secret(reference)) => {
                self.check_secret_scope(reference, role).await?;
                let read = self.read_secret(reference, role).await?;
                let user = login_user(endpoint, &read, reference, role)?;
                let secret = SecretVersion {
                    reference: reference.to_owned(),
                    version: read.version,
                };
                Ok(ConnectOptions::from_endpoint(endpoint, read.password)
                    .with_user(user)
                    .with_secret(Some(secret)))
            }
            _ => {
                let password = crate::passwords::local_password(endpoint, role)?;
                Ok(ConnectOptions::from_endpoint(endpoint, password))
            }
        }
    }

    /// Both endpoints' options ([`TaskService::endpoint_options`]).
    pub(crate) async fn both_endpoints(
        &self,
        spec: &TaskSpec,
    ) -> Result<(ConnectOptions, ConnectOptions), ServiceError> {
        let source = self.endpoint_options(&spec.source, "source").await?;
        let destination = self
            .endpoint_options(&spec.destination, "destination")
            .await?;
        Ok((source, destination))
    }

    /// Both endpoints' secrets, as a caller gives them ([`TaskService::check_given_secret`]).
    pub(crate) async fn check_given_secrets(&self, spec: &TaskSpec) -> Result<(), ServiceError> {
        for (endpoint, role) in [(&spec.source, "source"), (&spec.destination, "destination")] {
            if let Some(PasswordSource::Secret(reference)) = endpoint.password_source() {
                self.check_given_secret(reference, role).await?;
            }
        }
        Ok(())
    }

    /// A stored task's secrets against the scope ([`TaskService::check_secret_scope`]).
    pub(crate) async fn check_secrets(&self, spec: &TaskSpec) -> Result<(), ServiceError> {
        for (endpoint, role) in [(&spec.source, "source"), (&spec.destination, "destination")] {
            if let Some(PasswordSource::Secret(reference)) = endpoint.password_source() {
                self.check_secret_scope(reference, role).await?;
            }
        }
        Ok(())
    }

    /// A `password_secret` a caller gives (creating a task, testing a connection): inside the
    /// scope, and not one the service made — those hold another task's inline password, and
    /// are that task's alone.
    pub(crate) async fn check_given_secret(
        &self,
        reference: &str,
        role: &str,
    ) -> Result<(), ServiceError> {
        if self.ports.secrets.owns(reference) {
            return Err(ServiceError::SecretNotAllowed {
                field: format!("{role}.password_secret"),
                message: format!(
                    "secret {reference} is one Tidemark made for a task's inline password, \
                     which only that task may use: give the password (or a secret of your own) \
                     instead"
                ),
            });
        }
        self.check_secret_scope(reference, role).await
    }

    /// A secret a task names may be read: one the service made, or one inside the scope — by
    /// its ARN, else by its tag (read without the value). Outside, a 422 naming
    /// `{role}.password_secret`; nothing was read.
    async fn check_secret_scope(&self, reference: &str, role: &str) -> Result<(), ServiceError> {
        let scope = &self.secret_scope;
        if self.ports.secrets.owns(reference) || scope.admits_arn(reference) {
            return Ok(());
        }
        if scope.tag().is_some() {
            match self.ports.secrets.tags(reference).await {
                Ok(tags) if scope.admits_tags(&tags) => return Ok(()),
                // Missing, or not even describable (IAM): outside, and said the same way, so
                // the answer does not tell whether a secret exists.
                Ok(_) | Err(SecretError::NotFound { .. } | SecretError::Denied { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::SecretNotAllowed {
            field: format!("{role}.password_secret"),
            message: format!(
                "secret {reference} is outside the secrets this deployment may read ({}); \
                 nothing was read: add it to AllowedSecretArns or tag it as AllowedSecretTag \
                 says, or give the password instead",
                scope.describe()
            ),
        })
    }

    /// A secret a caller gives, read once when the task is created: it exists, it is in RDS's
    /// format, and it or the spec names the account.
    pub(crate) async fn check_secret_login(
        &self,
        endpoint: &EndpointSpec,
        reference: &str,
        role: &str,
    ) -> Result<(), ServiceError> {
        let read = self.read_secret(reference, role).await?;
        login_user(endpoint, &read, reference, role).map(|_| ())
    }

    /// A secret's password, username and version; a secret that is missing or not in RDS's
    /// format is the caller's mistake, naming `{role}.password_secret`.
    async fn read_secret(
        &self,
        reference: &str,
        role: &str,
    ) -> Result<StoredPassword, ServiceError> {
        match self.ports.secrets.read_password(reference).await {
            Ok(p) => Ok(p),
            Err(e @ (SecretError::NotFound { .. } | SecretError::Malformed { .. })) => {
                Err(ServiceError::Invalid {
                    field: format!("{role}.password_secret"),
                    message: e.to_string(),
                })
            }
            Err(e @ SecretError::Denied { .. }) => Err(ServiceError::SecretNotAllowed {
                field: format!("{role}.password_secret"),
                message: e.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// The account to log in as: the secret's `username`, else the spec's `user`; neither is the
/// caller's mistake, naming `{role}.user`.
fn login_user(
    endpoint: &EndpointSpec,
    read: &StoredPassword,
    reference: &str,
    role: &str,
) -> Result<String, ServiceError> {
    read.username
        .clone()
        .or_else(|| endpoint.user.clone())
        .ok_or_else(|| ServiceError::Invalid {
            field: format!("{role}.user"),
            message: format!(
                "the secret {reference} holds no `username` and `{role}.user` is not given: \
                 give {role}.user, or store the account name in the secret under \"username\" \
                 (RDS's {{\"username\", \"password\"}} format)"
            ),
        })
}

/// The spec's `user` when the login uses another one (a secret's `username`), for the
/// precheck's warning: the spec's is ignored.
pub(crate) fn ignored_user<'a>(
    endpoint: &'a EndpointSpec,
    options: &ConnectOptions,
) -> Option<&'a str> {
    endpoint
        .user
        .as_deref()
        .filter(|user| *user != options.user)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn endpoint(user: Option<&str>) -> EndpointSpec {
        let mut json = serde_json::json!({
            "host": "db", "password_secret": "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf"
        });
        if let Some(user) = user {
            json["user"] = user.into();
        }
        serde_json::from_value(json).expect("an endpoint")
    }

    fn read(username: Option<&str>) -> StoredPassword {
        StoredPassword {
            password: SecretString::from("pw"),
            username: username.map(str::to_owned),
            version: "v1".into(),
        }
    }

    #[test]
    fn the_secrets_username_wins_and_without_either_the_user_field_is_named() {
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf";
        let user = |spec: Option<&str>, secret: Option<&str>| {
            login_user(&endpoint(spec), &read(secret), arn, "source")
        };
        assert_eq!(user(Some("dts"), Some("admin")).expect("user"), "admin");
        assert_eq!(user(None, Some("admin")).expect("user"), "admin");
        assert_eq!(user(Some("dts"), None).expect("user"), "dts");
        match user(None, None) {
            Err(ServiceError::Invalid { field, message }) => {
                assert_eq!(field, "source.user");
                assert!(
                    message.contains(arn) && message.contains("username"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let options = ConnectOptions::from_endpoint(&endpoint(Some("dts")), "pw".into());
        assert_eq!(ignored_user(&endpoint(Some("dts")), &options), None);
        let options = options.with_user("admin");
        assert_eq!(ignored_user(&endpoint(Some("dts")), &options), Some("dts"));
        assert_eq!(ignored_user(&endpoint(None), &options), None);
    }
}
