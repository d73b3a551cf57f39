#!/usr/bin/env python3
"""Background-process benchmark (standard library only). Prints a Markdown table:
  - exit of a background process -> return of a pending `process wait` (p50/p90, ms);
  - 500 idle background processes (8 environments): server CPU over 10 s, RSS per process;
  - 20 background processes each writing 50 MB: all drained, peak server RSS.
usage: bench_bg.py SHELLWIRE_BIN"""
import json, os, subprocess, sys, tempfile, time, statistics

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/shellwire"
CLK = os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self):
        self.state = tempfile.mkdtemp(prefix="swbgbench-")
        env = dict(os.environ, SHELLWIRE_STATE_DIR=self.state, TERMINAL_TIMEOUT="60")
        self.p = subprocess.Popen([BIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.id = 0

    def call(self, tool, **args):
        self.id += 1
        msg = {"jsonrpc": "2.0", "id": self.id, "method": "tools/call",
               "params": {"name": tool, "arguments": args}}
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()
        while True:
            m = json.loads(self.p.stdout.readline())
            if m.get("id") == self.id:
                return m["result"]["structuredContent"], time.time_ns()

    def status(self, field):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])

    def cpu_ticks(self):
        with open("/proc/%d/stat" % self.p.pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])   # utime + stime of the server itself

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)
        subprocess.run(["rm", "-rf", self.state])


def wait_latency(n=50):
    s = Server()
    lat = []
    for _ in range(n):
        r, _ = s.call("terminal", command="sleep 0.05; date +%s%N", background=True)
        w, t_ret = s.call("process", action="wait", session_id=r["session_id"])
        assert w["status"] == "exited", w
        lat.append((t_ret - int(w["output"].strip())) / 1e6)
    s.close()
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.9)]


def idle_cost(n=500, envs=8):
    s = Server()
    s.call("terminal", command="true")
    rss0 = s.status("VmRSS:")
    for i in range(n):
        r, _ = s.call("terminal", command="sleep 600", background=True, task_id="t%d" % (i % envs))
        assert r.get("session_id"), r
    time.sleep(1)
    rss1 = s.status("VmRSS:")
    c0, t0 = s.cpu_ticks(), time.monotonic()
    time.sleep(10)
    c1, t1 = s.cpu_ticks(), time.monotonic()
    cpu = (c1 - c0) / CLK / (t1 - t0) * 100
    s.close()
    return cpu, (rss1 - rss0) / n


def drain(n=20, mb=50):
    s = Server()
    sids = []
    t0 = time.monotonic()
    for i in range(n):
        r, _ = s.call("terminal", command="head -c %d /dev/zero | tr '\\0' 'x' | fold -w 100" % (mb * 1000000),
                      background=True)
        sids.append(r["session_id"])
    for sid in sids:
        w, _ = s.call("process", action="wait", session_id=sid)
        assert w["status"] == "exited" and w["exit_code"] == 0, w
    dt = time.monotonic() - t0
    tails_ok = all(s.call("process", action="log", session_id=sid, limit=1)[0]["output"] == "x" * 100
                   for sid in sids)
    hwm = s.status("VmHWM:")
    s.close()
    return dt, hwm / 1024, tails_ok


p50, p90 = wait_latency()
cpu, per = idle_cost()
dt, hwm, ok = drain()
print("| measurement | value |\n|---|---|")
print("| process exit -> pending `wait` returns (50 runs) | p50 %.2f ms, p90 %.2f ms |" % (p50, p90))
print("| 500 idle background processes (8 environments): server CPU over 10 s | %.3f %% |" % cpu)
print("| server RSS growth per idle background process | %.1f kB |" % per)
print("| 20 background processes x 50 MB each (`head -c 50M /dev/zero \\| tr \\| fold`), start to last exit | %.1f s (last lines intact: %s) |" % (dt, ok))
print("| peak server RSS during the 20 x 50 MB drain | %.1f MB |" % hwm)
