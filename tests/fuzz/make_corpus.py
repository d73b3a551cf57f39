#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

The seeds are small, hand-made, valid inputs: real JSON-RPC sessions, command outputs with
escape sequences, cwd markers and UTF-8 edge cases, the commands of tests/unit/test_guard.c,
Docker stream frames, and provider error bodies. Each file is named after a hash of its
content, so re-running this script is idempotent. The binary layouts (headers) are the
ones documented at the top of each tests/fuzz/fuzz_*.c.

Usage: python3 tests/fuzz/make_corpus.py
"""
import ast
import hashlib
import json
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------- fuzz_rpc

def rpc(method, params=None, id_=None):
    m = {"jsonrpc": "2.0", "method": method}
    if id_ is not None:
        m["id"] = id_
    if params is not None:
        m["params"] = params
    return json.dumps(m, ensure_ascii=False)


def init(version="2025-06-18", elicit=False, id_=0):
    caps = {"elicitation": {}} if elicit else {}
    return rpc("initialize", {"protocolVersion": version, "capabilities": caps,
                              "clientInfo": {"name": "fuzz", "version": "1"}}, id_)


def call(args, id_, name="terminal", meta=None):
    p = {"name": name, "arguments": args}
    if meta:
        p["_meta"] = meta
    return rpc("tools/call", p, id_)


def session(*lines):
    return "\n".join(lines) + "\n"


def rpc_seeds():
    inited = rpc("notifications/initialized")
    yield session(init(), inited, rpc("ping", id_=1), rpc("tools/list", id_=2))
    yield session(init("2024-11-05"), inited, rpc("tools/list", {"cursor": "abc"}, 1),
                  rpc("logging/setLevel", {"level": "debug"}, 2),
                  rpc("logging/setLevel", {"level": "loud"}, 3))
    yield session(init("1999-01-01", id_="init"), rpc("server/discover", id_="x"),
                  rpc("unknown/method", {}, 7))
    # Commands through the fake backend.
    yield session(init(), inited,
                  call({"command": "echo hello"}, 1),
                  call({"command": "cd /tmp/work"}, 2),
                  call({"command": "grep missing file #exit=1"}, 3),
                  call({"command": "sleep 5 #timeout", "timeout": 5}, 4),
                  call({"command": "ls", "workdir": "/srv"}, 5))
    yield session(call({"command": "printf '\\x1b[31mred\\x1b[0m'"}, 1),
                  call({"command": "echo sk-ant-abcdefghijklmnopqrstuvwxyz0123 ghp_" + "a" * 36}, 2),
                  call({"command": "curl -H 'Authorization: Bearer abcdefghijklmnopqrstu' http://u:pw@h/"}, 3))
    yield session(init(), call({"command": "sudo apt update && sudo -u x id"}, 1),
                  call({"command": "sudo -S true"}, 2),
                  call({"command": "echo fuzz-sudo-pw"}, 3))
    yield session(init(), call({"command": "rm -rf build"}, 1),
                  call({"command": "rm -rf /"}, 2),
                  call({"command": "git push --force origin main"}, 3),
                  call({"command": "npm run dev"}, 4),
                  call({"command": "python -m http.server --help"}, 5),
                  call({"command": "sleep 100 &"}, 6))
    yield session(init("2025-11-25", elicit=True), call({"command": "rm -rf node_modules"}, 1),
                  json.dumps({"jsonrpc": "2.0", "id": "shellwire-1",
                              "result": {"action": "accept", "content": {"decision": "once"}}}))
    yield session(call({"command": "true", "timeout": 0}, 1),
                  call({"command": "true", "timeout": 100000}, 2),
                  call({"command": "true", "timeout": "5"}, 3),
                  call({"command": 5}, 4),
                  call({}, 5),
                  call({"command": "   "}, 6),
                  call({"command": "x", "background": "yes"}, 7),
                  call({"command": "x", "pty": True}, 8),
                  call({"command": "x", "notify": True}, 9),
                  call({"command": "x", "workdir": "relative"}, 10),
                  call({"command": "x", "task_id": ""}, 11),
                  call({"command": "x", "task_id": 3}, 12),
                  call({"command": "x", "background": True}, 13),
                  call({"command": "x"}, 14, name="nosuchtool"),
                  rpc("tools/call", {"arguments": {}}, 15),
                  rpc("tools/call", {"name": "terminal", "arguments": [1]}, 16),
                  rpc("tools/call", [1, 2], 17))
    yield session(call({"command": "a #degraded daemon gone"}, 1),
                  call({"command": "b #error permission denied"}, 2),
                  call({"command": "c #recreated"}, 3),
                  call({"command": "d #cancel"}, 4),
                  call({"command": "e", "task_id": "down-1"}, 5),
                  call({"command": "f", "task_id": "other"}, 6,
                       meta={"progressToken": "tok"}))
    yield session(call({"action": "list"}, 1, name="process"),
                  call({"action": "poll", "session_id": "proc_0123456789ab"}, 2, name="process"),
                  call({"action": "log", "session_id": "proc_0123", "offset": 0, "limit": 5}, 3,
                       name="process"),
                  call({"action": "wait", "session_id": "proc_abcd", "timeout": 1}, 4, name="process"),
                  call({"action": "kill"}, 5, name="process"),
                  call({"action": "submit", "session_id": "proc_x", "data": "y"}, 6, name="process"),
                  call({"action": "dance"}, 7, name="process"),
                  call({}, 8, name="process"))
    # Batches: only under 2025-03-26.
    batch = json.dumps([json.loads(rpc("ping", id_=1)), json.loads(rpc("notifications/initialized")),
                        json.loads(call({"command": "echo in batch"}, 2)), 5,
                        json.loads(rpc("tools/list", id_="three"))])
    yield session(init("2025-03-26"), batch, "[]", json.dumps([json.loads(init())]))
    yield session(init(), batch)
    # Cancellation and ids.
    yield session(call({"command": "long"}, "c1"),
                  rpc("notifications/cancelled", {"requestId": "c1", "reason": "user"}),
                  rpc("ping", id_=0), rpc("ping", id_=-1), rpc("ping", id_=1.5),
                  rpc("ping", id_=9223372036854775807), rpc("ping", id_="\u00e9\u4e2d"))
    # Malformed messages.
    yield ('{"jsonrpc":"2.0","id":null,"method":"ping"}\n'
           '{"jsonrpc":"1.0","id":1,"method":"ping"}\n'
           '{"id":2,"method":"ping"}\n'
           '{"jsonrpc":"2.0","id":{},"method":"ping"}\n'
           '{"jsonrpc":"2.0","id":3,"method":7}\n'
           '{"jsonrpc":"2.0","id":4,"method":"ping","params":"str"}\n'
           '{"jsonrpc":"2.0","id":5,"method":"ping","params":[1]}\n'
           '{"jsonrpc":"2.0","id":6,"result":{}}\n'
           '{"jsonrpc":"2.0","method":"x"\n'
           '\n   \r\n'
           '"just a string"\n'
           '123456789012345678901234567890\n'
           '{"jsonrpc":"2.0","id":7,"method":"ping"}\r\n'
           '{"jsonrpc":"2.0","id":8,"method":"ping"}')
    yield '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + "x" * 5000 + '"}}\n' + \
        rpc("ping", id_=2) + "\n"
    yield '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"terminal","arguments":{"command":"echo \\u0000 nul"}}}\n'
    yield '{"jsonrpc":"2.0","id":"\\ud83d\\ude00","method":"ping"}\n\xff\xfe\n'
    # Regression: messages cut inside a multi-byte character once made the answer
    # unencodable (no response at all, or an internal error).
    yield session(rpc("\u00e9" * 600, id_=1),
                  call({"command": "x"}, 2, name="\u00e9" * 600),
                  call({"command": "x", "workdir": "/\x01" + "\u00e9" * 1200}, 3),
                  call({"action": "\u00e9" * 600}, 4, name="process"),
                  call({"command": "x #degraded " + "\u00e9" * 400}, 5))


# ---------------------------------------------------------------------------- fuzz_output

ID = "0123456789abcdef"
TAG = "__SHELLWIRE_CWD_" + ID + "__"


def marker(path, end="\n"):
    return "\n" + TAG + path + TAG + end


def out_seed(data, flags=1, limit=6, spill=3, code=1, lens=(0, 3, 6, 15, 63, 2, 200, 240)):
    # limit: 1 + 8 * value characters; spill cap: 1 + 16 * value characters
    if isinstance(data, str):
        data = data.encode("utf-8")
    return bytes([flags, limit, spill, code, *lens]) + data


def output_seeds():
    yield out_seed("hello\nworld\n" + marker("/home/user"))
    yield out_seed("\x1b[1;31merror:\x1b[0m build failed\n\x1b]0;title\x07done\n" + marker("/tmp"))
    yield out_seed("\x1bP1$r0m\x1b\\dcs \x1b_apc\x1b\\ \x1b(B\x1b=text\x1b[?25l\n")
    yield out_seed("caf\u00e9 \u4e2d\u6587 \U0001F600 \u00ad\n".encode() + b"\xc2\x9b31mC1\xc2\x9d0;t\xc2\x9c")
    yield out_seed(b"bad \xff\xfe \xc3 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 end\n")
    yield out_seed(b"\x1b]" + b"A" * 5000 + b" visible after the cap\n")
    yield out_seed("progress 10%\rprogress 50%\rprogress 100%\ndone\n", flags=0)
    yield out_seed("   \n\n  indented first line\ntrailing   \n\n\t", flags=2)
    yield out_seed("".join("line %d\n" % i for i in range(300)) + marker("/srv"), flags=5, limit=12)
    yield out_seed("x" * 3000, flags=4, limit=20, spill=10)
    yield out_seed("out" + marker("/a b") + "more" + marker("/c", "\r\n") + "tail")
    yield out_seed("no final newline" + marker("/end", ""))
    yield out_seed("\n__SHELLWIRE_CWD_" + ID + "_almost\n" + marker("/real"))
    yield out_seed(marker("") + marker("/x\x00y") + "\n" + TAG + "/nolead" + TAG + "\n")
    yield out_seed("sk-proj-abcdefghijklmnopqrstuvwxyz012345 AKIAABCDEFGHIJKLMNOP\n"
                   "ghp_abcdefghijklmnopqrstuvwxyz0123456789 xoxb-1234567890-abcdef\n"
                   "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlX2hlcmU\n"
                   "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----\n"
                   "Authorization: Bearer abcdefghijklmnop123 https://user:hunter2@example.com/\n")
    yield out_seed(bytes(range(256)) * 4, flags=1, limit=30)
    yield out_seed("\u00e9" * 700, flags=4, limit=3, spill=2, lens=(0, 0, 1, 2, 0, 1, 3, 5))


# ---------------------------------------------------------------------------- fuzz_guard

def guard_seeds():
    src = open(os.path.join(ROOT, "tests", "unit", "test_guard.c"), encoding="utf-8").read()
    seen = set()
    for m in re.finditer(r'\b(?:HARD|ASK|OK|sudo_case)\(\s*("(?:[^"\\]|\\.)*")', src):
        lit = m.group(1)
        try:
            # C and Python string escapes agree for what the tests use.
            cmd = ast.literal_eval(lit)
        except (ValueError, SyntaxError):
            continue
        if cmd not in seen:
            seen.add(cmd)
            yield cmd
    yield "sudo;" * 3 + "sudo"
    # Regression: more than 2 * n + 64 bytes of rewrite once overflowed the buffer.
    yield "sudo;" * 40
    yield " ".join(["sudo"] * 40) + " id"
    yield "bash -c \"eval $'rm -rf /'\""


# ---------------------------------------------------------------------------- fuzz_docker_stream

def frame(stream, payload):
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def ds_seed(data, stop=0, lens=(0, 7, 8, 3, 100, 254, 1, 15)):
    return bytes([stop, *lens]) + data


def docker_seeds():
    yield ds_seed(frame(1, b"hello\n") + frame(2, b"warning\n") + frame(1, b"done\n"))
    yield ds_seed(frame(1, b"") + frame(2, b"x") + frame(0, b"stdin?"))
    yield ds_seed(frame(1, b"a" * 300) + frame(1, b"b" * 5), lens=(0, 0, 0, 255, 2, 9, 31, 7))
    yield ds_seed(frame(1, b"partial")[:-3])
    yield ds_seed(frame(1, b"ok") + b"\x03\x00\x00\x00\x00\x00\x00\x01z" + frame(1, b"after"))
    yield ds_seed(b"\x01\x00\x01\x00\x00\x00\x00\x01z")
    yield ds_seed(struct.pack(">BxxxI", 1, 0xFFFFFFFF) + b"huge frame, short stream")
    yield ds_seed(frame(1, b"one") + frame(2, b"two") + frame(1, b"three"), stop=2)


# ---------------------------------------------------------------------------- fuzz_http

def http_seed(status, body):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return struct.pack(">H", status) + body


def http_seeds():
    yield http_seed(404, '{"message":"sandbox not found"}')
    yield http_seed(400, '{"error":"invalid image"}')
    yield http_seed(500, '{"error":{"code":"internal","message":"database unavailable"}}')
    yield http_seed(422, '{"detail":[{"loc":["body","image"],"msg":"field required",'
                         '"type":"value_error.missing"},{"loc":["query",0],"msg":"bad"}]}')
    yield http_seed(403, '{"detail":"Not authenticated"}')
    yield http_seed(429, '{"message":["too many", "requests"]}')
    yield http_seed(409, '{"error":{"error":{"detail":"nested"}}}')
    yield http_seed(502, "<html><head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body></html>")
    yield http_seed(503, "")
    yield http_seed(401, "upstream connect error or disconnect/reset before headers\n")
    yield http_seed(400, '{"message":"' + "\u00e9" * 400 + '"}')
    yield http_seed(400, '{"message":"tab\\there\\nnewline\\u0000nul"}')
    yield http_seed(418, "[1,2,3]")


def main():
    gens = {"fuzz_rpc": rpc_seeds, "fuzz_output": output_seeds, "fuzz_guard": guard_seeds,
            "fuzz_docker_stream": docker_seeds, "fuzz_http": http_seeds}
    for target, gen in gens.items():
        n = 0
        for data in gen():
            write(target, data)
            n += 1
        print("%-20s %d seeds" % (target, n))


if __name__ == "__main__":
    main()
