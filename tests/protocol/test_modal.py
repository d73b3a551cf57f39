#!/usr/bin/env python3
"""Tests of the shellwire modal backend (TERMINAL_ENV=modal; backends/modal.c,
docs/backends.md) against the local stand-in of the Modal tool gateway
(tests/standins/modal_gateway.py), which runs the commands for real and records every
request it gets.

- ModalShared: the behaviour every backend shares (backend_suite.py).
- ModalRequests: the exact requests (paths, headers, bodies, idempotency key, exec ids,
  the script on stdin rather than on a command line), settings, the polling cadence.
- ModalFaults: 5xx then success, 429 with Retry-After, a slow answer beyond the deadline,
  a vanished sandbox (recreated once, `environment_recreated`), malformed JSON, 401,
  a missing token, an unreachable gateway (`status: "degraded"`).
- ModalLifecycle: cancellation and timeouts cancel the exec through the API, the sandbox
  is terminated at server exit, a persistent filesystem is snapshotted and restored.

Every test gets its own stand-in, stopped (with everything its sandboxes still run) in
tearDown. Standard library only; the stand-in uses bwrap when installed. Run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_modal.py [name-filter ...]
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_suite  # noqa: E402
import swclient  # noqa: E402
from swclient import ServerTest, wait_until  # noqa: E402

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "standins",
                       "modal_gateway.py")
TOKEN = "swtest-modal-token-" + uuid.uuid4().hex[:8]
UUID4_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
EXEC_COMMAND = "bash -c 'IFS= read -r -d \"\" __sw_s; eval \"unset __sw_s; $__sw_s\"'"
DEFAULT_IMAGE = "nikolaik/python-nodejs:python3.11-nodejs20"
EXECS_RE = re.compile(r"^/v1/sandboxes/([^/]+)/execs$")
POLL_RE = re.compile(r"^/v1/sandboxes/([^/]+)/execs/([^/]+)$")
CANCEL_RE = re.compile(r"^/v1/sandboxes/([^/]+)/execs/([^/]+)/cancel$")
TERMINATE_RE = re.compile(r"^/v1/sandboxes/([^/]+)/terminate$")

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Gateway:
    """One stand-in gateway process and its control endpoints."""

    def __init__(self, token=TOKEN):
        self.proc = subprocess.Popen([sys.executable, STANDIN, "--token", token,
                                      "--exit-on-stdin-eof"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError("the modal stand-in did not start (%r)" % line)
        self.port = int(line)
        self.url = "http://127.0.0.1:%d" % self.port

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with _NO_PROXY.open(req, timeout=30) as r:
            return json.loads(r.read())

    def requests(self):
        """Every API request so far (control calls are not recorded)."""
        return self._call("GET", "/_control/requests")["requests"]

    def fault(self, **rule):
        self._call("POST", "/_control/fault", rule)

    def clear_faults(self):
        self._call("POST", "/_control/faults/clear", {})

    def reap(self, sid=None):
        return self._call("POST", "/_control/reap", {"id": sid} if sid else {})["reaped"]

    def set_token(self, token):
        self._call("POST", "/_control/token", {"token": token})

    def sandboxes(self):
        return self._call("GET", "/_control/sandboxes")["sandboxes"]

    def procs(self):
        return self._call("GET", "/_control/procs")["procs"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def of(reqs, method, rx):
    """The requests with this method whose path matches rx."""
    return [r for r in reqs if r["method"] == method and rx.match(r["path"])]


def execs_running(reqs, text):
    """Exec start requests whose script contains text."""
    return [r for r in of(reqs, "POST", EXECS_RE)
            if r["json"] and text in (r["json"].get("stdinData") or "")]


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ModalBase(ServerTest):
    """A stand-in per test; start_server() runs shellwire against it."""

    def setUp(self):
        super().setUp()
        self.gw = Gateway()

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            left = self.gw.procs()
            self.gw.stop()
        self.assertEqual(left, [], "processes left in the sandboxes after the servers exited")

    def env(self, **extra):
        e = {"TERMINAL_ENV": "modal", "MODAL_GATEWAY_URL": self.gw.url,
             "TOOL_GATEWAY_USER_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        e.update(extra)
        return e

    def start_server(self, **env):
        s = self.start(env=self.env(**env))
        s.initialize()
        return s

    def sandbox_procs(self):
        return [" ".join(p["cmdline"]) for p in self.gw.procs()]

    def exec_for(self, text):
        """The one exec start request whose script contains text."""
        got = execs_running(self.gw.requests(), text)
        self.assertEqual(len({r["json"]["execId"] for r in got}), 1, got)
        return got[0]


class ModalShared(ModalBase, backend_suite.SharedBehaviour):
    pass


# ============================================================================ requests

class ModalRequests(ModalBase):

    def test_exact_requests(self):
        s = self.start_server()
        sc = s.run("echo hi")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "hi")
        reqs = self.gw.requests()
        for r in reqs:
            self.assertEqual(r["headers"].get("authorization"), "Bearer " + TOKEN, r)
            if r["body"]:
                self.assertTrue(r["headers"].get("content-type", "").startswith("application/json"), r)
        create = reqs[0]
        self.assertEqual((create["method"], create["path"]), ("POST", "/v1/sandboxes"))
        self.assertRegex(create["headers"].get("x-idempotency-key", ""), UUID4_RE)
        self.assertEqual(create["json"], {
            "image": DEFAULT_IMAGE, "cwd": "/root", "cpu": 1.0, "memoryMiB": 5120.0,
            "timeoutMs": 3600000, "idleTimeoutMs": 300000, "persistentFilesystem": False,
            "logicalKey": "default"})
        self.assertIsInstance(create["json"]["cpu"], float)
        self.assertIsInstance(create["json"]["memoryMiB"], float)
        self.assertEqual(len(of(reqs, "POST", re.compile("^/v1/sandboxes$"))), 1)
        sid = self.gw.sandboxes()[0]["id"]

        starts = of(reqs, "POST", EXECS_RE)
        self.assertTrue(starts)
        ids = []
        for r in starts:
            self.assertEqual(EXECS_RE.match(r["path"]).group(1), sid)
            body = r["json"]
            self.assertEqual(set(body), {"execId", "command", "cwd", "timeoutMs", "stdinData"}, body)
            self.assertRegex(body["execId"], UUID4_RE)
            self.assertEqual(body["command"], EXEC_COMMAND)
            self.assertEqual(body["cwd"], "/")
            self.assertTrue(body["stdinData"].startswith("exec </dev/null 2>&1"), body["stdinData"][:80])
            self.assertNotIn("x-idempotency-key", r["headers"])
            ids.append(body["execId"])
        self.assertEqual(len(ids), len(set(ids)), "an exec id was used twice")
        user = self.exec_for("echo hi")["json"]
        self.assertEqual(user["timeoutMs"], 180000 + 10000)

        polls = of(reqs, "GET", POLL_RE)
        for r in polls:
            m = POLL_RE.match(r["path"])
            self.assertEqual(m.group(1), sid)
            self.assertIn(m.group(2), ids)
            self.assertIsNone(r["body"])
        unexpected = [r["method"] + " " + r["path"] for r in reqs
                      if r is not create and r not in starts and r not in polls]
        self.assertEqual(unexpected, [])

    def test_script_travels_on_stdin(self):
        s = self.start_server()
        sc = s.run("tr '\\0' ' ' < /proc/$$/cmdline; echo; echo [$__sw_s]")
        self.assertOk(sc)
        lines = sc["output"].splitlines()
        self.assertEqual(lines[0].strip(), "bash -c " + EXEC_COMMAND.split(" ", 2)[2][1:-1], sc)
        self.assertEqual(lines[1], "[]", "the script is visible to the command")
        # Far beyond what one argument of a command line may hold (128 KiB).
        big = "x" * 300000
        sc = s.run(": %s; echo big-ok" % big)
        self.assertOk(sc)
        self.assertEqual(sc["output"], "big-ok")

    def test_settings_reach_create(self):
        s = self.start_server(TERMINAL_MODAL_IMAGE="python:3.12-slim", TERMINAL_CWD="/root/work",
                              TERMINAL_TIMEOUT="400", TERMINAL_MAX_FOREGROUND_TIMEOUT="600")
        sc = s.run("pwd")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "/root/work")
        create = self.gw.requests()[0]["json"]
        self.assertEqual(create["image"], "python:3.12-slim")
        self.assertEqual(create["cwd"], "/root/work")
        self.assertEqual(create["idleTimeoutMs"], 400000)
        self.assertEqual(self.exec_for("pwd")["json"]["timeoutMs"], 400000 + 10000)
        sc = s.run("echo t", task_id="other-task", timeout=5)
        self.assertOk(sc)
        keys = [r["json"]["logicalKey"] for r in self.gw.requests() if r["path"] == "/v1/sandboxes"]
        self.assertEqual(keys, ["default", "other-task"])
        self.assertEqual(self.exec_for("echo t")["json"]["timeoutMs"], 5000 + 10000)

    def test_poll_cadence(self):
        s = self.start_server()
        s.run("true")
        sc = s.run("sleep 2.5; echo slept", timeout=30)
        self.assertOk(sc)
        self.assertEqual(sc["output"], "slept")
        reqs = self.gw.requests()
        start = self.exec_for("sleep 2.5")
        eid = start["json"]["execId"]
        polls = [r["t"] for r in of(reqs, "GET", POLL_RE) if r["path"].endswith("/" + eid)]
        # Times are those of the requests' arrival: they include the stand-in's own work.
        self.assertLess(polls[0] - start["t"], 0.1, "first poll %.3fs after the start" % (polls[0] - start["t"]))
        gaps = [b - a for a, b in zip(polls, polls[1:])]
        self.assertLess(len(polls), 40, "%d polls for a 2.5 s command" % len(polls))
        self.assertTrue(all(g < 0.6 for g in gaps), "a gap between polls over 0.6 s: %r" % gaps)
        early = [g for p, g in zip(polls[1:], gaps) if p - start["t"] < 0.1]
        self.assertGreaterEqual(len(early), 4, "too few polls in the first 100 ms: %r" % gaps)
        late = [g for p, g in zip(polls[1:], gaps) if p - start["t"] > 1.2]
        self.assertTrue(late and all(g > 0.18 for g in late), "polls after 1 s are not ~250 ms apart: %r" % late)

    def test_quick_command_latency(self):
        s = self.start_server()
        s.run("true")
        times = []
        for _ in range(20):
            t0 = time.monotonic()
            self.assertEqual(s.run("echo hi")["output"], "hi")
            times.append(time.monotonic() - t0)
        times.sort()
        self.assertLess(times[len(times) // 2], 0.2, "p50 of echo hi: %.3fs (%r)" % (times[10], times))


# ============================================================================ faults

class ModalFaults(ModalBase):

    def test_5xx_then_success(self):
        self.gw.fault(method="POST", path="^/v1/sandboxes$", status=502)
        self.gw.fault(method="POST", path="/execs$", status=503, times=2)
        s = self.start_server()
        sc = s.run("echo survived")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "survived")
        reqs = self.gw.requests()
        creates = of(reqs, "POST", re.compile("^/v1/sandboxes$"))
        self.assertEqual(len(creates), 2, creates)
        self.assertTrue(creates[0]["fault"])
        self.assertEqual(creates[0]["headers"]["x-idempotency-key"], creates[1]["headers"]["x-idempotency-key"])
        self.assertEqual(len(self.gw.sandboxes()), 1)
        starts = of(reqs, "POST", EXECS_RE)
        self.assertEqual([r["fault"] for r in starts[:3]], [True, True, False])
        self.assertEqual(len({r["json"]["execId"] for r in starts[:3]}), 1, "a retried start changed its exec id")

    def test_poll_5xx_then_success(self):
        s = self.start_server()
        s.run("true")
        self.gw.fault(method="GET", path="/execs/", status=500, times=3)
        sc = s.run("echo polled")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "polled")

    def test_429_retry_after_is_honoured(self):
        s = self.start_server()
        s.run("true")
        self.gw.fault(method="POST", path="/execs$", status=429, headers={"Retry-After": "1"},
                      body={"error": "slow down"})
        sc = s.run("echo after-429")
        self.assertOk(sc)
        starts = execs_running(self.gw.requests(), "echo after-429")
        self.assertGreaterEqual(len(starts), 2)
        self.assertTrue(starts[0]["fault"])
        self.assertGreaterEqual(starts[1]["t"] - starts[0]["t"], 0.95, "Retry-After: 1 was not honoured")
        self.assertEqual(starts[0]["json"]["execId"], starts[1]["json"]["execId"])

    def test_slow_answer_beyond_deadline(self):
        s = self.start_server()
        s.run("true")
        self.gw.fault(method="GET", path="/execs/", delay=30)
        t0 = time.monotonic()
        sc = s.run("sleep 20; echo never", timeout=2)
        took = time.monotonic() - t0
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertNotIn("never", sc["output"])
        self.assertLess(took, 8, "a slow gateway held the call for %.1fs" % took)
        eid = self.exec_for("sleep 20")["json"]["execId"]
        cancels = [r for r in of(self.gw.requests(), "POST", CANCEL_RE) if CANCEL_RE.match(r["path"]).group(2) == eid]
        self.assertEqual(len(cancels), 1)
        self.assertTrue(wait_until(lambda: not self.tagged("sleep 20"), 10), self.sandbox_procs())
        self.assertEqual(s.run("echo alive")["output"], "alive")

    def tagged(self, text):
        return [c for c in self.sandbox_procs() if text in c]

    def test_vanished_sandbox_is_recreated_once(self):
        s = self.start_server()
        self.assertEqual(s.run("echo first")["output"], "first")
        old = self.gw.sandboxes()[0]["id"]
        self.assertEqual(self.gw.reap(), [old])
        sc = s.run("echo second")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "second")
        self.assertTrue(sc.get("environment_recreated"), sc)
        reqs = self.gw.requests()
        creates = of(reqs, "POST", re.compile("^/v1/sandboxes$"))
        self.assertEqual(len(creates), 2)
        self.assertNotEqual(creates[0]["headers"]["x-idempotency-key"], creates[1]["headers"]["x-idempotency-key"])
        new = self.gw.sandboxes()[0]["id"]
        self.assertNotEqual(new, old)
        later = [r for r in reqs if r["t"] > creates[1]["t"]]
        self.assertFalse([r for r in later if old in r["path"]], "the vanished sandbox was used again")
        sc = s.run("echo third")
        self.assertEqual(sc["output"], "third")
        self.assertNotIn("environment_recreated", sc)

    def test_malformed_json(self):
        s = self.start_server()
        s.run("true")
        self.gw.fault(method="GET", path="/execs/", malformed=True)
        resp = s.call({"command": "sleep 0.5; echo hi"})
        sc = self.assertToolError(resp, "malformed")
        self.assertIn("modal", sc["error"].lower())
        s.ping()
        # The command it lost track of was cancelled, not left running.
        eid = self.exec_for("sleep 0.5; echo hi")["json"]["execId"]
        self.assertTrue([r for r in of(self.gw.requests(), "POST", CANCEL_RE) if eid in r["path"]])
        self.assertEqual(s.run("echo fine")["output"], "fine")
        self.gw.fault(method="POST", path="/execs$", malformed=True)
        self.assertToolError(s.call({"command": "echo hi"}), "malformed")
        self.assertEqual(s.run("echo fine")["output"], "fine")

    def test_malformed_create_answer(self):
        self.gw.fault(method="POST", path="^/v1/sandboxes$", malformed=True)
        s = self.start_server()
        sc = self.assertToolError(s.call({"command": "echo hi"}), "sandbox id")
        self.assertIn("modal", sc["error"].lower())
        self.assertEqual(s.run("echo fine")["output"], "fine")

    def test_answer_about_another_exec(self):
        s = self.start_server()
        s.run("true")
        self.gw.fault(method="POST", path="/execs$", status=202,
                      body={"execId": "someone-else", "status": "running"})
        sc = self.assertToolError(s.call({"command": "echo hi"}), "someone-else")
        self.assertIn("modal", sc["error"].lower())
        self.assertEqual(s.run("echo fine")["output"], "fine")

    def test_401_names_the_variable(self):
        s = self.start(env=self.env(TOOL_GATEWAY_USER_TOKEN="wrong-token"))
        s.initialize()
        sc = self.assertToolError(s.call({"command": "echo hi"}), "TOOL_GATEWAY_USER_TOKEN")
        self.assertNotEqual(sc.get("status"), "degraded")
        self.assertNotIn("wrong-token", json.dumps(sc))
        self.assertNotIn("wrong-token", s.stderr_tail(100000))

    def test_token_revoked_mid_session(self):
        s = self.start_server()
        self.assertEqual(s.run("echo ok")["output"], "ok")
        self.gw.set_token("another-token")
        self.assertToolError(s.call({"command": "echo hi"}), "TOOL_GATEWAY_USER_TOKEN")
        self.gw.set_token(TOKEN)
        self.assertEqual(s.run("echo back")["output"], "back")

    def test_missing_token(self):
        s = self.start(env=self.env(TOOL_GATEWAY_USER_TOKEN=None))
        s.initialize()
        self.assertToolError(s.call({"command": "echo hi"}), "TOOL_GATEWAY_USER_TOKEN")
        self.assertEqual(self.gw.requests(), [])

    def test_gateway_down_is_degraded(self):
        s = self.start(env=self.env(MODAL_GATEWAY_URL="http://127.0.0.1:%d" % closed_port()))
        s.initialize()
        t0 = time.monotonic()
        sc = s.run("echo hi", wait=60)
        self.assertEqual(sc.get("status"), "degraded", sc)
        self.assertIn("modal", sc["error"].lower())
        self.assertLess(time.monotonic() - t0, 30)
        s.ping()

    def test_persistent_5xx_is_degraded_then_recovers(self):
        s = self.start_server()
        s.run("export SW_KEEP=kept")
        self.gw.fault(method="POST", path="/execs$", status=503, times=1000)
        sc = s.run("echo hi", wait=60)
        self.assertEqual(sc.get("status"), "degraded", sc)
        self.gw.clear_faults()
        sc = s.run("echo $SW_KEEP")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "kept")
        self.assertNotIn("environment_recreated", sc)


# ============================================================================ lifecycle

class ModalLifecycle(ModalBase):

    def sleeping(self, tag):
        return [p for p in self.gw.procs() if " ".join(p["cmdline"]) == "sleep " + tag]

    def cancels_of(self, eid):
        return [r for r in of(self.gw.requests(), "POST", CANCEL_RE)
                if CANCEL_RE.match(r["path"]).group(2) == eid]

    def test_cancellation_cancels_the_exec(self):
        s = self.start_server()
        s.run("true")
        tag = "41%d" % (uuid.uuid4().int % 10000)
        rid = s.send_call({"command": "sleep %s; echo never" % tag, "timeout": 120})
        self.assertTrue(wait_until(lambda: self.sleeping(tag), 20), "the command never started")
        eid = self.exec_for("sleep " + tag)["json"]["execId"]
        self.assertEqual(self.sleeping(tag)[0]["exec"], eid)
        s.notify("notifications/cancelled", {"requestId": rid, "reason": "test"})
        self.assertTrue(wait_until(lambda: self.cancels_of(eid), 10), "no cancel request for the exec")
        self.assertTrue(wait_until(lambda: not self.sleeping(tag), 10))
        time.sleep(0.3)
        self.assertFalse(s.has_response(rid))
        self.assertEqual(s.run("echo alive")["output"], "alive")

    def test_timeout_cancels_the_exec(self):
        s = self.start_server()
        t0 = time.monotonic()
        sc = s.run("echo part; sleep 30", timeout=1)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertIn("part", sc["output"])
        eid = self.exec_for("sleep 30")["json"]["execId"]
        self.assertEqual(len(self.cancels_of(eid)), 1)
        self.assertTrue(wait_until(lambda: not self.sleeping("30"), 10))

    def test_sandbox_terminated_at_exit(self):
        s = self.start_server()
        s.run("echo one")
        s.run("echo two", task_id="second")
        s.background("sleep 45")
        ids = sorted(b["id"] for b in self.gw.sandboxes())
        self.assertEqual(len(ids), 2)
        t0 = time.monotonic()
        self.assertEqual(s.stop(), 0)
        self.assertLess(time.monotonic() - t0, 6, "closing is bounded by the 4 s shutdown budget")
        terms = of(self.gw.requests(), "POST", TERMINATE_RE)
        self.assertEqual(sorted(TERMINATE_RE.match(r["path"]).group(1) for r in terms), ids)
        for r in terms:
            self.assertEqual(r["json"], {"snapshotBeforeTerminate": False})
        self.assertEqual({b["state"] for b in self.gw.sandboxes()}, {"terminated"})
        self.assertEqual(self.gw.procs(), [])

    def test_stdin_eof_terminates_too(self):
        s = self.start_server()
        s.run("echo one")
        s.close_stdin()
        self.assertEqual(s.wait_exit(10), 0)
        self.assertEqual(len(of(self.gw.requests(), "POST", TERMINATE_RE)), 1)

    def test_check_command(self):
        """`shellwire --check` opens the backend, runs a command and terminates the sandbox."""
        st = os.path.join(self.gw_tmp(), "state")
        r = subprocess.run([swclient.BIN, "--check"], env=dict(os.environ, SHELLWIRE_STATE_DIR=st,
                           **self.env()), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("all checks passed", r.stdout)
        self.assertNotIn(TOKEN, r.stdout + r.stderr)
        self.assertEqual(len(of(self.gw.requests(), "POST", TERMINATE_RE)), 1)

    def gw_tmp(self):
        d = tempfile.mkdtemp(prefix="swmodal-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_persistent_filesystem(self):
        s = self.start_server(TERMINAL_CONTAINER_PERSISTENT="true")
        s.run("echo kept-file > /root/keep.txt")
        s.close_stdin()
        self.assertEqual(s.wait_exit(10), 0)
        reqs = self.gw.requests()
        self.assertIs(reqs[0]["json"]["persistentFilesystem"], True)
        terms = of(reqs, "POST", TERMINATE_RE)
        self.assertEqual([r["json"] for r in terms], [{"snapshotBeforeTerminate": True}])
        s2 = self.start_server(TERMINAL_CONTAINER_PERSISTENT="true")
        self.assertEqual(s2.run("cat /root/keep.txt")["output"], "kept-file")


if __name__ == "__main__":
    swclient.main()
