#!/usr/bin/env python3
"""A local stand-in for the Daytona API and its toolbox API, for shellwire's tests
(Python 3 standard library only).

    python3 tests/standins/daytona_api.py --token TOKEN [--create-delay S] [--root DIR]

Listens on 127.0.0.1 at a random port and prints one JSON line on stdout:
{"port": P, "url": "http://127.0.0.1:P/api", "nonce": N, "root": DIR}. Stops on SIGTERM,
SIGINT or when stdin closes, killing every process it started and removing its sandboxes.

What it models (see the reference notes on the Daytona API):
  POST   /api/sandbox                 create (snapshot, or buildInfo.dockerfileContent)
  GET    /api/sandbox/{idOrName}      the Sandbox, its state advancing with time
  POST   /api/sandbox/{id}/start|stop start a stopped sandbox / stop it
  DELETE /api/sandbox/{id}            delete it
  GET    /api/sandbox?labels=JSON     list by labels
  POST   /toolbox/{id}/process/execute  run a command: {"command", "cwd"?, "envs"?, "timeout"?}
                                        -> {"exitCode", "result"} or 408 at the timeout
Each sandbox is a private directory (its HOME and default cwd, <root>/<task label>-<n>,
reused by the replacement of a vanished sandbox) on this host; commands
really run there, with SW_STANDIN_SANDBOX=<nonce>:<id> in their environment so tests can
find them. The daemon generation decides how a command runs: "new" feeds the text to
/bin/sh on stdin, "old" splits it into words and runs them without a shell.

Auth: exactly "Authorization: Bearer TOKEN", else 401 in the API's error shape.

Control endpoints for tests (no auth, not recorded), all JSON:
  GET    /_control/requests           every request seen: method, path, headers, body,
                                      time, peer (the client's port: one per connection)
  POST   /_control/faults             {"faults": [rule, ...]} appended; DELETE clears them
  POST   /_control/config             {"create_delay", "daemon", "fail_next_create":
                                       {"state", "errorReason"}}
  GET    /_control/sandboxes          id -> {state, dir, name, labels}
  POST   /_control/sandbox/{id}/vanish  gone at once (processes killed, 404 afterwards)
  POST   /_control/sandbox/{id}/stop    stopped out of band (like auto-stop)
A fault rule: {"match": "POST /toolbox/", "count": 1, and one of
  "status": 503 [, "headers": {...}] [, "body": ...]   answer this instead;
  "delay": seconds                                      answer late;
  "malformed": true                                     answer 200 with broken JSON;
  "drop": true                                          close the connection unanswered}.
"match" is "METHOD path-prefix" or a path prefix; the first matching rule with count
left applies.
"""

import argparse
import glob
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MARK_VAR = "SW_STANDIN_SANDBOX"


# ============================================================================ shared parts
# (also used by morph_api.py)

def iso_now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def marked_pids(needle):
    """Pids of live processes whose environment holds the bytes `needle`."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if any(e.startswith(needle) for e in env.split(b"\0")):
            out.append(int(name))
    return out


def kill_marked(needle):
    """SIGKILLs every process whose environment holds `needle`, until none is left."""
    for _ in range(20):
        pids = marked_pids(needle)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)


def run_process(argv, cwd, env, timeout=None, stdin_data=None, merge=True):
    """Runs argv in a new session and collects its output until it exits and its output
    pipe is closed (like a daemon that buffers the whole output). At the timeout the
    session is SIGKILLed. Returns (exit status, stdout bytes, stderr bytes, timed out);
    with merge, stderr goes to stdout."""
    p = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True,
                         stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT if merge else subprocess.PIPE)
    chunks = {"out": [], "err": []}

    def pump(f, key):
        while True:
            b = f.read1(65536)
            if not b:
                break
            chunks[key].append(b)
        f.close()

    readers = [threading.Thread(target=pump, args=(p.stdout, "out"), daemon=True)]
    if not merge:
        readers.append(threading.Thread(target=pump, args=(p.stderr, "err"), daemon=True))
    for r in readers:
        r.start()
    if stdin_data is not None:
        try:
            p.stdin.write(stdin_data)
        except OSError:
            pass
        p.stdin.close()
    # A helper thread waits for the exit and the end of output; this thread waits for it
    # with a deadline (an Event wait blocks; Popen.wait(timeout) would poll).
    done = threading.Event()

    def finish():
        p.wait()
        for r in readers:
            r.join()
        done.set()

    threading.Thread(target=finish, daemon=True).start()
    timed_out = not done.wait(timeout)
    if timed_out:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()
    status = p.returncode if p.returncode >= 0 else 128 - p.returncode
    return status, b"".join(chunks["out"]), b"".join(chunks["err"]), timed_out


class StandIn:
    """What both stand-ins share: sandbox directories, request log, fault rules."""

    error_shape = None          # subclass: fn(status, message, path) -> JSON object

    def __init__(self, token, root):
        self.token = token
        self.root = root
        self.nonce = uuid.uuid4().hex[:12]
        self.lock = threading.RLock()
        self.requests = []
        self.faults = []
        self.sandboxes = {}

    def marker(self, sid):
        return "%s=%s:%s" % (MARK_VAR, self.nonce, sid)

    def sandbox_env(self, sid, home, extra=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(MARK_VAR)}
        env.update({"HOME": home, "PWD": home, MARK_VAR: "%s:%s" % (self.nonce, sid)})
        env.update(extra or {})
        return env

    def new_dir(self, key):
        """A fresh, empty home for a new sandbox: <root>/<key>-<n> with the smallest n no
        live sandbox uses. Real sandboxes of one image all have the same home; reusing
        the path of a vanished sandbox for its replacement keeps that true here."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)[:40] or "sandbox"
        used = {sb["dir"] for sb in self.sandboxes.values()}
        n = 0
        while os.path.join(self.root, "%s-%d" % (safe, n)) in used:
            n += 1
        d = os.path.join(self.root, "%s-%d" % (safe, n))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def kill_sandbox(self, sid):
        kill_marked(self.marker(sid).encode())

    def remove_sandbox_files(self, sid):
        shutil.rmtree(self.sandboxes[sid]["dir"], ignore_errors=True)

    def record(self, method, path, headers, raw, peer):
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = {"method": method, "path": path, "time": time.time(), "peer": peer,
                 "headers": {k.lower(): v for k, v in headers.items()},
                 "body": body, "raw": raw[:1 << 20].decode("utf-8", "replace")}
        with self.lock:
            self.requests.append(entry)

    def take_fault(self, method, path):
        with self.lock:
            for rule in self.faults:
                if rule.get("count", 1) <= 0:
                    continue
                m = rule.get("match", "")
                meth, _, prefix = m.partition(" ") if " " in m else ("", "", m)
                if (not meth or meth == method) and path.startswith(prefix):
                    rule["count"] = rule.get("count", 1) - 1
                    return dict(rule)
        return None

    def sweep_tmp(self, home, whole_root=False):
        """Removes what the sandbox with this home (or, with whole_root, every sandbox of
        this stand-in) left in the host's /tmp, which they all share (a real sandbox's
        /tmp goes with it): shellwire's per-environment directories whose snapshot records
        that HOME, and its exec wrapper's output files naming that directory."""
        end = ("/", "/") if whole_root else ('"', "__")
        for d in glob.glob("/tmp/shellwire-*/snapshot"):
            try:
                with open(d, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            if 'HOME="%s%s' % (home, end[0]) in text:
                shutil.rmtree(os.path.dirname(d), ignore_errors=True)
        for path in glob.glob("/tmp/.shellwire-exec-*"):
            try:
                with open(path, errors="replace") as f:
                    text = f.read(1 << 20)
            except OSError:
                continue
            if home + end[1] in text:
                os.unlink(path)

    def shutdown(self):
        kill_marked(("%s=%s:" % (MARK_VAR, self.nonce)).encode())
        self.sweep_tmp(self.root, whole_root=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # subclass hooks
    def route(self, method, path, query, headers, body):
        raise NotImplementedError

    def control(self, method, parts, body):
        """Provider-specific control actions; None when unknown."""
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "standin/1"

    def log_message(self, fmt, *args):      # quiet
        pass

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")

    def send_json(self, status, obj, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def dispatch(self, method):
        app = self.server.app
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path.startswith("/_control/"):
            return self.control(app, method, path, raw)
        app.record(method, self.path, dict(self.headers.items()), raw, self.client_address[1])
        rule = app.take_fault(method, path)
        if rule and rule.get("drop"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if rule and "delay" in rule:
            time.sleep(rule["delay"])
        if rule and "status" in rule:
            body = rule.get("body")
            if body is None:
                body = app.error_shape(rule["status"], rule.get("message", "injected fault"), path)
            return self.send_json(rule["status"], body, rule.get("headers"))
        if self.headers.get("Authorization") != "Bearer " + app.token:
            return self.send_json(401, app.error_shape(401, "Invalid credentials", path))
        status, obj, headers = app.route(method, path, parse_qs(url.query), self.headers, raw)
        if rule and rule.get("malformed"):
            text = json.dumps(obj)
            return self.send_json(status, None, headers, raw=text[:max(1, len(text) // 2)].encode())
        self.send_json(status, obj, headers)

    def control(self, app, method, path, raw):
        parts = path.strip("/").split("/")[1:]
        body = json.loads(raw) if raw else {}
        if parts == ["requests"] and method == "GET":
            with app.lock:
                return self.send_json(200, {"requests": list(app.requests)})
        if parts == ["faults"] and method == "POST":
            with app.lock:
                app.faults.extend(body.get("faults", []))
            return self.send_json(200, {"ok": True})
        if parts == ["faults"] and method == "DELETE":
            with app.lock:
                app.faults.clear()
            return self.send_json(200, {"ok": True})
        res = app.control(method, parts, body)
        if res is None:
            return self.send_json(404, {"error": "unknown control request"})
        return self.send_json(200, res)


def json_body(headers, raw, errors):
    """The request's JSON object, or None after appending the reason to errors."""
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        errors.append("Content-Type must be application/json, got %r" % ctype)
        return None
    try:
        body = json.loads(raw or b"null")
    except ValueError as ex:
        errors.append("body is not valid JSON: %s" % ex)
        return None
    if not isinstance(body, dict):
        errors.append("body must be a JSON object")
        return None
    return body


def check_types(body, spec, errors):
    """spec: field -> tuple of accepted Python types (bool is never an int here)."""
    for k, types in spec.items():
        if k not in body:
            continue
        v = body[k]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if not ok:
            errors.append("%s must be of type %s" % (k, "/".join(t.__name__ for t in types)))


def serve(app, args_root):
    """Runs the stand-in until SIGTERM/SIGINT or stdin EOF; prints the address line first."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.app = app
    port = srv.server_address[1]
    app.port = port
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(json.dumps({"port": port, "url": app.public_url(port), "nonce": app.nonce,
                      "root": args_root}), flush=True)
    stop.wait()
    srv.shutdown()
    app.shutdown()
    sys.stdout.flush()
    os._exit(0)                 # request threads may still be blocked on their sockets


# ============================================================================ Daytona

def daytona_api_error(status, message, path):
    names = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
             408: "Request Timeout", 409: "Conflict", 429: "Too Many Requests",
             500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return {"path": path, "timestamp": iso_now(), "statusCode": status,
            "error": names.get(status, "Error"), "message": message}


def toolbox_error(status, message, path, method="POST"):
    return {"statusCode": status, "message": message, "code": "ERR_%d" % status,
            "timestamp": iso_now(), "path": path, "method": method}


class Daytona(StandIn):

    CREATE_FIELDS = {"name": (str,), "snapshot": (str,), "user": (str,), "env": (dict,),
                     "labels": (dict,), "public": (bool,), "target": (str,), "cpu": (int,),
                     "gpu": (int,), "memory": (int,), "disk": (int,),
                     "autoStopInterval": (int,), "autoArchiveInterval": (int,),
                     "autoDeleteInterval": (int,), "buildInfo": (dict,)}

    def __init__(self, token, root, create_delay):
        super().__init__(token, root)
        self.create_delay = create_delay
        self.daemon = "new"
        self.fail_next_create = None

    def error_shape(self, status, message, path):
        if path.startswith("/toolbox/"):
            return toolbox_error(status, message, path)
        return daytona_api_error(status, message, path)

    def public_url(self, port):
        return "http://127.0.0.1:%d/api" % port

    # ---- sandbox model

    def advance(self, sb):
        """Applies a pending state change whose time has come."""
        if sb.get("next") and time.monotonic() >= sb["next"][0]:
            sb["state"] = sb["next"][1]
            if sb["state"] in ("error", "build_failed"):
                sb["errorReason"] = sb["next"][2]
            sb["next"] = None

    def view(self, sb):
        self.advance(sb)
        out = {k: v for k, v in sb.items() if k not in ("next", "dir")}
        out["desiredState"] = "started" if sb["state"] in ("creating", "starting", "started",
                                                          "pending_build", "building_snapshot") \
            else sb["state"]
        return out

    def find(self, key):
        sb = self.sandboxes.get(key)
        if sb is None:
            sb = next((s for s in self.sandboxes.values() if s["name"] == key), None)
        return sb

    def create(self, body, path):
        errors = []
        check_types(body, self.CREATE_FIELDS, errors)
        if isinstance(body.get("labels"), dict) and \
                not all(isinstance(v, str) for v in body["labels"].values()):
            errors.append("labels must map strings to strings")
        bi = body.get("buildInfo")
        if isinstance(bi, dict) and not isinstance(bi.get("dockerfileContent"), str):
            errors.append("buildInfo.dockerfileContent must be a string")
        if "snapshot" in body and "buildInfo" in body:
            errors.append("snapshot and buildInfo cannot be used together")
        if errors:
            return 400, {"path": path, "timestamp": iso_now(), "statusCode": 400,
                         "error": "Bad Request", "message": errors}, None
        name = body.get("name")
        if name and self.find(name):
            return 409, daytona_api_error(409, "Sandbox with name %s already exists" % name,
                                          path), None
        sid = str(uuid.uuid4())
        first = "pending_build" if "buildInfo" in body else "creating"
        fail = self.fail_next_create
        self.fail_next_create = None
        sb = {"id": sid, "name": name or sid, "organizationId": "org-standin",
              "user": body.get("user", "daytona"), "env": body.get("env", {}),
              "labels": body.get("labels", {}), "public": body.get("public", False),
              "networkBlockAll": False, "target": body.get("target", "us"),
              "cpu": body.get("cpu", 1), "gpu": 0, "memory": body.get("memory", 1),
              "disk": body.get("disk", 3), "state": first, "errorReason": None,
              "recoverable": False,
              "autoStopInterval": body.get("autoStopInterval", 15),
              "autoDeleteInterval": body.get("autoDeleteInterval", -1),
              "createdAt": iso_now(), "daemonVersion": "standin-" + self.daemon,
              "toolboxProxyUrl": "http://127.0.0.1:%d/toolbox" % self.port,
              "snapshot": body.get("snapshot"), "buildInfo": body.get("buildInfo"),
              "dir": self.new_dir(body.get("labels", {}).get("shellwire_task_id", "sandbox"))}
        if fail:
            sb["next"] = (time.monotonic() + self.create_delay, fail.get("state", "error"),
                          fail.get("errorReason", "injected failure"))
        else:
            sb["next"] = (time.monotonic() + self.create_delay, "started")
        self.sandboxes[sid] = sb
        return 200, self.view(sb), None

    def stop(self, sb):
        """Stops processes; an ephemeral sandbox (autoDeleteInterval 0) is destroyed."""
        self.kill_sandbox(sb["id"])
        if sb["autoDeleteInterval"] == 0:
            sb["state"] = "destroyed"
            sb["next"] = None
            self.remove_sandbox_files(sb["id"])
        else:
            sb["state"] = "stopping"
            sb["next"] = (time.monotonic() + 0.05, "stopped")

    def route(self, method, path, query, headers, raw):
        if path.startswith("/toolbox/"):
            with self.lock:
                answer, job = self.toolbox(method, path, headers, raw)
            return answer if job is None else self.execute(*job, path, method)
        with self.lock:
            return self.api(method, path, query, headers, raw)

    def api(self, method, path, query, headers, raw):
        parts = path.strip("/").split("/")
        if parts[:2] != ["api", "sandbox"]:
            return 404, daytona_api_error(404, "Cannot %s %s" % (method, path), path), None
        rest = parts[2:]
        if not rest and method == "POST":
            errors = []
            body = json_body(headers, raw, errors)
            if body is None:
                return 400, daytona_api_error(400, "; ".join(errors), path), None
            return self.create(body, path)
        if not rest and method == "GET":
            want = json.loads(query.get("labels", ["{}"])[0])
            items = [self.view(s) for s in self.sandboxes.values()
                     if all(s["labels"].get(k) == v for k, v in want.items())]
            return 200, {"items": items, "nextCursor": None}, None
        sb = self.find(rest[0]) if rest else None
        if sb is None:
            return 404, daytona_api_error(404, "Sandbox with ID or name %s not found"
                                          % (rest[0] if rest else ""), path), None
        self.advance(sb)
        if len(rest) == 1 and method == "GET":
            return 200, self.view(sb), None
        if len(rest) == 1 and method == "DELETE":
            self.kill_sandbox(sb["id"])
            self.remove_sandbox_files(sb["id"])
            del self.sandboxes[sb["id"]]
            sb["state"] = "destroying"
            return 200, self.view(sb), None
        if len(rest) == 2 and method == "POST" and rest[1] == "start":
            if sb["state"] in ("stopped", "archived"):
                sb["state"] = "starting"
                sb["next"] = (time.monotonic() + self.create_delay, "started")
            elif sb["state"] not in ("started", "starting"):
                return 400, daytona_api_error(400, "Sandbox is in state %s and cannot be started"
                                              % sb["state"], path), None
            return 200, self.view(sb), None
        if len(rest) == 2 and method == "POST" and rest[1] == "stop":
            if sb["state"] in ("started", "starting"):
                self.stop(sb)
            return 200, self.view(sb), None
        return 404, daytona_api_error(404, "Cannot %s %s" % (method, path), path), None

    def toolbox(self, method, path, headers, raw):
        """Checks an execute request: (an answer, None), or (None, what to run)."""
        parts = path.strip("/").split("/")
        sb = self.sandboxes.get(parts[1]) if len(parts) > 1 else None
        if sb is None:
            return (404, toolbox_error(404, "sandbox not found", path, method), None), None
        self.advance(sb)
        if parts[2:] != ["process", "execute"] or method != "POST":
            return (404, toolbox_error(404, "not found", path, method), None), None
        if sb["state"] != "started":
            # What the hosted proxy answers here is not documented; any non-success
            # status makes shellwire look at the sandbox's state.
            return (400, toolbox_error(400, "Sandbox is not running", path, method), None), None
        errors = []
        body = json_body(headers, raw, errors)
        if body is not None:
            check_types(body, {"command": (str,), "cwd": (str,), "envs": (dict,),
                               "timeout": (int,)}, errors)
            if not isinstance(body.get("command"), str) or not body["command"].strip():
                errors.append("command is required")
            if isinstance(body.get("envs"), dict) and \
                    not all(k.isidentifier() and isinstance(v, str) for k, v in body["envs"].items()):
                errors.append("invalid environment variable")
        if errors:
            return (400, toolbox_error(400, "; ".join(errors), path, method), None), None
        return None, (sb["id"], sb["dir"], body, self.daemon)

    def execute(self, sid, home, body, daemon, path, method):
        cwd = body.get("cwd") or home
        env = self.sandbox_env(sid, home, body.get("envs"))
        timeout = body.get("timeout") or None
        try:
            if daemon == "old":
                status, out, _, timed_out = run_process(shlex.split(body["command"]), cwd, env,
                                                        timeout)
            else:
                status, out, _, timed_out = run_process(["/bin/sh"], cwd, env, timeout,
                                                        stdin_data=body["command"].encode())
        except (OSError, ValueError) as ex:
            return 200, {"exitCode": -1, "result": str(ex)}, None
        if timed_out:
            return 408, toolbox_error(408, "command execution timeout", path, method), None
        return 200, {"exitCode": status, "result": out.decode("utf-8", "replace")}, None

    def control(self, method, parts, body):
        with self.lock:
            if parts == ["config"] and method == "POST":
                self.create_delay = body.get("create_delay", self.create_delay)
                self.daemon = body.get("daemon", self.daemon)
                self.fail_next_create = body.get("fail_next_create", self.fail_next_create)
                return {"ok": True}
            if parts == ["sandboxes"] and method == "GET":
                return {sid: {"state": self.view(sb)["state"], "dir": sb["dir"],
                              "name": sb["name"], "labels": sb["labels"]}
                        for sid, sb in self.sandboxes.items()}
            if len(parts) == 3 and parts[0] == "sandbox" and method == "POST":
                sb = self.sandboxes.get(parts[1])
                if sb is None:
                    return None
                if parts[2] == "vanish":
                    self.kill_sandbox(sb["id"])
                    self.sweep_tmp(sb["dir"])
                    self.remove_sandbox_files(sb["id"])
                    del self.sandboxes[sb["id"]]
                    return {"ok": True}
                if parts[2] == "stop":
                    self.stop(sb)
                    return {"ok": True}
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--token", required=True)
    ap.add_argument("--create-delay", type=float, default=0.2)
    ap.add_argument("--root")
    a = ap.parse_args()
    root = a.root or tempfile.mkdtemp(prefix="sw-daytona-")
    os.makedirs(root, exist_ok=True)
    serve(Daytona(a.token, root, a.create_delay), root)


if __name__ == "__main__":
    main()
