#!/usr/bin/env python3
"""Tests of the daytona backend (TERMINAL_ENV=daytona; backends/daytona.c, backends/http.c)
against the local stand-in of the Daytona API (tests/standins/daytona_api.py), which runs
the sandbox's commands on this host in a private directory per sandbox.

  - the shared behaviour list (backend_suite.SharedBehaviour);
  - the exact requests shellwire sends (paths, bearer header, JSON bodies, idempotency
    keys, connection reuse, no `Expect:`), for the default, image and snapshot modes;
  - faults: 5xx then success (retried, one result), 429 with Retry-After in seconds and as
    an HTTP date (the wait is measured), other 4xx never retried, a connection dropped
    after an exec was sent (not resent) or during a poll (retried), a slow answer beyond the
    deadline and a 408 (timeout results), a vanished sandbox (`environment_recreated`), an
    auto-stopped sandbox (started again), malformed JSON, a failed image build, 401 and a
    missing key (errors naming DAYTONA_API_KEY), an unreachable API and 5xx beyond the
    retry budget (`status: "degraded"`);
  - both daemon generations (command fed to a shell / split into words);
  - the sandbox deleted at server exit (stopped, and reused later, when persistent);
  - the token never printed, even at SHELLWIRE_LOG_LEVEL=debug.

The StandIn helper here is shared with test_morph.py. Standard library only. Run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_daytona.py [name-filter ...]
"""

import email.utils
import json
import os
import re
import shlex
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

STANDINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "standins")
MARK_VAR = "SW_STANDIN_SANDBOX"
HEX32 = re.compile(r"[0-9a-f]{32}")


class StandIn:
    """One stand-in server process (daytona_api.py or morph_api.py) and its control API."""

    def __init__(self, script, *args):
        self.errlog = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, os.path.join(STANDINS, script), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errlog)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the stand-in %s did not start: %s" % (script, self.stderr()))
        info = json.loads(line)
        self.url, self.nonce, self.root = info["url"], info["nonce"], info["root"]
        self.base = "http://127.0.0.1:%d" % info["port"]

    def stderr(self):
        self.errlog.seek(0)
        return self.errlog.read().decode(errors="replace")[-3000:]

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + "/_control/" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def requests(self, method=None, contains=None, path=None):
        """Recorded requests, optionally by method, a part of the path, or the exact path."""
        out = self.control("GET", "requests")["requests"]
        return [r for r in out if (method is None or r["method"] == method)
                and (contains is None or contains in r["path"])
                and (path is None or r["path"] == path)]

    def faults(self, *rules):
        self.control("POST", "faults", {"faults": list(rules)})

    def config(self, **kw):
        self.control("POST", "config", kw)

    def sandboxes(self):
        return self.control("GET", "sandboxes")

    def procs(self):
        """Command lines of live processes started by this stand-in's sandboxes."""
        needle = ("%s=%s:" % (MARK_VAR, self.nonce)).encode()
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/environ" % name, "rb") as f:
                    env = f.read().split(b"\0")
                with open("/proc/%s/stat" % name, "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if state in (b"Z", b"X") or not any(e.startswith(needle) for e in env):
                continue
            out.append(" ".join(c.decode(errors="replace") for c in cmd.split(b"\0") if c))
        return out

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()
        self.errlog.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def execute_command(req):
    """The argv of a process/execute request: ["bash", "-c", wrapper, "bash", script]."""
    return shlex.split(req["body"]["command"])


class StandInCase(ServerTest):
    """A fresh stand-in per test (self.standin); at the end the servers are stopped by
    closing their stdin, and every sandbox must be gone (deleted by the server at exit)
    with none of its processes left. Subclasses set SCRIPT, TOKEN, KEPT_STATES and env()."""

    SCRIPT = None
    TOKEN = None
    KEPT_STATES = ()                # states a persistent sandbox may be left in
    persistent_ok = False           # set by a test that leaves one on purpose

    def standin_args(self):
        return ()

    def env(self, **extra):
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        self.standin = StandIn(self.SCRIPT, "--token", self.TOKEN, "--create-delay", "0.2",
                               *self.standin_args())

    def tearDown(self):
        problems = []
        for s in self.servers:          # the orderly way out: stdin EOF (SIGTERM has its test)
            if s.alive():
                s.close_stdin()
                s.wait_exit(20)
        try:
            super().tearDown()
        finally:
            try:
                left = {k: v for k, v in self.standin.sandboxes().items()
                        if not (self.persistent_ok and v.get("state", v.get("status"))
                                in self.KEPT_STATES)}
                if left:
                    problems.append("sandboxes left after the server exited: %r" % left)
                procs = self.standin.procs()
                if procs:
                    problems.append("sandbox processes left: %r" % procs)
            finally:
                self.standin.stop()
        if problems:
            self.fail("; ".join(problems))

    def server(self, **extra):
        env = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}    # curl honours *_proxy
        env.update(self.env(**extra))
        s = self.start(env=env)
        s.initialize()
        return s

    def finish(self, s):
        """Ends a server the orderly way (stdin EOF); returns its exit status."""
        s.close_stdin()
        return s.wait_exit(20)

    def only_sandbox(self):
        boxes = self.standin.sandboxes()
        self.assertEqual(len(boxes), 1, boxes)
        return next(iter(boxes.items()))


class DaytonaCase(StandInCase):

    SCRIPT = "daytona_api.py"
    TOKEN = "dtn_test_" + uuid.uuid4().hex
    KEPT_STATES = ("stopping", "stopped")

    def env(self, **extra):
        e = {"TERMINAL_ENV": "daytona", "DAYTONA_API_KEY": self.TOKEN,
             "DAYTONA_API_URL": self.standin.url, "TERMINAL_CWD": "~"}
        e.update(extra)
        return e

    def executes(self):
        return self.standin.requests("POST", "/process/execute")


# ============================================================================ shared list

class DaytonaShared(DaytonaCase, backend_suite.SharedBehaviour):

    def start_server(self, **env):
        return self.server(**env)

    def sandbox_procs(self):
        return self.standin.procs()


# ============================================================================ requests

class RequestTests(DaytonaCase):

    def test_exact_requests(self):
        s = self.server()
        sc = s.run("echo hi")
        self.assertEqual((sc["output"], sc["exit_code"]), ("hi", 0), sc)
        reqs = self.standin.requests()
        for r in reqs:
            self.assertEqual(r["headers"].get("authorization"), "Bearer " + self.TOKEN, r["path"])
            self.assertNotIn("expect", r["headers"], r["path"])
        create = self.standin.requests("POST", path="/api/sandbox")
        self.assertEqual(len(create), 1, [r["path"] for r in reqs])
        c = create[0]
        self.assertEqual(c["headers"].get("content-type"), "application/json")
        self.assertRegex(c["headers"].get("idempotency-key", ""), HEX32)
        self.assertEqual(c["body"], {"labels": {"shellwire_task_id": "default"},
                                     "autoDeleteInterval": 0})
        sid, _ = self.only_sandbox()
        polls = [r for r in reqs if r["method"] == "GET" and r["path"] == "/api/sandbox/" + sid]
        self.assertGreaterEqual(len(polls), 1)
        ex = self.executes()
        self.assertTrue(ex)
        for r in ex:
            self.assertEqual(r["path"], "/toolbox/%s/process/execute" % sid)
            argv = execute_command(r)
            self.assertEqual(argv[:2], ["bash", "-c"], argv)
            self.assertEqual(argv[3], "bash", argv)
            self.assertEqual(len(argv), 5, argv)
            self.assertEqual(set(r["body"]) - {"timeout"}, {"command"}, r["body"])
            if "timeout" in r["body"]:
                self.assertIsInstance(r["body"]["timeout"], int)
        self.assertTrue(any("echo hi" in execute_command(r)[4] for r in ex))
        # The user's command ran with a deadline: the daemon's backstop lies beyond ours.
        user = [r for r in ex if "echo hi" in execute_command(r)[4]][0]
        self.assertGreater(user["body"]["timeout"], 180, user["body"])

    def test_image_mode(self):
        s = self.server(TERMINAL_DAYTONA_IMAGE="python:3.12-slim")
        self.assertEqual(s.run("echo img")["output"], "img")
        c = self.standin.requests("POST", path="/api/sandbox")[0]
        self.assertEqual(c["body"]["buildInfo"], {"dockerfileContent": "FROM python:3.12-slim\n"})
        self.assertNotIn("snapshot", c["body"])

    def test_snapshot_mode(self):
        s = self.server(TERMINAL_DAYTONA_SNAPSHOT="daytonaio/sandbox:0.4.3")
        self.assertEqual(s.run("echo snap")["output"], "snap")
        c = self.standin.requests("POST", path="/api/sandbox")[0]
        self.assertEqual(c["body"]["snapshot"], "daytonaio/sandbox:0.4.3")
        self.assertNotIn("buildInfo", c["body"])

    def test_image_and_snapshot_together_refused(self):
        s = self.server(TERMINAL_DAYTONA_IMAGE="x", TERMINAL_DAYTONA_SNAPSHOT="y")
        resp = s.call({"command": "echo no"})
        sc = self.assertToolError(resp, "TERMINAL_DAYTONA_SNAPSHOT")
        self.assertIn("TERMINAL_DAYTONA_IMAGE", sc["error"])
        self.assertEqual(self.standin.requests(), [])

    def test_connections_are_reused(self):
        s = self.server()
        s.run("true")
        before = len(self.executes())
        for i in range(10):
            self.assertEqual(s.run("echo %d" % i)["output"], str(i))
        peers = {r["peer"] for r in self.executes()[before:]}
        self.assertLessEqual(len(peers), 2, "new connection per request: %r" % peers)

    def test_old_daemon_generation(self):
        self.standin.config(daemon="old")
        s = self.server()
        sc = s.run("x='a  b'; echo \"[$x]\" 'it''s' \"$((6*7))\"; cd /tmp && export SW_Q=\"q'uote\"")
        self.assertEqual(sc["output"], "[a  b] its 42", sc)
        sc = s.run("pwd; echo \"$SW_Q\"")
        self.assertEqual(sc["output"], "/tmp\nq'uote", sc)


# ============================================================================ faults

class FaultTests(DaytonaCase):

    def test_5xx_then_success(self):
        s = self.server()
        s.run("true")
        n0 = len(self.executes())
        self.standin.faults({"match": "POST /toolbox/", "count": 2, "status": 503})
        sc = s.run("echo once >> counter.txt; cat counter.txt")
        self.assertEqual((sc["output"], sc["exit_code"], sc["error"]), ("once", 0, None), sc)
        ex = self.executes()[n0:]
        self.assertEqual(len(ex), 3, [r["path"] for r in ex])
        self.assertEqual(len({r["raw"] for r in ex}), 1, "retries must resend the same request")

    def test_429_retry_after_seconds(self):
        s = self.server()
        s.run("true")
        n0 = len(self.executes())
        self.standin.faults({"match": "POST /toolbox/", "count": 1, "status": 429,
                             "headers": {"Retry-After": "2"}})
        t0 = time.monotonic()
        self.assertEqual(s.run("echo late")["output"], "late")
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        ex = self.executes()[n0:]
        self.assertEqual(len(ex), 2)
        gap = ex[1]["time"] - ex[0]["time"]
        self.assertGreaterEqual(gap, 1.9, gap)
        self.assertLess(gap, 4, gap)

    def test_429_retry_after_http_date(self):
        s = self.server()
        s.run("true")
        n0 = len(self.executes())
        when = email.utils.formatdate(time.time() + 3, usegmt=True)
        self.standin.faults({"match": "POST /toolbox/", "count": 1, "status": 429,
                             "headers": {"Retry-After": when}})
        self.assertEqual(s.run("echo dated")["output"], "dated")
        ex = self.executes()[n0:]
        gap = ex[1]["time"] - ex[0]["time"]
        self.assertGreaterEqual(gap, 1.5, gap)
        self.assertLess(gap, 5, gap)

    def test_backoff_without_retry_after_is_short(self):
        s = self.server()
        s.run("true")
        n0 = len(self.executes())
        self.standin.faults({"match": "POST /toolbox/", "count": 1, "status": 502})
        self.assertEqual(s.run("echo quick")["output"], "quick")
        ex = self.executes()[n0:]
        self.assertLess(ex[1]["time"] - ex[0]["time"], 1.0)

    def test_other_4xx_not_retried(self):
        s = self.server()
        s.run("true")
        n0 = len(self.executes())
        self.standin.faults({"match": "POST /toolbox/", "count": 5, "status": 422,
                             "message": "unprocessable thing"})
        resp = s.call({"command": "echo no"})
        sc = self.assertToolError(resp, "unprocessable thing")
        self.assertIn("422", sc["error"])
        self.assertEqual(len(self.executes()[n0:]), 1)
        # The sandbox itself was looked at (it is fine) rather than assumed broken.
        self.standin.control("DELETE", "faults")
        self.assertEqual(s.run("echo fine")["output"], "fine")

    def test_dropped_exec_not_resent(self):
        # The connection breaks after the command was sent: it may have run, so shellwire
        # does not send it again; the call reports the backend as degraded and the next one
        # works. (libcurl itself resends once when a reused keep-alive connection turns out
        # dead before any answer byte; the second drop hits that resend, on a fresh
        # connection, which libcurl never resends.)
        s = self.server()
        s.run("true")
        n0 = len(self.executes())
        self.standin.faults({"match": "POST /toolbox/", "count": 2, "drop": True})
        sc = s.run("echo once >> dropped.txt")
        self.assertEqual(sc.get("status"), "degraded", sc)
        self.assertIn("cannot reach the Daytona API", sc["error"])
        self.assertEqual(len(self.executes()[n0:]), 2)
        self.assertEqual(s.run("cat dropped.txt 2>/dev/null | wc -l")["output"].strip(), "0")

    def test_dropped_poll_retried(self):
        self.standin.faults({"match": "GET /api/sandbox/", "count": 1, "drop": True})
        s = self.server()
        self.assertEqual(s.run("echo polled")["output"], "polled")
        self.assertGreaterEqual(len(self.standin.requests("GET", "/api/sandbox/")), 2)

    def test_slow_answer_beyond_deadline(self):
        s = self.server()
        s.run("true")
        self.standin.faults({"match": "POST /toolbox/", "count": 1, "delay": 6})
        t0 = time.monotonic()
        sc = s.run("echo slow", timeout=1)
        took = time.monotonic() - t0
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertIn("timed out", sc["output"])
        self.assertLess(took, 4, took)
        self.assertEqual(s.run("echo next")["output"], "next")

    def test_408_is_a_timeout(self):
        s = self.server()
        s.run("true")
        self.standin.faults({"match": "POST /toolbox/", "count": 1, "status": 408,
                             "message": "command execution timeout"})
        sc = s.run("echo x", timeout=5)
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertIn("timed out", sc["output"])
        self.assertEqual(s.run("echo after")["output"], "after")

    def test_real_daemon_timeout_keeps_partial_output(self):
        s = self.server()
        sc = s.run("echo first; sleep 30; echo never", timeout=2)
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertTrue(sc["output"].startswith("first"), sc)
        self.assertNotIn("never", sc["output"])
        self.assertTrue(wait_until(lambda: not [p for p in self.standin.procs() if "sleep 30" in p], 10))

    def test_vanished_sandbox_recreated(self):
        s = self.server()
        s.run("echo one > f.txt")
        sid, _ = self.only_sandbox()
        self.standin.control("POST", "sandbox/%s/vanish" % sid)
        sc = s.run("echo two; test -e f.txt && echo stale || echo fresh")
        self.assertEqual(sc["output"], "two\nfresh", sc)
        self.assertIsInstance(sc.get("environment_recreated"), str, sc)
        self.assertTrue(sc["environment_recreated"], sc)
        new, _ = self.only_sandbox()
        self.assertNotEqual(new, sid)
        self.assertEqual(len(self.standin.requests("POST", path="/api/sandbox")), 2)
        sc = s.run("echo three")
        self.assertNotIn("environment_recreated", sc)

    def test_stopped_sandbox_started_again(self):
        self.persistent_ok = True
        s = self.server(TERMINAL_CONTAINER_PERSISTENT="true")
        s.run("echo kept > keep.txt")
        sid, box = self.only_sandbox()
        self.assertEqual(box["name"], "shellwire-default")
        self.standin.control("POST", "sandbox/%s/stop" % sid)
        self.assertTrue(wait_until(lambda: self.standin.sandboxes()[sid]["state"] == "stopped", 5))
        sc = s.run("cat keep.txt")
        self.assertEqual(sc["output"], "kept", sc)
        self.assertNotIn("environment_recreated", sc)
        self.assertEqual(len(self.standin.requests("POST", "/api/sandbox/%s/start" % sid)), 1)
        self.assertEqual(len(self.standin.requests("POST", path="/api/sandbox")), 1)

    def test_malformed_json_answer(self):
        s = self.server()
        s.run("true")
        self.standin.faults({"match": "POST /toolbox/", "count": 1, "malformed": True})
        resp = s.call({"command": "echo hi"})
        self.assertToolError(resp, "malformed")
        self.assertTrue(s.alive())
        self.assertEqual(s.run("echo recovered")["output"], "recovered")

    def test_malformed_create_answer(self):
        s = self.server()
        self.standin.faults({"match": "POST /api/sandbox", "count": 1, "malformed": True})
        resp = s.call({"command": "echo hi"})
        self.assertToolError(resp, "malformed")
        self.assertTrue(s.alive())
        self.assertEqual(s.run("echo works")["output"], "works")
        # The sandbox behind the unreadable answer cannot be known to shellwire: gone by hand.
        for sid in self.standin.sandboxes():
            if not self.standin.requests(contains="/toolbox/" + sid):
                self.standin.control("POST", "sandbox/%s/vanish" % sid)

    def test_failed_build_reported(self):
        self.standin.config(fail_next_create={"state": "build_failed",
                                              "errorReason": "Dockerfile step 3 exploded"})
        s = self.server(TERMINAL_DAYTONA_IMAGE="broken:latest")
        resp = s.call({"command": "echo hi"})
        sc = self.assertToolError(resp, "Dockerfile step 3 exploded")
        self.assertIn("build_failed", sc["error"])
        self.assertEqual(self.standin.sandboxes(), {}, "the failed sandbox must be deleted")
        self.assertEqual(len(self.standin.requests("DELETE", "/api/sandbox/")), 1)

    def test_wrong_key_401(self):
        s = self.server(DAYTONA_API_KEY="dtn_wrong_" + uuid.uuid4().hex)
        resp = s.call({"command": "echo hi"})
        sc = self.assertToolError(resp, "DAYTONA_API_KEY")
        self.assertIn("401", sc["error"])
        self.assertIn("Invalid credentials", sc["error"])
        self.assertEqual(len(self.standin.requests("POST", path="/api/sandbox")), 1, "401 is not retried")

    def test_missing_key(self):
        s = self.server(DAYTONA_API_KEY=None)
        resp = s.call({"command": "echo hi"})
        self.assertToolError(resp, "DAYTONA_API_KEY")
        self.assertEqual(self.standin.requests(), [])

    def test_api_down_degraded(self):
        s = self.server(DAYTONA_API_URL="http://127.0.0.1:%d/api" % closed_port())
        t0 = time.monotonic()
        sc = s.run("echo hi", wait=60)
        self.assertEqual(sc.get("status"), "degraded", sc)
        self.assertIn("cannot reach the Daytona API", sc["error"])
        self.assertLess(time.monotonic() - t0, 40)

    def test_5xx_beyond_budget_degraded(self):
        s = self.server()
        s.run("true")
        n0 = len(self.executes())
        self.standin.faults({"match": "POST /toolbox/", "count": 1000, "status": 503,
                             "message": "toolbox overloaded"})
        sc = s.run("echo hi", wait=90)
        self.assertEqual(sc.get("status"), "degraded", sc)
        self.assertIn("toolbox overloaded", sc["error"])
        self.assertGreater(len(self.executes()[n0:]), 3)
        self.standin.control("DELETE", "faults")
        self.assertEqual(s.run("echo back")["output"], "back")

    def test_create_retried_with_same_idempotency_key(self):
        self.standin.faults({"match": "POST /api/sandbox", "count": 1, "status": 500})
        s = self.server()
        self.assertEqual(s.run("echo made")["output"], "made")
        creates = self.standin.requests("POST", path="/api/sandbox")
        self.assertEqual(len(creates), 2)
        keys = {r["headers"].get("idempotency-key") for r in creates}
        self.assertEqual(len(keys), 1, keys)
        self.assertRegex(keys.pop(), HEX32)


# ============================================================================ lifecycle

class LifecycleTests(DaytonaCase):

    def test_deleted_at_sigterm(self):
        s = self.server()
        s.run("sleep 300 & echo bg")
        sid, _ = self.only_sandbox()
        self.assertTrue(self.standin.procs())
        self.assertEqual(s.stop(), 0)
        self.assertEqual(self.standin.sandboxes(), {})
        self.assertEqual(len(self.standin.requests("DELETE", "/api/sandbox/" + sid)), 1)
        self.assertEqual(self.standin.procs(), [])

    def test_deleted_at_stdin_eof(self):
        s = self.server()
        s.run("sleep 300 & echo x")
        sid, _ = self.only_sandbox()
        self.assertEqual(self.finish(s), 0)
        self.assertEqual(self.standin.sandboxes(), {})
        self.assertEqual(len(self.standin.requests("DELETE", "/api/sandbox/" + sid)), 1)
        self.assertEqual(self.standin.procs(), [])

    def test_persistent_stopped_at_exit_and_reused(self):
        self.persistent_ok = True
        s = self.server(TERMINAL_CONTAINER_PERSISTENT="true")
        s.run("echo data > keep.txt")
        sid, _ = self.only_sandbox()
        self.assertEqual(self.finish(s), 0)
        self.assertEqual(len(self.standin.requests("POST", "/api/sandbox/%s/stop" % sid)), 1)
        self.assertEqual(self.standin.requests("DELETE"), [])
        self.assertTrue(wait_until(lambda: self.standin.sandboxes()[sid]["state"] == "stopped", 5))
        s2 = self.server(TERMINAL_CONTAINER_PERSISTENT="true")
        self.assertEqual(s2.run("cat keep.txt")["output"], "data")
        self.assertEqual(len(self.standin.requests("POST", path="/api/sandbox")), 1, "no second sandbox")
        self.assertTrue(self.standin.requests("GET", "/api/sandbox/shellwire-default"))
        self.assertEqual(len(self.standin.requests("POST", "/api/sandbox/%s/start" % sid)), 1)

    def test_task_ids_get_their_own_sandboxes(self):
        s = self.server()
        s.run("echo a", task_id="ta")
        s.run("echo b", task_id="tb")
        labels = sorted(v["labels"]["shellwire_task_id"] for v in self.standin.sandboxes().values())
        self.assertEqual(labels, ["ta", "tb"])


# ============================================================================ secrets

class SecretTests(DaytonaCase):

    def test_token_never_logged(self):
        s = self.server(SHELLWIRE_LOG_LEVEL="debug")
        s.run("echo hi")
        self.standin.faults({"match": "POST /toolbox/", "count": 1, "status": 400,
                             "message": "bad request from key %s" % self.TOKEN})
        resp = s.call({"command": "echo again"})
        sc = self.assertToolError(resp, "bad request from key")
        self.assertNotIn(self.TOKEN, json.dumps(resp))
        self.finish(s)
        log = open(s.stderr_path, encoding="utf-8", errors="replace").read()
        self.assertIn("process/execute", log, "debug logging is on")
        self.assertNotIn(self.TOKEN, log)
        self.assertNotIn(self.TOKEN[-12:], log)
        self.assertNotIn(self.TOKEN, sc["error"])


if __name__ == "__main__":
    swclient.main()
