//! [`Recrypt`]: the [`PreScheme`] of recrypt 0.16 (IronCore Labs' transform
//! encryption over a 256-bit Barreto-Naehrig curve, `Recrypt256`).
//!
//! # Licence and patents
//!
//! recrypt is licensed AGPL-3.0-only, and IronCore Labs holds patents on
//! transform encryption. This backend is behind the default-on cargo feature
//! `recrypt`; build with `--no-default-features` to leave recrypt out of the
//! dependency tree entirely.
//!
//! # Single proxy: threshold is 1
//!
//! recrypt re-encrypts with one transform key, which cannot be split. A grant
//! therefore has threshold 1 of n: [`PreScheme::delegate`] makes one transform
//! key and gives **the same key to every replica**, so **any one replica can
//! transform the capsule for the grantee on its own**. Confidentiality rests
//! on the transform key (it cannot decrypt anything by itself) and on the
//! grantee's secret key, not on replicas failing to collude. Use Umbral where
//! m of n replicas must cooperate. [`PreScheme::check_threshold`] refuses any
//! m other than 1.
//!
//! # Keys
//!
//! The owner's master secret is a 32-byte seed. Every key is derived from it
//! with BLAKE3 in key-derivation mode:
//!
//! | key | BLAKE3 context | input after the seed |
//! |---|---|---|
//! | account private key (grants transform to it) | [`CONTEXT_PRIVATE_KEY`] | `account` |
//! | record private key (the capsule is made for it) | [`CONTEXT_PRIVATE_KEY`] | `record` ‖ record id |
//! | record delegation signer (signs its transform keys) | [`CONTEXT_SIGNING_SEED`] | `delegation` ‖ record id |
//! | record proxy signer (signs transformed capsules) | [`CONTEXT_SIGNING_SEED`] | `proxy` ‖ record id |
//!
//! A private key is the first 32-byte block of the BLAKE3 output stream that
//! is non-zero and below the curve's base-field prime (rejection sampling, so
//! the key is uniform and recrypt never has to reduce it). Signing keys are
//! Ed25519 seeds (RFC 8032). A record's public key carries the recrypt public
//! key and both signers' Ed25519 public keys, which is all a replica and a
//! grantee need to check fragments.
//!
//! # What is checked, and where
//!
//! - A **capsule** is recrypt's `EncryptedValue` of a random 384-byte
//!   `Plaintext`; the data key is recrypt's `derive_symmetric_key` of that
//!   plaintext (SHA-256). recrypt signs it with a fresh Ed25519 key and stores
//!   an authentication hash of the plaintext in it: decoding checks the
//!   signature, and opening recomputes the hash, so a tampered capsule or a
//!   wrong key is refused, never turned into a wrong data key.
//! - A **key fragment** is the transform key (signed by recrypt with the
//!   record's delegation signer), the record's proxy signing key pair (the
//!   replica signs its transformed capsules with it), and our own signature
//!   by the delegation signer over every byte of the fragment, the record key
//!   and the grantee key (recrypt's signature does not cover the transform
//!   key's `hashed_temp_key`, ours does).
//!   [`PreScheme::verify_key_frag`] checks all of it.
//! - A **capsule fragment** is the transformed `EncryptedValue` plus a
//!   signature by the proxy signer binding it to the grantee's key.
//!   [`PreScheme::verify_capsule_frag`] checks recrypt's signature on the
//!   value against the record's proxy signer, the grantee binding, and that
//!   the fragment carries the capsule's own encrypted message. Every replica
//!   holding a fragment of the record holds the proxy signer, so a malicious
//!   replica can produce a fragment that verifies but carries the wrong
//!   transform: opening it fails on recrypt's authentication hash.
//!
//! # Encodings
//!
//! recrypt has no serde support. Every [`WireEncoding`] here is a fixed
//! layout that starts with the version byte [`WIRE_VERSION`]; every field has
//! a fixed size, so the total length is checked first. Field elements must be
//! canonical (below the prime), points must be on their curves, Ed25519 keys
//! must decompress, and the decoder refuses anything that would not re-encode
//! to the same bytes.
//!
//! | type | layout | bytes |
//! |---|---|---|
//! | account public key | version, 0, point | 66 |
//! | record public key | version, 1, point, delegation signer, proxy signer | 130 |
//! | capsule | version, ephemeral point, message (Fp12), auth hash, signing key, signature | 577 |
//! | key fragment | version, ephemeral point, grantee point, temp key (Fp12), hashed temp key (G2), signing key, signature, proxy key pair, our signature | 865 |
//! | capsule fragment | version, capsule part, transform block (2 points, 2 Fp12), signing key, signature, binding signature | 1537 |

use std::sync::LazyLock;

use ed25519_dalek::{Signer as _, SigningKey as DalekSigningKey, VerifyingKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::CryptoRngCore;
use recrypt::api::{
    AuthHash, CryptoOps, Ed25519Ops, Ed25519Signature, EncryptedMessage, EncryptedTempKey,
    EncryptedValue, HashedValue, KeyGenOps, PrivateKey, PublicSigningKey, RandomBytes,
    SigningKeypair, TransformBlock, TransformKey,
};
use recrypt::nonemptyvec::NonEmptyVec;
use rr_core::{DataKey, KeyKind, PreError, PreScheme, RecordId, SchemeId, Threshold, WireEncoding};
use zeroize::{Zeroize, Zeroizing};

/// The version byte every recrypt encoding of this crate starts with.
pub const WIRE_VERSION: u8 = 1;
/// The most key fragments (copies of the transform key) one delegation may make.
pub const MAX_SHARES: u16 = 255;
/// Length of a master secret's bytes.
pub const MASTER_SECRET_LEN: usize = 32;
/// BLAKE3 key-derivation context of recrypt private keys.
pub const CONTEXT_PRIVATE_KEY: &str = "resilient-records rr-pre recrypt private key v1";
/// BLAKE3 key-derivation context of the Ed25519 seeds of a record's signers.
pub const CONTEXT_SIGNING_SEED: &str = "resilient-records rr-pre recrypt signing seed v1";
/// The reason [`Recrypt`] gives for refusing a threshold m other than 1.
pub const SINGLE_PROXY_REASON: &str =
    "recrypt is single-proxy: any one replica can transform, threshold is 1";

const SCHEME: &str = "recrypt";
const TAG_ACCOUNT: u8 = 0;
const TAG_RECORD: u8 = 1;

/// A G1 point as recrypt encodes it: x then y, 32 bytes each.
const POINT_LEN: usize = 64;
/// An element of Fp12: twelve 32-byte base-field elements.
const FP12_LEN: usize = 384;
/// A point on the twisted curve (G2): four base-field elements.
const G2_LEN: usize = 128;
const HASH_LEN: usize = 32;
const SIGNING_KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;
const KEYPAIR_LEN: usize = 64;

const ACCOUNT_KEY_LEN: usize = 2 + POINT_LEN;
const RECORD_KEY_LEN: usize = ACCOUNT_KEY_LEN + 2 * SIGNING_KEY_LEN;
/// The encrypted-once part every capsule and capsule fragment starts with.
const CORE_LEN: usize = POINT_LEN + FP12_LEN + HASH_LEN;
const BLOCK_LEN: usize = 2 * POINT_LEN + 2 * FP12_LEN;
const CAPSULE_LEN: usize = 1 + CORE_LEN + SIGNING_KEY_LEN + SIGNATURE_LEN;
const TRANSFORM_KEY_LEN: usize =
    2 * POINT_LEN + FP12_LEN + G2_LEN + SIGNING_KEY_LEN + SIGNATURE_LEN;
const KEY_FRAG_LEN: usize = 1 + TRANSFORM_KEY_LEN + KEYPAIR_LEN + SIGNATURE_LEN;
const CAPSULE_FRAG_LEN: usize =
    1 + CORE_LEN + BLOCK_LEN + SIGNING_KEY_LEN + SIGNATURE_LEN + SIGNATURE_LEN;

const DOMAIN_KEY_FRAG: &[u8] = b"rr/recrypt/key-fragment/v1";
const DOMAIN_CAPSULE_FRAG: &[u8] = b"rr/recrypt/capsule-fragment/v1";

type Engine =
    recrypt::api::Recrypt<recrypt::api::Sha256, recrypt::api::Ed25519, RandomBytes<ChaCha20Rng>>;

fn malformed(what: &'static str) -> PreError {
    PreError::Malformed {
        scheme: SCHEME,
        what,
    }
}

/// A recrypt engine drawing its randomness from `rng`: recrypt 0.16 takes a
/// rand 0.10 generator, so the caller's RNG seeds a ChaCha20 one.
fn engine(rng: &mut dyn CryptoRngCore) -> Engine {
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    Engine::new_with_rand(ChaCha20Rng::from_seed(*seed))
}

/// An engine for the operations that draw no randomness (decrypt, public key
/// computation). Its generator has a fixed seed, so it must never be used for
/// anything that does (encrypt, transform, key generation).
fn deterministic_engine() -> &'static Engine {
    static ENGINE: LazyLock<Engine> =
        LazyLock::new(|| Engine::new_with_rand(ChaCha20Rng::from_seed([0; 32])));
    &ENGINE
}

/// recrypt transform encryption (recrypt 0.16, 256-bit curve): single proxy,
/// threshold 1 of n.
///
/// See the [module docs](self) for the licence, how keys, capsules and
/// fragments are made and checked, and the byte encodings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recrypt;

// ---------------------------------------------------------------- keys

/// An owner's master secret: a 32-byte seed every key is derived from.
/// Zeroized on drop; its `Debug` shows nothing.
pub struct RecryptMasterSecret {
    seed: Zeroizing<[u8; MASTER_SECRET_LEN]>,
}

impl std::fmt::Debug for RecryptMasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecryptMasterSecret(<redacted>)")
    }
}

impl RecryptMasterSecret {
    fn derive(
        &self,
        context: &str,
        label: &[u8],
        record: Option<&RecordId>,
    ) -> blake3::OutputReader {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(self.seed.as_ref());
        hasher.update(label);
        if let Some(record) = record {
            hasher.update(record.as_bytes());
        }
        hasher.finalize_xof()
    }

    fn private_key(&self, label: &[u8], record: Option<&RecordId>) -> PrivateKey {
        let mut stream = self.derive(CONTEXT_PRIVATE_KEY, label, record);
        let mut candidate = Zeroizing::new([0u8; 32]);
        loop {
            stream.fill(candidate.as_mut());
            if candidate.iter().all(|b| *b == 0) {
                continue;
            }
            // recrypt reduces private key bytes modulo the base-field prime
            // (about 0.56 * 2^256); a block that comes back unchanged was
            // below it. Rejecting the others keeps the key uniform.
            let key = PrivateKey::new(*candidate);
            if key.bytes() == &*candidate {
                return key;
            }
        }
    }

    fn signer(&self, label: &[u8], record: &RecordId) -> Signer {
        let mut seed = Zeroizing::new([0u8; 32]);
        self.derive(CONTEXT_SIGNING_SEED, label, Some(record))
            .fill(seed.as_mut());
        Signer::from_seed(&seed)
    }
}

/// An Ed25519 key in both forms this backend needs: recrypt's key pair (for
/// recrypt's own signatures) and ed25519-dalek's signing key (for ours).
#[derive(Clone)]
struct Signer {
    recrypt: SigningKeypair,
    dalek: DalekSigningKey,
}

impl Signer {
    fn from_seed(seed: &[u8; 32]) -> Self {
        let dalek = DalekSigningKey::from_bytes(seed);
        let mut pair = Zeroizing::new([0u8; KEYPAIR_LEN]);
        pair[..32].copy_from_slice(seed);
        pair[32..].copy_from_slice(dalek.verifying_key().as_bytes());
        let recrypt = SigningKeypair::from_bytes(&pair)
            .expect("RFC 8032 gives the same public key in ed25519-dalek 2 and 3");
        Self { recrypt, dalek }
    }

    fn from_keypair_bytes(bytes: &[u8]) -> Option<Self> {
        let recrypt = SigningKeypair::from_byte_slice(bytes).ok()?;
        let dalek = DalekSigningKey::from_bytes(bytes[..32].try_into().ok()?);
        Some(Self { recrypt, dalek })
    }

    fn public(&self) -> SigningPublicKey {
        SigningPublicKey(self.dalek.verifying_key())
    }
}

impl PartialEq for Signer {
    fn eq(&self, other: &Self) -> bool {
        self.recrypt == other.recrypt
    }
}

/// An Ed25519 public key that decompresses.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SigningPublicKey(VerifyingKey);

impl SigningPublicKey {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        VerifyingKey::from_bytes(bytes.try_into().ok()?)
            .ok()
            .filter(|k| !k.is_weak())
            .map(Self)
    }

    fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    fn matches(&self, recrypt: &PublicSigningKey) -> bool {
        self.as_bytes() == recrypt.bytes()
    }

    fn verifies(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        self.0
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
            .is_ok()
    }
}

/// The signers of one record.
#[derive(Clone)]
struct RecordSigners {
    delegation: Signer,
    proxy: Signer,
}

/// The public keys of a record's signers.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RecordVerifiers {
    delegation: SigningPublicKey,
    proxy: SigningPublicKey,
}

/// A secret key: an account's, or a record's together with the record's
/// signers. Zeroized on drop (recrypt clears its keys); its `Debug` shows
/// nothing.
#[derive(Clone)]
pub struct RecryptSecretKey {
    key: PrivateKey,
    public: RecryptPublicKey,
    signers: Option<RecordSigners>,
}

impl RecryptSecretKey {
    /// The matching public key.
    pub fn public_key(&self) -> RecryptPublicKey {
        self.public
    }

    /// Whether this is a record key (it can delegate).
    pub fn is_record_key(&self) -> bool {
        self.signers.is_some()
    }
}

impl std::fmt::Debug for RecryptSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_record_key() {
            "record"
        } else {
            "account"
        };
        write!(f, "RecryptSecretKey({kind}, <redacted>)")
    }
}

/// A public key: an account's (one recrypt public key), or a record's (its
/// recrypt public key and the Ed25519 keys of its delegation and proxy
/// signers).
///
/// Encoding: version byte, tag (0 account, 1 record), the point (x then y,
/// 32 bytes each), then for a record the two 32-byte Ed25519 keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecryptPublicKey {
    key: recrypt::api::PublicKey,
    verifiers: Option<RecordVerifiers>,
}

impl RecryptPublicKey {
    /// The recrypt public key: a record's delegating key, or an account's
    /// receiving key.
    pub fn key(&self) -> &recrypt::api::PublicKey {
        &self.key
    }

    /// The Ed25519 key a record's transform keys are signed with; `None` for
    /// an account key.
    pub fn delegation_signing_key(&self) -> Option<&[u8; 32]> {
        self.verifiers.as_ref().map(|v| v.delegation.as_bytes())
    }

    /// The Ed25519 key a record's capsule fragments are signed with; `None`
    /// for an account key.
    pub fn proxy_signing_key(&self) -> Option<&[u8; 32]> {
        self.verifiers.as_ref().map(|v| v.proxy.as_bytes())
    }

    /// Whether this is a record key.
    pub fn is_record_key(&self) -> bool {
        self.verifiers.is_some()
    }

    fn record_verifiers(&self) -> Result<&RecordVerifiers, PreError> {
        self.verifiers
            .as_ref()
            .ok_or_else(|| malformed("record public key (an account key was given)"))
    }

    fn point_bytes(&self) -> [u8; POINT_LEN] {
        point_bytes(&self.key)
    }
}

impl std::fmt::Debug for RecryptPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_record_key() {
            "record"
        } else {
            "account"
        };
        write!(
            f,
            "RecryptPublicKey({kind}, {})",
            short_hex(&self.point_bytes())
        )
    }
}

fn short_hex(bytes: &[u8]) -> String {
    bytes[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn point_bytes(key: &recrypt::api::PublicKey) -> [u8; POINT_LEN] {
    let (x, y) = key.bytes_x_y();
    let mut out = [0u8; POINT_LEN];
    out[..32].copy_from_slice(x);
    out[32..].copy_from_slice(y);
    out
}

impl WireEncoding for RecryptPublicKey {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_KEY_LEN);
        out.push(WIRE_VERSION);
        out.push(if self.is_record_key() {
            TAG_RECORD
        } else {
            TAG_ACCOUNT
        });
        out.extend_from_slice(&self.point_bytes());
        if let Some(v) = &self.verifiers {
            out.extend_from_slice(v.delegation.as_bytes());
            out.extend_from_slice(v.proxy.as_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError> {
        const WHAT: &str = "public key";
        let mut r = Reader::new(bytes, WHAT)?;
        let tag = r.byte()?;
        let key = r.point()?;
        let verifiers = match (tag, r.remaining()) {
            (TAG_ACCOUNT, 0) => None,
            (TAG_RECORD, 64) => Some(RecordVerifiers {
                delegation: r.signing_public_key()?,
                proxy: r.signing_public_key()?,
            }),
            _ => return Err(malformed(WHAT)),
        };
        r.finish()?;
        Ok(Self { key, verifiers })
    }
}

// ---------------------------------------------------------------- decoding

/// Reads a fixed layout field by field, refusing anything short, long or
/// non-canonical as malformed `what`.
struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks the version byte.
    fn new(bytes: &'a [u8], what: &'static str) -> Result<Self, PreError> {
        match bytes {
            [WIRE_VERSION, rest @ ..] => Ok(Self { rest, what }),
            _ => Err(malformed(what)),
        }
    }

    /// Checks the version byte and the exact total length.
    fn fixed(bytes: &'a [u8], len: usize, what: &'static str) -> Result<Self, PreError> {
        if bytes.len() != len {
            return Err(malformed(what));
        }
        Self::new(bytes, what)
    }

    fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn take<const N: usize>(&mut self) -> Result<&'a [u8; N], PreError> {
        if self.rest.len() < N {
            return Err(malformed(self.what));
        }
        let (head, tail) = self.rest.split_at(N);
        self.rest = tail;
        Ok(head.try_into().expect("split at N"))
    }

    fn byte(&mut self) -> Result<u8, PreError> {
        Ok(self.take::<1>()?[0])
    }

    /// A G1 point: canonical coordinates on the curve.
    fn point(&mut self) -> Result<recrypt::api::PublicKey, PreError> {
        let bytes = self.take::<POINT_LEN>()?;
        let key = recrypt::api::PublicKey::new_from_slice((&bytes[..32], &bytes[32..]))
            .map_err(|_| malformed(self.what))?;
        if point_bytes(&key) != *bytes {
            return Err(malformed(self.what));
        }
        Ok(key)
    }

    /// An Fp12 element with every coefficient below the prime.
    fn fp12(&mut self) -> Result<EncryptedTempKey, PreError> {
        let bytes = self.take::<FP12_LEN>()?;
        // recrypt reduces each coefficient; a canonical element comes back
        // unchanged.
        let elem = EncryptedTempKey::new(*bytes);
        if elem.bytes() != bytes {
            return Err(malformed(self.what));
        }
        Ok(elem)
    }

    fn g2(&mut self) -> Result<HashedValue, PreError> {
        let bytes = self.take::<G2_LEN>()?;
        let value = HashedValue::new(*bytes).map_err(|_| malformed(self.what))?;
        if value.bytes() != bytes {
            return Err(malformed(self.what));
        }
        Ok(value)
    }

    fn signing_public_key(&mut self) -> Result<SigningPublicKey, PreError> {
        SigningPublicKey::from_bytes(self.take::<SIGNING_KEY_LEN>()?).ok_or(malformed(self.what))
    }

    fn recrypt_signing_key(&mut self) -> Result<PublicSigningKey, PreError> {
        let key = self.signing_public_key()?;
        Ok(PublicSigningKey::new(*key.as_bytes()))
    }

    fn signature(&mut self) -> Result<[u8; SIGNATURE_LEN], PreError> {
        Ok(*self.take::<SIGNATURE_LEN>()?)
    }

    fn finish(self) -> Result<(), PreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(self.what))
        }
    }
}

// ---------------------------------------------------------------- capsules

/// The encrypted-once part of a recrypt value: what a capsule is, and what a
/// capsule fragment carries with its message transformed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Core {
    ephemeral: recrypt::api::PublicKey,
    message: EncryptedMessage,
    auth_hash: AuthHash,
}

impl Core {
    /// Whether a transformed value came from the capsule with this core: the
    /// transform keeps the ephemeral key and the authentication hash (of that
    /// key and the plaintext), and changes the message.
    fn same_capsule(&self, capsule: &Core) -> bool {
        self.ephemeral == capsule.ephemeral && self.auth_hash == capsule.auth_hash
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, PreError> {
        let ephemeral = r.point()?;
        let message = EncryptedMessage::new(*r.fp12()?.bytes());
        let auth_hash = AuthHash::new(*r.take::<HASH_LEN>()?);
        Ok(Self {
            ephemeral,
            message,
            auth_hash,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&point_bytes(&self.ephemeral));
        out.extend_from_slice(self.message.bytes());
        out.extend_from_slice(self.auth_hash.bytes());
    }
}

/// The bytes recrypt signs for a value: the signing key, then the value's
/// fields in order (recrypt's `Hashable` is plain concatenation).
fn recrypt_signed_bytes(signing_key: &PublicSigningKey, body: &[u8]) -> Vec<u8> {
    [&signing_key.bytes()[..], body].concat()
}

/// An encapsulated data key: recrypt's encryption of a random 384-byte
/// plaintext under the record key, signed with a one-time Ed25519 key.
///
/// Encoding: version byte, ephemeral point (64), encrypted message (384),
/// authentication hash (32), signing key (32), signature (64): 577 bytes.
/// Decoding checks the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct RecryptCapsule {
    core: Core,
    signing_key: PublicSigningKey,
    signature: Ed25519Signature,
}

impl RecryptCapsule {
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CORE_LEN);
        self.core.write(&mut out);
        out
    }

    fn value(&self) -> EncryptedValue {
        EncryptedValue::EncryptedOnceValue {
            ephemeral_public_key: self.core.ephemeral,
            encrypted_message: self.core.message,
            auth_hash: self.core.auth_hash,
            public_signing_key: self.signing_key,
            signature: self.signature,
        }
    }

    fn from_value(value: EncryptedValue) -> Result<Self, PreError> {
        match value {
            EncryptedValue::EncryptedOnceValue {
                ephemeral_public_key,
                encrypted_message,
                auth_hash,
                public_signing_key,
                signature,
            } => Ok(Self {
                core: Core {
                    ephemeral: ephemeral_public_key,
                    message: encrypted_message,
                    auth_hash,
                },
                signing_key: public_signing_key,
                signature,
            }),
            EncryptedValue::TransformedValue { .. } => Err(malformed("capsule")),
        }
    }
}

impl std::fmt::Debug for RecryptCapsule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecryptCapsule({})",
            short_hex(&point_bytes(&self.core.ephemeral))
        )
    }
}

impl WireEncoding for RecryptCapsule {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CAPSULE_LEN);
        out.push(WIRE_VERSION);
        self.core.write(&mut out);
        out.extend_from_slice(self.signing_key.bytes());
        out.extend_from_slice(self.signature.bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError> {
        const WHAT: &str = "capsule";
        let mut r = Reader::fixed(bytes, CAPSULE_LEN, WHAT)?;
        let core = Core::read(&mut r)?;
        let signer = r.signing_public_key()?;
        let signature = r.signature()?;
        r.finish()?;
        let capsule = Self {
            core,
            signing_key: PublicSigningKey::new(*signer.as_bytes()),
            signature: Ed25519Signature::new(signature),
        };
        if !signer.verifies(
            &recrypt_signed_bytes(&capsule.signing_key, &capsule.body()),
            &signature,
        ) {
            return Err(malformed("capsule (its signature does not verify)"));
        }
        Ok(capsule)
    }
}

// ---------------------------------------------------------------- key fragments

/// A key fragment, not yet checked: the record's transform key to the
/// grantee, the record's proxy signing key pair, and the record owner's
/// signature over both. Every fragment of one delegation is the same.
///
/// It holds a secret signing key: zeroized on drop (recrypt clears it), never
/// shown by `Debug`. Send it to a replica only sealed.
///
/// Encoding: version byte; the transform key's ephemeral point (64), grantee
/// point (64), encrypted temp key (384), hashed temp key (128), signing key
/// (32) and recrypt's signature (64); the proxy key pair (64); our signature
/// (64): 865 bytes.
#[derive(Clone, PartialEq)]
pub struct RecryptKeyFrag {
    transform: TransformKey,
    proxy: Signer,
    signature: [u8; SIGNATURE_LEN],
}

impl RecryptKeyFrag {
    /// The bytes our signature covers: everything but the proxy's secret half
    /// and the signature itself, plus the record's public key.
    fn signed_bytes(&self, record_pk: &RecryptPublicKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(DOMAIN_KEY_FRAG.len() + RECORD_KEY_LEN + KEY_FRAG_LEN);
        out.extend_from_slice(DOMAIN_KEY_FRAG);
        out.extend_from_slice(&record_pk.to_bytes());
        write_transform_key(&self.transform, &mut out);
        out.extend_from_slice(self.proxy.public().as_bytes());
        out
    }
}

fn write_transform_key(tk: &TransformKey, out: &mut Vec<u8>) {
    out.extend_from_slice(&point_bytes(tk.ephemeral_public_key()));
    out.extend_from_slice(&point_bytes(tk.to_public_key()));
    out.extend_from_slice(tk.encrypted_temp_key().bytes());
    out.extend_from_slice(tk.hashed_temp_key().bytes());
    out.extend_from_slice(tk.public_signing_key().bytes());
    out.extend_from_slice(tk.signature().bytes());
}

impl std::fmt::Debug for RecryptKeyFrag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecryptKeyFrag(to {}, <redacted>)",
            short_hex(&point_bytes(self.transform.to_public_key()))
        )
    }
}

impl WireEncoding for RecryptKeyFrag {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_FRAG_LEN);
        out.push(WIRE_VERSION);
        write_transform_key(&self.transform, &mut out);
        out.extend_from_slice(self.proxy.recrypt.bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError> {
        const WHAT: &str = "key fragment";
        let mut r = Reader::fixed(bytes, KEY_FRAG_LEN, WHAT)?;
        let ephemeral = r.point()?;
        let to = r.point()?;
        let temp_key = r.fp12()?;
        let hashed = r.g2()?;
        let signing_key = r.recrypt_signing_key()?;
        let tk_signature = Ed25519Signature::new(r.signature()?);
        let proxy = Signer::from_keypair_bytes(r.take::<KEYPAIR_LEN>()?).ok_or(malformed(WHAT))?;
        let signature = r.signature()?;
        r.finish()?;
        Ok(Self {
            transform: TransformKey::new(
                ephemeral,
                to,
                temp_key,
                hashed,
                signing_key,
                tk_signature,
            ),
            proxy,
            signature,
        })
    }
}

/// A key fragment that verified against its record and grantee keys. Holds
/// the same secret as [`RecryptKeyFrag`].
#[derive(Clone, PartialEq)]
pub struct RecryptVerifiedKeyFrag(RecryptKeyFrag);

impl RecryptVerifiedKeyFrag {
    /// The fragment, to send on (the receiver verifies it again).
    pub fn unverify(self) -> RecryptKeyFrag {
        self.0
    }
}

impl std::fmt::Debug for RecryptVerifiedKeyFrag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecryptVerifiedKeyFrag({:?})", self.0)
    }
}

// ---------------------------------------------------------------- capsule fragments

/// A capsule fragment, not yet checked: the capsule transformed once (signed
/// by recrypt with the record's proxy signer) and the proxy signer's
/// signature binding it to the grantee's key.
///
/// Encoding: version byte; the capsule's ephemeral point, message and
/// authentication hash (480); the transform block: its public key (64),
/// encrypted temp key (384), random transform public key (64) and encrypted
/// random temp key (384); the signing key (32); recrypt's signature (64); the
/// binding signature (64): 1537 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RecryptCapsuleFrag {
    core: Core,
    block: TransformBlock,
    signing_key: PublicSigningKey,
    signature: Ed25519Signature,
    binding: [u8; SIGNATURE_LEN],
}

impl RecryptCapsuleFrag {
    /// The value recrypt signed (everything from the core to the block).
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CORE_LEN + BLOCK_LEN);
        self.core.write(&mut out);
        let b = &self.block;
        out.extend_from_slice(&point_bytes(b.public_key()));
        out.extend_from_slice(b.encrypted_temp_key().bytes());
        out.extend_from_slice(&point_bytes(b.random_transform_public_key()));
        out.extend_from_slice(b.encrypted_random_transform_temp_key().bytes());
        out
    }

    fn value(&self) -> EncryptedValue {
        EncryptedValue::TransformedValue {
            ephemeral_public_key: self.core.ephemeral,
            encrypted_message: self.core.message,
            auth_hash: self.core.auth_hash,
            transform_blocks: NonEmptyVec::new_first(self.block),
            public_signing_key: self.signing_key,
            signature: self.signature,
        }
    }
}

/// The bytes the binding signature covers: the grantee's point and recrypt's
/// signature (which covers the whole transformed value). The record is bound
/// by the signer: each record has its own proxy signer.
fn binding_bytes(grantee: &recrypt::api::PublicKey, signature: &Ed25519Signature) -> Vec<u8> {
    [
        DOMAIN_CAPSULE_FRAG,
        &point_bytes(grantee)[..],
        &signature.bytes()[..],
    ]
    .concat()
}

impl std::fmt::Debug for RecryptCapsuleFrag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecryptCapsuleFrag({})",
            short_hex(&point_bytes(self.block.random_transform_public_key()))
        )
    }
}

impl WireEncoding for RecryptCapsuleFrag {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CAPSULE_FRAG_LEN);
        out.push(WIRE_VERSION);
        out.extend_from_slice(&self.body());
        out.extend_from_slice(self.signing_key.bytes());
        out.extend_from_slice(self.signature.bytes());
        out.extend_from_slice(&self.binding);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError> {
        const WHAT: &str = "capsule fragment";
        let mut r = Reader::fixed(bytes, CAPSULE_FRAG_LEN, WHAT)?;
        let core = Core::read(&mut r)?;
        let public_key = r.point()?;
        let temp_key = r.fp12()?;
        let random_public_key = r.point()?;
        let random_temp_key = r.fp12()?;
        let block =
            TransformBlock::new(&public_key, &temp_key, &random_public_key, &random_temp_key)
                .map_err(|_| malformed(WHAT))?;
        let signing_key = r.recrypt_signing_key()?;
        let signature = Ed25519Signature::new(r.signature()?);
        let binding = r.signature()?;
        r.finish()?;
        Ok(Self {
            core,
            block,
            signing_key,
            signature,
            binding,
        })
    }
}

/// A capsule fragment that verified against its capsule and keys.
#[derive(Clone, PartialEq, Eq)]
pub struct RecryptVerifiedCapsuleFrag(RecryptCapsuleFrag);

impl RecryptVerifiedCapsuleFrag {
    /// The fragment, to send on (the receiver verifies it again).
    pub fn unverify(self) -> RecryptCapsuleFrag {
        self.0
    }
}

impl std::fmt::Debug for RecryptVerifiedCapsuleFrag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecryptVerifiedCapsuleFrag({:?})", self.0)
    }
}

// ---------------------------------------------------------------- the scheme

/// The data key of a recrypt plaintext: recrypt's own `derive_symmetric_key`
/// (SHA-256 of the plaintext).
fn data_key(plaintext: &recrypt::api::Plaintext) -> DataKey {
    let mut bytes: [u8; 32] = deterministic_engine()
        .derive_symmetric_key(plaintext)
        .into();
    let key = DataKey::from_bytes(bytes);
    bytes.zeroize();
    key
}

impl Recrypt {
    fn key_pair(&self, key: PrivateKey, signers: Option<RecordSigners>) -> RecryptSecretKey {
        let point = deterministic_engine()
            .compute_public_key(&key)
            .expect("a non-zero private key has a public key");
        let public = RecryptPublicKey {
            key: point,
            verifiers: signers.as_ref().map(|s| RecordVerifiers {
                delegation: s.delegation.public(),
                proxy: s.proxy.public(),
            }),
        };
        RecryptSecretKey {
            key,
            public,
            signers,
        }
    }
}

impl PreScheme for Recrypt {
    const ID: SchemeId = SchemeId::RECRYPT;
    type MasterSecret = RecryptMasterSecret;
    type SecretKey = RecryptSecretKey;
    type PublicKey = RecryptPublicKey;
    type Capsule = RecryptCapsule;
    type KeyFrag = RecryptKeyFrag;
    type VerifiedKeyFrag = RecryptVerifiedKeyFrag;
    type CapsuleFrag = RecryptCapsuleFrag;
    type VerifiedCapsuleFrag = RecryptVerifiedCapsuleFrag;

    fn key_kind(&self, pk: &Self::PublicKey) -> Option<KeyKind> {
        Some(if pk.is_record_key() {
            KeyKind::Record
        } else {
            KeyKind::Account
        })
    }

    fn check_threshold(&self, t: Threshold) -> Result<(), PreError> {
        let bad = |reason| {
            Err(PreError::BadThreshold {
                m: t.m,
                n: t.n,
                reason,
            })
        };
        if t.m != 1 {
            bad(SINGLE_PROXY_REASON)
        } else if t.n == 0 {
            bad("n must be at least 1")
        } else if t.n > MAX_SHARES {
            bad("n must be at most 255")
        } else {
            Ok(())
        }
    }

    fn generate_master(&self, rng: &mut dyn CryptoRngCore) -> RecryptMasterSecret {
        let mut seed = Zeroizing::new([0u8; MASTER_SECRET_LEN]);
        rng.fill_bytes(seed.as_mut());
        RecryptMasterSecret { seed }
    }

    fn master_to_bytes(&self, master: &RecryptMasterSecret) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(master.seed.to_vec())
    }

    fn master_from_bytes(&self, bytes: &[u8]) -> Result<RecryptMasterSecret, PreError> {
        if bytes.len() != MASTER_SECRET_LEN {
            return Err(malformed("master secret"));
        }
        let mut seed = Zeroizing::new([0u8; MASTER_SECRET_LEN]);
        seed.copy_from_slice(bytes);
        Ok(RecryptMasterSecret { seed })
    }

    fn account_key(&self, master: &RecryptMasterSecret) -> (RecryptSecretKey, RecryptPublicKey) {
        let sk = self.key_pair(master.private_key(b"account", None), None);
        let pk = sk.public;
        (sk, pk)
    }

    fn record_key(
        &self,
        master: &RecryptMasterSecret,
        record: &RecordId,
    ) -> (RecryptSecretKey, RecryptPublicKey) {
        let signers = RecordSigners {
            delegation: master.signer(b"delegation", record),
            proxy: master.signer(b"proxy", record),
        };
        let sk = self.key_pair(master.private_key(b"record", Some(record)), Some(signers));
        let pk = sk.public;
        (sk, pk)
    }

    fn encapsulate(
        &self,
        rng: &mut dyn CryptoRngCore,
        pk: &RecryptPublicKey,
    ) -> Result<(RecryptCapsule, DataKey), PreError> {
        let engine = engine(rng);
        let plaintext = engine.gen_plaintext();
        let signer = engine.generate_ed25519_key_pair();
        let value = engine
            .encrypt(&plaintext, &pk.key, &signer)
            .map_err(|_| PreError::OpenFailed)?;
        Ok((RecryptCapsule::from_value(value)?, data_key(&plaintext)))
    }

    fn open(&self, sk: &RecryptSecretKey, capsule: &RecryptCapsule) -> Result<DataKey, PreError> {
        let plaintext = deterministic_engine()
            .decrypt(capsule.value(), &sk.key)
            .map_err(|_| PreError::OpenFailed)?;
        Ok(data_key(&plaintext))
    }

    fn delegate(
        &self,
        rng: &mut dyn CryptoRngCore,
        record_sk: &RecryptSecretKey,
        grantee_pk: &RecryptPublicKey,
        t: Threshold,
    ) -> Result<Vec<RecryptKeyFrag>, PreError> {
        self.check_threshold(t)?;
        let signers = record_sk
            .signers
            .as_ref()
            .ok_or_else(|| malformed("record secret key (an account key was given)"))?;
        let transform = engine(rng)
            .generate_transform_key(&record_sk.key, &grantee_pk.key, &signers.delegation.recrypt)
            .map_err(|_| malformed("grantee public key"))?;
        let mut kfrag = RecryptKeyFrag {
            transform,
            proxy: signers.proxy.clone(),
            signature: [0; SIGNATURE_LEN],
        };
        kfrag.signature = signers
            .delegation
            .dalek
            .sign(&kfrag.signed_bytes(&record_sk.public))
            .to_bytes();
        // Single proxy: every replica gets the same transform key.
        Ok(vec![kfrag; usize::from(t.n)])
    }

    fn verify_key_frag(
        &self,
        kfrag: RecryptKeyFrag,
        record_pk: &RecryptPublicKey,
        grantee_pk: &RecryptPublicKey,
    ) -> Result<RecryptVerifiedKeyFrag, PreError> {
        let verifiers = record_pk.record_verifiers()?;
        let tk = &kfrag.transform;
        let ok = point_bytes(tk.to_public_key()) == grantee_pk.point_bytes()
            && verifiers.delegation.matches(tk.public_signing_key())
            && kfrag.proxy.public() == verifiers.proxy
            && verifiers
                .delegation
                .verifies(&kfrag.signed_bytes(record_pk), &kfrag.signature);
        if ok {
            Ok(RecryptVerifiedKeyFrag(kfrag))
        } else {
            Err(PreError::InvalidKeyFrag)
        }
    }

    fn verified_key_frag_to_bytes(&self, kfrag: &RecryptVerifiedKeyFrag) -> Vec<u8> {
        kfrag.0.to_bytes()
    }

    fn verified_key_frag_from_trusted_bytes(
        &self,
        bytes: &[u8],
    ) -> Result<RecryptVerifiedKeyFrag, PreError> {
        RecryptKeyFrag::from_bytes(bytes).map(RecryptVerifiedKeyFrag)
    }

    fn reencrypt(
        &self,
        rng: &mut dyn CryptoRngCore,
        capsule: &RecryptCapsule,
        kfrag: &RecryptVerifiedKeyFrag,
    ) -> Result<RecryptCapsuleFrag, PreError> {
        let kfrag = &kfrag.0;
        // recrypt checks the capsule's and the transform key's signatures;
        // both were checked already (at decoding and at verification).
        let transformed = engine(rng)
            .transform(
                capsule.value(),
                kfrag.transform.clone(),
                &kfrag.proxy.recrypt,
            )
            .map_err(|_| PreError::InvalidKeyFrag)?;
        let EncryptedValue::TransformedValue {
            ephemeral_public_key,
            encrypted_message,
            auth_hash,
            transform_blocks,
            public_signing_key,
            signature,
        } = transformed
        else {
            return Err(PreError::InvalidKeyFrag);
        };
        let mut cfrag = RecryptCapsuleFrag {
            core: Core {
                ephemeral: ephemeral_public_key,
                message: encrypted_message,
                auth_hash,
            },
            block: *transform_blocks.first(),
            signing_key: public_signing_key,
            signature,
            binding: [0; SIGNATURE_LEN],
        };
        cfrag.binding = kfrag
            .proxy
            .dalek
            .sign(&binding_bytes(
                kfrag.transform.to_public_key(),
                &cfrag.signature,
            ))
            .to_bytes();
        Ok(cfrag)
    }

    fn verify_capsule_frag(
        &self,
        cfrag: RecryptCapsuleFrag,
        capsule: &RecryptCapsule,
        record_pk: &RecryptPublicKey,
        grantee_pk: &RecryptPublicKey,
    ) -> Result<RecryptVerifiedCapsuleFrag, PreError> {
        let verifiers = record_pk.record_verifiers()?;
        let ok = cfrag.core.same_capsule(&capsule.core)
            && verifiers.proxy.matches(&cfrag.signing_key)
            && verifiers.proxy.verifies(
                &recrypt_signed_bytes(&cfrag.signing_key, &cfrag.body()),
                cfrag.signature.bytes(),
            )
            && verifiers.proxy.verifies(
                &binding_bytes(&grantee_pk.key, &cfrag.signature),
                &cfrag.binding,
            );
        if ok {
            Ok(RecryptVerifiedCapsuleFrag(cfrag))
        } else {
            Err(PreError::InvalidCapsuleFrag)
        }
    }

    fn open_reencrypted(
        &self,
        grantee_sk: &RecryptSecretKey,
        record_pk: &RecryptPublicKey,
        capsule: &RecryptCapsule,
        cfrags: &[RecryptVerifiedCapsuleFrag],
    ) -> Result<DataKey, PreError> {
        let Some(first) = cfrags.first() else {
            return Err(PreError::NotEnoughFragments { have: 0, need: 1 });
        };
        // Verified fragments, but perhaps against another capsule or record:
        // all must belong to this one.
        let proxy = record_pk.record_verifiers()?.proxy;
        if cfrags
            .iter()
            .any(|c| !c.0.core.same_capsule(&capsule.core) || !proxy.matches(&c.0.signing_key))
        {
            return Err(PreError::OpenFailed);
        }
        let plaintext = deterministic_engine()
            .decrypt(first.0.value(), &grantee_sk.key)
            .map_err(|_| PreError::OpenFailed)?;
        Ok(data_key(&plaintext))
    }
}
