#!/usr/bin/env bash
# Installs what is missing, builds, and starts shellwire on stdio (local backend).
# Extra arguments go to shellwire, e.g. ./run.sh --timeout 60
set -euo pipefail
cd "$(dirname "$0")"
. scripts/deps.sh
sw_deps_build
sw_build -Dwerror=false
exec ./build/shellwire "$@"
