"""A private Docker daemon and a small local image for the docker backend's tests and
benchmark (Python standard library only).

`Dockerd` starts Debian's `dockerd` (package docker.io) with everything of its own in a
temporary directory: data root, exec root, pidfile, config file, unix socket, and its own
containerd namespaces. It touches no host networking (no bridge, no iptables rules), so it
never disturbs another daemon on the machine, and it can be stopped and started again on
the same directories (the tests of an unreachable daemon do that). `close()` stops it,
kills whatever of it survived (containerd, shims), unmounts what it left mounted and
removes the directory.

`build_image()` makes the test image without any registry: a root filesystem assembled
from this host's bash, dash, coreutils, grep, sed, findutils, mawk and util-linux's setsid
(no procps), their shared libraries (from ldd), the C.UTF-8 locale, /etc/passwd,
/etc/group, /root and /tmp,
imported through the Engine API (image create from a tarball). The image's entrypoint is
/bin/false, so a container that does not replace it exits at once.

`shared()` gives one daemon with the image built for the whole test process (started on
first use, stopped at exit); it raises with the daemon's log when it cannot start.
`API` is a minimal Engine API client over the unix socket.
"""

import atexit
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
import uuid

IMAGE = "shellwire-test:1"
API_VERSION = "v1.41"
LABEL = "io.shellwire."

LOCALE = "/usr/lib/locale/C.utf8"
TOOLS = ["bash", "dash", "sh", "grep", "sed", "find", "xargs", "mawk", "awk", "setsid"]


class DockerError(RuntimeError):
    pass


# ---------------------------------------------------------------------------- Engine API

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class API:
    """Requests to the daemon at a unix socket (paths get the API version prefix unless
    versioned=False)."""

    def __init__(self, sock):
        self.sock = sock

    def request(self, method, path, body=None, headers=None, timeout=30, versioned=True):
        """Returns (status, body bytes). body: bytes (sent as is) or a JSON value."""
        conn = _UnixConnection(self.sock, timeout)
        try:
            h = dict(headers or {})
            data = None
            if body is not None:
                if isinstance(body, (bytes, bytearray)):
                    data = body
                else:
                    data = json.dumps(body).encode()
                    h.setdefault("Content-Type", "application/json")
            conn.request(method, ("/" + API_VERSION if versioned else "") + path, body=data, headers=h)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, timeout=30):
        status, data = self.request(method, path, body, timeout=timeout)
        try:
            value = json.loads(data) if data else None
        except ValueError:
            value = data.decode(errors="replace")
        return status, value

    def ping(self, timeout=2):
        try:
            status, data = self.request("GET", "/_ping", timeout=timeout, versioned=False)
        except OSError:
            return False
        return status == 200 and data == b"OK"

    def containers(self, labels=(), all=True):
        """Containers (list entries) carrying every label of `labels` ("key=value" or "key")."""
        q = {"all": "true" if all else "false"}
        if labels:
            q["filters"] = json.dumps({"label": list(labels)})
        status, value = self.json("GET", "/containers/json?" + urllib.parse.urlencode(q))
        if status != 200:
            raise DockerError("container list: HTTP %d %r" % (status, value))
        return value

    def inspect(self, cid):
        status, value = self.json("GET", "/containers/%s/json" % cid)
        if status == 404:
            return None
        if status != 200:
            raise DockerError("inspect %s: HTTP %d %r" % (cid, status, value))
        return value

    def top(self, cid):
        """Command lines of the processes running in the container."""
        status, value = self.json("GET", "/containers/%s/top?%s" % (cid, urllib.parse.urlencode({"ps_args": "-eo pid,args"})))
        if status != 200:
            raise DockerError("top %s: HTTP %d %r" % (cid, status, value))
        col = value["Titles"].index("COMMAND") if "COMMAND" in value["Titles"] else len(value["Titles"]) - 1
        return [row[col] for row in value.get("Processes") or []]

    def remove(self, cid):
        status, value = self.json("DELETE", "/containers/%s?force=true&v=true" % cid)
        if status not in (204, 404):
            raise DockerError("remove %s: HTTP %d %r" % (cid, status, value))

    def create(self, body, name=None):
        path = "/containers/create" + ("?name=" + name if name else "")
        status, value = self.json("POST", path, body)
        if status != 201:
            raise DockerError("create: HTTP %d %r" % (status, value))
        return value["Id"]

    def start(self, cid):
        status, value = self.json("POST", "/containers/%s/start" % cid)
        if status not in (204, 304):
            raise DockerError("start %s: HTTP %d %r" % (cid, status, value))

    def stop(self, cid, t=1):
        status, value = self.json("POST", "/containers/%s/stop?t=%d" % (cid, t), timeout=t + 30)
        if status not in (204, 304):
            raise DockerError("stop %s: HTTP %d %r" % (cid, status, value))

    def exec_run(self, cid, argv, timeout=30):
        """Runs argv in the container; returns (exit code, stdout+stderr bytes)."""
        status, value = self.json("POST", "/containers/%s/exec" % cid,
                                  {"AttachStdout": True, "AttachStderr": True, "Cmd": argv})
        if status != 201:
            raise DockerError("exec create: HTTP %d %r" % (status, value))
        eid = value["Id"]
        status, data = self.request("POST", "/exec/%s/start" % eid, {"Detach": False, "Tty": False},
                                    timeout=timeout)
        out = bytearray()
        i = 0
        while i + 8 <= len(data):
            n = int.from_bytes(data[i + 4:i + 8], "big")
            out += data[i + 8:i + 8 + n]
            i += 8 + n
        status, value = self.json("GET", "/exec/%s/json" % eid)
        return value.get("ExitCode"), bytes(out)


# ---------------------------------------------------------------------------- the daemon

def _mounts_under(root):
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == root or mp.startswith(root + "/"):
                points.append(mp)
    return sorted(points, key=len, reverse=True)


def _procs_mentioning(needle):
    """Pids of processes whose command line mentions needle (bytes)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                if needle in f.read():
                    pids.append(int(name))
        except OSError:
            pass
    return pids


class Dockerd:
    """One private dockerd. Use start()/stop() (restartable) and close() at the end."""

    def __init__(self):
        self.binary = shutil.which("dockerd") or "/usr/sbin/dockerd"
        self.dir = tempfile.mkdtemp(prefix="swdockerd-")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.host = "unix://" + self.sock
        self.log_path = os.path.join(self.dir, "dockerd.log")
        self.ns = "swtest-" + uuid.uuid4().hex[:10]
        self.proc = None
        self.api = API(self.sock)
        with open(os.path.join(self.dir, "daemon.json"), "w") as f:
            f.write("{}\n")

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def start(self, timeout=60):
        if not os.access(self.binary, os.X_OK):
            raise DockerError("dockerd is not installed (Debian: apt-get install docker.io)")
        cmd = [self.binary,
               "--config-file", os.path.join(self.dir, "daemon.json"),
               "--data-root", os.path.join(self.dir, "data"),
               "--exec-root", os.path.join(self.dir, "exec"),
               "--pidfile", os.path.join(self.dir, "dockerd.pid"),
               "--host", self.host,
               "--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
               "--userland-proxy=false",
               "--containerd-namespace", self.ns,
               "--containerd-plugins-namespace", self.ns + "-plugins"]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DockerError("dockerd exited with %s during start; log:\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            if self.api.ping(timeout=1):
                return self
            time.sleep(0.1)
        self.stop()
        raise DockerError("dockerd did not answer /_ping within %ds; log:\n%s" % (timeout, self.log_tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=40):
        """Stops the daemon (its containers stop with it) and whatever it left running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        for pid in _procs_mentioning(self.dir.encode()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def close(self):
        self.stop()
        for mp in _mounts_under(self.dir):
            subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def containers_of(self, server_pid):
        """Containers (any state) a shellwire server with this pid created."""
        return self.api.containers([LABEL + "managed=1", "%sserver-pid=%d" % (LABEL, server_pid)])

    def cli_env(self):
        """Environment for the docker CLI against this daemon."""
        e = dict(os.environ)
        e["DOCKER_HOST"] = self.host
        e.pop("DOCKER_CONTEXT", None)
        return e


# ---------------------------------------------------------------------------- the image

def _canonical(path):
    """Path inside the image for a host path (merged /usr: /bin, /lib... live under /usr)."""
    p = os.path.normpath(path)
    for top in ("/bin", "/sbin", "/lib", "/lib64"):
        if p == top or p.startswith(top + "/"):
            p = "/usr" + p
    return p.lstrip("/")


def _coreutils():
    try:
        out = subprocess.run(["dpkg", "-L", "coreutils"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        out = ""
    paths = [p for p in out.split() if re.search(r"/s?bin/[^/]+$", p) and os.path.exists(p)]
    if not paths:
        raise DockerError("cannot list coreutils (dpkg -L coreutils)")
    return paths


def _libraries(binary):
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode()
    libs = []
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def rootfs_tar(with_bash=True):
    """The image's root filesystem as tar bytes (without bash and sh if asked: an image
    that cannot run shellwire's scripts)."""
    files = set(_coreutils())
    for tool in TOOLS if with_bash else []:
        p = shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if not p:
            raise DockerError("the test image needs %s on this host" % tool)
        files.add(p)
    for f in list(files):
        files.update(_libraries(os.path.realpath(f)))
    for root, _, names in os.walk(LOCALE):     # a UTF-8 locale, for commands that set LANG
        files.update(os.path.join(root, n) for n in names)
    buf = io.BytesIO()
    now = int(time.time())

    def add_dir(tf, name, mode=0o755):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, now
        tf.addfile(ti)

    def add_bytes(tf, name, data, mode=0o644):
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = len(data), mode, now
        tf.addfile(ti, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w") as tf:
        dirs = {"usr", "usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "proc", "sys", "dev",
                "home", "var", "var/tmp", "run"}
        for f in files:
            d = os.path.dirname(_canonical(f))
            while d:
                dirs.add(d)
                d = os.path.dirname(d)
        for d in sorted(dirs):
            add_dir(tf, d)
        add_dir(tf, "root", 0o700)
        add_dir(tf, "tmp", 0o1777)
        for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
            ti = tarfile.TarInfo(link)
            ti.type, ti.linkname, ti.mtime = tarfile.SYMTYPE, target, now
            tf.addfile(ti)
        for name, f in sorted({_canonical(f): f for f in files}.items()):
            real = os.path.realpath(f)
            with open(real, "rb") as fh:
                add_bytes(tf, name, fh.read(), os.stat(real).st_mode & 0o7777)
        add_bytes(tf, "etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"
                                    b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        add_bytes(tf, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def build_image(api, name=IMAGE, with_bash=True):
    """Imports the test image into the daemon (no registry involved)."""
    q = urllib.parse.urlencode([("fromSrc", "-"), ("repo", name),
                                ("changes", 'ENTRYPOINT ["/bin/false"]'),
                                ("changes", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")])
    status, data = api.request("POST", "/images/create?" + q, rootfs_tar(with_bash),
                               headers={"Content-Type": "application/x-tar"}, timeout=120)
    if status != 200 or b'"error"' in data:
        raise DockerError("image import failed: HTTP %d %s" % (status, data[-500:].decode(errors="replace")))
    status, _ = api.request("GET", "/images/%s/json" % urllib.parse.quote(name))
    if status != 200:
        raise DockerError("the imported image %s is not there (HTTP %d)" % (name, status))
    return name


# ---------------------------------------------------------------------------- shared

_shared = None
_shared_error = None


def shared():
    """The test process's daemon with the test image (started once; stopped at exit)."""
    global _shared, _shared_error
    if _shared_error is not None:
        raise DockerError(_shared_error)
    if _shared is None:
        d = Dockerd()
        atexit.register(d.close)
        try:
            d.start()
            build_image(d.api)
        except Exception as ex:  # noqa: BLE001 - every reason is reported to each test
            _shared_error = "cannot provide a Docker daemon for the tests: %s" % ex
            d.close()
            raise DockerError(_shared_error)
        _shared = d
    if not _shared.running():
        _shared.start()
    return _shared
