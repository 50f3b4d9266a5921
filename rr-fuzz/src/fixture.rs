//! The fixed world every target runs in: replica keys, a client, records and
//! grants of both schemes, a sealing key and a data key. Everything is
//! derived from constants, so a crash reproduces on any machine.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rr_consensus::pbft::{ReplicaKey, ReplicaSet};
use rr_core::cert::ReplicaSetInfo;
use rr_core::{
    AccountId, Call, DataKey, GrantId, PreScheme, RecordId, ReplicaId, Revoke, SignedTransaction,
    Threshold, TxBody, TxId,
};
use rr_node::sealing::{SealingKey, Slot};
use rr_pre::{Recrypt, Umbral};

/// Replicas in the fixed replica set (n = 4, f = 1, quorum 3).
pub(crate) const REPLICAS: usize = 4;

/// The passphrase of the fixed keystore file.
pub(crate) const PASSPHRASE: &str = "fuzz passphrase";

/// A deterministic RNG for the operations that draw randomness.
pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// One scheme's records, grants and fragments, made honestly.
pub(crate) struct PreWorld<P: PreScheme> {
    pub scheme: P,
    pub record: RecordId,
    pub record_sk: P::SecretKey,
    pub record_pk: P::PublicKey,
    pub grantee_sk: P::SecretKey,
    pub grantee_pk: P::PublicKey,
    pub threshold: Threshold,
    pub kfrags: Vec<P::KeyFrag>,
    pub verified_kfrags: Vec<P::VerifiedKeyFrag>,
    pub capsule: P::Capsule,
    pub data_key: DataKey,
    pub cfrags: Vec<P::CapsuleFrag>,
    pub verified_cfrags: Vec<P::VerifiedCapsuleFrag>,
}

impl<P: PreScheme> PreWorld<P> {
    fn new(scheme: P, threshold: Threshold, seed: u8) -> Self {
        let owner = scheme
            .master_from_bytes(&[seed; 32])
            .expect("a 32-byte master secret");
        let grantee = scheme
            .master_from_bytes(&[seed.wrapping_add(1); 32])
            .expect("a 32-byte master secret");
        let record = RecordId([seed; 32]);
        let (record_sk, record_pk) = scheme.record_key(&owner, &record);
        let (grantee_sk, grantee_pk) = scheme.account_key(&grantee);
        let mut r = rng(u64::from(seed));
        let kfrags = scheme
            .delegate(&mut r, &record_sk, &grantee_pk, threshold)
            .expect("the fixed delegation");
        let verified_kfrags: Vec<_> = kfrags
            .iter()
            .map(|k| {
                scheme
                    .verify_key_frag(k.clone(), &record_pk, &grantee_pk)
                    .expect("an honest key fragment verifies")
            })
            .collect();
        let (capsule, data_key) = scheme
            .encapsulate(&mut r, &record_pk)
            .expect("the fixed capsule");
        let cfrags: Vec<_> = verified_kfrags
            .iter()
            .map(|k| {
                scheme
                    .reencrypt(&mut r, &capsule, k)
                    .expect("the fixed re-encryption")
            })
            .collect();
        let verified_cfrags = cfrags
            .iter()
            .map(|c| {
                scheme
                    .verify_capsule_frag(c.clone(), &capsule, &record_pk, &grantee_pk)
                    .expect("an honest capsule fragment verifies")
            })
            .collect();
        Self {
            scheme,
            record,
            record_sk,
            record_pk,
            grantee_sk,
            grantee_pk,
            threshold,
            kfrags,
            verified_kfrags,
            capsule,
            data_key,
            cfrags,
            verified_cfrags,
        }
    }
}

/// The fixed world.
pub(crate) struct Fixture {
    /// The replicas' signing keys, in replica order.
    pub replica_keys: Vec<SigningKey>,
    /// The replica set as clients know it.
    pub set_info: ReplicaSetInfo,
    /// The replica set as the PBFT engine knows it.
    pub set: ReplicaSet,
    /// A client (the record owner).
    pub alice: SigningKey,
    /// Another client (the grantee).
    pub bob: SigningKey,
    /// A transaction that verifies, to batch fuzzed ones with.
    pub good_tx: SignedTransaction,
    /// The retrieval and grant signed fragments are bound to.
    pub retrieve_tx: TxId,
    /// The grant of the fixed retrieval.
    pub grant: GrantId,
    /// Replica 0's sealing key.
    pub sealing: SealingKey,
    /// The slot fragments are sealed for.
    pub slot: Slot,
    /// The data key envelopes are opened with.
    pub envelope_key: DataKey,
    /// Umbral, threshold 2 of 4.
    pub umbral: PreWorld<Umbral>,
    /// recrypt, threshold 1 of 4 (single proxy).
    pub recrypt: PreWorld<Recrypt>,
}

impl Fixture {
    fn new() -> Self {
        let replica_keys: Vec<SigningKey> = (0..REPLICAS)
            .map(|i| SigningKey::from_bytes(&[0x10 + i as u8; 32]))
            .collect();
        let set_info = ReplicaSetInfo::new(
            replica_keys
                .iter()
                .map(|k| AccountId::from_verifying_key(&k.verifying_key()))
                .collect(),
        )
        .expect("the fixed replica set");
        let set = ReplicaSet::new(replica_keys.iter().map(|k| k.verifying_key()).collect())
            .expect("the fixed replica set");
        let alice = SigningKey::from_bytes(&[0xa1; 32]);
        let bob = SigningKey::from_bytes(&[0xb0; 32]);
        let good_tx = TxBody {
            signer: account(&alice),
            nonce: 1,
            call: Call::Revoke(Revoke {
                grant: GrantId([0x77; 32]),
            }),
        }
        .sign(&alice);
        let umbral = PreWorld::new(Umbral, Threshold { m: 2, n: 4 }, 0x31);
        let recrypt = PreWorld::new(Recrypt, Threshold { m: 1, n: 4 }, 0x41);
        Self {
            set_info,
            set,
            good_tx,
            retrieve_tx: TxId([0x51; 32]),
            grant: GrantId([0x52; 32]),
            sealing: SealingKey::derive(&[0x61; 32]),
            slot: Slot {
                record: umbral.record,
                grantee: account(&bob),
                replica: ReplicaId(0),
            },
            envelope_key: DataKey::from_bytes([0x71; 32]),
            umbral,
            recrypt,
            replica_keys,
            alice,
            bob,
        }
    }

    /// Replica `i`'s key, for the PBFT engine.
    pub fn replica_key(&self, i: ReplicaId) -> Option<ReplicaKey> {
        self.replica_keys
            .get(usize::from(i.0))
            .map(|k| ReplicaKey::new(i, k.clone()))
    }
}

/// The account of `key`.
pub(crate) fn account(key: &SigningKey) -> AccountId {
    AccountId::from_verifying_key(&key.verifying_key())
}

/// The fixed world, made once per process.
pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::new)
}
