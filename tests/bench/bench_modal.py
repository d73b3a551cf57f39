#!/usr/bin/env python3
"""Latency of the modal backend against the local gateway stand-in (standard library only).

One shellwire server (TERMINAL_ENV=modal) talks to tests/standins/modal_gateway.py on
127.0.0.1; after a warm-up, N `echo hi` calls run back to back through stdio and the
time from writing the request to reading the answer is measured. Also printed: the gateway
requests one call costs, and the floor the stand-in itself sets: the very script shellwire
sent for its last `echo hi`, started in the same sandbox and polled on the same schedule
straight over a kept-alive HTTP connection, without shellwire. Prints a Markdown table.

usage: bench_modal.py [SHELLWIRE_BIN] [N]     (defaults: build/shellwire, 300)
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build", "shellwire")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
WARMUP = 30
TOKEN = "bench-token"
STANDIN = os.path.join(HERE, "..", "standins", "modal_gateway.py")
EXEC_COMMAND = "bash -c 'IFS= read -r -d \"\" __sw_s; eval \"unset __sw_s; $__sw_s\"'"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


class Shellwire:
    def __init__(self, url):
        self.state = tempfile.mkdtemp(prefix="swmodalbench-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        env.update(TERMINAL_ENV="modal", MODAL_GATEWAY_URL=url, TOOL_GATEWAY_USER_TOKEN=TOKEN,
                   SHELLWIRE_STATE_DIR=self.state, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        self.p = subprocess.Popen([BIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.id = 0

    def call(self, command):
        self.id += 1
        msg = {"jsonrpc": "2.0", "id": self.id, "method": "tools/call",
               "params": {"name": "terminal", "arguments": {"command": command}}}
        t0 = time.perf_counter()
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()
        while True:
            m = json.loads(self.p.stdout.readline())
            if m.get("id") == self.id:
                dt = time.perf_counter() - t0
                sc = m["result"]["structuredContent"]
                assert sc.get("error") is None and sc["output"] == "hi", sc
                return dt

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)
        subprocess.run(["rm", "-rf", self.state])


class Gateway:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, STANDIN, "--token", TOKEN, "--exit-on-stdin-eof"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.port = int(self.p.stdout.readline())
        self.url = "http://127.0.0.1:%d" % self.port

    def api(self, conn, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + TOKEN}
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = conn.getresponse()
        return json.loads(r.read())

    def requests(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        conn.request("GET", "/_control/requests")
        reqs = json.loads(conn.getresponse().read())["requests"]
        conn.close()
        return reqs

    def floor(self, n):
        """Replays shellwire's last exec start n times, polling like shellwire."""
        last = [r for r in self.requests() if r["path"].endswith("/execs")][-1]
        sid, script = last["path"].split("/")[3], last["json"]["stdinData"]
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        times = []
        for _ in range(n):
            eid = str(uuid.uuid4())
            t0 = time.perf_counter()
            st = self.api(conn, "POST", "/v1/sandboxes/%s/execs" % sid, {
                "execId": eid, "command": EXEC_COMMAND, "cwd": "/", "timeoutMs": 60000,
                "stdinData": script})
            delay = 0.002
            while st["status"] == "running":
                time.sleep(delay)
                delay = min(0.25, delay * 1.25 + 0.001)
                st = self.api(conn, "GET", "/v1/sandboxes/%s/execs/%s" % (sid, eid))
            assert "hi" in st["output"], st
            times.append(time.perf_counter() - t0)
        conn.close()
        return times

    def close(self):
        self.p.terminate()
        self.p.wait(timeout=30)


def main():
    gw = Gateway()
    try:
        sw = Shellwire(gw.url)
        try:
            for _ in range(WARMUP):
                sw.call("echo hi")
            before = len(gw.requests())
            times = [sw.call("echo hi") for _ in range(N)]
            per_call = (len(gw.requests()) - before) / N
            floor = gw.floor(100)
        finally:
            sw.close()
    finally:
        gw.close()
    ms = [t * 1000 for t in times]
    fl = [t * 1000 for t in floor]
    print("| modal backend vs local stand-in | p50 ms | p90 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|")
    print("| shellwire `echo hi`, %d calls back to back (%.1f gateway requests per call) "
          "| %.1f | %.1f | %.1f | %.1f |" % (N, per_call, pct(ms, .5), pct(ms, .9), pct(ms, .99),
                                            statistics.mean(ms)))
    print("| stand-in floor: the same script started and polled directly, 100 runs | %.1f | %.1f | %.1f | %.1f |"
          % (pct(fl, .5), pct(fl, .9), pct(fl, .99), statistics.mean(fl)))


if __name__ == "__main__":
    main()
