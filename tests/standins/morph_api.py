#!/usr/bin/env python3
"""A local stand-in for the Morph Cloud API, for shellwire's tests (Python 3 standard
library only; the shared machinery — request log, fault rules, control endpoints,
running commands, process marking — lives in daytona_api.py next to this file).

    python3 tests/standins/morph_api.py --token TOKEN [--snapshot ID ...] [--create-delay S]

Listens on 127.0.0.1 at a random port and prints one JSON line on stdout:
{"port": P, "url": "http://127.0.0.1:P/api", "nonce": N, "root": DIR}. Stops on SIGTERM,
SIGINT or when stdin closes, killing every process it started.

What it models (see the reference notes on the Morph API):
  POST   /api/instance?snapshot_id=S   start an instance ({"metadata"?, "ttl_seconds"?,
                                       "ttl_action"?}) -> Instance, `pending` then `ready`
  GET    /api/instance/{id}            the Instance
  GET    /api/instance?metadata[k]=v   {"data": [Instance, ...]}
  DELETE /api/instance/{id}            stop (delete) it
  POST   /api/instance/{id}/pause|resume   freeze (SIGSTOP) / thaw its processes
  POST   /api/instance/{id}/exec       {"command": [argv...]} -> {"exit_code", "stdout", "stderr"}
Errors are FastAPI-shaped: {"detail": "..."}, and for validation errors
{"detail": [{"loc": [...], "msg": "...", "type": "..."}]} with status 422.
Each instance is a private directory (HOME and cwd of its commands) on this host; argv runs
there without a shell, with SW_STANDIN_SANDBOX=<nonce>:<id> in its environment.

Control endpoints as in daytona_api.py (requests, faults), plus
  POST /_control/config             {"create_delay", "fail_next_create": true}
  GET  /_control/sandboxes          id -> {status, dir, metadata}
  POST /_control/sandbox/{id}/vanish  gone at once (404 afterwards)
  POST /_control/sandbox/{id}/pause   paused out of band (like a TTL pause)
"""

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daytona_api import StandIn, check_types, json_body, marked_pids, run_process, serve  # noqa: E402


def detail(status, message, path=None):
    return {"detail": message}


def missing(loc, msg="field required", kind="value_error.missing"):
    return {"loc": loc, "msg": msg, "type": kind}


class Morph(StandIn):

    def __init__(self, token, root, snapshots, create_delay):
        super().__init__(token, root)
        self.snapshots = set(snapshots)
        self.create_delay = create_delay
        self.fail_next_create = False

    error_shape = staticmethod(detail)

    def public_url(self, port):
        return "http://127.0.0.1:%d/api" % port

    def advance(self, inst):
        if inst.get("next") and time.monotonic() >= inst["next"][0]:
            inst["status"] = inst["next"][1]
            inst["next"] = None

    def view(self, inst):
        self.advance(inst)
        return {k: v for k, v in inst.items() if k not in ("next", "dir")}

    def signal_all(self, iid, sig):
        for pid in marked_pids(self.marker(iid).encode()):
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def start(self, query, headers, raw):
        snap = query.get("snapshot_id", [None])[0]
        if not snap:
            return 422, {"detail": [missing(["query", "snapshot_id"])]}, None
        errors = []
        body = json_body(headers, raw, errors) if raw else {}
        if body is not None:
            check_types(body, {"metadata": (dict,), "ttl_seconds": (int,), "ttl_action": (str,)},
                        errors)
            if isinstance(body.get("metadata"), dict) and \
                    not all(isinstance(v, str) for v in body["metadata"].values()):
                errors.append("metadata values must be strings")
        if errors:
            return 422, {"detail": [missing(["body"], e, "type_error") for e in errors]}, None
        if snap not in self.snapshots:
            return 404, detail(404, "Snapshot %s not found" % snap), None
        iid = "morphvm_" + uuid.uuid4().hex[:8]
        final = "error" if self.fail_next_create else "ready"
        self.fail_next_create = False
        inst = {"id": iid, "object": "instance", "created": int(time.time()), "status": "pending",
                "spec": {"vcpus": 1, "memory": 1024, "disk_size": 4096},
                "refs": {"snapshot_id": snap, "image_id": "morphvm-minimal"},
                "networking": {"internal_ip": "10.0.0.2", "http_services": []},
                "ttl": {"ttl_seconds": body.get("ttl_seconds"), "ttl_action": body.get("ttl_action")},
                "wake_on": {"wake_on_ssh": False, "wake_on_http": False},
                "metadata": body.get("metadata", {}),
                "dir": self.new_dir(body.get("metadata", {}).get("shellwire_task_id", "instance")),
                "next": (time.monotonic() + self.create_delay, final)}
        self.sandboxes[iid] = inst
        return 200, self.view(inst), None

    def route(self, method, path, query, headers, raw):
        with self.lock:
            answer, job = self.api(method, path, query, headers, raw)
        return answer if job is None else self.execute(*job)

    def api(self, method, path, query, headers, raw):
        """(an answer, None), or (None, the command to run outside the lock)."""
        parts = path.strip("/").split("/")
        if parts[:2] != ["api", "instance"]:
            return (404, detail(404, "Not Found"), None), None
        rest = parts[2:]
        if not rest and method == "POST":
            return self.start(query, headers, raw), None
        if not rest and method == "GET":
            want = {k[len("metadata["):-1]: v[0] for k, v in query.items()
                    if k.startswith("metadata[") and k.endswith("]")}
            data = [self.view(i) for i in self.sandboxes.values()
                    if all(i["metadata"].get(k) == v for k, v in want.items())]
            return (200, {"data": data}, None), None
        inst = self.sandboxes.get(rest[0])
        if inst is None:
            return (404, detail(404, "Instance %s not found" % rest[0]), None), None
        self.advance(inst)
        if len(rest) == 1 and method == "GET":
            return (200, self.view(inst), None), None
        if len(rest) == 1 and method == "DELETE":
            self.signal_all(inst["id"], signal.SIGCONT)
            self.kill_sandbox(inst["id"])
            self.remove_sandbox_files(inst["id"])
            del self.sandboxes[inst["id"]]
            return (200, {}, None), None
        if len(rest) == 2 and method == "POST" and rest[1] in ("pause", "resume"):
            return self.pause_resume(inst, rest[1]), None
        if len(rest) == 2 and method == "POST" and rest[1] == "exec":
            return self.check_exec(inst, headers, raw)
        return (404, detail(404, "Not Found"), None), None

    def pause_resume(self, inst, what):
        if what == "pause" and inst["status"] == "ready":
            self.signal_all(inst["id"], signal.SIGSTOP)
            inst["status"] = "paused"
        elif what == "resume" and inst["status"] == "paused":
            self.signal_all(inst["id"], signal.SIGCONT)
            inst["status"] = "pending"
            inst["next"] = (time.monotonic() + self.create_delay, "ready")
        elif inst["status"] not in ("ready", "paused", "pending"):
            return 409, detail(409, "Instance is %s" % inst["status"]), None
        return 200, self.view(inst), None

    def check_exec(self, inst, headers, raw):
        if inst["status"] != "ready":
            return (409, detail(409, "Instance is %s, not ready" % inst["status"]), None), None
        errors = []
        body = json_body(headers, raw, errors)
        if body is None:
            return (422, {"detail": [missing(["body"], e, "value_error") for e in errors]}, None), None
        cmd = body.get("command")
        if not (isinstance(cmd, list) and cmd and all(isinstance(c, str) for c in cmd)):
            return (422, {"detail": [missing(["body", "command"], "value is not a valid list of "
                                              "strings", "type_error.list")]}, None), None
        return None, (inst["id"], inst["dir"], cmd)

    def execute(self, iid, home, argv):
        try:
            status, out, err, _ = run_process(argv, home, self.sandbox_env(iid, home), merge=False)
        except OSError as ex:
            return 200, {"exit_code": 127, "stdout": "", "stderr": str(ex)}, None
        return 200, {"exit_code": status, "stdout": out.decode("utf-8", "replace"),
                     "stderr": err.decode("utf-8", "replace")}, None

    def control(self, method, parts, body):
        with self.lock:
            if parts == ["config"] and method == "POST":
                self.create_delay = body.get("create_delay", self.create_delay)
                self.fail_next_create = body.get("fail_next_create", self.fail_next_create)
                return {"ok": True}
            if parts == ["sandboxes"] and method == "GET":
                return {iid: {"status": self.view(i)["status"], "dir": i["dir"],
                              "metadata": i["metadata"]} for iid, i in self.sandboxes.items()}
            if len(parts) == 3 and parts[0] == "sandbox" and method == "POST":
                inst = self.sandboxes.get(parts[1])
                if inst is None:
                    return None
                if parts[2] == "vanish":
                    self.signal_all(inst["id"], signal.SIGCONT)
                    self.kill_sandbox(inst["id"])
                    self.sweep_tmp(inst["dir"])
                    self.remove_sandbox_files(inst["id"])
                    del self.sandboxes[inst["id"]]
                    return {"ok": True}
                if parts[2] == "pause":
                    self.pause_resume(inst, "pause")
                    return {"ok": True}
        return None

    def shutdown(self):
        for iid in list(self.sandboxes):
            self.signal_all(iid, signal.SIGCONT)
        super().shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--token", required=True)
    ap.add_argument("--snapshot", action="append", default=[])
    ap.add_argument("--create-delay", type=float, default=0.2)
    ap.add_argument("--root")
    a = ap.parse_args()
    root = a.root or tempfile.mkdtemp(prefix="sw-morph-")
    os.makedirs(root, exist_ok=True)
    serve(Morph(a.token, root, a.snapshot or ["snapshot_standin"], a.create_delay), root)


if __name__ == "__main__":
    main()
