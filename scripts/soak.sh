#!/usr/bin/env bash
# Issue #13's soak run (not in CI): a 4-replica `rr-node localnet` cluster of
# real processes under a steady load of put + grant + retrieve flows (1 KiB
# records, open loop at half the measured peak), first without faults
# (phase A), then while replicas are killed with SIGKILL and restarted, and
# one is paused with SIGSTOP (phase B). At the end every acknowledged record
# and grant is looked up on every replica, the replicas' certified heads are
# compared, and a markdown table of the figures is printed.
#
#   bash scripts/soak.sh                      # 2 min baseline, 10 min of faults
#   SOAK_MINUTES=3 KILL_EVERY=60 PAUSE_SECS=15 BASELINE_SECS=60 bash scripts/soak.sh   # a trial
#
# Settings (environment):
#   SOAK_MINUTES   length of phase B (default 10)
#   BASELINE_SECS  length of phase A (default 120)
#   KILL_EVERY     seconds between kills in phase B (default 120); the first
#                  comes KILL_EVERY/2 into it. Kills alternate between the
#                  current primary and a backup (rotating).
#   RESTART_AFTER  seconds a killed replica stays down (default 20)
#   PAUSE_SECS     how long the one SIGSTOP lasts (default 40)
#   PAUSE_TARGET   primary, backup, or a replica number (default primary)
#   RATE           flows/s to offer; default: half of the peak measured first
#   PEAK_SECS      length of the peak measurement (default 20)
#   PEAK_CLIENTS   clients of the peak measurement's closed loop (default 8)
#   DEADLINE_MS    deadline of one request to one replica (default 5000)
#   ORDER_TIMEOUT_MS  how long a call may wait to be ordered (default 20000)
#   WORK_DIR       where the cluster, logs and JSONL files go (default: a new
#                  temporary directory, removed after a passing run unless KEEP=1)
#
# Exits non-zero if an acknowledged record or grant is missing on a replica,
# if the replicas do not agree, or if a retrieval decrypted to other bytes;
# latency and stall targets are reported, not enforced. Every process it
# started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_MINUTES=${SOAK_MINUTES:-10}
BASELINE_SECS=${BASELINE_SECS:-120}
KILL_EVERY=${KILL_EVERY:-120}
RESTART_AFTER=${RESTART_AFTER:-20}
PAUSE_SECS=${PAUSE_SECS:-40}
PAUSE_TARGET=${PAUSE_TARGET:-primary}
PEAK_SECS=${PEAK_SECS:-20}
PEAK_CLIENTS=${PEAK_CLIENTS:-8}
DEADLINE_MS=${DEADLINE_MS:-5000}
ORDER_TIMEOUT_MS=${ORDER_TIMEOUT_MS:-20000}
N=4

say() { echo "[soak $(date +%H:%M:%S)] $*" >&2; }
now_ms() { date +%s%3N; }

say "building (cargo build --release --bin rr-node --example soak -p rr-node)"
cargo build --release --bin rr-node --example soak -p rr-node >&2
target=${CARGO_TARGET_DIR:-target}
bin=$(cd "$target/release" && pwd)
rr_node=$bin/rr-node
soak=$bin/examples/soak

if [ -n "${WORK_DIR:-}" ]; then
    mkdir -p "$WORK_DIR"
    work=$(cd "$WORK_DIR" && pwd)
    keep=1
else
    work=$(mktemp -d -t rr-soak.XXXXXX)
    keep=${KEEP:-0}
fi
cluster_dir=$work/cluster
cluster_json=$cluster_dir/cluster.json
faults=$work/faults.jsonl
heights=$work/heights.jsonl
: >"$faults"
: >"$heights"

localnet_pid=
gen_pid=
mon_pid=
declare -a pid api cfg log
passed=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$gen_pid" ] && kill "$gen_pid" 2>/dev/null || true
    [ -n "$mon_pid" ] && kill "$mon_pid" 2>/dev/null || true
    # A paused replica must run again to act on SIGTERM.
    for p in "${pid[@]:-}"; do [ -n "$p" ] && kill -CONT "$p" 2>/dev/null || true; done
    # localnet stops the replicas it started; the ones restarted by hand are ours.
    [ -n "$localnet_pid" ] && kill -TERM "$localnet_pid" 2>/dev/null || true
    for p in "${pid[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for p in "$localnet_pid" "${pid[@]:-}"; do
            [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "$localnet_pid" "${pid[@]:-}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    if [ "$passed" = 1 ] && [ "$keep" != 1 ]; then
        rm -rf "$work"
    else
        say "data, logs and JSONL files kept in $work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
say "starting a $N-replica cluster in $cluster_dir"
"$rr_node" localnet --replicas "$N" --data-dir "$cluster_dir" --base-port 0 \
    >"$work/localnet.out" 2>"$work/localnet.err" &
localnet_pid=$!
for _ in $(seq 900); do
    grep -q '^cluster ready' "$work/localnet.out" 2>/dev/null && break
    kill -0 "$localnet_pid" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q '^cluster ready' "$work/localnet.out" 2>/dev/null; then
    echo "the cluster never started (rr-node localnet: $( kill -0 "$localnet_pid" 2>/dev/null && echo 'still waiting after 90 s' || echo 'exited'))." >&2
    echo "--- localnet's stderr:" >&2
    tail -n 20 "$work/localnet.err" >&2 || true
    for f in "$cluster_dir"/replica-*/node.log; do
        [ -f "$f" ] && { echo "--- $f:" >&2; tail -n 5 "$f" >&2; }
    done
    exit 1
fi
while read -r i p a c l; do
    pid[$i]=$p; api[$i]=$a; cfg[$i]=$c; log[$i]=$l
done < <("$soak" members --cluster "$cluster_json")
for i in $(seq 0 $((N - 1))); do say "replica $i: pid ${pid[$i]} ${api[$i]}"; done
# localnet serves the APIs over TLS from a CA of its own (ca.pem).
cacert=()
[ -f "$cluster_dir/ca.pem" ] && cacert=(--cacert "$cluster_dir/ca.pem")

net=(--cluster "$cluster_json" --deadline-ms "$DEADLINE_MS" --order-timeout-ms "$ORDER_TIMEOUT_MS")

# The current view: the one most replicas report in `GET /v1/info`
# (`status.view`), or, from a node that does not report it, the newest view
# any replica's log says it entered. The primary is replica (view mod n).
# Sets view and view_from.
current_view() {
    local v i
    v=$(for i in $(seq 0 $((N - 1))); do
            { curl -sf --max-time 1 ${cacert[@]+"${cacert[@]}"} "${api[$i]}/v1/info" 2>/dev/null; echo; } |
                sed -n 's/.*"view":\([0-9][0-9]*\).*/\1/p'
        done | sort -n | uniq -c | sort -k1,1nr -k2,2nr | awk 'NR == 1 { print $2 }') || true
    if [ -n "$v" ]; then
        view=$((10#$v)); view_from=info
        return
    fi
    v=$(cat "${log[@]}" 2>/dev/null |
        sed -n -e 's/.*entering view.*[ ]view=\([0-9][0-9]*\).*/\1/p' \
               -e 's/.*pbft replica starting.*[ ]view=\([0-9][0-9]*\).*/\1/p' |
        sort -n | tail -n 1) || true
    view=$((10#${v:-0})); view_from=logs
}

sleep_until() { # unix ms
    local left=$(( $1 - $(now_ms) ))
    [ "$left" -gt 0 ] && sleep "$(awk -v ms="$left" 'BEGIN { printf "%.3f", ms / 1000 }')"
    return 0
}

wait_up() { # replica, timeout s: prints the unix ms it answered at, or nothing
    local deadline=$(( $(now_ms) + $2 * 1000 ))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        if curl -sf --max-time 1 ${cacert[@]+"${cacert[@]}"} "${api[$1]}/v1/info" >/dev/null 2>&1; then
            now_ms
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Every replica's height and view (`GET /v1/info`), about every second, for
# the catch-up times in the report.
monitor() {
    local i t j h v
    while :; do
        for i in $(seq 0 $((N - 1))); do
            t=$(now_ms)
            j=$(curl -sf --max-time 1 ${cacert[@]+"${cacert[@]}"} "${api[$i]}/v1/info" 2>/dev/null) || j=
            h=$(printf '%s\n' "$j" | sed -n 's/.*"height":\([0-9][0-9]*\).*/\1/p')
            v=$(printf '%s\n' "$j" | sed -n 's/.*"view":\([0-9][0-9]*\).*/\1/p')
            [ -n "$h" ] && printf '{"t_ms":%d,"replica":%d,"height":%d,"view":%s}\n' \
                "$t" "$i" "$((10#$h))" "${v:-null}" >>"$heights"
        done
        sleep 1
    done
}

generator_alive() { [ -n "$gen_pid" ] && kill -0 "$gen_pid" 2>/dev/null; }

monitor &
mon_pid=$!

# ---------------------------------------------------------------------------
peak=
if [ -n "${RATE:-}" ]; then
    rate=$RATE
    say "offered load: RATE=$rate flows/s"
else
    say "finding the peak: $PEAK_CLIENTS clients in a closed loop for $PEAK_SECS s"
    peak=$("$soak" load "${net[@]}" --find-peak "$PEAK_SECS" --concurrency "$PEAK_CLIENTS" \
        --out "$work/ops-peak.jsonl" | tail -n 1)
    rate=$(awk -v p="$peak" 'BEGIN { r = p / 2; if (r < 0.2) r = 0.2; printf "%.3f", r }')
    say "peak $peak flows/s; offering half: $rate flows/s"
    sleep 5 # let the pipeline drain before the baseline
fi

say "phase A: no faults, $BASELINE_SECS s at $rate flows/s"
"$soak" load "${net[@]}" --phase A --seconds "$BASELINE_SECS" --rate "$rate" --out "$work/ops-A.jsonl"

# ---------------------------------------------------------------------------
b_secs=$(( SOAK_MINUTES * 60 ))
say "phase B: $b_secs s at $rate flows/s; kill -9 every $KILL_EVERY s (down $RESTART_AFTER s), one SIGSTOP of $PAUSE_SECS s"
"$soak" load "${net[@]}" --phase B --seconds "$b_secs" --rate "$rate" --out "$work/ops-B.jsonl" &
gen_pid=$!
t0=$(now_ms)

# Kill times: KILL_EVERY/2, then every KILL_EVERY, while the restart fits.
kills=()
t=$(( KILL_EVERY / 2 ))
while [ $(( t + RESTART_AFTER )) -lt "$b_secs" ]; do kills+=("$t"); t=$(( t + KILL_EVERY )); done
# The pause: after the middle kill's restart, centred in the gap before the next kill.
pause_after=-1
pause_at=
if [ "${#kills[@]}" -gt 0 ]; then
    mid=$(( (${#kills[@]} - 1) / 2 ))
    gap=$(( KILL_EVERY - RESTART_AFTER - PAUSE_SECS ))
    if [ "$gap" -ge 10 ]; then
        pause_after=$mid
        pause_at=$(( kills[mid] + RESTART_AFTER + gap / 2 ))
    else
        say "note: no room for a ${PAUSE_SECS} s pause between kills $KILL_EVERY s apart (restart after $RESTART_AFTER s); no pause"
    fi
else
    say "note: phase B is too short for a kill"
fi

backup_turn=0
for k in "${!kills[@]}"; do
    sleep_until $(( t0 + kills[k] * 1000 ))
    generator_alive || { say "the load generator exited early"; break; }
    current_view
    primary=$(( view % N ))
    if [ $(( k % 2 )) -eq 0 ]; then
        r=$primary; role=primary
    else
        r=$(( (primary + 1 + backup_turn % (N - 1)) % N )); role=backup
        backup_turn=$(( backup_turn + 1 ))
    fi
    start=$(now_ms)
    kill -9 "${pid[$r]}" 2>/dev/null || say "replica $r (pid ${pid[$r]}) was not running"
    say "kill -9 replica $r ($role, view $view from $view_from, pid ${pid[$r]})"
    sleep_until $(( start + RESTART_AFTER * 1000 ))
    restart=$(now_ms)
    "$rr_node" run --config "${cfg[$r]}" >>"${log[$r]}" 2>&1 &
    pid[$r]=$!
    disown "${pid[$r]}" # no "Killed" notice when the next kill hits it; cleanup stops it by pid
    up=$(wait_up "$r" 60 || true)
    if [ -n "$up" ]; then
        say "replica $r restarted (pid ${pid[$r]}), answering after $(( up - restart )) ms"
    else
        say "replica $r did not answer within 60 s of its restart; see ${log[$r]}"
        up=$(now_ms)
    fi
    printf '{"kind":"kill","replica":%d,"role":"%s","view":%d,"start_ms":%d,"restart_ms":%d,"end_ms":%d}\n' \
        "$r" "$role" "$view" "$start" "$restart" "$up" >>"$faults"

    if [ "$k" -eq "$pause_after" ]; then
        sleep_until $(( t0 + pause_at * 1000 ))
        generator_alive || { say "the load generator exited early"; break; }
        current_view
        primary=$(( view % N ))
        case "$PAUSE_TARGET" in
            primary) r=$primary; role=primary ;;
            backup) r=$(( (primary + 1) % N )); role=backup ;;
            *) r=$PAUSE_TARGET; [ "$r" -eq "$primary" ] && role=primary || role=backup ;;
        esac
        start=$(now_ms)
        kill -STOP "${pid[$r]}" 2>/dev/null || say "replica $r (pid ${pid[$r]}) is not running"
        say "SIGSTOP replica $r ($role, view $view from $view_from) for $PAUSE_SECS s"
        sleep_until $(( start + PAUSE_SECS * 1000 ))
        kill -CONT "${pid[$r]}" 2>/dev/null || true
        end=$(now_ms)
        say "SIGCONT replica $r"
        printf '{"kind":"pause","replica":%d,"role":"%s","view":%d,"start_ms":%d,"end_ms":%d}\n' \
            "$r" "$role" "$view" "$start" "$end" >>"$faults"
    fi
done
gen_rc=0
wait "$gen_pid" || gen_rc=$?
gen_pid=
[ "$gen_rc" -eq 0 ] || say "the phase B load generator exited with $gen_rc"
current_view
say "view at the end: $view (from $view_from)"

for i in $(seq 0 $((N - 1))); do
    if ! kill -0 "${pid[$i]}" 2>/dev/null; then
        say "replica $i (pid ${pid[$i]}) is not running; the end of ${log[$i]}:"
        tail -n 5 "${log[$i]}" >&2 || true
    fi
done

# ---------------------------------------------------------------------------
say "checking every acknowledged record and grant on every replica"
check_rc=0
"$soak" check "${net[@]}" --ops "$work/ops-peak.jsonl" --ops "$work/ops-A.jsonl" \
    --ops "$work/ops-B.jsonl" --faults "$faults" --heights "$heights" --rate "$rate" ${peak:+--peak "$peak"} \
    --report "$work/report.md" || check_rc=$?
if [ "$check_rc" -eq 0 ] && [ "$gen_rc" -eq 0 ]; then
    passed=1
    say "PASS"
else
    say "FAIL (check exit $check_rc, generator exit $gen_rc)"
    exit 1
fi
