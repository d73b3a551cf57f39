#!/usr/bin/env python3
"""A local stand-in for the Modal tool gateway (the HTTP API of shellwire's `modal`
backend, docs/backends.md), for tests and benchmarks. Python 3 standard library only.

    python3 tests/standins/modal_gateway.py [--token T] [--port-file F]
                                             [--exit-on-stdin-eof] [--verbose]

It listens on 127.0.0.1 on a free port and prints the port number on the first line of
stdout (and writes it to --port-file). It exits on SIGTERM/SIGINT (or, with
--exit-on-stdin-eof, when its stdin closes: a test that dies cannot leave it behind),
killing every process its sandboxes still run and removing their directories.

The API, as documented for the gateway:

    POST /v1/sandboxes                          create (x-idempotency-key: same key, same id)
    POST /v1/sandboxes/{id}/execs               start an exec under the client's execId
    GET  /v1/sandboxes/{id}/execs/{execId}      poll: running, then completed / failed /
                                                cancelled / timeout with output + returncode
    POST /v1/sandboxes/{id}/execs/{execId}/cancel
    POST /v1/sandboxes/{id}/terminate           {"snapshotBeforeTerminate": bool}

Every request needs `Authorization: Bearer <token>` (else 401 {"error": ...}); a request
with a body needs `Content-Type: application/json` (else 415) and a JSON object with the
documented fields of the documented types and no others (else 400). Errors are
{"error": "..."}.

A sandbox is a private directory holding root/ and tmp/. Commands really run: `bash -c
<command>` under bwrap (required) with root/ mounted on /root (HOME) and tmp/ on /tmp,
everything else shared with the host, so that commands that use /root or /tmp never touch
this host's. Every process of a sandbox carries MODAL_STANDIN_SANDBOX in its
environment (terminate and the process listing find them by it); an exec starts a session
of its own, and cancel and timeout kill that session (an environment variable would not
do: shellwire's snapshot re-exports the one of the exec that took it). An exec runs asynchronously: a poll shows `running` with the
output so far (a prefix that only grows, never splitting a UTF-8 character) until its main
process exits; a grandchild still holding the output pipe does not keep it running.
`timeoutMs` ends it with status `timeout` and returncode 124. A persistent sandbox
(persistentFilesystem) terminated with snapshotBeforeTerminate leaves its files to the next
sandbox created with the same logicalKey.

Control endpoints for tests (no auth, never recorded):

    GET  /_control/requests       {"requests": [{t, method, path, headers, body, json, fault}]}
                                  headers with lower-case names; t is time.monotonic()
    POST /_control/clear          forget the recorded requests
    POST /_control/fault          add a fault rule (below); /_control/faults/clear drops all
    POST /_control/reap           {"id": optional} a sandbox vanishes (all of them without id):
                                  its processes are killed and every later call about it is 404
    POST /_control/token          {"token": "..."} the token accepted from now on
    GET  /_control/sandboxes      {"sandboxes": [{id, state, body, key, execs}]}
    GET  /_control/procs          {"procs": [{pid, sandbox, exec, cmdline}]} live processes
                                  (exec: the one whose session holds it, else "")

A fault rule applies to the next `times` (default 1) requests whose method equals `method`
(any if absent) and whose path matches the regular expression `path` (re.search):
`delay` seconds first, then `status` (with `body`, JSON or text, and `headers`, e.g.
{"Retry-After": "1"}), or `malformed` (200 with a body that is not JSON), or `drop`
(close the connection without an answer); with only `delay` the request then proceeds
normally.
"""

import argparse
import codecs
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SANDBOX_VAR = "MODAL_STANDIN_SANDBOX"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TERMINAL = ("completed", "failed", "cancelled", "timeout")
DRAIN_S = 0.05          # output still read after the main process exited

# name -> (accepted types, required)
NUMBER = (int, float)
CREATE_FIELDS = {
    "image": (str, True), "cwd": (str, True), "cpu": (NUMBER, True),
    "memoryMiB": (NUMBER, True), "timeoutMs": (int, True), "idleTimeoutMs": (int, True),
    "persistentFilesystem": (bool, True), "logicalKey": (str, True), "diskMiB": (NUMBER, False),
}
EXEC_FIELDS = {
    "execId": (str, True), "command": (str, True), "cwd": (str, False),
    "timeoutMs": (int, False), "stdinData": (str, False),
}
TERMINATE_FIELDS = {"snapshotBeforeTerminate": (bool, True)}


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def check_fields(body, spec):
    """Raises ApiError(400) unless body is an object with exactly the fields of spec."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    for name in body:
        if name not in spec:
            raise ApiError(400, "unknown field %r" % name)
    for name, (types, required) in spec.items():
        if name not in body:
            if required:
                raise ApiError(400, "missing field %r" % name)
            continue
        v = body[name]
        # bool is an int in Python; neither numbers nor strings accept it.
        if (isinstance(v, bool) and types is not bool) or not isinstance(v, types):
            raise ApiError(400, "field %r has the wrong type" % name)


# ---------------------------------------------------------------------------- processes

def scan_procs():
    """Live (non-zombie) processes: dicts with pid, session, sandbox (the value of
    SANDBOX_VAR in their environment, or None) and cmdline."""
    key = SANDBOX_VAR.encode() + b"="
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = [c.decode(errors="replace") for c in f.read().split(b"\0") if c]
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if fields[0] in (b"Z", b"X"):
            continue
        marker = next((e[len(key):].decode(errors="replace") for e in env if e.startswith(key)), None)
        out.append({"pid": int(name), "session": int(fields[3]), "sandbox": marker, "cmdline": cmd})
    return out


def kill_where(pred, limit=3.0):
    """SIGKILLs every process for which pred(proc dict) holds, until none is left."""
    end = time.monotonic() + limit
    while True:
        victims = [p["pid"] for p in scan_procs() if pred(p)]
        if not victims or time.monotonic() > end:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


# ---------------------------------------------------------------------------- model

class Exec:
    def __init__(self, sandbox, exec_id, body):
        self.sandbox, self.id, self.body = sandbox, exec_id, body
        self.lock = threading.Lock()
        self.chunks = []            # decoded output pieces
        self.joined = ""            # cache of "".join(chunks)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.status = "running"
        self.returncode = None
        self.forced = None          # "cancelled" or "timeout" once decided
        self.proc = None
        self.timer = None

    def state(self):
        with self.lock:
            if self.chunks:
                self.joined += "".join(self.chunks)
                self.chunks = []
            d = {"execId": self.id, "status": self.status, "output": self.joined}
            if self.status in TERMINAL:
                d["returncode"] = self.returncode
            return d

    def start(self):
        sb = self.sandbox
        cwd = self.body.get("cwd") or sb.cwd
        env = {"PATH": PATH, "LANG": "C.UTF-8", SANDBOX_VAR: sb.marker}
        command = ["bash", "-c", self.body["command"]]
        env["HOME"] = "/root"
        if not os.path.isdir(sb.host_path(cwd)):
            raise ApiError(400, "cwd %r does not exist in the sandbox" % cwd)
        argv = [sb.gw.bwrap, "--dev-bind", "/", "/", "--bind", sb.root, "/root",
                "--bind", sb.tmp, "/tmp", "--chdir", cwd, "--"] + command
        stdin_data = self.body.get("stdinData")
        self.proc = subprocess.Popen(
            argv, cwd="/", env=env, start_new_session=True,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with sb.gw.lock:
            sb.gw.leaders[self.proc.pid] = self.id
        if stdin_data is not None:
            threading.Thread(target=self._feed, args=(stdin_data.encode(),), daemon=True).start()
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        threading.Thread(target=self._wait, args=(reader,), daemon=True).start()
        limit = self.body.get("timeoutMs")
        if limit:
            self.timer = threading.Timer(limit / 1000.0, self.stop, args=("timeout",))
            self.timer.daemon = True
            self.timer.start()

    def _feed(self, data):
        try:
            self.proc.stdin.write(data)
        except OSError:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                b = os.read(fd, 65536)
            except OSError:
                b = b""
            with self.lock:
                if not b:
                    self.chunks.append(self.decoder.decode(b"", final=True))
                    break
                self.chunks.append(self.decoder.decode(b))
        self.proc.stdout.close()

    def _wait(self, reader):
        rc = self.proc.wait()
        if self.timer:
            self.timer.cancel()
        reader.join(DRAIN_S)
        with self.lock:
            if self.forced == "timeout":
                self.status, self.returncode = "timeout", 124
            else:
                self.status = self.forced or "completed"
                self.returncode = 128 - rc if rc < 0 else rc

    def stop(self, why):
        """Ends a running exec as cancelled or timed out (its whole tree)."""
        with self.lock:
            if self.status != "running" or self.forced:
                return False
            self.forced = why
        # The exec's processes: its session (it leads one), whatever they export.
        kill_where(lambda p: p["session"] == self.proc.pid)
        return True


class Sandbox:
    def __init__(self, gw, sid, body, key):
        self.gw, self.id, self.body, self.key = gw, sid, body, key
        self.state = "running"
        self.execs = {}
        self.marker = "%s:%s" % (gw.nonce, sid)
        self.dir = tempfile.mkdtemp(prefix="modal-standin-%s-" % sid)
        self.root = os.path.join(self.dir, "root")
        self.tmp = os.path.join(self.dir, "tmp")
        saved = gw.snapshots.get(body["logicalKey"]) if body["persistentFilesystem"] else None
        if saved:
            shutil.copytree(os.path.join(saved, "root"), self.root, symlinks=True)
        else:
            os.mkdir(self.root)
        os.mkdir(self.tmp)
        os.chmod(self.tmp, 0o1777)
        self.cwd = body["cwd"]
        os.makedirs(self.host_path(self.cwd), exist_ok=True)

    def host_path(self, path):
        """Where a path of the sandbox lives on this host."""
        for inside, outside in (("/root", self.root), ("/tmp", self.tmp)):
            if path == inside or path.startswith(inside + "/"):
                return outside + path[len(inside):]
        return path

    def kill_all(self):
        for ex in list(self.execs.values()):
            if ex.proc:
                ex.stop("cancelled")
        kill_where(lambda p: p["sandbox"] == self.marker)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Gateway:
    def __init__(self, token, bwrap):
        self.token = token
        self.bwrap = bwrap
        self.nonce = secrets.token_hex(4)
        self.lock = threading.Lock()
        self.sandboxes = {}
        self.keys = {}              # idempotency key -> sandbox id
        self.snapshots = {}         # logicalKey -> directory
        self.leaders = {}           # pid of an exec's first process (its session) -> execId
        self.requests = []
        self.faults = []
        self.snapdir = tempfile.mkdtemp(prefix="modal-standin-snapshots-")

    # ---- API

    def create(self, headers, body):
        key = headers.get("x-idempotency-key", "")
        if not key:
            raise ApiError(400, "missing x-idempotency-key header")
        check_fields(body, CREATE_FIELDS)
        if not body["cwd"].startswith("/"):
            raise ApiError(400, "cwd must be an absolute path")
        with self.lock:
            if key in self.keys:
                return 200, {"id": self.keys[key]}
            sid = "sb-" + secrets.token_hex(8)
            self.sandboxes[sid] = Sandbox(self, sid, body, key)
            self.keys[key] = sid
        return 200, {"id": sid}

    def sandbox(self, sid):
        with self.lock:
            sb = self.sandboxes.get(sid)
        if not sb or sb.state != "running":
            raise ApiError(404, "sandbox not found")
        return sb

    def start_exec(self, sid, body):
        check_fields(body, EXEC_FIELDS)
        if not body["execId"] or not body["command"]:
            raise ApiError(400, "execId and command must not be empty")
        if body.get("timeoutMs") is not None and body["timeoutMs"] <= 0:
            raise ApiError(400, "timeoutMs must be positive")
        sb = self.sandbox(sid)
        with self.lock:
            ex = sb.execs.get(body["execId"])
            if ex is None:
                ex = sb.execs[body["execId"]] = Exec(sb, body["execId"], body)
                fresh = True
            else:
                fresh = False
        if fresh:
            try:
                ex.start()
            except ApiError:
                with self.lock:
                    del sb.execs[ex.id]
                raise
        st = ex.state()
        return (202 if st["status"] == "running" else 200), st

    def find_exec(self, sid, eid):
        sb = self.sandbox(sid)
        ex = sb.execs.get(eid)
        if ex is None:
            raise ApiError(404, "exec not found")
        return ex

    def poll_exec(self, sid, eid):
        return 200, self.find_exec(sid, eid).state()

    def cancel_exec(self, sid, eid, body):
        if body is not None:
            check_fields(body, {})
        ex = self.find_exec(sid, eid)
        if ex.stop("cancelled"):
            return 202, {"status": "cancelling"}
        return 200, {"status": ex.status}

    def terminate(self, sid, body):
        check_fields(body, TERMINATE_FIELDS)
        with self.lock:
            sb = self.sandboxes.get(sid)
        if sb is None:
            raise ApiError(404, "sandbox not found")
        if sb.state == "running":
            sb.state = "terminated"
            sb.kill_all()
            if body["snapshotBeforeTerminate"] and sb.body["persistentFilesystem"]:
                dest = os.path.join(self.snapdir, secrets.token_hex(6))
                shutil.copytree(sb.dir, dest, symlinks=True)
                self.snapshots[sb.body["logicalKey"]] = dest
            sb.remove()
        return 200, {"status": "terminated"}

    # ---- control

    def reap(self, sid=None):
        with self.lock:
            victims = [s for s in self.sandboxes.values() if sid is None or s.id == sid]
            for s in victims:
                del self.sandboxes[s.id]
        for s in victims:
            s.kill_all()
            s.remove()
        return {"reaped": [s.id for s in victims]}

    def procs(self):
        """The processes of this gateway's sandboxes (bwrap itself left out), each with the
        exec whose session it belongs to ("" once it left that session)."""
        mine = self.nonce + ":"
        with self.lock:
            leaders = dict(self.leaders)
        return [{"pid": p["pid"], "sandbox": p["sandbox"][len(mine):],
                 "exec": leaders.get(p["session"], ""), "cmdline": p["cmdline"]}
                for p in scan_procs()
                if (p["sandbox"] or "").startswith(mine)
                and not (p["cmdline"] and os.path.basename(p["cmdline"][0]) == "bwrap")]

    def listing(self):
        with self.lock:
            return [{"id": s.id, "state": s.state, "body": s.body, "key": s.key,
                     "execs": list(s.execs)} for s in self.sandboxes.values()]

    def take_fault(self, method, path):
        with self.lock:
            for rule in self.faults:
                if rule.get("method", method) == method and re.search(rule.get("path", ""), path):
                    rule["times"] = rule.get("times", 1) - 1
                    if rule["times"] <= 0:
                        self.faults.remove(rule)
                    return rule
        return None

    def shutdown(self):
        with self.lock:
            boxes = list(self.sandboxes.values())
            self.sandboxes.clear()
        for s in boxes:
            s.kill_all()
            s.remove()
        kill_where(lambda p: (p["sandbox"] or "").startswith(self.nonce + ":"))
        shutil.rmtree(self.snapdir, ignore_errors=True)


# ---------------------------------------------------------------------------- HTTP

ROUTES = [
    ("POST", re.compile(r"^/v1/sandboxes$"), "create"),
    ("POST", re.compile(r"^/v1/sandboxes/([^/]+)/execs$"), "start"),
    ("GET", re.compile(r"^/v1/sandboxes/([^/]+)/execs/([^/]+)$"), "poll"),
    ("POST", re.compile(r"^/v1/sandboxes/([^/]+)/execs/([^/]+)/cancel$"), "cancel"),
    ("POST", re.compile(r"^/v1/sandboxes/([^/]+)/terminate$"), "terminate"),
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as a real gateway
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall
    gw = None                       # set in main
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("modal-standin: " + (fmt % args) + "\n")

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")

    # ---- plumbing

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send(self, status, payload, headers=None, raw=None):
        data = raw if raw is not None else (
            payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        try:
            self.send_response(status)
            ctype = "text/plain" if isinstance(payload, str) or raw is not None else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def dispatch(self, method):
        path = self.path.split("?", 1)[0]
        raw = self.read_body()
        if path.startswith("/_control/"):
            return self.control(method, path, raw)
        text = raw.decode("utf-8", errors="replace") if raw else None
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        rec = {"t": time.monotonic(), "method": method, "path": path,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": text, "json": parsed, "fault": False}
        with self.gw.lock:
            self.gw.requests.append(rec)
        rule = self.gw.take_fault(method, path)
        if rule:
            rec["fault"] = True
            if rule.get("delay"):
                time.sleep(rule["delay"])
            if rule.get("drop"):
                self.close_connection = True
                return
            if rule.get("malformed"):
                return self.send(200, None, raw=b'{"status": "running", "output": "trunc')
            if rule.get("status"):
                body = rule.get("body", {"error": "injected failure (HTTP %d)" % rule["status"]})
                return self.send(rule["status"], body, rule.get("headers"))
        try:
            status, payload = self.api(method, path, raw)
        except ApiError as e:
            status, payload = e.status, {"error": str(e)}
        self.send(status, payload)

    def api(self, method, path, raw):
        if self.headers.get("Authorization") != "Bearer " + self.gw.token:
            raise ApiError(401, "unauthorized: missing or invalid bearer token")
        body = None
        if raw:
            if not self.headers.get("Content-Type", "").lower().startswith("application/json"):
                raise ApiError(415, "the body must be application/json")
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                raise ApiError(400, "the body is not valid JSON")
        for m, rx, name in ROUTES:
            match = rx.match(path)
            if not match:
                continue
            if m != method:
                raise ApiError(405, "method not allowed")
            args = match.groups()
            if name == "create":
                return self.gw.create({k.lower(): v for k, v in self.headers.items()}, body)
            if name == "start":
                return self.gw.start_exec(args[0], body)
            if name == "poll":
                return self.gw.poll_exec(*args)
            if name == "cancel":
                return self.gw.cancel_exec(args[0], args[1], body)
            return self.gw.terminate(args[0], body)
        raise ApiError(404, "not found")

    def control(self, method, path, raw):
        body = json.loads(raw) if raw else {}
        gw = self.gw
        if path == "/_control/requests":
            with gw.lock:
                return self.send(200, {"requests": list(gw.requests)})
        if path == "/_control/clear":
            with gw.lock:
                gw.requests.clear()
            return self.send(200, {"ok": True})
        if path == "/_control/fault":
            with gw.lock:
                gw.faults.append(body)
            return self.send(200, {"ok": True})
        if path == "/_control/faults/clear":
            with gw.lock:
                gw.faults.clear()
            return self.send(200, {"ok": True})
        if path == "/_control/reap":
            return self.send(200, gw.reap(body.get("id")))
        if path == "/_control/token":
            gw.token = body["token"]
            return self.send(200, {"ok": True})
        if path == "/_control/sandboxes":
            return self.send(200, {"sandboxes": gw.listing()})
        if path == "/_control/procs":
            return self.send(200, {"procs": gw.procs()})
        return self.send(404, {"error": "no such control endpoint"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--token", default="standin-token")
    ap.add_argument("--port-file")
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    bwrap = shutil.which("bwrap")
    if not bwrap:
        sys.exit("modal-standin: bwrap is needed to give each sandbox its own /root and /tmp")
    gw = Gateway(a.token, bwrap)
    Handler.gw, Handler.verbose = gw, a.verbose
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(a.port_file + ".tmp", a.port_file)
    print(port, flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin():
        try:
            while os.read(0, 4096):     # not sys.stdin: its lock would block the exit
                pass
        except OSError:
            pass
        stop.set()

    if a.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    while not stop.wait(0.2):
        pass
    srv.shutdown()
    gw.shutdown()


if __name__ == "__main__":
    main()
