//! The replica's own store of key fragments: node-local, never replicated.
//!
//! A grant's key fragments never enter the ledger (a ledger keeps history
//! forever, so a replica compromised after a revocation could still read an
//! old fragment from it). Each replica keeps only its own fragment here, and
//! erases it when the grant is revoked.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use rr_core::GrantId;

const FRAGMENTS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("key_fragments");
/// Grants revoked on the ledger whose erasure this replica has not yet seen
/// confirmed there.
const UNCONFIRMED: TableDefinition<'static, &[u8], ()> =
    TableDefinition::new("unconfirmed_erasures");
/// Small counters: how far the revocation follower has read the ledger.
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
const FOLLOWED_THROUGH: &str = "followed_through";

/// Errors of the fragment store.
#[derive(Debug, thiserror::Error)]
#[error("key fragment store {path}: {source}")]
pub struct FragmentStoreError {
    path: PathBuf,
    #[source]
    source: redb::Error,
}

/// The replica's key fragments, by grant, in a redb file of their own.
///
/// Erasure removes the entry in a durable commit. redb is copy-on-write, so
/// the freed page keeps the old bytes until it is reused: the store holds
/// fragments as delivered, and the sealed delivery of issue #6 (fragments
/// encrypted to the replica's sealing key) is what makes such leftovers
/// useless to a thief of the file.
pub struct FragmentStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for FragmentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FragmentStore")
            .field("path", &self.path)
            .finish()
    }
}

impl FragmentStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FragmentStoreError> {
        let path = path.as_ref().to_path_buf();
        let err = |e: redb::Error| FragmentStoreError {
            path: path.clone(),
            source: e,
        };
        let db = Database::create(&path).map_err(|e| err(e.into()))?;
        let txn = db.begin_write().map_err(|e| err(e.into()))?;
        txn.open_table(FRAGMENTS).map_err(|e| err(e.into()))?;
        txn.open_table(UNCONFIRMED).map_err(|e| err(e.into()))?;
        txn.open_table(META).map_err(|e| err(e.into()))?;
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(Self { db, path })
    }

    fn err(&self, e: impl Into<redb::Error>) -> FragmentStoreError {
        FragmentStoreError {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    /// Stores the (verified) fragment of `grant`, replacing any earlier copy.
    pub fn put(&self, grant: &GrantId, fragment: &[u8]) -> Result<(), FragmentStoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(FRAGMENTS).map_err(|e| self.err(e))?;
            t.insert(grant.0.as_slice(), fragment)
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The fragment of `grant`, if this replica holds one.
    pub fn get(&self, grant: &GrantId) -> Result<Option<Vec<u8>>, FragmentStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(FRAGMENTS).map_err(|e| self.err(e))?;
        let v = t.get(grant.0.as_slice()).map_err(|e| self.err(e))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// Erases the fragment of `grant`; `false` if there was none.
    pub fn erase(&self, grant: &GrantId) -> Result<bool, FragmentStoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let existed = {
            let mut t = txn.open_table(FRAGMENTS).map_err(|e| self.err(e))?;
            let removed = t.remove(grant.0.as_slice()).map_err(|e| self.err(e))?;
            removed.is_some()
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(existed)
    }

    /// Every grant this replica holds a fragment for.
    pub fn grants(&self) -> Result<Vec<GrantId>, FragmentStoreError> {
        self.grant_keys(FRAGMENTS)
    }

    /// The grant ids that key `table`.
    fn grant_keys<V: redb::Value + 'static>(
        &self,
        table: TableDefinition<'static, &[u8], V>,
    ) -> Result<Vec<GrantId>, FragmentStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            if let Ok(id) = <[u8; 32]>::try_from(k.value()) {
                out.push(GrantId(id));
            }
        }
        Ok(out)
    }

    /// The ledger height through which the revocation follower has handled
    /// every block (0 before the first run).
    pub fn followed_through(&self) -> Result<u64, FragmentStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(META).map_err(|e| self.err(e))?;
        let v = t.get(FOLLOWED_THROUGH).map_err(|e| self.err(e))?;
        Ok(v.map_or(0, |v| v.value()))
    }

    /// Records, in one durable commit, that the blocks through `height` are
    /// handled and that the erasures of `revoked` (found in them) still await
    /// their confirmation on the ledger. A restart resumes after `height`
    /// and confirms whatever is still unconfirmed.
    pub fn advance(&self, height: u64, revoked: &[GrantId]) -> Result<(), FragmentStoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut u = txn.open_table(UNCONFIRMED).map_err(|e| self.err(e))?;
            for grant in revoked {
                u.insert(grant.0.as_slice(), ()).map_err(|e| self.err(e))?;
            }
            let mut m = txn.open_table(META).map_err(|e| self.err(e))?;
            let old = m
                .get(FOLLOWED_THROUGH)
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value());
            m.insert(FOLLOWED_THROUGH, old.max(height))
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Revoked grants whose erasure is not yet confirmed on the ledger.
    pub fn unconfirmed(&self) -> Result<Vec<GrantId>, FragmentStoreError> {
        self.grant_keys(UNCONFIRMED)
    }

    /// The erasure of `grant` is confirmed on the ledger (or can never be):
    /// nothing more to do for it.
    pub fn confirmed(&self, grant: &GrantId) -> Result<(), FragmentStoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut u = txn.open_table(UNCONFIRMED).map_err(|e| self.err(e))?;
            u.remove(grant.0.as_slice()).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_follower_cursor_and_unconfirmed_erasures_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fragments.redb");
        let (a, b) = (GrantId([1; 32]), GrantId([2; 32]));
        {
            let store = FragmentStore::open(&path).unwrap();
            assert_eq!(store.followed_through().unwrap(), 0);
            assert!(store.unconfirmed().unwrap().is_empty());
            store.advance(7, &[a, b]).unwrap();
            store.confirmed(&a).unwrap();
            // A cursor never goes back.
            store.advance(3, &[]).unwrap();
        }
        let store = FragmentStore::open(&path).unwrap();
        assert_eq!(store.followed_through().unwrap(), 7);
        assert_eq!(store.unconfirmed().unwrap(), vec![b]);
        // Confirming something unknown changes nothing.
        store.confirmed(&GrantId([9; 32])).unwrap();
        assert_eq!(store.unconfirmed().unwrap(), vec![b]);
    }
}
