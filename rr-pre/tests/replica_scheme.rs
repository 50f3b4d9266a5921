//! The byte-level, object-safe [`ReplicaScheme`] and the [`Schemes`] registry.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rr_core::{PreError, PreScheme, RecordId, SchemeId, Threshold, WireEncoding};
use rr_pre::conformance::{strictest_threshold, Flow};
use rr_pre::{scheme_by_name, Schemes, Umbral, UnknownScheme};

fn rng() -> StdRng {
    StdRng::seed_from_u64(0xd15c)
}

/// A replica's work through `&dyn ReplicaScheme`, checked by the grantee
/// through the scheme's own types: the same flow as the trait.
fn replica_flow<P: PreScheme>(scheme: &P, registry: &Schemes) {
    let mut rng = rng();
    let t = strictest_threshold(scheme);
    let f = Flow::run(scheme, &mut rng, RecordId([3; 32]), t).unwrap();
    let replica = registry.require(P::ID).unwrap();
    assert_eq!(replica.id(), P::ID);
    assert_eq!(replica.name(), P::ID.name());
    replica.threshold_ok(t).unwrap();

    let record_key = f.record_pk.to_bytes();
    let grantee_key = f.grantee_pk.to_bytes();
    let capsule = f.capsule.to_bytes();
    let mut verified = Vec::new();
    for kfrag in &f.kfrags {
        let stored = replica
            .verify_key_frag(&kfrag.to_bytes(), &record_key, &grantee_key)
            .unwrap();
        let cfrag = replica.reencrypt(&mut rng, &capsule, &stored).unwrap();
        let cfrag = P::CapsuleFrag::from_bytes(&cfrag).unwrap();
        verified.push(
            scheme
                .verify_capsule_frag(cfrag, &f.capsule, &f.record_pk, &f.grantee_pk)
                .unwrap(),
        );
    }
    let key = f
        .grantee_opens(scheme, &verified[..usize::from(t.m)])
        .unwrap();
    assert_eq!(key.expose(), f.data_key.expose());

    // Wrong keys and garbage are refused with the scheme's errors.
    let kfrag = f.kfrags[0].to_bytes();
    assert_eq!(
        replica.verify_key_frag(&kfrag, &record_key, &record_key),
        Err(PreError::InvalidKeyFrag)
    );
    let malformed = |r: Result<Vec<u8>, PreError>| matches!(r, Err(PreError::Malformed { scheme, .. }) if scheme == P::ID.name());
    assert!(malformed(replica.verify_key_frag(
        &[],
        &record_key,
        &grantee_key
    )));
    assert!(malformed(replica.verify_key_frag(
        &kfrag,
        &[1, 2],
        &grantee_key
    )));
    assert!(malformed(replica.verify_key_frag(&kfrag, &record_key, &[])));
    let stored = replica
        .verify_key_frag(&kfrag, &record_key, &grantee_key)
        .unwrap();
    assert!(malformed(replica.reencrypt(
        &mut rng,
        &capsule[1..],
        &stored
    )));
    assert!(malformed(replica.reencrypt(
        &mut rng,
        &capsule,
        &stored[..10]
    )));
}

#[test]
fn umbral_through_the_registry() {
    replica_flow(&Umbral, &Schemes::all());
}

#[cfg(feature = "recrypt")]
#[test]
fn recrypt_through_the_registry() {
    replica_flow(&rr_pre::Recrypt, &Schemes::all());
}

#[cfg(feature = "recrypt")]
#[test]
fn a_record_of_one_scheme_is_refused_by_the_other() {
    let mut rng = rng();
    let registry = Schemes::all();
    let f = Flow::run(
        &Umbral,
        &mut rng,
        RecordId([4; 32]),
        Threshold::new(1, 1).unwrap(),
    )
    .unwrap();
    let recrypt = registry.require(SchemeId::RECRYPT).unwrap();
    assert!(matches!(
        recrypt.verify_key_frag(
            &f.kfrags[0].to_bytes(),
            &f.record_pk.to_bytes(),
            &f.grantee_pk.to_bytes()
        ),
        Err(PreError::Malformed {
            scheme: "recrypt",
            ..
        })
    ));
}

#[test]
fn registry_lists_every_compiled_scheme() {
    let all = Schemes::all();
    let mut expected = vec![SchemeId::UMBRAL];
    if cfg!(feature = "recrypt") {
        expected.push(SchemeId::RECRYPT);
    }
    assert_eq!(all.ids(), expected);
    assert_eq!(Schemes::default().ids(), expected);
    assert!(all.get(SchemeId(99)).is_none());
    assert_eq!(format!("{all:?}"), format!("Schemes({expected:?})"));

    let err = all.require(SchemeId(99)).err().unwrap();
    assert_eq!(
        err,
        UnknownScheme {
            id: SchemeId(99),
            available: expected.clone()
        }
    );
    assert!(
        err.to_string().starts_with(
            "records of scheme unknown (99) cannot be served here: this node serves umbral (1)"
        ),
        "{err}"
    );

    let empty = Schemes::empty();
    assert!(empty.ids().is_empty());
    let err = empty.require(SchemeId::UMBRAL).err().unwrap();
    assert!(err.to_string().contains("serves no scheme"), "{err}");
    // `with` replaces a scheme of the same id.
    let one = Schemes::empty().with(Umbral).with(Umbral);
    assert_eq!(one.ids(), vec![SchemeId::UMBRAL]);
}

#[test]
fn single_proxy_is_reported() {
    let all = Schemes::all();
    assert!(!all.get(SchemeId::UMBRAL).unwrap().single_proxy());
    if let Some(recrypt) = all.get(SchemeId::RECRYPT) {
        assert!(recrypt.single_proxy());
        assert!(matches!(
            recrypt.threshold_ok(Threshold::new(2, 3).unwrap()),
            Err(PreError::BadThreshold { m: 2, n: 3, .. })
        ));
    }
}

#[test]
fn scheme_names() {
    assert_eq!(scheme_by_name("umbral"), Some(SchemeId::UMBRAL));
    assert_eq!(scheme_by_name("Recrypt"), Some(SchemeId::RECRYPT));
    assert_eq!(scheme_by_name("recrypt"), Some(SchemeId::RECRYPT));
    for bad in ["", "unknown", "umbral ", "rsa"] {
        assert_eq!(scheme_by_name(bad), None, "{bad:?}");
    }
    for id in Schemes::all().ids() {
        assert_eq!(scheme_by_name(id.name()), Some(id));
    }
}
