#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/deps.sh
sw_deps_test
sw_build -Dwerror=true
rc=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || rc=$?
# One closing line for the whole suite, summed over the test programs' own counts.
log=build/meson-logs/testlog.txt
if [ -f "$log" ]; then
    grep -hoE '^(# )?(pass|fail) [0-9]+$|^[0-9]+ passed, [0-9]+ failed' "$log" | awk '
        /passed,/ { p += $1; f += $3 }
        /^# pass/ { p += $3 } /^# fail/ { f += $3 }
        END { printf "%d passed, %d failed\n", p, f }'
fi
exit "$rc"
