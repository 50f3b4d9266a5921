//! The state tree the ledger keeps in memory: the sparse Merkle tree of
//! [`rr_core::smt`] over the replicated state, as an immutable, structurally
//! shared (persistent) data structure.
//!
//! Every node sits behind an [`Arc`] and is never changed once built.
//! [`StateTree::apply`] builds the new version from the nodes on the paths it
//! touches and shares every other subtree with the old version, so keeping a
//! version costs only what changed, cloning one is O(1), and a reader holding
//! an old version (to serve a proof against an older certified root) never
//! blocks, and is never blocked by, the commit building the next one.
//!
//! ```
//! use rr_core::smt::{key_hash, value_hash};
//! use rr_storage::StateTree;
//!
//! let v1 = StateTree::new().apply(vec![
//!     (key_hash(1, b"alice"), Some(value_hash(b"record 1"))),
//!     (key_hash(1, b"bob"), Some(value_hash(b"record 2"))),
//! ]);
//! let v2 = v1.apply(vec![(key_hash(1, b"bob"), None)]);
//!
//! // A proof from the old version still verifies against the old root.
//! v1.prove(&key_hash(1, b"bob"))
//!     .verify_value(&v1.root(), 1, b"bob", Some(b"record 2"))?;
//! v2.prove(&key_hash(1, b"bob"))
//!     .verify_value(&v2.root(), 1, b"bob", None)?;
//! assert_eq!((v1.len(), v2.len()), (2, 1));
//! # Ok::<(), rr_core::smt::ProofError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use rr_core::smt::{key_bit, leaf_hash, node_hash, SmtLeaf, SmtProof, EMPTY};
use rr_core::Digest;

/// A node of the tree; an empty subtree is a `None` child (see [`Subtree`]).
enum Node {
    /// The one entry of its subtree, lifted as high as it is alone.
    Leaf {
        key: Digest,
        value_hash: Digest,
        /// `leaf_hash(key, value_hash)`, kept so that rebuilding a parent
        /// next to an untouched leaf hashes nothing but the parent.
        hash: Digest,
    },
    /// Two or more entries below; at most one child is empty.
    Branch {
        hash: Digest,
        left: Subtree,
        right: Subtree,
    },
}

/// A subtree: `None` is empty. `Option<Arc<_>>` is one pointer wide, and an
/// empty child costs no allocation.
type Subtree = Option<Arc<Node>>;

/// One update of a batch: a key hash and its new value hash, or `None` to delete it.
type Update = (Digest, Option<Digest>);

fn hash_of(subtree: &Subtree) -> Digest {
    match subtree.as_deref() {
        None => EMPTY,
        Some(Node::Leaf { hash, .. } | Node::Branch { hash, .. }) => *hash,
    }
}

fn new_leaf(key: Digest, value_hash: Digest) -> Subtree {
    Some(Arc::new(Node::Leaf {
        key,
        value_hash,
        hash: leaf_hash(&key, &value_hash),
    }))
}

/// The subtree whose children are `left` and `right`, as the definition
/// shapes it: empty if both are, the leaf itself if one is a leaf and the
/// other empty (lifting), a branch otherwise.
fn join(left: Subtree, right: Subtree) -> Subtree {
    match (&left, &right) {
        (None, None) => None,
        (Some(node), None) | (None, Some(node)) if matches!(**node, Node::Leaf { .. }) => {
            left.or(right)
        }
        _ => Some(Arc::new(Node::Branch {
            hash: node_hash(&hash_of(&left), &hash_of(&right)),
            left,
            right,
        })),
    }
}

/// The key-sorted updates of `batch` going left and right at `depth`.
fn split_at_bit(batch: &[Update], depth: usize) -> (&[Update], &[Update]) {
    batch.split_at(batch.partition_point(|(k, _)| !key_bit(k, depth)))
}

/// The subtree at `depth` holding the puts of `batch` and the existing leaf
/// `kept`, if any (its deletes are of keys that are not there). `batch` is
/// sorted by key, its keys are distinct and differ from `kept`'s, and all of
/// them lie below this subtree. `added` counts the puts that became leaves.
fn build(depth: usize, batch: &[Update], kept: Subtree, added: &mut usize) -> Subtree {
    match (batch, &kept) {
        ([], _) => kept,
        ([(_, None)], _) => kept,
        ([(key, Some(value_hash))], None) => {
            *added += 1;
            new_leaf(*key, *value_hash)
        }
        _ => {
            // Distinct keys part at some bit below 256, so this recursion
            // ends there at the latest.
            let (left, right) = split_at_bit(batch, depth);
            let (kept_left, kept_right) = match &kept {
                Some(node) if leaf_key(node).is_some_and(|k| key_bit(k, depth)) => (None, kept),
                _ => (kept, None),
            };
            join(
                build(depth + 1, left, kept_left, added),
                build(depth + 1, right, kept_right, added),
            )
        }
    }
}

fn leaf_key(node: &Node) -> Option<&Digest> {
    match node {
        Node::Leaf { key, .. } => Some(key),
        Node::Branch { .. } => None,
    }
}

/// What [`update`] did to the number of entries.
#[derive(Default)]
struct Count {
    added: usize,
    removed: usize,
}

/// `subtree` (at `depth`) with `batch` applied; `batch` is sorted by key,
/// its keys distinct and all below this subtree.
fn update(subtree: &Subtree, depth: usize, batch: &[Update], count: &mut Count) -> Subtree {
    if batch.is_empty() {
        return subtree.clone();
    }
    match subtree.as_deref() {
        None => build(depth, batch, None, &mut count.added),
        Some(Node::Leaf { key, .. }) => {
            // The existing entry stays unless the batch overwrites or deletes it.
            let kept = match batch.binary_search_by(|(k, _)| k.cmp(key)) {
                Ok(_) => {
                    count.removed += 1;
                    None
                }
                Err(_) => subtree.clone(),
            };
            build(depth, batch, kept, &mut count.added)
        }
        Some(Node::Branch { left, right, .. }) => {
            let (batch_left, batch_right) = split_at_bit(batch, depth);
            let new_left = update(left, depth + 1, batch_left, count);
            let new_right = update(right, depth + 1, batch_right, count);
            // A batch of deletes of absent keys changes nothing: keep the
            // node rather than hash a copy of it.
            if same(&new_left, left) && same(&new_right, right) {
                return subtree.clone();
            }
            join(new_left, new_right)
        }
    }
}

fn same(a: &Subtree, b: &Subtree) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// Sorts updates by key; of two updates of one key the later wins.
fn sorted_last_wins<V>(mut updates: Vec<(Digest, V)>) -> Vec<(Digest, V)> {
    // Stable, so that equal keys stay in batch order and the last one is kept.
    updates.sort_by_key(|update| update.0);
    let mut out: Vec<(Digest, V)> = Vec::with_capacity(updates.len());
    for update in updates {
        match out.last_mut() {
            Some(last) if last.0 == update.0 => *last = update,
            _ => out.push(update),
        }
    }
    out
}

/// One version of the state's sparse Merkle tree (see [`rr_core::smt`] for
/// the definition): its root commits to every `(key hash, value hash)` entry,
/// and [`prove`](Self::prove) shows one entry, or its absence, against that
/// root.
///
/// Versions are immutable and share structure: [`apply`](Self::apply)
/// returns a new version and leaves `self` as it was, and `clone` is O(1).
#[derive(Clone, Default)]
pub struct StateTree {
    root: Subtree,
    len: usize,
}

impl StateTree {
    /// The empty tree, whose root is [`EMPTY`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree holding `leaves` (key hash, value hash), in any order, built
    /// bottom-up in one pass after a sort. Keys are meant to be distinct; of
    /// two leaves with the same key the later one is kept.
    pub fn from_leaves(leaves: Vec<(Digest, Digest)>) -> Self {
        let sorted: Vec<Update> = sorted_last_wins(leaves)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let mut len = 0;
        let root = build(0, &sorted, None, &mut len);
        Self { root, len }
    }

    /// The root hash: what a certified block header commits to.
    pub fn root(&self) -> Digest {
        hash_of(&self.root)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value hash of `key`, if it is present.
    pub fn get(&self, key: &Digest) -> Option<Digest> {
        let mut here = &self.root;
        let mut depth = 0;
        loop {
            match here.as_deref()? {
                Node::Leaf {
                    key: k, value_hash, ..
                } => return (k == key).then_some(*value_hash),
                Node::Branch { left, right, .. } => {
                    here = if key_bit(key, depth) { right } else { left };
                    depth += 1;
                }
            }
        }
    }

    /// The next version: this one with a batch of puts (`Some(value hash)`)
    /// and deletes (`None`) applied, in any order. Keys are meant to be
    /// distinct within a batch; of two updates of one key the later one wins.
    /// Deleting an absent key does nothing.
    ///
    /// Only the paths to updated keys are rebuilt (one node hash per level
    /// of each, shared near the root); every other subtree is shared with
    /// `self`, which is unchanged.
    pub fn apply(&self, updates: Vec<(Digest, Option<Digest>)>) -> StateTree {
        let batch = sorted_last_wins(updates);
        let mut count = Count::default();
        let root = update(&self.root, 0, &batch, &mut count);
        StateTree {
            root,
            len: self.len + count.added - count.removed,
        }
    }

    /// The proof that `key` holds its value hash (if present) or is absent
    /// (if not), against [`root`](Self::root).
    pub fn prove(&self, key: &Digest) -> SmtProof {
        let mut siblings = Vec::new();
        let mut here = &self.root;
        let mut depth = 0;
        loop {
            match here.as_deref() {
                None => {
                    return SmtProof {
                        leaf: None,
                        siblings,
                    }
                }
                Some(Node::Leaf {
                    key, value_hash, ..
                }) => {
                    let leaf = SmtLeaf {
                        key: *key,
                        value_hash: *value_hash,
                    };
                    return SmtProof {
                        leaf: Some(leaf),
                        siblings,
                    };
                }
                Some(Node::Branch { left, right, .. }) => {
                    let (next, sibling) = if key_bit(key, depth) {
                        (right, left)
                    } else {
                        (left, right)
                    };
                    siblings.push(hash_of(sibling));
                    here = next;
                    depth += 1;
                }
            }
        }
    }
}

impl fmt::Debug for StateTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateTree")
            .field("root", &self.root())
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rr_core::smt::{reference_proof, reference_root, value_hash};

    use super::*;

    fn check(tree: &StateTree, reference: &BTreeMap<Digest, Digest>, probes: &[Digest]) {
        let entries: Vec<(Digest, Digest)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
        let root = tree.root();
        assert_eq!(root, reference_root(&entries));
        assert_eq!(tree.len(), reference.len());
        assert_eq!(tree.is_empty(), reference.is_empty());
        for key in reference.keys().chain(probes) {
            let value = reference.get(key);
            assert_eq!(tree.get(key).as_ref(), value);
            let proof = tree.prove(key);
            assert_eq!(proof.verify(&root, key, value), Ok(()), "{key:?}");
            assert_eq!(proof, reference_proof(&entries, key));
        }
    }

    fn key(first: u8) -> Digest {
        let mut k = [0u8; 32];
        k[0] = first;
        Digest(k)
    }

    #[test]
    fn versions_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<StateTree>();
    }

    #[test]
    fn empty_tree() {
        let tree = StateTree::new();
        assert_eq!(tree.root(), EMPTY);
        assert!(tree.is_empty());
        check(&tree, &BTreeMap::new(), &[key(0), key(0xff)]);
        let still_empty = tree.apply(vec![(key(1), None)]);
        assert_eq!(still_empty.root(), EMPTY);
        assert_eq!(
            format!("{still_empty:?}"),
            format!("StateTree {{ root: {EMPTY:?}, len: 0 }}")
        );
    }

    #[test]
    fn lifting_and_collapsing() {
        // The worked example of rr_core::smt: A (000..), B (001..), C (1..).
        let (a, b, c) = (key(0x00), key(0x20), key(0x80));
        let (va, vb, vc) = (value_hash(b"a"), value_hash(b"b"), value_hash(b"c"));
        let tree = StateTree::new().apply(vec![(c, Some(vc)), (a, Some(va)), (b, Some(vb))]);
        let (la, lb, lc) = (leaf_hash(&a, &va), leaf_hash(&b, &vb), leaf_hash(&c, &vc));
        assert_eq!(
            tree.root(),
            node_hash(&node_hash(&node_hash(&la, &lb), &EMPTY), &lc)
        );
        // Deleting B leaves A alone on the left: it is lifted back to depth 1.
        let without_b = tree.apply(vec![(b, None)]);
        assert_eq!(without_b.root(), node_hash(&la, &lc));
        // Deleting C too leaves A alone: the root is its leaf.
        let only_a = without_b.apply(vec![(c, None)]);
        assert_eq!(only_a.root(), la);
        assert_eq!(only_a.apply(vec![(a, None)]).root(), EMPTY);
        // Everything at once, plus an absent key, from the full tree.
        let all_gone = tree.apply(vec![(b, None), (key(0x40), None), (a, None), (c, None)]);
        assert_eq!((all_gone.root(), all_gone.len()), (EMPTY, 0));
    }

    #[test]
    fn keys_differing_only_in_the_last_bit() {
        let mut s = [0xa5u8; 32];
        let t = s;
        s[31] ^= 1;
        let (s, t) = (Digest(s), Digest(t));
        let tree = StateTree::new().apply(vec![(s, Some(EMPTY)), (t, Some(value_hash(b"t")))]);
        let mut reference = BTreeMap::new();
        reference.insert(s, EMPTY);
        reference.insert(t, value_hash(b"t"));
        check(&tree, &reference, &[key(0xa5), key(0x5a)]);
        assert_eq!(tree.prove(&s).siblings.len(), 256);
        let tree = tree.apply(vec![(t, None)]);
        reference.remove(&t);
        check(&tree, &reference, &[t]);
        assert_eq!(tree.root(), leaf_hash(&s, &EMPTY));
    }

    #[test]
    fn later_update_of_a_key_wins() {
        let a = key(7);
        let tree = StateTree::new().apply(vec![(a, Some(EMPTY)), (a, Some(value_hash(b"x")))]);
        assert_eq!(tree.get(&a), Some(value_hash(b"x")));
        assert_eq!(tree.len(), 1);
        let tree = tree.apply(vec![(a, Some(EMPTY)), (a, None)]);
        assert_eq!((tree.len(), tree.get(&a)), (0, None));
        let built = StateTree::from_leaves(vec![(a, EMPTY), (a, value_hash(b"y"))]);
        assert_eq!((built.len(), built.get(&a)), (1, Some(value_hash(b"y"))));
    }

    #[test]
    fn old_versions_are_unchanged_and_share_untouched_subtrees() {
        let leaves: Vec<(Digest, Digest)> = (0u32..1000)
            .map(|i| (value_hash(&i.to_le_bytes()), value_hash(&i.to_be_bytes())))
            .collect();
        let v1 = StateTree::from_leaves(leaves.clone());
        let root1 = v1.root();
        let probe = leaves[17].0;
        let proof1 = v1.prove(&probe);
        let v2 = v1.apply(vec![
            (probe, None),
            (leaves[18].0, Some(EMPTY)),
            (value_hash(b"new"), Some(EMPTY)),
        ]);
        assert_ne!(v2.root(), root1);
        assert_eq!((v1.root(), v1.len(), v2.len()), (root1, 1000, 1000));
        assert_eq!(v1.get(&probe), Some(leaves[17].1));
        assert_eq!(v2.get(&probe), None);
        assert_eq!(v1.prove(&probe), proof1);
        // Each root child with no update below it is the very same node.
        let (
            Some(Node::Branch {
                left: l1,
                right: r1,
                ..
            }),
            Some(Node::Branch {
                left: l2,
                right: r2,
                ..
            }),
        ) = (v1.root.as_deref(), v2.root.as_deref())
        else {
            panic!("a tree of 1000 entries has a branch at its root");
        };
        let touched: Vec<bool> = [probe, leaves[18].0, value_hash(b"new")]
            .iter()
            .map(|k| key_bit(k, 0))
            .collect();
        assert_eq!(same(l1, l2), !touched.contains(&false));
        assert_eq!(same(r1, r2), !touched.contains(&true));
        // Deleting absent keys returns the same root node.
        let v3 = v1.apply(vec![(value_hash(b"absent"), None)]);
        assert!(same(&v1.root, &v3.root));
    }

    /// Key hashes: random, or close to one another (sharing long prefixes).
    fn some_key() -> impl Strategy<Value = Digest> {
        prop_oneof![
            any::<[u8; 32]>().prop_map(Digest),
            (0usize..256, 0u8..4).prop_map(|(bit, low)| {
                let mut k = [0xc3u8; 32];
                k[bit / 8] ^= 1 << (bit % 8);
                k[31] ^= low;
                Digest(k)
            }),
        ]
    }

    fn batches() -> impl Strategy<Value = Vec<Vec<(Digest, Option<Digest>)>>> {
        let update = (
            some_key(),
            prop::option::weighted(0.7, any::<[u8; 32]>().prop_map(Digest)),
        );
        prop::collection::vec(prop::collection::vec(update, 0..40), 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn successive_batches_match_the_reference(
            batches in batches(),
            probes in prop::collection::vec(some_key(), 0..8),
        ) {
            let mut tree = StateTree::new();
            let mut reference = BTreeMap::new();
            let mut versions = Vec::new();
            for batch in batches {
                // Later updates of a key win, as in `apply`.
                for (k, v) in &batch {
                    match v {
                        Some(v) => reference.insert(*k, *v),
                        None => reference.remove(k),
                    };
                }
                // Deletes of earlier keys, so that deletes often hit.
                let mut batch = batch;
                if let Some(&k) = reference.keys().nth(batch.len() % (reference.len() + 1)) {
                    batch.push((k, None));
                    reference.remove(&k);
                }
                versions.push((tree.clone(), tree.root(), tree.len()));
                tree = tree.apply(batch);
                check(&tree, &reference, &probes);
                // Built in one pass, the same state gives the same tree.
                let leaves: Vec<(Digest, Digest)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
                let built = StateTree::from_leaves(leaves.into_iter().rev().collect());
                prop_assert_eq!(built.root(), tree.root());
                prop_assert_eq!(built.len(), tree.len());
            }
            for (old, root, len) in versions {
                prop_assert_eq!((old.root(), old.len()), (root, len));
            }
        }
    }
}
