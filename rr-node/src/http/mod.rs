//! The HTTP API, versioned under `/v1`, and its Rust client.
//!
//! - [`router`] serves a [`crate::NodeApi`] (a [`crate::Node`]) over axum;
//!   [`serve`] runs it on a listener until a shutdown signal.
//! - [`HttpClient`] implements [`crate::NodeApi`] over HTTP, so
//!   [`crate::Client`] runs the same flows against a remote node.
//!
//! Errors are JSON `{"error": {"code": "...", "message": "..."}}` with a
//! stable code; `/v1/openapi.json` describes every route.

#[cfg(feature = "client")]
mod client;
mod error;
#[cfg(feature = "server")]
mod openapi;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod tls;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::HttpClient;
pub use error::{ErrorBody, ErrorDetail};
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use openapi::openapi_document;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use server::{router, serve, serve_with, ConnectionLimits, ServerConfig};

/// Header carrying a read's [`crate::Authorization`]:
/// `RR-Ed25519 account=<hex>, at=<ms>, signature=<hex>`; the scope is the
/// request itself (see [`crate::Authorization`]'s scope helpers).
pub const AUTHORIZATION_SCHEME: &str = "RR-Ed25519";

/// Formats an authorization as an `Authorization` header value.
pub fn authorization_header(auth: &crate::Authorization) -> String {
    format!(
        "{AUTHORIZATION_SCHEME} account={}, at={}, signature={}",
        auth.account,
        auth.at.0,
        hex::encode(&auth.signature)
    )
}

/// Parses an `Authorization` header value for `scope`.
pub fn parse_authorization_header(
    value: &str,
    scope: String,
) -> Result<crate::Authorization, crate::NodeError> {
    let bad = |why: &str| {
        crate::NodeError::Unauthorized(format!(
            "{why}; expected `Authorization: {AUTHORIZATION_SCHEME} account=<hex>, at=<ms>, signature=<hex>`"
        ))
    };
    let rest = value
        .strip_prefix(AUTHORIZATION_SCHEME)
        .ok_or_else(|| bad("unknown authorization scheme"))?;
    let (mut account, mut at, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| bad("malformed authorization"))?;
        match k {
            "account" => account = Some(v.parse().map_err(|_| bad("bad account"))?),
            "at" => at = Some(rr_core::Timestamp(v.parse().map_err(|_| bad("bad time"))?)),
            "signature" => signature = Some(hex::decode(v).map_err(|_| bad("bad signature"))?),
            _ => return Err(bad("unknown authorization field")),
        }
    }
    Ok(crate::Authorization {
        account: account.ok_or_else(|| bad("missing account"))?,
        scope,
        at: at.ok_or_else(|| bad("missing time"))?,
        signature: signature.ok_or_else(|| bad("missing signature"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_header_round_trips_and_refuses_garbage() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let auth = crate::Authorization::sign(&key, &rr_core::Digest([3; 32]), "audit x");
        let header = authorization_header(&auth);
        let back = parse_authorization_header(&header, "audit x".into()).unwrap();
        assert_eq!(back, auth);
        for bad in [
            "Bearer abc",
            "RR-Ed25519 account=zz, at=1, signature=00",
            "RR-Ed25519 at=1, signature=00",
            "RR-Ed25519 account",
        ] {
            let err = parse_authorization_header(bad, "s".into()).unwrap_err();
            assert!(
                matches!(err, crate::NodeError::Unauthorized(_)),
                "{bad}: {err}"
            );
        }
    }
}
