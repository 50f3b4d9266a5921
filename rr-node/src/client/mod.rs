//! The client side: identities, public cards, and the flows of the design
//! (register, grant, retrieve, revoke, audit) against a node.
//!
//! Plaintext and secret keys stay in the client's process: the node sees
//! ciphertext, capsules, key fragments for its own replica, and signed calls.
//! Proxy re-encryption runs on tokio's blocking pool, off the async runtime.
//!
//! A person holds one [`RootIdentity`]: an ed25519 signing key and a root
//! seed from which a PRE master secret per scheme is derived. Its
//! [`RootIdentity::card`] carries one PRE public key per scheme, so an owner
//! can grant records of any scheme to it; [`RootIdentity::for_scheme`] gives
//! the typed [`Identity`] a [`Client`] of that scheme runs with.
//!
//! ```
//! use rr_core::SchemeId;
//! use rr_node::RootIdentity;
//! use rr_pre::{Recrypt, Umbral};
//!
//! let bob = RootIdentity::generate();
//! let card = bob.card();
//! assert_eq!(card.schemes(), [SchemeId::UMBRAL, SchemeId::RECRYPT]);
//! // The same account signs whatever the scheme...
//! assert_eq!(bob.for_scheme(&Recrypt)?.account(), bob.for_scheme(&Umbral)?.account());
//! // ... and the card's key for each scheme is that scheme's identity's.
//! assert_eq!(
//!     card.key_for(SchemeId::RECRYPT),
//!     bob.for_scheme(&Recrypt)?.card(&Recrypt).key_for(SchemeId::RECRYPT),
//! );
//! # Ok::<(), rr_node::ClientError>(())
//! ```

#[cfg(feature = "keystore")]
#[cfg_attr(docsrs, doc(cfg(feature = "keystore")))]
pub mod keystore;
pub mod receipt;
pub mod replicas;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use rand_core::{OsRng, RngCore};
use rr_core::{
    AccountId, AuditEntry, ByteStream, Call, CallOutput, ContentId, DataKey, Digest, Grant,
    GrantId, GrantInfo, PreError, PreScheme, Purpose, RecordId, RecordInfo, RegisterRecord,
    Retrieve, Revoke, SchemeId, SignedTransaction, Threshold, Timestamp, TxBody, TxId,
    WireEncoding,
};
use rr_pre::envelope::{self, EnvelopeError, DEFAULT_CHUNK_SIZE};
#[cfg(feature = "recrypt")]
use rr_pre::Recrypt;
use rr_pre::Umbral;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::api::Authorization;
use crate::api::NodeError;
#[cfg(feature = "server")]
use crate::node::{Node, NodeTypes};
use crate::replicas::{Replicas, RetrieveAnswers};

/// Errors of client operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node refused or failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A proxy re-encryption step failed.
    #[error(transparent)]
    Pre(#[from] PreError),
    /// The ciphertext did not decrypt: tampered, truncated, or the wrong key.
    #[error("the record's ciphertext failed to decrypt: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The blob store failed or returned bytes that do not match the record.
    #[error(transparent)]
    Blob(#[from] rr_core::BlobError),
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The operation needs the record's owner.
    #[error("account {caller} does not own record {record}; only its owner can {action}")]
    NotOwner {
        /// Who asked.
        caller: AccountId,
        /// The record.
        record: RecordId,
        /// What they tried.
        action: &'static str,
    },
    /// The grantee's card has no PRE public key for the record's scheme.
    #[error("the grantee's public card (account {grantee}) has no {} key, which record {record} needs (it has keys for {})", record_scheme.name(), scheme_names(card))]
    SchemeMismatch {
        /// The grantee.
        grantee: AccountId,
        /// The schemes the card has keys for.
        card: Vec<SchemeId>,
        /// The record.
        record: RecordId,
        /// The record's scheme.
        record_scheme: SchemeId,
    },
    /// The record uses another scheme than this client's: make a client of
    /// the record's scheme ([`RootIdentity::for_scheme`]).
    #[error("record {record} uses scheme {}, but this client uses scheme {}", record_scheme.name(), client.name())]
    ClientScheme {
        /// The record.
        record: RecordId,
        /// The record's scheme.
        record_scheme: SchemeId,
        /// The client's scheme.
        client: SchemeId,
    },
    /// The identity holds no master secret for the scheme (it was made by an
    /// older rr, which kept one scheme's master secret only).
    #[error("account {account} holds no {} key (its key was made by an older rr and has keys for {} only); create a new key for {} records", scheme.name(), scheme_names(available), scheme.name())]
    NoSchemeKey {
        /// The account.
        account: AccountId,
        /// The scheme asked for.
        scheme: SchemeId,
        /// The schemes the identity has keys for.
        available: Vec<SchemeId>,
    },
    /// Too few capsule fragments verified.
    #[error("only {verified} of the {needed} capsule fragments needed for grant {grant} verified; refused replicas: {bad:?}")]
    NotEnoughFragments {
        /// The grant.
        grant: GrantId,
        /// Verified fragments.
        verified: usize,
        /// The threshold.
        needed: usize,
        /// Replicas whose fragments failed to verify.
        bad: Vec<String>,
    },
    /// The grant committed, but fewer than its threshold of replicas took
    /// their key fragment, so it cannot be used yet.
    #[error("grant {grant} is on the ledger, but only {delivered} of the {needed} replicas it needs took their key fragment ({}); revoke it and grant again once the replicas are up", skipped.join("; "))]
    Undelivered {
        /// The grant.
        grant: GrantId,
        /// Replicas that took their fragment.
        delivered: usize,
        /// The threshold.
        needed: usize,
        /// Replicas that did not, and why.
        skipped: Vec<String>,
    },
    /// The revocation committed, but too few replicas have confirmed their
    /// erasure yet for it to be complete.
    #[error("grant {grant} is revoked on the ledger, but only {} of the {needed} replicas needed have confirmed erasing their key fragment (confirmed: {confirmed_by:?}); the others confirm when they are back: check with `rr audit`", confirmed_by.len())]
    ErasureUnconfirmed {
        /// The grant.
        grant: GrantId,
        /// Replicas that confirmed.
        confirmed_by: Vec<rr_core::ReplicaId>,
        /// Confirmations needed, n - m + 1.
        needed: usize,
    },
    /// A public card that its account did not sign (or that was changed
    /// after signing): its PRE keys may be someone else's.
    #[error("the public card of account {account} is not signed by that account, or was changed after it was signed; ask the grantee for their card again (`rr keys show NAME --json` prints a signed one)")]
    UnsignedCard {
        /// The account the card names.
        account: AccountId,
    },
    /// The node answered something other than what the call asks for.
    #[error("unexpected answer from the node: {0}")]
    Unexpected(String),
}

/// How long [`Client::revoke`] waits for replicas to confirm their erasures.
pub const ERASURE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A complete revocation: the replicas that confirmed, through consensus,
/// that they erased their key fragment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeReport {
    /// Replicas whose erasure confirmation is on the ledger (sorted).
    pub confirmed_by: Vec<rr_core::ReplicaId>,
    /// Confirmations a complete revocation needs, n - m + 1 (0 on a single
    /// dev node, which erases before it answers).
    pub needed: usize,
    /// The revoking transaction.
    pub tx: TxId,
    /// The height its receipt is certified at.
    pub certified_at: u64,
}

/// `umbral, recrypt`.
fn scheme_names(schemes: &[SchemeId]) -> String {
    let names: Vec<&str> = schemes.iter().map(|s| s.name()).collect();
    names.join(", ")
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
    let context = context.into();
    move |source| {
        if let Some(e) = EnvelopeError::from_io(&source) {
            return ClientError::Envelope(e.clone());
        }
        if let Some(rr_core::BlobError::Integrity { cid, actual }) =
            rr_core::BlobError::from_io(&source)
        {
            return ClientError::Blob(rr_core::BlobError::Integrity {
                cid: *cid,
                actual: *actual,
            });
        }
        ClientError::Io { context, source }
    }
}

/// A person's or organisation's keys: an ed25519 identity that signs every
/// call, and a PRE master secret from which the account key and every
/// record's key are derived. Both zeroize on drop.
pub struct Identity<P: PreScheme> {
    signing: SigningKey,
    master: P::MasterSecret,
}

impl<P: PreScheme> std::fmt::Debug for Identity<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("account", &self.account())
            .finish_non_exhaustive()
    }
}

impl<P: PreScheme> Identity<P> {
    /// Checks the capsule fragments of `answers` (m of them at once, one
    /// thread each) and opens the record's data key with m that verify. The
    /// record, grant and threshold come from the certified state `answers`
    /// holds; a fragment that fails is skipped and named in the report, with
    /// the replicas already skipped. CPU-bound: call it off the async
    /// runtime ([`Client::retrieve`] does).
    pub fn open_retrieval(
        &self,
        pre: &P,
        answers: RetrieveAnswers,
    ) -> Result<(DataKey, RetrieveReport), ClientError> {
        let record = &answers.record;
        let grant = answers.grant.id;
        let needed = usize::from(answers.grant.threshold.m);
        let record_pk = <P as PreScheme>::PublicKey::from_bytes(&record.record_key)?;
        let capsule = <P as PreScheme>::Capsule::from_bytes(&record.capsule)?;
        let (my_sk, my_pk) = pre.account_key(&self.master);
        let mut verified = Vec::new();
        let mut report = RetrieveReport {
            used: Vec::new(),
            skipped: answers.skipped,
            tx: answers.receipt.receipt.tx,
            certified_at: answers.receipt.header.height(),
            certified_by: answers.receipt.header.signers().to_vec(),
        };
        // One fragment per replica (each is signed by its own replica).
        let mut candidates = Vec::new();
        for f in answers.fragments {
            if !candidates
                .iter()
                .any(|c: &rr_core::proof::SignedFragment| c.replica == f.replica)
            {
                candidates.push(f);
            }
        }
        let mut candidates = candidates.into_iter();
        // Check as many as are still needed at once, one thread each (a
        // fragment's check is a few scalar multiplications), until enough
        // verify or none are left.
        while verified.len() < needed {
            let round: Vec<_> = candidates.by_ref().take(needed - verified.len()).collect();
            if round.is_empty() {
                break;
            }
            let check = |fragment: &[u8]| {
                <P as PreScheme>::CapsuleFrag::from_bytes(fragment)
                    .and_then(|c| pre.verify_capsule_frag(c, &capsule, &record_pk, &my_pk))
            };
            // The first on this thread, the others on their own.
            let results: Vec<_> = std::thread::scope(|scope| {
                let others: Vec<_> = round[1..]
                    .iter()
                    .map(|f| scope.spawn(|| check(&f.fragment)))
                    .collect();
                let first = check(&round[0].fragment);
                std::iter::once(first)
                    .chain(
                        others
                            .into_iter()
                            .map(|h| h.join().expect("a fragment check panicked")),
                    )
                    .collect()
            });
            for (f, checked) in round.into_iter().zip(results) {
                match checked {
                    Ok(v) => {
                        verified.push(v);
                        report.used.push(f.replica);
                    }
                    Err(e) => report.skipped.push(crate::api::SkippedReplica {
                        replica: f.replica,
                        reason: format!("its capsule fragment failed verification: {e}"),
                    }),
                }
            }
        }
        if verified.len() < needed {
            return Err(ClientError::NotEnoughFragments {
                grant,
                verified: verified.len(),
                needed,
                bad: report
                    .skipped
                    .iter()
                    .map(|s| format!("replica {}: {}", s.replica.0, s.reason))
                    .collect(),
            });
        }
        report.skipped.sort_by_key(|s| s.replica);
        Ok((
            pre.open_reencrypted(&my_sk, &record_pk, &capsule, &verified)?,
            report,
        ))
    }

    /// Fresh keys from the OS RNG.
    pub fn generate(pre: &P) -> Self {
        Self {
            signing: SigningKey::generate(&mut OsRng),
            master: pre.generate_master(&mut OsRng),
        }
    }

    /// Keys from their secret bytes (as [`Identity::to_secret_bytes`] gives them).
    pub fn from_secret_bytes(pre: &P, signing: &[u8; 32], master: &[u8]) -> Result<Self, PreError> {
        Ok(Self {
            signing: SigningKey::from_bytes(signing),
            master: pre.master_from_bytes(master)?,
        })
    }

    /// The secret bytes, for an encrypted keystore: (signing key, master secret).
    pub fn to_secret_bytes(&self, pre: &P) -> (Zeroizing<[u8; 32]>, Zeroizing<Vec<u8>>) {
        (
            Zeroizing::new(self.signing.to_bytes()),
            pre.master_to_bytes(&self.master),
        )
    }

    /// The PRE master secret, for integrators that build calls by hand (the
    /// record keys are `pre.record_key(identity.master(), &record_id)`).
    pub fn master(&self) -> &P::MasterSecret {
        &self.master
    }

    /// The account id.
    pub fn account(&self) -> AccountId {
        AccountId::from_verifying_key(&self.signing.verifying_key())
    }

    /// The public card others grant to, with this scheme's key only (a
    /// [`RootIdentity::card`] has one key per scheme), signed.
    pub fn card(&self, pre: &P) -> PublicCard {
        PublicCard::new(self.account(), P::ID, self.public_key_hex(pre)).signed(&self.signing)
    }

    /// The PRE account public key, hex.
    fn public_key_hex(&self, pre: &P) -> String {
        let (_, pk) = pre.account_key(&self.master);
        hex::encode(pk.to_bytes())
    }

    /// Signs a call with a fresh random nonce.
    pub fn sign(&self, call: Call) -> SignedTransaction {
        TxBody {
            signer: self.account(),
            nonce: OsRng.next_u64(),
            call,
        }
        .sign(&self.signing)
    }
}

/// The schemes a client of this build can use. A [`RootIdentity`] has a
/// master secret, and its [`PublicCard`] a public key, for each: Umbral,
/// and recrypt when the `recrypt` feature is on.
#[cfg(feature = "recrypt")]
pub const CLIENT_SCHEMES: &[SchemeId] = &[SchemeId::UMBRAL, SchemeId::RECRYPT];
/// The schemes a client of this build can use. A [`RootIdentity`] has a
/// master secret, and its [`PublicCard`] a public key, for each: Umbral,
/// and recrypt when the `recrypt` feature is on.
#[cfg(not(feature = "recrypt"))]
pub const CLIENT_SCHEMES: &[SchemeId] = &[SchemeId::UMBRAL];

/// An identity's secrets, for every scheme at once: the ed25519 signing key
/// and a 32-byte root seed. Each scheme's PRE master secret is derived from
/// the root seed with its own context,
/// `blake3::derive_key("resilient-records keystore v2 <scheme name> master", root)`,
/// so no two schemes ever share secret bytes. [`RootIdentity::for_scheme`]
/// makes the [`Identity`] of one scheme. The secrets zeroize on drop.
///
/// An identity read from a key file of an older rr (format version 1) holds
/// one scheme's master secret as it was stored, and serves that scheme only.
pub struct RootIdentity {
    signing: SigningKey,
    seeds: Seeds,
}

/// Where a [`RootIdentity`]'s master secrets come from.
#[cfg_attr(not(feature = "keystore"), allow(dead_code))]
pub(crate) enum Seeds {
    /// The root seed every scheme's master secret is derived from.
    Root(Zeroizing<[u8; 32]>),
    /// One scheme's master secret bytes (a version 1 key file).
    Single {
        /// The scheme.
        scheme: SchemeId,
        /// Its master secret, as the scheme encodes it.
        master: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for RootIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootIdentity")
            .field("account", &self.account())
            .field("schemes", &self.schemes())
            .finish_non_exhaustive()
    }
}

impl RootIdentity {
    /// Fresh secrets from the OS RNG.
    pub fn generate() -> Self {
        let mut root = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut root[..]);
        Self {
            signing: SigningKey::generate(&mut OsRng),
            seeds: Seeds::Root(root),
        }
    }

    /// An identity from its signing key and root seed (as a keystore holds them).
    pub fn from_root_bytes(signing: &[u8; 32], root: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(signing),
            seeds: Seeds::Root(Zeroizing::new(*root)),
        }
    }

    /// An identity with one scheme's master secret (a version 1 key file).
    /// Refuses a scheme this build's clients cannot use and bytes that are
    /// not a master secret of the scheme.
    #[cfg_attr(not(feature = "keystore"), allow(dead_code))]
    pub(crate) fn from_single_scheme(
        signing: &[u8; 32],
        scheme: SchemeId,
        master: &[u8],
    ) -> Result<Self, String> {
        let decodes = match scheme {
            SchemeId::UMBRAL => Umbral.master_from_bytes(master).map(drop),
            #[cfg(feature = "recrypt")]
            SchemeId::RECRYPT => Recrypt.master_from_bytes(master).map(drop),
            other => {
                return Err(format!(
                    "it holds a key for scheme {other}, which this build cannot use (it uses {})",
                    scheme_names(CLIENT_SCHEMES)
                ))
            }
        };
        decodes.map_err(|e| format!("the sealed PRE master secret does not decode: {e}"))?;
        Ok(Self {
            signing: SigningKey::from_bytes(signing),
            seeds: Seeds::Single {
                scheme,
                master: Zeroizing::new(master.to_vec()),
            },
        })
    }

    /// The signing key's bytes and the seeds, for the keystore.
    #[cfg_attr(not(feature = "keystore"), allow(dead_code))]
    pub(crate) fn secrets(&self) -> (Zeroizing<[u8; 32]>, &Seeds) {
        (Zeroizing::new(self.signing.to_bytes()), &self.seeds)
    }

    /// The account id (the same for every scheme).
    pub fn account(&self) -> AccountId {
        AccountId::from_verifying_key(&self.signing.verifying_key())
    }

    /// The X25519 sealing key of a cluster replica whose identity this is,
    /// derived from the root seed (`None` for a version 1 key file, which has
    /// no root seed).
    pub fn sealing_key(&self) -> Option<crate::sealing::SealingKey> {
        match &self.seeds {
            Seeds::Root(root) => {
                let seed = Zeroizing::new(blake3::derive_key(
                    "resilient-records keystore v2 replica sealing seed",
                    &root[..],
                ));
                Some(crate::sealing::SealingKey::derive(&seed))
            }
            Seeds::Single { .. } => None,
        }
    }

    /// The ed25519 signing key. A cluster replica's identity is one of these
    /// in its own keystore, and this key signs its protocol messages.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The schemes this identity has a master secret for: every one in
    /// [`CLIENT_SCHEMES`], or the one of a version 1 key file.
    pub fn schemes(&self) -> Vec<SchemeId> {
        match &self.seeds {
            Seeds::Root(_) => CLIENT_SCHEMES.to_vec(),
            Seeds::Single { scheme, .. } => vec![*scheme],
        }
    }

    /// The identity of scheme `P`: the same signing key, and `P`'s master
    /// secret derived from the root seed. Fails with
    /// [`ClientError::NoSchemeKey`] for an identity of a version 1 key file
    /// and another scheme than its own.
    pub fn for_scheme<P: PreScheme>(&self, pre: &P) -> Result<Identity<P>, ClientError> {
        let master = match &self.seeds {
            Seeds::Root(root) => {
                let name = match P::ID.name() {
                    // A scheme rr-core has no name for still gets its own context.
                    "unknown" => format!("scheme-{}", P::ID.0),
                    name => name.to_string(),
                };
                let context = format!("resilient-records keystore v2 {name} master");
                let seed = Zeroizing::new(blake3::derive_key(&context, &root[..]));
                pre.master_from_bytes(&seed[..])?
            }
            Seeds::Single { scheme, master } if *scheme == P::ID => {
                pre.master_from_bytes(master)?
            }
            Seeds::Single { scheme, .. } => {
                return Err(ClientError::NoSchemeKey {
                    account: self.account(),
                    scheme: P::ID,
                    available: vec![*scheme],
                })
            }
        };
        Ok(Identity {
            signing: self.signing.clone(),
            master,
        })
    }

    /// The public card others grant to: the account and one PRE public key
    /// per scheme this identity has.
    pub fn card(&self) -> PublicCard {
        let mut card: Option<PublicCard> = None;
        let mut add = |scheme: SchemeId, key: Option<String>| {
            if let Some(key) = key {
                card = Some(match card.take() {
                    Some(c) => c.with_key(scheme, key),
                    None => PublicCard::new(self.account(), scheme, key),
                });
            }
        };
        add(Umbral::ID, self.public_key_hex(&Umbral));
        #[cfg(feature = "recrypt")]
        add(Recrypt::ID, self.public_key_hex(&Recrypt));
        card.expect("an identity has a key for at least one scheme")
            .signed(&self.signing)
    }

    fn public_key_hex<P: PreScheme>(&self, pre: &P) -> Option<String> {
        self.for_scheme(pre).ok().map(|id| id.public_key_hex(pre))
    }
}

/// What a grantee shares so an owner can grant to them: their account and
/// their PRE account public key for each scheme they have one for. Public;
/// safe to publish.
///
/// As JSON (what `rr keys show NAME --json` prints):
///
/// ```json
/// {
///   "account": "…",
///   "scheme": "umbral",
///   "pre_public_key": "<the umbral key, hex>",
///   "pre_public_keys": { "umbral": "<hex>", "recrypt": "<hex>" },
///   "signature": "<ed25519 by the account, hex>"
/// }
/// ```
///
/// The account signs its keys ([`PublicCard::signing_bytes`]), so a card
/// whose keys were swapped is refused ([`PublicCard::verify`]) before any
/// grant is made to it: a grant to a swapped key would hand the record to
/// whoever holds that key. Cards without a signature (from an rr before
/// cards were signed) are refused the same way.
///
/// `scheme` and `pre_public_key` name one key (umbral's, if the card has
/// one) so readers of the first card format keep working; cards of that
/// format (`"scheme": 1`, no `pre_public_keys`) are read as umbral-only
/// cards. Keys of schemes this build has no name for are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CardJson", into = "CardJson")]
pub struct PublicCard {
    /// The account.
    pub account: AccountId,
    /// Scheme → PRE account public key, hex. Never empty.
    keys: BTreeMap<SchemeId, String>,
    /// Keys of schemes this build has no name for (from a newer rr): not
    /// used, but signed with the rest.
    other_keys: BTreeMap<String, String>,
    /// The account's signature over its keys (64 bytes), if signed.
    signature: Option<Vec<u8>>,
}

/// Domain separator of card signatures.
const CARD_DOMAIN: &[u8] = b"resilient-records/card/v1\0";

impl PublicCard {
    /// A card with one key: `pre_public_key` (hex) for `scheme`, unsigned.
    pub fn new(account: AccountId, scheme: SchemeId, pre_public_key: String) -> Self {
        Self {
            account,
            keys: BTreeMap::from([(scheme, pre_public_key)]),
            other_keys: BTreeMap::new(),
            signature: None,
        }
    }

    /// The card with `pre_public_key` (hex) as its key for `scheme` (and no
    /// signature: sign it again).
    pub fn with_key(mut self, scheme: SchemeId, pre_public_key: String) -> Self {
        self.keys.insert(scheme, pre_public_key);
        self.signature = None;
        self
    }

    /// What the account signs: a domain tag, then the canonical encoding
    /// (postcard) of the account and its `pre_public_keys` as (scheme name,
    /// key hex) pairs in name order, including keys of schemes this build
    /// does not know.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let keys: BTreeMap<&str, &str> = self
            .keys
            .iter()
            .map(|(s, k)| (s.name(), k.as_str()))
            .chain(
                self.other_keys
                    .iter()
                    .map(|(n, k)| (n.as_str(), k.as_str())),
            )
            .collect();
        let keys: Vec<(&str, &str)> = keys.into_iter().collect();
        let mut m = CARD_DOMAIN.to_vec();
        m.extend_from_slice(&rr_core::codec::encode(&(self.account, keys)));
        m
    }

    /// The card signed with `key`, which must be the account's.
    pub fn signed(mut self, key: &SigningKey) -> Self {
        use ed25519_dalek::Signer;
        self.signature = Some(key.sign(&self.signing_bytes()).to_bytes().to_vec());
        self
    }

    /// Checks that the account signed this card's keys.
    pub fn verify(&self) -> Result<(), ClientError> {
        let ok = self
            .signature
            .as_ref()
            .is_some_and(|sig| rr_core::sig::verify(&self.account.0, sig, &self.signing_bytes()));
        if ok {
            Ok(())
        } else {
            Err(ClientError::UnsignedCard {
                account: self.account,
            })
        }
    }

    /// The card's key (hex) for `scheme`, if it has one.
    pub fn key_for(&self, scheme: SchemeId) -> Option<&str> {
        self.keys.get(&scheme).map(String::as_str)
    }

    /// The schemes the card has keys for, in ascending id order.
    pub fn schemes(&self) -> Vec<SchemeId> {
        self.keys.keys().copied().collect()
    }

    /// The scheme of [`PublicCard::pre_public_key`]: umbral if the card has
    /// an umbral key, else its first scheme.
    pub fn scheme(&self) -> SchemeId {
        if self.keys.contains_key(&SchemeId::UMBRAL) {
            SchemeId::UMBRAL
        } else {
            *self.keys.keys().next().expect("a card has a key")
        }
    }

    /// The key of [`PublicCard::scheme`], hex (the `pre_public_key` field).
    pub fn pre_public_key(&self) -> &str {
        &self.keys[&self.scheme()]
    }

    /// The key for `record_scheme`, decoded; [`ClientError::SchemeMismatch`]
    /// if the card has none.
    fn key_bytes(&self, record: RecordId, record_scheme: SchemeId) -> Result<Vec<u8>, ClientError> {
        let hex_key = self
            .key_for(record_scheme)
            .ok_or_else(|| ClientError::SchemeMismatch {
                grantee: self.account,
                card: self.schemes(),
                record,
                record_scheme,
            })?;
        hex::decode(hex_key).map_err(|_| {
            ClientError::Pre(PreError::Malformed {
                scheme: record_scheme.name(),
                what: "public card key (not hex)",
            })
        })
    }
}

/// The JSON form of a [`PublicCard`].
#[derive(Serialize, Deserialize)]
struct CardJson {
    account: AccountId,
    scheme: CardScheme,
    pre_public_key: String,
    #[serde(default)]
    pre_public_keys: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
}

/// A card's `scheme`: a name (`"umbral"`), or the number the first card
/// format wrote (`1`).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum CardScheme {
    Name(String),
    Id(u16),
}

impl From<PublicCard> for CardJson {
    fn from(card: PublicCard) -> Self {
        CardJson {
            account: card.account,
            scheme: CardScheme::Name(card.scheme().name().to_string()),
            pre_public_key: card.pre_public_key().to_string(),
            pre_public_keys: card
                .keys
                .iter()
                .map(|(s, k)| (s.name().to_string(), k.clone()))
                .chain(card.other_keys.clone())
                .collect(),
            signature: card.signature.as_ref().map(hex::encode),
        }
    }
}

impl TryFrom<CardJson> for PublicCard {
    type Error = String;

    fn try_from(json: CardJson) -> Result<Self, String> {
        let known = |id: SchemeId| (id.name() != "unknown").then_some(id);
        // Keys of schemes without a name here come from a newer rr: kept
        // aside (they are signed with the rest), not used.
        let mut keys: BTreeMap<SchemeId, String> = BTreeMap::new();
        let mut other_keys = BTreeMap::new();
        for (name, key) in json.pre_public_keys {
            match rr_pre::scheme_by_name(&name) {
                Some(id) => {
                    keys.insert(id, key);
                }
                None => {
                    other_keys.insert(name, key);
                }
            }
        }
        let scheme = match &json.scheme {
            CardScheme::Name(name) => rr_pre::scheme_by_name(name),
            CardScheme::Id(id) => known(SchemeId(*id)),
        };
        if let Some(scheme) = scheme {
            match keys.get(&scheme) {
                Some(key) if *key != json.pre_public_key => {
                    return Err(format!(
                        "its pre_public_key differs from its pre_public_keys.{}",
                        scheme.name()
                    ))
                }
                Some(_) => {}
                None => {
                    keys.insert(scheme, json.pre_public_key);
                }
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "it has no key of a scheme this build knows ({})",
                scheme_names(CLIENT_SCHEMES)
            ));
        }
        let signature = json
            .signature
            .map(|h| hex::decode(&h).map_err(|_| "its signature is not hex".to_string()))
            .transpose()?;
        Ok(PublicCard {
            account: json.account,
            keys,
            other_keys,
            signature,
        })
    }
}

/// Options of a grant.
#[derive(Clone, Debug)]
pub struct GrantOptions {
    /// Purpose of use.
    pub purpose: Purpose,
    /// Block time after which the grant stops working.
    pub expires_at: Option<Timestamp>,
    /// Fragments needed, m (default: f + 1 of the node's replica set).
    pub threshold: Option<u16>,
}

/// A grant made, and which replicas took their key fragment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantReport {
    /// The grant.
    pub grant: GrantId,
    /// The granting transaction.
    pub tx: TxId,
    /// The height its receipt is certified at.
    pub certified_at: u64,
    /// Replicas that checked and stored their fragment.
    pub delivered: Vec<rr_core::ReplicaId>,
    /// Fragments still to deliver (see [`Client::redeliver`]).
    pub pending: Vec<PendingFragment>,
}

/// A key fragment a replica has not taken yet: sealed to that replica (on
/// a cluster), so it can be kept on disk until the replica is back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFragment {
    /// The grant.
    pub grant: GrantId,
    /// The replica it is for.
    pub replica: rr_core::ReplicaId,
    /// The (sealed) fragment.
    #[serde(with = "rr_core::codec::hex_bytes")]
    pub fragment: Vec<u8>,
    /// Why it was not delivered.
    pub reason: String,
}

/// Which replicas a retrieval used and which it went on without.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrieveReport {
    /// Replicas whose verified capsule fragments opened the record.
    pub used: Vec<rr_core::ReplicaId>,
    /// Replicas skipped (down, refused, or a fragment that failed
    /// verification), and why.
    pub skipped: Vec<crate::api::SkippedReplica>,
    /// The retrieval's transaction.
    #[serde(default)]
    pub tx: TxId,
    /// Height of the retrieval's certified receipt.
    #[serde(default)]
    pub certified_at: u64,
    /// Replicas whose signatures certify it.
    #[serde(default)]
    pub certified_by: Vec<rr_core::ReplicaId>,
}

/// A registered record, as the owner's client saw it go in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOutcome {
    /// The record id.
    pub record_id: RecordId,
    /// Content id of the ciphertext.
    pub cid: ContentId,
    /// Ciphertext size.
    pub size: u64,
    /// The registering transaction (its certified receipt can be exported).
    pub tx: TxId,
    /// The height its receipt is certified at.
    pub certified_at: u64,
}

/// A client acting as one identity against one node, in process or over HTTP.
pub struct Client<P: PreScheme> {
    replicas: Replicas,
    pre: Arc<P>,
    identity: Arc<Identity<P>>,
}

impl<P: PreScheme> Clone for Client<P> {
    fn clone(&self) -> Self {
        Self {
            replicas: self.replicas.clone(),
            pre: self.pre.clone(),
            identity: self.identity.clone(),
        }
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ClientError> + Send + 'static,
) -> Result<R, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Unexpected(format!("crypto task failed: {e}")))?
}

impl<P: PreScheme> Client<P> {
    /// A client for `identity` of the replica set `replicas` (which checks
    /// every answer against the set's keys) with scheme `pre`.
    pub fn new(replicas: Replicas, pre: Arc<P>, identity: Identity<P>) -> Self {
        Self {
            replicas,
            pre,
            identity: Arc::new(identity),
        }
    }

    /// A client for `identity` on a node in this process (trusting the
    /// node's own replica set: it is in the same process).
    #[cfg(feature = "server")]
    #[cfg_attr(docsrs, doc(cfg(feature = "server")))]
    pub fn in_process<T: NodeTypes<Pre = P>>(node: &Arc<Node<T>>, identity: Identity<P>) -> Self {
        let replicas = Replicas::new(
            vec![node.clone() as Arc<dyn crate::api::NodeApi>],
            node.replica_set().clone(),
        )
        .expect("a node is a replica set of one");
        Self::new(replicas, node.pre().clone(), identity)
    }

    /// This client's identity.
    pub fn identity(&self) -> &Identity<P> {
        &self.identity
    }

    /// Signs and submits `call`; its output, and where it was certified.
    async fn execute(&self, call: Call) -> Result<(CallOutput, TxId, u64), ClientError> {
        let submitted = self.replicas.submit(self.identity.sign(call)).await?;
        let (tx, height) = (submitted.receipt.tx, submitted.header.height());
        let out = submitted
            .receipt
            .into_result()
            .map_err(NodeError::Refused)?;
        Ok((out, tx, height))
    }

    /// This account's authorization of a read of `scope` (see the scope
    /// helpers of [`Authorization`]), for this client's cluster: what the
    /// reads of [`Replicas`] take.
    pub fn authorization(&self, scope: String) -> Authorization {
        Authorization::sign(
            &self.identity.signing,
            &self.replicas.replica_set().digest(),
            scope,
        )
    }

    /// This client's account.
    pub fn account(&self) -> AccountId {
        self.identity.account()
    }

    /// This client's public card.
    pub fn card(&self) -> PublicCard {
        self.identity.card(&self.pre)
    }

    /// The replica set this client talks to (and checks answers against).
    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    /// Encrypts `plaintext` (streamed, constant memory) under a fresh data key
    /// encapsulated under a new record key, stores the ciphertext, and
    /// registers the record.
    pub async fn put(
        &self,
        plaintext: ByteStream,
        media_type: &str,
    ) -> Result<PutOutcome, ClientError> {
        self.put_sealed(media_type, move |key| {
            Ok(envelope::encrypt_stream(
                key,
                &mut OsRng,
                plaintext,
                DEFAULT_CHUNK_SIZE,
            )?)
        })
        .await
    }

    /// [`Client::put`] of what `reader` yields (a file, say): read and
    /// encrypted on a thread of its own, a few chunks ahead of the upload,
    /// in constant memory.
    pub async fn put_reader<R: std::io::Read + Send + 'static>(
        &self,
        reader: R,
        media_type: &str,
    ) -> Result<PutOutcome, ClientError> {
        self.put_sealed(media_type, move |key| {
            Ok(envelope::encrypt_reader_stream(
                key,
                &mut OsRng,
                reader,
                DEFAULT_CHUNK_SIZE,
            )?)
        })
        .await
    }

    /// Makes a record key and a data key, uploads the ciphertext `seal` makes
    /// under the data key, and registers the record.
    async fn put_sealed(
        &self,
        media_type: &str,
        seal: impl FnOnce(&DataKey) -> Result<ByteStream, ClientError>,
    ) -> Result<PutOutcome, ClientError> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let record_id = RecordId::derive(&self.account(), &salt);
        let (identity, pre) = (self.identity.clone(), self.pre.clone());
        let (record_key, capsule, key) = blocking(move || {
            let (_, pk) = pre.record_key(&identity.master, &record_id);
            let (capsule, key) = pre.encapsulate(&mut OsRng, &pk)?;
            Ok((pk.to_bytes(), capsule.to_bytes(), key))
        })
        .await?;
        let ciphertext = seal(&key)?;
        drop(key);
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = counted.clone();
        let ciphertext: ByteStream = Box::pin(ciphertext.inspect(move |item| {
            if let Ok(b) = item {
                counter.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        let cid = self
            .replicas
            .put_blob(
                ciphertext,
                self.authorization(Authorization::upload_scope()),
            )
            .await
            .map_err(|e| match e {
                NodeError::Blob(rr_core::BlobError::Source(io)) => {
                    io_err("reading the record to encrypt")(io)
                }
                other => ClientError::Node(other),
            })?;
        let size = counted.load(std::sync::atomic::Ordering::Relaxed);
        let call = Call::RegisterRecord(RegisterRecord {
            salt,
            cid,
            size,
            scheme: P::ID,
            record_key,
            capsule,
            media_type: media_type.to_string(),
            encrypted_metadata: None,
        });
        match self.execute(call).await? {
            (CallOutput::Registered { record }, tx, certified_at) if record == record_id => {
                Ok(PutOutcome {
                    record_id,
                    cid,
                    size,
                    tx,
                    certified_at,
                })
            }
            other => Err(ClientError::Unexpected(format!(
                "register answered {other:?}"
            ))),
        }
    }

    /// [`Client::put`] of a whole file, streamed (see [`Client::put_reader`]).
    pub async fn put_file(&self, path: &Path, media_type: &str) -> Result<PutOutcome, ClientError> {
        let file =
            std::fs::File::open(path).map_err(io_err(format!("cannot open {}", path.display())))?;
        self.put_reader(file, media_type).await
    }

    /// Grants `grantee` access to one of this client's records: makes the key
    /// fragments, commits the grant (with a commitment to each fragment), then
    /// delivers each replica its fragment.
    pub async fn grant(
        &self,
        record: RecordId,
        grantee: &PublicCard,
        options: GrantOptions,
    ) -> Result<GrantId, ClientError> {
        Ok(self
            .grant_with_report(record, grantee, options)
            .await?
            .grant)
    }

    /// [`Client::grant`], also returning the fragments of replicas that did
    /// not take theirs (down at the time), to deliver later with
    /// [`Client::redeliver`]. They are sealed to their replica, so keeping
    /// them on the client's disk reveals nothing.
    pub async fn grant_with_report(
        &self,
        record: RecordId,
        grantee: &PublicCard,
        options: GrantOptions,
    ) -> Result<GrantReport, ClientError> {
        grantee.verify()?;
        let info = self.certified_record(record).await?;
        if info.owner != self.account() {
            return Err(ClientError::NotOwner {
                caller: self.account(),
                record,
                action: "grant access to it",
            });
        }
        self.check_scheme(&info)?;
        let grantee_key = grantee.key_bytes(record, info.scheme)?;
        // n and f from the trusted replica set, never from an answer.
        let n = self.replicas.n() as u16;
        // A single-proxy scheme (recrypt) takes threshold 1 only.
        let single_proxy = self.pre.check_threshold(Threshold { m: 2, n: 3 }).is_err();
        let default_m = if single_proxy {
            1
        } else {
            self.replicas.f() as u16 + 1
        };
        let m = options.threshold.unwrap_or(default_m);
        let threshold = Threshold::new(m, n)
            .map_err(|e| ClientError::Unexpected(format!("threshold for {n} replicas: {e}")))?;
        let (identity, pre) = (self.identity.clone(), self.pre.clone());
        let gk = grantee_key.clone();
        // Fragment i is sealed to replica i (a dev node takes it unsealed).
        let sealing = self.replicas.sealing_keys();
        let grantee_account = grantee.account;
        let fragments: Vec<Vec<u8>> = blocking(move || {
            pre.check_threshold(threshold)?;
            let grantee_pk = <P as PreScheme>::PublicKey::from_bytes(&gk)?;
            let (sk, _) = pre.record_key(&identity.master, &record);
            let kfrags = pre.delegate(&mut OsRng, &sk, &grantee_pk, threshold)?;
            kfrags
                .iter()
                .zip(&sealing)
                .enumerate()
                .map(|(i, (k, to))| match to {
                    None => Ok(k.to_bytes()),
                    Some(to) => crate::sealing::seal(
                        to,
                        &crate::sealing::Slot {
                            record,
                            grantee: grantee_account,
                            replica: rr_core::ReplicaId(i as u16),
                        },
                        &k.to_bytes(),
                    )
                    .map_err(|e| ClientError::Unexpected(format!("sealing fragment {i}: {e}"))),
                })
                .collect()
        })
        .await?;
        let call = Call::Grant(Grant {
            record,
            grantee: grantee.account,
            grantee_key,
            threshold,
            fragment_commitments: fragments
                .iter()
                .map(|f| Digest::fragment_commitment(f))
                .collect(),
            purpose: options.purpose,
            expires_at: options.expires_at,
        });
        let (grant, tx, certified_at) = match self.execute(call).await? {
            (CallOutput::Granted { grant }, tx, at) => (grant, tx, at),
            (other, _, _) => {
                return Err(ClientError::Unexpected(format!("grant answered {other:?}")))
            }
        };
        // Fragment i to replica i (one replica takes the fragment of its own
        // index). Each checks its fragment against the committed grant.
        let delivery = self
            .replicas
            .deliver_fragments(grant, fragments.clone())
            .await?;
        if delivery.delivered.len() < usize::from(m) {
            return Err(ClientError::Undelivered {
                grant,
                delivered: delivery.delivered.len(),
                needed: usize::from(m),
                skipped: delivery
                    .skipped
                    .iter()
                    .map(|s| format!("replica {}: {}", s.replica.0, s.reason))
                    .collect(),
            });
        }
        let mut pending = Vec::new();
        for s in &delivery.skipped {
            tracing::warn!(target: "rr_node::client", grant = %grant.short(), replica = %s.replica, reason = %s.reason, "a replica did not take its key fragment");
            if let Some(fragment) = fragments.get(usize::from(s.replica.0)) {
                pending.push(PendingFragment {
                    grant,
                    replica: s.replica,
                    fragment: fragment.clone(),
                    reason: s.reason.clone(),
                });
            }
        }
        Ok(GrantReport {
            grant,
            tx,
            certified_at,
            delivered: delivery.delivered,
            pending,
        })
    }

    /// Delivers a fragment a replica did not take at grant time. A revoked
    /// or expired grant is refused (there is nothing left to deliver).
    pub async fn redeliver(&self, pending: &PendingFragment) -> Result<(), ClientError> {
        Ok(self
            .replicas
            .deliver_fragment_to(pending.replica, pending.grant, pending.fragment.clone())
            .await?)
    }

    /// Retrieves a record through a grant made to this client: the call is
    /// ordered and audited; the replica's capsule fragments are verified and
    /// opened here, and the ciphertext is fetched, checked and decrypted as a
    /// stream. The stream ends with an error, not cleanly, if the ciphertext
    /// was tampered with or truncated: act on the plaintext only once it ends.
    pub async fn retrieve(
        &self,
        grant: GrantId,
        purpose: Purpose,
    ) -> Result<ByteStream, ClientError> {
        Ok(self.retrieve_with_report(grant, purpose).await?.0)
    }

    /// [`Client::retrieve`], also saying which replicas' capsule fragments
    /// opened the record and which replicas were skipped (down, refused, or
    /// a fragment that failed verification), and why.
    pub async fn retrieve_with_report(
        &self,
        grant: GrantId,
        purpose: Purpose,
    ) -> Result<(ByteStream, RetrieveReport), ClientError> {
        let tx = self
            .identity
            .sign(Call::Retrieve(Retrieve { grant, purpose }));
        self.retrieve_signed(tx).await
    }

    /// [`Client::retrieve_with_report`] of a `Retrieve` call this client
    /// signed itself (so it knows the transaction id whatever the outcome,
    /// or sends the same call again).
    pub async fn retrieve_signed(
        &self,
        tx: SignedTransaction,
    ) -> Result<(ByteStream, RetrieveReport), ClientError> {
        let answers = self.replicas.retrieve(tx).await?;
        self.check_scheme(&answers.record)?;
        let (identity, pre) = (self.identity.clone(), self.pre.clone());
        let record = answers.record.clone();
        let (key, report) = blocking(move || identity.open_retrieval(&*pre, answers)).await?;
        Ok((self.decrypt_blob(&record, key).await?, report))
    }

    /// Reads one of this client's own records (no grant, no node-side crypto).
    pub async fn read_own(&self, record: RecordId) -> Result<ByteStream, ClientError> {
        let info = self.certified_record(record).await?;
        if info.owner != self.account() {
            return Err(ClientError::NotOwner {
                caller: self.account(),
                record,
                action: "read it without a grant",
            });
        }
        self.check_scheme(&info)?;
        let (identity, pre) = (self.identity.clone(), self.pre.clone());
        let capsule_bytes = info.capsule.clone();
        let key = blocking(move || {
            let capsule = <P as PreScheme>::Capsule::from_bytes(&capsule_bytes)?;
            let (sk, _) = pre.record_key(&identity.master, &record);
            Ok(pre.open(&sk, &capsule)?)
        })
        .await?;
        self.decrypt_blob(&info, key).await
    }

    /// A record from certified state; [`NodeError::UnknownRecord`] if it is
    /// proven absent.
    async fn certified_record(&self, record: RecordId) -> Result<RecordInfo, ClientError> {
        let auth = self.authorization(Authorization::record_scope(&record));
        self.replicas
            .record(record, auth)
            .await?
            .value
            .ok_or(ClientError::Node(NodeError::UnknownRecord(record)))
    }

    /// A grant from certified state; [`NodeError::UnknownGrant`] if it is
    /// proven absent.
    async fn certified_grant(&self, grant: GrantId) -> Result<GrantInfo, ClientError> {
        let auth = self.authorization(Authorization::grant_scope(&grant));
        self.replicas
            .grant(grant, auth)
            .await?
            .value
            .ok_or(ClientError::Node(NodeError::UnknownGrant(grant)))
    }

    /// [`ClientError::ClientScheme`] unless the record uses this client's scheme.
    fn check_scheme(&self, record: &RecordInfo) -> Result<(), ClientError> {
        if record.scheme == P::ID {
            return Ok(());
        }
        Err(ClientError::ClientScheme {
            record: record.id,
            record_scheme: record.scheme,
            client: P::ID,
        })
    }

    async fn decrypt_blob(
        &self,
        record: &RecordInfo,
        key: DataKey,
    ) -> Result<ByteStream, ClientError> {
        let ciphertext = self.replicas.get_blob(record.cid).await?;
        Ok(envelope::decrypt_stream(&key, ciphertext))
    }

    /// Revokes a grant this client made; this replica erases its fragment.
    pub async fn revoke(&self, grant: GrantId) -> Result<(), ClientError> {
        self.revoke_with_report(grant, ERASURE_WAIT).await.map(drop)
    }

    /// Revokes a grant and, on a cluster, waits (up to `wait`) until
    /// `n - m + 1` replicas have confirmed on the ledger that they erased
    /// their key fragment: then fewer than `m` replicas can still hold one,
    /// so nobody can re-encrypt for the grant any more. A single dev node
    /// erases before its answer and confirms nothing.
    pub async fn revoke_with_report(
        &self,
        grant: GrantId,
        wait: std::time::Duration,
    ) -> Result<RevokeReport, ClientError> {
        let (tx, certified_at) = match self.execute(Call::Revoke(Revoke { grant })).await? {
            (CallOutput::Revoked { .. }, tx, at) => (tx, at),
            (other, _, _) => {
                return Err(ClientError::Unexpected(format!(
                    "revoke answered {other:?}"
                )))
            }
        };
        let info = self.certified_grant(grant).await?;
        let n = usize::from(info.threshold.n);
        if n <= 1 {
            return Ok(RevokeReport {
                confirmed_by: info.erased_by,
                needed: 0,
                tx,
                certified_at,
            });
        }
        let needed = n - usize::from(info.threshold.m) + 1;
        let deadline = tokio::time::Instant::now() + wait;
        let mut confirmed_by = info.erased_by;
        while confirmed_by.len() < needed {
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::ErasureUnconfirmed {
                    grant,
                    confirmed_by,
                    needed,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            confirmed_by = self.certified_grant(grant).await?.erased_by;
        }
        Ok(RevokeReport {
            confirmed_by,
            needed,
            tx,
            certified_at,
        })
    }

    /// The audit trail of one of this client's records.
    pub async fn audit(&self, record: RecordId) -> Result<Vec<AuditEntry>, ClientError> {
        Ok(self.audit_certified(record).await?.value)
    }

    /// [`Client::audit`] with the certificate and proofs it was checked
    /// against (to export, see [`crate::receipt`]).
    pub async fn audit_certified(
        &self,
        record: RecordId,
    ) -> Result<crate::replicas::Verified<Vec<AuditEntry>>, ClientError> {
        let auth = self.authorization(Authorization::audit_scope(&record));
        Ok(self.replicas.audit(record, auth).await?)
    }

    /// The grants of one of this client's records.
    pub async fn grants_of(&self, record: RecordId) -> Result<Vec<GrantInfo>, ClientError> {
        let auth = self.authorization(Authorization::grants_scope(&record));
        Ok(self.replicas.grants_of_record(record, auth).await?.value)
    }

    /// The records this client owns and the grants it holds.
    pub async fn listing(&self) -> Result<(Vec<RecordInfo>, Vec<GrantInfo>), ClientError> {
        let account = self.account();
        let auth = self.authorization(Authorization::listing_scope(&account));
        Ok(self.replicas.listing(account, auth).await?.value)
    }
}

/// One client for every scheme this build has (Umbral, and recrypt with
/// the `recrypt` feature), acting as one [`RootIdentity`]. Records carry
/// their scheme: a grant, retrieval or read of a record dispatches to the
/// client of that record's scheme, read from certified state, so an app
/// never has to know a record's scheme beforehand. New records use the
/// default scheme (Umbral unless [`AnyClient::with_default_scheme`] says
/// otherwise).
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rr_core::{byte_stream_of, Purpose, SchemeId};
/// use rr_node::{collect, AnyClient, DevConfig, GrantOptions, Node, Replicas, RootIdentity};
///
/// let dir = tempfile::tempdir()?;
/// let node = Node::open_dev(DevConfig::new(dir.path())).await?;
/// let replicas = || Replicas::single(node.clone(), node.replica_set().keys()[0]);
/// let alice = AnyClient::new(replicas()?, &RootIdentity::generate())?
///     .with_default_scheme(SchemeId::RECRYPT)?;
/// let bob = AnyClient::new(replicas()?, &RootIdentity::generate())?;
/// let put = alice.put(byte_stream_of(b"allergies: none".to_vec()), "text/plain").await?;
/// let treatment = Purpose::new("treatment")?;
/// let options = GrantOptions { purpose: treatment.clone(), expires_at: None, threshold: None };
/// let grant = alice.grant(put.record_id, &bob.card(), options).await?;
/// // Bob does not say which scheme: the record does.
/// assert_eq!(collect(bob.retrieve(grant, treatment).await?).await?, b"allergies: none");
/// node.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct AnyClient {
    umbral: Option<Client<Umbral>>,
    #[cfg(feature = "recrypt")]
    recrypt: Option<Client<Recrypt>>,
    default_scheme: SchemeId,
    card: PublicCard,
}

impl std::fmt::Debug for AnyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyClient")
            .field("account", &self.card.account)
            .field("schemes", &self.schemes())
            .field("default_scheme", &self.default_scheme)
            .finish()
    }
}

/// Runs `$body` with `$c` bound to the typed client of `$scheme`.
macro_rules! dispatch {
    ($self:expr, $scheme:expr, $c:ident => $body:expr) => {{
        let scheme: SchemeId = $scheme;
        match scheme {
            SchemeId::UMBRAL if $self.umbral.is_some() => {
                let $c = $self.umbral.as_ref().expect("checked");
                $body
            }
            #[cfg(feature = "recrypt")]
            SchemeId::RECRYPT if $self.recrypt.is_some() => {
                let $c = $self.recrypt.as_ref().expect("checked");
                $body
            }
            other => Err($self.no_scheme(other)),
        }
    }};
}

impl AnyClient {
    /// A client of `replicas` for every scheme `identity` has a key for.
    pub fn new(replicas: Replicas, identity: &RootIdentity) -> Result<Self, ClientError> {
        let umbral = identity
            .for_scheme(&Umbral)
            .ok()
            .map(|id| Client::new(replicas.clone(), Arc::new(Umbral), id));
        #[cfg(feature = "recrypt")]
        let recrypt = identity
            .for_scheme(&Recrypt)
            .ok()
            .map(|id| Client::new(replicas.clone(), Arc::new(Recrypt), id));
        let default_scheme = identity.schemes()[0];
        Ok(Self {
            umbral,
            #[cfg(feature = "recrypt")]
            recrypt,
            default_scheme,
            card: identity.card(),
        })
    }

    /// The same client, making new records of `scheme`.
    pub fn with_default_scheme(mut self, scheme: SchemeId) -> Result<Self, ClientError> {
        if !self.schemes().contains(&scheme) {
            return Err(self.no_scheme(scheme));
        }
        self.default_scheme = scheme;
        Ok(self)
    }

    /// The schemes this client has keys for.
    pub fn schemes(&self) -> Vec<SchemeId> {
        let mut out = Vec::new();
        if self.umbral.is_some() {
            out.push(SchemeId::UMBRAL);
        }
        #[cfg(feature = "recrypt")]
        if self.recrypt.is_some() {
            out.push(SchemeId::RECRYPT);
        }
        out
    }

    fn no_scheme(&self, scheme: SchemeId) -> ClientError {
        ClientError::NoSchemeKey {
            account: self.card.account,
            scheme,
            available: self.schemes(),
        }
    }

    /// The account.
    pub fn account(&self) -> AccountId {
        self.card.account
    }

    /// The public card others grant to: one key per scheme.
    pub fn card(&self) -> PublicCard {
        self.card.clone()
    }

    /// The scheme of `record`, from certified state.
    pub async fn scheme_of(&self, record: RecordId) -> Result<SchemeId, ClientError> {
        let any = self.any()?;
        Ok(any.certified_record(record).await?.scheme)
    }

    /// Some typed client: for what only the account key signs (revocations,
    /// audit trails, listings), where no PRE key is involved.
    fn any(&self) -> Result<&dyn AccountCalls, ClientError> {
        if let Some(c) = &self.umbral {
            return Ok(c);
        }
        #[cfg(feature = "recrypt")]
        if let Some(c) = &self.recrypt {
            return Ok(c);
        }
        Err(self.no_scheme(self.default_scheme))
    }

    /// Encrypts and registers a record of the default scheme.
    pub async fn put(&self, data: ByteStream, media_type: &str) -> Result<PutOutcome, ClientError> {
        dispatch!(self, self.default_scheme, c => c.put(data, media_type).await)
    }

    /// Grants `grantee` access to `record`, with the record's scheme.
    pub async fn grant(
        &self,
        record: RecordId,
        grantee: &PublicCard,
        options: GrantOptions,
    ) -> Result<GrantId, ClientError> {
        let scheme = self.scheme_of(record).await?;
        dispatch!(self, scheme, c => c.grant(record, grantee, options).await)
    }

    /// Retrieves and decrypts a record through a grant made to this
    /// client, with the record's scheme.
    pub async fn retrieve(
        &self,
        grant: GrantId,
        purpose: Purpose,
    ) -> Result<ByteStream, ClientError> {
        let any = self.any()?;
        let info = any.certified_grant(grant).await?;
        let scheme = any.certified_record(info.record).await?.scheme;
        dispatch!(self, scheme, c => c.retrieve(grant, purpose).await)
    }

    /// Reads a record this client owns, with the record's scheme.
    pub async fn read_own(&self, record: RecordId) -> Result<ByteStream, ClientError> {
        let scheme = self.scheme_of(record).await?;
        dispatch!(self, scheme, c => c.read_own(record).await)
    }

    /// Revokes a grant (any scheme: only the account key signs).
    pub async fn revoke(&self, grant: GrantId) -> Result<(), ClientError> {
        self.any()?.revoke_grant(grant).await
    }

    /// A record's audit trail, certified (owner only).
    pub async fn audit(&self, record: RecordId) -> Result<Vec<AuditEntry>, ClientError> {
        self.any()?.audit_trail(record).await
    }
}

/// What every typed client does the same way, whatever its scheme.
#[async_trait::async_trait]
trait AccountCalls: Send + Sync {
    async fn certified_record(&self, record: RecordId) -> Result<RecordInfo, ClientError>;
    async fn certified_grant(&self, grant: GrantId) -> Result<GrantInfo, ClientError>;
    async fn revoke_grant(&self, grant: GrantId) -> Result<(), ClientError>;
    async fn audit_trail(&self, record: RecordId) -> Result<Vec<AuditEntry>, ClientError>;
}

#[async_trait::async_trait]
impl<P: PreScheme> AccountCalls for Client<P> {
    async fn certified_record(&self, record: RecordId) -> Result<RecordInfo, ClientError> {
        Client::certified_record(self, record).await
    }
    async fn certified_grant(&self, grant: GrantId) -> Result<GrantInfo, ClientError> {
        Client::certified_grant(self, grant).await
    }
    async fn revoke_grant(&self, grant: GrantId) -> Result<(), ClientError> {
        self.revoke(grant).await
    }
    async fn audit_trail(&self, record: RecordId) -> Result<Vec<AuditEntry>, ClientError> {
        self.audit(record).await
    }
}

/// Writes a plaintext stream to `path` only if it ends cleanly: it goes to
/// a temporary file beside `path` first, and a failed stream leaves no
/// output file.
///
/// The file is written on a blocking thread, a few chunks behind the stream,
/// so that writing overlaps receiving and decrypting.
pub async fn write_stream_to_file(mut stream: ByteStream, path: &Path) -> Result<u64, ClientError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".rr-partial-")
        .tempfile_in(dir)
        .map_err(io_err(format!("cannot create a file in {}", dir.display())))?;
    let (mut file, tmp_path) = tmp.into_parts();
    let (queue, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write as _;
        while let Some(chunk) = chunks.blocking_recv() {
            file.write_all(&chunk)?;
        }
        file.sync_all()
    });
    let mut written = 0u64;
    let received = async {
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk.map_err(io_err("reading the record"))?;
            written += chunk.len() as u64;
            if queue.send(chunk).await.is_err() {
                // The writer failed: its error is reported below.
                break;
            }
        }
        Ok::<(), ClientError>(())
    }
    .await;
    let write_error = |e| io_err(format!("writing {}", path.display()))(e);
    match received {
        Ok(()) => {
            drop(queue);
            writer
                .await
                .map_err(|e| ClientError::Unexpected(format!("the file writer failed: {e}")))?
                .map_err(write_error)?;
        }
        Err(e) => {
            // Stop the writer and let it close the file before the temporary
            // file is removed.
            drop(queue);
            let _ = writer.await;
            return Err(e);
        }
    }
    tmp_path.persist(path).map_err(|e| write_error(e.error))?;
    Ok(written)
}

/// How many chunks [`write_stream_to_file`] queues for its writer thread.
const WRITE_QUEUE: usize = 4;

/// Collects a stream into memory (for small records and tests).
pub async fn collect(mut stream: ByteStream) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(io_err("reading the record"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_card_has_a_key_per_scheme_and_the_documented_json() {
        let bob = RootIdentity::generate();
        let card = bob.card();
        let v = serde_json::to_value(&card).unwrap();
        let umbral = card.key_for(SchemeId::UMBRAL).unwrap();
        let recrypt = card.key_for(SchemeId::RECRYPT).unwrap();
        let signature = v["signature"].as_str().expect("a signed card").to_string();
        assert_eq!(
            v,
            json!({
                "account": bob.account().to_string(),
                "scheme": "umbral",
                "pre_public_key": umbral,
                "pre_public_keys": {"umbral": umbral, "recrypt": recrypt},
                "signature": signature,
            })
        );
        let back = serde_json::from_value::<PublicCard>(v.clone()).unwrap();
        assert_eq!(back, card);
        back.verify().unwrap();
        // A swapped key, a card made for another account, or no signature:
        // refused.
        let mut swapped = v.clone();
        swapped["pre_public_keys"]["umbral"] = json!(recrypt);
        swapped["pre_public_key"] = json!(recrypt);
        let swapped: PublicCard = serde_json::from_value(swapped).unwrap();
        assert!(matches!(
            swapped.verify(),
            Err(ClientError::UnsignedCard { .. })
        ));
        let mut other = v.clone();
        other["account"] = json!(RootIdentity::generate().account().to_string());
        assert!(serde_json::from_value::<PublicCard>(other)
            .unwrap()
            .verify()
            .is_err());
        let mut unsigned = v;
        unsigned.as_object_mut().unwrap().remove("signature");
        assert!(serde_json::from_value::<PublicCard>(unsigned)
            .unwrap()
            .verify()
            .is_err());
    }

    #[test]
    fn cards_of_the_first_format_read_as_umbral_only() {
        let old = Identity::generate(&Umbral);
        let key = old.card(&Umbral).pre_public_key().to_string();
        let v = json!({"account": old.account().to_string(), "scheme": 1, "pre_public_key": key});
        let card: PublicCard = serde_json::from_value(v).unwrap();
        assert_eq!(card.account, old.account());
        assert_eq!(card.key_for(SchemeId::UMBRAL), Some(key.as_str()));
        assert_eq!(card.schemes(), [SchemeId::UMBRAL]);
        // Unsigned: read, but not granted to.
        assert!(matches!(
            card.verify(),
            Err(ClientError::UnsignedCard { .. })
        ));
        assert!(card.key_for(SchemeId::RECRYPT).is_none());
        let err = card
            .key_bytes(RecordId([1; 32]), SchemeId::RECRYPT)
            .unwrap_err();
        assert!(matches!(err, ClientError::SchemeMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("has no recrypt key"), "{msg}");
        assert!(msg.contains("it has keys for umbral"), "{msg}");
    }

    #[test]
    fn inconsistent_or_empty_cards_are_refused_and_unknown_schemes_skipped() {
        let account = AccountId([3; 32]).to_string();
        let differs = json!({
            "account": account, "scheme": "umbral", "pre_public_key": "aa",
            "pre_public_keys": {"umbral": "bb"},
        });
        let err = serde_json::from_value::<PublicCard>(differs).unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
        let unknown = json!({"account": account, "scheme": "nope", "pre_public_key": "aa"});
        let err = serde_json::from_value::<PublicCard>(unknown).unwrap_err();
        assert!(err.to_string().contains("umbral, recrypt"), "{err}");
        // A newer rr's extra scheme is skipped; the rest of the card works.
        let newer = json!({
            "account": account, "scheme": "recrypt", "pre_public_key": "cc",
            "pre_public_keys": {"recrypt": "cc", "future": "dd"},
        });
        let card: PublicCard = serde_json::from_value(newer).unwrap();
        assert_eq!(card.schemes(), [SchemeId::RECRYPT]);
        assert_eq!(card.scheme(), SchemeId::RECRYPT);
        assert_eq!(card.pre_public_key(), "cc");
    }

    #[test]
    fn derived_identities_share_the_account_and_differ_in_keys() {
        let root = RootIdentity::from_root_bytes(&[1; 32], &[2; 32]);
        let u = root.for_scheme(&Umbral).unwrap();
        let r = root.for_scheme(&Recrypt).unwrap();
        assert_eq!(u.account(), root.account());
        assert_eq!(r.account(), root.account());
        let again = RootIdentity::from_root_bytes(&[1; 32], &[2; 32]);
        assert_eq!(again.card(), root.card());
        assert_eq!(root.schemes(), CLIENT_SCHEMES);
        assert!(!format!("{root:?}").contains("0202"), "{root:?}");
    }
}
