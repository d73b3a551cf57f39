#!/usr/bin/env python3
"""Tests of the morph backend (TERMINAL_ENV=morph; backends/morph.c, backends/http.c)
against the local stand-in of the Morph Cloud API (tests/standins/morph_api.py), which runs
each instance's commands on this host in a private directory per instance.

  - the shared behaviour list (backend_suite.SharedBehaviour);
  - the exact requests (instance start with the snapshot id escaped in the query, metadata,
    idempotency key, bearer header, the exec argv with its `timeout` backstop, connection
    reuse, no `Expect:`);
  - faults: 5xx then success, 429 with Retry-After (the wait is measured), a slow answer
    beyond the deadline (timeout result), a vanished instance (`environment_recreated`),
    FastAPI validation errors quoted with their location, malformed JSON, an instance that
    fails to start, 401 / a missing key (errors naming MORPH_API_KEY), a missing snapshot
    (naming TERMINAL_MORPH_SNAPSHOT), an unreachable API (`status: "degraded"`);
  - the instance stopped at server exit (paused, and reused later, when persistent);
  - the token never printed, even at SHELLWIRE_LOG_LEVEL=debug.

Standard library only; the stand-in helper comes from test_daytona.py. Run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_morph.py [name-filter ...]
"""

import json
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_suite  # noqa: E402
import swclient  # noqa: E402
from swclient import wait_until  # noqa: E402
from test_daytona import StandInCase, closed_port  # noqa: E402

HEX32 = re.compile(r"[0-9a-f]{32}")
SNAPSHOT = "snapshot_standin"


class MorphCase(StandInCase):

    SCRIPT = "morph_api.py"
    TOKEN = "morph_test_" + uuid.uuid4().hex
    KEPT_STATES = ("paused",)

    def standin_args(self):
        return ("--snapshot", SNAPSHOT, "--snapshot", "team/snap shot+1")

    def env(self, **extra):
        e = {"TERMINAL_ENV": "morph", "MORPH_API_KEY": self.TOKEN,
             "MORPH_BASE_URL": self.standin.url, "TERMINAL_MORPH_SNAPSHOT": SNAPSHOT,
             "TERMINAL_CWD": "~"}
        e.update(extra)
        return e

    def execs(self):
        return [r for r in self.standin.requests("POST") if r["path"].endswith("/exec")]

    def starts(self):
        return [r for r in self.standin.requests("POST")
                if r["path"].startswith("/api/instance?")]


class MorphShared(MorphCase, backend_suite.SharedBehaviour):

    def start_server(self, **env):
        return self.server(**env)

    def sandbox_procs(self):
        return self.standin.procs()


# ============================================================================ requests

class RequestTests(MorphCase):

    def test_exact_requests(self):
        s = self.server()
        sc = s.run("echo hi")
        self.assertEqual((sc["output"], sc["exit_code"]), ("hi", 0), sc)
        reqs = self.standin.requests()
        for r in reqs:
            self.assertEqual(r["headers"].get("authorization"), "Bearer " + self.TOKEN, r["path"])
            self.assertNotIn("expect", r["headers"], r["path"])
        starts = self.starts()
        self.assertEqual([r["path"] for r in starts], ["/api/instance?snapshot_id=" + SNAPSHOT])
        st = starts[0]
        self.assertEqual(st["headers"].get("content-type"), "application/json")
        self.assertRegex(st["headers"].get("idempotency-key", ""), HEX32)
        self.assertEqual(st["body"], {"metadata": {"shellwire_task_id": "default"}})
        iid, _ = self.only_sandbox()
        self.assertTrue(self.standin.requests("GET", path="/api/instance/" + iid))
        ex = self.execs()
        self.assertTrue(ex)
        for r in ex:
            self.assertEqual(r["path"], "/api/instance/%s/exec" % iid)
            self.assertEqual(list(r["body"]), ["command"])
            argv = r["body"]["command"]
            self.assertEqual(argv[:3], ["timeout", "-k", "1"], argv)
            self.assertRegex(argv[3], r"^[0-9]+$")
            self.assertEqual(argv[4:6], ["bash", "-c"], argv)
            self.assertIn(len(argv), (7, 9), argv)
        user = [r["body"]["command"] for r in ex if "echo hi" in r["body"]["command"][-1]]
        self.assertEqual(len(user), 1)
        self.assertEqual(user[0][7], "bash")
        # The default 180 s limit is ours; the remote `timeout` is a later backstop.
        self.assertGreater(int(user[0][3]), 180)

    def test_snapshot_id_escaped(self):
        s = self.server(TERMINAL_MORPH_SNAPSHOT="team/snap shot+1")
        self.assertEqual(s.run("echo esc")["output"], "esc")
        self.assertEqual([r["path"] for r in self.starts()],
                         ["/api/instance?snapshot_id=team%2Fsnap%20shot%2B1"])

    def test_unknown_snapshot(self):
        s = self.server(TERMINAL_MORPH_SNAPSHOT="snapshot_nowhere")
        resp = s.call({"command": "echo no"})
        sc = self.assertToolError(resp, "snapshot_nowhere not found")
        self.assertIn("404", sc["error"])

    def test_connections_are_reused(self):
        s = self.server()
        s.run("true")
        before = len(self.execs())
        for i in range(10):
            self.assertEqual(s.run("echo %d" % i)["output"], str(i))
        peers = {r["peer"] for r in self.execs()[before:]}
        self.assertLessEqual(len(peers), 2, "new connection per request: %r" % peers)


# ============================================================================ faults

class FaultTests(MorphCase):

    def test_5xx_then_success(self):
        s = self.server()
        s.run("true")
        n0 = len(self.execs())
        self.standin.faults({"match": "POST /api/instance/", "count": 2, "status": 502})
        sc = s.run("echo once >> counter.txt; cat counter.txt")
        self.assertEqual((sc["output"], sc["exit_code"], sc["error"]), ("once", 0, None), sc)
        ex = self.execs()[n0:]
        self.assertEqual(len(ex), 3)
        self.assertEqual(len({r["raw"] for r in ex}), 1)

    def test_429_retry_after(self):
        s = self.server()
        s.run("true")
        n0 = len(self.execs())
        self.standin.faults({"match": "POST /api/instance/", "count": 1, "status": 429,
                             "headers": {"Retry-After": "2"}, "body": {"detail": "slow down"}})
        self.assertEqual(s.run("echo later")["output"], "later")
        ex = self.execs()[n0:]
        self.assertEqual(len(ex), 2)
        gap = ex[1]["time"] - ex[0]["time"]
        self.assertGreaterEqual(gap, 1.9, gap)
        self.assertLess(gap, 4, gap)

    def test_slow_answer_beyond_deadline(self):
        s = self.server()
        s.run("true")
        self.standin.faults({"match": "POST /api/instance/", "count": 1, "delay": 6})
        t0 = time.monotonic()
        sc = s.run("echo slow", timeout=1)
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertIn("timed out", sc["output"])
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(s.run("echo next")["output"], "next")

    def test_timeout_keeps_partial_output_and_kills(self):
        s = self.server()
        sc = s.run("echo first; sleep 31; echo never", timeout=2)
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertTrue(sc["output"].startswith("first"), sc)
        self.assertNotIn("never", sc["output"])
        self.assertTrue(wait_until(lambda: not [p for p in self.standin.procs() if "sleep 31" in p], 10))

    def test_vanished_instance_recreated(self):
        s = self.server()
        s.run("echo one > f.txt")
        iid, _ = self.only_sandbox()
        self.standin.control("POST", "sandbox/%s/vanish" % iid)
        sc = s.run("echo two; test -e f.txt && echo stale || echo fresh")
        self.assertEqual(sc["output"], "two\nfresh", sc)
        self.assertIsInstance(sc.get("environment_recreated"), str, sc)
        new, _ = self.only_sandbox()
        self.assertNotEqual(new, iid)
        self.assertEqual(len(self.starts()), 2)

    def test_validation_error_quoted(self):
        s = self.server()
        s.run("true")
        self.standin.faults({"match": "POST /api/instance/", "count": 1, "status": 422,
                             "body": {"detail": [{"loc": ["body", "command"], "msg": "field required",
                                                  "type": "value_error.missing"}]}})
        resp = s.call({"command": "echo x"})
        sc = self.assertToolError(resp, "body.command: field required")
        self.assertIn("422", sc["error"])
        self.assertEqual(s.run("echo fine")["output"], "fine")

    def test_malformed_json_answer(self):
        s = self.server()
        s.run("true")
        self.standin.faults({"match": "POST /api/instance/", "count": 1, "malformed": True})
        resp = s.call({"command": "echo hi"})
        self.assertToolError(resp, "malformed")
        self.assertTrue(s.alive())
        self.assertEqual(s.run("echo recovered")["output"], "recovered")

    def test_instance_fails_to_start(self):
        self.standin.config(fail_next_create=True)
        s = self.server()
        resp = s.call({"command": "echo hi"})
        self.assertToolError(resp, "failed to start")
        self.assertEqual(self.standin.sandboxes(), {}, "the failed instance must be stopped")

    def test_wrong_key_401(self):
        s = self.server(MORPH_API_KEY="morph_wrong_" + uuid.uuid4().hex)
        resp = s.call({"command": "echo hi"})
        sc = self.assertToolError(resp, "MORPH_API_KEY")
        self.assertIn("401", sc["error"])
        self.assertEqual(len(self.starts()), 1, "401 is not retried")

    def test_missing_key(self):
        s = self.server(MORPH_API_KEY=None)
        self.assertToolError(s.call({"command": "echo hi"}), "MORPH_API_KEY")
        self.assertEqual(self.standin.requests(), [])

    def test_missing_snapshot(self):
        s = self.server(TERMINAL_MORPH_SNAPSHOT=None)
        self.assertToolError(s.call({"command": "echo hi"}), "TERMINAL_MORPH_SNAPSHOT")
        self.assertEqual(self.standin.requests(), [])

    def test_api_down_degraded(self):
        s = self.server(MORPH_BASE_URL="http://127.0.0.1:%d/api" % closed_port())
        sc = s.run("echo hi", wait=60)
        self.assertEqual(sc.get("status"), "degraded", sc)
        self.assertIn("cannot reach the Morph API", sc["error"])


# ============================================================================ lifecycle

class LifecycleTests(MorphCase):

    def test_stopped_at_stdin_eof(self):
        s = self.server()
        s.run("sleep 300 & echo x")
        iid, _ = self.only_sandbox()
        self.assertTrue(self.standin.procs())
        self.assertEqual(self.finish(s), 0)
        self.assertEqual(self.standin.sandboxes(), {})
        self.assertEqual(len(self.standin.requests("DELETE", path="/api/instance/" + iid)), 1)
        self.assertEqual(self.standin.procs(), [])

    def test_stopped_at_sigterm(self):
        s = self.server()
        s.run("echo x")
        iid, _ = self.only_sandbox()
        self.assertEqual(s.stop(), 0)
        self.assertEqual(self.standin.sandboxes(), {})
        self.assertEqual(len(self.standin.requests("DELETE", path="/api/instance/" + iid)), 1)

    def test_persistent_paused_at_exit_and_reused(self):
        self.persistent_ok = True
        s = self.server(TERMINAL_CONTAINER_PERSISTENT="true")
        s.run("echo data > keep.txt")
        iid, _ = self.only_sandbox()
        self.assertEqual(self.finish(s), 0)
        self.assertEqual(len(self.standin.requests("POST", path="/api/instance/%s/pause" % iid)), 1)
        self.assertEqual(self.standin.requests("DELETE"), [])
        self.assertEqual(self.standin.sandboxes()[iid]["status"], "paused")
        s2 = self.server(TERMINAL_CONTAINER_PERSISTENT="true")
        self.assertEqual(s2.run("cat keep.txt")["output"], "data")
        self.assertEqual(len(self.starts()), 1, "no second instance")
        self.assertTrue(self.standin.requests(
            "GET", path="/api/instance?metadata%5Bshellwire_task_id%5D=default"))
        self.assertEqual(len(self.standin.requests("POST", path="/api/instance/%s/resume" % iid)), 1)
        self.finish(s2)
        self.standin.control("POST", "sandbox/%s/vanish" % iid)

    def test_task_ids_get_their_own_instances(self):
        s = self.server()
        s.run("echo a", task_id="ta")
        s.run("echo b", task_id="tb")
        tasks = sorted(v["metadata"]["shellwire_task_id"] for v in self.standin.sandboxes().values())
        self.assertEqual(tasks, ["ta", "tb"])


# ============================================================================ secrets

class SecretTests(MorphCase):

    def test_token_never_logged(self):
        s = self.server(SHELLWIRE_LOG_LEVEL="debug")
        s.run("echo hi")
        self.standin.faults({"match": "POST /api/instance/", "count": 1, "status": 400,
                             "body": {"detail": "rejected key %s" % self.TOKEN}})
        resp = s.call({"command": "echo again"})
        sc = self.assertToolError(resp, "rejected key")
        self.assertNotIn(self.TOKEN, json.dumps(resp))
        self.assertNotIn(self.TOKEN, sc["error"])
        self.finish(s)
        log = open(s.stderr_path, encoding="utf-8", errors="replace").read()
        self.assertIn("/exec", log, "debug logging is on")
        self.assertNotIn(self.TOKEN, log)


if __name__ == "__main__":
    swclient.main()
