//! # rr-pre: proxy re-encryption and the ciphertext envelope
//!
//! Resilient Records' cryptography:
//!
//! - [`Umbral`]: the [`PreScheme`](rr_core::PreScheme) backed by
//!   [umbral-pre](https://docs.rs/umbral-pre) 0.11, threshold proxy
//!   re-encryption (m of n) over secp256k1. The owner encapsulates a record's
//!   data key under the record's own key; a grant splits the record key into
//!   key fragments for the replicas, any m of which re-encrypt the capsule
//!   into capsule fragments the grantee opens. No replica learns the data key.
//! - [`Recrypt`] (feature `recrypt`, on by default): the `PreScheme` backed by
//!   [recrypt](https://docs.rs/recrypt) 0.16, IronCore Labs' transform
//!   encryption over a pairing-friendly curve. **Single proxy: threshold is
//!   always 1 of n, every replica gets the same transform key and any one
//!   replica can transform a capsule for the grantee on its own.** See
//!   [`recrypt`](mod@recrypt) for what is checked where.
//! - [`dyn_scheme`]: [`ReplicaScheme`], the object-safe, byte-level part of a
//!   scheme a replica needs, and [`Schemes`], the registry of every scheme
//!   compiled in, so a node serves records of any of them.
//! - `conformance` (feature `testing`): the suite every `PreScheme` backend
//!   passes, and `Flow`, one whole owner-to-grantee flow
//!   written once for any scheme.
//! - [`envelope`]: the record's bytes encrypted under that data key, in
//!   authenticated chunks (STREAM over XChaCha20-Poly1305) so they can be
//!   encrypted, stored and decrypted as a stream in constant memory.
//!
//! ## License and patents
//!
//! umbral-pre is licensed GPL-3.0-only and recrypt AGPL-3.0-only. This crate
//! links them, so it is licensed AGPL-3.0-only (compatible with GPL-3.0 by
//! its section 13), unlike the MIT/Apache-2.0 crates of the workspace that do
//! not depend on it. IronCore Labs holds patents on transform encryption,
//! which recrypt implements: `--no-default-features` builds this crate
//! without recrypt (and recrypt's minimum Rust version, 1.88).
//!
//! ## Alice, the proxies and Bob
//!
//! Alice (the owner) stores a record; Bob (the grantee) gets access to it
//! through three proxies (the replicas), any two of which suffice:
//!
//! ```
//! use rr_core::{PreScheme, RecordId, Threshold, WireEncoding};
//! use rr_pre::{envelope, Umbral};
//!
//! let mut rng = rand_core::OsRng;
//! let umbral = Umbral;
//!
//! // Alice: a master secret, and the key of one record derived from it.
//! let alice = umbral.generate_master(&mut rng);
//! let record = RecordId([7; 32]);
//! let (record_sk, record_pk) = umbral.record_key(&alice, &record);
//!
//! // Alice: a fresh data key, encapsulated under the record key, encrypts the record.
//! let (capsule, data_key) = umbral.encapsulate(&mut rng, &record_pk)?;
//! let sealed = envelope::seal(&data_key, &mut rng, b"allergies: penicillin");
//! // `sealed` goes to the blob store; the capsule and record key go on the ledger.
//! let capsule_bytes = capsule.to_bytes();
//!
//! // Bob: an account key of his own.
//! let bob = umbral.generate_master(&mut rng);
//! let (bob_sk, bob_pk) = umbral.account_key(&bob);
//!
//! // Alice: grant Bob the record, 2 of 3 proxies.
//! let t = Threshold::new(2, 3)?;
//! let kfrags = umbral.delegate(&mut rng, &record_sk, &bob_pk, t)?;
//! assert_eq!(kfrags.len(), 3);
//!
//! // Each proxy: check its key fragment against Alice's record key and Bob's
//! // key, then (on Bob's audited request) re-encrypt the capsule.
//! let capsule = rr_pre::UmbralCapsule::from_bytes(&capsule_bytes)?;
//! let mut cfrags = Vec::new();
//! for kfrag in kfrags.into_iter().take(2) {
//!     let kfrag = rr_pre::UmbralKeyFrag::from_bytes(&kfrag.to_bytes())?;
//!     let verified = umbral.verify_key_frag(kfrag, &record_pk, &bob_pk)?;
//!     cfrags.push(umbral.reencrypt(&mut rng, &capsule, &verified)?);
//! }
//!
//! // Bob: check the capsule fragments, open the data key, decrypt the record.
//! let verified: Vec<_> = cfrags
//!     .into_iter()
//!     .map(|cfrag| umbral.verify_capsule_frag(cfrag, &capsule, &record_pk, &bob_pk))
//!     .collect::<Result<_, _>>()?;
//! let bobs_key = umbral.open_reencrypted(&bob_sk, &record_pk, &capsule, &verified)?;
//! assert_eq!(envelope::open(&bobs_key, &sealed)?, b"allergies: penicillin");
//!
//! // Alice can always open her own record.
//! assert_eq!(umbral.open(&record_sk, &capsule)?.expose(), data_key.expose());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "testing")]
pub mod conformance;
pub mod dyn_scheme;
pub mod envelope;
#[cfg(feature = "recrypt")]
pub mod recrypt;
pub mod umbral;

pub use dyn_scheme::{scheme_by_name, ReplicaScheme, Schemes, UnknownScheme};
pub use envelope::EnvelopeError;
#[cfg(feature = "recrypt")]
pub use recrypt::{
    Recrypt, RecryptCapsule, RecryptCapsuleFrag, RecryptKeyFrag, RecryptMasterSecret,
    RecryptPublicKey, RecryptSecretKey, RecryptVerifiedCapsuleFrag, RecryptVerifiedKeyFrag,
};
pub use umbral::{
    Umbral, UmbralCapsule, UmbralCapsuleFrag, UmbralKeyFrag, UmbralMasterSecret, UmbralPublicKey,
    UmbralSecretKey, UmbralVerifiedCapsuleFrag, UmbralVerifiedKeyFrag,
};
