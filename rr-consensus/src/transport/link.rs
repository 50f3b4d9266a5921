//! One replica link: the handshake that opens it and the encrypted framing
//! it carries. [`super::TcpNetwork`] runs these on every connection; they are
//! public so that tests, benchmarks and the fuzz targets drive the very same
//! code (a peer in another language would implement what this module
//! documents, see `docs/protocol.md`, "Replica links").
//!
//! # The handshake
//!
//! Until both ends are authenticated, every message is a length-delimited
//! frame (a 4-byte big-endian length, then the body) of at most
//! [`MAX_HANDSHAKE_BYTES`]: a longer length header closes the connection
//! before anything is buffered.
//!
//! 1. The dialer sends the first message of the Noise handshake
//!    [`NOISE_PARAMS`] (its ephemeral key), whose payload is the
//!    [`Hello`]: its replica id and the id it wants to reach.
//! 2. The acceptor answers with the second (its ephemeral key; the `ee`
//!    Diffie-Hellman): both ends now share keys, and the handshake hash `h`,
//!    which covers both ephemeral keys, the hello and the prologue
//!    ([`LINK_DOMAIN`] and the digest of the replica set).
//! 3. Then, encrypted, each end sends an [`Auth`]: its ed25519 replica key's
//!    signature over [`auth_transcript`] (the domain, its role, `h`, its id,
//!    the peer's id and the replica-set digest). The acceptor sends first;
//!    the dialer checks it before it sends its own. Neither end takes a data
//!    frame before the other's signature verified.
//!
//! A signature names this session's `h`: one recorded on another link (or
//! by a relay that runs a handshake with each end) does not verify here. A
//! relay between two replicas can only pass the bytes along: it cannot read
//! them (they are encrypted under keys only the two ends have) nor change,
//! drop or reorder them without the link closing (every record is
//! authenticated, with a counter as nonce).
//!
//! # The framing after it
//!
//! Frames of at most `max_frame` bytes, each a 4-byte big-endian length and
//! the body, form a byte stream that is cut into records of at most
//! [`MAX_RECORD_PLAINTEXT`] bytes; each record is one Noise transport
//! message (ChaCha20-Poly1305, 16-byte tag) sent as a 2-byte big-endian
//! length and the ciphertext. See [`SecureCodec`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ed25519_dalek::Signature;
use futures::{SinkExt, StreamExt};
use rr_core::{codec, ReplicaId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};

use crate::pbft::{ReplicaKey, ReplicaSet};

/// The domain string of the link: the Noise prologue starts with it, and
/// so does every handshake signature ([`auth_transcript`]).
pub const LINK_DOMAIN: &[u8] = b"resilient-records/replica-link/v1\0";
/// The Noise protocol of the handshake and the records.
pub const NOISE_PARAMS: &str = "Noise_NN_25519_ChaChaPoly_BLAKE2s";
/// Largest handshake message (frame body) either end accepts.
pub const MAX_HANDSHAKE_BYTES: usize = 1024;
/// Largest Noise message: a record's ciphertext.
pub const MAX_RECORD: usize = 65535;
/// Bytes of frame stream in one record (a Noise message less its tag).
pub const MAX_RECORD_PLAINTEXT: usize = MAX_RECORD - TAG;
const TAG: usize = 16;

/// Why a link could not be opened, or broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the protocol (a malformed or unexpected message).
    #[error("handshake: {0}")]
    Protocol(String),
    /// The peer is not who it claims (a signature that does not verify), or
    /// not a peer of this replica.
    #[error("authentication: {0}")]
    Auth(String),
    /// The Noise state refused a message: a record that fails its
    /// authentication tag (damaged or forged in transit), or a
    /// handshake message that does not decrypt (another replica set).
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
}

/// The payload of the dialer's first handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The dialer's replica id.
    pub from: ReplicaId,
    /// The replica it means to reach.
    pub to: ReplicaId,
}

/// Each end's proof of its replica identity, sent encrypted once the Noise
/// handshake is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// The ed25519 signature over [`auth_transcript`] (64 bytes).
    pub signature: Vec<u8>,
}

/// Decodes a [`Hello`] (canonical postcard, at most
/// [`MAX_HANDSHAKE_BYTES`]).
pub fn decode_hello(bytes: &[u8]) -> Result<Hello, LinkError> {
    codec::decode_canonical("link hello", bytes, MAX_HANDSHAKE_BYTES)
        .map_err(|e| LinkError::Protocol(e.to_string()))
}

/// Decodes an [`Auth`] (canonical postcard, at most
/// [`MAX_HANDSHAKE_BYTES`]).
pub fn decode_auth(bytes: &[u8]) -> Result<Auth, LinkError> {
    codec::decode_canonical("link auth", bytes, MAX_HANDSHAKE_BYTES)
        .map_err(|e| LinkError::Protocol(e.to_string()))
}

/// The framing of the handshake: length-delimited, at most
/// [`MAX_HANDSHAKE_BYTES`] a frame. A longer length header is an error as
/// soon as it is read, before any buffer is reserved for the frame.
pub fn handshake_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_HANDSHAKE_BYTES)
        .new_codec()
}

/// The handshake frames at the start of `data`, as [`handshake_codec`]
/// cuts them: up to the first error (a length over
/// [`MAX_HANDSHAKE_BYTES`]) or incomplete frame. For tests and fuzzing.
pub fn handshake_frames(data: &[u8]) -> Vec<Vec<u8>> {
    let mut codec = handshake_codec();
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        frames.push(frame.to_vec());
    }
    frames
}

/// The digest of the replica set that links are bound to: BLAKE3 (derive-key
/// mode, context `"resilient-records 2026 replica-link set"`) of the
/// replicas' ed25519 keys in replica order.
pub fn set_digest(set: &ReplicaSet) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("resilient-records 2026 replica-link set");
    for id in set.ids() {
        if let Some(k) = set.key(id) {
            h.update(k.as_bytes());
        }
    }
    *h.finalize().as_bytes()
}

/// What an end signs to prove its identity on the link whose Noise
/// handshake hash is `hash`: [`LINK_DOMAIN`], its role (`b"dialer"` or
/// `b"acceptor"`), the hash (length-prefixed), its id and the peer's (2
/// bytes big-endian each) and the replica-set digest.
pub fn auth_transcript(
    role: &[u8],
    hash: &[u8],
    signer: ReplicaId,
    peer: ReplicaId,
    set: &[u8; 32],
) -> Vec<u8> {
    let mut b = LINK_DOMAIN.to_vec();
    b.extend_from_slice(role);
    b.push(hash.len() as u8);
    b.extend_from_slice(hash);
    b.extend_from_slice(&signer.0.to_be_bytes());
    b.extend_from_slice(&peer.0.to_be_bytes());
    b.extend_from_slice(set);
    b
}

fn prologue(set: &[u8; 32]) -> Vec<u8> {
    [LINK_DOMAIN, &set[..]].concat()
}

fn noise(set: &[u8; 32], initiator: bool) -> Result<snow::HandshakeState, LinkError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| LinkError::Protocol(e.to_string()))?;
    let prologue = prologue(set);
    let b = snow::Builder::new(params).prologue(&prologue)?;
    Ok(if initiator {
        b.build_initiator()?
    } else {
        b.build_responder()?
    })
}

fn check_sig(set: &ReplicaSet, who: ReplicaId, msg: &[u8], sig: &[u8]) -> Result<(), LinkError> {
    let key = set
        .key(who)
        .ok_or_else(|| LinkError::Auth(format!("{who} is not in the replica set")))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| LinkError::Protocol("signature is not 64 bytes".into()))?;
    key.verify_strict(msg, &Signature::from_bytes(&sig))
        .map_err(|_| LinkError::Auth(format!("the link signature of {who} does not verify")))
}

/// A link during its handshake.
type Opening<S> = Framed<S, LengthDelimitedCodec>;

/// An open link: encrypted frames of at most `max_frame` bytes.
pub type SecureLink<S> = Framed<S, SecureCodec>;

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut Opening<S>,
    m: &[u8],
) -> Result<(), LinkError> {
    link.send(Bytes::copy_from_slice(m)).await?;
    Ok(())
}

async fn recv<S: AsyncRead + AsyncWrite + Unpin>(
    link: &mut Opening<S>,
) -> Result<BytesMut, LinkError> {
    Ok(link.next().await.ok_or_else(|| {
        LinkError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed during the handshake",
        ))
    })??)
}

/// The dialer's side: opens the link to replica `peer` on `stream` (fresh,
/// nothing read or written yet). Bound it with a timeout.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    key: &ReplicaKey,
    set: &ReplicaSet,
    peer: ReplicaId,
    max_frame: usize,
) -> Result<SecureLink<S>, LinkError> {
    dial_with(stream, key, set, peer, max_frame, |t| {
        key.sign(t).to_bytes().to_vec()
    })
    .await
}

/// [`dial`], with the dialer's proof made by `prove` from its transcript.
async fn dial_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    key: &ReplicaKey,
    set: &ReplicaSet,
    peer: ReplicaId,
    max_frame: usize,
    prove: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<SecureLink<S>, LinkError> {
    let digest = set_digest(set);
    let me = key.id();
    let mut link = Framed::new(stream, handshake_codec());
    let mut hs = noise(&digest, true)?;
    let mut buf = [0u8; MAX_HANDSHAKE_BYTES];
    let n = hs.write_message(&codec::encode(&Hello { from: me, to: peer }), &mut buf)?;
    send(&mut link, &buf[..n]).await?;
    let m = recv(&mut link).await?;
    if hs.read_message(&m, &mut buf)? != 0 {
        return Err(LinkError::Protocol(
            "the acceptor's handshake message has a payload".into(),
        ));
    }
    let hash = hs.get_handshake_hash().to_vec();
    let mut t = hs.into_transport_mode()?;
    let m = recv(&mut link).await?;
    let n = t.read_message(&m, &mut buf)?;
    let theirs = decode_auth(&buf[..n])?;
    check_sig(
        set,
        peer,
        &auth_transcript(b"acceptor", &hash, peer, me, &digest),
        &theirs.signature,
    )?;
    let mine = Auth {
        signature: prove(&auth_transcript(b"dialer", &hash, me, peer, &digest)),
    };
    let n = t.write_message(&codec::encode(&mine), &mut buf)?;
    send(&mut link, &buf[..n]).await?;
    Ok(link.map_codec(|_| SecureCodec::new(t, max_frame)))
}

/// The acceptor's side: authenticates the replica that dialed `stream` and
/// returns its id and the link. Bound it with a timeout.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    key: &ReplicaKey,
    set: &ReplicaSet,
    max_frame: usize,
) -> Result<(ReplicaId, SecureLink<S>), LinkError> {
    let digest = set_digest(set);
    let me = key.id();
    let mut link = Framed::new(stream, handshake_codec());
    let mut hs = noise(&digest, false)?;
    let mut buf = [0u8; MAX_HANDSHAKE_BYTES];
    let m = recv(&mut link).await?;
    let n = hs.read_message(&m, &mut buf)?;
    let Hello { from, to } = decode_hello(&buf[..n])?;
    if to != me || from == me || set.key(from).is_none() {
        return Err(LinkError::Auth(format!(
            "hello from {from} for {to}: not a link of this replica"
        )));
    }
    let n = hs.write_message(&[], &mut buf)?;
    send(&mut link, &buf[..n]).await?;
    let hash = hs.get_handshake_hash().to_vec();
    let mut t = hs.into_transport_mode()?;
    let mine = Auth {
        signature: key
            .sign(&auth_transcript(b"acceptor", &hash, me, from, &digest))
            .to_bytes()
            .to_vec(),
    };
    let n = t.write_message(&codec::encode(&mine), &mut buf)?;
    send(&mut link, &buf[..n]).await?;
    let m = recv(&mut link).await?;
    let n = t.read_message(&m, &mut buf)?;
    let theirs = decode_auth(&buf[..n])?;
    check_sig(
        set,
        from,
        &auth_transcript(b"dialer", &hash, from, me, &digest),
        &theirs.signature,
    )?;
    // Whatever the dialer sent after its proof is in the read buffer, which
    // the new codec keeps.
    Ok((from, link.map_codec(|_| SecureCodec::new(t, max_frame))))
}

/// The framing of an open link: frames (at most `max_frame` bytes each,
/// length-delimited) in a byte stream of Noise transport messages (records:
/// a 2-byte big-endian length, then at most [`MAX_RECORD`] bytes of
/// ciphertext).
///
/// Decoding fails, and the link must be closed, on a record that does not
/// authenticate (damaged, forged, replayed, reordered or dropped in
/// transit) or a frame over `max_frame`. A frame's memory grows as its
/// records arrive; nothing is reserved from a length header.
pub struct SecureCodec {
    noise: snow::TransportState,
    max_frame: usize,
    /// Decrypted stream not yet cut into frames.
    plain: BytesMut,
    /// A record's plaintext, staged for encryption.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for SecureCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureCodec")
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

impl SecureCodec {
    fn new(noise: snow::TransportState, max_frame: usize) -> Self {
        Self {
            noise,
            max_frame,
            plain: BytesMut::new(),
            scratch: Vec::with_capacity(MAX_RECORD_PLAINTEXT),
        }
    }

    /// Encrypts `stream` (raw frame-stream bytes: lengths and bodies, as
    /// [`Encoder::encode`] makes them) into records, as they go on the wire.
    /// For tests and fuzzing, which write arbitrary streams; the transport
    /// sends whole frames with [`Encoder::encode`].
    pub fn seal_stream(&mut self, stream: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut dst = BytesMut::new();
        for chunk in stream.chunks(MAX_RECORD_PLAINTEXT) {
            self.scratch.clear();
            self.scratch.extend_from_slice(chunk);
            self.seal_scratch(&mut dst)?;
        }
        Ok(dst.to_vec())
    }

    fn seal_scratch(&mut self, dst: &mut BytesMut) -> std::io::Result<()> {
        let start = dst.len();
        let size = self.scratch.len() + TAG;
        dst.put_u16(size as u16);
        dst.resize(start + 2 + size, 0);
        let n = self
            .noise
            .write_message(&self.scratch, &mut dst[start + 2..])
            .map_err(|e| invalid(format!("cannot encrypt a record: {e}")))?;
        debug_assert_eq!(n, size);
        self.scratch.clear();
        Ok(())
    }

    /// The next whole frame of the decrypted stream, if there is one.
    fn take_frame(&mut self) -> std::io::Result<Option<BytesMut>> {
        if self.plain.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.plain[0], self.plain[1], self.plain[2], self.plain[3]])
            as usize;
        if len > self.max_frame {
            return Err(invalid(format!(
                "frame of {len} bytes is over the link's limit of {}",
                self.max_frame
            )));
        }
        if self.plain.len() < 4 + len {
            return Ok(None);
        }
        self.plain.advance(4);
        Ok(Some(self.plain.split_to(len)))
    }
}

impl Decoder for SecureCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<BytesMut>> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(Some(frame));
            }
            if src.len() < 2 {
                return Ok(None);
            }
            let size = u16::from_be_bytes([src[0], src[1]]) as usize;
            if size < TAG {
                return Err(invalid("a record shorter than its tag"));
            }
            if src.len() < 2 + size {
                src.reserve(2 + size - src.len());
                return Ok(None);
            }
            let record = src.split_to(2 + size);
            let start = self.plain.len();
            self.plain.resize(start + size - TAG, 0);
            match self
                .noise
                .read_message(&record[2..], &mut self.plain[start..])
            {
                Ok(n) => self.plain.truncate(start + n),
                Err(_) => return Err(invalid(
                    "a record failed its integrity check: the link was tampered with or damaged",
                )),
            }
        }
    }
}

impl Encoder<Bytes> for SecureCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> std::io::Result<()> {
        if frame.len() > self.max_frame {
            return Err(invalid(format!(
                "frame of {} bytes is over the link's limit of {}",
                frame.len(),
                self.max_frame
            )));
        }
        dst.reserve(frame.len() + 4 + (frame.len() / MAX_RECORD_PLAINTEXT + 1) * (TAG + 2));
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(frame.len() as u32).to_be_bytes());
        let mut body = &frame[..];
        loop {
            let room = MAX_RECORD_PLAINTEXT - self.scratch.len();
            let take = room.min(body.len());
            self.scratch.extend_from_slice(&body[..take]);
            body = &body[take..];
            self.seal_scratch(dst)?;
            if body.is_empty() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use std::sync::{Arc, Mutex};
    use tokio::io::DuplexStream;

    fn key(i: u16) -> ReplicaKey {
        ReplicaKey::new(ReplicaId(i), SigningKey::from_bytes(&[i as u8 + 1; 32]))
    }

    fn set() -> ReplicaSet {
        ReplicaSet::new((0..4).map(|i| key(i).verifying_key()).collect()).unwrap()
    }

    const MAX: usize = 4 << 20;

    /// Replica 0 accepting on one end of a pipe; the other end.
    type Accepting =
        tokio::task::JoinHandle<Result<(ReplicaId, SecureLink<DuplexStream>), LinkError>>;

    fn acceptor() -> (Accepting, DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let task = tokio::spawn(async move { accept(a, &key(0), &set(), MAX).await });
        (task, b)
    }

    #[tokio::test]
    async fn frames_of_any_size_cross_an_open_link_intact() {
        let (task, b) = acceptor();
        let mut dialer = dial(b, &key(1), &set(), ReplicaId(0), MAX).await.unwrap();
        let (peer, mut acceptor) = task.await.unwrap().unwrap();
        assert_eq!(peer, ReplicaId(1));
        let frames: Vec<Bytes> = [
            0,
            1,
            1000,
            MAX_RECORD_PLAINTEXT - 4,
            MAX_RECORD_PLAINTEXT,
            1 << 20,
            MAX,
        ]
        .iter()
        .map(|&n| Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>()))
        .collect();
        let sent = frames.clone();
        let writer = tokio::spawn(async move {
            for f in sent {
                dialer.send(f).await.unwrap();
            }
            dialer
        });
        for f in &frames {
            let got = acceptor.next().await.unwrap().unwrap();
            assert_eq!(&got[..], &f[..]);
        }
        let mut dialer = writer.await.unwrap();
        // Over the limit: refused by the sender...
        assert!(dialer.send(Bytes::from(vec![0; MAX + 1])).await.is_err());
        // ... and by the receiver, however it got there.
        let mut sealed = BytesMut::new();
        let stream = [&((MAX + 1) as u32).to_be_bytes()[..], &[0; 8]].concat();
        dialer
            .codec_mut()
            .seal_stream(&stream)
            .map(|b| sealed.extend_from_slice(&b))
            .unwrap();
        let mut parts = acceptor.into_parts();
        assert!(parts.codec.decode(&mut sealed).is_err());
    }

    #[tokio::test]
    async fn a_signature_from_another_session_is_refused() {
        // A real session: the dialer's proof verifies; keep it.
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (task, b) = acceptor();
        let k = kept.clone();
        let signer = key(1);
        dial_with(b, &key(1), &set(), ReplicaId(0), MAX, |t| {
            let sig = signer.sign(t).to_bytes().to_vec();
            *k.lock().unwrap() = sig.clone();
            sig
        })
        .await
        .unwrap();
        assert_eq!(task.await.unwrap().unwrap().0, ReplicaId(1));
        // Another session presenting it: refused.
        let (task, b) = acceptor();
        let replayed = kept.lock().unwrap().clone();
        let _ = dial_with(b, &key(1), &set(), ReplicaId(0), MAX, |_| replayed).await;
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, LinkError::Auth(_)), "{err}");
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_on_either_side() {
        let impostor = ReplicaKey::new(ReplicaId(1), SigningKey::from_bytes(&[99; 32]));
        let (task, b) = acceptor();
        let _ = dial(b, &impostor, &set(), ReplicaId(0), MAX).await;
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, LinkError::Auth(_)), "{err}");
        // An acceptor with a wrong key: the dialer refuses it.
        let (a, b) = tokio::io::duplex(1 << 16);
        let fake = ReplicaKey::new(ReplicaId(0), SigningKey::from_bytes(&[98; 32]));
        tokio::spawn(async move { accept(a, &fake, &set(), MAX).await });
        let err = dial(b, &key(1), &set(), ReplicaId(0), MAX)
            .await
            .unwrap_err();
        assert!(matches!(err, LinkError::Auth(_)), "{err}");
    }

    #[tokio::test]
    async fn another_replica_set_cannot_open_a_link() {
        let other = ReplicaSet::new((0..5).map(|i| key(i).verifying_key()).collect()).unwrap();
        let (task, b) = acceptor();
        assert!(dial(b, &key(1), &other, ReplicaId(0), MAX).await.is_err());
        assert!(task.await.unwrap().is_err());
    }

    #[test]
    fn a_length_header_over_the_handshake_limit_is_an_error_at_once() {
        let mut codec = handshake_codec();
        let mut buf = BytesMut::from(&[0x01, 0xf0, 0x00, 0x00][..]);
        assert!(codec.decode(&mut buf).is_err());
        assert!(buf.capacity() < 1 << 20, "nothing reserved for the frame");
        assert!(handshake_frames(&[0x01, 0xf0, 0x00, 0x00]).is_empty());
    }
}
