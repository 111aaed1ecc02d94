//! Where an endpoint's password comes from. The password is a `SecretString` from here on and is
//! never printed.

use secrecy::SecretString;
use tidemark_core::{EndpointSpec, PasswordSource};

use crate::error::ServiceError;

/// The password of `endpoint` (`role` is `source` or `destination`, for messages), from the spec
/// or the environment. A Secrets Manager reference needs the cloud's secret store, which the local
/// host does not have.
pub fn local_password(endpoint: &EndpointSpec, role: &str) -> Result<SecretString, ServiceError> {
    let invalid = |field: String, message: String| ServiceError::Invalid { field, message };
    match endpoint.password_source() {
        Some(PasswordSource::Inline(p)) => Ok(p.clone()),
        Some(PasswordSource::Env(var)) => match std::env::var(var) {
            Ok(value) => Ok(SecretString::from(value)),
            Err(_) => Err(invalid(
                format!("{role}.password_env"),
                format!(
                    "the environment variable `{var}` is not set (or not UTF-8); export it, or give {role}.password"
                ),
            )),
        },
        Some(PasswordSource::Secret(_)) => Err(invalid(
            format!("{role}.password_secret"),
            format!(
                "a Secrets Manager ARN is not available to the local host; use {role}.password_env (an environment variable) or {role}.password"
            ),
        )),
        None => Err(invalid(
            format!("{role}.password"),
            "give exactly one of password, password_env or password_secret".into(),
        )),
    }
}
