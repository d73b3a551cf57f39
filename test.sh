#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/deps.sh
sw_deps_test
sw_build -Dwerror=true
meson test -C build --print-errorlogs --num-processes 2 "$@"
