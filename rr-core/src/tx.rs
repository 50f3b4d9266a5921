//! Signed transactions and the verified type only signature checking produces.

use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::call::Call;
use crate::codec;
use crate::error::{DecodeError, SignatureError, TxError};
use crate::ids::{AccountId, TxId};

/// Domain separator prefixed to every signed transaction body, so a
/// transaction signature can never be mistaken for a signature on anything else.
const TX_DOMAIN: &[u8] = b"resilient-records/tx/v1\0";

/// The largest encoded transaction accepted anywhere (64 KiB). Calls carry
/// keys, capsules and commitments, never record data.
pub const MAX_TX_BYTES: usize = 64 * 1024;

/// What the signer signs: who, a nonce, and the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    fn signing_bytes(&self) -> Vec<u8> {
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
pub struct SignedTransaction {
    /// The signed body.
    pub body: TxBody,
    /// ed25519 signature (64 bytes) over the domain-separated body.
    #[serde(with = "crate::codec::hex_bytes")]
    pub signature: Vec<u8>,
}

impl SignedTransaction {
    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes, refusing oversized input and trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode("transaction", bytes, MAX_TX_BYTES)
    }

    /// The transaction id: a hash of the canonical bytes.
    pub fn id(&self) -> TxId {
        TxId(*blake3::hash(&self.to_bytes()).as_bytes())
    }

    /// Checks the size limit, then the signature against the signer's key
    /// (strict ed25519: no malleable or small-order signatures).
    pub fn verify(self) -> Result<VerifiedTransaction, TxError> {
        let bytes = self.to_bytes();
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::Malformed(DecodeError::TooLarge {
                what: "transaction",
                size: bytes.len(),
                limit: MAX_TX_BYTES,
            }));
        }
        let signer = self.body.signer;
        let bad = || TxError::BadSignature(SignatureError { signer });
        let key = signer.verifying_key().map_err(|_| bad())?;
        let sig_bytes: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| bad())?;
        let signature = Signature::from_bytes(&sig_bytes);
        key.verify_strict(&self.body.signing_bytes(), &signature)
            .map_err(|_| bad())?;
        let id = TxId(*blake3::hash(&bytes).as_bytes());
        Ok(VerifiedTransaction { tx: self, id })
    }
}

/// A transaction whose signature has been checked. Can only be made by
/// [`SignedTransaction::verify`] (or [`VerifiedTransaction::from_trusted`] for
/// transactions read back from the node's own ledger).
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
}
