#!/usr/bin/env bash
# The HTTP API against its own OpenAPI document, on a live `rr-node dev`:
#   1. the document is valid OpenAPI 3.1 (openapi-spec-validator);
#   2. schemathesis runs every check it has (no 5xx, responses match their
#      schemas, schema-violating requests refused, ...; settings in
#      schemathesis.toml) over every route.
# Exits non-zero on any failure. Environment (optional):
#   RR_API_VENV      virtualenv to use or create (default /tmp/rr-api-venv)
#   RR_API_NODE_BIN  the rr-node binary (default: cargo build --bin rr-node);
#                    not RR_NODE_*: rr-node reads those as its settings
#   MAX_EXAMPLES     schemathesis examples per route (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RR_API_VENV:-/tmp/rr-api-venv}"
if [ ! -x "$VENV/bin/schemathesis" ] || [ ! -x "$VENV/bin/openapi-spec-validator" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis==4.*" "openapi-spec-validator==0.*"
fi
if [ -z "${RR_API_NODE_BIN:-}" ]; then
    cargo build -q --bin rr-node
    RR_API_NODE_BIN="${CARGO_TARGET_DIR:-target}/debug/rr-node"
fi
tmp=$(mktemp -d /tmp/rr-api.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$RR_API_NODE_BIN" dev --data-dir "$tmp/data" --listen "127.0.0.1:$port" >"$tmp/node.log" 2>&1 &
node=$!
trap 'kill "$node" 2>/dev/null; wait "$node" 2>/dev/null; rm -rf "$tmp"' EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    curl -sf "$url/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "$url/v1/openapi.json" >"$tmp/openapi.json"
"$VENV/bin/openapi-spec-validator" "$tmp/openapi.json"
"$VENV/bin/schemathesis" --config-file schemathesis.toml run "$url/v1/openapi.json" \
    --url "$url" --checks all --max-examples "${MAX_EXAMPLES:-50}"
