//! The ledger: blocks, receipts, the replicated state and its certified
//! headers in one redb database.
//!
//! Each block is committed together with the write set its execution
//! produced, in one redb write transaction with immediate durability. redb's
//! commit is crash-safe (copy-on-write B-trees and a checksummed commit
//! slot), so after a crash the database holds exactly the blocks whose
//! commit returned, and a receipt a client was shown is never lost.
//!
//! # Certified state
//!
//! Every state entry is a leaf of a sparse Merkle tree ([`rr_core::smt`]),
//! kept in memory as a [`StateTree`] (rebuilt from the state tables when the
//! ledger opens, and checked against the last header's state root). Each
//! commit computes, for every block, its [`LedgerHeader`]: the state root
//! after the block, the Merkle root of its receipts, the hash of the block
//! and of the previous header, and the replica set. The header is stored
//! with the block; the replicas' signatures over it (a certificate, once a
//! quorum signed) are stored beside it as they arrive.
//!
//! The state root costs one in-memory tree update per written entry and no
//! extra row per entry: internal tree nodes are never written to disk. The
//! price is memory (about 150 bytes per state entry) and the rebuild at
//! open (one BLAKE3 pass over the state).
//!
//! Readers take a [`StateReader`]: a redb snapshot of the head and the tree
//! version of that same head, so every value it returns comes with a proof
//! against the head's header ([`StateReader::prove`]).

mod migrate;
mod reader;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use rr_core::cert::{Certificate, HeaderSignature, LedgerHeader};
use rr_core::merkle::{self, MerkleProof};
use rr_core::{
    smt, AccountId, AuditEntry, Block, BlockHash, DecodeError, Digest, Execution, GrantId,
    GrantInfo, Receipt, RecordId, RecordInfo, StateError, Table, Timestamp, TxId,
};
use serde::{Deserialize, Serialize};

use crate::state_tree::StateTree;

pub use migrate::{migrate_v1, MigrationReport};
pub use reader::{Entries, Snapshot, StateReader};

const BLOCKS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_RECEIPTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("block_receipts");
const TX_INDEX: TableDefinition<'static, &[u8], (u64, u32)> = TableDefinition::new("tx_index");
const HEADERS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("headers");
const SIGNATURES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("signatures");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const HEAD_KEY: &str = "head";
const FORMAT_KEY: &str = "format";
const REPLICA_SET_KEY: &str = "replica_set";
/// The current format: v2 added the state tree's layout (counted listings),
/// headers and certificates.
const FORMAT: &[u8] = b"resilient-records ledger v2";
/// The format before certified state; [`migrate_v1`] replays it into v2.
const FORMAT_V1: &[u8] = b"resilient-records ledger v1";

/// Tree versions kept for readers: a reader's snapshot is of the head when it
/// began, and the head moves on by at most a few commits while it reads.
const VERSIONS_KEPT: usize = 64;

/// A state table as the write path opens it.
type StateTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

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
    /// A stored value does not decode, or the state does not match its
    /// certified root.
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
    /// A ledger of the first format, before certified state: it must be
    /// migrated ([`migrate_v1`]) before it opens.
    #[error("{path} is a ledger of the first format (before certified state); it must be migrated, which replays its blocks into the current format (rr-node does this when it opens a data directory)")]
    NeedsMigration {
        /// The database file.
        path: PathBuf,
    },
    /// The ledger was created for another replica set.
    #[error("{path} is the ledger of replica set {found}, not of {expected}: wrong data directory, or the replica keys changed")]
    ReplicaSetMismatch {
        /// The database file.
        path: PathBuf,
        /// The set asked for.
        expected: Digest,
        /// The set it was created for.
        found: Digest,
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
    /// The hash of its [`LedgerHeader`], which commits to the state root
    /// after it, its receipts and every header before it (zeros before the
    /// first block).
    pub state_digest: Digest,
}

impl Head {
    /// Checks that `block` extends this head (the next height, this head as
    /// its parent).
    pub fn check_next(&self, block: &Block) -> Result<(), LedgerError> {
        let ctx = block.header.context;
        if ctx.height != self.height + 1 || block.header.parent != self.block_hash {
            return Err(LedgerError::NotNext {
                height: ctx.height,
                parent: block.header.parent,
                head_height: self.height,
                head_hash: self.block_hash,
            });
        }
        Ok(())
    }
}

/// A block as committed: the head after it and its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The head after the block.
    pub head: Head,
    /// Its header.
    pub header: LedgerHeader,
}

/// Signs a header as it is committed (the committing replica's own
/// signature, kept with the block).
pub type HeaderSigner<'a> = &'a (dyn Fn(&LedgerHeader) -> HeaderSignature + Sync);

/// A version of the state tree, at one height.
#[derive(Clone)]
pub(crate) struct Version {
    pub(crate) head: Head,
    pub(crate) header: LedgerHeader,
    pub(crate) tree: StateTree,
}

/// The redb-backed ledger. Cheap to share behind an `Arc`; reads run
/// concurrently with the one writer.
pub struct Ledger {
    db: Database,
    path: PathBuf,
    replica_set: Digest,
    /// The tree at each recent height, newest last. A version is pushed
    /// before its commit, so a reader always finds the version of the head
    /// its snapshot shows.
    versions: RwLock<VecDeque<Version>>,
    /// One commit at a time (redb would serialize them anyway; this keeps the
    /// versions in step with the commits).
    commit: Mutex<()>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

fn storage_err(path: &Path) -> impl Fn(redb::Error) -> LedgerError + '_ {
    move |e| LedgerError::Storage {
        path: path.to_path_buf(),
        source: e,
    }
}

fn decode_head(bytes: Option<&[u8]>) -> Result<Head, LedgerError> {
    match bytes {
        None => Ok(Head::default()),
        Some(v) => Ok(rr_core::codec::decode("ledger head", v, 1024)?),
    }
}

impl Ledger {
    /// Opens the ledger at `path`, creating it (and its tables) if absent.
    /// A new ledger is of no particular replica set (its headers name the
    /// zero digest); an existing one keeps the set it was created for.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        Self::open_inner(path.as_ref(), None)
    }

    /// Opens the ledger of the replica set with digest `replica_set`
    /// ([`rr_core::cert::ReplicaSetInfo::digest`]), creating it if absent.
    /// Refuses a ledger created for another set.
    pub fn open_for(path: impl AsRef<Path>, replica_set: Digest) -> Result<Self, LedgerError> {
        Self::open_inner(path.as_ref(), Some(replica_set))
    }

    fn open_inner(path: &Path, replica_set: Option<Digest>) -> Result<Self, LedgerError> {
        let err = storage_err(path);
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let txn = db.begin_write().map_err(|e| err(e.into()))?;
        let set = {
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
                Some(f) if f == FORMAT_V1 => {
                    return Err(LedgerError::NeedsMigration {
                        path: path.to_path_buf(),
                    })
                }
                Some(f) => {
                    return Err(LedgerError::WrongFormat {
                        path: path.to_path_buf(),
                        found: String::from_utf8_lossy(&f).into_owned(),
                    })
                }
            }
            let stored = meta
                .get(REPLICA_SET_KEY)
                .map_err(|e| err(e.into()))?
                .map(|v| v.value().to_vec());
            match (stored, replica_set) {
                (Some(s), want) => {
                    let found = Digest(s.as_slice().try_into().map_err(|_| {
                        LedgerError::Corrupt(DecodeError::Invalid {
                            what: "replica set digest",
                            reason: format!("{} bytes", s.len()),
                        })
                    })?);
                    if let Some(expected) = want.filter(|w| *w != found) {
                        return Err(LedgerError::ReplicaSetMismatch {
                            path: path.to_path_buf(),
                            expected,
                            found,
                        });
                    }
                    found
                }
                (None, want) => {
                    let set = want.unwrap_or_default();
                    meta.insert(REPLICA_SET_KEY, set.0.as_slice())
                        .map_err(|e| err(e.into()))?;
                    set
                }
            }
        };
        for t in [BLOCKS, BLOCK_RECEIPTS, HEADERS, SIGNATURES] {
            txn.open_table(t).map_err(|e| err(e.into()))?;
        }
        txn.open_table(TX_INDEX).map_err(|e| err(e.into()))?;
        for t in Table::ALL {
            txn.open_table(state_table(t)).map_err(|e| err(e.into()))?;
        }
        {
            // The genesis header: what a client of an empty ledger checks.
            let mut headers = txn.open_table(HEADERS).map_err(|e| err(e.into()))?;
            if headers.get(0).map_err(|e| err(e.into()))?.is_none() {
                headers
                    .insert(0, LedgerHeader::genesis_of(set).to_bytes().as_slice())
                    .map_err(|e| err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;

        let mut ledger = Self {
            db,
            path: path.to_path_buf(),
            replica_set: set,
            versions: RwLock::new(VecDeque::new()),
            commit: Mutex::new(()),
        };
        let version = ledger.rebuild()?;
        ledger
            .versions
            .get_mut()
            .expect("versions lock")
            .push_back(version);
        Ok(ledger)
    }

    /// Builds the state tree from the state tables and checks it against the
    /// head's header.
    fn rebuild(&self) -> Result<Version, LedgerError> {
        let txn = self.read()?;
        let head = {
            let meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let v = meta.get(HEAD_KEY).map_err(|e| self.err(e))?;
            decode_head(v.as_ref().map(|v| v.value()))?
        };
        let mut leaves = Vec::new();
        for t in Table::ALL {
            let table = txn.open_table(state_table(t)).map_err(|e| self.err(e))?;
            for item in table.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                leaves.push((smt::key_hash(t.id(), k.value()), smt::value_hash(v.value())));
            }
        }
        let tree = StateTree::from_leaves(leaves);
        let header = self.header_in(&txn, head.height)?.ok_or_else(|| {
            LedgerError::Corrupt(DecodeError::Invalid {
                what: "ledger",
                reason: format!("no header at its head, height {}", head.height),
            })
        })?;
        if header.state_root != tree.root() {
            return Err(LedgerError::Corrupt(DecodeError::Invalid {
                what: "ledger state",
                reason: format!(
                    "the state tables hash to {}, but the header at height {} certifies {}",
                    tree.root(),
                    head.height,
                    header.state_root
                ),
            }));
        }
        Ok(Version { head, header, tree })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The digest of the replica set whose headers this ledger holds.
    pub fn replica_set(&self) -> Digest {
        self.replica_set
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
        decode_head(head.as_ref().map(|v| v.value()))
    }

    /// A consistent snapshot of the state for the executor.
    pub fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        Snapshot::new(self.read()?, &self.path)
    }

    /// A consistent snapshot of the head with the state tree of that head:
    /// values with proofs.
    pub fn reader(&self) -> Result<StateReader, LedgerError> {
        let snapshot = self.snapshot()?;
        let height = snapshot.head().height;
        let version = self
            .versions
            .read()
            .expect("versions lock")
            .iter()
            .rev()
            .find(|v| v.head.height == height)
            .cloned()
            .ok_or_else(|| {
                LedgerError::Corrupt(DecodeError::Invalid {
                    what: "ledger",
                    reason: format!("no state tree version for height {height}"),
                })
            })?;
        Ok(StateReader::new(snapshot, version))
    }

    /// Commits `block` with the effects of executing it, atomically and
    /// durably, and returns the new head. Refuses a block that does not extend
    /// the head (and then changes nothing).
    pub fn commit_block(&self, block: &Block, execution: &Execution) -> Result<Head, LedgerError> {
        let done = self.commit_blocks(std::slice::from_ref(&(block, execution)), None)?;
        Ok(done.last().expect("one block").head)
    }

    /// Commits several consecutive blocks, each with the effects of executing
    /// it, in one atomic and durable write transaction (one fsync for all),
    /// and returns each block's head and header. Each block must extend the
    /// one before it (the first, the current head); on any error nothing at
    /// all is written. With `signer`, each header is stored with the
    /// signature it makes. An empty slice writes nothing.
    pub fn commit_blocks<B, X>(
        &self,
        blocks: &[(B, X)],
        signer: Option<HeaderSigner<'_>>,
    ) -> Result<Vec<Committed>, LedgerError>
    where
        B: std::borrow::Borrow<Block>,
        X: std::borrow::Borrow<Execution>,
    {
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        let _one = self.commit.lock().expect("commit lock");
        let base = self
            .versions
            .read()
            .expect("versions lock")
            .back()
            .cloned()
            .expect("a version is kept");
        let base_head = base.head;
        // Compute every block's header and tree version first (no I/O).
        let mut prev = base;
        let mut made: Vec<Version> = Vec::with_capacity(blocks.len());
        let mut stored_receipts: Vec<Vec<u8>> = Vec::with_capacity(blocks.len());
        for (block, execution) in blocks {
            let (block, execution) = (block.borrow(), execution.borrow());
            prev.head.check_next(block)?;
            let updates: Vec<(Digest, Option<Digest>)> = execution
                .writes
                .iter()
                .map(|(t, k, v)| (smt::key_hash(t.id(), k), v.map(smt::value_hash)))
                .collect();
            let tree = prev.tree.apply(updates);
            let (stored, leaves) = encode_receipts(&execution.receipts);
            stored_receipts.push(stored);
            let ctx = block.header.context;
            let header = LedgerHeader {
                replica_set: self.replica_set,
                height: ctx.height,
                time: ctx.time,
                block: block.header.hash(),
                parent: prev.header.hash(),
                state_root: tree.root(),
                receipts_root: merkle::root(&leaves),
                receipts: execution.receipts.len() as u32,
            };
            let head = Head {
                height: ctx.height,
                block_hash: header.block,
                time: ctx.time,
                state_digest: header.hash(),
            };
            let v = Version { head, header, tree };
            made.push(v.clone());
            prev = v;
        }

        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| self.err(e))?;
        // Any early return drops `txn`, which aborts it: nothing is written.
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let stored = decode_head(
                meta.get(HEAD_KEY)
                    .map_err(|e| self.err(e))?
                    .as_ref()
                    .map(|v| v.value()),
            )?;
            if stored != base_head {
                // The database moved under the kept version: only another
                // writer could do that, and redb's file lock forbids it.
                return Err(LedgerError::Corrupt(DecodeError::Invalid {
                    what: "ledger",
                    reason: format!(
                        "its head is at height {}, its state tree at {}",
                        stored.height, base_head.height
                    ),
                }));
            }
            let mut block_table = txn.open_table(BLOCKS).map_err(|e| self.err(e))?;
            let mut receipts = txn.open_table(BLOCK_RECEIPTS).map_err(|e| self.err(e))?;
            let mut index = txn.open_table(TX_INDEX).map_err(|e| self.err(e))?;
            let mut headers = txn.open_table(HEADERS).map_err(|e| self.err(e))?;
            let mut sigs = txn.open_table(SIGNATURES).map_err(|e| self.err(e))?;
            let mut open: Vec<(Table, StateTable<'_>)> = Vec::new();
            for (((block, execution), v), stored) in blocks.iter().zip(&made).zip(&stored_receipts)
            {
                let (block, execution) = (block.borrow(), execution.borrow());
                let height = v.head.height;
                block_table
                    .insert(height, block.to_bytes().as_slice())
                    .map_err(|e| self.err(e))?;
                receipts
                    .insert(height, stored.as_slice())
                    .map_err(|e| self.err(e))?;
                headers
                    .insert(height, v.header.to_bytes().as_slice())
                    .map_err(|e| self.err(e))?;
                if let Some(sign) = signer {
                    let own = vec![sign(&v.header)];
                    sigs.insert(height, rr_core::codec::encode(&own).as_slice())
                        .map_err(|e| self.err(e))?;
                }
                for r in &execution.receipts {
                    // First receipt wins: a replayed copy of a transaction gets
                    // its own refusal receipt in its block, but the id keeps
                    // pointing at the original (also within one batch). One
                    // insert in the usual case; the rare duplicate puts the
                    // original back.
                    let first = index
                        .insert(r.tx.0.as_slice(), (height, r.index))
                        .map_err(|e| self.err(e))?
                        .map(|v| v.value());
                    if let Some(first) = first {
                        index
                            .insert(r.tx.0.as_slice(), first)
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
            let last = made.last().expect("non-empty").head;
            meta.insert(HEAD_KEY, rr_core::codec::encode(&last).as_slice())
                .map_err(|e| self.err(e))?;
        }
        // Readers must find the version of whatever head redb shows them:
        // the new versions go in before the commit makes the head visible.
        {
            let mut versions = self.versions.write().expect("versions lock");
            versions.extend(made.iter().cloned());
            while versions.len() > VERSIONS_KEPT {
                versions.pop_front();
            }
        }
        if let Err(e) = txn.commit() {
            let mut versions = self.versions.write().expect("versions lock");
            for _ in 0..made.len() {
                versions.pop_back();
            }
            return Err(self.err(e));
        }
        Ok(made
            .into_iter()
            .map(|v| Committed {
                head: v.head,
                header: v.header,
            })
            .collect())
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
        self.receipts_in(&txn, height)
    }

    fn receipts_in(
        &self,
        txn: &ReadTransaction,
        height: u64,
    ) -> Result<Option<Vec<Receipt>>, LedgerError> {
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

    /// The header at `height` (0: the genesis header).
    pub fn header(&self, height: u64) -> Result<Option<LedgerHeader>, LedgerError> {
        let txn = self.read()?;
        self.header_in(&txn, height)
    }

    fn header_in(
        &self,
        txn: &ReadTransaction,
        height: u64,
    ) -> Result<Option<LedgerHeader>, LedgerError> {
        let t = txn.open_table(HEADERS).map_err(|e| self.err(e))?;
        let v = t.get(height).map_err(|e| self.err(e))?;
        Ok(match v {
            Some(v) => Some(LedgerHeader::from_bytes(v.value())?),
            None => None,
        })
    }

    /// The signatures stored for the header at `height`, in replica order.
    pub fn signatures(&self, height: u64) -> Result<Vec<HeaderSignature>, LedgerError> {
        let txn = self.read()?;
        let t = txn.open_table(SIGNATURES).map_err(|e| self.err(e))?;
        let v = t.get(height).map_err(|e| self.err(e))?;
        Ok(match v {
            Some(v) => rr_core::codec::decode(
                "header signatures",
                v.value(),
                rr_core::cert::MAX_CERTIFICATE_BYTES,
            )?,
            None => Vec::new(),
        })
    }

    /// The header at `height` with every signature stored for it (whether
    /// they make a quorum is for [`Certificate::verify`] to say).
    pub fn certificate(&self, height: u64) -> Result<Option<Certificate>, LedgerError> {
        let Some(header) = self.header(height)? else {
            return Ok(None);
        };
        Ok(Some(Certificate {
            header,
            signatures: self.signatures(height)?,
        }))
    }

    /// Stores signatures of the header at `height`, replacing those stored.
    /// Not durable on its own: a crash may lose them until the next block
    /// commit, and they can always be gathered again from the replicas.
    pub fn put_signatures(
        &self,
        height: u64,
        signatures: &[HeaderSignature],
    ) -> Result<(), LedgerError> {
        self.put_signature_sets(&[(height, signatures.to_vec())])
    }

    /// [`Ledger::put_signatures`] for several heights, in one write.
    pub fn put_signature_sets(
        &self,
        sets: &[(u64, Vec<HeaderSignature>)],
    ) -> Result<(), LedgerError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(SIGNATURES).map_err(|e| self.err(e))?;
            for (height, signatures) in sets {
                t.insert(*height, rr_core::codec::encode(signatures).as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// A record.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordInfo>, LedgerError> {
        self.snapshot()?.record(id)
    }

    /// A grant.
    pub fn grant(&self, id: &GrantId) -> Result<Option<GrantInfo>, LedgerError> {
        self.snapshot()?.grant(id)
    }

    /// The grants of a record, in the order they were made.
    pub fn grants_of_record(&self, id: &RecordId) -> Result<Vec<GrantInfo>, LedgerError> {
        self.snapshot()?.grants_of_record(id)
    }

    /// The grants an account holds as grantee, in the order they were made.
    pub fn grants_held_by(&self, account: &AccountId) -> Result<Vec<GrantInfo>, LedgerError> {
        self.snapshot()?.grants_held_by(account)
    }

    /// The records an account owns, in the order it registered them.
    pub fn records_owned_by(&self, owner: &AccountId) -> Result<Vec<RecordInfo>, LedgerError> {
        self.snapshot()?.records_owned_by(owner)
    }

    /// Up to `limit` records in record-id order, starting after `after`
    /// (from the first with `None`): for walking every record in pages.
    pub fn records_after(
        &self,
        after: Option<&RecordId>,
        limit: usize,
    ) -> Result<Vec<RecordInfo>, LedgerError> {
        self.snapshot()?.records_after(after, limit)
    }

    /// Up to `limit` audit entries of a record, from position `from`.
    pub fn audit(
        &self,
        record: &RecordId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, LedgerError> {
        self.snapshot()?.audit(record, from, limit)
    }

    /// Where transaction `tx` was first executed: height and index.
    pub fn locate(&self, tx: &TxId) -> Result<Option<(u64, u32)>, LedgerError> {
        let txn = self.read()?;
        let index = txn.open_table(TX_INDEX).map_err(|e| self.err(e))?;
        let pos = index.get(tx.0.as_slice()).map_err(|e| self.err(e))?;
        Ok(pos.map(|p| p.value()))
    }

    /// The receipt of the first execution of transaction `tx`.
    pub fn receipt(&self, tx: &TxId) -> Result<Option<Receipt>, LedgerError> {
        let Some((height, i)) = self.locate(tx)? else {
            return Ok(None);
        };
        let receipts = self.block_receipts(height)?.unwrap_or_default();
        Ok(receipts.into_iter().nth(i as usize))
    }

    /// The receipt of the first execution of `tx`, its Merkle proof against
    /// its block's receipts root, and that block's header.
    pub fn receipt_proof(
        &self,
        tx: &TxId,
    ) -> Result<Option<(Receipt, MerkleProof, LedgerHeader)>, LedgerError> {
        let Some((height, i)) = self.locate(tx)? else {
            return Ok(None);
        };
        let txn = self.read()?;
        let receipts = self.receipts_in(&txn, height)?.unwrap_or_default();
        let header = self.header_in(&txn, height)?;
        let (Some(receipt), Some(header)) = (receipts.get(i as usize).cloned(), header) else {
            return Err(LedgerError::Corrupt(DecodeError::Invalid {
                what: "ledger",
                reason: format!("transaction {tx} is indexed at {height}/{i}, which is missing"),
            }));
        };
        let (_, leaves) = encode_receipts(&receipts);
        Ok(Some((receipt, merkle::prove(&leaves, i as usize), header)))
    }
}

/// A block's receipts as the ledger stores them (their canonical encoding as
/// a list: the count, then each receipt's bytes) and each receipt's Merkle
/// leaf (over the same bytes), with every receipt encoded once.
fn encode_receipts(receipts: &[Receipt]) -> (Vec<u8>, Vec<Digest>) {
    let mut stored = rr_core::codec::encode(&receipts.len());
    let leaves = receipts
        .iter()
        .map(|r| {
            let bytes = r.to_bytes();
            stored.extend_from_slice(&bytes);
            merkle::leaf_hash(&bytes)
        })
        .collect();
    (stored, leaves)
}

#[cfg(test)]
mod tests;
