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

/// Like [`decode`], and refuses bytes that are not the value's canonical
/// encoding (postcard also reads over-long varints): what is hashed,
/// signed or proven must have one encoding only.
pub fn decode_canonical<T: DeserializeOwned + Serialize>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    let value: T = decode(what, bytes, limit)?;
    if encode(&value) != bytes {
        return Err(DecodeError::Malformed {
            what,
            reason: "not the canonical encoding (an over-long number?)".into(),
        });
    }
    Ok(value)
}

/// Serde helpers for byte fields: hex strings in human-readable formats (JSON),
/// plain bytes in binary ones (postcard, where the encoding is the same as a
/// `Vec<u8>`'s). Use with `#[serde(with = "rr_core::codec::hex_bytes")]`.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    /// Deserializes bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(s).map_err(serde::de::Error::custom)
        } else {
            serde_bytes_vec(d)
        }
    }

    fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Like [`hex_bytes`], for `Option<Vec<u8>>` fields.
pub mod hex_bytes_opt {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "super::hex_bytes")] Vec<u8>);

    /// Serializes optional bytes.
    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&W(b.clone())),
            None => s.serialize_none(),
        }
    }

    /// Deserializes optional bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use crate::call::{Call, Revoke};
    use crate::ids::{AccountId, GrantId};
    use crate::tx::TxBody;

    #[test]
    fn byte_fields_are_hex_in_json_and_raw_in_postcard() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let tx = TxBody {
            signer: AccountId::from_verifying_key(&key.verifying_key()),
            nonce: 3,
            call: Call::Revoke(Revoke {
                grant: GrantId([0xab; 32]),
            }),
        }
        .sign(&key);
        // postcard: a Vec<u8>'s encoding (length, then the bytes).
        let bin = tx.to_bytes();
        let sig_at = bin.len() - 64;
        assert_eq!(bin[sig_at - 1], 64);
        assert_eq!(&bin[sig_at..], tx.signature.as_slice());
        // JSON: hex strings, and it round-trips.
        let json = serde_json::to_string(&tx).unwrap();
        assert!(json.contains(&"ab".repeat(32)), "{json}");
        assert!(json.contains(&hex::encode(&tx.signature)), "{json}");
        let back: crate::tx::SignedTransaction = serde_json::from_str(&json).unwrap();
        assert_eq!(back, tx);
        assert!(back.verify().is_ok());
    }
}
