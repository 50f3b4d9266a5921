#!/usr/bin/env bash
# The Python reference client against a real `rr-node dev` and a real
# 4-replica `rr-node localnet` cluster, and against `rr`:
#
#   1. check docs/vectors/*.json with the Python implementation;
#   2. start `rr-node dev` on a free 127.0.0.1 port in a temporary directory;
#   3. run demo.py (register, grant, retrieve, decrypt, revoke, audit);
#   4. a record put by `rr` and read by Python (Python as the grantee), then
#      revoked by `rr` and refused to Python;
#   5. a record put by Python and read by `rr`, then revoked by Python and
#      refused to `rr`; each owner's audit trail shows the other's retrieval;
#   6. stop the node;
#   7. start `rr-node localnet` (4 replicas, TLS) and run the demo and both
#      directions of 4. and 5. against it, then stop it.
#
# Exits non-zero on any failure. Environment (all optional):
#   RR_PY_VENV     virtualenv to use or create (default /tmp/rr-py-venv);
#                  created with `python3 -m venv` and requirements.txt if missing
#   RR_INTEROP_NODE_BIN, RR_INTEROP_RR_BIN
#                  the binaries; if unset, `cargo build --bin rr-node --bin rr`
#                  builds them (into CARGO_TARGET_DIR, default <repo>/target)
#   KEEP_TMP=1     keep the temporary directory (node log, keystore, files)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
START_S=$(date +%s)

step() { printf '\n== %s\n' "$*"; }
fail() { echo "interop: FAIL: $*" >&2; exit 1; }

# ---- Python
VENV="${RR_PY_VENV:-/tmp/rr-py-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
PY="$VENV/bin/python"
"$PY" -c 'import umbral_pre, nacl, blake3, cryptography, requests' \
    || "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"

# ---- binaries
if [ -z "${RR_INTEROP_NODE_BIN:-}" ] || [ -z "${RR_INTEROP_RR_BIN:-}" ]; then
    step "building rr-node and rr"
    (cd "$REPO" && cargo build -q --bin rr-node --bin rr)
    TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
    RR_INTEROP_NODE_BIN="$TARGET/debug/rr-node"
    RR_INTEROP_RR_BIN="$TARGET/debug/rr"
fi
[ -x "$RR_INTEROP_NODE_BIN" ] || fail "no rr-node binary at $RR_INTEROP_NODE_BIN"
[ -x "$RR_INTEROP_RR_BIN" ] || fail "no rr binary at $RR_INTEROP_RR_BIN"
NODE_BIN="$RR_INTEROP_NODE_BIN"
RR_CLI="$RR_INTEROP_RR_BIN"

# ---- 1. vectors
step "check_vectors.py"
"$PY" "$HERE/check_vectors.py" "$REPO/docs/vectors"

# ---- 2. the node
TMP="$(mktemp -d /tmp/rr-interop.XXXXXX)"
NODE_PID=""
cleanup() {
    status=$?
    if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$TMP/node.log" ]; then
        echo "--- last lines of the node log ($TMP/node.log)" >&2
        tail -20 "$TMP/node.log" >&2
    fi
    if [ "$status" -ne 0 ] && [ -f "$TMP/localnet.log" ]; then
        echo "--- last lines of the localnet log ($TMP/localnet.log)" >&2
        tail -20 "$TMP/localnet.log" >&2
    fi
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$status" -ne 0 ]; then
        echo "interop: files kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
step "rr-node dev on 127.0.0.1:$PORT (data in $TMP/data)"
"$NODE_BIN" dev --data-dir "$TMP/data" --listen "127.0.0.1:$PORT" >"$TMP/node.log" 2>&1 &
NODE_PID=$!
NODE_KEY=""
for _ in $(seq 1 100); do
    NODE_KEY="$(sed -n 's/^node key \([0-9a-f]\{64\}\)$/\1/p' "$TMP/node.log" | head -1)"
    if [ -n "$NODE_KEY" ] && grep -q '^listening on' "$TMP/node.log"; then break; fi
    kill -0 "$NODE_PID" 2>/dev/null || fail "rr-node exited: $(tail -5 "$TMP/node.log")"
    sleep 0.1
done
[ -n "$NODE_KEY" ] || fail "rr-node did not print its key"
echo "node key $NODE_KEY"

export RR_NODE="http://127.0.0.1:$PORT" RR_DEV_NODE_KEY="$NODE_KEY"
export RR_KEYSTORE="$TMP/keys" RR_PASSPHRASE="interop passphrase"
RRPY=("$PY" "$HERE/rrpy.py")
cd "$TMP"

# ---- 3. demo
step "demo.py"
"$PY" "$HERE/demo.py"

# ---- identities
step "identities: rr keys alice and bob, Python identity py"
"$RR_CLI" keys new alice >/dev/null 2>&1
"$RR_CLI" keys new bob >/dev/null 2>&1
"$RR_CLI" keys show bob --json >bob.card.json
"${RRPY[@]}" keys new py.json
"${RRPY[@]}" card py.json >py.card.json
PY_ACCOUNT="$("$PY" -c 'import json; print(json.load(open("py.card.json"))["account"])')"
BOB_ACCOUNT="$("$PY" -c 'import json; print(json.load(open("bob.card.json"))["account"])')"
json_field() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# ---- 4. rr puts, Python reads
step "a record put by rr (alice), read by Python"
head -c 3000000 /dev/urandom >from-rr.bin   # three 1 MiB envelope chunks
"$RR_CLI" --as alice put from-rr.bin --json >rr-put.json
REC_A="$(json_field rr-put.json record_id)"
"$RR_CLI" --as alice grant "$REC_A" --to py.card.json --purpose treatment --json >rr-grant.json
GRANT_A="$(json_field rr-grant.json grant_id)"
"${RRPY[@]}" get --as py.json "$GRANT_A" -o from-rr.out
cmp from-rr.bin from-rr.out || fail "Python decrypted other bytes than rr put"
echo "ok: Python decrypted the $(wc -c <from-rr.out)-byte record rr put"
"$RR_CLI" --as alice revoke "$GRANT_A" >/dev/null
if "${RRPY[@]}" get --as py.json "$GRANT_A" -o refused.out 2>refused.err; then
    fail "Python still read a grant rr revoked"
fi
grep -q grant_revoked refused.err || fail "unexpected refusal: $(cat refused.err)"
echo "ok: after rr revoked, Python is refused: $(cat refused.err)"
"$RR_CLI" --as alice audit "$REC_A" --json >rr-audit.json
"$PY" - "$PY_ACCOUNT" <<'EOF' || fail "rr's audit trail does not show Python's retrieval"
import json, sys
trail = json.load(open("rr-audit.json"))
entries = trail["entries"] if isinstance(trail, dict) else trail
py = [e["outcome"] for e in entries if e["actor"] == sys.argv[1] and e["action"] == "retrieve"]
assert py == ["ok", "grant_revoked"], entries
print(f"ok: rr's audit trail ({len(entries)} entries) shows Python's retrieval and its refusal")
EOF

# ---- 5. Python puts, rr reads
step "a record put by Python, read by rr (bob)"
head -c 1500000 /dev/urandom >from-py.bin
"${RRPY[@]}" put --as py.json from-py.bin --media-type application/octet-stream >py-put.json
REC_B="$(json_field py-put.json record_id)"
"${RRPY[@]}" grant --as py.json "$REC_B" --to bob.card.json >py-grant.json
GRANT_B="$(json_field py-grant.json grant_id)"
"$RR_CLI" --as bob get "$GRANT_B" -o from-py.out
cmp from-py.bin from-py.out || fail "rr decrypted other bytes than Python put"
echo "ok: rr decrypted the $(wc -c <from-py.out)-byte record Python put"
"${RRPY[@]}" revoke --as py.json "$GRANT_B"
if "$RR_CLI" --as bob get "$GRANT_B" -o refused2.out 2>refused2.err; then
    fail "rr still read a grant Python revoked"
fi
grep -q revoked refused2.err || fail "unexpected refusal: $(cat refused2.err)"
echo "ok: after Python revoked, rr is refused: $(head -1 refused2.err)"
"${RRPY[@]}" audit --as py.json "$REC_B" >py-audit.json
"$PY" - "$BOB_ACCOUNT" <<'EOF' || fail "Python's audit trail does not show rr's retrievals"
import json, sys
trail = json.load(open("py-audit.json"))
acts = [(e["action"], e["refused"]) for e in trail]
assert acts == [("Register", None), ("Grant", None), ("Retrieve", None), ("Revoke", None),
                ("Retrieve", "grant_revoked")], acts
assert trail[2]["actor"] == sys.argv[1] and trail[4]["actor"] == sys.argv[1]
print(f"ok: Python's audit trail shows rr's retrieval and its refusal: {acts}")
EOF
# rr reads the Python record's audit trail too? Only the owner may; the owner is Python.
# rr (as the grantee, bob: a grant is visible to its owner and grantee only)
# exports a receipt of Python's grant and verifies it offline:
"$RR_CLI" --as bob receipt export "$GRANT_B" -o grant.receipt.json >/dev/null
"$RR_CLI" receipt verify grant.receipt.json --key "$NODE_KEY" >/dev/null \
    || fail "rr does not verify the receipt of Python's grant"
echo "ok: rr exports and verifies a receipt of the grant Python made and revoked"

# ---- 6. stop
step "stopping the node"
kill "$NODE_PID"
wait "$NODE_PID" 2>/dev/null || true
NODE_PID=""
grep -q "stopped cleanly" "$TMP/node.log" || fail "the node did not stop cleanly"

# ---- 7. a 4-replica cluster over TLS
step "rr-node localnet: 4 replicas, TLS with a CA of its own (data in $TMP/cluster)"
env -u RR_NODE -u RR_PASSPHRASE -u RR_KEYSTORE \
    "$NODE_BIN" localnet --replicas 4 --base-port 0 --data-dir "$TMP/cluster" >"$TMP/localnet.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 300); do
    grep -q '^cluster ready' "$TMP/localnet.log" && break
    kill -0 "$NODE_PID" 2>/dev/null || fail "rr-node localnet exited: $(tail -5 "$TMP/localnet.log")"
    sleep 0.1
done
grep -q '^cluster ready' "$TMP/localnet.log" || fail "the cluster did not start: $(tail -5 "$TMP/localnet.log")"
CLUSTER="$TMP/cluster/cluster.json"
if command -v openssl >/dev/null; then
    # What Python 3.13's default context (VERIFY_X509_STRICT) demands.
    openssl verify -x509_strict -CAfile "$TMP/cluster/ca.pem" "$TMP/cluster/replica-0/tls-cert.pem" >/dev/null \
        || fail "a replica's certificate fails strict X.509 verification"
fi
step "demo.py --cluster (HPKE-sealed fragments, 2 of 4)"
"$PY" "$HERE/demo.py" --cluster "$CLUSTER"
step "on the cluster: rr puts, Python reads; Python puts, rr reads"
export RR_NODE="$CLUSTER"
"$RR_CLI" --as alice put from-rr.bin --json >c-rr-put.json
"$RR_CLI" --as alice grant "$(json_field c-rr-put.json record_id)" --to py.card.json --json >c-rr-grant.json
"${RRPY[@]}" get --as py.json "$(json_field c-rr-grant.json grant_id)" -o c-from-rr.out
cmp from-rr.bin c-from-rr.out || fail "Python decrypted other bytes than rr put on the cluster"
echo "ok: Python decrypted the record rr put on the cluster"
"${RRPY[@]}" put --as py.json from-py.bin --media-type application/octet-stream >c-py-put.json
"${RRPY[@]}" grant --as py.json "$(json_field c-py-put.json record_id)" --to bob.card.json >c-py-grant.json
C_GRANT="$(json_field c-py-grant.json grant_id)"
"$RR_CLI" --as bob get "$C_GRANT" -o c-from-py.out
cmp from-py.bin c-from-py.out || fail "rr decrypted other bytes than Python put on the cluster"
echo "ok: rr decrypted the record Python put (fragments Python sealed to each replica)"
"${RRPY[@]}" revoke --as py.json "$C_GRANT"
if "$RR_CLI" --as bob get "$C_GRANT" -o c-refused.out 2>c-refused.err; then
    fail "rr still read a grant Python revoked on the cluster"
fi
grep -q revoked c-refused.err || fail "unexpected refusal: $(cat c-refused.err)"
echo "ok: after Python revoked on the cluster, rr is refused"
step "stopping the cluster"
kill "$NODE_PID"
wait "$NODE_PID" 2>/dev/null || true
NODE_PID=""
echo
echo "interop: all passed in $(( $(date +%s) - START_S )) s"
