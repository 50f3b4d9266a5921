//! The native contracts are deterministic: random sequences of calls (valid
//! and invalid actors, replays, unknown ids, purposes, expiry times), split
//! into random blocks, give the same receipts and the same state whether
//! executed over `MemoryState` or over a real redb `Ledger`; and one block
//! executed twice on one state gives byte-identical executions.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use rand_core::OsRng;
use rr_core::state::{keys, CountKind};
use rr_core::{
    codec, AccountId, Block, BlockContext, BlockHash, Call, CallOutput, ContentId,
    ContractExecutor, Digest, ErrorCode, Execution, Grant, GrantId, GrantInfo, MemoryState,
    Outcome, PreScheme, Purpose, RecordId, RecordInfo, RegisterRecord, Retrieve, Revoke, SchemeId,
    SignedTransaction, StateRead, Table, Threshold, Timestamp, TxBody, VerifiedTransaction,
    WireEncoding,
};
use rr_node::NativeContracts;
use rr_pre::Umbral;
use rr_storage::Ledger;

const ACTORS: usize = 4;
const SALTS: usize = 3;
const PURPOSES: [&str; 3] = ["treatment", "research", "payment"];
const T0: u64 = 1_700_000_000_000;

/// Real keys and capsules, made once: Umbral is too slow to run per case.
struct Fixture {
    signers: Vec<SigningKey>,
    /// The account PRE key of each actor.
    account_keys: Vec<Vec<u8>>,
    /// `[actor][salt]`: the record's PRE key and a capsule under it.
    records: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut signers = Vec::new();
        let mut account_keys = Vec::new();
        let mut records = Vec::new();
        for a in 0..ACTORS {
            let signer = SigningKey::from_bytes(&[a as u8 + 1; 32]);
            let account = AccountId::from_verifying_key(&signer.verifying_key());
            let master = Umbral.generate_master(&mut OsRng);
            account_keys.push(Umbral.account_key(&master).1.to_bytes());
            let mut mine = Vec::new();
            for s in 0..SALTS {
                let id = RecordId::derive(&account, &salt(s));
                let (_, pk) = Umbral.record_key(&master, &id);
                let (capsule, _) = Umbral.encapsulate(&mut OsRng, &pk).unwrap();
                mine.push((pk.to_bytes(), capsule.to_bytes()));
            }
            signers.push(signer);
            records.push(mine);
        }
        Fixture {
            signers,
            account_keys,
            records,
        }
    })
}

fn salt(s: usize) -> [u8; 16] {
    [s as u8 + 1; 16]
}

fn account(a: usize) -> AccountId {
    AccountId::from_verifying_key(&fixture().signers[a].verifying_key())
}

/// Which record a call names.
#[derive(Clone, Debug)]
enum RecordRef {
    /// A record an earlier call registered (or tried to): index modulo their
    /// number; if `rightful`, the call is signed by its owner.
    Registered { index: usize, rightful: bool },
    /// The record `actor` registers (or would register) with `salt`.
    Known { actor: usize, salt: usize },
    /// A record id nobody registered.
    Random([u8; 32]),
}

/// Which grant a call names.
#[derive(Clone, Debug)]
enum GrantRef {
    /// The grant an earlier grant call made (or would have made): index modulo
    /// the number of grant calls so far.
    Earlier(usize),
    /// A grant id nobody made.
    Random([u8; 32]),
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        salt: usize,
        scheme_ok: bool,
        empty_capsule: bool,
    },
    Grant {
        record: RecordRef,
        grantee: usize,
        /// 0: 1 of 1; 1: 2 of 1; 2: 0 of 1; 3: 1 of 2.
        threshold: u8,
        commitments: usize,
        purpose: usize,
        /// Expiry relative to the block time, in ms (may be in the past).
        expiry: Option<i64>,
    },
    Retrieve {
        grant: GrantRef,
        purpose: usize,
        /// Signed by the grant's grantee rather than the step's actor.
        rightful: bool,
    },
    Revoke {
        grant: GrantRef,
        /// Signed by the grant's owner rather than the step's actor.
        rightful: bool,
    },
    /// Resubmits an earlier transaction byte for byte (index modulo the count).
    Replay(usize),
}

/// One call: who signs it, with which nonce, and what.
#[derive(Clone, Debug)]
struct Step {
    actor: usize,
    /// `None`: a fresh nonce; `Some(n)`: nonce `n`, often reused.
    nonce: Option<u64>,
    op: Op,
}

#[derive(Clone, Debug)]
struct PlanBlock {
    /// Time since the previous block, ms (0: the same time).
    delta: u64,
    steps: Vec<Step>,
}

fn record_ref() -> impl Strategy<Value = RecordRef> {
    prop_oneof![
        6 => (0..16usize, prop::bool::weighted(0.8))
            .prop_map(|(index, rightful)| RecordRef::Registered { index, rightful }),
        2 => (0..ACTORS, 0..SALTS).prop_map(|(actor, salt)| RecordRef::Known { actor, salt }),
        1 => any::<[u8; 32]>().prop_map(RecordRef::Random),
    ]
}

fn grant_ref() -> impl Strategy<Value = GrantRef> {
    prop_oneof![
        9 => (0..64usize).prop_map(GrantRef::Earlier),
        1 => any::<[u8; 32]>().prop_map(GrantRef::Random),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SALTS, prop::bool::weighted(0.9), prop::bool::weighted(0.1)).prop_map(
            |(salt, scheme_ok, empty_capsule)| Op::Register { salt, scheme_ok, empty_capsule }
        ),
        4 => (
            record_ref(),
            0..ACTORS,
            prop_oneof![6 => Just(0u8), 1 => 1..4u8],
            prop_oneof![6 => Just(1usize), 1 => 0..3usize],
            0..PURPOSES.len(),
            prop::option::weighted(0.4, -2_000i64..5_000),
        )
            .prop_map(|(record, grantee, threshold, commitments, purpose, expiry)| Op::Grant {
                record,
                grantee,
                threshold,
                commitments,
                purpose,
                expiry,
            }),
        5 => (
            grant_ref(),
            prop_oneof![3 => Just(0usize), 1 => 0..PURPOSES.len()],
            prop::bool::weighted(0.7),
        )
            .prop_map(|(grant, purpose, rightful)| Op::Retrieve { grant, purpose, rightful }),
        2 => (grant_ref(), prop::bool::weighted(0.7))
            .prop_map(|(grant, rightful)| Op::Revoke { grant, rightful }),
        1 => (0..64usize).prop_map(Op::Replay),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (0..ACTORS, prop::option::weighted(0.15, 0..4u64), op()).prop_map(|(actor, nonce, op)| Step {
        actor,
        nonce,
        op,
    })
}

fn plan() -> impl Strategy<Value = Vec<PlanBlock>> {
    prop::collection::vec(
        (
            prop_oneof![1 => Just(0u64), 3 => 1..2_500u64],
            prop::collection::vec(step(), 0..8),
        )
            .prop_map(|(delta, steps)| PlanBlock { delta, steps }),
        1..12,
    )
}

/// Turns the plan into signed blocks: `(context, transactions)`.
fn materialize(plan: &[PlanBlock]) -> Vec<(BlockContext, Vec<SignedTransaction>)> {
    let f = fixture();
    let mut fresh = [1_000u64; ACTORS];
    let mut all: Vec<SignedTransaction> = Vec::new();
    // Every well-formed grant call so far by a record's owner (the ones
    // likely to have taken effect): its id, owner and grantee. Refused grants
    // are still named through `GrantRef::Random` and before any grant exists.
    let mut grants: Vec<(GrantId, usize, usize)> = Vec::new();
    // Every register call so far: its signer and salt.
    let mut registered: Vec<(usize, usize)> = Vec::new();
    let mut time = T0;
    let mut out = Vec::new();
    for (h, block) in plan.iter().enumerate() {
        time += block.delta;
        let mut txs = Vec::new();
        for s in &block.steps {
            let mut actor = s.actor;
            // The grant named, and who owns and holds it, if known.
            let grant_of = |r: &GrantRef| match r {
                GrantRef::Earlier(i) if !grants.is_empty() => {
                    let (id, owner, grantee) = grants[i % grants.len()];
                    (id, Some((owner, grantee)))
                }
                GrantRef::Earlier(i) => (GrantId([*i as u8; 32]), None),
                GrantRef::Random(b) => (GrantId(*b), None),
            };
            let call = match &s.op {
                Op::Replay(i) => {
                    if let Some(tx) = (!all.is_empty()).then(|| all[i % all.len()].clone()) {
                        txs.push(tx.clone());
                        all.push(tx);
                        continue;
                    }
                    Call::Revoke(Revoke {
                        grant: GrantId([0; 32]),
                    })
                }
                Op::Register {
                    salt: sa,
                    scheme_ok,
                    empty_capsule,
                } => {
                    registered.push((actor, *sa));
                    let (record_key, capsule) = &f.records[actor][*sa];
                    Call::RegisterRecord(RegisterRecord {
                        salt: salt(*sa),
                        cid: ContentId::from_sha256([actor as u8 * 16 + *sa as u8; 32]),
                        size: 1_000 + *sa as u64,
                        scheme: if *scheme_ok {
                            SchemeId::UMBRAL
                        } else {
                            SchemeId::RECRYPT
                        },
                        record_key: record_key.clone(),
                        capsule: if *empty_capsule {
                            vec![]
                        } else {
                            capsule.clone()
                        },
                        media_type: "application/fhir+json".into(),
                        encrypted_metadata: None,
                    })
                }
                Op::Grant {
                    record,
                    grantee,
                    threshold,
                    commitments,
                    purpose,
                    expiry,
                } => Call::Grant(Grant {
                    record: match record {
                        RecordRef::Registered { index, rightful } => {
                            let (owner, sa) = if registered.is_empty() {
                                (actor, index % SALTS)
                            } else {
                                registered[index % registered.len()]
                            };
                            if *rightful {
                                actor = owner;
                            }
                            RecordId::derive(&account(owner), &salt(sa))
                        }
                        RecordRef::Known { actor, salt: sa } => {
                            RecordId::derive(&account(*actor), &salt(*sa))
                        }
                        RecordRef::Random(b) => RecordId(*b),
                    },
                    grantee: account(*grantee),
                    grantee_key: f.account_keys[*grantee].clone(),
                    threshold: match threshold {
                        0 => Threshold { m: 1, n: 1 },
                        1 => Threshold { m: 2, n: 1 },
                        2 => Threshold { m: 0, n: 1 },
                        _ => Threshold { m: 1, n: 2 },
                    },
                    fragment_commitments: (0..*commitments)
                        .map(|i| Digest([i as u8 + 7; 32]))
                        .collect(),
                    purpose: Purpose::new(PURPOSES[*purpose]).unwrap(),
                    expires_at: expiry.map(|e| Timestamp(time.saturating_add_signed(e))),
                }),
                Op::Retrieve {
                    grant,
                    purpose,
                    rightful,
                } => {
                    let (grant, parties) = grant_of(grant);
                    if let (true, Some((_, grantee))) = (rightful, parties) {
                        actor = grantee;
                    }
                    Call::Retrieve(Retrieve {
                        grant,
                        purpose: Purpose::new(PURPOSES[*purpose]).unwrap(),
                    })
                }
                Op::Revoke { grant, rightful } => {
                    let (grant, parties) = grant_of(grant);
                    if let (true, Some((owner, _))) = (rightful, parties) {
                        actor = owner;
                    }
                    Call::Revoke(Revoke { grant })
                }
            };
            let nonce = s.nonce.unwrap_or_else(|| {
                fresh[actor] += 1;
                fresh[actor]
            });
            let tx = TxBody {
                signer: account(actor),
                nonce,
                call,
            }
            .sign(&f.signers[actor]);
            if let Call::Grant(g) = &tx.body.call {
                let owned = registered.iter().any(|(o, sa)| {
                    *o == actor && RecordId::derive(&account(*o), &salt(*sa)) == g.record
                });
                let well_formed = g.threshold == Threshold { m: 1, n: 1 }
                    && g.fragment_commitments.len() == 1
                    && g.expires_at.is_none_or(|e| e.0 > time);
                if owned && well_formed {
                    let grantee = (0..ACTORS).find(|a| account(*a) == g.grantee).unwrap();
                    grants.push((GrantId::derive(&tx.id()), actor, grantee));
                }
            }
            txs.push(tx.clone());
            all.push(tx);
        }
        out.push((
            BlockContext {
                height: h as u64 + 1,
                time: Timestamp(time),
            },
            txs,
        ));
    }
    out
}

fn verified(txs: &[SignedTransaction]) -> Vec<VerifiedTransaction> {
    txs.iter()
        .map(|t| {
            t.clone()
                .verify()
                .expect("every planned transaction is signed correctly")
        })
        .collect()
}

/// Every table with its entries, in key order.
type Tables = Vec<(Table, Vec<(Vec<u8>, Vec<u8>)>)>;

/// Whole-table contents of a memory state.
fn mem_tables(mem: &MemoryState) -> Tables {
    Table::ALL
        .iter()
        .map(|t| (*t, mem.scan_prefix(*t, &[])))
        .collect()
}

/// Whole-table contents of a ledger.
fn ledger_tables(ledger: &Ledger) -> Tables {
    let snap = ledger.snapshot().unwrap();
    Table::ALL
        .iter()
        .map(|t| (*t, snap.scan_prefix(*t, &[]).unwrap().into_iter().collect()))
        .collect()
}

/// Checks rules of the contracts that must hold after every block, whatever
/// the calls were.
fn check_invariants(
    mem: &MemoryState,
    ctx: &BlockContext,
    txs: &[SignedTransaction],
    exec: &Execution,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(exec.receipts.len(), txs.len());
    for (i, (tx, r)) in txs.iter().zip(&exec.receipts).enumerate() {
        prop_assert_eq!(r.index as usize, i);
        prop_assert_eq!(r.tx, tx.id());
        prop_assert_eq!(&r.context, ctx);
        let nonce = keys::nonce(&tx.body.signer, tx.body.nonce);
        prop_assert!(
            mem.get(Table::Nonces, &nonce).unwrap().is_some(),
            "every executed call spends its nonce"
        );
        if let Call::Grant(_) = &tx.body.call {
            let id = GrantId::derive(&tx.id());
            let stored = mem.get(Table::Grants, &keys::grant(&id)).unwrap();
            match &r.outcome {
                Outcome::Ok(CallOutput::Granted { grant }) => {
                    prop_assert_eq!(*grant, id);
                    prop_assert!(stored.is_some(), "a grant that took effect is stored");
                }
                Outcome::Refused(refusal) if refusal.code != ErrorCode::ReplayedNonce => {
                    prop_assert!(
                        stored.is_none(),
                        "a refused grant created grant {id:?}: {refusal}"
                    );
                }
                _ => {}
            }
        }
    }
    // Every record's audit length matches its trail, and every grant's indexes exist.
    let mut audited = 0u64;
    for (_, v) in mem.scan_prefix(Table::Records, &[]) {
        let record = RecordInfo::from_bytes(&v).unwrap();
        prop_assert_eq!(
            mem.scan_prefix(Table::Audit, &record.id.0).len() as u64,
            record.audit_len
        );
        audited += record.audit_len;
    }
    prop_assert_eq!(mem.scan_prefix(Table::Audit, &[]).len() as u64, audited);
    // Every grant is listed exactly once in its record's and its grantee's
    // counted listings, and every listing entry below its count names a grant.
    let listed = |kind: CountKind, id: &[u8; 32], key: &dyn Fn(u64) -> Vec<u8>, table: Table| {
        let n = keys::decode_count(
            mem.get(Table::Counts, &keys::count(kind, id))
                .unwrap()
                .as_deref(),
        )
        .unwrap();
        (0..n)
            .map(|i| {
                GrantId(
                    mem.get(table, &key(i))
                        .unwrap()
                        .expect("entry below the count")
                        .try_into()
                        .unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    for (_, v) in mem.scan_prefix(Table::Grants, &[]) {
        let g = GrantInfo::from_bytes(&v).unwrap();
        let of_record = listed(
            CountKind::RecordGrants,
            &g.record.0,
            &|i| keys::record_grant(&g.record, i),
            Table::RecordGrants,
        );
        prop_assert_eq!(of_record.iter().filter(|x| **x == g.id).count(), 1);
        let held = listed(
            CountKind::GranteeGrants,
            &g.grantee.0,
            &|i| keys::grantee_grant(&g.grantee, i),
            Table::GranteeGrants,
        );
        prop_assert_eq!(held.iter().filter(|x| **x == g.id).count(), 1);
    }
    prop_assert_eq!(
        mem.scan_prefix(Table::RecordGrants, &[]).len(),
        mem.scan_prefix(Table::Grants, &[]).len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn memory_state_and_ledger_agree_block_by_block(plan in plan()) {
        let blocks = materialize(&plan);
        let contracts = NativeContracts::default();
        let mut mem = MemoryState::new();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("ledger.redb")).unwrap();
        let mut parent = BlockHash::default();
        for (ctx, txs) in &blocks {
            let vtxs = verified(txs);
            let on_mem = contracts.execute(&mem, ctx, &vtxs).unwrap();
            mem.apply(&on_mem.writes);

            let snapshot = ledger.snapshot().unwrap();
            let on_ledger = contracts.execute(&snapshot, ctx, &vtxs).unwrap();
            drop(snapshot);
            let block = Block::new(*ctx, parent, txs.clone());
            let head = ledger.commit_block(&block, &on_ledger).unwrap();
            parent = head.block_hash;

            prop_assert_eq!(&on_mem.receipts, &on_ledger.receipts, "receipts at height {}", ctx.height);
            prop_assert_eq!(&on_mem.writes, &on_ledger.writes, "writes at height {}", ctx.height);
            let header = ledger.header(ctx.height).unwrap().unwrap();
            prop_assert_eq!(header.hash(), head.state_digest);
            prop_assert_eq!(mem.root(), header.state_root, "state root at height {}", ctx.height);
            prop_assert_eq!(head.height, ctx.height);
            check_invariants(&mem, ctx, txs, &on_mem)?;
            // The receipts the ledger kept are the ones execution returned.
            prop_assert_eq!(ledger.block_receipts(ctx.height).unwrap(), Some(on_ledger.receipts.clone()));
        }
        prop_assert_eq!(mem_tables(&mem), ledger_tables(&ledger));
        drop(ledger);
        // Reopened, the ledger holds the same state.
        let ledger = Ledger::open(dir.path().join("ledger.redb")).unwrap();
        let head = ledger.head().unwrap();
        prop_assert_eq!(ledger.header(head.height).unwrap().unwrap().state_root, mem.root());
        prop_assert_eq!(mem_tables(&mem), ledger_tables(&ledger));
    }
}

/// A fixed sequence of blocks that exercises every kind of call and refusal.
fn fixed_plan() -> Vec<PlanBlock> {
    let s = |actor, nonce, op| Step { actor, nonce, op };
    let alice_rec = RecordRef::Known { actor: 0, salt: 0 };
    let grant = |record: RecordRef, grantee, expiry| Op::Grant {
        record,
        grantee,
        threshold: 0,
        commitments: 1,
        purpose: 0,
        expiry,
    };
    vec![
        PlanBlock {
            delta: 0,
            steps: vec![
                s(
                    0,
                    None,
                    Op::Register {
                        salt: 0,
                        scheme_ok: true,
                        empty_capsule: false,
                    },
                ),
                s(
                    1,
                    None,
                    Op::Register {
                        salt: 0,
                        scheme_ok: true,
                        empty_capsule: false,
                    },
                ),
            ],
        },
        PlanBlock {
            delta: 10,
            steps: vec![
                s(0, None, grant(alice_rec.clone(), 1, None)),
                s(0, None, grant(alice_rec.clone(), 2, Some(100))),
            ],
        },
        PlanBlock {
            delta: 50,
            steps: vec![
                s(
                    1,
                    None,
                    Op::Retrieve {
                        grant: GrantRef::Earlier(0),
                        purpose: 0,
                        rightful: false,
                    },
                ),
                s(
                    1,
                    Some(1),
                    Op::Retrieve {
                        grant: GrantRef::Earlier(0),
                        purpose: 1,
                        rightful: false,
                    },
                ),
                s(
                    2,
                    None,
                    Op::Retrieve {
                        grant: GrantRef::Earlier(0),
                        purpose: 0,
                        rightful: false,
                    },
                ),
                s(
                    3,
                    None,
                    Op::Revoke {
                        grant: GrantRef::Earlier(0),
                        rightful: false,
                    },
                ),
                s(3, None, grant(alice_rec.clone(), 3, None)),
                s(
                    0,
                    None,
                    Op::Register {
                        salt: 0,
                        scheme_ok: true,
                        empty_capsule: false,
                    },
                ),
                s(0, None, grant(RecordRef::Random([5; 32]), 1, None)),
                s(
                    0,
                    None,
                    Op::Grant {
                        record: alice_rec.clone(),
                        grantee: 1,
                        threshold: 1,
                        commitments: 1,
                        purpose: 0,
                        expiry: None,
                    },
                ),
                s(0, None, grant(alice_rec.clone(), 1, Some(-1))),
                s(
                    2,
                    None,
                    Op::Retrieve {
                        grant: GrantRef::Earlier(1),
                        purpose: 0,
                        rightful: false,
                    },
                ),
                s(
                    0,
                    None,
                    Op::Revoke {
                        grant: GrantRef::Earlier(0),
                        rightful: false,
                    },
                ),
                s(
                    1,
                    None,
                    Op::Retrieve {
                        grant: GrantRef::Earlier(0),
                        purpose: 0,
                        rightful: false,
                    },
                ),
                s(
                    0,
                    None,
                    Op::Revoke {
                        grant: GrantRef::Earlier(0),
                        rightful: false,
                    },
                ),
                s(
                    0,
                    None,
                    Op::Revoke {
                        grant: GrantRef::Random([6; 32]),
                        rightful: false,
                    },
                ),
                s(
                    1,
                    None,
                    Op::Retrieve {
                        grant: GrantRef::Random([6; 32]),
                        purpose: 0,
                        rightful: false,
                    },
                ),
                s(
                    1,
                    Some(1),
                    Op::Revoke {
                        grant: GrantRef::Earlier(1),
                        rightful: false,
                    },
                ),
                s(0, None, Op::Replay(2)),
            ],
        },
        PlanBlock {
            delta: 100,
            steps: vec![s(
                2,
                None,
                Op::Retrieve {
                    grant: GrantRef::Earlier(1),
                    purpose: 0,
                    rightful: false,
                },
            )],
        },
    ]
}

#[test]
fn the_same_block_on_the_same_state_gives_byte_identical_executions() {
    let blocks = materialize(&fixed_plan());
    let (last_ctx, last_txs) = blocks.last().unwrap().clone();
    let mut mem = MemoryState::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.redb")).unwrap();
    let contracts = NativeContracts::default();
    let mut parent = BlockHash::default();
    let mut codes = Vec::new();
    for (ctx, txs) in &blocks {
        let vtxs = verified(txs);
        let first = contracts.execute(&mem, ctx, &vtxs).unwrap();
        // Again, on the same state, with the same and with a new executor.
        let second = contracts.execute(&mem, ctx, &vtxs).unwrap();
        let third = NativeContracts::default()
            .execute(&mem, ctx, &vtxs)
            .unwrap();
        let snapshot = ledger.snapshot().unwrap();
        let on_ledger = contracts.execute(&snapshot, ctx, &vtxs).unwrap();
        drop(snapshot);
        let bytes = |e: &Execution| (codec::encode(&e.receipts), codec::encode(&e.writes));
        assert_eq!(bytes(&first), bytes(&second), "height {}", ctx.height);
        assert_eq!(bytes(&first), bytes(&third), "height {}", ctx.height);
        assert_eq!(bytes(&first), bytes(&on_ledger), "height {}", ctx.height);
        assert_eq!(first, second);
        mem.apply(&first.writes);
        let head = ledger
            .commit_block(&Block::new(*ctx, parent, txs.clone()), &on_ledger)
            .unwrap();
        parent = head.block_hash;
        let header = ledger.header(ctx.height).unwrap().unwrap();
        assert_eq!(header.state_root, mem.root());
        assert_eq!(head.state_digest, header.hash());
        check_invariants(&mem, ctx, txs, &first).unwrap();
        codes.extend(first.receipts.iter().map(|r| match &r.outcome {
            Outcome::Ok(_) => None,
            Outcome::Refused(refusal) => Some(refusal.code),
        }));
    }

    // The fixed plan reaches every outcome it was written for.
    for code in [
        None,
        Some(ErrorCode::ReplayedNonce),
        Some(ErrorCode::InvalidCall),
        Some(ErrorCode::UnknownRecord),
        Some(ErrorCode::UnknownGrant),
        Some(ErrorCode::RecordExists),
        Some(ErrorCode::NotOwner),
        Some(ErrorCode::NotGrantee),
        Some(ErrorCode::GrantRevoked),
        Some(ErrorCode::GrantExpired),
        Some(ErrorCode::PurposeMismatch),
    ] {
        assert!(
            codes.contains(&code),
            "the fixed plan never produced {code:?}: {codes:?}"
        );
    }

    // Executing a block on a state that already holds its writes gives
    // another result (its nonces are spent): determinism is per state.
    let replayed = contracts
        .execute(&mem, &last_ctx, &verified(&last_txs))
        .unwrap();
    assert!(replayed
        .receipts
        .iter()
        .all(|r| matches!(&r.outcome, Outcome::Refused(x) if x.code == ErrorCode::ReplayedNonce)));
}
