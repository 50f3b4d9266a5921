//! The write-ahead log: what a replica signed and collected, in its own redb
//! file, so that after a restart it never signs anything that conflicts with
//! what it signed before and resumes its sequence numbers.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use rr_core::codec;

use super::message::{CheckpointCert, Payload, PreparedCert, SignedMessage, MAX_MESSAGE_BYTES};
use super::replica::{Recovered, WalRecord};

/// Own signed messages, by `seq ++ view ++ kind` (big-endian, so ordered).
const SENT: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("sent");
/// Prepared certificates, by sequence number (the highest view's).
const PREPARED: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("prepared");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const STABLE_KEY: &str = "stable";

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// redb failed.
    #[error("write-ahead log {path}: {source}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::Error,
    },
    /// A record does not decode.
    #[error("write-ahead log {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A replica's write-ahead log (a redb file apart from the ledger).
///
/// # Correctness
/// [`Wal::append`] returns only once its records are durable, and the engine
/// sends no message before the records that precede it are appended.
pub struct Wal {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("path", &self.path).finish()
    }
}

fn sent_key(m: &SignedMessage) -> Option<[u8; 17]> {
    let (seq, view, kind) = match &m.payload {
        Payload::PrePrepare(pp) => (pp.seq, pp.view, 0u8),
        Payload::Prepare(v) => (v.seq, v.view, 1),
        Payload::Commit(v) => (v.seq, v.view, 2),
        // View messages sort first (sequence number 0).
        Payload::ViewChange(vc) => (0, vc.new_view, 3),
        Payload::NewView(nv) => (0, nv.view, 4),
        _ => return None,
    };
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&seq.to_be_bytes());
    k[8..16].copy_from_slice(&view.to_be_bytes());
    k[16] = kind;
    Some(k)
}

impl Wal {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WalError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path).map_err(|e| WalError::Storage {
            path: path.clone(),
            source: e.into(),
        })?;
        let wal = Self { db, path };
        let txn = wal.db.begin_write().map_err(|e| wal.err(e))?;
        txn.open_table(SENT).map_err(|e| wal.err(e))?;
        txn.open_table(PREPARED).map_err(|e| wal.err(e))?;
        txn.open_table(META).map_err(|e| wal.err(e))?;
        txn.commit().map_err(|e| wal.err(e))?;
        Ok(wal)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> WalError {
        WalError::Storage {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    fn corrupt(&self, reason: impl ToString) -> WalError {
        WalError::Corrupt {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// Appends records in one durable transaction; a stable checkpoint also
    /// drops everything at or below it.
    pub fn append(&self, records: &[WalRecord]) -> Result<(), WalError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| self.err(e))?;
        {
            let mut sent = txn.open_table(SENT).map_err(|e| self.err(e))?;
            let mut prepared = txn.open_table(PREPARED).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            for r in records {
                match r {
                    WalRecord::Sent(m) => {
                        if let Some(k) = sent_key(m) {
                            sent.insert(k.as_slice(), m.to_bytes().as_slice())
                                .map_err(|e| self.err(e))?;
                        }
                    }
                    WalRecord::Prepared(cert) => {
                        if let Some(pp) = cert.pre_prepare() {
                            prepared
                                .insert(pp.seq, codec::encode(cert).as_slice())
                                .map_err(|e| self.err(e))?;
                        }
                    }
                    WalRecord::Stable(cert) => {
                        let Some(head) = cert.head() else {
                            continue;
                        };
                        meta.insert(STABLE_KEY, codec::encode(cert).as_slice())
                            .map_err(|e| self.err(e))?;
                        let mut lo = [0u8; 17];
                        lo[..8].copy_from_slice(&1u64.to_be_bytes());
                        let mut hi = [0xffu8; 17];
                        hi[..8].copy_from_slice(&head.height.to_be_bytes());
                        sent.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)
                            .map_err(|e| self.err(e))?;
                        prepared
                            .retain_in(..=head.height, |_, _| false)
                            .map_err(|e| self.err(e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What the replica needs to resume.
    pub fn recover(&self) -> Result<Recovered, WalError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let sent_t = txn.open_table(SENT).map_err(|e| self.err(e))?;
        let prepared_t = txn.open_table(PREPARED).map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let mut out = Recovered::default();
        for item in sent_t.iter().map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.sent
                .push(SignedMessage::from_bytes(v.value()).map_err(|e| self.corrupt(e))?);
        }
        for item in prepared_t.iter().map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            let cert: PreparedCert =
                codec::decode("prepared certificate", v.value(), MAX_MESSAGE_BYTES)
                    .map_err(|e| self.corrupt(e))?;
            out.prepared.push(cert);
        }
        if let Some(v) = meta.get(STABLE_KEY).map_err(|e| self.err(e))? {
            let cert: CheckpointCert =
                codec::decode("checkpoint certificate", v.value(), MAX_MESSAGE_BYTES)
                    .map_err(|e| self.corrupt(e))?;
            out.stable = Some(cert);
        }
        Ok(out)
    }
}
