#!/usr/bin/env bash
# Runs the built libFuzzer targets (build/fuzz/fuzz_<name>, from `make
# fuzz-build`) for SECONDS each. Each one runs on a copy of its committed
# corpus fuzz/corpus/<name>/ (with fuzz/http.dict), and what it found that
# adds coverage is merged back into fuzz/corpus/<name>/ at the end (-merge=1),
# ready to commit. Crash, leak, timeout and OOM inputs go to
# build/fuzz/artifacts/<name>-* and are also copied into
# fuzz/corpus/<name>/, where the replay unit tests (tests/unit/fuzz/) run
# them in every `make test`; the script then exits non-zero.
# FUZZ_NO_MERGE=1 skips the merge (the test suite sets it).
#   scripts/fuzz.sh SECONDS [fuzz_<name>|<name> ...]   (default: all targets)
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:?usage: scripts/fuzz.sh SECONDS [fuzz_NAME ...]}
shift
case "$secs" in
    '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number" >&2; exit 2 ;;
esac

bins=()
if [ $# -eq 0 ]; then
    for b in build/fuzz/fuzz_*; do
        [ -f "$b" ] && [ -x "$b" ] && bins+=("$b")
    done
else
    for n in "$@"; do
        n=${n#fuzz_}
        bins+=("build/fuzz/fuzz_$n")
    done
fi
if [ ${#bins[@]} -eq 0 ]; then
    echo "fuzz.sh: no fuzzer built (make fuzz-build)" >&2
    exit 2
fi

# UBSan must stop the run, not just print; leaks are findings too.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}

arts=build/fuzz/artifacts
mkdir -p "$arts"
failed=0
for bin in "${bins[@]}"; do
    name=${bin##*/fuzz_}
    if [ ! -x "$bin" ]; then
        echo "fuzz: $name: $bin is not built"
        failed=1
        continue
    fi
    corpus=fuzz/corpus/$name
    work=build/fuzz/work/$name
    log=build/fuzz/$name.log
    rm -rf "$work"
    mkdir -p "$work" "$corpus"
    cp -R "$corpus"/. "$work"/ 2>/dev/null || true
    dict=()
    [ -f fuzz/http.dict ] && dict=(-dict=fuzz/http.dict)

    "$bin" "${dict[@]}" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$arts/$name-" "$work" \
        > "$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $name: FAILED (exit $rc, ${execs:-?} execs); log $log"
        grep -E 'ERROR|check failed|runtime error|Test unit written' "$log" | head -10
        # Every crash becomes a regression test: the input goes into the
        # committed corpus, which tests/unit/fuzz/<name>_replay_test runs in
        # every `make test` (it fails until the bug is fixed).
        for art in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
            [ -f "$art" ] || continue
            keep="$corpus/$(basename "$art")"
            cp "$art" "$keep"
            echo "fuzz: $name: input kept as $keep: fix the bug, then commit" \
                 "the input with the fix (and a unit test named after its issue)"
        done
        failed=1
        continue
    fi
    if [ -n "${FUZZ_NO_MERGE:-}" ]; then # the test suite: leave the tree alone
        echo "fuzz: $name: ${secs}s, ${execs:-?} execs, clean"
        continue
    fi
    before=$(find "$corpus" -type f | wc -l)
    "$bin" -merge=1 "$corpus" "$work" > "$log.merge" 2>&1 ||
        echo "fuzz: $name: merge failed; log $log.merge"
    after=$(find "$corpus" -type f | wc -l)
    echo "fuzz: $name: ${secs}s, ${execs:-?} execs, clean; corpus $before -> $after files"
done
exit "$failed"
