//! The cost of the state commitment ([`rr_storage::StateTree`]) per block:
//! for trees of 10k, 100k and 1M entries, one block's update (`apply` of 200
//! or 800 updates, 3/4 new keys and 1/4 overwrites, then `root`), `prove` of
//! one key, and `SmtProof::verify`. Prints the average proof size (postcard
//! bytes) of present keys once per size.
//!
//! It also times what a client does with each read it gets
//! (`verified_read`): checking a 3-of-4 certificate over a header and the
//! proofs of two entries (a record and a grant, as a retrieval needs)
//! against its state root, and prints that answer's size (postcard, and the
//! JSON the HTTP API sends).
//!
//! `cargo bench -p rr-storage --bench state_root`; under `-- --test` (CI) only
//! the 10k tree is built.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rr_core::cert::{Certificate, LedgerHeader, ReplicaSetInfo};
use rr_core::proof::{ProvenEntry, StateAnswer};
use rr_core::smt::{key_hash, value_hash, SmtProof};
use rr_core::{codec, AccountId, BlockHash, Digest, ReplicaId, Table, Timestamp};
use rr_storage::StateTree;

mod workload;

use workload::{block, entry, label, sizes, BATCHES, PROOF_SAMPLE};

fn benches(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    for &n in sizes() {
        let tree = StateTree::from_leaves((0..n as u64).map(|i| entry(i, 0)).collect());
        let root = tree.root();
        let probes: Vec<Digest> = (0..PROOF_SAMPLE)
            .map(|_| entry(rng.gen_range(0..n as u64), 0).0)
            .collect();
        let proofs: Vec<(Digest, Digest, SmtProof)> = probes
            .iter()
            .map(|k| (*k, tree.get(k).unwrap(), tree.prove(k)))
            .collect();
        let bytes: usize = proofs.iter().map(|(_, _, p)| p.encoded_len()).sum();
        let depth: usize = proofs.iter().map(|(_, _, p)| p.siblings.len()).sum();
        eprintln!(
            "state_root {}: average proof of a present key {:.1} bytes ({:.1} siblings)",
            label(n),
            bytes as f64 / PROOF_SAMPLE as f64,
            depth as f64 / PROOF_SAMPLE as f64,
        );

        let mut group = c.benchmark_group(format!("state_root/{}", label(n)));
        for updates in BATCHES {
            let batch: Vec<(Digest, Option<Digest>)> = block(n, updates, &mut rng)
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect();
            group.bench_function(BenchmarkId::new("apply+root", updates), |b| {
                b.iter_batched(
                    || batch.clone(),
                    |batch| {
                        let next = tree.apply(batch);
                        black_box(next.root());
                        // Returned, so that dropping it is not timed; one
                        // iteration per batch, so that it is dropped before
                        // the next one and memory is reused as in the ledger,
                        // which drops old versions as it goes.
                        next
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        let mut i = 0;
        group.bench_function("prove", |b| {
            b.iter(|| {
                i = (i + 1) % probes.len();
                black_box(tree.prove(&probes[i]))
            })
        });
        let mut i = 0;
        group.bench_function("verify", |b| {
            b.iter(|| {
                i = (i + 1) % proofs.len();
                let (k, v, proof) = &proofs[i];
                proof.verify(&root, k, Some(v)).unwrap()
            })
        });
        let (set, answer) = read_answer(&tree);
        let json = serde_json::to_vec(&answer).expect("an answer encodes as JSON");
        eprintln!(
            "state_root {}: a verified read (3-of-4 certificate, record and grant proven) is {} bytes (postcard), {} bytes (JSON)",
            label(n),
            codec::encode(&answer).len(),
            json.len(),
        );
        group.bench_function("verified_read", |b| {
            b.iter(|| black_box(answer.verify(&set).unwrap()))
        });
        group.finish();
    }
}

/// Replica `i`'s key in a 4-replica set.
fn replica_key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

/// What a replica answers a client's read with on a ledger whose state is
/// `tree` plus one record and one grant: a header over the new root signed
/// by 3 of 4 replicas, and both entries proven. The values are as large as
/// a record's and a grant's (about 300 and 400 bytes).
fn read_answer(tree: &StateTree) -> (ReplicaSetInfo, StateAnswer) {
    let set = ReplicaSetInfo::new(
        (0..4)
            .map(|i| AccountId(replica_key(i).verifying_key().to_bytes()))
            .collect(),
    )
    .expect("four distinct keys");
    let entries = [
        (Table::Records, vec![1u8; 32], vec![7u8; 300]),
        (Table::Grants, vec![2u8; 32], vec![9u8; 400]),
    ];
    let tree = tree.apply(
        entries
            .iter()
            .map(|(t, k, v)| (key_hash(t.id(), k), Some(value_hash(v))))
            .collect(),
    );
    let header = LedgerHeader {
        replica_set: set.digest(),
        height: 1000,
        time: Timestamp(1_764_900_000_000),
        block: BlockHash([3; 32]),
        parent: Digest([4; 32]),
        state_root: tree.root(),
        receipts_root: Digest([5; 32]),
        receipts: 200,
    };
    let mut certificate = Certificate::new(header.clone());
    for i in 0..3u8 {
        certificate.add(ReplicaId(i as u16), header.sign(&replica_key(i)));
    }
    let entries = entries
        .into_iter()
        .map(|(table, key, value)| ProvenEntry {
            proof: tree.prove(&key_hash(table.id(), &key)),
            table,
            key,
            value: Some(value),
        })
        .collect();
    (
        set,
        StateAnswer {
            certificate,
            entries,
        },
    )
}

criterion_group! {
    name = state_root;
    // Short runs: CI only checks that this compiles and runs (`-- --test`),
    // and the figures worth reading are ratios, not absolute times.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(state_root);
