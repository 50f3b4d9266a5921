//! The verdicts on replica messages already verified, by the hash of their
//! bytes, so a message that arrives again is not verified again.
//!
//! Messages do arrive again, and often: every replica re-sends its votes, and
//! the primary its pre-prepares, for every sequence number not yet decided
//! (the retransmission that makes the protocol live on a lossy network). Under
//! load a batch can take longer than the retransmission interval to commit,
//! and each copy of a pre-prepare would cost every backup the verification of
//! every client signature in it once more. Verification is a pure function of
//! the bytes and the replica set ([`SignedMessage::verify`] looks at no
//! replica state), so the verdict on identical bytes is the same: the first
//! one is kept and handed out again. Refusals are kept too, so a faulty
//! replica repeating the same bad message costs one verification.
//!
//! [`SignedMessage::verify`]: super::message::SignedMessage::verify

use std::collections::{HashMap, VecDeque};

use super::error::MessageError;
use super::message::VerifiedMessage;

/// The hash of a message's bytes.
pub(crate) type Key = [u8; 32];

/// The hash [`Verdicts`] keys a message's bytes by.
pub(crate) fn key(bytes: &[u8]) -> Key {
    *blake3::hash(bytes).as_bytes()
}

/// A bounded set of verdicts, the oldest forgotten first.
pub(crate) struct Verdicts {
    map: HashMap<Key, (Result<VerifiedMessage, MessageError>, usize)>,
    order: VecDeque<Key>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Verdicts {
    /// At most `max_entries` verdicts on messages of at most `max_bytes` in all.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// The verdict on the message whose bytes hash to `key`, if kept.
    pub(crate) fn get(&self, key: &Key) -> Option<Result<VerifiedMessage, MessageError>> {
        self.map.get(key).map(|(v, _)| v.clone())
    }

    /// Keeps the verdict on a message of `size` bytes hashing to `key`.
    pub(crate) fn insert(
        &mut self,
        key: Key,
        size: usize,
        verdict: Result<VerifiedMessage, MessageError>,
    ) {
        if size > self.max_bytes || self.map.contains_key(&key) {
            return;
        }
        while !self.order.is_empty()
            && (self.order.len() >= self.max_entries || self.bytes + size > self.max_bytes)
        {
            if let Some(old) = self.order.pop_front() {
                if let Some((_, s)) = self.map.remove(&old) {
                    self.bytes -= s;
                }
            }
        }
        self.map.insert(key, (verdict, size));
        self.order.push_back(key);
        self.bytes += size;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbft::message::{Payload, SignedMessage};
    use crate::pbft::{ReplicaKey, ReplicaSet};
    use ed25519_dalek::SigningKey;
    use rr_core::ReplicaId;

    #[test]
    fn keeps_verdicts_within_bounds() {
        let k = ReplicaKey::new(ReplicaId(0), SigningKey::from_bytes(&[1; 32]));
        let set = ReplicaSet::new(vec![k.verifying_key()]).unwrap();
        let msgs: Vec<Vec<u8>> = (0..10)
            .map(|i| SignedMessage::sign(&k, Payload::Fetch { from: i }).to_bytes())
            .collect();
        let mut v = Verdicts::new(4, 1 << 20);
        for m in &msgs {
            let verdict = SignedMessage::from_bytes(m).unwrap().verify(&set);
            assert!(verdict.is_ok());
            v.insert(key(m), m.len(), verdict);
        }
        assert_eq!(v.len(), 4);
        assert!(v.get(&key(&msgs[0])).is_none());
        let kept = v.get(&key(&msgs[9])).unwrap().unwrap();
        assert_eq!(kept.signed().to_bytes(), msgs[9]);
        // A refusal is kept too.
        let mut bad = msgs[0].clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let verdict = SignedMessage::from_bytes(&bad).unwrap().verify(&set);
        v.insert(key(&bad), bad.len(), verdict);
        assert!(v.get(&key(&bad)).unwrap().is_err());
        // The byte bound.
        let mut small = Verdicts::new(100, 2 * msgs[0].len());
        for m in &msgs[..3] {
            small.insert(
                key(m),
                m.len(),
                SignedMessage::from_bytes(m).unwrap().verify(&set),
            );
        }
        assert_eq!(small.len(), 2);
        assert!(small.get(&key(&msgs[2])).is_some());
    }
}
