#!/usr/bin/env bash
# Runs protocol test files against the server under valgrind memcheck and fails on any
# memcheck error or definitely lost block.
#
# The normal build (build/, or $VALGRIND_BUILD_DIR; no sanitizers) is built first. The tests
# get SHELLWIRE_BIN pointing to a small wrapper that execs
#   valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite ...
# with one log file per server process. The leak check runs when the server exits, also
# through _exit() after its shutdown. Test failures caused only by valgrind's slowness (a
# deadline of a few hundred milliseconds) are reported but do not fail the run unless
# VALGRIND_STRICT=1; memcheck findings always do.
#
# usage: tests/valgrind.sh [TEST_FILE...] [-- NAME_FILTER...]
#        (default: tests/protocol/test_protocol.py; filters as the test files take them,
#        e.g. tests/valgrind.sh -- CommandLineTests)
# Needs valgrind (apt-get install -y valgrind).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install -y valgrind)" >&2; exit 2; }
build=${VALGRIND_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" >/dev/null || { echo "meson setup $build failed" >&2; exit 2; }
fi
ninja -C "$build" shellwire >/dev/null || { echo "build failed" >&2; exit 2; }

tests=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do tests+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
filters=("$@")          # test name filters, passed to every test file
[ ${#tests[@]} -gt 0 ] || tests=(tests/protocol/test_protocol.py)

work=$(mktemp -d "${TMPDIR:-/tmp}/shellwire-valgrind.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/logs"
# Process-lifetime allocations: the configuration and the commands' environment are made
# once in main() and never freed; when main() returns (--help, --version, --print-tools,
# a configuration error) they are no longer referenced and count as definitely lost.
cat >"$work/shellwire.supp" <<'EOF'
{
   process-lifetime configuration
   Memcheck:Leak
   match-leak-kinds: definite
   ...
   fun:sw_config_load
}
{
   process-lifetime environment of the commands
   Memcheck:Leak
   match-leak-kinds: definite
   ...
   fun:sw_childenv_build
}
{
   PCRE2 JIT code (no symbol, no object file): its SIMD scan reads whole aligned blocks, past the end of the subject string into initialised-never bytes of the same heap block
   Memcheck:Cond
   obj:???
   obj:???
}
EOF
cat >"$work/shellwire" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --quiet --error-exitcode=99 --leak-check=full \\
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=40 \\
    --suppressions="$work/shellwire.supp" \${VALGRIND_ARGS:-} \\
    --log-file="$work/logs/vg.%p.log" "$ROOT/$build/shellwire" "\$@"
EOF
chmod +x "$work/shellwire"

test_rc=0
for t in "${tests[@]}"; do
    echo "== $t under valgrind"
    SHELLWIRE_BIN="$work/shellwire" python3 "$t" ${filters[@]+"${filters[@]}"} >"$work/test.log" 2>&1 ||
        test_rc=1
    grep -E "^(FAIL|ERROR):|passed, .* failed" "$work/test.log" | sed 's/^/   /'
done

servers=0
bad=0
for f in "$work"/logs/vg.*.log; do
    [ -e "$f" ] || continue
    servers=$((servers + 1))
    # --quiet: a log is empty unless memcheck had something to say.
    if grep -qE "==[0-9]+== (Invalid |Conditional jump|Syscall param|Mismatched free|Source and destination overlap|Use of uninitialised|Argument '.*' of function)|definitely lost in" "$f"; then
        bad=$((bad + 1))
        echo "=== memcheck findings in $(basename "$f")"
        head -80 "$f"
    fi
done
killed=$(grep -l "Process terminating with default action of signal 9" "$work"/logs/vg.*.log 2>/dev/null | wc -l)
echo "$servers server processes ran under valgrind; $bad with memcheck findings;" \
     "$killed were SIGKILLed (no leak check for those)"
if [ $bad -ne 0 ]; then
    keep="$ROOT/$build/valgrind-logs"
    rm -rf "$keep" && cp -r "$work/logs" "$keep"
    echo "valgrind: FAILED (all logs kept in $keep)"
    exit 1
fi
if [ $test_rc -ne 0 ]; then
    if [ "${VALGRIND_STRICT:-0}" = 1 ]; then
        echo "valgrind: no memcheck findings, but tests failed (VALGRIND_STRICT=1): FAILED"
        exit 1
    fi
    echo "valgrind: no memcheck findings (some tests failed, likely from valgrind's slowness; see above)"
    exit 0
fi
echo "valgrind: no memcheck findings; tests passed"
