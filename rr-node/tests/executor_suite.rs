//! The `ContractExecutor` conformance suite against the native contracts,
//! alone and with policies in front of them.

use rr_core::{Call, ErrorCode, PolicyCode, StateError};
use rr_node::testing::ExecutorSuite;
use rr_node::{ContractsConfig, NativeContracts, PolicyCall, Verdict};

#[test]
fn the_native_contracts_conform() {
    ExecutorSuite::new(NativeContracts::new).test_all();
}

#[test]
fn the_native_contracts_behind_an_allowing_policy_conform() {
    ExecutorSuite::new(|config: ContractsConfig| {
        NativeContracts::new(config)
            .with_policy(|_: &PolicyCall<'_>| -> Result<Verdict, StateError> { Ok(Verdict::Allow) })
    })
    .test_all();
}

#[test]
fn the_native_contracts_behind_a_refusing_policy_conform() {
    let code = PolicyCode::new("no_retrieves").unwrap();
    ExecutorSuite::new(move |config: ContractsConfig| {
        NativeContracts::new(config).with_policy(
            move |call: &PolicyCall<'_>| -> Result<Verdict, StateError> {
                Ok(match call.call() {
                    Call::Retrieve(_) => Verdict::refuse(code, "retrieves are closed"),
                    _ => Verdict::Allow,
                })
            },
        )
    })
    .refusing("retrieve", ErrorCode::Policy(code))
    .test_all();
}
