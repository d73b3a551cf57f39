#!/usr/bin/env bash
# Runs the benchmarks behind docs/performance.md: the C harness for shellwire and a bare
# bash spawn, then the same echo workload against shellwire and two MCP shell servers from
# npm, measured by one client (compare.mjs). Needs the npm registry. Usage: tests/bench/run.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-500}
ninja -C build shellwire tests/bench >/dev/null
state=$(mktemp -d)
peers=$(mktemp -d)
trap 'rm -rf "$state" "$peers"' EXIT
export SHELLWIRE_STATE_DIR=$state

echo "## shellwire (C harness), N=$n"
echo
build/tests/bench build/shellwire "$n"
echo

echo "## bubblewrap backend (C harness), N=$n"
echo
TERMINAL_ENV=bubblewrap build/tests/bench build/shellwire "$n"
echo

echo "## Same workload, one client (tests/bench/compare.mjs), N=$n"
(cd "$peers" && npm init -y >/dev/null &&
 PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
   @wonderwhy-er/desktop-commander @openai/codex-shell-tool-mcp >/dev/null)
bench() { node tests/bench/compare.mjs "$@"; }
bench --name shellwire --cmd "$PWD/build/shellwire" --tool terminal --args '{"command":"echo hi"}' --n "$n"
bench --name "shellwire 8 concurrent" --cmd "$PWD/build/shellwire" --tool terminal --args '{"command":"echo hi"}' --n "$n" --conc 8
bench --name codex-shell-tool-mcp --cmd "node $peers/node_modules/.bin/codex-shell-tool-mcp" --tool shell \
  --args '{"command":"echo hi","workdir":"/tmp","login":false}' --n "$n" \
  --setup '{"method":"codex/sandbox-state/update","params":{"sandboxPolicy":{"type":"danger-full-access"},"sandboxCwd":"/tmp"}}'
bench --name desktop-commander --cmd "node $peers/node_modules/.bin/desktop-commander" --tool start_process \
  --args '{"command":"echo hi","timeout_ms":5000}' --n 50
