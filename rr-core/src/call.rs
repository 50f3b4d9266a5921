//! The calls a transaction carries: register, grant, retrieve, revoke.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::ids::{AccountId, ContentId, Digest, GrantId, RecordId, Timestamp};

/// Which proxy re-encryption scheme a record is encapsulated under. Stored on
/// the ledger with every record, so the numbers never change meaning.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(examples(1, 2)))]
pub struct SchemeId(pub u16);

impl SchemeId {
    /// Umbral (umbral-pre): threshold m of n.
    pub const UMBRAL: SchemeId = SchemeId(1);
    /// recrypt (IronCore transform encryption): single proxy, threshold 1.
    pub const RECRYPT: SchemeId = SchemeId(2);

    /// The scheme's name, or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::UMBRAL => "umbral",
            Self::RECRYPT => "recrypt",
            _ => "unknown",
        }
    }
}

impl fmt::Display for SchemeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl fmt::Debug for SchemeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Purpose of use of a grant or a retrieval, such as `treatment`, `payment`,
/// `operations`, `research` or `emergency`. Free-form but constrained: 1 to 64
/// characters of lowercase ASCII letters, digits, `-`, `_` and `.`, so it is
/// safe to show and to compare.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, pattern = "^[a-z0-9._-]{1,64}$", examples("treatment"))
)]
pub struct Purpose(String);

impl Purpose {
    /// The longest purpose accepted.
    pub const MAX_LEN: usize = 64;

    /// Checks and wraps a purpose.
    pub fn new(s: impl Into<String>) -> Result<Self, DecodeError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if ok {
            Ok(Self(s))
        } else {
            Err(DecodeError::Invalid {
                what: "purpose",
                reason: format!(
                    "{:?} must be 1 to {} characters of a-z, 0-9, '-', '_' or '.' (for example \"treatment\")",
                    s.chars().take(80).collect::<String>(),
                    Self::MAX_LEN
                ),
            })
        }
    }

    /// The purpose text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Purpose::new(s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Purpose({})", self.0)
    }
}

impl std::str::FromStr for Purpose {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::new(s)
    }
}

/// Threshold m of n: n key fragments, any m of which re-encrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Threshold {
    /// Fragments needed.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub m: u16,
    /// Fragments made (one per replica).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub n: u16,
}

impl Threshold {
    /// Checks 1 <= m <= n.
    pub fn new(m: u16, n: u16) -> Result<Self, DecodeError> {
        if m == 0 || m > n {
            return Err(DecodeError::Invalid {
                what: "threshold",
                reason: format!("{m} of {n}: need 1 <= m <= n"),
            });
        }
        Ok(Self { m, n })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.m, self.n)
    }
}

/// Register a record: the owner has encrypted it, stored the ciphertext under
/// `cid`, and encapsulated its data key under the record's own PRE key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRecord {
    /// Owner-chosen salt; the record id is `RecordId::derive(signer, salt)`.
    #[cfg_attr(feature = "openapi", schema(min_items = 16, max_items = 16))]
    pub salt: [u8; 16],
    /// Content id of the ciphertext envelope.
    pub cid: ContentId,
    /// Size of the ciphertext envelope in bytes.
    pub size: u64,
    /// PRE scheme of `record_key` and `capsule`.
    pub scheme: SchemeId,
    /// The record's own PRE public key (derived from the owner's master secret
    /// and the record id), encoded by the scheme.
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
    pub record_key: Vec<u8>,
    /// The capsule: the record's data key encapsulated under `record_key`.
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
    pub capsule: Vec<u8>,
    /// Media type of the plaintext, such as `application/fhir+json`. Visible on
    /// the ledger: put nothing identifying here (use `encrypted_metadata`).
    pub media_type: String,
    /// Optional metadata encrypted by the owner; opaque to the ledger.
    #[serde(with = "crate::codec::hex_bytes_opt", default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^([0-9a-f]{2})*$"))]
    pub encrypted_metadata: Option<Vec<u8>>,
}

/// Grant a grantee access to one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grant {
    /// The record.
    pub record: RecordId,
    /// The grantee's account.
    pub grantee: AccountId,
    /// The grantee's PRE public key (the key fragments re-encrypt to it).
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
    pub grantee_key: Vec<u8>,
    /// m of n: n must equal the number of replicas.
    pub threshold: Threshold,
    /// One commitment per replica, in replica order, to the key fragment that
    /// replica receives off the ledger.
    pub fragment_commitments: Vec<Digest>,
    /// Purpose of use the grant is for.
    pub purpose: Purpose,
    /// Block time after which the grant no longer works.
    pub expires_at: Option<Timestamp>,
}

/// Retrieve a record through a grant: ordered like every call, so it is audited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Retrieve {
    /// The grant.
    pub grant: GrantId,
    /// Purpose of this retrieval; must equal the grant's purpose.
    pub purpose: Purpose,
}

/// Revoke a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revoke {
    /// The grant.
    pub grant: GrantId,
}

/// A replica's signed statement, through consensus, that it erased its key
/// fragment of a revoked grant (or never held one). Signed with the replica's
/// key; only that replica can confirm for itself. A revocation is complete
/// once `n - m + 1` replicas confirmed: fewer than `m` can still hold a
/// fragment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfirmErasure {
    /// The revoked grant.
    pub grant: GrantId,
    /// The replica confirming.
    pub replica: crate::ReplicaId,
}

/// A call to the native contracts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum Call {
    /// See [`RegisterRecord`].
    RegisterRecord(RegisterRecord),
    /// See [`Grant`].
    Grant(Grant),
    /// See [`Retrieve`].
    Retrieve(Retrieve),
    /// See [`Revoke`].
    Revoke(Revoke),
    /// See [`ConfirmErasure`].
    ConfirmErasure(ConfirmErasure),
}

impl Call {
    /// A short name for logs and audit entries.
    pub fn name(&self) -> &'static str {
        match self {
            Call::RegisterRecord(_) => "register",
            Call::Grant(_) => "grant",
            Call::Retrieve(_) => "retrieve",
            Call::Revoke(_) => "revoke",
            Call::ConfirmErasure(_) => "confirm_erasure",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_is_checked() {
        assert_eq!(Purpose::new("treatment").unwrap().as_str(), "treatment");
        for bad in ["", "Treatment", "a b", "x\u{202e}", &"a".repeat(65)] {
            let err = Purpose::new(bad).unwrap_err();
            assert!(err.to_string().contains("purpose"), "{err}");
        }
        // The check also runs when decoding.
        let bytes = crate::codec::encode(&"No Way".to_string());
        assert!(crate::codec::decode::<Purpose>("purpose", &bytes, 100).is_err());
    }

    #[test]
    fn threshold_is_checked() {
        assert!(Threshold::new(1, 1).is_ok());
        assert!(Threshold::new(3, 4).is_ok());
        assert!(Threshold::new(0, 4).is_err());
        assert!(Threshold::new(5, 4).is_err());
    }
}
