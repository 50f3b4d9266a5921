//! Identifiers: accounts, records, grants, transactions, blocks, replicas and content ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;

/// Domain-separated BLAKE3 hash of `parts`, used for every derived id so that
/// an id of one kind can never collide with an id of another kind.
pub(crate) fn derive32(domain: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(domain);
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

macro_rules! id32 {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(
            feature = "openapi",
            derive(utoipa::ToSchema),
            schema(value_type = String, pattern = "^[0-9a-f]{64}$")
        )]
        pub struct $name(pub [u8; 32]);

        impl Serialize for $name {
            /// Hex in human-readable formats (JSON), 32 raw bytes in postcard.
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    Self::from_hex(&s).map_err(serde::de::Error::custom)
                } else {
                    Ok(Self(<[u8; 32]>::deserialize(d)?))
                }
            }
        }

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Parses the lowercase or uppercase hex form produced by `Display`.
            pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s.trim(), &mut out).map_err(|_| DecodeError::BadId {
                    kind: $kind,
                    input: s.chars().take(80).collect(),
                })?;
                Ok(Self(out))
            }

            /// The first 8 hex digits, for log lines and messages meant for people.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($kind, "({})"), self.short())
            }
        }

        impl FromStr for $name {
            type Err = DecodeError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }
    };
}

id32!(
    /// An account: the bytes of the account's ed25519 verifying key. Every call
    /// is signed by the key its signer account names, so an account id is all a
    /// verifier needs.
    AccountId,
    "account"
);
id32!(
    /// A record. Derived from the owner and an owner-chosen salt
    /// ([`RecordId::derive`]) so that only the owner can register a given id and
    /// the client knows the id (and so the record's own PRE key) before it
    /// registers.
    RecordId,
    "record"
);
id32!(
    /// A grant. Derived from the id of the transaction that created it
    /// ([`GrantId::derive`]), so the client knows it before the grant commits.
    GrantId,
    "grant"
);
id32!(
    /// A transaction: the BLAKE3 hash of its signed canonical encoding.
    TxId,
    "tx"
);
id32!(
    /// A block: the BLAKE3 hash of its header's canonical encoding.
    BlockHash,
    "block"
);
id32!(
    /// A 32-byte digest (state digests, fragment commitments, batch digests).
    Digest,
    "digest"
);

impl AccountId {
    /// The ed25519 verifying key this account id names.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, DecodeError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| DecodeError::BadId {
            kind: "account",
            input: self.to_string(),
        })
    }

    /// The account of an ed25519 verifying key.
    pub fn from_verifying_key(key: &ed25519_dalek::VerifyingKey) -> Self {
        Self(key.to_bytes())
    }
}

impl RecordId {
    /// The id of the record `owner` registers with `salt`.
    pub fn derive(owner: &AccountId, salt: &[u8; 16]) -> Self {
        Self(derive32(
            "resilient-records 2026 record id",
            &[&owner.0, salt],
        ))
    }
}

impl GrantId {
    /// The id of the grant created by transaction `tx`.
    pub fn derive(tx: &TxId) -> Self {
        Self(derive32("resilient-records 2026 grant id", &[&tx.0]))
    }
}

impl Digest {
    /// The BLAKE3 digest of `bytes` under `domain`: derive_key(`domain`,
    /// le64(len(bytes)) || bytes).
    pub fn of(domain: &str, bytes: &[u8]) -> Self {
        Self(derive32(domain, &[bytes]))
    }

    /// The BLAKE3 commitment to a key fragment (sealed or not) as carried in a
    /// `Grant` call.
    pub fn fragment_commitment(fragment: &[u8]) -> Self {
        Self::of("resilient-records 2026 key fragment commitment", fragment)
    }
}

/// A replica of the cluster, numbered from 0 in replica-set order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicaId(pub u16);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replica-{}", self.0)
    }
}

/// A content id: an IPFS CIDv1 with the `raw` codec and a sha2-256 multihash,
/// the same id `ipfs block put --cid-codec raw --mhtype sha2-256` gives the same bytes.
///
/// Only that one kind of CID is ever valid here, so the id is stored as its
/// 32-byte digest and the CID is built when it is printed or encoded.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, pattern = "^b[a-z2-7]{58}$")
)]
pub struct ContentId([u8; 32]);

impl ContentId {
    /// Multicodec code of the `raw` codec.
    pub const RAW_CODEC: u64 = 0x55;
    /// Multihash code of sha2-256.
    pub const SHA2_256: u64 = 0x12;

    /// The content id of bytes whose sha2-256 digest is `digest`.
    pub fn from_sha256(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The sha2-256 digest this content id names.
    pub fn sha256(&self) -> [u8; 32] {
        self.0
    }

    /// The CID.
    pub fn cid(&self) -> cid::Cid {
        let mh = cid::multihash::Multihash::<64>::wrap(Self::SHA2_256, &self.0)
            .expect("a 32-byte digest fits a 64-byte multihash");
        cid::Cid::new_v1(Self::RAW_CODEC, mh)
    }

    /// Binary form (the CID's bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.cid().to_bytes()
    }

    /// Parses the binary form; refuses anything but CIDv1 raw sha2-256.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let cid =
            cid::Cid::try_from(bytes).map_err(|e| DecodeError::BadContentId(e.to_string()))?;
        Self::check(cid)
    }

    fn check(cid: cid::Cid) -> Result<Self, DecodeError> {
        if cid.version() != cid::Version::V1
            || cid.codec() != Self::RAW_CODEC
            || cid.hash().code() != Self::SHA2_256
            || cid.hash().size() != 32
        {
            return Err(DecodeError::BadContentId(format!(
                "{cid} is not a CIDv1 with the raw codec and a sha2-256 hash"
            )));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(cid.hash().digest());
        Ok(Self(digest))
    }
}

impl fmt::Display for ContentId {
    /// The base32 string form IPFS tools print (`bafkrei...`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cid(), f)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.cid())
    }
}

impl FromStr for ContentId {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cid =
            cid::Cid::try_from(s.trim()).map_err(|e| DecodeError::BadContentId(e.to_string()))?;
        Self::check(cid)
    }
}

impl Serialize for ContentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_bytes(&self.sha256())
        }
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes: &[u8] = <&[u8]>::deserialize(d)?;
            let digest: [u8; 32] = bytes
                .try_into()
                .map_err(|_| serde::de::Error::custom("a content id digest is 32 bytes"))?;
            Ok(Self::from_sha256(digest))
        }
    }
}

/// Milliseconds since the Unix epoch. Block time, grant expiry and audit times
/// all use it; execution reads it only from the block, never from a clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `self` plus `ms` milliseconds, saturating.
    pub fn plus_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// The time as a `SystemTime`.
    pub fn to_system_time(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0)
    }

    /// The time of a `SystemTime` (the epoch for times before it).
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis().min(u64::MAX as u128) as u64)
            .unwrap_or(0);
        Self(ms)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_millis(self.to_system_time())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_id_matches_ipfs_for_hello_world() {
        // `printf 'hello world' | ipfs block put --cid-codec raw --mhtype sha2-256`
        // and `ipfs add --cid-version 1 --raw-leaves` of the same 11 bytes.
        let digest: [u8; 32] =
            hex::decode("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
                .unwrap()
                .try_into()
                .unwrap();
        let cid = ContentId::from_sha256(digest);
        assert_eq!(
            cid.to_string(),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        );
        assert_eq!(cid.to_string().parse::<ContentId>().unwrap(), cid);
        assert_eq!(ContentId::from_bytes(&cid.to_bytes()).unwrap(), cid);
    }

    #[test]
    fn content_id_refuses_other_cids() {
        // A CIDv0 (dag-pb) string is a valid CID but not one of ours.
        let err = "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"
            .parse::<ContentId>()
            .unwrap_err();
        assert!(err.to_string().contains("not a CIDv1"), "{err}");
        assert!("not a cid".parse::<ContentId>().is_err());
        assert!(ContentId::from_bytes(&[1, 2, 3]).is_err());
    }

    #[test]
    fn ids_round_trip_and_refuse_garbage() {
        let owner = AccountId([7; 32]);
        let id = RecordId::derive(&owner, &[1; 16]);
        assert_ne!(id, RecordId::derive(&owner, &[2; 16]));
        assert_ne!(id, RecordId::derive(&AccountId([8; 32]), &[1; 16]));
        assert_eq!(id.to_string().parse::<RecordId>().unwrap(), id);
        let err = "zz".parse::<RecordId>().unwrap_err();
        assert!(err.to_string().contains("record id"), "{err}");
        assert!("00".parse::<GrantId>().is_err());
    }

    #[test]
    fn timestamp_displays_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(1_500).plus_millis(500), Timestamp(2_000));
    }
}
