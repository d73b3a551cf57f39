"""Shared helpers for the stdio protocol/behaviour tests (Python standard library only).

A `Server` spawns the shellwire binary with a private SHELLWIRE_STATE_DIR and working
directory, and a unique marker in its environment (SW_TEST_TAG=<uuid>) that every process
it starts inherits, so that leftovers can be found by scanning /proc/<pid>/environ.
A reader thread parses every stdout line and records anything that is not exactly one
JSON-RPC message per line (invalid UTF-8, invalid JSON, NaN, duplicate keys, lone
surrogates, neither a response nor a notification, ...).

`ServerTest` is a unittest.TestCase base class whose tearDown kills every server the test
started, fails the test if a stdout line was malformed, and fails it if any process carrying
the test's tag is still alive afterwards (such processes are then SIGKILLed by pid).

`Server.process()` / `process_call()` drive the `process` tool (results checked by
`check_process_result`), `Server.background()` starts a background command; `proc_stat`,
`pid_alive` and `cpu_ticks` read /proc.

`main()` runs a test module with a counting result and prints "N passed, M failed" last.
"""

import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

BIN = os.environ.get("SHELLWIRE_BIN") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "shellwire")
TAG_VAR = "SW_TEST_TAG"
DEFAULT_TIMEOUT = 15.0

# Outer configuration must not leak into the tests.
_CONFIG_PREFIXES = ("TERMINAL_", "SHELLWIRE_")


def id_key(v):
    """Dictionary key for a JSON-RPC id that keeps types apart (1, 1.0, "1", true)."""
    return json.dumps(v, sort_keys=True)


def _reject_constant(name):
    raise ValueError("non-JSON constant %s" % name)


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r" % k)
        d[k] = v
    return d


def parse_strict(line_bytes):
    """Parses one stdout line the way a strict client would; raises on anything invalid."""
    text = line_bytes.decode("utf-8")                       # strict UTF-8
    msg = json.loads(text, parse_constant=_reject_constant,
                     object_pairs_hook=_no_duplicates)
    # Lone surrogates (e.g. "\ud800") are syntactically JSON but not Unicode text.
    json.dumps(msg, ensure_ascii=False).encode("utf-8")
    return msg


# ---------------------------------------------------------------------------- /proc

class ProcInfo:
    __slots__ = ("pid", "ppid", "state", "cmdline", "comm")

    def __init__(self, pid, ppid, state, cmdline, comm):
        self.pid, self.ppid, self.state, self.cmdline, self.comm = pid, ppid, state, cmdline, comm

    def __repr__(self):
        return "pid %d (ppid %d, %s) %r" % (self.pid, self.ppid, self.state,
                                             " ".join(self.cmdline) or self.comm)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def tagged_procs(tag, exclude=()):
    """Live (non-zombie) processes whose environment carries SW_TEST_TAG=<tag>."""
    needle = ("%s=%s" % (TAG_VAR, tag)).encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in exclude:
            continue
        env = _read("/proc/%d/environ" % pid)
        if not env or needle not in env.split(b"\0"):
            continue
        stat = _read("/proc/%d/stat" % pid)
        if not stat:
            continue
        rp = stat.rfind(b")")
        fields = stat[rp + 2:].split()
        state = fields[0].decode()
        if state in ("Z", "X"):
            continue
        comm = stat[stat.find(b"(") + 1:rp].decode(errors="replace")
        cmd = _read("/proc/%d/cmdline" % pid) or b""
        cmdline = [c.decode(errors="replace") for c in cmd.split(b"\0") if c]
        out.append(ProcInfo(pid, int(fields[1]), state, cmdline, comm))
    return out


def wait_until(pred, timeout, interval=0.02):
    """Polls pred() until it returns a truthy value or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def proc_stat(pid):
    """Fields of /proc/<pid>/stat as a dict (state, ppid, pgrp, session, utime, stime,
    starttime, all ticks), or None when the process is gone."""
    stat = _read("/proc/%d/stat" % pid)
    if not stat:
        return None
    rp = stat.rfind(b")")
    f = stat[rp + 2:].split()
    # f[0] is field 3 (state) of proc(5).
    return {"state": f[0].decode(), "ppid": int(f[1]), "pgrp": int(f[2]), "session": int(f[3]),
            "utime": int(f[11]), "stime": int(f[12]), "starttime": int(f[19])}


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st["state"] not in ("Z", "X")


def cpu_ticks(pid):
    st = proc_stat(pid)
    return None if st is None else st["utime"] + st["stime"]


# ---------------------------------------------------------------------------- server

class ServerGone(AssertionError):
    pass


class Server:
    """One shellwire process driven over stdio."""

    def __init__(self, args=(), env=None, cwd=None, stdin_file=None, binary=None, reader=True):
        self.tag = uuid.uuid4().hex
        self.tmp = tempfile.mkdtemp(prefix="swtest-")
        self.state_dir = os.path.join(self.tmp, "state")
        os.mkdir(self.state_dir)
        if cwd is None:
            cwd = os.path.join(self.tmp, "cwd")
            os.mkdir(cwd)
        self.cwd = os.path.realpath(cwd)
        e = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_PREFIXES)}
        e[TAG_VAR] = self.tag
        e["SHELLWIRE_STATE_DIR"] = self.state_dir
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        self.env = e
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self._stderr = open(self.stderr_path, "wb")
        stdin = subprocess.PIPE
        self._stdin_file = None
        if stdin_file is not None:
            self._stdin_file = stdin = open(stdin_file, "rb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([binary or BIN, *args], stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=self._stderr, cwd=self.cwd, env=e)
        self.pid = self.proc.pid
        self.cv = threading.Condition()
        self.responses = {}          # id key -> [message, ...]
        self.notifications = []      # (seq, message)
        self.requests = []           # requests the server sent to us (elicitation)
        self.arrays = []             # (seq, list) batch answers
        self.messages = []           # (seq, monotonic time, message) everything, in order
        self.bad = []                # (reason, first bytes of the line)
        self.lines = 0
        self.seq = 0
        self.eof = False
        self._next_id = 1000
        self.exit_code = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        if reader:
            self._reader.start()
        else:
            self.eof = True

    # ---- reading

    def _read_loop(self):
        f = self.proc.stdout
        while True:
            try:
                line = f.readline()
            except (OSError, ValueError):
                break
            if not line:
                break
            now = time.monotonic()
            with self.cv:
                self.lines += 1
                if not line.endswith(b"\n"):
                    self.bad.append(("line without final newline", line[:300]))
                try:
                    msg = parse_strict(line[:-1] if line.endswith(b"\n") else line)
                except Exception as ex:  # noqa: BLE001 - anything unparsable is a finding
                    self.bad.append(("%s: %s" % (type(ex).__name__, ex), line[:300]))
                    self.cv.notify_all()
                    continue
                self.seq += 1
                self.messages.append((self.seq, now, msg))
                if isinstance(msg, list):
                    self.arrays.append((self.seq, msg))
                    for el in msg:
                        self._classify(el, in_batch=True)
                elif isinstance(msg, dict):
                    self._classify(msg)
                else:
                    self.bad.append(("top-level value is neither object nor array", line[:300]))
                self.cv.notify_all()
        with self.cv:
            self.eof = True
            self.cv.notify_all()

    def _classify(self, msg, in_batch=False):
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
            self.bad.append(("not a JSON-RPC 2.0 object", json.dumps(msg)[:300].encode()))
            return
        if "method" in msg and "id" not in msg:
            if in_batch:
                self.bad.append(("notification inside a batch answer", json.dumps(msg)[:300].encode()))
            self.notifications.append((self.seq, msg))
        elif "method" in msg and "id" in msg and not in_batch:
            self.requests.append(msg)
            self.cv.notify_all()
        elif "id" in msg and (("result" in msg) != ("error" in msg)):
            if not in_batch:
                self.responses.setdefault(id_key(msg["id"]), []).append(msg)
        else:
            self.bad.append(("neither a response nor a notification", json.dumps(msg)[:300].encode()))

    # ---- writing

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as ex:
            raise ServerGone("cannot write to the server (%s); stderr:\n%s" % (ex, self.stderr_tail()))

    def send(self, obj):
        self.send_raw(json.dumps(obj) + "\n")

    def new_id(self):
        self._next_id += 1
        return self._next_id

    def close_stdin(self):
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    # ---- waiting

    def stderr_tail(self, n=2000):
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data[-n:].decode(errors="replace")

    def wait_response(self, rid, timeout=DEFAULT_TIMEOUT):
        k = id_key(rid)
        deadline = time.monotonic() + timeout
        with self.cv:
            while k not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no response for id %s within %.1fs; stderr:\n%s"
                                         % (k, timeout, self.stderr_tail()))
                if self.eof:
                    raise ServerGone("server closed stdout without answering id %s (exit %r); "
                                     "stderr:\n%s" % (k, self.proc.poll(), self.stderr_tail()))
                self.cv.wait(min(left, 0.2))
            got = self.responses[k]
            return got[0]

    def has_response(self, rid):
        with self.cv:
            return id_key(rid) in self.responses

    def responses_for(self, rid):
        with self.cv:
            return list(self.responses.get(id_key(rid), []))

    def wait_for(self, pred, timeout=DEFAULT_TIMEOUT):
        """Waits until pred() (called with the lock held) is truthy; returns its value or None."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return pred()
                self.cv.wait(min(left, 0.2))

    def wait_arrays(self, n, timeout=DEFAULT_TIMEOUT):
        self.wait_for(lambda: len(self.arrays) >= n, timeout)
        with self.cv:
            return [a for _, a in self.arrays]

    def message_count(self):
        with self.cv:
            return len(self.messages)

    def messages_after(self, count):
        with self.cv:
            return [m for _, _, m in self.messages[count:]]

    # ---- requests

    def request(self, method, params=None, rid=None, timeout=DEFAULT_TIMEOUT):
        if rid is None:
            rid = self.new_id()
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.wait_response(rid, timeout)

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def wait_request(self, method, timeout=DEFAULT_TIMEOUT):
        """The next request the server sent us with this method (removed from the list)."""
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for i, m in enumerate(self.requests):
                    if m.get("method") == method:
                        return self.requests.pop(i)
                left = end - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError("no %s request from the server within %ss" % (method, timeout))
                self.cv.wait(left)

    def initialize(self, version="2025-06-18", capabilities=None):
        r = self.request("initialize", {"protocolVersion": version, "capabilities": capabilities or {},
                                        "clientInfo": {"name": "swtest", "version": "1"}})
        if "result" not in r:
            raise AssertionError("initialize failed: %r" % r)
        self.notify("notifications/initialized")
        return r["result"]

    def ping(self, timeout=DEFAULT_TIMEOUT):
        r = self.request("ping", rid="ping-%d" % self.new_id(), timeout=timeout)
        if r.get("result") != {}:
            raise AssertionError("ping answered with %r" % r)
        return r

    def send_call(self, arguments, rid=None, name="terminal", meta=None):
        if rid is None:
            rid = self.new_id()
        params = {"name": name, "arguments": arguments}
        if meta is not None:
            params["_meta"] = meta
        self.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params})
        return rid

    def call(self, arguments, timeout=DEFAULT_TIMEOUT, **kw):
        """tools/call; returns the whole response after checking the result's shape."""
        rid = self.send_call(arguments, **kw)
        r = self.wait_response(rid, timeout)
        if "result" in r:
            check_tool_result(r["result"])
        return r

    def run(self, command, wait=None, **arguments):
        """Runs a terminal command (keyword arguments are tool arguments, e.g. timeout=1,
        task_id="a"); waits `wait` seconds, by default a little longer than the tool timeout.
        Returns structuredContent."""
        arguments["command"] = command
        r = self.call(arguments, timeout=_wait_for(arguments, wait))
        if "result" not in r:
            raise AssertionError("terminal call answered with a protocol error: %r" % r)
        return r["result"]["structuredContent"]

    def tool_call(self, name, arguments, timeout=DEFAULT_TIMEOUT, check=None):
        """tools/call of any tool; checks the result with `check` (default: the `process`
        envelope check for "process", the terminal one otherwise). Returns the response."""
        rid = self.send_call(arguments, name=name)
        r = self.wait_response(rid, timeout)
        if "result" in r:
            if check is None:
                check = check_process_result if name == "process" else check_tool_result
            check(r["result"])
        return r

    def process_call(self, arguments, timeout=DEFAULT_TIMEOUT):
        """tools/call of the `process` tool with raw arguments; returns the whole response."""
        return self.tool_call("process", arguments, timeout)

    def process(self, action, wait=None, **arguments):
        """process tool: action plus keyword arguments (session_id=..., timeout=..., task_id=...);
        waits `wait` seconds (default: a little longer than the tool's own timeout).
        Returns structuredContent."""
        arguments["action"] = action
        r = self.process_call(arguments, timeout=_wait_for(arguments, wait))
        if "result" not in r:
            raise AssertionError("process call answered with a protocol error: %r" % r)
        return r["result"]["structuredContent"]

    def background(self, command, **arguments):
        """terminal(background: true); returns structuredContent (raises on a tool error)."""
        sc = self.run(command, background=True, **arguments)
        if sc.get("error"):
            raise AssertionError("background start of %r failed: %r" % (command, sc))
        return sc

    # ---- process state

    def alive(self):
        return self.proc.poll() is None

    def descendants(self):
        """Tagged processes other than the server itself."""
        return tagged_procs(self.tag, exclude=(self.pid,))

    def find_procs(self, pred):
        return [p for p in self.descendants() if pred(p)]

    def vm_kb(self, field="VmHWM"):
        data = _read("/proc/%d/status" % self.pid) or b""
        for ln in data.decode().splitlines():
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
        return None

    def wait_exit(self, timeout):
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader.is_alive():
            self._reader.join(5)
        return self.exit_code

    def stop(self, sig=signal.SIGTERM, grace=5.0):
        """Stops the server (signal, then SIGKILL after `grace`); returns its exit status."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.exit_code = self.proc.returncode
        if self._reader.is_alive():
            self._reader.join(5)
        self.close_stdin()
        files = [self._stderr, self._stdin_file]
        if not self._reader.is_alive():
            files.append(self.proc.stdout)     # never close a file another thread reads
        for f in files:
            try:
                if f:
                    f.close()
            except OSError:
                pass
        return self.exit_code

    def leftovers(self, wait=2.0):
        """Tagged processes still alive (after the server has stopped), waiting up to `wait`."""
        if wait_until(lambda: not tagged_procs(self.tag), wait):
            return []
        return tagged_procs(self.tag)

    def reap_leftovers(self):
        for p in tagged_procs(self.tag):
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def _wait_for(arguments, wait):
    """How long to wait for an answer: `wait`, or a little longer than the call's own timeout."""
    if wait is not None:
        return wait
    t = arguments.get("timeout")
    return max(DEFAULT_TIMEOUT, (t if isinstance(t, int) else 0) + 10)


def _check_envelope(result):
    """What every tools/call result shares (SPEC section 2): text content equal to
    structuredContent (an object), an `error` that is null or a string, and isError exactly
    when error is a non-empty string. Returns structuredContent."""
    if not isinstance(result, dict):
        raise AssertionError("result is not an object: %r" % (result,))
    content = result.get("content")
    sc = result.get("structuredContent")
    if not (isinstance(content, list) and content and content[0].get("type") == "text"):
        raise AssertionError("content[0] is not a text item: %r" % (content,))
    if json.loads(content[0]["text"]) != sc:
        raise AssertionError("content[0].text does not parse to structuredContent:\n%r\n%r"
                             % (content[0]["text"][:500], sc))
    if not isinstance(sc, dict):
        raise AssertionError("structuredContent is not an object: %r" % (sc,))
    if "error" not in sc:
        raise AssertionError("envelope lacks 'error': %r" % (sc,))
    err = sc["error"]
    if not (err is None or isinstance(err, str)):
        raise AssertionError("error is neither null nor a string: %r" % (sc,))
    want = isinstance(err, str) and err != ""
    if result.get("isError") is not want:
        raise AssertionError("isError is %r but error is %r" % (result.get("isError"), err))
    return sc


def check_tool_result(result):
    """The terminal envelope: output, exit_code and error with their types."""
    sc = _check_envelope(result)
    for k in ("output", "exit_code"):
        if k not in sc:
            raise AssertionError("envelope lacks %r: %r" % (k, sc))
    if not isinstance(sc["output"], str) or not isinstance(sc["exit_code"], int) \
            or isinstance(sc["exit_code"], bool):
        raise AssertionError("envelope has wrong types: %r" % sc)


def check_process_result(result):
    """Shape of every `process` tool result, with the key types schema/process.json declares."""
    sc = _check_envelope(result)
    for k, v in sc.items():                # the types schema/process.json declares
        kinds = _PROCESS_KEY_TYPES.get(k)
        if kinds and not _is_kind(v, kinds):
            raise AssertionError("process result key %r has the wrong type: %r" % (k, v))
    for k in ("survivors",):
        if k in sc and not all(_is_kind(x, ("int",)) for x in sc[k]):
            raise AssertionError("%s holds non-integers: %r" % (k, sc[k]))
    for p in sc.get("processes", ()):
        if not isinstance(p, dict):
            raise AssertionError("a processes entry is not an object: %r" % (p,))
        for k, v in p.items():
            kinds = _PROCESS_KEY_TYPES.get(k)
            if kinds and not _is_kind(v, kinds):
                raise AssertionError("processes entry key %r has the wrong type: %r" % (k, v))


_PROCESS_KEY_TYPES = {
    "status": ("str",), "session_id": ("str",), "pid": ("int", "null"), "command": ("str",),
    "cwd": ("str",), "started_at": ("str",),
    "exit_code": ("int", "null"), "uptime_seconds": ("int",), "output": ("str",),
    "output_preview": ("str",), "total_lines": ("int",), "showing": ("str",),
    "process_running": ("bool",), "timeout_note": ("str",), "survivors": ("list",),
    "processes": ("list",), "bytes_written": ("int",),
}


def _is_kind(v, kinds):
    for k in kinds:
        if k == "null" and v is None:
            return True
        if k == "bool" and isinstance(v, bool):
            return True
        if k == "int" and isinstance(v, int) and not isinstance(v, bool):
            return True
        if k == "str" and isinstance(v, str):
            return True
        if k == "list" and isinstance(v, list):
            return True
    return False


# ---------------------------------------------------------------------------- test base

class ServerTest(unittest.TestCase):
    """Starts servers on demand; tearDown kills them and checks framing and leftovers."""

    maxDiff = 4000

    def setUp(self):
        self.servers = []

    def start(self, *args, **kw):
        s = Server(*args, **kw)
        self.servers.append(s)
        return s

    def tearDown(self):
        problems = []
        for s in self.servers:
            s.stop()
            if s.bad:
                problems.append("server %d wrote %d malformed stdout line(s): %r"
                                % (s.pid, len(s.bad), s.bad[:3]))
            left = s.leftovers()
            if left:
                problems.append("processes of server %d survived it: %r" % (s.pid, left))
                s.reap_leftovers()
            s.cleanup()
        if problems:
            self.fail("; ".join(problems))

    # assertion helpers

    def assertError(self, resp, code, msg_contains=None):
        self.assertIn("error", resp, "expected a JSON-RPC error, got %r" % (resp,))
        self.assertNotIn("result", resp)
        self.assertEqual(resp["error"].get("code"), code, resp)
        self.assertIsInstance(resp["error"].get("message"), str, resp)
        if msg_contains:
            self.assertIn(msg_contains, resp["error"]["message"], resp)

    def assertToolError(self, resp, mention=None):
        """A tool error: a normal result with isError true and a non-empty error string."""
        self.assertIn("result", resp, "expected a tool error result, got %r" % (resp,))
        res = resp["result"]
        check_tool_result(res)
        sc = res["structuredContent"]
        self.assertIs(res.get("isError"), True, sc)
        self.assertIsInstance(sc.get("error"), str, sc)
        self.assertTrue(sc["error"], sc)
        self.assertIn(sc.get("status"), ("error", "blocked"), sc)
        if mention:
            self.assertIn(mention.lower(), sc["error"].lower(), sc)
        return sc

    def assertOk(self, sc, exit_code=0):
        self.assertIsNone(sc.get("error"), sc)
        self.assertEqual(sc.get("exit_code"), exit_code, sc)

    def assertProcessError(self, resp, *mentions):
        """A `process` tool error: isError true, status "error", a non-empty error string that
        contains each of `mentions` (case-insensitive; a tuple means any one of its items)."""
        self.assertIn("result", resp, "expected a tool error result, got %r" % (resp,))
        res = resp["result"]
        check_process_result(res)
        sc = res["structuredContent"]
        self.assertIs(res.get("isError"), True, sc)
        self.assertIsInstance(sc.get("error"), str, sc)
        self.assertTrue(sc["error"], sc)
        self.assertEqual(sc.get("status"), "error", sc)
        for m in mentions:
            alts = m if isinstance(m, tuple) else (m,)
            self.assertTrue(any(a.lower() in sc["error"].lower() for a in alts),
                            "error does not mention %s: %r" % (" or ".join(map(repr, alts)), sc["error"]))
        return sc


# ---------------------------------------------------------------------------- runner

class CountingResult(unittest.TextTestResult):
    """Counts test methods: a method fails if any of its parts (subtests, tearDown) fails."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen = []
        self.failed_ids = set()
        self._t0 = {}
        self.durations = {}

    def getDescription(self, test):
        return str(test)                   # the method name, not the docstring

    def startTest(self, test):
        tid = test.id()
        if tid not in self.seen:
            self.seen.append(tid)
        self._t0[tid] = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        tid = test.id()
        if tid in self._t0:
            self.durations[tid] = time.monotonic() - self._t0[tid]
        super().stopTest(test)

    def _mark(self, test):
        tid = test.id()
        if tid not in self.seen:
            self.seen.append(tid)          # e.g. setUpClass errors
        self.failed_ids.add(tid)

    def addFailure(self, test, err):
        self._mark(test)
        super().addFailure(test, err)

    def addError(self, test, err):
        self._mark(test)
        super().addError(test, err)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self._mark(test)
        super().addSubTest(test, subtest, err)

    def addSkip(self, test, reason):
        self._mark(test)                   # nothing may be skipped silently
        super().addSkip(test, reason)

    def addUnexpectedSuccess(self, test):
        self._mark(test)
        super().addUnexpectedSuccess(test)


def main(module_name="__main__"):
    if not os.access(BIN, os.X_OK):
        print("shellwire binary not found or not executable: %s" % BIN)
        print("0 passed, 1 failed")
        sys.exit(1)
    t0 = time.monotonic()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module_name])
    if len(sys.argv) > 1:                  # optional name filters, e.g. "Malformed" "test_ping"
        wanted = sys.argv[1:]

        def flatten(s):
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    yield from flatten(t)
                else:
                    yield t
        suite = unittest.TestSuite(t for t in flatten(suite) if any(w in t.id() for w in wanted))
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=CountingResult)
    result = runner.run(suite)
    slow = sorted(result.durations.items(), key=lambda kv: -kv[1])[:8]
    print("slowest: " + ", ".join("%s %.2fs" % (k.rsplit(".", 1)[-1], v) for k, v in slow))
    print("total time %.1fs against %s" % (time.monotonic() - t0, BIN))
    failed = len(result.failed_ids)
    passed = len(result.seen) - failed
    sys.stderr.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    sys.exit(1 if failed or passed == 0 else 0)
