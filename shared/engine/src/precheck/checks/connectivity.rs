//! `source_connectivity` and `destination_connectivity`: the endpoint answered, accepted the login
//! and the TLS mode, and its facts could be read, within the connect timeout.

use tidemark_core::TlsMode;
use tidemark_core::precheck::CheckResult;

use crate::error::FactsError;
use crate::precheck::facts::ServerFacts;

/// The connectivity result of one endpoint. `role` is `source` or `destination`.
pub fn connectivity(
    id: &str,
    role: &str,
    endpoint: &str,
    tls: TlsMode,
    outcome: Result<&ServerFacts, &FactsError>,
) -> CheckResult {
    match outcome {
        Ok(facts) => CheckResult::pass(
            id,
            format!(
                "connected to the {role} {endpoint} as `{}` (TLS mode {}): {} {} ({})",
                facts.current_user,
                tls_name(tls),
                facts.info.flavor,
                facts.info.version,
                facts.info.version_comment
            ),
        ),
        Err(error) => CheckResult::fail(id, format!("the {role}: {error}"), remedy(error, role))
            .with_objects([role.to_owned()]),
    }
}

fn tls_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Disabled => "disabled",
        TlsMode::Required => "required",
        TlsMode::VerifyCa => "verify_ca",
        TlsMode::VerifyIdentity => "verify_identity",
    }
}

fn remedy(error: &FactsError, role: &str) -> String {
    match error.code() {
        "resolve" => format!("correct `{role}.host`"),
        "refused" => format!("start the server, or correct `{role}.host` and `{role}.port`"),
        "unreachable" => format!(
            "correct `{role}.host` and `{role}.port`, and open the firewall or security group \
             between Tidemark and the server"
        ),
        "no_greeting" => format!("point `{role}.port` at the MySQL/MariaDB port (usually 3306)"),
        "access_denied" => format!(
            "correct `{role}.user` and its password, and make sure the account may connect from \
             Tidemark's address (CREATE USER 'user'@'host')"
        ),
        "tls" => format!(
            "set `{role}.tls.mode` (and `{role}.tls.ca_pem`) to match the server's TLS setup"
        ),
        _ => format!("fix what the {role} server reports, then run the precheck again"),
    }
}

/// The reason every fact-dependent check gives when an endpoint has no facts.
pub fn skipped_reason(role: &str, endpoint: &str) -> String {
    format!(
        "skipped: the {role} ({endpoint}) is unreachable or its facts could not be read; see \
         {role}_connectivity"
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::ConnectError;
    use crate::precheck::checks::fixtures;
    use tidemark_core::precheck::CheckStatus;

    #[test]
    fn a_reachable_server_passes_with_its_flavour_and_version() {
        let facts = fixtures::mariadb();
        let r = connectivity(
            "source_connectivity",
            "source",
            "h:1",
            TlsMode::Disabled,
            Ok(&facts),
        );
        fixtures::assert_status(&r, CheckStatus::Pass, &["MariaDB 10.11.19", "h:1"]);
    }

    #[test]
    fn each_failure_fails_with_its_own_fix() {
        let cases = [
            (
                ConnectError::Refused {
                    endpoint: "h:1".into(),
                },
                "start the server",
            ),
            (
                ConnectError::NoGreeting {
                    endpoint: "h:1".into(),
                    timeout: Duration::from_secs(2),
                },
                "MySQL/MariaDB port",
            ),
            (
                ConnectError::AccessDenied {
                    endpoint: "h:1".into(),
                    user: "u".into(),
                },
                "correct `destination.user`",
            ),
            (
                ConnectError::Unreachable {
                    endpoint: "h:1".into(),
                    timeout: Duration::from_secs(2),
                },
                "firewall",
            ),
        ];
        for (error, fix) in cases {
            let error = FactsError::from(error);
            let r = connectivity("d", "destination", "h:1", TlsMode::Disabled, Err(&error));
            fixtures::assert_status(&r, CheckStatus::Fail, &[fix, "the destination: "]);
            assert_eq!(r.objects, ["destination"]);
        }
    }
}
