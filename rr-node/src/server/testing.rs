//! The [`ContractExecutor`] conformance suite: what every executor a node
//! runs must do, checked against any implementation, in the spirit of
//! openraft's `Suite::test_all`. rr-node runs it against the
//! [`crate::NativeContracts`] with and without policies; run it against yours:
//!
//! ```
//! use rr_node::testing::ExecutorSuite;
//! use rr_node::{ContractsConfig, NativeContracts};
//!
//! ExecutorSuite::new(|config: ContractsConfig| NativeContracts::new(config)).test_all();
//! ```
//!
//! What it checks, each with real Umbral keys and signed calls:
//!
//! - **One receipt per call**, in block order, naming the call and the block.
//! - **Determinism**: two instances executing the same block on the same
//!   state return the same receipts and the same writes, byte for byte.
//! - **A refusal changes nothing but its nonce and the audit trail**: calls
//!   refused for every native reason (unknown record, not the owner, not the
//!   grantee, wrong purpose, revoked grant, bad threshold) write only their
//!   nonce, the record's audit entry and its `audit_len`.
//! - **Replays leave no trace**: a call executed again, in a later block or in
//!   the same one, is refused with `replayed_nonce` and writes nothing.
//! - **Sequential state within a block**: a grant made earlier in a block is
//!   visible to a retrieve later in it.
//!
//! The executor under test is made from a [`ContractsConfig`] (one replica,
//! Umbral): a policy-wrapped executor is tested with a policy that allows
//! the suite's calls, or with [`ExecutorSuite::refusing`] for one that
//! refuses some of them.

use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use rr_core::state::keys;
use rr_core::{
    AccountId, BlockContext, Call, ContentId, ContractExecutor, Digest, ErrorCode, Execution,
    Grant, MemoryState, Outcome, PreScheme, Purpose, RecordId, RecordInfo, RegisterRecord,
    Retrieve, Revoke, StateRead, Table, Threshold, Timestamp, TxBody, VerifiedTransaction,
    WireEncoding,
};
use rr_pre::Umbral;

use crate::contracts::ContractsConfig;

/// Checks a [`ContractExecutor`]; see the module docs.
pub struct ExecutorSuite<E, F> {
    make: F,
    /// Calls (by their suite name) the executor under test is expected to
    /// refuse with this code instead of what the native rules say.
    refused: Vec<(&'static str, ErrorCode)>,
    _executor: std::marker::PhantomData<fn() -> E>,
}

impl<E, F> std::fmt::Debug for ExecutorSuite<E, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorSuite")
            .field("refused", &self.refused)
            .finish()
    }
}

/// One person of the suite: signing key, account and Umbral keys.
struct Person {
    key: SigningKey,
    master: <Umbral as PreScheme>::MasterSecret,
    nonce: std::cell::Cell<u64>,
}

impl Person {
    fn new() -> Self {
        Self {
            key: SigningKey::generate(&mut OsRng),
            master: Umbral.generate_master(&mut OsRng),
            nonce: std::cell::Cell::new(0),
        }
    }

    fn account(&self) -> AccountId {
        AccountId::from_verifying_key(&self.key.verifying_key())
    }

    fn sign(&self, call: Call) -> VerifiedTransaction {
        self.nonce.set(self.nonce.get() + 1);
        TxBody {
            signer: self.account(),
            nonce: self.nonce.get(),
            call,
        }
        .sign(&self.key)
        .verify()
        .expect("the suite's own signature verifies")
    }

    fn register(&self, salt: u8) -> (RecordId, Call) {
        let id = RecordId::derive(&self.account(), &[salt; 16]);
        let (_, record_key) = Umbral.record_key(&self.master, &id);
        let (capsule, _) = Umbral
            .encapsulate(&mut OsRng, &record_key)
            .expect("encapsulate");
        let call = Call::RegisterRecord(RegisterRecord {
            salt: [salt; 16],
            cid: ContentId::from_sha256([salt; 32]),
            size: 1024,
            scheme: Umbral::ID,
            record_key: record_key.to_bytes(),
            capsule: capsule.to_bytes(),
            media_type: "text/plain".into(),
            encrypted_metadata: None,
        });
        (id, call)
    }

    fn grant(&self, record: RecordId, grantee: &Person, m: u16, purpose: &str) -> Call {
        let (_, grantee_key) = Umbral.account_key(&grantee.master);
        Call::Grant(Grant {
            record,
            grantee: grantee.account(),
            grantee_key: grantee_key.to_bytes(),
            threshold: Threshold { m, n: 1 },
            fragment_commitments: vec![Digest::fragment_commitment(&[m as u8])],
            purpose: Purpose::new(purpose).expect("valid purpose"),
            expires_at: None,
        })
    }
}

fn block(height: u64) -> BlockContext {
    BlockContext {
        height,
        time: Timestamp(1_700_000_000_000 + height * 1000),
    }
}

fn code(outcome: &Outcome) -> Option<ErrorCode> {
    match outcome {
        Outcome::Ok(_) => None,
        Outcome::Refused(r) => Some(r.code),
    }
}

impl<E, F> ExecutorSuite<E, F>
where
    E: ContractExecutor,
    F: Fn(ContractsConfig) -> E,
{
    /// A suite for the executors `make` builds from a configuration.
    pub fn new(make: F) -> Self {
        Self {
            make,
            refused: Vec::new(),
            _executor: std::marker::PhantomData,
        }
    }

    /// Expects the executor to refuse the suite's `call` (`"register"`,
    /// `"grant"` or `"retrieve"`: the first such call of the allowed flow)
    /// with `code`, booked like any refusal. For policy-wrapped executors.
    pub fn refusing(mut self, call: &'static str, code: ErrorCode) -> Self {
        self.refused.push((call, code));
        self
    }

    fn executor(&self) -> E {
        (self.make)(ContractsConfig::default())
    }

    fn expected(&self, call: &str) -> Option<ErrorCode> {
        self.refused
            .iter()
            .find(|(c, _)| *c == call)
            .map(|(_, code)| *code)
    }

    /// Runs every check; panics with what broke.
    pub fn test_all(&self) {
        self.one_receipt_per_call_in_order();
        self.deterministic();
        self.refusals_change_only_nonce_and_audit();
        self.replays_leave_no_trace();
        self.state_is_sequential_within_a_block();
    }

    fn execute(
        &self,
        state: &MemoryState,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Execution {
        let exec = self
            .executor()
            .execute(state, ctx, txs)
            .expect("the executor reads the state");
        assert_eq!(
            exec.receipts.len(),
            txs.len(),
            "one receipt per call (block {})",
            ctx.height
        );
        for (i, (r, tx)) in exec.receipts.iter().zip(txs).enumerate() {
            assert_eq!(r.tx, tx.id(), "receipt {i} names call {i}");
            assert_eq!(r.index as usize, i, "receipt {i} carries its index");
            assert_eq!(r.context, *ctx, "receipt {i} carries the block");
        }
        exec
    }

    /// Register, grant, retrieve, revoke in one block each, on a fresh
    /// state: the receipts, in order, and the state.
    fn flow(&self) -> (MemoryState, Vec<Outcome>) {
        let (alice, bob) = (Person::new(), Person::new());
        let mut state = MemoryState::new();
        let (record, register) = alice.register(1);
        let mut outcomes = Vec::new();
        let mut run = |height: u64, tx: VerifiedTransaction, state: &mut MemoryState| {
            let exec = self.execute(state, &block(height), std::slice::from_ref(&tx));
            state.apply(&exec.writes);
            let outcome = exec.receipts[0].outcome.clone();
            outcomes.push(outcome.clone());
            outcome
        };
        run(1, alice.sign(register), &mut state);
        let grant_tx = alice.sign(alice.grant(record, &bob, 1, "treatment"));
        let granted = run(2, grant_tx.clone(), &mut state);
        if let Outcome::Ok(_) = granted {
            let grant = rr_core::GrantId::derive(&grant_tx.id());
            run(
                3,
                bob.sign(Call::Retrieve(Retrieve {
                    grant,
                    purpose: Purpose::new("treatment").expect("purpose"),
                })),
                &mut state,
            );
            run(4, alice.sign(Call::Revoke(Revoke { grant })), &mut state);
        }
        (state, outcomes)
    }

    fn one_receipt_per_call_in_order(&self) {
        let (_, outcomes) = self.flow();
        let names = ["register", "grant", "retrieve", "revoke"];
        for (name, outcome) in names.iter().zip(&outcomes) {
            assert_eq!(
                code(outcome),
                self.expected(name),
                "the {name} call of an allowed flow: {outcome:?}"
            );
        }
    }

    fn deterministic(&self) {
        let (alice, bob, carol) = (Person::new(), Person::new(), Person::new());
        let mut state = MemoryState::new();
        let (record, register) = alice.register(7);
        let exec = self.execute(&state, &block(1), &[alice.sign(register)]);
        state.apply(&exec.writes);
        // A mixed block: allowed and refused calls, in an order that matters.
        let txs = vec![
            alice.sign(alice.grant(record, &bob, 1, "treatment")),
            carol.sign(carol.grant(record, &bob, 1, "treatment")),
            alice.sign(alice.grant(record, &carol, 2, "research")),
            alice.sign(alice.register(8).1),
            bob.sign(bob.register(9).1),
        ];
        let first = self.execute(&state, &block(2), &txs);
        let second = self.execute(&state, &block(2), &txs);
        assert_eq!(first, second, "two executions of one block agree");
    }

    fn refusals_change_only_nonce_and_audit(&self) {
        let (alice, bob, mallory) = (Person::new(), Person::new(), Person::new());
        let mut state = MemoryState::new();
        let (record, register) = alice.register(3);
        let grant_tx = alice.sign(alice.grant(record, &bob, 1, "treatment"));
        let grant = rr_core::GrantId::derive(&grant_tx.id());
        let exec = self.execute(&state, &block(1), &[alice.sign(register)]);
        state.apply(&exec.writes);
        if self.expected("register").is_some() {
            return; // nothing to refuse against
        }
        let exec = self.execute(&state, &block(2), &[grant_tx]);
        state.apply(&exec.writes);
        let refused = [
            // not the owner
            mallory.sign(mallory.grant(record, &bob, 1, "treatment")),
            // an unknown record
            alice.sign(alice.grant(RecordId([9; 32]), &bob, 1, "treatment")),
            // a bad threshold
            alice.sign(alice.grant(record, &bob, 2, "treatment")),
            // not the grantee
            mallory.sign(Call::Retrieve(Retrieve {
                grant,
                purpose: Purpose::new("treatment").expect("purpose"),
            })),
            // the wrong purpose
            bob.sign(Call::Retrieve(Retrieve {
                grant,
                purpose: Purpose::new("marketing").expect("purpose"),
            })),
            // not the owner's revoke
            mallory.sign(Call::Revoke(Revoke { grant })),
        ];
        for (i, tx) in refused.iter().enumerate() {
            let record_before = record_of(&state, &record);
            let exec = self.execute(&state, &block(3 + i as u64), std::slice::from_ref(tx));
            let outcome = &exec.receipts[0].outcome;
            assert!(
                matches!(outcome, Outcome::Refused(_)),
                "refused call {i} was allowed: {outcome:?}"
            );
            let nonce = keys::nonce(&tx.signer(), tx.body().nonce);
            for (table, key, value) in exec.writes.iter() {
                match table {
                    Table::Nonces => assert_eq!(
                        key,
                        nonce.as_slice(),
                        "refused call {i} spends its own nonce only"
                    ),
                    Table::Audit => {}
                    Table::Records => {
                        let after =
                            RecordInfo::from_bytes(value.expect("not deleted")).expect("a record");
                        let mut before = record_before.clone().expect("the record existed");
                        assert_eq!(after.audit_len, before.audit_len + 1, "refused call {i}");
                        before.audit_len = after.audit_len;
                        assert_eq!(after, before, "refused call {i} changes only audit_len");
                    }
                    other => panic!("refused call {i} wrote to {other:?}"),
                }
            }
            assert!(
                exec.writes.iter().any(|(t, _, _)| t == Table::Nonces),
                "refused call {i} spends its nonce"
            );
            state.apply(&exec.writes);
        }
    }

    fn replays_leave_no_trace(&self) {
        let alice = Person::new();
        let mut state = MemoryState::new();
        let (_, register) = alice.register(4);
        let tx = alice.sign(register);
        let exec = self.execute(&state, &block(1), std::slice::from_ref(&tx));
        state.apply(&exec.writes);
        // Again in a later block, and twice in one block.
        for (height, txs) in [(2, vec![tx.clone()]), (3, vec![tx.clone(), tx.clone()])] {
            let exec = self.execute(&state, &block(height), &txs);
            for r in &exec.receipts {
                assert_eq!(code(&r.outcome), Some(ErrorCode::ReplayedNonce));
            }
            assert!(exec.writes.is_empty(), "a replay writes nothing");
        }
        // A fresh call whose first copy is in the same block: the second is
        // the replay.
        let fresh = alice.sign(alice.register(5).1);
        let exec = self.execute(&state, &block(4), &[fresh.clone(), fresh]);
        assert_eq!(
            code(&exec.receipts[1].outcome),
            Some(ErrorCode::ReplayedNonce)
        );
    }

    fn state_is_sequential_within_a_block(&self) {
        if self.expected("register").is_some() || self.expected("grant").is_some() {
            return;
        }
        let (alice, bob) = (Person::new(), Person::new());
        let state = MemoryState::new();
        let (record, register) = alice.register(6);
        let grant_tx = alice.sign(alice.grant(record, &bob, 1, "treatment"));
        let grant = rr_core::GrantId::derive(&grant_tx.id());
        let retrieve = bob.sign(Call::Retrieve(Retrieve {
            grant,
            purpose: Purpose::new("treatment").expect("purpose"),
        }));
        let exec = self.execute(
            &state,
            &block(1),
            &[alice.sign(register), grant_tx, retrieve],
        );
        assert_eq!(code(&exec.receipts[0].outcome), None);
        assert_eq!(code(&exec.receipts[1].outcome), None);
        assert_eq!(code(&exec.receipts[2].outcome), self.expected("retrieve"));
    }
}

fn record_of(state: &MemoryState, id: &RecordId) -> Option<RecordInfo> {
    state
        .get(Table::Records, &keys::record(id))
        .expect("memory state")
        .map(|b| RecordInfo::from_bytes(&b).expect("a record"))
}
