#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder of network and disk bytes
# (rr-fuzz): runs each cargo-fuzz target for a fixed time, one at a time,
# then minimizes what it found into rr-fuzz/corpus/<target>/, copies (and
# minimizes) any crash into rr-fuzz/regressions/<target>/, and prints a
# table: target, seconds, executions, corpus size, new corpus entries,
# crashes.
#
#   bash scripts/fuzz.sh                                  # every target, 600 s each
#   FUZZ_SECS=60 TARGETS="transaction envelope" bash scripts/fuzz.sh
#   FUZZ_SECS=30 bash scripts/fuzz.sh                     # what CI runs
#
# Settings (environment):
#   FUZZ_SECS         seconds per target (default 600)
#   TARGETS           targets to run, space-separated (default: all, from
#                     `cargo fuzz list`)
#   RSS_LIMIT_MB      libFuzzer's memory limit per process (default 2048); a
#                     single allocation over it is a crash too
#   TIMEOUT_SECS      one input taking longer is a crash (default 20)
#   KEEP_GOING=1      fuzz on after a crash (libFuzzer's fork mode) instead of
#                     stopping at the first one
#   NO_CORPUS_UPDATE=1  leave rr-fuzz/corpus/ as it is (CI)
#   CARGO_TARGET_DIR  where the fuzz build goes (default rr-fuzz/fuzz/target)
#   WORK_DIR          scratch: working corpora, logs, artifacts (default: a
#                     new directory under rr-fuzz/fuzz/work/, which git
#                     ignores; it must be on the same file system as rr-fuzz/
#                     for `cargo fuzz cmin`), kept and printed at the end
#
#   FUZZ_TOOLCHAIN    the toolchain cargo-fuzz builds with (default: nightly
#                     if rustup has it, else the default toolchain); one that
#                     is not nightly gets RUSTC_BOOTSTRAP=1: cargo-fuzz passes
#                     unstable flags such as -Zsanitizer (stable rustc ships
#                     the sanitizer runtimes too)
#   FUZZ_SANITIZER    address (default) or none: without the address
#                     sanitizer the build is faster and panics, overflows
#                     (debug assertions are on), timeouts and allocations over
#                     the memory limit are still found (CI's short run)
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`).
# Exits 1 if any target crashed (the crashes are in rr-fuzz/regressions/:
# look at them, fix the bug, and keep the file as a regression case).
set -euo pipefail
# Relative paths in the settings are relative to where this was started.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    CARGO_TARGET_DIR=$(absolute "$CARGO_TARGET_DIR")
    export CARGO_TARGET_DIR
fi
if [ -n "${WORK_DIR:-}" ]; then
    WORK_DIR=$(absolute "$WORK_DIR")
fi
cd "$(dirname "$0")/../rr-fuzz"

FUZZ_SECS=${FUZZ_SECS:-600}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-2048}
TIMEOUT_SECS=${TIMEOUT_SECS:-20}
mkdir -p fuzz/work
WORK_DIR=${WORK_DIR:-$(mktemp -d "$PWD/fuzz/work/$(date +%Y%m%d-%H%M%S).XXXX")}
mkdir -p "$WORK_DIR"

if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    toolchain=(+"$FUZZ_TOOLCHAIN")
elif command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    toolchain=()
fi
case "$(rustc "${toolchain[@]}" --version)" in
    *nightly*) ;;
    *) export RUSTC_BOOTSTRAP=1 ;;
esac
sanitizer=${FUZZ_SANITIZER:-address}
# The fuzz subcommand, then the sanitizer (every subcommand must build alike).
fuzz() {
    local sub=$1
    shift
    case "$sub" in
        build | run | tmin | cmin) cargo "${toolchain[@]}" fuzz "$sub" --sanitizer "$sanitizer" "$@" ;;
        *) cargo "${toolchain[@]}" fuzz "$sub" "$@" ;;
    esac
}
if ! fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is needed: cargo install --locked cargo-fuzz" >&2
    exit 2
fi

target_dir=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    target_dir=(--target-dir "$CARGO_TARGET_DIR")
fi
bin_dir="${CARGO_TARGET_DIR:-$PWD/fuzz/target}/$(rustc "${toolchain[@]}" -vV | sed -n 's/^host: //p')/release"

# The longest input worth trying: small for fixed-size encodings, larger
# where an input holds several messages, chunks or proofs.
max_len() {
    case "$1" in
        umbral_public_key | recrypt_public_key | umbral_capsule | umbral_key_frag | \
            umbral_capsule_frag | recrypt_capsule | recrypt_key_frag | \
            recrypt_capsule_frag | sealed_fragment | keystore_key_file) echo 4096 ;;
        transaction | call | ledger_values | certificate | public_card | cluster_file | \
            signed_fragment) echo 16384 ;;
        *) echo 65536 ;;
    esac
}

sha_list() { # the SHA-1 of every file in $1, sorted
    if [ -d "$1" ] && [ -n "$(ls -A "$1")" ]; then
        (cd "$1" && sha1sum -- * | cut -d' ' -f1 | sort -u)
    fi
}

if [ -n "${TARGETS:-}" ]; then
    read -r -a targets <<<"$TARGETS"
else
    mapfile -t targets < <(fuzz list)
fi

echo "building ${#targets[@]} fuzz targets ($(rustc "${toolchain[@]}" --version), sanitizer: $sanitizer)"
fuzz build "${target_dir[@]}"

rows=()
failed=0
for t in "${targets[@]}"; do
    work="$WORK_DIR/$t"
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts" "$work/minimized" "regressions/$t"
    if [ -d "corpus/$t" ] && [ -n "$(ls -A "corpus/$t")" ]; then
        cp corpus/"$t"/* "$work/corpus/"
    fi
    before=$(sha_list "corpus/$t")
    len=$(max_len "$t")
    flags=(
        -max_total_time="$FUZZ_SECS"
        -rss_limit_mb="$RSS_LIMIT_MB"
        -timeout="$TIMEOUT_SECS"
        -max_len="$len"
        -print_final_stats=1
        -artifact_prefix="$work/artifacts/"
    )
    if [ "${KEEP_GOING:-0}" = 1 ]; then
        flags+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    echo
    echo "=== $t: ${FUZZ_SECS}s (max_len $len) $(date +%T)"
    start=$(date +%s)
    set +e
    fuzz run "${target_dir[@]}" "$t" "$work/corpus" -- "${flags[@]}" \
        >"$work/fuzz.log" 2>&1
    status=$?
    set -e
    secs=$(($(date +%s) - start))
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/fuzz.log" | tail -1 | grep -o '[0-9]*$' || true)
    if [ -z "$execs" ]; then # fork mode: the last status line
        execs=$(grep -oE '^#[0-9]+' "$work/fuzz.log" | tail -1 | tr -d '#' || true)
    fi
    tail -4 "$work/fuzz.log"

    # Each distinct crash (by where it panicked and the first line of its
    # message: fork mode finds the same bug many times), minimized, goes to
    # regressions/.
    crashes=0
    seen=""
    for a in "$work"/artifacts/*; do
        [ -e "$a" ] || continue
        name=$(basename "$a")
        case "$name" in slow-unit-*) continue ;; esac
        crashes=$((crashes + 1))
        what=$("$bin_dir/$t" -runs=1 -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_SECS" "$a" 2>&1 |
            grep -m1 -A1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" | sed -E 's/thread .* panicked/panicked/; s/==[0-9]+==//g; s/0x[0-9a-f]+//g' | tr '\n' ' ' || true)
        [ -n "$what" ] || what="$name"
        if grep -qxF -- "$what" <<<"$seen"; then
            continue
        fi
        seen="$seen"$'\n'"$what"
        echo "--- $t: $name: $what"
        case "$name" in
            crash-* | leak-*)
                # tmin writes minimized-from-<hash> under the artifact prefix.
                fuzz tmin "${target_dir[@]}" --runs 2000 "$t" "$a" -- \
                    -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_SECS" \
                    -artifact_prefix="$work/minimized/" \
                    >"$work/tmin-$name.log" 2>&1 || true
                small=$(ls -t "$work"/minimized/minimized-from-* 2>/dev/null | head -1 || true)
                if [ -n "$small" ]; then
                    cp "$small" "regressions/$t/$name"
                    rm -f "$small"
                else
                    cp "$a" "regressions/$t/$name"
                fi
                ;;
            *) cp "$a" "regressions/$t/$name" ;; # timeouts, OOMs: as found
        esac
    done
    distinct=$(grep -c . <<<"$seen" || true)
    if [ "$crashes" -gt 0 ] || { [ "$status" -ne 0 ] && [ "${KEEP_GOING:-0}" != 1 ]; }; then
        failed=1
    fi

    if [ "${NO_CORPUS_UPDATE:-0}" != 1 ]; then
        # A set cover of the edges (not of hit counts): the smallest corpus
        # that keeps the coverage, a few hundred files at most.
        fuzz cmin "${target_dir[@]}" "$t" "$work/corpus" -- \
            -set_cover_merge=1 -use_counters=0 \
            -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_SECS" -max_len="$len" \
            >"$work/cmin.log" 2>&1 || echo "cmin failed: see $work/cmin.log"
        if [ -n "$(ls -A "$work/corpus")" ]; then
            rm -rf "corpus/$t"
            mkdir -p "corpus/$t"
            cp "$work"/corpus/* "corpus/$t/"
        fi
    fi
    after=$(sha_list "corpus/$t")
    new=$(comm -13 <(echo "$before") <(echo "$after") | grep -c . || true)
    size=$(echo "$after" | grep -c . || true)
    rows+=("$t|$secs|${execs:-?}|$size|$new|$crashes|$distinct")
done

echo
echo "| target | seconds | executions | corpus | new entries | crashes | distinct |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
    IFS='|' read -r t secs execs size new crashes distinct <<<"$r"
    echo "| $t | $secs | $execs | $size | $new | $crashes | $distinct |"
done
echo
echo "logs, working corpora and artifacts: $WORK_DIR"
if [ "$failed" = 1 ]; then
    echo "crashes were found: see rr-fuzz/regressions/ and the logs above" >&2
    exit 1
fi
