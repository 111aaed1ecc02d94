//! Turning AWS SDK errors into the ports' errors: what failed, and whether trying again can help.
//!
//! The SDK already retries throttling and transient failures a few times (its standard retry
//! mode); what reaches us has outlasted those retries, and the caller decides what to do next.
//! Only the error's code and message are kept: never a request's content.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Error codes that mean "slow down or come back later", whatever the service.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "InternalServerError",
    "InternalServerException",
    "InternalFailure",
    "InternalServiceError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// A failed SDK call, reduced to what the ports report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The service's error code (`ConditionalCheckFailedException`, ...), when it answered.
    pub code: Option<String>,
    /// `<operation>: <code>: <message>`, for the port error's `detail`.
    pub detail: String,
    pub retryable: bool,
}

impl Failure {
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// Classifies an SDK error of `operation` (e.g. `"PutItem"`).
pub(crate) fn failure<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().map(str::to_owned);
            let retryable = status.is_some_and(|s| s >= 500 || s == 429)
                || code
                    .as_deref()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c));
            let detail = format!(
                "{operation}: {}: {}",
                code.as_deref().unwrap_or("unknown error"),
                e.message().unwrap_or("no message")
            );
            Failure {
                code,
                detail,
                retryable,
            }
        }
        SdkError::TimeoutError(_) => Failure {
            code: None,
            detail: format!("{operation}: timed out"),
            retryable: true,
        },
        SdkError::DispatchFailure(d) => Failure {
            code: None,
            detail: format!("{operation}: {}", DisplayErrorContext(err)),
            retryable: d.is_io() || d.is_timeout(),
        },
        SdkError::ResponseError(_) => Failure {
            code: None,
            detail: format!("{operation}: {}", DisplayErrorContext(err)),
            retryable: true,
        },
        _ => Failure {
            code: None,
            detail: format!("{operation}: {}", DisplayErrorContext(err)),
            retryable: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn service(code: &str, status: u16) -> SdkError<PutItemError, HttpResponse> {
        let err = PutItemError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("the service's words")
                .build(),
        );
        let status = StatusCode::try_from(status).expect("a status");
        SdkError::service_error(err, Response::new(status, SdkBody::empty()))
    }

    #[test]
    fn throttling_and_server_errors_are_worth_retrying() {
        for (code, status) in [
            ("ProvisionedThroughputExceededException", 400),
            ("ThrottlingException", 400),
            ("RequestLimitExceeded", 400),
            ("TransactionConflictException", 400),
            ("SomethingNew", 500),
            ("SomethingNew", 503),
            ("SomethingNew", 429),
        ] {
            let f = failure("PutItem", &service(code, status));
            assert!(f.retryable, "{code} {status}");
            assert!(f.is(code));
        }
        let timeout: SdkError<PutItemError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(failure("PutItem", &timeout).retryable);
    }

    #[test]
    fn refusals_are_final_and_say_what_failed() {
        for code in [
            "ConditionalCheckFailedException",
            "ValidationException",
            "AccessDeniedException",
            "ResourceNotFoundException",
        ] {
            let f = failure("PutItem", &service(code, 400));
            assert!(!f.retryable, "{code}");
            assert_eq!(
                f.detail,
                format!("PutItem: {code}: the service's words"),
                "{code}"
            );
        }
        let construction: SdkError<PutItemError, HttpResponse> =
            SdkError::construction_failure("a missing field");
        assert!(!failure("PutItem", &construction).retryable);
    }
}
