//! The replicated state as the executor sees it: named tables of byte keys and
//! values, read through [`StateRead`] and changed only by a [`WriteSet`].
//!
//! A write set is the whole effect of one block. The engine applies it, with
//! the block, in one atomic commit; the state digest chains every write set, so
//! two replicas that executed the same blocks hold the same digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::block::BlockContext;
use crate::codec;
use crate::error::StateError;
use crate::ids::Digest;

/// The tables of the replicated state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Table {
    /// `RecordId` -> `RecordInfo`.
    Records,
    /// `GrantId` -> `GrantInfo`.
    Grants,
    /// `RecordId ++ GrantId` -> empty: the grants of a record.
    RecordGrants,
    /// `grantee AccountId ++ GrantId` -> empty: the grants an account holds.
    GranteeGrants,
    /// `owner AccountId ++ RecordId` -> empty: the records an account owns.
    OwnerRecords,
    /// `AccountId ++ nonce (u64 big-endian)` -> empty: nonces used.
    Nonces,
    /// `RecordId ++ seq (u64 big-endian)` -> `AuditEntry`.
    Audit,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 7] = [
        Table::Records,
        Table::Grants,
        Table::RecordGrants,
        Table::GranteeGrants,
        Table::OwnerRecords,
        Table::Nonces,
        Table::Audit,
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
        }
    }
}

/// Key layouts of the tables, shared by the executor that writes them and the
/// stores and queries that read them.
pub mod keys {
    use crate::ids::{AccountId, GrantId, RecordId};

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
    pub fn grant(id: &GrantId) -> Vec<u8> {
        id.0.to_vec()
    }
    /// [`super::Table::RecordGrants`] key.
    pub fn record_grant(record: &RecordId, grant: &GrantId) -> Vec<u8> {
        cat(&record.0, &grant.0)
    }
    /// [`super::Table::GranteeGrants`] key.
    pub fn grantee_grant(grantee: &AccountId, grant: &GrantId) -> Vec<u8> {
        cat(&grantee.0, &grant.0)
    }
    /// [`super::Table::OwnerRecords`] key.
    pub fn owner_record(owner: &AccountId, record: &RecordId) -> Vec<u8> {
        cat(&owner.0, &record.0)
    }
    /// [`super::Table::Nonces`] key.
    pub fn nonce(account: &AccountId, nonce: u64) -> Vec<u8> {
        cat(&account.0, &nonce.to_be_bytes())
    }
    /// [`super::Table::Audit`] key.
    pub fn audit(record: &RecordId, seq: u64) -> Vec<u8> {
        cat(&record.0, &seq.to_be_bytes())
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

    /// The state digest after applying this write set at `ctx` to a state whose
    /// digest was `prev`.
    pub fn chain_digest(&self, prev: &Digest, ctx: &BlockContext) -> Digest {
        let mut h = blake3::Hasher::new_derive_key("resilient-records 2026 state digest");
        h.update(&prev.0);
        h.update(&codec::encode(ctx));
        h.update(&codec::encode(self));
        Digest(*h.finalize().as_bytes())
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
    digest: Digest,
}

impl MemoryState {
    /// An empty state (digest all zeros).
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the write set of the block at `ctx`.
    pub fn apply(&mut self, ctx: &BlockContext, writes: &WriteSet) {
        self.digest = writes.chain_digest(&self.digest, ctx);
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

    /// The state digest.
    pub fn digest(&self) -> Digest {
        self.digest
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
    use crate::ids::Timestamp;

    #[test]
    fn overlay_sees_pending_writes_and_deletes() {
        let mut base = MemoryState::new();
        let ctx = BlockContext {
            height: 1,
            time: Timestamp(1),
        };
        let mut ws = WriteSet::new();
        ws.put(Table::Records, b"a".to_vec(), b"1".to_vec());
        ws.put(Table::Records, b"b".to_vec(), b"2".to_vec());
        base.apply(&ctx, &ws);
        let mut o = Overlay::new(&base);
        o.writes.delete(Table::Records, b"a".to_vec());
        o.writes.put(Table::Grants, b"a".to_vec(), b"3".to_vec());
        assert_eq!(o.get(Table::Records, b"a").unwrap(), None);
        assert_eq!(o.get(Table::Records, b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(o.get(Table::Grants, b"a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(base.scan_prefix(Table::Records, b"").len(), 2);
    }

    #[test]
    fn digest_depends_on_order_of_blocks_not_order_of_writes() {
        let ctx = BlockContext {
            height: 1,
            time: Timestamp(1),
        };
        let mut a = WriteSet::new();
        a.put(Table::Records, b"x".to_vec(), b"1".to_vec());
        a.put(Table::Nonces, b"y".to_vec(), vec![]);
        let mut b = WriteSet::new();
        b.put(Table::Nonces, b"y".to_vec(), vec![]);
        b.put(Table::Records, b"x".to_vec(), b"1".to_vec());
        assert_eq!(
            a.chain_digest(&Digest::default(), &ctx),
            b.chain_digest(&Digest::default(), &ctx)
        );
        let mut c = WriteSet::new();
        c.put(Table::Records, b"x".to_vec(), b"2".to_vec());
        assert_ne!(
            a.chain_digest(&Digest::default(), &ctx),
            c.chain_digest(&Digest::default(), &ctx)
        );
    }
}
