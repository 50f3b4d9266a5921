//! A record's stored ciphertext, damaged on disk: every retrieval fails with an
//! error that says so, no output file is left behind, and putting the
//! original bytes back makes the record readable again.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rand_core::{OsRng, RngCore};
use rr_core::{BlobError, BlobStore, ContentId, DataKey, GrantStatus, PreScheme, WireEncoding};
use rr_node::{collect, ClientError, NodeError};
use rr_pre::envelope::{self, EnvelopeError, DEFAULT_CHUNK_SIZE, HEADER_LEN, TAG_LEN};
use rr_pre::{Umbral, UmbralCapsule};

/// Four full chunks and a short final one.
const SIZE: usize = (CHUNKS - 1) * DEFAULT_CHUNK_SIZE + 1000;
const SEALED_CHUNK: usize = DEFAULT_CHUNK_SIZE + TAG_LEN;
const CHUNKS: usize = 5;

/// Byte range of envelope chunk `i` in the stored ciphertext.
fn chunk(i: usize, total: usize) -> std::ops::Range<usize> {
    let start = HEADER_LEN + i * SEALED_CHUNK;
    start..(start + SEALED_CHUNK).min(total)
}

/// Finds the one file under `<data_dir>/blobs/` named after `cid`.
fn find_blob(data_dir: &Path, cid: &ContentId) -> PathBuf {
    fn walk(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, name, found);
            } else if path.file_name().and_then(|n| n.to_str()) == Some(name) {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&data_dir.join("blobs"), &cid.to_string(), &mut found);
    assert_eq!(found.len(), 1, "blob files named {cid}: {found:?}");
    found.pop().unwrap()
}

/// How a damaged blob was caught.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Caught {
    /// An envelope chunk failed to authenticate.
    Envelope(EnvelopeError),
    /// The blob store's hash check at the end of the stream.
    Integrity,
}

/// Classifies a client error and checks the message tells the user the data
/// was damaged.
fn caught(err: &ClientError, cid: &ContentId) -> Caught {
    let msg = err.to_string();
    match err {
        ClientError::Envelope(e) => {
            assert!(
                msg.contains("ciphertext failed to decrypt")
                    && msg.contains("modified, truncated or reordered"),
                "{msg}"
            );
            Caught::Envelope(e.clone())
        }
        ClientError::Blob(BlobError::Integrity { cid: c, actual }) => {
            assert_eq!(c, cid);
            assert_ne!(actual, cid);
            assert!(msg.contains("damaged or was tampered with"), "{msg}");
            Caught::Integrity
        }
        other => panic!("expected a tampering error, got {other:?}"),
    }
}

/// Names of the files in `dir`.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_ciphertext_is_caught_and_leaves_no_output() {
    let w = World::new().await;
    let mut plaintext = vec![0u8; SIZE];
    OsRng.fill_bytes(&mut plaintext);
    let (put, grant) = w.alice_shares_with_bob(&plaintext).await;
    let cid = put.cid;
    let path = find_blob(w.dir.path(), &cid);
    assert_eq!(path, w.node.blobs().blob_path(&cid));
    let original = std::fs::read(&path).unwrap();
    assert_eq!(original.len() as u64, put.size);
    assert_eq!(
        put.size,
        envelope::sealed_len(SIZE as u64, DEFAULT_CHUNK_SIZE)
    );
    assert_eq!(
        original.len(),
        HEADER_LEN + (CHUNKS - 1) * SEALED_CHUNK + 1000 + TAG_LEN
    );

    let alice = w.alice.client(&w.node);
    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        plaintext
    );

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("record.bin");
    let previous = out.path().join("previous.bin");
    std::fs::write(&previous, b"an earlier, good copy").unwrap();

    let total = original.len();
    let flip = |at: usize| {
        let mut b = original.clone();
        b[at] ^= 0x01;
        b
    };
    let swap = |i: usize, j: usize| {
        let mut b = original.clone();
        let (ci, cj) = (chunk(i, total), chunk(j, total));
        assert_eq!(ci.len(), cj.len(), "swap whole chunks of equal length");
        let tmp = b[ci.clone()].to_vec();
        b.copy_within(cj.clone(), ci.start);
        b[cj].copy_from_slice(&tmp);
        b
    };
    let corrupt = |chunk| Caught::Envelope(EnvelopeError::Corrupt { chunk });
    let mut appended = original.clone();
    appended.push(0);

    // The decryptor authenticates chunk by chunk and hands out nothing
    // unauthenticated, so damage in a non-final chunk is caught by that
    // chunk's tag. Damage at the end (final chunk, truncation, appended bytes)
    // is caught by the blob store's hash check, which ends the stream before
    // the final chunk is opened.
    let cases: Vec<(&str, Vec<u8>, Caught)> = vec![
        (
            "one byte flipped in chunk 1",
            flip(chunk(1, total).start + 1234),
            corrupt(1),
        ),
        (
            "one byte flipped in the nonce prefix of the header",
            flip(HEADER_LEN - 1),
            corrupt(0),
        ),
        (
            "one byte flipped in the last full chunk",
            flip(chunk(3, total).end - 1),
            corrupt(3),
        ),
        (
            "one byte flipped in the final chunk",
            flip(total - 1),
            Caught::Integrity,
        ),
        (
            "final chunk dropped",
            original[..chunk(CHUNKS - 1, total).start].to_vec(),
            Caught::Integrity,
        ),
        (
            "cut inside chunk 2",
            original[..chunk(2, total).start + 100].to_vec(),
            Caught::Integrity,
        ),
        ("chunks 1 and 2 swapped", swap(1, 2), corrupt(1)),
        ("chunks 0 and 3 swapped", swap(0, 3), corrupt(0)),
        ("a byte appended", appended, Caught::Integrity),
    ];

    for (what, damaged, expected) in cases {
        assert_ne!(damaged, original, "{what}");
        std::fs::write(&path, &damaged).unwrap();

        // Bob reads it into memory.
        let err = retrieve_all(&bob, grant, "treatment").await.unwrap_err();
        assert_eq!(caught(&err, &cid), expected, "{what}: {err}");

        // Bob writes it to a file: nothing is left at the target, and no
        // partial file beside it.
        let stream = bob.retrieve(grant, purpose_of("treatment")).await.unwrap();
        let err = rr_node::write_stream_to_file(stream, &target)
            .await
            .unwrap_err();
        assert_eq!(caught(&err, &cid), expected, "{what}: {err}");
        assert!(
            !target.exists(),
            "{what}: a failed retrieval left {}",
            target.display()
        );
        assert_eq!(
            files_in(out.path()),
            vec!["previous.bin".to_string()],
            "{what}"
        );

        // Over an existing file: the old copy is kept as it was.
        let stream = bob.retrieve(grant, purpose_of("treatment")).await.unwrap();
        let err = rr_node::write_stream_to_file(stream, &previous)
            .await
            .unwrap_err();
        assert_eq!(caught(&err, &cid), expected, "{what}: {err}");
        assert_eq!(
            std::fs::read(&previous).unwrap(),
            b"an earlier, good copy",
            "{what}"
        );
        assert_eq!(
            files_in(out.path()),
            vec!["previous.bin".to_string()],
            "{what}"
        );

        // The owner's own read catches it the same way.
        let err = collect(alice.read_own(put.record_id).await.unwrap())
            .await
            .unwrap_err();
        assert_eq!(caught(&err, &cid), expected, "{what}: {err}");

        // The ledger is untouched by damaged blobs.
        assert_eq!(w.node.grant(&grant).unwrap().status, GrantStatus::Active);
        assert!(w.node.holds_fragment(&grant).unwrap());

        // Restored, it reads again: nothing was lost.
        std::fs::write(&path, &original).unwrap();
        assert_eq!(
            retrieve_all(&bob, grant, "treatment").await.unwrap(),
            plaintext,
            "{what}"
        );
    }

    // A missing blob is reported as missing, before any plaintext is produced.
    std::fs::remove_file(&path).unwrap();
    let err = bob
        .retrieve(grant, purpose_of("treatment"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ClientError::Node(NodeError::Blob(BlobError::NotFound(c))) | ClientError::Blob(BlobError::NotFound(c)) if *c == cid),
        "{err:?}"
    );

    // Putting the original bytes again repairs the store (same content id).
    let again = w
        .node
        .blobs()
        .put_bytes(bytes::Bytes::from(original.clone()))
        .await
        .unwrap();
    assert_eq!(again, cid);
    assert_eq!(std::fs::read(&path).unwrap(), original);

    // And a good retrieval writes the whole file.
    let stream = bob.retrieve(grant, purpose_of("treatment")).await.unwrap();
    let written = rr_node::write_stream_to_file(stream, &target)
        .await
        .unwrap();
    assert_eq!(written, SIZE as u64);
    assert_eq!(std::fs::read(&target).unwrap(), plaintext);
    assert_eq!(
        files_in(out.path()),
        vec!["previous.bin".to_string(), "record.bin".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_data_key_does_not_open_an_intact_blob() {
    let w = World::new().await;
    let mut plaintext = vec![0u8; SIZE];
    OsRng.fill_bytes(&mut plaintext);
    let (put, _) = w.alice_shares_with_bob(&plaintext).await;
    let blobs = w.node.blobs();

    // The right key, opened from the capsule with Alice's record key.
    let info = w.node.record(&put.record_id).unwrap();
    let capsule = UmbralCapsule::from_bytes(&info.capsule).unwrap();
    let (record_sk, _) = Umbral.record_key(&w.alice.master(), &put.record_id);
    let right = Umbral.open(&record_sk, &capsule).unwrap();

    // A random key, and the data key of another of Alice's records.
    let other = w
        .alice
        .client(&w.node)
        .put(
            rr_core::byte_stream_of(b"another record".to_vec()),
            "text/plain",
        )
        .await
        .unwrap();
    let other_info = w.node.record(&other.record_id).unwrap();
    let (other_sk, _) = Umbral.record_key(&w.alice.master(), &other.record_id);
    let other_key = Umbral
        .open(
            &other_sk,
            &UmbralCapsule::from_bytes(&other_info.capsule).unwrap(),
        )
        .unwrap();
    // Alice's record key does not open the other record's capsule either.
    assert!(Umbral
        .open(
            &record_sk,
            &UmbralCapsule::from_bytes(&other_info.capsule).unwrap()
        )
        .is_err());

    for wrong in [DataKey::generate(&mut OsRng), other_key] {
        assert_ne!(wrong.expose(), right.expose());
        let stream = envelope::decrypt_stream(&wrong, blobs.get(&put.cid).await.unwrap());
        let err = collect(stream).await.unwrap_err();
        assert!(
            matches!(
                &err,
                ClientError::Envelope(EnvelopeError::Corrupt { chunk: 0 })
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("or the key is wrong"), "{err}");

        // In memory, too.
        let bytes = blobs.get_bytes(&put.cid, u64::MAX).await.unwrap();
        assert_eq!(
            envelope::open(&wrong, &bytes),
            Err(EnvelopeError::Corrupt { chunk: 0 })
        );
    }

    // The blob is intact: the right key opens it.
    let stream = envelope::decrypt_stream(&right, blobs.get(&put.cid).await.unwrap());
    assert_eq!(collect(stream).await.unwrap(), plaintext);
}
