//! What a failed AWS call means for the caller: transient (retry after reconciling), a refused
//! role, a rejected template, no changes, not found, already exists, or something else.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::DeployError;

/// Which call failed, for error classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    AssumeRole,
    GetCallerIdentity,
    CreateChangeSet,
    DescribeChangeSet,
    ExecuteChangeSet,
    DescribeStacks,
    DescribeStackEvents,
    DeleteStack,
    DeleteChangeSet,
    GetTemplate,
}

/// Error codes AWS uses for "slow down" and "try again": the SDK's own lists (what its retry
/// policy retries), plus the few its lists leave to HTTP status. CloudFormation's
/// `LimitExceededException` is a quota (too many stacks or change sets), which waiting does not
/// clear, although the SDK's list counts it as throttling for other services.
fn is_transient_code(code: &str) -> bool {
    (THROTTLING_ERRORS.contains(&code) && code != "LimitExceededException")
        || TRANSIENT_ERRORS.contains(&code)
        || matches!(
            code,
            "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "InternalFailure"
                | "InternalError"
                | "InternalServerError"
                | "IDPCommunicationError"
        )
}

const ASSUME_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "RegionDisabledException",
];

fn is_no_changes(message: &str) -> bool {
    message.contains("No updates are to be performed")
        || message.contains("didn't contain changes")
        || message.contains("does not contain changes")
}

fn is_missing(message: &str) -> bool {
    message.contains("does not exist")
}

/// Classify an error response from AWS (pure, for unit tests).
fn classify_service_error(
    op: Op,
    http_status: Option<u16>,
    code: Option<&str>,
    message: &str,
) -> DeployError {
    let code_s = code.unwrap_or("");
    let text = if code_s.is_empty() {
        message.to_string()
    } else {
        format!("{code_s}: {message}")
    };
    if is_transient_code(code_s)
        || message.contains("Rate exceeded")
        || http_status.is_some_and(|s| s == 429 || s >= 500)
    {
        return DeployError::Transient(text);
    }
    if op == Op::AssumeRole {
        return if ASSUME_DENIED_CODES.contains(&code_s) || http_status == Some(403) {
            DeployError::AssumeRoleDenied(text)
        } else {
            DeployError::Other(text)
        };
    }
    match code_s {
        "AlreadyExistsException" | "TokenAlreadyExistsException" | "NameAlreadyExistsException" => {
            return DeployError::AlreadyExists(text);
        }
        "ChangeSetNotFound" | "ChangeSetNotFoundException" | "StackNotFoundException" => {
            return DeployError::NotFound(text);
        }
        "InvalidChangeSetStatus" | "InvalidChangeSetStatusException" => {
            return DeployError::ChangeSetFailed(text);
        }
        "InsufficientCapabilitiesException" if op == Op::ExecuteChangeSet => {
            return DeployError::TemplateRejected(text);
        }
        _ => {}
    }
    match op {
        Op::CreateChangeSet if is_no_changes(message) => DeployError::NoChanges,
        Op::CreateChangeSet if is_missing(message) => DeployError::NotFound(text),
        // A stack in a state that forbids the change is not a template problem.
        Op::CreateChangeSet
            if message.contains("state and can not be updated")
                || message.contains("state and cannot be updated") =>
        {
            DeployError::Other(text)
        }
        Op::CreateChangeSet
            if matches!(
                code_s,
                "ValidationError" | "InsufficientCapabilitiesException"
            ) =>
        {
            DeployError::TemplateRejected(text)
        }
        Op::DescribeChangeSet
        | Op::ExecuteChangeSet
        | Op::DescribeStacks
        | Op::DescribeStackEvents
        | Op::DeleteChangeSet
        | Op::GetTemplate
            if is_missing(message) =>
        {
            DeployError::NotFound(text)
        }
        _ => DeployError::Other(text),
    }
}

type HttpResponse = aws_sdk_cloudformation::config::http::HttpResponse;

/// Classify any SDK error (service error, timeout, dispatch failure…).
pub(super) fn map_sdk_error<E>(op: Op, err: SdkError<E, HttpResponse>) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(ctx) = &err {
        let status = Some(ctx.raw().status().as_u16());
        let e = ctx.err();
        return classify_service_error(op, status, e.code(), e.message().unwrap_or_default());
    }
    let text = format!("{op:?}: {}", DisplayErrorContext(&err));
    // The credentials provider re-assumes the role when the session's credentials near expiry;
    // its failure is a DeployError somewhere in this error's source chain: keep its class.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(inner) = e.downcast_ref::<DeployError>() {
            return match inner {
                DeployError::AssumeRoleDenied(_) => DeployError::AssumeRoleDenied(text),
                DeployError::Transient(_) => DeployError::Transient(text),
                _ => DeployError::Other(text),
            };
        }
        source = e.source();
    }
    match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => DeployError::Transient(text),
        SdkError::DispatchFailure(df) if df.is_user() => DeployError::Other(text),
        SdkError::DispatchFailure(_) => DeployError::Transient(text),
        _ => DeployError::Other(text),
    }
}

/// A FAILED change set is an error for the caller: no changes, or a failure with its reason.
pub(super) fn failed_change_set(status: &str, reason: Option<&str>) -> Option<DeployError> {
    if status != "FAILED" {
        return None;
    }
    let reason = reason.unwrap_or("change set FAILED without a reason");
    Some(if is_no_changes(reason) {
        DeployError::NoChanges
    } else {
        DeployError::ChangeSetFailed(reason.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_retryable_for_every_op() {
        for op in [
            Op::AssumeRole,
            Op::CreateChangeSet,
            Op::ExecuteChangeSet,
            Op::DescribeStacks,
            Op::DeleteStack,
        ] {
            for (status, code, msg) in [
                (Some(400), Some("Throttling"), "Rate exceeded"),
                (Some(400), None, "Rate exceeded"),
                (Some(503), Some("ServiceUnavailable"), "try later"),
                (Some(500), Some("Weird"), "boom"),
                (Some(429), None, "slow down"),
            ] {
                let e = classify_service_error(op, status, code, msg);
                assert!(e.is_retryable(), "{op:?} {code:?} {msg} -> {e:?}");
            }
        }
    }

    #[test]
    fn assume_role_errors() {
        let e = classify_service_error(
            Op::AssumeRole,
            Some(403),
            Some("AccessDenied"),
            "not authorized to perform sts:AssumeRole",
        );
        assert!(matches!(e, DeployError::AssumeRoleDenied(ref m) if m.contains("AccessDenied")));
        let e = classify_service_error(
            Op::AssumeRole,
            Some(403),
            Some("RegionDisabledException"),
            "STS is not activated",
        );
        assert!(matches!(e, DeployError::AssumeRoleDenied(_)));
        let e = classify_service_error(Op::AssumeRole, Some(400), Some("ValidationError"), "bad");
        assert!(matches!(e, DeployError::Other(_)));
    }

    #[test]
    fn create_change_set_errors() {
        let c = |code: &str, msg: &str| {
            classify_service_error(Op::CreateChangeSet, Some(400), Some(code), msg)
        };
        assert_eq!(
            c("ValidationError", "No updates are to be performed."),
            DeployError::NoChanges
        );
        assert!(matches!(
            c("ValidationError", "Template format error: unsupported structure."),
            DeployError::TemplateRejected(ref m) if m.contains("Template format error")
        ));
        assert!(matches!(
            c(
                "InsufficientCapabilitiesException",
                "Requires capabilities : [CAPABILITY_IAM]"
            ),
            DeployError::TemplateRejected(_)
        ));
        assert!(matches!(
            c("AlreadyExistsException", "ChangeSet x already exists"),
            DeployError::AlreadyExists(_)
        ));
        assert!(matches!(
            c("ValidationError", "Stack [s] does not exist"),
            DeployError::NotFound(_)
        ));
        assert!(matches!(
            c(
                "ValidationError",
                "Stack:arn is in ROLLBACK_COMPLETE state and can not be updated."
            ),
            DeployError::Other(_)
        ));
        assert!(matches!(
            c("LimitExceededException", "too many stacks"),
            DeployError::Other(_)
        ));
    }

    #[test]
    fn execute_and_describe_errors() {
        let e = classify_service_error(
            Op::ExecuteChangeSet,
            Some(400),
            Some("InvalidChangeSetStatus"),
            "cannot be executed in its current execution status of [OBSOLETE]",
        );
        assert!(matches!(e, DeployError::ChangeSetFailed(ref m) if m.contains("OBSOLETE")));
        let e = classify_service_error(
            Op::ExecuteChangeSet,
            Some(404),
            Some("ChangeSetNotFound"),
            "ChangeSet [x] does not exist",
        );
        assert!(matches!(e, DeployError::NotFound(_)));
        let e = classify_service_error(
            Op::DescribeStacks,
            Some(400),
            Some("ValidationError"),
            "Stack with id s does not exist",
        );
        assert!(matches!(e, DeployError::NotFound(_)));
        let e = classify_service_error(
            Op::DeleteStack,
            Some(400),
            Some("TokenAlreadyExistsException"),
            "token used",
        );
        assert!(matches!(e, DeployError::AlreadyExists(_)));
    }

    #[test]
    fn failed_change_sets() {
        assert_eq!(failed_change_set("CREATE_COMPLETE", None), None);
        assert_eq!(failed_change_set("CREATE_PENDING", Some("x")), None);
        assert_eq!(
            failed_change_set(
                "FAILED",
                Some(
                    "The submitted information didn't contain changes. Submit different information to create a change set."
                )
            ),
            Some(DeployError::NoChanges)
        );
        assert_eq!(
            failed_change_set("FAILED", Some("No updates are to be performed.")),
            Some(DeployError::NoChanges)
        );
        assert_eq!(
            failed_change_set("FAILED", Some("Parameter X is invalid")),
            Some(DeployError::ChangeSetFailed(
                "Parameter X is invalid".into()
            ))
        );
        assert!(matches!(
            failed_change_set("FAILED", None),
            Some(DeployError::ChangeSetFailed(_))
        ));
    }
}
