#!/usr/bin/env python3
"""Client material tests (Python standard library only).

1. Every clients/fixtures/NAME.jsonl is fed to a fresh shellwire (stdin closed afterwards)
   and its answers are compared with clients/fixtures/NAME.expected.json.
2. The Node client (clients/node/shellwire-client.mjs, official MCP SDK) one-shot `call` and
   `list`, and its interactive mode driven through stdin.
3. The Python client (clients/python/shellwire_client.py) one-shot, interactive, replay and
   as a library.

    SHELLWIRE_BIN=build/shellwire python3 tests/clients/test_clients.py [-v] [-k SUBSTRING]
    python3 tests/clients/test_clients.py --dump clients/fixtures/NAME.jsonl   # show answers

Each server runs in a private scratch directory with its own SHELLWIRE_STATE_DIR. Ends with
"N passed, M failed" and a non-zero exit status when anything failed.

Expected-file format (see also clients/README.md):
  {"responses": {"<id as JSON>": EXPECTED or [EXPECTED, ...]}, "notifications": [EXPECTED...]}
Responses are keyed by their id written as JSON ("1", "\\"abc\\"", "null"); a list holds all
responses with that id, in any order. `jsonrpc` and `id` are checked, then dropped. For a
tool result the text content must be exactly the JSON of structuredContent, and `content` is
dropped before comparing (unless the expectation lists it). Objects must have exactly the
expected keys. Strings in an expectation may be matchers:
  "<any>" "<int>" "<number>" "<string>" "<nonempty>" "<bool>" "<session_id>" "<timestamp>"
  "re:PATTERN"     a string in which the regular expression PATTERN is found
  "{{ID.key}}"     the value of `key` in the structured result of the answer to request ID
Everything else compares exactly (true is not 1). Notifications are matched in order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = Path(os.environ.get("SHELLWIRE_SRC") or HERE.parent.parent).resolve()
BIN = Path(os.environ.get("SHELLWIRE_BIN") or SRC / "build" / "shellwire").resolve()
FIXTURES = SRC / "clients" / "fixtures"
NODE_CLIENT = SRC / "clients" / "node" / "shellwire-client.mjs"
PY_CLIENT = SRC / "clients" / "python" / "shellwire_client.py"
FIXTURE_TIMEOUT = 60.0   # seconds for a whole fixture
CLIENT_TIMEOUT = 60.0    # seconds for one client run

VERBOSE = False
SCRATCH = Path(tempfile.mkdtemp(prefix="shellwire-clients-test-")).resolve()

# ----------------------------------------------------------------------------------- helpers


def server_env(name: str) -> tuple[dict, Path]:
    """Environment and working directory for one server: the caller's environment minus
    shellwire's own settings, plus a private state directory."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=SCRATCH))
    state = work / ".state"
    state.mkdir(mode=0o700)
    env["SHELLWIRE_STATE_DIR"] = str(state)
    env["SHELLWIRE_BIN"] = str(BIN)
    return env, work


PLACEHOLDER = re.compile(r"\{\{\s*([^.{}\s]+)\.([A-Za-z0-9_]+)\s*\}\}")


def structured_of(response: dict | None) -> dict:
    result = (response or {}).get("result")
    if not isinstance(result, dict):
        return {}
    sc = result.get("structuredContent")
    return sc if isinstance(sc, dict) else {}


def lookup(answers: dict, rid: str, key: str):
    if rid not in answers:
        raise KeyError(f"{{{{{rid}.{key}}}}}: request {rid} has no answer")
    sc = structured_of(answers[rid])
    if key not in sc:
        raise KeyError(f"{{{{{rid}.{key}}}}}: the answer to {rid} has no {key!r}")
    return sc[key]


def fill_line(line: str, answers: dict) -> str:
    """Fills {{ID.key}} placeholders of a fixture line (inside JSON strings)."""
    def repl(m):
        value = lookup(answers, m.group(1), m.group(2))
        return json.dumps(value)[1:-1] if isinstance(value, str) else json.dumps(value)
    return PLACEHOLDER.sub(repl, line)


def feed_fixture(path: Path, env: dict, cwd: Path) -> tuple[list, int, str]:
    """Runs one fixture through a fresh server. Lines go in as they are, except that a line
    with a {{ID.key}} placeholder waits until every earlier request has been answered. stdin
    is closed after the last line; returns (messages, exit status, stderr)."""
    proc = subprocess.Popen([str(BIN)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cwd)
    cond = threading.Condition()
    messages: list = []
    answers: dict = {}
    outstanding: set = set()
    stderr_chunks: list = []

    def read_stdout():
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace")
            try:
                msg = json.loads(text)
            except ValueError:
                msg = {"__unparsable__": text}
            with cond:
                messages.append(msg)
                if isinstance(msg, dict) and "id" in msg and "method" not in msg:
                    answers[str(msg["id"])] = msg
                    outstanding.discard(json.dumps(msg["id"]))
                cond.notify_all()
        with cond:
            outstanding.clear()
            cond.notify_all()

    def read_stderr():
        stderr_chunks.append(proc.stderr.read().decode("utf-8", "replace"))

    threads = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=read_stderr, daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + FIXTURE_TIMEOUT
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if PLACEHOLDER.search(line):
                with cond:
                    if not cond.wait_for(lambda: not outstanding, deadline - time.monotonic()):
                        raise AssertionError(f"unanswered before a placeholder line: {sorted(outstanding)}")
                    line = fill_line(line, answers)
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and "method" in msg and msg.get("id") is not None:
                with cond:
                    outstanding.add(json.dumps(msg["id"]))
            proc.stdin.write(line.encode("utf-8") + b"\n")
            proc.stdin.flush()
        proc.stdin.close()
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    for t in threads:
        t.join(timeout=5)
    return messages, rc, "".join(stderr_chunks)


# ---------------------------------------------------------------------------------- matching

TYPE_MATCHERS = {
    "<any>": lambda v: True,
    "<int>": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "<number>": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "<string>": lambda v: isinstance(v, str),
    "<nonempty>": lambda v: isinstance(v, str) and v != "",
    "<bool>": lambda v: isinstance(v, bool),
    "<session_id>": lambda v: isinstance(v, str) and re.fullmatch(r"proc_[0-9a-f]{12}", v) is not None,
    "<timestamp>": lambda v: isinstance(v, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)", v) is not None,
}


def short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + "..."


def match(expected, actual, where: str, answers: dict, errors: list) -> None:
    if isinstance(expected, str):
        whole = PLACEHOLDER.fullmatch(expected)
        try:
            if whole:
                expected = lookup(answers, whole.group(1), whole.group(2))
            elif PLACEHOLDER.search(expected):
                expected = PLACEHOLDER.sub(
                    lambda m: str(lookup(answers, m.group(1), m.group(2))), expected)
        except KeyError as exc:
            errors.append(f"{where}: {exc}")
            return
    if isinstance(expected, str) and expected in TYPE_MATCHERS:
        if not TYPE_MATCHERS[expected](actual):
            errors.append(f"{where}: expected {expected}, got {short(actual)}")
    elif isinstance(expected, str) and expected.startswith("re:"):
        if not isinstance(actual, str) or not re.search(expected[3:], actual):
            errors.append(f"{where}: expected a string matching /{expected[3:]}/, got {short(actual)}")
    elif isinstance(expected, dict):
        if not isinstance(actual, dict):
            errors.append(f"{where}: expected an object, got {short(actual)}")
            return
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing:
            errors.append(f"{where}: missing keys {missing} in {short(actual)}")
        if extra:
            errors.append(f"{where}: unexpected keys {extra} in {short(actual)}")
        for key in expected:
            if key in actual:
                match(expected[key], actual[key], f"{where}.{key}", answers, errors)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            errors.append(f"{where}: expected a list of {len(expected)}, got {short(actual)}")
            return
        for i, (e, a) in enumerate(zip(expected, actual)):
            match(e, a, f"{where}[{i}]", answers, errors)
    elif expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        errors.append(f"{where}: expected {short(expected)}, got {short(actual)}")


def normalize_response(msg: dict, expected, where: str, errors: list) -> dict:
    """Checks the framing of a response and the text/structured agreement of a tool result;
    returns the part that is compared with the expectation."""
    out = {k: v for k, v in msg.items() if k not in ("jsonrpc", "id")}
    result = out.get("result")
    wants_content = isinstance(expected, dict) and isinstance(expected.get("result"), dict) \
        and "content" in expected["result"]
    if isinstance(result, dict) and "structuredContent" in result and not wants_content:
        content = result.get("content")
        if not (isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict)
                and content[0].get("type") == "text"):
            errors.append(f"{where}: content is not one text item: {short(content)}")
        else:
            try:
                if json.loads(content[0].get("text", "")) != result["structuredContent"]:
                    errors.append(f"{where}: content text differs from structuredContent")
            except ValueError:
                errors.append(f"{where}: content text is not JSON")
        result = {k: v for k, v in result.items() if k != "content"}
        out["result"] = result
    return out


def match_group(expected: list, actual: list, where: str, answers: dict) -> list:
    """Matches responses sharing one id in any order (small lists: plain backtracking)."""
    if len(expected) != len(actual):
        return [f"{where}: expected {len(expected)} response(s), got {len(actual)}: "
                f"{short(actual)}"]
    fits = [[not _errors_of(e, a, answers) for a in actual] for e in expected]
    used = [False] * len(actual)

    def assign(i: int) -> bool:
        if i == len(expected):
            return True
        for j in range(len(actual)):
            if not used[j] and fits[i][j]:
                used[j] = True
                if assign(i + 1):
                    return True
                used[j] = False
        return False

    if assign(0):
        return []
    # Report against the arrival order, which usually is the intended one.
    errors: list = []
    for i, (e, a) in enumerate(zip(expected, actual)):
        match(e, a, f"{where}[{i}]", answers, errors)
    return errors or [f"{where}: no one-to-one matching of the responses"]


def _errors_of(expected, actual, answers) -> list:
    errors: list = []
    match(expected, actual, "", answers, errors)
    return errors


def compare_fixture(messages: list, expectation: dict) -> list:
    errors: list = []
    answers: dict = {}
    groups: dict = {}
    notifications: list = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "__unparsable__" in msg:
            errors.append(f"line {i + 1} of the output is not a JSON object: {short(msg)}")
            continue
        if msg.get("jsonrpc") != "2.0":
            errors.append(f"line {i + 1}: jsonrpc is not \"2.0\": {short(msg)}")
        if "method" in msg:
            if "id" in msg:
                errors.append(f"line {i + 1}: unexpected request from the server: {short(msg)}")
            else:
                notifications.append({k: v for k, v in msg.items() if k != "jsonrpc"})
            continue
        if "id" not in msg:
            errors.append(f"line {i + 1}: a response without id: {short(msg)}")
            continue
        if ("result" in msg) == ("error" in msg):
            errors.append(f"line {i + 1}: a response needs exactly one of result/error: {short(msg)}")
        key = json.dumps(msg["id"])
        groups.setdefault(key, []).append(msg)
        answers[str(msg["id"])] = msg
    want = expectation.get("responses", {})
    for key, exp in want.items():
        got = groups.get(key, [])
        exp_list = exp if isinstance(exp, list) else [exp]
        if not got:
            errors.append(f"response {key}: missing")
            continue
        norm = [normalize_response(m, exp_list[0], f"response {key}", errors) for m in got]
        if isinstance(exp, list):
            errors += match_group(exp, norm, f"response {key}", answers)
        elif len(norm) != 1:
            errors.append(f"response {key}: {len(norm)} responses, expected one")
        else:
            match(exp, norm[0], f"response {key}", answers, errors)
    for key in groups:
        if key not in want:
            errors.append(f"response {key}: not expected: {short(groups[key])}")
    exp_notes = expectation.get("notifications", [])
    if len(notifications) != len(exp_notes):
        errors.append(f"expected {len(exp_notes)} notification(s), got {len(notifications)}: "
                      f"{short(notifications)}")
    else:
        for i, (e, a) in enumerate(zip(exp_notes, notifications)):
            match(e, a, f"notification {i}", answers, errors)
    return errors


# ---------------------------------------------------------------------------------- registry

TESTS: list = []


def test(name: str):
    def register(fn):
        TESTS.append((name, fn))
        return fn
    return register


def run(cmd: list, env: dict, cwd: Path, stdin: str | None = None,
        timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin if stdin is not None else "", capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


def explain(proc: subprocess.CompletedProcess) -> str:
    return (f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}"
            f"\n--- stderr ---\n{proc.stderr[-3000:]}")


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


# ---------------------------------------------------------------------------------- fixtures

def fixture_test(path: Path):
    def body():
        expected_path = path.with_name(path.stem + ".expected.json")
        expect(expected_path.exists(), f"no expectations: {expected_path} is missing")
        expectation = json.loads(expected_path.read_text(encoding="utf-8"))
        env, work = server_env(f"fixture-{path.stem}")
        t0 = time.monotonic()
        messages, rc, stderr = feed_fixture(path, env, work)
        elapsed = time.monotonic() - t0
        errors = compare_fixture(messages, expectation)
        if rc != 0:
            errors.append(f"server exit status {rc} after stdin closed (expected 0)")
        if errors:
            raise AssertionError("\n".join(errors) + f"\n--- server stderr (tail) ---\n{stderr[-2000:]}")
        if VERBOSE:
            print(f"    {len(messages)} messages, {elapsed:.1f} s")
    return body


for _fixture in sorted(FIXTURES.glob("*.jsonl")):
    test(f"fixture {_fixture.name}")(fixture_test(_fixture))

# ---------------------------------------------------------------------------------- node client


def node_cmd(*args: str) -> list:
    return ["node", str(NODE_CLIENT), *args]


def need_node() -> None:
    expect(shutil.which("node") is not None, "node is not installed")
    expect((NODE_CLIENT.parent / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(),
           f"the SDK is not installed: run `npm ci` in {NODE_CLIENT.parent}")


@test("node client: one-shot call terminal")
def _():
    need_node()
    env, work = server_env("node-call")
    p = run(node_cmd("call", "terminal", '{"command":"echo node-$((20+22)); pwd"}'), env, work)
    expect(p.returncode == 0, explain(p))
    result = json.loads(p.stdout)
    expect(result["output"] == f"node-42\n{work}", f"output: {result!r}")
    expect(result["exit_code"] == 0 and result["error"] is None, f"result: {result!r}")


@test("node client: one-shot call with --server and server args")
def _():
    need_node()
    env, work = server_env("node-args")
    env.pop("SHELLWIRE_BIN")
    p = run(node_cmd("--server", str(BIN), "--", "--timeout", "1", "call", "terminal",
                     '{"command":"echo started; sleep 5"}'), env, work)
    expect(p.returncode == 0, explain(p))
    result = json.loads(p.stdout)
    expect(result["exit_code"] == 124, f"--timeout 1 did not reach the server: {result!r}")
    expect(result["output"].startswith("started\n"), f"output: {result!r}")


@test("node client: isError exits 1, unknown tool exits 2")
def _():
    need_node()
    env, work = server_env("node-errors")
    p = run(node_cmd("call", "terminal", '{"command":"echo x","timeout":0}'), env, work)
    expect(p.returncode == 1, explain(p))
    result = json.loads(p.stdout)
    expect(isinstance(result.get("error"), str) and "timeout" in result["error"], f"result: {result!r}")
    p = run(node_cmd("call", "no_such_tool", "{}"), env, work)
    expect(p.returncode == 2, explain(p))
    expect("-32602" in p.stderr, f"no -32602 in stderr: {explain(p)}")
    p = run(node_cmd("call", "terminal", "{not json"), env, work)
    expect(p.returncode == 2, explain(p))


@test("node client: list")
def _():
    need_node()
    env, work = server_env("node-list")
    p = run(node_cmd("list"), env, work)
    expect(p.returncode == 0, explain(p))
    expect(re.search(r"^terminal\b", p.stdout, re.M) and re.search(r"^process\b", p.stdout, re.M),
           f"tools missing: {explain(p)}")
    expect("command*" in p.stdout and "action*" in p.stdout, f"required arguments not marked: {p.stdout}")
    p = run(node_cmd("list", "--json"), env, work)
    expect(p.returncode == 0, explain(p))
    tools = json.loads(p.stdout)
    expect(sorted(t["name"] for t in tools) == ["process", "terminal"], f"tools: {p.stdout[:500]}")
    expect(all("outputSchema" in t for t in tools), "a tool without outputSchema")


@test("node client: interactive session through stdin")
def _():
    need_node()
    env, work = server_env("node-interactive")
    script = "\n".join([
        "help",
        "terminal export GREETING=hi-from-node && cd /",
        "terminal echo \"$GREETING $(pwd)\"",
        'call terminal {"command":"exit 5"}',
        "process list",
        "bg echo in-the-background",
        "tools",
        "process dance",
        "quit",
        "terminal echo after-quit",
    ]) + "\n"
    p = run(node_cmd(), env, work, stdin=script)
    expect(p.returncode == 0, explain(p))
    out = p.stdout
    expect("quit" in out and "terminal CMD" in out, f"no help text: {explain(p)}")
    expect("hi-from-node /\n[exit 0" in out, f"state did not carry over: {explain(p)}")
    expect('"exit_code": 5' in out, f"call output missing: {explain(p)}")
    expect('"processes": []' in out, f"process list missing: {explain(p)}")
    expect(re.search(r"session_id: proc_[0-9a-f]{12}", out), f"background start missing: {explain(p)}")
    expect(re.search(r"^terminal - ", out, re.M), f"tools missing: {explain(p)}")
    expect("Unknown action" in out, f"tool error not shown: {explain(p)}")
    expect("after-quit" not in out, f"a line after quit ran: {explain(p)}")


@test("node client: progress goes to stderr")
def _():
    need_node()
    env, work = server_env("node-progress")
    p = run(node_cmd("call", "terminal", '{"command":"for i in 1 2 3; do echo p$i; sleep 0.8; done"}'),
            env, work)
    expect(p.returncode == 0, explain(p))
    expect(json.loads(p.stdout)["output"] == "p1\np2\np3", explain(p))
    expect("[progress " in p.stderr, f"no progress on stderr: {explain(p)}")

# ---------------------------------------------------------------------------------- python client


def py_cmd(*args: str) -> list:
    return [sys.executable, str(PY_CLIENT), *args]


@test("python client: one-shot call terminal, isError, unknown tool")
def _():
    env, work = server_env("py-call")
    p = run(py_cmd("call", "terminal", '{"command":"echo py-$((40+2)); pwd"}'), env, work)
    expect(p.returncode == 0, explain(p))
    result = json.loads(p.stdout)
    expect(result["output"] == f"py-42\n{work}" and result["exit_code"] == 0, f"result: {result!r}")
    p = run(py_cmd("--server", str(BIN), "--", "--timeout", "1", "call", "terminal",
                   '{"command":"sleep 5"}'), env, work)
    expect(p.returncode == 0 and json.loads(p.stdout)["exit_code"] == 124, explain(p))
    p = run(py_cmd("call", "terminal", '{"command":"echo x","timeout":0}'), env, work)
    expect(p.returncode == 1 and "timeout" in json.loads(p.stdout)["error"], explain(p))
    p = run(py_cmd("call", "no_such_tool", "{}"), env, work)
    expect(p.returncode == 2 and "-32602" in p.stderr, explain(p))


@test("python client: list")
def _():
    env, work = server_env("py-list")
    p = run(py_cmd("list"), env, work)
    expect(p.returncode == 0, explain(p))
    expect(re.search(r"^terminal\b", p.stdout, re.M) and re.search(r"^process\b", p.stdout, re.M),
           explain(p))
    p = run(py_cmd("list", "--json"), env, work)
    expect(sorted(t["name"] for t in json.loads(p.stdout)) == ["process", "terminal"], explain(p))


@test("python client: interactive session through stdin")
def _():
    env, work = server_env("py-interactive")
    script = "\n".join([
        "help",
        "terminal export GREETING=hi-from-python && cd /",
        "terminal echo \"$GREETING $(pwd)\"",
        'call terminal {"command":"exit 5"}',
        "process list",
        "process wait proc_0000 timeout=1",
        "quit",
        "terminal echo after-quit",
    ]) + "\n"
    p = run(py_cmd(), env, work, stdin=script)
    expect(p.returncode == 0, explain(p))
    out = p.stdout
    expect("terminal CMD" in out, f"no help text: {explain(p)}")
    expect("hi-from-python /\n[exit 0" in out, f"state did not carry over: {explain(p)}")
    expect('"exit_code": 5' in out and '"processes": []' in out, explain(p))
    expect("No such process" in out, f"tool error not shown: {explain(p)}")
    expect("after-quit" not in out, f"a line after quit ran: {explain(p)}")


@test("python client: replay of every fixture matches its expectations")
def _():
    failures = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        expectation = json.loads(path.with_name(path.stem + ".expected.json").read_text())
        env, work = server_env(f"py-replay-{path.stem}")
        p = run(py_cmd("replay", str(path)), env, work)
        if p.returncode != 0:
            failures.append(f"{path.name}: {explain(p)}")
            continue
        messages = []
        for line in p.stdout.splitlines():
            try:
                messages.append(json.loads(line))
            except ValueError:
                messages.append({"__unparsable__": line})
        errors = compare_fixture(messages, expectation)
        if errors:
            failures.append(f"{path.name}:\n" + "\n".join(errors))
    expect(not failures, "\n".join(failures))


@test("python client: as a library (call, progress, notifications, process, close)")
def _():
    sys.path.insert(0, str(PY_CLIENT.parent))
    try:
        import shellwire_client as swc
    finally:
        sys.path.pop(0)
    env, work = server_env("py-library")
    notes = []
    got_notice = threading.Event()

    def on_note(method, params):
        notes.append((method, params))
        if method == "notifications/message":
            got_notice.set()

    client = swc.Client(str(BIN), env=env, cwd=str(work), on_notification=on_note,
                        stderr=subprocess.DEVNULL)
    try:
        init = client.start()
        expect(init["serverInfo"]["name"] == "shellwire", f"initialize: {init!r}")
        expect(client.protocol_version in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"),
               f"protocol {client.protocol_version}")
        names = sorted(t["name"] for t in client.list_tools())
        expect(names == ["process", "terminal"], f"tools: {names}")

        env1 = client.call("terminal", {"command": "cd / && echo library"})
        expect(env1["output"] == "library" and env1["exit_code"] == 0 and env1["error"] is None,
               f"{env1!r}")
        expect(client.call("terminal", {"command": "pwd"})["output"] == "/", "cd did not persist")
        env3 = client.call("terminal", {"command": "exit 3"})
        expect(env3["exit_code"] == 3 and env3["error"] is None, f"{env3!r}")
        bad = client.call_result("terminal", {"command": "echo x", "timeout": 0})
        expect(bad["isError"] is True and "timeout" in swc.structured(bad)["error"], f"{bad!r}")
        try:
            client.call("no_such_tool", {})
            raise AssertionError("unknown tool did not raise RpcError")
        except swc.RpcError as exc:
            expect(exc.code == -32602, f"code {exc.code}")

        progress = []
        slow = client.call("terminal", {"command": "for i in 1 2 3; do echo s$i; sleep 0.8; done"},
                           on_progress=progress.append)
        expect(slow["output"] == "s1\ns2\ns3", f"{slow!r}")
        expect(progress, "no progress callback for a 2.4 s command")
        values = [p["progress"] for p in progress]
        expect(values == sorted(set(values)), f"progress not increasing: {values}")

        bg = client.call("terminal", {"command": "echo lib-bg; exit 7", "background": True,
                                      "notify": True})
        sid = bg["session_id"]
        waited = client.call("process", {"action": "wait", "session_id": sid, "timeout": 10})
        expect(waited["status"] == "exited" and waited["exit_code"] == 7, f"{waited!r}")
        log = client.call("process", {"action": "log", "session_id": sid})
        expect(log["output"] == "lib-bg" and log["total_lines"] == 1, f"{log!r}")
        expect(got_notice.wait(5), f"no completion notice: {notes!r}")
        notice = [p for m, p in notes if m == "notifications/message"][0]
        expect(notice["data"]["session_id"] == sid and notice["data"]["exit_code"] == 7, f"{notice!r}")
    finally:
        rc = client.close()
    expect(rc == 0, f"server exit status {rc}")

# ---------------------------------------------------------------------------------- main


def main(argv: list) -> int:
    global VERBOSE
    if argv[:1] == ["--dump"] and len(argv) == 2:
        env, work = server_env("dump")
        messages, rc, stderr = feed_fixture(Path(argv[1]).resolve(), env, work)
        for msg in messages:
            print(json.dumps(msg, ensure_ascii=False))
        print(f"exit status {rc}", file=sys.stderr)
        return 0
    pattern = None
    if "-v" in argv:
        VERBOSE = True
    if "-k" in argv:
        pattern = argv[argv.index("-k") + 1]
    if not BIN.exists():
        print(f"server binary not found: {BIN} (set SHELLWIRE_BIN)")
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    for name, fn in TESTS:
        if pattern and pattern not in name:
            continue
        t0 = time.monotonic()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - report every failure and go on
            failed += 1
            detail = str(exc) if isinstance(exc, AssertionError) else traceback.format_exc()
            print(f"FAIL {name} ({time.monotonic() - t0:.1f} s)\n    " + detail.replace("\n", "\n    "))
        else:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - t0:.1f} s)")
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
