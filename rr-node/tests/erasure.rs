//! The `ConfirmErasure` contract: only replica `i`, signing with its own key,
//! confirms its own erasure, once, of a revoked grant. Every refused
//! confirmation leaves the grant as it was.

use ed25519_dalek::SigningKey;
use rr_core::{
    AccountId, BlockContext, Call, CallOutput, ConfirmErasure, ContentId, ContractExecutor, Digest,
    ErrorCode, Grant, GrantId, GrantInfo, MemoryState, Outcome, Purpose, RecordId, RegisterRecord,
    ReplicaId, Revoke, SchemeId, StateRead, Table, Threshold, Timestamp, TxBody,
};
use rr_node::{ContractsConfig, NativeContracts};

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
        Self {
            contracts: NativeContracts::new(ContractsConfig {
                replicas: replicas.len() as u16,
                replica_accounts: replicas.iter().map(account).collect(),
                ..ContractsConfig::default()
            }),
            state: MemoryState::new(),
            height: 0,
            nonce: 0,
        }
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
        self.state.apply(&ctx, &exec.writes);
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
            record_key: vec![1; 33],
            capsule: vec![2; 98],
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
            grantee_key: vec![3; 33],
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
