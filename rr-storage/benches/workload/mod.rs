//! The state-tree benchmarks' workload, shared by `state_root` and
//! `state_root_vs_jmt` so that both measure the same states and blocks.

use rand::rngs::StdRng;
use rand::Rng;
use rr_core::smt::{key_hash, value_hash};
use rr_core::Digest;

/// Updates per block.
pub const BATCHES: [usize; 2] = [200, 800];
/// Keys proven per size, for the average proof size.
pub const PROOF_SAMPLE: usize = 1000;

/// State sizes: under `--test` (CI runs each benchmark once) only the 10k
/// tree, since building 1M entries would dominate it.
pub fn sizes() -> &'static [usize] {
    if std::env::args().any(|a| a == "--test") {
        &[10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    }
}

/// The `i`th key of the benchmark state, and a value for it.
pub fn entry(i: u64, version: u64) -> (Digest, Digest) {
    (
        key_hash(0, &i.to_le_bytes()),
        value_hash(&[i.to_le_bytes(), version.to_le_bytes()].concat()),
    )
}

/// `10k`, `1M`.
pub fn label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n => format!("{}k", n / 1000),
    }
}

/// One block's updates to a state of `n` entries (keys `0..n`): 3/4 new keys,
/// 1/4 overwrites of random existing keys.
pub fn block(n: usize, updates: usize, rng: &mut StdRng) -> Vec<(Digest, Digest)> {
    let new = updates * 3 / 4;
    let mut out: Vec<(Digest, Digest)> = (0..new as u64).map(|i| entry(n as u64 + i, 0)).collect();
    let mut overwritten = std::collections::HashSet::new();
    while out.len() < updates {
        let i = rng.gen_range(0..n as u64);
        if overwritten.insert(i) {
            out.push(entry(i, 1));
        }
    }
    out
}
