//! The replica's index of uploads no committed record names yet: what each
//! account stored through `POST /v1/blobs` and has not registered, metered
//! against a per-account quota and a node-wide cap, and deleted once it has
//! stayed unreferenced for a grace period. Node-local, never replicated.
//!
//! ```text
//! DATA_DIR/uploads.redb   unreferenced: sha256 of the cid -> account ‖ be64(size) ‖ be64(uploaded at, ms)
//!                         referenced:   sha256 of the cid (named by a committed record)
//!                         meta:         how far the ledger has been read for registrations
//! ```
//!
//! A blob stops counting once a `RegisterRecord` naming it commits: at once
//! on the replica that ordered it, and from the ledger (a follower reads
//! every committed block) on every replica. A blob a committed record names
//! is never deleted: the sweep checks the `referenced` table, filled from
//! the ledger up to its head just before, and a `RegisterRecord` admitted
//! here refreshes its blob's upload time, so a registration under way is
//! not swept either.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use rr_core::{AccountId, ContentId, Timestamp};

const UNREFERENCED: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("unreferenced");
const REFERENCED: TableDefinition<'static, &[u8], ()> = TableDefinition::new("referenced");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
/// The height up to which committed blocks were read for registrations.
const FOLLOWED_THROUGH: &str = "followed_through";

/// How much a replica holds of uploads no committed record names, and for
/// how long. Start from [`UploadLimits::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadLimits {
    /// Most bytes one account may have stored that no committed record
    /// names yet (default 4 GiB).
    pub quota_bytes: u64,
    /// Most bytes all accounts together may have stored that no committed
    /// record names yet (default 64 GiB).
    pub max_unreferenced_bytes: u64,
    /// How long an upload no committed record names is kept (default 24 h).
    pub grace: Duration,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            quota_bytes: 4 << 30,
            max_unreferenced_bytes: 64 << 30,
            grace: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl UploadLimits {
    /// These limits with `bytes` as each account's quota.
    pub fn with_quota_bytes(mut self, bytes: u64) -> Self {
        self.quota_bytes = bytes;
        self
    }

    /// These limits with `bytes` as the cap over all accounts.
    pub fn with_max_unreferenced_bytes(mut self, bytes: u64) -> Self {
        self.max_unreferenced_bytes = bytes;
        self
    }

    /// The defaults with the settings given (`node.toml`:
    /// `upload_quota_bytes`, `max_unreferenced_bytes`,
    /// `unreferenced_grace_secs`), checked.
    pub fn from_settings(
        quota_bytes: Option<u64>,
        max_unreferenced_bytes: Option<u64>,
        grace_secs: Option<u64>,
    ) -> Result<Self, crate::api::NodeError> {
        let mut limits = Self::default();
        if let Some(n) = quota_bytes {
            limits.quota_bytes = n;
        }
        if let Some(n) = max_unreferenced_bytes {
            limits.max_unreferenced_bytes = n;
        }
        if let Some(s) = grace_secs {
            limits.grace = Duration::from_secs(s);
        }
        if limits.quota_bytes == 0 || limits.max_unreferenced_bytes == 0 || limits.grace.is_zero() {
            return Err(crate::api::NodeError::Setup(
                "upload_quota_bytes, max_unreferenced_bytes and unreferenced_grace_secs must be at least 1 (a node that takes no uploads cannot store records)".into(),
            ));
        }
        Ok(limits)
    }

    /// These limits with `grace` as how long unreferenced uploads are kept.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// Errors of the upload index.
#[derive(Debug, thiserror::Error)]
#[error("upload index {path}: {source}")]
pub struct UploadIndexError {
    path: PathBuf,
    #[source]
    source: redb::Error,
}

/// An upload refused for its quota; carried inside the `io::Error` that
/// ends the upload's stream (see [`QuotaExceeded::from_io`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaExceeded {
    /// Whether the node-wide cap (not the account's quota) was hit.
    pub global: bool,
    /// What happened and what to do.
    pub message: String,
}

impl QuotaExceeded {
    /// The [`QuotaExceeded`] inside `err`, if that is what it carries.
    pub fn from_io(err: &std::io::Error) -> Option<&QuotaExceeded> {
        err.get_ref()?.downcast_ref()
    }
}

/// An entry of the index: who uploaded it, its size, when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The uploading account.
    pub account: AccountId,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded (or last named by an admitted registration),
    /// by the node's clock.
    pub at: Timestamp,
}

impl Upload {
    fn encode(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[..32].copy_from_slice(&self.account.0);
        b[32..40].copy_from_slice(&self.size.to_be_bytes());
        b[40..].copy_from_slice(&self.at.0.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 48 {
            return None;
        }
        Some(Self {
            account: AccountId(b[..32].try_into().ok()?),
            size: u64::from_be_bytes(b[32..40].try_into().ok()?),
            at: Timestamp(u64::from_be_bytes(b[40..].try_into().ok()?)),
        })
    }
}

/// Bytes counted against the limits: stored unreferenced uploads and
/// uploads under way.
#[derive(Default, Debug)]
struct Usage {
    accounts: HashMap<AccountId, u64>,
    total: u64,
}

impl Usage {
    fn add(&mut self, account: &AccountId, bytes: u64) {
        *self.accounts.entry(*account).or_default() += bytes;
        self.total += bytes;
    }

    fn sub(&mut self, account: &AccountId, bytes: u64) {
        if let Some(n) = self.accounts.get_mut(account) {
            *n = n.saturating_sub(bytes);
            if *n == 0 {
                self.accounts.remove(account);
            }
        }
        self.total = self.total.saturating_sub(bytes);
    }
}

/// The replica's index of unreferenced uploads, in a redb file of its own.
pub struct UploadIndex {
    db: Database,
    path: PathBuf,
    limits: UploadLimits,
    usage: Mutex<Usage>,
}

impl std::fmt::Debug for UploadIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadIndex")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish()
    }
}

impl UploadIndex {
    /// Opens (or creates) the index at `path`, metering with `limits`.
    pub fn open(path: impl AsRef<Path>, limits: UploadLimits) -> Result<Self, UploadIndexError> {
        let path = path.as_ref().to_path_buf();
        let err = |e: redb::Error| UploadIndexError {
            path: path.clone(),
            source: e,
        };
        let db = Database::create(&path).map_err(|e| err(e.into()))?;
        let txn = db.begin_write().map_err(|e| err(e.into()))?;
        txn.open_table(UNREFERENCED).map_err(|e| err(e.into()))?;
        txn.open_table(REFERENCED).map_err(|e| err(e.into()))?;
        txn.open_table(META).map_err(|e| err(e.into()))?;
        txn.commit().map_err(|e| err(e.into()))?;
        let index = Self {
            db,
            path: path.clone(),
            limits,
            usage: Mutex::default(),
        };
        let mut usage = Usage::default();
        for (_, upload) in index.entries()? {
            usage.add(&upload.account, upload.size);
        }
        *index.usage.lock().expect("usage lock") = usage;
        Ok(index)
    }

    fn err(&self, e: impl Into<redb::Error>) -> UploadIndexError {
        UploadIndexError {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    /// The limits it meters with.
    pub fn limits(&self) -> &UploadLimits {
        &self.limits
    }

    /// Every unreferenced upload.
    pub fn entries(&self) -> Result<Vec<(ContentId, Upload)>, UploadIndexError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(UNREFERENCED).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (Ok(key), Some(upload)) =
                (<[u8; 32]>::try_from(k.value()), Upload::decode(v.value()))
            else {
                continue;
            };
            out.push((ContentId::from_sha256(key), upload));
        }
        Ok(out)
    }

    /// The unreferenced upload of `cid`, if it is one.
    pub fn get(&self, cid: &ContentId) -> Result<Option<Upload>, UploadIndexError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(UNREFERENCED).map_err(|e| self.err(e))?;
        let v = t.get(cid.sha256().as_slice()).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| Upload::decode(v.value())))
    }

    /// Whether a committed record names `cid` (as far as the ledger was read).
    pub fn is_referenced(&self, cid: &ContentId) -> Result<bool, UploadIndexError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(REFERENCED).map_err(|e| self.err(e))?;
        Ok(t.get(cid.sha256().as_slice())
            .map_err(|e| self.err(e))?
            .is_some())
    }

    /// The bytes `account` has stored that no committed record names (and
    /// has under way).
    pub fn usage(&self, account: &AccountId) -> u64 {
        let usage = self.usage.lock().expect("usage lock");
        usage.accounts.get(account).copied().unwrap_or(0)
    }

    /// The bytes all accounts have stored that no committed record names
    /// (and have under way).
    pub fn total_usage(&self) -> u64 {
        self.usage.lock().expect("usage lock").total
    }

    /// Counts `bytes` more of an upload under way by `account`, or refuses
    /// them if that would pass its quota or the node's cap.
    pub(crate) fn reserve(&self, account: &AccountId, bytes: u64) -> Result<(), QuotaExceeded> {
        let mut usage = self.usage.lock().expect("usage lock");
        let mine = usage.accounts.get(account).copied().unwrap_or(0);
        let hours = self.limits.grace.as_secs_f64() / 3600.0;
        if mine.saturating_add(bytes) > self.limits.quota_bytes {
            return Err(QuotaExceeded {
                global: false,
                message: format!(
                    "account {account} has {mine} bytes of uploads that no committed record names yet (or under way); {bytes} more would pass its quota of {} bytes on this replica: register the records of the blobs it uploaded (RegisterRecord), or wait until unregistered blobs are deleted, {hours} h after their upload; nothing was stored",
                    self.limits.quota_bytes
                ),
            });
        }
        if usage.total.saturating_add(bytes) > self.limits.max_unreferenced_bytes {
            return Err(QuotaExceeded {
                global: true,
                message: format!(
                    "this replica holds {} bytes of uploads that no committed record names yet; {bytes} more would pass its cap of {} bytes: retry after their uploaders register their records or the unregistered blobs are deleted ({hours} h after their upload); nothing was stored",
                    usage.total, self.limits.max_unreferenced_bytes
                ),
            });
        }
        usage.add(account, bytes);
        Ok(())
    }

    /// Stops counting `bytes` of an upload under way by `account`.
    pub(crate) fn release(&self, account: &AccountId, bytes: u64) {
        self.usage.lock().expect("usage lock").sub(account, bytes);
    }

    /// Records that `account` stored `cid` of `size` bytes at `at`, unless
    /// the blob is in the index already or a committed record names it (a
    /// blob is counted once, against its first uploader).
    pub fn uploaded(
        &self,
        cid: &ContentId,
        account: &AccountId,
        size: u64,
        at: Timestamp,
    ) -> Result<bool, UploadIndexError> {
        let key = cid.sha256();
        let mut usage = self.usage.lock().expect("usage lock");
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let added = {
            let referenced = txn.open_table(REFERENCED).map_err(|e| self.err(e))?;
            let mut t = txn.open_table(UNREFERENCED).map_err(|e| self.err(e))?;
            let known = referenced
                .get(key.as_slice())
                .map_err(|e| self.err(e))?
                .is_some()
                || t.get(key.as_slice()).map_err(|e| self.err(e))?.is_some();
            if !known {
                let upload = Upload {
                    account: *account,
                    size,
                    at,
                };
                t.insert(key.as_slice(), upload.encode().as_slice())
                    .map_err(|e| self.err(e))?;
            }
            !known
        };
        txn.commit().map_err(|e| self.err(e))?;
        if added {
            usage.add(account, size);
        }
        Ok(added)
    }

    /// Refreshes the upload time of `cid` to `at` if it is an unreferenced
    /// upload (a registration naming it was admitted).
    pub fn touch(&self, cid: &ContentId, at: Timestamp) -> Result<(), UploadIndexError> {
        let key = cid.sha256();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(UNREFERENCED).map_err(|e| self.err(e))?;
            let found = t
                .get(key.as_slice())
                .map_err(|e| self.err(e))?
                .and_then(|v| Upload::decode(v.value()));
            if let Some(mut upload) = found {
                upload.at = Timestamp(upload.at.0.max(at.0));
                t.insert(key.as_slice(), upload.encode().as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records that committed records name `cids`: they stop counting and
    /// are never swept; with `height`, that the ledger was read up to it.
    pub fn referenced(
        &self,
        cids: &[ContentId],
        height: Option<u64>,
    ) -> Result<(), UploadIndexError> {
        let mut usage = self.usage.lock().expect("usage lock");
        let mut freed = Vec::new();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut referenced = txn.open_table(REFERENCED).map_err(|e| self.err(e))?;
            let mut t = txn.open_table(UNREFERENCED).map_err(|e| self.err(e))?;
            for cid in cids {
                let key = cid.sha256();
                referenced
                    .insert(key.as_slice(), ())
                    .map_err(|e| self.err(e))?;
                let removed = t
                    .remove(key.as_slice())
                    .map_err(|e| self.err(e))?
                    .and_then(|v| Upload::decode(v.value()));
                if let Some(upload) = removed {
                    freed.push(upload);
                }
            }
            if let Some(height) = height {
                let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
                meta.insert(FOLLOWED_THROUGH, height)
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        for upload in freed {
            usage.sub(&upload.account, upload.size);
        }
        Ok(())
    }

    /// The height up to which the ledger was read for registrations (0
    /// for a new index).
    pub fn followed_through(&self) -> Result<u64, UploadIndexError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(META).map_err(|e| self.err(e))?;
        Ok(t.get(FOLLOWED_THROUGH)
            .map_err(|e| self.err(e))?
            .map_or(0, |v| v.value()))
    }

    /// Unreferenced uploads made before `before`: the sweep's candidates.
    pub fn expired(&self, before: Timestamp) -> Result<Vec<(ContentId, Upload)>, UploadIndexError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|(_, u)| u.at.0 < before.0)
            .collect())
    }

    /// Drops `cid` from the index if it is still an unreferenced upload
    /// made before `before`: whether it was (the sweep then deletes the
    /// blob).
    pub fn forget_expired(
        &self,
        cid: &ContentId,
        before: Timestamp,
    ) -> Result<bool, UploadIndexError> {
        let key = cid.sha256();
        let mut usage = self.usage.lock().expect("usage lock");
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let dropped = {
            let referenced = txn.open_table(REFERENCED).map_err(|e| self.err(e))?;
            let mut t = txn.open_table(UNREFERENCED).map_err(|e| self.err(e))?;
            let found = t
                .get(key.as_slice())
                .map_err(|e| self.err(e))?
                .and_then(|v| Upload::decode(v.value()));
            let named = referenced
                .get(key.as_slice())
                .map_err(|e| self.err(e))?
                .is_some();
            match found {
                Some(upload) if named || upload.at.0 < before.0 => {
                    t.remove(key.as_slice()).map_err(|e| self.err(e))?;
                    Some((upload, !named))
                }
                _ => None,
            }
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(match dropped {
            Some((upload, delete)) => {
                usage.sub(&upload.account, upload.size);
                delete
            }
            None => false,
        })
    }
}

/// The bytes of one upload under way counted against its account; they
/// stop counting when it is dropped.
pub(crate) struct Reservation {
    index: std::sync::Arc<UploadIndex>,
    account: AccountId,
    bytes: std::sync::atomic::AtomicU64,
}

impl Reservation {
    pub(crate) fn new(index: std::sync::Arc<UploadIndex>, account: AccountId) -> Self {
        Self {
            index,
            account,
            bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts the upload as `total` bytes (if more than so far), or refuses.
    pub(crate) fn grow_to(&self, total: u64) -> Result<(), QuotaExceeded> {
        use std::sync::atomic::Ordering;
        let have = self.bytes.load(Ordering::Acquire);
        if total > have {
            self.index.reserve(&self.account, total - have)?;
            self.bytes.store(total, Ordering::Release);
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.index.release(&self.account, *self.bytes.get_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_once_frees_on_reference_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uploads.redb");
        let limits = UploadLimits::default().with_quota_bytes(100);
        let (alice, bob) = (AccountId([1; 32]), AccountId([2; 32]));
        let (a, b) = (
            ContentId::from_sha256([3; 32]),
            ContentId::from_sha256([4; 32]),
        );
        {
            let index = UploadIndex::open(&path, limits.clone()).unwrap();
            assert!(index.uploaded(&a, &alice, 60, Timestamp(10)).unwrap());
            // The same blob again, by anyone: not counted twice.
            assert!(!index.uploaded(&a, &bob, 60, Timestamp(20)).unwrap());
            assert_eq!((index.usage(&alice), index.usage(&bob)), (60, 0));
            let err = index.reserve(&alice, 41).unwrap_err();
            assert!(!err.global && err.message.contains("register"), "{err}");
            index.reserve(&bob, 41).unwrap();
            index.release(&bob, 41);
            assert!(index.uploaded(&b, &bob, 30, Timestamp(30)).unwrap());
        }
        let index = UploadIndex::open(&path, limits).unwrap();
        assert_eq!((index.usage(&alice), index.usage(&bob)), (60, 30));
        index.referenced(&[a], Some(7)).unwrap();
        assert_eq!((index.usage(&alice), index.total_usage()), (0, 30));
        assert_eq!(index.followed_through().unwrap(), 7);
        // A referenced blob is not counted again when re-uploaded.
        assert!(!index.uploaded(&a, &alice, 60, Timestamp(40)).unwrap());
        // Sweeping: only what is old enough.
        assert!(!index.forget_expired(&b, Timestamp(30)).unwrap());
        index.touch(&b, Timestamp(50)).unwrap();
        assert!(!index.forget_expired(&b, Timestamp(45)).unwrap());
        assert!(index.forget_expired(&b, Timestamp(51)).unwrap());
        assert_eq!(index.total_usage(), 0);
    }

    #[test]
    fn the_global_cap_is_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let limits = UploadLimits::default()
            .with_quota_bytes(100)
            .with_max_unreferenced_bytes(150);
        let index = UploadIndex::open(dir.path().join("u.redb"), limits).unwrap();
        index.reserve(&AccountId([1; 32]), 100).unwrap();
        let err = index.reserve(&AccountId([2; 32]), 51).unwrap_err();
        assert!(err.global, "{err}");
        index.reserve(&AccountId([2; 32]), 50).unwrap();
    }
}
