//! The `ConfirmErasure` contract: only replica `i`, signing with its own key,
//! confirms its own erasure, once, of a revoked or expired grant. Every
//! refused confirmation leaves the grant as it was. And the grant rules a
//! cluster adds: a threshold of at least f + 1, and single-proxy schemes
//! only where the operator allowed them.

use ed25519_dalek::SigningKey;
use rr_core::{
    AccountId, BlockContext, Call, CallOutput, ConfirmErasure, ContentId, ContractExecutor, Digest,
    ErrorCode, Grant, GrantId, GrantInfo, MemoryState, Outcome, Purpose, RecordId, RegisterRecord,
    ReplicaId, Revoke, SchemeId, StateRead, Table, Threshold, Timestamp, TxBody,
};
use rr_core::{PreScheme, WireEncoding};
use rr_node::{ContractsConfig, NativeContracts};
use std::sync::OnceLock;

/// A record key, a capsule for it and a grantee's account key of one
/// scheme: the contracts check that they decode.
struct Material {
    record_key: Vec<u8>,
    capsule: Vec<u8>,
    grantee_key: Vec<u8>,
}

fn material_of<P: PreScheme>(pre: P) -> Material {
    let mut rng = rand_core::OsRng;
    let owner = pre.generate_master(&mut rng);
    let grantee = pre.generate_master(&mut rng);
    let (_, record_key) = pre.record_key(&owner, &RecordId([7; 32]));
    let (capsule, _) = pre.encapsulate(&mut rng, &record_key).unwrap();
    Material {
        record_key: record_key.to_bytes(),
        capsule: capsule.to_bytes(),
        grantee_key: pre.account_key(&grantee).1.to_bytes(),
    }
}

fn material(scheme: SchemeId) -> &'static Material {
    static UMBRAL: OnceLock<Material> = OnceLock::new();
    static RECRYPT: OnceLock<Material> = OnceLock::new();
    match scheme {
        SchemeId::UMBRAL => UMBRAL.get_or_init(|| material_of(rr_pre::Umbral)),
        SchemeId::RECRYPT => RECRYPT.get_or_init(|| material_of(rr_pre::Recrypt)),
        other => panic!("no test material for scheme {other}"),
    }
}

struct Ledger {
    contracts: NativeContracts,
    state: MemoryState,
    height: u64,
    nonce: u64,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn account(k: &SigningKey) -> AccountId {
    AccountId::from_verifying_key(&k.verifying_key())
}

impl Ledger {
    fn new(replicas: &[SigningKey]) -> Self {
        Self::with(replicas, false)
    }

    fn with(replicas: &[SigningKey], allow_single_proxy: bool) -> Self {
        Self {
            contracts: NativeContracts::new({
                let mut c = ContractsConfig::default();
                c.replicas = replicas.len() as u16;
                c.replica_accounts = replicas.iter().map(account).collect();
                c.schemes = vec![SchemeId::UMBRAL, SchemeId::RECRYPT];
                c.single_proxy_schemes = vec![SchemeId::RECRYPT];
                c.allow_single_proxy = allow_single_proxy;
                c
            }),
            state: MemoryState::new(),
            height: 0,
            nonce: 0,
        }
    }

    /// Registers a record of `scheme` for `owner` (salt `salt`).
    fn register(&mut self, owner: &SigningKey, salt: u8, scheme: SchemeId) -> RecordId {
        let record = RecordId::derive(&account(owner), &[salt; 16]);
        let out = self.call(
            owner,
            Call::RegisterRecord(RegisterRecord {
                salt: [salt; 16],
                cid: ContentId::from_sha256([1; 32]),
                size: 10,
                scheme,
                record_key: material(scheme).record_key.clone(),
                capsule: material(scheme).capsule.clone(),
                media_type: "text/plain".into(),
                encrypted_metadata: None,
            }),
        );
        assert_eq!(out, Outcome::Ok(CallOutput::Registered { record }));
        record
    }

    /// A grant call on `record` to `grantee` with threshold `m` of 4.
    fn grant_call(
        &self,
        record: RecordId,
        grantee: &SigningKey,
        m: u16,
        expires: Option<u64>,
    ) -> Call {
        let scheme = self.record(&record).scheme;
        Call::Grant(Grant {
            record,
            grantee: account(grantee),
            grantee_key: material(scheme).grantee_key.clone(),
            threshold: Threshold { m, n: 4 },
            fragment_commitments: (0..4u8)
                .map(|i| Digest::fragment_commitment(&[i]))
                .collect(),
            purpose: Purpose::new("treatment").unwrap(),
            expires_at: expires.map(Timestamp),
        })
    }

    /// The record as the ledger holds it.
    fn record(&self, record: &RecordId) -> rr_core::RecordInfo {
        let bytes = self
            .state
            .get(Table::Records, &rr_core::state::keys::record(record))
            .unwrap()
            .unwrap();
        rr_core::RecordInfo::from_bytes(&bytes).unwrap()
    }

    /// The record's audit length.
    fn audit_len(&self, record: &RecordId) -> u64 {
        self.record(record).audit_len
    }

    /// Executes one call in its own block; its outcome.
    fn call(&mut self, signer: &SigningKey, call: Call) -> Outcome {
        self.nonce += 1;
        self.height += 1;
        let tx = TxBody {
            signer: account(signer),
            nonce: self.nonce,
            call,
        }
        .sign(signer)
        .verify()
        .unwrap();
        let ctx = BlockContext {
            height: self.height,
            time: Timestamp(1_700_000_000_000 + self.height),
        };
        let exec = self.contracts.execute(&self.state, &ctx, &[tx]).unwrap();
        self.state.apply(&exec.writes);
        exec.receipts.into_iter().next().unwrap().outcome
    }

    fn grant(&self, id: &GrantId) -> GrantInfo {
        let bytes = self
            .state
            .get(Table::Grants, &rr_core::state::keys::grant(id))
            .unwrap()
            .unwrap();
        GrantInfo::from_bytes(&bytes).unwrap()
    }
}

fn refused(outcome: Outcome) -> ErrorCode {
    match outcome {
        Outcome::Refused(r) => r.code,
        Outcome::Ok(out) => panic!("expected a refusal, got {out:?}"),
    }
}

fn confirm(grant: GrantId, replica: u16) -> Call {
    Call::ConfirmErasure(ConfirmErasure {
        grant,
        replica: ReplicaId(replica),
    })
}

#[test]
fn only_each_replica_confirms_its_own_erasure_once_after_revocation() {
    let replicas: Vec<SigningKey> = (10..14).map(key).collect();
    let (alice, bob, mallory) = (key(1), key(2), key(3));
    let mut ledger = Ledger::new(&replicas);
    let record = RecordId::derive(&account(&alice), &[7; 16]);
    let out = ledger.call(
        &alice,
        Call::RegisterRecord(RegisterRecord {
            salt: [7; 16],
            cid: ContentId::from_sha256([1; 32]),
            size: 10,
            scheme: SchemeId::UMBRAL,
            record_key: material(SchemeId::UMBRAL).record_key.clone(),
            capsule: material(SchemeId::UMBRAL).capsule.clone(),
            media_type: "text/plain".into(),
            encrypted_metadata: None,
        }),
    );
    assert_eq!(out, Outcome::Ok(CallOutput::Registered { record }));
    let grant = match ledger.call(
        &alice,
        Call::Grant(Grant {
            record,
            grantee: account(&bob),
            grantee_key: material(SchemeId::UMBRAL).grantee_key.clone(),
            threshold: Threshold { m: 2, n: 4 },
            fragment_commitments: (0..4u8)
                .map(|i| Digest::fragment_commitment(&[i]))
                .collect(),
            purpose: Purpose::new("treatment").unwrap(),
            expires_at: None,
        }),
    ) {
        Outcome::Ok(CallOutput::Granted { grant }) => grant,
        other => panic!("{other:?}"),
    };

    // Before the revocation there is nothing to confirm.
    let before = ledger.grant(&grant);
    assert_eq!(
        refused(ledger.call(&replicas[0], confirm(grant, 0))),
        ErrorCode::InvalidCall
    );
    assert_eq!(ledger.grant(&grant), before);

    assert!(matches!(
        ledger.call(&alice, Call::Revoke(Revoke { grant })),
        Outcome::Ok(CallOutput::Revoked { .. })
    ));
    let revoked = ledger.grant(&grant);

    // Not a replica, the owner, or a replica speaking for another: refused,
    // and the grant is unchanged.
    for (who, replica) in [
        (&mallory, 0),
        (&alice, 1),
        (&replicas[1], 0),
        (&replicas[0], 9),
    ] {
        assert_eq!(
            refused(ledger.call(who, confirm(grant, replica))),
            ErrorCode::NotReplica
        );
        assert_eq!(ledger.grant(&grant), revoked);
    }
    // An unknown grant.
    assert_eq!(
        refused(ledger.call(&replicas[0], confirm(GrantId([9; 32]), 0))),
        ErrorCode::UnknownGrant
    );

    // Replicas 3 and 1 confirm; a second confirmation by 3 is refused.
    for r in [3u16, 1] {
        assert_eq!(
            ledger.call(&replicas[usize::from(r)], confirm(grant, r)),
            Outcome::Ok(CallOutput::ErasureConfirmed {
                grant,
                replica: ReplicaId(r)
            })
        );
    }
    assert_eq!(
        ledger.grant(&grant).erased_by,
        vec![ReplicaId(1), ReplicaId(3)]
    );
    let after = ledger.grant(&grant);
    assert_eq!(
        refused(ledger.call(&replicas[3], confirm(grant, 3))),
        ErrorCode::InvalidCall
    );
    assert_eq!(ledger.grant(&grant), after);
}

#[test]
fn a_cluster_grant_needs_a_threshold_of_at_least_f_plus_one() {
    let replicas: Vec<SigningKey> = (10..14).map(key).collect();
    let (alice, bob) = (key(1), key(2));
    let mut ledger = Ledger::new(&replicas);
    let record = ledger.register(&alice, 1, SchemeId::UMBRAL);
    let before = ledger.state.clone();
    let audit = ledger.audit_len(&record);
    // f = 1 of 4: one replica alone must not be able to re-encrypt.
    let out = ledger.call(&alice, ledger.grant_call(record, &bob, 1, None));
    let Outcome::Refused(r) = out else {
        panic!("{out:?}")
    };
    assert_eq!(r.code, ErrorCode::ThresholdTooLow);
    assert!(r.message.contains("at least 2"), "{}", r.message);
    // Only the refusal's audit entry and the nonce were written.
    assert_eq!(ledger.audit_len(&record), audit + 1);
    assert_eq!(
        ledger.state.scan_prefix(Table::Grants, &[]),
        before.scan_prefix(Table::Grants, &[])
    );
    for m in [2, 3, 4] {
        assert!(matches!(
            ledger.call(&alice, ledger.grant_call(record, &bob, m, None)),
            Outcome::Ok(CallOutput::Granted { .. })
        ));
    }
}

#[test]
fn single_proxy_grants_on_a_cluster_need_the_operators_consent() {
    let replicas: Vec<SigningKey> = (10..14).map(key).collect();
    let (alice, bob) = (key(1), key(2));
    for allowed in [false, true] {
        let mut ledger = Ledger::with(&replicas, allowed);
        let record = ledger.register(&alice, 1, SchemeId::RECRYPT);
        let out = ledger.call(&alice, ledger.grant_call(record, &bob, 1, None));
        match (allowed, out) {
            (false, Outcome::Refused(r)) => {
                assert_eq!(r.code, ErrorCode::SingleProxyRefused);
                assert!(r.message.contains("single-proxy"), "{}", r.message);
                assert!(ledger.state.scan_prefix(Table::Grants, &[]).is_empty());
            }
            (true, Outcome::Ok(CallOutput::Granted { grant })) => {
                let g = ledger.grant(&grant);
                assert!(g.single_proxy, "the grant says it is single-proxy");
                assert_eq!(g.threshold, Threshold { m: 1, n: 4 });
            }
            (allowed, out) => panic!("allowed {allowed}: {out:?}"),
        }
    }
    // An umbral record's grant is not single-proxy.
    let mut ledger = Ledger::with(&replicas, true);
    let record = ledger.register(&alice, 2, SchemeId::UMBRAL);
    let Outcome::Ok(CallOutput::Granted { grant }) =
        ledger.call(&alice, ledger.grant_call(record, &bob, 2, None))
    else {
        panic!("umbral grant refused")
    };
    assert!(!ledger.grant(&grant).single_proxy);
}

#[test]
fn a_replica_confirms_its_erasure_of_an_expired_grant_once_it_expired() {
    let replicas: Vec<SigningKey> = (10..14).map(key).collect();
    let (alice, bob) = (key(1), key(2));
    let mut ledger = Ledger::new(&replicas);
    let record = ledger.register(&alice, 1, SchemeId::UMBRAL);
    // Block times are 1_700_000_000_000 + height: it expires a few blocks on.
    let expires = 1_700_000_000_000 + ledger.height + 4;
    let Outcome::Ok(CallOutput::Granted { grant }) =
        ledger.call(&alice, ledger.grant_call(record, &bob, 2, Some(expires)))
    else {
        panic!("grant refused")
    };
    // Not yet expired: nothing to confirm.
    let before = ledger.grant(&grant);
    assert_eq!(
        refused(ledger.call(&replicas[2], confirm(grant, 2))),
        ErrorCode::InvalidCall
    );
    assert_eq!(ledger.grant(&grant), before);
    // A few blocks later it has expired: replica 2 confirms, once.
    while 1_700_000_000_000 + ledger.height + 1 < expires {
        ledger.call(
            &alice,
            Call::Revoke(Revoke {
                grant: GrantId([7; 32]),
            }),
        );
    }
    assert_eq!(
        ledger.call(&replicas[2], confirm(grant, 2)),
        Outcome::Ok(CallOutput::ErasureConfirmed {
            grant,
            replica: ReplicaId(2)
        })
    );
    assert_eq!(ledger.grant(&grant).erased_by, vec![ReplicaId(2)]);
    assert_eq!(
        refused(ledger.call(&replicas[2], confirm(grant, 2))),
        ErrorCode::InvalidCall
    );
}
