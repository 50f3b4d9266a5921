//! A small, real executor for engine tests and benchmarks.

use rr_core::{
    BlockContext, CallOutput, ContractExecutor, ErrorCode, Execution, ExecutionError, GrantId,
    Outcome, Receipt, Refusal, StateRead, VerifiedTransaction,
};

/// A small real executor: records each signer's nonce and refuses replays.
/// Enough state to check that every replica executes the same calls once.
#[derive(Clone, Copy, Debug, Default)]
pub struct NonceExecutor;

impl ContractExecutor for NonceExecutor {
    fn execute(
        &self,
        state: &dyn StateRead,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<Execution, ExecutionError> {
        let mut overlay = rr_core::Overlay::new(state);
        let mut receipts = Vec::new();
        for (i, tx) in txs.iter().enumerate() {
            let outcome = if !overlay.spend_nonce(tx)? {
                Outcome::Refused(Refusal {
                    code: ErrorCode::ReplayedNonce,
                    message: "replayed".into(),
                })
            } else {
                Outcome::Ok(CallOutput::Revoked {
                    grant: GrantId([0; 32]),
                })
            };
            receipts.push(Receipt {
                tx: tx.id(),
                context: *ctx,
                index: i as u32,
                outcome,
            });
        }
        Ok(Execution {
            receipts,
            writes: overlay.writes,
        })
    }
}
