#!/usr/bin/env python3
"""Behaviour tests for background processes and the shellwire `process` tool on the local
backend (SPEC sections 1, 2 and 4): terminal(background: true) with pty and notify, the
actions list/poll/log/wait/kill/write/submit/close, session id lookup and argument errors,
the rolling output buffer, the 64-process cap, environments, crash safety (detached
processes after a kill -9 of the server) and cleanup when the server exits.
Standard library only; run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_process.py [name-filter ...]
"""

import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swclient  # noqa: E402
from swclient import ServerTest, pid_alive, proc_stat, cpu_ticks, wait_until  # noqa: E402

SID_RE = re.compile(r"^proc_[0-9a-f]{12}$")
ISO_UTC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")
ACTIONS = ["list", "poll", "log", "wait", "kill", "write", "submit", "close"]
BUFFER = 200000
STARTED = "Background process started"


def cmd_has(*words):
    """Process predicate: the command line contains one of `words` (e.g. "sleep 105")."""
    return lambda p: any(w in " ".join(p.cmdline) for w in words)


def seq_text(a, b):
    return "".join("%d\n" % i for i in range(a, b + 1))


def lines_of(text):
    """The contract's line split: on "\\n"; a final line without "\\n" counts as a line."""
    if text == "":
        return []
    parts = text.split("\n")
    if text.endswith("\n"):
        parts.pop()
    return parts


def pty_text(s):
    """PTY output with the terminal's CR-LF line ends made plain newlines (log joins lines
    split on "\n", so the last line may keep its CR)."""
    s = s.replace("\r\n", "\n")
    return s[:-1] if s.endswith("\r") else s


class ProcessTest(ServerTest):

    def session(self, **kw):
        s = self.start(**kw)
        s.initialize()
        return s

    def bg(self, s, command, **kw):
        """Starts a background process and checks the start envelope; returns (sid, pid, sc)."""
        t0 = time.monotonic()
        r = s.call(dict(command=command, background=True, **kw))
        dt = time.monotonic() - t0
        self.assertIn("result", r, r)
        sc = r["result"]["structuredContent"]
        self.assertIs(r["result"].get("isError"), False, sc)
        self.assertIsNone(sc["error"], sc)
        self.assertEqual(sc["output"], STARTED, sc)
        self.assertEqual(sc["exit_code"], 0, sc)
        self.assertRegex(sc.get("session_id", ""), SID_RE)
        self.assertIsInstance(sc.get("pid"), int, sc)
        self.assertNotIsInstance(sc.get("pid"), bool, sc)
        self.assertGreater(sc["pid"], 1, sc)
        self.assertLess(dt, 3.0, "starting %r took %.2fs" % (command, dt))
        return sc["session_id"], sc["pid"], sc

    def ok(self, sc):
        """A process action that worked."""
        self.assertIsNone(sc.get("error"), sc)
        self.assertNotEqual(sc.get("status"), "error", sc)
        return sc

    def poll_until(self, s, sid, text, timeout=5.0, **kw):
        """Polls until `text` appears in output_preview; returns the last poll answer."""
        last = {}

        def seen():
            last["sc"] = s.process("poll", session_id=sid, **kw)
            return text in last["sc"].get("output_preview", "")
        if not wait_until(seen, timeout, 0.05):
            self.fail("%r did not appear in poll output within %.0fs: %r" % (text, timeout, last.get("sc")))
        return last["sc"]

    def wait_exit(self, s, sid, timeout=10, **kw):
        sc = s.process("wait", session_id=sid, timeout=timeout, **kw)
        self.ok(sc)
        self.assertEqual(sc.get("status"), "exited", sc)
        return sc

    def assertTail(self, got, full, n, what="output"):
        """got is the last n characters of full (a trailing newline may be trimmed off)."""
        self.assertIsInstance(got, str)
        accepted = {full[-n:], full.rstrip("\n")[-n:]}
        self.assertIn(got, accepted, "%s is not the last %d chars: got %d chars ending %r"
                      % (what, n, len(got), got[-60:]))

    def assertGone(self, s, pred, within=1.0, what="processes"):
        ok = wait_until(lambda: not s.find_procs(pred), within)
        self.assertTrue(ok, "%s survived: %r" % (what, s.find_procs(pred)))

    def assertStarted(self, s, pred, within=3.0):
        self.assertTrue(wait_until(lambda: s.find_procs(pred), within),
                        "expected processes did not start")


# ============================================================================ starting

class StartTests(ProcessTest):

    def test_background_returns_at_once(self):
        s = self.session()
        s.run("true")                          # the environment exists already
        for cmd in ("sleep 100", "sleep 100 & wait", "yes > /dev/null"):
            with self.subTest(command=cmd):
                t0 = time.monotonic()
                sid, pid, sc = self.bg(s, cmd)
                dt = time.monotonic() - t0
                self.assertLess(dt, 1.0, "background start of %r took %.2fs" % (cmd, dt))
                self.assertTrue(pid_alive(pid), "pid %d is not running" % pid)
                self.assertEqual(self.ok(s.process("poll", session_id=sid))["status"], "running")
        self.assertEqual(len(set(p["session_id"] for p in s.process("list")["processes"])), 3)

    def test_own_session_and_stdin_dev_null(self):
        s = self.session()
        sid, pid, _ = self.bg(s, "readlink /proc/self/fd/0; sleep 100")
        st, me = proc_stat(pid), proc_stat(s.pid)
        self.assertIsNotNone(st)
        self.assertNotEqual(st["session"], me["session"], "not in its own session")
        self.assertNotEqual(st["pgrp"], me["pgrp"], "not in its own process group")
        self.assertEqual(st["pgrp"], st["session"], "the reported pid's group is not its session's")
        self.poll_until(s, sid, "/dev/null")

    def test_stdout_stderr_merged(self):
        s = self.session()
        sid, _, _ = self.bg(s, "echo a; echo b >&2; echo c; exit 3")
        sc = self.wait_exit(s, sid)
        self.assertEqual(sc["exit_code"], 3)
        self.assertEqual(sc["output"].rstrip("\n"), "a\nb\nc")

    def test_sees_session_state(self):
        s = self.session()
        sub = os.path.join(s.cwd, "sub")
        self.assertOk(s.run("mkdir sub && cd sub && export BGVAR='x y' && bgfn() { echo \"fn $1\"; }"))
        sid, _, _ = self.bg(s, 'echo "$PWD [$BGVAR]"; bgfn ok; bash -c \'echo "child [$BGVAR]"\'')
        sc = self.wait_exit(s, sid)
        self.assertEqual(sc["exit_code"], 0, sc)
        self.assertEqual(sc["output"].rstrip("\n"), "%s [x y]\nfn ok\nchild [x y]" % sub)
        entry = [p for p in s.process("list")["processes"] if p["session_id"] == sid]
        self.assertEqual(len(entry), 1)
        self.assertEqual(entry[0]["cwd"], sub)

    def test_start_right_after_state_change(self):
        """A background start that immediately follows a foreground call sees all of that
        call's state (the two must not race: the snapshot is written after the command)."""
        s = self.session()
        s.run("true")
        # Sent back to back: the start takes its turn after the foreground call.
        a = s.send_call({"command": "sleep 0.5; mkdir later; cd later; export ORDER=first"})
        b = s.send_call({"command": 'echo "$PWD $ORDER"', "background": True})
        sid = s.wait_response(b)["result"]["structuredContent"]["session_id"]
        self.assertOk(s.wait_response(a)["result"]["structuredContent"])
        self.assertEqual(self.wait_exit(s, sid)["output"].rstrip("\n"), os.path.join(s.cwd, "later") + " first")
        # One after the other's answer.
        for i in range(40):                    # the race was hit 2 to 6 times in 100
            d = "d%d" % i
            self.assertOk(s.run("mkdir %s && cd %s && export ITER=%d && fn%d() { echo f%d; }" % (d, d, i, i, i)))
            sid, _, _ = self.bg(s, 'echo "${PWD##*/} [$ITER]"; fn%d' % i)
            out = self.wait_exit(s, sid)["output"].rstrip("\n")
            self.assertEqual(out, "%s [%d]\nf%d" % (d, i, i), "iteration %d" % i)

    def test_does_not_change_session_state(self):
        s = self.session()
        s.run("export KEEP=before")
        sid, _, sc = self.bg(s, "cd / && export KEEP=after NEWV=1 && fnnew() { :; }; pwd")
        self.assertNotIn("cwd", sc, "a background start reported a cwd change")
        self.assertEqual(self.wait_exit(s, sid)["output"].rstrip("\n"), "/")
        sc = s.run('echo "$PWD [$KEEP] [${NEWV-unset}]"; type -t fnnew; true')
        self.assertEqual(sc["output"], "%s [before] [unset]" % s.cwd)

    def test_workdir(self):
        s = self.session()
        other = os.path.join(s.cwd, "other")
        os.mkdir(other)
        sid, _, _ = self.bg(s, "pwd; sleep 100", workdir=other)
        self.poll_until(s, sid, other)
        entry = [p for p in s.process("list")["processes"] if p["session_id"] == sid][0]
        self.assertEqual(entry["cwd"], other)
        self.assertEqual(s.run("pwd")["output"], s.cwd)

    def test_failing_commands(self):
        s = self.session()
        sid, _, _ = self.bg(s, "echo (")
        sc = self.wait_exit(s, sid)
        self.assertEqual(sc["exit_code"], 2)
        self.assertIn("syntax error", sc["output"])
        sid, _, _ = self.bg(s, "no-such-command-zz")
        self.assertEqual(self.wait_exit(s, sid)["exit_code"], 127)
        os.mkdir(os.path.join(s.cwd, "doomed"))
        s.run("cd doomed")
        os.rmdir(os.path.join(s.cwd, "doomed"))
        sid, _, _ = self.bg(s, "echo should-not-run")
        sc = self.wait_exit(s, sid)
        self.assertEqual(sc["exit_code"], 126, sc)
        self.assertNotIn("should-not-run", sc["output"])

    def test_pty_and_notify_need_background(self):
        s = self.session()
        for args in ({"pty": True}, {"notify": True}):
            with self.subTest(args=args):
                r = s.call(dict(command="echo hi", **args))
                self.assertToolError(r, "background")


# ============================================================================ list / poll

class ListPollTests(ProcessTest):

    def test_list_empty(self):
        s = self.session()
        sc = s.process("list")
        self.assertEqual((sc.get("processes"), sc["error"]), ([], None), sc)

    def test_list_entries(self):
        s = self.session()
        before = datetime.datetime.now(datetime.timezone.utc)
        a, apid, _ = self.bg(s, "echo running-one; sleep 100")
        b, bpid, _ = self.bg(s, "echo done-two; exit 4")
        self.wait_exit(s, b)
        self.poll_until(s, a, "running-one")
        time.sleep(1.1)
        sc = self.ok(s.process("list"))
        self.assertIsInstance(sc.get("processes"), list, sc)
        by = {p["session_id"]: p for p in sc["processes"]}
        self.assertEqual(set(by), {a, b})
        keys = {"session_id", "command", "cwd", "pid", "started_at", "uptime_seconds", "status",
                "exit_code", "output_preview"}
        for sid, pid, cmd, status, code, out in (
                (a, apid, "echo running-one; sleep 100", "running", None, "running-one"),
                (b, bpid, "echo done-two; exit 4", "exited", 4, "done-two")):
            with self.subTest(sid=sid):
                p = by[sid]
                self.assertLessEqual(keys, set(p), p)
                self.assertEqual(p["command"], cmd)
                self.assertEqual(p["cwd"], s.cwd)
                self.assertEqual(p["pid"], pid)
                self.assertEqual(p["status"], status)
                self.assertIn("exit_code", p)
                self.assertEqual(p["exit_code"], code)
                self.assertEqual(p["output_preview"].rstrip("\n"), out)
                self.assertRegex(p["started_at"], ISO_UTC_RE)
                t = datetime.datetime.fromisoformat(p["started_at"].replace("Z", "+00:00"))
                self.assertLess(abs((t - before).total_seconds()), 5, p["started_at"])
                self.assertIsInstance(p["uptime_seconds"], int)
        self.assertGreaterEqual(by[a]["uptime_seconds"], 1, by[a])
        self.assertLess(by[a]["uptime_seconds"], 10, by[a])

    def test_list_truncates_command_and_preview(self):
        s = self.session()
        cmd = "seq 1 1000 # " + "c" * 300
        sid, _, _ = self.bg(s, cmd)
        self.wait_exit(s, sid)
        p = s.process("list")["processes"][0]
        self.assertEqual(p["command"], cmd[:200])
        self.assertTail(p["output_preview"], seq_text(1, 1000), 200, "list output_preview")

    def test_poll_running_then_exited(self):
        s = self.session()
        d = os.path.join(s.cwd, "go")
        sid, pid, _ = self.bg(s, "echo step1; while [ ! -e go ]; do sleep 0.05; done; echo step2; exit 7")
        sc = self.poll_until(s, sid, "step1")
        self.ok(sc)
        self.assertEqual(sc["status"], "running", sc)
        self.assertEqual(sc["session_id"], sid)
        self.assertEqual(sc["pid"], pid)
        self.assertIsInstance(sc["uptime_seconds"], int)
        self.assertIsNone(sc.get("exit_code"), sc)
        self.assertEqual(sc["output_preview"].rstrip("\n"), "step1")
        open(d, "w").close()
        self.assertTrue(wait_until(lambda: s.process("poll", session_id=sid)["status"] == "exited", 5))
        sc = self.ok(s.process("poll", session_id=sid))
        self.assertEqual(sc["exit_code"], 7, sc)
        self.assertEqual(sc["output_preview"].rstrip("\n"), "step1\nstep2")
        self.assertEqual(sc["pid"], pid)

    def test_poll_preview_is_last_1000_chars_and_uptime_grows(self):
        s = self.session()
        sid, _, _ = self.bg(s, "seq 1 2000; sleep 100")
        sc = self.poll_until(s, sid, "\n2000")
        self.assertTail(sc["output_preview"], seq_text(1, 2000), 1000, "poll output_preview")
        u0 = sc["uptime_seconds"]
        time.sleep(2.1)
        u1 = s.process("poll", session_id=sid)["uptime_seconds"]
        self.assertGreaterEqual(u1 - u0, 1, (u0, u1))
        self.assertLessEqual(u1 - u0, 4, (u0, u1))


# ============================================================================ log

class LogTests(ProcessTest):

    def log(self, s, sid, **kw):
        sc = self.ok(s.process("log", session_id=sid, **kw))
        self.assertEqual(sc.get("session_id"), sid, sc)
        return sc

    def test_pagination(self):
        s = self.session()
        sid, _, _ = self.bg(s, "seq 1 10")
        self.wait_exit(s, sid)
        cases = [
            ({}, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10", "lines 1-10 of 10"),
            ({"limit": 3}, "8\n9\n10", "lines 8-10 of 10"),
            ({"limit": 1}, "10", "lines 10-10 of 10"),
            ({"limit": 200}, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10", "lines 1-10 of 10"),
            ({"offset": 0}, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10", "lines 1-10 of 10"),
            ({"offset": 0, "limit": 3}, "1\n2\n3", "lines 1-3 of 10"),
            ({"offset": 0, "limit": 1}, "1", "lines 1-1 of 10"),
            ({"offset": 4, "limit": 2}, "5\n6", "lines 5-6 of 10"),
            ({"offset": 8}, "9\n10", "lines 9-10 of 10"),
            ({"offset": 9, "limit": 5}, "10", "lines 10-10 of 10"),
            ({"offset": 10}, "", "no lines"),
            ({"offset": 1000, "limit": 1}, "", "no lines"),
        ]
        for args, out, showing in cases:
            with self.subTest(args=args):
                sc = self.log(s, sid, **args)
                self.assertEqual(sc["status"], "exited", sc)
                self.assertEqual((sc["output"], sc["total_lines"], sc["showing"]), (out, 10, showing))

    def test_default_limit_is_200(self):
        s = self.session()
        sid, _, _ = self.bg(s, "seq 1 500")
        self.wait_exit(s, sid)
        for args, first, last in (({}, 301, 500), ({"offset": 0}, 1, 200), ({"offset": 450}, 451, 500),
                                  ({"offset": 100, "limit": 300}, 101, 400), ({"limit": 500}, 1, 500)):
            with self.subTest(args=args):
                sc = self.log(s, sid, **args)
                self.assertEqual((sc["output"], sc["total_lines"], sc["showing"]),
                                 (seq_text(first, last).rstrip("\n"), 500,
                                  "lines %d-%d of 500" % (first, last)))

    def test_log_while_running(self):
        s = self.session()
        sid, _, _ = self.bg(s, "printf 'one\\ntwo\\n'; sleep 100")
        self.poll_until(s, sid, "two")
        sc = self.log(s, sid)
        self.assertEqual(sc["status"], "running")
        self.assertEqual((sc["output"], sc["total_lines"], sc["showing"]), ("one\ntwo", 2, "lines 1-2 of 2"))

    def test_line_splitting(self):
        s = self.session()
        for cmd, lines in (("printf 'a\\nb\\nc'", ["a", "b", "c"]),
                           ("printf 'abc'", ["abc"]),
                           ("printf 'a\\n\\nb\\n'", ["a", "", "b"]),
                           ("printf '\\n'", [""]),
                           ("true", [])):
            with self.subTest(command=cmd):
                sid, _, _ = self.bg(s, cmd)
                self.wait_exit(s, sid)
                sc = self.log(s, sid)
                n = len(lines)
                self.assertEqual((sc["output"], sc["total_lines"], sc["showing"]),
                                 ("\n".join(lines), n, "lines 1-%d of %d" % (n, n) if n else "no lines"))
                sc = self.log(s, sid, offset=0, limit=1)
                self.assertEqual(sc["output"], lines[0] if lines else "")

    def test_line_longer_than_buffer(self):
        s = self.session()
        sid, _, _ = self.bg(s, "head -c 300000 /dev/zero | tr '\\0' x")
        self.wait_exit(s, sid)
        sc = self.log(s, sid)
        self.assertEqual(sc["total_lines"], 1, {k: v for k, v in sc.items() if k != "output"})
        self.assertEqual(len(sc["output"]), BUFFER)
        self.assertEqual(sc["output"], "x" * BUFFER)
        self.assertEqual(sc["showing"], "lines 1-1 of 1")
        self.assertEqual(len(self.log(s, sid, offset=0, limit=1)["output"]), BUFFER)

    def test_buffer_counts_characters(self):
        s = self.session()
        sid, _, _ = self.bg(s, "python3 -c \"print('é' * 300000, end='')\"")
        w = self.wait_exit(s, sid, timeout=30)
        self.assertEqual(w["output"], "é" * 2000)
        sc = self.log(s, sid)
        self.assertEqual((sc["output"], sc["total_lines"]), ("é" * BUFFER, 1))
        self.assertEqual(s.process("poll", session_id=sid)["output_preview"], "é" * 1000)
        self.assertEqual(s.process("list")["processes"][0]["output_preview"], "é" * 200)

    def test_sequences_split_across_writes(self):
        """An escape sequence or a UTF-8 character cut between two writes is still handled."""
        s = self.session()
        cmd = r"printf '\033['; sleep 0.3; printf '31mred\033[0m\n\xe2\x82'; sleep 0.3; printf '\xac end\n'"
        for pty in (False, True):
            with self.subTest(pty=pty):
                sid, _, _ = self.bg(s, cmd, pty=pty)
                sc = self.wait_exit(s, sid)
                self.assertEqual(pty_text(sc["output"]).rstrip("\n"), "red\n€ end")
                self.assertEqual(pty_text(self.log(s, sid)["output"]), "red\n€ end")

    def test_old_lines_dropped(self):
        s = self.session()
        sid, _, _ = self.bg(s, "seq 1 100000")
        self.wait_exit(s, sid, timeout=30)
        kept = lines_of(seq_text(1, 100000)[-BUFFER:])
        n = len(kept)
        sc = self.log(s, sid, limit=3)
        self.assertEqual((sc["output"], sc["total_lines"], sc["showing"]),
                         ("99998\n99999\n100000", n, "lines %d-%d of %d" % (n - 2, n, n)))
        sc = self.log(s, sid, offset=0, limit=3)
        self.assertEqual((sc["output"], sc["showing"]), ("\n".join(kept[:3]), "lines 1-3 of %d" % n),
                         "the first kept line (possibly partial) is line 0")
        sc = self.log(s, sid, offset=0, limit=n + 10)
        self.assertEqual(len(sc["output"]), BUFFER - 1, "buffer does not hold exactly the last 200,000 chars")
        self.assertEqual(sc["output"], "\n".join(kept))

    def test_ansi_and_invalid_utf8_cleaned(self):
        s = self.session()
        sid, _, _ = self.bg(s, r"printf '\033[1;31mred\033[0m plain\n\033]0;title\007ok \xff\xfe end \xc3\x28 é\n'")
        sc = self.wait_exit(s, sid)
        want = "red plain\nok \ufffd\ufffd end \ufffd( é"
        self.assertEqual(sc["output"].rstrip("\n"), want)
        self.assertEqual(self.log(s, sid)["output"], want)
        self.assertEqual(s.process("poll", session_id=sid)["output_preview"].rstrip("\n"), want)


# ============================================================================ wait

class WaitTests(ProcessTest):

    def test_wait_returns_promptly_on_exit(self):
        s = self.session()
        stamp = os.path.join(s.cwd, "stamp")
        sid, _, _ = self.bg(s, "sleep 0.7; echo fin; date +%s.%N > stamp; exit 5")
        sc = s.process("wait", session_id=sid, timeout=20)
        t_end = time.time()
        self.ok(sc)
        with open(stamp) as f:
            t_exit = float(f.read())
        self.assertEqual(sc["status"], "exited", sc)
        self.assertEqual(sc["exit_code"], 5)
        self.assertEqual(sc["session_id"], sid)
        self.assertEqual(sc["output"].rstrip("\n"), "fin")
        self.assertLess(t_end - t_exit, 0.5, "wait answered %.3fs after the exit" % (t_end - t_exit))
        for k in ("process_running", "timeout_note"):
            self.assertNotIn(k, sc)

    def test_wait_on_finished_process(self):
        s = self.session()
        sid, _, _ = self.bg(s, "echo x; exit 2")
        self.wait_exit(s, sid)
        t0 = time.monotonic()
        sc = self.wait_exit(s, sid, timeout=30)
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual((sc["exit_code"], sc["output"].rstrip("\n")), (2, "x"))

    def test_wait_output_is_last_2000_chars(self):
        s = self.session()
        sid, _, _ = self.bg(s, "seq 1 3000")
        sc = self.wait_exit(s, sid)
        self.assertTail(sc["output"], seq_text(1, 3000), 2000, "wait output")

    def test_wait_timeout(self):
        s = self.session()
        sid, _, _ = self.bg(s, "echo waiting; sleep 100")
        self.poll_until(s, sid, "waiting")
        t0 = time.monotonic()
        r = s.process_call({"action": "wait", "session_id": sid, "timeout": 1}, timeout=10)
        dt = time.monotonic() - t0
        self.assertIs(r["result"].get("isError"), False, r)
        sc = r["result"]["structuredContent"]
        self.assertIsNone(sc["error"])
        self.assertEqual(sc["status"], "timeout", sc)
        self.assertIs(sc["process_running"], True)
        self.assertIsInstance(sc.get("timeout_note"), str)
        self.assertTrue(sc["timeout_note"].strip())
        self.assertEqual(sc["output"].rstrip("\n"), "waiting")
        self.assertGreaterEqual(dt, 0.9)
        self.assertLess(dt, 2.0)
        self.assertEqual(s.process("poll", session_id=sid)["status"], "running")

    def test_wait_default_and_clamped_timeout(self):
        s = self.session(env={"TERMINAL_TIMEOUT": "2"})
        sid, _, _ = self.bg(s, "sleep 100")
        for args in ({}, {"timeout": 100}):
            with self.subTest(args=args):
                t0 = time.monotonic()
                sc = s.process("wait", session_id=sid, wait=20, **args)
                dt = time.monotonic() - t0
                self.ok(sc)
                self.assertEqual(sc["status"], "timeout", sc)
                self.assertGreaterEqual(dt, 1.8)
                self.assertLess(dt, 3.5, "wait ignored the TERMINAL_TIMEOUT ceiling")
                if args:
                    note = sc.get("timeout_note", "")
                    self.assertRegex(note.lower(), r"clamp|maxim|ceiling|capped|limit|at most", note)
                    self.assertIn("2", note)

    def test_concurrent_waits_all_return_on_exit(self):
        s = self.session()
        sid, _, _ = self.bg(s, "while [ ! -e go ]; do sleep 0.02; done; exit 6")
        rids = [s.send_call({"action": "wait", "session_id": sid, "timeout": 20}, name="process")
                for _ in range(3)]
        rids.append(s.send_call({"action": "wait", "session_id": sid[:9], "timeout": 20}, name="process"))
        time.sleep(0.3)
        self.assertFalse(any(s.has_response(r) for r in rids), "a wait returned before the exit")
        t0 = time.monotonic()
        open(os.path.join(s.cwd, "go"), "w").close()
        for r in rids:
            sc = s.wait_response(r, 5)["result"]["structuredContent"]
            self.assertEqual((sc["status"], sc["exit_code"], sc["error"]), ("exited", 6, None), sc)
        self.assertLess(time.monotonic() - t0, 0.6, "waiters were not woken together")

    def test_cancelled_wait_leaves_process_running(self):
        s = self.session()
        sid, pid, _ = self.bg(s, "sleep 100")
        rid = s.send_call({"action": "wait", "session_id": sid, "timeout": 30}, name="process")
        time.sleep(0.3)
        s.notify("notifications/cancelled", {"requestId": rid, "reason": "test"})
        time.sleep(1.0)
        self.assertFalse(s.has_response(rid), "a cancelled wait was answered: %r" % s.responses_for(rid))
        self.assertTrue(pid_alive(pid), "cancelling a wait killed the process")
        self.assertEqual(s.process("poll", session_id=sid)["status"], "running")
        s.ping(timeout=2)

    def test_wait_does_not_block_or_spin(self):
        s = self.session()
        sid, _, _ = self.bg(s, "sleep 100")
        other, _, _ = self.bg(s, "sleep 101")
        ticks0 = cpu_ticks(s.pid)
        t0 = time.monotonic()
        rid = s.send_call({"action": "wait", "session_id": sid, "timeout": 3}, name="process")
        time.sleep(0.3)
        t1 = time.monotonic()
        s.ping()
        self.assertEqual(self.ok(s.process("poll", session_id=other))["status"], "running")
        self.assertLess(time.monotonic() - t1, 0.5, "ping/poll were held up by a wait")
        r = s.wait_response(rid, 10)
        self.assertEqual(r["result"]["structuredContent"]["status"], "timeout")
        dt = time.monotonic() - t0
        used = cpu_ticks(s.pid) - ticks0
        hz = os.sysconf("SC_CLK_TCK")
        self.assertLess(used / hz, 0.15, "server used %.2fs CPU during a %.1fs wait" % (used / hz, dt))


# ============================================================================ kill

class KillTests(ProcessTest):

    def test_kill_running(self):
        s = self.session()
        sid, pid, _ = self.bg(s, "echo up; sleep 100")
        self.poll_until(s, sid, "up")
        t0 = time.monotonic()
        r = s.process_call({"action": "kill", "session_id": sid})
        dt = time.monotonic() - t0
        sc = self.ok(r["result"]["structuredContent"])
        self.assertIs(r["result"]["isError"], False)
        self.assertEqual((sc["status"], sc["exit_code"], sc["session_id"]), ("killed", -15, sid))
        self.assertNotIn("survivors", sc)
        self.assertLess(dt, 1.5, "a process that obeys SIGTERM took %.2fs to kill" % dt)
        self.assertFalse(pid_alive(pid), "pid %d still alive after kill" % pid)
        self.assertGone(s, cmd_has("sleep 100"), 0.5)
        sc = self.ok(s.process("poll", session_id=sid))
        self.assertEqual((sc["status"], sc["exit_code"]), ("exited", -15))
        sc = self.wait_exit(s, sid)
        self.assertEqual(sc["exit_code"], -15)
        p = s.process("list")["processes"][0]
        self.assertEqual((p["status"], p["exit_code"]), ("exited", -15))

    def test_kill_right_after_start_is_prompt(self):
        """A kill that races the shell's fork of its command must still SIGTERM the new child
        (no 2 s grace wait followed by SIGKILL). The race is hit about 1 time in 6, so try a
        dozen times."""
        s = self.session()
        for i in range(12):
            sid, pid, _ = self.bg(s, "sleep 100")
            t0 = time.monotonic()
            sc = self.ok(s.process("kill", session_id=sid))
            dt = time.monotonic() - t0
            self.assertEqual(sc["status"], "killed", sc)
            self.assertLess(dt, 1.0, "attempt %d: killing a just-started `sleep 100` took %.2fs "
                            "(something missed the SIGTERM and waited out the grace period)" % (i, dt))
        self.assertGone(s, cmd_has("sleep 100"), 0.5)

    def test_kill_tree_with_term_ignoring_child(self):
        s = self.session()
        sid, pid, _ = self.bg(s, "bash -c 'trap \"\" TERM; sleep 105' & sleep 106")
        pred = cmd_has("sleep 105", "sleep 106", "trap")
        self.assertTrue(wait_until(lambda: len(s.find_procs(cmd_has("sleep 105", "sleep 106"))) == 2, 3),
                        "the tree did not start: %r" % s.descendants())
        time.sleep(0.1)
        t0 = time.monotonic()
        sc = self.ok(s.process("kill", session_id=sid))
        dt = time.monotonic() - t0
        self.assertEqual((sc["status"], sc["exit_code"]), ("killed", -15), sc)
        self.assertNotIn("survivors", sc)
        self.assertGreaterEqual(dt, 1.5, "no SIGTERM grace period (%.2fs)" % dt)
        self.assertLess(dt, 5.0)
        self.assertEqual(s.find_procs(pred), [], "kill returned while part of the tree was alive")
        self.assertFalse(pid_alive(pid))

    def test_kill_reaches_setsid_descendant(self):
        s = self.session()
        sid, _, _ = self.bg(s, "setsid sleep 107 & sleep 108")
        self.assertTrue(wait_until(lambda: len(s.find_procs(cmd_has("sleep 107", "sleep 108"))) == 2, 3))
        sc = self.ok(s.process("kill", session_id=sid))
        self.assertEqual(sc["status"], "killed")
        self.assertGone(s, cmd_has("sleep 107", "sleep 108"), 0.5, "the setsid'd descendant")

    def test_kill_finished_and_twice(self):
        s = self.session()
        sid, _, _ = self.bg(s, "exit 4")
        self.wait_exit(s, sid)
        r = s.process_call({"action": "kill", "session_id": sid})
        self.assertIs(r["result"]["isError"], False, r)
        sc = r["result"]["structuredContent"]
        self.assertEqual((sc["status"], sc["exit_code"], sc["error"]), ("already_exited", 4, None))
        sid2, _, _ = self.bg(s, "sleep 100")
        self.assertEqual(s.process("kill", session_id=sid2)["status"], "killed")
        sc = s.process("kill", session_id=sid2)
        self.assertEqual((sc["status"], sc["exit_code"], sc["error"]), ("already_exited", -15, None))


# ============================================================================ pty

class PtyTests(ProcessTest):

    def test_dialogue(self):
        s = self.session()
        sid, _, _ = self.bg(s, 'read -p "name? " n; echo "hello $n"', pty=True)
        self.poll_until(s, sid, "name?")
        r = s.process_call({"action": "submit", "session_id": sid, "data": "bob"})
        self.assertIs(r["result"]["isError"], False, r)
        sc = r["result"]["structuredContent"]
        self.assertEqual((sc["status"], sc["session_id"], sc["error"]), ("ok", sid, None))
        if "bytes_written" in sc:
            self.assertEqual(sc["bytes_written"], 4)
        sc = self.wait_exit(s, sid)
        self.assertEqual(sc["exit_code"], 0)
        self.assertIn("hello bob", sc["output"])
        self.assertNotIn("\x1b", sc["output"])

    def test_tty_and_window_size(self):
        s = self.session(env={"TERM": "dumb"})
        sid, _, _ = self.bg(s, 'tty; stty size; echo "TERM=$TERM"; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty',
                            pty=True)
        sc = self.wait_exit(s, sid)
        lines = pty_text(sc["output"]).strip().split("\n")
        self.assertEqual(len(lines), 4, lines)
        self.assertRegex(lines[0], r"^/dev/pts/\d+$")
        self.assertEqual(lines[1:], ["30 120", "TERM=xterm-256color", "all-tty"])

    def test_pipe_mode_is_not_a_tty(self):
        s = self.session()
        sid, _, _ = self.bg(s, "tty; [ -t 1 ] || echo not-a-tty")
        self.assertEqual(self.wait_exit(s, sid)["output"].rstrip("\n"), "not a tty\nnot-a-tty")

    def test_write_raw_and_submit(self):
        s = self.session()
        sid, _, _ = self.bg(s, 'read -r a; read -r b; echo "got [$a] [$b]"', pty=True)
        for action, data in (("write", "x"), ("write", "y\n"), ("submit", "z")):
            sc = self.ok(s.process(action, session_id=sid, data=data))
            self.assertEqual(sc["status"], "ok", sc)
            if "bytes_written" in sc:
                self.assertEqual(sc["bytes_written"], len(data) + (action == "submit"), sc)
        sc = self.wait_exit(s, sid)
        self.assertIn("got [xy] [z]", sc["output"])

    def test_utf8_dialogue_and_ansi_stripped(self):
        s = self.session()
        sid, _, _ = self.bg(s, r'read -r w; printf "\033[1;32m<%s>\033[0m\n" "$w"', pty=True)
        self.ok(s.process("submit", session_id=sid, data="héllo 😀"))
        sc = self.wait_exit(s, sid)
        self.assertIn("<héllo 😀>", sc["output"])
        self.assertNotIn("\x1b", sc["output"])
        self.assertIn("<héllo 😀>", s.process("log", session_id=sid)["output"])

    def test_close_sends_eof(self):
        s = self.session()
        sid, _, _ = self.bg(s, 'while read -r l; do echo "got:$l"; done; echo eof-reached', pty=True)
        self.ok(s.process("submit", session_id=sid, data="one"))
        sc = self.ok(s.process("close", session_id=sid))
        self.assertEqual(sc["status"], "ok")
        sc = self.wait_exit(s, sid, timeout=5)
        out = pty_text(sc["output"])
        self.assertIn("got:one", out)
        self.assertIn("eof-reached", out)
        self.assertEqual(sc["exit_code"], 0)

    def test_write_after_exit_is_an_error(self):
        s = self.session()
        sid, _, _ = self.bg(s, "echo bye", pty=True)
        self.wait_exit(s, sid)
        for action, data in (("write", "x"), ("submit", "x")):
            with self.subTest(action=action):
                args = {"action": action, "session_id": sid, "data": data}
                self.assertProcessError(s.process_call(args), ("exited", "finished", "not running"))

    def test_stdin_actions_need_pty(self):
        s = self.session()
        sid, _, _ = self.bg(s, "sleep 100")
        for action, data in (("write", "x"), ("submit", "x"), ("close", None)):
            with self.subTest(action=action):
                args = {"action": action, "session_id": sid}
                if data is not None:
                    args["data"] = data
                self.assertProcessError(s.process_call(args), "pty: true")
        self.assertEqual(s.process("poll", session_id=sid)["status"], "running")


# ============================================================================ lookup and errors

class ArgumentTests(ProcessTest):

    def test_prefix_lookup(self):
        s = self.session()
        sid, pid, _ = self.bg(s, "sleep 100")
        for ref in (sid, sid[:9], sid[:12], sid[:16]):
            with self.subTest(ref=ref):
                sc = self.ok(s.process("poll", session_id=ref))
                self.assertEqual((sc["session_id"], sc["pid"]), (sid, pid))
        sc = self.ok(s.process("log", session_id=sid[:10]))
        self.assertEqual(sc["session_id"], sid)

    def test_unknown_and_too_short(self):
        s = self.session()
        sid, _, _ = self.bg(s, "sleep 100")
        hexpart = sid[5:]
        flipped = "proc_" + ("0" if hexpart[0] != "0" else "1") + hexpart[1:]
        for ref in (flipped, flipped[:9]):
            with self.subTest(ref=ref):
                self.assertProcessError(s.process_call({"action": "poll", "session_id": ref}),
                                        ("unknown", "no such", "not found"))
        for ref in (sid[:8], sid[:5], "proc_", "", "proc_zzzzzzzzzzzz", "nonsense"):
            with self.subTest(ref=ref):
                self.assertProcessError(s.process_call({"action": "poll", "session_id": ref}))
        for action in ("kill", "wait", "log"):
            with self.subTest(action=action):
                self.assertProcessError(s.process_call({"action": action, "session_id": flipped}),
                                        ("unknown", "no such", "not found"))
        self.assertEqual(s.process("poll", session_id=sid)["status"], "running")

    def test_missing_arguments(self):
        s = self.session()
        sid, _, _ = self.bg(s, "cat", pty=True)
        for action in ACTIONS[1:]:
            with self.subTest(action=action):
                args = {"action": action}
                if action in ("write", "submit"):
                    args["data"] = "x"
                self.assertProcessError(s.process_call(args), "session_id")
        for action in ("write", "submit"):
            with self.subTest(action=action, missing="data"):
                self.assertProcessError(s.process_call({"action": action, "session_id": sid}), "data")
        self.assertProcessError(s.process_call({}), "action")
        self.assertProcessError(s.process_call({"session_id": sid}), "action")

    def test_unknown_action(self):
        s = self.session()
        for bad in ("frobnicate", ""):
            with self.subTest(action=bad):
                sc = self.assertProcessError(s.process_call({"action": bad}))
                for a in ACTIONS:
                    self.assertIn(a, sc["error"])

    def test_wrong_types(self):
        s = self.session()
        sid, _, _ = self.bg(s, "seq 1 5; sleep 100", pty=True)
        bad = [
            {"action": "log", "offset": "1"}, {"action": "log", "offset": -1},
            {"action": "log", "offset": 1.5}, {"action": "log", "offset": True},
            {"action": "log", "limit": 0}, {"action": "log", "limit": -3}, {"action": "log", "limit": "5"},
            {"action": "wait", "timeout": 0}, {"action": "wait", "timeout": -1},
            {"action": "wait", "timeout": "5"}, {"action": "wait", "timeout": 1.5},
            {"action": "write", "data": 5}, {"action": "submit", "data": ["x"]},
            {"action": "poll", "session_id": 5}, {"action": 5},
        ]
        for args in bad:
            with self.subTest(args=args):
                a = dict(args)
                a.setdefault("session_id", sid)
                t0 = time.monotonic()
                self.assertProcessError(s.process_call(a))
                self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(s.process("poll", session_id=sid)["status"], "running")


# ============================================================================ limits

class LimitTests(ProcessTest):

    def test_process_cap_and_pruning(self):
        s = self.session()
        sids = [self.bg(s, "sleep 60")[0] for _ in range(64)]
        self.assertEqual(len(set(sids)), 64)
        r = s.call({"command": "sleep 61", "background": True})
        sc = self.assertToolError(r)
        self.assertRegex(sc["error"].lower(), r"64|limit|too many|maximum", sc)
        self.assertEqual(s.find_procs(cmd_has("sleep 61")), [], "the refused process ran")
        self.assertEqual(len(s.process("list")["processes"]), 64)
        for sid in sids[:3]:                   # finish the three oldest, in start order
            self.assertEqual(s.process("kill", session_id=sid)["status"], "killed")
        new1, _, _ = self.bg(s, "sleep 62")
        listed = [p["session_id"] for p in s.process("list")["processes"]]
        self.assertEqual(len(listed), 64)
        self.assertNotIn(sids[0], listed, "the oldest finished process was not pruned")
        self.assertIn(sids[1], listed, "more than one finished process was pruned")
        self.assertIn(sids[2], listed)
        self.assertIn(new1, listed)
        self.assertProcessError(s.process_call({"action": "poll", "session_id": sids[0]}),
                                ("unknown", "no such", "not found"))
        new2, _, _ = self.bg(s, "sleep 63")
        listed = [p["session_id"] for p in s.process("list")["processes"]]
        self.assertEqual(len(listed), 64)
        self.assertNotIn(sids[1], listed)
        self.assertIn(sids[2], listed)
        self.assertIn(new2, listed)
        self.assertEqual(s.process("poll", session_id=sids[3])["status"], "running")


# ============================================================================ notify

class NotifyTests(ProcessTest):

    def notices(self, s, sid):
        with s.cv:
            return [m for _, m in s.notifications
                    if m.get("method") == "notifications/message"
                    and isinstance(m.get("params", {}).get("data"), dict)
                    and m["params"]["data"].get("session_id") == sid]

    def check_notice(self, s, sid, command, code):
        got = s.wait_for(lambda: self.notices(s, sid), 10)
        self.assertTrue(got, "no notifications/message for %s" % sid)
        time.sleep(0.7)
        got = self.notices(s, sid)
        self.assertEqual(len(got), 1, got)
        p = got[0]["params"]
        self.assertEqual((p.get("level"), p.get("logger")), ("notice", "shellwire"), p)
        d = p["data"]
        self.assertEqual((d.get("session_id"), d.get("exit_code"), d.get("command")), (sid, code, command), d)
        self.assertIsInstance(d.get("output_tail"), str, d)
        return d

    def test_notify_once_with_exit_code(self):
        s = self.session()
        quiet, _, _ = self.bg(s, "echo q; exit 1")
        cmd = "echo out1; sleep 0.3; exit 3"
        sid, _, _ = self.bg(s, cmd, notify=True)
        d = self.check_notice(s, sid, cmd, 3)
        self.assertEqual(d["output_tail"].rstrip("\n"), "out1")
        self.assertEqual(self.notices(s, quiet), [], "a process without notify sent a notice")
        # The notice comes after the exit: poll already agrees.
        self.assertEqual(s.process("poll", session_id=sid)["status"], "exited")

    def test_notify_output_tail(self):
        s = self.session()
        sid, _, _ = self.bg(s, "seq 1 3000", notify=True)
        d = self.check_notice(s, sid, "seq 1 3000", 0)
        self.assertTail(d["output_tail"], seq_text(1, 3000), 2000, "output_tail")

    def test_notify_on_kill(self):
        s = self.session()
        sid, _, _ = self.bg(s, "sleep 100", notify=True)
        self.assertEqual(s.process("kill", session_id=sid)["status"], "killed")
        self.check_notice(s, sid, "sleep 100", -15)


# ============================================================================ environments

class EnvironmentTests(ProcessTest):

    def test_task_isolation(self):
        s = self.session()
        os.mkdir(os.path.join(s.cwd, "ta"))
        s.run("cd ta", task_id="a")
        sid, _, _ = self.bg(s, "pwd; sleep 100", task_id="a")
        self.poll_until(s, sid, os.path.join(s.cwd, "ta"), task_id="a")
        mine = s.process("list", task_id="a")["processes"]
        self.assertEqual([p["session_id"] for p in mine], [sid])
        self.assertEqual(mine[0]["cwd"], os.path.join(s.cwd, "ta"))
        self.assertEqual(s.process("list", task_id="b")["processes"], [])
        self.assertEqual(s.process("list")["processes"], [])
        for action in ("poll", "kill", "log"):
            with self.subTest(action=action):
                self.assertProcessError(s.process_call({"action": action, "session_id": sid, "task_id": "b"}),
                                        ("unknown", "no such", "not found"))
        self.assertEqual(s.process("poll", session_id=sid, task_id="a")["status"], "running")
        other, _, _ = self.bg(s, "sleep 101", task_id="b")
        self.assertEqual([p["session_id"] for p in s.process("list", task_id="b")["processes"]], [other])
        self.assertEqual([p["session_id"] for p in s.process("list", task_id="a")["processes"]], [sid])


# ============================================================================ output volume

class StreamTests(ProcessTest):

    def test_50mb_stream_keeps_tail(self):
        s = self.session()
        sid, _, _ = self.bg(s, "head -c 37500000 /dev/urandom | base64")
        t0 = time.monotonic()
        sc = self.wait_exit(s, sid, timeout=90)
        dt = time.monotonic() - t0
        self.assertEqual(sc["exit_code"], 0)
        self.assertLessEqual(len(sc["output"]), 2000)
        hwm = s.vm_kb("VmHWM")
        lg = self.ok(s.process("log", session_id=sid, offset=0, limit=100000))
        out = lg["output"]
        lines = out.split("\n")
        self.assertEqual(lg["total_lines"], len(lines))
        self.assertLessEqual(len(out), BUFFER)
        self.assertGreaterEqual(len(out), BUFFER - 100, "buffer holds much less than 200,000 chars")
        self.assertRegex(out, r"^[A-Za-z0-9+/=\n]+$")
        self.assertTrue(all(len(ln) == 76 for ln in lines[1:-1]), "lines were corrupted")
        self.assertLessEqual(len(lines[0]), 76)
        self.assertEqual(len(lines[-1]), 50000000 % 76)
        self.assertLess(hwm, 32 * 1024, "server peak RSS %d kB after a 50 MB stream" % hwm)
        print("\n    50 MB stream: wait %.1fs, server VmHWM %d kB" % (dt, hwm), end=" ", flush=True)

    def test_binary_stream_is_valid_utf8(self):
        s = self.session()
        sid, _, _ = self.bg(s, "head -c 3000000 /dev/urandom")
        sc = self.wait_exit(s, sid, timeout=60)
        self.assertLessEqual(len(sc["output"]), 2000)
        lg = self.ok(s.process("log", session_id=sid, offset=0, limit=1000000))
        self.assertLessEqual(len(lg["output"]), BUFFER)
        self.assertIn("\ufffd", lg["output"])
        lg["output"].encode("utf-8")           # no lone surrogates


# ============================================================================ crash safety

class CrashTests(ProcessTest):

    def shared_state(self):
        d = tempfile.mkdtemp(prefix="swtest-state-")
        self.addCleanup(lambda: shutil.rmtree(d, ignore_errors=True))
        return d

    def crash(self, s):
        s.proc.kill()
        s.proc.wait(5)
        self.assertTrue(wait_until(lambda: not s._reader.is_alive(), 2))

    def state_files_with(self, state, needle):
        found = []
        for root, _, files in os.walk(state):
            for fn in files:
                p = os.path.join(root, fn)
                try:
                    with open(p, "rb") as f:
                        if needle in f.read():
                            found.append(p)
                except OSError:
                    pass
        return found

    def test_detached_after_server_crash(self):
        state = self.shared_state()
        s1 = self.session(env={"SHELLWIRE_STATE_DIR": state})
        sid, pid, _ = self.bg(s1, "echo before-crash; sleep 301")
        self.poll_until(s1, sid, "before-crash")
        self.assertTrue(wait_until(lambda: self.state_files_with(state, b"before-crash"), 2),
                        "the output is not in a log file under the state dir")
        time.sleep(2.1)                        # uptime must count from the original start
        self.crash(s1)
        self.assertTrue(pid_alive(pid), "the background process died with the server")
        s2 = self.session(env={"SHELLWIRE_STATE_DIR": state})
        procs = s2.process("list")["processes"]
        self.assertEqual([(p["session_id"], p["pid"], p["status"]) for p in procs], [(sid, pid, "detached")])
        self.assertIn("before-crash", procs[0]["output_preview"])
        sc = self.ok(s2.process("poll", session_id=sid[:9]))
        self.assertEqual((sc["session_id"], sc["status"], sc["pid"]), (sid, "detached", pid))
        self.assertIn("before-crash", sc["output_preview"])
        self.assertGreaterEqual(sc["uptime_seconds"], 2, "uptime restarted at the adoption")
        self.assertIn("before-crash", self.ok(s2.process("log", session_id=sid))["output"])
        sc = self.ok(s2.process("kill", session_id=sid))
        self.assertEqual((sc["status"], sc["exit_code"]), ("killed", -15), sc)
        self.assertNotIn("survivors", sc)
        self.assertTrue(wait_until(lambda: not pid_alive(pid), 1), "pid %d survived the kill" % pid)
        self.assertGone(s1, cmd_has("sleep 301"), 1.0)
        sc = self.ok(s2.process("poll", session_id=sid))
        self.assertEqual((sc["status"], sc["exit_code"]), ("exited", -15))

    def test_detached_process_output_and_exit_seen(self):
        """After a restart a detached pipe-mode process keeps logging, and its own exit (with
        its code) is noticed by poll and wait."""
        state = self.shared_state()
        s1 = self.session(env={"SHELLWIRE_STATE_DIR": state})
        sid, pid, _ = self.bg(s1, "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after; exit 3")
        self.poll_until(s1, sid, "before")
        self.crash(s1)
        s2 = self.session(env={"SHELLWIRE_STATE_DIR": state})
        self.assertEqual(s2.process("poll", session_id=sid)["status"], "detached")
        rid = s2.send_call({"action": "wait", "session_id": sid, "timeout": 20}, name="process")
        time.sleep(0.3)
        self.assertFalse(s2.has_response(rid))
        t0 = time.monotonic()
        open(os.path.join(s1.cwd, "go"), "w").close()
        r = s2.wait_response(rid, 10)
        dt = time.monotonic() - t0
        sc = r["result"]["structuredContent"]
        self.assertEqual((sc["status"], sc["error"]), ("exited", None), sc)
        self.assertEqual(sc["output"].rstrip("\n"), "before\nafter")
        self.assertLess(dt, 0.6, "wait on a detached process answered %.2fs after the exit" % dt)
        self.assertFalse(pid_alive(pid))
        self.assertEqual(sc["exit_code"], 3, "exit code of a detached process that ran `exit 3`")
        sc = s2.process("poll", session_id=sid)
        self.assertEqual((sc["status"], sc["exit_code"]), ("exited", 3), sc)

    def test_ambiguous_prefix(self):
        """Two ids that share 6 hex digits: made by renaming one id in the state dir of a
        crashed server (ids are random, so a natural collision is too rare to wait for)."""
        state = self.shared_state()
        s1 = self.session(env={"SHELLWIRE_STATE_DIR": state})
        a, apid, _ = self.bg(s1, "sleep 302")
        b, bpid, _ = self.bg(s1, "sleep 303")
        bhex = b[5:].encode()
        wait_until(lambda: self.state_files_with(state, bhex), 2)
        self.crash(s1)
        newb = a[:11] + next(c for c in "0123" if c != a[11]) + b[12:]
        hits = self.state_files_with(state, bhex)
        if not hits:
            self.fail("cannot simulate: %s appears in no file under the state dir" % b)
        for p in hits:
            with open(p, "rb") as f:
                data = f.read()
            with open(p, "wb") as f:
                f.write(data.replace(bhex, newb[5:].encode()))
        for root, dirs, files in os.walk(state, topdown=False):
            for fn in files + dirs:
                if b[5:] in fn:
                    os.rename(os.path.join(root, fn), os.path.join(root, fn.replace(b[5:], newb[5:])))
        s2 = self.session(env={"SHELLWIRE_STATE_DIR": state})
        listed = {p["session_id"]: p["pid"] for p in s2.process("list")["processes"]}
        self.assertEqual(listed, {a: apid, newb: bpid})
        for ref in (a[:9], a[:11]):
            with self.subTest(ref=ref):
                self.assertProcessError(s2.process_call({"action": "poll", "session_id": ref}), "ambiguous")
        self.assertEqual(s2.process("poll", session_id=newb[:12])["pid"], bpid)
        self.assertEqual(s2.process("poll", session_id=a[:12])["pid"], apid)
        for sid in (a, newb):
            self.assertEqual(s2.process("kill", session_id=sid)["status"], "killed")
        self.assertGone(s1, cmd_has("sleep 302", "sleep 303"), 1.0)

    def test_recycled_pid_not_signalled(self):
        """Simulated: the checkpointed pid is replaced by the pid of an unrelated process."""
        state = self.shared_state()
        s1 = self.session(env={"SHELLWIRE_STATE_DIR": state})
        sid, pid, _ = self.bg(s1, "sleep 304")
        original_start = proc_stat(pid)["starttime"]
        hexid = sid[5:].encode()
        wait_until(lambda: self.state_files_with(state, hexid), 2)
        self.crash(s1)
        try:                                   # the original process is gone (SIGKILL: it
            os.kill(pid, signal.SIGKILL)       # records no exit code): its pid is free
        except OSError:
            pass
        s1.reap_leftovers()
        self.assertTrue(wait_until(lambda: not pid_alive(pid), 2))
        time.sleep(0.05)                       # start times have a 10 ms resolution
        decoy = subprocess.Popen(["sleep", "3600"], start_new_session=True)
        self.addCleanup(lambda: (decoy.kill(), decoy.wait()))
        self.assertNotEqual(proc_stat(decoy.pid)["starttime"], original_start, "test artifact: same tick")
        hits = []
        for p in self.state_files_with(state, hexid):
            with open(p, "rb") as f:
                data = f.read()
            new, n = re.subn(rb"(?<=[:= \t,\[])%d(?=[ \t,}\]\r\n;]|$)" % pid, b"%d" % decoy.pid, data)
            if n:
                with open(p, "wb") as f:
                    f.write(new)
                hits.append(p)
        if not hits:
            self.skipTest("cannot simulate: pid %d not found next to %s in the state dir" % (pid, sid))
        s2 = self.session(env={"SHELLWIRE_STATE_DIR": state})
        procs = s2.process("list")["processes"]
        st = [p["status"] for p in procs if p["session_id"] == sid]
        self.assertNotIn(st[:1], (["detached"], ["running"]), "a recycled pid is listed as live: %r" % procs)
        s2.process_call({"action": "kill", "session_id": sid})
        time.sleep(0.3)
        self.assertIsNone(decoy.poll(), "the server signalled an unrelated process with a recycled pid")
        s2.stop()
        self.assertIsNone(decoy.poll(), "server shutdown signalled an unrelated process")


# ============================================================================ server exit

class ShutdownTests(ProcessTest):

    def start_some(self, s, extra=()):
        """Starts a few background trees; returns the reported pids."""
        pids = [self.bg(s, "sleep 310")[1], self.bg(s, "sleep 311", pty=True)[1],
                self.bg(s, "bash -c 'sleep 312 & sleep 313'")[1]]
        pids += [self.bg(s, c)[1] for c in extra]
        self.assertTrue(wait_until(
            lambda: len(s.find_procs(cmd_has("sleep 310", "sleep 311", "sleep 312", "sleep 313"))) >= 4, 3))
        return pids

    def assertAllGone(self, s, pids):
        self.assertEqual(s.leftovers(1.0), [])
        self.assertEqual([p for p in pids if pid_alive(p)], [], "reported pids survived the server")

    def test_stdin_eof_kills_background_trees(self):
        s = self.session()
        pids = self.start_some(s, ["bash -c 'trap \"\" TERM; sleep 314' & sleep 315"])
        self.assertTrue(wait_until(lambda: s.find_procs(cmd_has("sleep 314")), 3))
        time.sleep(0.1)
        s.close_stdin()
        rc = s.wait_exit(10)
        self.assertEqual(rc, 0)
        self.assertAllGone(s, pids)

    def test_sigterm_kills_background_trees(self):
        s = self.session()
        pids = self.start_some(s)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        rc = s.wait_exit(5)
        dt = time.monotonic() - t0
        self.assertEqual(rc, 0)
        self.assertLess(dt, 2.5, "SIGTERM exit took %.2fs" % dt)
        self.assertAllGone(s, pids)


if __name__ == "__main__":
    swclient.main()
