#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -Dfuzz=true, in build-fuzz/ unless FUZZ_BUILD_DIR says
# otherwise) and runs each for SECONDS over its seed corpus in tests/fuzz/corpus/<target>/.
# New corpus entries go to a temporary directory, never into the repository; crash, leak
# and timeout inputs are kept in <build>/fuzz-artifacts/ for reproduction:
#   <build>/tests/fuzz/<target> <build>/fuzz-artifacts/<file>
# Exits non-zero when any target finds a crash, a leak, a hang or a sanitizer report.
#
# usage: tests/fuzz/run.sh SECONDS [TARGET...]       (default: every target)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

secs=${1:-}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_rpc fuzz_output fuzz_guard fuzz_docker_stream fuzz_http)

build=${FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" -Dfuzz=true >/dev/null || { echo "meson setup failed" >&2; exit 2; }
elif ! meson introspect --buildoptions "$build" 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(0 if any(o["name"] == "fuzz" and o["value"] for o in json.load(sys.stdin)) else 1)'; then
    meson configure "$build" -Dfuzz=true >/dev/null || exit 2
fi
ninja_targets=()
for t in "${targets[@]}"; do ninja_targets+=("tests/fuzz/$t"); done
if ! ninja -C "$build" "${ninja_targets[@]}" >"$build/fuzz-build.log" 2>&1; then
    tail -30 "$build/fuzz-build.log" >&2
    echo "fuzz build failed (is the build directory configured with CC=clang?)" >&2
    exit 2
fi

artifacts="$ROOT/$build/fuzz-artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/shellwire-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Leaks and every sanitizer report are fatal; libFuzzer turns them into a non-zero exit.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

failed=0
summary=()
for t in "${targets[@]}"; do
    bin="$build/tests/fuzz/$t"
    seeds="tests/fuzz/corpus/$t"
    new="$work/$t"
    mkdir -p "$new"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$artifacts/$t-")
    [ -f "tests/fuzz/dict/$t.dict" ] && args+=(-dict="tests/fuzz/dict/$t.dict")
    [ "$t" = fuzz_rpc ] && args+=(-max_len=8192)
    log="$work/$t.log"
    echo "== $t: ${secs}s over $(ls "$seeds" 2>/dev/null | wc -l) seeds"
    "$bin" "${args[@]}" "$new" "$seeds" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    added=$(ls "$new" | wc -l)
    report=$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant failed|SUMMARY:' "$log" | head -5)
    if [ $rc -ne 0 ] || [ -n "$report" ]; then
        failed=1
        echo "   FAILED (exit $rc): ${execs:-?} execs, ${cov:-cov: ?}"
        echo "$report" | sed 's/^/   /'
        grep -E "^(artifact_prefix|Test unit written)" "$log" | sed 's/^/   /'
        cp "$log" "$artifacts/$t.log"
        echo "   full log: $artifacts/$t.log"
        summary+=("$(printf '%-20s FAILED  %12s execs' "$t" "${execs:-?}")")
    else
        echo "   ok: ${execs:-?} execs, ${cov:-cov: ?}, $added new corpus entries (discarded)"
        summary+=("$(printf '%-20s ok      %12s execs  %s' "$t" "${execs:-?}" "${cov:-}")")
    fi
done
echo
printf '%s\n' "${summary[@]}"
exit $failed
