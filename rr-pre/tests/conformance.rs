//! Every backend passes the conformance suite.

use rr_pre::conformance::test_all;

#[test]
fn umbral_passes_the_suite() {
    let report = test_all(&rr_pre::Umbral);
    assert_eq!(report.passed.len(), 12);
    assert_eq!(report.skipped, vec![]);
}

#[cfg(feature = "recrypt")]
#[test]
fn recrypt_passes_the_suite() {
    let report = test_all(&rr_pre::Recrypt);
    assert_eq!(report.passed.len(), 12);
    // recrypt is single-proxy: one fragment always suffices.
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    let (case, reason) = &report.skipped[0];
    assert_eq!(*case, "below_threshold");
    assert!(
        reason.contains(rr_pre::recrypt::SINGLE_PROXY_REASON),
        "{reason}"
    );
}
