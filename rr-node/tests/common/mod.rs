//! Helpers shared by the integration tests: people with known keys, a dev node
//! on a manual clock in a temporary directory, hand-made calls, and views of
//! the ledger to compare before and after a refused call.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use rr_consensus::{Clock, ManualClock};
use rr_core::{
    byte_stream_of, AccountId, AuditEntry, Call, CallOutput, Digest, EngineStatus, ErrorCode,
    Grant, GrantId, GrantInfo, PreScheme, Purpose, Receipt, RecordId, RecordInfo,
    SignedTransaction, Threshold, Timestamp, TxBody, WireEncoding,
};
use rr_node::{
    collect, Client, ClientError, DevConfig, DevTypes, GrantOptions, Identity, Node, NodeError,
    PutOutcome,
};
use rr_pre::{Umbral, UmbralMasterSecret};

/// The dev node.
pub type Dev = Node<DevTypes>;

/// Block time the manual clocks start at (2023-11-14).
pub const START: Timestamp = Timestamp(1_700_000_000_000);

/// Someone with known keys, so the tests can sign calls by hand and rebuild
/// the same identity after a restart.
pub struct Person {
    signing: [u8; 32],
    master: Vec<u8>,
}

impl Person {
    /// Fresh keys.
    pub fn new() -> Self {
        let id = Identity::generate(&Umbral);
        let (signing, master) = id.to_secret_bytes(&Umbral);
        Self {
            signing: *signing,
            master: master.to_vec(),
        }
    }

    /// The identity (a new value with the same keys each time).
    pub fn identity(&self) -> Identity<Umbral> {
        Identity::from_secret_bytes(&Umbral, &self.signing, &self.master)
            .expect("valid secret bytes")
    }

    /// A client for this person on `node`.
    pub fn client(&self, node: &Arc<Dev>) -> Client<Umbral> {
        Client::in_process(node, self.identity())
    }

    /// The signing key.
    pub fn key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.signing)
    }

    /// The account.
    pub fn account(&self) -> AccountId {
        AccountId::from_verifying_key(&self.key().verifying_key())
    }

    /// The PRE master secret.
    pub fn master(&self) -> UmbralMasterSecret {
        Umbral
            .master_from_bytes(&self.master)
            .expect("valid master bytes")
    }

    /// The PRE account public key, encoded.
    pub fn pre_key(&self) -> Vec<u8> {
        Umbral.account_key(&self.master()).1.to_bytes()
    }

    /// An authorization of scope `upload` for `node`'s cluster, signed now.
    pub fn upload_auth(&self, node: &Dev) -> rr_node::Authorization {
        rr_node::Authorization::sign(
            &self.key(),
            &node.replica_set().digest(),
            rr_node::Authorization::upload_scope(),
        )
    }

    /// Signs `call` with `nonce`.
    pub fn sign_with(&self, nonce: u64, call: Call) -> SignedTransaction {
        TxBody {
            signer: self.account(),
            nonce,
            call,
        }
        .sign(&self.key())
    }

    /// Signs `call` with a fresh random nonce.
    pub fn sign(&self, call: Call) -> SignedTransaction {
        self.sign_with(OsRng.next_u64(), call)
    }
}

impl Default for Person {
    fn default() -> Self {
        Self::new()
    }
}

/// Opens a dev node in `dir` on `clock`.
pub async fn open_node(dir: &Path, clock: Arc<ManualClock>) -> Arc<Dev> {
    Node::open_dev_with_clock(DevConfig::new(dir), clock)
        .await
        .expect("open dev node")
}

/// A dev node on a manual clock in a fresh temporary directory, with four people.
pub struct World {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub node: Arc<Dev>,
    pub alice: Person,
    pub bob: Person,
    pub carol: Person,
    pub mallory: Person,
}

impl World {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(START));
        let node = open_node(dir.path(), clock.clone()).await;
        Self {
            dir,
            clock,
            node,
            alice: Person::new(),
            bob: Person::new(),
            carol: Person::new(),
            mallory: Person::new(),
        }
    }

    /// The manual clock's time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Alice stores `plaintext` and grants Bob access for treatment.
    pub async fn alice_shares_with_bob(&self, plaintext: &[u8]) -> (PutOutcome, GrantId) {
        let put = self
            .alice
            .client(&self.node)
            .put(byte_stream_of(plaintext.to_vec()), "text/plain")
            .await
            .expect("alice puts");
        let grant = self
            .alice
            .client(&self.node)
            .grant(
                put.record_id,
                &self.bob.client(&self.node).card(),
                options("treatment", None),
            )
            .await
            .expect("alice grants bob");
        (put, grant)
    }
}

/// Grant options for `purpose`, default threshold.
pub fn options(purpose: &str, expires_at: Option<Timestamp>) -> GrantOptions {
    GrantOptions {
        purpose: purpose_of(purpose),
        expires_at,
        threshold: None,
    }
}

/// A checked purpose.
pub fn purpose_of(s: &str) -> Purpose {
    Purpose::new(s).expect("valid purpose")
}

/// `who` retrieves through `grant` and reads the whole record.
pub async fn retrieve_all(
    who: &Client<Umbral>,
    grant: GrantId,
    purpose: &str,
) -> Result<Vec<u8>, ClientError> {
    collect(who.retrieve(grant, purpose_of(purpose)).await?).await
}

/// Random 32 bytes.
pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

/// Key fragments of `owner`'s `record` for `grantee`, encoded.
pub fn delegate(owner: &Person, record: &RecordId, grantee: &Person, t: Threshold) -> Vec<Vec<u8>> {
    let (sk, _) = Umbral.record_key(&owner.master(), record);
    let grantee_pk = Umbral.account_key(&grantee.master()).1;
    Umbral
        .delegate(&mut OsRng, &sk, &grantee_pk, t)
        .expect("delegate")
        .iter()
        .map(|k| k.to_bytes())
        .collect()
}

/// A `Grant` call made by hand.
pub fn grant_call(
    record: RecordId,
    grantee: &Person,
    threshold: Threshold,
    fragment_commitments: Vec<Digest>,
    purpose: &str,
    expires_at: Option<Timestamp>,
) -> Call {
    Call::Grant(Grant {
        record,
        grantee: grantee.account(),
        grantee_key: grantee.pre_key(),
        threshold,
        fragment_commitments,
        purpose: purpose_of(purpose),
        expires_at,
    })
}

/// A well-formed one-replica `Grant` call with the commitment to `fragment`.
pub fn grant_call_for(record: RecordId, grantee: &Person, fragment: &[u8], purpose: &str) -> Call {
    grant_call(
        record,
        grantee,
        Threshold { m: 1, n: 1 },
        vec![Digest::fragment_commitment(fragment)],
        purpose,
        None,
    )
}

/// Submits `tx` and returns its receipt (refused or not).
pub async fn submit(node: &Dev, tx: SignedTransaction) -> Receipt {
    node.submit(tx).await.expect("ordered")
}

/// The refusal code and message of a receipt, or a panic if it took effect.
pub fn refusal(receipt: &Receipt) -> (ErrorCode, String) {
    match receipt.clone().into_result() {
        Ok(out) => panic!("expected a refusal, got {out:?}"),
        Err(r) => (r.code, r.message),
    }
}

/// The output of a receipt, or a panic if it was refused.
pub fn output(receipt: &Receipt) -> CallOutput {
    match receipt.clone().into_result() {
        Ok(out) => out,
        Err(r) => panic!("expected success, got refusal {r}"),
    }
}

/// The refusal code and message inside a node error, or a panic.
pub fn node_refusal(err: &NodeError) -> (ErrorCode, String) {
    match err {
        NodeError::Refused(r) => (r.code, r.message.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The refusal code and message inside a client error, or a panic.
pub fn client_refusal(err: &ClientError) -> (ErrorCode, String) {
    match err {
        ClientError::Node(e) => node_refusal(e),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// What the ledger holds about one record: the record, its grants and its trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordView {
    pub record: RecordInfo,
    pub grants: Vec<GrantInfo>,
    pub audit: Vec<AuditEntry>,
}

/// The ledger's view of `record`.
pub fn view(node: &Dev, record: &RecordId) -> RecordView {
    RecordView {
        record: node.record(record).expect("record"),
        grants: node.grants_of_record(record).expect("grants"),
        audit: node.audit(record).expect("audit"),
    }
}

/// The engine status.
pub fn status(node: &Dev) -> EngineStatus {
    node.status()
}

/// Makes a one-replica grant by hand (so the test holds the key fragment and
/// the signed transaction) and, if `deliver`, delivers the fragment.
pub async fn manual_grant(
    node: &Dev,
    owner: &Person,
    record: RecordId,
    grantee: &Person,
    purpose: &str,
    expires_at: Option<Timestamp>,
    deliver: bool,
) -> (GrantId, Vec<u8>, SignedTransaction) {
    let t = Threshold { m: 1, n: 1 };
    let fragment = delegate(owner, &record, grantee, t).remove(0);
    let tx = owner.sign(grant_call(
        record,
        grantee,
        t,
        vec![Digest::fragment_commitment(&fragment)],
        purpose,
        expires_at,
    ));
    let receipt = submit(node, tx.clone()).await;
    let grant = match output(&receipt) {
        CallOutput::Granted { grant } => grant,
        other => panic!("expected a grant, got {other:?}"),
    };
    assert_eq!(grant, GrantId::derive(&tx.id()));
    if deliver {
        node.deliver_fragment(grant, fragment.clone())
            .await
            .expect("deliver fragment");
    }
    (grant, fragment, tx)
}

/// Checks that between `before` and `after` only `n` audit entries were
/// appended (and the record's audit length bumped to match): the record,
/// its grants and the existing trail are unchanged. Returns the new entries.
pub fn appended<'a>(before: &RecordView, after: &'a RecordView, n: usize) -> &'a [AuditEntry] {
    let mut record = after.record.clone();
    record.audit_len = before.record.audit_len;
    assert_eq!(
        record, before.record,
        "the record changed beyond its audit length"
    );
    assert_eq!(after.record.audit_len, before.record.audit_len + n as u64);
    assert_eq!(after.grants, before.grants, "the record's grants changed");
    assert_eq!(
        after.audit.len(),
        before.audit.len() + n,
        "audit trail length"
    );
    assert_eq!(
        &after.audit[..before.audit.len()],
        &before.audit[..],
        "the audit trail was rewritten"
    );
    for (i, e) in after.audit[before.audit.len()..].iter().enumerate() {
        assert_eq!(e.seq, (before.audit.len() + i) as u64);
        assert_eq!(e.record, before.record.id);
    }
    &after.audit[before.audit.len()..]
}

/// Checks one audit entry.
pub fn assert_entry(
    e: &AuditEntry,
    actor: AccountId,
    action: rr_core::AuditAction,
    grant: Option<GrantId>,
    refused: Option<ErrorCode>,
) {
    assert_eq!(e.actor, actor, "audit actor of {e:?}");
    assert_eq!(e.action, action, "audit action of {e:?}");
    assert_eq!(e.grant, grant, "audit grant of {e:?}");
    assert_eq!(e.refused, refused, "audit outcome of {e:?}");
}
