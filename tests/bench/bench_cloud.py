#!/usr/bin/env python3
"""Latency of the cloud backends against their local stand-ins (standard library only).

For each backend: one shellwire server talks to the backend's stand-in on 127.0.0.1
(tests/standins/); after a warm-up, N `echo hi` calls run back to back through stdio and
the time from writing the request to reading the answer is measured (p50, p90, mean).
Also printed, to show where the time goes:
  - requests: how many API requests one call costs (from the stand-in's request log);
  - replay: the floor the stand-in and the sandbox side set — the exact request shellwire
    sent for the last call, replayed N times over one kept-alive connection without
    shellwire (the script, the wrapper, the stand-in's process start and JSON);
  - bare: a trivial `bash -c 'echo hi'` exec over the same connection (the stand-in's own
    cost per command).
Prints a Markdown table.

usage: bench_cloud.py [SHELLWIRE_BIN] [N] [backend ...]   (defaults: build/shellwire, 300,
       every backend listed in TARGETS)
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build", "shellwire")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
ONLY = sys.argv[3:]
WARMUP = 30
TOKEN = "bench-token"
STANDINS = os.path.join(HERE, "..", "standins")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def ms(x):
    return "%.2f" % (x * 1000)


class StandIn:
    """A stand-in that prints {"port", "url", ...} first and ends when stdin closes."""

    def __init__(self, script, *args):
        self.p = subprocess.Popen([sys.executable, os.path.join(STANDINS, script), "--token",
                                   TOKEN, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        info = json.loads(self.p.stdout.readline())
        self.url, self.port = info["url"], info["port"]

    def requests(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/_control/requests" % self.port) as r:
            return json.loads(r.read())["requests"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


class Shellwire:
    def __init__(self, env):
        self.state = tempfile.mkdtemp(prefix="swcloudbench-")
        e = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        e.update(env, SHELLWIRE_STATE_DIR=self.state, TERMINAL_CWD="~",
                 NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        self.p = subprocess.Popen([BIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=e)
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


def replay(port, req, n):
    """Sends one recorded request n times over one connection; the times in seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request(req["method"], req["path"], body=req["raw"].encode(), headers=headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


def bare_request(req, argv_key):
    """The same request with the command replaced by `bash -c 'echo hi'`."""
    body = dict(req["body"])
    body[argv_key] = "bash -c 'echo hi'" if argv_key == "command" and isinstance(
        body["command"], str) else ["bash", "-c", "echo hi"]
    return dict(req, raw=json.dumps(body))


# name -> (stand-in script and arguments, server environment, is this request an exec?)
TARGETS = {
    "daytona": (("daytona_api.py",),
                lambda url: {"TERMINAL_ENV": "daytona", "DAYTONA_API_KEY": TOKEN,
                             "DAYTONA_API_URL": url},
                lambda r: r["path"].endswith("/process/execute")),
    "daytona (old daemon)": (("daytona_api.py",),
                             lambda url: {"TERMINAL_ENV": "daytona", "DAYTONA_API_KEY": TOKEN,
                                          "DAYTONA_API_URL": url},
                             lambda r: r["path"].endswith("/process/execute")),
    "morph": (("morph_api.py", "--snapshot", "snap_bench"),
              lambda url: {"TERMINAL_ENV": "morph", "MORPH_API_KEY": TOKEN,
                           "MORPH_BASE_URL": url, "TERMINAL_MORPH_SNAPSHOT": "snap_bench"},
              lambda r: r["path"].endswith("/exec")),
}


def bench(name):
    (script, *args), env, is_exec = TARGETS[name]
    st = StandIn(script, *args)
    if "old daemon" in name:
        req = urllib.request.Request("http://127.0.0.1:%d/_control/config" % st.port,
                                     data=b'{"daemon": "old"}', method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
    sw = Shellwire(env(st.url))
    try:
        for _ in range(WARMUP):
            sw.call("echo hi")
        before = len(st.requests())
        lat = [sw.call("echo hi") for _ in range(N)]
        log = st.requests()
        per_call = (len(log) - before) / N
        last = [r for r in log if is_exec(r)][-1]
        floor = replay(st.port, last, N)
        bare = replay(st.port, bare_request(last, "command"), N)
    finally:
        sw.close()
        st.close()
    return [name, ms(statistics.median(lat)), ms(pct(lat, 0.9)), ms(statistics.mean(lat)),
            "%.1f" % per_call, ms(statistics.median(floor)), ms(statistics.median(bare))]


def main():
    names = ONLY or list(TARGETS)
    rows = [bench(n) for n in names]
    print("`echo hi` through shellwire, N=%d after %d warm-up calls (ms)\n" % (N, WARMUP))
    print("| backend | p50 | p90 | mean | requests/call | replay p50 | bare exec p50 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
