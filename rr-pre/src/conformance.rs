//! The conformance suite every [`PreScheme`] backend runs (feature `testing`).
//!
//! In the spirit of openraft's `Suite::test_all` and RustCrypto's `aead::dev`:
//! one set of cases, written once against the trait, that every backend must
//! pass, so an integrator can swap schemes knowing they behave the same.
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! let report = rr_pre::conformance::test_all(&rr_pre::Umbral);
//! assert!(report.skipped.is_empty());
//! # }
//! ```
//!
//! [`test_all`] panics, naming the case and what went wrong, on the first
//! failure. Each case is also a public function, to run one on its own. The
//! cases draw from a seeded RNG, so a failure reproduces.
//!
//! [`Flow`] runs one whole owner-to-grantee flow generically over any scheme,
//! with every public value crossing the "wire" as bytes; the cases build on
//! it, and examples and benchmarks can too.
//!
//! This module is for tests, examples and benchmarks: it panics instead of
//! returning errors. Do not use it in production code.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_core::CryptoRngCore;
use rr_core::{DataKey, PreError, PreScheme, RecordId, Threshold, WireEncoding};

/// What [`test_all`] ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The cases that ran and passed, in order.
    pub passed: Vec<&'static str>,
    /// Cases (or parts of cases) that do not apply to the scheme, with why.
    pub skipped: Vec<(&'static str, String)>,
}

/// Runs every case of the suite against `scheme`; panics on the first failure.
///
/// Cases: [`round_trip`], [`wrong_recipient`], [`tampered_capsule`],
/// [`tampered_key_frag`], [`tampered_capsule_frag`], [`below_threshold`],
/// [`fragments_bound_to_record`], [`encodings`], [`every_subset_opens`],
/// [`record_keys`], [`master_secret_bytes`], [`thresholds`].
pub fn test_all<P: PreScheme>(scheme: &P) -> Report {
    let mut report = Report::default();
    type Case<P> = (&'static str, fn(&P, &mut Report));
    let cases: [Case<P>; 12] = [
        ("round_trip", |s, _| round_trip(s)),
        ("wrong_recipient", |s, _| wrong_recipient(s)),
        ("tampered_capsule", |s, _| tampered_capsule(s)),
        ("tampered_key_frag", |s, _| tampered_key_frag(s)),
        ("tampered_capsule_frag", |s, _| tampered_capsule_frag(s)),
        ("below_threshold", |s, r| {
            if let Some(reason) = below_threshold(s) {
                r.skipped.push(("below_threshold", reason));
            }
        }),
        ("fragments_bound_to_record", |s, _| {
            fragments_bound_to_record(s)
        }),
        ("encodings", |s, _| encodings(s)),
        ("every_subset_opens", |s, _| every_subset_opens(s)),
        ("record_keys", |s, _| record_keys(s)),
        ("master_secret_bytes", |s, _| master_secret_bytes(s)),
        ("thresholds", |s, _| thresholds(s)),
    ];
    for (name, case) in cases {
        case(scheme, &mut report);
        report.passed.push(name);
    }
    report
}

// ---------------------------------------------------------------- the flow

/// How long each step of one [`Flow::run`] took (per-fragment steps summed
/// over all n fragments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// Making the capsule and data key.
    pub encapsulate: Duration,
    /// Making the n key fragments.
    pub delegate: Duration,
    /// Verifying the n key fragments (the replicas' side).
    pub verify_key_frags: Duration,
    /// Re-encrypting the capsule with each of them.
    pub reencrypt: Duration,
    /// Verifying the n capsule fragments (the grantee's side).
    pub verify_capsule_frags: Duration,
    /// Opening the capsule with m of them.
    pub open_reencrypted: Duration,
}

/// One whole owner-to-grantee flow, and everything it made.
///
/// The owner derives the record key, encapsulates a data key and delegates
/// it to the grantee's account key; each "replica" decodes its key fragment
/// from bytes, verifies it, stores and reloads it as the node does, and
/// re-encrypts the capsule (decoded from bytes); the grantee decodes and
/// verifies every capsule fragment and opens the capsule with the first m.
pub struct Flow<P: PreScheme> {
    /// The record.
    pub record: RecordId,
    /// The delegation's threshold.
    pub threshold: Threshold,
    /// The owner's master secret.
    pub owner: P::MasterSecret,
    /// The record's secret key.
    pub record_sk: P::SecretKey,
    /// The record's public key.
    pub record_pk: P::PublicKey,
    /// The capsule.
    pub capsule: P::Capsule,
    /// The data key the capsule holds.
    pub data_key: DataKey,
    /// The grantee's master secret.
    pub grantee: P::MasterSecret,
    /// The grantee's account secret key.
    pub grantee_sk: P::SecretKey,
    /// The grantee's account public key.
    pub grantee_pk: P::PublicKey,
    /// The n key fragments, as delegated.
    pub kfrags: Vec<P::KeyFrag>,
    /// The n capsule fragments, as the replicas sent them.
    pub cfrags: Vec<P::CapsuleFrag>,
    /// The n capsule fragments, verified by the grantee.
    pub verified: Vec<P::VerifiedCapsuleFrag>,
    /// The data key the grantee opened with the first m fragments.
    pub opened: DataKey,
    /// How long each step took.
    pub timings: Timings,
}

/// Times one step.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    *total += start.elapsed();
    out
}

impl<P: PreScheme> Flow<P> {
    /// Runs the flow for `record` with fresh owner and grantee master secrets.
    pub fn run(
        scheme: &P,
        rng: &mut dyn CryptoRngCore,
        record: RecordId,
        threshold: Threshold,
    ) -> Result<Self, PreError> {
        let owner = scheme.generate_master(rng);
        let grantee = scheme.generate_master(rng);
        Self::run_with(scheme, rng, owner, grantee, record, threshold)
    }

    /// Runs the flow for `record` between the given owner and grantee.
    pub fn run_with(
        scheme: &P,
        rng: &mut dyn CryptoRngCore,
        owner: P::MasterSecret,
        grantee: P::MasterSecret,
        record: RecordId,
        threshold: Threshold,
    ) -> Result<Self, PreError> {
        let mut t = Timings::default();
        let (record_sk, record_pk) = scheme.record_key(&owner, &record);
        let (grantee_sk, grantee_pk) = scheme.account_key(&grantee);
        let (capsule, data_key) =
            timed(&mut t.encapsulate, || scheme.encapsulate(rng, &record_pk))?;
        let kfrags = timed(&mut t.delegate, || {
            scheme.delegate(rng, &record_sk, &grantee_pk, threshold)
        })?;
        if kfrags.len() != usize::from(threshold.n) {
            panic!(
                "delegate({threshold}) made {} key fragments, not {}",
                kfrags.len(),
                threshold.n
            );
        }

        // The replicas: everything arrives as bytes.
        let record_pk_wire = P::PublicKey::from_bytes(&record_pk.to_bytes())?;
        let grantee_pk_wire = P::PublicKey::from_bytes(&grantee_pk.to_bytes())?;
        let capsule_wire = P::Capsule::from_bytes(&capsule.to_bytes())?;
        let mut cfrags = Vec::with_capacity(kfrags.len());
        for kfrag in &kfrags {
            let kfrag = P::KeyFrag::from_bytes(&kfrag.to_bytes())?;
            let verified = timed(&mut t.verify_key_frags, || {
                scheme.verify_key_frag(kfrag, &record_pk_wire, &grantee_pk_wire)
            })?;
            let stored = scheme.verified_key_frag_to_bytes(&verified);
            let verified = scheme.verified_key_frag_from_trusted_bytes(&stored)?;
            let cfrag = timed(&mut t.reencrypt, || {
                scheme.reencrypt(rng, &capsule_wire, &verified)
            })?;
            cfrags.push(cfrag);
        }

        // The grantee.
        let mut verified = Vec::with_capacity(cfrags.len());
        for cfrag in &cfrags {
            let cfrag = P::CapsuleFrag::from_bytes(&cfrag.to_bytes())?;
            verified.push(timed(&mut t.verify_capsule_frags, || {
                scheme.verify_capsule_frag(cfrag, &capsule_wire, &record_pk_wire, &grantee_pk_wire)
            })?);
        }
        let m = usize::from(threshold.m);
        let opened = timed(&mut t.open_reencrypted, || {
            scheme.open_reencrypted(&grantee_sk, &record_pk_wire, &capsule_wire, &verified[..m])
        })?;

        Ok(Self {
            record,
            threshold,
            owner,
            record_sk,
            record_pk,
            capsule,
            data_key,
            grantee,
            grantee_sk,
            grantee_pk,
            kfrags,
            cfrags,
            verified,
            opened,
            timings: t,
        })
    }

    /// The grantee opens the capsule with `cfrags`.
    pub fn grantee_opens(
        &self,
        scheme: &P,
        cfrags: &[P::VerifiedCapsuleFrag],
    ) -> Result<DataKey, PreError> {
        scheme.open_reencrypted(&self.grantee_sk, &self.record_pk, &self.capsule, cfrags)
    }
}

/// The threshold that exercises a scheme most: 2 of 3 where it allows it,
/// else 1 of 3, else 1 of 1.
pub fn strictest_threshold<P: PreScheme>(scheme: &P) -> Threshold {
    [(2, 3), (1, 3), (1, 1)]
        .into_iter()
        .map(|(m, n)| Threshold { m, n })
        .find(|t| scheme.check_threshold(*t).is_ok())
        .unwrap_or_else(|| panic!("{} allows none of 2 of 3, 1 of 3, 1 of 1", P::ID))
}

// ---------------------------------------------------------------- helpers

fn rng(case: &str) -> StdRng {
    let seed = case
        .bytes()
        .fold(0x5eed_u64, |h, b| h.rotate_left(5) ^ u64::from(b));
    StdRng::seed_from_u64(seed)
}

fn flow<P: PreScheme>(scheme: &P, rng: &mut StdRng, record: u8, t: Threshold) -> Flow<P> {
    Flow::run(scheme, rng, RecordId([record; 32]), t)
        .unwrap_or_else(|e| panic!("{}: the {t} flow fails: {e}", P::ID))
}

/// Checks that an open that must be refused was: an error, never a key.
#[track_caller]
fn refused(result: Result<DataKey, PreError>, data_key: &DataKey, what: &str) {
    match result {
        Err(_) => {}
        Ok(k) if k.expose() == data_key.expose() => {
            panic!("{what}: opened the record's data key; it must be refused")
        }
        Ok(_) => panic!("{what}: opened to a WRONG data key instead of failing"),
    }
}

#[track_caller]
fn opens(result: Result<DataKey, PreError>, data_key: &DataKey, what: &str) {
    match result {
        Ok(k) => assert!(
            k.expose() == data_key.expose(),
            "{what}: opened to a wrong data key"
        ),
        Err(e) => panic!("{what}: does not open: {e}"),
    }
}

#[track_caller]
fn is_malformed<P: PreScheme>(e: &PreError, what: &str) {
    match e {
        PreError::Malformed { scheme, .. } => {
            let name = P::ID.name();
            assert!(
                name == "unknown" || *scheme == name,
                "{what}: refused as malformed for scheme {scheme}, expected {name}"
            );
        }
        other => panic!("{what}: refused with {other:?}, expected PreError::Malformed"),
    }
}

fn flip_each_byte(bytes: &[u8]) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
    (0..bytes.len()).map(|i| {
        let mut b = bytes.to_vec();
        b[i] ^= 0x01;
        (i, b)
    })
}

fn combinations(n: usize, m: usize) -> Vec<Vec<usize>> {
    fn go(start: usize, n: usize, m: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if cur.len() == m {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            go(i + 1, n, m, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    go(0, n, m, &mut Vec::new(), &mut out);
    out
}

// ---------------------------------------------------------------- cases

/// The owner opens the capsule; the grantee opens it with m fragments, also
/// after the replicas stored and reloaded their fragments; 1 of 1 works.
pub fn round_trip<P: PreScheme>(scheme: &P) {
    let mut rng = rng("round_trip");
    for t in [strictest_threshold(scheme), Threshold { m: 1, n: 1 }] {
        let f = flow(scheme, &mut rng, 1, t);
        opens(
            scheme.open(&f.record_sk, &f.capsule),
            &f.data_key,
            "the owner opening the capsule",
        );
        opens(
            Ok(f.opened.clone()),
            &f.data_key,
            &format!("the grantee opening with {t}"),
        );
        // The owner opens a capsule decoded from bytes too.
        let capsule = P::Capsule::from_bytes(&f.capsule.to_bytes()).unwrap();
        opens(
            scheme.open(&f.record_sk, &capsule),
            &f.data_key,
            "the owner opening a decoded capsule",
        );
    }
}

/// Another account cannot open the capsule or the grantee's fragments, and
/// the grantee's fragments do not verify for it.
pub fn wrong_recipient<P: PreScheme>(scheme: &P) {
    let mut rng = rng("wrong_recipient");
    let t = strictest_threshold(scheme);
    let f = flow(scheme, &mut rng, 2, t);
    let m = usize::from(t.m);
    let carol = scheme.generate_master(&mut rng);
    let (carol_sk, carol_pk) = scheme.account_key(&carol);

    refused(
        scheme.open(&carol_sk, &f.capsule),
        &f.data_key,
        "another account opening the capsule",
    );
    refused(
        scheme.open(&f.grantee_sk, &f.capsule),
        &f.data_key,
        "the grantee opening the capsule without fragments",
    );
    refused(
        scheme.open_reencrypted(&carol_sk, &f.record_pk, &f.capsule, &f.verified[..m]),
        &f.data_key,
        "another account opening the grantee's fragments",
    );
    for kfrag in &f.kfrags {
        assert_eq!(
            scheme
                .verify_key_frag(kfrag.clone(), &f.record_pk, &carol_pk)
                .err(),
            Some(PreError::InvalidKeyFrag),
            "a key fragment for the grantee verifies for another account"
        );
    }
    for cfrag in &f.cfrags {
        // A scheme may only find out at opening time; then opening must fail.
        if let Ok(v) =
            scheme.verify_capsule_frag(cfrag.clone(), &f.capsule, &f.record_pk, &carol_pk)
        {
            refused(
                scheme.open_reencrypted(&carol_sk, &f.record_pk, &f.capsule, &[v]),
                &f.data_key,
                "another account opening a fragment that verified for it",
            );
        }
    }

    // Fragments re-encrypted for Carol do not open for the grantee.
    let kfrags = scheme
        .delegate(&mut rng, &f.record_sk, &carol_pk, t)
        .unwrap();
    let for_carol: Vec<_> = kfrags
        .into_iter()
        .take(m)
        .map(|k| {
            let vk = scheme.verify_key_frag(k, &f.record_pk, &carol_pk).unwrap();
            let cfrag = scheme.reencrypt(&mut rng, &f.capsule, &vk).unwrap();
            scheme
                .verify_capsule_frag(cfrag, &f.capsule, &f.record_pk, &carol_pk)
                .unwrap()
        })
        .collect();
    opens(
        scheme.open_reencrypted(&carol_sk, &f.record_pk, &f.capsule, &for_carol),
        &f.data_key,
        "Carol opening her own fragments",
    );
    refused(
        f.grantee_opens(scheme, &for_carol),
        &f.data_key,
        "the grantee opening fragments made for another account",
    );
}

/// Every one-bit change of a capsule is refused when decoding or when
/// opening, by the owner and by the grantee.
pub fn tampered_capsule<P: PreScheme>(scheme: &P) {
    let mut rng = rng("tampered_capsule");
    let f = flow(scheme, &mut rng, 3, strictest_threshold(scheme));
    let m = usize::from(f.threshold.m);
    for (i, bytes) in flip_each_byte(&f.capsule.to_bytes()) {
        let what = format!("capsule with byte {i} flipped");
        match P::Capsule::from_bytes(&bytes) {
            Err(e) => is_malformed::<P>(&e, &what),
            Ok(capsule) => {
                refused(
                    scheme.open(&f.record_sk, &capsule),
                    &f.data_key,
                    &format!("the owner opening a {what}"),
                );
                refused(
                    scheme.open_reencrypted(
                        &f.grantee_sk,
                        &f.record_pk,
                        &capsule,
                        &f.verified[..m],
                    ),
                    &f.data_key,
                    &format!("the grantee opening a {what}"),
                );
            }
        }
    }
}

/// Every one-bit change of a key fragment is refused when decoding, by the
/// replica verifying it, or when opening: never a key. A fragment the
/// replica accepts gives capsule fragments the grantee accepts (otherwise a
/// damaged fragment would be taken at delivery and fail every retrieval).
pub fn tampered_key_frag<P: PreScheme>(scheme: &P) {
    let mut rng = rng("tampered_key_frag");
    let f = flow(scheme, &mut rng, 4, strictest_threshold(scheme));
    let m = usize::from(f.threshold.m);
    let original = f.kfrags[0].to_bytes();
    // m - 1 good fragments from other key fragments complete the set.
    let others = &f.verified[1..m];
    for (i, bytes) in flip_each_byte(&original) {
        let what = format!("key fragment with byte {i} flipped");
        let kfrag = match P::KeyFrag::from_bytes(&bytes) {
            Err(e) => {
                is_malformed::<P>(&e, &what);
                continue;
            }
            Ok(k) => k,
        };
        let vk = match scheme.verify_key_frag(kfrag, &f.record_pk, &f.grantee_pk) {
            Err(e) => {
                assert_eq!(e, PreError::InvalidKeyFrag, "{what}");
                continue;
            }
            Ok(vk) => vk,
        };
        let Ok(cfrag) = scheme.reencrypt(&mut rng, &f.capsule, &vk) else {
            continue;
        };
        let vc = match scheme.verify_capsule_frag(cfrag, &f.capsule, &f.record_pk, &f.grantee_pk)
        {
            Ok(vc) => vc,
            Err(e) => panic!(
                "{what}: verify_key_frag accepted it, yet its capsule fragment is refused ({e:?}): the replica must refuse it at delivery"
            ),
        };
        let set: Vec<_> = std::iter::once(vc).chain(others.iter().cloned()).collect();
        refused(
            f.grantee_opens(scheme, &set),
            &f.data_key,
            &format!("the grantee opening with a {what}"),
        );
    }
}

/// Every one-bit change of a capsule fragment is refused when decoding, when
/// verifying, or when opening: never a key.
pub fn tampered_capsule_frag<P: PreScheme>(scheme: &P) {
    let mut rng = rng("tampered_capsule_frag");
    let f = flow(scheme, &mut rng, 5, strictest_threshold(scheme));
    let m = usize::from(f.threshold.m);
    let others = &f.verified[1..m];
    for (i, bytes) in flip_each_byte(&f.cfrags[0].to_bytes()) {
        let what = format!("capsule fragment with byte {i} flipped");
        let cfrag = match P::CapsuleFrag::from_bytes(&bytes) {
            Err(e) => {
                is_malformed::<P>(&e, &what);
                continue;
            }
            Ok(c) => c,
        };
        match scheme.verify_capsule_frag(cfrag, &f.capsule, &f.record_pk, &f.grantee_pk) {
            Err(e) => assert_eq!(e, PreError::InvalidCapsuleFrag, "{what}"),
            Ok(vc) => {
                let set: Vec<_> = std::iter::once(vc).chain(others.iter().cloned()).collect();
                refused(
                    f.grantee_opens(scheme, &set),
                    &f.data_key,
                    &format!("the grantee opening with a {what}"),
                );
            }
        }
    }
}

/// Fewer than m fragments do not open (2 of 3 where the scheme allows it);
/// no fragments at all is `NotEnoughFragments`. Returns why the threshold
/// part was skipped, if it was.
pub fn below_threshold<P: PreScheme>(scheme: &P) -> Option<String> {
    let mut rng = rng("below_threshold");
    let t = strictest_threshold(scheme);
    let f = flow(scheme, &mut rng, 6, t);
    assert!(
        matches!(
            f.grantee_opens(scheme, &[]),
            Err(PreError::NotEnoughFragments { have: 0, .. })
        ),
        "opening with no fragments must be NotEnoughFragments"
    );
    if t.m < 2 {
        let why = match scheme.check_threshold(Threshold { m: 2, n: 3 }) {
            Err(PreError::BadThreshold { reason, .. }) => reason.to_string(),
            Err(e) => e.to_string(),
            Ok(()) => unreachable!("strictest_threshold picks 2 of 3 when it is allowed"),
        };
        return Some(format!(
            "{} refuses threshold 2 of 3 ({why}); one fragment always suffices",
            P::ID
        ));
    }
    let m = usize::from(t.m);
    for subset in combinations(f.verified.len(), m - 1) {
        let set: Vec<_> = subset.iter().map(|&i| f.verified[i].clone()).collect();
        refused(
            f.grantee_opens(scheme, &set),
            &f.data_key,
            &format!("opening with fragments {subset:?} of {t}"),
        );
    }
    // The same fragment m times is still one fragment.
    let repeated = vec![f.verified[0].clone(); m];
    refused(
        f.grantee_opens(scheme, &repeated),
        &f.data_key,
        "opening with one fragment repeated m times",
    );
    None
}

/// Key fragments and capsule fragments of record A are refused for record B
/// (by verification or at opening), even between the same owner and grantee.
pub fn fragments_bound_to_record<P: PreScheme>(scheme: &P) {
    let mut rng = rng("fragments_bound_to_record");
    let t = strictest_threshold(scheme);
    let owner = scheme.generate_master(&mut rng);
    let grantee = scheme.generate_master(&mut rng);
    let restore = |m: &P::MasterSecret| {
        scheme
            .master_from_bytes(&scheme.master_to_bytes(m))
            .unwrap()
    };
    let a = Flow::run_with(
        scheme,
        &mut rng,
        restore(&owner),
        restore(&grantee),
        RecordId([10; 32]),
        t,
    )
    .unwrap();
    let b = Flow::run_with(scheme, &mut rng, owner, grantee, RecordId([11; 32]), t).unwrap();
    let m = usize::from(t.m);

    for kfrag in &a.kfrags {
        assert_eq!(
            scheme
                .verify_key_frag(kfrag.clone(), &b.record_pk, &b.grantee_pk)
                .err(),
            Some(PreError::InvalidKeyFrag),
            "a key fragment of record A verifies for record B"
        );
    }
    for cfrag in &a.cfrags {
        if let Ok(v) =
            scheme.verify_capsule_frag(cfrag.clone(), &b.capsule, &b.record_pk, &b.grantee_pk)
        {
            refused(
                b.grantee_opens(scheme, &[v]),
                &b.data_key,
                "a capsule fragment of A that verified for B",
            );
        }
    }
    refused(
        b.grantee_opens(scheme, &a.verified[..m]),
        &b.data_key,
        "opening record B with A's verified fragments",
    );
    refused(
        scheme.open_reencrypted(&b.grantee_sk, &a.record_pk, &b.capsule, &a.verified[..m]),
        &b.data_key,
        "opening B's capsule with A's key and fragments",
    );

    // A replica holding A's key fragments re-encrypts B's capsule: the
    // fragments verify neither as B's nor as A's, or do not open.
    let (mut as_b, mut as_a) = (Vec::new(), Vec::new());
    for kfrag in a.kfrags.iter().take(m) {
        let vk = scheme
            .verify_key_frag(kfrag.clone(), &a.record_pk, &a.grantee_pk)
            .unwrap();
        let Ok(cfrag) = scheme.reencrypt(&mut rng, &b.capsule, &vk) else {
            continue;
        };
        as_b.extend(
            scheme
                .verify_capsule_frag(cfrag.clone(), &b.capsule, &b.record_pk, &b.grantee_pk)
                .ok(),
        );
        as_a.extend(
            scheme
                .verify_capsule_frag(cfrag, &a.capsule, &a.record_pk, &a.grantee_pk)
                .ok(),
        );
    }
    if !as_b.is_empty() {
        refused(
            b.grantee_opens(scheme, &as_b),
            &b.data_key,
            "B's capsule re-encrypted with A's key fragments, opened as B",
        );
    }
    if !as_a.is_empty() {
        refused(
            a.grantee_opens(scheme, &as_a),
            &a.data_key,
            "B's capsule re-encrypted with A's key fragments, opened as A",
        );
    }
}

/// Garbage of every kind for one encoding: all refused as malformed.
fn refuses_garbage<P: PreScheme, T: WireEncoding>(valid: &[u8], rng: &mut StdRng, what: &str) {
    let version = valid[0];
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![version],
        vec![0; valid.len()],
        vec![0xff; valid.len()],
    ];
    cases.extend((0..=255u8).map(|b| vec![b]));
    for _ in 0..16 {
        let len = rng.gen_range(0..valid.len() * 2);
        cases.push((0..len).map(|_| rng.gen()).collect());
        // The right version byte and length, then noise.
        let mut noise: Vec<u8> = (0..valid.len()).map(|_| rng.gen()).collect();
        noise[0] = version;
        cases.push(noise);
    }
    for cut in [1, 2, valid.len() / 2, valid.len() - 1] {
        cases.push(valid[..cut].to_vec());
    }
    for other in [0u8, version.wrapping_add(1), 0xff] {
        if other != version {
            let mut v = valid.to_vec();
            v[0] = other;
            cases.push(v);
        }
    }
    let mut trailing = valid.to_vec();
    trailing.push(0);
    cases.push(trailing);
    cases.push([valid, valid].concat());
    for (i, case) in cases.iter().enumerate() {
        match T::from_bytes(case) {
            Err(e) => is_malformed::<P>(&e, &format!("{what} garbage case {i}")),
            Ok(_) => panic!(
                "{what} garbage case {i} ({} bytes) decoded: {:02x?}",
                case.len(),
                &case[..case.len().min(16)]
            ),
        }
    }
}

#[track_caller]
fn round_trips<T: WireEncoding>(value: &T, what: &str) -> Vec<u8> {
    let bytes = value.to_bytes();
    match T::from_bytes(&bytes) {
        Ok(again) => assert!(
            again.to_bytes() == bytes,
            "{what} does not re-encode to the same bytes"
        ),
        Err(e) => panic!("{what} does not decode its own encoding: {e}"),
    }
    bytes
}

/// Every encoding round-trips and refuses garbage (empty, random, truncated,
/// wrong version, trailing bytes); a changed public key is refused or is
/// another key; a replica's stored key fragment round-trips.
pub fn encodings<P: PreScheme>(scheme: &P) {
    let mut rng = rng("encodings");
    let f = flow(scheme, &mut rng, 7, strictest_threshold(scheme));

    let record_pk = round_trips(&f.record_pk, "a record public key");
    refuses_garbage::<P, P::PublicKey>(&record_pk, &mut rng, "record public key");
    let account_pk = round_trips(&f.grantee_pk, "an account public key");
    refuses_garbage::<P, P::PublicKey>(&account_pk, &mut rng, "account public key");
    let capsule = round_trips(&f.capsule, "a capsule");
    refuses_garbage::<P, P::Capsule>(&capsule, &mut rng, "capsule");
    for (i, kfrag) in f.kfrags.iter().enumerate() {
        round_trips(kfrag, &format!("key fragment {i}"));
    }
    refuses_garbage::<P, P::KeyFrag>(&f.kfrags[0].to_bytes(), &mut rng, "key fragment");
    for (i, cfrag) in f.cfrags.iter().enumerate() {
        round_trips(cfrag, &format!("capsule fragment {i}"));
    }
    refuses_garbage::<P, P::CapsuleFrag>(&f.cfrags[0].to_bytes(), &mut rng, "capsule fragment");

    // A changed public key is refused, or is another key that the record's
    // key fragments do not verify against.
    for (i, bytes) in flip_each_byte(&record_pk) {
        match P::PublicKey::from_bytes(&bytes) {
            Err(e) => is_malformed::<P>(&e, &format!("record public key byte {i} flipped")),
            Ok(pk) => {
                assert!(
                    pk.to_bytes() != record_pk,
                    "byte {i} flipped decodes to the same key"
                );
                assert!(
                    scheme
                        .verify_key_frag(f.kfrags[0].clone(), &pk, &f.grantee_pk)
                        .is_err(),
                    "a key fragment verifies against the record key with byte {i} flipped"
                );
            }
        }
    }
    for (i, bytes) in flip_each_byte(&account_pk) {
        if let Ok(pk) = P::PublicKey::from_bytes(&bytes) {
            assert!(
                pk.to_bytes() != account_pk,
                "account key byte {i} flipped decodes to the same key"
            );
        }
    }

    // A replica's own store.
    let vk = scheme
        .verify_key_frag(f.kfrags[0].clone(), &f.record_pk, &f.grantee_pk)
        .unwrap();
    let stored = scheme.verified_key_frag_to_bytes(&vk);
    let reloaded = scheme
        .verified_key_frag_from_trusted_bytes(&stored)
        .unwrap();
    assert!(
        scheme.verified_key_frag_to_bytes(&reloaded) == stored,
        "a stored key fragment does not reload to the same bytes"
    );
    for (i, garbage) in [
        &[][..],
        &stored[..1],
        &stored[..stored.len() - 1],
        &[0xff; 40],
    ]
    .into_iter()
    .enumerate()
    {
        match scheme.verified_key_frag_from_trusted_bytes(garbage) {
            Err(e) => is_malformed::<P>(&e, &format!("stored key fragment garbage {i}")),
            Ok(_) => panic!("stored key fragment garbage {i} loaded"),
        }
    }
}

/// Any m of the n fragments open the capsule, in any order, and so do all n.
pub fn every_subset_opens<P: PreScheme>(scheme: &P) {
    let mut rng = rng("every_subset_opens");
    let t = strictest_threshold(scheme);
    let f = flow(scheme, &mut rng, 8, t);
    let m = usize::from(t.m);
    for subset in combinations(f.verified.len(), m) {
        for order in [subset.clone(), subset.iter().rev().copied().collect()] {
            let set: Vec<_> = order.iter().map(|&i| f.verified[i].clone()).collect();
            opens(
                f.grantee_opens(scheme, &set),
                &f.data_key,
                &format!("opening with fragments {order:?} of {t}"),
            );
        }
    }
    opens(
        f.grantee_opens(scheme, &f.verified),
        &f.data_key,
        &format!("opening with all fragments of {t}"),
    );
}

/// Record keys are per record and deterministic; the account key differs
/// from every record key; a restored master secret gives the same keys;
/// another master gives other keys; an account key cannot delegate and is
/// not accepted as a record key.
pub fn record_keys<P: PreScheme>(scheme: &P) {
    let mut rng = rng("record_keys");
    let alice = scheme.generate_master(&mut rng);
    let pk = |m: &P::MasterSecret, r: u8| scheme.record_key(m, &RecordId([r; 32])).1.to_bytes();
    let account = scheme.account_key(&alice).1.to_bytes();
    assert!(
        pk(&alice, 1) == pk(&alice, 1),
        "record keys are not deterministic"
    );
    assert!(
        scheme.account_key(&alice).1.to_bytes() == account,
        "account keys are not deterministic"
    );
    assert!(pk(&alice, 1) != pk(&alice, 2), "two records share a key");
    assert!(
        pk(&alice, 1) != account,
        "a record key equals the account key"
    );
    let restored = scheme
        .master_from_bytes(&scheme.master_to_bytes(&alice))
        .unwrap();
    assert!(
        pk(&restored, 1) == pk(&alice, 1),
        "a restored master gives another record key"
    );
    assert!(
        scheme.account_key(&restored).1.to_bytes() == account,
        "a restored master gives another account key"
    );
    let other = scheme.generate_master(&mut rng);
    assert!(
        pk(&other, 1) != pk(&alice, 1),
        "two masters give the same record key"
    );
    assert!(
        scheme.account_key(&other).1.to_bytes() != account,
        "two masters give the same account key"
    );

    // The record key from the master is the one its capsules open with.
    let (sk, record_pk) = scheme.record_key(&restored, &RecordId([1; 32]));
    let (capsule, key) = scheme.encapsulate(&mut rng, &record_pk).unwrap();
    let (sk_again, _) = scheme.record_key(&alice, &RecordId([1; 32]));
    opens(
        scheme.open(&sk_again, &capsule),
        &key,
        "the re-derived record key",
    );
    let (other_record_sk, _) = scheme.record_key(&alice, &RecordId([2; 32]));
    refused(
        scheme.open(&other_record_sk, &capsule),
        &key,
        "another record's key",
    );

    let (account_sk, account_pk) = scheme.account_key(&alice);
    let t = strictest_threshold(scheme);
    assert!(
        scheme
            .delegate(&mut rng, &account_sk, &account_pk, t)
            .is_err(),
        "an account key delegates"
    );
    let kfrags = scheme.delegate(&mut rng, &sk, &account_pk, t).unwrap();
    assert!(
        scheme
            .verify_key_frag(kfrags[0].clone(), &account_pk, &account_pk)
            .is_err(),
        "an account key is accepted as a record key"
    );
}

/// The master secret's bytes round-trip; other lengths are refused.
pub fn master_secret_bytes<P: PreScheme>(scheme: &P) {
    let mut rng = rng("master_secret_bytes");
    let master = scheme.generate_master(&mut rng);
    let bytes = scheme.master_to_bytes(&master);
    let restored = scheme.master_from_bytes(&bytes).unwrap();
    assert!(
        *scheme.master_to_bytes(&restored) == *bytes,
        "master secret bytes do not round-trip"
    );
    let other = scheme.generate_master(&mut rng);
    assert!(
        *scheme.master_to_bytes(&other) != *bytes,
        "two generated master secrets are equal"
    );
    let len = bytes.len();
    for bad in [0, 1, len - 1, len + 1, 2 * len] {
        match scheme.master_from_bytes(&vec![7; bad]) {
            Err(e) => is_malformed::<P>(&e, &format!("a {bad}-byte master secret")),
            Ok(_) => panic!("a {bad}-byte master secret is accepted ({len} expected)"),
        }
    }
}

/// `check_threshold` refuses m = 0, m > n and n = 0, and `delegate` agrees
/// with it: n fragments where it accepts, the same error where it refuses.
pub fn thresholds<P: PreScheme>(scheme: &P) {
    let mut rng = rng("thresholds");
    for (m, n) in [(0, 3), (0, 0), (4, 3), (1, 0)] {
        assert!(
            matches!(
                scheme.check_threshold(Threshold { m, n }),
                Err(PreError::BadThreshold { m: mm, n: nn, .. }) if mm == m && nn == n
            ),
            "threshold {m} of {n} is not refused as BadThreshold"
        );
    }
    let alice = scheme.generate_master(&mut rng);
    let (sk, _) = scheme.record_key(&alice, &RecordId([1; 32]));
    let (_, bob_pk) = scheme.account_key(&scheme.generate_master(&mut rng));
    for (m, n) in [
        (1, 1),
        (1, 3),
        (2, 3),
        (3, 3),
        (3, 4),
        (1, 7),
        (0, 3),
        (4, 3),
    ] {
        let t = Threshold { m, n };
        match (
            scheme.check_threshold(t),
            scheme.delegate(&mut rng, &sk, &bob_pk, t),
        ) {
            (Ok(()), Ok(kfrags)) => assert_eq!(kfrags.len(), usize::from(n), "delegate({t})"),
            (Err(e), Err(d)) => assert_eq!(e, d, "delegate({t}) and check_threshold disagree"),
            (c, d) => panic!(
                "check_threshold({t}) is {c:?} but delegate is {:?}",
                d.map(|k| k.len())
            ),
        }
    }
}
