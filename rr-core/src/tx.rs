//! Signed transactions and the verified type only signature checking produces.
//!
//! # How signatures are checked
//!
//! Every replica checks every transaction signature and all must reach the
//! same verdict, whether a replica checks one signature at a time
//! ([`SignedTransaction::verify`]) or many at once
//! ([`SignedTransaction::verify_batch`], about twice as fast). So the rules are
//! [ZIP-215](https://zips.z.cash/zip-0215)'s, whose cofactored equation gives
//! single and batch verification the same answer, plus a refusal of signer keys
//! of small order and of non-canonical encodings of the key and of `R`
//! (see [`crate::sig`] for the reasoning). Not `verify_strict`: its
//! cofactorless check cannot be batched without replicas disagreeing.
//!
//! A transaction id hashes the signature too, and a signer can always sign the
//! same body again (fresh randomness, or a small-order component in `R`, which
//! these rules accept), so one call can have several valid encodings and
//! ids. Nobody else can make one: `R` is hashed into the signature, and `s`
//! must be reduced. What makes a call take effect once is its nonce: the
//! contracts refuse a (signer, nonce) pair already used, whatever the
//! signature bytes.

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::call::Call;
use crate::codec;
use crate::error::{DecodeError, SignatureError, TxError};
use crate::ids::{AccountId, TxId};
use crate::sig;

/// Domain separator prefixed to every signed transaction body, so a
/// transaction signature can never be mistaken for a signature on anything else.
const TX_DOMAIN: &[u8] = b"resilient-records/tx/v1\0";

/// The largest encoded transaction accepted anywhere (64 KiB). Calls carry
/// keys, capsules and commitments, never record data.
pub const MAX_TX_BYTES: usize = 64 * 1024;

/// What the signer signs: who, a nonce, and the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxBody {
    /// The signing account.
    pub signer: AccountId,
    /// A number the signer never uses twice; a nonce seen before is refused,
    /// so a captured transaction cannot be replayed.
    pub nonce: u64,
    /// The call.
    pub call: Call,
}

impl TxBody {
    /// The bytes the signer signs: a domain tag, then the body's canonical
    /// encoding. A client in another language signs exactly these.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut msg = TX_DOMAIN.to_vec();
        msg.extend_from_slice(&codec::encode(self));
        msg
    }

    /// Signs the body with `key`. The body's `signer` must be `key`'s account,
    /// or verification will fail.
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        let signature = key.sign(&self.signing_bytes()).to_bytes();
        SignedTransaction {
            body: self,
            signature: signature.to_vec(),
        }
    }
}

/// A transaction as it arrives from a client or off the wire: not yet checked.
/// Only [`SignedTransaction::verify`] turns it into a [`VerifiedTransaction`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedTransaction {
    /// The signed body.
    pub body: TxBody,
    /// ed25519 signature (64 bytes) over the domain-separated body.
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-f]{128}$"))]
    pub signature: Vec<u8>,
}

impl SignedTransaction {
    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes, refusing oversized input and trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_canonical("transaction", bytes, MAX_TX_BYTES)
    }

    /// The transaction id: a hash of the canonical bytes.
    pub fn id(&self) -> TxId {
        TxId(*blake3::hash(&self.to_bytes()).as_bytes())
    }

    /// The canonical bytes, refused when over [`MAX_TX_BYTES`].
    fn checked_bytes(&self) -> Result<Vec<u8>, TxError> {
        let bytes = self.to_bytes();
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::Malformed(DecodeError::TooLarge {
                what: "transaction",
                size: bytes.len(),
                limit: MAX_TX_BYTES,
            }));
        }
        Ok(bytes)
    }

    fn bad_signature(&self) -> TxError {
        TxError::BadSignature(SignatureError {
            signer: self.body.signer,
        })
    }

    /// Checks the size limit, then the signature against the signer's key.
    ///
    /// The rules are [ZIP-215](https://zips.z.cash/zip-0215)'s (cofactored
    /// verification, `s` reduced), plus a refusal of signer keys of small
    /// order and of non-canonical encodings of the key and of `R`: see
    /// [`crate::sig`] for why. They give the same verdict as
    /// [`SignedTransaction::verify_batch`], so every replica agrees on every
    /// transaction however it verifies.
    pub fn verify(self) -> Result<VerifiedTransaction, TxError> {
        let bytes = self.checked_bytes()?;
        if !sig::verify(
            &self.body.signer.0,
            &self.signature,
            &self.body.signing_bytes(),
        ) {
            return Err(self.bad_signature());
        }
        let id = TxId(*blake3::hash(&bytes).as_bytes());
        Ok(VerifiedTransaction { tx: self, id })
    }

    /// Verifies many transactions at once: the same verdict on each as
    /// [`SignedTransaction::verify`], for about half the work when all
    /// signatures are good (one ed25519 batch verification; see
    /// [`sig::BatchVerifier`]). When the batch fails, each signature is checked
    /// on its own, so only the bad transactions are refused.
    pub fn verify_batch(txs: Vec<SignedTransaction>) -> Vec<Result<VerifiedTransaction, TxError>> {
        if txs.len() == 1 {
            return txs.into_iter().map(SignedTransaction::verify).collect();
        }
        let mut batch = sig::BatchVerifier::with_capacity(txs.len());
        let checked: Vec<_> = txs
            .into_iter()
            .map(|tx| -> Result<_, TxError> {
                let bytes = tx.checked_bytes()?;
                let slot = batch.queue(&tx.body.signer.0, &tx.signature, &tx.body.signing_bytes());
                Ok((tx, bytes, slot))
            })
            .collect();
        let verdicts = batch.verify();
        checked
            .into_iter()
            .map(|c| {
                let (tx, bytes, slot) = c?;
                if !verdicts[slot] {
                    return Err(tx.bad_signature());
                }
                let id = TxId(*blake3::hash(&bytes).as_bytes());
                Ok(VerifiedTransaction { tx, id })
            })
            .collect()
    }
}

/// A transaction whose signature has been checked. Can only be made by
/// [`SignedTransaction::verify`] or [`SignedTransaction::verify_batch`] (or
/// [`VerifiedTransaction::from_trusted`] for transactions read back from the
/// node's own ledger).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTransaction {
    tx: SignedTransaction,
    id: TxId,
}

impl VerifiedTransaction {
    /// The signed transaction.
    pub fn tx(&self) -> &SignedTransaction {
        &self.tx
    }

    /// The body.
    pub fn body(&self) -> &TxBody {
        &self.tx.body
    }

    /// The signer.
    pub fn signer(&self) -> AccountId {
        self.tx.body.signer
    }

    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Back to the unchecked form (for storing or sending).
    pub fn into_inner(self) -> SignedTransaction {
        self.tx
    }

    /// Wraps a transaction without checking it. Only for transactions this
    /// node verified before writing them to its own ledger (a restart must not
    /// pay for every signature again); never for anything off the network.
    pub fn from_trusted(tx: SignedTransaction) -> Self {
        let id = tx.id();
        Self { tx, id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Call, Revoke};
    use crate::ids::GrantId;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn body(signer: &SigningKey, nonce: u64) -> TxBody {
        TxBody {
            signer: AccountId::from_verifying_key(&signer.verifying_key()),
            nonce,
            call: Call::Revoke(Revoke {
                grant: GrantId([9; 32]),
            }),
        }
    }

    #[test]
    fn sign_verify_round_trip() {
        let k = key(1);
        let tx = body(&k, 5).sign(&k);
        let bytes = tx.to_bytes();
        let back = SignedTransaction::from_bytes(&bytes).unwrap();
        let v = back.verify().unwrap();
        assert_eq!(v.id(), tx.id());
        assert_eq!(v.body().nonce, 5);
    }

    #[test]
    fn forged_and_tampered_signatures_are_refused() {
        let alice = key(1);
        let mallory = key(2);
        // Signed by Mallory, claiming Alice.
        let forged = body(&alice, 1).sign(&mallory);
        let err = forged.verify().unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        // Signed by Alice, then the nonce changed.
        let mut tampered = body(&alice, 1).sign(&alice);
        tampered.body.nonce = 2;
        assert!(tampered.verify().is_err());
        // Truncated signature.
        let mut short = body(&alice, 1).sign(&alice);
        short.signature.pop();
        assert!(short.verify().is_err());
    }

    #[test]
    fn garbage_bytes_are_refused() {
        let k = key(3);
        let good = body(&k, 1).sign(&k).to_bytes();
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            SignedTransaction::from_bytes(&trailing),
            Err(DecodeError::TrailingBytes { .. })
        ));
        assert!(SignedTransaction::from_bytes(&good[..good.len() - 1]).is_err());
        assert!(SignedTransaction::from_bytes(&[0xff; 10]).is_err());
        assert!(matches!(
            SignedTransaction::from_bytes(&vec![0; MAX_TX_BYTES + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    /// A transaction signed by a hand-made key, with `torsion` added to `R`.
    fn hand_signed(
        rng: &mut impl rand::RngCore,
        key: &crate::sig::test_keys::Key,
        nonce: u64,
        torsion: curve25519_dalek::EdwardsPoint,
    ) -> SignedTransaction {
        let body = TxBody {
            signer: AccountId(key.a_bytes),
            nonce,
            call: Call::Revoke(Revoke {
                grant: GrantId([9; 32]),
            }),
        };
        let sig = crate::sig::test_keys::sign_with(rng, key, &body.signing_bytes(), torsion);
        SignedTransaction {
            body,
            signature: sig.to_vec(),
        }
    }

    #[test]
    fn torsion_in_r_gets_the_same_verdict_singly_and_in_batches() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let odd_key = crate::sig::test_keys::key(&mut rng);
        for run in 0..100u64 {
            let odd = hand_signed(&mut rng, &odd_key, run, EIGHT_TORSION[1 + run as usize % 7]);
            assert!(odd.clone().verify().is_ok());
            let mut txs: Vec<_> = (0..9)
                .map(|i| body(&key(i + 1), run).sign(&key(i + 1)))
                .collect();
            txs.insert(run as usize % 10, odd.clone());
            let out = SignedTransaction::verify_batch(txs.clone());
            assert!(out.iter().all(Result::is_ok), "run {run}");
            let ids: Vec<TxId> = out.into_iter().map(|v| v.unwrap().id()).collect();
            assert_eq!(
                ids,
                txs.iter().map(SignedTransaction::id).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_forged_transaction_in_a_batch_is_the_only_one_refused() {
        let alice = key(1);
        let mallory = key(2);
        let mut txs: Vec<_> = (0..20)
            .map(|n| body(&key(10 + n as u8), n).sign(&key(10 + n as u8)))
            .collect();
        // Signed by Mallory, claiming Alice.
        txs[13] = body(&alice, 13).sign(&mallory);
        // Over the size limit.
        txs[4].signature = vec![0; MAX_TX_BYTES];
        let out = SignedTransaction::verify_batch(txs.clone());
        for (i, r) in out.iter().enumerate() {
            match i {
                13 => assert!(
                    matches!(r, Err(TxError::BadSignature(e)) if e.signer == txs[13].body.signer)
                ),
                4 => assert!(matches!(
                    r,
                    Err(TxError::Malformed(DecodeError::TooLarge { .. }))
                )),
                _ => assert_eq!(r.as_ref().unwrap().id(), txs[i].id()),
            }
        }
        assert_eq!(SignedTransaction::verify_batch(vec![]), vec![]);
        assert!(SignedTransaction::verify_batch(vec![txs[13].clone()])[0].is_err());
    }

    #[test]
    fn small_order_signers_are_refused() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::{EdwardsPoint, Scalar};
        for t in EIGHT_TORSION {
            // Anyone can make a cofactored-valid signature for a small-order key.
            let s = Scalar::from_bytes_mod_order([3; 32]);
            let mut tx = TxBody {
                signer: AccountId(t.compress().to_bytes()),
                nonce: 1,
                call: Call::Revoke(Revoke {
                    grant: GrantId([9; 32]),
                }),
            }
            .sign(&key(1));
            let mut sig = EdwardsPoint::mul_base(&s).compress().to_bytes().to_vec();
            sig.extend_from_slice(s.as_bytes());
            tx.signature = sig;
            assert!(matches!(tx.clone().verify(), Err(TxError::BadSignature(_))));
            let good = body(&key(1), 1).sign(&key(1));
            let out = SignedTransaction::verify_batch(vec![good, tx]);
            assert!(out[0].is_ok() && out[1].is_err());
        }
    }
}
