//! Migrating a ledger of the first format (before certified state).
//!
//! The first format kept the same blocks but another state layout (listings
//! keyed by member, not counted) and no headers. Execution is deterministic,
//! so the migration replays every block through the executor into a new
//! ledger and checks that each call gets the very receipt it got the first
//! time: the new ledger is the old history, certified from its first block.
//! A call whose outcome would differ (possible only where the rules became
//! stricter since) stops the migration with its height, and the old ledger
//! is left as it was.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase};
use rr_core::{
    Block, ContractExecutor, DecodeError, Digest, Execution, Overlay, Receipt, VerifiedTransaction,
    WriteSet,
};

use super::{
    decode_head, HeaderSigner, Ledger, LedgerError, BLOCKS, BLOCK_RECEIPTS, HEAD_KEY, META,
};

/// Blocks replayed per durable commit.
const GROUP: u64 = 64;

/// What a migration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    /// Blocks replayed.
    pub blocks: u64,
    /// Where the first-format ledger was kept.
    pub backup: PathBuf,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn diverged(height: u64, reason: String) -> LedgerError {
    LedgerError::Corrupt(DecodeError::Invalid {
        what: "ledger migration",
        reason: format!(
            "replaying block {height} gives another outcome than it had ({reason}); the ledger was not migrated and is unchanged"
        ),
    })
}

/// Migrates the first-format ledger at `path` in place: its blocks are
/// replayed through `executor` into a new ledger of the replica set
/// `replica_set` (signing each header with `signer`, if given), every
/// receipt is checked against the one stored, and then the old file is
/// kept as `<path>.v1` and the new one takes its place. Interrupted, it
/// starts again from the old file (or finishes the last rename) the next
/// time.
pub fn migrate_v1(
    path: &Path,
    replica_set: Digest,
    executor: &dyn ContractExecutor,
    signer: Option<HeaderSigner<'_>>,
) -> Result<MigrationReport, LedgerError> {
    let backup = with_suffix(path, ".v1");
    let tmp = with_suffix(path, ".migrating");
    let io = |e: std::io::Error| LedgerError::Storage {
        path: path.to_path_buf(),
        source: redb::Error::Io(e),
    };
    if !path.exists() && backup.exists() && tmp.exists() {
        // Interrupted between the two renames.
        std::fs::rename(&tmp, path).map_err(io)?;
        return Ok(MigrationReport { blocks: 0, backup });
    }
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(io)?;
    }
    let err = |e: redb::Error| LedgerError::Storage {
        path: path.to_path_buf(),
        source: e,
    };
    let old = Database::open(path).map_err(|e| err(e.into()))?;
    let txn = old.begin_read().map_err(|e| err(e.into()))?;
    let head = {
        let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let v = meta.get(HEAD_KEY).map_err(|e| err(e.into()))?;
        decode_head(v.as_ref().map(|v| v.value()))?
    };
    let blocks = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
    let receipts = txn.open_table(BLOCK_RECEIPTS).map_err(|e| err(e.into()))?;
    let new = Ledger::open_for(&tmp, replica_set)?;
    let mut height = 1;
    while height <= head.height {
        let last = (height + GROUP - 1).min(head.height);
        let snapshot = new.snapshot()?;
        let mut pending = WriteSet::new();
        let mut done: Vec<(Block, Execution)> = Vec::new();
        for h in height..=last {
            let block = blocks
                .get(h)
                .map_err(|e| err(e.into()))?
                .map(|v| Block::from_bytes(v.value()))
                .transpose()?
                .ok_or_else(|| diverged(h, "the block is missing".into()))?;
            let stored: Vec<Receipt> = receipts
                .get(h)
                .map_err(|e| err(e.into()))?
                .map(|v| {
                    rr_core::codec::decode(
                        "block receipts",
                        v.value(),
                        rr_core::block::MAX_BLOCK_BYTES,
                    )
                })
                .transpose()?
                .unwrap_or_default();
            // Our own ledger: these were verified when they were committed.
            let txs: Vec<VerifiedTransaction> = block
                .txs
                .iter()
                .cloned()
                .map(VerifiedTransaction::from_trusted)
                .collect();
            let mut state = Overlay::new(&snapshot);
            state.writes = std::mem::take(&mut pending);
            let execution = executor
                .execute(&state, &block.header.context, &txs)
                .map_err(|e| diverged(h, e.to_string()))?;
            pending = state.writes;
            if execution.receipts != stored {
                let at = execution
                    .receipts
                    .iter()
                    .zip(&stored)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(diverged(
                    h,
                    format!(
                        "call {at}: it was {:?}, now {:?}",
                        stored.get(at).map(|r| &r.outcome),
                        execution.receipts.get(at).map(|r| &r.outcome)
                    ),
                ));
            }
            pending.extend(execution.writes.clone());
            done.push((block, execution));
        }
        drop(snapshot);
        new.commit_blocks(&done, signer)?;
        height = last + 1;
    }
    drop((blocks, receipts, txn, new, old));
    std::fs::rename(path, &backup).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(MigrationReport {
        blocks: head.height,
        backup,
    })
}
