//! The ledger: blocks, receipts and the replicated state in one redb database.
//!
//! Each block is committed together with the write set its execution produced
//! and the new state digest, in one redb write transaction with immediate
//! durability. redb's commit is crash-safe (copy-on-write B-trees and a
//! checksummed commit slot), so after a crash the database holds exactly the
//! blocks whose commit returned, and a receipt a client was shown is never lost.

use std::path::{Path, PathBuf};

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
};
use rr_core::state::keys;
use rr_core::{
    AccountId, AuditEntry, Block, BlockHash, DecodeError, Digest, Execution, GrantId, GrantInfo,
    Receipt, RecordId, RecordInfo, StateError, StateRead, Table, Timestamp, TxId,
};
use serde::{Deserialize, Serialize};

const BLOCKS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_RECEIPTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("block_receipts");
const TX_INDEX: TableDefinition<'static, &[u8], (u64, u32)> = TableDefinition::new("tx_index");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const HEAD_KEY: &str = "head";
const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"resilient-records ledger v1";

/// A state table as the write path opens it.
type StateTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;
/// A state table as a snapshot holds it.
type ReadStateTable = ReadOnlyTable<&'static [u8], &'static [u8]>;
/// Key-value pairs of a scan.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn state_table(t: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(t.name())
}

/// Errors of the ledger store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// redb failed (I/O, corruption, a second process holding the file...).
    #[error("ledger database {path}: {source}")]
    Storage {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::Error,
    },
    /// A stored value does not decode.
    #[error("ledger database is corrupt: {0}")]
    Corrupt(#[from] DecodeError),
    /// The file is not a Resilient Records ledger (or of an unknown version).
    #[error("{path} is not a Resilient Records ledger (format {found:?}); point the node at its own data directory")]
    WrongFormat {
        /// The database file.
        path: PathBuf,
        /// The format marker found.
        found: String,
    },
    /// The block does not extend the head: wrong height or parent.
    #[error("block at height {height} with parent {parent} does not extend the ledger head at height {head_height} ({head_hash})")]
    NotNext {
        /// The block's height.
        height: u64,
        /// The block's parent.
        parent: BlockHash,
        /// The head height.
        head_height: u64,
        /// The head hash.
        head_hash: BlockHash,
    },
}

impl From<LedgerError> for StateError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Corrupt(d) => StateError::Corrupt(d),
            other => StateError::Storage(other.to_string()),
        }
    }
}

/// Where the ledger stands: the last committed block and the state after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Height of the last block (0: none yet).
    pub height: u64,
    /// Its hash (zeros before the first block).
    pub block_hash: BlockHash,
    /// Its time.
    pub time: Timestamp,
    /// State digest after it.
    pub state_digest: Digest,
}

impl Head {
    /// The head after committing `block`, with the effects `execution` of
    /// executing it, on top of this one: what [`Ledger::commit_block`] would
    /// return. Refuses a block that does not extend this head.
    pub fn next(&self, block: &Block, execution: &Execution) -> Result<Head, LedgerError> {
        let ctx = block.header.context;
        if ctx.height != self.height + 1 || block.header.parent != self.block_hash {
            return Err(LedgerError::NotNext {
                height: ctx.height,
                parent: block.header.parent,
                head_height: self.height,
                head_hash: self.block_hash,
            });
        }
        Ok(Head {
            height: ctx.height,
            block_hash: block.header.hash(),
            time: ctx.time,
            state_digest: execution.writes.chain_digest(&self.state_digest, &ctx),
        })
    }
}

/// The redb-backed ledger. Cheap to share behind an `Arc`; reads run
/// concurrently with the one writer.
pub struct Ledger {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

impl Ledger {
    /// Opens the ledger at `path`, creating it (and its tables) if absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let path = path.as_ref().to_path_buf();
        let err = |e: redb::Error| LedgerError::Storage {
            path: path.clone(),
            source: e,
        };
        let db = Database::create(&path).map_err(|e| err(e.into()))?;
        let ledger = Self {
            db,
            path: path.clone(),
        };
        let txn = ledger.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let found = meta
                .get(FORMAT_KEY)
                .map_err(|e| err(e.into()))?
                .map(|v| v.value().to_vec());
            match found {
                None => {
                    meta.insert(FORMAT_KEY, FORMAT).map_err(|e| err(e.into()))?;
                }
                Some(f) if f == FORMAT => {}
                Some(f) => {
                    return Err(LedgerError::WrongFormat {
                        path,
                        found: String::from_utf8_lossy(&f).into_owned(),
                    })
                }
            }
            txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
            txn.open_table(BLOCK_RECEIPTS).map_err(|e| err(e.into()))?;
            txn.open_table(TX_INDEX).map_err(|e| err(e.into()))?;
            for t in Table::ALL {
                txn.open_table(state_table(t)).map_err(|e| err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(ledger)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> LedgerError {
        LedgerError::Storage {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    fn read(&self) -> Result<ReadTransaction, LedgerError> {
        self.db.begin_read().map_err(|e| self.err(e))
    }

    /// The head.
    pub fn head(&self) -> Result<Head, LedgerError> {
        let txn = self.read()?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let head = meta.get(HEAD_KEY).map_err(|e| self.err(e))?;
        match head {
            None => Ok(Head::default()),
            Some(v) => Ok(rr_core::codec::decode("ledger head", v.value(), 1024)?),
        }
    }

    /// A consistent snapshot of the state for the executor and queries.
    pub fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        let txn = self.read()?;
        let mut tables = Vec::with_capacity(Table::ALL.len());
        for t in Table::ALL {
            tables.push((t, txn.open_table(state_table(t)).map_err(|e| self.err(e))?));
        }
        Ok(Snapshot {
            tables,
            path: self.path.clone(),
        })
    }

    /// Commits `block` with the effects of executing it, atomically and
    /// durably, and returns the new head. Refuses a block that does not extend
    /// the head (and then changes nothing).
    pub fn commit_block(&self, block: &Block, execution: &Execution) -> Result<Head, LedgerError> {
        self.commit_blocks(std::slice::from_ref(&(block, execution)))
    }

    /// Commits several consecutive blocks, each with the effects of executing
    /// it, in one atomic and durable write transaction (one fsync for all), and
    /// returns the head after the last. Each block must extend the one before
    /// it (the first, the current head), exactly as [`Ledger::commit_block`]
    /// checks; on any error nothing at all is written. The heads and state
    /// digests chain as if the blocks were committed one by one. An empty
    /// slice writes nothing and returns the head.
    pub fn commit_blocks<B, X>(&self, blocks: &[(B, X)]) -> Result<Head, LedgerError>
    where
        B: std::borrow::Borrow<Block>,
        X: std::borrow::Borrow<Execution>,
    {
        if blocks.is_empty() {
            return self.head();
        }
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| self.err(e))?;
        // Any early return drops `txn`, which aborts it: nothing is written.
        let head = {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut head: Head = match meta.get(HEAD_KEY).map_err(|e| self.err(e))? {
                None => Head::default(),
                Some(v) => rr_core::codec::decode("ledger head", v.value(), 1024)?,
            };
            let mut block_table = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
            let mut receipts = txn.open_table(BLOCK_RECEIPTS).map_err(|e| self.err(e))?;
            let mut index = txn.open_table(TX_INDEX).map_err(|e| self.err(e))?;
            let mut open: Vec<(Table, StateTable<'_>)> = Vec::new();
            for (block, execution) in blocks {
                let (block, execution) = (block.borrow(), execution.borrow());
                head = head.next(block, execution)?;
                let height = head.height;
                block_table
                    .insert(height, block.to_bytes().as_slice())
                    .map_err(|e| self.err(e))?;
                receipts
                    .insert(
                        height,
                        rr_core::codec::encode(&execution.receipts).as_slice(),
                    )
                    .map_err(|e| self.err(e))?;
                for r in &execution.receipts {
                    // First receipt wins: a replayed copy of a transaction gets
                    // its own refusal receipt in its block, but the id keeps
                    // pointing at the original (also within one batch: the
                    // earlier block's insert is visible here).
                    if index
                        .get(r.tx.0.as_slice())
                        .map_err(|e| self.err(e))?
                        .is_none()
                    {
                        index
                            .insert(r.tx.0.as_slice(), (height, r.index))
                            .map_err(|e| self.err(e))?;
                    }
                }
                for (table, key, value) in execution.writes.iter() {
                    let pos = match open.iter().position(|(t, _)| *t == table) {
                        Some(p) => p,
                        None => {
                            open.push((
                                table,
                                txn.open_table(state_table(table))
                                    .map_err(|e| self.err(e))?,
                            ));
                            open.len() - 1
                        }
                    };
                    let t = &mut open[pos].1;
                    match value {
                        Some(v) => {
                            t.insert(key, v).map_err(|e| self.err(e))?;
                        }
                        None => {
                            t.remove(key).map_err(|e| self.err(e))?;
                        }
                    }
                }
            }
            meta.insert(HEAD_KEY, rr_core::codec::encode(&head).as_slice())
                .map_err(|e| self.err(e))?;
            head
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(head)
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, LedgerError> {
        let txn = self.read()?;
        let t = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
        let v = t.get(height).map_err(|e| self.err(e))?;
        Ok(match v {
            Some(v) => Some(Block::from_bytes(v.value())?),
            None => None,
        })
    }

    /// The receipts of the block at `height`.
    pub fn block_receipts(&self, height: u64) -> Result<Option<Vec<Receipt>>, LedgerError> {
        let txn = self.read()?;
        let t = txn.open_table(BLOCK_RECEIPTS).map_err(|e| self.err(e))?;
        let v = t.get(height).map_err(|e| self.err(e))?;
        Ok(match v {
            Some(v) => Some(rr_core::codec::decode(
                "block receipts",
                v.value(),
                rr_core::block::MAX_BLOCK_BYTES,
            )?),
            None => None,
        })
    }

    /// The receipt of the first execution of transaction `tx`.
    pub fn receipt(&self, tx: &TxId) -> Result<Option<Receipt>, LedgerError> {
        let txn = self.read()?;
        let index = txn.open_table(TX_INDEX).map_err(|e| self.err(e))?;
        let Some(pos) = index.get(tx.0.as_slice()).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let (height, i) = pos.value();
        let receipts = self.block_receipts(height)?.unwrap_or_default();
        Ok(receipts.into_iter().nth(i as usize))
    }

    /// A record.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordInfo>, LedgerError> {
        self.snapshot()?.record(id)
    }

    /// A grant.
    pub fn grant(&self, id: &GrantId) -> Result<Option<GrantInfo>, LedgerError> {
        self.snapshot()?.grant(id)
    }

    /// The grants of a record, in grant-id order.
    pub fn grants_of_record(&self, id: &RecordId) -> Result<Vec<GrantInfo>, LedgerError> {
        let snap = self.snapshot()?;
        let mut out = Vec::new();
        for (k, _) in snap.scan_prefix(Table::RecordGrants, &id.0)? {
            let gid = GrantId(
                k[32..]
                    .try_into()
                    .map_err(|_| corrupt("record grant key"))?,
            );
            out.push(snap.grant(&gid)?.ok_or_else(|| corrupt("grant index"))?);
        }
        Ok(out)
    }

    /// The grants an account holds as grantee, in grant-id order.
    pub fn grants_held_by(&self, account: &AccountId) -> Result<Vec<GrantInfo>, LedgerError> {
        let snap = self.snapshot()?;
        let mut out = Vec::new();
        for (k, _) in snap.scan_prefix(Table::GranteeGrants, &account.0)? {
            let gid = GrantId(
                k[32..]
                    .try_into()
                    .map_err(|_| corrupt("grantee grant key"))?,
            );
            out.push(snap.grant(&gid)?.ok_or_else(|| corrupt("grant index"))?);
        }
        Ok(out)
    }

    /// The records an account owns, in record-id order.
    pub fn records_owned_by(&self, owner: &AccountId) -> Result<Vec<RecordInfo>, LedgerError> {
        let snap = self.snapshot()?;
        let mut out = Vec::new();
        for (k, _) in snap.scan_prefix(Table::OwnerRecords, &owner.0)? {
            let rid = RecordId(
                k[32..]
                    .try_into()
                    .map_err(|_| corrupt("owner record key"))?,
            );
            out.push(snap.record(&rid)?.ok_or_else(|| corrupt("record index"))?);
        }
        Ok(out)
    }

    /// Up to `limit` records in record-id order, starting after `after`
    /// (from the first with `None`): for walking every record in pages.
    pub fn records_after(
        &self,
        after: Option<&RecordId>,
        limit: usize,
    ) -> Result<Vec<RecordInfo>, LedgerError> {
        let txn = self.read()?;
        let table = txn
            .open_table(state_table(Table::Records))
            .map_err(|e| self.err(e))?;
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
        let snap = self.snapshot()?;
        let t = snap.table(Table::Audit);
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
}

fn corrupt(what: &'static str) -> LedgerError {
    LedgerError::Corrupt(DecodeError::Invalid {
        what,
        reason: "dangling index entry".into(),
    })
}

/// A read snapshot of the state; implements [`StateRead`] for the executor.
pub struct Snapshot {
    tables: Vec<(Table, ReadStateTable)>,
    path: PathBuf,
}

impl Snapshot {
    fn table(&self, t: Table) -> &ReadStateTable {
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

    fn raw_get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, LedgerError> {
        let v = self.table(table).get(key).map_err(|e| self.err(e))?;
        Ok(v.map(|v| v.value().to_vec()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use rr_core::{BlockContext, WriteSet};

    fn block_after(head: &Head, time: u64) -> Block {
        Block::new(
            BlockContext {
                height: head.height + 1,
                time: Timestamp(time),
            },
            head.block_hash,
            vec![],
        )
    }

    fn exec(key: &[u8], value: &[u8]) -> Execution {
        let mut writes = WriteSet::new();
        writes.put(Table::Records, key.to_vec(), value.to_vec());
        Execution {
            receipts: vec![],
            writes,
        }
    }

    #[test]
    fn commits_advance_the_head_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(ledger.head().unwrap(), Head::default());
        let b1 = block_after(&ledger.head().unwrap(), 10);
        let h1 = ledger.commit_block(&b1, &exec(b"k", b"v1")).unwrap();
        assert_eq!(h1.height, 1);
        let b2 = block_after(&h1, 20);
        let mut e2 = exec(b"k2", b"v2");
        e2.writes.delete(Table::Records, b"k".to_vec());
        let h2 = ledger.commit_block(&b2, &e2).unwrap();
        drop(ledger);

        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(ledger.head().unwrap(), h2);
        assert_eq!(ledger.block(1).unwrap().unwrap(), b1);
        let snap = ledger.snapshot().unwrap();
        assert_eq!(snap.get(Table::Records, b"k").unwrap(), None);
        assert_eq!(
            snap.get(Table::Records, b"k2").unwrap(),
            Some(b"v2".to_vec())
        );

        // The digest is the chain of the write sets, as a memory state computes it.
        let mut mem = rr_core::MemoryState::new();
        mem.apply(&b1.header.context, &exec(b"k", b"v1").writes);
        mem.apply(&b2.header.context, &e2.writes);
        assert_eq!(mem.digest(), h2.state_digest);
    }

    #[test]
    fn records_after_walks_every_record_in_pages() {
        use rr_core::{AccountId, ContentId, RecordId, RecordInfo, SchemeId};
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
        let mut writes = WriteSet::new();
        let mut ids = Vec::new();
        for i in 0..5u8 {
            let id = RecordId([i; 32]);
            let info = RecordInfo {
                id,
                owner: AccountId([7; 32]),
                cid: ContentId::from_sha256([i; 32]),
                size: 1,
                scheme: SchemeId::UMBRAL,
                record_key: vec![],
                capsule: vec![],
                media_type: "text/plain".into(),
                encrypted_metadata: None,
                registered: BlockContext {
                    height: 1,
                    time: Timestamp(1),
                },
                audit_len: 0,
            };
            writes.put(Table::Records, keys::record(&id), info.to_bytes());
            ids.push(id);
        }
        let block = block_after(&Head::default(), 1);
        ledger
            .commit_block(
                &block,
                &Execution {
                    receipts: vec![],
                    writes,
                },
            )
            .unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = ledger.records_after(after.as_ref(), 2).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            after = page.last().map(|r| r.id);
            seen.extend(page.into_iter().map(|r| r.id));
        }
        assert_eq!(seen, ids);
    }

    #[test]
    fn a_block_that_does_not_extend_the_head_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
        let h1 = ledger
            .commit_block(&block_after(&Head::default(), 1), &exec(b"a", b"1"))
            .unwrap();
        // Same height again.
        let err = ledger
            .commit_block(&block_after(&Head::default(), 2), &exec(b"b", b"2"))
            .unwrap_err();
        assert!(
            matches!(err, LedgerError::NotNext { height: 1, .. }),
            "{err}"
        );
        // Right height, wrong parent.
        let mut forged = block_after(&h1, 3);
        forged.header.parent = BlockHash([9; 32]);
        assert!(ledger.commit_block(&forged, &exec(b"c", b"3")).is_err());
        assert_eq!(ledger.head().unwrap(), h1);
        let snap = ledger.snapshot().unwrap();
        assert_eq!(snap.get(Table::Records, b"b").unwrap(), None);
        assert_eq!(snap.get(Table::Records, b"c").unwrap(), None);
    }

    /// A block after `head` with the execution of two calls, one of them the
    /// transaction `dup` (so tx-index first-wins is exercised across blocks).
    fn step(head: &Head, n: u8, dup: TxId) -> (Block, Execution) {
        let block = block_after(head, 100 + n as u64);
        let ctx = block.header.context;
        let receipt = |tx: TxId, index: u32| Receipt {
            tx,
            context: ctx,
            index,
            outcome: rr_core::Outcome::Ok(rr_core::CallOutput::Registered {
                record: RecordId([n; 32]),
            }),
        };
        let mut execution = exec(&[n], &[n, n]);
        if n > 1 {
            // Overwrite and delete what the block before wrote.
            execution.writes.delete(Table::Records, vec![n - 1]);
            execution
                .writes
                .put(Table::Nonces, b"last".to_vec(), vec![n]);
        }
        execution.receipts = vec![receipt(TxId([n; 32]), 0), receipt(dup, 1)];
        (block, execution)
    }

    fn batch_of_three(start: &Head) -> Vec<(Block, Execution)> {
        let dup = TxId([0xdd; 32]);
        let mut head = *start;
        let mut out = Vec::new();
        for n in 1..=3u8 {
            let (b, e) = step(&head, n, dup);
            head = head.next(&b, &e).unwrap();
            out.push((b, e));
        }
        out
    }

    fn dump(ledger: &Ledger) -> (Head, Vec<Block>, Vec<Vec<Receipt>>, Entries, Entries) {
        let head = ledger.head().unwrap();
        let blocks = (1..=head.height)
            .map(|h| ledger.block(h).unwrap().unwrap())
            .collect();
        let receipts = (1..=head.height)
            .map(|h| ledger.block_receipts(h).unwrap().unwrap())
            .collect();
        let snap = ledger.snapshot().unwrap();
        (
            head,
            blocks,
            receipts,
            snap.scan_prefix(Table::Records, b"").unwrap(),
            snap.scan_prefix(Table::Nonces, b"").unwrap(),
        )
    }

    #[test]
    fn a_batch_commit_equals_the_single_commits() {
        let dir = tempfile::tempdir().unwrap();
        let single = Ledger::open(dir.path().join("single.redb")).unwrap();
        let batched = Ledger::open(dir.path().join("batched.redb")).unwrap();
        let blocks = batch_of_three(&Head::default());
        let mut h = Head::default();
        for (b, e) in &blocks {
            h = single.commit_block(b, e).unwrap();
        }
        let hb = batched.commit_blocks(&blocks).unwrap();
        assert_eq!(hb, h);
        assert_eq!(hb.height, 3);
        assert_eq!(dump(&batched), dump(&single));
        // The state digest chains as a memory state computes it.
        let mut mem = rr_core::MemoryState::new();
        for (b, e) in &blocks {
            mem.apply(&b.header.context, &e.writes);
        }
        assert_eq!(mem.digest(), hb.state_digest);
        // The later blocks' writes win, and the duplicate tx id keeps pointing
        // at its first receipt (block 1), within the batch as across commits.
        let snap = batched.snapshot().unwrap();
        assert_eq!(snap.get(Table::Records, &[1]).unwrap(), None);
        assert_eq!(snap.get(Table::Records, &[3]).unwrap(), Some(vec![3, 3]));
        let dup = batched.receipt(&TxId([0xdd; 32])).unwrap().unwrap();
        assert_eq!(dup.context.height, 1);
        assert_eq!(dup, single.receipt(&TxId([0xdd; 32])).unwrap().unwrap());
        assert_eq!(
            batched
                .receipt(&TxId([2; 32]))
                .unwrap()
                .unwrap()
                .context
                .height,
            2
        );
        // A second batch goes on from there; an empty batch changes nothing.
        assert_eq!(batched.commit_blocks::<Block, Execution>(&[]).unwrap(), hb);
        let (b4, e4) = step(&hb, 4, TxId([0xdd; 32]));
        let h4 = batched.commit_blocks(&[(&b4, &e4)]).unwrap();
        assert_eq!(h4, hb.next(&b4, &e4).unwrap());
        assert_eq!(batched.head().unwrap(), h4);
    }

    #[test]
    fn a_batch_with_a_block_that_does_not_chain_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
        let h0 = ledger
            .commit_block(&block_after(&Head::default(), 1), &exec(b"a", b"1"))
            .unwrap();
        let mut blocks = batch_of_three(&h0);
        // The second block has the right height but the wrong parent.
        blocks[1].0.header.parent = BlockHash([9; 32]);
        let err = ledger.commit_blocks(&blocks).unwrap_err();
        assert!(
            matches!(
                err,
                LedgerError::NotNext {
                    height: 3,
                    head_height: 2,
                    ..
                }
            ),
            "{err}"
        );
        // Nothing of the batch is there, not even its valid first block.
        assert_eq!(ledger.head().unwrap(), h0);
        assert_eq!(ledger.block(2).unwrap(), None);
        assert_eq!(ledger.block_receipts(2).unwrap(), None);
        assert_eq!(ledger.receipt(&TxId([1; 32])).unwrap(), None);
        assert_eq!(ledger.receipt(&TxId([0xdd; 32])).unwrap(), None);
        let snap = ledger.snapshot().unwrap();
        assert_eq!(snap.get(Table::Records, &[1]).unwrap(), None);
        assert_eq!(snap.get(Table::Nonces, b"last").unwrap(), None);
        assert_eq!(snap.get(Table::Records, b"a").unwrap(), Some(b"1".to_vec()));
        // A batch whose second block repeats the first's height is refused too.
        let mut blocks = batch_of_three(&h0);
        blocks[1] = blocks[0].clone();
        assert!(ledger.commit_blocks(&blocks).is_err());
        assert_eq!(ledger.head().unwrap(), h0);
        // The untouched batch then commits.
        let blocks = batch_of_three(&h0);
        assert_eq!(ledger.commit_blocks(&blocks).unwrap().height, 4);
    }

    #[test]
    fn refuses_a_file_that_is_not_a_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.redb");
        std::fs::write(&path, b"this is not a redb file at all, just some text").unwrap();
        let err = Ledger::open(&path).unwrap_err();
        assert!(err.to_string().contains("junk.redb"), "{err}");
    }
}
