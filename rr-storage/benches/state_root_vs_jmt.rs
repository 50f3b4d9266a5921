//! [`rr_storage::StateTree`] against the `jmt` crate (Penumbra's Jellyfish
//! Merkle Tree), measured in one run on the same states and batches: for
//! 10k, 100k and 1M entries, one block's update (200 or 800 updates, 3/4 new
//! keys and 1/4 overwrites) with its new root, proving one key and verifying
//! the proof; the average proof sizes (postcard bytes) are printed.
//!
//! jmt is measured with its in-memory `MockTreeStore`: an update is
//! `put_value_set` plus writing the node batch into the store, which is what a
//! jmt-backed ledger would do per block (minus the disk). It runs with its
//! usual SHA-256 (the `sha2` crate, with the CPU's SHA extensions where it has
//! them) and, to separate the tree's cost from the hash function's, with a
//! BLAKE3 hasher like ours.
//!
//! Not built by CI: `cargo bench -p rr-storage --features bench-jmt --bench state_root_vs_jmt`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jmt::mock::MockTreeStore;
use jmt::storage::TreeWriter;
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, SimpleHasher};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rr_core::smt::value_hash;
use rr_core::Digest;
use rr_storage::StateTree;

mod workload;

use workload::{block, entry, label, sizes, BATCHES, PROOF_SAMPLE};

/// BLAKE3 for jmt, through rr-core's `value_hash` (BLAKE3 `derive_key` with a
/// cached context key, the same cost per call as the state tree's hashes).
/// jmt hashes at most ~80 bytes at a time, so the input is buffered on the
/// stack.
struct Blake3 {
    buf: [u8; 128],
    len: usize,
    spill: Vec<u8>,
}

impl SimpleHasher for Blake3 {
    fn new() -> Self {
        Blake3 {
            buf: [0; 128],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn update(&mut self, data: &[u8]) {
        if self.spill.is_empty() && self.len + data.len() <= self.buf.len() {
            self.buf[self.len..self.len + data.len()].copy_from_slice(data);
            self.len += data.len();
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.buf[..self.len]);
            }
            self.spill.extend_from_slice(data);
        }
    }

    fn finalize(self) -> [u8; 32] {
        if self.spill.is_empty() {
            value_hash(&self.buf[..self.len]).0
        } else {
            value_hash(&self.spill).0
        }
    }
}

struct Setup<'a> {
    n: usize,
    leaves: &'a [(Digest, Digest)],
    blocks: &'a [Vec<(Digest, Digest)>],
    probes: &'a [Digest],
}

fn bench_ours(c: &mut Criterion, s: &Setup<'_>) {
    let started = Instant::now();
    let tree = StateTree::from_leaves(s.leaves.to_vec());
    let built = started.elapsed();
    let root = tree.root();
    let proofs: Vec<_> = s
        .probes
        .iter()
        .map(|k| (*k, tree.get(k).unwrap(), tree.prove(k)))
        .collect();
    let bytes: usize = proofs.iter().map(|(_, _, p)| p.encoded_len()).sum();
    eprintln!(
        "ours {}: built in {built:.2?}; average proof {:.1} bytes",
        label(s.n),
        bytes as f64 / proofs.len() as f64
    );

    let mut group = c.benchmark_group(format!("vs_jmt/{}/ours", label(s.n)));
    for block in s.blocks {
        let batch: Vec<(Digest, Option<Digest>)> =
            block.iter().map(|(k, v)| (*k, Some(*v))).collect();
        group.bench_function(format!("update_{}", block.len()), |b| {
            b.iter_batched(
                || batch.clone(),
                |batch| {
                    let next = tree.apply(batch);
                    black_box(next.root());
                    next
                },
                BatchSize::PerIteration,
            )
        });
    }
    let mut i = 0;
    group.bench_function("prove", |b| {
        b.iter(|| {
            i = (i + 1) % s.probes.len();
            black_box(tree.prove(&s.probes[i]))
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
    group.finish();
}

fn bench_jmt<H: SimpleHasher>(c: &mut Criterion, s: &Setup<'_>, name: &str) {
    // Overwrites allowed: every timed update writes the same version-1 nodes
    // again, on top of the same version 0.
    let store = MockTreeStore::new(true);
    let tree: JellyfishMerkleTree<'_, MockTreeStore, H> = JellyfishMerkleTree::new(&store);
    let started = Instant::now();
    let (root, batch) = tree
        .put_value_set(
            s.leaves
                .iter()
                .map(|(k, v)| (KeyHash(k.0), Some(v.0.to_vec()))),
            0,
        )
        .unwrap();
    store.write_node_batch(&batch.node_batch).unwrap();
    let built = started.elapsed();
    let proofs: Vec<_> = s
        .probes
        .iter()
        .map(|k| {
            let (value, proof) = tree.get_with_proof(KeyHash(k.0), 0).unwrap();
            (KeyHash(k.0), value.unwrap(), proof)
        })
        .collect();
    let bytes: usize = proofs
        .iter()
        .map(|(_, _, p)| rr_core::codec::encode(p).len())
        .sum();
    eprintln!(
        "{name} {}: built in {built:.2?}; average proof {:.1} bytes",
        label(s.n),
        bytes as f64 / proofs.len() as f64
    );

    let mut group = c.benchmark_group(format!("vs_jmt/{}/{name}", label(s.n)));
    for block in s.blocks {
        let batch: Vec<(KeyHash, Option<OwnedValue>)> = block
            .iter()
            .map(|(k, v)| (KeyHash(k.0), Some(v.0.to_vec())))
            .collect();
        group.bench_function(format!("update_{}", block.len()), |b| {
            b.iter_batched(
                || batch.clone(),
                |batch| {
                    let (root, update) = tree.put_value_set(batch, 1).unwrap();
                    store.write_node_batch(&update.node_batch).unwrap();
                    black_box(root)
                },
                BatchSize::PerIteration,
            )
        });
    }
    let mut i = 0;
    group.bench_function("prove", |b| {
        b.iter(|| {
            i = (i + 1) % s.probes.len();
            black_box(tree.get_with_proof(KeyHash(s.probes[i].0), 0).unwrap())
        })
    });
    let mut i = 0;
    group.bench_function("verify", |b| {
        b.iter(|| {
            i = (i + 1) % proofs.len();
            let (k, v, proof) = &proofs[i];
            proof.verify_existence(root, *k, v).unwrap()
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    for &n in sizes() {
        let leaves: Vec<(Digest, Digest)> = (0..n as u64).map(|i| entry(i, 0)).collect();
        let blocks: Vec<_> = BATCHES.iter().map(|&u| block(n, u, &mut rng)).collect();
        let probes: Vec<Digest> = (0..PROOF_SAMPLE)
            .map(|_| leaves[rng.gen_range(0..n)].0)
            .collect();
        let setup = Setup {
            n,
            leaves: &leaves,
            blocks: &blocks,
            probes: &probes,
        };
        bench_ours(c, &setup);
        bench_jmt::<sha2::Sha256>(c, &setup, "jmt-sha256");
        bench_jmt::<Blake3>(c, &setup, "jmt-blake3");
    }
}

criterion_group! {
    name = state_root_vs_jmt;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(state_root_vs_jmt);
