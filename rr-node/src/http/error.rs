//! JSON errors with stable codes, both ways.

#[cfg(feature = "server")]
use axum::http::StatusCode;
#[cfg(feature = "server")]
use axum::response::{IntoResponse, Response};
#[cfg(feature = "server")]
use rr_core::{BlobError, ConsensusError};
use rr_core::{ErrorCode, Refusal};
use serde::{Deserialize, Serialize};

use crate::api::NodeError;

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable code: a refusal code (`grant_revoked`, ..., or a contract
    /// policy's `policy.<code>`) or one of `malformed_request`,
    /// `malformed_transaction`, `bad_signature`, `unauthorized`,
    /// `forbidden`, `unknown_record`, `unknown_grant`, `unknown_blob`,
    /// `blob_not_held`, `blob_size_mismatch`, `outcome_unknown`,
    /// `unknown_transaction`, `too_large`, `quota_exceeded`, `integrity`,
    /// `fragment_mismatch`, `fragment_missing`, `invalid_crypto`,
    /// `scheme_mismatch`, `unavailable`, `uncertified`, `not_found`,
    /// `method_not_allowed`, `unsupported_media_type`, `internal`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
}

#[cfg(feature = "server")]
fn refusal_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::UnknownRecord | ErrorCode::UnknownGrant => StatusCode::NOT_FOUND,
        ErrorCode::ReplayedNonce | ErrorCode::RecordExists => StatusCode::CONFLICT,
        ErrorCode::InvalidCall
        | ErrorCode::SchemeMismatch
        | ErrorCode::ThresholdTooLow
        | ErrorCode::SingleProxyRefused => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    }
}

#[cfg(feature = "server")]
/// Status and code of a node error.
pub(crate) fn classify(err: &NodeError) -> (StatusCode, std::borrow::Cow<'static, str>) {
    use StatusCode as S;
    if let NodeError::Refused(r) = err {
        return (refusal_status(r.code), r.code.as_str().to_string().into());
    }
    let (status, code) = match err {
        NodeError::BadTransaction(_) => (S::BAD_REQUEST, "malformed_transaction"),
        NodeError::BadSignature(_) => (S::UNAUTHORIZED, "bad_signature"),
        NodeError::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized"),
        NodeError::QuotaExceeded { global: false, .. } => (S::PAYLOAD_TOO_LARGE, "quota_exceeded"),
        NodeError::QuotaExceeded { global: true, .. } => {
            (S::INSUFFICIENT_STORAGE, "quota_exceeded")
        }
        NodeError::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
        NodeError::UnknownRecord(_) => (S::NOT_FOUND, "unknown_record"),
        NodeError::UnknownGrant(_) => (S::NOT_FOUND, "unknown_grant"),
        NodeError::Blob(BlobError::NotFound(_)) => (S::NOT_FOUND, "unknown_blob"),
        NodeError::Blob(BlobError::TooLarge { .. }) => (S::PAYLOAD_TOO_LARGE, "too_large"),
        NodeError::Blob(BlobError::Integrity { .. }) => (S::INTERNAL_SERVER_ERROR, "integrity"),
        NodeError::Blob(BlobError::Source(_)) => (S::BAD_REQUEST, "malformed_request"),
        NodeError::BlobNotHeld { .. } => (S::CONFLICT, "blob_not_held"),
        NodeError::BlobSizeMismatch { .. } => (S::BAD_REQUEST, "blob_size_mismatch"),
        NodeError::FragmentMismatch { .. } => (S::BAD_REQUEST, "fragment_mismatch"),
        NodeError::FragmentMissing { .. } => (S::CONFLICT, "fragment_missing"),
        NodeError::Sealed { .. } => (S::BAD_REQUEST, "fragment_mismatch"),
        NodeError::Pre(_) => (S::BAD_REQUEST, "invalid_crypto"),
        NodeError::SchemeMismatch { .. } => (S::BAD_REQUEST, "scheme_mismatch"),
        NodeError::WrongCall { .. } => (S::BAD_REQUEST, "malformed_request"),
        NodeError::NotFound(_) => (S::NOT_FOUND, "unknown_transaction"),
        NodeError::Consensus(ConsensusError::OutcomeUnknown(_)) => {
            (S::SERVICE_UNAVAILABLE, "outcome_unknown")
        }
        NodeError::Consensus(ConsensusError::Stopped | ConsensusError::Overloaded(_)) => {
            (S::SERVICE_UNAVAILABLE, "unavailable")
        }
        NodeError::Uncertified(_) => (S::SERVICE_UNAVAILABLE, "uncertified"),
        _ => (S::INTERNAL_SERVER_ERROR, "internal"),
    };
    (status, code.into())
}

#[cfg(feature = "server")]
/// An error response.
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

#[cfg(feature = "server")]
impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(feature = "server")]
impl From<NodeError> for ApiError {
    fn from(err: NodeError) -> Self {
        let (status, code) = classify(&err);
        let message = match &err {
            NodeError::Refused(r) => r.message.clone(),
            NodeError::Unauthorized(m) | NodeError::Forbidden(m) => m.clone(),
            NodeError::QuotaExceeded { message, .. } => message.clone(),
            // Internal failures are logged in full; the client gets the gist.
            other => other.to_string(),
        };
        if status.is_server_error() {
            tracing::error!(target: "rr_node::http", error = %err, "request failed");
        }
        Self {
            status,
            code: code.to_string(),
            message,
        }
    }
}

#[cfg(feature = "server")]
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("rr_http_errors_total", "code" => self.code.clone()).increment(1);
        (
            self.status,
            axum::Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code,
                    message: self.message,
                },
            }),
        )
            .into_response()
    }
}

/// The node error an error response stands for, on the client side.
#[cfg(feature = "client")]
pub(crate) fn from_response(status: u16, body: &[u8]) -> NodeError {
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return NodeError::Transport(format!("node answered HTTP {status}: {text}"));
    };
    if let Ok(code) = error.code.parse::<ErrorCode>() {
        return NodeError::Refused(Refusal {
            code,
            message: error.message,
        });
    }
    match error.code.as_str() {
        "unauthorized" => NodeError::Unauthorized(error.message),
        "uncertified" => NodeError::Uncertified(error.message),
        "unknown_transaction" => NodeError::NotFound(error.message),
        "forbidden" => NodeError::Forbidden(error.message),
        "quota_exceeded" => NodeError::QuotaExceeded {
            global: status == 507,
            message: error.message,
        },
        _ => NodeError::Remote {
            status,
            code: error.code,
            message: error.message,
        },
    }
}
