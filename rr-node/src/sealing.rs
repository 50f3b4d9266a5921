//! Key fragments sealed to one replica with HPKE (RFC 9180), and kept
//! encrypted at rest.
//!
//! A grant's owner seals key fragment `i` to replica `i`'s X25519 sealing key
//! (base mode, `DHKEM(X25519, HKDF-SHA256)`, `HKDF-SHA256`,
//! `ChaCha20-Poly1305`), commits to the *sealed* bytes in the `Grant` call,
//! and delivers them to that replica alone. Only replica `i` can open them;
//! the ledger holds commitments only. The associated data binds a sealed
//! fragment to its record, grantee and replica, so it cannot be replayed into
//! another grant's slot.
//!
//! Sealed bytes: `version (1) ‖ encapsulated key (32) ‖ ciphertext`.
//!
//! The replica keeps the fragment it accepted encrypted at rest
//! (XChaCha20-Poly1305 under a key derived from its sealing key, the grant id
//! as associated data), so a copied `fragments.redb` reveals nothing without
//! the passphrase-sealed replica key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::{OsRng, RngCore};
use rr_core::{AccountId, GrantId, RecordId, ReplicaId};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const INFO: &[u8] = b"resilient-records/sealed-key-fragment/v1";
const ENCAPPED_LEN: usize = 32;
const AT_REST_NONCE: usize = 24;

/// Errors of sealing and opening.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The sealed bytes are not in the format (or another version).
    #[error("the sealed key fragment is malformed: {0}")]
    Malformed(&'static str),
    /// The fragment did not open: sealed to another replica, for another
    /// record or grantee, or altered.
    #[error("the sealed key fragment does not open with this replica's key (sealed to another replica or slot, or altered)")]
    Open,
    /// A public sealing key is not 32 bytes of hex / not a valid key.
    #[error("invalid sealing public key: {0}")]
    BadPublicKey(String),
}

/// A replica's X25519 public sealing key, as clients and `cluster.json` know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SealingPublicKey(pub [u8; 32]);

impl SealingPublicKey {
    /// Hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, SealError> {
        let bytes: [u8; 32] = hex::decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SealError::BadPublicKey(format!("{s:?} is not 64 hex digits")))?;
        <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|e| SealError::BadPublicKey(e.to_string()))?;
        Ok(Self(bytes))
    }
}

/// A replica's secret sealing key. Zeroized on drop; never printed.
pub struct SealingKey {
    secret: <X25519HkdfSha256 as hpke::Kem>::PrivateKey,
    public: SealingPublicKey,
    at_rest: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey")
            .field("public", &self.public.to_hex())
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    /// The key derived from 32 bytes of secret seed (a replica derives it
    /// from its keystore identity's root seed).
    pub fn derive(seed: &[u8; 32]) -> Self {
        let ikm = Zeroizing::new(blake3::derive_key(
            "resilient-records replica hpke x25519 v1",
            seed,
        ));
        let (secret, public) = X25519HkdfSha256::derive_keypair(&ikm[..]);
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&public.to_bytes());
        let at_rest = Zeroizing::new(blake3::derive_key(
            "resilient-records replica fragments at rest v1",
            seed,
        ));
        Self {
            secret,
            public: SealingPublicKey(pk),
            at_rest,
        }
    }

    /// The public half.
    pub fn public(&self) -> SealingPublicKey {
        self.public
    }

    /// Opens a fragment sealed to this replica for (`record`, `grantee`,
    /// `replica`).
    pub fn open(&self, slot: &Slot, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.first() != Some(&VERSION) {
            return Err(SealError::Malformed("unknown version"));
        }
        if sealed.len() < 1 + ENCAPPED_LEN + 16 {
            return Err(SealError::Malformed("too short"));
        }
        let encapped =
            <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&sealed[1..1 + ENCAPPED_LEN])
                .map_err(|_| SealError::Malformed("encapsulated key"))?;
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &self.secret,
            &encapped,
            INFO,
            &sealed[1 + ENCAPPED_LEN..],
            &slot.aad(),
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Open)
    }

    /// Encrypts a fragment this replica accepted, for its own store.
    pub fn encrypt_at_rest(&self, grant: &GrantId, fragment: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; AT_REST_NONCE];
        OsRng.fill_bytes(&mut nonce);
        let aead = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&self.at_rest[..]));
        let ct = aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: fragment,
                    aad: &grant.0,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`SealingKey::encrypt_at_rest`] stored for `grant`.
    pub fn decrypt_at_rest(
        &self,
        grant: &GrantId,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if stored.len() < AT_REST_NONCE + 16 {
            return Err(SealError::Malformed("stored fragment too short"));
        }
        let aead = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&self.at_rest[..]));
        aead.decrypt(
            XNonce::from_slice(&stored[..AT_REST_NONCE]),
            Payload {
                msg: &stored[AT_REST_NONCE..],
                aad: &grant.0,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Open)
    }
}

/// Where a sealed fragment belongs: its record, grantee and replica. Bound
/// as the associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The record.
    pub record: RecordId,
    /// The grantee.
    pub grantee: AccountId,
    /// The replica it is sealed to.
    pub replica: ReplicaId,
}

impl Slot {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + 32 + 2);
        aad.extend_from_slice(&self.record.0);
        aad.extend_from_slice(&self.grantee.0);
        aad.extend_from_slice(&self.replica.0.to_le_bytes());
        aad
    }
}

/// Seals `fragment` to the replica with public key `to`, for `slot`.
pub fn seal(to: &SealingPublicKey, slot: &Slot, fragment: &[u8]) -> Result<Vec<u8>, SealError> {
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&to.0)
        .map_err(|e| SealError::BadPublicKey(e.to_string()))?;
    let mut rng = rand_core_09::UnwrapErr(rand_core_09::OsRng);
    let (encapped, ciphertext) = hpke::single_shot_seal::<
        ChaCha20Poly1305,
        HkdfSha256,
        X25519HkdfSha256,
        _,
    >(&OpModeS::Base, &pk, INFO, fragment, &slot.aad(), &mut rng)
    .map_err(|_| SealError::Malformed("sealing failed"))?;
    let mut out = Vec::with_capacity(1 + ENCAPPED_LEN + ciphertext.len());
    out.push(VERSION);
    out.extend_from_slice(&encapped.to_bytes());
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(replica: u16) -> Slot {
        Slot {
            record: RecordId([1; 32]),
            grantee: AccountId([2; 32]),
            replica: ReplicaId(replica),
        }
    }

    #[test]
    fn only_the_right_replica_and_slot_open() {
        let r0 = SealingKey::derive(&[7; 32]);
        let r1 = SealingKey::derive(&[8; 32]);
        assert_eq!(SealingKey::derive(&[7; 32]).public(), r0.public());
        let sealed = seal(&r0.public(), &slot(0), b"fragment").unwrap();
        assert_eq!(&r0.open(&slot(0), &sealed).unwrap()[..], b"fragment");
        assert_eq!(r1.open(&slot(0), &sealed), Err(SealError::Open));
        assert_eq!(r0.open(&slot(1), &sealed), Err(SealError::Open));
        let mut other = slot(0);
        other.grantee = AccountId([3; 32]);
        assert_eq!(r0.open(&other, &sealed), Err(SealError::Open));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(r0.open(&slot(0), &tampered), Err(SealError::Open));
        assert!(matches!(
            r0.open(&slot(0), &sealed[..20]),
            Err(SealError::Malformed(_))
        ));
        let mut v2 = sealed;
        v2[0] = 2;
        assert!(matches!(
            r0.open(&slot(0), &v2),
            Err(SealError::Malformed(_))
        ));
        assert!(SealingPublicKey::from_hex("zz").is_err());
        assert_eq!(
            SealingPublicKey::from_hex(&r0.public().to_hex()).unwrap(),
            r0.public()
        );
    }

    #[test]
    fn at_rest_round_trip_is_bound_to_the_grant() {
        let k = SealingKey::derive(&[7; 32]);
        let stored = k.encrypt_at_rest(&GrantId([5; 32]), b"kfrag");
        assert_eq!(
            &k.decrypt_at_rest(&GrantId([5; 32]), &stored).unwrap()[..],
            b"kfrag"
        );
        assert_eq!(
            k.decrypt_at_rest(&GrantId([6; 32]), &stored),
            Err(SealError::Open)
        );
        assert!(SealingKey::derive(&[8; 32])
            .decrypt_at_rest(&GrantId([5; 32]), &stored)
            .is_err());
    }
}
