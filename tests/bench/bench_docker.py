#!/usr/bin/env python3
"""Docker backend benchmark (standard library only): `echo hi` through shellwire's docker
backend (raw JSON-RPC over stdio, calls back to back) next to `docker exec <container>
bash -c 'echo hi'` with the docker CLI, against the same daemon, image and container (the
one shellwire created). Uses a private dockerd and the local test image
(tests/protocol/dockerd.py). Prints p50/p90 of both and the ratio of the p50s.

usage: bench_docker.py [SHELLWIRE_BIN] [N]     (N >= 200 calls each, after 20 of warm-up)
The CLI is `docker` from PATH (DOCKER_CLI overrides); DOCKER_HOST points it at the daemon."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import dockerd  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build", "shellwire")
N = max(200, int(sys.argv[2]) if len(sys.argv) > 2 else 200)
WARMUP = 20
TARGET = 0.8


class Server:
    """shellwire over stdio, one request at a time."""

    def __init__(self, host):
        self.state = tempfile.mkdtemp(prefix="swdockerbench-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        env.update(SHELLWIRE_STATE_DIR=self.state, TERMINAL_ENV="docker", TERMINAL_DOCKER_IMAGE=dockerd.IMAGE,
                   DOCKER_HOST=host)
        self.p = subprocess.Popen([BIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.id = 0

    def request(self, method, params):
        self.id += 1
        msg = {"jsonrpc": "2.0", "id": self.id, "method": method, "params": params}
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("shellwire exited (status %s)" % self.p.wait())
            m = json.loads(line)
            if m.get("id") == self.id:
                return m

    def echo(self):
        m = self.request("tools/call", {"name": "terminal", "arguments": {"command": "echo hi"}})
        sc = m["result"]["structuredContent"]
        if sc.get("output") != "hi" or sc.get("exit_code") != 0:
            raise RuntimeError("unexpected answer: %r" % sc)

    def close(self):
        self.p.stdin.close()
        self.p.wait(30)
        shutil.rmtree(self.state, ignore_errors=True)


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]


def main():
    d = dockerd.Dockerd()
    try:
        d.start()
        dockerd.build_image(d.api)
        s = Server(d.host)
        try:
            s.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                     "clientInfo": {"name": "bench", "version": "1"}})
            timed(s.echo, WARMUP)
            ours = timed(s.echo, N)
            (container,) = d.containers_of(s.p.pid)
            cli = os.environ.get("DOCKER_CLI") or shutil.which("docker")
            argv = [cli, "exec", container["Id"], "bash", "-c", "echo hi"]
            env = d.cli_env()

            def cli_echo():
                r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                if r.returncode != 0 or r.stdout != b"hi\n":
                    raise RuntimeError("docker exec failed: %r %r" % (r.stdout, r.stderr))
            timed(cli_echo, WARMUP)
            theirs = timed(cli_echo, N)
            version = subprocess.run([cli, "version", "--format", "{{.Client.Version}}"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
        finally:
            s.close()
        print("## docker backend: `echo hi`, %d calls back to back after %d of warm-up" % (N, WARMUP))
        print()
        print("| client | p50 ms | p90 ms | mean ms |")
        print("|---|---|---|---|")
        print("| shellwire (stdio JSON-RPC) | %.1f | %.1f | %.1f |" % (pct(ours, .5), pct(ours, .9), statistics.mean(ours)))
        print("| docker exec (CLI %s) | %.1f | %.1f | %.1f |" % (version, pct(theirs, .5), pct(theirs, .9), statistics.mean(theirs)))
        ratio = pct(ours, .5) / pct(theirs, .5)
        print()
        print("ratio of p50s (shellwire / CLI): %.2f (target <= %.1f: %s)" % (ratio, TARGET, "met" if ratio <= TARGET else "MISSED"))
        return 0 if ratio <= TARGET else 1
    finally:
        d.close()


if __name__ == "__main__":
    sys.exit(main())
