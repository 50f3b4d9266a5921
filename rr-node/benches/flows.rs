//! Register + grant + retrieve + open flows on the Solo node, side by side with
//! the same umbral-pre calls made raw, at the same concurrency, in one run.
//!
//! A node flow is everything a client and the one replica do for it: derive the
//! record key, encapsulate, sign and submit `RegisterRecord` (verified,
//! ordered, executed, committed durably), delegate, sign and submit `Grant`,
//! deliver the key fragment (checked against the commitment, verified,
//! stored), sign and submit `Retrieve`, re-encrypt on the replica, verify the
//! capsule fragment and open the data key on the client. The blob itself is
//! left out on both sides (one 1 KiB blob, uploaded once, is named by every
//! record; the `rr-storage` blob bench measures blobs): this
//! compares the framework's cost with the cryptography's.
//!
//! ```text
//! cargo bench -p rr-node --bench flows
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand_core::{OsRng, RngCore};
use rr_core::{
    Call, ContentId, Digest, Grant, PreScheme, Purpose, RecordId, RegisterRecord, Retrieve,
    SchemeId, Threshold, WireEncoding,
};
use rr_node::{DevConfig, DevTypes, Identity, Node};
use rr_pre::Umbral;

/// The blob every record of the bench names (a `RegisterRecord` must name
/// a blob the replica holds, of its size).
const BLOB: [u8; 1024] = [7; 1024];

/// Flows in flight at once.
const CONCURRENCY: usize = 64;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn node_flow(
    node: Arc<Node<DevTypes>>,
    alice: Arc<Identity<Umbral>>,
    bob: Arc<BobKeys>,
    cid: ContentId,
) {
    let pre = Umbral;
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let record = RecordId::derive(&alice.account(), &salt);
    let a = alice.clone();
    let register = tokio::task::spawn_blocking(move || {
        let (_, pk) = pre.record_key(a.master(), &record);
        let (capsule, _key) = pre.encapsulate(&mut OsRng, &pk).unwrap();
        a.sign(Call::RegisterRecord(RegisterRecord {
            salt,
            cid,
            size: BLOB.len() as u64,
            scheme: SchemeId::UMBRAL,
            record_key: pk.to_bytes(),
            capsule: capsule.to_bytes(),
            media_type: "application/octet-stream".into(),
            encrypted_metadata: None,
        }))
    })
    .await
    .unwrap();
    node.execute(register).await.unwrap();

    let (a, b) = (alice.clone(), bob.clone());
    let (grant_tx, kfrag) = tokio::task::spawn_blocking(move || {
        let (sk, _) = pre.record_key(a.master(), &record);
        let t = Threshold::new(1, 1).unwrap();
        let kfrag = pre
            .delegate(&mut OsRng, &sk, &b.pk, t)
            .unwrap()
            .remove(0)
            .to_bytes();
        let tx = a.sign(Call::Grant(Grant {
            record,
            grantee: b.identity.account(),
            grantee_key: b.pk.to_bytes(),
            threshold: t,
            fragment_commitments: vec![Digest::fragment_commitment(&kfrag)],
            purpose: Purpose::new("treatment").unwrap(),
            expires_at: None,
        }));
        (tx, kfrag)
    })
    .await
    .unwrap();
    let grant = match node.execute(grant_tx).await.unwrap() {
        rr_core::CallOutput::Granted { grant } => grant,
        other => panic!("{other:?}"),
    };
    node.deliver_fragment(grant, kfrag).await.unwrap();

    let retrieve = bob.identity.sign(Call::Retrieve(Retrieve {
        grant,
        purpose: Purpose::new("treatment").unwrap(),
    }));
    let retrieval = node.retrieve(retrieve).await.unwrap();
    let b = bob.clone();
    let set = node.replica_set().clone();
    tokio::task::spawn_blocking(move || {
        // What a client checks: the certified record, the signed fragment.
        let state = retrieval.state.verify(&set).unwrap();
        let record = state.record(&record).unwrap().unwrap();
        let record_pk = <Umbral as PreScheme>::PublicKey::from_bytes(&record.record_key).unwrap();
        let capsule = <Umbral as PreScheme>::Capsule::from_bytes(&record.capsule).unwrap();
        let cfrag = <Umbral as PreScheme>::CapsuleFrag::from_bytes(
            &retrieval.fragment.expect("a fragment").fragment,
        )
        .unwrap();
        let v = pre
            .verify_capsule_frag(cfrag, &capsule, &record_pk, &b.pk)
            .unwrap();
        pre.open_reencrypted(&b.sk, &record_pk, &capsule, &[v])
            .unwrap();
    })
    .await
    .unwrap();
}

/// The same umbral-pre calls, raw: key derivation, encrypt a data key,
/// generate and verify the key fragment, re-encrypt, verify the capsule
/// fragment, decrypt.
fn raw_flow(factory: &umbral_pre::SecretKeyFactory, bob_sk: &umbral_pre::SecretKey) {
    use umbral_pre::*;
    let mut label = [0u8; 16];
    OsRng.fill_bytes(&mut label);
    let sk = factory.make_key(&label);
    let signer = Signer::new(factory.make_key(&[label.as_slice(), b"s"].concat()));
    let pk = sk.public_key();
    let bob_pk = bob_sk.public_key();
    let mut data_key = [0u8; 32];
    OsRng.fill_bytes(&mut data_key);
    let (capsule, wrapped) = encrypt_with_rng(&mut OsRng, &pk, &data_key).unwrap();
    let kfrag = generate_kfrags_with_rng(&mut OsRng, &sk, &bob_pk, &signer, 1, 1, true, true)
        .into_vec()
        .remove(0);
    let kfrag = kfrag
        .unverify()
        .verify(&signer.verifying_key(), Some(&pk), Some(&bob_pk))
        .unwrap();
    let cfrag = reencrypt_with_rng(&mut OsRng, &capsule, kfrag);
    let cfrag = cfrag
        .unverify()
        .verify(&capsule, &signer.verifying_key(), &pk, &bob_pk)
        .unwrap();
    let opened = decrypt_reencrypted(bob_sk, &pk, &capsule, [cfrag], &wrapped).unwrap();
    assert_eq!(&opened[..], &data_key);
}

struct BobKeys {
    identity: Identity<Umbral>,
    sk: <Umbral as PreScheme>::SecretKey,
    pk: <Umbral as PreScheme>::PublicKey,
}

async fn run_concurrently<F, Fut>(n: u64, make: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let mut remaining = n;
    let mut set = tokio::task::JoinSet::new();
    while remaining > 0 || !set.is_empty() {
        while remaining > 0 && set.len() < CONCURRENCY {
            set.spawn(make());
            remaining -= 1;
        }
        set.join_next().await.unwrap().unwrap();
    }
    start.elapsed()
}

fn flows(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let node = rt
        .block_on(Node::open_dev(DevConfig::new(dir.path())))
        .unwrap();
    let cid = rt
        .block_on(rr_node::NodeApi::put_blob(
            &*node,
            rr_core::byte_stream_of(&BLOB[..]),
            rr_node::Authorization::sign(
                &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
                &node.replica_set().digest(),
                rr_node::Authorization::upload_scope(),
            ),
        ))
        .unwrap();
    let pre = Umbral;
    let alice = Arc::new(Identity::generate(&pre));
    let bob_identity = Identity::generate(&pre);
    let (sk, pk) = pre.account_key(bob_identity.master());
    let bob = Arc::new(BobKeys {
        identity: bob_identity,
        sk,
        pk,
    });
    let factory = Arc::new(umbral_pre::SecretKeyFactory::random());
    let raw_bob = Arc::new(umbral_pre::SecretKey::random());

    let mut group = c.benchmark_group("flow");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function(BenchmarkId::new("raw-umbral", CONCURRENCY), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (factory, raw_bob) = (factory.clone(), raw_bob.clone());
            async move {
                run_concurrently(iters, || {
                    let (f, rb) = (factory.clone(), raw_bob.clone());
                    async move {
                        tokio::task::spawn_blocking(move || raw_flow(&f, &rb))
                            .await
                            .unwrap()
                    }
                })
                .await
            }
        })
    });
    group.bench_function(BenchmarkId::new("solo-node", CONCURRENCY), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (node, alice, bob) = (node.clone(), alice.clone(), bob.clone());
            async move {
                run_concurrently(iters, || {
                    node_flow(node.clone(), alice.clone(), bob.clone(), cid)
                })
                .await
            }
        })
    });
    group.finish();
    rt.block_on(node.shutdown()).unwrap();
}

criterion_group!(benches, flows);
criterion_main!(benches);
