//! Reading the ledger: snapshots for the executor and for queries, and
//! readers that prove what they read.

use std::path::{Path, PathBuf};

use redb::{ReadOnlyTable, ReadTransaction};
use rr_core::cert::LedgerHeader;
use rr_core::proof::ProvenEntry;
use rr_core::state::{keys, CountKind};
use rr_core::{
    smt, AccountId, AuditEntry, DecodeError, GrantId, GrantInfo, RecordId, RecordInfo, StateError,
    StateRead, Table,
};

use super::{decode_head, state_table, Head, LedgerError, Version, HEAD_KEY, META};

/// A state table as a snapshot holds it.
type ReadStateTable = ReadOnlyTable<&'static [u8], &'static [u8]>;
/// Key-value pairs of a scan.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The entries of a counted listing, in order: each entry's table and key,
/// and the 32-byte id it holds.
pub type ListingEntries = Vec<(Table, Vec<u8>, [u8; 32])>;

/// A listing's entry key, from the listed id and the position.
type EntryKey = fn(&[u8; 32], u64) -> Vec<u8>;

/// A read snapshot of the state at one head; implements [`StateRead`] for
/// the executor, and answers the queries of the node.
pub struct Snapshot {
    tables: Vec<(Table, ReadStateTable)>,
    head: Head,
    path: PathBuf,
}

fn corrupt(what: &'static str, reason: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt(DecodeError::Invalid {
        what,
        reason: reason.into(),
    })
}

impl Snapshot {
    pub(super) fn new(txn: ReadTransaction, path: &Path) -> Result<Self, LedgerError> {
        let err = |e: redb::TableError| LedgerError::Storage {
            path: path.to_path_buf(),
            source: e.into(),
        };
        let head = {
            let meta = txn.open_table(META).map_err(err)?;
            let v = meta.get(HEAD_KEY).map_err(|e| LedgerError::Storage {
                path: path.to_path_buf(),
                source: e.into(),
            })?;
            decode_head(v.as_ref().map(|v| v.value()))?
        };
        let mut tables = Vec::with_capacity(Table::ALL.len());
        for t in Table::ALL {
            tables.push((t, txn.open_table(state_table(t)).map_err(err)?));
        }
        Ok(Self {
            tables,
            head,
            path: path.to_path_buf(),
        })
    }

    /// The head this snapshot is of.
    pub fn head(&self) -> Head {
        self.head
    }

    pub(super) fn table(&self, t: Table) -> &ReadStateTable {
        &self
            .tables
            .iter()
            .find(|(x, _)| *x == t)
            .expect("every table is opened in the snapshot")
            .1
    }

    fn err(&self, e: impl Into<redb::Error>) -> LedgerError {
        LedgerError::Storage {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    /// The raw value under `key` in `table`.
    pub fn raw_get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, LedgerError> {
        let v = self.table(table).get(key).map_err(|e| self.err(e))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// A record.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordInfo>, LedgerError> {
        match self.raw_get(Table::Records, &keys::record(id))? {
            Some(v) => Ok(Some(RecordInfo::from_bytes(&v)?)),
            None => Ok(None),
        }
    }

    /// A grant.
    pub fn grant(&self, id: &GrantId) -> Result<Option<GrantInfo>, LedgerError> {
        match self.raw_get(Table::Grants, &keys::grant(id))? {
            Some(v) => Ok(Some(GrantInfo::from_bytes(&v)?)),
            None => Ok(None),
        }
    }

    /// The count of the listing `kind` of `id`.
    pub fn count(&self, kind: CountKind, id: &[u8; 32]) -> Result<u64, LedgerError> {
        Ok(keys::decode_count(
            self.raw_get(Table::Counts, &keys::count(kind, id))?
                .as_deref(),
        )?)
    }

    /// The keys and ids of a counted listing, in order.
    pub fn listing_keys(
        &self,
        kind: CountKind,
        id: &[u8; 32],
    ) -> Result<ListingEntries, LedgerError> {
        let (table, key_of): (Table, EntryKey) = match kind {
            CountKind::OwnerRecords => (Table::OwnerRecords, |id, i| {
                keys::owner_record(&AccountId(*id), i)
            }),
            CountKind::GranteeGrants => (Table::GranteeGrants, |id, i| {
                keys::grantee_grant(&AccountId(*id), i)
            }),
            CountKind::RecordGrants => (Table::RecordGrants, |id, i| {
                keys::record_grant(&RecordId(*id), i)
            }),
        };
        let n = self.count(kind, id)?;
        (0..n)
            .map(|i| {
                let key = key_of(id, i);
                let v = self
                    .raw_get(table, &key)?
                    .ok_or_else(|| corrupt("listing", format!("entry {i} of {n} is missing")))?;
                let member: [u8; 32] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt("listing", "an entry is not a 32-byte id"))?;
                Ok((table, key, member))
            })
            .collect()
    }

    /// The grants of a record, in the order they were made.
    pub fn grants_of_record(&self, id: &RecordId) -> Result<Vec<GrantInfo>, LedgerError> {
        self.grants_of_listing(CountKind::RecordGrants, &id.0)
    }

    /// The grants an account holds as grantee, in the order they were made.
    pub fn grants_held_by(&self, account: &AccountId) -> Result<Vec<GrantInfo>, LedgerError> {
        self.grants_of_listing(CountKind::GranteeGrants, &account.0)
    }

    fn grants_of_listing(
        &self,
        kind: CountKind,
        id: &[u8; 32],
    ) -> Result<Vec<GrantInfo>, LedgerError> {
        self.listing_keys(kind, id)?
            .into_iter()
            .map(|(_, _, g)| {
                self.grant(&GrantId(g))?
                    .ok_or_else(|| corrupt("grant index", "names a grant that is missing"))
            })
            .collect()
    }

    /// The records an account owns, in the order it registered them.
    pub fn records_owned_by(&self, owner: &AccountId) -> Result<Vec<RecordInfo>, LedgerError> {
        self.listing_keys(CountKind::OwnerRecords, &owner.0)?
            .into_iter()
            .map(|(_, _, r)| {
                self.record(&RecordId(r))?
                    .ok_or_else(|| corrupt("record index", "names a record that is missing"))
            })
            .collect()
    }

    /// Up to `limit` records in record-id order, starting after `after`
    /// (from the first with `None`): for walking every record in pages.
    pub fn records_after(
        &self,
        after: Option<&RecordId>,
        limit: usize,
    ) -> Result<Vec<RecordInfo>, LedgerError> {
        let table = self.table(Table::Records);
        let start = after.map(keys::record);
        let range = match &start {
            Some(k) => table.range::<&[u8]>((
                std::ops::Bound::Excluded(k.as_slice()),
                std::ops::Bound::Unbounded,
            )),
            None => table.range::<&[u8]>(..),
        }
        .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in range.take(limit) {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(RecordInfo::from_bytes(v.value())?);
        }
        Ok(out)
    }

    /// Up to `limit` audit entries of a record, from position `from`.
    pub fn audit(
        &self,
        record: &RecordId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, LedgerError> {
        let t = self.table(Table::Audit);
        let start = keys::audit(record, from);
        let end = keys::audit(record, u64::MAX);
        let mut out = Vec::new();
        for item in t
            .range::<&[u8]>(start.as_slice()..=end.as_slice())
            .map_err(|e| self.err(e))?
        {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(AuditEntry::from_bytes(v.value())?);
        }
        Ok(out)
    }

    /// Entries of `table` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Entries, LedgerError> {
        let mut out = Vec::new();
        for item in self
            .table(table)
            .range::<&[u8]>(prefix..)
            .map_err(|e| self.err(e))?
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl StateRead for Snapshot {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.raw_get(table, key)?)
    }
}

/// A snapshot of the head and the state tree of that head: every value it
/// reads it can prove against the head's [`LedgerHeader`]. Holding one keeps
/// its redb snapshot (and tree version) alive: take one per request.
pub struct StateReader {
    snapshot: Snapshot,
    version: Version,
}

impl StateReader {
    pub(super) fn new(snapshot: Snapshot, version: Version) -> Self {
        debug_assert_eq!(snapshot.head(), version.head);
        Self { snapshot, version }
    }

    /// The snapshot, for plain reads.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The head read.
    pub fn head(&self) -> Head {
        self.version.head
    }

    /// The head's header: what the proofs are against.
    pub fn header(&self) -> &LedgerHeader {
        &self.version.header
    }

    /// The value under `key` in `table`, with its proof (or the proof that
    /// there is none).
    pub fn prove(&self, table: Table, key: &[u8]) -> Result<ProvenEntry, LedgerError> {
        let value = self.snapshot.raw_get(table, key)?;
        let proof = self.version.tree.prove(&smt::key_hash(table.id(), key));
        Ok(ProvenEntry {
            table,
            key: key.to_vec(),
            value,
            proof,
        })
    }
}
