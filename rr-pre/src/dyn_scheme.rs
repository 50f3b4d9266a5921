//! Schemes chosen at run time: the object-safe, byte-level [`ReplicaScheme`]
//! and the [`Schemes`] registry.
//!
//! A replica serves records of every scheme it was built with, and each
//! record names its scheme ([`SchemeId`]). The replica only needs three
//! operations, on bytes as they come off the ledger and the wire: check a
//! grant's threshold, verify the key fragment it was sent, and re-encrypt a
//! capsule with its stored fragment. [`ReplicaScheme`] is that subset of
//! [`PreScheme`], object-safe, and every `PreScheme` implements it, so the
//! node looks the record's scheme up in [`Schemes`] and calls it through
//! `&dyn ReplicaScheme`. Clients, which know their scheme at compile time,
//! use [`PreScheme`] directly (generics on the hot path, a boxed companion
//! trait only where the choice is made at run time).
//!
//! ```
//! use rr_core::{SchemeId, Threshold};
//! use rr_pre::{scheme_by_name, Schemes};
//!
//! let schemes = Schemes::all();
//! let id = scheme_by_name("umbral").unwrap();
//! let umbral = schemes.require(id)?;
//! assert_eq!(umbral.id(), SchemeId::UMBRAL);
//! umbral.threshold_ok(Threshold::new(2, 3)?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rand_core::CryptoRngCore;
use rr_core::{KeyKind, PreError, PreScheme, SchemeId, Threshold, WireEncoding};

/// What a replica does with a record's scheme, on bytes and object-safe:
/// the replica-side subset of [`PreScheme`]. Implemented for every
/// `PreScheme`.
///
/// Methods called on a `&dyn ReplicaScheme` need no import. Where both this
/// trait and [`PreScheme`] are in scope, `verify_key_frag` and `reencrypt` on
/// a concrete scheme are ambiguous: name the trait (`PreScheme::reencrypt(..)`).
///
/// # Correctness
/// The blanket implementation decodes with the scheme's [`WireEncoding`]s
/// (garbage is [`PreError::Malformed`]) and then does exactly what the
/// [`PreScheme`] method of the same name does.
pub trait ReplicaScheme: Send + Sync {
    /// The scheme's id, as records carry it.
    fn id(&self) -> SchemeId;

    /// The scheme's name (`umbral`, `recrypt`).
    fn name(&self) -> &'static str {
        self.id().name()
    }

    /// Checks that the scheme supports threshold `t` ([`PreScheme::check_threshold`]).
    fn threshold_ok(&self, t: Threshold) -> Result<(), PreError>;

    /// Whether one replica can re-encrypt on its own whatever threshold is
    /// asked for: the scheme refuses every threshold above 1 (recrypt). Node
    /// info endpoints and docs should say so plainly.
    fn single_proxy(&self) -> bool {
        self.threshold_ok(Threshold { m: 2, n: 3 }).is_err()
    }

    /// Checks what a `RegisterRecord` call carries: `record_key` decodes as
    /// a public key of this scheme that is not an account key (where the
    /// scheme's keys say, [`PreScheme::key_kind`]), and `capsule` decodes as
    /// a capsule. A pure function of the bytes, so the contracts can refuse
    /// with it deterministically.
    fn check_record(&self, record_key: &[u8], capsule: &[u8]) -> Result<(), PreError>;

    /// Checks a grant's grantee key: it decodes as a public key of this
    /// scheme that is not a record key (where the scheme's keys say). Pure,
    /// like [`ReplicaScheme::check_record`].
    fn check_account_key(&self, key: &[u8]) -> Result<(), PreError>;

    /// Decodes and verifies a key fragment against the record's and the
    /// grantee's public keys ([`PreScheme::verify_key_frag`]); returns the
    /// verified fragment's bytes for the replica's own store.
    fn verify_key_frag(
        &self,
        kfrag: &[u8],
        record_key: &[u8],
        grantee_key: &[u8],
    ) -> Result<Vec<u8>, PreError>;

    /// Re-encrypts a capsule with a verified key fragment from the replica's
    /// own store ([`PreScheme::reencrypt`]); returns the capsule fragment's
    /// bytes.
    fn reencrypt(
        &self,
        rng: &mut dyn CryptoRngCore,
        capsule: &[u8],
        verified_kfrag: &[u8],
    ) -> Result<Vec<u8>, PreError>;
}

impl<P: PreScheme> ReplicaScheme for P {
    fn id(&self) -> SchemeId {
        P::ID
    }

    fn threshold_ok(&self, t: Threshold) -> Result<(), PreError> {
        self.check_threshold(t)
    }

    fn check_record(&self, record_key: &[u8], capsule: &[u8]) -> Result<(), PreError> {
        let key = P::PublicKey::from_bytes(record_key)?;
        if self.key_kind(&key) == Some(KeyKind::Account) {
            return Err(PreError::Malformed {
                scheme: P::ID.name(),
                what: "record public key (an account key was given)",
            });
        }
        P::Capsule::from_bytes(capsule)?;
        Ok(())
    }

    fn check_account_key(&self, key: &[u8]) -> Result<(), PreError> {
        let key = P::PublicKey::from_bytes(key)?;
        if self.key_kind(&key) == Some(KeyKind::Record) {
            return Err(PreError::Malformed {
                scheme: P::ID.name(),
                what: "account public key (a record key was given)",
            });
        }
        Ok(())
    }

    fn verify_key_frag(
        &self,
        kfrag: &[u8],
        record_key: &[u8],
        grantee_key: &[u8],
    ) -> Result<Vec<u8>, PreError> {
        let kfrag = P::KeyFrag::from_bytes(kfrag)?;
        let record_key = P::PublicKey::from_bytes(record_key)?;
        let grantee_key = P::PublicKey::from_bytes(grantee_key)?;
        let verified = PreScheme::verify_key_frag(self, kfrag, &record_key, &grantee_key)?;
        Ok(self.verified_key_frag_to_bytes(&verified))
    }

    fn reencrypt(
        &self,
        rng: &mut dyn CryptoRngCore,
        capsule: &[u8],
        verified_kfrag: &[u8],
    ) -> Result<Vec<u8>, PreError> {
        let capsule = P::Capsule::from_bytes(capsule)?;
        let kfrag = self.verified_key_frag_from_trusted_bytes(verified_kfrag)?;
        Ok(PreScheme::reencrypt(self, rng, &capsule, &kfrag)?.to_bytes())
    }
}

/// The scheme id of a scheme name (`umbral`, `recrypt`; ASCII case is
/// ignored), whether or not this build includes the scheme: ask [`Schemes`]
/// for that.
pub fn scheme_by_name(name: &str) -> Option<SchemeId> {
    [SchemeId::UMBRAL, SchemeId::RECRYPT]
        .into_iter()
        .find(|id| id.name().eq_ignore_ascii_case(name))
}

/// A record's scheme is not among the node's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownScheme {
    /// The scheme asked for.
    pub id: SchemeId,
    /// The schemes the registry has.
    pub available: Vec<SchemeId>,
}

impl std::fmt::Display for UnknownScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "records of scheme {} cannot be served here: ", self.id)?;
        if self.available.is_empty() {
            f.write_str("this node serves no scheme")?;
        } else {
            let names: Vec<_> = self.available.iter().map(|id| id.to_string()).collect();
            write!(f, "this node serves {}", names.join(", "))?;
        }
        if self.id == SchemeId::RECRYPT && cfg!(not(feature = "recrypt")) {
            f.write_str(" (rr-pre was built without its `recrypt` feature)")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownScheme {}

/// The schemes a node serves, by id: the run-time registry of
/// [`ReplicaScheme`]s.
pub struct Schemes {
    entries: Vec<Box<dyn ReplicaScheme>>,
}

impl Schemes {
    /// No schemes; add them with [`Schemes::with`].
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Every scheme compiled into this build: Umbral, and recrypt with the
    /// `recrypt` feature.
    pub fn all() -> Self {
        let schemes = Self::empty().with(crate::Umbral);
        #[cfg(feature = "recrypt")]
        let schemes = schemes.with(crate::Recrypt);
        schemes
    }

    /// Adds a scheme, replacing any with the same id.
    pub fn with(mut self, scheme: impl ReplicaScheme + 'static) -> Self {
        self.entries.retain(|s| s.id() != scheme.id());
        self.entries.push(Box::new(scheme));
        self.entries.sort_by_key(|s| s.id());
        self
    }

    /// The scheme with this id, if the registry has it.
    pub fn get(&self, id: SchemeId) -> Option<&dyn ReplicaScheme> {
        self.entries
            .iter()
            .find(|s| s.id() == id)
            .map(|s| s.as_ref())
    }

    /// The scheme with this id, or an error naming the ones available.
    pub fn require(&self, id: SchemeId) -> Result<&dyn ReplicaScheme, UnknownScheme> {
        self.get(id).ok_or_else(|| UnknownScheme {
            id,
            available: self.ids(),
        })
    }

    /// The ids of the registry's schemes, in ascending order.
    pub fn ids(&self) -> Vec<SchemeId> {
        self.entries.iter().map(|s| s.id()).collect()
    }

    /// The ids of its single-proxy schemes (threshold 1: any one replica
    /// holding a grant's key fragment re-encrypts on its own).
    pub fn single_proxy_ids(&self) -> Vec<SchemeId> {
        self.entries
            .iter()
            .filter(|s| s.single_proxy())
            .map(|s| s.id())
            .collect()
    }
}

impl Default for Schemes {
    /// [`Schemes::all`].
    fn default() -> Self {
        Self::all()
    }
}

impl std::fmt::Debug for Schemes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Schemes").field(&self.ids()).finish()
    }
}
