//! [`Umbral`]: the [`PreScheme`] of umbral-pre 0.11 (threshold proxy
//! re-encryption over secp256k1).
//!
//! # Keys
//!
//! The owner's master secret is a 32-byte seed for an umbral
//! [`SecretKeyFactory`]. Every key is derived from it under a label:
//!
//! | key | label |
//! |---|---|
//! | account key (grants re-encrypt to it) | `rr/account/v1` |
//! | record key (the capsule is made for it) | `rr/record/v1/` ‖ record id |
//! | record signer (signs the record's key fragments) | `rr/record-signer/v1/` ‖ record id |
//!
//! so each record has its own key pair, and delegating one record exposes no
//! other. Umbral key fragments are signed; the record's public key therefore
//! carries both the delegating key and the signer's verifying key, and
//! fragments are checked against both.
//!
//! # Capsules
//!
//! umbral-pre encrypts bytes, not keys: [`PreScheme::encapsulate`] draws a
//! fresh 32-byte data key and encrypts it with umbral's DEM. A
//! [`UmbralCapsule`] is the umbral capsule together with that 72-byte wrapped
//! key.
//!
//! # Encodings
//!
//! Every [`WireEncoding`] starts with the version byte [`WIRE_VERSION`]. Keys
//! are compressed points; capsules and fragments use umbral-pre's own
//! (MessagePack) serialization, which checks points and the capsule's
//! self-signature, and are refused unless they re-encode to the exact same
//! bytes.

use rand_core::CryptoRngCore;
use rr_core::{DataKey, KeyKind, PreError, PreScheme, RecordId, SchemeId, Threshold, WireEncoding};
use umbral_pre::{DefaultDeserialize, DefaultSerialize, SecretKeyFactory, Signer};
use zeroize::Zeroizing;

/// The version byte every Umbral encoding of this crate starts with.
pub const WIRE_VERSION: u8 = 1;
/// The most key fragments one delegation may make.
pub const MAX_SHARES: u16 = 255;
/// Length of a master secret's bytes.
pub const MASTER_SECRET_LEN: usize = 32;
/// Length of a compressed secp256k1 point.
const POINT_LEN: usize = 33;
/// Length of the data key as wrapped by umbral's DEM: a 24-byte nonce, the
/// 32-byte key and a 16-byte tag.
const WRAPPED_KEY_LEN: usize = 24 + 32 + 16;

const SCHEME: &str = "umbral";
const TAG_ACCOUNT: u8 = 0;
const TAG_RECORD: u8 = 1;

const LABEL_ACCOUNT: &[u8] = b"rr/account/v1";
const LABEL_RECORD: &[u8] = b"rr/record/v1/";
const LABEL_RECORD_SIGNER: &[u8] = b"rr/record-signer/v1/";

fn malformed(what: &'static str) -> PreError {
    PreError::Malformed {
        scheme: SCHEME,
        what,
    }
}

fn label(prefix: &[u8], record: &RecordId) -> Vec<u8> {
    [prefix, record.as_bytes()].concat()
}

/// Umbral proxy re-encryption (umbral-pre 0.11).
///
/// See the [module docs](self) for how keys, capsules and encodings are made.
#[derive(Clone, Copy, Debug, Default)]
pub struct Umbral;

/// An owner's master secret: a 32-byte seed every key is derived from.
/// Zeroized on drop; its `Debug` shows nothing.
pub struct UmbralMasterSecret {
    seed: Zeroizing<[u8; MASTER_SECRET_LEN]>,
    factory: SecretKeyFactory,
}

impl UmbralMasterSecret {
    fn from_seed(seed: Zeroizing<[u8; MASTER_SECRET_LEN]>) -> Self {
        let factory = SecretKeyFactory::from_secure_randomness(seed.as_ref())
            .expect("the seed has the factory's seed size");
        Self { seed, factory }
    }
}

impl std::fmt::Debug for UmbralMasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UmbralMasterSecret(<redacted>)")
    }
}

/// A secret key: an account's, or a record's together with the record's
/// signer. Zeroized on drop; its `Debug` shows nothing.
#[derive(Clone)]
pub struct UmbralSecretKey {
    key: umbral_pre::SecretKey,
    // The signer, not its secret key: making a signer computes its public
    // key, which would cost every delegation a scalar multiplication.
    signer: Option<Signer>,
}

impl UmbralSecretKey {
    /// The matching public key.
    pub fn public_key(&self) -> UmbralPublicKey {
        UmbralPublicKey {
            key: self.key.public_key(),
            verifying: self.signer.as_ref().map(|s| s.verifying_key()),
        }
    }

    /// Whether this is a record key (it can delegate).
    pub fn is_record_key(&self) -> bool {
        self.signer.is_some()
    }
}

impl std::fmt::Debug for UmbralSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_record_key() {
            "record"
        } else {
            "account"
        };
        write!(f, "UmbralSecretKey({kind}, <redacted>)")
    }
}

/// A public key: an account's (one point), or a record's (its delegating key
/// and the verifying key its key fragments are signed with).
///
/// Encoding: version byte, tag (0 account, 1 record), then the compressed
/// point(s), 33 bytes each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UmbralPublicKey {
    key: umbral_pre::PublicKey,
    verifying: Option<umbral_pre::PublicKey>,
}

impl UmbralPublicKey {
    /// The umbral public key: the delegating key of a record, or the
    /// receiving key of an account.
    pub fn key(&self) -> &umbral_pre::PublicKey {
        &self.key
    }

    /// The key a record's key fragments are signed with; `None` for an
    /// account key.
    pub fn verifying_key(&self) -> Option<&umbral_pre::PublicKey> {
        self.verifying.as_ref()
    }

    /// Whether this is a record key.
    pub fn is_record_key(&self) -> bool {
        self.verifying.is_some()
    }

    /// The delegating and verifying keys of a record key.
    fn record_keys(&self) -> Result<(&umbral_pre::PublicKey, &umbral_pre::PublicKey), PreError> {
        match &self.verifying {
            Some(v) => Ok((&self.key, v)),
            None => Err(malformed("record public key (an account key was given)")),
        }
    }
}

fn point_from(bytes: &[u8]) -> Result<umbral_pre::PublicKey, PreError> {
    let key = umbral_pre::PublicKey::try_from_compressed_bytes(bytes)
        .map_err(|_| malformed("public key"))?;
    // umbral-pre also takes a point whose SEC1 tag byte is not the one it
    // writes (found by fuzzing): one key, two encodings. Only the canonical
    // one is accepted, so a key's bytes name it.
    if key.to_compressed_bytes().as_ref() != bytes {
        return Err(malformed("public key"));
    }
    Ok(key)
}

impl WireEncoding for UmbralPublicKey {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 2 * POINT_LEN);
        out.push(WIRE_VERSION);
        out.push(if self.verifying.is_some() {
            TAG_RECORD
        } else {
            TAG_ACCOUNT
        });
        out.extend_from_slice(&self.key.to_compressed_bytes());
        if let Some(v) = &self.verifying {
            out.extend_from_slice(&v.to_compressed_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError> {
        match bytes {
            [WIRE_VERSION, TAG_ACCOUNT, key @ ..] if key.len() == POINT_LEN => Ok(Self {
                key: point_from(key)?,
                verifying: None,
            }),
            [WIRE_VERSION, TAG_RECORD, keys @ ..] if keys.len() == 2 * POINT_LEN => Ok(Self {
                key: point_from(&keys[..POINT_LEN])?,
                verifying: Some(point_from(&keys[POINT_LEN..])?),
            }),
            _ => Err(malformed("public key")),
        }
    }
}

/// Decodes an umbral value from its MessagePack bytes, refusing any encoding
/// that is not exactly the one it re-encodes to (trailing bytes, alternative
/// integer widths, ...).
fn decode_canonical<T>(bytes: &[u8], what: &'static str) -> Result<T, PreError>
where
    T: for<'de> DefaultDeserialize<'de> + DefaultSerialize,
{
    let value = T::from_bytes(bytes).map_err(|_| malformed(what))?;
    match value.to_bytes() {
        Ok(again) if *again == *bytes => Ok(value),
        _ => Err(malformed(what)),
    }
}

fn encode<T: DefaultSerialize>(value: &T) -> Box<[u8]> {
    value
        .to_bytes()
        .expect("umbral values serialize to MessagePack in memory")
}

fn versioned(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(WIRE_VERSION);
    out.extend_from_slice(body);
    out
}

fn unversioned<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a [u8], PreError> {
    match bytes {
        [WIRE_VERSION, body @ ..] => Ok(body),
        _ => Err(malformed(what)),
    }
}

/// `Debug` as umbral's `Display`: the type and a short public id, never the
/// fragment's key share or its internals.
macro_rules! debug_as_display {
    ($($ty:ident => $field:tt),* $(,)?) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.$field)
            }
        }
    )*};
}

debug_as_display!(
    UmbralCapsule => capsule,
    UmbralKeyFrag => 0,
    UmbralVerifiedKeyFrag => 0,
    UmbralCapsuleFrag => 0,
    UmbralVerifiedCapsuleFrag => 0,
);

/// An encapsulated data key: the umbral capsule and the data key encrypted
/// under it.
///
/// Encoding: version byte, capsule length (u16 LE), the capsule, then the
/// 72-byte wrapped key.
#[derive(Clone, PartialEq)]
pub struct UmbralCapsule {
    capsule: umbral_pre::Capsule,
    wrapped_key: Box<[u8]>,
}

impl UmbralCapsule {
    /// The umbral capsule.
    pub fn capsule(&self) -> &umbral_pre::Capsule {
        &self.capsule
    }
}

impl WireEncoding for UmbralCapsule {
    fn to_bytes(&self) -> Vec<u8> {
        let capsule = encode(&self.capsule);
        let len = u16::try_from(capsule.len()).expect("a capsule is about 100 bytes");
        let mut out = Vec::with_capacity(3 + capsule.len() + self.wrapped_key.len());
        out.push(WIRE_VERSION);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&capsule);
        out.extend_from_slice(&self.wrapped_key);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError> {
        const WHAT: &str = "capsule";
        let [len_lo, len_hi, rest @ ..] = unversioned(bytes, WHAT)? else {
            return Err(malformed(WHAT));
        };
        let len = u16::from_le_bytes([*len_lo, *len_hi]) as usize;
        if rest.len() != len + WRAPPED_KEY_LEN {
            return Err(malformed(WHAT));
        }
        let (capsule, wrapped_key) = rest.split_at(len);
        Ok(Self {
            capsule: decode_canonical(capsule, WHAT)?,
            wrapped_key: wrapped_key.into(),
        })
    }
}

/// A key fragment, not yet checked. Encoding: version byte, then umbral's.
#[derive(Clone, PartialEq)]
pub struct UmbralKeyFrag(umbral_pre::KeyFrag);

impl WireEncoding for UmbralKeyFrag {
    fn to_bytes(&self) -> Vec<u8> {
        versioned(&encode(&self.0))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError> {
        const WHAT: &str = "key fragment";
        Ok(Self(decode_canonical(unversioned(bytes, WHAT)?, WHAT)?))
    }
}

/// A key fragment that verified against its record and grantee keys.
#[derive(Clone, PartialEq)]
pub struct UmbralVerifiedKeyFrag(umbral_pre::VerifiedKeyFrag);

impl UmbralVerifiedKeyFrag {
    /// The fragment, to send on (the receiver verifies it again).
    pub fn unverify(self) -> UmbralKeyFrag {
        UmbralKeyFrag(self.0.unverify())
    }
}

/// A capsule fragment, not yet checked. Encoding: version byte, then umbral's.
#[derive(Clone, PartialEq)]
pub struct UmbralCapsuleFrag(umbral_pre::CapsuleFrag);

impl WireEncoding for UmbralCapsuleFrag {
    fn to_bytes(&self) -> Vec<u8> {
        versioned(&encode(&self.0))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PreError> {
        const WHAT: &str = "capsule fragment";
        Ok(Self(decode_canonical(unversioned(bytes, WHAT)?, WHAT)?))
    }
}

/// A capsule fragment that verified against its capsule and keys.
#[derive(Clone, PartialEq)]
pub struct UmbralVerifiedCapsuleFrag(umbral_pre::VerifiedCapsuleFrag);

impl UmbralVerifiedCapsuleFrag {
    /// The fragment, to send on (the receiver verifies it again).
    pub fn unverify(self) -> UmbralCapsuleFrag {
        UmbralCapsuleFrag(self.0.unverify())
    }
}

/// The data key out of the DEM plaintext.
fn data_key(plaintext: Box<[u8]>) -> Result<DataKey, PreError> {
    let plaintext = Zeroizing::new(plaintext);
    let bytes: [u8; 32] = plaintext
        .as_ref()
        .try_into()
        .map_err(|_| PreError::OpenFailed)?;
    let key = DataKey::from_bytes(bytes);
    // `bytes` is a copy on the stack; clear it too.
    let mut bytes = bytes;
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(key)
}

impl PreScheme for Umbral {
    const ID: SchemeId = SchemeId::UMBRAL;
    type MasterSecret = UmbralMasterSecret;
    type SecretKey = UmbralSecretKey;
    type PublicKey = UmbralPublicKey;
    type Capsule = UmbralCapsule;
    type KeyFrag = UmbralKeyFrag;
    type VerifiedKeyFrag = UmbralVerifiedKeyFrag;
    type CapsuleFrag = UmbralCapsuleFrag;
    type VerifiedCapsuleFrag = UmbralVerifiedCapsuleFrag;

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
        if t.m == 0 {
            bad("m must be at least 1")
        } else if t.m > t.n {
            bad("m must not exceed n")
        } else if t.n > MAX_SHARES {
            bad("n must be at most 255")
        } else {
            Ok(())
        }
    }

    fn generate_master(&self, rng: &mut dyn CryptoRngCore) -> UmbralMasterSecret {
        let mut seed = Zeroizing::new([0u8; MASTER_SECRET_LEN]);
        rng.fill_bytes(seed.as_mut());
        UmbralMasterSecret::from_seed(seed)
    }

    fn master_to_bytes(&self, master: &UmbralMasterSecret) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(master.seed.to_vec())
    }

    fn master_from_bytes(&self, bytes: &[u8]) -> Result<UmbralMasterSecret, PreError> {
        let mut seed = Zeroizing::new([0u8; MASTER_SECRET_LEN]);
        if bytes.len() != MASTER_SECRET_LEN {
            return Err(malformed("master secret"));
        }
        seed.copy_from_slice(bytes);
        Ok(UmbralMasterSecret::from_seed(seed))
    }

    fn account_key(&self, master: &UmbralMasterSecret) -> (UmbralSecretKey, UmbralPublicKey) {
        let sk = UmbralSecretKey {
            key: master.factory.make_key(LABEL_ACCOUNT),
            signer: None,
        };
        let pk = sk.public_key();
        (sk, pk)
    }

    fn record_key(
        &self,
        master: &UmbralMasterSecret,
        record: &RecordId,
    ) -> (UmbralSecretKey, UmbralPublicKey) {
        let sk = UmbralSecretKey {
            key: master.factory.make_key(&label(LABEL_RECORD, record)),
            signer: Some(Signer::new(
                master.factory.make_key(&label(LABEL_RECORD_SIGNER, record)),
            )),
        };
        let pk = sk.public_key();
        (sk, pk)
    }

    fn encapsulate(
        &self,
        mut rng: &mut dyn CryptoRngCore,
        pk: &UmbralPublicKey,
    ) -> Result<(UmbralCapsule, DataKey), PreError> {
        let key = DataKey::generate(rng);
        let (capsule, wrapped_key) = umbral_pre::encrypt_with_rng(&mut rng, &pk.key, key.expose())
            .map_err(|_| PreError::OpenFailed)?;
        Ok((
            UmbralCapsule {
                capsule,
                wrapped_key,
            },
            key,
        ))
    }

    fn open(&self, sk: &UmbralSecretKey, capsule: &UmbralCapsule) -> Result<DataKey, PreError> {
        let plaintext =
            umbral_pre::decrypt_original(&sk.key, &capsule.capsule, &capsule.wrapped_key)
                .map_err(|_| PreError::OpenFailed)?;
        data_key(plaintext)
    }

    fn delegate(
        &self,
        mut rng: &mut dyn CryptoRngCore,
        record_sk: &UmbralSecretKey,
        grantee_pk: &UmbralPublicKey,
        t: Threshold,
    ) -> Result<Vec<UmbralKeyFrag>, PreError> {
        self.check_threshold(t)?;
        let signer = record_sk
            .signer
            .as_ref()
            .ok_or_else(|| malformed("record secret key (an account key was given)"))?;
        let kfrags = umbral_pre::generate_kfrags_with_rng(
            &mut rng,
            &record_sk.key,
            &grantee_pk.key,
            signer,
            t.m.into(),
            t.n.into(),
            true,
            true,
        );
        Ok(kfrags
            .into_vec()
            .into_iter()
            .map(|k| UmbralKeyFrag(k.unverify()))
            .collect())
    }

    fn verify_key_frag(
        &self,
        kfrag: UmbralKeyFrag,
        record_pk: &UmbralPublicKey,
        grantee_pk: &UmbralPublicKey,
    ) -> Result<UmbralVerifiedKeyFrag, PreError> {
        let (delegating, verifying) = record_pk.record_keys()?;
        let verified = kfrag
            .0
            .verify(verifying, Some(delegating), Some(&grantee_pk.key))
            .map_err(|_| PreError::InvalidKeyFrag)?;
        // `KeyFrag::verify` checks the fragment's signature for the proxy
        // only; the one for the receiver travels into every capsule fragment
        // and only the grantee checks it. A trial re-encryption of a
        // throwaway capsule checks it here, so a fragment that would give
        // capsule fragments no grantee accepts is refused at delivery, not
        // at every retrieval (rr-fuzz finding 7).
        let mut rng = rand_core::OsRng;
        let (capsule, _) = umbral_pre::encrypt_with_rng(&mut rng, delegating, &[])
            .map_err(|_| PreError::InvalidKeyFrag)?;
        umbral_pre::reencrypt_with_rng(&mut rng, &capsule, verified.clone())
            .unverify()
            .verify(&capsule, verifying, delegating, &grantee_pk.key)
            .map_err(|_| PreError::InvalidKeyFrag)?;
        Ok(UmbralVerifiedKeyFrag(verified))
    }

    fn verified_key_frag_to_bytes(&self, kfrag: &UmbralVerifiedKeyFrag) -> Vec<u8> {
        versioned(&encode(&kfrag.0))
    }

    fn verified_key_frag_from_trusted_bytes(
        &self,
        bytes: &[u8],
    ) -> Result<UmbralVerifiedKeyFrag, PreError> {
        let kfrag = UmbralKeyFrag::from_bytes(bytes)?;
        Ok(UmbralVerifiedKeyFrag(kfrag.0.skip_verification()))
    }

    fn reencrypt(
        &self,
        mut rng: &mut dyn CryptoRngCore,
        capsule: &UmbralCapsule,
        kfrag: &UmbralVerifiedKeyFrag,
    ) -> Result<UmbralCapsuleFrag, PreError> {
        let cfrag = umbral_pre::reencrypt_with_rng(&mut rng, &capsule.capsule, kfrag.0.clone());
        Ok(UmbralCapsuleFrag(cfrag.unverify()))
    }

    fn verify_capsule_frag(
        &self,
        cfrag: UmbralCapsuleFrag,
        capsule: &UmbralCapsule,
        record_pk: &UmbralPublicKey,
        grantee_pk: &UmbralPublicKey,
    ) -> Result<UmbralVerifiedCapsuleFrag, PreError> {
        let (delegating, verifying) = record_pk.record_keys()?;
        cfrag
            .0
            .verify(&capsule.capsule, verifying, delegating, &grantee_pk.key)
            .map(UmbralVerifiedCapsuleFrag)
            .map_err(|_| PreError::InvalidCapsuleFrag)
    }

    fn open_reencrypted(
        &self,
        grantee_sk: &UmbralSecretKey,
        record_pk: &UmbralPublicKey,
        capsule: &UmbralCapsule,
        cfrags: &[UmbralVerifiedCapsuleFrag],
    ) -> Result<DataKey, PreError> {
        if cfrags.is_empty() {
            return Err(PreError::NotEnoughFragments { have: 0, need: 1 });
        }
        let plaintext = umbral_pre::decrypt_reencrypted(
            &grantee_sk.key,
            &record_pk.key,
            &capsule.capsule,
            cfrags.iter().map(|c| c.0.clone()),
            &capsule.wrapped_key,
        )
        .map_err(|_| PreError::OpenFailed)?;
        data_key(plaintext)
    }
}
