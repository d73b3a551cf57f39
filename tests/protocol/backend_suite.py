"""The behaviour every backend must share (SPEC 3-5), as a mixin for test classes.

A backend's test module defines

    class DockerShared(swclient.ServerTest, backend_suite.SharedBehaviour):
        def start_server(self, **env): ...   # an initialized swclient.Server on the backend
        def sandbox_procs(self): ...         # command lines of processes now running in
                                             # the sandbox(es) of this test's servers

and gets the test_shared_* methods below: state persistence (cwd, exported variables,
functions, aliases, unset), exit codes, stdout/stderr merged in order, timeouts that leave
no process behind inside the sandbox, cancellation, a 20 MB stream, a background `&` child
that does not delay the answer, head/tail truncation with the saved full output, workdir,
a vanished directory, and background processes through the process tool (poll, log, wait,
kill). Commands are harmless and use bash and coreutils only.

tests/protocol/test_shared_local.py runs the same list against the local backend, which
keeps the list itself honest.
"""

import re
import threading
import time
import uuid

from swclient import wait_until

NOTICE_RE = re.compile(r"\.\.\. \[OUTPUT TRUNCATED - (\d+) chars omitted out of (\d+) total\] \.\.\.")

# Kills the processes whose command line starts with $1, with bash and /proc only (the
# sandbox may have no pkill).
KILL_BY_CMDLINE = ("for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); "
                   "[[ $c == \"$1 \"* ]] && kill ${p#/proc/} 2>/dev/null; done; true")


class SharedBehaviour:
    """Mixin: needs start_server(**env) and sandbox_procs() from the test class."""

    # A limit on output small enough to truncate cheaply.
    LIMIT = 2000

    def srv(self, **env):
        return self.start_server(**env)

    def tagged(self, tag):
        return [c for c in self.sandbox_procs() if tag in c]

    # ---- state ----------------------------------------------------------------------

    def test_shared_state_persists(self):
        s = self.srv()
        sc = s.run("mkdir -p swdir/sub && cd swdir/sub && export SW_A='x y' && "
                   "swf() { echo \"fn:$1\"; } && alias swal='echo aliased'")
        self.assertEqual(sc["exit_code"], 0, sc)
        sc = s.run("pwd; echo \"[$SW_A]\"; swf 7; swal")
        self.assertEqual(sc["exit_code"], 0, sc)
        lines = sc["output"].splitlines()
        self.assertTrue(lines[0].endswith("/swdir/sub"), sc)
        self.assertEqual(lines[1:], ["[x y]", "fn:7", "aliased"], sc)
        self.assertTrue(sc.get("cwd", lines[0]).endswith("/swdir/sub"), sc)
        s.run("unset SW_A; cd ..")
        sc = s.run("echo \"[${SW_A-unset}]\"; basename \"$PWD\"")
        self.assertEqual(sc["output"].split(), ["[unset]", "swdir"], sc)

    def test_shared_task_ids_are_separate(self):
        s = self.srv()
        s.run("export SW_T=one", task_id="t1")
        s.run("export SW_T=two", task_id="t2")
        self.assertEqual(s.run("echo $SW_T", task_id="t1")["output"].strip(), "one")
        self.assertEqual(s.run("echo $SW_T", task_id="t2")["output"].strip(), "two")

    def test_shared_workdir_does_not_move_session(self):
        s = self.srv()
        home = s.run("pwd")["output"].strip()
        sc = s.run("pwd", workdir="/")
        self.assertEqual(sc["output"].strip(), "/", sc)
        self.assertEqual(s.run("pwd")["output"].strip(), home)

    def test_shared_vanished_directory(self):
        s = self.srv()
        s.run("mkdir -p gone_dir && cd gone_dir")
        s.run("rmdir \"$PWD\"")
        sc = s.run("echo ran")
        self.assertEqual(sc["exit_code"], 126, sc)
        self.assertNotIn("ran", sc["output"].replace("did not run", ""))
        self.assertEqual(s.run("echo ran")["output"].strip(), "ran")

    # ---- exit codes and output ------------------------------------------------------

    def test_shared_exit_codes(self):
        s = self.srv()
        for cmd, code in (("true", 0), ("false", 1), ("exit 7", 7), ("(exit 200)", 200),
                          ("no_such_command_sw", 127), ("kill -TERM $$", 143)):
            sc = s.run(cmd)
            self.assertEqual(sc["exit_code"], code, (cmd, sc))
        sc = s.run("no_such_command_sw")
        self.assertIn("not found", sc["output"])
        self.assertEqual(s.run("echo after")["output"].strip(), "after")

    def test_shared_merged_output_in_order(self):
        s = self.srv()
        sc = s.run("echo one; echo two >&2; echo three; printf 'no newline'")
        self.assertEqual(sc["output"], "one\ntwo\nthree\nno newline", sc)

    def test_shared_no_marker_or_tag_leaks(self):
        s = self.srv()
        sc = s.run("echo __SHELLWIRE_END_x__0__; printf '_'; printf '__'")
        self.assertEqual(sc["output"], "__SHELLWIRE_END_x__0__\n___", sc)
        self.assertNotIn("SHELLWIRE_CWD", s.run("echo hi")["output"])

    def test_shared_stdin_is_empty(self):
        s = self.srv()
        sc = s.run("cat; echo rc=$?", timeout=10)
        self.assertEqual(sc["output"].strip(), "rc=0", sc)

    def test_shared_20mb_stream(self):
        s = self.srv()
        t0 = time.monotonic()
        sc = s.run("head -c 20000000 /dev/zero | tr '\\0' a; echo; echo done", timeout=120)
        self.assertEqual(sc["exit_code"], 0, {k: v for k, v in sc.items() if k != "output"})
        self.assertEqual(sc.get("output_total_chars"), 20000006)
        self.assertTrue(sc["output"].endswith("a\ndone"), sc["output"][-50:])
        self.assertLess(time.monotonic() - t0, 60)

    def test_shared_truncation_and_full_output(self):
        s = self.srv(SHELLWIRE_MAX_OUTPUT_CHARS=str(self.LIMIT))
        sc = s.run("head -c 10000 /dev/zero | tr '\\0' b")
        m = NOTICE_RE.search(sc["output"])
        self.assertIsNotNone(m, sc["output"][:300])
        self.assertEqual(int(m.group(2)), 10000)
        self.assertEqual(sc.get("output_total_chars"), 10000)
        path = sc.get("full_output_path")
        self.assertIsInstance(path, str, sc)
        with open(path, encoding="utf-8") as f:
            self.assertEqual(f.read(), "b" * 10000)

    # ---- time limits ---------------------------------------------------------------------

    def test_shared_background_child_does_not_delay(self):
        s = self.srv()
        tag = "31%d" % (uuid.uuid4().int % 10000)
        t0 = time.monotonic()
        sc = s.run("sleep %s & echo started" % tag, timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(sc["exit_code"], 0, sc)
        self.assertEqual(sc["output"].strip(), "started", sc)
        self.assertLess(took, 10, "an & child held the call for %.1fs" % took)
        self.assertTrue(wait_until(lambda: self.tagged("sleep " + tag), 5), "the & child should keep running")
        s.run("set -- 'sleep %s'; %s" % (tag, KILL_BY_CMDLINE))
        self.assertTrue(wait_until(lambda: not self.tagged("sleep " + tag), 10))

    def test_shared_leftover_child_ends_with_the_server(self):
        s = self.srv()
        tag = "35%d" % (uuid.uuid4().int % 10000)
        sc = s.run("sleep %s & echo started" % tag)
        self.assertEqual(sc["output"].strip(), "started", sc)
        self.assertTrue(wait_until(lambda: self.tagged("sleep " + tag), 5), "the & child should run")
        s.close_stdin()
        self.assertIsNotNone(s.wait_exit(15), "the server did not exit after stdin closed")
        self.assertTrue(wait_until(lambda: not self.tagged("sleep " + tag), 10),
                        "a command's leftover child outlived the server: %r" % self.tagged("sleep " + tag))

    def test_shared_timeout_kills_tree(self):
        s = self.srv()
        tag = "32%d" % (uuid.uuid4().int % 10000)
        t0 = time.monotonic()
        sc = s.run("echo before; bash -c 'sleep %s & sleep %s; wait'; echo finished-cmd" % (tag, tag), timeout=2)
        took = time.monotonic() - t0
        self.assertEqual(sc.get("exit_code"), 124, sc)
        self.assertIn("before", sc["output"])
        self.assertNotIn("finished-cmd", sc["output"])
        self.assertIn("timed out", sc["output"] + str(sc.get("error")) + str(sc.get("note", "")))
        self.assertLess(took, 12, "timeout answer took %.1fs" % took)
        self.assertTrue(wait_until(lambda: not self.tagged("sleep " + tag), 10),
                        "survivors in the sandbox: %r" % self.tagged("sleep " + tag))
        self.assertEqual(s.run("echo alive")["output"].strip(), "alive")

    def test_shared_cancel_kills_tree(self):
        s = self.srv()
        tag = "33%d" % (uuid.uuid4().int % 10000)
        rid = s.send_call({"command": "sleep %s; echo never" % tag, "timeout": 120})
        self.assertTrue(wait_until(lambda: self.tagged("sleep " + tag), 30), "command never started")
        s.notify("notifications/cancelled", {"requestId": rid, "reason": "test"})
        self.assertTrue(wait_until(lambda: not self.tagged("sleep " + tag), 15),
                        "cancelled command still runs: %r" % self.tagged("sleep " + tag))
        time.sleep(0.3)
        self.assertFalse(s.has_response(rid) and "never" in str(s.responses_for(rid)))
        self.assertEqual(s.run("echo alive")["output"].strip(), "alive")

    def test_shared_progress_while_running(self):
        s = self.srv()
        rid = s.send_call({"command": "sleep 3; echo end", "timeout": 60}, meta={"progressToken": "p1"})
        r = s.wait_response(rid, timeout=90)
        self.assertEqual(r["result"]["structuredContent"]["output"].strip(), "end", r)
        with s.cv:
            notes = [m for _, m in s.notifications if m.get("method") == "notifications/progress"
                     and m.get("params", {}).get("progressToken") == "p1"]
        self.assertGreaterEqual(len(notes), 1, "no progress during a 3 s command")

    def test_shared_concurrent_environments(self):
        s = self.srv()
        results = {}

        def one(i):
            results[i] = s.run("echo task-%d; sleep 0.5" % i, task_id="c%d" % i, wait=120)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        for i in range(4):
            self.assertEqual(results[i]["output"].strip(), "task-%d" % i, results.get(i))

    # ---- background processes ------------------------------------------------------------

    def test_shared_background_lifecycle(self):
        s = self.srv()
        s.run("export SW_BG=seen")
        sc = s.background("echo start-$SW_BG; for i in 1 2 3; do echo line$i; sleep 0.2; done; exit 5")
        sid = sc["session_id"]
        self.assertTrue(re.fullmatch(r"proc_[0-9a-f]{12}", sid), sc)
        w = s.process("wait", session_id=sid, timeout=30)
        self.assertEqual(w.get("status"), "exited", w)
        self.assertEqual(w.get("exit_code"), 5, w)
        log = s.process("log", session_id=sid)
        self.assertEqual(log["output"].splitlines(), ["start-seen", "line1", "line2", "line3"], log)
        p = s.process("poll", session_id=sid)
        self.assertEqual((p.get("status"), p.get("exit_code")), ("exited", 5), p)
        lst = s.process("list")
        self.assertIn(sid, [e["session_id"] for e in lst["processes"]])

    def test_shared_background_kill_tree(self):
        s = self.srv()
        tag = "34%d" % (uuid.uuid4().int % 10000)
        sc = s.background("bash -c 'sleep %s & sleep %s; wait' & echo up; wait" % (tag, tag))
        sid = sc["session_id"]
        self.assertTrue(wait_until(lambda: len(self.tagged("sleep " + tag)) >= 2, 30), self.sandbox_procs())
        self.assertTrue(wait_until(lambda: "up" in s.process("log", session_id=sid)["output"], 10))
        k = s.process("kill", session_id=sid, wait=30)
        self.assertEqual(k.get("status"), "killed", k)
        self.assertTrue(wait_until(lambda: not self.tagged("sleep " + tag), 10),
                        "survivors: %r" % self.tagged("sleep " + tag))
        p = s.process("poll", session_id=sid)
        self.assertNotEqual(p.get("status"), "running", p)

    def test_shared_background_output_streams(self):
        s = self.srv()
        sc = s.background("for i in $(seq 1 40); do echo n$i; sleep 0.05; done; sleep 30")
        sid = sc["session_id"]
        self.assertTrue(wait_until(lambda: "n40" in s.process("log", session_id=sid)["output"], 20))
        p = s.process("poll", session_id=sid)
        self.assertEqual(p.get("status"), "running", p)
        s.process("kill", session_id=sid, wait=30)
