//! Certified headers: what every replica signs after it executes a block,
//! and the certificates a client checks instead of trusting any one replica.
//!
//! After a replica executes the block at height `h` it computes the block's
//! [`LedgerHeader`]: the height and block time, the hash of the ordered block
//! (which binds its transactions and the block before it), the hash of the
//! previous header, the root of the state after the block (a sparse Merkle
//! tree over every state entry, see [`crate::smt`]), the root of the block's
//! receipts (see [`crate::merkle`]) and the digest of the replica set. It
//! signs the header's hash. A [`Certificate`] is a header with the
//! signatures of a quorum of the replica set (`2f + 1` of `n = 3f + 1`; the
//! one signature of a single dev node, `n = 1`), and
//! [`Certificate::verify`] is the only way to a [`CertifiedHeader`].
//!
//! Execution is deterministic, so every correct replica computes the same
//! header; a quorum's signatures mean at least `f + 1` correct replicas
//! executed the ordered blocks up to `h` and hold this state. A value with a
//! proof against a certified header's state root is therefore the ledger's
//! value, whichever replica sent it.
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use rr_core::cert::{Certificate, LedgerHeader, ReplicaSetInfo};
//! use rr_core::{AccountId, ReplicaId};
//!
//! let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
//! let set = ReplicaSetInfo::new(
//!     keys.iter().map(|k| AccountId::from_verifying_key(&k.verifying_key())).collect(),
//! )?;
//! let header = LedgerHeader::genesis(&set);
//! // Three of the four replicas sign: a quorum (2f + 1 with f = 1).
//! let mut cert = Certificate::new(header.clone());
//! for (i, k) in keys.iter().enumerate().take(3) {
//!     cert.add(ReplicaId(i as u16), header.sign(k));
//! }
//! let certified = cert.verify(&set)?;
//! assert_eq!(certified.header().height, 0);
//! assert_eq!(certified.signers(), [ReplicaId(0), ReplicaId(1), ReplicaId(2)]);
//!
//! // Two signatures are not enough.
//! cert.signatures.truncate(2);
//! assert!(cert.verify(&set).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::DecodeError;
use crate::ids::{AccountId, BlockHash, Digest, ReplicaId, Timestamp};
use crate::sig;

/// Domain separator of header signatures: a replica key's signature over a
/// header can never be taken for its signature over anything else (replica
/// protocol messages, transactions, capsule fragments).
pub const HEADER_DOMAIN: &[u8] = b"resilient-records/header/v1\0";

/// The most replicas a replica set may have.
pub const MAX_REPLICAS: usize = 1024;

/// The largest encoded certificate accepted (a header and up to
/// [`MAX_REPLICAS`] signatures).
pub const MAX_CERTIFICATE_BYTES: usize = 128 * 1024;

/// Why a certificate does not certify its header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The header names another replica set than the one the client trusts.
    #[error("the header is for replica set {found}, not the trusted set {expected}: this answer comes from another cluster or another ledger")]
    WrongReplicaSet {
        /// The trusted set's digest.
        expected: Digest,
        /// The header's.
        found: Digest,
    },
    /// A signature names a replica outside the set.
    #[error("a signature names {0}, which is not in the replica set")]
    UnknownReplica(ReplicaId),
    /// The same replica signed twice.
    #[error("{0} signed the certificate twice")]
    DuplicateSigner(ReplicaId),
    /// A signature does not verify.
    #[error("the signature of {0} on the header does not verify")]
    BadSignature(ReplicaId),
    /// Fewer distinct signers than a quorum.
    #[error("the header is signed by {signed} replicas, a quorum is {quorum} of {n}")]
    NoQuorum {
        /// Distinct valid signers.
        signed: usize,
        /// Signatures needed.
        quorum: usize,
        /// Replicas n.
        n: usize,
    },
    /// A replica set that cannot certify anything.
    #[error("invalid replica set: {0}")]
    BadReplicaSet(String),
}

/// The replica set a ledger is certified by: each replica's ed25519 key, in
/// replica order (replica `i` holds `keys[i]`; the same key is the replica's
/// account, which confirms its erasures on the ledger).
///
/// A client gets it from a trusted configuration (a cluster's
/// `cluster.json`, or a dev node's key pinned on first use), never from an
/// answer. `n` and `f` follow from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "UncheckedSet")]
pub struct ReplicaSetInfo {
    /// The replicas' keys, in replica order.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1024))]
    keys: Vec<AccountId>,
}

/// A replica set as it is read, before [`ReplicaSetInfo::new`] checks it.
#[derive(Deserialize)]
struct UncheckedSet {
    keys: Vec<AccountId>,
}

impl TryFrom<UncheckedSet> for ReplicaSetInfo {
    type Error = CertError;
    fn try_from(u: UncheckedSet) -> Result<Self, CertError> {
        ReplicaSetInfo::new(u.keys)
    }
}

impl ReplicaSetInfo {
    /// A replica set from its keys. Refuses an empty set, more than
    /// [`MAX_REPLICAS`], a key used twice, and a key [`crate::sig`] would
    /// never accept a signature from (of small order, or not canonically
    /// encoded).
    pub fn new(keys: Vec<AccountId>) -> Result<Self, CertError> {
        if keys.is_empty() || keys.len() > MAX_REPLICAS {
            return Err(CertError::BadReplicaSet(format!(
                "{} replicas; a replica set has 1 to {MAX_REPLICAS}",
                keys.len()
            )));
        }
        for (i, k) in keys.iter().enumerate() {
            if let Some(j) = keys[..i].iter().position(|o| o == k) {
                return Err(CertError::BadReplicaSet(format!(
                    "replicas {j} and {i} have the same key"
                )));
            }
            if sig::PublicKey::from_bytes(&k.0).is_none() {
                return Err(CertError::BadReplicaSet(format!(
                    "the key of replica {i} is of small order or not canonically encoded"
                )));
            }
        }
        Ok(Self { keys })
    }

    /// The keys, in replica order.
    pub fn keys(&self) -> &[AccountId] {
        &self.keys
    }

    /// The key of replica `id`.
    pub fn key(&self, id: ReplicaId) -> Option<&AccountId> {
        self.keys.get(usize::from(id.0))
    }

    /// Replicas n.
    pub fn n(&self) -> usize {
        self.keys.len()
    }

    /// Byzantine replicas tolerated, f = (n - 1) / 3.
    pub fn f(&self) -> usize {
        (self.n() - 1) / 3
    }

    /// Signatures a certificate needs: any two quorums share f + 1 replicas
    /// (2f + 1 when n = 3f + 1; 1 for a single replica).
    pub fn quorum(&self) -> usize {
        (self.n() + self.f()) / 2 + 1
    }

    /// The digest headers name this set by: BLAKE3 (derive_key
    /// `"resilient-records 2026 replica set"`) of the keys' canonical
    /// encoding, preceded by its length as 8 little-endian bytes (as every
    /// [`Digest::of`]).
    pub fn digest(&self) -> Digest {
        Digest::of(
            "resilient-records 2026 replica set",
            &codec::encode(&self.keys),
        )
    }
}

/// What the replicas certify about the ledger after the block at `height`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerHeader {
    /// Digest of the replica set that certifies this ledger
    /// ([`ReplicaSetInfo::digest`]).
    pub replica_set: Digest,
    /// Height (0 for the genesis header, before any block).
    pub height: u64,
    /// Block time (unix milliseconds; 0 at genesis).
    pub time: Timestamp,
    /// Hash of the ordered block at this height
    /// ([`crate::BlockHeader::hash`]), which binds its transactions and the
    /// block before it. Zero at genesis.
    pub block: BlockHash,
    /// Hash of the previous header ([`LedgerHeader::hash`]). Zero at genesis.
    pub parent: Digest,
    /// Root of the sparse Merkle tree over the whole state after this block.
    pub state_root: Digest,
    /// Merkle root of this block's receipts, in block order.
    pub receipts_root: Digest,
    /// Number of receipts (the block's transactions).
    pub receipts: u32,
}

impl LedgerHeader {
    /// The header before any block: height 0, an empty state.
    pub fn genesis(set: &ReplicaSetInfo) -> Self {
        Self::genesis_of(set.digest())
    }

    /// The genesis header of the replica set with digest `replica_set`.
    pub fn genesis_of(replica_set: Digest) -> Self {
        Self {
            replica_set,
            height: 0,
            time: Timestamp(0),
            block: BlockHash::default(),
            parent: Digest::default(),
            state_root: crate::smt::EMPTY,
            receipts_root: crate::smt::EMPTY,
            receipts: 0,
        }
    }

    /// The header's hash: BLAKE3 (derive_key
    /// `"resilient-records 2026 ledger header"`) of its canonical encoding,
    /// preceded by its length as 8 little-endian bytes (as every
    /// [`Digest::of`]).
    pub fn hash(&self) -> Digest {
        Digest::of("resilient-records 2026 ledger header", &codec::encode(self))
    }

    /// What a replica signs: [`HEADER_DOMAIN`] followed by the header hash.
    pub fn signing_bytes(hash: &Digest) -> Vec<u8> {
        let mut m = HEADER_DOMAIN.to_vec();
        m.extend_from_slice(&hash.0);
        m
    }

    /// Signs this header with a replica key.
    pub fn sign(&self, key: &ed25519_dalek::SigningKey) -> [u8; 64] {
        use ed25519_dalek::Signer;
        key.sign(&Self::signing_bytes(&self.hash())).to_bytes()
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_canonical("ledger header", bytes, 1024)
    }
}

/// One replica's signature over a header hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeaderSignature {
    /// The replica that signed.
    pub replica: ReplicaId,
    /// ed25519 over [`LedgerHeader::signing_bytes`] (64 bytes).
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-f]{128}$"))]
    pub signature: Vec<u8>,
}

/// A header and the replicas' signatures over it. Unchecked: only
/// [`Certificate::verify`] says whether they certify it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Certificate {
    /// The header.
    pub header: LedgerHeader,
    /// Signatures, one per replica, in replica order.
    pub signatures: Vec<HeaderSignature>,
}

impl Certificate {
    /// A certificate of `header` with no signature yet.
    pub fn new(header: LedgerHeader) -> Self {
        Self {
            header,
            signatures: Vec::new(),
        }
    }

    /// Adds `replica`'s signature, keeping replica order; a second signature
    /// of the same replica replaces the first.
    pub fn add(&mut self, replica: ReplicaId, signature: [u8; 64]) {
        let sig = HeaderSignature {
            replica,
            signature: signature.to_vec(),
        };
        match self
            .signatures
            .binary_search_by_key(&replica, |s| s.replica)
        {
            Ok(i) => self.signatures[i] = sig,
            Err(i) => self.signatures.insert(i, sig),
        }
    }

    /// Checks that `set` is the header's replica set and that a quorum of
    /// distinct replicas of it signed the header, all signatures valid
    /// (ZIP-215 rules, [`crate::sig`]; checked as one batch).
    pub fn verify(&self, set: &ReplicaSetInfo) -> Result<CertifiedHeader, CertError> {
        if self.header.replica_set != set.digest() {
            return Err(CertError::WrongReplicaSet {
                expected: set.digest(),
                found: self.header.replica_set,
            });
        }
        let message = LedgerHeader::signing_bytes(&self.header.hash());
        let mut signers: Vec<ReplicaId> = Vec::with_capacity(self.signatures.len());
        let mut batch = sig::BatchVerifier::with_capacity(self.signatures.len());
        for s in &self.signatures {
            let key = set
                .key(s.replica)
                .ok_or(CertError::UnknownReplica(s.replica))?;
            if signers.contains(&s.replica) {
                return Err(CertError::DuplicateSigner(s.replica));
            }
            signers.push(s.replica);
            batch.queue(&key.0, &s.signature, &message);
        }
        if signers.len() < set.quorum() {
            return Err(CertError::NoQuorum {
                signed: signers.len(),
                quorum: set.quorum(),
                n: set.n(),
            });
        }
        if let Err(i) = batch.verify_all() {
            return Err(CertError::BadSignature(signers[i]));
        }
        signers.sort();
        Ok(CertifiedHeader {
            header: self.header.clone(),
            signers,
        })
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_canonical("certificate", bytes, MAX_CERTIFICATE_BYTES)
    }
}

/// A header a quorum of the trusted replica set signed: made only by
/// [`Certificate::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedHeader {
    header: LedgerHeader,
    signers: Vec<ReplicaId>,
}

impl CertifiedHeader {
    /// The header.
    pub fn header(&self) -> &LedgerHeader {
        &self.header
    }

    /// The replicas whose signatures verified, in order.
    pub fn signers(&self) -> &[ReplicaId] {
        &self.signers
    }

    /// Height.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Block time.
    pub fn time(&self) -> Timestamp {
        self.header.time
    }
}

/// What checks certificates for a client: the trusted [`ReplicaSetInfo`]
/// itself (every certificate checked in full), or a [`CertCache`] over it
/// (a header already certified is not checked again).
pub trait CertCheck {
    /// The trusted replica set.
    fn replica_set(&self) -> &ReplicaSetInfo;

    /// [`Certificate::verify`] against [`CertCheck::replica_set`], or the
    /// same header certified before.
    fn check(&self, certificate: &Certificate) -> Result<CertifiedHeader, CertError>;
}

impl CertCheck for ReplicaSetInfo {
    fn replica_set(&self) -> &ReplicaSetInfo {
        self
    }

    fn check(&self, certificate: &Certificate) -> Result<CertifiedHeader, CertError> {
        certificate.verify(self)
    }
}

/// How many certified headers a [`CertCache`] keeps.
pub const CERT_CACHE_HEADERS: usize = 64;

/// The headers of one replica set a client has seen certified lately.
///
/// The replicas of a cluster answer one call with certificates of the same
/// header (each with its own quorum of signatures), and a retrieval's
/// receipt and state are often of one header too: checking each in full
/// costs a quorum of signature checks per answer. A header that a quorum of
/// the set signed stays certified, so the cache checks each header's
/// signatures once and compares later ones with it, byte for byte. It never
/// holds a header that did not verify.
#[derive(Debug)]
pub struct CertCache {
    set: ReplicaSetInfo,
    /// Newest last.
    recent: std::sync::Mutex<std::collections::VecDeque<CertifiedHeader>>,
}

impl CertCache {
    /// An empty cache for `set`.
    pub fn new(set: ReplicaSetInfo) -> Self {
        Self {
            set,
            recent: std::sync::Mutex::default(),
        }
    }
}

impl Clone for CertCache {
    fn clone(&self) -> Self {
        Self {
            set: self.set.clone(),
            recent: std::sync::Mutex::new(self.recent.lock().expect("cert cache").clone()),
        }
    }
}

impl CertCheck for CertCache {
    fn replica_set(&self) -> &ReplicaSetInfo {
        &self.set
    }

    fn check(&self, certificate: &Certificate) -> Result<CertifiedHeader, CertError> {
        {
            let recent = self.recent.lock().expect("cert cache");
            if let Some(known) = recent.iter().rev().find(|h| h.header == certificate.header) {
                return Ok(known.clone());
            }
        }
        let certified = certificate.verify(&self.set)?;
        let mut recent = self.recent.lock().expect("cert cache");
        if recent.len() == CERT_CACHE_HEADERS {
            recent.pop_front();
        }
        recent.push_back(certified.clone());
        Ok(certified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn keys(n: u8) -> Vec<SigningKey> {
        (1..=n).map(|i| SigningKey::from_bytes(&[i; 32])).collect()
    }

    fn set_of(keys: &[SigningKey]) -> ReplicaSetInfo {
        ReplicaSetInfo::new(
            keys.iter()
                .map(|k| AccountId::from_verifying_key(&k.verifying_key()))
                .collect(),
        )
        .unwrap()
    }

    fn header(set: &ReplicaSetInfo) -> LedgerHeader {
        LedgerHeader {
            height: 7,
            time: Timestamp(1_700_000_000_000),
            block: BlockHash([3; 32]),
            parent: Digest([4; 32]),
            state_root: Digest([5; 32]),
            receipts_root: Digest([6; 32]),
            receipts: 2,
            ..LedgerHeader::genesis(set)
        }
    }

    fn signed(keys: &[SigningKey], header: &LedgerHeader, who: &[usize]) -> Certificate {
        let mut c = Certificate::new(header.clone());
        for &i in who {
            c.add(ReplicaId(i as u16), header.sign(&keys[i]));
        }
        c
    }

    #[test]
    fn quorums_follow_n() {
        for (n, f, q) in [(1, 0, 1), (4, 1, 3), (5, 1, 4), (7, 2, 5), (10, 3, 7)] {
            let set = set_of(&keys(n));
            assert_eq!((set.f(), set.quorum()), (f, q), "n = {n}");
        }
    }

    #[test]
    fn a_quorum_certifies_and_anything_less_or_forged_does_not() {
        let keys = keys(4);
        let set = set_of(&keys);
        let h = header(&set);
        let cert = signed(&keys, &h, &[3, 0, 2]);
        let ok = cert.verify(&set).unwrap();
        assert_eq!(ok.signers(), [ReplicaId(0), ReplicaId(2), ReplicaId(3)]);
        assert_eq!(ok.header(), &h);
        // Round trip.
        assert_eq!(Certificate::from_bytes(&cert.to_bytes()).unwrap(), cert);

        // Two signers.
        let two = signed(&keys, &h, &[0, 1]);
        assert!(matches!(
            two.verify(&set),
            Err(CertError::NoQuorum {
                signed: 2,
                quorum: 3,
                n: 4
            })
        ));
        // One replica's signature three times.
        let mut dup = signed(&keys, &h, &[0]);
        dup.signatures.push(dup.signatures[0].clone());
        dup.signatures.push(dup.signatures[0].clone());
        assert!(matches!(
            dup.verify(&set),
            Err(CertError::DuplicateSigner(ReplicaId(0)))
        ));
        // Replica 1's slot signed with another key.
        let mut forged = signed(&keys, &h, &[0, 2]);
        forged.add(ReplicaId(1), h.sign(&SigningKey::from_bytes(&[9; 32])));
        assert!(matches!(
            forged.verify(&set),
            Err(CertError::BadSignature(ReplicaId(1)))
        ));
        // A replica outside the set.
        let mut outsider = signed(&keys, &h, &[0, 1, 2]);
        outsider.add(ReplicaId(4), h.sign(&keys[0]));
        assert!(matches!(
            outsider.verify(&set),
            Err(CertError::UnknownReplica(ReplicaId(4)))
        ));
    }

    #[test]
    fn every_field_of_the_header_is_signed() {
        let keys = keys(4);
        let set = set_of(&keys);
        let h = header(&set);
        let cert = signed(&keys, &h, &[0, 1, 2]);
        let tampered: [fn(&mut LedgerHeader); 7] = [
            |h| h.height += 1,
            |h| h.time = Timestamp(h.time.0 + 1),
            |h| h.block.0[0] ^= 1,
            |h| h.parent.0[0] ^= 1,
            |h| h.state_root.0[31] ^= 1,
            |h| h.receipts_root.0[0] ^= 1,
            |h| h.receipts += 1,
        ];
        for t in tampered {
            let mut c = cert.clone();
            t(&mut c.header);
            assert!(matches!(c.verify(&set), Err(CertError::BadSignature(_))));
        }
        // The same signatures under another set's digest are refused up front.
        let mut other = cert.clone();
        other.header.replica_set = Digest([1; 32]);
        assert!(matches!(
            other.verify(&set),
            Err(CertError::WrongReplicaSet { .. })
        ));
    }

    #[test]
    fn a_certificate_of_one_set_does_not_verify_for_another() {
        let keys = keys(4);
        let set = set_of(&keys);
        let smaller = set_of(&keys[..1]);
        let cert = signed(&keys, &header(&set), &[0, 1, 2, 3]);
        assert!(cert.verify(&smaller).is_err());
        // A single dev node certifies with its one signature.
        let dev = signed(&keys, &header(&smaller), &[0]);
        assert!(dev.verify(&smaller).is_ok());
    }

    #[test]
    fn bad_replica_sets_are_refused() {
        let k = keys(2);
        let a = AccountId::from_verifying_key(&k[0].verifying_key());
        assert!(ReplicaSetInfo::new(vec![]).is_err());
        assert!(ReplicaSetInfo::new(vec![a, a]).is_err());
        // The identity point: small order.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(ReplicaSetInfo::new(vec![AccountId(id)]).is_err());
    }

    #[test]
    fn a_cache_checks_each_header_once_and_never_keeps_a_bad_one() {
        let keys = keys(4);
        let set = set_of(&keys);
        let cache = CertCache::new(set.clone());
        let h = header(&set);
        let signed_by = |who: &[usize], h: &LedgerHeader| {
            let mut c = Certificate::new(h.clone());
            for &i in who {
                c.add(ReplicaId(i as u16), h.sign(&keys[i]));
            }
            c
        };
        // A forged signature is refused, and not remembered.
        let mut forged = signed_by(&[0, 1, 2], &h);
        forged.signatures[1].signature = vec![7; 64];
        assert!(matches!(
            cache.check(&forged),
            Err(CertError::BadSignature(ReplicaId(1)))
        ));
        assert!(cache.recent.lock().unwrap().is_empty());
        // Too few signatures: refused, whatever the cache holds later.
        let first = cache.check(&signed_by(&[0, 1, 2], &h)).unwrap();
        assert_eq!(first.signers(), &[ReplicaId(0), ReplicaId(1), ReplicaId(2)]);
        // The same header under other signatures: the one check stands.
        assert_eq!(cache.check(&signed_by(&[1, 2, 3], &h)).unwrap(), first);
        assert_eq!(cache.check(&forged).unwrap(), first);
        // Another header, one byte apart, is checked in full.
        let other = LedgerHeader {
            receipts: h.receipts + 1,
            ..h.clone()
        };
        assert!(matches!(
            cache.check(&signed_by(&[0], &other)),
            Err(CertError::NoQuorum { .. })
        ));
        // A header of another set is refused, however it is signed.
        let theirs = set_of(&keys[..3]);
        let foreign = LedgerHeader {
            replica_set: theirs.digest(),
            ..h.clone()
        };
        assert!(matches!(
            cache.check(&signed_by(&[0, 1, 2], &foreign)),
            Err(CertError::WrongReplicaSet { .. })
        ));
        // It keeps the newest CERT_CACHE_HEADERS.
        for height in 0..CERT_CACHE_HEADERS as u64 + 5 {
            let h = LedgerHeader {
                height,
                ..h.clone()
            };
            cache.check(&signed_by(&[0, 1, 2], &h)).unwrap();
        }
        assert_eq!(cache.recent.lock().unwrap().len(), CERT_CACHE_HEADERS);
    }
}
