#!/usr/bin/env python3
"""Tests for the shellwire singularity backend (TERMINAL_ENV=singularity; SPEC sections 3-5,
backends/singularity.c) against the Apptainer stand-in in tests/standins/apptainer, which
runs instances under bubblewrap and records every invocation.

- the shared behaviour list (backend_suite.SharedBehaviour) on this backend;
- images: a docker:// reference is built once into the cache and reused by other
  environments and other servers, also when they start at the same moment; a SIF path is
  used as is; build failures, a missing or unreadable image, a missing CLI (and the
  `singularity` name as a fallback) give clear errors;
- instances: one per environment, stopped when the server ends (stdin EOF) and gone after
  SIGTERM, an instance that vanished between calls is recreated (environment_recreated),
  the script never appears on a command line (a sudo password included), --check;
- the stand-in itself: it refuses flags the real CLI lacks and real flags shellwire does
  not use, and its instances behave like Apptainer's (output formats, shared files and
  processes across execs, stop).

Every test gets a private directory under /var/tmp with the stand-in's configuration
directory (APPTAINER_CONFIGDIR: its instance records), the image cache
(TERMINAL_SCRATCH_DIR) and the invocation log (SW_STANDIN_LOG). Needs bwrap
(/usr/bin/bwrap); fails, never skips, without it. Standard library only. Run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_singularity.py [filter ...]
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_suite  # noqa: E402
import swclient  # noqa: E402
from swclient import ServerTest, wait_until  # noqa: E402

STANDINS = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "standins"))
STANDIN = os.path.join(STANDINS, "apptainer")
IMAGE_REF = "docker://debian:12-slim"
BASE = "/var/tmp" if os.path.isdir("/var/tmp") and os.path.realpath("/var/tmp") != "/tmp" \
    else os.path.dirname(os.path.abspath(__file__))
EXEC_TAIL = ["bash", "-c", ". /proc/self/fd/0"]


def has_bwrap():
    return any(os.access(p, os.X_OK) for p in ("/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"))


def system_path():
    """PATH without the stand-ins."""
    return ":".join(d for d in os.environ.get("PATH", "/usr/bin:/bin").split(":")
                    if d and os.path.realpath(d) != STANDINS)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def cmdline(pid):
    data = read("/proc/%d/cmdline" % pid) or b""
    return [c.decode(errors="replace") for c in data.split(b"\0") if c]


def ns_of(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


class SingularityTest(ServerTest):
    """Private directories per test, servers on the singularity backend, and a check that no
    instance of the test outlives it."""

    def setUp(self):
        super().setUp()
        if not has_bwrap():
            self.fail("bwrap is not installed; the apptainer stand-in cannot run instances")
        self.root = os.path.realpath(tempfile.mkdtemp(prefix="swsing-", dir=BASE))
        self.cfg = os.path.join(self.root, "apptainer")
        self.scratch = os.path.join(self.root, "scratch")
        self.log = os.path.join(self.root, "calls.jsonl")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            left = wait_until(lambda: [r for r in self.records() if self.instance_alive(r)] == [], 5)
            alive = [r for r in self.records() if self.instance_alive(r)]
            for r in alive:
                for pid in (r["ppid"], r["pid"]):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            shutil.rmtree(self.root, ignore_errors=True)
            if not left:
                self.fail("instances outlived the test: %r" % [r["name"] for r in alive])

    # ---- servers

    def env(self, **extra):
        e = {"TERMINAL_ENV": "singularity", "TERMINAL_SINGULARITY_IMAGE": IMAGE_REF,
             "PATH": STANDINS + ":" + system_path(), "APPTAINER_CONFIGDIR": self.cfg,
             "SW_STANDIN_LOG": self.log, "TERMINAL_SCRATCH_DIR": self.scratch}
        e.update(extra)
        return e

    def server(self, **extra):
        s = self.start(env=self.env(**extra))
        s.initialize()
        return s

    # ---- what the stand-in saw and holds

    def calls(self, *prefix):
        """argv (after the program name) of every logged invocation starting with prefix."""
        data = read(self.log) or b""
        out = [json.loads(ln) for ln in data.decode().splitlines() if ln.strip()]
        return [c["argv"] for c in out if c["argv"][:len(prefix)] == list(prefix)]

    def cli(self, *args, check=True, **kw):
        """Runs the stand-in directly, outside shellwire (not logged)."""
        env = {k: v for k, v in os.environ.items() if k != "SW_STANDIN_LOG"}
        env["APPTAINER_CONFIGDIR"] = self.cfg
        r = subprocess.run([STANDIN, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, **kw)
        if check and r.returncode != 0:
            self.fail("apptainer %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.decode()))
        return r

    def records(self):
        """Every instance record in the configuration directory, live or not."""
        out = []
        for path in glob.glob(os.path.join(self.cfg, "instances", "app", "*", "*", "*", "*.json")):
            try:
                with open(path) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                pass
        return out

    @staticmethod
    def instance_alive(rec):
        return swclient.pid_alive(rec["pid"]) or swclient.pid_alive(rec["ppid"])

    def live_names(self):
        return sorted(r["name"] for r in self.records() if self.instance_alive(r))

    def sandbox_procs(self):
        """Command lines of the processes running in this test's instances, without the
        instance's own pid 1 and its keep-alive sleep."""
        out = []
        for rec in self.records():
            init = rec["pid"]
            ns = ns_of(init)
            if not ns or not swclient.pid_alive(init):
                continue
            for name in os.listdir("/proc"):
                if not name.isdigit() or int(name) == init or ns_of(int(name)) != ns:
                    continue
                pid = int(name)
                st = swclient.proc_stat(pid)
                cl = cmdline(pid)
                if not st or st["state"] in ("Z", "X") or (st["ppid"] == init and cl == ["sleep", "infinity"]):
                    continue
                out.append(" ".join(cl))
        return out


# ============================================================================ shared list

class SingularityShared(SingularityTest, backend_suite.SharedBehaviour):

    def start_server(self, **env):
        return self.server(**env)


# ============================================================================ images

class ImageTests(SingularityTest):

    def cached_sifs(self):
        return sorted(os.listdir(os.path.join(self.scratch, "shellwire-images")))

    def test_reference_built_once_for_all_environments_and_servers(self):
        s = self.server()
        for task in ("t1", "t2", "t1"):
            sc = s.run("echo in-$HOSTNAME-ok", task_id=task)
            self.assertIsNone(sc.get("error"), sc)
        s2 = self.server()
        self.assertEqual(s2.run("cat /etc/debian_version >/dev/null && echo second")["output"], "second")
        builds = self.calls("build")
        self.assertEqual(len(builds), 1, "expected one build: %r" % builds)
        target, ref = builds[0][1], builds[0][2]
        self.assertEqual(ref, IMAGE_REF)
        files = self.cached_sifs()
        sif = [f for f in files if f.endswith(".sif")]
        self.assertEqual(len(sif), 1, files)
        final = os.path.join(self.scratch, "shellwire-images", sif[0])
        self.assertNotEqual(target, final, "the build wrote straight to the cached name")
        self.assertTrue(target.startswith(final), (target, final))
        self.assertFalse([f for f in files if f.endswith(".partial")], files)
        starts = self.calls("instance", "start")
        self.assertEqual(len(starts), 3, starts)            # t1, t2 and the second server
        for argv in starts:
            self.assertEqual(argv[2:6], ["--containall", "--no-home", "--writable-tmpfs", final], argv)
        self.assertEqual(len({argv[6] for argv in starts}), 3, "instance names repeat: %r" % starts)

    def test_concurrent_first_calls_build_once(self):
        """Two servers with two environments each open at the same moment while a build takes
        2 s: one build, the others wait for it (a missing lock gives four)."""
        servers = [self.server(SW_STANDIN_BUILD_SECONDS="2") for _ in range(2)]
        results = {}

        def call(s, task):
            results[(s.pid, task)] = s.run("echo ready-%s" % task, task_id=task, wait=90)

        threads = [threading.Thread(target=call, args=(s, t)) for s in servers for t in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(results), 4, results)
        for (pid, task), sc in results.items():
            self.assertEqual(sc.get("output"), "ready-%s" % task, sc)
        self.assertEqual(len(self.calls("build")), 1, self.calls("build"))
        self.assertEqual(len(self.calls("instance", "start")), 4)

    def test_sif_path_used_as_is(self):
        sif = os.path.join(self.root, "images", "mine.sif")
        os.makedirs(os.path.dirname(sif))
        self.cli("build", sif, "docker://alpine:3")
        s = self.server(TERMINAL_SINGULARITY_IMAGE=sif)
        self.assertEqual(s.run("echo from-sif")["output"], "from-sif")
        self.assertEqual(self.calls("build"), [], "a SIF path was rebuilt")
        self.assertEqual([a[5] for a in self.calls("instance", "start")], [sif])
        # A relative path is taken from the server's working directory.
        s2 = self.start(env=self.env(TERMINAL_SINGULARITY_IMAGE="images/mine.sif"), cwd=self.root)
        s2.initialize()
        self.assertEqual(s2.run("echo relative")["output"], "relative")
        self.assertEqual([a[5] for a in self.calls("instance", "start")], [sif, sif])

    def test_build_failure_reported(self):
        ref = "docker://library/missing-image:1"
        s = self.server(TERMINAL_SINGULARITY_IMAGE=ref)
        for attempt in (1, 2):
            sc = self.assertToolError(s.call({"command": "echo never"}), ref)
            self.assertIn("manifest unknown", sc["error"], sc)
            self.assertIn("TERMINAL_SINGULARITY_IMAGE", sc["error"], sc)
            self.assertEqual(len(self.calls("build")), attempt, "each call tries the build again")
        self.assertEqual(self.calls("instance", "start"), [])
        self.assertEqual([f for f in os.listdir(os.path.join(self.scratch, "shellwire-images"))
                          if not f.endswith(".lock")], [], "a failed build left files behind")

    def test_image_not_configured(self):
        s = self.server(TERMINAL_SINGULARITY_IMAGE=None)
        self.assertToolError(s.call({"command": "echo never"}), "TERMINAL_SINGULARITY_IMAGE")
        self.assertEqual(self.calls(), [], "the CLI ran without an image")

    def test_image_file_missing(self):
        path = os.path.join(self.root, "no-such.sif")
        s = self.server(TERMINAL_SINGULARITY_IMAGE=path)
        sc = self.assertToolError(s.call({"command": "echo never"}), path)
        self.assertIn("TERMINAL_SINGULARITY_IMAGE", sc["error"])
        self.assertEqual(self.calls("instance", "start"), [])

    def test_no_cli_on_path(self):
        empty = os.path.join(self.root, "empty-bin")
        os.mkdir(empty)
        s = self.server(PATH=empty)
        sc = self.assertToolError(s.call({"command": "echo never"}), "apptainer")
        self.assertIn("PATH", sc["error"])

    def test_singularity_name_used_when_apptainer_missing(self):
        self.assertIsNone(shutil.which("apptainer", path=system_path()),
                          "a real apptainer is installed; it would be chosen over `singularity`")
        bindir = os.path.join(self.root, "bin")
        os.mkdir(bindir)
        os.symlink(STANDIN, os.path.join(bindir, "singularity"))
        s = self.server(PATH=bindir + ":" + system_path())
        self.assertEqual(s.run("echo via-singularity")["output"], "via-singularity")
        data = [json.loads(ln) for ln in (read(self.log) or b"").decode().splitlines()]
        self.assertTrue(data)
        self.assertEqual({d["prog"] for d in data}, {"singularity"})


# ============================================================================ instances

class InstanceTests(SingularityTest):

    def test_one_instance_per_environment_stopped_at_exit(self):
        s = self.server()
        for task in ("a", "b", "a", "b"):
            s.run("echo $$ > /tmp/pid-%s" % task, task_id=task)
        starts = self.calls("instance", "start")
        names = sorted(a[6] for a in starts)
        self.assertEqual(len(names), 2, starts)
        self.assertEqual(self.live_names(), names)
        # Each environment sees its own instance's /tmp only.
        self.assertEqual(s.run("ls /tmp | grep -c '^pid-'", task_id="a")["output"], "1")
        s.close_stdin()
        self.assertEqual(s.wait_exit(15), 0, s.stderr_tail())
        stops = self.calls("instance", "stop")
        self.assertEqual(sorted(a[-1] for a in stops), names, stops)
        for a in stops:
            self.assertEqual(a[:3], ["instance", "stop", "--force"], a)
        self.assertEqual(self.live_names(), [])
        self.assertEqual(self.cli("instance", "list").stdout.decode().splitlines()[1:], [])

    def test_sigterm_leaves_no_instance(self):
        s = self.server()
        s.run("echo up")
        s.background("sleep 611")
        self.assertTrue(wait_until(lambda: any("sleep 611" in c for c in self.sandbox_procs()), 10))
        recs = self.records()
        self.assertEqual(len(recs), 1, recs)
        t0 = time.monotonic()
        self.assertEqual(s.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - t0, 6, "closing is bounded by the 4 s shutdown budget")
        self.assertTrue(wait_until(lambda: not self.instance_alive(recs[0]), 3),
                        "the instance survived SIGTERM of the server")
        self.assertEqual(self.live_names(), [])

    def test_idle_environment_released(self):
        s = self.server(TERMINAL_LIFETIME_SECONDS="1")
        s.run("echo first")
        first = self.calls("instance", "start")[0][6]
        self.assertTrue(wait_until(lambda: self.calls("instance", "stop"), 10), "the idle instance was not stopped")
        self.assertEqual(self.calls("instance", "stop")[0][-1], first)
        self.assertTrue(wait_until(lambda: self.live_names() == [], 5), self.live_names())
        sc = s.run("echo again")
        self.assertEqual(sc["output"], "again")
        self.assertNotIn("environment_recreated", sc)
        self.assertEqual(len(self.calls("instance", "start")), 2)

    def check_recreated(self, kill):
        s = self.server()
        sc = s.run("echo kept > /tmp/mark && cd /tmp && export SW_KEEP=1")
        self.assertEqual(sc["exit_code"], 0, sc)
        [rec] = self.records()
        kill(rec)
        self.assertTrue(wait_until(lambda: not self.instance_alive(rec), 5))
        sc = s.run("cat /tmp/mark 2>/dev/null || echo fresh")
        self.assertIsNone(sc.get("error"), sc)
        self.assertTrue(sc.get("environment_recreated"), sc)
        self.assertEqual(sc["output"], "fresh", "the command ran in the old instance: %r" % sc)
        starts = self.calls("instance", "start")
        self.assertEqual(len(starts), 2, starts)
        self.assertNotEqual(starts[0][6], starts[1][6])
        self.assertEqual(self.live_names(), [starts[1][6]])
        sc = s.run("echo next")
        self.assertEqual(sc["output"], "next")
        self.assertNotIn("environment_recreated", sc)

    def test_instance_stopped_between_calls_is_recreated(self):
        self.check_recreated(lambda rec: self.cli("instance", "stop", "--force", rec["name"]))

    def test_instance_killed_between_calls_is_recreated(self):
        """A crashed instance leaves its record behind; the CLI must not count it."""
        self.check_recreated(lambda rec: os.kill(rec["ppid"], signal.SIGKILL))

    def test_script_never_on_a_command_line(self):
        """The script reaches bash on stdin: a sudo password travels inside it to the
        command's stdin and never shows in the CLI's arguments."""
        secret = "sw-sudo-%s" % uuid.uuid4().hex
        s = self.server(SUDO_PASSWORD=secret)
        sc = s.run("mkdir -p /tmp/swbin && printf '#!/bin/sh\\nread -r pw\\necho got:${#pw}\\n' "
                   "> /tmp/swbin/sudo && chmod +x /tmp/swbin/sudo && export PATH=/tmp/swbin:$PATH")
        self.assertEqual(sc["exit_code"], 0, sc)
        sc = s.run("sudo true")
        self.assertEqual(sc["output"], "got:%d" % len(secret), "the password did not reach sudo's stdin")
        execs = self.calls("exec")
        self.assertGreaterEqual(len(execs), 3, execs)
        for argv in execs:
            self.assertEqual(len(argv), 6, argv)
            self.assertEqual(argv[:2], ["exec", "--cleanenv"])
            self.assertTrue(argv[2].startswith("instance://shellwire-"), argv)
            self.assertEqual(argv[3:], EXEC_TAIL)
        self.assertNotIn(secret.encode(), read(self.log))

    def test_check_command(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        env.update(self.env(SHELLWIRE_STATE_DIR=os.path.join(self.root, "state")))
        r = subprocess.run([swclient.BIN, "--check"], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        self.assertIn("ok   a test command ran", out)
        self.assertEqual(len(self.calls("instance", "start")), 1)
        self.assertEqual(len(self.calls("instance", "stop")), 1)
        self.assertEqual(self.live_names(), [])


# ============================================================================ the stand-in

class StandinTests(SingularityTest):

    def test_rejects_unknown_flags(self):
        for args in (["exec", "--no-such-flag", "instance://x", "true"],
                     ["instance", "start", "--containall", "--bogus", "img.sif", "x"],
                     ["instance", "list", "-z"],
                     ["--frobnicate", "exec", "instance://x", "true"]):
            with self.subTest(args=args):
                r = self.cli(*args, check=False)
                self.assertEqual(r.returncode, 1, r)
                self.assertIn("unknown", r.stderr.decode())

    def test_rejects_real_flags_shellwire_does_not_use(self):
        for args in (["exec", "--bind", "/x:/y", "instance://x", "true"],
                     ["instance", "start", "--containall", "--net", "img.sif", "x"],
                     ["instance", "stop", "--signal", "TERM", "x"],
                     ["build", "--sandbox", "out", "docker://alpine"],
                     ["run", "img.sif"],
                     ["-d", "exec", "instance://x", "true"]):
            with self.subTest(args=args):
                r = self.cli(*args, check=False)
                self.assertEqual(r.returncode, 255, r)
                self.assertIn("stand-in does not implement", r.stderr.decode())

    def test_version(self):
        r = self.cli("--version")
        self.assertEqual(r.stdout.decode(), "apptainer version 1.3.6\n")

    def test_instance_behaves_like_apptainer(self):
        sif = os.path.join(self.root, "t.sif")
        r = self.cli("build", sif, "docker://busybox:1")
        self.assertIn("INFO:    Build complete: %s" % sif, r.stderr.decode())
        r = self.cli("build", sif, "docker://busybox:1", check=False)
        self.assertEqual(r.returncode, 255)
        self.assertIn("already exists", r.stderr.decode())
        r = self.cli("instance", "start", "--containall", "--writable-tmpfs", sif, "sw-a")
        self.assertEqual(r.stderr.decode(), "INFO:    instance started successfully\n")
        try:
            [rec] = self.records()
            # Go's tabwriter as Apptainer uses it: columns as wide as their widest cell + 4.
            lines = self.cli("instance", "list").stdout.decode().splitlines()
            w = max(3, len(str(rec["pid"]))) + 4
            self.assertEqual(lines, ["INSTANCE NAME    " + "PID".ljust(w) + "IP    IMAGE",
                                     "sw-a             " + str(rec["pid"]).ljust(w) + "      " + sif])
            doc = json.loads(self.cli("instance", "list", "--json", "sw-*").stdout)
            self.assertEqual(doc["instances"][0]["instance"], "sw-a")
            self.assertEqual(doc["instances"][0]["img"], sif)
            # One file system and one pid namespace for every exec; /tmp private to it.
            self.cli("exec", "instance://sw-a", "bash", "-c", "echo shared > /tmp/f; touch /made-here")
            self.assertFalse(os.path.exists("/made-here"))
            self.assertEqual(self.cli("exec", "instance://sw-a", "cat", "/tmp/f").stdout, b"shared\n")
            env = dict(os.environ, APPTAINER_CONFIGDIR=self.cfg)
            env.pop("SW_STANDIN_LOG", None)
            bg = subprocess.Popen([STANDIN, "exec", "instance://sw-a", "sleep", "77"], env=env)
            try:
                ps = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"
                self.assertTrue(wait_until(lambda: "sleep 77" in self.cli(
                    "exec", "instance://sw-a", "bash", "-c", ps).stdout.decode(), 10))
                pid1 = self.cli("exec", "--cleanenv", "instance://sw-a", "bash", "-c",
                                "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$ $HOME; env | sort")
                out = pid1.stdout.decode().splitlines()
                self.assertIn("while :; do sleep infinity", out[0])
                self.assertLess(int(out[1].split()[0]), 100, "not in the instance's pid namespace")
                self.assertNotIn("SW_STANDIN", pid1.stdout.decode(), "--cleanenv kept the caller's variables")
            finally:
                bg.kill()
                bg.wait(10)
            r = self.cli("exec", "instance://sw-a", "no-such-program", check=False)
            self.assertEqual(r.returncode, 255)
            r = self.cli("exec", "instance://sw-a", "bash", "-c", "exit 42", check=False)
            self.assertEqual(r.returncode, 42)
        finally:
            r = self.cli("instance", "stop", "sw-a", check=False)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("INFO:    Stopping sw-a instance of %s (PID=" % sif, r.stderr.decode())
        self.assertEqual(self.records(), [], "the record outlived the instance")
        r = self.cli("exec", "instance://sw-a", "true", check=False)
        self.assertEqual(r.returncode, 255)
        self.assertEqual(r.stderr.decode(), "FATAL:   no instance found with name sw-a\n")
        r = self.cli("instance", "stop", "sw-a", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no instance found", r.stderr.decode())

    def test_read_only_without_writable_tmpfs(self):
        sif = os.path.join(self.root, "ro.sif")
        self.cli("build", sif, "docker://busybox:1")
        self.cli("instance", "start", "--containall", "--no-home", sif, "sw-ro")
        try:
            r = self.cli("exec", "instance://sw-ro", "bash", "-c",
                         "touch /x 2>/dev/null && echo root-writable; echo t > /tmp/t && echo tmp-writable")
            self.assertEqual(r.stdout.decode(), "tmp-writable\n")
        finally:
            self.cli("instance", "stop", "--force", "sw-ro")

    def test_half_written_image_refused(self):
        sif = os.path.join(self.root, "half.sif")
        env = dict(os.environ, APPTAINER_CONFIGDIR=self.cfg, SW_STANDIN_BUILD_SECONDS="3")
        env.pop("SW_STANDIN_LOG", None)
        b = subprocess.Popen([STANDIN, "build", sif, "docker://busybox:1"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.assertTrue(wait_until(lambda: os.path.exists(sif), 10))
            r = self.cli("instance", "start", "--containall", sif, "sw-half", check=False)
            self.assertEqual(r.returncode, 255)
            self.assertIn("image format not recognized", r.stderr.decode())
        finally:
            b.kill()
            b.wait(10)


if __name__ == "__main__":
    swclient.main()
