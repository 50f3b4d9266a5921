//! The receipts of one block: an RFC 6962 Merkle tree, so a client can check
//! one receipt against the block's certified receipts root without the others.
//!
//! # Specification
//!
//! This is the Merkle Tree Hash of RFC 6962 (section 2.1), with its two hashes
//! replaced by BLAKE3 in `derive_key` mode (32-byte outputs), and a defined
//! root for an empty list:
//!
//! | name | context string | input |
//! |---|---|---|
//! | `leaf_hash(bytes)` | `resilient-records 2026 receipt leaf` | the leaf's bytes (a receipt's canonical encoding) |
//! | `node_hash(l, r)` | `resilient-records 2026 receipt node` | `l ++ r` (32 + 32 bytes) |
//!
//! The root `MTH` of a list of `n` leaf hashes `D[0..n]` is:
//!
//! - `EMPTY_ROOT` (32 zero bytes) if `n = 0`;
//! - `D[0]` if `n = 1`;
//! - `node_hash(MTH(D[0..k]), MTH(D[k..n]))` if `n > 1`, where `k` is the
//!   largest power of two smaller than `n`.
//!
//! ## Proofs
//!
//! The inclusion proof of leaf `m` in a list of `n` is `(index = m, size = n,
//! path)`, where `path` is RFC 6962's audit path (section 2.1.1), listed from
//! the leaf up:
//!
//! - `PATH(m, D[0..1])` is empty;
//! - for `n > 1` and `k` as above: if `m < k`,
//!   `PATH(m, D[0..n]) = PATH(m, D[0..k]) ++ [MTH(D[k..n])]`, else
//!   `PATH(m, D[0..n]) = PATH(m - k, D[k..n]) ++ [MTH(D[0..k])]`.
//!
//! To verify the proof against a root and the leaf's hash `h`:
//!
//! 1. Require `index < size`.
//! 2. Walk down from the top, recording one step per level: with `(m, n) =
//!    (index, size)`, while `n > 1`, let `k` be the largest power of two
//!    smaller than `n`; if `m < k` the step is *left* and `n = k`, else it is
//!    *right* and `(m, n) = (m - k, n - k)`. Require exactly one path hash per
//!    step.
//! 3. Hash up from the leaf, taking the steps in reverse order (the last step
//!    recorded goes with `path[0]`): for a *left* step,
//!    `h = node_hash(h, path[j])`; for a *right* one, `h = node_hash(path[j], h)`.
//! 4. Accept if and only if `h = root`.
//!
//! This accepts exactly the proofs RFC 9162's algorithm (section 2.1.3.2)
//! accepts. The size comes with the proof; a verifier that knows the block's
//! receipt count from its certified header should check that it equals
//! `size`.
//!
//! ## Worked example
//!
//! Three receipts whose encodings are `r0`, `r1`, `r2` (here the ASCII bytes,
//! to keep it short): `k = 2`, so
//! `root = node_hash(node_hash(L0, L1), L2)` with `Li = leaf_hash(ri)`. The
//! proof of receipt 0 is `path = [L1, L2]` (steps: left, left); the proof of
//! receipt 2 is `path = [node_hash(L0, L1)]` (one step: right).
//!
//! ```
//! use rr_core::merkle::{leaf_hash, node_hash, prove, root, MerkleProof};
//! use rr_core::Digest;
//!
//! let hex = |s: &str| Digest::from_hex(s).unwrap();
//! let leaves = [leaf_hash(b"r0"), leaf_hash(b"r1"), leaf_hash(b"r2")];
//! assert_eq!(leaves[0], hex("0a1fbcd0534045a0f7a4a1337834e51d8a256cc5c10c9de03604f55e94a4ca1c"));
//! assert_eq!(leaves[1], hex("b6b757675e010e0c0b28b6e8d262048ed2411089d67437785d97b0d11cfcbe1b"));
//! assert_eq!(leaves[2], hex("869d32ecec83032eaf77776d0ee47f3ca51c46628f0da36289fe2720e676e3b1"));
//! let l01 = node_hash(&leaves[0], &leaves[1]);
//! assert_eq!(l01, hex("ae7e93dc6224861843337de19fd35130f605b1136a57f90f62dd16967c49ce2c"));
//! let r = root(&leaves);
//! assert_eq!(r, node_hash(&l01, &leaves[2]));
//! assert_eq!(r, hex("69500d44ad113bef0bab86251b9ff283169531272bfc578ac673c5f6aeaa0269"));
//!
//! let proof = prove(&leaves, 0);
//! assert_eq!(proof, MerkleProof { index: 0, size: 3, path: vec![leaves[1], leaves[2]] });
//! proof.verify(&r, &leaves[0])?;
//! assert!(proof.verify(&r, &leaves[1]).is_err());
//!
//! let proof = prove(&leaves, 2);
//! assert_eq!(proof.path, vec![l01]);
//! proof.verify(&r, &leaves[2])?;
//! # Ok::<(), rr_core::merkle::ProofError>(())
//! ```

use std::sync::LazyLock;

use blake3::hazmat::{hash_derive_key_context, ContextKey, HasherExt};
use serde::{Deserialize, Serialize};

use crate::ids::Digest;

/// Context string of [`leaf_hash`].
pub const LEAF_CONTEXT: &str = "resilient-records 2026 receipt leaf";
/// Context string of [`node_hash`].
pub const NODE_CONTEXT: &str = "resilient-records 2026 receipt node";

/// The root of an empty list: 32 zero bytes.
pub const EMPTY_ROOT: Digest = Digest([0; 32]);

// Hashed once: `derive_key` would hash the context string on every call.
static LEAF_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(LEAF_CONTEXT));
static NODE_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(NODE_CONTEXT));

/// The hash of a leaf (a receipt's canonical encoding).
pub fn leaf_hash(bytes: &[u8]) -> Digest {
    let mut hasher = blake3::Hasher::new_from_context_key(&LEAF_KEY);
    hasher.update(bytes);
    Digest(*hasher.finalize().as_bytes())
}

/// The hash of an inner node, from its children's hashes.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut hasher = blake3::Hasher::new_from_context_key(&NODE_KEY);
    hasher.update(&left.0);
    hasher.update(&right.0);
    Digest(*hasher.finalize().as_bytes())
}

/// The largest power of two smaller than `n`, for `n > 1`: how many leaves
/// the left subtree of a tree of `n` leaves holds.
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of the tree whose leaves have the hashes `leaf_hashes`, in order.
pub fn root(leaf_hashes: &[Digest]) -> Digest {
    match leaf_hashes {
        [] => EMPTY_ROOT,
        [one] => *one,
        _ => {
            let k = split(leaf_hashes.len() as u64) as usize;
            node_hash(&root(&leaf_hashes[..k]), &root(&leaf_hashes[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` among `leaf_hashes`.
///
/// # Panics
///
/// If `index >= leaf_hashes.len()`.
pub fn prove(leaf_hashes: &[Digest], index: usize) -> MerkleProof {
    assert!(
        index < leaf_hashes.len(),
        "no leaf {index} to prove in a tree of {} leaves",
        leaf_hashes.len()
    );
    fn path(leaves: &[Digest], m: usize, out: &mut Vec<Digest>) {
        if leaves.len() <= 1 {
            return;
        }
        let k = split(leaves.len() as u64) as usize;
        if m < k {
            path(&leaves[..k], m, out);
            out.push(root(&leaves[k..]));
        } else {
            path(&leaves[k..], m - k, out);
            out.push(root(&leaves[..k]));
        }
    }
    let mut out = Vec::new();
    path(leaf_hashes, index, &mut out);
    MerkleProof {
        index: index as u64,
        size: leaf_hashes.len() as u64,
        path: out,
    }
}

/// A proof that a leaf is at a given index of a tree with a given root. See
/// the [module docs](self) for the definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MerkleProof {
    /// The leaf's index, from 0.
    pub index: u64,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The audit path, from the leaf up: the hashes of the subtrees next to
    /// the leaf's path.
    pub path: Vec<Digest>,
}

/// Why a receipt proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The index is not that of a leaf of a tree of this size.
    #[error("the proof is for leaf {index} of a tree of {size} leaves, which has no such leaf")]
    IndexOutOfRange {
        /// The proof's index.
        index: u64,
        /// The proof's size.
        size: u64,
    },
    /// The path is longer or shorter than the index and size imply.
    #[error("the proof's path has {actual} hashes, but leaf {index} of a tree of {size} leaves needs {expected}")]
    WrongPathLength {
        /// The proof's index.
        index: u64,
        /// The proof's size.
        size: u64,
        /// The path length the index and size imply.
        expected: usize,
        /// The path length in the proof.
        actual: usize,
    },
    /// The proof is well formed but hashes up to another root.
    #[error(
        "the proof does not lead to the receipts root: it is for another block or was altered"
    )]
    RootMismatch,
}

impl MerkleProof {
    /// Verifies that `leaf_hash` is leaf `self.index` of a tree of
    /// `self.size` leaves whose root is `root`.
    pub fn verify(&self, root: &Digest, leaf_hash: &Digest) -> Result<(), ProofError> {
        let (index, size) = (self.index, self.size);
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        // One bit per level from the top, set where the path goes right; a
        // tree of at most 2^64 leaves has at most 64 levels.
        let mut rights: u64 = 0;
        let mut depth = 0;
        let (mut m, mut n) = (index, size);
        while n > 1 {
            let k = split(n);
            rights <<= 1;
            if m < k {
                n = k;
            } else {
                rights |= 1;
                m -= k;
                n -= k;
            }
            depth += 1;
        }
        if self.path.len() != depth {
            return Err(ProofError::WrongPathLength {
                index,
                size,
                expected: depth,
                actual: self.path.len(),
            });
        }
        let mut h = *leaf_hash;
        for sibling in &self.path {
            h = if rights & 1 == 1 {
                node_hash(sibling, &h)
            } else {
                node_hash(&h, sibling)
            };
            rights >>= 1;
        }
        if h == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }

    /// The size of this proof's canonical (postcard) encoding, in bytes.
    pub fn encoded_len(&self) -> usize {
        crate::codec::encode(self).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's MTH, transcribed: the largest power of two below `n` found
    /// by counting up.
    fn reference_root(d: &[Digest]) -> Digest {
        let n = d.len();
        if n == 0 {
            return EMPTY_ROOT;
        }
        if n == 1 {
            return d[0];
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        node_hash(&reference_root(&d[..k]), &reference_root(&d[k..]))
    }

    /// RFC 6962's PATH, transcribed.
    fn reference_path(m: usize, d: &[Digest]) -> Vec<Digest> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        if m < k {
            let mut p = reference_path(m, &d[..k]);
            p.push(reference_root(&d[k..]));
            p
        } else {
            let mut p = reference_path(m - k, &d[k..]);
            p.push(reference_root(&d[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n)
            .map(|i| leaf_hash(format!("receipt {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn hashes_are_blake3_derive_key() {
        assert_eq!(
            leaf_hash(b"abc").0,
            blake3::derive_key(LEAF_CONTEXT, b"abc")
        );
        let (l, r) = (Digest([1; 32]), Digest([2; 32]));
        assert_eq!(
            node_hash(&l, &r).0,
            blake3::derive_key(NODE_CONTEXT, &[l.0, r.0].concat())
        );
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        let expected = [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ];
        for (n, k) in expected {
            assert_eq!(split(n), k, "n = {n}");
        }
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn small_roots_by_hand() {
        let d = leaves(5);
        assert_eq!(root(&[]), EMPTY_ROOT);
        assert_eq!(root(&d[..1]), d[0]);
        assert_eq!(root(&d[..2]), node_hash(&d[0], &d[1]));
        assert_eq!(root(&d[..3]), node_hash(&node_hash(&d[0], &d[1]), &d[2]));
        let four = node_hash(&node_hash(&d[0], &d[1]), &node_hash(&d[2], &d[3]));
        assert_eq!(root(&d[..4]), four);
        assert_eq!(root(&d), node_hash(&four, &d[4]));
    }

    #[test]
    fn every_index_of_sizes_1_to_33() {
        for n in 1..=33 {
            let d = leaves(n);
            let r = root(&d);
            assert_eq!(r, reference_root(&d), "n = {n}");
            for m in 0..n {
                let proof = prove(&d, m);
                assert_eq!(proof.path, reference_path(m, &d), "n = {n}, m = {m}");
                assert_eq!(proof.verify(&r, &d[m]), Ok(()), "n = {n}, m = {m}");
                // Another leaf, or this leaf at another index, does not verify.
                for other in 0..n {
                    if other != m {
                        assert!(proof.verify(&r, &d[other]).is_err());
                        let moved = MerkleProof {
                            index: other as u64,
                            ..proof.clone()
                        };
                        assert!(moved.verify(&r, &d[m]).is_err(), "n = {n}, {m} -> {other}");
                    }
                }
            }
        }
    }

    #[test]
    fn tampering_fails() {
        for n in [1, 2, 3, 5, 8, 13, 33] {
            let d = leaves(n);
            let r = root(&d);
            for m in 0..n {
                let proof = prove(&d, m);
                for i in 0..proof.path.len() {
                    for bit in 0..256 {
                        let mut p = proof.clone();
                        p.path[i].0[bit / 8] ^= 1 << (bit % 8);
                        assert_eq!(p.verify(&r, &d[m]), Err(ProofError::RootMismatch));
                    }
                }
                for bit in 0..256 {
                    let mut leaf = d[m];
                    leaf.0[bit / 8] ^= 1 << (bit % 8);
                    assert!(proof.verify(&r, &leaf).is_err());
                    let mut bad_root = r;
                    bad_root.0[bit / 8] ^= 1 << (bit % 8);
                    assert!(proof.verify(&bad_root, &d[m]).is_err());
                }
                let mut longer = proof.clone();
                longer.path.push(r);
                assert!(matches!(
                    longer.verify(&r, &d[m]),
                    Err(ProofError::WrongPathLength { .. })
                ));
                if !proof.path.is_empty() {
                    let mut shorter = proof.clone();
                    shorter.path.pop();
                    assert!(matches!(
                        shorter.verify(&r, &d[m]),
                        Err(ProofError::WrongPathLength { .. })
                    ));
                }
            }
            let past_end = MerkleProof {
                index: n as u64,
                size: n as u64,
                path: vec![],
            };
            assert_eq!(
                past_end.verify(&r, &d[0]),
                Err(ProofError::IndexOutOfRange {
                    index: n as u64,
                    size: n as u64
                })
            );
        }
        let empty = MerkleProof {
            index: 0,
            size: 0,
            path: vec![],
        };
        assert!(empty.verify(&EMPTY_ROOT, &EMPTY_ROOT).is_err());
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let proof = MerkleProof {
            index: u64::MAX - 1,
            size: u64::MAX,
            path: vec![],
        };
        assert!(matches!(
            proof.verify(&EMPTY_ROOT, &EMPTY_ROOT),
            Err(ProofError::WrongPathLength { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "no leaf 3 to prove in a tree of 3 leaves")]
    fn proving_past_the_end_panics() {
        prove(&leaves(3), 3);
    }

    #[test]
    fn encodings() {
        let proof = prove(&leaves(3), 2);
        assert_eq!(proof.encoded_len(), 1 + 1 + 1 + 32);
        let json = serde_json::to_string(&proof).unwrap();
        assert!(
            json.starts_with(r#"{"index":2,"size":3,"path":[""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<MerkleProof>(&json).unwrap(), proof);
    }
}
