#!/usr/bin/env python3
"""Tests of the shellwire docker backend (TERMINAL_ENV=docker; SPEC sections 3-5,
backends/docker.c) against a real Docker daemon: a private dockerd started for this run
with a small image built locally, no registry (tests/protocol/dockerd.py).

- the shared behaviour list (backend_suite.SharedBehaviour) on this backend;
- the container: the image's entrypoint replaced, the hardening visible in its HostConfig
  and from inside (capabilities, no-new-privileges, pids limit, memory and CPU limits,
  tmpfs /tmp, no network when asked, init), its labels;
- configuration: environment and forwarded variables (values never on a command line),
  bind mounts, malformed values and a missing or unset image named in clear errors;
- lifecycle: no container left after the server ends (stdin EOF or SIGTERM), persistent
  containers kept and reused, a container removed or stopped between calls (recreated),
  the daemon stopped (degraded, promptly) and started again (works), containers left by a
  crashed server removed at start;
- the exec path: scripts never on a command line, output of leftover background children
  never reaching a later answer, a UTF-8 locale and control bytes in scripts, an image
  without bash, 8 concurrent calls on one environment, latency.

Servers are ended like an MCP client ends them (stdin closed, then SIGTERM if needed),
and every test checks that no container of its servers survives. If no daemon can be
started the tests fail (they are never skipped). Needs dockerd (Debian: docker.io) and
root. Standard library only. Run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_docker.py [name-filter ...]
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_suite  # noqa: E402
import dockerd  # noqa: E402
import swclient  # noqa: E402
from swclient import ServerTest, wait_until  # noqa: E402

IMAGE = dockerd.IMAGE
NOBASH_IMAGE = "shellwire-test-nobash:1"
LABEL = dockerd.LABEL

# Capability bits (linux/capability.h) of the names the backend may keep.
CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
            "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13,
            "SYS_CHROOT": 18, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}
NEVER_KEPT = {"SYS_ADMIN", "NET_ADMIN", "NET_RAW", "MKNOD", "SYS_PTRACE", "SYS_MODULE", "DAC_READ_SEARCH"}


def proc_start_time(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def my_identity():
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    return {"host": socket.gethostname(), "boot": boot, "pidns": os.readlink("/proc/self/ns/pid")}


class DockerTest(ServerTest):
    """Servers on the docker backend against the shared test daemon."""

    def setUp(self):
        super().setUp()
        self.extra = []          # containers a test created or kept on purpose
        try:
            self.d = dockerd.shared()
        except dockerd.DockerError as ex:
            self.fail(str(ex))
        self.api = self.d.api

    def docker_env(self, **env):
        e = {"TERMINAL_ENV": "docker", "TERMINAL_DOCKER_IMAGE": IMAGE, "DOCKER_HOST": self.d.host}
        e.update(env)
        return e

    def start_server(self, **env):
        s = self.start(env=self.docker_env(**env))
        s.initialize()
        return s

    def containers(self, s):
        return self.d.containers_of(s.pid)

    def container(self, s):
        """The one container of server s (inspect result)."""
        cs = self.containers(s)
        self.assertEqual(len(cs), 1, "expected one container of server %d: %r" % (s.pid, cs))
        return self.api.inspect(cs[0]["Id"])

    def sandbox_procs(self):
        out = []
        for s in self.servers:
            for c in self.containers(s):
                if c["State"] == "running":
                    try:
                        out += self.api.top(c["Id"])
                    except dockerd.DockerError:
                        pass     # stopped meanwhile
        return out

    def end(self, s, timeout=15):
        """Ends a server like an MCP client: stdin closed; returns its exit status."""
        s.close_stdin()
        return s.wait_exit(timeout)

    def tearDown(self):
        problems = []
        try:
            if not self.d.running():
                self.d.start()
        except (AttributeError, dockerd.DockerError) as ex:
            problems.append("the test daemon could not be restarted: %s" % ex)
        for s in getattr(self, "servers", []):
            if s.alive():
                self.end(s)
        pids = [s.pid for s in getattr(self, "servers", [])]
        try:
            super().tearDown()
        except AssertionError as ex:
            problems.append(str(ex))
        for pid in pids:
            if not hasattr(self, "d") or not self.d.running():
                break
            left = lambda: [c for c in self.d.containers_of(pid) if c["Id"] not in self.extra]  # noqa: E731
            if not wait_until(lambda: not left(), 5):
                problems.append("containers of server %d survived it: %r"
                                % (pid, [(c["Names"], c["State"]) for c in left()]))
                for c in left():
                    self.api.remove(c["Id"])
        for cid in getattr(self, "extra", []):
            if self.d.running():
                self.api.remove(cid)
        if problems:
            self.fail("; ".join(problems))


# ============================================================================ shared list

class DockerShared(DockerTest, backend_suite.SharedBehaviour):
    pass


# ============================================================================ the container

class ContainerTests(DockerTest):

    def test_basics_and_entrypoint_replaced(self):
        s = self.start_server()
        sc = s.run("echo hello; pwd; id -u")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "hello\n/root\n0")
        info = self.container(s)
        self.assertTrue(info["State"]["Running"], info["State"])
        self.assertEqual(info["Config"]["Image"], IMAGE)
        status, image = self.api.json("GET", "/images/%s/json" % IMAGE)
        self.assertEqual(image["Config"]["Entrypoint"], ["/bin/false"], "the test image lost its trap")
        self.assertNotEqual(info["Config"]["Entrypoint"], ["/bin/false"])
        self.assertEqual(sc["exit_code"], 0)

    def test_hardening(self):
        s = self.start_server(TERMINAL_CONTAINER_MEMORY="256m", TERMINAL_CONTAINER_CPU="1.5",
                              TERMINAL_DOCKER_NETWORK="false")
        sc = s.run("grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; ls /sys/class/net; "
                   "grep ' /tmp ' /proc/mounts | cut -d' ' -f3; cat /proc/1/cmdline | tr '\\0' ' '")
        self.assertOk(sc)
        info = self.container(s)
        hc = info["HostConfig"]
        self.assertEqual(hc["CapDrop"], ["ALL"], hc)
        kept = set(hc["CapAdd"] or [])
        self.assertTrue(kept, "no capability kept: a root shell could not even chown")
        self.assertFalse(kept & NEVER_KEPT, "dangerous capabilities kept: %r" % (kept & NEVER_KEPT))
        self.assertIn("no-new-privileges", [o.split("=")[0].split(":")[0] for o in hc["SecurityOpt"] or []], hc)
        self.assertGreater(hc["PidsLimit"] or 0, 0, hc)
        self.assertLessEqual(hc["PidsLimit"], 65536, hc)
        self.assertEqual(hc["Memory"], 256 * 1024 * 1024, hc)
        self.assertEqual(hc["NanoCpus"], 1500000000, hc)
        self.assertIn("/tmp", hc["Tmpfs"] or {}, hc)
        self.assertEqual(hc["NetworkMode"], "none", hc)
        self.assertIs(hc["Init"], True, hc)
        labels = info["Config"]["Labels"]
        self.assertEqual(labels.get(LABEL + "managed"), "1", labels)
        self.assertEqual(labels.get(LABEL + "task"), "default", labels)
        self.assertEqual(labels.get(LABEL + "server-pid"), str(s.pid), labels)
        self.assertEqual(labels.get(LABEL + "persistent"), "false", labels)
        # What a command inside actually gets.
        lines = sc["output"].splitlines()
        fields = dict(ln.split(":\t") for ln in lines[:2])
        self.assertEqual(fields.get("NoNewPrivs"), "1", sc)
        want = sum(1 << CAP_BITS[c] for c in kept)
        self.assertEqual(int(fields["CapEff"], 16), want, "effective capabilities differ from CapAdd %r" % kept)
        self.assertEqual(lines[2], "lo", "network interfaces besides lo with the network off: %r" % lines)
        self.assertEqual(lines[3], "tmpfs", sc)
        self.assertIn("init", lines[4], "pid 1 is not an init: %r" % lines[4])

    def test_network_on_by_default(self):
        s = self.start_server()
        self.assertOk(s.run("true"))
        self.assertNotEqual(self.container(s)["HostConfig"]["NetworkMode"], "none")

    def test_task_gets_own_labelled_container(self):
        s = self.start_server()
        self.assertOk(s.run("echo a > /root/mark"))
        sc = s.run("cat /root/mark 2>/dev/null || echo absent", task_id="other-task")
        self.assertEqual(sc["output"], "absent", "two tasks share a container")
        tasks = sorted(c["Labels"].get(LABEL + "task") for c in self.containers(s))
        self.assertEqual(tasks, ["default", "other-task"])


# ============================================================================ configuration

class ConfigTests(DockerTest):

    def test_env_and_forwarded_env(self):
        value = "fwd-value-%s" % uuid.uuid4().hex
        s = self.start_server(TERMINAL_DOCKER_ENV="SW_A=alpha, SW_B=two words",
                              TERMINAL_DOCKER_FORWARD_ENV="SW_FWD_X,SW_FWD_UNSET",
                              SW_FWD_X=value, SW_FWD_UNSET=None)
        sc = s.run('echo "$SW_A|$SW_B|$SW_FWD_X|${SW_FWD_UNSET-unset}"')
        self.assertOk(sc)
        self.assertEqual(sc["output"], "alpha|two words|%s|unset" % value)
        # The value travels in the container's environment, never in a command line.
        rid = s.send_call({"command": 'sleep 3; echo "$SW_FWD_X" >/dev/null', "timeout": 30})
        self.assertTrue(wait_until(lambda: any("sleep 3" in c for c in self.sandbox_procs()), 10))
        procs = self.sandbox_procs()
        info = self.container(s)
        s.wait_response(rid, 30)
        self.assertIn("SW_FWD_X=" + value, info["Config"]["Env"])
        for where in (info["Config"]["Cmd"], info["Config"]["Entrypoint"], info["Path"], info["Args"], procs):
            self.assertNotIn(value, json.dumps(where), "the forwarded value is on a command line: %r" % where)
        self.assertNotIn(value, s.stderr_tail(100000), "the forwarded value reached the server's log")

    def test_bind_mounts(self):
        rw = os.path.join(self.make_dir(), "rw")
        ro = os.path.join(self.make_dir(), "ro")
        os.makedirs(rw)
        os.makedirs(ro)
        with open(os.path.join(ro, "given.txt"), "w") as f:
            f.write("from host\n")
        s = self.start_server(TERMINAL_DOCKER_VOLUMES="%s:/data, %s:/ro:ro" % (rw, ro))
        sc = s.run("echo made > /data/new.txt && cat /ro/given.txt")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "from host")
        with open(os.path.join(rw, "new.txt")) as f:
            self.assertEqual(f.read(), "made\n")
        sc = s.run("echo no > /ro/x.txt")
        self.assertNotEqual(sc["exit_code"], 0, sc)
        self.assertFalse(os.path.exists(os.path.join(ro, "x.txt")), "a read-only mount was written")

    def make_dir(self):
        d = tempfile.mkdtemp(prefix="swdockervol-", dir="/var/tmp")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        return d

    def assertStartError(self, env, *mentions, at_start=False):
        """The setting is refused with a message naming it: at start, or (unless at_start)
        at the first call."""
        s = self.start(env=self.docker_env(**env))
        code = s.wait_exit(1.0)
        if at_start:
            self.assertEqual(code, 2, "a malformed setting should stop the server at start")
        if code is not None:
            self.assertNotEqual(code, 0)
            text = s.stderr_tail()
        else:
            s.initialize()
            t0 = time.monotonic()
            r = s.call({"command": "echo should-not-run"}, timeout=60)
            sc = self.assertToolError(r)
            self.assertLess(time.monotonic() - t0, 45, "the error took %.1fs" % (time.monotonic() - t0))
            text = sc["error"]
            self.assertNotIn("should-not-run", sc["output"])
            self.assertEqual(self.containers(s), [], "a container was created despite the error")
        for m in mentions:
            self.assertIn(m, text)
        return text

    def test_malformed_settings(self):
        cases = [
            ({"TERMINAL_CONTAINER_MEMORY": "lots"}, "TERMINAL_CONTAINER_MEMORY", "lots"),
            ({"TERMINAL_CONTAINER_MEMORY": "1k"}, "TERMINAL_CONTAINER_MEMORY", "1k"),
            ({"TERMINAL_CONTAINER_CPU": "many"}, "TERMINAL_CONTAINER_CPU", "many"),
            ({"TERMINAL_DOCKER_VOLUMES": "./rel:/x"}, "TERMINAL_DOCKER_VOLUMES", "./rel:/x"),
            ({"TERMINAL_DOCKER_VOLUMES": "/tmp:x"}, "TERMINAL_DOCKER_VOLUMES", "/tmp:x"),
            ({"TERMINAL_DOCKER_VOLUMES": "/tmp:/x:rx"}, "TERMINAL_DOCKER_VOLUMES", "/tmp:/x:rx"),
            ({"TERMINAL_DOCKER_ENV": "NOVALUE"}, "TERMINAL_DOCKER_ENV", "NOVALUE"),
            ({"TERMINAL_DOCKER_FORWARD_ENV": "BAD-NAME"}, "TERMINAL_DOCKER_FORWARD_ENV", "BAD-NAME"),
            ({"DOCKER_HOST": "ssh://example"}, "DOCKER_HOST", "ssh://example"),
        ]
        for env, var, value in cases:
            with self.subTest(var=var, value=value):
                self.assertStartError(env, var, value, at_start=True)

    def test_image_unset(self):
        self.assertStartError({"TERMINAL_DOCKER_IMAGE": None}, "TERMINAL_DOCKER_IMAGE", at_start=True)

    def test_missing_image(self):
        name = "shellwire-missing-%s:1" % uuid.uuid4().hex[:8]
        text = self.assertStartError({"TERMINAL_DOCKER_IMAGE": name}, "TERMINAL_DOCKER_IMAGE", name)
        self.assertIn("pull", text)

    def test_image_without_bash(self):
        if not self.api.request("GET", "/images/%s/json" % NOBASH_IMAGE)[0] == 200:
            dockerd.build_image(self.api, NOBASH_IMAGE, with_bash=False)
        s = self.start_server(TERMINAL_DOCKER_IMAGE=NOBASH_IMAGE)
        r = s.call({"command": "echo hi"}, timeout=60)
        sc = self.assertToolError(r)
        self.assertIn("bash", sc["error"])

    def test_daemon_unreachable_at_start(self):
        sock = "/tmp/swtest-nodaemon-%s.sock" % uuid.uuid4().hex[:8]
        s = self.start_server(DOCKER_HOST="unix://" + sock)
        t0 = time.monotonic()
        sc = s.run("echo hi", wait=30)
        self.assertEqual(sc.get("status"), "degraded", sc)
        self.assertIn(sock, sc.get("error") or "", sc)
        self.assertLess(time.monotonic() - t0, 10)

    def test_check(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        env.update(self.docker_env(SHELLWIRE_STATE_DIR=self.make_dir()))
        p = subprocess.Popen([swclient.BIN, "--check"], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, "--check failed:\n%s\n%s" % (out.decode(), err.decode()))
        self.assertIn("checking the docker backend", out.decode())
        self.assertNotIn("FAIL", out.decode())
        self.assertTrue(wait_until(lambda: not self.d.containers_of(p.pid), 5),
                        "--check left its container: %r" % self.d.containers_of(p.pid))


# ============================================================================ lifecycle

class LifecycleTests(DockerTest):

    def test_no_container_after_stdin_eof(self):
        s = self.start_server()
        self.assertOk(s.run("echo x"))
        cid = self.container(s)["Id"]
        self.assertEqual(self.end(s), 0)
        self.assertIsNone(self.api.inspect(cid), "the container outlived the server")

    def test_sigterm_stops_container(self):
        s = self.start_server()
        self.assertOk(s.run("echo x"))
        cid = self.container(s)["Id"]
        self.extra.append(cid)       # whether it is also removed is the next test's business
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.wait_exit(5), 0)
        self.assertTrue(wait_until(lambda: (self.api.inspect(cid) or {"State": {"Running": False}})
                                   ["State"]["Running"] is False, 3),
                        "the container kept running after a SIGTERM of the server")

    def test_sigterm_removes_container(self):
        """SPEC 1: on SIGTERM the server stops the sandboxes it created, within 2 s."""
        s = self.start_server()
        self.assertOk(s.run("echo x"))
        cid = self.container(s)["Id"]
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.wait_exit(5), 0)
        self.assertLess(time.monotonic() - t0, 2.5)
        self.assertTrue(wait_until(lambda: self.api.inspect(cid) is None, 3),
                        "the container outlived a SIGTERM of the server")

    def test_killed_server_container_stops_then_swept(self):
        """A server killed outright cannot clean up: its container stops at once anyway
        (nothing keeps running), and the next server removes it."""
        s = self.start_server()
        self.assertOk(s.run("sleep 300 >/dev/null 2>&1 & echo x"))
        cid = self.container(s)["Id"]
        s.proc.kill()
        s.wait_exit(5)
        self.assertTrue(wait_until(lambda: not self.api.inspect(cid)["State"]["Running"], 5),
                        "the container of a killed server kept running")
        s2 = self.start_server()
        self.assertOk(s2.run("echo next"))
        self.assertIsNone(self.api.inspect(cid), "the next server did not remove the dead server's container")

    def test_persistent_container_kept_and_reused(self):
        task = "ptask-%s" % uuid.uuid4().hex[:6]
        s1 = self.start_server(TERMINAL_CONTAINER_PERSISTENT="true")
        self.assertOk(s1.run("echo kept > /root/p.txt", task_id=task))
        (c,) = self.containers(s1)
        self.extra.append(c["Id"])
        self.assertEqual(c["Labels"].get(LABEL + "persistent"), "true")
        self.assertEqual(self.end(s1), 0)
        info = self.api.inspect(c["Id"])
        self.assertIsNotNone(info, "a persistent container was removed at exit")
        s2 = self.start_server(TERMINAL_CONTAINER_PERSISTENT="true")
        sc = s2.run("cat /root/p.txt", task_id=task)
        self.assertOk(sc)
        self.assertEqual(sc["output"], "kept", "the next server did not reuse the persistent container")
        self.assertEqual(self.containers(s2), [], "the second server created a container of its own")
        self.assertEqual(self.end(s2), 0)
        self.assertIsNotNone(self.api.inspect(c["Id"]))

    def test_recreated_after_removal(self):
        s = self.start_server()
        self.assertOk(s.run("echo data > /root/keep; export SW_R=1"))
        old = self.container(s)["Id"]
        self.api.remove(old)
        sc = s.run("echo back; cat /root/keep 2>/dev/null || echo no-file")
        self.assertOk(sc)
        self.assertTrue(sc.get("environment_recreated"), sc)
        self.assertEqual(sc["output"], "back\nno-file")
        new = self.container(s)
        self.assertNotEqual(new["Id"], old)
        self.assertTrue(new["State"]["Running"])
        sc = s.run("echo again")
        self.assertOk(sc)
        self.assertNotIn("environment_recreated", sc)

    def test_restarted_after_stop(self):
        """A container that stopped (daemon restart, docker stop) is started again in place:
        the processes are gone (environment_recreated) but its files are not."""
        s = self.start_server()
        self.assertOk(s.run("echo data > /root/keep"))
        cid = self.container(s)["Id"]
        self.api.stop(cid)
        sc = s.run("cat /root/keep")
        self.assertOk(sc)
        self.assertTrue(sc.get("environment_recreated"), sc)
        self.assertEqual(sc["output"], "data")
        self.assertEqual(self.container(s)["Id"], cid)

    def test_daemon_stopped_then_back(self):
        s = self.start_server()
        self.assertOk(s.run("echo x"))
        self.d.stop()
        try:
            t0 = time.monotonic()
            sc = s.run("echo while-down", wait=30)
            took = time.monotonic() - t0
            self.assertEqual(sc.get("status"), "degraded", sc)
            self.assertIn("Docker daemon", sc.get("error") or "", sc)
            self.assertLess(took, 10, "the degraded answer took %.1fs" % took)
            sc = s.run("echo still-down", wait=30)
            self.assertEqual(sc.get("status"), "degraded", sc)
        finally:
            self.d.start()
        sc = s.run("echo back", wait=60)
        self.assertOk(sc)
        self.assertEqual(sc["output"], "back")
        self.assertOk(s.run("echo steady"))

    def test_leftovers_of_a_crashed_server_removed(self):
        me = my_identity()
        dead = subprocess.Popen(["true"])
        dead.wait()
        base = {"Image": IMAGE, "Entrypoint": ["sleep"], "Cmd": ["1000"], "HostConfig": {"Init": True}}

        def make(state, **labels):
            lbl = {LABEL + "managed": "1", LABEL + "task": "default", LABEL + "persistent": "false",
                   LABEL + "host": me["host"], LABEL + "boot": me["boot"], LABEL + "pidns": me["pidns"],
                   LABEL + "server-pid": str(dead.pid), LABEL + "server-start": "1"}
            lbl.update({LABEL + k.replace("_", "-"): v for k, v in labels.items()})
            cid = self.api.create(dict(base, Labels=lbl))
            self.extra.append(cid)
            if state != "created":
                self.api.start(cid)
            if state == "exited":
                self.api.stop(cid)
            return cid

        exited = make("exited")
        running = make("running")
        alive = make("exited", server_pid=str(os.getpid()), server_start=proc_start_time(os.getpid()))
        persistent = make("exited", persistent="true")
        elsewhere = make("exited", host="some-other-host")
        s = self.start_server()
        self.assertOk(s.run("echo hi"))
        self.assertIsNone(self.api.inspect(exited), "an exited leftover of a dead server was kept")
        self.assertIsNone(self.api.inspect(running), "a running leftover of a dead server was kept")
        for cid, what in ((alive, "a live server's"), (persistent, "a persistent"), (elsewhere, "another host's")):
            self.assertIsNotNone(self.api.inspect(cid), "%s container was removed" % what)


# ============================================================================ exec path

class ExecTests(DockerTest):

    def test_script_not_on_a_command_line(self):
        s = self.start_server()
        word = "nowhere-%s" % uuid.uuid4().hex
        rid = s.send_call({"command": ": %s; sleep 2" % word, "timeout": 30})
        self.assertTrue(wait_until(lambda: any(c.startswith("sleep 2") for c in self.sandbox_procs()), 10))
        procs = self.sandbox_procs()
        self.assertOk(s.wait_response(rid, 30)["result"]["structuredContent"])
        self.assertFalse([c for c in procs if word in c], "the script shows on a command line: %r" % procs)

    def test_late_output_of_background_child_never_leaks(self):
        s = self.start_server()
        word = "LATE-%s" % uuid.uuid4().hex[:8]
        sc = s.run("(sleep 1; echo %s) & echo now" % word)
        self.assertEqual(sc["output"], "now", sc)
        outputs = [s.run("sleep 0.5; echo next%d" % i)["output"] for i in range(4)]
        self.assertEqual(outputs, ["next0", "next1", "next2", "next3"])
        time.sleep(0.5)
        self.assertEqual(s.run("echo last")["output"], "last")

    def test_utf8_locale_and_control_bytes(self):
        s = self.start_server(TERMINAL_DOCKER_ENV="LANG=C.UTF-8,LC_ALL=C.UTF-8")
        for i in range(3):
            sc = s.run("echo 'ünïcödé € %d'; printf '[%%s]\\n' '\x10\x11'" % i)
            self.assertOk(sc)
            self.assertEqual(sc["output"], "ünïcödé € %d\n[\x10\x11]" % i, sc)
        sc = s.run("x='€€€'; echo ${#x}")
        self.assertEqual(sc["output"], "3", "the container's UTF-8 locale is not in effect")
        self.assertEqual(s.run("echo plain")["output"], "plain")

    def test_concurrent_calls_on_one_environment(self):
        s = self.start_server(SHELLWIRE_ORDER_WAIT="0")
        self.assertOk(s.run("true"))
        results = {}

        def one(i):
            results[i] = s.run("sleep 2; echo c%d" % i, wait=60)

        t0 = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        took = time.monotonic() - t0
        for i in range(8):
            self.assertIn(i, results)
            self.assertOk(results[i])
            self.assertEqual(results[i]["output"], "c%d" % i, results[i])
        self.assertLess(took, 10, "8 calls of 2 s took %.1fs: they did not run concurrently" % took)
        self.assertEqual(len(self.containers(s)), 1)

    def test_sequential_latency(self):
        s = self.start_server()
        self.assertOk(s.run("true"))
        times = []
        for i in range(30):
            t0 = time.monotonic()
            sc = s.run("echo hi%d" % i)
            times.append(time.monotonic() - t0)
            self.assertEqual(sc["output"], "hi%d" % i, sc)
        self.assertLess(statistics.median(times), 0.2, "median %.3fs" % statistics.median(times))
        slow = [round(t, 3) for t in times if t >= 1.0]
        self.assertFalse(slow, "calls of 'echo' that took >= 1 s: %r" % slow)


if __name__ == "__main__":
    swclient.main()
