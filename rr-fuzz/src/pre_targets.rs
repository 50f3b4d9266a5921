//! Targets of rr-pre's decoders: the public keys, capsules, key fragments
//! and capsule fragments of Umbral and recrypt, and the envelope.

use rr_core::{PreScheme, WireEncoding};
use rr_pre::envelope::{self, EnvelopeDecryptor, EnvelopeEncryptor, EnvelopeHeader};
use rr_pre::{Recrypt, Umbral};

use crate::fixture::{fixture, rng, PreWorld};

/// What the targets need to know of a scheme beyond [`PreScheme`].
pub(crate) trait Scheme: PreScheme {
    /// Whether two public keys have the same point: the one a key fragment
    /// re-encrypts to (the grantee's role of a key).
    fn same_point(a: &Self::PublicKey, b: &Self::PublicKey) -> bool;
}

impl Scheme for Umbral {
    fn same_point(a: &Self::PublicKey, b: &Self::PublicKey) -> bool {
        a.key() == b.key()
    }
}

impl Scheme for Recrypt {
    fn same_point(a: &Self::PublicKey, b: &Self::PublicKey) -> bool {
        a.key() == b.key()
    }
}

/// A public key: exact encoding; as a grantee key and as a record key, the
/// fixed key fragments verify only against the keys they were made for;
/// capsules can be made for it, and an honest delegation to it verifies.
pub(crate) fn public_key<P: Scheme>(w: &PreWorld<P>, data: &[u8]) {
    let Ok(pk) = P::PublicKey::from_bytes(data) else {
        return;
    };
    assert_eq!(pk.to_bytes(), data, "a public key re-encodes differently");
    let as_grantee = w
        .scheme
        .verify_key_frag(w.kfrags[0].clone(), &w.record_pk, &pk)
        .is_ok();
    assert_eq!(
        as_grantee,
        P::same_point(&pk, &w.grantee_pk),
        "a key fragment verified against another grantee key (or not its own)"
    );
    let as_record = w
        .scheme
        .verify_key_frag(w.kfrags[0].clone(), &pk, &w.grantee_pk)
        .is_ok();
    assert_eq!(
        as_record,
        data == w.record_pk.to_bytes(),
        "a key fragment verified against another record key (or not its own)"
    );
    let _ = w.scheme.encapsulate(&mut rng(1), &pk);
    if let Ok(kfrags) = w
        .scheme
        .delegate(&mut rng(2), &w.record_sk, &pk, w.threshold)
    {
        let first = kfrags.into_iter().next().expect("n >= 1 fragments");
        if let Err(e) = w.scheme.verify_key_frag(first, &w.record_pk, &pk) {
            panic!("an honest key fragment for a decoded grantee key does not verify: {e}");
        }
    }
}

/// The m verified capsule fragments of the fixed grant for `capsule`,
/// re-encrypted by the fixed replicas.
/// `None` if a replica would refuse to re-encrypt it.
fn fragments_for<P: Scheme>(
    w: &PreWorld<P>,
    capsule: &P::Capsule,
) -> Option<Vec<P::VerifiedCapsuleFrag>> {
    let mut r = rng(3);
    let mut out = Vec::new();
    for k in w.verified_kfrags.iter().take(usize::from(w.threshold.m)) {
        let cfrag = w.scheme.reencrypt(&mut r, capsule, k).ok()?;
        match w
            .scheme
            .verify_capsule_frag(cfrag, capsule, &w.record_pk, &w.grantee_pk)
        {
            Ok(v) => out.push(v),
            Err(e) => panic!(
                "an honest re-encryption of a decoded capsule does not verify against it: {e}"
            ),
        }
    }
    Some(out)
}

/// A capsule: exact encoding; opening it with the record key and opening it
/// re-encrypted through the fixed grant must agree (the same key, or both
/// refused: never a wrong key).
pub(crate) fn capsule<P: Scheme>(w: &PreWorld<P>, data: &[u8]) {
    let Ok(c) = P::Capsule::from_bytes(data) else {
        return;
    };
    assert_eq!(c.to_bytes(), data, "a capsule re-encodes differently");
    let direct = w.scheme.open(&w.record_sk, &c);
    if data == w.capsule.to_bytes() {
        let key = direct.as_ref().expect("the fixed capsule opens");
        assert_eq!(key.expose(), w.data_key.expose());
    }
    let Some(cfrags) = fragments_for(w, &c) else {
        return;
    };
    let through = w
        .scheme
        .open_reencrypted(&w.grantee_sk, &w.record_pk, &c, &cfrags);
    match (&direct, &through) {
        (Ok(a), Ok(b)) => assert_eq!(
            a.expose(),
            b.expose(),
            "the record key and the grant open a capsule to different keys"
        ),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "the record key and the grant disagree on a capsule: direct {:?}, re-encrypted {:?}",
            direct.as_ref().map(|_| ()),
            through.as_ref().map(|_| ())
        ),
    }
}

/// Combines `own` with fixed fragments of other replicas up to m and opens
/// the fixed capsule: a key, if any, must be the fixed one.
fn open_with<P: Scheme>(w: &PreWorld<P>, own: P::VerifiedCapsuleFrag, own_bytes: &[u8]) {
    let mut cfrags = vec![own];
    for (c, v) in w.cfrags.iter().zip(&w.verified_cfrags) {
        if cfrags.len() >= usize::from(w.threshold.m) {
            break;
        }
        if c.to_bytes() != own_bytes {
            cfrags.push(v.clone());
        }
    }
    if let Ok(key) = w
        .scheme
        .open_reencrypted(&w.grantee_sk, &w.record_pk, &w.capsule, &cfrags)
    {
        assert_eq!(
            key.expose(),
            w.data_key.expose(),
            "verified fragments opened the capsule to a wrong key"
        );
    }
}

/// What a replica does with key fragment bytes: verify them against the
/// fixed grant; re-encrypt with them; and read them back from its own
/// store (trusted bytes). A client then verifies the capsule fragment and
/// opens the capsule: never to a wrong key.
///
/// A fragment that verified must give capsule fragments that verify
/// (`PreScheme::verify_key_frag`'s contract). Umbral's `KeyFrag::verify`
/// alone did not check the signature for the receiver, which the capsule
/// fragment carries to the client: `regressions/umbral_key_frag/` has such
/// a fragment, refused since (finding 7 in README.md).
pub(crate) fn key_frag<P: Scheme>(w: &PreWorld<P>, data: &[u8]) {
    if let Ok(k) = P::KeyFrag::from_bytes(data) {
        assert_eq!(k.to_bytes(), data, "a key fragment re-encodes differently");
        if let Ok(v) = w.scheme.verify_key_frag(k, &w.record_pk, &w.grantee_pk) {
            assert_eq!(w.scheme.verified_key_frag_to_bytes(&v), data);
            let cfrag = w
                .scheme
                .reencrypt(&mut rng(4), &w.capsule, &v)
                .expect("re-encrypting with a verified fragment");
            let cfrag_bytes = cfrag.to_bytes();
            match w
                .scheme
                .verify_capsule_frag(cfrag, &w.capsule, &w.record_pk, &w.grantee_pk)
            {
                Ok(vc) => open_with(w, vc, &cfrag_bytes),
                Err(e) => {
                    panic!("re-encryption with a key fragment that verified does not verify: {e}")
                }
            }
        }
    }
    if let Ok(v) = w.scheme.verified_key_frag_from_trusted_bytes(data) {
        assert_eq!(w.scheme.verified_key_frag_to_bytes(&v), data);
        let _ = w.scheme.reencrypt(&mut rng(5), &w.capsule, &v);
    }
}

/// What a client does with capsule fragment bytes: verify them against the
/// fixed capsule and keys, then open the capsule with them.
pub(crate) fn capsule_frag_next<P: Scheme>(w: &PreWorld<P>, data: &[u8]) {
    let Ok(c) = P::CapsuleFrag::from_bytes(data) else {
        return;
    };
    assert_eq!(
        c.to_bytes(),
        data,
        "a capsule fragment re-encodes differently"
    );
    if let Ok(v) = w
        .scheme
        .verify_capsule_frag(c, &w.capsule, &w.record_pk, &w.grantee_pk)
    {
        open_with(w, v, data);
    }
}

macro_rules! scheme_targets {
    ($($name:ident, $world:ident, $f:ident, $doc:literal;)*) => {$(
        #[doc = $doc]
        pub fn $name(data: &[u8]) {
            $f(&fixture().$world, data)
        }
    )*};
}

scheme_targets! {
    umbral_public_key, umbral, public_key,
        "Umbral public keys (`UmbralPublicKey::from_bytes`: records and grants on the ledger, cards).";
    umbral_capsule, umbral, capsule,
        "Umbral capsules (`UmbralCapsule::from_bytes`: records on the ledger), opened directly and through the fixed grant.";
    umbral_key_frag, umbral, key_frag,
        "Umbral key fragments (`UmbralKeyFrag::from_bytes`, delivered to a replica; and the replica's own stored ones).";
    umbral_capsule_frag, umbral, capsule_frag_next,
        "Umbral capsule fragments (`UmbralCapsuleFrag::from_bytes`, in retrieval answers), verified and opened.";
    recrypt_public_key, recrypt, public_key,
        "recrypt public keys (`RecryptPublicKey::from_bytes`).";
    recrypt_capsule, recrypt, capsule,
        "recrypt capsules (`RecryptCapsule::from_bytes`), opened directly and through the fixed grant.";
    recrypt_key_frag, recrypt, key_frag,
        "recrypt key fragments (`RecryptKeyFrag::from_bytes`; and a replica's own stored ones).";
    recrypt_capsule_frag, recrypt, capsule_frag_next,
        "recrypt capsule fragments (`RecryptCapsuleFrag::from_bytes`), verified and opened.";
}

/// Opens `sealed` in memory and through the reader interface: both must
/// agree.
fn open_both(key: &rr_core::DataKey, sealed: &[u8]) -> Result<Vec<u8>, envelope::EnvelopeError> {
    let whole = envelope::open(key, sealed);
    let mut out = Vec::new();
    let streamed = envelope::decrypt_reader(key, sealed, &mut out).map(|n| {
        assert_eq!(n as usize, out.len());
        out
    });
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "open and decrypt_reader give different plaintexts"),
        (Err(a), Err(e)) => {
            let b = envelope::EnvelopeError::from_io(e);
            assert_eq!(Some(a), b, "open and decrypt_reader refuse differently");
        }
        _ => panic!(
            "open and decrypt_reader disagree: {:?} / {:?}",
            whole.as_ref().map(Vec::len),
            streamed.as_ref().map(Vec::len)
        ),
    }
    whole
}

/// Seals `plaintext` again under `header`: the envelope is a function of
/// key, header and plaintext, so an envelope that opened must be exactly
/// that.
fn reseal(key: &rr_core::DataKey, header: EnvelopeHeader, plaintext: &[u8]) -> Vec<u8> {
    let mut enc = EnvelopeEncryptor::with_header(key, header);
    let mut out = enc.header().to_vec();
    let chunk = enc.chunk_size();
    let mut pieces = plaintext.chunks(chunk);
    let last = pieces.next_back().unwrap_or(&[]);
    for p in pieces {
        enc.encrypt_next(p, &mut out).expect("a chunk encrypts");
    }
    enc.encrypt_last(last, &mut out)
        .expect("the last chunk encrypts");
    out
}

/// Envelopes (`rr_pre::envelope`, the ciphertext of records, fetched from
/// blob stores and peers), decrypted with the fixed data key.
///
/// Bytes starting with an even byte are opened as they are (the rest of
/// them); odd ones describe an envelope the target seals and then damages
/// (`[op, pos u16 LE, len u16 LE, fill...]`), which must open exactly when
/// left intact.
pub fn envelope(data: &[u8]) {
    let key = &fixture().envelope_key;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(plain) = open_both(key, rest) {
            let header = *EnvelopeDecryptor::new(key, rest)
                .expect("an envelope that opened has a header")
                .header();
            assert_eq!(
                reseal(key, header, &plain),
                rest,
                "an envelope opened that is not what sealing its plaintext gives"
            );
        }
        return;
    }
    let [op, p0, p1, l0, l1, fill @ ..] = rest else {
        return;
    };
    let len = usize::from(u16::from_le_bytes([*l0, *l1])) % (3 * envelope::MIN_CHUNK_SIZE + 100);
    let plain: Vec<u8> = if fill.is_empty() {
        vec![0; len]
    } else {
        fill.iter().copied().cycle().take(len).collect()
    };
    let sealed = envelope::seal_with_chunk_size(
        key,
        &mut rng(u64::from(*op)),
        &plain,
        envelope::MIN_CHUNK_SIZE,
    )
    .expect("sealing");
    let pos = usize::from(u16::from_le_bytes([*p0, *p1])) % sealed.len();
    let mut damaged = sealed.clone();
    match op % 6 {
        0 => {}
        1 => damaged[pos] ^= 1 << (op / 6 % 8),
        2 => damaged.truncate(pos),
        3 => damaged.insert(pos, *op),
        4 => {
            let (a, b) = (pos, (pos + envelope::MIN_CHUNK_SIZE) % sealed.len());
            damaged.swap(a, b);
        }
        _ => damaged.extend_from_slice(&sealed[envelope::HEADER_LEN..]),
    }
    let opened = open_both(key, &damaged);
    if damaged == sealed {
        assert_eq!(opened.as_deref(), Ok(&plain[..]), "an intact envelope");
    } else {
        assert!(
            opened.is_err(),
            "a damaged envelope opened (op {op}, pos {pos})"
        );
    }
}
