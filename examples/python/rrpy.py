#!/usr/bin/env python3
"""A small command line over rr_client, used by interop.sh to trade records
with the Rust `rr` both ways.

    rrpy.py keys new ID.json            a fresh identity (signing seed and root seed, mode 0600)
    rrpy.py card ID.json                its signed public card (JSON), for `rr grant --to`
    rrpy.py put --as ID.json FILE       encrypt and register FILE; prints {"record_id", "cid", ...}
    rrpy.py grant --as ID.json RECORD --to CARD.json [--purpose P] [--threshold M]
    rrpy.py get --as ID.json GRANT -o OUT [--purpose P]     retrieve through a grant
    rrpy.py read --as ID.json RECORD -o OUT                  read one's own record
    rrpy.py revoke --as ID.json GRANT
    rrpy.py audit --as ID.json RECORD

--node / RR_NODE is the dev node's URL, --node-key / RR_DEV_NODE_KEY its pinned key;
or --node is a cluster.json (what `rr-node localnet` writes, §15), whose
replica keys and CA are then trusted, as `rr --node cluster.json` does.
"""

import argparse
import json
import os
import sys

import rr_client as rr


def client(args) -> rr.Client:
    if os.path.isfile(args.node):
        return rr.Client.cluster(args.node, rr.Identity.load(args.as_))
    if not args.node_key:
        sys.exit("rrpy: give the dev node's key (--node-key or RR_DEV_NODE_KEY)")
    return rr.Client.dev(args.node, bytes.fromhex(args.node_key), rr.Identity.load(args.as_))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default=os.environ.get("RR_NODE", "http://127.0.0.1:7700"))
    ap.add_argument("--node-key", default=os.environ.get("RR_DEV_NODE_KEY", ""))
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys")
    k.add_argument("action", choices=["new"])
    k.add_argument("file")
    c = sub.add_parser("card")
    c.add_argument("file")
    for name in ["put", "grant", "get", "read", "revoke", "audit"]:
        p = sub.add_parser(name)
        p.add_argument("--as", dest="as_", required=True)
        if name == "put":
            p.add_argument("file")
            p.add_argument("--media-type", default="application/octet-stream")
        else:
            p.add_argument("id")
        if name == "grant":
            p.add_argument("--to", required=True)
            p.add_argument("--purpose", default="treatment")
            p.add_argument("--threshold", type=int)
        if name == "get":
            p.add_argument("--purpose", default="treatment")
        if name in ("get", "read"):
            p.add_argument("-o", "--output", required=True)
    args = ap.parse_args()

    if args.cmd == "keys":
        if os.path.exists(args.file):
            sys.exit(f"rrpy: {args.file} exists")
        rr.Identity.generate().save(args.file)
        print(f"new identity {rr.Identity.load(args.file).account.id.hex()} in {args.file}", file=sys.stderr)
    elif args.cmd == "card":
        print(json.dumps(rr.Identity.load(args.file).card(), indent=2))
    elif args.cmd == "put":
        with open(args.file, "rb") as f:
            put = client(args).put(f.read(), args.media_type)
        print(json.dumps({"record_id": put.record_id.hex(), "cid": put.cid, "tx": put.tx.hex(),
                          "certified_at": put.certified_at}))
    elif args.cmd == "grant":
        with open(args.to) as f:
            card = json.load(f)
        gid = client(args).grant(bytes.fromhex(args.id), card, args.purpose, m=args.threshold)
        print(json.dumps({"grant_id": gid.hex()}))
    elif args.cmd in ("get", "read"):
        c = client(args)
        data = c.retrieve(bytes.fromhex(args.id), args.purpose) if args.cmd == "get" else c.read_own(bytes.fromhex(args.id))
        with open(args.output, "wb") as f:
            f.write(data)
        print(f"{len(data)} bytes to {args.output}", file=sys.stderr)
    elif args.cmd == "revoke":
        client(args).revoke(bytes.fromhex(args.id))
    elif args.cmd == "audit":
        trail = client(args).audit(bytes.fromhex(args.id))
        print(json.dumps([{"seq": e["seq"], "height": e["at"]["height"], "action": e["action"],
                           "actor": e["actor"].hex(), "purpose": e["purpose"], "refused": e["refused"]}
                          for e in trail], indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (rr.Refused, rr.NodeError, rr.ProtocolError) as e:
        sys.exit(f"rrpy: {e}")
