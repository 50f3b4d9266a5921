"""A Resilient Records client in Python, written from docs/protocol.md.

Section numbers in the comments ("§10.3") are those of docs/protocol.md.
Only the Umbral scheme (1) is implemented: recrypt needs a binding of the
recrypt Rust crate (§19).

Dependencies (requirements.txt): umbral-pre 0.11 (the official binding of
the umbral-pre crate), PyNaCl (ed25519, XChaCha20-Poly1305), blake3,
cryptography (X25519 and ChaCha20-Poly1305 for HPKE, §9), requests.

The pieces, bottom up:

- encoding (§2): postcard writer and reader, BLAKE3 helpers;
- ids (§3), signed calls (§4, §5), ledger values (§6);
- Umbral keys, capsules and fragments (§7.2), the envelope (§8), sealed
  fragments (§9);
- certified state (§10): certificates, receipt and state proofs;
- the HTTP API (§11), public cards (§13);
- `Client`, the flows of §12: put, grant, retrieve, revoke, audit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import blake3
import nacl.bindings
import nacl.exceptions
import nacl.signing
import requests
import umbral_pre as umbral
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

# ---------------------------------------------------------------- errors


class ProtocolError(Exception):
    """An answer that does not verify, or bytes that do not decode."""


class Refused(Exception):
    """A certified refusal by the contracts (§16.1): `code` and `message`."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NodeError(Exception):
    """An HTTP error answer (§11.1, §16.3): unproven."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


# ---------------------------------------------------------------- §2 encoding


def varint(x: int) -> bytes:
    """Unsigned LEB128, minimal (§2.2, §2.3)."""
    if x < 0 or x >= 1 << 64:
        raise ValueError(f"{x} is not a u64")
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        if x:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pc_bytes(b: bytes) -> bytes:
    """A byte string: varint(len) || bytes."""
    return varint(len(b)) + bytes(b)


def pc_str(s: str) -> bytes:
    return pc_bytes(s.encode("utf-8"))


def pc_option(v, enc: Callable) -> bytes:
    return b"\x00" if v is None else b"\x01" + enc(v)


def pc_bool(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


class Reader:
    """A postcard decoder over bytes (§2.2): refuses trailing bytes (§2.3)."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("postcard: unexpected end of input")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        x, shift = 0, 0
        for _ in range(10):
            b = self.u8()
            x |= (b & 0x7F) << shift
            if not b & 0x80:
                if x >= 1 << 64:
                    raise ProtocolError("postcard: varint overflows u64")
                return x
            shift += 7
        raise ProtocolError("postcard: varint too long")

    def bytes_(self) -> bytes:
        return self.take(self.varint())

    def str_(self) -> str:
        return self.bytes_().decode("utf-8")

    def bool_(self) -> bool:
        b = self.u8()
        if b > 1:
            raise ProtocolError("postcard: bad bool")
        return b == 1

    def option(self, dec: Callable):
        tag = self.u8()
        if tag == 0:
            return None
        if tag == 1:
            return dec()
        raise ProtocolError("postcard: bad Option tag")

    def seq(self, dec: Callable) -> list:
        return [dec() for _ in range(self.varint())]

    def done(self):
        if self.pos != len(self.data):
            raise ProtocolError("postcard: trailing bytes")


# BLAKE3 (§2.5)


def DK(context: str, data: bytes, length: int = 32) -> bytes:
    return blake3.blake3(data, derive_key_context=context).digest(length=length)


def Hlp(context: str, *parts: bytes) -> bytes:
    return DK(context, b"".join(struct.pack("<Q", len(p)) + p for p in parts))


def H(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def unhex(s: str) -> bytes:
    return bytes.fromhex(s.strip())


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- §3 ids


def record_id(owner: bytes, salt: bytes) -> bytes:
    assert len(owner) == 32 and len(salt) == 16
    return Hlp("resilient-records 2026 record id", owner, salt)


def grant_id(tx_id: bytes) -> bytes:
    return Hlp("resilient-records 2026 grant id", tx_id)


def fragment_commitment(fragment: bytes) -> bytes:
    return Hlp("resilient-records 2026 key fragment commitment", fragment)


# ContentId (§3.7)

CID_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])


def cid_digest(blob: bytes) -> bytes:
    return hashlib.sha256(blob).digest()


def cid_string(digest: bytes) -> str:
    return "b" + base64.b32encode(CID_PREFIX + digest).decode().lower().rstrip("=")


def cid_parse(text: str) -> bytes:
    """The digest of a CIDv1/raw/sha2-256 string in base32 ("b..."), the
    only multibase this client reads."""
    if not text.startswith("b"):
        raise ProtocolError(f"{text!r}: only base32 CIDv1 strings are read here")
    body = text[1:].upper()
    raw = base64.b32decode(body + "=" * (-len(body) % 8))
    if len(raw) != 36 or raw[:4] != CID_PREFIX:
        raise ProtocolError(f"{text!r} is not a CIDv1 raw sha2-256")
    return raw[4:]


def cid_postcard(digest: bytes) -> bytes:
    return pc_bytes(digest)  # 20 || digest: a byte string, not the binary CID


# ---------------------------------------------------------------- §4 signatures


class Account:
    """An ed25519 key pair; the public key is the account id (§3.1)."""

    def __init__(self, seed: bytes):
        self.seed = bytes(seed)
        self.key = nacl.signing.SigningKey(self.seed)
        self.id = bytes(self.key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message).signature


def verify_sig(key: bytes, signature: bytes, message: bytes) -> bool:
    """§4.1: libsodium's verifier (cofactorless, refuses small-order and
    non-canonical points) is allowed for replica signatures and cards: it is
    stricter than ZIP-215, never more lenient."""
    if len(signature) != 64 or len(key) != 32:
        return False
    try:
        nacl.signing.VerifyKey(key).verify(message, signature)
        return True
    except (nacl.exceptions.BadSignatureError, ValueError, nacl.exceptions.CryptoError):
        return False


TX_DOMAIN = b"resilient-records/tx/v1\x00"
QUERY_DOMAIN = b"resilient-records/query/v2\x00"
HEADER_DOMAIN = b"resilient-records/header/v1\x00"
FRAGMENT_DOMAIN = b"resilient-records/capsule-fragment/v1\x00"
CARD_DOMAIN = b"resilient-records/card/v1\x00"

# ---------------------------------------------------------------- §5 calls

PURPOSE_CHARS = set(b"abcdefghijklmnopqrstuvwxyz0123456789._-")


def check_purpose(p: str) -> str:
    b = p.encode()
    if not 1 <= len(b) <= 64 or not set(b) <= PURPOSE_CHARS:
        raise ValueError(f"purpose {p!r} must match ^[a-z0-9._-]{{1,64}}$")
    return p


def call_register(salt: bytes, cid: bytes, size: int, scheme: int, record_key: bytes,
                  capsule: bytes, media_type: str, encrypted_metadata: Optional[bytes] = None) -> bytes:
    """RegisterRecord, variant 0 (§5.3). `cid` is the sha256 digest."""
    assert len(salt) == 16 and len(cid) == 32
    return (b"\x00" + salt + cid_postcard(cid) + varint(size) + varint(scheme) + pc_bytes(record_key)
            + pc_bytes(capsule) + pc_str(media_type) + pc_option(encrypted_metadata, pc_bytes))


def call_grant(record: bytes, grantee: bytes, grantee_key: bytes, m: int, n: int,
               commitments: list, purpose: str, expires_at: Optional[int]) -> bytes:
    """Grant, variant 1 (§5.4)."""
    assert len(commitments) == n
    return (b"\x01" + record + grantee + pc_bytes(grantee_key) + varint(m) + varint(n)
            + varint(len(commitments)) + b"".join(commitments) + pc_str(check_purpose(purpose))
            + pc_option(expires_at, varint))


def call_retrieve(grant: bytes, purpose: str) -> bytes:
    """Retrieve, variant 2 (§5.5)."""
    return b"\x02" + grant + pc_str(check_purpose(purpose))


def call_revoke(grant: bytes) -> bytes:
    """Revoke, variant 3 (§5.6)."""
    return b"\x03" + grant


def call_confirm_erasure(grant: bytes, replica: int) -> bytes:
    """ConfirmErasure, variant 4 (§5.7); replicas only."""
    return b"\x04" + grant + varint(replica)


def call_from_json(call: dict) -> bytes:
    """The postcard of a call given in its JSON form (§2.4, §5)."""
    (name, f), = call.items()
    if name == "RegisterRecord":
        salt = f["salt"]
        if not (isinstance(salt, list) and len(salt) == 16):
            raise ProtocolError("salt is an array of 16 integers")
        meta = f.get("encrypted_metadata")
        return call_register(bytes(salt), cid_parse(f["cid"]), f["size"], f["scheme"], unhex(f["record_key"]),
                             unhex(f["capsule"]), f["media_type"], None if meta is None else unhex(meta))
    if name == "Grant":
        return call_grant(unhex(f["record"]), unhex(f["grantee"]), unhex(f["grantee_key"]), f["threshold"]["m"],
                          f["threshold"]["n"], [unhex(c) for c in f["fragment_commitments"]], f["purpose"],
                          f.get("expires_at"))
    if name == "Retrieve":
        return call_retrieve(unhex(f["grant"]), f["purpose"])
    if name == "Revoke":
        return call_revoke(unhex(f["grant"]))
    if name == "ConfirmErasure":
        return call_confirm_erasure(unhex(f["grant"]), f["replica"])
    raise ProtocolError(f"unknown call {name}")


@dataclass
class SignedTx:
    body: bytes  # pc(TxBody)
    signature: bytes

    @property
    def bytes(self) -> bytes:
        """pc(SignedTransaction): body || 40 || signature (§5.1)."""
        return self.body + pc_bytes(self.signature)

    @property
    def id(self) -> bytes:
        return H(self.bytes)  # §3.3


def tx_body(signer: bytes, nonce: int, call: bytes) -> bytes:
    return signer + varint(nonce) + call


def sign_tx(account: Account, call: bytes, nonce: Optional[int] = None) -> SignedTx:
    """§5.1. A fresh random u64 nonce unless one is given."""
    if nonce is None:
        nonce = int.from_bytes(os.urandom(8), "little")
    body = tx_body(account.id, nonce, call)
    return SignedTx(body, account.sign(TX_DOMAIN + body))


# ---------------------------------------------------------------- §6 ledger values

# §16.1: the native refusal codes by postcard index; 14 is `policy.<code>`.
ERROR_CODES = ["replayed_nonce", "invalid_call", "unknown_record", "unknown_grant", "record_exists",
               "not_owner", "not_grantee", "grant_revoked", "grant_expired", "purpose_mismatch",
               "scheme_mismatch", "not_replica", "threshold_too_low", "single_proxy_refused"]


def error_code_postcard(code: str) -> bytes:
    if code.startswith("policy."):
        return varint(14) + pc_str(code[len("policy."):])
    return varint(ERROR_CODES.index(code))


def read_error_code(r: Reader) -> str:
    i = r.varint()
    if i == 14:
        return "policy." + r.str_()
    if i < len(ERROR_CODES):
        return ERROR_CODES[i]
    raise ProtocolError(f"unknown error code index {i}")


OUTPUTS = ["Registered", "Granted", "Retrieved", "Revoked", "ErasureConfirmed"]


def receipt_postcard(r: dict) -> bytes:
    """pc(Receipt) re-encoded from its JSON form (§6.2)."""
    out = unhex(r["tx"]) + varint(r["context"]["height"]) + varint(r["context"]["time"]) + varint(r["index"])
    (kind, v), = r["outcome"].items()
    if kind == "Ok":
        (name, f), = v.items()
        out += b"\x00" + varint(OUTPUTS.index(name))
        if name == "Registered":
            out += unhex(f["record"])
        elif name == "Retrieved":
            out += unhex(f["record"]) + unhex(f["grant"])
        elif name == "ErasureConfirmed":
            out += unhex(f["grant"]) + varint(f["replica"])
        else:
            out += unhex(f["grant"])
    elif kind == "Refused":
        out += b"\x01" + error_code_postcard(v["code"]) + pc_str(v["message"])
    else:
        raise ProtocolError(f"unknown outcome {kind}")
    return out


def read_context(r: Reader) -> dict:
    return {"height": r.varint(), "time": r.varint()}


def decode_record_info(b: bytes) -> dict:
    """pc(RecordInfo) (§6.3)."""
    r = Reader(b)
    d = {"id": r.take(32), "owner": r.take(32)}
    digest = r.bytes_()
    if len(digest) != 32:
        raise ProtocolError("cid is a 32-byte digest")
    d["cid"] = digest
    d["size"] = r.varint()
    d["scheme"] = r.varint()
    d["record_key"] = r.bytes_()
    d["capsule"] = r.bytes_()
    d["media_type"] = r.str_()
    d["encrypted_metadata"] = r.option(r.bytes_)
    d["registered"] = read_context(r)
    d["audit_len"] = r.varint()
    r.done()
    return d


def decode_grant_info(b: bytes) -> dict:
    """pc(GrantInfo) (§6.4)."""
    r = Reader(b)
    d = {"id": r.take(32), "record": r.take(32), "owner": r.take(32), "grantee": r.take(32)}
    d["grantee_key"] = r.bytes_()
    d["threshold"] = {"m": r.varint(), "n": r.varint()}
    d["fragment_commitments"] = r.seq(lambda: r.take(32))
    d["purpose"] = r.str_()
    d["expires_at"] = r.option(r.varint)
    d["granted"] = read_context(r)
    status = r.varint()
    if status == 0:
        d["status"] = "Active"
    elif status == 1:
        d["status"] = {"Revoked": {"at": read_context(r)}}
    else:
        raise ProtocolError("unknown grant status")
    d["erased_by"] = r.seq(r.varint)
    d["single_proxy"] = r.bool_()
    r.done()
    return d


def grant_usable_at(g: dict, t: int) -> bool:
    return g["status"] == "Active" and (g["expires_at"] is None or t < g["expires_at"])


AUDIT_ACTIONS = ["Register", "Grant", "Retrieve", "Revoke", "ConfirmErasure"]


def decode_audit_entry(b: bytes) -> dict:
    """pc(AuditEntry) (§6.5)."""
    r = Reader(b)
    d = {"record": r.take(32), "seq": r.varint(), "at": read_context(r), "tx": r.take(32), "actor": r.take(32)}
    d["action"] = AUDIT_ACTIONS[r.varint()]
    d["grant"] = r.option(lambda: r.take(32))
    d["purpose"] = r.option(r.str_)
    d["refused"] = r.option(lambda: read_error_code(r))
    r.done()
    return d


# ---------------------------------------------------------------- §7 Umbral (scheme 1)

UMBRAL = 1
LABEL_ACCOUNT = b"rr/account/v1"
LABEL_RECORD = b"rr/record/v1/"
LABEL_SIGNER = b"rr/record-signer/v1/"


def umbral_master_from_root(root_seed: bytes) -> bytes:
    """§7.1: the rr keystore's convention, so one identity has the same keys here and in rr."""
    return DK("resilient-records keystore v2 umbral master", root_seed)


class UmbralKeys:
    """Keys derived from a 32-byte umbral master secret (§7.2)."""

    def __init__(self, master: bytes):
        self.factory = umbral.SecretKeyFactory.from_secure_randomness(master)
        self.account_sk = self.factory.make_key(LABEL_ACCOUNT)
        self.account_pk = self.account_sk.public_key()

    @property
    def account_public_key(self) -> bytes:
        """01 || 00 || point (35 bytes)."""
        return b"\x01\x00" + self.account_pk.to_compressed_bytes()

    def record(self, rid: bytes):
        """(record secret key, record signer, record public key encoding)."""
        sk = self.factory.make_key(LABEL_RECORD + rid)
        signer = umbral.Signer(self.factory.make_key(LABEL_SIGNER + rid))
        pk = b"\x01\x01" + sk.public_key().to_compressed_bytes() + signer.verifying_key().to_compressed_bytes()
        return sk, signer, pk


def parse_account_key(b: bytes) -> umbral.PublicKey:
    if len(b) != 35 or b[:2] != b"\x01\x00":
        raise ProtocolError("not an umbral account public key (01 00 || 33 bytes)")
    return umbral.PublicKey.from_compressed_bytes(b[2:])


def parse_record_key(b: bytes):
    """(delegating point, signer verifying point) of a record public key."""
    if len(b) != 68 or b[:2] != b"\x01\x01":
        raise ProtocolError("not an umbral record public key (01 01 || 33 || 33 bytes)")
    return umbral.PublicKey.from_compressed_bytes(b[2:35]), umbral.PublicKey.from_compressed_bytes(b[35:])


def _canonical(cls, b: bytes, what: str):
    v = cls.from_bytes(b)
    if bytes(v) != b:
        raise ProtocolError(f"{what} does not re-encode to the same bytes")
    return v


def encode_capsule(capsule: umbral.Capsule, wrapped: bytes) -> bytes:
    cb = bytes(capsule)
    return b"\x01" + struct.pack("<H", len(cb)) + cb + wrapped


def parse_capsule(b: bytes):
    """(umbral Capsule, 72-byte wrapped data key)."""
    if len(b) < 3 or b[0] != 1:
        raise ProtocolError("capsule: bad version")
    n = struct.unpack("<H", b[1:3])[0]
    if len(b) != 3 + n + 72:
        raise ProtocolError("capsule: bad length")
    return _canonical(umbral.Capsule, b[3 : 3 + n], "capsule"), b[3 + n :]


def make_capsule(record_pk: bytes):
    """A fresh data key encapsulated under a record key: (capsule field, data key)."""
    delegating, _ = parse_record_key(record_pk)
    data_key = os.urandom(32)
    capsule, wrapped = umbral.encrypt(delegating, data_key)
    return encode_capsule(capsule, wrapped), data_key


def open_own_capsule(record_sk, capsule_field: bytes) -> bytes:
    capsule, wrapped = parse_capsule(capsule_field)
    key = umbral.decrypt_original(record_sk, capsule, wrapped)
    if len(key) != 32:
        raise ProtocolError("the capsule does not hold a 32-byte data key")
    return bytes(key)


def make_key_fragments(record_sk, signer, grantee_key: bytes, m: int, n: int) -> list:
    """§7.2: n key fragments, each 01 || umbral bytes."""
    receiving = parse_account_key(grantee_key)
    kfrags = umbral.generate_kfrags(record_sk, receiving, signer, m, n, True, True)
    return [b"\x01" + bytes(k) for k in kfrags]


def verify_key_fragment(fragment: bytes, record_pk: bytes, grantee_key: bytes):
    if fragment[:1] != b"\x01":
        raise ProtocolError("key fragment: bad version")
    delegating, verifying = parse_record_key(record_pk)
    kfrag = _canonical(umbral.KeyFrag, fragment[1:], "key fragment")
    return kfrag.verify(verifying, delegating, parse_account_key(grantee_key))


def verify_capsule_fragment(cfrag: bytes, capsule_field: bytes, record_pk: bytes, grantee_key: bytes):
    if cfrag[:1] != b"\x01":
        raise ProtocolError("capsule fragment: bad version")
    capsule, _ = parse_capsule(capsule_field)
    delegating, verifying = parse_record_key(record_pk)
    c = _canonical(umbral.CapsuleFrag, cfrag[1:], "capsule fragment")
    return c.verify(capsule, verifying, delegating, parse_account_key(grantee_key))


def open_reencrypted(account_sk, record_pk: bytes, capsule_field: bytes, verified_cfrags: list) -> bytes:
    capsule, wrapped = parse_capsule(capsule_field)
    delegating, _ = parse_record_key(record_pk)
    key = umbral.decrypt_reencrypted(account_sk, delegating, capsule, verified_cfrags, wrapped)
    if len(key) != 32:
        raise ProtocolError("the capsule does not hold a 32-byte data key")
    return bytes(key)


# ---------------------------------------------------------------- §8 the envelope

MAGIC = b"RRE1"
DEFAULT_CHUNK = 1 << 20
MIN_CHUNK, MAX_CHUNK = 16 * 1024, 4 * 1024 * 1024
_aead_enc = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
_aead_dec = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt


def seal_envelope(data_key: bytes, plaintext: bytes, chunk_size: int = DEFAULT_CHUNK,
                  nonce_prefix: Optional[bytes] = None) -> bytes:
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ValueError("chunk size out of range")
    prefix = os.urandom(19) if nonce_prefix is None else nonce_prefix
    header = MAGIC + b"\x01" + struct.pack("<I", chunk_size) + prefix
    aad = header + bytes(36)
    chunks = [plaintext[i : i + chunk_size] for i in range(0, len(plaintext), chunk_size)] or [b""]
    out = [header]
    for i, c in enumerate(chunks):
        nonce = prefix + struct.pack(">I", i) + (b"\x01" if i == len(chunks) - 1 else b"\x00")
        out.append(_aead_enc(c, aad, nonce, data_key))
    return b"".join(out)


def open_envelope(data_key: bytes, env: bytes) -> bytes:
    if len(env) < 28 or env[:4] != MAGIC or env[4] != 1:
        raise ProtocolError("envelope: bad header")
    chunk_size = struct.unpack("<I", env[5:9])[0]
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ProtocolError("envelope: chunk size out of range")
    prefix, aad, body = env[9:28], env[:28] + bytes(36), env[28:]
    if not body:
        raise ProtocolError("envelope: no chunk")
    step = chunk_size + 16
    pieces = [body[i : i + step] for i in range(0, len(body), step)]
    if len(pieces[-1]) < 16:
        raise ProtocolError("envelope: truncated final chunk")
    out = []
    for i, p in enumerate(pieces):
        nonce = prefix + struct.pack(">I", i) + (b"\x01" if i == len(pieces) - 1 else b"\x00")
        try:
            out.append(_aead_dec(p, aad, nonce, data_key))
        except nacl.exceptions.CryptoError:
            raise ProtocolError(f"envelope: chunk {i} does not authenticate") from None
    return b"".join(out)


# ---------------------------------------------------------------- §9 HPKE sealing (clusters)

HPKE_INFO = b"resilient-records/sealed-key-fragment/v1"
_KEM_SUITE = b"KEM" + struct.pack(">H", 0x0020)
_HPKE_SUITE = b"HPKE" + struct.pack(">HHH", 0x0020, 0x0001, 0x0003)


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, n: int) -> bytes:
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def _lextract(salt, label, ikm, suite):
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _lexpand(prk, label, info, n, suite):
    return _expand(prk, struct.pack(">H", n) + b"HPKE-v1" + suite + label + info, n)


def hpke_derive_keypair(ikm: bytes):
    """RFC 9180 DeriveKeyPair for DHKEM(X25519, HKDF-SHA256): (secret, public)."""
    sk = _lexpand(_lextract(b"", b"dkp_prk", ikm, _KEM_SUITE), b"sk", b"", 32, _KEM_SUITE)
    return sk, X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


def _key_schedule(shared: bytes, info: bytes):
    ctx = (b"\x00" + _lextract(b"", b"psk_id_hash", b"", _HPKE_SUITE)
           + _lextract(b"", b"info_hash", info, _HPKE_SUITE))
    secret = _lextract(shared, b"secret", b"", _HPKE_SUITE)
    return (_lexpand(secret, b"key", ctx, 32, _HPKE_SUITE), _lexpand(secret, b"base_nonce", ctx, 12, _HPKE_SUITE))


def _shared(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    prk = _lextract(b"", b"eae_prk", dh, _KEM_SUITE)
    return _lexpand(prk, b"shared_secret", enc + pk_r, 32, _KEM_SUITE)


def slot_aad(record: bytes, grantee: bytes, replica: int) -> bytes:
    return record + grantee + struct.pack("<H", replica)  # le16, not a varint (§9)


def seal_fragment(sealing_key: bytes, record: bytes, grantee: bytes, replica: int, fragment: bytes) -> bytes:
    """sealed = 01 || enc || ct, HPKE base mode single-shot (§9)."""
    sk_e = X25519PrivateKey.generate()
    enc = sk_e.public_key().public_bytes_raw()
    dh = sk_e.exchange(X25519PublicKey.from_public_bytes(sealing_key))
    key, nonce = _key_schedule(_shared(dh, enc, sealing_key), HPKE_INFO)
    ct = ChaCha20Poly1305(key).encrypt(nonce, fragment, slot_aad(record, grantee, replica))
    return b"\x01" + enc + ct


def open_sealed_fragment(secret: bytes, record: bytes, grantee: bytes, replica: int, sealed: bytes) -> bytes:
    """What a replica does (informative; check_vectors uses it)."""
    if sealed[:1] != b"\x01" or len(sealed) < 1 + 32 + 16:
        raise ProtocolError("sealed fragment: malformed")
    enc = sealed[1:33]
    sk = X25519PrivateKey.from_private_bytes(secret)
    pk_r = sk.public_key().public_bytes_raw()
    key, nonce = _key_schedule(_shared(sk.exchange(X25519PublicKey.from_public_bytes(enc)), enc, pk_r), HPKE_INFO)
    return ChaCha20Poly1305(key).decrypt(nonce, sealed[33:], slot_aad(record, grantee, replica))


# ---------------------------------------------------------------- §10 certified state


class ReplicaSet:
    """The trusted replica set (§10.1): keys in replica order."""

    def __init__(self, keys: list):
        if not 1 <= len(keys) <= 1024 or len(set(keys)) != len(keys):
            raise ValueError("a replica set has 1 to 1024 distinct keys")
        self.keys = [bytes(k) for k in keys]
        self.n = len(self.keys)
        self.f = (self.n - 1) // 3
        self.quorum = (self.n + self.f) // 2 + 1
        self.digest = Hlp("resilient-records 2026 replica set", varint(self.n) + b"".join(self.keys))


def header_postcard(h: dict) -> bytes:
    """pc(LedgerHeader) from its JSON form (§10.2)."""
    return (unhex(h["replica_set"]) + varint(h["height"]) + varint(h["time"]) + unhex(h["block"])
            + unhex(h["parent"]) + unhex(h["state_root"]) + unhex(h["receipts_root"]) + varint(h["receipts"]))


def header_hash(h: dict) -> bytes:
    return Hlp("resilient-records 2026 ledger header", header_postcard(h))


def verify_certificate(cert: dict, rs: ReplicaSet) -> dict:
    """§10.3; returns the certified header."""
    h = cert["header"]
    if unhex(h["replica_set"]) != rs.digest:
        raise ProtocolError("certificate: another replica set")
    seen = set()
    msg = HEADER_DOMAIN + header_hash(h)
    for s in cert["signatures"]:
        i = s["replica"]
        if i >= rs.n or i in seen:
            raise ProtocolError("certificate: unknown or duplicate replica")
        seen.add(i)
        if not verify_sig(rs.keys[i], unhex(s["signature"]), msg):
            raise ProtocolError(f"certificate: bad signature of replica {i}")
    if len(seen) < rs.quorum:
        raise ProtocolError("certificate: fewer signatures than a quorum")
    return h


def merkle_leaf(receipt_bytes: bytes) -> bytes:
    return DK("resilient-records 2026 receipt leaf", receipt_bytes)


def merkle_node(left: bytes, right: bytes) -> bytes:
    return DK("resilient-records 2026 receipt node", left + right)


def verify_merkle(proof: dict, leaf: bytes, root: bytes):
    """§10.5."""
    m, s = proof["index"], proof["size"]
    if m >= s:
        raise ProtocolError("receipt proof: index out of range")
    steps = []
    while s > 1:
        k = 1 << ((s - 1).bit_length() - 1)  # largest power of two < s
        if m < k:
            steps.append("left")
            s = k
        else:
            steps.append("right")
            m, s = m - k, s - k
    path = [unhex(p) for p in proof["path"]]
    if len(path) != len(steps):
        raise ProtocolError("receipt proof: wrong path length")
    h = leaf
    for step, sib in zip(reversed(steps), path):
        h = merkle_node(h, sib) if step == "left" else merkle_node(sib, h)
    if h != root:
        raise ProtocolError("receipt proof: root differs")


def verify_receipt(cr: dict, rs: ReplicaSet, tx_id: bytes) -> dict:
    """CertifiedReceipt::verify_for (§10.6); returns the receipt JSON with
    `header` (the certified header) added."""
    r = cr["receipt"]
    if unhex(r["tx"]) != tx_id:
        raise ProtocolError("receipt of another transaction")
    h = verify_certificate(cr["certificate"], rs)
    if r["context"]["height"] != h["height"] or r["context"]["time"] != h["time"]:
        raise ProtocolError("receipt: not of the certified block")
    if cr["proof"]["index"] != r["index"] or cr["proof"]["size"] != h["receipts"]:
        raise ProtocolError("receipt: proof position differs")
    verify_merkle(cr["proof"], merkle_leaf(receipt_postcard(r)), unhex(h["receipts_root"]))
    return dict(r, header=h)


TABLES = {"records": 1, "grants": 2, "record_grants": 3, "grantee_grants": 4, "owner_records": 5,
          "nonces": 6, "audit": 7, "counts": 8}


def smt_key_hash(table_id: int, key: bytes) -> bytes:
    return DK("resilient-records 2026 state key", bytes([table_id]) + key)


def smt_value_hash(value: bytes) -> bytes:
    return DK("resilient-records 2026 state value", value)


def _bit(k: bytes, i: int) -> int:
    return (k[i // 8] >> (7 - i % 8)) & 1


def verify_smt(proof: dict, root: bytes, k: bytes, v: Optional[bytes]):
    """§10.4: inclusion of value hash v under key hash k, or exclusion (v None)."""
    sibs = [unhex(s) for s in proof["siblings"]]
    d = len(sibs)
    if d > 256:
        raise ProtocolError("state proof: too deep")
    leaf = proof["leaf"]
    if v is not None:
        if leaf is None or unhex(leaf["key"]) != k or unhex(leaf["value_hash"]) != v:
            raise ProtocolError("state proof: not an inclusion proof of this value")
    elif leaf is not None:
        lk = unhex(leaf["key"])
        if lk == k or any(_bit(lk, i) != _bit(k, i) for i in range(d)):
            raise ProtocolError("state proof: not an exclusion proof")
    if leaf is None:
        h = bytes(32)
    else:
        h = DK("resilient-records 2026 smt leaf", unhex(leaf["key"]) + unhex(leaf["value_hash"]))
    node = lambda l, r: DK("resilient-records 2026 smt node", l + r)
    for i in range(d - 1, -1, -1):
        h = node(h, sibs[i]) if _bit(k, i) == 0 else node(sibs[i], h)
    if h != root:
        raise ProtocolError("state proof: root differs")


class VerifiedState:
    """A StateAnswer whose certificate and proofs held (§10.7). Only proven
    entries can be read: "not in the answer" is never "absent"."""

    def __init__(self, answer: dict, rs: ReplicaSet):
        self.header = verify_certificate(answer["certificate"], rs)
        root = unhex(self.header["state_root"])
        self.entries = {}
        for e in answer["entries"]:
            tid = TABLES[e["table"]]
            key = unhex(e["key"])
            value = None if e.get("value") is None else unhex(e["value"])
            verify_smt(e["proof"], root, smt_key_hash(tid, key), None if value is None else smt_value_hash(value))
            self.entries[(tid, key)] = value

    @property
    def height(self) -> int:
        return self.header["height"]

    def value(self, table: str, key: bytes) -> Optional[bytes]:
        try:
            return self.entries[(TABLES[table], key)]
        except KeyError:
            raise ProtocolError(f"the answer does not prove ({table}, {key.hex()})") from None

    def record(self, rid: bytes) -> Optional[dict]:
        v = self.value("records", rid)
        if v is None:
            return None
        rec = decode_record_info(v)
        if rec["id"] != rid:
            raise ProtocolError("proven record has another id")
        return rec

    def grant(self, gid: bytes) -> Optional[dict]:
        v = self.value("grants", gid)
        if v is None:
            return None
        g = decode_grant_info(v)
        if g["id"] != gid:
            raise ProtocolError("proven grant has another id")
        return g

    def audit_trail(self, rid: bytes) -> list:
        rec = self.record(rid)
        if rec is None:
            raise ProtocolError("the record is proven absent")
        out = []
        for seq in range(rec["audit_len"]):
            v = self.value("audit", rid + struct.pack(">Q", seq))
            if v is None:
                raise ProtocolError(f"audit entry {seq} is missing")
            e = decode_audit_entry(v)
            if e["record"] != rid or e["seq"] != seq:
                raise ProtocolError(f"audit entry {seq} is of another record or position")
            out.append(e)
        return out

    def count(self, kind: int, ident: bytes) -> int:
        v = self.value("counts", bytes([kind]) + ident)
        if v is None:
            return 0
        if len(v) != 8:
            raise ProtocolError("count is 8 bytes")
        return struct.unpack(">Q", v)[0]

    def listing(self, kind: int, table: str, ident: bytes) -> list:
        out = []
        for i in range(self.count(kind, ident)):
            v = self.value(table, ident + struct.pack(">Q", i))
            if v is None or len(v) != 32:
                raise ProtocolError(f"listing entry {i} missing")
            out.append(v)
        return out


def fragment_signing_bytes(tx_id: bytes, grant: bytes, replica: int, fragment: bytes) -> bytes:
    """§10.8."""
    return FRAGMENT_DOMAIN + tx_id + grant + varint(replica) + pc_bytes(fragment)


# ---------------------------------------------------------------- §11 HTTP


def authorization(account: Account, cluster: bytes, scope: str, at: Optional[int] = None) -> str:
    """§11.2: the Authorization header for `scope`, for the cluster whose
    replica set digest (§10.1) is `cluster`."""
    at = now_ms() if at is None else at
    sig = account.sign(QUERY_DOMAIN + cluster + pc_str(scope) + varint(at))
    return f"RR-Ed25519 account={account.id.hex()}, at={at}, signature={sig.hex()}"


class Node:
    """One replica's HTTP API (§11.3). Answers are raw: verify them."""

    def __init__(self, url: str, timeout: float = 10.0, ca_file: Optional[str] = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        # §15: a cluster.json with a CA pins it, and only it, for the
        # replicas' https:// URLs. It is passed with every request: a
        # REQUESTS_CA_BUNDLE in the environment overrides Session.verify.
        self.ca_file = ca_file

    def _do(self, method: str, path: str, timeout: Optional[float] = None, **kw):
        if self.ca_file is not None:
            kw["verify"] = self.ca_file
        r = self.http.request(method, self.url + path, timeout=timeout or self.timeout, **kw)
        if r.status_code >= 400:
            try:
                e = r.json()["error"]
                raise NodeError(r.status_code, e["code"], e["message"])
            except (ValueError, KeyError, TypeError):
                raise NodeError(r.status_code, "?", r.text[:200]) from None
        return r

    def info(self) -> dict:
        return self._do("GET", "/v1/info").json()

    def head(self) -> dict:
        return self._do("GET", "/v1/head").json()

    def submit(self, tx: SignedTx) -> dict:
        return self._do("POST", "/v1/tx", timeout=30, data=tx.bytes,
                        headers={"Content-Type": "application/octet-stream"}).json()

    def retrieve(self, tx: SignedTx) -> dict:
        return self._do("POST", "/v1/retrieve", timeout=30, data=tx.bytes,
                        headers={"Content-Type": "application/octet-stream"}).json()

    def put_blob(self, blob: bytes, auth: str) -> str:
        """Stores `blob`; `auth` is the uploader's authorization of scope
        `upload` (§11.2): its bytes count against that account's quota of
        unreferenced uploads until a record names the blob."""
        return self._do("POST", "/v1/blobs", timeout=60, data=blob,
                        headers={"Content-Type": "application/octet-stream",
                                 "Authorization": auth}).json()["cid"]

    def get_blob(self, cid: str, offset: int = 0) -> bytes:
        q = f"?offset={offset}" if offset else ""
        return self._do("GET", f"/v1/blobs/{cid}{q}", timeout=60).content

    def deliver_fragment(self, grant: bytes, body: bytes):
        self._do("PUT", f"/v1/grants/{grant.hex()}/fragment", data=body,
                 headers={"Content-Type": "application/octet-stream"})

    def record(self, rid: bytes, auth: str) -> dict:
        return self._do("GET", f"/v1/records/{rid.hex()}", headers={"Authorization": auth}).json()

    def grant(self, gid: bytes, auth: str) -> dict:
        return self._do("GET", f"/v1/grants/{gid.hex()}", headers={"Authorization": auth}).json()

    def audit(self, rid: bytes, auth: str) -> dict:
        return self._do("GET", f"/v1/records/{rid.hex()}/audit", headers={"Authorization": auth}).json()

    def grants_of(self, rid: bytes, auth: str) -> dict:
        return self._do("GET", f"/v1/records/{rid.hex()}/grants", headers={"Authorization": auth}).json()

    def listing(self, account: bytes, auth: str) -> dict:
        return self._do("GET", f"/v1/accounts/{account.hex()}/listing", headers={"Authorization": auth}).json()


# ---------------------------------------------------------------- §13 public cards

SCHEME_NAMES = {1: "umbral", 2: "recrypt"}


def card_keys(card: dict) -> dict:
    """The card's scheme keys after the merge of §13 (name -> key hex)."""
    keys = {}
    for name, key in (card.get("pre_public_keys") or {}).items():
        keys[name.lower() if name.lower() in SCHEME_NAMES.values() else name] = key
    scheme = card.get("scheme")
    if isinstance(scheme, int):
        scheme = SCHEME_NAMES.get(scheme)
    elif isinstance(scheme, str) and scheme.lower() in SCHEME_NAMES.values():
        scheme = scheme.lower()
    if scheme is not None and "pre_public_key" in card:
        if scheme in keys and keys[scheme] != card["pre_public_key"]:
            raise ProtocolError("card: pre_public_key differs from pre_public_keys[scheme]")
        keys.setdefault(scheme, card["pre_public_key"])
    return keys


def card_signing_bytes(account: bytes, keys: dict) -> bytes:
    items = sorted(keys.items(), key=lambda kv: kv[0].encode())
    return CARD_DOMAIN + account + varint(len(items)) + b"".join(pc_str(n) + pc_str(k) for n, k in items)


def make_card(account: Account, umbral_key: bytes) -> dict:
    key_hex = umbral_key.hex()
    keys = {"umbral": key_hex}
    sig = account.sign(card_signing_bytes(account.id, keys))
    return {"account": account.id.hex(), "scheme": "umbral", "pre_public_key": key_hex,
            "pre_public_keys": keys, "signature": sig.hex()}


def verify_card(card: dict) -> dict:
    """Refuses a card whose signature does not verify; returns its keys."""
    account = unhex(card["account"])
    keys = card_keys(card)
    if not card.get("signature") or not verify_sig(account, unhex(card["signature"]),
                                                    card_signing_bytes(account, keys)):
        raise ProtocolError("card: the signature does not verify (refusing to grant to it)")
    return keys


# ---------------------------------------------------------------- identity


@dataclass
class Identity:
    """An ed25519 signing seed and a root seed, the same secrets an rr key
    holds (the umbral master secret is derived from the root seed, §7.1)."""

    signing_seed: bytes
    root_seed: bytes

    @classmethod
    def generate(cls) -> "Identity":
        return cls(os.urandom(32), os.urandom(32))

    @classmethod
    def load(cls, path: str) -> "Identity":
        with open(path) as f:
            d = json.load(f)
        return cls(unhex(d["signing_seed"]), unhex(d["root_seed"]))

    def save(self, path: str):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"signing_seed": self.signing_seed.hex(), "root_seed": self.root_seed.hex()}, f)

    @property
    def account(self) -> Account:
        return Account(self.signing_seed)

    @property
    def umbral(self) -> UmbralKeys:
        return UmbralKeys(umbral_master_from_root(self.root_seed))

    def card(self) -> dict:
        return make_card(self.account, self.umbral.account_public_key)


# ---------------------------------------------------------------- §12 flows


@dataclass
class Replica:
    url: str
    key: bytes  # ed25519 replica key (trusted configuration)
    sealing_key: Optional[bytes] = None  # X25519, clusters only


def load_cluster(path: str) -> list:
    """§15: the replicas of a cluster.json."""
    with open(path) as f:
        c = json.load(f)
    reps = c["replicas"]
    if c["n"] < 1 or len(reps) != c["n"] or any(r["replica"] != i for i, r in enumerate(reps)):
        raise ValueError("cluster.json: inconsistent")
    return [Replica(r["api"], unhex(r["public_key"]), unhex(r["sealing_key"])) for r in reps]


def cluster_ca_file(path: str) -> Optional[str]:
    """§15: the CA a cluster.json carries (PEM), written to a file of its
    own for `requests` to pin; None if the file has none (plain HTTP)."""
    with open(path) as f:
        ca = json.load(f).get("ca")
    if not ca:
        return None
    fd, ca_path = tempfile.mkstemp(prefix="rr-cluster-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as f:
        f.write(ca)
    return ca_path


@dataclass
class Put:
    record_id: bytes
    cid: str
    tx: bytes
    certified_at: int


class Client:
    """The flows of §12 over a trusted replica set. Every answer acted on is
    verified; the newest certified height seen is remembered (freshness,
    §10.9) for this client's lifetime."""

    def __init__(self, replicas: list, identity: Identity, ca_file: Optional[str] = None):
        self.replicas = replicas
        self.nodes = [Node(r.url, ca_file=ca_file) for r in replicas]
        self.rs = ReplicaSet([r.key for r in replicas])
        self.me = identity
        self.account = identity.account
        self.keys = identity.umbral
        self.newest = 0

    @classmethod
    def cluster(cls, path: str, identity: Identity) -> "Client":
        """The replicas of a cluster.json (§15), trusting its keys and, for
        https:// URLs, its CA only."""
        return cls(load_cluster(path), identity, cluster_ca_file(path))

    @classmethod
    def dev(cls, url: str, node_key: bytes, identity: Identity) -> "Client":
        """A dev node whose key the caller pinned (§12.1)."""
        return cls([Replica(url, node_key)], identity)

    def _seen(self, height: int):
        if height < self.newest:
            raise ProtocolError(f"answer certified at height {height}, older than {self.newest} already seen")
        self.newest = height

    def _submit(self, tx: SignedTx) -> dict:
        """§12.2 step 6: send to every replica; the first receipt that verifies."""
        errors = []
        for node in self.nodes:
            try:
                r = verify_receipt(node.submit(tx), self.rs, tx.id)
            except (NodeError, ProtocolError, requests.RequestException) as e:
                errors.append(e)
                continue
            self._seen(r["header"]["height"])
            (kind, v), = r["outcome"].items()
            if kind == "Refused":
                raise Refused(v["code"], v["message"])
            return r
        raise errors[0] if len(errors) == len(self.nodes) and len({str(e) for e in errors}) == 1 \
            else ProtocolError(f"no replica gave a verified receipt: {errors}")

    def _state(self, fetch: Callable) -> VerifiedState:
        errors = []
        for node in self.nodes:
            try:
                s = VerifiedState(fetch(node), self.rs)
            except (NodeError, ProtocolError, requests.RequestException) as e:
                errors.append(e)
                continue
            self._seen(s.height)
            return s
        raise errors[0] if len({str(e) for e in errors}) == 1 else ProtocolError(f"no verified answer: {errors}")

    # -- put (§12.2)
    def put(self, plaintext: bytes, media_type: str = "application/octet-stream") -> Put:
        salt = os.urandom(16)
        rid = record_id(self.account.id, salt)
        _, _, record_pk = self.keys.record(rid)
        capsule, data_key = make_capsule(record_pk)
        env = seal_envelope(data_key, plaintext)
        digest = cid_digest(env)
        want = cid_string(digest)
        ok = 0
        for node in self.nodes:
            try:
                if node.put_blob(env, self._auth("upload")) != want:
                    raise ProtocolError("the replica stored the blob under another CID")
                ok += 1
            except (NodeError, requests.RequestException):
                pass
        if ok < 2 * self.rs.f + 1:
            raise ProtocolError(f"only {ok} replicas stored the blob")
        tx = sign_tx(self.account, call_register(salt, digest, len(env), UMBRAL, record_pk, capsule, media_type))
        r = self._submit(tx)
        out = r["outcome"]["Ok"]
        if unhex(out["Registered"]["record"]) != rid:
            raise ProtocolError("registered another record id")
        return Put(rid, want, tx.id, r["header"]["height"])

    def _auth(self, scope: str) -> str:
        return authorization(self.account, self.rs.digest, scope)

    def record(self, rid: bytes) -> Optional[dict]:
        """A record this account may read (its own, or one it holds a grant
        of): unknown and not-allowed ids are both 404 unknown_record."""
        return self._state(lambda n: n.record(rid, self._auth(f"record {rid.hex()}"))).record(rid)

    def grant_info(self, gid: bytes) -> Optional[dict]:
        return self._state(lambda n: n.grant(gid, self._auth(f"grant {gid.hex()}"))).grant(gid)

    # -- grant (§12.3)
    def grant(self, rid: bytes, card: dict, purpose: str = "treatment", expires_at: Optional[int] = None,
              m: Optional[int] = None) -> bytes:
        keys = verify_card(card)
        if "umbral" not in keys:
            raise ProtocolError("the grantee's card has no umbral key")
        grantee, grantee_key = unhex(card["account"]), unhex(keys["umbral"])
        parse_account_key(grantee_key)
        rec = self.record(rid)
        if rec is None or rec["owner"] != self.account.id or rec["scheme"] != UMBRAL:
            raise ProtocolError("not an umbral record of mine")
        n = self.rs.n
        m = self.rs.f + 1 if m is None else m
        if not (1 <= m <= n <= 255) or (n > 1 and m < self.rs.f + 1):
            raise ValueError(f"threshold {m} of {n} not allowed")
        record_sk, signer, record_pk = self.keys.record(rid)
        if record_pk != rec["record_key"]:
            raise ProtocolError("the ledger's record key is not the one my master secret derives")
        frags = make_key_fragments(record_sk, signer, grantee_key, m, n)
        if n > 1:
            frags = [seal_fragment(r.sealing_key, rid, grantee, i, f) for i, (r, f) in enumerate(zip(self.replicas, frags))]
        tx = sign_tx(self.account, call_grant(rid, grantee, grantee_key, m, n,
                                              [fragment_commitment(f) for f in frags], purpose, expires_at))
        gid = grant_id(tx.id)
        r = self._submit(tx)
        if unhex(r["outcome"]["Ok"]["Granted"]["grant"]) != gid:
            raise ProtocolError("granted another grant id")
        delivered = 0
        for node, frag in zip(self.nodes, frags):  # only after the grant committed
            try:
                node.deliver_fragment(gid, frag)
                delivered += 1
            except (NodeError, requests.RequestException):
                pass
        if delivered < m:
            raise ProtocolError(f"only {delivered} replicas took their fragment; {m} are needed")
        return gid

    # -- retrieve (§12.4)
    def retrieve(self, gid: bytes, purpose: str = "treatment") -> bytes:
        tx = sign_tx(self.account, call_retrieve(gid, purpose))
        best, fragments, withheld, errors = None, [], [], []
        for i, node in enumerate(self.nodes):
            try:
                a = node.retrieve(tx)
                r = verify_receipt(a["receipt"], self.rs, tx.id)
            except (NodeError, ProtocolError, requests.RequestException) as e:
                errors.append(e)
                continue
            (kind, v), = r["outcome"].items()
            if kind == "Refused":
                self._seen(r["header"]["height"])
                raise Refused(v["code"], v["message"])
            if unhex(v["Retrieved"]["grant"]) != gid:
                raise ProtocolError("the receipt is for another grant")
            s = VerifiedState(a["state"], self.rs)
            if s.height < r["header"]["height"]:
                raise ProtocolError("state older than the receipt")
            g = s.grant(gid)
            rec = None if g is None else s.record(g["record"])
            if g is None or rec is None or g["record"] != rec["id"]:
                raise ProtocolError("the grant and its record are not both proven")
            if best is None or s.height > best[0]:
                best = (s.height, s.header["time"], g, rec)
            if a.get("withheld"):
                withheld.append(a["withheld"]["code"])
            if not grant_usable_at(g, s.header["time"]):
                continue
            f = a.get("fragment")
            if f and s.height >= self.newest and f["replica"] == i and verify_sig(
                    self.rs.keys[i], unhex(f["signature"]),
                    fragment_signing_bytes(tx.id, gid, i, unhex(f["fragment"]))):
                fragments.append(unhex(f["fragment"]))
        if best is None:
            raise errors[0] if errors else ProtocolError("no answer")
        height, t, g, rec = best
        self._seen(height)
        if g["status"] != "Active":
            raise Refused("grant_revoked", "the grant was revoked")
        if g["expires_at"] is not None and g["expires_at"] <= t:
            raise Refused("grant_expired", "the grant expired")
        m = g["threshold"]["m"]
        if len(fragments) < m and withheld and withheld.count(withheld[0]) >= self.rs.f + 1:
            raise Refused(withheld[0], "withheld by the replicas")
        verified = []
        for f in fragments:
            try:
                verified.append(verify_capsule_fragment(f, rec["capsule"], rec["record_key"], self.keys.account_public_key))
            except Exception:
                continue
            if len(verified) == m:
                break
        if len(verified) < m:
            raise ProtocolError(f"{len(verified)} capsule fragments verified, {m} needed")
        data_key = open_reencrypted(self.keys.account_sk, rec["record_key"], rec["capsule"], verified)
        return open_envelope(data_key, self._download(rec))

    def _download(self, rec: dict) -> bytes:
        cid = cid_string(rec["cid"])
        got = b""
        for node in self.nodes:
            try:
                got += node.get_blob(cid, len(got))
            except (NodeError, requests.RequestException):
                continue
            if len(got) >= rec["size"]:
                break
        if cid_digest(got) != rec["cid"]:
            raise ProtocolError("the blob does not match its CID")
        return got

    # -- own record (§12.5)
    def read_own(self, rid: bytes) -> bytes:
        rec = self.record(rid)
        if rec is None or rec["owner"] != self.account.id:
            raise ProtocolError("not a record of mine")
        record_sk, _, _ = self.keys.record(rid)
        return open_envelope(open_own_capsule(record_sk, rec["capsule"]), self._download(rec))

    # -- revoke (§12.6)
    def revoke(self, gid: bytes, wait: float = 30.0) -> dict:
        r = self._submit(sign_tx(self.account, call_revoke(gid)))
        if unhex(r["outcome"]["Ok"]["Revoked"]["grant"]) != gid:
            raise ProtocolError("revoked another grant")
        if self.rs.n > 1:
            deadline = time.time() + wait
            while time.time() < deadline:
                g = self.grant_info(gid)
                if len(g["erased_by"]) >= self.rs.n - g["threshold"]["m"] + 1:
                    break
                time.sleep(0.05)
        return r

    # -- audit (§12.7)
    def audit(self, rid: bytes) -> list:
        scope = f"audit {rid.hex()}"
        return self._state(lambda n: n.audit(rid, self._auth(scope))).audit_trail(rid)

    def listing(self):
        a = self.account.id
        s = self._state(lambda n: n.listing(a, self._auth(f"list {a.hex()}")))
        records = [s.record(r) for r in s.listing(1, "owner_records", a)]
        grants = [s.grant(g) for g in s.listing(2, "grantee_grants", a)]
        return records, grants
