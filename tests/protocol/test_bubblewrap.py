#!/usr/bin/env python3
"""Behaviour tests for the shellwire bubblewrap backend (TERMINAL_ENV=bubblewrap; SPEC
sections 3-5, backends/bubblewrap.c, docs/backends.md): the same terminal semantics as the
local backend, credential stores and the state directory hidden, a read-only root, a private
/tmp (and that it lasts across the calls of one environment, like the rest of the state),
symlinked credential paths, the three profiles (restricted / workspace / network) for writes
and for the network, the pid namespace and tree killing, background processes inside the
sandbox and their end with a killed server, `--check` and configuration errors, and a
latency sanity check.

Every server gets its own root directory under /var/tmp (not /tmp: the sandbox mounts a
private /tmp, which would hide a HOME or a state directory placed there and make the
isolation checks pass for the wrong reason), holding a fake HOME with credential files of
known content, a workspace (TERMINAL_CWD) and a private SHELLWIRE_STATE_DIR.
Standard library only; needs bwrap (/usr/bin/bwrap). Run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_bubblewrap.py [name-filter ...]
"""

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swclient  # noqa: E402
from swclient import ServerTest, wait_until  # noqa: E402

# Root for the per-test directories: on the host's real filesystem, outside /tmp.
BASE = "/var/tmp" if os.path.isdir("/var/tmp") and os.path.realpath("/var/tmp") != "/tmp" \
    else os.path.dirname(os.path.abspath(__file__))

SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nswtest-ssh-secret-%s\n-----END OPENSSH PRIVATE KEY-----\n"
AWS_CREDS = "[default]\naws_access_key_id = swtest-aws-id-%s\naws_secret_access_key = swtest-aws-secret-%s\n"
NETRC = "machine example.com login swtest password swtest-netrc-secret-%s\n"
NOTES = "ordinary notes %s\n"


def shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


def sleeps(secs):
    want = "sleep %s" % secs
    return lambda p: " ".join(p.cmdline) == want or " ".join(p.cmdline).endswith(" " + want)


def has_bwrap():
    return any(os.access(p, os.X_OK) for p in ("/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"))


class Sandbox:
    """Directories for one bubblewrap server: root/{home,ws,state}, with secrets in home."""

    def __init__(self):
        self.root = os.path.realpath(tempfile.mkdtemp(prefix="swbwrap-", dir=BASE))
        self.home = os.path.join(self.root, "home")
        self.ws = os.path.join(self.root, "ws")
        self.state = os.path.join(self.root, "state")
        self.nonce = uuid.uuid4().hex[:12]
        n = self.nonce
        for d in (self.home, self.ws, self.state,
                  os.path.join(self.home, ".ssh"), os.path.join(self.home, ".aws")):
            os.makedirs(d, exist_ok=True)
        self.secrets = {
            ".ssh/id_ed25519": SSH_KEY % n,
            ".aws/credentials": AWS_CREDS % (n, n),
            ".netrc": NETRC % n,
        }
        for rel, text in self.secrets.items():
            p = os.path.join(self.home, rel)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o600)
        os.chmod(os.path.join(self.home, ".ssh"), 0o700)
        self.notes = NOTES % n
        with open(os.path.join(self.home, "notes.txt"), "w") as f:
            f.write(self.notes)
        # Something of the server's own in its state directory, there before it starts.
        self.state_secret = "state-dir-secret-%s" % n
        with open(os.path.join(self.state, "private-note.txt"), "w") as f:
            f.write(self.state_secret + "\n")

    def secret_needles(self):
        """Strings that appear only in the secret files."""
        n = self.nonce
        return ["swtest-ssh-secret-" + n, "swtest-aws-id-" + n, "swtest-aws-secret-" + n,
                "swtest-netrc-secret-" + n]

    def env(self, profile=None, extra=None):
        e = {"TERMINAL_ENV": "bubblewrap", "TERMINAL_CWD": self.ws, "HOME": self.home,
             "SHELLWIRE_STATE_DIR": self.state}
        if profile is not None:
            e["TERMINAL_BUBBLEWRAP_PROFILE"] = profile
        e.update(extra or {})
        return e

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


class BubblewrapTest(ServerTest):

    def setUp(self):
        super().setUp()
        self.boxes = []
        if not has_bwrap():
            self.fail("bwrap is not installed; the bubblewrap backend cannot be tested")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for b in self.boxes:
                b.remove()

    def box(self):
        b = Sandbox()
        self.boxes.append(b)
        return b

    def session(self, profile=None, box=None, env=None):
        """An initialized server on the bubblewrap backend; returns (server, sandbox dirs)."""
        b = box or self.box()
        s = self.start(env=b.env(profile, env), cwd=b.ws)
        s.initialize()
        return s, b

    def assertNoSecrets(self, text, box, what):
        for needle in box.secret_needles():
            self.assertNotIn(needle, text, "%s revealed a hidden credential: %r" % (what, text))

    def assertNoRun(self, sc):
        """The call ran (no tool error) and the command failed."""
        self.assertIsNone(sc.get("error"), sc)
        self.assertNotEqual(sc.get("exit_code"), 0, sc)


# ============================================================================ basic

class BasicTests(BubblewrapTest):

    def test_echo_and_exit_codes(self):
        s, b = self.session()
        sc = s.run("echo hello sandbox")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "hello sandbox")
        self.assertEqual(s.run("false")["exit_code"], 1)
        sc = s.run("echo before; exit 3")
        self.assertOk(sc, 3)
        self.assertEqual(sc["output"], "before")
        self.assertEqual(s.run("(exit 42)")["exit_code"], 42)
        self.assertEqual(s.run("pwd")["output"], b.ws, "the session does not start in TERMINAL_CWD")

    def test_state_persists(self):
        s, b = self.session()
        sub = os.path.join(b.ws, "sub")
        sc = s.run("mkdir -p sub && cd sub")
        self.assertOk(sc)
        self.assertEqual(sc.get("cwd"), sub)
        self.assertEqual(s.run("pwd")["output"], sub, "cd did not persist")
        self.assertOk(s.run("export SWB_VAR='a b  c'"))
        self.assertEqual(s.run('echo "[$SWB_VAR]"')["output"], "[a b  c]", "export did not persist")
        self.assertEqual(s.run("bash -c 'echo \"$SWB_VAR\"'")["output"], "a b  c", "not exported to children")
        self.assertOk(s.run('swbfn() { echo "fn:$1"; }'))
        self.assertEqual(s.run("swbfn x")["output"], "fn:x", "function did not persist")
        self.assertOk(s.run("alias swbal='echo aliased'"))
        self.assertEqual(s.run("swbal now")["output"], "aliased now", "alias did not persist")
        self.assertOk(s.run("unset SWB_VAR"))
        self.assertEqual(s.run('echo "[${SWB_VAR-unset}]"')["output"], "[unset]")

    def test_workdir_per_call(self):
        s, b = self.session()
        other = os.path.join(b.ws, "other")
        os.mkdir(other)
        sc = s.run("pwd", workdir=other)
        self.assertOk(sc)
        self.assertEqual(sc["output"], other)
        self.assertNotIn("cwd", sc)
        sc = s.run("cd / && pwd", workdir=other)
        self.assertEqual(sc["output"], "/")
        self.assertNotIn("cwd", sc, "a cd inside a workdir call moved the session")
        self.assertEqual(s.run("pwd")["output"], b.ws)
        # A workdir outside the workspace is readable (read-only root), just not writable.
        sc = s.run("pwd; ls", workdir=b.home)
        self.assertOk(sc)
        self.assertEqual(sc["output"].splitlines()[0], b.home)
        self.assertIn("notes.txt", sc["output"])


# ============================================================================ isolation

class IsolationTests(BubblewrapTest):

    def test_credential_files_hidden(self):
        s, b = self.session()
        for rel in b.secrets:
            with self.subTest(path=rel):
                sc = s.run("cat ~/%s" % rel)
                self.assertIsNone(sc.get("error"), sc)
                self.assertNoSecrets(sc["output"], b, "cat ~/%s" % rel)
                self.assertTrue(sc["exit_code"] != 0 or sc["output"] == "",
                                "cat ~/%s succeeded with output: %r" % (rel, sc))
        # Not through other routes either: a listing, a grep over HOME, a copy.
        sc = s.run("ls -la ~/.ssh ~/.aws; grep -r swtest- ~ 2>/dev/null; "
                   "cp ~/.ssh/id_ed25519 ./copied 2>/dev/null; cat ./copied 2>/dev/null; true")
        self.assertNoSecrets(sc["output"], b, "ls/grep/cp in HOME")
        # Still there on the host, untouched.
        for rel, text in b.secrets.items():
            with open(os.path.join(b.home, rel)) as f:
                self.assertEqual(f.read(), text, "the host's ~/%s changed" % rel)

    def test_symlinked_credential_paths(self):
        """Dotfile managers make ~/.ssh or ~/.netrc symlinks (and leave dangling ones): the
        sandbox must still start, and the targets must stay hidden."""
        b = self.box()
        real = os.path.join(b.root, "dotfiles")
        os.makedirs(os.path.join(real, "ssh"))
        for rel, target in ((".ssh", os.path.join(real, "ssh")), (".netrc", os.path.join(real, "netrc"))):
            src = os.path.join(b.home, rel)
            if os.path.isdir(src):
                os.rename(os.path.join(src, "id_ed25519"), os.path.join(target, "id_ed25519"))
                os.rmdir(src)
            else:
                os.rename(src, target)
            os.symlink(target, src)
        os.symlink(os.path.join(real, "does-not-exist"), os.path.join(b.home, ".npmrc"))
        s, _ = self.session(box=b)
        sc = s.run("echo up")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "up", "the sandbox does not start with symlinked credential paths")
        for rel in (".ssh/id_ed25519", ".netrc"):
            with self.subTest(path=rel):
                sc = s.run("cat ~/%s" % rel)
                self.assertNoSecrets(sc["output"], b, "cat ~/%s (symlink)" % rel)
                self.assertTrue(sc["exit_code"] != 0 or sc["output"] == "", sc)

    def test_ordinary_home_file_readable(self):
        s, b = self.session()
        sc = s.run("cat ~/notes.txt")
        self.assertOk(sc)
        self.assertEqual(sc["output"], b.notes.strip())
        self.assertEqual(s.run('echo "$HOME"')["output"], b.home)

    def test_state_directory_hidden(self):
        s, b = self.session()
        # Something in the output directory: a truncated result spills the whole stream there.
        sc = s.run("head -c 60000 /dev/zero | tr '\\0' a")
        self.assertOk(sc)
        spill = sc.get("full_output_path")
        self.assertIsInstance(spill, str, "no full_output_path for a 60,000-char output")
        self.assertTrue(os.path.isfile(spill), spill)
        self.assertTrue(spill.startswith(b.state + "/"), "spill file %s is not in the state dir" % spill)
        out_dir = os.path.join(b.state, "output")
        self.assertTrue(os.listdir(out_dir), "the host's output dir is empty")

        for path, needle in ((os.path.join(b.state, "private-note.txt"), b.state_secret),
                             (spill, "aaaaaaaaaa")):
            sc = s.run("cat %s 2>/dev/null" % shq(path))
            self.assertIsNone(sc.get("error"), sc)
            self.assertNotIn(needle, sc["output"], "%s is readable in the sandbox" % path)
            self.assertNotEqual(sc["exit_code"], 0, sc)
        # Listings: the pre-existing file and the output directory are not there.
        sc = s.run("ls -A %s 2>/dev/null; ls -A %s 2>/dev/null; true" % (shq(b.state), shq(out_dir)))
        self.assertOk(sc)
        self.assertNotIn("private-note.txt", sc["output"], "the state directory's listing is visible")
        self.assertNotIn("output", sc["output"].split(), "the output dir is visible in the sandbox")
        self.assertNotIn(os.path.basename(spill), sc["output"], "the output dir's listing is visible")
        # find over the whole state directory reaches no host file.
        sc = s.run("find %s -type f 2>/dev/null | grep -c -e private-note -e '/output/' ; true" % shq(b.state))
        self.assertEqual(sc["output"].strip(), "0", sc)

    def test_etc_read_only(self):
        s, b = self.session()
        name = "/etc/swtest-bwrap-%s" % b.nonce
        try:
            sc = s.run("touch %s" % name)
            self.assertNoRun(sc)
            self.assertFalse(os.path.exists(name), "touch inside the sandbox created %s on the host" % name)
            sc = s.run("echo x >> /etc/hostname")
            self.assertNoRun(sc)
            sc = s.run("rm -f /etc/hostname.swtest-nonexistent && touch /usr/swtest-%s" % b.nonce)
            self.assertNoRun(sc)
        finally:
            for p in (name, "/usr/swtest-%s" % b.nonce):
                if os.path.exists(p):
                    os.unlink(p)

    def test_tmp_private(self):
        s, b = self.session()
        host_file = os.path.join("/tmp", "swtest-host-%s" % b.nonce)
        inner = "/tmp/swtest-inner-%s" % b.nonce
        try:
            with open(host_file, "w") as f:
                f.write("host tmp content %s\n" % b.nonce)
            sc = s.run("cat %s 2>/dev/null" % host_file)
            self.assertNotIn("host tmp content", sc["output"], "the host's /tmp is visible")
            self.assertNotEqual(sc["exit_code"], 0, sc)
            sc = s.run("ls -A /tmp")
            self.assertOk(sc)
            self.assertNotIn(os.path.basename(host_file), sc["output"], "the host's /tmp is listed")
            sc = s.run("echo inner > %s && cat %s" % (inner, inner))
            self.assertOk(sc)                    # /tmp is writable inside
            self.assertEqual(sc["output"], "inner")
            self.assertFalse(os.path.exists(inner), "a file written to /tmp inside appeared on the host")
        finally:
            for p in (host_file, inner):
                if os.path.exists(p):
                    os.unlink(p)

    def test_tmp_persists_within_environment(self):
        """State semantics 'exactly like local' (docs/backends.md): what one call leaves in
        the sandbox's /tmp, and a cd into it, are still there for the next call."""
        s, b = self.session()
        sc = s.run("mkdir -p /tmp/swbuild && echo kept > /tmp/swbuild/f && cd /tmp/swbuild")
        self.assertOk(sc)
        self.assertEqual(sc.get("cwd"), "/tmp/swbuild")
        sc = s.run("cat /tmp/swbuild/f")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "kept", "a file written to /tmp is gone in the next call")
        sc = s.run("pwd")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "/tmp/swbuild", "a cd into /tmp did not persist")


# ============================================================================ profiles

def free_listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    return srv, srv.getsockname()[1]


def pending_connection(srv, wait):
    """True when a connection reached the listener within `wait` seconds (accepts it)."""
    r, _, _ = select.select([srv], [], [], wait)
    if not r:
        return False
    c, _ = srv.accept()
    c.close()
    return True


class ProfileTests(BubblewrapTest):

    def check_writes(self, profile, ws_writable):
        s, b = self.session(profile)
        ws_file = os.path.join(b.ws, "written-%s.txt" % b.nonce)
        sc = s.run("echo from-sandbox > %s" % shq(ws_file))
        if ws_writable:
            self.assertOk(sc)
            self.assertTrue(os.path.isfile(ws_file), "the write in TERMINAL_CWD did not reach the host")
            with open(ws_file) as f:
                self.assertEqual(f.read(), "from-sandbox\n")
            sc = s.run("mkdir -p d/e && echo nested > d/e/f && cat d/e/f")   # relative to the cwd
            self.assertOk(sc)
            self.assertTrue(os.path.isfile(os.path.join(b.ws, "d", "e", "f")))
        else:
            self.assertNoRun(sc)
            self.assertFalse(os.path.exists(ws_file), "restricted: a write in TERMINAL_CWD reached the host")
            # The workspace is still the working directory and readable.
            with open(os.path.join(b.ws, "readme.txt"), "w") as f:
                f.write("readable\n")
            sc = s.run("pwd; cat readme.txt")
            self.assertOk(sc)
            self.assertEqual(sc["output"], b.ws + "\nreadable")
        home_file = os.path.join(b.home, "outside-%s.txt" % b.nonce)
        sc = s.run("echo x > %s" % shq(home_file))
        self.assertNoRun(sc)
        self.assertFalse(os.path.exists(home_file), "a write in HOME (outside the workspace) reached the host")
        sc = s.run("touch %s" % shq(os.path.join(b.root, "beside-ws")))
        self.assertNoRun(sc)
        self.assertFalse(os.path.exists(os.path.join(b.root, "beside-ws")))

    def check_network(self, profile, allowed):
        s, b = self.session(profile)
        srv, port = free_listener()
        try:
            sc = s.run("exec 3<>/dev/tcp/127.0.0.1/%d && echo connected" % port, timeout=10)
            self.assertIsNone(sc.get("error"), sc)
            got = pending_connection(srv, 1.0 if allowed else 0.3)
            if allowed:
                self.assertOk(sc)
                self.assertEqual(sc["output"], "connected", sc)
                self.assertTrue(got, "the host listener saw no connection")
            else:
                self.assertNotEqual(sc["exit_code"], 0, "profile %s reached the host's loopback: %r" % (profile, sc))
                self.assertNotIn("connected", sc["output"].replace("not connected", ""), sc)
                self.assertFalse(got, "profile %s: the host listener got a connection" % profile)
        finally:
            srv.close()

    def test_workspace_writes(self):
        self.check_writes("workspace", True)

    def test_default_profile_is_workspace(self):
        s, b = self.session(None)
        sc = s.run("echo d > default.txt")
        self.assertOk(sc)
        self.assertTrue(os.path.isfile(os.path.join(b.ws, "default.txt")))
        srv, port = free_listener()
        try:
            sc = s.run("exec 3<>/dev/tcp/127.0.0.1/%d && echo connected" % port, timeout=10)
            self.assertNotEqual(sc["exit_code"], 0, "the default profile has network: %r" % sc)
            self.assertFalse(pending_connection(srv, 0.3))
        finally:
            srv.close()

    def test_network_writes(self):
        self.check_writes("network", True)

    def test_restricted_writes(self):
        self.check_writes("restricted", False)

    def test_workspace_no_network(self):
        self.check_network("workspace", False)

    def test_restricted_no_network(self):
        self.check_network("restricted", False)

    def test_network_profile_has_network(self):
        self.check_network("network", True)


# ============================================================================ pid namespace

class PidTests(BubblewrapTest):

    def test_pid_namespace(self):
        s, b = self.session()
        sc = s.run("echo $$")
        self.assertOk(sc)
        pid = int(sc["output"])
        self.assertLess(pid, 20, "$$ is %d: the shell is not in its own pid namespace" % pid)
        # Host processes are not visible.
        sc = s.run("ls /proc | grep -c '^[0-9]'")
        self.assertLess(int(sc["output"]), 20, "the sandbox sees %s processes" % sc["output"])
        sc = s.run("test -e /proc/%d && echo server-visible || echo hidden" % s.pid)
        self.assertEqual(sc["output"], "hidden", "the server's pid is visible in the sandbox")

    def test_timeout_kills_tree(self):
        s, b = self.session()
        t0 = time.monotonic()
        sc = s.run("sleep 100 & sleep 100", timeout=1)
        took = time.monotonic() - t0
        self.assertIsNone(sc.get("error"), sc)
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertIn("[Command timed out after 1s]", sc["output"])
        self.assertLess(took, 5, "the timeout took %.1fs" % took)
        left = wait_until(lambda: not s.find_procs(sleeps(100)), 1.0)
        self.assertTrue(left, "sleep 100 survived the timeout on the host: %r" % s.find_procs(sleeps(100)))
        self.assertOk(s.run("echo still usable"))


# ============================================================================ background

class BackgroundTests(BubblewrapTest):

    def test_background_wait(self):
        s, b = self.session()
        sc = s.background("echo pid=$$; cat ~/.ssh/id_ed25519 2>&1; echo bg-out > bg.txt; "
                          "echo bg-done; exit 7")
        sid = sc.get("session_id")
        self.assertIsInstance(sid, str, sc)
        w = s.process("wait", session_id=sid, timeout=10)
        self.assertIsNone(w.get("error"), w)
        self.assertEqual(w.get("status"), "exited", w)
        self.assertEqual(w.get("exit_code"), 7, w)
        out = w.get("output", "") or w.get("output_preview", "")
        self.assertIn("bg-done", out, w)
        self.assertNoSecrets(out, b, "a background process")
        m = [ln for ln in out.splitlines() if ln.startswith("pid=")]
        self.assertTrue(m, w)
        self.assertLess(int(m[0][4:]), 20, "the background process is not in a pid namespace: %r" % m)
        self.assertTrue(os.path.isfile(os.path.join(b.ws, "bg.txt")),
                        "the background process could not write in the workspace")

    def test_background_kill(self):
        s, b = self.session()
        sc = s.background("sleep 101 & sleep 101; echo never")
        sid = sc["session_id"]
        self.assertTrue(wait_until(lambda: len(s.find_procs(sleeps(101))) >= 2, 5),
                        "the background sleeps did not start: %r" % s.descendants())
        p = s.process("poll", session_id=sid)
        self.assertEqual(p.get("status"), "running", p)
        k = s.process("kill", session_id=sid)
        self.assertIsNone(k.get("error"), k)
        self.assertEqual(k.get("status"), "killed", k)
        self.assertTrue(wait_until(lambda: not s.find_procs(sleeps(101)), 1.0),
                        "sleep 101 survived process kill: %r" % s.find_procs(sleeps(101)))
        p = s.process("poll", session_id=sid)
        self.assertEqual(p.get("status"), "exited", p)
        self.assertNotIn("never", p.get("output_preview", ""))

    def test_server_crash_ends_sandboxes(self):
        """docs/backends.md: background processes end with the server (--die-with-parent);
        so does a running foreground command, even after a kill -9 of the server."""
        s, b = self.session()
        s.background("sleep 105 & sleep 105")
        s.send_call({"command": "sleep 104", "timeout": 60})
        self.assertTrue(wait_until(lambda: len(s.find_procs(sleeps(105))) >= 2
                                   and s.find_procs(sleeps(104)), 5),
                        "the sleeps did not start: %r" % s.descendants())
        s.proc.kill()
        s.wait_exit(5)
        gone = wait_until(lambda: not s.find_procs(lambda p: sleeps(104)(p) or sleeps(105)(p)), 2.0)
        self.assertTrue(gone, "sandboxed processes survived a kill -9 of the server: %r" % s.descendants())


# ============================================================================ configuration

class ConfigTests(BubblewrapTest):

    def test_check(self):
        b = self.box()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        env.update(b.env())
        for profile in ("workspace", "restricted", "network"):
            with self.subTest(profile=profile):
                env["TERMINAL_BUBBLEWRAP_PROFILE"] = profile
                r = subprocess.run([swclient.BIN, "--check"], env=env, cwd=b.ws, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
                out = r.stdout.decode(errors="replace")
                self.assertEqual(r.returncode, 0, "--check failed:\n%s\n%s" % (out, r.stderr.decode(errors="replace")))
                self.assertIn("bubblewrap", out)
                self.assertIn("checking the bubblewrap backend", out)
                self.assertNotIn("FAIL", out)

    def test_invalid_profile(self):
        b = self.box()
        s = self.start(env=b.env("sandboxed-please"), cwd=b.ws)
        code = s.wait_exit(10)
        self.assertIsNotNone(code, "the server kept running with an invalid profile")
        self.assertNotEqual(code, 0)
        err = s.stderr_tail()
        self.assertIn("TERMINAL_BUBBLEWRAP_PROFILE", err)
        self.assertIn("sandboxed-please", err)
        # The flag form is checked the same way.
        s2 = self.start(args=["--bubblewrap-profile", "nope"], env=b.env(), cwd=b.ws)
        code = s2.wait_exit(10)
        self.assertIsNotNone(code)
        self.assertNotEqual(code, 0)
        self.assertIn("profile", s2.stderr_tail().lower())


# ============================================================================ latency

class LatencyTests(BubblewrapTest):

    def test_sequential_echo_latency(self):
        s, b = self.session()
        times = []
        for i in range(20):
            t0 = time.monotonic()
            sc = s.run("echo hi")
            times.append(time.monotonic() - t0)
            self.assertOk(sc)
            self.assertEqual(sc["output"], "hi")
        slow = [(i, round(t, 3)) for i, t in enumerate(times) if t >= 0.5]
        self.assertFalse(slow, "calls of 'echo hi' that took >= 0.5 s: %r (all: %r)"
                         % (slow, [round(t, 3) for t in times]))


if __name__ == "__main__":
    swclient.main()
