#!/usr/bin/env python3
"""Soak test: one shellwire server (local backend) driven by 16 concurrent callers for a
long time, then checked for leaks and lost or doubled answers.

The callers send a weighted mix: short foreground commands, small outputs (some over the
output limit, some with invalid UTF-8), non-zero exits, commands that time out, background
processes (start, poll, log, wait, kill; some with completion notices), calls that are
cancelled, tools/list, ping, `process list`, notifications, and malformed lines (bad JSON,
invalid UTF-8, wrong types, unknown tools, methods and actions, bad argument values). Every
answer is checked against what was sent.

Phases: warm-up (every environment opened; the worker pool brought to its maximum, so it
cannot grow later; the background registries filled to their cap of 64; a burst of large
outputs in every environment at once; then the mix for at least 30,000 lines and 20 % of
--min-seconds (at least 20 s): the allocator's footprint levels off only after every
worker thread has met every kind of call, many times), a
checkpoint taken while nothing runs, the main run (at least --calls request lines and at
least --min-seconds seconds), then the end, measured the same way. The run passes when:

- the server never dies, and exits with status 0 when its stdin is closed at the end;
- every request got exactly one answer (ids tracked; none missing, none doubled, none
  unknown), cancelled calls none, and the lines without a usable id exactly one id-null
  error each; every stdout line is one valid JSON-RPC message (swclient checks framing);
- between the checkpoint and the end the server's RSS grew by at most --rss-slack-kb
  (2 MB) and its fd count (/proc/PID/fd) and thread count (/proc/PID/status) did not grow;
- nothing is left behind: no zombie children of the server at the end, no process other
  than the environments' idle spare shells while it still runs, and no process carrying
  the server's tag after it exited.

It prints progress every 30 s (--progress) and a summary (counts per kind, calls/s,
latencies, RSS, fds and threads at start, checkpoint and end), then "N passed, M failed"
over its checks. The RSS check means nothing against a sanitizer build (its allocator
keeps freed memory in quarantine).
Standard library only. Not part of the quick suite; a short form for CI:

    SHELLWIRE_BIN=$PWD/build/shellwire python3 tests/soak/soak.py --calls 2000 --min-seconds 20
"""

import argparse
import collections
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import swclient  # noqa: E402
from swclient import Server, id_key, wait_until, check_tool_result, check_process_result  # noqa: E402

THREADS = 16
BG_ENVS = ["soak-bg0", "soak-bg1"]
SHARED_ENV = "soak-shared"
TRACKED_CAP = 64            # background processes kept per environment (SPEC 4)
LIMIT = 50000


class Failed(Exception):
    pass


def proc_status(pid):
    """(VmRSS kB, VmHWM kB, threads) of pid, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return None
    vals = {}
    for ln in text.splitlines():
        k, _, v = ln.partition(":")
        if k in ("VmRSS", "VmHWM", "Threads"):
            vals[k] = int(v.split()[0])
    return vals.get("VmRSS"), vals.get("VmHWM"), vals.get("Threads")


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def children(pid):
    """(pid, state, cmdline) of the direct children of pid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rp = stat.rfind(b")")
        fields = stat[rp + 2:].split()
        if int(fields[1]) == pid:
            out.append((int(name), fields[0].decode(), stat[stat.find(b"(") + 1:rp].decode(errors="replace")))
    return out


def descendants(pid):
    """Every live descendant of pid, found through parent links (the server is a child
    subreaper, so nothing it started can leave its tree while it runs), as
    swclient.ProcInfo objects."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        rp = stat.rfind(b")")
        fields = stat[rp + 2:].split()
        procs[int(name)] = swclient.ProcInfo(int(name), int(fields[1]), fields[0].decode(),
                                             [c.decode(errors="replace") for c in cmd.split(b"\0") if c],
                                             stat[stat.find(b"(") + 1:rp].decode(errors="replace"))
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for p in procs.values():
            if p.ppid == parent:
                todo.append(p.pid)
                if p.state not in ("Z", "X"):
                    out.append(p)
    return out


def is_spare_shell(p):
    """An environment's idle spare shell: bash -c '<load snapshot>; . /dev/fd/3'."""
    return (len(p.cmdline) >= 3 and os.path.basename(p.cmdline[0]) == "bash" and p.cmdline[1] == "-c"
            and p.cmdline[-1].endswith(". /dev/fd/3"))


class Caller:
    """One caller thread's state: its environment, ids and random stream."""

    def __init__(self, soak, tid, seed):
        self.soak, self.tid = soak, tid
        self.task = "soak-t%02d" % tid
        self.bgtask = BG_ENVS[tid % len(BG_ENVS)]
        self.rng = random.Random(seed * 1000 + tid)
        self.n = 0

    def new_id(self):
        self.n += 1
        # Strings and integers (some beyond 32 bits), unique across callers.
        return "t%02d-%d" % (self.tid, self.n) if self.n % 2 else (self.tid + 1) * 10 ** 10 + self.n

    def token(self):
        return "tok%02dx%d" % (self.tid, self.n)


class Soak:

    def __init__(self, args):
        self.args = args
        self.s = None
        self.send_mu = threading.Lock()
        self.mu = threading.Lock()
        self.expected = {}              # id key -> "answer" | "none"
        self.null_expected = collections.Counter()   # error code -> lines that must get
                                                     # one id-null error with that code
        self.notify_sids = set()        # background processes started with notify: true
        self.progress_ids = {}          # progress token -> id key of its call
        self.issued = 0                 # request lines sent (all phases)
        self.main_issued = 0            # ... in the main run
        self.kinds = collections.Counter()
        self.outcomes = collections.Counter()
        self.lat = collections.defaultdict(list)
        self.failures = []
        self.nfailures = 0
        self.phase = "setup"
        self.samples = []               # (time, rss, fds, threads)
        self.checks = []                # (name, ok, detail)

    # ---------------------------------------------------------------- bookkeeping

    def fail(self, msg):
        with self.mu:
            self.nfailures += 1
            if len(self.failures) < 40:
                self.failures.append("[%s] %s" % (self.phase, msg))

    def check(self, name, ok, detail=""):
        self.checks.append((name, bool(ok), detail))
        print("  %s %s%s" % ("ok  " if ok else "FAIL", name, (": " + detail) if detail else ""), flush=True)

    def send(self, line, rid=None, expect=None, kind="?", null_code=None):
        """Sends one line (bytes or a message) and records what must come back."""
        if not isinstance(line, (bytes, bytearray)):
            line = (json.dumps(line) + "\n").encode()
        with self.mu:
            if rid is not None:
                k = id_key(rid)
                if k in self.expected:
                    raise Failed("test bug: id %s reused" % k)
                self.expected[k] = expect
            elif expect == "null":
                self.null_expected[null_code] += 1
            self.issued += 1
            if self.phase == "main":
                self.main_issued += 1
            self.kinds[kind] += 1
        with self.send_mu:
            self.s.send_raw(line)

    def request(self, ctx, method, params=None, kind=None, timeout=30):
        rid = ctx.new_id()
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        t0 = time.monotonic()
        self.send(msg, rid, "answer", kind or method)
        r = self.s.wait_response(rid, timeout)
        self.lat[kind or method].append(time.monotonic() - t0)
        return r

    def tool(self, ctx, name, arguments, kind, timeout=30, meta=None):
        params = {"name": name, "arguments": arguments}
        if meta:
            params["_meta"] = meta
        r = self.request(ctx, "tools/call", params, kind, timeout)
        if "result" not in r:
            raise Failed("%s: protocol error %r for %r" % (kind, r.get("error"), arguments))
        (check_process_result if name == "process" else check_tool_result)(r["result"])
        return r["result"]["structuredContent"]

    def run(self, ctx, command, kind, task=None, **kw):
        args = dict(command=command, task_id=task or ctx.task, **kw)
        return self.tool(ctx, "terminal", args, kind, timeout=kw.get("timeout", 0) + 30)

    def proc(self, ctx, action, kind, **kw):
        args = dict(action=action, task_id=ctx.bgtask, **kw)
        return self.tool(ctx, "process", args, kind, timeout=kw.get("timeout", 0) + 30)

    def expect_eq(self, what, got, want):
        if got != want:
            raise Failed("%s: got %r, want %r" % (what, got, want))

    # ---------------------------------------------------------------- the mix

    def op_echo(self, ctx):
        tok = ctx.token()
        sc = self.run(ctx, "echo %s" % tok, "fg-echo")
        self.expect_eq("echo", (sc["output"], sc["exit_code"], sc["error"]), (tok, 0, None))

    def op_shared(self, ctx):
        tok = ctx.token()
        sc = self.run(ctx, "echo %s" % tok, "fg-shared", task=SHARED_ENV)
        self.expect_eq("shared echo", (sc["output"], sc["exit_code"]), (tok, 0))

    def op_output(self, ctx):
        r = ctx.rng.random()
        if r < 0.1:                                  # over the output limit
            n = 20000
            sc = self.run(ctx, "seq 1 %d" % n, "fg-big-output")
            total = sum(len(str(i)) + 1 for i in range(1, n + 1))
            self.expect_eq("big output total", sc.get("output_total_chars"), total)
            if "OUTPUT TRUNCATED" not in sc["output"] or len(sc["output"]) > LIMIT + 200:
                raise Failed("big output not truncated: %d chars" % len(sc["output"]))
            if not sc["output"].startswith("1\n2\n3\n") or not sc["output"].endswith("\n%d" % n):
                raise Failed("big output lost its head or tail")
        elif r < 0.25:                               # invalid UTF-8 and ANSI colours
            sc = self.run(ctx, "printf 'h\\303\\251llo \\377 \\033[31mred\\033[0m\\n'", "fg-utf8")
            self.expect_eq("utf8 output", sc["output"], "h\u00e9llo \ufffd red")
        else:
            n = ctx.rng.randint(1, 3000)
            sc = self.run(ctx, "seq 1 %d" % n, "fg-output")
            self.expect_eq("seq output", sc["output"], "\n".join(str(i) for i in range(1, n + 1)))
        self.expect_eq("output exit", (sc["exit_code"], sc["error"]), (0, None))

    def op_exit(self, ctx):
        if ctx.rng.random() < 0.3:
            sc = self.run(ctx, "grep -q no-such-text /dev/null", "fg-exit")
            self.expect_eq("grep exit", (sc["exit_code"], sc["error"]), (1, None))
            if not sc.get("exit_code_meaning"):
                raise Failed("grep exit 1 without exit_code_meaning: %r" % sc)
            return
        k = ctx.rng.randint(1, 120)
        sc = self.run(ctx, "echo code%d; exit %d" % (k, k), "fg-exit")
        self.expect_eq("exit", (sc["output"], sc["exit_code"], sc["error"]), ("code%d" % k, k, None))

    def op_timeout(self, ctx):
        tok = ctx.token()
        if ctx.rng.random() < 0.5:
            sc = self.run(ctx, "echo %s; sleep 30" % tok, "fg-timeout", timeout=1)
            secs = 1
        else:                                        # with progress notifications
            rid = ctx.new_id()
            with self.mu:
                self.progress_ids[rid if isinstance(rid, str) else str(rid)] = id_key(rid)
            args = {"command": "echo %s; sleep 30" % tok, "timeout": 2, "task_id": ctx.task}
            t0 = time.monotonic()
            self.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": "terminal", "arguments": args,
                                  "_meta": {"progressToken": rid if isinstance(rid, str) else str(rid)}}},
                      rid, "answer", "fg-timeout")
            r = self.s.wait_response(rid, 40)
            self.lat["fg-timeout"].append(time.monotonic() - t0)
            check_tool_result(r["result"])
            sc = r["result"]["structuredContent"]
            secs = 2
        self.expect_eq("timeout", (sc["output"], sc["exit_code"], sc["error"]),
                       ("%s\n[Command timed out after %ds]" % (tok, secs), 124, None))

    def op_cancel(self, ctx):
        rid = ctx.new_id()
        self.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                   "params": {"name": "terminal",
                              "arguments": {"command": "sleep 45; echo never", "timeout": 60,
                                            "task_id": ctx.task}}},
                  rid, "none", "fg-cancelled")
        time.sleep(ctx.rng.uniform(0.05, 0.3))
        self.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": rid, "reason": "soak"}}, kind="cancel-notification")

    def op_background(self, ctx):
        tok = ctx.token()
        long_running = ctx.rng.random() < 0.4
        notify = not long_running and ctx.rng.random() < 0.3
        args = {"command": "echo bg-%s; sleep %s" % (tok, "60" if long_running else "0.1"),
                "background": True, "task_id": ctx.bgtask}
        if notify:
            args["notify"] = True
        sc = self.tool(ctx, "terminal", args, "bg-start")
        sid = sc.get("session_id")
        if sc["error"] is not None or not sid:
            raise Failed("background start failed: %r" % sc)
        if notify:
            with self.mu:
                self.notify_sids.add(sid)
        if long_running:
            for _ in range(100):
                p = self.proc(ctx, "poll", "bg-poll", session_id=sid)
                if ("bg-%s" % tok) in p.get("output_preview", ""):
                    break
                time.sleep(0.02)
            else:
                raise Failed("background output never appeared: %r" % p)
            self.expect_eq("poll status", p["status"], "running")
            lg = self.proc(ctx, "log", "bg-log", session_id=sid)
            self.expect_eq("log", (lg["output"], lg["total_lines"]), ("bg-%s" % tok, 1))
            k = self.proc(ctx, "kill", "bg-kill", session_id=sid)
            self.expect_eq("kill", (k["status"], k["exit_code"], k["error"]), ("killed", -15, None))
        else:
            w = self.proc(ctx, "wait", "bg-wait", session_id=sid, timeout=20)
            self.expect_eq("wait", (w["status"], w["exit_code"], w["error"]), ("exited", 0, None))
            self.expect_eq("wait output", w["output"].rstrip("\n"), "bg-%s" % tok)
            if ctx.rng.random() < 0.5:
                lg = self.proc(ctx, "log", "bg-log", session_id=sid, offset=0, limit=5)
                self.expect_eq("log", (lg["output"], lg["total_lines"], lg["showing"]),
                               ("bg-%s" % tok, 1, "lines 1-1 of 1"))

    def op_process_list(self, ctx):
        sc = self.proc(ctx, "list", "process-list")
        if sc["error"] is not None or not isinstance(sc.get("processes"), list):
            raise Failed("process list: %r" % sc)
        if len(sc["processes"]) > TRACKED_CAP:
            raise Failed("%d processes tracked in one environment" % len(sc["processes"]))

    def op_tools_list(self, ctx):
        r = self.request(ctx, "tools/list", {}, "tools/list")
        names = sorted(t.get("name") for t in r.get("result", {}).get("tools", []))
        self.expect_eq("tools/list", names, ["process", "terminal"])

    def op_ping(self, ctx):
        r = self.request(ctx, "ping", None, "ping")
        self.expect_eq("ping", r.get("result"), {})

    def op_notification(self, ctx):
        self.send({"jsonrpc": "2.0", "method": "notifications/soak-%d" % ctx.rng.randint(0, 9)},
                  kind="notification")

    # Malformed lines. Lines whose id cannot be read get one error with id null; the others
    # an error (or a tool error) with their id.
    NULL_LINES = [
        (b'{"jsonrpc": "2.0", "id": 7, "method": "ping"\n', -32700),
        (b'\xff\xfe{"jsonrpc": "2.0"}\n', -32700),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}}\n', -32700),
        (b'[]\n', -32600),
        (b'42\n', -32600),
        (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}\n', -32600),
        (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}\n', -32600),
    ]

    def op_malformed(self, ctx):
        if ctx.rng.random() < 0.35:
            line, code = ctx.rng.choice(self.NULL_LINES)
            self.send(line, expect="null", kind="bad-null-id", null_code=code)
            return
        rid = ctx.new_id()
        variants = [
            ({"jsonrpc": "2.0", "id": rid, "method": 5}, -32600),
            ({"jsonrpc": "1.0", "id": rid, "method": "ping"}, -32600),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": "oops"}, -32600),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": "nope", "arguments": {}}}, -32602),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": "terminal", "arguments": "x"}}, -32602),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"arguments": {}}}, -32602),
            ({"jsonrpc": "2.0", "id": rid, "method": "soak/unknown"}, -32601),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/list", "params": {"cursor": "bogus"}}, -32602),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
              "params": {"name": "process", "arguments": {"action": "explode", "task_id": ctx.bgtask}}}, "tool"),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
              "params": {"name": "process", "arguments": {"action": "poll", "session_id": 5}}}, "tool"),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
              "params": {"name": "terminal", "arguments": {"command": "echo x", "timeout": "abc"}}}, "tool"),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
              "params": {"name": "terminal", "arguments": {"command": "echo x", "timeout": 0}}}, "tool"),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
              "params": {"name": "terminal", "arguments": {"command": 123}}}, "tool"),
            ({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
              "params": {"name": "terminal", "arguments": {"command": "echo x", "task_id": 5}}}, "tool"),
        ]
        msg, want = ctx.rng.choice(variants)
        t0 = time.monotonic()
        self.send(msg, rid, "answer", "bad-with-id")
        r = self.s.wait_response(rid, 30)
        self.lat["bad-with-id"].append(time.monotonic() - t0)
        if want == "tool":
            res = r.get("result")
            if not res or res.get("isError") is not True:
                raise Failed("expected a tool error for %r, got %r" % (msg, r))
            (check_process_result if msg["params"]["name"] == "process" else check_tool_result)(res)
        else:
            if r.get("error", {}).get("code") != want or "result" in r:
                raise Failed("expected error %d for %r, got %r" % (want, msg, r))

    MIX = [(op_echo, 22), (op_shared, 5), (op_output, 10), (op_exit, 7), (op_timeout, 1.5),
           (op_cancel, 1.5), (op_background, 9), (op_process_list, 3), (op_tools_list, 6),
           (op_ping, 10), (op_notification, 2), (op_malformed, 12)]

    # ---------------------------------------------------------------- threads

    def caller_main(self, ctx, stop):
        ops, weights = zip(*self.MIX)
        while not stop():
            op = ctx.rng.choices(ops, weights)[0]
            try:
                op(self, ctx)
                with self.mu:
                    self.outcomes[op.__name__[3:]] += 1
            except Failed as ex:
                self.fail(str(ex))
            except AssertionError as ex:            # swclient: no answer in time, server gone
                self.fail("%s: %s" % (op.__name__[3:], str(ex).splitlines()[0]))
                if not self.s.alive():
                    return
            except Exception as ex:                 # noqa: BLE001 - report, keep going
                self.fail("%s: %s: %s" % (op.__name__[3:], type(ex).__name__, ex))

    def run_callers(self, stop):
        callers = [Caller(self, i, self.args.seed) for i in range(self.args.threads)]
        for c in callers:
            c.n = self._id_base.get(c.tid, 0)
        threads = [threading.Thread(target=self.caller_main, args=(c, stop), daemon=True) for c in callers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in callers:
            self._id_base[c.tid] = c.n

    def sample(self):
        st = proc_status(self.s.pid)
        if st is None:
            return None
        v = (time.monotonic(), st[0], fd_count(self.s.pid), st[2])
        self.samples.append(v)
        return v

    def monitor_main(self, done):
        last = time.monotonic()
        while not done.wait(2.0):
            v = self.sample()
            if v is None or not self.s.alive():
                self.fail("the server died (exit status %r)" % self.s.proc.poll())
                return
            if time.monotonic() - last >= self.args.progress:
                last = time.monotonic()
                el = last - self.t_main if self.phase == "main" else 0
                print("  [%6.0fs] %s: %d lines sent (%d in the main run, %.0f/s), RSS %d kB, %d fds, %d threads, %d failures"
                      % (last - self.t0, self.phase, self.issued, self.main_issued,
                         self.main_issued / el if el > 0 else 0, v[1], v[2], v[3], self.nfailures), flush=True)

    def quiesce(self):
        """Waits until every expected answer is in and the server had a moment to settle;
        returns (rss, fds, threads)."""
        with self.mu:
            pending = [k for k, v in self.expected.items() if v == "answer"]

        def all_in():
            with self.s.cv:
                return all(k in self.s.responses for k in pending)
        if not wait_until(all_in, 60, 0.1):
            with self.s.cv:
                missing = [k for k in pending if k not in self.s.responses]
            self.fail("%d answers missing after 60 s, e.g. %r" % (len(missing), missing[:5]))
        # Answers are out before the environments settle and spare shells restart.
        time.sleep(1.5)
        st = proc_status(self.s.pid)
        return (st[0], fd_count(self.s.pid), st[2]) if st else (None, None, None)

    # ---------------------------------------------------------------- phases

    def burst(self, ctx, command, tasks, timeout=60, gap=0.0):
        """Sends `command` to every task at once (`gap` seconds apart) and checks that all
        of them worked."""
        rids = []
        for task in tasks:
            time.sleep(gap)
            rid = ctx.new_id()
            self.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": "terminal", "arguments": {"command": command, "task_id": task}}},
                      rid, "answer", "warm")
            rids.append(rid)
        for rid in rids:
            r = self.s.wait_response(rid, timeout)
            if r.get("result", {}).get("structuredContent", {}).get("exit_code") != 0:
                self.fail("warm-up call %r failed: %r" % (command, r))

    def warm_up(self):
        a = self.args
        ctx = Caller(self, 99, a.seed)
        ctx.task = SHARED_ENV
        envs = ["soak-t%02d" % i for i in range(a.threads)] + [SHARED_ENV] + BG_ENVS
        # Every environment the mix uses exists.
        self.burst(ctx, "true", envs)
        # The worker pool at its largest (SHELLWIRE_WORKERS, 64), so that it cannot grow
        # later: more calls at once than there are workers, each holding one (a call
        # waiting for its turn in its environment holds a worker too), until the thread
        # count stops growing. The pause between calls lets the idle worker a call woke
        # take it before the next arrives, so the next one finds no idle worker and gets a
        # new thread.
        grew, last = 0, proc_status(self.s.pid)[2]
        for _ in range(8):
            self.burst(ctx, "sleep 1", envs * 4, gap=0.003)
            now = proc_status(self.s.pid)[2]
            grew = grew + 1 if now <= last else 0
            last = max(last, now)
            if grew >= 2:
                break
        # Background registries full, of processes that printed something (each keeps a
        # buffer): from now on every start prunes the oldest finished one.
        for task in BG_ENVS:
            ctx.bgtask = task
            sids = []
            for _ in range(TRACKED_CAP + 2):
                sc = self.tool(ctx, "terminal", {"command": "echo warm-up output", "background": True,
                                                 "task_id": task}, "warm")
                sids.append(sc["session_id"])
            for sid in sids[-TRACKED_CAP:]:
                self.proc(ctx, "wait", "warm", session_id=sid, timeout=20)
        # Peak load: every environment producing output over the limit at once, a few
        # times, so that the allocator has seen the most concurrent demand of the mix.
        for _ in range(5):
            self.burst(ctx, "seq 1 20000", envs)
        self._id_base[99] = ctx.n
        # A first slice of the mix: memory use levels off only after every worker thread
        # has met every kind of call.
        n0, t0 = self.issued, time.monotonic()
        target = a.warm_calls
        secs = a.warm_seconds if a.warm_seconds is not None else max(20.0, a.min_seconds / 5)
        self.run_callers(lambda: self.issued - n0 >= target and time.monotonic() - t0 >= secs)

    def main(self):
        a = self.args
        self._id_base = {}
        self.t0 = time.monotonic()
        print("soak: %s, %d callers, at least %d calls and %d s" % (swclient.BIN, a.threads, a.calls, a.min_seconds),
              flush=True)
        self.s = Server(env={"TERMINAL_TIMEOUT": "60"})
        self.s.initialize()
        with self.s.cv:                               # swclient's own initialize
            self.expected.update((k, "answer") for k in self.s.responses)
        time.sleep(0.5)
        st = proc_status(self.s.pid)
        start = (st[0], fd_count(self.s.pid), st[2])
        done = threading.Event()
        mon = threading.Thread(target=self.monitor_main, args=(done,), daemon=True)
        mon.start()

        self.phase = "warm-up"
        self.warm_up()
        warm_lines = self.issued
        cp = self.quiesce()
        print("  checkpoint after %d warm-up lines: RSS %s kB, %s fds, %s threads" % (warm_lines, cp[0], cp[1], cp[2]),
              flush=True)

        self.phase = "main"
        self.t_main = time.monotonic()

        def stop():
            return self.main_issued >= a.calls and time.monotonic() - self.t_main >= a.min_seconds
        self.run_callers(stop)
        main_secs = time.monotonic() - self.t_main
        self.phase = "end"
        end = self.quiesce()
        done.set()
        mon.join()
        hwm = (proc_status(self.s.pid) or (None, None, None))[1]
        self.finish(start, cp, end, hwm, warm_lines, main_secs)

    def finish(self, start, cp, end, hwm, warm_lines, main_secs):
        s, a = self.s, self.args
        print("checks:", flush=True)
        self.check("no failed call", self.nfailures == 0,
                   "%d failures, first: %s" % (self.nfailures, self.failures[:1]) if self.nfailures else "")
        self.check("server alive until the end", s.alive(), "" if s.alive() else "exit %r" % s.proc.poll())

        time.sleep(2.0)                               # late or doubled answers
        with s.cv:
            answered_at = {}                          # id key -> seq of the first answer
            for seq, _, m in s.messages:
                if isinstance(m, dict) and "id" in m and "method" not in m:
                    answered_at.setdefault(id_key(m["id"]), seq)
            progress = [(seq, m) for seq, m in s.notifications if m.get("method") == "notifications/progress"]
            responses = {k: len(v) for k, v in s.responses.items()}
            null_codes = collections.Counter(m.get("error", {}).get("code") for m in s.responses.get("null", []))
            notifications = [m for _, m in s.notifications]
            requests = list(s.requests)
            bad = list(s.bad)
        with self.mu:
            expected = dict(self.expected)
            null_expected = collections.Counter(self.null_expected)
            notify_sids = set(self.notify_sids)
            progress_ids = dict(self.progress_ids)
        missing = [k for k, v in expected.items() if v == "answer" and responses.get(k, 0) == 0]
        doubled = [k for k, v in expected.items() if responses.get(k, 0) > 1]
        unwanted = [k for k, v in expected.items() if v == "none" and responses.get(k, 0) > 0]
        unknown = [k for k in responses if k not in expected and k != "null"]
        self.check("every request answered exactly once", not (missing or doubled or unwanted or unknown),
                   "missing %d %r, doubled %d %r, answered though cancelled %d %r, unknown ids %d %r"
                   % (len(missing), missing[:3], len(doubled), doubled[:3], len(unwanted), unwanted[:3],
                      len(unknown), unknown[:3]))
        self.check("one id-null error per unreadable line", null_codes == null_expected,
                   "sent %s, answered %s" % (dict(null_expected), dict(null_codes)))
        self.check("stdout framing: every line one JSON-RPC message", not bad, repr(bad[:3]))
        self.check("no requests from the server", not requests, repr(requests[:2]))
        seen = collections.Counter(m.get("params", {}).get("data", {}).get("session_id")
                                   for m in notifications if m.get("method") == "notifications/message")
        wrong = {sid: n for sid, n in seen.items() if n != 1 or sid not in notify_sids}
        unseen = [sid for sid in notify_sids if sid not in seen]
        self.check("one completion notice per notify process", not wrong and not unseen,
                   "%d notify processes, wrong counts %r, without a notice %r" % (len(notify_sids), wrong, unseen[:3]))

        stray = [m for _, m in progress if m["params"].get("progressToken") not in progress_ids]
        late = [m for seq, m in progress if m["params"].get("progressToken") in progress_ids
                and seq > answered_at.get(progress_ids[m["params"]["progressToken"]], 1 << 62)]
        self.check("progress only for its call and before its answer", progress and not stray and not late,
                   "%d progress notifications, %d with unknown tokens, %d after the answer"
                   % (len(progress), len(stray), len(late)))

        if None in cp or None in end:
            self.check("resources measured", False, "checkpoint %r, end %r" % (cp, end))
        else:
            self.check("RSS growth <= %d kB" % a.rss_slack_kb, end[0] - cp[0] <= a.rss_slack_kb,
                       "%d -> %d kB (%+d)" % (cp[0], end[0], end[0] - cp[0]))
            self.check("no fd growth", end[1] <= cp[1], "%d -> %d" % (cp[1], end[1]))
            self.check("no thread growth", end[2] <= cp[2], "%d -> %d" % (cp[2], end[2]))

        def zombies():
            return [c for c in children(s.pid) if c[1] == "Z"]
        z = zombies() if not wait_until(lambda: not zombies(), 3) else []
        self.check("no zombie children", not z, repr(z[:5]))
        def others():
            found = {p.pid: p for p in descendants(s.pid) + s.descendants() if not is_spare_shell(p)}
            return list(found.values())
        left = others() if not wait_until(lambda: not others(), 3) else []
        spares = [p for p in descendants(s.pid) if is_spare_shell(p)]
        n_envs = a.threads + 1 + len(BG_ENVS)
        self.check("only idle spare shells left running", not left and len(spares) <= n_envs,
                   "%d spare shells for %d environments; others: %r" % (len(spares), n_envs, left[:5]))

        t = time.monotonic()
        s.close_stdin()
        rc = s.wait_exit(30)
        self.check("exit status 0 after stdin EOF", rc == 0, "status %r after %.1fs" % (rc, time.monotonic() - t))
        if rc is None:
            s.stop()
        leftovers = s.leftovers(3.0)
        self.check("nothing of the server survives it", not leftovers, repr(leftovers[:5]))
        if leftovers:
            s.reap_leftovers()
        s.stop()

        print("summary:")
        total_secs = time.monotonic() - self.t0
        print("  lines sent: %d (warm-up %d, main run %d in %.1f s = %.1f calls/s; whole run %.1f s)"
              % (self.issued, warm_lines, self.main_issued, main_secs,
                 self.main_issued / main_secs if main_secs else 0, total_secs))
        print("  by kind: " + ", ".join("%s %d" % kv for kv in sorted(self.kinds.items())))
        print("  operations completed: " + ", ".join("%s %d" % kv for kv in sorted(self.outcomes.items())))
        print("  answers: %d with an id, %d id-null errors, %d notifications (%d completion notices, %d progress)"
              % (sum(v for k, v in responses.items() if k != "null"), responses.get("null", 0), len(notifications),
                 sum(seen.values()), sum(1 for m in notifications if m.get("method") == "notifications/progress")))
        lat = []
        for k in ("ping", "tools/list", "fg-echo", "fg-output", "bg-start", "bg-poll"):
            v = sorted(self.lat.get(k, []))
            if v:
                lat.append("%s p50 %.1f / p99 %.1f / max %.0f ms" % (k, 1000 * v[len(v) // 2],
                                                                      1000 * v[int(len(v) * 0.99)], 1000 * v[-1]))
        print("  latency: " + "; ".join(lat))
        print("  server RSS kB: start %s, checkpoint %s, end %s, peak %s (VmHWM)" % (start[0], cp[0], end[0], hwm))
        print("  server fds:    start %s, checkpoint %s, end %s" % (start[1], cp[1], end[1]))
        print("  server threads: start %s, checkpoint %s, end %s" % (start[2], cp[2], end[2]))
        if self.samples:
            print("  RSS over the run: min %d, max %d kB" % (min(x[1] for x in self.samples), max(x[1] for x in self.samples)))
        if self.failures:
            print("failures (%d, first %d):" % (self.nfailures, len(self.failures)))
            for f in self.failures:
                print("  " + f)
        s.cleanup()
        passed = sum(1 for c in self.checks if c[1])
        failed = len(self.checks) - passed
        print("soak: %s" % ("PASS" if failed == 0 else "FAIL"))
        print("%d passed, %d failed" % (passed, failed))
        return failed == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000, help="request lines in the main run, at least (20000)")
    ap.add_argument("--min-seconds", type=float, default=300, help="length of the main run, at least (300)")
    ap.add_argument("--threads", type=int, default=THREADS, help="concurrent callers (16)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (1)")
    ap.add_argument("--rss-slack-kb", type=int, default=2048, help="allowed RSS growth (2048 kB)")
    ap.add_argument("--progress", type=float, default=30, help="seconds between progress lines (30)")
    ap.add_argument("--warm-calls", type=int, default=30000,
                    help="request lines in the warm-up mix, at least (30000)")
    ap.add_argument("--warm-seconds", type=float, default=None,
                    help="length of the warm-up mix, at least (default: 20%% of --min-seconds, at least 20)")
    args = ap.parse_args()
    if not os.access(swclient.BIN, os.X_OK):
        print("shellwire binary not found or not executable: %s" % swclient.BIN)
        print("0 passed, 1 failed")
        sys.exit(1)
    soak = Soak(args)
    try:
        soak.main()
    finally:
        if soak.s is not None and soak.s.alive():
            soak.s.stop()
            soak.s.reap_leftovers()
            soak.s.cleanup()
    failed = sum(1 for c in soak.checks if not c[1])
    sys.exit(0 if soak.checks and failed == 0 else 1)


if __name__ == "__main__":
    main()
