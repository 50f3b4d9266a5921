//! Replica identities: each replica signs with its own ed25519 key, and every
//! replica knows the verifying keys of the whole replica set.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rr_core::sig::PublicKey;
use rr_core::ReplicaId;

use super::error::ConfigError;

/// A replica's signing key and its place in the replica set. Never printed.
#[derive(Clone)]
pub struct ReplicaKey {
    id: ReplicaId,
    key: SigningKey,
}

impl std::fmt::Debug for ReplicaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ReplicaKey {
    /// The key of replica `id`.
    pub fn new(id: ReplicaId, key: SigningKey) -> Self {
        Self { id, key }
    }

    /// Which replica this is.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The public half, as the other replicas configure it.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The signing key itself, for signatures the node makes with it
    /// (capsule fragments, erasure confirmations), each domain-separated.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `bytes` (already domain-separated by the caller).
    pub(crate) fn sign(&self, bytes: &[u8]) -> Signature {
        self.key.sign(bytes)
    }
}

/// The replica set: the verifying key of every replica, in replica order.
/// `n = 3f + 1` tolerates `f` Byzantine replicas; other sizes tolerate
/// `f = (n - 1) / 3`.
///
/// Replica signatures are verified under the same rules as client
/// transaction signatures ([`rr_core::sig`]: ZIP-215, so single and batch
/// verification agree on every replica).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSet {
    keys: Vec<VerifyingKey>,
    /// The same keys, checked and decompressed for verification.
    checked: Vec<PublicKey>,
}

impl ReplicaSet {
    /// A replica set from its keys (replica `i` has `keys[i]`). Refuses an
    /// empty set, more than 1024 replicas, a key used twice, and a key
    /// [`rr_core::sig`] refuses (of small order, which anyone could sign for,
    /// or not canonically encoded).
    pub fn new(keys: Vec<VerifyingKey>) -> Result<Self, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError("the replica set is empty".into()));
        }
        if keys.len() > 1024 {
            return Err(ConfigError(format!(
                "{} replicas is over the limit of 1024",
                keys.len()
            )));
        }
        let mut checked = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            if let Some(j) = keys[..i].iter().position(|o| o == k) {
                return Err(ConfigError(format!(
                    "replicas {j} and {i} have the same key; every replica needs its own"
                )));
            }
            checked.push(PublicKey::from_bytes(k.as_bytes()).ok_or_else(|| {
                ConfigError(format!(
                    "the key of replica {i} is of small order or not canonically encoded; \
                     such a key signs nothing"
                ))
            })?);
        }
        Ok(Self { keys, checked })
    }

    /// Number of replicas n.
    pub fn n(&self) -> usize {
        self.keys.len()
    }

    /// Byzantine replicas tolerated f.
    pub fn f(&self) -> usize {
        (self.n() - 1) / 3
    }

    /// Size of a quorum: any two quorums share at least f + 1 replicas
    /// (2f + 1 when n = 3f + 1).
    pub fn quorum(&self) -> usize {
        (self.n() + self.f()) / 2 + 1
    }

    /// The primary of `view`.
    pub fn primary(&self, view: u64) -> ReplicaId {
        ReplicaId((view % self.n() as u64) as u16)
    }

    /// The verifying key of `id`, if it is in the set.
    pub fn key(&self, id: ReplicaId) -> Option<&VerifyingKey> {
        self.keys.get(id.0 as usize)
    }

    /// The checked key of `id`, for verifying its signatures.
    pub(crate) fn checked_key(&self, id: ReplicaId) -> Option<&PublicKey> {
        self.checked.get(id.0 as usize)
    }

    /// Every replica id, in order.
    pub fn ids(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        (0..self.keys.len()).map(|i| ReplicaId(i as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: u8) -> ReplicaSet {
        ReplicaSet::new(
            (1..=n)
                .map(|i| SigningKey::from_bytes(&[i; 32]).verifying_key())
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn quorums_intersect_in_a_correct_replica() {
        for n in 1..=13u8 {
            let s = set(n);
            let (n, f, q) = (s.n(), s.f(), s.quorum());
            assert!(2 * q > n + f, "n={n} f={f} q={q}");
            assert!(q <= n - f, "n={n} f={f} q={q}: not live");
        }
        assert_eq!((set(4).f(), set(4).quorum()), (1, 3));
        assert_eq!((set(7).f(), set(7).quorum()), (2, 5));
        assert_eq!(set(4).primary(5), ReplicaId(1));
    }

    #[test]
    fn refuses_duplicate_keys() {
        let k = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let err = ReplicaSet::new(vec![k, k]).unwrap_err();
        assert!(err.to_string().contains("same key"), "{err}");
        assert!(ReplicaSet::new(vec![]).is_err());
    }

    #[test]
    fn refuses_small_order_keys() {
        let good = SigningKey::from_bytes(&[1; 32]).verifying_key();
        // The identity: a valid point, and a key anyone can sign for under
        // cofactored verification.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let err = ReplicaSet::new(vec![good, weak]).unwrap_err();
        assert!(err.to_string().contains("small order"), "{err}");
    }
}
