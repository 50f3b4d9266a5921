//! The four backend traits: [`ConsensusEngine`], [`PreScheme`],
//! [`ContractExecutor`] and [`BlobStore`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::block::{BlockContext, Receipt};
use crate::call::{SchemeId, Threshold};
use crate::error::{BlobError, ConsensusError, ExecutionError, PreError};
use crate::ids::{BlockHash, ContentId, Digest, RecordId, Timestamp};
use crate::state::{StateRead, WriteSet};
use crate::tx::VerifiedTransaction;

// ---------------------------------------------------------------- consensus

/// Where an engine's ledger stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineStatus {
    /// Engine name (`solo`, `pbft`).
    pub engine: String,
    /// Height of the last executed block (0 before the first).
    pub height: u64,
    /// Hash of that block.
    pub block_hash: BlockHash,
    /// Time of that block.
    pub time: Timestamp,
    /// Hash of its [`LedgerHeader`](crate::cert::LedgerHeader), which commits
    /// to the state root after it (zeros before the first block).
    pub state_digest: Digest,
    /// Number of replicas n.
    pub replicas: u16,
    /// Byzantine faults tolerated f (n = 3f + 1 for PBFT, 0 for one replica).
    pub faults_tolerated: u16,
    /// The view this replica is in (PBFT; `None` for one replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<u64>,
    /// The primary of that view, which orders calls (PBFT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<crate::ids::ReplicaId>,
    /// The view this replica is asking for, while a view change is under way
    /// (PBFT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changing_to: Option<u64>,
    /// View changes this replica has gone through since it started.
    #[serde(default)]
    pub view_changes: u64,
}

/// Orders transactions into blocks and executes them.
///
/// # Correctness
/// - Every replica hands the executor the same blocks in the same order
///   (heights 1, 2, ... with no gaps), with the block time fixed in the block.
/// - A block and the write set its execution produced are made durable in one
///   atomic commit before any receipt of the block is returned: a receipt a
///   client saw is never lost by a crash.
/// - After a restart the engine resumes at the height it had committed; it
///   never re-executes a committed block against a state that already holds
///   its writes, and never reuses a height.
/// - `submit` resolves with the transaction's receipt once its block is
///   committed. It fails with [`ConsensusError::Stopped`] (or `Overloaded`)
///   only if the transaction was never ordered and never will be by this
///   engine; [`ConsensusError::OutcomeUnknown`] says it may still commit,
///   and any other error leaves the outcome unknown too (submit the same
///   transaction again to learn it).
///   Submitting a transaction again (the same id) is idempotent: while it
///   waits it joins the first submission, once committed it resolves with
///   the original receipt, and it never makes another block.
/// - Every committed block has a [`LedgerHeader`](crate::cert::LedgerHeader)
///   (the ledger computes it) and, once a quorum of replicas signed it, a
///   certificate: `certificate` resolves with it. A single replica signs its
///   own (1 of 1) as it commits.
pub trait ConsensusEngine: Send + Sync + 'static {
    /// The contract executor blocks are executed with.
    type Executor: ContractExecutor;

    /// The executor this engine runs: whoever assembles a node reads the
    /// contract rules from here, so the rules calls are checked against
    /// before ordering and the rules the ledger executes are one object.
    fn executor(&self) -> &std::sync::Arc<Self::Executor>;

    /// Submits a verified transaction for ordering; resolves with its receipt
    /// once it is committed.
    fn submit(
        &self,
        tx: VerifiedTransaction,
    ) -> impl Future<Output = Result<Receipt, ConsensusError>> + Send;

    /// Where the ledger stands.
    fn status(&self) -> EngineStatus;

    /// The certificate of the header at `height` (0: genesis): at once if a
    /// quorum's signatures are stored, else once they arrive (after the
    /// block commits, for a height not reached yet). It waits as long as it
    /// takes: bound it with a timeout. An error if the engine stopped.
    fn certificate(
        &self,
        height: u64,
    ) -> impl Future<Output = Result<crate::cert::Certificate, ConsensusError>> + Send;

    /// Stops taking calls, finishes (within a bound) what may have been
    /// ordered, and flushes the ledger. Calls it cannot finish fail with
    /// [`ConsensusError::OutcomeUnknown`], never `Stopped`.
    fn shutdown(&self) -> impl Future<Output = Result<(), ConsensusError>> + Send;
}

// ---------------------------------------------------------------- executor

/// The effect of executing one block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Execution {
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Every state change of the block.
    pub writes: WriteSet,
}

/// Executes ordered blocks of calls against the state.
///
/// # Correctness
/// - Deterministic: the result is a function of the state read through
///   `state`, `ctx` and `txs` alone. No clocks, randomness, I/O or hash-map
///   iteration order.
/// - One receipt per transaction, in order. A refused call is a receipt, not an
///   error, and its only state change is its audit entry (and its nonce).
/// - Does not write: all effects are returned in [`Execution::writes`] for the
///   engine to commit atomically with the block.
/// - An `Err` means the state could not be read; the engine must stop rather
///   than skip the block.
pub trait ContractExecutor: Send + Sync + 'static {
    /// Executes `txs`, in order, as the block at `ctx`.
    fn execute(
        &self,
        state: &dyn StateRead,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<Execution, ExecutionError>;
}

// ---------------------------------------------------------------- PRE

/// A 32-byte symmetric data key, zeroized on drop and never printed.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// Wraps key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate(rng: &mut dyn CryptoRngCore) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A versioned, length-checked byte encoding of a scheme's public values.
pub trait WireEncoding: Sized {
    /// Bytes.
    fn to_bytes(&self) -> Vec<u8>;
    /// Parses bytes, refusing anything malformed with [`PreError::Malformed`].
    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError>;
}

/// The two kinds of PRE public key ([`PreScheme::key_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A record's key: what capsules are made for and grants delegate.
    Record,
    /// An account's key: what grants re-encrypt to.
    Account,
}

/// A proxy re-encryption scheme.
///
/// The data model: an owner holds a master secret; each record has its own key
/// pair derived from it ([`PreScheme::record_key`]), so delegating one record
/// exposes no other. A record's data key is encapsulated under the record key
/// (the capsule); a grant delegates the record key to a grantee's account key
/// as n key fragments, any m of which re-encrypt the capsule into fragments the
/// grantee opens.
///
/// Crypto stays synchronous and takes an explicit RNG; callers on an async
/// runtime run it on a blocking pool.
///
/// # Correctness
/// - `open(record_sk, c)` and `open_reencrypted(grantee_sk, record_pk, c, fs)`
///   return the data key `encapsulate` returned with `c`, for any m verified
///   fragments made from distinct key fragments of one delegation.
/// - Fewer than m fragments, fragments for another capsule, record or grantee,
///   or a tampered capsule, key fragment or capsule fragment give an error,
///   never a wrong key.
/// - `verify_*` are the only way to the `Verified*` types (except
///   `verified_key_frag_from_trusted_bytes`, for a replica's own store).
/// - Every encoding round-trips and refuses garbage.
/// - Secret types zeroize on drop and never appear in `Debug` output.
pub trait PreScheme: Send + Sync + 'static {
    /// The scheme id records carry.
    const ID: SchemeId;
    /// The owner's master secret.
    type MasterSecret: Send + Sync;
    /// A secret key (a record's or an account's).
    type SecretKey: Send + Sync;
    /// A public key.
    type PublicKey: WireEncoding + Clone + Send + Sync;
    /// An encapsulated data key.
    type Capsule: WireEncoding + Clone + Send + Sync;
    /// A key fragment, unchecked.
    type KeyFrag: WireEncoding + Clone + Send + Sync;
    /// A key fragment that verified against its record and grantee keys.
    type VerifiedKeyFrag: Clone + Send + Sync;
    /// A capsule fragment, unchecked.
    type CapsuleFrag: WireEncoding + Clone + Send + Sync;
    /// A capsule fragment that verified against its capsule and keys.
    type VerifiedCapsuleFrag: Clone + Send + Sync;

    /// Checks that the scheme supports threshold `t`.
    fn check_threshold(&self, t: Threshold) -> Result<(), PreError>;

    /// A fresh master secret.
    fn generate_master(&self, rng: &mut dyn CryptoRngCore) -> Self::MasterSecret;
    /// The master secret's bytes (for an encrypted keystore).
    fn master_to_bytes(&self, master: &Self::MasterSecret) -> Zeroizing<Vec<u8>>;
    /// A master secret from its bytes.
    fn master_from_bytes(&self, bytes: &[u8]) -> Result<Self::MasterSecret, PreError>;

    /// The account key pair grants to this owner re-encrypt to.
    fn account_key(&self, master: &Self::MasterSecret) -> (Self::SecretKey, Self::PublicKey);
    /// The key pair of one record.
    fn record_key(
        &self,
        master: &Self::MasterSecret,
        record: &RecordId,
    ) -> (Self::SecretKey, Self::PublicKey);

    /// Whether `pk` is a record's key ([`PreScheme::record_key`]) or an
    /// account's ([`PreScheme::account_key`]); `None` where the scheme's
    /// public keys do not say (the default). Where a scheme says, the
    /// contracts refuse a record registered under an account key and a grant
    /// to a record key, so neither reaches the ledger to fail later.
    fn key_kind(&self, pk: &Self::PublicKey) -> Option<KeyKind> {
        let _ = pk;
        None
    }

    /// A fresh data key and its capsule under `pk`.
    fn encapsulate(
        &self,
        rng: &mut dyn CryptoRngCore,
        pk: &Self::PublicKey,
    ) -> Result<(Self::Capsule, DataKey), PreError>;
    /// Opens a capsule with the key it was made for.
    fn open(&self, sk: &Self::SecretKey, capsule: &Self::Capsule) -> Result<DataKey, PreError>;

    /// Delegates the record key to `grantee_pk` as `t.n` key fragments, any
    /// `t.m` of which suffice.
    fn delegate(
        &self,
        rng: &mut dyn CryptoRngCore,
        record_sk: &Self::SecretKey,
        grantee_pk: &Self::PublicKey,
        t: Threshold,
    ) -> Result<Vec<Self::KeyFrag>, PreError>;
    /// Checks a key fragment against the record and grantee keys. A
    /// fragment this accepts must give capsule fragments
    /// [`PreScheme::verify_capsule_frag`] accepts: a replica checks a
    /// fragment once, at delivery, and one that passes here but fails the
    /// grantee's check would fail every retrieval instead.
    fn verify_key_frag(
        &self,
        kfrag: Self::KeyFrag,
        record_pk: &Self::PublicKey,
        grantee_pk: &Self::PublicKey,
    ) -> Result<Self::VerifiedKeyFrag, PreError>;
    /// A verified key fragment's bytes, for the replica's own store.
    fn verified_key_frag_to_bytes(&self, kfrag: &Self::VerifiedKeyFrag) -> Vec<u8>;
    /// A verified key fragment back from the replica's own store, unchecked.
    fn verified_key_frag_from_trusted_bytes(
        &self,
        bytes: &[u8],
    ) -> Result<Self::VerifiedKeyFrag, PreError>;

    /// Re-encrypts a capsule with one key fragment.
    fn reencrypt(
        &self,
        rng: &mut dyn CryptoRngCore,
        capsule: &Self::Capsule,
        kfrag: &Self::VerifiedKeyFrag,
    ) -> Result<Self::CapsuleFrag, PreError>;
    /// Checks a capsule fragment against the capsule and keys.
    fn verify_capsule_frag(
        &self,
        cfrag: Self::CapsuleFrag,
        capsule: &Self::Capsule,
        record_pk: &Self::PublicKey,
        grantee_pk: &Self::PublicKey,
    ) -> Result<Self::VerifiedCapsuleFrag, PreError>;
    /// Opens a capsule with m verified capsule fragments.
    fn open_reencrypted(
        &self,
        grantee_sk: &Self::SecretKey,
        record_pk: &Self::PublicKey,
        capsule: &Self::Capsule,
        cfrags: &[Self::VerifiedCapsuleFrag],
    ) -> Result<DataKey, PreError>;
}

// ---------------------------------------------------------------- blobs

/// A stream of bytes: what blob stores take and give. Errors are `io::Error`;
/// a blob error inside one is reachable with [`BlobError::from_io`].
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + 'static>>;

/// A byte stream of one in-memory buffer.
pub fn byte_stream_of(bytes: impl Into<Bytes>) -> ByteStream {
    let bytes = bytes.into();
    Box::pin(futures::stream::once(async move { Ok(bytes) }))
}

/// A content-addressed store of immutable blobs (ciphertext envelopes).
///
/// Object-safe (`async-trait`), because the node picks its blob store from
/// configuration at run time.
///
/// # Correctness
/// - `put` returns the [`ContentId`] of exactly the bytes streamed, and once it
///   returns the blob is durable; a failed or abandoned `put` leaves no blob
///   and no partial file visible under any content id.
/// - Putting the same bytes twice is harmless and returns the same id.
/// - `get` streams the stored bytes and checks them against the id: a copy
///   that does not hash to its id ends the stream with
///   [`BlobError::Integrity`] (as an `io::Error`) instead of a clean end.
///   Consumers must not act on the bytes before the stream ends cleanly.
/// - Streams run in memory bounded independently of the blob size.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores a blob.
    async fn put(&self, data: ByteStream) -> Result<ContentId, BlobError>;
    /// Streams a blob.
    async fn get(&self, cid: &ContentId) -> Result<ByteStream, BlobError>;
    /// Whether the blob is stored.
    async fn contains(&self, cid: &ContentId) -> Result<bool, BlobError>;
    /// Deletes a blob; `false` if there was none.
    async fn delete(&self, cid: &ContentId) -> Result<bool, BlobError>;

    /// The size in bytes of a stored blob, `None` if there is none. The
    /// default streams the blob and counts; stores that know sizes (the
    /// filesystem's, the in-memory one) answer without reading it.
    async fn size(&self, cid: &ContentId) -> Result<Option<u64>, BlobError> {
        use futures::StreamExt;
        if !self.contains(cid).await? {
            return Ok(None);
        }
        let mut stream = match self.get(cid).await {
            Ok(stream) => stream,
            Err(BlobError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            size += chunk.map_err(BlobError::Backend)?.len() as u64;
        }
        Ok(Some(size))
    }

    /// Stores an in-memory blob.
    async fn put_bytes(&self, data: Bytes) -> Result<ContentId, BlobError> {
        self.put(byte_stream_of(data)).await
    }

    /// Reads a whole blob into memory, checked. Refuses blobs over `limit` bytes.
    async fn get_bytes(&self, cid: &ContentId, limit: u64) -> Result<Vec<u8>, BlobError> {
        use futures::StreamExt;
        let mut stream = self.get(cid).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| match BlobError::from_io(&e) {
                Some(BlobError::Integrity { cid, actual }) => BlobError::Integrity {
                    cid: *cid,
                    actual: *actual,
                },
                Some(BlobError::NotFound(cid)) => BlobError::NotFound(*cid),
                _ => BlobError::Backend(e),
            })?;
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(BlobError::TooLarge { limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}
