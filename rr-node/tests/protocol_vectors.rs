//! Known-answer test vectors for `docs/protocol.md`, in `docs/vectors/*.json`.
//!
//! The test generates every vector from fixed seeds, with the workspace's own
//! code: ids, encodings, signed calls of every variant, envelopes, Umbral and
//! recrypt keys, capsules and fragments, sealed key fragments, public cards,
//! and a whole flow on a dev node (fixed node key, manual clock) with its
//! certified receipts, headers, certificates and state proofs.
//!
//! ```text
//! RR_WRITE_VECTORS=1 cargo test -p rr-node --test protocol_vectors   # (re)write docs/vectors/
//! cargo test -p rr-node --test protocol_vectors                      # check them
//! ```
//!
//! Without `RR_WRITE_VECTORS=1` it regenerates every file and asserts it
//! equals the checked-in one byte for byte, so the vectors cannot drift from
//! the code. Every value is deterministic (all randomness is drawn from
//! [`VecRng`], a BLAKE3 XOF of a fixed label) except the capsule fragment a
//! dev node makes when it serves a retrieval: `Node::retrieve` re-encrypts
//! with the OS RNG. That one value is read back from the checked-in file and
//! verified instead (its replica signature, the capsule fragment against the
//! record and grantee keys, and that it opens the record's data key), and the
//! rest of the file is compared byte for byte.
//!
//! `rr_node::sealing::seal` also draws from the OS RNG; the sealed key
//! fragments of `sealing.json` are made with the `hpke` crate directly
//! (the same suite, `info` and associated data) from a seeded RNG, and the
//! test checks that the replica's own `SealingKey::open` opens them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};
use rr_consensus::{ManualClock, SoloConfig};
use rr_core::cert::{Certificate, LedgerHeader, ReplicaSetInfo};
use rr_core::proof::{CertifiedReceipt, SignedFragment, StateAnswer};
use rr_core::{
    byte_stream_of, codec, AccountId, Block, BlockContext, Call, CallOutput, ConfirmErasure,
    ContentId, DataKey, Digest, ErrorCode, Grant, GrantId, Outcome, PolicyCode, PreScheme, Purpose,
    RecordId, RegisterRecord, ReplicaId, Retrieve, Revoke, SchemeId, SignedTransaction, Table,
    Threshold, Timestamp, TxBody, TxId, WireEncoding,
};
use rr_node::sealing::{SealingKey, Slot};
use rr_node::{
    Authorization, DevConfig, Node, NodeApi, NodeError, PublicCard, Retrieval, RootIdentity,
};
use rr_pre::envelope::{self, EnvelopeEncryptor, EnvelopeHeader};
use rr_pre::{Recrypt, Umbral};
use serde::Serialize;
use serde_json::Value;

// ------------------------------------------------------------------ setup

/// Where the vectors live.
fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors")
}

const GENERATED_BY: &str = "rr-node/tests/protocol_vectors.rs: `RR_WRITE_VECTORS=1 cargo test -p rr-node --test protocol_vectors` writes these files, `cargo test -p rr-node --test protocol_vectors` checks them";

/// Context of the seeds of every key and salt.
const SEED_CONTEXT: &str = "resilient-records protocol vectors seed v1";
/// Context of every random stream.
const RNG_CONTEXT: &str = "resilient-records protocol vectors rng v1";

const RANDOMNESS: &str = "No OS randomness: every seed is seed(label) = BLAKE3 derive_key(\"resilient-records protocol vectors seed v1\", label), and every RNG the code draws from is the BLAKE3 XOF of derive_key mode with context \"resilient-records protocol vectors rng v1\" over the label (rand_core next_u32/next_u64 read 4/8 bytes of the stream little-endian). The labels are given with each vector.";

/// The block time of the dev node's manual clock (2023-11-14T22:13:20Z).
const START: Timestamp = Timestamp(1_700_000_000_000);
/// One year in milliseconds.
const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

fn seed(label: &str) -> [u8; 32] {
    blake3::derive_key(SEED_CONTEXT, label.as_bytes())
}

/// A deterministic RNG: the BLAKE3 XOF of `derive_key(RNG_CONTEXT, label)`.
/// Implements the rand_core 0.6 traits (umbral-pre, rr-pre, ed25519) and the
/// rand_core 0.9 ones (hpke).
struct VecRng(blake3::OutputReader);

impl VecRng {
    fn new(label: &str) -> Self {
        let mut h = blake3::Hasher::new_derive_key(RNG_CONTEXT);
        h.update(label.as_bytes());
        Self(h.finalize_xof())
    }
}

impl rand_core::RngCore for VecRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for VecRng {}

impl rand_core_09::RngCore for VecRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::RngCore::next_u32(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::RngCore::next_u64(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest)
    }
}
impl rand_core_09::CryptoRng for VecRng {}

// ------------------------------------------------ ordered JSON, printed stably

/// A JSON value whose objects keep the order they were built in, printed
/// the same way whatever serde_json features the build enables.
#[derive(Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl From<&str> for J {
    fn from(s: &str) -> Self {
        J::Str(s.to_string())
    }
}
impl From<String> for J {
    fn from(s: String) -> Self {
        J::Str(s)
    }
}
impl From<u64> for J {
    fn from(n: u64) -> Self {
        J::Num(n.to_string())
    }
}
impl From<u32> for J {
    fn from(n: u32) -> Self {
        J::Num(n.to_string())
    }
}
impl From<u16> for J {
    fn from(n: u16) -> Self {
        J::Num(n.to_string())
    }
}
impl From<usize> for J {
    fn from(n: usize) -> Self {
        J::Num(n.to_string())
    }
}
impl From<bool> for J {
    fn from(b: bool) -> Self {
        J::Bool(b)
    }
}
impl From<Vec<J>> for J {
    fn from(v: Vec<J>) -> Self {
        J::Arr(v)
    }
}
impl<T: Into<J>> From<Option<T>> for J {
    fn from(v: Option<T>) -> Self {
        v.map_or(J::Null, Into::into)
    }
}

macro_rules! obj {
    ($($k:expr => $v:expr),* $(,)?) => {
        J::Obj(vec![$(($k.to_string(), J::from($v))),*])
    };
}

/// Lowercase hex.
fn hx(bytes: impl AsRef<[u8]>) -> J {
    J::Str(hex::encode(bytes))
}

/// A serde value (a protocol type's JSON form), keys sorted.
fn ser<T: Serialize + ?Sized>(v: &T) -> J {
    from_value(&serde_json::to_value(v).expect("serializes to JSON"))
}

fn from_value(v: &Value) -> J {
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => J::Num(n.to_string()),
        Value::String(s) => J::Str(s.clone()),
        Value::Array(a) => J::Arr(a.iter().map(from_value).collect()),
        Value::Object(o) => {
            let sorted: BTreeMap<&String, &Value> = o.iter().collect();
            J::Obj(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), from_value(v)))
                    .collect(),
            )
        }
    }
}

fn print(j: &J, indent: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
        J::Arr(a) if a.is_empty() => out.push_str("[]"),
        J::Obj(o) if o.is_empty() => out.push_str("{}"),
        J::Arr(a) => {
            out.push_str("[\n");
            for (i, v) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                print(v, indent + 1, out);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        J::Obj(o) => {
            let mut keys: Vec<&String> = o.iter().map(|(k, _)| k).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), o.len(), "duplicate keys in a vector object");
            out.push_str("{\n");
            for (i, (k, v)) in o.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(": ");
                print(v, indent + 1, out);
                out.push_str(if i + 1 < o.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
    }
}

fn render(j: &J) -> String {
    let mut s = String::new();
    print(j, 0, &mut s);
    s.push('\n');
    s
}

/// A vector file: what it holds, the sections it illustrates, and its
/// vectors by name.
fn file(title: &str, sections: &str, description: &str, vectors: Vec<(&str, J)>) -> J {
    obj! {
        "title" => title,
        "protocol" => format!("docs/protocol.md, {sections}"),
        "description" => description,
        "generated_by" => GENERATED_BY,
        "randomness" => RANDOMNESS,
        "vectors" => J::Obj(vectors.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
    }
}

/// Prepends a description and the section a vector illustrates.
fn vector(description: &str, section: &str, fields: J) -> J {
    let J::Obj(fields) = fields else {
        panic!("a vector is an object")
    };
    let mut all = vec![
        ("description".to_string(), J::from(description)),
        (
            "section".to_string(),
            J::from(format!("docs/protocol.md {section}")),
        ),
    ];
    all.extend(fields);
    J::Obj(all)
}

// ------------------------------------------------------------------ people

/// Someone with known keys: an ed25519 signing seed and a root seed (the
/// `RootIdentity` of the `rr` keystore, one PRE master secret per scheme).
struct Person {
    label: &'static str,
    signing_seed: [u8; 32],
    root_seed: [u8; 32],
}

impl Person {
    fn new(label: &'static str) -> Self {
        Self {
            label,
            signing_seed: seed(&format!("{label}/signing")),
            root_seed: seed(&format!("{label}/root")),
        }
    }
    fn key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.signing_seed)
    }
    fn account(&self) -> AccountId {
        AccountId::from_verifying_key(&self.key().verifying_key())
    }
    fn root(&self) -> RootIdentity {
        RootIdentity::from_root_bytes(&self.signing_seed, &self.root_seed)
    }
    fn umbral(&self) -> rr_node::Identity<Umbral> {
        self.root().for_scheme(&Umbral).unwrap()
    }
    fn recrypt(&self) -> rr_node::Identity<Recrypt> {
        self.root().for_scheme(&Recrypt).unwrap()
    }
    fn sign(&self, nonce: u64, call: Call) -> SignedTransaction {
        TxBody {
            signer: self.account(),
            nonce,
            call,
        }
        .sign(&self.key())
    }
    fn describe(&self) -> J {
        obj! {
            "signing_seed" => hx(self.signing_seed),
            "signing_seed_label" => format!("{}/signing", self.label),
            "root_seed" => hx(self.root_seed),
            "root_seed_label" => format!("{}/root", self.label),
            "account" => hx(self.account().0),
        }
    }
}

// ------------------------------------------------------------------ pieces

/// The fields every signed transaction vector has.
fn tx_fields(tx: &SignedTransaction) -> Vec<(String, J)> {
    let out = fields(obj! {
        "signer" => hx(tx.body.signer.0),
        "nonce" => tx.body.nonce,
        "json" => ser(tx),
        "body_postcard" => hx(codec::encode(&tx.body)),
        "signing_bytes" => hx(tx.body.signing_bytes()),
        "signature" => hx(&tx.signature),
        "signed_tx_postcard" => hx(tx.to_bytes()),
        "tx_id" => hx(tx.id().0),
    });
    // The transaction verifies, decodes from its bytes and from its JSON.
    assert!(tx.clone().verify().is_ok());
    assert_eq!(&SignedTransaction::from_bytes(&tx.to_bytes()).unwrap(), tx);
    let json = serde_json::to_string(tx).unwrap();
    assert_eq!(
        &serde_json::from_str::<SignedTransaction>(&json).unwrap(),
        tx
    );
    out
}

/// The fields of an object.
fn fields(j: J) -> Vec<(String, J)> {
    match j {
        J::Obj(f) => f,
        _ => panic!("not an object"),
    }
}

fn with(fields: Vec<(String, J)>, more: J) -> J {
    let more = self::fields(more);
    J::Obj(fields.into_iter().chain(more).collect())
}

/// A certificate with its header's encoding, hash and signing bytes, checked
/// against `set`.
fn cert_fields(cert: &Certificate, set: &ReplicaSetInfo) -> J {
    cert.verify(set).expect("the certificate verifies");
    let hash = cert.header.hash();
    obj! {
        "header_postcard" => hx(cert.header.to_bytes()),
        "header_hash" => hx(hash.0),
        "header_signing_bytes" => hx(LedgerHeader::signing_bytes(&hash)),
    }
}

/// A certified receipt as the node answers it, with the receipt's postcard
/// bytes and leaf hash and the certificate's header hash, checked for `tx`.
fn receipt_fields(r: &CertifiedReceipt, tx: &TxId, set: &ReplicaSetInfo) -> J {
    r.verify_for(set, tx).expect("the receipt verifies");
    let bytes = r.receipt.to_bytes();
    let J::Obj(cert) = cert_fields(&r.certificate, set) else {
        unreachable!()
    };
    let out = fields(obj! {
        "answer" => ser(r),
        "receipt_postcard" => hx(&bytes),
        "receipt_leaf_hash" => hx(rr_core::merkle::leaf_hash(&bytes).0),
    });
    J::Obj(out.into_iter().chain(cert).collect())
}

/// A state answer, verified against `set`, with each entry's key hash and
/// value hash.
fn state_fields(a: &StateAnswer, set: &ReplicaSetInfo) -> J {
    a.verify(set).expect("the state answer verifies");
    let J::Obj(cert) = cert_fields(&a.certificate, set) else {
        unreachable!()
    };
    let entries: Vec<J> = a
        .entries
        .iter()
        .map(|e| {
            obj! {
                "table" => ser(&e.table),
                "table_id" => u16::from(e.table.id()),
                "key" => hx(&e.key),
                "key_hash" => hx(rr_core::smt::key_hash(e.table.id(), &e.key).0),
                "value_hash" => e.value.as_ref().map(|v| hx(rr_core::smt::value_hash(v).0)),
            }
        })
        .collect();
    let out = fields(obj! {
        "answer" => ser(a),
        "entry_hashes" => entries,
    });
    J::Obj(out.into_iter().chain(cert).collect())
}

fn cid_of(bytes: &[u8]) -> ContentId {
    // The node's blob stores compute CIDs with sha2; the one in memory is
    // the shortest way to the same code from here.
    let store = rr_storage::MemoryBlobStore::new();
    let rt = tokio::runtime::Handle::try_current();
    let fut = async move {
        rr_core::BlobStore::put_bytes(&store, bytes::Bytes::copy_from_slice(bytes))
            .await
            .unwrap()
    };
    match rt {
        Ok(_) => tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(fut)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(fut),
    }
}

fn cid_fields(bytes: &[u8]) -> J {
    let cid = cid_of(bytes);
    obj! {
        "sha256" => hx(cid.sha256()),
        "cid" => cid.to_string(),
        "cid_binary" => hx(cid.to_bytes()),
        "cid_postcard" => hx(codec::encode(&cid)),
    }
}

/// An envelope with a chosen nonce prefix and chunk size.
fn seal_envelope(key: &DataKey, prefix: [u8; 19], chunk_size: usize, plaintext: &[u8]) -> Vec<u8> {
    let header = EnvelopeHeader::new(chunk_size, prefix).unwrap();
    let mut enc = EnvelopeEncryptor::with_header(key, header);
    let mut out = enc.header().to_vec();
    let mut chunks = plaintext.chunks(chunk_size);
    let last = chunks.next_back().unwrap_or(&[]);
    for c in chunks {
        enc.encrypt_next(c, &mut out).unwrap();
    }
    enc.encrypt_last(last, &mut out).unwrap();
    assert_eq!(envelope::open(key, &out).unwrap(), plaintext);
    assert_eq!(
        out.len() as u64,
        envelope::sealed_len(plaintext.len() as u64, chunk_size)
    );
    out
}

fn random<const N: usize>(label: &str) -> [u8; N] {
    let mut b = [0u8; N];
    rand_core::RngCore::fill_bytes(&mut VecRng::new(label), &mut b);
    b
}

/// The plaintext pattern of the long envelopes: byte i is i mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ------------------------------------------------------------------ files

struct Files {
    files: Vec<(&'static str, J)>,
}

/// What the check mode reads back from the checked-in files.
struct CheckedIn(BTreeMap<String, Value>);

impl CheckedIn {
    fn load() -> Self {
        let mut m = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(vector_dir()) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.ends_with(".json") {
                    let text = std::fs::read_to_string(e.path()).unwrap();
                    let v: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|err| panic!("docs/vectors/{name} is not JSON: {err}"));
                    m.insert(name, v);
                }
            }
        }
        Self(m)
    }

    fn get(&self, file: &str, path: &[&str]) -> Option<&Value> {
        let mut v = self.0.get(file)?;
        for p in path {
            v = v.get(p)?;
        }
        Some(v)
    }
}

fn writing() -> bool {
    std::env::var("RR_WRITE_VECTORS").is_ok_and(|v| v == "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_vectors() {
    let checked_in = CheckedIn::load();
    let write = writing();
    let files = generate(&checked_in, write).await;
    let dir = vector_dir();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, j) in &files.files {
            std::fs::write(dir.join(name), render(j)).unwrap();
        }
        eprintln!("wrote {} files to {}", files.files.len(), dir.display());
        return;
    }
    let mut problems = Vec::new();
    for (name, j) in &files.files {
        let fresh = render(j);
        match std::fs::read_to_string(dir.join(name)) {
            Err(e) => problems.push(format!("docs/vectors/{name}: cannot read it ({e})")),
            Ok(old) if old != fresh => {
                let line = old
                    .lines()
                    .zip(fresh.lines())
                    .position(|(a, b)| a != b)
                    .map_or(old.lines().count().min(fresh.lines().count()) + 1, |i| {
                        i + 1
                    });
                problems.push(format!(
                    "docs/vectors/{name} differs from what the code generates, first at line {line}:\n  checked in: {}\n  generated:  {}",
                    old.lines().nth(line - 1).unwrap_or("<end of file>"),
                    fresh.lines().nth(line - 1).unwrap_or("<end of file>"),
                ));
            }
            Ok(_) => {}
        }
    }
    let expected: Vec<&str> = files.files.iter().map(|(n, _)| *n).collect();
    for name in checked_in.0.keys() {
        if !expected.contains(&name.as_str()) {
            problems.push(format!(
                "docs/vectors/{name} is not generated by this test any more: delete it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nIf the change is intended, regenerate with RR_WRITE_VECTORS=1 cargo test -p rr-node --test protocol_vectors and review the diff.",
        problems.join("\n")
    );
}

async fn generate(checked_in: &CheckedIn, write: bool) -> Files {
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    let replicas: Vec<Person> = ["replica-0", "replica-1", "replica-2", "replica-3"]
        .into_iter()
        .map(Person::new)
        .collect();
    let cluster = ReplicaSetInfo::new(replicas.iter().map(Person::account).collect()).unwrap();

    // ---------------------------------------------------------- encoding.json
    let encoding = encoding_file(&alice);

    // ---------------------------------------------------------- umbral.json
    let umbral = Umbral;
    let alice_u = alice.umbral();
    let bob_u = bob.umbral();
    let alice_master = umbral.master_to_bytes(alice_u.master()).to_vec();
    let bob_master = umbral.master_to_bytes(bob_u.master()).to_vec();
    assert_eq!(
        alice_master,
        blake3::derive_key(
            "resilient-records keystore v2 umbral master",
            &alice.root_seed
        )
    );
    let (_, alice_acct_pk) = umbral.account_key(alice_u.master());
    let (bob_sk, bob_pk) = umbral.account_key(bob_u.master());
    let salt: [u8; 16] = random("alice/record salt");
    let record = RecordId::derive(&alice.account(), &salt);
    let (record_sk, record_pk) = umbral.record_key(alice_u.master(), &record);
    let (capsule, data_key) = umbral
        .encapsulate(&mut VecRng::new("umbral/capsule"), &record_pk)
        .unwrap();
    let capsule_bytes = capsule.to_bytes();
    let umbral_capsule_len = u16::from_le_bytes([capsule_bytes[1], capsule_bytes[2]]) as usize;
    assert_eq!(capsule_bytes.len(), 3 + umbral_capsule_len + 72);
    assert_eq!(
        umbral.open(&record_sk, &capsule).unwrap().expose(),
        data_key.expose()
    );
    let t24 = Threshold::new(2, 4).unwrap();
    let kfrags = umbral
        .delegate(
            &mut VecRng::new("umbral/key fragments"),
            &record_sk,
            &bob_pk,
            t24,
        )
        .unwrap();
    let kfrag_bytes: Vec<Vec<u8>> = kfrags.iter().map(WireEncoding::to_bytes).collect();
    let mut cfrag_bytes = Vec::new();
    let mut verified_cfrags = Vec::new();
    for i in [0usize, 2] {
        let kfrag = rr_pre::UmbralKeyFrag::from_bytes(&kfrag_bytes[i]).unwrap();
        let vk = umbral.verify_key_frag(kfrag, &record_pk, &bob_pk).unwrap();
        let cfrag = umbral
            .reencrypt(
                &mut VecRng::new(&format!("umbral/capsule fragment {i}")),
                &capsule,
                &vk,
            )
            .unwrap();
        let b = cfrag.to_bytes();
        let cfrag = rr_pre::UmbralCapsuleFrag::from_bytes(&b).unwrap();
        verified_cfrags.push(
            umbral
                .verify_capsule_frag(cfrag, &capsule, &record_pk, &bob_pk)
                .unwrap(),
        );
        cfrag_bytes.push((i, b));
    }
    let opened = umbral
        .open_reencrypted(&bob_sk, &record_pk, &capsule, &verified_cfrags)
        .unwrap();
    assert_eq!(opened.expose(), data_key.expose());
    let record_pk_bytes = record_pk.to_bytes();
    let label = |prefix: &[u8]| [prefix, &record.0[..]].concat();
    let umbral_json = file(
        "Umbral (scheme 1, umbral-pre 0.11) keys, capsule, key fragments and capsule fragments",
        "sections 7.1, 7.2",
        "Alice owns a record and grants Bob 2 of 4 key fragments; replicas 0 and 2 re-encrypt. Check with umbral-pre 0.11 (Rust or the PyPI binding): derive the keys from the master secrets, parse and re-serialize every value, verify the fragments, and open the data key both ways.",
        vec![
            (
                "master_secrets",
                vector(
                    "The umbral master secret of an identity, derived from its root seed as the rr keystore does, and its account public key (label rr/account/v1).",
                    "7.1, 7.2",
                    obj! {
                        "alice" => obj! {
                            "root_seed" => hx(alice.root_seed),
                            "umbral_master" => hx(&alice_master),
                            "account_public_key" => hx(alice_acct_pk.to_bytes()),
                        },
                        "bob" => obj! {
                            "root_seed" => hx(bob.root_seed),
                            "umbral_master" => hx(&bob_master),
                            "account_public_key" => hx(bob_pk.to_bytes()),
                        },
                    },
                ),
            ),
            (
                "record_key",
                vector(
                    "The record public key of Alice's record: 01 01 || record point || signer verifying point. The record id is ids.json record_id.",
                    "7.2",
                    obj! {
                        "owner_umbral_master" => hx(&alice_master),
                        "record_id" => hx(record.0),
                        "record_key_label" => hx(label(b"rr/record/v1/")),
                        "signer_key_label" => hx(label(b"rr/record-signer/v1/")),
                        "record_public_key" => hx(&record_pk_bytes),
                        "record_point" => hx(&record_pk_bytes[2..35]),
                        "signer_verifying_point" => hx(&record_pk_bytes[35..68]),
                    },
                ),
            ),
            (
                "capsule",
                vector(
                    "The capsule field of RegisterRecord: 01 || le16(len) || umbral capsule || 72-byte wrapped data key (umbral encrypt of the 32-byte data key). The data key is the first 32 bytes of the RNG stream, then umbral-pre draws its own randomness from the same stream.",
                    "7.2",
                    obj! {
                        "rng_label" => "umbral/capsule",
                        "record_public_key" => hx(&record_pk_bytes),
                        "data_key" => hx(data_key.expose()),
                        "capsule" => hx(&capsule_bytes),
                        "umbral_capsule" => hx(&capsule_bytes[3..3 + umbral_capsule_len]),
                        "umbral_capsule_len" => umbral_capsule_len,
                        "wrapped_key" => hx(&capsule_bytes[3 + umbral_capsule_len..]),
                    },
                ),
            ),
            (
                "key_fragments",
                vector(
                    "Key fragments of Alice's record for Bob, threshold 2 of 4, signed by the record signer with sign_delegating_key and sign_receiving_key set. Each is 01 || umbral bytes; fragment i goes to replica i (sealed: sealing.json).",
                    "7.2",
                    obj! {
                        "rng_label" => "umbral/key fragments",
                        "record_public_key" => hx(&record_pk_bytes),
                        "grantee_account_public_key" => hx(bob_pk.to_bytes()),
                        "threshold" => ser(&t24),
                        "key_fragments" => kfrag_bytes.iter().map(hx).collect::<Vec<_>>(),
                    },
                ),
            ),
            (
                "capsule_fragments",
                vector(
                    "Replicas 0 and 2 re-encrypt the capsule with their key fragments; Bob verifies both and opens the data key with his account secret key (decrypt_reencrypted).",
                    "7.2",
                    obj! {
                        "capsule_fragments" => cfrag_bytes.iter().map(|(i, b)| obj! {
                            "replica" => *i,
                            "rng_label" => format!("umbral/capsule fragment {i}"),
                            "capsule_fragment" => hx(b),
                        }).collect::<Vec<_>>(),
                        "opened_data_key" => hx(opened.expose()),
                    },
                ),
            ),
        ],
    );

    // ---------------------------------------------------------- recrypt.json
    let recrypt = Recrypt;
    let alice_r = alice.recrypt();
    let bob_r = bob.recrypt();
    let alice_rmaster = recrypt.master_to_bytes(alice_r.master()).to_vec();
    assert_eq!(
        alice_rmaster,
        blake3::derive_key(
            "resilient-records keystore v2 recrypt master",
            &alice.root_seed
        )
    );
    let (bob_rsk, bob_rpk) = recrypt.account_key(bob_r.master());
    let (rrecord_sk, rrecord_pk) = recrypt.record_key(alice_r.master(), &record);
    let (rcapsule, rdata_key) = recrypt
        .encapsulate(&mut VecRng::new("recrypt/capsule"), &rrecord_pk)
        .unwrap();
    assert_eq!(
        recrypt.open(&rrecord_sk, &rcapsule).unwrap().expose(),
        rdata_key.expose()
    );
    let rkfrags = recrypt
        .delegate(
            &mut VecRng::new("recrypt/key fragment"),
            &rrecord_sk,
            &bob_rpk,
            Threshold::new(1, 1).unwrap(),
        )
        .unwrap();
    let rkfrag = rkfrags[0].to_bytes();
    let rvk = recrypt
        .verify_key_frag(
            rr_pre::RecryptKeyFrag::from_bytes(&rkfrag).unwrap(),
            &rrecord_pk,
            &bob_rpk,
        )
        .unwrap();
    let rcfrag = recrypt
        .reencrypt(
            &mut VecRng::new("recrypt/capsule fragment"),
            &rcapsule,
            &rvk,
        )
        .unwrap()
        .to_bytes();
    let rverified = recrypt
        .verify_capsule_frag(
            rr_pre::RecryptCapsuleFrag::from_bytes(&rcfrag).unwrap(),
            &rcapsule,
            &rrecord_pk,
            &bob_rpk,
        )
        .unwrap();
    let ropened = recrypt
        .open_reencrypted(&bob_rsk, &rrecord_pk, &rcapsule, &[rverified])
        .unwrap();
    assert_eq!(ropened.expose(), rdata_key.expose());
    let rrecord_pk_bytes = rrecord_pk.to_bytes();
    let recrypt_json = file(
        "recrypt (scheme 2, recrypt 0.16) keys, capsule, key fragment and capsule fragment",
        "sections 7.1, 7.3",
        "Alice's record (the same record id as umbral.json) under recrypt, granted to Bob (threshold 1), transformed by one replica and opened by Bob. Only a binding of the recrypt Rust crate can recompute the points; any language can check the layouts, the version bytes and the Ed25519 signer keys derived from the master secret.",
        vec![
            (
                "keys",
                vector(
                    "Master secrets (from the root seeds), Bob's account public key (01 00 || P) and Alice's record public key (01 01 || P || delegation EdPK || proxy EdPK). The two EdPKs are the RFC 8032 public keys of the first 32 bytes of BLAKE3 derive_key(\"resilient-records rr-pre recrypt signing seed v1\") XOF over master || \"delegation\" || record id, resp. master || \"proxy\" || record id.",
                    "7.3",
                    obj! {
                        "alice_root_seed" => hx(alice.root_seed),
                        "alice_recrypt_master" => hx(&alice_rmaster),
                        "bob_root_seed" => hx(bob.root_seed),
                        "bob_recrypt_master" => hx(recrypt.master_to_bytes(bob_r.master())),
                        "bob_account_public_key" => hx(bob_rpk.to_bytes()),
                        "record_id" => hx(record.0),
                        "record_public_key" => hx(&rrecord_pk_bytes),
                        "record_point" => hx(&rrecord_pk_bytes[2..66]),
                        "delegation_public_key" => hx(&rrecord_pk_bytes[66..98]),
                        "proxy_public_key" => hx(&rrecord_pk_bytes[98..130]),
                    },
                ),
            ),
            (
                "capsule",
                vector(
                    "A capsule (577 bytes) and the data key it holds (SHA-256 of the recrypt plaintext).",
                    "7.3",
                    obj! {
                        "rng_label" => "recrypt/capsule",
                        "capsule" => hx(rcapsule.to_bytes()),
                        "data_key" => hx(rdata_key.expose()),
                    },
                ),
            ),
            (
                "key_fragment",
                vector(
                    "The key fragment (865 bytes) of Alice's record for Bob; on a cluster every replica gets this same fragment.",
                    "7.3",
                    obj! {
                        "rng_label" => "recrypt/key fragment",
                        "key_fragment" => hx(&rkfrag),
                    },
                ),
            ),
            (
                "capsule_fragment",
                vector(
                    "One replica's capsule fragment (1537 bytes), and the data key Bob opens with it.",
                    "7.3",
                    obj! {
                        "rng_label" => "recrypt/capsule fragment",
                        "capsule_fragment" => hx(&rcfrag),
                        "opened_data_key" => hx(ropened.expose()),
                    },
                ),
            ),
        ],
    );

    // ---------------------------------------------------------- sealing.json
    let mut sealed = Vec::new();
    let mut sealing_replicas = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        use hpke::{Kem as _, Serializable as _};
        let sealing_seed = blake3::derive_key(
            "resilient-records keystore v2 replica sealing seed",
            &r.root_seed,
        );
        let ikm = blake3::derive_key("resilient-records replica hpke x25519 v1", &sealing_seed);
        let (sk, pk) = hpke::kem::X25519HkdfSha256::derive_keypair(&ikm);
        let key: SealingKey = r.root().sealing_key().unwrap();
        assert_eq!(key.public().0[..], pk.to_bytes()[..]);
        let slot = Slot {
            record,
            grantee: bob.account(),
            replica: ReplicaId(i as u16),
        };
        let aad = [
            &record.0[..],
            &bob.account().0[..],
            &(i as u16).to_le_bytes()[..],
        ]
        .concat();
        let label = format!("sealing/replica {i}");
        let (enc, ct) = hpke::single_shot_seal::<
            hpke::aead::ChaCha20Poly1305,
            hpke::kdf::HkdfSha256,
            hpke::kem::X25519HkdfSha256,
            _,
        >(
            &hpke::OpModeS::Base,
            &pk,
            b"resilient-records/sealed-key-fragment/v1",
            &kfrag_bytes[i],
            &aad,
            &mut VecRng::new(&label),
        )
        .unwrap();
        let enc = enc.to_bytes().to_vec();
        let bytes = [&[1u8][..], &enc, &ct].concat();
        assert_eq!(&key.open(&slot, &bytes).unwrap()[..], &kfrag_bytes[i][..]);
        // The replica's own sealing (OS RNG) opens too, and differs.
        let theirs = rr_node::sealing::seal(&key.public(), &slot, &kfrag_bytes[i]).unwrap();
        assert_eq!(&key.open(&slot, &theirs).unwrap()[..], &kfrag_bytes[i][..]);
        let commitment = Digest::fragment_commitment(&bytes);
        sealing_replicas.push(obj! {
            "replica" => i,
            "root_seed" => hx(r.root_seed),
            "sealing_seed" => hx(sealing_seed),
            "ikm" => hx(ikm),
            "sealing_secret_key" => hx(sk.to_bytes()),
            "sealing_public_key" => hx(pk.to_bytes()),
        });
        sealed.push(obj! {
            "replica" => i,
            "rng_label" => label,
            "sealing_public_key" => hx(pk.to_bytes()),
            "aad" => hx(&aad),
            "key_fragment" => hx(&kfrag_bytes[i]),
            "enc" => hx(&enc),
            "ciphertext" => hx(&ct),
            "sealed" => hx(&bytes),
            "commitment" => hx(commitment.0),
        });
    }
    let commitments: Vec<Digest> = sealed
        .iter()
        .map(|s| {
            let J::Obj(f) = s else { unreachable!() };
            let J::Str(c) = &f.iter().find(|(k, _)| k == "commitment").unwrap().1 else {
                unreachable!()
            };
            Digest::from_hex(c).unwrap()
        })
        .collect();
    let sealing_json = file(
        "Key fragments sealed to replicas with HPKE (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305)",
        "section 9 (and 3.5 for the commitments)",
        "The four umbral key fragments of umbral.json key_fragments, each sealed to replica i of a 4-replica cluster for the slot (Alice's record, Bob, i). rr_node::sealing::seal draws the ephemeral key from the OS RNG; these were sealed with the hpke crate (the same suite, info and associated data) from the seeded RNG named, and the test checks that the replica's own SealingKey::open opens each. To check without an HPKE library that takes an RNG: open each with the replica's secret key (or recompute it from its root seed) and compare with the key fragment.",
        vec![
            (
                "replica_sealing_keys",
                vector(
                    "Replica sealing keys (replica-internal derivation, informative): sealing_seed = DK(\"resilient-records keystore v2 replica sealing seed\", root_seed), ikm = DK(\"resilient-records replica hpke x25519 v1\", sealing_seed), key pair = HPKE DeriveKeyPair(ikm) of DHKEM(X25519, HKDF-SHA256). The public keys are what cluster.json lists as sealing_key.",
                    "9",
                    obj! { "replicas" => sealing_replicas },
                ),
            ),
            (
                "sealed_fragments",
                vector(
                    "sealed = 01 || enc (32) || ciphertext; aad = record id || grantee account || le16(replica); info = \"resilient-records/sealed-key-fragment/v1\"; commitment = Hlp(\"resilient-records 2026 key fragment commitment\", sealed) is what the Grant of calls.json grant commits to.",
                    "9, 3.5",
                    obj! {
                        "info" => hx(b"resilient-records/sealed-key-fragment/v1"),
                        "record_id" => hx(record.0),
                        "grantee" => hx(bob.account().0),
                        "fragments" => sealed,
                    },
                ),
            ),
        ],
    );

    // ---------------------------------------------------------- envelope.json
    let envelope_json = envelope_file();

    // ---------------------------------------------------------- card.json
    let card_json = {
        let alice_card = alice.root().card();
        alice_card.verify().unwrap();
        let bob_card = bob_u.card(&umbral);
        bob_card.verify().unwrap();
        let mut vectors = Vec::new();
        for (name, description, card, person) in [
            (
                "root_identity_card",
                "The card `rr keys show alice --json` prints: an umbral and a recrypt key. The signature covers the account and the (scheme name, key hex) pairs in name order, the hex text as written.",
                &alice_card,
                &alice,
            ),
            (
                "umbral_only_card",
                "A card with an umbral key only (what a client that implements umbral alone, such as examples/python, publishes); rr accepts it.",
                &bob_card,
                &bob,
            ),
        ] {
            let json = serde_json::to_value(card).unwrap();
            let back: PublicCard = serde_json::from_value(json.clone()).unwrap();
            back.verify().unwrap();
            assert_eq!(&back, card);
            let signing_bytes = card.signing_bytes();
            let sig = person.key().sign(&signing_bytes);
            vectors.push((
                name,
                vector(
                    description,
                    "13",
                    obj! {
                        "signing_seed" => hx(person.signing_seed),
                        "root_seed" => hx(person.root_seed),
                        "card" => from_value(&json),
                        "signing_bytes" => hx(&signing_bytes),
                        "signature" => hx(sig.to_bytes()),
                    },
                ),
            ));
        }
        file(
            "Public cards",
            "section 13",
            "Signed public cards (JSON) with their signing bytes.",
            vectors,
        )
    };

    // ---------------------------------------------------------- calls.json
    let envelope_for_record = seal_envelope(
        &data_key,
        random("alice/record envelope nonce prefix"),
        envelope::DEFAULT_CHUNK_SIZE,
        b"2026-11-23 blood panel: all normal\n",
    );
    let record_cid = cid_of(&envelope_for_record);
    let register = alice.sign(
        1,
        Call::RegisterRecord(RegisterRecord {
            salt,
            cid: record_cid,
            size: envelope_for_record.len() as u64,
            scheme: SchemeId::UMBRAL,
            record_key: record_pk_bytes.clone(),
            capsule: capsule_bytes.clone(),
            media_type: "text/plain".into(),
            encrypted_metadata: None,
        }),
    );
    let salt2: [u8; 16] = random("alice/second record salt");
    let register_meta = alice.sign(
        2,
        Call::RegisterRecord(RegisterRecord {
            salt: salt2,
            cid: record_cid,
            size: envelope_for_record.len() as u64,
            scheme: SchemeId::RECRYPT,
            record_key: recrypt
                .record_key(
                    alice_r.master(),
                    &RecordId::derive(&alice.account(), &salt2),
                )
                .1
                .to_bytes(),
            capsule: rcapsule.to_bytes(),
            media_type: "application/fhir+json".into(),
            encrypted_metadata: Some(b"opaque, encrypted by the owner".to_vec()),
        }),
    );
    let expires = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z
    let grant = alice.sign(
        300,
        Call::Grant(Grant {
            record,
            grantee: bob.account(),
            grantee_key: bob_pk.to_bytes(),
            threshold: t24,
            fragment_commitments: commitments.clone(),
            purpose: Purpose::new("treatment").unwrap(),
            expires_at: Some(expires),
        }),
    );
    let grant_id = GrantId::derive(&grant.id());
    let retrieve = bob.sign(
        START.0,
        Call::Retrieve(Retrieve {
            grant: grant_id,
            purpose: Purpose::new("treatment").unwrap(),
        }),
    );
    let revoke = alice.sign(u64::MAX, Call::Revoke(Revoke { grant: grant_id }));
    let confirm = replicas[2].sign(
        7,
        Call::ConfirmErasure(ConfirmErasure {
            grant: grant_id,
            replica: ReplicaId(2),
        }),
    );
    let scope = Authorization::audit_scope(&record);
    let auth_at = START;
    let auth_message = [
        &b"resilient-records/query/v2\0"[..],
        &cluster.digest().0[..],
        &codec::encode(&(scope.as_str(), auth_at)),
    ]
    .concat();
    let auth = Authorization {
        account: alice.account(),
        scope: scope.clone(),
        at: auth_at,
        signature: alice.key().sign(&auth_message).to_bytes().to_vec(),
    };
    assert_eq!(
        auth.check(&cluster.digest(), &scope, START).unwrap(),
        alice.account()
    );
    assert!(auth.check(&Digest([0; 32]), &scope, START).is_err());
    let auth_header = |a: &Authorization| {
        format!(
            "RR-Ed25519 account={}, at={}, signature={}",
            a.account,
            a.at.0,
            hex::encode(&a.signature)
        )
    };
    let calls_json = {
        let call = |description: &str, section: &str, tx: &SignedTransaction, more: J| {
            vector(description, section, with(tx_fields(tx), more))
        };
        file(
            "Signed transactions of every call variant",
            "sections 4, 5 (and 11.2 for query authorizations)",
            "Each vector is one SignedTransaction: its JSON form (POST /v1/tx with Content-Type application/json), the postcard of its body, the signing bytes (\"resilient-records/tx/v1\\0\" || body), the ed25519 signature, the postcard of the signed transaction (POST /v1/tx as application/octet-stream) and its TxId = BLAKE3(signed_tx_postcard). The signers are the people of ids.json accounts.",
            vec![
                (
                    "register_record",
                    call(
                        "RegisterRecord (variant 0) of Alice's umbral record: the record key and capsule of umbral.json, the CID and size of an envelope of the record's data key, no metadata.",
                        "5.3",
                        &register,
                        obj! {
                            "record_id" => hx(record.0),
                            "envelope" => hx(&envelope_for_record),
                        },
                    ),
                ),
                (
                    "register_record_with_metadata",
                    call(
                        "RegisterRecord of a recrypt record (scheme 2) with encrypted_metadata set.",
                        "5.3",
                        &register_meta,
                        obj! { "record_id" => hx(RecordId::derive(&alice.account(), &salt2).0) },
                    ),
                ),
                (
                    "grant",
                    call(
                        "Grant (variant 1) of Alice's record to Bob on a 4-replica cluster: threshold 2 of 4, the commitments of the four sealed fragments of sealing.json, purpose treatment, expires 2026-01-01T00:00:00Z. Nonce 300 (varint ac 02).",
                        "5.4",
                        &grant,
                        obj! { "grant_id" => hx(grant_id.0) },
                    ),
                ),
                (
                    "retrieve",
                    call(
                        "Retrieve (variant 2) by Bob through that grant.",
                        "5.5",
                        &retrieve,
                        obj! {},
                    ),
                ),
                (
                    "revoke",
                    call(
                        "Revoke (variant 3) of the grant by Alice, nonce 2^64 - 1 (a 10-byte varint).",
                        "5.6",
                        &revoke,
                        obj! {},
                    ),
                ),
                (
                    "confirm_erasure",
                    call(
                        "ConfirmErasure (variant 4) by replica 2 of the cluster of ids.json replica_set_cluster, signed with its replica key.",
                        "5.7",
                        &confirm,
                        obj! {},
                    ),
                ),
                (
                    "query_authorization",
                    vector(
                        "The Authorization header of GET /v1/records/{id}/audit for Alice's record, for the cluster of replica_set_cluster: ed25519 by the account over \"resilient-records/query/v2\\0\" || replica set digest (32 bytes) || postcard((scope, at)).",
                        "11.2",
                        obj! {
                            "account" => hx(alice.account().0),
                            "scope" => scope.clone(),
                            "replica_set_digest" => hx(cluster.digest().0),
                            "at" => auth_at.0,
                            "signing_bytes" => hx(&auth_message),
                            "signature" => hx(&auth.signature),
                            "header" => auth_header(&auth),
                        },
                    ),
                ),
            ],
        )
    };

    // ---------------------------------------------------------- ids.json
    let ids_json = {
        let record_input = [
            &32u64.to_le_bytes()[..],
            &alice.account().0,
            &16u64.to_le_bytes(),
            &salt,
        ]
        .concat();
        assert_eq!(
            blake3::derive_key("resilient-records 2026 record id", &record_input),
            record.0
        );
        let bob_record = RecordId::derive(&bob.account(), &[0u8; 16]);
        let set_postcard = codec::encode(&cluster.keys());
        let single = ReplicaSetInfo::new(vec![replicas[0].account()]).unwrap();
        file(
            "Identifiers and derivations",
            "sections 2.5, 3, 10.1",
            "Accounts, record ids, transaction ids, grant ids, content ids, fragment commitments and replica set digests.",
            vec![
                (
                    "accounts",
                    vector(
                        "The people of every vector file: an ed25519 signing seed (RFC 8032 secret key) whose public key is the account id, and a root seed from which the rr keystore derives each scheme's PRE master secret (umbral.json, recrypt.json). replica-i are the replicas of a 4-replica cluster.",
                        "3.1, 7.1",
                        obj! {
                            "alice" => alice.describe(),
                            "bob" => bob.describe(),
                            "replica-0" => replicas[0].describe(),
                            "replica-1" => replicas[1].describe(),
                            "replica-2" => replicas[2].describe(),
                            "replica-3" => replicas[3].describe(),
                        },
                    ),
                ),
                (
                    "record_id",
                    vector(
                        "RecordId = Hlp(\"resilient-records 2026 record id\", owner, salt). derive_key_input is the length-prefixed input the BLAKE3 derive_key runs over.",
                        "3.2",
                        obj! {
                            "owner" => hx(alice.account().0),
                            "salt" => hx(salt),
                            "salt_json" => ser(&salt),
                            "rng_label" => "alice/record salt",
                            "derive_key_input" => hx(&record_input),
                            "record_id" => hx(record.0),
                        },
                    ),
                ),
                (
                    "record_id_zero_salt",
                    vector(
                        "A record id of Bob's with an all-zero salt.",
                        "3.2",
                        obj! {
                            "owner" => hx(bob.account().0),
                            "salt" => hx([0u8; 16]),
                            "record_id" => hx(bob_record.0),
                        },
                    ),
                ),
                (
                    "tx_id",
                    vector(
                        "TxId = BLAKE3(postcard(SignedTransaction)): the Revoke of calls.json revoke.",
                        "3.3",
                        obj! {
                            "signed_tx_postcard" => hx(revoke.to_bytes()),
                            "tx_id" => hx(revoke.id().0),
                        },
                    ),
                ),
                (
                    "grant_id",
                    vector(
                        "GrantId = Hlp(\"resilient-records 2026 grant id\", tx id of the Grant): calls.json grant.",
                        "3.4",
                        obj! {
                            "grant_tx_id" => hx(grant.id().0),
                            "derive_key_input" => hx([&32u64.to_le_bytes()[..], &grant.id().0].concat()),
                            "grant_id" => hx(grant_id.0),
                        },
                    ),
                ),
                (
                    "fragment_commitments",
                    vector(
                        "commitment(f) = Hlp(\"resilient-records 2026 key fragment commitment\", f): of a short byte string, and of the unsealed umbral key fragment 0 of umbral.json (what a dev node's Grant commits to).",
                        "3.5",
                        obj! {
                            "examples" => vec![
                                obj! {
                                    "fragment" => hx(b"fragment"),
                                    "commitment" => hx(Digest::fragment_commitment(b"fragment").0),
                                },
                                obj! {
                                    "fragment" => hx(&kfrag_bytes[0]),
                                    "commitment" => hx(Digest::fragment_commitment(&kfrag_bytes[0]).0),
                                },
                            ],
                        },
                    ),
                ),
                (
                    "content_id",
                    vector(
                        "ContentId of the 11 bytes \"hello world\": sha256, the CID string, the binary CID (not used on the wire) and the postcard form (20 || digest).",
                        "3.7",
                        with(
                            vec![("bytes".to_string(), hx(b"hello world"))],
                            cid_fields(b"hello world"),
                        ),
                    ),
                ),
                (
                    "replica_set_cluster",
                    vector(
                        "The replica set of the 4 replicas replica-0..3: n 4, f 1, quorum 3; digest = Hlp(\"resilient-records 2026 replica set\", postcard(keys)).",
                        "10.1",
                        obj! {
                            "json" => ser(&cluster),
                            "n" => cluster.n(),
                            "f" => cluster.f(),
                            "quorum" => cluster.quorum(),
                            "keys_postcard" => hx(&set_postcard),
                            "digest" => hx(cluster.digest().0),
                        },
                    ),
                ),
                (
                    "replica_set_single",
                    vector(
                        "A one-key replica set (a dev node's): n 1, f 0, quorum 1.",
                        "10.1",
                        obj! {
                            "json" => ser(&single),
                            "n" => single.n(),
                            "f" => single.f(),
                            "quorum" => single.quorum(),
                            "keys_postcard" => hx(codec::encode(&single.keys())),
                            "digest" => hx(single.digest().0),
                        },
                    ),
                ),
            ],
        )
    };

    // ---------------------------------------------------------- ledger.json
    let ledger_json = ledger(checked_in, write, &alice, &bob).await;

    Files {
        files: vec![
            ("encoding.json", encoding),
            ("ids.json", ids_json),
            ("calls.json", calls_json),
            ("envelope.json", envelope_json),
            ("umbral.json", umbral_json),
            ("recrypt.json", recrypt_json),
            ("sealing.json", sealing_json),
            ("card.json", card_json),
            ("ledger.json", ledger_json),
        ],
    }
}

/// `encoding.json`: primitive values in JSON and postcard.
fn encoding_file(alice: &Person) -> J {
    let mut postcard = Vec::new();
    let mut add = |ty: &str, json: J, bytes: Vec<u8>| {
        postcard.push(obj! { "type" => ty, "json" => json, "postcard" => hx(bytes) });
    };
    for v in [
        0u64,
        1,
        127,
        128,
        300,
        16_383,
        16_384,
        u64::from(u32::MAX),
        START.0,
        u64::MAX,
    ] {
        add("u64", J::from(v), codec::encode(&v));
    }
    add("u16", J::from(300u16), codec::encode(&300u16));
    add("bool", J::from(true), codec::encode(&true));
    add("Option<u64>", J::Null, codec::encode(&None::<u64>));
    add("Option<u64>", J::from(300u64), codec::encode(&Some(300u64)));
    add(
        "String",
        J::from("treatment"),
        codec::encode(&"treatment".to_string()),
    );
    add(
        "Purpose",
        J::from("treatment"),
        codec::encode(&Purpose::new("treatment").unwrap()),
    );
    add(
        "bytes (Vec<u8>)",
        hx([1u8, 2, 3]),
        codec::encode(&vec![1u8, 2, 3]),
    );
    add(
        "[u8; 16] (salt)",
        ser(&[7u8; 16]),
        codec::encode(&[7u8; 16]),
    );
    add(
        "Threshold",
        ser(&Threshold::new(2, 4).unwrap()),
        codec::encode(&Threshold::new(2, 4).unwrap()),
    );
    add("Timestamp", ser(&START), codec::encode(&START));
    add(
        "ReplicaId",
        ser(&ReplicaId(3)),
        codec::encode(&ReplicaId(3)),
    );
    add(
        "SchemeId",
        ser(&SchemeId::UMBRAL),
        codec::encode(&SchemeId::UMBRAL),
    );
    add(
        "AccountId",
        ser(&alice.account()),
        codec::encode(&alice.account()),
    );
    let hello = cid_of(b"hello world");
    add("ContentId", ser(&hello), codec::encode(&hello));
    add(
        "BlockContext",
        ser(&BlockContext {
            height: 7,
            time: START,
        }),
        codec::encode(&BlockContext {
            height: 7,
            time: START,
        }),
    );
    for code in [
        ErrorCode::ReplayedNonce,
        ErrorCode::GrantRevoked,
        ErrorCode::SingleProxyRefused,
        ErrorCode::Policy(PolicyCode::new("purpose_not_allowed").unwrap()),
    ] {
        add("ErrorCode", ser(&code), codec::encode(&code));
    }
    for table in Table::ALL {
        postcard.push(obj! {
            "type" => "Table (its JSON name and the one-byte id hashed in state keys)",
            "json" => ser(&table),
            "table_id" => u16::from(table.id()),
        });
    }
    file(
        "Postcard and JSON encodings of the protocol's primitive types",
        "section 2 (2.2, 2.4) and 10.4 (table ids)",
        "Each entry gives a value of one type in its JSON form (as the HTTP API writes it) and its canonical postcard bytes.",
        vec![(
            "postcard",
            vector(
                "Primitive values, their JSON form and their postcard bytes.",
                "2.2, 2.4",
                obj! { "values" => postcard },
            ),
        )],
    )
}

/// `envelope.json`: envelopes of a fixed data key and nonce prefix.
fn envelope_file() -> J {
    let key = DataKey::from_bytes(seed("envelope/data key"));
    let prefix: [u8; 19] = random("envelope/nonce prefix");
    let mut cases = Vec::new();
    let mut add = |name: &'static str,
                   description: &str,
                   chunk_size: usize,
                   plaintext: Vec<u8>,
                   inline: bool| {
        let env = seal_envelope(&key, prefix, chunk_size, &plaintext);
        let header = EnvelopeHeader::new(chunk_size, prefix).unwrap().to_bytes();
        let mut aad = header.to_vec();
        aad.resize(64, 0);
        let chunks = plaintext.len().div_ceil(chunk_size).max(1);
        let nonces: Vec<J> = (0..chunks)
            .map(|i| {
                let mut n = prefix.to_vec();
                n.extend_from_slice(&(i as u32).to_be_bytes());
                n.push(u8::from(i + 1 == chunks));
                hx(n)
            })
            .collect();
        let J::Obj(cid) = cid_fields(&env) else {
            unreachable!()
        };
        let mut out = fields(obj! {
            "data_key" => hx(key.expose()),
            "nonce_prefix" => hx(prefix),
            "chunk_size" => chunk_size,
            "plaintext_len" => plaintext.len(),
        });
        if inline {
            out.push(("plaintext".into(), hx(&plaintext)));
        } else {
            out.push(("plaintext_pattern".into(), J::from("byte i is i mod 251")));
        }
        let more = fields(obj! {
            "header" => hx(header),
            "aad" => hx(&aad),
            "chunk_nonces" => nonces,
            "envelope_len" => env.len(),
            "envelope" => hx(&env),
        });
        out.extend(more);
        out.extend(cid);
        cases.push((name, vector(description, "8", J::Obj(out))));
    };
    add(
        "small",
        "A 5-byte plaintext (\"hello\") in one final chunk of the default 1 MiB chunk size: 28 + 5 + 16 = 49 bytes.",
        envelope::DEFAULT_CHUNK_SIZE,
        b"hello".to_vec(),
        true,
    );
    add(
        "empty",
        "An empty plaintext: the header and one empty final chunk (its 16-byte tag).",
        envelope::DEFAULT_CHUNK_SIZE,
        Vec::new(),
        true,
    );
    add(
        "two_full_chunks",
        "32768 bytes at the smallest chunk size, 16384: exactly two chunks, the second (full) one is the final chunk (flag 01); there is no empty chunk after it.",
        envelope::MIN_CHUNK_SIZE,
        pattern(2 * envelope::MIN_CHUNK_SIZE),
        false,
    );
    add(
        "partial_final_chunk",
        "16394 bytes at chunk size 16384: one full chunk (flag 00) and a 10-byte final chunk (flag 01).",
        envelope::MIN_CHUNK_SIZE,
        pattern(envelope::MIN_CHUNK_SIZE + 10),
        false,
    );
    file(
        "Ciphertext envelopes (STREAM over XChaCha20-Poly1305)",
        "section 8 (and 3.7 for the CIDs)",
        "Envelopes of fixed data key and nonce prefix (the Rust client draws both at random). aad is the 64-byte associated data of every chunk (the 28-byte header, zero-padded); chunk_nonces[i] is the 24-byte nonce of chunk i. sha256 / cid / cid_postcard are the envelope's blob ids.",
        cases,
    )
}

/// A whole flow on a dev node with a fixed key and a manual clock: every
/// answer is deterministic but the capsule fragment of the retrieval.
async fn ledger(checked_in: &CheckedIn, write: bool, alice: &Person, bob: &Person) -> J {
    let umbral = Umbral;
    let alice_u = alice.umbral();
    let bob_u = bob.umbral();
    let (bob_sk, bob_pk) = umbral.account_key(bob_u.master());
    let node_seed = seed("dev node key");
    let node_key = SigningKey::from_bytes(&node_seed);
    let node_account = AccountId::from_verifying_key(&node_key.verifying_key());
    let set = ReplicaSetInfo::new(vec![node_account]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node.key"), node_seed).unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let node = Node::open_dev_with_clock(DevConfig::new(dir.path()), clock.clone())
        .await
        .unwrap();
    let api: Arc<dyn NodeApi> = node.clone();
    let info = api.info().await.unwrap();
    assert_eq!(info.replica_set, set);
    let genesis = api.head().await.unwrap();

    let mut steps: Vec<(&str, J)> = Vec::new();
    let treatment = Purpose::new("treatment").unwrap();

    // 1. Alice encrypts and uploads a record.
    let salt: [u8; 16] = random("ledger/record salt");
    let record = RecordId::derive(&alice.account(), &salt);
    let (record_sk, record_pk) = umbral.record_key(alice_u.master(), &record);
    let (capsule, data_key) = umbral
        .encapsulate(&mut VecRng::new("ledger/capsule"), &record_pk)
        .unwrap();
    let plaintext = b"2026-11-23 blood panel: all normal\n".to_vec();
    let env = seal_envelope(
        &data_key,
        random("ledger/envelope nonce prefix"),
        envelope::DEFAULT_CHUNK_SIZE,
        &plaintext,
    );
    let upload = Authorization::sign(&alice.key(), &set.digest(), Authorization::upload_scope());
    let cid = api
        .put_blob(byte_stream_of(env.clone()), upload)
        .await
        .unwrap();
    assert_eq!(cid, cid_of(&env));
    steps.push((
        "upload",
        vector(
            "POST /v1/blobs with the envelope of Alice's record (an envelope of the record's data key, ledger/capsule): 201 {\"cid\": ...}.",
            "11.3, 12.2 step 5",
            obj! {
                "plaintext" => hx(&plaintext),
                "data_key" => hx(data_key.expose()),
                "envelope" => hx(&env),
                "answer" => obj! { "cid" => cid.to_string() },
            },
        ),
    ));

    // 2. She registers it.
    let register = alice.sign(
        1,
        Call::RegisterRecord(RegisterRecord {
            salt,
            cid,
            size: env.len() as u64,
            scheme: SchemeId::UMBRAL,
            record_key: record_pk.to_bytes(),
            capsule: capsule.to_bytes(),
            media_type: "text/plain".into(),
            encrypted_metadata: None,
        }),
    );
    let r = api.submit(register.clone()).await.unwrap();
    assert_eq!(
        r.receipt.outcome,
        Outcome::Ok(CallOutput::Registered { record })
    );
    steps.push((
        "register",
        vector(
            "POST /v1/tx with Alice's RegisterRecord (nonce 1, salt from ledger/record salt): 200 CertifiedReceipt, Ok(Registered) at height 1, a block of one receipt (empty Merkle path).",
            "5.3, 10.6, 12.2",
            with(
                fields(with(tx_fields(&register), obj! { "record_id" => hx(record.0) })),
                receipt_fields(&r, &register.id(), &set),
            ),
        ),
    ));

    // 3. She grants Bob access (1 of 1 on a dev node, fragment unsealed).
    let kfrag = umbral
        .delegate(
            &mut VecRng::new("ledger/key fragment"),
            &record_sk,
            &bob_pk,
            Threshold::new(1, 1).unwrap(),
        )
        .unwrap()
        .remove(0)
        .to_bytes();
    let grant = alice.sign(
        2,
        Call::Grant(Grant {
            record,
            grantee: bob.account(),
            grantee_key: bob_pk.to_bytes(),
            threshold: Threshold::new(1, 1).unwrap(),
            fragment_commitments: vec![Digest::fragment_commitment(&kfrag)],
            purpose: treatment.clone(),
            expires_at: Some(START.plus_millis(YEAR_MS)),
        }),
    );
    let grant_id = GrantId::derive(&grant.id());
    let r = api.submit(grant.clone()).await.unwrap();
    assert_eq!(
        r.receipt.outcome,
        Outcome::Ok(CallOutput::Granted { grant: grant_id })
    );
    steps.push((
        "grant",
        vector(
            "POST /v1/tx with Alice's Grant to Bob: threshold 1 of 1, the commitment of the unsealed key fragment (a dev node has no sealing key), purpose treatment, expires one year after the block time.",
            "5.4, 12.3",
            with(
                fields(with(
                    tx_fields(&grant),
                    obj! {
                        "grant_id" => hx(grant_id.0),
                        "key_fragment" => hx(&kfrag),
                        "rng_label" => "ledger/key fragment",
                    },
                )),
                receipt_fields(&r, &grant.id(), &set),
            ),
        ),
    ));

    // 4. She delivers the fragment.
    api.deliver_fragment(grant_id, kfrag.clone()).await.unwrap();
    steps.push((
        "deliver_fragment",
        vector(
            "PUT /v1/grants/{grant_id}/fragment with the key fragment bytes (application/octet-stream), after the grant committed: 204.",
            "12.3 step 8",
            obj! {
                "path" => format!("/v1/grants/{grant_id}/fragment"),
                "body" => hx(&kfrag),
                "status" => 204u16,
            },
        ),
    ));

    // 5. Bob retrieves.
    let retrieve = bob.sign(
        1,
        Call::Retrieve(Retrieve {
            grant: grant_id,
            purpose: treatment.clone(),
        }),
    );
    let live = api.retrieve(retrieve.clone()).await.unwrap();
    let check_fragment = |f: &SignedFragment| {
        assert!(
            f.verify(&node_account, &retrieve.id(), &grant_id, ReplicaId(0)),
            "the capsule fragment's replica signature verifies"
        );
        let cfrag = rr_pre::UmbralCapsuleFrag::from_bytes(&f.fragment).unwrap();
        let v = umbral
            .verify_capsule_frag(cfrag, &capsule, &record_pk, &bob_pk)
            .expect("the capsule fragment verifies");
        let key = umbral
            .open_reencrypted(&bob_sk, &record_pk, &capsule, &[v])
            .unwrap();
        assert_eq!(envelope::open(&key, &env).unwrap(), plaintext);
    };
    check_fragment(live.fragment.as_ref().expect("a fragment"));
    let fragment = if write {
        live.fragment.clone().unwrap()
    } else {
        let v = checked_in
            .get(
                "ledger.json",
                &["vectors", "retrieve", "answer", "fragment"],
            )
            .expect("docs/vectors/ledger.json has vectors.retrieve.answer.fragment (regenerate with RR_WRITE_VECTORS=1)");
        let f: SignedFragment = serde_json::from_value(v.clone()).unwrap();
        check_fragment(&f);
        f
    };
    let retrieval = Retrieval {
        fragment: Some(fragment),
        ..live
    };
    steps.push((
        "retrieve",
        vector(
            "POST /v1/retrieve with Bob's Retrieve: 200 Retrieval with the certified receipt (Ok(Retrieved)), the grant and record proven at the node's head, and the node's signed capsule fragment. The capsule fragment is NOT deterministic (the node re-encrypts with the OS RNG): the test verifies the checked-in one (replica signature over (tx id, grant id, replica, fragment), umbral verification, and that it opens the data key of the upload step) instead of comparing it. The signing_bytes field is for that fragment.",
            "5.5, 10.7, 10.8, 11.4, 12.4",
            with(
                tx_fields(&retrieve),
                obj! {
                    "answer" => ser(&retrieval),
                    "fragment_signing_bytes" => hx(SignedFragment::signing_bytes(
                        &retrieve.id(),
                        &grant_id,
                        ReplicaId(0),
                        &retrieval.fragment.as_ref().unwrap().fragment,
                    )),
                    "receipt" => receipt_fields(&retrieval.receipt, &retrieve.id(), &set),
                    "state" => state_fields(&retrieval.state, &set),
                },
            ),
        ),
    ));

    // 6. Alice revokes.
    let revoke = alice.sign(3, Call::Revoke(Revoke { grant: grant_id }));
    let r = api.submit(revoke.clone()).await.unwrap();
    assert_eq!(
        r.receipt.outcome,
        Outcome::Ok(CallOutput::Revoked { grant: grant_id })
    );
    steps.push((
        "revoke",
        vector(
            "POST /v1/tx with Alice's Revoke: Ok(Revoked). A dev node erases its fragment before it answers.",
            "5.6, 12.6",
            with(tx_fields(&revoke), receipt_fields(&r, &revoke.id(), &set)),
        ),
    ));

    // 7. Bob tries again: refused, certified.
    let retrieve2 = bob.sign(
        2,
        Call::Retrieve(Retrieve {
            grant: grant_id,
            purpose: treatment.clone(),
        }),
    );
    let refused = api.retrieve(retrieve2.clone()).await.unwrap();
    assert!(refused.fragment.is_none());
    assert!(matches!(
        &refused.receipt.receipt.outcome,
        Outcome::Refused(r) if r.code == ErrorCode::GrantRevoked
    ));
    steps.push((
        "retrieve_refused",
        vector(
            "POST /v1/retrieve again after the revocation: 200 Retrieval with a certified Refused(grant_revoked) receipt, no fragment.",
            "6.2, 16.4, 12.4",
            with(
                tx_fields(&retrieve2),
                obj! {
                    "answer" => ser(&refused),
                    "receipt" => receipt_fields(&refused.receipt, &retrieve2.id(), &set),
                    "state" => state_fields(&refused.state, &set),
                },
            ),
        ),
    ));
    let parent_block = refused.receipt.certificate.header.block;

    // 8. A block of three: the node batches calls that wait together.
    node.shutdown().await.unwrap();
    drop(api);
    drop(node);
    let mut batching = DevConfig::new(dir.path());
    batching.solo = {
        let mut config = SoloConfig::default();
        config.max_batch = 3;
        config.max_delay = Duration::from_secs(5);
        config
    };
    let node = Node::open_dev_with_clock(batching, clock.clone())
        .await
        .unwrap();
    let api: Arc<dyn NodeApi> = node.clone();
    let salt2: [u8; 16] = random("ledger/second record salt");
    let record2 = RecordId::derive(&alice.account(), &salt2);
    let (record2_sk, record2_pk) = umbral.record_key(alice_u.master(), &record2);
    let (capsule2, _) = umbral
        .encapsulate(&mut VecRng::new("ledger/second capsule"), &record2_pk)
        .unwrap();
    let register2 = alice.sign(
        4,
        Call::RegisterRecord(RegisterRecord {
            salt: salt2,
            cid,
            size: env.len() as u64,
            scheme: SchemeId::UMBRAL,
            record_key: record2_pk.to_bytes(),
            capsule: capsule2.to_bytes(),
            media_type: "text/plain".into(),
            encrypted_metadata: None,
        }),
    );
    let replay = bob.sign(
        1,
        Call::Retrieve(Retrieve {
            grant: grant_id,
            purpose: Purpose::new("research").unwrap(),
        }),
    );
    let kfrag2 = umbral
        .delegate(
            &mut VecRng::new("ledger/second key fragment"),
            &record2_sk,
            &bob_pk,
            Threshold::new(1, 1).unwrap(),
        )
        .unwrap()
        .remove(0)
        .to_bytes();
    let grant2 = alice.sign(
        5,
        Call::Grant(Grant {
            record: record2,
            grantee: bob.account(),
            grantee_key: bob_pk.to_bytes(),
            threshold: Threshold::new(1, 1).unwrap(),
            fragment_commitments: vec![Digest::fragment_commitment(&kfrag2)],
            purpose: Purpose::new("research").unwrap(),
            expires_at: None,
        }),
    );
    let batch = [register2.clone(), replay.clone(), grant2.clone()];
    let mut handles = Vec::new();
    for tx in batch.iter().cloned() {
        let api = api.clone();
        handles.push(tokio::spawn(async move { api.submit(tx).await.unwrap() }));
        // Submitted half a second apart, so they are ordered in this order
        // (the engine waits up to max_delay for the block to fill).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut receipts = Vec::new();
    for h in handles {
        receipts.push(h.await.unwrap());
    }
    for (i, r) in receipts.iter().enumerate() {
        assert_eq!(r.receipt.index, i as u32, "ordered as submitted");
        assert_eq!(r.receipt.context.height, 6);
    }
    assert_eq!(
        receipts[0].receipt.outcome,
        Outcome::Ok(CallOutput::Registered { record: record2 })
    );
    assert!(matches!(
        &receipts[1].receipt.outcome,
        Outcome::Refused(r) if r.code == ErrorCode::ReplayedNonce
    ));
    assert_eq!(
        receipts[2].receipt.outcome,
        Outcome::Ok(CallOutput::Granted {
            grant: GrantId::derive(&grant2.id())
        })
    );
    let header = &receipts[0].certificate.header;
    let block = Block::new(
        BlockContext {
            height: 6,
            time: START,
        },
        parent_block,
        batch.to_vec(),
    );
    assert_eq!(block.header.hash(), header.block);
    let leaves: Vec<Digest> = receipts
        .iter()
        .map(|r| rr_core::merkle::leaf_hash(&r.receipt.to_bytes()))
        .collect();
    assert_eq!(rr_core::merkle::root(&leaves), header.receipts_root);
    steps.push((
        "block_of_three",
        vector(
            "Three calls ordered in one block (height 6): Alice registers a second record (Ok), Bob reuses nonce 1 (Refused(replayed_nonce): a refused receipt with a message), Alice grants the second record to Bob (Ok, executed after the registration in the same block). Each receipt's proof has index i of size 3. block gives the block header the ledger header's `block` field hashes: txs_digest = Hlp(\"resilient-records 2026 block txs\", postcard(txs)), block_hash = Hlp(\"resilient-records 2026 block header\", postcard(BlockHeader)).",
            "3.6, 6.2, 10.5, 10.6",
            obj! {
                "transactions" => batch.iter().zip(&receipts).map(|(tx, r)| {
                    with(tx_fields(tx), receipt_fields(r, &tx.id(), &set))
                }).collect::<Vec<_>>(),
                "block" => obj! {
                    "context" => ser(&block.header.context),
                    "parent" => hx(parent_block.0),
                    "txs_postcard" => hx(codec::encode(&block.txs)),
                    "txs_digest" => hx(block.header.txs_digest.0),
                    "header_postcard" => hx(codec::encode(&block.header)),
                    "block_hash" => hx(block.header.hash().0),
                },
                "receipt_leaf_hashes" => leaves.iter().map(|d| hx(d.0)).collect::<Vec<_>>(),
                "receipts_root" => hx(header.receipts_root.0),
            },
        ),
    ));

    // 9. Certified reads.
    let head = api.head().await.unwrap();
    let mut queries: Vec<(&str, J)> = Vec::new();
    queries.push((
        "get_head",
        vector(
            "GET /v1/head: the certificate of the node's newest header (height 6).",
            "10.2, 10.3, 11.3",
            with(
                vec![("answer".to_string(), ser(&head))],
                cert_fields(&head, &set),
            ),
        ),
    ));
    queries.push((
        "get_head_genesis",
        vector(
            "GET /v1/head before the first block: the genesis header (height 0, time 0, zero hashes) certified by the node.",
            "10.2",
            with(
                vec![("answer".to_string(), ser(&genesis))],
                cert_fields(&genesis, &set),
            ),
        ),
    ));
    // Reads carry an authorization (signed now, by the node's system clock:
    // not recorded; calls.json query_authorization shows the format).
    let sign_auth =
        |key: &SigningKey, scope: String| Authorization::sign(key, &set.digest(), scope);
    let a = api
        .record(
            record,
            sign_auth(&alice.key(), Authorization::record_scope(&record)),
        )
        .await
        .unwrap();
    assert_eq!(
        a.verify(&set)
            .unwrap()
            .record(&record)
            .unwrap()
            .unwrap()
            .audit_len,
        5
    );
    queries.push((
        "get_record",
        vector(
            "GET /v1/records/{id} of Alice's first record: an inclusion proof of (records, id); the value is postcard(RecordInfo).",
            "6.3, 10.7",
            with(
                vec![("record_id".to_string(), hx(record.0))],
                state_fields(&a, &set),
            ),
        ),
    ));
    let absent = RecordId::derive(&bob.account(), &[0u8; 16]);
    // Only a replica is given a proven absence; anyone else an unproven
    // unknown_record, the same as for a record it may not read.
    let err = api
        .record(
            absent,
            sign_auth(&bob.key(), Authorization::record_scope(&absent)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::UnknownRecord(r) if r == absent),
        "{err:?}"
    );
    let a = api
        .record(
            absent,
            sign_auth(&node_key, Authorization::record_scope(&absent)),
        )
        .await
        .unwrap();
    assert!(a.verify(&set).unwrap().record(&absent).unwrap().is_none());
    queries.push((
        "get_record_absent",
        vector(
            "GET /v1/records/{id} of a record never registered (ids.json record_id_zero_salt), asked by the replica itself (only replicas are given a proven absence; anyone else gets 404 unknown_record): an exclusion proof (value null).",
            "10.4, 10.7",
            with(
                vec![("record_id".to_string(), hx(absent.0))],
                state_fields(&a, &set),
            ),
        ),
    ));
    let a = api
        .grant(
            grant_id,
            sign_auth(&bob.key(), Authorization::grant_scope(&grant_id)),
        )
        .await
        .unwrap();
    assert!(a
        .verify(&set)
        .unwrap()
        .grant(&grant_id)
        .unwrap()
        .is_some_and(|g| !g.is_usable_at(START)));
    queries.push((
        "get_grant",
        vector(
            "GET /v1/grants/{id} of the revoked grant: postcard(GrantInfo) with status Revoked.",
            "6.4, 10.7",
            with(
                vec![("grant_id".to_string(), hx(grant_id.0))],
                state_fields(&a, &set),
            ),
        ),
    ));
    let auth = sign_auth(&alice.key(), Authorization::audit_scope(&record));
    let a = api.audit(record, auth).await.unwrap();
    let trail = a
        .verify(&set)
        .unwrap()
        .audit_trail(&record, 0, u64::MAX)
        .unwrap();
    assert_eq!(trail.len(), 5);
    assert_eq!(trail[4].refused, Some(ErrorCode::GrantRevoked));
    queries.push((
        "get_audit",
        vector(
            "GET /v1/records/{id}/audit of Alice's first record, with Alice's Authorization header (signed at the wall-clock time the test ran, so not recorded: calls.json query_authorization shows the format): the record and its five audit entries (register, grant, retrieve, revoke, refused retrieve), each postcard(AuditEntry).",
            "6.5, 10.7, 11.2, 12.7",
            with(
                vec![
                    ("record_id".to_string(), hx(record.0)),
                    ("trail".to_string(), ser(&trail)),
                ],
                state_fields(&a, &set),
            ),
        ),
    ));
    let auth = sign_auth(&alice.key(), Authorization::listing_scope(&alice.account()));
    let a = api.listing(alice.account(), auth).await.unwrap();
    assert_eq!(
        a.verify(&set)
            .unwrap()
            .records_of(&alice.account())
            .unwrap()
            .len(),
        2
    );
    queries.push((
        "get_listing",
        vector(
            "GET /v1/accounts/{id}/listing of Alice (authorized as for audit): her two records (counts 01 || account, owner_records entries, records) and the grants she holds (none: count entry absent).",
            "10.7, 11.4, 12.7",
            with(
                vec![("account".to_string(), hx(alice.account().0))],
                state_fields(&a, &set),
            ),
        ),
    ));
    node.shutdown().await.unwrap();

    let mut vectors = vec![(
        "node",
        vector(
            "The dev node: its key (the 32-byte seed written to node.key in its data directory before it first starts), the replica set it certifies with, and its manual clock (every block time is this).",
            "10.1, 12.1",
            obj! {
                "node_key_seed" => hx(node_seed),
                "node_key_seed_label" => "dev node key",
                "public_key" => hx(node_account.0),
                "replica_set" => ser(&set),
                "replica_set_digest" => hx(set.digest().0),
                "block_time" => START.0,
            },
        ),
    )];
    vectors.extend(steps);
    vectors.extend(queries);
    file(
        "A flow on a dev node: certified receipts, headers, certificates and state proofs",
        "sections 6, 10, 11, 12",
        "Alice (ids.json accounts) registers a record, grants it to Bob, Bob retrieves it, Alice revokes, Bob is refused; then three calls share one block; then certified reads. Every `answer` is the JSON the HTTP route returns (object keys sorted here). Each certificate comes with its header's postcard, hash and signing bytes; each receipt with its postcard and leaf hash; each state answer with the key hash and value hash of every entry. Everything is deterministic except vectors.retrieve.answer.fragment (see its description).",
        vectors,
    )
}
