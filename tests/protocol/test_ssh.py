#!/usr/bin/env python3
"""Tests for the shellwire ssh backend (TERMINAL_ENV=ssh; SPEC sections 3-5,
backends/ssh.c) against real OpenSSH servers that the tests start themselves:

- the shared behaviour list (backend_suite.SharedBehaviour) on this backend;
- host keys: an unknown host is recorded in the known_hosts file (created with safe modes,
  "[host]:port" form, readable by OpenSSH's tools), a changed host key is refused with the
  offered key's SHA256 fingerprint and the command never runs;
- authentication: a key the server does not know, an unreadable key file, an encrypted key
  with the right, a missing and a wrong passphrase, ssh-agent (with keys, and empty), no
  key and no agent, and a missing TERMINAL_SSH_HOST, each with a clear tool error;
- connections: sshd killed in the middle of a call answers `degraded` at once and the
  first call after sshd is back works; a frozen (silent) server is detected by keepalives;
  nothing listening answers `degraded`; 16 concurrent calls on one environment;
- the remote side: `~` (the default cwd and in TERMINAL_CWD) is the remote home, a timeout
  leaves no process of the command behind, the script (and a sudo password in it) never
  shows on a remote command line, and a server that ends leaves nothing running remotely.

Each test gets its own sshd (/usr/sbin/sshd -D from Debian's openssh-server) on 127.0.0.1
and a free port, with a fresh host key, a fresh user key (ssh-keygen) and every file in a
temporary directory; it logs in as the current user (root here). `SetEnv` marks every
process sshd starts with SW_SSHD_TAG=<uuid>, which is how the tests find the processes
running "in the sandbox" even after they were reparented. Missing sshd or ssh-keygen is a
failure, never a skip. Standard library only. Run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_ssh.py [name-filter ...]
"""

import os
import pwd
import shutil
import signal
import socket
import stat
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

SSHD = "/usr/sbin/sshd"
KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
AGENT = shutil.which("ssh-agent") or "/usr/bin/ssh-agent"
ADD = shutil.which("ssh-add") or "/usr/bin/ssh-add"
USER = pwd.getpwuid(os.getuid()).pw_name
HOME = pwd.getpwuid(os.getuid()).pw_dir
TAG_VAR = "SW_SSHD_TAG"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def keygen(path, passphrase="", kind="ed25519"):
    subprocess.run([KEYGEN, "-q", "-t", kind, "-N", passphrase, "-C", "swtest", "-f", path],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return path


def fingerprint(pub):
    """OpenSSH's SHA256 fingerprint of a public key file."""
    out = subprocess.run([KEYGEN, "-l", "-E", "sha256", "-f", pub], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    return out.split()[1]


def read(path):
    with open(path) as f:
        return f.read()


def tagged(tag):
    """(pid, command line) of live processes whose environment holds SW_SSHD_TAG=tag."""
    needle = ("%s=%s" % (TAG_VAR, tag)).encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/stat" % name, "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out.append((int(name), cmd))
    return out


def descendants(root):
    """root and every process below it."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = swclient.proc_stat(int(name))
            if st:
                parent[int(name)] = st["ppid"]
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, pp in parent.items():
            if pp in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


class Sshd:
    """An OpenSSH server on 127.0.0.1 with its own keys and files in a temporary directory;
    `setenv` adds NAME=value pairs to what sshd sets in every session, `config` lines to its
    configuration."""

    def __init__(self, setenv=(), config=()):
        self.dir = tempfile.mkdtemp(prefix="swsshd-")
        os.chmod(self.dir, 0o700)
        self.tag = uuid.uuid4().hex
        self.port = free_port()
        self.host_key = keygen(os.path.join(self.dir, "host_ed25519"))
        self.user_key = keygen(os.path.join(self.dir, "id_ed25519"))
        self.authorized = os.path.join(self.dir, "authorized_keys")
        self.authorize(self.user_key)
        self.known_hosts = os.path.join(self.dir, "client", "known_hosts")
        self.log = os.path.join(self.dir, "sshd.log")
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port, "ListenAddress 127.0.0.1", "HostKey %s" % self.host_key,
                "AuthorizedKeysFile %s" % self.authorized, "StrictModes no", "UsePAM no",
                "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "PidFile none", "LogLevel VERBOSE",
                "MaxStartups 100", " ".join(["SetEnv %s=%s" % (TAG_VAR, self.tag), *setenv]), *config, ""]))
        self.proc = None
        self.start()

    def authorize(self, key):
        with open(self.authorized, "a") as f:
            f.write(read(key + ".pub"))

    def new_host_key(self):
        os.unlink(self.host_key)
        os.unlink(self.host_key + ".pub")
        keygen(self.host_key)

    def start(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privilege separation dir
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    if c.recv(64).startswith(b"SSH-2.0"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sshd did not start on port %d:\n%s" % (self.port, read(self.log)[-2000:]))

    def procs(self):
        """Command lines of the processes sshd started (the sandbox), sshd's own excluded."""
        return [cmd for _, cmd in tagged(self.tag)]

    def kill_matching(self, text):
        kill_pids(pid for pid, cmd in tagged(self.tag) if text in cmd)

    def sshd_pids(self):
        """sshd's own processes: the listener and one per connection."""
        return descendants(self.proc.pid) - {pid for pid, _ in tagged(self.tag)}

    def kill(self):
        """sshd dies with its connections (SIGKILL), as when the host goes down."""
        if self.proc and self.proc.poll() is None:
            kill_pids(self.sshd_pids())
            self.proc.wait(5)
        self.end_sessions()

    def end_sessions(self):
        """Ends what the sessions started: SIGTERM first, so that shells run their exit
        traps (a login shell's rc file may hold a lock, e.g. pyenv's rehash), then SIGKILL."""
        kill_pids((pid for pid, _ in tagged(self.tag)), signal.SIGTERM)
        if not wait_until(lambda: not tagged(self.tag), 3):
            kill_pids(pid for pid, _ in tagged(self.tag))

    def set_stopped(self, stopped):
        """Freezes sshd (not the sessions): the connection stays open but goes silent."""
        kill_pids(self.sshd_pids(), signal.SIGSTOP if stopped else signal.SIGCONT)

    def remove(self):
        if self.proc and self.proc.poll() is None:
            self.set_stopped(False)
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class SshTest(ServerTest):
    """Servers on the ssh backend, each test with its own sshd."""

    def setUp(self):
        super().setUp()
        for tool in (SSHD, KEYGEN):
            if not os.access(tool, os.X_OK):
                self.fail("%s is missing: install openssh-server and openssh-client" % tool)
        self.sshds = []
        self.cleanups = []
        self._sshd = None

    @property
    def sshd(self):
        if self._sshd is None:
            self._sshd = self.new_sshd()
        return self._sshd

    def new_sshd(self, config=()):
        d = Sshd(config=config)
        self.sshds.append(d)
        return d

    def ssh_env(self, d=None, **extra):
        d = d or self.sshd
        e = {"TERMINAL_ENV": "ssh", "TERMINAL_SSH_HOST": "127.0.0.1", "TERMINAL_SSH_PORT": str(d.port),
             "TERMINAL_SSH_USER": USER, "TERMINAL_SSH_KEY": d.user_key,
             "SHELLWIRE_KNOWN_HOSTS": d.known_hosts, "SSH_AUTH_SOCK": None}
        e.update(extra)
        return e

    def start_server(self, **env):
        s = self.start(env=self.ssh_env(**env))
        s.initialize()
        return s

    def sandbox_procs(self):
        return [c for d in self.sshds for c in d.procs()]

    def tearDown(self):
        try:
            super().tearDown()
            # Every server has ended: nothing it started may still run on the host.
            left = [] if wait_until(lambda: not self.sandbox_procs(), 10) else self.sandbox_procs()
            self.assertEqual(left, [], "processes left running on the ssh host after the server ended")
        finally:
            for fn in reversed(self.cleanups):
                fn()
            for d in self.sshds:
                d.remove()

    def assertDegraded(self, sc, *mentions):
        self.assertEqual(sc.get("status"), "degraded", sc)
        self.assertIsInstance(sc.get("error"), str, sc)
        for m in mentions:
            self.assertIn(m.lower(), sc["error"].lower(), sc)

    def tool_error(self, s, command="echo never-ran"):
        """Runs a command that must fail as a tool error (status "error"); returns the envelope."""
        r = s.call({"command": command}, timeout=30)
        return self.assertToolError(r)


class SshShared(SshTest, backend_suite.SharedBehaviour):
    """The shared list, each server working in a fresh directory on the (local) host."""

    def start_server(self, **env):
        wd = tempfile.mkdtemp(prefix="swssh-wd-")
        self.cleanups.append(lambda: shutil.rmtree(wd, ignore_errors=True))
        env.setdefault("TERMINAL_CWD", wd)
        return super().start_server(**env)


# ============================================================================ host keys

class HostKeyTests(SshTest):

    def test_unknown_host_recorded(self):
        d = self.sshd
        self.assertFalse(os.path.exists(os.path.dirname(d.known_hosts)))
        s = self.start_server()
        sc = s.run("echo first")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "first")
        self.assertTrue(os.path.isfile(d.known_hosts), "the host key was not recorded")
        self.assertEqual(stat.S_IMODE(os.stat(d.known_hosts).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(d.known_hosts)).st_mode), 0o700)
        lines = read(d.known_hosts).splitlines()
        kind, blob = read(d.host_key + ".pub").split()[:2]
        self.assertEqual(lines, ["[127.0.0.1]:%d %s %s" % (d.port, kind, blob)])
        # OpenSSH's own tools find it under the same name.
        found = subprocess.run([KEYGEN, "-F", "[127.0.0.1]:%d" % d.port, "-f", d.known_hosts],
                               stdout=subprocess.PIPE)
        self.assertEqual(found.returncode, 0, found)
        # A second server trusts the recorded key and adds nothing.
        s2 = self.start_server()
        self.assertOk(s2.run("echo second"))
        self.assertEqual(read(d.known_hosts).splitlines(), lines)

    def test_other_entries_kept(self):
        d = self.sshd
        os.makedirs(os.path.dirname(d.known_hosts))
        before = ("# a comment\n|1|c2FsdHNhbHRzYWx0c2FsdHNhbHQ=|aGFzaGhhc2hoYXNoaGFzaGhhc2g= ssh-ed25519 "
                  "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
                  "other.example sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t\n"
                  "no-newline.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
        with open(d.known_hosts, "w") as f:
            f.write(before)
        s = self.start_server()
        self.assertOk(s.run("true"))
        after = read(d.known_hosts)
        self.assertTrue(after.startswith(before + "\n"), after)
        self.assertEqual(after[len(before) + 1:].split()[0], "[127.0.0.1]:%d" % d.port)

    def test_changed_host_key_refused(self):
        d = self.sshd
        s = self.start_server()
        self.assertOk(s.run("true"))
        recorded = read(d.known_hosts)
        old_fp = fingerprint(d.host_key + ".pub")
        d.kill()
        d.new_host_key()
        d.start()
        new_fp = fingerprint(d.host_key + ".pub")
        self.assertNotEqual(old_fp, new_fp)
        marker = os.path.join(d.dir, "ran-%s" % uuid.uuid4().hex)
        s2 = self.start_server()
        sc = self.tool_error(s2, "touch %s" % marker)
        self.assertIn(new_fp, sc["error"])
        self.assertIn("changed", sc["error"].lower())
        self.assertIn(d.known_hosts, sc["error"])
        self.assertFalse(os.path.exists(marker), "the command ran on a host with a changed key")
        self.assertEqual(read(d.known_hosts), recorded, "the known_hosts file was changed")
        # Asking again does not accept it either.
        sc = self.tool_error(s2, "touch %s" % marker)
        self.assertIn(new_fp, sc["error"])
        self.assertFalse(os.path.exists(marker))


# ============================================================================ authentication

class AuthTests(SshTest):

    def test_missing_host(self):
        s = self.start_server(TERMINAL_SSH_HOST=None)
        sc = self.tool_error(s)
        self.assertIn("TERMINAL_SSH_HOST", sc["error"])

    def test_unknown_key_refused(self):
        other = keygen(os.path.join(self.sshd.dir, "not_authorized"))
        s = self.start_server(TERMINAL_SSH_KEY=other)
        sc = self.tool_error(s)
        self.assertIn("refused", sc["error"])
        self.assertIn(other, sc["error"])
        self.assertIn("publickey", sc["error"])

    def test_unreadable_key(self):
        missing = os.path.join(self.sshd.dir, "no-such-key")
        s = self.start_server(TERMINAL_SSH_KEY=missing)
        sc = self.tool_error(s)
        self.assertIn(missing, sc["error"])
        self.assertIn("TERMINAL_SSH_KEY", sc["error"])
        self.assertIn("No such file", sc["error"])

    def test_encrypted_key(self):
        d = self.sshd
        pw = "pass-%s" % uuid.uuid4().hex[:8]
        key = keygen(os.path.join(d.dir, "id_encrypted"), passphrase=pw)
        d.authorize(key)
        s = self.start_server(TERMINAL_SSH_KEY=key, TERMINAL_SSH_KEY_PASSPHRASE=pw)
        sc = s.run("echo unlocked")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "unlocked")
        s2 = self.start_server(TERMINAL_SSH_KEY=key)
        sc = self.tool_error(s2)
        self.assertIn("encrypted", sc["error"])
        self.assertIn("TERMINAL_SSH_KEY_PASSPHRASE", sc["error"])
        s3 = self.start_server(TERMINAL_SSH_KEY=key, TERMINAL_SSH_KEY_PASSPHRASE="wrong-" + pw)
        sc = self.tool_error(s3)
        self.assertIn("passphrase", sc["error"])
        self.assertIn(key, sc["error"])
        self.assertNotIn(pw, sc["error"])

    def start_agent(self):
        sock = os.path.join(self.sshd.dir, "agent.sock")
        agent = subprocess.Popen([AGENT, "-D", "-a", sock], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.cleanups.append(lambda: (agent.kill(), agent.wait(5)))
        self.assertTrue(wait_until(lambda: os.path.exists(sock), 5), "ssh-agent did not start")
        return sock

    def test_agent(self):
        if not os.access(AGENT, os.X_OK) or not os.access(ADD, os.X_OK):
            self.fail("ssh-agent/ssh-add are missing: install openssh-client")
        sock = self.start_agent()
        s = self.start_server(TERMINAL_SSH_KEY=None, SSH_AUTH_SOCK=sock)
        sc = self.tool_error(s)
        self.assertIn("holds no keys", sc["error"])
        subprocess.run([ADD, "-q", self.sshd.user_key], check=True, env=dict(os.environ, SSH_AUTH_SOCK=sock),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s2 = self.start_server(TERMINAL_SSH_KEY=None, SSH_AUTH_SOCK=sock)
        sc = s2.run("echo via-agent")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "via-agent")

    def test_no_key_no_agent(self):
        s = self.start_server(TERMINAL_SSH_KEY=None, SSH_AUTH_SOCK=None)
        sc = self.tool_error(s)
        self.assertIn("TERMINAL_SSH_KEY", sc["error"])
        self.assertIn("SSH_AUTH_SOCK", sc["error"])


# ============================================================================ connections

class ConnectionTests(SshTest):

    def test_nothing_listening(self):
        s = self.start(env=self.ssh_env(TERMINAL_SSH_PORT=str(free_port())))
        s.initialize()
        t0 = time.monotonic()
        sc = s.run("echo x")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertDegraded(sc, "connection refused")

    def test_sshd_killed_mid_call_then_back(self):
        d = self.sshd
        s = self.start_server()
        self.assertOk(s.run("export SW_KEEP=kept"))
        tag = "41%d" % (uuid.uuid4().int % 10000)
        rid = s.send_call({"command": "echo started; sleep %s" % tag, "timeout": 120})
        self.assertTrue(wait_until(lambda: any("sleep " + tag in c for c in d.procs()), 15),
                        "the command never started")
        t0 = time.monotonic()
        d.kill()
        r = s.wait_response(rid, 30)
        took = time.monotonic() - t0
        sc = r["result"]["structuredContent"]
        self.assertLess(took, 5, "the call hung %.1fs after sshd died" % took)
        self.assertDegraded(sc, "connection")
        # While it is down, calls answer degraded at once.
        t0 = time.monotonic()
        self.assertDegraded(s.run("echo x"), "refused")
        self.assertLess(time.monotonic() - t0, 5)
        d.start()
        sc = s.run("echo back; echo $SW_KEEP")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "back\nkept")
        self.assertEqual(s.run("echo again")["output"], "again")

    def test_silent_server_detected(self):
        """A server that stops answering (frozen, network gone) without closing the
        connection is found out by keepalives instead of hanging the call."""
        d = self.sshd
        s = self.start_server()
        self.assertOk(s.run("true"))
        tag = "43%d" % (uuid.uuid4().int % 10000)
        rid = s.send_call({"command": "sleep %s" % tag, "timeout": 300})
        self.assertTrue(wait_until(lambda: any("sleep " + tag in c for c in d.procs()), 15))
        d.set_stopped(True)
        t0 = time.monotonic()
        try:
            r = s.wait_response(rid, 45)
        finally:
            d.set_stopped(False)
        took = time.monotonic() - t0
        self.assertDegraded(r["result"]["structuredContent"], "no answer")
        self.assertLess(took, 30)
        sc = s.run("echo alive")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "alive")
        d.kill_matching("sleep " + tag)   # the lost call's command: nobody can reach it any more

    def test_16_concurrent_calls(self):
        s = self.start_server(SHELLWIRE_ORDER_WAIT="0")
        self.assertOk(s.run("true"))
        results = {}

        def one(i):
            results[i] = s.run("echo start-%d; sleep 2; echo end-%d" % (i, i), timeout=60, wait=90)

        t0 = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        took = time.monotonic() - t0
        for i in range(16):
            sc = results.get(i)
            self.assertIsNotNone(sc, "call %d never answered" % i)
            self.assertOk(sc)
            self.assertEqual(sc["output"], "start-%d\nend-%d" % (i, i))
        # One after the other would take 32 s.
        self.assertLess(took, 16, "16 concurrent 2-second calls took %.1fs" % took)

    def test_server_allows_few_channels(self):
        """A server with a lower MaxSessions than the transport assumes: calls beyond it
        wait for a channel or use another connection, and all of them answer."""
        self._sshd = self.new_sshd(config=["MaxSessions 2"])
        s = self.start_server(SHELLWIRE_ORDER_WAIT="0")
        self.assertOk(s.run("true"))
        results = {}

        def one(i):
            results[i] = s.run("sleep 1; echo n%d" % i, timeout=60, wait=90)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i in range(6):
            self.assertIsNotNone(results.get(i), "call %d never answered" % i)
            self.assertOk(results[i])
            self.assertEqual(results[i]["output"], "n%d" % i)

    def test_no_bash_on_the_host(self):
        """Every command fails before bash starts (here sshd forces another command): a
        clear tool error with what the host said, not a hang."""
        self._sshd = self.new_sshd(config=["ForceCommand echo this host runs no shell >&2; exit 3"])
        s = self.start_server()
        sc = self.tool_error(s)
        self.assertIn("did not start bash", sc["error"])
        self.assertIn("this host runs no shell", sc["error"])


# ============================================================================ the remote side

class RemoteTests(SshTest):

    def test_home_is_the_default_cwd(self):
        s = self.start_server(TERMINAL_SSH_USER=None, USER=USER)
        sc = s.run("pwd")
        self.assertOk(sc)
        self.assertEqual(sc["output"], HOME)
        sub = "swssh-%s" % uuid.uuid4().hex[:10]
        os.mkdir(os.path.join(HOME, sub))
        self.cleanups.append(lambda: shutil.rmtree(os.path.join(HOME, sub), ignore_errors=True))
        s2 = self.start_server(TERMINAL_CWD="~/" + sub)
        sc = s2.run("pwd")
        self.assertOk(sc)
        self.assertEqual(sc["output"], os.path.join(HOME, sub))

    def test_timeout_kills_remote_tree(self):
        d = self.sshd
        s = self.start_server()
        tag = "42%d" % (uuid.uuid4().int % 10000)
        t0 = time.monotonic()
        sc = s.run("echo before; (sleep %s; echo x) & bash -c 'sleep %s & sleep %s'" % (tag, tag, tag), timeout=1)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(sc["exit_code"], 124, sc)
        self.assertIn("before", sc["output"])
        self.assertIn("[Command timed out after 1s]", sc["output"])
        gone = wait_until(lambda: not [c for c in d.procs() if "sleep " + tag in c], 5)
        self.assertTrue(gone, "survivors on the host: %r" % d.procs())
        self.assertEqual(s.run("echo usable")["output"], "usable")

    def test_script_not_on_command_line(self):
        d = self.sshd
        secret = "swsecret-%s" % uuid.uuid4().hex
        password = "swpw-%s" % uuid.uuid4().hex
        s = self.start_server(SUDO_PASSWORD=password)
        rid = s.send_call({"command": "echo %s >/dev/null; sudo -n true 2>/dev/null; sleep 3" % secret, "timeout": 30})
        self.assertTrue(wait_until(lambda: any("sleep 3" in c for c in d.procs()), 15))
        seen = d.procs()
        for needle in (secret, password):
            self.assertFalse([c for c in seen if needle in c], "%s shows on a command line: %r" % (needle, seen))
        s.wait_response(rid, 30)

    def test_server_end_leaves_nothing(self):
        d = self.sshd
        s = self.start_server()
        self.assertOk(s.run("echo up"))
        s.background("sleep 301")
        self.assertTrue(wait_until(lambda: any("sleep 301" in c for c in d.procs()), 15))
        t0 = time.monotonic()
        code = s.stop()
        self.assertLess(time.monotonic() - t0, 3, "the server took long to end")
        self.assertEqual(code, 0)
        self.assertTrue(wait_until(lambda: not d.procs(), 5), "left on the host: %r" % d.procs())


if __name__ == "__main__":
    swclient.main()
