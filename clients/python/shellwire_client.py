#!/usr/bin/env python3
"""A small MCP client for shellwire, Python standard library only (3.11+).

Command line (the same shape as clients/node/shellwire-client.mjs):

    shellwire_client.py [--server PATH] [-- SERVER_ARGS...] call TOOL 'JSON'
    shellwire_client.py [--server PATH] [-- SERVER_ARGS...] list [--json]
    shellwire_client.py [--server PATH] [-- SERVER_ARGS...]            # interactive prompt
    shellwire_client.py [--server PATH] [-- SERVER_ARGS...] replay FILE.jsonl

`call` prints the tool's structured result as indented JSON and exits 0, or 1 when the
result has isError set; a JSON-RPC error (unknown tool, bad params) or a usage error exits 2.
`replay` feeds a fixture file to the server line by line (see clients/README.md) and prints
every message the server writes, one per line.

As a library:

    from shellwire_client import Client
    with Client(on_notification=print) as c:      # start() runs initialize
        env = c.call("terminal", {"command": "ls"})
        print(env["output"], env["exit_code"])

The server path defaults to $SHELLWIRE_BIN, else ../../build/shellwire next to this file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterable

__all__ = ["Client", "RpcError", "default_server", "replay", "main"]

CLIENT_NAME = "shellwire-client-py"
CLIENT_VERSION = "0.1.0"
PROTOCOL_VERSION = "2025-11-25"
# Longest a single request may take: the longest foreground command (600 s) plus slack.
DEFAULT_REQUEST_TIMEOUT = 660.0
COMMANDS = ("call", "list", "replay", "interactive")


def default_server() -> str:
    env = os.environ.get("SHELLWIRE_BIN")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "build", "shellwire"))


class RpcError(Exception):
    """A JSON-RPC error answer (for instance -32602 for an unknown tool)."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class _Pending:
    __slots__ = ("event", "response", "on_progress")

    def __init__(self, on_progress):
        self.event = threading.Event()
        self.response: dict | None = None
        self.on_progress = on_progress


class Client:
    """One shellwire server process and the MCP session with it.

    on_notification(method, params) is called (from a reader thread) for every
    notification the server sends, progress included.
    """

    def __init__(self, server: str | None = None, args: Iterable[str] = (), *,
                 env: dict | None = None, cwd: str | None = None,
                 on_notification: Callable[[str, Any], None] | None = None,
                 stderr=None):
        self.server = server or default_server()
        self.args = list(args)
        self.env = env
        self.cwd = cwd
        self.on_notification = on_notification
        self.stderr = stderr
        self.proc: subprocess.Popen | None = None
        self.server_info: dict = {}
        self.protocol_version: str | None = None
        self._tools: list | None = None
        self._next_id = 1
        self._pending: dict[Any, _Pending] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._closed = False

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> dict:
        """Starts the server and runs the initialize handshake; returns its result."""
        if self.proc:
            raise RuntimeError("client already started")
        self.proc = subprocess.Popen(
            [self.server, *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, env=self.env, cwd=self.cwd,
            # Own session: Ctrl-C at the prompt reaches the client (which cancels the call),
            # not the server. The server still exits when its stdin closes.
            start_new_session=True)
        self._reader = threading.Thread(target=self._read_loop, name="shellwire-reader",
                                        daemon=True)
        self._reader.start()
        result = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": CLIENT_NAME, "version": CLIENT_VERSION},
        }, timeout=30)
        self.server_info = result.get("serverInfo", {})
        self.protocol_version = result.get("protocolVersion")
        self.notify("notifications/initialized")
        return result

    def close(self, timeout: float = 2.0) -> int | None:
        """Closes stdin, waits for the server to exit (then SIGTERM, then SIGKILL)."""
        if not self.proc or self._closed:
            return self.proc.returncode if self.proc else None
        self._closed = True
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        for sig in (None, "terminate", "kill"):
            if sig:
                getattr(self.proc, sig)()
            try:
                self.proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._reader:
            self._reader.join(timeout=timeout)
        return self.proc.returncode

    def __enter__(self) -> "Client":
        if not self.proc:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------

    def request(self, method: str, params: dict | None = None, *,
                timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
                on_progress: Callable[[dict], None] | None = None) -> Any:
        """Sends a request and waits for its result; raises RpcError on an error answer.

        With on_progress, the request carries a progressToken and each
        notifications/progress for it is passed to on_progress(params). On timeout or
        KeyboardInterrupt the request is cancelled (notifications/cancelled).
        """
        if not self.proc:
            raise RuntimeError("client not started")
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            pending = self._pending[rid] = _Pending(on_progress)
        msg: dict = {"jsonrpc": "2.0", "id": rid, "method": method}
        params = dict(params or {})
        if on_progress:
            params["_meta"] = {**params.get("_meta", {}), "progressToken": rid}
        if params:
            msg["params"] = params
        try:
            self._send(msg)
            if not pending.event.wait(timeout):
                self._cancel(rid, "client timeout")
                raise TimeoutError(f"{method}: no answer within {timeout} s")
        except KeyboardInterrupt:
            self._cancel(rid, "interrupted by the user")
            raise
        finally:
            with self._lock:
                self._pending.pop(rid, None)
        resp = pending.response
        if resp is None:
            raise ConnectionError("the server exited before answering")
        if "error" in resp:
            err = resp["error"] or {}
            raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return resp.get("result")

    def notify(self, method: str, params: dict | None = None) -> None:
        msg: dict = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self._send(msg)

    def list_tools(self) -> list:
        tools: list = []
        cursor = None
        while True:
            result = self.request("tools/list", {"cursor": cursor} if cursor else None)
            tools.extend(result.get("tools", []))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        self._tools = tools
        return tools

    def call_result(self, tool: str, arguments: dict | None = None, **kw) -> dict:
        """tools/call; returns the whole CallToolResult (content, structuredContent, isError)."""
        return self.request("tools/call", {"name": tool, "arguments": arguments or {}}, **kw)

    def call(self, tool: str, arguments: dict | None = None, **kw) -> dict:
        """tools/call; returns the structured result (the envelope with output, exit_code,
        error, ...). A tool error is returned too: check its "error" key."""
        return structured(self.call_result(tool, arguments, **kw))

    # -- plumbing -----------------------------------------------------------------------

    def _send(self, msg: dict) -> None:
        line = json.dumps(msg, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._write_lock:
            try:
                self.proc.stdin.write(line.encode("utf-8"))
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise ConnectionError("the server is not running") from exc

    def _cancel(self, rid: Any, reason: str) -> None:
        try:
            self.notify("notifications/cancelled", {"requestId": rid, "reason": reason})
        except ConnectionError:
            pass

    def _read_loop(self) -> None:
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                print(f"shellwire-client: unparsable line from server: {raw!r}", file=sys.stderr)
                continue
            if not isinstance(msg, dict):
                continue
            if "method" in msg and "id" in msg:
                self._answer_server_request(msg)
            elif "method" in msg:
                self._dispatch_notification(msg["method"], msg.get("params"))
            elif "id" in msg:
                with self._lock:
                    pending = self._pending.get(msg["id"])
                if pending:
                    pending.response = msg
                    pending.event.set()
        # EOF: wake everybody still waiting.
        with self._lock:
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.event.set()

    def _dispatch_notification(self, method: str, params: Any) -> None:
        if method == "notifications/progress" and isinstance(params, dict):
            with self._lock:
                pending = self._pending.get(params.get("progressToken"))
            if pending and pending.on_progress:
                pending.on_progress(params)
        if self.on_notification:
            self.on_notification(method, params)

    def _answer_server_request(self, msg: dict) -> None:
        if msg["method"] == "ping":
            reply = {"jsonrpc": "2.0", "id": msg["id"], "result": {}}
        else:
            reply = {"jsonrpc": "2.0", "id": msg["id"],
                     "error": {"code": -32601, "message": f"Method not found: {msg['method']}"}}
        try:
            self._send(reply)
        except ConnectionError:
            pass


def structured(result: dict) -> dict:
    """The structured envelope of a CallToolResult (parsed from the text content when the
    server sent no structuredContent)."""
    sc = result.get("structuredContent")
    if isinstance(sc, dict):
        return sc
    texts = [c.get("text", "") for c in result.get("content", []) if c.get("type") == "text"]
    try:
        parsed = json.loads("".join(texts))
        if isinstance(parsed, dict):
            return parsed
    except ValueError:
        pass
    return {"output": "\n".join(texts), "error": "\n".join(texts) if result.get("isError") else None}


# -- fixture replay --------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{\s*([^.{}\s]+)\.([A-Za-z0-9_]+)\s*\}\}")


def substitute(line: str, answers: dict) -> str:
    """Replaces {{ID.key}} with the value of `key` in the structured result of the answer to
    request ID (as a JSON string body, so it can sit inside a JSON string)."""
    def repl(m: re.Match) -> str:
        answer = answers.get(m.group(1))
        if answer is None:
            raise KeyError(f"{m.group(0)}: request {m.group(1)} has no answer")
        value = structured(answer.get("result") or {}).get(m.group(2))
        if value is None:
            raise KeyError(f"{m.group(0)}: the answer to {m.group(1)} has no {m.group(2)!r}")
        return json.dumps(value)[1:-1] if isinstance(value, str) else json.dumps(value)
    return PLACEHOLDER.sub(repl, line)


def replay(lines: Iterable[str], server: str | None = None, args: Iterable[str] = (), *,
           env: dict | None = None, cwd: str | None = None, out=None,
           wait_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> int:
    """Feeds fixture lines to a fresh server (no initialize: shellwire serves tools/call
    without one) and writes every message it sends to `out`, one per line.

    A line holding a {{ID.key}} placeholder is sent only once every earlier request has been
    answered, with the placeholder filled in from those answers; other lines go at once.
    Returns the server's exit status (stdin is closed after the last line)."""
    out = out or sys.stdout
    proc = subprocess.Popen([server or default_server(), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, cwd=cwd,
                            start_new_session=True)
    cond = threading.Condition()
    answers: dict[str, dict] = {}
    outstanding: set[str] = set()

    def reader():
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            out.write(text + "\n")
            out.flush()
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            if isinstance(msg, dict) and "method" not in msg and "id" in msg:
                key = json.dumps(msg["id"])
                with cond:
                    answers[str(msg["id"])] = answers[key] = msg
                    outstanding.discard(key)
                    cond.notify_all()
        with cond:
            outstanding.clear()
            cond.notify_all()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for line in lines:
            line = line.rstrip("\n")
            if PLACEHOLDER.search(line):
                with cond:
                    if not cond.wait_for(lambda: not outstanding, wait_timeout):
                        raise TimeoutError(f"earlier requests still unanswered: {sorted(outstanding)}")
                    line = substitute(line, answers)
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and "method" in msg:
                with cond:
                    if "id" in msg and msg["id"] is not None:
                        outstanding.add(json.dumps(msg["id"]))
                    if msg["method"] == "notifications/cancelled":
                        rid = (msg.get("params") or {}).get("requestId")
                        outstanding.discard(json.dumps(rid))
            proc.stdin.write((line + "\n").encode("utf-8"))
            proc.stdin.flush()
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
    rc = proc.wait()
    thread.join()
    return rc


# -- command line ----------------------------------------------------------------------------

USAGE = """\
usage: shellwire_client.py [--server PATH] [-- SERVER_ARGS...] [COMMAND]

commands:
  call TOOL JSON    call a tool once, print its structured result (exit 1 if isError)
  list [--json]     list the server's tools
  replay FILE       feed a fixture (.jsonl, '-' for stdin) and print every server message
  (none)            interactive prompt; type 'help' there

The server defaults to $SHELLWIRE_BIN, else ../../build/shellwire next to this script.
Arguments after '--' go to the server, up to the command word, e.g.
  shellwire_client.py -- --timeout 30 call terminal '{"command":"uname -a"}'"""

INTERACTIVE_HELP = """\
  terminal CMD...              run CMD in the foreground (rest of the line is the command)
  bg CMD...                    run CMD in the background (terminal with background: true)
  process ACTION [ID] [k=v]    e.g. process list | process wait proc_1a2b timeout=5 |
                               process log proc_1a2b offset=0 limit=20 | process kill proc_1a2b
  process submit|write ID TEXT send TEXT to a pty process (submit adds a newline)
  call TOOL JSON               call any tool with JSON arguments
  tools                        list the tools
  help                         this text
  quit                         leave (also exit or end of input)
Values in k=v are JSON when they parse as JSON, else strings."""


class UsageError(Exception):
    pass


def parse_argv(argv: list[str]) -> tuple[str | None, list[str], list[str]]:
    """Splits argv into (server, server_args, command_words)."""
    server = None
    server_args: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--server":
            if i + 1 >= len(argv):
                raise UsageError("--server needs a path")
            server = argv[i + 1]
            i += 2
        elif tok.startswith("--server="):
            server = tok.split("=", 1)[1]
            i += 1
        elif tok in ("-h", "--help"):
            return server, server_args, ["help"]
        elif tok == "--":
            i += 1
            while i < len(argv) and argv[i] not in COMMANDS:
                server_args.append(argv[i])
                i += 1
        else:
            break
    words = argv[i:]
    if "--" in words:
        cut = words.index("--")
        server_args += words[cut + 1:]
        words = words[:cut]
    return server, server_args, words


def server_env() -> dict:
    return dict(os.environ)


def print_notification(method: str, params: Any) -> None:
    params = params or {}
    if method == "notifications/progress":
        total = f"/{params['total']}" if "total" in params else ""
        msg = params.get("message", "")
        print(f"[progress {params.get('progress')}{total}] {msg}", file=sys.stderr, flush=True)
    elif method == "notifications/message":
        data = params.get("data")
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        print(f"[{params.get('level', 'info')}] {params.get('logger', 'server')}: {text}",
              file=sys.stderr, flush=True)
    else:
        print(f"[{method}] {json.dumps(params, ensure_ascii=False)}", file=sys.stderr, flush=True)


def format_tools(tools: list) -> str:
    lines = []
    for tool in tools:
        title = tool.get("title") or (tool.get("annotations") or {}).get("title") or ""
        lines.append(f"{tool.get('name')}" + (f" - {title}" if title else ""))
        schema = tool.get("inputSchema") or {}
        required = set(schema.get("required") or [])
        params = [p + ("*" if p in required else "") for p in (schema.get("properties") or {})]
        if params:
            lines.append("    arguments: " + " ".join(params))
    return "\n".join(lines)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), flush=True)


def print_terminal(env: dict) -> None:
    """Human form of a terminal result: the output, then the other keys."""
    output = env.get("output")
    if output:
        print(output)
    parts = [f"exit {env.get('exit_code')}"]
    if isinstance(env.get("duration_ms"), int):
        parts.append(f"{env['duration_ms']} ms")
    print("[" + ", ".join(parts) + "]")
    for key, value in env.items():
        if key in ("output", "exit_code", "duration_ms") or value is None:
            continue
        print(f"  {key}: {value if isinstance(value, str) else json.dumps(value)}")
    sys.stdout.flush()


def parse_kv(words: list[str]) -> dict:
    out = {}
    for word in words:
        if "=" not in word:
            raise UsageError(f"expected key=value, got {word!r}")
        key, value = word.split("=", 1)
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def process_args(rest: str) -> dict:
    parts = rest.split(None, 2)
    if not parts:
        raise UsageError("process needs an action: list, poll, log, wait, kill, write, submit, close")
    action = parts[0]
    args: dict = {"action": action}
    if action in ("write", "submit"):
        if len(parts) < 2:
            raise UsageError(f"usage: process {action} SESSION_ID TEXT")
        args["session_id"] = parts[1]
        args["data"] = parts[2] if len(parts) > 2 else ""
        return args
    words = shlex.split(rest)[1:]
    if words and "=" not in words[0]:
        args["session_id"] = words.pop(0)
    args.update(parse_kv(words))
    return args


def parse_json_args(text: str) -> dict:
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise UsageError(f"arguments are not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError("arguments must be a JSON object")
    return value


def show_progress(params: dict) -> None:
    print_notification("notifications/progress", params)


def handle_line(client: Client, line: str) -> bool:
    """Runs one interactive line; returns False to quit."""
    line = line.strip()
    if not line or line.startswith("#"):
        return True
    cmd, _, rest = line.partition(" ")
    rest = rest.strip()
    if cmd in ("quit", "exit"):
        return False
    if cmd in ("help", "?"):
        print(INTERACTIVE_HELP, flush=True)
    elif cmd in ("tools", "list"):
        print(format_tools(client.list_tools()), flush=True)
    elif cmd in ("terminal", "bg", "background"):
        if not rest:
            raise UsageError(f"usage: {cmd} COMMAND")
        args = {"command": rest}
        if cmd != "terminal":
            args["background"] = True
        print_terminal(client.call("terminal", args, on_progress=show_progress))
    elif cmd == "process":
        print_json(client.call("process", process_args(rest), on_progress=show_progress))
    elif cmd == "call":
        tool, _, text = rest.partition(" ")
        if not tool:
            raise UsageError("usage: call TOOL JSON")
        print_json(client.call(tool, parse_json_args(text), on_progress=show_progress))
    else:
        raise UsageError(f"unknown command {cmd!r}; type help")
    return True


def interactive(client: Client) -> int:
    tty = sys.stdin.isatty()
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        name = client.server_info.get("name", "server")
        print(f"connected to {name} {client.server_info.get('version', '')} "
              f"(protocol {client.protocol_version}); type help", file=sys.stderr)
    while True:
        try:
            line = input("shellwire> ") if tty else sys.stdin.readline()
        except EOFError:
            break
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        if not tty and line == "":
            break
        try:
            if not handle_line(client, line):
                break
        except KeyboardInterrupt:
            print("[cancelled]", file=sys.stderr, flush=True)
        except (UsageError, RpcError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
        except ConnectionError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        server, server_args, words = parse_argv(argv)
    except UsageError as exc:
        print(f"error: {exc}\n{USAGE}", file=sys.stderr)
        return 2
    if words and words[0] == "help":
        print(USAGE)
        return 0
    command = words[0] if words else "interactive"
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    server = server or default_server()

    if command == "replay":
        if len(words) != 2:
            print("usage: shellwire_client.py replay FILE.jsonl", file=sys.stderr)
            return 2
        try:
            if words[1] == "-":
                return replay(sys.stdin, server, server_args, env=server_env())
            with open(words[1], encoding="utf-8") as fh:
                return replay(fh.readlines(), server, server_args, env=server_env())
        except (OSError, KeyError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    if command == "call" and len(words) not in (2, 3):
        print("usage: shellwire_client.py call TOOL 'JSON'", file=sys.stderr)
        return 2
    client = Client(server, server_args, env=server_env(), on_notification=_notify_filter)
    try:
        client.start()
    except (OSError, ConnectionError, TimeoutError, RpcError) as exc:
        print(f"error: cannot start {server}: {exc}", file=sys.stderr)
        client.close()
        return 2
    try:
        if command == "list":
            tools = client.list_tools()
            if "--json" in words[1:]:
                print_json(tools)
            else:
                print(format_tools(tools))
            return 0
        if command == "call":
            try:
                args = parse_json_args(words[2] if len(words) > 2 else "")
            except UsageError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            result = client.call_result(words[1], args, on_progress=show_progress)
            if isinstance(result.get("structuredContent"), dict):
                print_json(result["structuredContent"])
            else:
                for item in result.get("content", []):
                    print(item.get("text", json.dumps(item)))
            return 1 if result.get("isError") else 0
        return interactive(client)
    except RpcError as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except (ConnectionError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


def _notify_filter(method: str, params: Any) -> None:
    # Progress is shown by the per-request callback; everything else is printed here.
    if method != "notifications/progress":
        print_notification(method, params)


if __name__ == "__main__":
    sys.exit(main())
