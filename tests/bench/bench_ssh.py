#!/usr/bin/env python3
"""ssh backend benchmark (standard library only): the round trip of `echo hi` through
shellwire's ssh backend (a raw JSON-RPC client on the server's stdio) against the OpenSSH
client with a warm ControlMaster, both talking to one test sshd on 127.0.0.1 (the same
throwaway sshd tests/protocol/test_ssh.py starts: its own keys, a free port, login as the
current user). Prints p50/p90/mean in ms for each and the p50 ratio.

  --n N        measured calls after the warm-up (default 300)
  --warmup N   calls before measuring (default 20)
  --pace MS    pause between calls (default 0: back to back)
  --cheap-rc   have sshd set SHLVL=1 in its sessions, so a bash login shell skips ~/.bashrc:
               shows the transports without the cost of the remote account's rc files,
               which both sides pay once per command (sshd starts the login shell for
               every channel)

usage: bench_ssh.py [SHELLWIRE_BIN] [options]"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
from test_ssh import USER, Sshd  # noqa: E402


class Shellwire:
    """A shellwire server on the ssh backend, driven with raw JSON-RPC lines."""

    def __init__(self, binary, d):
        self.state = tempfile.mkdtemp(prefix="swsshbench-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        env.pop("SSH_AUTH_SOCK", None)
        env.update(TERMINAL_ENV="ssh", TERMINAL_SSH_HOST="127.0.0.1", TERMINAL_SSH_PORT=str(d.port),
                   TERMINAL_SSH_USER=USER, TERMINAL_SSH_KEY=d.user_key,
                   SHELLWIRE_KNOWN_HOSTS=d.known_hosts, SHELLWIRE_STATE_DIR=self.state)
        self.p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.id = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench_ssh", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, msg):
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()

    def request(self, method, params):
        self.id += 1
        self.send({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
        while True:
            m = json.loads(self.p.stdout.readline())
            if m.get("id") == self.id:
                return m

    def echo(self):
        r = self.request("tools/call", {"name": "terminal", "arguments": {"command": "echo hi"}})
        sc = r["result"]["structuredContent"]
        if sc.get("output") != "hi" or sc.get("exit_code") != 0:
            raise SystemExit("shellwire answered %r" % sc)

    def close(self):
        self.p.stdin.close()
        self.p.wait(30)
        shutil.rmtree(self.state, ignore_errors=True)


class OpenSSH:
    """The ssh client multiplexing over one master connection."""

    def __init__(self, d):
        self.dir = tempfile.mkdtemp(prefix="swsshbench-cm-")
        self.base = ["ssh", "-o", "ControlMaster=auto", "-o", "ControlPath=%s/cm" % self.dir,
                     "-o", "ControlPersist=60", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                     "-o", "StrictHostKeyChecking=accept-new",
                     "-o", "UserKnownHostsFile=%s" % os.path.join(self.dir, "known_hosts"),
                     "-i", d.user_key, "-p", str(d.port), "%s@127.0.0.1" % USER]

    def echo(self):
        r = subprocess.run(self.base + ["echo hi"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if r.returncode != 0 or r.stdout != b"hi\n":
            raise SystemExit("ssh answered %r %r" % (r.stdout, r.stderr))

    def close(self):
        subprocess.run(self.base[:-1] + ["-O", "exit", self.base[-1]], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(client, n, warmup, pace):
    for _ in range(warmup):
        client.echo()
    times = []
    for _ in range(n):
        time.sleep(pace / 1000)
        t0 = time.perf_counter()
        client.echo()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.9)], statistics.fmean(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             "..", "..", "build", "shellwire"))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--pace", type=float, default=0)
    ap.add_argument("--cheap-rc", action="store_true")
    a = ap.parse_args()
    d = Sshd(setenv=["SHLVL=1"] if a.cheap_rc else [])
    results = {}
    try:
        for name, make in (("shellwire ssh backend", lambda: Shellwire(os.path.abspath(a.binary), d)),
                           ("OpenSSH, warm ControlMaster", lambda: OpenSSH(d))):
            client = make()
            try:
                results[name] = measure(client, a.n, a.warmup, a.pace)
            finally:
                client.close()
    finally:
        d.remove()
    mode = "back to back" if not a.pace else "%g ms apart" % a.pace
    print("echo hi round trip, %d calls %s after %d warm-up, sshd on 127.0.0.1%s" %
          (a.n, mode, a.warmup, ", SHLVL=1 (rc files skipped)" if a.cheap_rc else ""))
    print("| client | p50 ms | p90 ms | mean ms |")
    print("|---|---|---|---|")
    for name, (p50, p90, mean) in results.items():
        print("| %s | %.1f | %.1f | %.1f |" % (name, p50, p90, mean))
    (sw, _, _), (ossh, _, _) = results.values()
    print("ratio shellwire/OpenSSH at p50: %.2f (target <= 0.5)" % (sw / ossh))


if __name__ == "__main__":
    main()
