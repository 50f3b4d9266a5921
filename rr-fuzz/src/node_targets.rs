//! Targets of rr-node's decoders: sealed key fragments, keystore files,
//! cluster files, public cards, receipt files and the HTTP API's messages.

use std::path::PathBuf;
use std::sync::OnceLock;

use rr_core::{ErrorCode, ReplicaId, WireEncoding};
use rr_node::api::replica_set_of;
use rr_node::http::{authorization_header, parse_authorization_header, ErrorBody};
use rr_node::keystore::{KdfParams, Keystore};
use rr_node::receipt::{Proof, ReceiptFile};
use rr_node::sealing::{seal, SealingPublicKey, Slot};
use rr_node::{ClusterFile, FragmentDelivery, NodeInfo, PublicCard, Retrieval};
use rr_pre::{Recrypt, ReplicaScheme, Umbral};

use crate::check::{json_stable, resign_certificate};
use crate::core_targets::{certified_receipt_next, signed_fragment_next, state_answer_next};
use crate::fixture::{account, fixture, PASSPHRASE};

/// A directory of this thread's own for files the targets read
/// (`$TMPDIR/rr-fuzz-<pid>/<what>-<thread>`: the replay tests run targets
/// on several threads of one process). libFuzzer exits without running
/// destructors, so the directories of processes that are gone are removed
/// here instead.
fn scratch(what: &str) -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let tmp = std::env::temp_dir();
        let proc = std::path::Path::new("/proc");
        if proc.is_dir() {
            for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("rr-fuzz-")) else {
                    continue;
                };
                if pid.bytes().all(|b| b.is_ascii_digit()) && !proc.join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        tmp.join(format!("rr-fuzz-{}", std::process::id()))
    });
    static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static THREAD: usize = THREADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let dir = root.join(format!("{what}-{}", THREAD.with(|t| *t)));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Key fragments sealed to a replica (`SealingKey::open` with the fixed
/// replica key and slot) and the fragments it keeps encrypted at rest
/// (`SealingKey::decrypt_at_rest`).
///
/// The first byte picks the mode: even, the rest is sealed bytes (and
/// stored bytes, and a public sealing key in hex); an opened fragment is
/// then checked as a key fragment of the fixed grants, as a replica does.
/// Odd, `[op, pos u16 LE, fragment...]`: the target seals the fragment
/// itself, damages it, and checks that it opens exactly when intact and
/// only in its own slot.
pub fn sealed_fragment(data: &[u8]) {
    let fx = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let other = Slot {
        replica: ReplicaId(1),
        ..fx.slot
    };
    if mode & 1 == 0 {
        if let Ok(fragment) = fx.sealing.open(&fx.slot, rest) {
            assert!(
                fx.sealing.open(&other, rest).is_err(),
                "a sealed fragment opened in two slots"
            );
            let u = &fx.umbral;
            let _ = ReplicaScheme::verify_key_frag(
                &Umbral,
                &fragment,
                &u.record_pk.to_bytes(),
                &u.grantee_pk.to_bytes(),
            );
            let r = &fx.recrypt;
            let _ = ReplicaScheme::verify_key_frag(
                &Recrypt,
                &fragment,
                &r.record_pk.to_bytes(),
                &r.grantee_pk.to_bytes(),
            );
            let stored = fx.sealing.encrypt_at_rest(&fx.grant, &fragment);
            let back = fx
                .sealing
                .decrypt_at_rest(&fx.grant, &stored)
                .expect("a fragment stored at rest decrypts");
            assert_eq!(&back[..], &fragment[..]);
        }
        if let Ok(fragment) = fx.sealing.decrypt_at_rest(&fx.grant, rest) {
            let _ = fx.sealing.decrypt_at_rest(&rr_core::GrantId([0; 32]), rest);
            let _ = rr_core::PreScheme::verified_key_frag_from_trusted_bytes(&Umbral, &fragment);
        }
        if let Ok(hex) = std::str::from_utf8(rest) {
            if let Ok(pk) = SealingPublicKey::from_hex(hex) {
                assert_eq!(pk.to_hex(), hex.to_ascii_lowercase());
                assert_eq!(SealingPublicKey::from_hex(&pk.to_hex()), Ok(pk));
            }
        }
        return;
    }
    let [op, p0, p1, fragment @ ..] = rest else {
        return;
    };
    let sealed = seal(&fx.sealing.public(), &fx.slot, fragment).expect("sealing to a valid key");
    let opened = fx
        .sealing
        .open(&fx.slot, &sealed)
        .expect("an intact seal opens");
    assert_eq!(&opened[..], fragment);
    assert!(
        fx.sealing.open(&other, &sealed).is_err(),
        "opened in another slot"
    );
    let pos = usize::from(u16::from_le_bytes([*p0, *p1])) % sealed.len();
    let mut damaged = sealed.clone();
    match op % 3 {
        0 => damaged[pos] ^= 1 << (op / 3 % 8),
        1 => damaged.truncate(pos),
        _ => damaged.push(*op),
    }
    if damaged != sealed {
        assert!(
            fx.sealing.open(&fx.slot, &damaged).is_err(),
            "a damaged sealed fragment opened (op {op}, pos {pos})"
        );
    }
    let stored = fx.sealing.encrypt_at_rest(&fx.grant, fragment);
    assert!(fx
        .sealing
        .decrypt_at_rest(&rr_core::GrantId([0; 32]), &stored)
        .is_err());
    let mut damaged = stored.clone();
    let pos = pos % stored.len();
    damaged[pos] ^= 1;
    assert!(fx.sealing.decrypt_at_rest(&fx.grant, &damaged).is_err());
}

/// The name of the fuzzed key file.
const KEY_NAME: &str = "fuzz";

/// The most a fuzzed key file may make Argon2 spend here. Key files may ask
/// for up to 1 GiB and 64 passes, by design; the target skips those rather
/// than spend seconds on one input.
fn kdf_too_costly(data: &[u8]) -> bool {
    let Some(header) = data.get(..25) else {
        return false;
    };
    let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    let kdf = KdfParams {
        memory_kib: u32_at(13),
        iterations: u32_at(17),
        parallelism: u32_at(21),
    };
    kdf.validate().is_ok() && (kdf.memory_kib > 256 || kdf.iterations > 2)
}

/// Keystore key files (`NAME.key`, read by `Keystore::load`; its parser is
/// private): written to a scratch keystore and opened with the fixed
/// passphrase. A key that opens must come with a signed card of its own.
pub fn keystore_key_file(data: &[u8]) {
    if kdf_too_costly(data) {
        return;
    }
    let store = Keystore::open_with_kdf(scratch("keystore"), KdfParams::insecure_for_tests())
        .expect("a scratch keystore");
    let _ = std::fs::remove_file(store.card_path(KEY_NAME));
    std::fs::write(store.key_path(KEY_NAME), data).expect("writing the key file");
    let Ok(identity) = store.load(KEY_NAME, PASSPHRASE) else {
        return;
    };
    let card = store
        .public_card(KEY_NAME)
        .expect("a key that opened has a card");
    assert_eq!(card, identity.card(), "the card written is not the key's");
    card.verify().expect("the card written is signed");
    let _ = identity.for_scheme(&Umbral);
    let _ = identity.for_scheme(&Recrypt);
}

/// Cluster files (`cluster.json`, `ClusterFile::read`): the checks of
/// `read`, the replica set and keys the file names, and a write and read
/// back.
pub fn cluster_file(data: &[u8]) {
    let path = scratch("cluster").join("cluster.json");
    std::fs::write(&path, data).expect("writing the cluster file");
    let Ok(file) = ClusterFile::read(&path) else {
        return;
    };
    json_stable(&file, "cluster file");
    assert!(!file.replicas.is_empty() && file.replicas.len() == file.n);
    for m in &file.replicas {
        let _ = m.peer().verifying_key();
        let _ = SealingPublicKey::from_hex(&m.sealing_key);
    }
    if let Ok(set) = file.replica_set() {
        assert_eq!(set.n(), file.n);
    }
    // A CA (PEM) pins the replicas' API certificates: the client parses it.
    if file.ca.is_some() {
        let _ = file.api_client(&file.replicas[0]);
    }
    file.write(&path).expect("writing a cluster file back");
    let back = ClusterFile::read(&path).expect("a written cluster file reads back");
    assert_eq!(back, file, "a cluster file changed through write and read");
}

/// Public cards (`NAME.card.json`, shared between people; JSON): the
/// account's signature over its keys must hold or fail the same way before
/// and after the card's own JSON round trip, and a card re-signed by its
/// account must verify; the keys it names are decoded as a granter does.
pub fn public_card(data: &[u8]) {
    let fx = fixture();
    let Ok(card) = serde_json::from_slice::<PublicCard>(data) else {
        return;
    };
    json_stable(&card, "public card");
    let json = serde_json::to_vec(&card).expect("a card encodes");
    let again: PublicCard = serde_json::from_slice(&json).expect("a card's JSON decodes");
    assert_eq!(
        card.verify().is_ok(),
        again.verify().is_ok(),
        "a card's signature changed verdict through its JSON"
    );
    let schemes = card.schemes();
    assert!(!schemes.is_empty());
    assert_eq!(card.key_for(card.scheme()), Some(card.pre_public_key()));
    for s in schemes {
        let Some(bytes) = card.key_for(s).and_then(|k| hex::decode(k).ok()) else {
            continue;
        };
        match s {
            rr_core::SchemeId::UMBRAL => crate::pre_targets::public_key(&fx.umbral, &bytes),
            rr_core::SchemeId::RECRYPT => crate::pre_targets::public_key(&fx.recrypt, &bytes),
            _ => {}
        }
    }
    for key in [&fx.alice, &fx.bob] {
        if card.account == account(key) {
            let signed = card.clone().signed(key);
            signed
                .verify()
                .expect("a card signed by its account verifies");
            let json = serde_json::to_vec(&signed).expect("a card encodes");
            let again: PublicCard = serde_json::from_slice(&json).expect("its JSON decodes");
            again
                .verify()
                .expect("a card signed by its account verifies after a JSON round trip");
        }
    }
}

/// The certificates inside a receipt file's proof, re-signed.
fn resign_receipt(file: &ReceiptFile) -> ReceiptFile {
    let mut out = file.clone();
    let cert = match &mut out.proof {
        Proof::Transaction { receipt, .. } => &mut receipt.certificate,
        Proof::Grant { state, .. } | Proof::Record { state, .. } => &mut state.certificate,
    };
    if let Some(c) = resign_certificate(cert) {
        *cert = c;
    }
    out
}

/// Receipt files (`ReceiptFile::from_json`: what a patient hands an insurer
/// or a court), checked against the set they name and the fixed one, as
/// they are and re-signed, and written back.
pub fn receipt_file(data: &[u8]) {
    let fx = fixture();
    let Ok(file) = ReceiptFile::from_json(data) else {
        return;
    };
    json_stable(&file, "receipt file");
    let back = ReceiptFile::from_json(&file.to_json()).expect("a receipt file's JSON reads back");
    assert_eq!(back, file);
    let own = file.verify(None);
    let trusted = file.verify(Some(&fx.set_info));
    if file.replica_set == fx.set_info {
        assert_eq!(own.is_ok(), trusted.is_ok());
    } else {
        assert!(
            trusted.is_err(),
            "a receipt of another replica set was trusted"
        );
    }
    let resigned = resign_receipt(&file);
    if resigned != file {
        if let Ok(statement) = resigned.verify(Some(&fx.set_info)) {
            assert!(statement.trusted_set);
            assert!(statement.certified_by.windows(2).all(|w| w[0] < w[1]));
            assert!(statement.certified_by.len() >= fx.set_info.quorum());
        }
    }
}

/// The HTTP API's messages: what a client reads from a replica (`NodeInfo`,
/// `Retrieval`, `FragmentDelivery`, error bodies; JSON), and what a node
/// reads from a client's `Authorization` header
/// (`parse_authorization_header`).
pub fn http_messages(data: &[u8]) {
    if let Ok(info) = serde_json::from_slice::<NodeInfo>(data) {
        json_stable(&info, "node info");
        if let Ok(set) = replica_set_of(info.peers.clone()) {
            assert_eq!(set.n(), info.peers.len());
        }
    }
    if let Ok(r) = serde_json::from_slice::<Retrieval>(data) {
        json_stable(&r, "retrieval");
        certified_receipt_next(&r.receipt);
        state_answer_next(&r.state);
        if let Some(f) = &r.fragment {
            signed_fragment_next(f);
        }
    }
    if let Ok(d) = serde_json::from_slice::<FragmentDelivery>(data) {
        json_stable(&d, "fragment delivery");
    }
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(data) {
        json_stable(&e, "error body");
        if let Ok(code) = e.error.code.parse::<ErrorCode>() {
            assert_eq!(code.as_str(), e.error.code);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let scope = "audit 00".to_string();
        if let Ok(auth) = parse_authorization_header(text, scope.clone()) {
            let header = authorization_header(&auth);
            let again = parse_authorization_header(&header, scope.clone())
                .expect("a formatted authorization header parses");
            assert_eq!(again, auth, "an authorization changed through its header");
            let _ = auth.check(&fixture().set_info.digest(), &scope, auth.at);
        }
    }
}
