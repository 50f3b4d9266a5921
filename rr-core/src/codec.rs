//! The canonical encoding: postcard, with size limits and no trailing bytes.
//!
//! Every value that is hashed, signed or stored is encoded here, so two
//! replicas that hold equal values hold equal bytes.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::DecodeError;

/// Encodes `value` canonically.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encoding into a Vec cannot fail")
}

/// Decodes a `T` from exactly `bytes`, refusing inputs over `limit` bytes and
/// trailing bytes. `what` names the type in errors.
pub fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            what,
            size: bytes.len(),
            limit,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| DecodeError::Malformed {
            what,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}
