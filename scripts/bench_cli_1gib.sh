#!/usr/bin/env bash
# A 1 GiB record through the real binaries: `rr put` and `rr get` against
# `rr-node dev` on 127.0.0.1, with throughput and the peak RSS of each process
# (GNU time: `apt-get install time` if /usr/bin/time is missing). Compare the
# MiB/s with `cargo bench -p rr-pre --bench envelope -- 64MiB` run alongside.
#
#   bash scripts/bench_cli_1gib.sh [SIZE_MIB]      (default 1024)
#
# WORK_DIR=/dev/shm puts the node's data and the files on tmpfs, to separate
# the software's throughput from the disk's.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time" >&2; exit 1; }
cargo build --release --bin rr-node --bin rr >&2
bin=$(pwd)/target/release
work=$(mktemp -d -p "${WORK_DIR:-${TMPDIR:-/tmp}}")
node_pid=
cleanup() {
    [ -n "$node_pid" ] && pkill -TERM -P "$node_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export RR_KEYSTORE=$work/keys RR_PASSPHRASE=benchmark-passphrase

/usr/bin/time -v -o "$work/node.time" "$bin/rr-node" dev --data-dir "$work/node" --listen 127.0.0.1:0 \
    >"$work/node.out" 2>"$work/node.err" &
node_pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/node.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/node.out")
[ -n "$url" ] || { cat "$work/node.err" >&2; exit 1; }
export RR_NODE=$url

"$bin/rr" keys new alice >/dev/null
"$bin/rr" keys new bob >/dev/null
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/record"

secs() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$1"; }

/usr/bin/time -v -o "$work/put.time" "$bin/rr" --as alice --json put "$work/record" >"$work/put.json"
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
record=$(field record_id <"$work/put.json")
grant=$("$bin/rr" --as alice --json grant "$record" --to bob --purpose treatment | field grant_id)
/usr/bin/time -v -o "$work/get.time" "$bin/rr" --as bob get "$grant" -o "$work/out"
cmp "$work/record" "$work/out"

# Stop the node itself (GNU time does not forward signals) and let time report.
pkill -TERM -P "$node_pid" || true
wait "$node_pid" || true
node_pid=

put_s=$(secs "$work/put.time"); get_s=$(secs "$work/get.time")
echo "record: ${size_mib} MiB, bytes equal after get"
awk -v m="$size_mib" -v p="$put_s" -v g="$get_s" 'BEGIN {
    printf "put: %.2f s, %.0f MiB/s\nget: %.2f s, %.0f MiB/s\n", p, m/p, g, m/g }'
echo "cpu (user+sys): rr put $(awk -F": " "/User time/{u=\$2} /System time/{s=\$2} END{print u+s}" "$work/put.time") s, rr get $(awk -F": " "/User time/{u=\$2} /System time/{s=\$2} END{print u+s}" "$work/get.time") s, rr-node (both) $(awk -F": " "/User time/{u=\$2} /System time/{s=\$2} END{print u+s}" "$work/node.time") s"
faults() { awk -F': ' '/Minor .*page faults/ {print $2}' "$1"; }
echo "minor page faults: rr put $(faults "$work/put.time"), rr get $(faults "$work/get.time"), rr-node $(faults "$work/node.time")"
echo "peak RSS: rr put $(rss "$work/put.time") MiB, rr get $(rss "$work/get.time") MiB, rr-node $(rss "$work/node.time") MiB"
