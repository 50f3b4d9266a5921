//! The replicated state as the executor sees it: named tables of byte keys and
//! values, read through [`StateRead`] and changed only by a [`WriteSet`].
//!
//! A write set is the whole effect of one block. The engine applies it, with
//! the block, in one atomic commit. The state's root is the sparse Merkle
//! tree root over every entry ([`crate::smt`]), so two replicas that executed
//! the same blocks hold the same root, and each entry can be proven against
//! it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::ids::Digest;

/// The tables of the replicated state.
///
/// Every entry of every table is a leaf of the state's sparse Merkle tree
/// ([`crate::smt`]), keyed by [`crate::smt::key_hash`]`(table.id(), key)`, so
/// each value (and each absence) can be proven against a certified header.
/// The listing tables are counted (an index per position, and the count in
/// [`Table::Counts`]) rather than keyed by member, so a proof of a listing
/// proves it complete: the count, then every position below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Table {
    /// `RecordId` -> `RecordInfo`.
    Records,
    /// `GrantId` -> `GrantInfo`.
    Grants,
    /// `RecordId ++ index (u64 big-endian)` -> `GrantId`: the grants of a
    /// record, in the order they were made ([`CountKind::RecordGrants`]).
    RecordGrants,
    /// `grantee AccountId ++ index` -> `GrantId`: the grants an account
    /// holds ([`CountKind::GranteeGrants`]).
    GranteeGrants,
    /// `owner AccountId ++ index` -> `RecordId`: the records an account
    /// owns ([`CountKind::OwnerRecords`]).
    OwnerRecords,
    /// `AccountId ++ nonce (u64 big-endian)` -> empty: nonces used.
    Nonces,
    /// `RecordId ++ seq (u64 big-endian)` -> `AuditEntry`.
    Audit,
    /// `kind (one byte, [`CountKind`]) ++ id (32 bytes)` -> count (u64
    /// big-endian): how many entries a counted listing has. Absent means 0.
    Counts,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 8] = [
        Table::Records,
        Table::Grants,
        Table::RecordGrants,
        Table::GranteeGrants,
        Table::OwnerRecords,
        Table::Nonces,
        Table::Audit,
        Table::Counts,
    ];

    /// A stable name (used as the storage table name).
    pub fn name(self) -> &'static str {
        match self {
            Table::Records => "records",
            Table::Grants => "grants",
            Table::RecordGrants => "record_grants",
            Table::GranteeGrants => "grantee_grants",
            Table::OwnerRecords => "owner_records",
            Table::Nonces => "nonces",
            Table::Audit => "audit",
            Table::Counts => "counts",
        }
    }

    /// The stable one-byte id the state tree hashes keys under
    /// ([`crate::smt::key_hash`]).
    pub fn id(self) -> u8 {
        match self {
            Table::Records => 1,
            Table::Grants => 2,
            Table::RecordGrants => 3,
            Table::GranteeGrants => 4,
            Table::OwnerRecords => 5,
            Table::Nonces => 6,
            Table::Audit => 7,
            Table::Counts => 8,
        }
    }

    /// The table with id `id`.
    pub fn from_id(id: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.id() == id)
    }
}

/// Which counted listing a [`Table::Counts`] entry counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum CountKind {
    /// Records an owner registered ([`Table::OwnerRecords`]).
    OwnerRecords = 1,
    /// Grants made to a grantee ([`Table::GranteeGrants`]).
    GranteeGrants = 2,
    /// Grants of a record ([`Table::RecordGrants`]).
    RecordGrants = 3,
}

/// Key layouts of the tables, shared by the executor that writes them and the
/// stores and queries that read them.
pub mod keys {
    use super::CountKind;
    use crate::ids::{AccountId, RecordId};

    fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(a.len() + b.len());
        k.extend_from_slice(a);
        k.extend_from_slice(b);
        k
    }

    /// [`super::Table::Records`] key.
    pub fn record(id: &RecordId) -> Vec<u8> {
        id.0.to_vec()
    }
    /// [`super::Table::Grants`] key.
    pub fn grant(id: &crate::ids::GrantId) -> Vec<u8> {
        id.0.to_vec()
    }
    /// [`super::Table::RecordGrants`] key: the `index`-th grant of `record`.
    pub fn record_grant(record: &RecordId, index: u64) -> Vec<u8> {
        cat(&record.0, &index.to_be_bytes())
    }
    /// [`super::Table::GranteeGrants`] key: the `index`-th grant `grantee` holds.
    pub fn grantee_grant(grantee: &AccountId, index: u64) -> Vec<u8> {
        cat(&grantee.0, &index.to_be_bytes())
    }
    /// [`super::Table::OwnerRecords`] key: the `index`-th record of `owner`.
    pub fn owner_record(owner: &AccountId, index: u64) -> Vec<u8> {
        cat(&owner.0, &index.to_be_bytes())
    }
    /// [`super::Table::Nonces`] key.
    pub fn nonce(account: &AccountId, nonce: u64) -> Vec<u8> {
        cat(&account.0, &nonce.to_be_bytes())
    }
    /// [`super::Table::Audit`] key.
    pub fn audit(record: &RecordId, seq: u64) -> Vec<u8> {
        cat(&record.0, &seq.to_be_bytes())
    }
    /// [`super::Table::Counts`] key of the listing `kind` of `id` (an
    /// account for owner records and grantee grants, a record for its grants).
    pub fn count(kind: CountKind, id: &[u8; 32]) -> Vec<u8> {
        cat(&[kind as u8], id)
    }

    /// A [`super::Table::Counts`] value.
    pub fn count_value(n: u64) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    /// Decodes a [`super::Table::Counts`] value (absent is 0).
    pub fn decode_count(value: Option<&[u8]>) -> Result<u64, crate::error::DecodeError> {
        match value {
            None => Ok(0),
            Some(v) => v.try_into().map(u64::from_be_bytes).map_err(|_| {
                crate::error::DecodeError::Invalid {
                    what: "count",
                    reason: format!("{} bytes, not 8", v.len()),
                }
            }),
        }
    }
}

/// Read access to the state.
///
/// # Correctness
/// An implementation returns the value last written by a committed write set
/// (or by the write set under construction, for an overlay), and nothing else:
/// execution on two replicas must read the same bytes.
pub trait StateRead {
    /// The value under `key` in `table`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
}

impl<T: StateRead + ?Sized> StateRead for &T {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        (**self).get(table, key)
    }
}

/// The writes of one block: puts (`Some`) and deletes (`None`), ordered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSet {
    writes: BTreeMap<(Table, Vec<u8>), Option<Vec<u8>>>,
}

impl WriteSet {
    /// An empty write set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `value` under `key`.
    pub fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert((table, key), Some(value));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, table: Table, key: Vec<u8>) {
        self.writes.insert((table, key), None);
    }

    /// The pending write for `key`: `Some(Some(v))` put, `Some(None)` deleted,
    /// `None` untouched.
    pub fn pending(&self, table: Table, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        self.writes.get(&(table, key.to_vec())).map(|v| v.as_ref())
    }

    /// All writes in key order.
    pub fn iter(&self) -> impl Iterator<Item = (Table, &[u8], Option<&[u8]>)> {
        self.writes
            .iter()
            .map(|((t, k), v)| (*t, k.as_slice(), v.as_deref()))
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether there are no writes.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Folds `other` into `self` (later writes win).
    pub fn extend(&mut self, other: WriteSet) {
        self.writes.extend(other.writes);
    }

    /// The state tree updates this write set makes: (key hash, value hash
    /// or `None` for a delete), see [`crate::smt`].
    pub fn tree_updates(&self) -> Vec<(Digest, Option<Digest>)> {
        self.iter()
            .map(|(t, k, v)| {
                (
                    crate::smt::key_hash(t.id(), k),
                    v.map(crate::smt::value_hash),
                )
            })
            .collect()
    }
}

/// A state read through a pending write set: what execution sees mid-block.
pub struct Overlay<'a, S: ?Sized> {
    base: &'a S,
    /// The writes so far.
    pub writes: WriteSet,
}

impl<'a, S: StateRead + ?Sized> Overlay<'a, S> {
    /// An overlay with no writes over `base`.
    pub fn new(base: &'a S) -> Self {
        Self {
            base,
            writes: WriteSet::new(),
        }
    }

    /// Whether `tx`'s nonce is spent (by an earlier call of its signer, in
    /// this block or before): such a call is a replay.
    pub fn nonce_spent(&self, tx: &crate::VerifiedTransaction) -> Result<bool, StateError> {
        Ok(self
            .get(Table::Nonces, &keys::nonce(&tx.signer(), tx.body().nonce))?
            .is_some())
    }

    /// Spends `tx`'s nonce: `true` if it was fresh (it is spent now),
    /// `false` if the call is a replay (nothing is written).
    ///
    /// The ledger's one replay rule, which every executor keeps: each call
    /// that is not a replay spends its nonce whatever its outcome, so no call
    /// (refused ones included) can be executed twice.
    pub fn spend_nonce(&mut self, tx: &crate::VerifiedTransaction) -> Result<bool, StateError> {
        if self.nonce_spent(tx)? {
            return Ok(false);
        }
        self.writes.put(
            Table::Nonces,
            keys::nonce(&tx.signer(), tx.body().nonce),
            Vec::new(),
        );
        Ok(true)
    }
}

impl<S: StateRead + ?Sized> StateRead for Overlay<'_, S> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.pending(table, key) {
            Some(v) => Ok(v.cloned()),
            None => self.base.get(table, key),
        }
    }
}

/// An in-memory state: the reference the property tests compare storage
/// backends against, and a state for embedding without persistence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    tables: BTreeMap<(Table, Vec<u8>), Vec<u8>>,
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a block's write set.
    pub fn apply(&mut self, writes: &WriteSet) {
        for (table, key, value) in writes.iter() {
            match value {
                Some(v) => {
                    self.tables.insert((table, key.to_vec()), v.to_vec());
                }
                None => {
                    self.tables.remove(&(table, key.to_vec()));
                }
            }
        }
    }

    /// The state root, computed from the definition ([`crate::smt`]): slow
    /// and simple, the reference the ledger's tree is checked against.
    pub fn root(&self) -> Digest {
        let leaves: Vec<(Digest, Digest)> = self
            .tables
            .iter()
            .map(|((t, k), v)| (crate::smt::key_hash(t.id(), k), crate::smt::value_hash(v)))
            .collect();
        crate::smt::reference_root(&leaves)
    }

    /// Entries of `table` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.tables
            .range((table, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == table && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl StateRead for MemoryState {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.tables.get(&(table, key.to_vec())).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_spent_once_in_a_block_and_across_blocks() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let call = |nonce| {
            crate::TxBody {
                signer: crate::AccountId::from_verifying_key(&key.verifying_key()),
                nonce,
                call: crate::Call::Revoke(crate::Revoke {
                    grant: crate::GrantId([1; 32]),
                }),
            }
            .sign(&key)
            .verify()
            .unwrap()
        };
        let (first, second) = (call(1), call(2));
        let mut base = MemoryState::new();
        let mut block = Overlay::new(&base);
        assert!(!block.nonce_spent(&first).unwrap());
        assert!(block.spend_nonce(&first).unwrap());
        // A replay in the same block writes nothing more.
        let writes = block.writes.len();
        assert!(!block.spend_nonce(&first).unwrap());
        assert_eq!(block.writes.len(), writes);
        assert!(block.spend_nonce(&second).unwrap());
        let ws = block.writes;
        base.apply(&ws);
        // And in a later block.
        let later = Overlay::new(&base);
        assert!(later.nonce_spent(&first).unwrap());
        assert!(later.nonce_spent(&second).unwrap());
        assert!(!later.nonce_spent(&call(3)).unwrap());
    }

    #[test]
    fn overlay_sees_pending_writes_and_deletes() {
        let mut base = MemoryState::new();
        let mut ws = WriteSet::new();
        ws.put(Table::Records, b"a".to_vec(), b"1".to_vec());
        ws.put(Table::Records, b"b".to_vec(), b"2".to_vec());
        base.apply(&ws);
        let mut o = Overlay::new(&base);
        o.writes.delete(Table::Records, b"a".to_vec());
        o.writes.put(Table::Grants, b"a".to_vec(), b"3".to_vec());
        assert_eq!(o.get(Table::Records, b"a").unwrap(), None);
        assert_eq!(o.get(Table::Records, b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(o.get(Table::Grants, b"a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(base.scan_prefix(Table::Records, b"").len(), 2);
    }

    #[test]
    fn the_root_depends_on_the_entries_not_on_how_they_were_written() {
        let mut a = WriteSet::new();
        a.put(Table::Records, b"x".to_vec(), b"1".to_vec());
        a.put(Table::Nonces, b"y".to_vec(), vec![]);
        let mut b = WriteSet::new();
        b.put(Table::Nonces, b"y".to_vec(), vec![]);
        b.put(Table::Records, b"x".to_vec(), b"1".to_vec());
        let (mut ma, mut mb) = (MemoryState::new(), MemoryState::new());
        ma.apply(&a);
        mb.apply(&b);
        assert_eq!(ma.root(), mb.root());
        // The same key in another table is another leaf.
        let mut c = WriteSet::new();
        c.put(Table::Grants, b"x".to_vec(), b"1".to_vec());
        c.put(Table::Nonces, b"y".to_vec(), vec![]);
        let mut mc = MemoryState::new();
        mc.apply(&c);
        assert_ne!(ma.root(), mc.root());
        // Deleting everything gives the empty root again.
        let mut d = WriteSet::new();
        d.delete(Table::Records, b"x".to_vec());
        d.delete(Table::Nonces, b"y".to_vec());
        ma.apply(&d);
        assert_eq!(ma.root(), crate::smt::EMPTY);
        assert_eq!(MemoryState::new().root(), crate::smt::EMPTY);
    }
}
