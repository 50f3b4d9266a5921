//! # rr-fuzz: fuzz targets for every decoder of network and disk bytes
//!
//! One function per target, `rr_fuzz::<target>(data: &[u8])`: it feeds
//! `data` to the decoder(s) and, when decoding succeeds, does what a node or
//! a client does next (re-encode and check the round trip, verify
//! signatures and proofs, open with the fixed keys). It panics only on a
//! bug: a decoder that panics, hangs or allocates without bound, an
//! encoding that does not round-trip, or two ways of checking the same
//! thing that disagree.
//!
//! Everything a target checks against (replica keys, records, grants,
//! fragments, sealing and data keys) is derived from constants, so a crash
//! reproduces anywhere.
//!
//! - `fuzz/` is the cargo-fuzz project (nightly, libFuzzer): one
//!   `fuzz_targets/<target>.rs` per entry of [`TARGETS`].
//! - `corpus/<target>/` holds the seeds ([`seeds::seeds`], written by
//!   `cargo run -p rr-fuzz --example gen_corpus`) and what fuzzing kept;
//!   `regressions/<target>/` the crashes found.
//! - `tests/replay.rs` feeds both to the targets on stable Rust: it is
//!   what `cargo test --workspace` runs.
//! - `scripts/fuzz.sh` runs the targets for a fixed time each.
//!
//! See `README.md` for what each target exercises and the results.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod consensus_targets;
mod core_targets;
mod fixture;
mod node_targets;
mod pre_targets;
pub mod seeds;

pub use consensus_targets::{handshake, replica_message};
pub use core_targets::{
    block, call, canonical_encoding, certificate, certified_receipt, ledger_values,
    signed_fragment, state_answer, transaction,
};
pub use node_targets::{
    cluster_file, http_messages, keystore_key_file, public_card, receipt_file, sealed_fragment,
};
pub use pre_targets::{
    envelope, recrypt_capsule, recrypt_capsule_frag, recrypt_key_frag, recrypt_public_key,
    umbral_capsule, umbral_capsule_frag, umbral_key_frag, umbral_public_key,
};

/// A fuzz target: its name (that of its function, of
/// `fuzz/fuzz_targets/<name>.rs` and of its corpus directory) and the
/// function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    // rr-core
    ("transaction", transaction),
    ("call", call),
    ("block", block),
    ("ledger_values", ledger_values),
    ("certificate", certificate),
    ("state_answer", state_answer),
    ("certified_receipt", certified_receipt),
    ("signed_fragment", signed_fragment),
    ("canonical_encoding", canonical_encoding),
    // rr-consensus
    ("replica_message", replica_message),
    ("handshake", handshake),
    // rr-pre
    ("umbral_public_key", umbral_public_key),
    ("umbral_capsule", umbral_capsule),
    ("umbral_key_frag", umbral_key_frag),
    ("umbral_capsule_frag", umbral_capsule_frag),
    ("recrypt_public_key", recrypt_public_key),
    ("recrypt_capsule", recrypt_capsule),
    ("recrypt_key_frag", recrypt_key_frag),
    ("recrypt_capsule_frag", recrypt_capsule_frag),
    ("envelope", envelope),
    // rr-node
    ("sealed_fragment", sealed_fragment),
    ("keystore_key_file", keystore_key_file),
    ("cluster_file", cluster_file),
    ("public_card", public_card),
    ("receipt_file", receipt_file),
    ("http_messages", http_messages),
];
