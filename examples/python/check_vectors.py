#!/usr/bin/env python3
"""Checks docs/vectors/*.json with the Python implementation (rr_client).

    python3 examples/python/check_vectors.py [VECTOR_DIR]

Every value the Python client can compute is recomputed and compared:
encodings, ids, signed calls (ed25519 is deterministic), envelopes, Umbral
keys (and the capsule, key and capsule fragments parsed, re-serialized,
verified and opened), sealed fragments (opened with an HPKE implementation
written from RFC 9180), cards, and every certificate, receipt proof, state
proof and ledger value of the dev node flow. recrypt values are checked for
their layout and their Ed25519 signer keys only (§19). Exits non-zero on the
first failure.
"""

import json
import os
import struct
import sys

import umbral_pre as umbral

import rr_client as rr
from rr_client import DK, H, Hlp, unhex, varint

HERE = os.path.dirname(os.path.abspath(__file__))
checks = 0


def eq(what, got, want):
    global checks
    checks += 1
    if got != want:
        g = got.hex() if isinstance(got, (bytes, bytearray)) else got
        w = want.hex() if isinstance(want, (bytes, bytearray)) else want
        raise SystemExit(f"FAIL {what}:\n  computed {g}\n  vector   {w}")


def load(d, name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)["vectors"]


# ---------------------------------------------------------------- encoding


def encode_value(ty: str, v) -> bytes:
    if ty in ("u64", "u16", "Timestamp", "ReplicaId", "SchemeId"):
        return varint(v)
    if ty == "bool":
        return rr.pc_bool(v)
    if ty == "Option<u64>":
        return rr.pc_option(v, varint)
    if ty in ("String", "Purpose"):
        return rr.pc_str(v)
    if ty == "bytes (Vec<u8>)":
        return rr.pc_bytes(unhex(v))
    if ty == "[u8; 16] (salt)":
        return bytes(v)
    if ty == "Threshold":
        return varint(v["m"]) + varint(v["n"])
    if ty == "AccountId":
        return unhex(v)
    if ty == "ContentId":
        return rr.cid_postcard(rr.cid_parse(v))
    if ty == "BlockContext":
        return varint(v["height"]) + varint(v["time"])
    if ty == "ErrorCode":
        return rr.error_code_postcard(v)
    raise SystemExit(f"no encoder for {ty}")


def check_encoding(d):
    for e in load(d, "encoding.json")["postcard"]["values"]:
        if e["type"].startswith("Table"):
            eq(f"table id of {e['json']}", rr.TABLES[e["json"]], e["table_id"])
        else:
            eq(f"postcard of {e['type']} {e['json']}", encode_value(e["type"], e["json"]), unhex(e["postcard"]))


# ---------------------------------------------------------------- ids, calls


def seeds_by_account(d):
    return {p["account"]: unhex(p["signing_seed"]) for p in load(d, "ids.json")["accounts"].values()
            if isinstance(p, dict) and "account" in p}


def check_ids(d):
    v = load(d, "ids.json")
    for name, p in v["accounts"].items():
        if not isinstance(p, dict):
            continue
        eq(f"account of {name}", rr.Account(unhex(p["signing_seed"])).id, unhex(p["account"]))
    for key in ("record_id", "record_id_zero_salt"):
        r = v[key]
        eq(key, rr.record_id(unhex(r["owner"]), unhex(r["salt"])), unhex(r["record_id"]))
    r = v["record_id"]
    eq("salt JSON is an integer array", bytes(r["salt_json"]), unhex(r["salt"]))
    eq("record id derive_key input", struct.pack("<Q", 32) + unhex(r["owner"]) + struct.pack("<Q", 16) + unhex(r["salt"]),
       unhex(r["derive_key_input"]))
    eq("tx id", H(unhex(v["tx_id"]["signed_tx_postcard"])), unhex(v["tx_id"]["tx_id"]))
    eq("grant id", rr.grant_id(unhex(v["grant_id"]["grant_tx_id"])), unhex(v["grant_id"]["grant_id"]))
    for c in v["fragment_commitments"]["examples"]:
        eq("fragment commitment", rr.fragment_commitment(unhex(c["fragment"])), unhex(c["commitment"]))
    c = v["content_id"]
    digest = rr.cid_digest(unhex(c["bytes"]))
    eq("sha256", digest, unhex(c["sha256"]))
    eq("CID string", rr.cid_string(digest), c["cid"])
    eq("CID parse", rr.cid_parse(c["cid"]), digest)
    eq("binary CID", rr.CID_PREFIX + digest, unhex(c["cid_binary"]))
    eq("CID postcard", rr.cid_postcard(digest), unhex(c["cid_postcard"]))
    for key in ("replica_set_cluster", "replica_set_single"):
        s = v[key]
        rs = rr.ReplicaSet([unhex(k) for k in s["json"]["keys"]])
        eq(f"{key} n/f/quorum", (rs.n, rs.f, rs.quorum), (s["n"], s["f"], s["quorum"]))
        eq(f"{key} postcard", varint(rs.n) + b"".join(rs.keys), unhex(s["keys_postcard"]))
        eq(f"{key} digest", rs.digest, unhex(s["digest"]))


def check_tx(what, t, seeds):
    body_json = t["json"]["body"]
    eq(f"{what}: signer", body_json["signer"], t["signer"])
    body = rr.tx_body(unhex(body_json["signer"]), body_json["nonce"], rr.call_from_json(body_json["call"]))
    eq(f"{what}: body postcard from JSON", body, unhex(t["body_postcard"]))
    eq(f"{what}: signing bytes", rr.TX_DOMAIN + body, unhex(t["signing_bytes"]))
    sig = rr.Account(seeds[t["signer"]]).sign(rr.TX_DOMAIN + body)
    eq(f"{what}: signature (ed25519 is deterministic)", sig, unhex(t["signature"]))
    eq(f"{what}: JSON signature", t["json"]["signature"], t["signature"])
    tx = rr.SignedTx(body, sig)
    eq(f"{what}: signed tx", tx.bytes, unhex(t["signed_tx_postcard"]))
    eq(f"{what}: tx id", tx.id, unhex(t["tx_id"]))
    return tx


def check_calls(d):
    v = load(d, "calls.json")
    seeds = seeds_by_account(d)
    for name in ("register_record", "register_record_with_metadata", "grant", "retrieve", "revoke", "confirm_erasure"):
        check_tx(name, v[name], seeds)
    eq("grant id of the grant", rr.grant_id(unhex(v["grant"]["tx_id"])), unhex(v["grant"]["grant_id"]))
    body = v["register_record"]["json"]["body"]["call"]["RegisterRecord"]
    env = unhex(v["register_record"]["envelope"])
    eq("register: cid is the envelope's", rr.cid_string(rr.cid_digest(env)), body["cid"])
    eq("register: size is the envelope's", len(env), body["size"])
    q = v["query_authorization"]
    acct = rr.Account(seeds[q["account"]])
    cluster = unhex(q["replica_set_digest"])
    ids = load(d, "ids.json")["replica_set_cluster"]
    eq("query: bound to replica_set_cluster", cluster, rr.ReplicaSet([unhex(k) for k in ids["json"]["keys"]]).digest)
    msg = rr.QUERY_DOMAIN + cluster + rr.pc_str(q["scope"]) + varint(q["at"])
    eq("query signing bytes", msg, unhex(q["signing_bytes"]))
    eq("query header", rr.authorization(acct, cluster, q["scope"], q["at"]), q["header"])


# ---------------------------------------------------------------- envelope


def check_envelope(d):
    for name, e in load(d, "envelope.json").items():
        pt = unhex(e["plaintext"]) if "plaintext" in e else bytes(i % 251 for i in range(e["plaintext_len"]))
        key = unhex(e["data_key"])
        env = rr.seal_envelope(key, pt, e["chunk_size"], unhex(e["nonce_prefix"]))
        eq(f"envelope {name}", env, unhex(e["envelope"]))
        eq(f"envelope {name} header", env[:28], unhex(e["header"]))
        eq(f"envelope {name} aad", env[:28] + bytes(36), unhex(e["aad"]))
        eq(f"envelope {name} length", len(env), 28 + len(pt) + 16 * max(1, -(-len(pt) // e["chunk_size"])))
        eq(f"envelope {name} opens", rr.open_envelope(key, env), pt)
        eq(f"envelope {name} cid", rr.cid_string(rr.cid_digest(env)), e["cid"])
        for i, n in enumerate(e["chunk_nonces"]):
            last = i == len(e["chunk_nonces"]) - 1
            eq(f"envelope {name} nonce {i}", unhex(e["nonce_prefix"]) + struct.pack(">I", i) + bytes([last]), unhex(n))
        bad = bytearray(env)
        bad[-1] ^= 1
        try:
            rr.open_envelope(key, bytes(bad))
            raise SystemExit(f"FAIL envelope {name}: a flipped bit was not caught")
        except rr.ProtocolError:
            pass


# ---------------------------------------------------------------- umbral, recrypt


def check_umbral(d):
    v = load(d, "umbral.json")
    for who in ("alice", "bob"):
        m = v["master_secrets"][who]
        eq(f"{who} umbral master", rr.umbral_master_from_root(unhex(m["root_seed"])), unhex(m["umbral_master"]))
        eq(f"{who} account key", rr.UmbralKeys(unhex(m["umbral_master"])).account_public_key, unhex(m["account_public_key"]))
    rk = v["record_key"]
    rid = unhex(rk["record_id"])
    alice = rr.UmbralKeys(unhex(rk["owner_umbral_master"]))
    record_sk, signer, record_pk = alice.record(rid)
    eq("record key label", rr.LABEL_RECORD + rid, unhex(rk["record_key_label"]))
    eq("record public key", record_pk, unhex(rk["record_public_key"]))
    c = v["capsule"]
    capsule_field = unhex(c["capsule"])
    capsule, wrapped = rr.parse_capsule(capsule_field)
    eq("umbral capsule bytes", bytes(capsule), unhex(c["umbral_capsule"]))
    eq("wrapped key", wrapped, unhex(c["wrapped_key"]))
    eq("capsule re-encodes", rr.encode_capsule(capsule, wrapped), capsule_field)
    eq("owner opens the capsule", rr.open_own_capsule(record_sk, capsule_field), unhex(c["data_key"]))
    bob = rr.UmbralKeys(unhex(v["master_secrets"]["bob"]["umbral_master"]))
    kf = v["key_fragments"]
    eq("grantee key", bob.account_public_key, unhex(kf["grantee_account_public_key"]))
    for i, k in enumerate(kf["key_fragments"]):
        rr.verify_key_fragment(unhex(k), record_pk, bob.account_public_key)
        eq(f"key fragment {i} verifies", True, True)
        try:  # bound to the grantee
            rr.verify_key_fragment(unhex(k), record_pk, alice.account_public_key)
            raise SystemExit(f"FAIL key fragment {i} verified for another grantee")
        except umbral.VerificationError:
            pass
    verified = []
    for cf in v["capsule_fragments"]["capsule_fragments"]:
        verified.append(rr.verify_capsule_fragment(unhex(cf["capsule_fragment"]), capsule_field, record_pk,
                                                   bob.account_public_key))
    m = kf["threshold"]["m"]
    key = rr.open_reencrypted(bob.account_sk, record_pk, capsule_field, verified[:m])
    eq("grantee opens the data key", key, unhex(v["capsule_fragments"]["opened_data_key"]))
    eq("same data key", key, unhex(c["data_key"]))
    # Python can make fragments the replicas accept (random, so not compared).
    mine = rr.make_key_fragments(record_sk, signer, bob.account_public_key, 2, 4)
    rr.verify_key_fragment(mine[3], unhex(rk["record_public_key"]), bob.account_public_key)


def recrypt_signer_pk(master: bytes, label: bytes, rid: bytes) -> bytes:
    seed = DK("resilient-records rr-pre recrypt signing seed v1", master + label + rid, 32)
    return bytes(rr.nacl.signing.SigningKey(seed).verify_key)


def check_recrypt(d):
    v = load(d, "recrypt.json")
    k = v["keys"]
    eq("alice recrypt master", DK("resilient-records keystore v2 recrypt master", unhex(k["alice_root_seed"])),
       unhex(k["alice_recrypt_master"]))
    eq("bob recrypt master", DK("resilient-records keystore v2 recrypt master", unhex(k["bob_root_seed"])),
       unhex(k["bob_recrypt_master"]))
    pk = unhex(k["record_public_key"])
    eq("record key layout", (len(pk), pk[:2]), (130, b"\x01\x01"))
    eq("account key layout", (len(unhex(k["bob_account_public_key"])), unhex(k["bob_account_public_key"])[:2]), (66, b"\x01\x00"))
    master, rid = unhex(k["alice_recrypt_master"]), unhex(k["record_id"])
    eq("delegation EdPK", recrypt_signer_pk(master, b"delegation", rid), pk[66:98])
    eq("proxy EdPK", recrypt_signer_pk(master, b"proxy", rid), pk[98:130])
    for name, field, n in (("capsule", "capsule", 577), ("key_fragment", "key_fragment", 865),
                           ("capsule_fragment", "capsule_fragment", 1537)):
        b = unhex(v[name][field])
        eq(f"recrypt {name} layout", (len(b), b[0]), (n, 1))
    eq("recrypt data key", unhex(v["capsule_fragment"]["opened_data_key"]), unhex(v["capsule"]["data_key"]))
    kf = unhex(v["key_fragment"]["key_fragment"])
    eq("key fragment carries the proxy key pair", kf[1 + 64 + 64 + 384 + 128 + 32 + 64 + 32:][:32], pk[98:130])


# ---------------------------------------------------------------- sealing


def check_sealing(d):
    v = load(d, "sealing.json")
    keys = {}
    for r in v["replica_sealing_keys"]["replicas"]:
        seed = DK("resilient-records keystore v2 replica sealing seed", unhex(r["root_seed"]))
        eq("sealing seed", seed, unhex(r["sealing_seed"]))
        ikm = DK("resilient-records replica hpke x25519 v1", seed)
        eq("hpke ikm", ikm, unhex(r["ikm"]))
        sk, pk = rr.hpke_derive_keypair(ikm)
        eq(f"replica {r['replica']} DeriveKeyPair", (sk, pk), (unhex(r["sealing_secret_key"]), unhex(r["sealing_public_key"])))
        keys[r["replica"]] = sk
    s = v["sealed_fragments"]
    eq("info", rr.HPKE_INFO, unhex(s["info"]))
    rid, grantee = unhex(s["record_id"]), unhex(s["grantee"])
    for f in s["fragments"]:
        i = f["replica"]
        sealed = unhex(f["sealed"])
        eq(f"sealed {i} layout", sealed, b"\x01" + unhex(f["enc"]) + unhex(f["ciphertext"]))
        eq(f"aad {i}", rr.slot_aad(rid, grantee, i), unhex(f["aad"]))
        eq(f"sealed {i} opens", rr.open_sealed_fragment(keys[i], rid, grantee, i, sealed), unhex(f["key_fragment"]))
        eq(f"commitment {i}", rr.fragment_commitment(sealed), unhex(f["commitment"]))
        mine = rr.seal_fragment(unhex(f["sealing_public_key"]), rid, grantee, i, b"x")
        eq(f"own sealing to replica {i} opens", rr.open_sealed_fragment(keys[i], rid, grantee, i, mine), b"x")
    calls = load(d, "calls.json")
    eq("Grant commits to the sealed fragments",
       calls["grant"]["json"]["body"]["call"]["Grant"]["fragment_commitments"], [f["commitment"] for f in s["fragments"]])


# ---------------------------------------------------------------- cards


def check_cards(d):
    for name, c in load(d, "card.json").items():
        card = c["card"]
        keys = rr.verify_card(card)
        eq(f"{name} signing bytes", rr.card_signing_bytes(unhex(card["account"]), keys), unhex(c["signing_bytes"]))
        eq(f"{name} signature", rr.Account(unhex(c["signing_seed"])).sign(unhex(c["signing_bytes"])), unhex(c["signature"]))
        eq(f"{name} umbral key", keys["umbral"],
           rr.UmbralKeys(rr.umbral_master_from_root(unhex(c["root_seed"]))).account_public_key.hex())
        swapped = dict(card, pre_public_key=keys["umbral"][:-2] + "00", pre_public_keys=dict(keys, umbral=keys["umbral"][:-2] + "00"))
        try:
            rr.verify_card(swapped)
            raise SystemExit(f"FAIL {name}: a card with a swapped key verified")
        except rr.ProtocolError:
            pass
    me = rr.Identity(os.urandom(32), os.urandom(32)).card()
    rr.verify_card(me)


# ---------------------------------------------------------------- ledger


def check_cert_fields(what, cert, vec, rs):
    h = rr.verify_certificate(cert, rs)
    eq(f"{what}: header postcard", rr.header_postcard(h), unhex(vec["header_postcard"]))
    eq(f"{what}: header hash", rr.header_hash(h), unhex(vec["header_hash"]))
    eq(f"{what}: header signing bytes", rr.HEADER_DOMAIN + rr.header_hash(h), unhex(vec["header_signing_bytes"]))
    return h


def check_receipt_fields(what, vec, rs, tx_id):
    cr = vec["answer"]
    r = rr.verify_receipt(cr, rs, tx_id)
    eq(f"{what}: receipt postcard", rr.receipt_postcard(cr["receipt"]), unhex(vec["receipt_postcard"]))
    eq(f"{what}: leaf hash", rr.merkle_leaf(unhex(vec["receipt_postcard"])), unhex(vec["receipt_leaf_hash"]))
    check_cert_fields(what, cr["certificate"], vec, rs)
    return r


def check_state_fields(what, vec, rs):
    s = rr.VerifiedState(vec["answer"], rs)
    check_cert_fields(what, vec["answer"]["certificate"], vec, rs)
    for e, h in zip(vec["answer"]["entries"], vec["entry_hashes"]):
        eq(f"{what}: table id", rr.TABLES[e["table"]], h["table_id"])
        eq(f"{what}: key hash", rr.smt_key_hash(h["table_id"], unhex(e["key"])), unhex(h["key_hash"]))
        if e.get("value") is not None:
            eq(f"{what}: value hash", rr.smt_value_hash(unhex(e["value"])), unhex(h["value_hash"]))
    # Tampering with any proven value breaks the proof.
    for e in vec["answer"]["entries"]:
        if e.get("value"):
            bad = json.loads(json.dumps(vec["answer"]))
            for b in bad["entries"]:
                if b["key"] == e["key"] and b["table"] == e["table"]:
                    b["value"] = b["value"][:-2] + ("00" if b["value"][-2:] != "00" else "01")
            try:
                rr.VerifiedState(bad, rs)
                raise SystemExit(f"FAIL {what}: a changed value still verified")
            except rr.ProtocolError:
                pass
            break
    return s


def check_ledger(d):
    v = load(d, "ledger.json")
    seeds = seeds_by_account(d)
    node = v["node"]
    key = rr.Account(unhex(node["node_key_seed"])).id
    eq("node key", key, unhex(node["public_key"]))
    rs = rr.ReplicaSet([key])
    eq("dev replica set", [k for k in node["replica_set"]["keys"]], [key.hex()])
    eq("dev replica set digest", rs.digest, unhex(node["replica_set_digest"]))

    up = v["upload"]
    env = unhex(up["envelope"])
    eq("upload: CID", rr.cid_string(rr.cid_digest(env)), up["answer"]["cid"])
    eq("upload: envelope opens", rr.open_envelope(unhex(up["data_key"]), env), unhex(up["plaintext"]))

    reg = v["register"]
    tx = check_tx("register", reg, seeds)
    r = check_receipt_fields("register", reg, rs, tx.id)
    eq("register: output", r["outcome"], {"Ok": {"Registered": {"record": reg["record_id"]}}})
    call = reg["json"]["body"]["call"]["RegisterRecord"]
    eq("register: record id", rr.record_id(unhex(reg["signer"]), bytes(call["salt"])), unhex(reg["record_id"]))
    record_pk, capsule_field = unhex(call["record_key"]), unhex(call["capsule"])

    g = v["grant"]
    tx = check_tx("grant", g, seeds)
    r = check_receipt_fields("grant", g, rs, tx.id)
    gid = rr.grant_id(tx.id)
    eq("grant: id", gid, unhex(g["grant_id"]))
    eq("grant: output", r["outcome"], {"Ok": {"Granted": {"grant": g["grant_id"]}}})
    gcall = g["json"]["body"]["call"]["Grant"]
    eq("grant: commitment of the unsealed fragment", [rr.fragment_commitment(unhex(g["key_fragment"])).hex()],
       gcall["fragment_commitments"])
    grantee_key = unhex(gcall["grantee_key"])
    rr.verify_key_fragment(unhex(g["key_fragment"]), record_pk, grantee_key)
    eq("deliver: body", v["deliver_fragment"]["body"], g["key_fragment"])

    rt = v["retrieve"]
    tx = check_tx("retrieve", rt, seeds)
    eq("retrieve: receipt vector is the answer's", rt["receipt"]["answer"], rt["answer"]["receipt"])
    r = check_receipt_fields("retrieve", rt["receipt"], rs, tx.id)
    eq("retrieve: output", r["outcome"], {"Ok": {"Retrieved": {"record": reg["record_id"], "grant": g["grant_id"]}}})
    s = check_state_fields("retrieve state", rt["state"], rs)
    grant, record = s.grant(gid), s.record(unhex(reg["record_id"]))
    eq("retrieve: grant usable", rr.grant_usable_at(grant, s.header["time"]), True)
    eq("retrieve: proven record key", record["record_key"], record_pk)
    f = rt["answer"]["fragment"]
    msg = rr.fragment_signing_bytes(tx.id, gid, f["replica"], unhex(f["fragment"]))
    eq("retrieve: fragment signing bytes", msg, unhex(rt["fragment_signing_bytes"]))
    eq("retrieve: fragment signature", rr.verify_sig(key, unhex(f["signature"]), msg), True)
    vc = rr.verify_capsule_fragment(unhex(f["fragment"]), record["capsule"], record["record_key"], grantee_key)
    bob = [p for p in load(d, "ids.json")["accounts"].values() if isinstance(p, dict) and p.get("account") == rt["signer"]][0]
    bob_keys = rr.UmbralKeys(rr.umbral_master_from_root(unhex(bob["root_seed"])))
    eq("retrieve: bob's key is the grantee key", bob_keys.account_public_key, grantee_key)
    data_key = rr.open_reencrypted(bob_keys.account_sk, record["record_key"], record["capsule"], [vc])
    eq("retrieve: bob decrypts the upload", rr.open_envelope(data_key, env), unhex(up["plaintext"]))

    rv = v["revoke"]
    tx = check_tx("revoke", rv, seeds)
    check_receipt_fields("revoke", rv, rs, tx.id)

    rf = v["retrieve_refused"]
    tx = check_tx("retrieve_refused", rf, seeds)
    r = check_receipt_fields("retrieve_refused", rf["receipt"], rs, tx.id)
    eq("refused: code", list(r["outcome"]), ["Refused"])
    eq("refused: grant_revoked", r["outcome"]["Refused"]["code"], "grant_revoked")
    eq("refused: no fragment", "fragment" in rf["answer"], False)
    s = check_state_fields("refused state", rf["state"], rs)
    eq("refused: grant revoked in state", s.grant(gid)["status"] != "Active", True)

    b = v["block_of_three"]
    txs = [check_tx(f"block tx {i}", t, seeds) for i, t in enumerate(b["transactions"])]
    heads = [check_receipt_fields(f"block receipt {i}", t, rs, tx.id) for i, (t, tx) in enumerate(zip(b["transactions"], txs))]
    eq("block: one block", {h["header"]["height"] for h in heads}, {6})
    eq("block: txs postcard", varint(len(txs)) + b"".join(t.bytes for t in txs), unhex(b["block"]["txs_postcard"]))
    digest = Hlp("resilient-records 2026 block txs", unhex(b["block"]["txs_postcard"]))
    eq("block: txs digest", digest, unhex(b["block"]["txs_digest"]))
    ctx = b["block"]["context"]
    hdr = varint(ctx["height"]) + varint(ctx["time"]) + unhex(b["block"]["parent"]) + digest
    eq("block: header postcard", hdr, unhex(b["block"]["header_postcard"]))
    bh = Hlp("resilient-records 2026 block header", hdr)
    eq("block: hash", bh, unhex(b["block"]["block_hash"]))
    eq("block: the ledger header names it", heads[0]["header"]["block"], bh.hex())
    eq("block: parent is the previous block", b["block"]["parent"], rf["receipt"]["answer"]["certificate"]["header"]["block"])
    eq("block: leaves", [rr.merkle_leaf(unhex(t["receipt_postcard"])).hex() for t in b["transactions"]], b["receipt_leaf_hashes"])
    eq("block: refused replay", list(b["transactions"][1]["answer"]["receipt"]["outcome"]["Refused"].keys()), ["code", "message"])

    for name in ("get_head", "get_head_genesis"):
        check_cert_fields(name, v[name]["answer"], v[name], rs)
    gen = v["get_head_genesis"]["answer"]["header"]
    eq("genesis header", (gen["height"], gen["time"], gen["receipts"]), (0, 0, 0))
    eq("genesis hashes are zero", {gen[k] for k in ("block", "parent", "state_root", "receipts_root")}, {"00" * 32})
    s = check_state_fields("get_record", v["get_record"], rs)
    rec = s.record(unhex(v["get_record"]["record_id"]))
    eq("get_record: owner", rec["owner"].hex(), reg["signer"])
    eq("get_record: cid", rr.cid_string(rec["cid"]), up["answer"]["cid"])
    eq("get_record: audit_len", rec["audit_len"], 5)
    s = check_state_fields("get_record_absent", v["get_record_absent"], rs)
    eq("get_record_absent: proven absent", s.record(unhex(v["get_record_absent"]["record_id"])), None)
    s = check_state_fields("get_grant", v["get_grant"], rs)
    gi = s.grant(gid)
    eq("get_grant: revoked at", gi["status"], {"Revoked": {"at": rv["answer"]["receipt"]["context"]}})
    eq("get_grant: threshold", gi["threshold"], {"m": 1, "n": 1})
    a = v["get_audit"]
    s = check_state_fields("get_audit", a, rs)
    trail = s.audit_trail(unhex(a["record_id"]))
    eq("get_audit: actions", [(e["action"], e["refused"]) for e in trail],
       [(t["action"], t["refused"]) for t in a["trail"]])
    eq("get_audit: txs", [e["tx"].hex() for e in trail], [t["tx"] for t in a["trail"]])
    eq("get_audit: purposes", [e["purpose"] for e in trail], [t["purpose"] for t in a["trail"]])
    s = check_state_fields("get_listing", v["get_listing"], rs)
    acct = unhex(v["get_listing"]["account"])
    eq("get_listing: records", len(s.listing(1, "owner_records", acct)), 2)
    eq("get_listing: grants held", s.listing(2, "grantee_grants", acct), [])


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "docs", "vectors")
    for name, fn in (("encoding.json", check_encoding), ("ids.json", check_ids), ("calls.json", check_calls),
                     ("envelope.json", check_envelope), ("umbral.json", check_umbral), ("recrypt.json", check_recrypt),
                     ("sealing.json", check_sealing), ("card.json", check_cards), ("ledger.json", check_ledger)):
        before = checks
        fn(d)
        print(f"{name:<15} ok ({checks - before} checks)")
    print(f"check_vectors: all {checks} checks passed")


if __name__ == "__main__":
    main()
