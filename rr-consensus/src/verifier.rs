//! Verification of submitted client transactions in batches.
//!
//! Every replica verifies every client signature: the replica a call is
//! submitted to, and each other replica when the call arrives inside a
//! pre-prepare. The engines verify what arrives from other replicas as one
//! ed25519 batch per message; [`TxVerifier`] does the same for calls arriving
//! one by one from clients, so that under load the replica they are
//! submitted to does not pay for a single verification each.

use rr_core::{SignedTransaction, TxError, VerifiedTransaction};
use tokio::sync::{mpsc, oneshot};

type Job = (
    SignedTransaction,
    oneshot::Sender<Result<VerifiedTransaction, TxError>>,
);

/// Verifies client transactions as they are submitted, gathering concurrent
/// submissions into one ed25519 batch verification on tokio's blocking pool
/// ([`SignedTransaction::verify_batch`]: the same verdict on each call as
/// [`SignedTransaction::verify`], for about half the work).
///
/// Batches form on their own: a batch is whatever is waiting when a worker
/// is free, so a lone call is verified at once, alone, and under load calls
/// pile up while the previous batches are verified. Cheap to clone; the
/// workers stop when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct TxVerifier {
    jobs: mpsc::Sender<Job>,
}

impl TxVerifier {
    /// Starts the verifier: at most `parallelism` batches of at most
    /// `max_batch` calls verified at once. Must be called inside a tokio
    /// runtime.
    pub fn start(max_batch: usize, parallelism: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (jobs, rx) = mpsc::channel::<Job>(max_batch * parallelism.max(1) * 2);
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..parallelism.max(1) {
            let rx = rx.clone();
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::new();
                    {
                        let mut rx = rx.lock().await;
                        if rx.recv_many(&mut batch, max_batch).await == 0 {
                            return;
                        }
                    }
                    let (txs, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    let Ok(results) =
                        tokio::task::spawn_blocking(move || SignedTransaction::verify_batch(txs))
                            .await
                    else {
                        // The runtime is shutting down: the callers' receivers
                        // see their senders dropped.
                        return;
                    };
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
            });
        }
        Self { jobs }
    }

    /// Verifies `tx` (in a batch with whatever else is submitted meanwhile).
    pub async fn verify(&self, tx: SignedTransaction) -> Result<VerifiedTransaction, TxError> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((tx, _))) = self.jobs.send((tx, reply)).await {
            // The workers are gone (the runtime is shutting down).
            return tx.verify();
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(TxError::Malformed(rr_core::DecodeError::Invalid {
                what: "transaction",
                reason: "the verifier stopped before answering".into(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use rr_core::{AccountId, Call, GrantId, Revoke, TxBody};

    fn tx(seed: u8, nonce: u64) -> SignedTransaction {
        let key = SigningKey::from_bytes(&[seed; 32]);
        TxBody {
            signer: AccountId::from_verifying_key(&key.verifying_key()),
            nonce,
            call: Call::Revoke(Revoke {
                grant: GrantId([1; 32]),
            }),
        }
        .sign(&key)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_get_each_their_own_verdict() {
        let v = TxVerifier::start(16, 2);
        let mut calls = Vec::new();
        for n in 0..100u64 {
            let mut t = tx((n % 7) as u8 + 1, n);
            let forged = n % 13 == 5;
            if forged {
                t.body.nonce += 1_000;
            }
            let v = v.clone();
            calls.push(tokio::spawn(async move {
                let id = t.id();
                (forged, id, v.verify(t).await)
            }));
        }
        for c in calls {
            let (forged, id, r) = c.await.unwrap();
            match r {
                Ok(v) => {
                    assert!(!forged);
                    assert_eq!(v.id(), id);
                }
                Err(e) => {
                    assert!(forged, "{e}");
                    assert!(matches!(e, TxError::BadSignature(_)));
                }
            }
        }
        // A lone call.
        assert!(v.verify(tx(9, 1)).await.is_ok());
    }
}
