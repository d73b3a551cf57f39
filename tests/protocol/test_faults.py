#!/usr/bin/env python3
"""Fault injection on the local backend: what shellwire does when a command, the machine or
the client misbehaves. Each test provokes one fault and checks the outcome the contract
(SPEC, docs/) promises, or, where it says nothing, what a careful user would expect:

- a command that closes its output early but keeps running (the answer comes at its exit,
  with the output written before);
- commands that ignore SIGTERM (a timeout, a cancellation and `process kill` still end
  them; kill says that SIGKILL was needed);
- a fork bomb inside a pids limit (the server runs in a cgroup of its own);
- 10 GB on stdout, endless output, one 100 MB line (bounded memory, head/tail output);
- commands that never read their input, or try to (stdin is /dev/null; a pty process that
  does not read does not block the server);
- a full disk under SHELLWIRE_STATE_DIR (a 1 MB tmpfs);
- the client closing the server's stdout, closing both pipes, or dying mid-call.

Standard library only; needs root (mount, cgroups). Run as

    SHELLWIRE_BIN=$PWD/build/shellwire python3 tests/protocol/test_faults.py [name-filter ...]
"""

import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swclient  # noqa: E402
from swclient import ServerTest, pid_alive, tagged_procs, wait_until  # noqa: E402

LIMIT = 50000
NOTICE_RE = re.compile(r"\n\n\.\.\. \[OUTPUT TRUNCATED - (\d+) chars omitted out of (\d+) total\] \.\.\.\n\n")
SPILL_MAX = 5000000
# Peak resident memory the server may reach while a command floods it. Its own baseline
# is below 10 MB; the bounded capture adds a few MB. Unbounded buffering of any of these
# outputs would need hundreds of MB at least.
HWM_LIMIT_KB = 64 * 1024


def cmd_has(*words):
    """Process predicate: the command line contains one of `words`."""
    return lambda p: any(w in " ".join(p.cmdline) for w in words)


def status_of(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def stderr_lines(s):
    try:
        with open(s.stderr_path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


class FaultTest(ServerTest):

    def session(self, **kw):
        s = self.start(**kw)
        s.initialize()
        return s

    def assertGone(self, s, pred, within=2.0, what="processes"):
        ok = wait_until(lambda: not s.find_procs(pred), within)
        self.assertTrue(ok, "%s survived: %r" % (what, s.find_procs(pred)))

    def assertStarted(self, s, pred, within=5.0, what="the command"):
        self.assertTrue(wait_until(lambda: s.find_procs(pred), within), "%s did not start" % what)

    def assertTruncated(self, sc, total):
        """Head/tail truncation (SPEC 3): the notice's numbers add up, 40/60 split, a note.
        Returns (head, tail)."""
        out = sc["output"]
        m = NOTICE_RE.search(out)
        self.assertIsNotNone(m, "no truncation notice in %r..." % out[:200])
        omitted, said_total = int(m.group(1)), int(m.group(2))
        head, tail = out[:m.start()], out[m.end():]
        self.assertEqual(said_total, total)
        self.assertEqual(sc.get("output_total_chars"), total,
                         {k: v for k, v in sc.items() if k != "output"})
        # Trimming may drop one final newline from what is shown.
        self.assertIn(total - (len(head) + len(tail) + omitted), (0, 1), "notice numbers do not add up")
        self.assertLessEqual(abs(len(head) - 0.4 * LIMIT), 0.01 * LIMIT + 1, len(head))
        self.assertLessEqual(abs(len(tail) - 0.6 * LIMIT), 0.01 * LIMIT + 1, len(tail))
        self.assertIsInstance(sc.get("truncation_note"), str)
        self.assertTrue(sc["truncation_note"])
        return head, tail

    # ---- root-only fixtures

    def tmpfs(self, size):
        """Mounts a private tmpfs of `size` bytes on a fresh directory; unmounted at cleanup."""
        d = tempfile.mkdtemp(prefix="swtest-tmpfs-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % size, "swtest", d],
                           capture_output=True, text=True)
        if r.returncode != 0:
            os.rmdir(d)
            self.fail("cannot mount a tmpfs (the disk-full tests need root): %s" % r.stderr.strip())

        def undo():
            if subprocess.run(["umount", d], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", d], capture_output=True)
            os.rmdir(d)
        self.addCleanup(undo)
        return d

    def fill(self, path):
        """Writes a file under `path` until the file system is full; returns its size."""
        n = 0
        chunk = b"\0" * 4096
        with open(os.path.join(path, "filler"), "wb", buffering=0) as f:
            while True:
                try:
                    w = f.write(chunk)
                except OSError as ex:
                    if ex.errno != errno.ENOSPC:
                        raise
                    break
                n += w or 0
        st = os.statvfs(path)
        self.assertEqual(st.f_bavail, 0, "test artifact: the tmpfs is not full")
        return n

    def pids_cgroup(self):
        """A new cgroup with the pids controller (v2 if it has one, else v1); returns its
        directory. At cleanup whatever is still in it is killed and it is removed."""
        name = "shellwire-test-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
        path = None
        for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            ctl = status_of(os.path.join(root, "cgroup.controllers")).split()
            if "pids" not in ctl:
                continue
            sub = os.path.join(root, "cgroup.subtree_control")
            if "pids" not in status_of(sub).split():
                try:
                    with open(sub, "w") as f:
                        f.write("+pids")
                except OSError:
                    continue
            path = os.path.join(root, name)
            break
        if path is None and os.path.isfile("/sys/fs/cgroup/pids/cgroup.procs"):
            path = os.path.join("/sys/fs/cgroup/pids", name)
        if path is None:
            self.fail("no pids cgroup controller (v2 or v1) to confine the fork bomb in")
        try:
            os.mkdir(path)
        except OSError as ex:
            self.fail("cannot create the cgroup %s (needs root): %s" % (path, ex))

        def members():
            return [int(x) for x in status_of(os.path.join(path, "cgroup.procs")).split()]

        def undo():
            for _ in range(100):
                left = members()
                if not left:
                    break
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.05)
            os.rmdir(path)
        self.addCleanup(undo)
        self.assertTrue(os.path.isfile(os.path.join(path, "pids.max")), "no pids.max in %s" % path)
        return path


# ============================================================================ output closed early

class OutputClosedTests(FaultTest):
    """A command that closes its stdout/stderr but keeps running: the call answers when
    the command exits, not when its output pipe reaches end-of-file, and keeps the output
    written before."""

    def test_shell_closes_its_output(self):
        s = self.session()
        s.run("true")
        t0 = time.monotonic()
        sc = s.run("echo before; exec >&- 2>&-; sleep 2; echo done > finished.txt", timeout=30)
        dt = time.monotonic() - t0
        self.assertOk(sc)
        self.assertEqual(sc["output"], "before")
        self.assertGreaterEqual(dt, 1.9, "answered %.2fs after the start, before the command ended" % dt)
        self.assertLess(dt, 6.0)
        with open(os.path.join(s.cwd, "finished.txt")) as f:
            self.assertEqual(f.read(), "done\n", "the command did not run to its end")
        self.assertEqual(s.run("echo next")["output"], "next")

    def test_child_closes_its_output(self):
        s = self.session()
        s.run("true")
        t0 = time.monotonic()
        sc = s.run("echo a; python3 -c 'import os, time; print(\"child\", flush=True); "
                   "os.close(1); os.close(2); time.sleep(2)'; echo after", timeout=30)
        dt = time.monotonic() - t0
        self.assertOk(sc)
        self.assertEqual(sc["output"], "a\nchild\nafter")
        self.assertGreaterEqual(dt, 1.9)
        self.assertLess(dt, 6.0)

    def test_output_sent_elsewhere_keeps_variables(self):
        """`exec >/dev/null` hides everything after it, yet the call ends normally and
        the variables it exported are kept (the state dump does not go through stdout)."""
        s = self.session()
        sc = s.run("echo shown; export KEPT_AFTER_EXEC=yes; exec >/dev/null 2>&1; echo hidden; exit 3")
        self.assertOk(sc, 3)
        self.assertEqual(sc["output"], "shown")
        sc = s.run("echo shown; export KEPT_AFTER_EXEC=yes; exec >/dev/null 2>&1; echo hidden")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "shown")
        self.assertEqual(s.run('echo "[$KEPT_AFTER_EXEC]"')["output"], "[yes]")

    def test_background_process_closes_its_output(self):
        s = self.session()
        sid = s.background("echo early; exec >&- 2>&-; sleep 1; exit 3")["session_id"]
        t0 = time.monotonic()
        sc = s.process("wait", session_id=sid, timeout=20)
        self.assertEqual((sc["status"], sc["exit_code"], sc["error"]), ("exited", 3, None), sc)
        self.assertEqual(sc["output"].rstrip("\n"), "early")
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)


# ============================================================================ SIGTERM ignored

class TermIgnoredTests(FaultTest):
    TREE = "trap '' TERM; echo started; bash -c \"trap '' TERM; sleep 211\" & sleep 212; wait"

    def test_timeout_ends_a_tree_that_ignores_sigterm(self):
        s = self.session()
        t0 = time.monotonic()
        sc = s.run(self.TREE, timeout=2)
        dt = time.monotonic() - t0
        self.assertOk(sc, 124)
        self.assertEqual(sc["output"], "started\n[Command timed out after 2s]")
        self.assertGreaterEqual(dt, 1.9)
        self.assertLess(dt, 5.0, "a 2 s timeout on a SIGTERM-proof tree took %.2fs" % dt)
        self.assertGone(s, cmd_has("sleep 211", "sleep 212"), 1.0, "the SIGTERM-proof tree")

    def test_cancel_ends_a_tree_that_ignores_sigterm(self):
        s = self.session()
        s.run("true")
        rid = s.send_call({"command": self.TREE, "timeout": 120})
        self.assertStarted(s, cmd_has("sleep 211"))
        s.notify("notifications/cancelled", {"requestId": rid, "reason": "test"})
        self.assertGone(s, cmd_has("sleep 211", "sleep 212"), 2.0, "the cancelled SIGTERM-proof tree")
        time.sleep(0.5)
        self.assertEqual(s.responses_for(rid), [], "a cancelled call was answered")
        self.assertEqual(s.run("echo next")["output"], "next")

    def test_kill_needs_sigkill_and_says_so(self):
        s = self.session()
        sc = s.background("trap '' TERM; echo ready; sleep 213")
        sid, pid = sc["session_id"], sc["pid"]
        self.assertTrue(wait_until(lambda: "ready" in s.process("poll", session_id=sid)["output_preview"], 5))
        self.assertStarted(s, cmd_has("sleep 213"))
        t0 = time.monotonic()
        r = s.process_call({"action": "kill", "session_id": sid})
        dt = time.monotonic() - t0
        sc = r["result"]["structuredContent"]
        self.assertIs(r["result"]["isError"], False, sc)
        self.assertEqual((sc["status"], sc["exit_code"], sc["error"]), ("killed", -15, None), sc)
        self.assertNotIn("survivors", sc)
        self.assertGreaterEqual(dt, 1.8, "no SIGTERM grace period (%.2fs)" % dt)
        self.assertLess(dt, 6.0)
        note = sc.get("kill_note")
        self.assertIsInstance(note, str, "kill does not say that SIGKILL was needed: %r" % sc)
        self.assertIn("SIGKILL", note)
        self.assertFalse(pid_alive(pid))
        self.assertGone(s, cmd_has("sleep 213"), 0.5)
        sc = s.process("poll", session_id=sid)
        self.assertEqual((sc["status"], sc["exit_code"]), ("exited", -15), sc)

    def test_kill_without_sigkill_has_no_note(self):
        s = self.session()
        sid = s.background("sleep 214")["session_id"]
        self.assertStarted(s, cmd_has("sleep 214"))
        t0 = time.monotonic()
        sc = s.process("kill", session_id=sid)
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual((sc["status"], sc["exit_code"]), ("killed", -15), sc)
        self.assertNotIn("kill_note", sc)


# ============================================================================ fork bomb

class ForkBombTests(FaultTest):
    # Binary recursion 8 levels deep: 511 processes if nothing stops it (256 of them
    # `sleep 231`), far above the limit the test sets.
    BOMB = ('f() { local d=$1; if [ "$d" -ge 8 ]; then exec sleep 231; fi; '
            'f $((d + 1)) & f $((d + 1)) & wait; }\nf 0\n')

    def test_fork_bomb_inside_a_pids_limit(self):
        cg = self.pids_cgroup()
        binary = os.path.abspath(swclient.BIN)
        s = self.start(binary="/bin/sh",
                       args=("-c", 'echo $$ > "$1/cgroup.procs" && exec "$0"', binary, cg))
        s.initialize()
        self.assertIn(str(s.pid), status_of(os.path.join(cg, "cgroup.procs")).split(),
                      "the server is not in the test cgroup")
        s.run("true")
        s.run("true", task_id="other")
        # Idle workers, so calls during the bomb need no new thread (a thread is a pid too).
        rids = [s.send_call({"command": "sleep 0.1", "task_id": "pool"}) for _ in range(6)]
        for rid in rids:
            s.wait_response(rid, 20)
        with open(os.path.join(s.cwd, "bomb.sh"), "w") as f:
            f.write(self.BOMB)
        time.sleep(0.3)
        base = int(status_of(os.path.join(cg, "pids.current")))
        with open(os.path.join(cg, "pids.max"), "w") as f:
            f.write(str(base + 40))

        t0 = time.monotonic()
        rid = s.send_call({"command": "bash bomb.sh", "timeout": 8})

        def hits():
            m = re.search(r"max (\d+)", status_of(os.path.join(cg, "pids.events")))
            return int(m.group(1)) if m else 0
        self.assertTrue(wait_until(hits, 6, 0.05), "the bomb never reached the pids limit")
        # The server answers while its cgroup is out of pids.
        for what, fn in (("ping", lambda: s.ping(timeout=5)),
                         ("tools/list", lambda: s.request("tools/list", {}, timeout=5)),
                         ("process list", lambda: s.process("list", task_id="other", wait=5))):
            t = time.monotonic()
            fn()
            self.assertLess(time.monotonic() - t, 1.0, "%s during the bomb took %.2fs" % (what, time.monotonic() - t))
        t = time.monotonic()
        r = s.call({"command": "echo alive", "task_id": "other"}, timeout=8)
        self.assertLess(time.monotonic() - t, 8.0)
        if not r["result"].get("isError"):
            self.assertEqual(r["result"]["structuredContent"]["output"], "alive")

        r = s.wait_response(rid, 30)
        dt = time.monotonic() - t0
        sc = r["result"]["structuredContent"]
        self.assertOk(sc, 124)
        self.assertTrue(sc["output"].endswith("[Command timed out after 8s]"), sc["output"][-300:])
        self.assertLess(dt, 14.0, "the bomb's call ended %.1fs after it started" % dt)
        self.assertGone(s, cmd_has("sleep 231", "bomb.sh"), 3.0, "the fork bomb")
        self.assertTrue(wait_until(lambda: int(status_of(os.path.join(cg, "pids.current"))) <= base + 4, 5),
                        "pids in use after the bomb: %s (before: %d)"
                        % (status_of(os.path.join(cg, "pids.current")).strip(), base))
        self.assertEqual(s.run("echo after", timeout=20)["output"], "after")
        self.assertEqual(s.stop(), 0)
        self.assertTrue(wait_until(lambda: not status_of(os.path.join(cg, "cgroup.procs")).split(), 3),
                        "processes left in the cgroup: %s" % status_of(os.path.join(cg, "cgroup.procs")))
        self.assertEqual(s.find_procs(lambda p: True), [])


# ============================================================================ floods

class FloodTests(FaultTest):
    LINE = ("shellwire flood line 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ "
            + "." * 99)[:99]

    def test_10_gb_on_stdout(self):
        self.assertEqual(len(self.LINE), 99)
        total = 10 * 1000 ** 3
        s = self.session()
        rid = s.send_call({"command": "yes '%s' | head -c %d" % (self.LINE, total), "timeout": 600})
        t0 = time.monotonic()
        self.assertStarted(s, cmd_has("yes shellwire flood"))
        time.sleep(1)
        for _ in range(3):                     # the server stays responsive meanwhile
            t = time.monotonic()
            s.ping(timeout=5)
            self.assertLess(time.monotonic() - t, 1.0)
            time.sleep(0.5)
        r = s.wait_response(rid, 620)
        dt = time.monotonic() - t0
        hwm = s.vm_kb("VmHWM")
        sc = r["result"]["structuredContent"]
        self.assertOk(sc)
        self.assertLessEqual(len(sc["output"]), LIMIT + 150)
        head, tail = self.assertTruncated(sc, total)
        stream = self.LINE + "\n"
        self.assertEqual(head, (stream * (len(head) // 100 + 1))[:len(head)])
        self.assertTrue((stream * (len(tail) // 100 + 2)).endswith(tail + "\n"), "tail is not the stream's end")
        path = sc.get("full_output_path")
        self.assertIsInstance(path, str, sc.keys())
        size = os.path.getsize(path)
        self.assertGreaterEqual(size, SPILL_MAX)
        self.assertLessEqual(size, SPILL_MAX + 200, "saved output not capped")
        with open(path) as f:
            self.assertEqual(f.read(1000), (stream * 11)[:1000])
        self.assertLess(hwm, HWM_LIMIT_KB, "server peak RSS %d kB for 10 GB of output" % hwm)
        self.assertLess(dt, 400, "10 GB took %.0fs" % dt)
        print("\n    10 GB: %.1fs (%.0f MB/s), server VmHWM %d kB" % (dt, total / dt / 1e6, hwm),
              end=" ", flush=True)

    def test_endless_output_stops_at_timeout(self):
        s = self.session()
        t0 = time.monotonic()
        sc = s.run("yes 'endless output'", timeout=5)
        dt = time.monotonic() - t0
        hwm = s.vm_kb("VmHWM")
        self.assertOk(sc, 124)
        self.assertGreaterEqual(dt, 4.9)
        self.assertLess(dt, 9.0, "a 5 s timeout answered after %.2fs" % dt)
        out = sc["output"]
        self.assertTrue(out.endswith("\n[Command timed out after 5s]"), out[-200:])
        m = NOTICE_RE.search(out)
        self.assertIsNotNone(m, "no truncation notice")
        self.assertTrue(out.startswith("endless output\nendless output\n"), out[:100])
        self.assertGreater(sc.get("output_total_chars", 0), 1000000)
        self.assertLessEqual(len(out), LIMIT + 200)
        self.assertLess(hwm, HWM_LIMIT_KB, "server peak RSS %d kB" % hwm)
        self.assertGone(s, cmd_has("yes"), 1.0)

    def test_100_mb_line_in_the_foreground(self):
        """One line of 100 MB (no newline anywhere), printed over a few seconds so that
        progress notifications happen while it grows: their `message` stays short."""
        s = self.session()
        total = 100 * 1000 ** 2
        cmd = "for i in $(seq 100); do head -c 1000000 /dev/zero | tr '\\0' x; sleep 0.02; done"
        before = s.message_count()
        r = s.call({"command": cmd, "timeout": 120}, meta={"progressToken": "big-line"}, timeout=130)
        hwm = s.vm_kb("VmHWM")
        sc = r["result"]["structuredContent"]
        self.assertOk(sc)
        head, tail = self.assertTruncated(sc, total)
        self.assertEqual(head, "x" * len(head))
        self.assertEqual(tail, "x" * len(tail))
        self.assertLess(hwm, HWM_LIMIT_KB, "server peak RSS %d kB for a 100 MB line" % hwm)
        progress = [m for m in s.messages_after(before) if m.get("method") == "notifications/progress"]
        self.assertGreaterEqual(len(progress), 1, "no progress notification in a 2+ s call")
        for m in progress:
            msg = m["params"].get("message")
            self.assertIsInstance(msg, str)
            self.assertLessEqual(len(msg), 1000, "a progress message of %d chars" % len(msg))
            self.assertEqual(msg, "x" * len(msg))

    def test_100_mb_line_in_the_background(self):
        s = self.session()
        sid = s.background("head -c 100000000 /dev/zero | tr '\\0' x")["session_id"]
        sc = s.process("wait", session_id=sid, timeout=120)
        self.assertEqual((sc["status"], sc["exit_code"]), ("exited", 0), sc)
        self.assertEqual(sc["output"], "x" * 2000)
        lg = s.process("log", session_id=sid)
        self.assertEqual((lg["total_lines"], lg["showing"]), (1, "lines 1-1 of 1"))
        self.assertEqual(lg["output"], "x" * 200000)
        self.assertEqual(s.process("poll", session_id=sid)["output_preview"], "x" * 1000)
        hwm = s.vm_kb("VmHWM")
        self.assertLess(hwm, HWM_LIMIT_KB, "server peak RSS %d kB" % hwm)

    def test_100_mb_request_line(self):
        """A client line of 100 MB (16 MiB is the limit): one -32600, bounded memory, and
        the server reads on; the same line cut off by end-of-input is refused too."""
        s = self.session()
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            s.send_raw(chunk)
        s.send_raw(b"\n")
        s.ping()
        nulls = s.responses_for(None)
        self.assertEqual(len(nulls), 1, nulls)
        self.assertEqual(nulls[0]["error"]["code"], -32600)
        self.assertEqual(s.run("echo still here")["output"], "still here")
        # Reading up to the limit takes a buffer of up to twice 16 MiB (more under a
        # sanitizer's allocator); keeping the whole line would take over 100 MB.
        hwm = s.vm_kb("VmHWM")
        self.assertLess(hwm, 96 * 1024, "server peak RSS %d kB after a 100 MB line" % hwm)
        for _ in range(100):
            s.send_raw(chunk)
        s.close_stdin()
        self.assertEqual(s.wait_exit(10), 0)
        nulls = s.responses_for(None)
        self.assertEqual([m["error"]["code"] for m in nulls], [-32600, -32600])


# ============================================================================ stdin

class StdinTests(FaultTest):

    def test_foreground_stdin_reads_end_at_once(self):
        s = self.session()
        s.run("true")
        for cmd, want in (("cat; echo \"cat=$?\"", "cat=0"),
                          ("read -r line; echo \"read=$?\"", "read=1"),
                          ("python3 -c 'import sys; print(len(sys.stdin.buffer.read()))'", "0"),
                          ("head -c 10 | wc -c", "0"),
                          ("readlink /proc/self/fd/0", "/dev/null")):
            with self.subTest(command=cmd):
                t0 = time.monotonic()
                sc = s.run(cmd, timeout=60)
                self.assertLess(time.monotonic() - t0, 3.0, "%r waited for input" % cmd)
                self.assertOk(sc)
                self.assertEqual(sc["output"], want)

    def test_background_stdin_reads_end_at_once(self):
        s = self.session()
        sid = s.background("cat; echo \"cat=$?\"; read -r x; echo \"read=$?\"")["session_id"]
        sc = s.process("wait", session_id=sid, timeout=10)
        self.assertEqual((sc["status"], sc["exit_code"]), ("exited", 0), sc)
        self.assertEqual(sc["output"].rstrip("\n"), "cat=0\nread=1")

    def test_pty_process_that_never_reads(self):
        """Writing 1 MB to a pty process that never reads: the write gives up with a clear
        error instead of hanging, other calls are not held up meanwhile, and the process
        can still be killed."""
        s = self.session()
        sid = s.background("sleep 216", pty=True)["session_id"]
        other = s.background("echo other; sleep 217", task_id="b")["session_id"]
        self.assertStarted(s, cmd_has("sleep 216"))
        t0 = time.monotonic()
        rid = s.send_call({"action": "write", "session_id": sid, "data": "y\n" * 500000}, name="process")
        time.sleep(0.3)
        for what, fn in (("poll of another process", lambda: s.process("poll", session_id=other, task_id="b")),
                         ("list", lambda: s.process("list", task_id="b")),
                         ("ping", s.ping)):
            t = time.monotonic()
            fn()
            self.assertLess(time.monotonic() - t, 0.5, "%s took %.2fs during the stuck write" % (what, time.monotonic() - t))
        r = s.wait_response(rid, 30)
        self.assertLess(time.monotonic() - t0, 15)
        sc = r["result"]["structuredContent"]
        if sc.get("error"):
            self.assertProcessError(r, "not reading")
        else:
            self.assertEqual(sc["bytes_written"], 1000000, sc)
        sc = s.process("kill", session_id=sid)
        self.assertEqual(sc["status"], "killed", sc)
        self.assertGone(s, cmd_has("sleep 216"), 1.0)
        self.assertEqual(s.process("poll", session_id=other, task_id="b")["status"], "running")

    def test_large_pty_write_arrives_exactly_once(self):
        """More than the terminal takes at once: every byte arrives, once, in order."""
        s = self.session()
        sid = s.background("stty -echo; cat > got.txt", pty=True)["session_id"]
        self.assertStarted(s, cmd_has("cat"))
        time.sleep(0.2)
        data = "".join("line %06d\n" % i for i in range(20000))
        sc = s.process("write", session_id=sid, data=data, wait=60)
        self.assertEqual((sc["error"], sc.get("bytes_written")), (None, len(data)), sc)
        self.assertIsNone(s.process("close", session_id=sid)["error"])
        sc = s.process("wait", session_id=sid, timeout=20)
        self.assertEqual((sc["status"], sc["exit_code"]), ("exited", 0), sc)
        with open(os.path.join(s.cwd, "got.txt")) as f:
            got = f.read()
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "the process received different input")


# ============================================================================ full disk

class DiskFullTests(FaultTest):
    """SHELLWIRE_STATE_DIR on a 1 MB tmpfs that fills up. The server keeps serving:
    answers come, session state is not lost, a failing checkpoint is logged once, and a
    full output that cannot be saved is reported in the truncation note."""

    def test_disk_fills_while_serving(self):
        state = self.tmpfs(1 << 20)
        s = self.session(env={"SHELLWIRE_STATE_DIR": state})
        self.assertOk(s.run("export BEFORE=kept; mkdir -p sub"))
        bg = s.background("sleep 0.1")["session_id"]
        s.process("wait", session_id=bg, timeout=10)
        self.fill(state)

        sc = s.run("echo during; export DURING=1; cd sub")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "during")
        self.assertEqual(s.run('echo "[$BEFORE] $PWD"')["output"],
                         "[kept] %s" % os.path.join(s.cwd, "sub"),
                         "the session state was lost when the disk filled up")
        # Background processes: every start, exit and kill changes the registry.
        sids = [s.background("exit 3")["session_id"] for _ in range(3)]
        for sid in sids:
            sc = s.process("wait", session_id=sid, timeout=10)
            self.assertEqual((sc["status"], sc["exit_code"]), ("exited", 3), sc)
        long_sid = s.background("sleep 241")["session_id"]
        self.assertStarted(s, cmd_has("sleep 241"))
        self.assertEqual(s.process("kill", session_id=long_sid)["status"], "killed")
        listed = {p["session_id"] for p in s.process("list")["processes"]}
        self.assertLessEqual(set(sids) | {long_sid, bg}, listed)
        procs = os.path.join(state, "procs")
        self.assertEqual([f for f in os.listdir(procs) if f.endswith(".tmp")], [],
                         "partial checkpoint files left on the full disk")
        # Output over the limit whose full copy cannot be saved.
        t0 = time.monotonic()
        sc = s.run("head -c 200000 /dev/zero | tr '\\0' z")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertOk(sc)
        head, tail = self.assertTruncated(sc, 200000)
        self.assertEqual(head + tail, "z" * (len(head) + len(tail)))
        self.assertNotIn("full_output_path", sc)
        self.assertNotIn(state, sc["truncation_note"])
        self.assertEqual(os.listdir(os.path.join(state, "output")), [])
        self.assertTrue(s.alive())
        s.ping()
        logged = [ln for ln in stderr_lines(s) if "registry" in ln]
        self.assertEqual(len(logged), 1, "the checkpoint failure was logged %d times: %r"
                         % (len(logged), logged[:3]))
        self.assertLessEqual(len(stderr_lines(s)), 4, "log flood on stderr: %r" % stderr_lines(s)[:8])

        # Room again: the next checkpoint is written.
        os.unlink(os.path.join(state, "filler"))
        sid = s.background("sleep 242")["session_id"]
        ck = os.path.join(procs, "registry-%d.json" % s.pid)

        def saved():
            try:
                with open(ck) as f:
                    return sid in f.read()
            except OSError:
                return False
        self.assertTrue(wait_until(saved, 3), "no checkpoint after space came back")
        self.assertEqual(s.process("kill", session_id=sid)["status"], "killed")
        self.assertEqual(s.stop(), 0)

    def test_server_starts_on_a_full_disk(self):
        """No first snapshot can be written: commands still get the server's environment
        (not a bare one with bash's default PATH)."""
        state = self.tmpfs(1 << 20)
        self.fill(state)
        s = self.session(env={"SHELLWIRE_STATE_DIR": state})
        sc = s.run('echo "$HOME|$PATH|$SW_TEST_TAG"')
        self.assertOk(sc)
        self.assertEqual(sc["output"], "%s|%s|%s" % (s.env["HOME"], s.env["PATH"], s.tag))
        sc = s.run("cd /tmp && export LATER=1 && echo ok")
        self.assertOk(sc)
        self.assertEqual(s.run("pwd")["output"], "/tmp")
        sid = s.background("exit 5")["session_id"]
        sc = s.process("wait", session_id=sid, timeout=10)
        self.assertEqual((sc["status"], sc["exit_code"]), ("exited", 5), sc)
        self.assertTrue(s.alive())
        self.assertEqual(s.stop(), 0)


# ============================================================================ client gone

class ClientGoneTests(FaultTest):
    """The client stops reading or disappears. Documented outcome (docs/protocol.md,
    Shutdown): a closed stdout ends the server at once, exit status 0, every process it
    started killed; stdin EOF alone first lets the calls in flight answer."""

    def raw(self):
        """A server without the reader thread: the test owns the read end of its stdout."""
        s = self.start(reader=False)
        self.send(s, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "swtest", "version": "1"}}})
        self.assertIn("result", self.read_answer(s, 1))
        self.send(s, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        return s

    def send(self, s, msg):
        s.proc.stdin.write((json.dumps(msg) + "\n").encode())
        s.proc.stdin.flush()

    def read_answer(self, s, rid, timeout=15):
        fd = s.proc.stdout.fileno()
        buf = getattr(s, "_rawbuf", b"")
        end = time.monotonic() + timeout
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = swclient.parse_strict(line)
                if isinstance(msg, dict) and msg.get("id") == rid:
                    s._rawbuf = buf
                    return msg
            left = end - time.monotonic()
            self.assertGreater(left, 0, "no answer for id %r" % rid)
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                self.assertTrue(chunk, "stdout closed before the answer for id %r" % rid)
                buf += chunk

    def start_work(self, s):
        """A background tree and a foreground call with a long timeout, both running."""
        self.send(s, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "terminal", "arguments": {"command": "sleep 221", "background": True}}})
        self.assertIsNone(self.read_answer(s, 2)["result"]["structuredContent"]["error"])
        self.send(s, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "terminal", "arguments": {"command": "echo hi; sleep 222", "timeout": 300}}})
        self.assertStarted(s, cmd_has("sleep 222"))
        self.assertStarted(s, cmd_has("sleep 221"))

    def assertCleanExit(self, s, t0, within=3.0):
        rc = s.wait_exit(10)
        dt = time.monotonic() - t0
        self.assertIsNotNone(rc, "the server did not exit")
        self.assertEqual(rc, 0, "exit status %r (negative: killed by a signal)" % rc)
        self.assertLess(dt, within, "the server took %.2fs to notice" % dt)
        self.assertEqual(s.leftovers(2.0), [], "processes survived the server")

    def test_stdout_closed_during_a_call(self):
        s = self.raw()
        self.start_work(s)
        t0 = time.monotonic()
        s.proc.stdout.close()
        self.assertCleanExit(s, t0)
        self.assertIn("stdout", "\n".join(stderr_lines(s)))

    def test_stdout_closed_while_idle(self):
        s = self.raw()
        t0 = time.monotonic()
        s.proc.stdout.close()
        self.assertCleanExit(s, t0)

    def test_both_pipes_closed_during_a_call(self):
        s = self.raw()
        self.start_work(s)
        t0 = time.monotonic()
        s.proc.stdin.close()
        s.proc.stdout.close()
        self.assertCleanExit(s, t0)

    def test_stdin_eof_alone_still_answers(self):
        s = self.session()
        rid = s.send_call({"command": "sleep 1; echo late", "timeout": 60})
        self.assertStarted(s, cmd_has("sleep 1"))
        s.close_stdin()
        r = s.wait_response(rid, 10)
        self.assertEqual(r["result"]["structuredContent"]["output"], "late")
        self.assertEqual(s.wait_exit(5), 0)

    def socket_server(self, same, seconds):
        """A server whose stdin and stdout are Unix sockets, as some clients (Node's
        child_process) give them: one socket pair each, or one pair for both. Returns
        (process, our end of its stdin, our end of its stdout, tag)."""
        tag = uuid.uuid4().hex
        tmp = tempfile.mkdtemp(prefix="swtest-")
        self.addCleanup(lambda: shutil.rmtree(tmp, ignore_errors=True))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        env.update(SHELLWIRE_STATE_DIR=tmp, SW_TEST_TAG=tag)
        ours_in, theirs_in = socket.socketpair()
        ours_out, theirs_out = (ours_in, theirs_in) if same else socket.socketpair()
        p = subprocess.Popen([os.path.abspath(swclient.BIN)], stdin=theirs_in.fileno(),
                             stdout=theirs_out.fileno(), stderr=subprocess.DEVNULL, cwd=tmp, env=env)
        theirs_in.close()
        theirs_out.close()

        def undo():
            if p.poll() is None:
                p.kill()
            p.wait(5)
            for q in tagged_procs(tag):
                try:
                    os.kill(q.pid, signal.SIGKILL)
                except OSError:
                    pass
            ours_in.close()
            ours_out.close()
        self.addCleanup(undo)
        sleep = "sleep %s" % seconds
        ours_in.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "terminal", "arguments": {"command": sleep + "; echo late", "timeout": 120}}}).encode() + b"\n")
        self.assertTrue(wait_until(lambda: any(sleep in " ".join(q.cmdline) for q in tagged_procs(tag)), 5),
                        "the command did not start")
        return p, ours_in, ours_out, tag

    def test_socket_half_close_still_answers(self):
        """Shutting down only the writing side (end of input) is not a client that went
        away: the call in flight is answered, then the server exits 0."""
        for same in (False, True):
            with self.subTest(same_socket=same):
                p, ours_in, ours_out, tag = self.socket_server(same, 1.5)
                ours_in.shutdown(socket.SHUT_WR)
                ours_out.settimeout(15)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = ours_out.recv(65536)
                    self.assertTrue(chunk, "stdout closed without the answer")
                    data += chunk
                msg = swclient.parse_strict(data.rstrip(b"\n"))
                self.assertEqual(msg["result"]["structuredContent"]["output"], "late")
                self.assertEqual(p.wait(10), 0)
                self.assertTrue(wait_until(lambda: not tagged_procs(tag), 2), tagged_procs(tag))

    def test_socket_closed_during_a_call(self):
        for same in (False, True):
            with self.subTest(same_socket=same):
                p, ours_in, ours_out, tag = self.socket_server(same, 30)
                t0 = time.monotonic()
                ours_out.close()
                ours_in.close()
                self.assertEqual(p.wait(40), 0)
                self.assertLess(time.monotonic() - t0, 3.0, "the server waited for the command")
                self.assertTrue(wait_until(lambda: not tagged_procs(tag), 2), tagged_procs(tag))

    # The client is a process of its own that the test kills with SIGKILL. Its parent (this
    # helper) is a child subreaper, so the orphaned server becomes its child and it can
    # report the server's exit status.
    HELPER = r"""
import ctypes, json, os, signal, subprocess, sys, time
binary, tag = sys.argv[1], sys.argv[2]
signal.alarm(60)
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)       # PR_SET_CHILD_SUBREAPER
r, w = os.pipe()
client = os.fork()
if client == 0:
    os.close(r)
    env = dict(os.environ, SW_TEST_TAG=tag)
    p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=env)
    p.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}\n')
    p.stdin.write(b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"terminal","arguments":{"command":"sleep 231 & sleep 232","background":true}}}\n')
    p.stdin.write(b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"terminal","arguments":{"command":"sleep 233","timeout":300}}}\n')
    p.stdin.flush()
    p.stdout.readline()
    os.write(w, b"%d\n" % p.pid)
    time.sleep(3600)
    os._exit(0)
os.close(w)
server = int(os.read(r, 64))
print(json.dumps({"client": client, "server": server}), flush=True)
pid, st = os.waitpid(client, 0)
t0 = time.monotonic()
pid, st = os.waitpid(server, 0)
print(json.dumps({"exited": os.WIFEXITED(st), "code": os.WEXITSTATUS(st) if os.WIFEXITED(st) else None,
                  "signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else None,
                  "seconds": time.monotonic() - t0}), flush=True)
"""

    def test_client_killed_mid_call(self):
        tag = uuid.uuid4().hex
        tmp = tempfile.mkdtemp(prefix="swtest-")
        self.addCleanup(lambda: shutil.rmtree(tmp, ignore_errors=True))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        env["SHELLWIRE_STATE_DIR"] = tmp
        helper = subprocess.Popen([sys.executable, "-c", self.HELPER, os.path.abspath(swclient.BIN), tag],
                                  stdout=subprocess.PIPE, cwd=tmp, env=env)

        def reap():
            for p in tagged_procs(tag):
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            if helper.poll() is None:
                helper.kill()
            helper.wait(5)
            helper.stdout.close()
        self.addCleanup(reap)

        def line(what):
            ready = select.select([helper.stdout], [], [], 20)[0]
            self.assertTrue(ready, "nothing within 20 s: %s" % what)
            return json.loads(helper.stdout.readline())
        pids = line("the client did not start the server")
        mine = lambda: [p for p in tagged_procs(tag) if p.pid != pids["server"]]  # noqa: E731
        self.assertTrue(wait_until(lambda: len([p for p in mine() if "sleep 23" in " ".join(p.cmdline)]) == 3, 5),
                        "the commands did not start: %r" % mine())
        os.kill(pids["client"], signal.SIGKILL)
        res = line("the server did not exit after its client died")
        self.assertEqual((res["exited"], res["code"], res["signal"]), (True, 0, None),
                         "the server ended with %r" % res)
        self.assertLess(res["seconds"], 3.0, "the server outlived its client by %.2fs" % res["seconds"])
        self.assertTrue(wait_until(lambda: not tagged_procs(tag), 2), "survivors: %r" % tagged_procs(tag))


if __name__ == "__main__":
    swclient.main()
