#!/usr/bin/env bash
# Builds shellwire with AddressSanitizer + UndefinedBehaviorSanitizer using clang
# (build-asan/, or $SANITIZE_BUILD_DIR) and runs the meson test suites `unit` and `stdio`
# against it.
#
# Every sanitized process (the server, the `--landlock-exec` trampoline, the C unit tests)
# writes its reports to files in a private directory (log_path), whatever happens to its
# stderr: the protocol tests keep the server's stderr in a temporary file that they delete.
# The run fails when any report was written, even if every test passed, and the reports are
# printed. UBSan findings abort the process (halt_on_error), so the test that triggered one
# fails too.
#
# Leaks: LeakSanitizer checks at a normal exit. The C unit tests exit normally; the server
# leaves through _exit() after its shutdown, which skips the check, so leaks in the server
# are only found by tests/valgrind.sh.
#
# usage: tests/sanitize.sh [extra meson test arguments, e.g. a test name]
set -uo pipefail
cd "$(dirname "$0")/.."

# clang: with gcc, ASan and UBSan are two runtimes and UBSan ignores log_path (its reports
# only go to stderr, where the protocol tests do not keep them), so a gcc build could pass
# with a report nobody saw. An existing gcc-built build-asan is left alone and a clang
# one is made beside it.
compiler_of() {
    python3 -c 'import json,os,sys; print(os.path.basename(json.load(open(sys.argv[1]))[0]["command"].split()[0]))' \
        "$1/compile_commands.json" 2>/dev/null
}
build=${SANITIZE_BUILD_DIR:-build-asan}
if [ -f "$build/build.ninja" ] && [[ "$(compiler_of "$build")" != clang* ]]; then
    echo "note: $build was configured with $(compiler_of "$build"), not clang; using $build-clang"
    build=$build-clang
fi
if [ ! -f "$build/build.ninja" ]; then
    command -v clang >/dev/null || { echo "clang is needed (apt-get install -y clang)" >&2; exit 2; }
    CC=clang meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null ||
        { echo "meson setup $build failed" >&2; exit 2; }
fi
ninja -C "$build" >"$build/sanitize-build.log" 2>&1 ||
    { tail -30 "$build/sanitize-build.log" >&2; echo "build failed" >&2; exit 2; }

reports=$(mktemp -d "${TMPDIR:-/tmp}/shellwire-sanitize.XXXXXX")
trap 'rm -rf "$reports"' EXIT
common="halt_on_error=1:print_stacktrace=1:symbolize=1"
export ASAN_OPTIONS="$common:detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1:log_path=$reports/asan"
export UBSAN_OPTIONS="$common:log_path=$reports/ubsan"
# Process-lifetime allocations of main() are not leaks: see tests/lsan.supp.
export LSAN_OPTIONS="print_suppressions=0:suppressions=$PWD/tests/lsan.supp"

meson test -C "$build" --suite unit --suite stdio --print-errorlogs --num-processes 2 \
    --timeout-multiplier 3 "$@"
rc=$?

found=0
for f in "$reports"/*; do
    [ -s "$f" ] || continue
    if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: " "$f"; then
        found=1
        echo "=== sanitizer report: $(basename "$f")"
        head -60 "$f"
    fi
done
if [ $found -ne 0 ]; then
    echo "sanitizer reports were written: FAILED"
    exit 1
fi
if [ $rc -ne 0 ]; then
    echo "tests failed under the sanitizers (no sanitizer report): FAILED"
    exit $rc
fi
echo "no sanitizer reports; tests passed"
