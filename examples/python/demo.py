#!/usr/bin/env python3
"""The whole flow against a running `rr-node dev` or a cluster, in Python.

    python3 demo.py --node http://127.0.0.1:7700 --node-key <64 hex>
    python3 demo.py --cluster ./rr-cluster/cluster.json

(or RR_NODE and RR_DEV_NODE_KEY in the environment). The node key is the one
`rr-node dev` prints at start (`node key …`); without it the demo pins the
key `GET /v1/info` names, trust on first use (§12.1), and says so. With
`--cluster` (the file `rr-node localnet` writes, §15) it trusts that file's
replica keys and, over https://, its CA only; fragments are sealed to each
replica and the threshold is f + 1 of n.

Alice registers a record, grants it to Bob, Bob retrieves and decrypts it,
Alice reads her own copy, revokes the grant, Bob is refused, and Alice reads
the audit trail. Every receipt, certificate and proof acted on is verified.
Exits non-zero on any failure.
"""

import argparse
import os
import sys

import rr_client as rr


def pinned_key(node_url: str, given: str) -> bytes:
    if given:
        return bytes.fromhex(given)
    info = rr.Node(node_url).info()
    key = info["replica_set"]["keys"][0]
    print(f"note: no --node-key given: pinned {key} from GET /v1/info (trust on first use)", file=sys.stderr)
    return bytes.fromhex(key)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default=os.environ.get("RR_NODE", "http://127.0.0.1:7700"))
    ap.add_argument("--node-key", default=os.environ.get("RR_DEV_NODE_KEY", ""))
    ap.add_argument("--cluster", default="", help="a cluster.json (§15) instead of one dev node")
    args = ap.parse_args()
    if args.cluster:
        alice = rr.Client.cluster(args.cluster, rr.Identity.generate())
        bob = rr.Client.cluster(args.cluster, rr.Identity.generate())
        print(f"cluster  {alice.rs.n} replicas, f = {alice.rs.f}: {', '.join(r.url for r in alice.replicas)}")
    else:
        key = pinned_key(args.node, args.node_key)
        alice = rr.Client.dev(args.node, key, rr.Identity.generate())
        bob = rr.Client.dev(args.node, key, rr.Identity.generate())
    print(f"alice {alice.account.id.hex()[:12]}  bob {bob.account.id.hex()[:12]}")

    plaintext = b"2026-11-23 blood panel: all normal (put by the Python client)\n"
    put = alice.put(plaintext, "text/plain")
    print(f"put      record {put.record_id.hex()}  cid {put.cid}  certified at height {put.certified_at}")

    card = bob.me.card()
    rr.verify_card(card)
    gid = alice.grant(put.record_id, card, "treatment", expires_at=rr.now_ms() + 24 * 3600 * 1000)
    m = alice.grant_info(gid)["threshold"]["m"]
    print(f"grant    {gid.hex()} to bob for treatment ({m} of {alice.rs.n}, expires in 24 h)")

    got = bob.retrieve(gid, "treatment")
    assert got == plaintext, "bob decrypted other bytes"
    print(f"retrieve bob decrypted {len(got)} bytes: {got.decode().strip()!r}")

    assert alice.read_own(put.record_id) == plaintext
    print("read     alice opened her own record with her record key")

    try:
        bob.retrieve(gid, "research")
        raise AssertionError("a retrieval for another purpose was allowed")
    except rr.Refused as e:
        assert e.code == "purpose_mismatch", e
        print(f"refused  bob, purpose research: {e.code} (certified)")

    alice.revoke(gid)
    print(f"revoke   {gid.hex()[:12]}")
    try:
        bob.retrieve(gid, "treatment")
        raise AssertionError("a revoked grant still works")
    except rr.Refused as e:
        assert e.code == "grant_revoked", e
        print(f"refused  bob after revocation: {e.code} (certified)")

    trail = alice.audit(put.record_id)
    print(f"audit    {len(trail)} entries, proven complete:")
    for e in trail:
        who = "alice" if e["actor"] == alice.account.id else "bob" if e["actor"] == bob.account.id else e["actor"].hex()[:12]
        print(f"  #{e['seq']} height {e['at']['height']:>3} {e['action']:<9} by {who:<5} "
              f"purpose {e['purpose'] or '-':<9} {'refused: ' + e['refused'] if e['refused'] else 'allowed'}")
    # (On a cluster the replicas' erasure confirmations follow the revoke.)
    actions = [(e["action"], e["refused"]) for e in trail if e["action"] != "ConfirmErasure"]
    assert actions == [("Register", None), ("Grant", None), ("Retrieve", None),
                       ("Retrieve", "purpose_mismatch"), ("Revoke", None),
                       ("Retrieve", "grant_revoked")], actions

    records, grants = alice.listing()
    assert [r["id"] for r in records] == [put.record_id] and grants == []
    _, bobs = bob.listing()
    assert [g["id"] for g in bobs] == [gid] and bobs[0]["status"] != "Active"
    print("listing  alice owns 1 record; bob holds 1 grant, revoked")
    print("demo: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
