//! The client side: identities, public cards, and the flows of the design
//! (register, grant, retrieve, revoke, audit) against a node.
//!
//! Plaintext and secret keys stay in the client's process: the node sees
//! ciphertext, capsules, key fragments for its own replica, and signed calls.
//! Proxy re-encryption runs on tokio's blocking pool, off the async runtime.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use rand_core::{OsRng, RngCore};
use rr_core::{
    AccountId, AuditEntry, ByteStream, Call, CallOutput, ContentId, DataKey, Digest, Grant,
    GrantId, GrantInfo, PreError, PreScheme, Purpose, RecordId, RecordInfo, RegisterRecord,
    Retrieve, Revoke, SchemeId, SignedTransaction, Threshold, Timestamp, TxBody, WireEncoding,
};
use rr_pre::envelope::{self, EnvelopeError, DEFAULT_CHUNK_SIZE};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use crate::api::{Authorization, NodeApi};
use crate::node::{Node, NodeError, NodeTypes};

/// Errors of client operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node refused or failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A proxy re-encryption step failed.
    #[error(transparent)]
    Pre(#[from] PreError),
    /// The ciphertext did not decrypt: tampered, truncated, or the wrong key.
    #[error("the record's ciphertext failed to decrypt: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The blob store failed or returned bytes that do not match the record.
    #[error(transparent)]
    Blob(#[from] rr_core::BlobError),
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The operation needs the record's owner.
    #[error("account {caller} does not own record {record}; only its owner can {action}")]
    NotOwner {
        /// Who asked.
        caller: AccountId,
        /// The record.
        record: RecordId,
        /// What they tried.
        action: &'static str,
    },
    /// The grantee's card is for another scheme than the record.
    #[error("the grantee's public card is for scheme {card}, but record {record} uses scheme {record_scheme}")]
    SchemeMismatch {
        /// The card's scheme.
        card: SchemeId,
        /// The record.
        record: RecordId,
        /// The record's scheme.
        record_scheme: SchemeId,
    },
    /// Too few capsule fragments verified.
    #[error("only {verified} of the {needed} capsule fragments needed for grant {grant} verified; refused replicas: {bad:?}")]
    NotEnoughFragments {
        /// The grant.
        grant: GrantId,
        /// Verified fragments.
        verified: usize,
        /// The threshold.
        needed: usize,
        /// Replicas whose fragments failed to verify.
        bad: Vec<String>,
    },
    /// The node answered something other than what the call asks for.
    #[error("unexpected answer from the node: {0}")]
    Unexpected(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
    let context = context.into();
    move |source| {
        if let Some(e) = EnvelopeError::from_io(&source) {
            return ClientError::Envelope(e.clone());
        }
        if let Some(rr_core::BlobError::Integrity { cid, actual }) =
            rr_core::BlobError::from_io(&source)
        {
            return ClientError::Blob(rr_core::BlobError::Integrity {
                cid: *cid,
                actual: *actual,
            });
        }
        ClientError::Io { context, source }
    }
}

/// A person's or organisation's keys: an ed25519 identity that signs every
/// call, and a PRE master secret from which the account key and every
/// record's key are derived. Both zeroize on drop.
pub struct Identity<P: PreScheme> {
    signing: SigningKey,
    master: P::MasterSecret,
}

impl<P: PreScheme> std::fmt::Debug for Identity<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("account", &self.account())
            .finish_non_exhaustive()
    }
}

impl<P: PreScheme> Identity<P> {
    /// Fresh keys from the OS RNG.
    pub fn generate(pre: &P) -> Self {
        Self {
            signing: SigningKey::generate(&mut OsRng),
            master: pre.generate_master(&mut OsRng),
        }
    }

    /// Keys from their secret bytes (as [`Identity::to_secret_bytes`] gives them).
    pub fn from_secret_bytes(pre: &P, signing: &[u8; 32], master: &[u8]) -> Result<Self, PreError> {
        Ok(Self {
            signing: SigningKey::from_bytes(signing),
            master: pre.master_from_bytes(master)?,
        })
    }

    /// The secret bytes, for an encrypted keystore: (signing key, master secret).
    pub fn to_secret_bytes(&self, pre: &P) -> (Zeroizing<[u8; 32]>, Zeroizing<Vec<u8>>) {
        (
            Zeroizing::new(self.signing.to_bytes()),
            pre.master_to_bytes(&self.master),
        )
    }

    /// The PRE master secret, for integrators that build calls by hand (the
    /// record keys are `pre.record_key(identity.master(), &record_id)`).
    pub fn master(&self) -> &P::MasterSecret {
        &self.master
    }

    /// The account id.
    pub fn account(&self) -> AccountId {
        AccountId::from_verifying_key(&self.signing.verifying_key())
    }

    /// The public card others grant to.
    pub fn card(&self, pre: &P) -> PublicCard {
        let (_, pk) = pre.account_key(&self.master);
        PublicCard {
            account: self.account(),
            scheme: P::ID,
            pre_public_key: hex::encode(pk.to_bytes()),
        }
    }

    /// Signs a call with a fresh random nonce.
    pub fn sign(&self, call: Call) -> SignedTransaction {
        TxBody {
            signer: self.account(),
            nonce: OsRng.next_u64(),
            call,
        }
        .sign(&self.signing)
    }
}

/// What a grantee shares so an owner can grant to them: their account and
/// their PRE account public key. Public; safe to publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicCard {
    /// The account.
    pub account: AccountId,
    /// The scheme of `pre_public_key`.
    pub scheme: SchemeId,
    /// The PRE account public key, hex.
    pub pre_public_key: String,
}

impl PublicCard {
    fn key_bytes(&self) -> Result<Vec<u8>, ClientError> {
        hex::decode(&self.pre_public_key).map_err(|_| {
            ClientError::Pre(PreError::Malformed {
                scheme: self.scheme.name(),
                what: "public card key (not hex)",
            })
        })
    }
}

/// Options of a grant.
#[derive(Clone, Debug)]
pub struct GrantOptions {
    /// Purpose of use.
    pub purpose: Purpose,
    /// Block time after which the grant stops working.
    pub expires_at: Option<Timestamp>,
    /// Fragments needed, m (default: f + 1 of the node's replica set).
    pub threshold: Option<u16>,
}

/// A registered record, as the owner's client saw it go in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOutcome {
    /// The record id.
    pub record_id: RecordId,
    /// Content id of the ciphertext.
    pub cid: ContentId,
    /// Ciphertext size.
    pub size: u64,
}

/// A client acting as one identity against one node, in process or over HTTP.
pub struct Client<P: PreScheme> {
    api: Arc<dyn NodeApi>,
    pre: Arc<P>,
    identity: Arc<Identity<P>>,
}

impl<P: PreScheme> Clone for Client<P> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            pre: self.pre.clone(),
            identity: self.identity.clone(),
        }
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ClientError> + Send + 'static,
) -> Result<R, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Unexpected(format!("crypto task failed: {e}")))?
}

impl<P: PreScheme> Client<P> {
    /// A client for `identity` through `api` with scheme `pre`.
    pub fn new(api: Arc<dyn NodeApi>, pre: Arc<P>, identity: Identity<P>) -> Self {
        Self {
            api,
            pre,
            identity: Arc::new(identity),
        }
    }

    /// A client for `identity` on a node in this process.
    pub fn in_process<T: NodeTypes<Pre = P>>(node: &Arc<Node<T>>, identity: Identity<P>) -> Self {
        Self::new(node.clone(), node.pre().clone(), identity)
    }

    /// This client's identity.
    pub fn identity(&self) -> &Identity<P> {
        &self.identity
    }

    async fn execute(&self, call: Call) -> Result<CallOutput, ClientError> {
        let receipt = self.api.submit(self.identity.sign(call)).await?;
        Ok(receipt.into_result().map_err(NodeError::Refused)?)
    }

    fn authorize(&self, scope: String) -> Authorization {
        Authorization::sign(&self.identity.signing, scope)
    }

    /// This client's account.
    pub fn account(&self) -> AccountId {
        self.identity.account()
    }

    /// This client's public card.
    pub fn card(&self) -> PublicCard {
        self.identity.card(&self.pre)
    }

    /// The node this client talks to.
    pub fn api(&self) -> &Arc<dyn NodeApi> {
        &self.api
    }

    /// Encrypts `plaintext` (streamed, constant memory) under a fresh data key
    /// encapsulated under a new record key, stores the ciphertext, and
    /// registers the record.
    pub async fn put(
        &self,
        plaintext: ByteStream,
        media_type: &str,
    ) -> Result<PutOutcome, ClientError> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let record_id = RecordId::derive(&self.account(), &salt);
        let (identity, pre) = (self.identity.clone(), self.pre.clone());
        let (record_key, capsule, key) = blocking(move || {
            let (_, pk) = pre.record_key(&identity.master, &record_id);
            let (capsule, key) = pre.encapsulate(&mut OsRng, &pk)?;
            Ok((pk.to_bytes(), capsule.to_bytes(), key))
        })
        .await?;
        let ciphertext = envelope::encrypt_stream(&key, &mut OsRng, plaintext, DEFAULT_CHUNK_SIZE)?;
        drop(key);
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = counted.clone();
        let ciphertext: ByteStream = Box::pin(ciphertext.inspect(move |item| {
            if let Ok(b) = item {
                counter.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        let cid = self.api.put_blob(ciphertext).await.map_err(|e| match e {
            NodeError::Blob(rr_core::BlobError::Source(io)) => {
                io_err("reading the record to encrypt")(io)
            }
            other => ClientError::Node(other),
        })?;
        let size = counted.load(std::sync::atomic::Ordering::Relaxed);
        let call = Call::RegisterRecord(RegisterRecord {
            salt,
            cid,
            size,
            scheme: P::ID,
            record_key,
            capsule,
            media_type: media_type.to_string(),
            encrypted_metadata: None,
        });
        match self.execute(call).await? {
            CallOutput::Registered { record } if record == record_id => Ok(PutOutcome {
                record_id,
                cid,
                size,
            }),
            other => Err(ClientError::Unexpected(format!(
                "register answered {other:?}"
            ))),
        }
    }

    /// [`Client::put`] of a whole file, streamed.
    pub async fn put_file(&self, path: &Path, media_type: &str) -> Result<PutOutcome, ClientError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(io_err(format!("cannot open {}", path.display())))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        self.put(Box::pin(stream), media_type).await
    }

    /// Grants `grantee` access to one of this client's records: makes the key
    /// fragments, commits the grant (with a commitment to each fragment), then
    /// delivers each replica its fragment.
    pub async fn grant(
        &self,
        record: RecordId,
        grantee: &PublicCard,
        options: GrantOptions,
    ) -> Result<GrantId, ClientError> {
        let info = self.api.record(record).await?;
        if info.owner != self.account() {
            return Err(ClientError::NotOwner {
                caller: self.account(),
                record,
                action: "grant access to it",
            });
        }
        if grantee.scheme != info.scheme {
            return Err(ClientError::SchemeMismatch {
                card: grantee.scheme,
                record,
                record_scheme: info.scheme,
            });
        }
        let node_info = self.api.info().await?;
        let n = node_info.replicas;
        let m = options.threshold.unwrap_or(node_info.faults_tolerated + 1);
        let threshold = Threshold::new(m, n)
            .map_err(|e| ClientError::Unexpected(format!("threshold for {n} replicas: {e}")))?;
        let grantee_key = grantee.key_bytes()?;
        let (identity, pre) = (self.identity.clone(), self.pre.clone());
        let gk = grantee_key.clone();
        let fragments: Vec<Vec<u8>> = blocking(move || {
            pre.check_threshold(threshold)?;
            let grantee_pk = <P as PreScheme>::PublicKey::from_bytes(&gk)?;
            let (sk, _) = pre.record_key(&identity.master, &record);
            let kfrags = pre.delegate(&mut OsRng, &sk, &grantee_pk, threshold)?;
            Ok(kfrags.iter().map(|k| k.to_bytes()).collect())
        })
        .await?;
        let call = Call::Grant(Grant {
            record,
            grantee: grantee.account,
            grantee_key,
            threshold,
            fragment_commitments: fragments
                .iter()
                .map(|f| Digest::fragment_commitment(f))
                .collect(),
            purpose: options.purpose,
            expires_at: options.expires_at,
        });
        let grant = match self.execute(call).await? {
            CallOutput::Granted { grant } => grant,
            other => return Err(ClientError::Unexpected(format!("grant answered {other:?}"))),
        };
        // One replica: it takes the fragment for its own index.
        let mine = fragments
            .into_iter()
            .nth(usize::from(node_info.replica.0))
            .ok_or_else(|| ClientError::Unexpected("no fragment for this replica".into()))?;
        self.api.deliver_fragment(grant, mine).await?;
        Ok(grant)
    }

    /// Retrieves a record through a grant made to this client: the call is
    /// ordered and audited; the replica's capsule fragments are verified and
    /// opened here, and the ciphertext is fetched, checked and decrypted as a
    /// stream. The stream ends with an error, not cleanly, if the ciphertext
    /// was tampered with or truncated: act on the plaintext only once it ends.
    pub async fn retrieve(
        &self,
        grant: GrantId,
        purpose: Purpose,
    ) -> Result<ByteStream, ClientError> {
        let tx = self
            .identity
            .sign(Call::Retrieve(Retrieve { grant, purpose }));
        let retrieval = self.api.retrieve(tx).await?;
        let (identity, pre) = (self.identity.clone(), self.pre.clone());
        let record = retrieval.record.clone();
        let needed = usize::from(retrieval.grant.threshold.m);
        let key = blocking(move || {
            let record_pk = <P as PreScheme>::PublicKey::from_bytes(&record.record_key)?;
            let capsule = <P as PreScheme>::Capsule::from_bytes(&record.capsule)?;
            let (my_sk, my_pk) = pre.account_key(&identity.master);
            let mut verified = Vec::new();
            let mut bad = Vec::new();
            for crate::node::CapsuleFragment { replica, fragment } in retrieval.capsule_fragments {
                let checked = <P as PreScheme>::CapsuleFrag::from_bytes(&fragment)
                    .and_then(|c| pre.verify_capsule_frag(c, &capsule, &record_pk, &my_pk));
                match checked {
                    Ok(v) => verified.push(v),
                    Err(e) => bad.push(format!("{replica}: {e}")),
                }
                if verified.len() == needed {
                    break;
                }
            }
            if verified.len() < needed {
                return Err(ClientError::NotEnoughFragments {
                    grant,
                    verified: verified.len(),
                    needed,
                    bad,
                });
            }
            Ok(pre.open_reencrypted(&my_sk, &record_pk, &capsule, &verified)?)
        })
        .await?;
        self.decrypt_blob(&retrieval.record, key).await
    }

    /// Reads one of this client's own records (no grant, no node-side crypto).
    pub async fn read_own(&self, record: RecordId) -> Result<ByteStream, ClientError> {
        let info = self.api.record(record).await?;
        if info.owner != self.account() {
            return Err(ClientError::NotOwner {
                caller: self.account(),
                record,
                action: "read it without a grant",
            });
        }
        let (identity, pre) = (self.identity.clone(), self.pre.clone());
        let capsule_bytes = info.capsule.clone();
        let key = blocking(move || {
            let capsule = <P as PreScheme>::Capsule::from_bytes(&capsule_bytes)?;
            let (sk, _) = pre.record_key(&identity.master, &record);
            Ok(pre.open(&sk, &capsule)?)
        })
        .await?;
        self.decrypt_blob(&info, key).await
    }

    async fn decrypt_blob(
        &self,
        record: &RecordInfo,
        key: DataKey,
    ) -> Result<ByteStream, ClientError> {
        let ciphertext = self.api.get_blob(record.cid).await?;
        Ok(envelope::decrypt_stream(&key, ciphertext))
    }

    /// Revokes a grant this client made; this replica erases its fragment.
    pub async fn revoke(&self, grant: GrantId) -> Result<(), ClientError> {
        match self.execute(Call::Revoke(Revoke { grant })).await? {
            CallOutput::Revoked { .. } => Ok(()),
            other => Err(ClientError::Unexpected(format!(
                "revoke answered {other:?}"
            ))),
        }
    }

    /// The audit trail of one of this client's records.
    pub async fn audit(&self, record: RecordId) -> Result<Vec<AuditEntry>, ClientError> {
        let auth = self.authorize(Authorization::audit_scope(&record));
        Ok(self.api.audit(record, auth).await?)
    }

    /// The grants of one of this client's records.
    pub async fn grants_of(&self, record: RecordId) -> Result<Vec<GrantInfo>, ClientError> {
        let auth = self.authorize(Authorization::grants_scope(&record));
        Ok(self.api.grants_of_record(record, auth).await?)
    }

    /// The records this client owns and the grants it holds.
    pub async fn listing(&self) -> Result<(Vec<RecordInfo>, Vec<GrantInfo>), ClientError> {
        let account = self.account();
        let auth = self.authorize(Authorization::listing_scope(&account));
        Ok(self.api.listing(account, auth).await?)
    }
}

/// Writes a plaintext stream to `path` only if it ends cleanly: it goes to
/// a temporary file beside `path` first, and a failed stream leaves no
/// output file.
pub async fn write_stream_to_file(mut stream: ByteStream, path: &Path) -> Result<u64, ClientError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".rr-partial-")
        .tempfile_in(dir)
        .map_err(io_err(format!("cannot create a file in {}", dir.display())))?;
    let (std_file, tmp_path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk.map_err(io_err("reading the record"))?;
        file.write_all(&chunk)
            .await
            .map_err(io_err(format!("writing {}", path.display())))?;
        written += chunk.len() as u64;
    }
    file.sync_all()
        .await
        .map_err(io_err(format!("writing {}", path.display())))?;
    tmp_path
        .persist(path)
        .map_err(|e| io_err(format!("writing {}", path.display()))(e.error))?;
    Ok(written)
}

/// Collects a stream into memory (for small records and tests).
pub async fn collect(mut stream: ByteStream) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(io_err("reading the record"))?);
    }
    Ok(out)
}
