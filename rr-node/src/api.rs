//! What a client needs from a node, whether it runs in the same process or
//! behind HTTP: [`NodeApi`], the signed [`Authorization`] that queries
//! about an account's records carry, and the types both sides speak
//! ([`NodeError`], [`NodeInfo`], [`Retrieval`]). Built with every feature:
//! the client and the server both depend on it, and it on neither.

use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signer, SigningKey};
use rr_core::cert::Certificate;
use rr_core::proof::{CertifiedReceipt, StateAnswer};
use rr_core::{
    AccountId, ByteStream, ContentId, Digest, GrantId, RecordId, ReplicaId, SignedTransaction,
    Timestamp, TxId,
};
use serde::{Deserialize, Serialize};

use rr_core::cert::ReplicaSetInfo;
use rr_core::proof::SignedFragment;
use rr_core::{
    BlobError, ConsensusError, DecodeError, EngineStatus, ErrorCode, PreError, Refusal, SchemeId,
    SignatureError,
};

/// How far a query's timestamp may be from the node's clock.
pub const AUTH_WINDOW: Duration = Duration::from_secs(300);

const AUTH_DOMAIN: &[u8] = b"resilient-records/query/v2\0";

/// A signed statement "account A asks this cluster for `scope` at time
/// t": what every read of ledger state carries (records, grants, receipts,
/// audit trails, grant lists, listings). The node checks the signature,
/// that it names this node's replica set (its digest is signed, so an
/// authorization for one cluster is worthless at another), that `at` is
/// within [`AUTH_WINDOW`] of its clock, and that the account may see what it
/// asks for: see [`NodeApi`] for who may read what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// Who asks.
    pub account: AccountId,
    /// What for: the request it authorizes, such as `audit <record id>`.
    pub scope: String,
    /// When (the signer's clock).
    pub at: Timestamp,
    /// ed25519 over the domain-separated (scope, at).
    pub signature: Vec<u8>,
}

impl Authorization {
    fn message(cluster: &Digest, scope: &str, at: Timestamp) -> Vec<u8> {
        let mut m = AUTH_DOMAIN.to_vec();
        m.extend_from_slice(&cluster.0);
        m.extend_from_slice(&rr_core::codec::encode(&(scope, at)));
        m
    }

    /// Signs `scope` now, for the cluster whose replica set has digest
    /// `cluster` ([`ReplicaSetInfo::digest`]).
    pub fn sign(key: &SigningKey, cluster: &Digest, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        let at = Timestamp::from_system_time(std::time::SystemTime::now());
        let signature = key
            .sign(&Self::message(cluster, &scope, at))
            .to_bytes()
            .to_vec();
        Self {
            account: AccountId::from_verifying_key(&key.verifying_key()),
            scope,
            at,
            signature,
        }
    }

    /// Checks the signature (for the cluster whose replica set has digest
    /// `cluster`), the scope and the time window against `now`; the account
    /// that asks.
    pub fn check(
        &self,
        cluster: &Digest,
        scope: &str,
        now: Timestamp,
    ) -> Result<AccountId, NodeError> {
        let unauthorized = |why: &str| NodeError::Unauthorized(why.to_string());
        if self.scope != scope {
            return Err(unauthorized(
                "the authorization was signed for another request",
            ));
        }
        let skew = self.at.0.abs_diff(now.0);
        if skew > AUTH_WINDOW.as_millis() as u64 {
            return Err(unauthorized(
                "the authorization's time is more than 5 minutes from the node's clock; check the client's clock",
            ));
        }
        if self.signature.len() != 64 {
            return Err(unauthorized("the signature is not 64 bytes"));
        }
        // The same ed25519 rules as every other client signature (ZIP-215
        // with canonical encodings and no small-order keys: rr_core::sig).
        if !rr_core::sig::verify(
            &self.account.0,
            &self.signature,
            &Self::message(cluster, &self.scope, self.at),
        ) {
            return Err(unauthorized(
                "the signature does not verify for the account and this cluster (an authorization signed for another cluster's replica set does not count here)",
            ));
        }
        Ok(self.account)
    }

    /// The scope of a record query.
    pub fn record_scope(record: &RecordId) -> String {
        format!("record {record}")
    }

    /// The scope of a grant query.
    pub fn grant_scope(grant: &GrantId) -> String {
        format!("grant {grant}")
    }

    /// The scope of a transaction receipt query.
    pub fn receipt_scope(tx: &TxId) -> String {
        format!("tx {tx}")
    }

    /// The scope of an audit-trail query.
    pub fn audit_scope(record: &RecordId) -> String {
        format!("audit {record}")
    }

    /// The scope of a record's grant listing.
    pub fn grants_scope(record: &RecordId) -> String {
        format!("grants {record}")
    }

    /// The scope of an account's own listing (records owned, grants held).
    pub fn listing_scope(account: &AccountId) -> String {
        format!("list {account}")
    }

    /// The scope of a blob upload (`POST /v1/blobs`): the uploading account
    /// is metered for the ciphertext it stores until a record names it.
    pub fn upload_scope() -> String {
        "upload".to_string()
    }
}

/// Which replicas took their key fragment of a grant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentDelivery {
    /// Replicas that checked and stored their fragment.
    pub delivered: Vec<ReplicaId>,
    /// Replicas that did not, and why (the client can deliver again later).
    pub skipped: Vec<SkippedReplica>,
}

/// One replica as a client reaches it. Implemented by [`crate::Node`] (in
/// process) and by [`crate::http::HttpClient`] (over HTTP).
///
/// Its answers are raw: certified receipts, proven state, signed fragments,
/// as the replica sent them. Nothing here is to be believed as it is:
/// [`crate::Replicas`] checks every answer against the replica set the client
/// trusts before a [`crate::Client`] acts on it.
///
/// Object-safe (`async-trait`): a client picks its transport at run time,
/// and a test wraps a replica to make it lie.
///
/// # Who may read what
/// Every read of ledger state carries an [`Authorization`] for its scope.
/// A record is visible to its owner, to every account holding a grant of it
/// and to the replicas; a grant to the record's owner, its grantee and the
/// replicas; a transaction's receipt to its signer and the replicas; a
/// record's grant list and audit trail to its owner; a listing to its
/// account. Everyone else gets the answer an id that does not exist gets
/// (`unknown_record`, `unknown_grant`, `unknown_transaction`), so they learn
/// nothing about whether it exists. Blobs are ciphertext and need no
/// authorization to read; storing one needs an [`Authorization`] of scope
/// [`Authorization::upload_scope`] by the uploading account, which is
/// metered for the bytes it stores that no committed record names yet.
#[async_trait::async_trait]
pub trait NodeApi: Send + Sync + 'static {
    /// Replica set, schemes, status (unproven: for display and setup).
    async fn info(&self) -> Result<NodeInfo, NodeError>;
    /// The certificate of this replica's head.
    async fn head(&self) -> Result<Certificate, NodeError>;
    /// Submits a signed call: its certified receipt (refused or not) once
    /// committed. Submitting the same transaction again gets the same one.
    async fn submit(&self, tx: SignedTransaction) -> Result<CertifiedReceipt, NodeError>;
    /// The certified receipt of a committed transaction (its signer and the
    /// replicas only).
    async fn receipt(&self, tx: TxId, auth: Authorization) -> Result<CertifiedReceipt, NodeError>;
    /// Delivers this replica its key fragment of a committed grant.
    async fn deliver_fragment(&self, grant: GrantId, fragment: Vec<u8>) -> Result<(), NodeError>;
    /// Submits a signed `Retrieve`: its certified receipt, the record and
    /// grant proven, and this replica's signed capsule fragment if it gives
    /// one.
    async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError>;
    /// A record, proven (its owner, its grantees and the replicas only; a
    /// replica may also be given its proven absence).
    async fn record(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError>;
    /// A grant, proven (the record's owner, the grantee and the replicas
    /// only; a replica may also be given its proven absence).
    async fn grant(&self, id: GrantId, auth: Authorization) -> Result<StateAnswer, NodeError>;
    /// A record and its complete list of grants, proven (owner only).
    async fn grants_of_record(
        &self,
        id: RecordId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError>;
    /// A record and its whole audit trail, proven (owner only).
    async fn audit(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError>;
    /// The records an account owns and the grants it holds, complete and
    /// proven (that account only).
    async fn listing(
        &self,
        account: AccountId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError>;
    /// Stores a blob (ciphertext), streamed, for the account that signed
    /// `auth` (scope [`Authorization::upload_scope`]): counted against its
    /// quota of unreferenced bytes until a committed record names the blob
    /// ([`NodeError::QuotaExceeded`] past it). A stream whose size hint is
    /// exact (lower bound = upper bound) is taken to declare that many
    /// bytes, and refused before any is stored if they do not fit: the HTTP
    /// server reports an upload's `Content-Length` so. Every upload is also
    /// counted as it streams.
    async fn put_blob(&self, data: ByteStream, auth: Authorization)
        -> Result<ContentId, NodeError>;
    /// Streams a blob, checked against its content id.
    async fn get_blob(&self, cid: ContentId) -> Result<ByteStream, NodeError>;
    /// Streams a blob from byte `offset` on: what [`NodeApi::get_blob`]
    /// yields less its first `offset` bytes, ending with the same check of
    /// the whole copy. A reader resumes a broken download with it. An offset
    /// past the blob's end ends the stream with an [`OffsetPastEnd`] error.
    ///
    /// The default reads the whole blob and drops the prefix
    /// ([`skip_prefix`]); a remote node sends only the rest.
    async fn get_blob_from(&self, cid: ContentId, offset: u64) -> Result<ByteStream, NodeError> {
        Ok(skip_prefix(self.get_blob(cid).await?, offset))
    }
}

/// A blob download asked to start past the blob's end (see
/// [`NodeApi::get_blob_from`]); it comes inside an `io::Error`, see
/// [`OffsetPastEnd::from_io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset} is past the blob's end: it is {len} bytes long")]
pub struct OffsetPastEnd {
    /// The offset asked for.
    pub offset: u64,
    /// The blob's length.
    pub len: u64,
}

impl OffsetPastEnd {
    /// The [`OffsetPastEnd`] inside `err`, if that is what it carries.
    pub fn from_io(err: &std::io::Error) -> Option<&OffsetPastEnd> {
        err.get_ref()?.downcast_ref()
    }
}

/// `stream` without its first `offset` bytes. Errors pass through and end
/// it; if it ends cleanly before `offset`, it ends with an
/// [`OffsetPastEnd`] error (kind [`std::io::ErrorKind::InvalidInput`])
/// instead.
pub fn skip_prefix(stream: ByteStream, offset: u64) -> ByteStream {
    use bytes::Buf;
    use futures::StreamExt;
    if offset == 0 {
        return stream;
    }
    Box::pin(futures::stream::unfold(
        Some((stream, offset)),
        move |state| async move {
            let (mut stream, mut left) = state?;
            loop {
                match stream.next().await {
                    Some(Ok(mut chunk)) => {
                        if left == 0 {
                            return Some((Ok(chunk), Some((stream, 0))));
                        }
                        let len = chunk.len() as u64;
                        if len <= left {
                            left -= len;
                            continue;
                        }
                        chunk.advance(left as usize);
                        return Some((Ok(chunk), Some((stream, 0))));
                    }
                    Some(Err(e)) => return Some((Err(e), None)),
                    None if left == 0 => return None,
                    None => {
                        let len = offset - left;
                        let err = std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            OffsetPastEnd { offset, len },
                        );
                        return Some((Err(err), None));
                    }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_system_time(std::time::SystemTime::now())
    }

    #[test]
    fn authorization_checks_signature_cluster_scope_and_time() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let mallory = SigningKey::from_bytes(&[2; 32]);
        let (here, elsewhere) = (Digest([7; 32]), Digest([8; 32]));
        let record = RecordId([5; 32]);
        let scope = Authorization::audit_scope(&record);
        let auth = Authorization::sign(&alice, &here, scope.clone());
        assert_eq!(
            auth.check(&here, &scope, now()).unwrap(),
            AccountId::from_verifying_key(&alice.verifying_key())
        );

        // Signed for another cluster.
        let err = auth.check(&elsewhere, &scope, now()).unwrap_err();
        assert!(err.to_string().contains("another cluster"), "{err}");
        // Signed for another request.
        let err = auth
            .check(&here, &Authorization::grants_scope(&record), now())
            .unwrap_err();
        assert!(err.to_string().contains("another request"), "{err}");
        // Mallory's signature claiming Alice.
        let mut forged = Authorization::sign(&mallory, &here, scope.clone());
        forged.account = auth.account;
        let err = forged.check(&here, &scope, now()).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        // An old authorization replayed later.
        let later = now().plus_millis(AUTH_WINDOW.as_millis() as u64 + 1_000);
        let err = auth.check(&here, &scope, later).unwrap_err();
        assert!(err.to_string().contains("5 minutes"), "{err}");
        // A truncated signature.
        let mut short = auth.clone();
        short.signature.pop();
        assert!(matches!(
            short.check(&here, &scope, now()),
            Err(NodeError::Unauthorized(_))
        ));
    }

    /// What `skip_prefix` makes of items `parts` skipping `offset` bytes:
    /// the bytes, and the error it ended with.
    fn skipped(parts: &[&'static [u8]], offset: u64) -> (Vec<u8>, Option<std::io::Error>) {
        use futures::StreamExt;
        let items: Vec<std::io::Result<bytes::Bytes>> = parts
            .iter()
            .map(|p| Ok(bytes::Bytes::from_static(p)))
            .collect();
        let mut stream = skip_prefix(Box::pin(futures::stream::iter(items)), offset);
        let mut out = Vec::new();
        while let Some(item) = futures::executor::block_on(stream.next()) {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[test]
    fn skip_prefix_drops_exactly_the_offset() {
        let parts: &[&'static [u8]] = &[b"hello ", b"wide ", b"world"];
        for offset in 0..=16u64 {
            let (out, err) = skipped(parts, offset);
            assert!(err.is_none(), "offset {offset}: {err:?}");
            assert_eq!(
                out,
                &b"hello wide world"[offset as usize..],
                "offset {offset}"
            );
        }
    }

    #[test]
    fn skip_prefix_past_the_end_says_so() {
        let (out, err) = skipped(&[b"hello ", b"world"], 12);
        assert!(out.is_empty());
        let err = err.expect("an error");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(
            OffsetPastEnd::from_io(&err),
            Some(&OffsetPastEnd {
                offset: 12,
                len: 11
            })
        );
        assert_eq!(
            err.to_string(),
            "offset 12 is past the blob's end: it is 11 bytes long"
        );
    }

    #[test]
    fn skip_prefix_passes_errors_through_and_stops() {
        use futures::StreamExt;
        let items: Vec<std::io::Result<bytes::Bytes>> = vec![
            Ok(bytes::Bytes::from_static(b"abc")),
            Err(std::io::Error::other("disk on fire")),
            Ok(bytes::Bytes::from_static(b"def")),
        ];
        let out: Vec<_> = futures::executor::block_on(
            skip_prefix(Box::pin(futures::stream::iter(items)), 1).collect(),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_ref().unwrap().as_ref(), b"bc");
        assert_eq!(out[1].as_ref().unwrap_err().to_string(), "disk on fire");
    }
}

/// Errors of node operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The transaction bytes do not decode.
    #[error("malformed transaction: {0}")]
    BadTransaction(#[from] DecodeError),
    /// The signature does not verify.
    #[error(transparent)]
    BadSignature(#[from] SignatureError),
    /// The call was ordered and refused; its receipt is on the ledger.
    #[error("{0}")]
    Refused(Refusal),
    /// The engine failed.
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    /// The ledger failed.
    #[error(transparent)]
    #[cfg(feature = "server")]
    Ledger(#[from] rr_storage::LedgerError),
    /// The key fragment store failed.
    #[error(transparent)]
    #[cfg(feature = "server")]
    Fragments(#[from] crate::fragments::FragmentStoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A proxy re-encryption step failed.
    #[error(transparent)]
    Pre(#[from] PreError),
    /// No such record.
    #[error("no record {0} on this ledger")]
    UnknownRecord(RecordId),
    /// No such grant.
    #[error("no grant {0} on this ledger")]
    UnknownGrant(GrantId),
    /// The delivered fragment does not match the grant's commitment.
    #[error("the key fragment delivered for grant {grant} does not match the commitment for {replica} on the ledger; it was not stored")]
    FragmentMismatch {
        /// The grant.
        grant: GrantId,
        /// This replica.
        replica: ReplicaId,
    },
    /// A sealed key fragment did not open with this replica's sealing key.
    #[error("{replica} cannot take the key fragment of grant {grant}: {source}")]
    Sealed {
        /// The grant.
        grant: GrantId,
        /// This replica.
        replica: ReplicaId,
        /// Why.
        #[source]
        source: crate::sealing::SealError,
    },
    /// This replica holds no fragment for the grant.
    #[error("{replica} holds no key fragment for grant {grant}: the granting client has not delivered it (deliver it again), or the grant was revoked")]
    FragmentMissing {
        /// The grant.
        grant: GrantId,
        /// This replica.
        replica: ReplicaId,
    },
    /// The record uses a scheme this node was not built with.
    #[error("record {record} uses scheme {found}; this node serves {served}")]
    SchemeMismatch {
        /// The record.
        record: RecordId,
        /// Its scheme.
        found: SchemeId,
        /// The node's scheme.
        served: SchemeId,
    },
    /// The call is not the kind the operation expects.
    #[error("expected a {expected} call, got a {found} call")]
    WrongCall {
        /// Expected call.
        expected: &'static str,
        /// Found call.
        found: &'static str,
    },
    /// A `RegisterRecord` names a blob this replica does not hold; it was
    /// not ordered here (admission).
    #[error("this replica holds no blob {cid}: upload the ciphertext (POST /v1/blobs) to it before registering the record; the call was not ordered")]
    BlobNotHeld {
        /// The blob the call names.
        cid: rr_core::ContentId,
    },
    /// A `RegisterRecord` declares a size other than its blob's; it was
    /// not ordered here (admission).
    #[error("the record declares {declared} bytes but blob {cid} holds {stored}: register the size of the uploaded ciphertext; the call was not ordered")]
    BlobSizeMismatch {
        /// The blob the call names.
        cid: rr_core::ContentId,
        /// The size the call declares.
        declared: u64,
        /// The size of the blob this replica holds.
        stored: u64,
    },
    /// A query's authorization is missing, malformed, expired or forged.
    #[error("not authenticated: {0}")]
    Unauthorized(String),
    /// An upload would take the account's unreferenced bytes (blobs it
    /// stored that no committed record names yet) past its quota, or all
    /// accounts' past the node's cap; nothing was stored.
    #[error("{message}")]
    QuotaExceeded {
        /// Whether the node-wide cap (not the account's quota) was hit.
        global: bool,
        /// What to do about it.
        message: String,
    },
    /// The caller is authenticated but may not see or do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Nothing of that kind with that id (a transaction never committed, ...).
    #[error("{0}")]
    NotFound(String),
    /// A remote node answered with an error this client has no variant for.
    #[error("{message} ({code}, HTTP {status})")]
    Remote {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: String,
        /// Message.
        message: String,
    },
    /// The node could not be reached or answered something unreadable.
    #[error("{0}")]
    Transport(String),
    /// Bad configuration or data directory.
    #[error("{0}")]
    Setup(String),
    /// The replica could not get a quorum's certificate of its state in
    /// time (fewer than 2f + 1 replicas executed it, or this replica's state
    /// differs from theirs).
    #[error("{0}")]
    Uncertified(String),
    /// Every replica that answered holds an older state than this client
    /// has already seen certified: they are behind (restarted from an old
    /// copy, or cut off), or the ledger was rolled back. Never believed.
    #[error("no replica answered with state as new as height {seen}, which this client has seen certified (the newest answer was of height {newest}): the replicas are behind (restarted from an old copy, or cut off), or the ledger was rolled back; {detail}")]
    Stale {
        /// The newest certified height the client saw.
        seen: u64,
        /// The newest height a replica answered with.
        newest: u64,
        /// Every replica's failure.
        detail: String,
    },
}

impl From<rr_core::TxError> for NodeError {
    fn from(e: rr_core::TxError) -> Self {
        match e {
            rr_core::TxError::Malformed(d) => NodeError::BadTransaction(d),
            rr_core::TxError::BadSignature(s) => NodeError::BadSignature(s),
            other => NodeError::Setup(other.to_string()),
        }
    }
}

impl NodeError {
    /// The stable refusal code, if the call was refused by the contracts.
    pub fn refusal_code(&self) -> Option<ErrorCode> {
        match self {
            NodeError::Refused(r) => Some(r.code),
            _ => None,
        }
    }
}

/// What a node tells clients about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct NodeInfo {
    /// This replica.
    pub replica: ReplicaId,
    /// Replicas n.
    pub replicas: u16,
    /// Byzantine faults tolerated f.
    pub faults_tolerated: u16,
    /// Scheme of new records.
    pub scheme: SchemeId,
    /// Every scheme this node serves records of.
    pub schemes: Vec<SchemeInfo>,
    /// Ledger status.
    pub status: EngineStatus,
    /// The replica set whose certificates this node serves: every replica's
    /// key, in order (one key for a dev node). A client trusts the set it
    /// was configured with (a cluster file, or the dev node's key pinned on
    /// first use), never this field.
    pub replica_set: ReplicaSetInfo,
    /// Whether grants of single-proxy schemes (recrypt) are allowed here:
    /// always on a single dev node, on a cluster only where its operator
    /// opted in.
    pub single_proxy_allowed: bool,
    /// The replica set, in replica order: addresses and public keys
    /// (replica and sealing). Empty on a single dev node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
}

/// A scheme a node serves, and what its threshold means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct SchemeInfo {
    /// Id.
    pub id: SchemeId,
    /// Name.
    pub name: String,
    /// Whether any one replica can re-encrypt on its own (threshold 1).
    pub single_proxy: bool,
    /// What that means, for people.
    pub note: String,
}

/// What one replica answers to a retrieval: the retrieval's certified
/// receipt, the record and grant proven against a certified header of its
/// state (at or after the receipt), and, if the grant is usable at its head
/// and it holds its key fragment, its capsule fragment signed with its
/// replica key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Retrieval {
    /// The retrieval's receipt (allowed or refused), certified.
    pub receipt: CertifiedReceipt,
    /// The record and the grant, proven.
    pub state: StateAnswer,
    /// This replica's capsule fragment, if it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<SignedFragment>,
    /// Why there is no fragment, for people (not proven).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set when this replica withholds its fragment because the grant is
    /// not usable at its head or by its clock (revoked, expired), though
    /// the receipt allowed the retrieval when it was ordered (a retry). A
    /// client believes it once f + 1 replicas say the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<Refusal>,
}

/// A replica a multi-replica operation went on without, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedReplica {
    /// The replica.
    pub replica: ReplicaId,
    /// What went wrong, for people.
    pub reason: String,
}

/// One member of the replica set, as every replica and client configures it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Address replicas reach it on (replica-to-replica TCP).
    #[cfg_attr(feature = "server", schema(value_type = String, examples("127.0.0.1:7801")))]
    pub p2p: SocketAddr,
    /// Base URL of its HTTP API, such as `http://127.0.0.1:7701`.
    pub api: String,
    /// Its ed25519 replica key, hex (it signs every protocol message).
    #[cfg_attr(feature = "server", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub public_key: String,
    /// Its X25519 sealing key, hex: clients seal its key fragments to it.
    #[cfg_attr(feature = "server", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub sealing_key: String,
}

impl Peer {
    /// The replica key, decoded.
    pub fn verifying_key(&self) -> Result<VerifyingKey, NodeError> {
        let bytes: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                NodeError::Setup(format!(
                    "peer {}: public_key is not 64 hex digits (32 bytes)",
                    self.p2p
                ))
            })?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| {
            NodeError::Setup(format!(
                "peer {}: public_key is not a valid ed25519 key",
                self.p2p
            ))
        })
    }
}

/// The replica set of `peers`, in order.
pub fn replica_set_of(
    peers: impl IntoIterator<Item = Peer>,
) -> Result<rr_core::cert::ReplicaSetInfo, NodeError> {
    let keys = peers
        .into_iter()
        .map(|p| {
            p.verifying_key()
                .map(|k| rr_core::AccountId::from_verifying_key(&k))
        })
        .collect::<Result<Vec<_>, _>>()?;
    rr_core::cert::ReplicaSetInfo::new(keys)
        .map_err(|e| NodeError::Setup(format!("replica set: {e}")))
}
