#!/usr/bin/env python3
"""Protocol tests for shellwire (SPEC sections 1, 2, 7): MCP lifecycle, JSON-RPC framing and
errors, batches, malformed input, progress, cancellation, concurrency, shutdown and the
command line. Standard library only; run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_protocol.py [name-filter ...]
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swclient  # noqa: E402
from swclient import ServerTest, tagged_procs, wait_until  # noqa: E402

VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
NEWEST = "2025-11-25"
# The tools this build advertises (SPEC sections 3 and 4).
EXPECTED_TOOLS = ["terminal", "process"]
LINE_LIMIT = 16 * 1024 * 1024


def is_sleep(seconds):
    want = ["sleep", str(seconds)]
    return lambda p: p.cmdline == want


# ============================================================================ lifecycle

class InitializeTests(ServerTest):

    def test_supported_versions_are_echoed(self):
        for v in VERSIONS:
            with self.subTest(version=v):
                s = self.start()
                r = s.request("initialize", {"protocolVersion": v, "capabilities": {},
                                             "clientInfo": {"name": "t", "version": "0"}})
                self.assertIn("result", r, r)
                self.assertEqual(r["result"]["protocolVersion"], v)

    def test_unknown_versions_get_newest(self):
        for v in ["1999-01-01", "2026-07-28", "", "latest"]:
            with self.subTest(version=v):
                s = self.start()
                r = s.request("initialize", {"protocolVersion": v, "capabilities": {}})
                self.assertIn("result", r, r)
                self.assertEqual(r["result"]["protocolVersion"], NEWEST)

    def test_result_shape(self):
        s = self.start()
        res = s.initialize("2025-06-18")
        self.assertIsInstance(res.get("capabilities"), dict, res)
        self.assertIsInstance(res["capabilities"].get("tools"), dict, res)
        self.assertIsInstance(res.get("serverInfo"), dict, res)
        self.assertEqual(res["serverInfo"].get("name"), "shellwire")
        self.assertIsInstance(res["serverInfo"].get("version"), str)
        s.ping()

    def test_missing_protocol_version_is_invalid_params(self):
        s = self.start()
        self.assertError(s.request("initialize", {"capabilities": {}}), -32602)
        self.assertError(s.request("initialize", {"protocolVersion": 20250618}), -32602)
        self.assertError(s.request("initialize"), -32602)
        # The session is still usable and a proper initialize works afterwards.
        self.assertEqual(s.initialize("2025-03-26")["protocolVersion"], "2025-03-26")


class BasicMethodTests(ServerTest):

    def test_ping_before_and_after_initialize(self):
        s = self.start()
        self.assertEqual(s.request("ping", rid=1)["result"], {})
        s.initialize()
        self.assertEqual(s.request("ping", rid=2)["result"], {})
        self.assertEqual(s.request("ping", {}, rid=3)["result"], {})

    def test_tools_list(self):
        s = self.start()
        s.initialize()
        r = s.request("tools/list")
        tools = r["result"]["tools"]
        self.assertEqual([t["name"] for t in tools], EXPECTED_TOOLS)
        for t in tools:
            with self.subTest(tool=t["name"]):
                for k in ("inputSchema", "outputSchema", "annotations"):
                    self.assertIsInstance(t.get(k), dict, k)
                self.assertIsInstance(t.get("description"), str)
                self.assertTrue(t["description"].strip())
                self.assertEqual(t["inputSchema"].get("type"), "object")
                self.assertEqual(t["outputSchema"].get("type"), "object")
        term = tools[0]
        self.assertIn("command", term["inputSchema"]["properties"])
        self.assertIn("command", term["inputSchema"].get("required", []))
        for k in ("output", "exit_code", "error"):
            self.assertIn(k, term["outputSchema"]["properties"])
        self.assertNotIn("task_id", term["inputSchema"]["properties"])   # not advertised

    def test_tools_list_cursor(self):
        s = self.start()
        s.initialize()
        self.assertIn("tools", s.request("tools/list", {"cursor": None})["result"])
        self.assertIn("tools", s.request("tools/list", {})["result"])
        self.assertError(s.request("tools/list", {"cursor": "no-such-page"}), -32602)
        self.assertError(s.request("tools/list", {"cursor": "x" * 100}), -32602)

    def test_logging_set_level(self):
        s = self.start()
        s.initialize()
        for lv in ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"):
            with self.subTest(level=lv):
                self.assertEqual(s.request("logging/setLevel", {"level": lv}).get("result"), {})
        for bad in ("verbose", "DEBUG", "", 3, None):
            with self.subTest(level=bad):
                self.assertError(s.request("logging/setLevel", {"level": bad}), -32602)
        self.assertError(s.request("logging/setLevel", {}), -32602)

    def test_unknown_methods(self):
        s = self.start()
        s.initialize()
        for m in ("server/discover", "foo", "tools/Call", "initialize/x", ""):
            with self.subTest(method=m):
                r = s.request(m, {})
                self.assertError(r, -32601)

    def test_notifications_get_no_response(self):
        s = self.start()
        s.initialize()
        n0 = s.message_count()
        s.notify("notifications/initialized")
        s.notify("notifications/some-unknown-thing", {"x": 1})
        s.notify("ping")                        # a notification, even if the method exists
        s.notify("tools/list")
        s.notify("notifications/cancelled", {"requestId": "never-sent"})
        s.notify("notifications/cancelled")     # malformed cancellation: ignored
        s.request("ping", rid="after-notifications")
        # Give a (wrong) late answer to the notifications a moment to show up.
        time.sleep(0.2)
        after = s.messages_after(n0)
        self.assertEqual(after, [{"jsonrpc": "2.0", "id": "after-notifications", "result": {}}])


class IdTests(ServerTest):

    IDS = ["abc", "", 0, 1, -1, -42, 1795305602568, 9007199254740993, 2 ** 63 - 1,
           "ünïcödé-ид-😀", "with \"quotes\" and \\ and \n newline", "1"]

    def test_ids_echoed_exactly(self):
        s = self.start()
        s.initialize()
        for rid in self.IDS:
            with self.subTest(id=rid):
                r = s.request("ping", rid=rid)
                self.assertEqual(swclient.id_key(r["id"]), swclient.id_key(rid))
                self.assertEqual(r.get("result"), {})

    def test_ids_echoed_in_errors_and_tool_calls(self):
        s = self.start()
        s.initialize()
        r = s.request("no/such/method", rid=9007199254740993)
        self.assertEqual(swclient.id_key(r["id"]), "9007199254740993")
        self.assertError(r, -32601)
        r = s.call({"command": "echo ok"}, rid="calls-ünï")
        self.assertEqual(r["id"], "calls-ünï")
        r = s.call({"command": "echo ok"}, rid=0)
        self.assertEqual(swclient.id_key(r["id"]), "0")
        r = s.call({"command": "echo ok"}, rid=1795305602568)
        self.assertEqual(swclient.id_key(r["id"]), "1795305602568")

    def test_null_id_is_invalid(self):
        s = self.start()
        s.initialize()
        n0 = s.message_count()
        s.send({"jsonrpc": "2.0", "id": None, "method": "ping"})
        s.ping()
        got = [m for m in s.messages_after(n0) if m.get("result") != {}]
        self.assertEqual(len(got), 1, got)
        self.assertIsNone(got[0]["id"])
        self.assertError(got[0], -32600)


# ============================================================================ batches

class BatchTests(ServerTest):

    def batch_session(self, version="2025-03-26"):
        s = self.start()
        s.initialize(version)
        return s

    def test_batch_under_2025_03_26(self):
        s = self.batch_session()
        s.send([{"jsonrpc": "2.0", "id": "b1", "method": "ping"},
                {"jsonrpc": "2.0", "id": "b2", "method": "tools/list"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"}])
        arrays = s.wait_arrays(1)
        self.assertEqual(len(arrays), 1, arrays)
        ans = {a["id"]: a for a in arrays[0]}
        self.assertEqual(sorted(ans), ["b1", "b2"])
        self.assertEqual(ans["b1"]["result"], {})
        self.assertEqual([t["name"] for t in ans["b2"]["result"]["tools"]], EXPECTED_TOOLS)
        # The individual answers are not also sent outside the array.
        s.ping()
        self.assertFalse(s.has_response("b1"))

    def test_batch_with_tool_call_and_errors(self):
        s = self.batch_session()
        s.send([{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                 "params": {"name": "terminal", "arguments": {"command": "sleep 0.3; echo batched"}}},
                {"jsonrpc": "2.0", "id": 2, "method": "nope"},
                1,
                {"jsonrpc": "2.0", "id": 3, "method": "ping"}])
        arrays = s.wait_arrays(1, timeout=15)
        self.assertEqual(len(arrays), 1)
        arr = arrays[0]
        self.assertEqual(len(arr), 4, arr)
        by = {swclient.id_key(a["id"]): a for a in arr}
        swclient.check_tool_result(by["1"]["result"])
        self.assertEqual(by["1"]["result"]["structuredContent"]["output"], "batched")
        self.assertEqual(by["2"]["error"]["code"], -32601)
        self.assertEqual(by["3"]["result"], {})
        self.assertEqual(by["null"]["error"]["code"], -32600)

    def test_initialize_inside_batch_is_an_error_element(self):
        s = self.batch_session()
        s.send([{"jsonrpc": "2.0", "id": "i1", "method": "initialize",
                 "params": {"protocolVersion": "2025-03-26", "capabilities": {}}},
                {"jsonrpc": "2.0", "id": "p1", "method": "ping"}])
        arr = s.wait_arrays(1)[0]
        by = {a["id"]: a for a in arr}
        self.assertEqual(set(by), {"i1", "p1"})
        self.assertIn("error", by["i1"])
        self.assertIn(by["i1"]["error"]["code"], (-32600, -32602))
        self.assertEqual(by["p1"]["result"], {})

    def test_empty_batch_is_single_invalid_request(self):
        s = self.batch_session()
        n0 = s.message_count()
        s.send_raw("[]\n")
        s.ping()
        got = [m for m in s.messages_after(n0) if not (isinstance(m, dict) and m.get("result") == {})]
        self.assertEqual(len(got), 1, got)
        self.assertIsInstance(got[0], dict, "an empty batch must get one error object, not an array")
        self.assertIsNone(got[0]["id"])
        self.assertError(got[0], -32600)

    def test_batch_of_notifications_gets_nothing(self):
        s = self.batch_session()
        n0 = s.message_count()
        s.send([{"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "method": "notifications/whatever"}])
        s.request("ping", rid="after")
        time.sleep(0.2)
        self.assertEqual(s.messages_after(n0), [{"jsonrpc": "2.0", "id": "after", "result": {}}])

    def test_array_rejected_in_other_versions(self):
        for version in (None, "2024-11-05", "2025-06-18", "2025-11-25"):
            with self.subTest(version=version):
                s = self.start()
                if version:
                    s.initialize(version)
                n0 = s.message_count()
                s.send([{"jsonrpc": "2.0", "id": "x1", "method": "ping"},
                        {"jsonrpc": "2.0", "id": "x2", "method": "ping"}])
                s.ping()
                got = [m for m in s.messages_after(n0) if not (isinstance(m, dict) and m.get("result") == {}
                                                             and str(m.get("id")).startswith("ping-"))]
                self.assertEqual(len(got), 1, got)
                self.assertIsInstance(got[0], dict)
                self.assertIsNone(got[0]["id"])
                self.assertError(got[0], -32600)
                self.assertFalse(s.has_response("x1"))


# ============================================================================ malformed input

def _req(rid, method, params=None, **extra):
    m = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        m["params"] = params
    m.update(extra)
    return (json.dumps(m) + "\n").encode()


def _call(rid, arguments, name="terminal"):
    return _req(rid, "tools/call", {"name": name, "arguments": arguments})


def _padded_ping(rid, size):
    """A valid ping line of exactly `size` bytes (without the newline)."""
    head = '{"jsonrpc":"2.0","id":"%s","method":"ping","params":{"pad":"' % rid
    tail = '"}}'
    return (head + "a" * (size - len(head) - len(tail)) + tail).encode() + b"\n"


# Each case: name, line(s) to send, expectation.
#   ("error", code(s), allowed ids, text that the message must contain or None)
#   ("tool_error", id, text the error must mention or None)
#   ("silent",)            nothing at all is written
#   ("result", id)         answered normally
#   ("error_or_answer", id) either a -32700 parse error with id null, or any answer for id
MALFORMED = [
    ("open_brace", b"{\n", ("error", -32700, [None], None)),
    ("truncated_json", b'{"jsonrpc":"2.0","id":"t1","method":"ping"\n', ("error", -32700, [None], None)),
    ("plain_text", b"hello there\n", ("error", -32700, [None], None)),
    ("single_quotes", b"{'jsonrpc':'2.0','id':1,'method':'ping'}\n", ("error", -32700, [None], None)),
    ("trailing_comma", b'{"jsonrpc":"2.0","id":"tc","method":"ping",}\n', ("error", -32700, [None], None)),
    ("trailing_garbage", b'{"jsonrpc":"2.0","id":"tg","method":"ping"}}\n', ("error", -32700, [None], None)),
    ("two_objects_one_line", b'{"jsonrpc":"2.0","id":"o1","method":"ping"} {"jsonrpc":"2.0","id":"o2","method":"ping"}\n',
     ("error", -32700, [None], None)),
    ("nan_id", b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}\n', ("error", -32700, [None], None)),
    ("bare_number", b"42\n", ("error", -32600, [None], None)),
    ("bare_string", b'"hello"\n', ("error", -32600, [None], None)),
    ("bare_null", b"null\n", ("error", -32600, [None], None)),
    ("bare_true", b"true\n", ("error", -32600, [None], None)),
    ("array_of_numbers", b"[1,2,3]\n", ("error", -32600, [None], None)),
    ("jsonrpc_1_0", _req("v1", "ping", jsonrpc="1.0"), ("error", -32600, ["v1", None], None)),
    ("jsonrpc_number", _req("v2", "ping", jsonrpc=2), ("error", -32600, ["v2", None], None)),
    ("jsonrpc_missing", b'{"id":"v3","method":"ping"}\n', ("error", -32600, ["v3", None], None)),
    ("null_id", b'{"jsonrpc":"2.0","id":null,"method":"ping"}\n', ("error", -32600, [None], None)),
    ("object_id", b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}\n', ("error", -32600, [None], None)),
    ("array_id", b'{"jsonrpc":"2.0","id":[1],"method":"ping"}\n', ("error", -32600, [None], None)),
    ("boolean_id", b'{"jsonrpc":"2.0","id":true,"method":"ping"}\n', ("error", -32600, [None], None)),
    ("missing_method", b'{"jsonrpc":"2.0","id":"mm"}\n', ("error", -32600, ["mm", None], None)),
    ("method_not_string", b'{"jsonrpc":"2.0","id":"mn","method":123}\n', ("error", -32600, ["mn", None], None)),
    ("params_string", _req("ps", "ping", "oops"), ("error", (-32600, -32602), ["ps", None], None)),
    ("params_array_tools_call", _req("pa", "tools/call", ["terminal", {"command": "echo x"}]),
     ("error", -32602, ["pa"], None)),
    ("invalid_utf8_in_string", b'{"jsonrpc":"2.0","id":"u8","method":"ping","params":{"x":"a\xff\xfeb"}}\n',
     ("error_or_answer", "u8")),
    ("invalid_utf8_in_command", b'{"jsonrpc":"2.0","id":"u8c","method":"tools/call","params":{"name":"terminal",'
     b'"arguments":{"command":"echo \xc3\x28 \xed\xa0\x80 \xff"}}}\n', ("error_or_answer", "u8c")),
    ("lone_surrogate_escape", b'{"jsonrpc":"2.0","id":"ls","method":"ping","params":{"x":"\\ud800"}}\n',
     ("error_or_answer", "ls")),
    ("lone_surrogate_in_command", b'{"jsonrpc":"2.0","id":"lsc","method":"tools/call","params":{"name":"terminal",'
     b'"arguments":{"command":"echo \\udc80-\\ud83d"}}}\n', ("error_or_answer", "lsc")),
    ("line_over_limit", lambda: _padded_ping("big", LINE_LIMIT + 1),
     ("error", -32600, [None], "16777216")),
    ("line_under_limit", lambda: _padded_ping("big-ok", LINE_LIMIT - 1), ("result", "big-ok")),
    ("crlf_line_ending", b'{"jsonrpc":"2.0","id":"crlf","method":"ping"}\r\n', ("result", "crlf")),
    ("blank_lines", b"\n\n   \n\t\n\r\n", ("silent",)),
    ("response_object_result", b'{"jsonrpc":"2.0","id":"resp","result":{}}\n', ("silent",)),
    ("response_object_error", b'{"jsonrpc":"2.0","id":"resp2","error":{"code":-1,"message":"no"}}\n', ("silent",)),
    ("tools_call_without_params", _req("np", "tools/call"), ("error", -32602, ["np"], None)),
    ("tools_call_without_name", _req("nn", "tools/call", {"arguments": {"command": "echo x"}}),
     ("error", -32602, ["nn"], None)),
    ("tools_call_name_not_string", _req("ns", "tools/call", {"name": 7, "arguments": {"command": "echo"}}),
     ("error", -32602, ["ns"], None)),
    ("tools_call_arguments_string", _req("as", "tools/call", {"name": "terminal", "arguments": "echo x"}),
     ("error", -32602, ["as"], None)),
    ("tools_call_arguments_array", _req("aa", "tools/call", {"name": "terminal", "arguments": ["echo x"]}),
     ("error", -32602, ["aa"], None)),
    ("unknown_tool", _call("ut", {"command": "echo x"}, name="no_such_tool_zz"),
     ("error", -32602, ["ut"], "no_such_tool_zz")),
    ("command_wrong_type", _call("cw", {"command": 123}), ("tool_error", "cw", None)),
    ("command_array", _call("ca", {"command": ["echo", "x"]}), ("tool_error", "ca", None)),
    ("command_missing", _call("cm", {}), ("tool_error", "cm", "command")),
    ("command_null", _call("cn", {"command": None}), ("tool_error", "cn", "command")),
    ("timeout_zero", _call("t0", {"command": "echo x", "timeout": 0}), ("tool_error", "t0", "timeout")),
    ("timeout_negative", _call("t-", {"command": "echo x", "timeout": -5}), ("tool_error", "t-", "timeout")),
    ("timeout_string", _call("ts", {"command": "echo x", "timeout": "10"}), ("tool_error", "ts", "timeout")),
    ("timeout_fraction", _call("tf", {"command": "echo x", "timeout": 1.5}), ("tool_error", "tf", "timeout")),
    ("timeout_bool", _call("tb", {"command": "echo x", "timeout": True}), ("tool_error", "tb", "timeout")),
    ("timeout_over_max", _call("tm", {"command": "echo x", "timeout": 601}), ("tool_error", "tm", "background")),
    ("timeout_huge", _call("th", {"command": "echo x", "timeout": 10 ** 15}), ("tool_error", "th", "background")),
    ("workdir_relative", _call("wr", {"command": "pwd", "workdir": "some/relative/dir"}),
     ("tool_error", "wr", "workdir")),
    ("workdir_not_string", _call("wn", {"command": "pwd", "workdir": 5}), ("tool_error", "wn", "workdir")),
    ("background_string", _call("bs", {"command": "echo x", "background": "yes"}),
     ("tool_error", "bs", "background")),
    ("pty_without_background", _call("pt", {"command": "echo x", "pty": True}), ("tool_error", "pt", "background")),
    ("nul_in_command", _call("nul", {"command": "echo a\u0000b"}), ("tool_error", "nul", None)),
]


class MalformedInputTests(ServerTest):
    """Every malformed input gets its specific answer (or none), a following ping is answered,
    and stdout never carries anything but JSON-RPC lines (checked in tearDown)."""

    def check_case(self, line, expect):
        s = self.start()
        s.initialize("2025-06-18")
        data = line() if callable(line) else line
        n0 = s.message_count()
        s.send_raw(data)
        ping_id = "ping-after-%s" % uuid.uuid4().hex[:8]
        r = s.request("ping", rid=ping_id, timeout=30)
        self.assertEqual(r.get("result"), {}, r)

        def others():
            return [m for m in s.messages_after(n0) if not (isinstance(m, dict) and m.get("id") == ping_id)]

        kind = expect[0]
        if kind == "error":
            _, codes, ids, text = expect
            codes = codes if isinstance(codes, tuple) else (codes,)
            got = s.wait_for(lambda: others() or None, timeout=10) or []
            self.assertEqual(len(got), 1, "expected exactly one answer, got %r" % (got,))
            m = got[0]
            self.assertIsInstance(m, dict, m)
            self.assertIn("error", m, m)
            self.assertIn(m["error"].get("code"), codes, m)
            self.assertIn(swclient.id_key(m["id"]), [swclient.id_key(i) for i in ids], m)
            self.assertIsInstance(m["error"].get("message"), str)
            if text:
                self.assertIn(text, m["error"]["message"], m)
        elif kind == "tool_error":
            _, rid, mention = expect
            resp = s.wait_response(rid, timeout=10)
            self.assertToolError(resp, mention)
            self.assertEqual(resp["result"]["structuredContent"].get("status"), "error")
            self.assertEqual(len(others()), 1, others())
        elif kind == "silent":
            time.sleep(0.2)
            self.assertEqual(others(), [])
        elif kind == "result":
            _, rid = expect
            resp = s.wait_response(rid, timeout=10)
            self.assertIn("result", resp, resp)
            self.assertEqual(len(others()), 1, others())
        elif kind == "error_or_answer":
            _, rid = expect
            got = s.wait_for(lambda: others() or None, timeout=15) or []
            self.assertEqual(len(got), 1, "expected exactly one answer, got %r" % (got,))
            m = got[0]
            if m.get("id") is None:
                self.assertError(m, -32700)
            else:
                self.assertEqual(m["id"], rid)
                if "result" in m and "content" in m["result"]:
                    swclient.check_tool_result(m["result"])
        else:
            raise AssertionError("bad case kind %r" % kind)
        # The server still works after the bad input.
        s.ping()
        if kind != "silent":
            self.assertIn("output", s.run("echo still-alive"))

    def test_all_cases_in_one_session(self):
        """The whole table through one server: nothing accumulates or breaks."""
        s = self.start()
        s.initialize("2025-06-18")
        for name, line, expect in MALFORMED:
            if name.startswith("line_"):
                continue
            s.send_raw(line() if callable(line) else line)
        s.ping(timeout=20)
        for name, line, expect in MALFORMED:
            if expect[0] in ("tool_error", "result") and not name.startswith("line_"):
                s.wait_response(expect[1], timeout=20)
        self.assertEqual(s.run("echo fine")["output"], "fine")
        self.assertTrue(s.alive())


def _make_case(line, expect):
    def test(self):
        self.check_case(line, expect)
    return test


for _name, _line, _expect in MALFORMED:
    setattr(MalformedInputTests, "test_" + _name, _make_case(_line, _expect))


class LineLimitTests(ServerTest):

    def test_over_limit_line_sent_in_pieces(self):
        """The rejected line arrives slowly in chunks; the next line is read normally."""
        s = self.start()
        s.initialize()
        n0 = s.message_count()
        data = _padded_ping("slow-big", LINE_LIMIT + 4096)
        step = 1 << 20
        for i in range(0, len(data) - 1, step):
            s.send_raw(data[i:min(i + step, len(data) - 1)])
        s.send_raw(b'\n{"jsonrpc":"2.0","id":"next","method":"ping"}\n')
        self.assertEqual(s.wait_response("next", timeout=20)["result"], {})
        errs = [m for m in s.messages_after(n0) if m.get("id") is None]
        self.assertEqual(len(errs), 1, errs)
        self.assertError(errs[0], -32600)
        self.assertFalse(s.has_response("slow-big"))

    def test_configured_line_limit(self):
        s = self.start(env={"SHELLWIRE_MAX_LINE_BYTES": "2048"})
        s.initialize()
        n0 = s.message_count()
        s.send_raw(_padded_ping("x2049", 2049))
        s.send_raw(_padded_ping("x2048", 2048))
        self.assertEqual(s.wait_response("x2048")["result"], {})
        errs = [m for m in s.messages_after(n0) if m.get("id") is None]
        self.assertEqual(len(errs), 1, errs)
        self.assertError(errs[0], -32600, "2048")


# ============================================================================ tool results

class ToolResultTests(ServerTest):

    def test_text_content_mirrors_structured_content(self):
        s = self.start()
        s.initialize()
        r = s.call({"command": "echo hello; echo ünï 😀"})
        res = r["result"]
        self.assertEqual(res["content"][0]["type"], "text")
        self.assertEqual(json.loads(res["content"][0]["text"]), res["structuredContent"])
        self.assertIs(res["isError"], False)
        self.assertEqual(res["structuredContent"]["output"], "hello\nünï 😀")
        self.assertEqual(res["structuredContent"]["exit_code"], 0)
        self.assertIsNone(res["structuredContent"]["error"])

    def test_nonzero_exit_is_not_an_error(self):
        s = self.start()
        s.initialize()
        r = s.call({"command": "echo before; exit 3"})
        res = r["result"]
        self.assertIs(res["isError"], False)
        sc = res["structuredContent"]
        self.assertEqual(sc["exit_code"], 3)
        self.assertIsNone(sc["error"])
        self.assertEqual(sc["output"], "before")
        self.assertNotIn("status", sc)

    def test_timeout_boundaries_accepted(self):
        s = self.start()
        s.initialize()
        for t in (1, 600, None):
            with self.subTest(timeout=t):
                sc = s.run("echo t", timeout=t)
                self.assertOk(sc)
                self.assertEqual(sc["output"], "t")

    def test_unknown_extra_arguments_ignored(self):
        s = self.start()
        s.initialize()
        sc = s.run("echo extra", frobnicate=True, another={"x": 1})
        self.assertOk(sc)
        self.assertEqual(sc["output"], "extra")

    def test_arguments_null_or_missing(self):
        s = self.start()
        s.initialize()
        s.send({"jsonrpc": "2.0", "id": "an", "method": "tools/call",
                "params": {"name": "terminal", "arguments": None}})
        r = s.wait_response("an")
        self.assertTrue("error" in r or r["result"]["isError"] is True, r)
        s.send({"jsonrpc": "2.0", "id": "am", "method": "tools/call", "params": {"name": "terminal"}})
        r = s.wait_response("am")
        self.assertTrue("error" in r or r["result"]["isError"] is True, r)


# ============================================================================ fixture mode

class FixtureTests(ServerTest):

    def write_fixture(self, lines, final_newline=True):
        fd, path = tempfile.mkstemp(prefix="swfixture-", suffix=".jsonl")
        with os.fdopen(fd, "wb") as f:
            data = "\n".join(json.dumps(m) for m in lines)
            f.write(data.encode() + (b"\n" if final_newline else b""))
        self.addCleanup(os.unlink, path)
        return path

    @staticmethod
    def tc(rid, command):
        return {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                "params": {"name": "terminal", "arguments": {"command": command}}}

    def test_calls_before_initialize_piped(self):
        lines = [self.tc(1, "echo one"),
                 self.tc(2, "sleep 1; echo done"),
                 {"jsonrpc": "2.0", "id": 3, "method": "ping"},
                 {"jsonrpc": "2.0", "id": 4, "method": "tools/list"},
                 self.tc("five", "echo five >&2")]
        s = self.start(stdin_file=self.write_fixture(lines))
        t0 = time.monotonic()
        rc = s.wait_exit(20)
        self.assertIsNotNone(rc, "server did not exit after stdin EOF")
        self.assertEqual(rc, 0, s.stderr_tail())
        self.assertGreaterEqual(time.monotonic() - t0, 0.9, "did not wait for the sleep 1 call")
        for rid in (1, 2, 3, 4, "five"):
            self.assertEqual(len(s.responses_for(rid)), 1, "id %r: %r" % (rid, s.responses_for(rid)))
        out = {rid: s.responses_for(rid)[0]["result"]["structuredContent"]["output"] for rid in (1, 2, "five")}
        self.assertEqual(out, {1: "one", 2: "done", "five": "five"})
        self.assertIn("initialize", s.stderr_tail().lower(), "no warning about the missing initialize")

    def test_last_line_without_newline(self):
        lines = [{"jsonrpc": "2.0", "id": 1, "method": "ping"}, self.tc(2, "echo last")]
        s = self.start(stdin_file=self.write_fixture(lines, final_newline=False))
        self.assertEqual(s.wait_exit(15), 0)
        self.assertEqual(s.responses_for(2)[0]["result"]["structuredContent"]["output"], "last")

    def test_eof_waits_for_inflight_call_on_pipe(self):
        s = self.start()
        s.send_call({"command": "sleep 1; echo late"}, rid="late")
        s.close_stdin()
        self.assertEqual(s.wait_exit(15), 0)
        self.assertEqual(s.responses_for("late")[0]["result"]["structuredContent"]["output"], "late")


# ============================================================================ progress

class ProgressTests(ServerTest):

    LOOP = "for i in 1 2 3; do echo line$i; sleep 1; done"

    def progress_for(self, s, token):
        with s.cv:
            return [(seq, m) for seq, m in s.notifications
                    if m.get("method") == "notifications/progress"
                    and swclient.id_key(m.get("params", {}).get("progressToken")) == swclient.id_key(token)]

    def check_progress(self, token):
        s = self.start()
        s.initialize()
        rid = s.send_call({"command": self.LOOP}, meta={"progressToken": token})
        resp = s.wait_response(rid, timeout=20)
        self.assertEqual(resp["result"]["structuredContent"]["output"], "line1\nline2\nline3")
        with s.cv:
            resp_seq = next(seq for seq, _, m in s.messages if isinstance(m, dict) and m.get("id") == rid)
        notes = self.progress_for(s, token)
        self.assertGreaterEqual(len(notes), 2, notes)
        self.assertTrue(all(seq < resp_seq for seq, _ in notes), "progress after the response")
        values = [m["params"]["progress"] for _, m in notes]
        self.assertTrue(all(isinstance(v, (int, float)) for v in values), values)
        self.assertTrue(all(b > a for a, b in zip(values, values[1:])), values)
        for _, m in notes:
            self.assertIsInstance(m["params"].get("message"), str, m)
            self.assertEqual(type(m["params"]["progressToken"]), type(token))
        self.assertTrue(any(re.search(r"line[123]", m["params"]["message"]) for _, m in notes),
                        "no progress message carries an output line: %r" % notes)
        times = [t for seq, t, m in s.messages if m.get("method") == "notifications/progress"]
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(g > 0.5 for g in gaps), "progress more often than every 1 s: %r" % gaps)

    def test_progress_string_token(self):
        self.check_progress("tok-ünï")

    def test_progress_integer_token(self):
        self.check_progress(77)

    def test_no_token_no_progress(self):
        s = self.start()
        s.initialize()
        s.run("for i in 1 2; do echo l$i; sleep 1; done", timeout=20)
        with s.cv:
            self.assertEqual([m for _, m in s.notifications if m.get("method") == "notifications/progress"], [])


# ============================================================================ cancellation

class CancellationTests(ServerTest):

    def test_cancel_running_call(self):
        s = self.start()
        s.initialize()
        rid = s.send_call({"command": "echo starting; sleep 30"}, rid="to-cancel")
        procs = wait_until(lambda: s.find_procs(is_sleep(30)), 10)
        self.assertTrue(procs, "sleep 30 never started")
        t0 = time.monotonic()
        s.notify("notifications/cancelled", {"requestId": rid, "reason": "test"})
        gone = wait_until(lambda: not s.find_procs(is_sleep(30)), 2.0)
        self.assertTrue(gone, "sleep 30 still runs after cancellation: %r" % s.find_procs(is_sleep(30)))
        left = 2.0 - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
        self.assertEqual(s.responses_for(rid), [], "a cancelled request must not be answered")
        s.ping(timeout=2)
        # The environment keeps working.
        self.assertEqual(s.run("echo after")["output"], "after")
        self.assertEqual(s.responses_for(rid), [])

    def test_cancel_unknown_or_finished_request_is_harmless(self):
        s = self.start()
        s.initialize()
        self.assertEqual(s.run("echo a")["output"], "a")
        s.notify("notifications/cancelled", {"requestId": 1001})
        s.notify("notifications/cancelled", {"requestId": "nope"})
        s.notify("notifications/cancelled", {"requestId": None})
        s.ping()
        self.assertEqual(s.run("echo b")["output"], "b")

    def test_cancel_only_the_named_request(self):
        s = self.start()
        s.initialize()
        a = s.send_call({"command": "sleep 31", "task_id": "A"}, rid="A")
        b = s.send_call({"command": "sleep 2; echo b-done", "task_id": "B"}, rid="B")
        self.assertTrue(wait_until(lambda: s.find_procs(is_sleep(31)), 10))
        s.notify("notifications/cancelled", {"requestId": a})
        r = s.wait_response(b, timeout=10)
        self.assertEqual(r["result"]["structuredContent"]["output"], "b-done")
        self.assertTrue(wait_until(lambda: not s.find_procs(is_sleep(31)), 2))
        self.assertEqual(s.responses_for(a), [])


# ============================================================================ concurrency

class ConcurrencyTests(ServerTest):

    def test_ping_and_list_during_long_call(self):
        s = self.start()
        s.initialize()
        rid = s.send_call({"command": "sleep 5"}, rid="long")
        self.assertTrue(wait_until(lambda: s.find_procs(is_sleep(5)), 10))
        for method in ("ping", "tools/list", "ping"):
            t0 = time.monotonic()
            r = s.request(method, rid="c-%s-%f" % (method, t0), timeout=5)
            dt = time.monotonic() - t0
            self.assertIn("result", r)
            self.assertLess(dt, 0.5, "%s took %.2fs while a command ran" % (method, dt))
        # Another environment is not blocked either.
        t0 = time.monotonic()
        sc = s.run("echo other", task_id="other-task", timeout=10)
        self.assertEqual(sc["output"], "other")
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertFalse(s.has_response(rid))
        s.notify("notifications/cancelled", {"requestId": rid})
        self.assertTrue(wait_until(lambda: not s.find_procs(is_sleep(5)), 2))

    def test_parallel_calls_in_different_tasks(self):
        s = self.start()
        s.initialize()
        t0 = time.monotonic()
        ids = [s.send_call({"command": "sleep 1; echo t%d" % i, "task_id": "t%d" % i}) for i in range(8)]
        outs = [s.wait_response(i, timeout=20)["result"]["structuredContent"]["output"] for i in ids]
        self.assertEqual(outs, ["t%d" % i for i in range(8)])
        self.assertLess(time.monotonic() - t0, 7.5, "8 one-second calls in separate tasks ran one by one (that takes 8 s)")


# ============================================================================ shutdown

class ShutdownTests(ServerTest):

    def signal_during_call(self, sig):
        s = self.start()
        s.initialize()
        s.send_call({"command": "sleep 100"}, rid="victim")
        self.assertTrue(wait_until(lambda: s.find_procs(is_sleep(100)), 10), "sleep 100 never started")
        t0 = time.monotonic()
        s.proc.send_signal(sig)
        rc = s.wait_exit(2.0)
        dt = time.monotonic() - t0
        self.assertIsNotNone(rc, "server still running 2 s after %s" % sig.name)
        self.assertEqual(rc, 0, "exit status after %s" % sig.name)
        self.assertLess(dt, 2.0)
        left = wait_until(lambda: not tagged_procs(s.tag), 0.5)
        self.assertTrue(left, "left behind: %r" % tagged_procs(s.tag))

    def test_sigterm_during_call(self):
        self.signal_during_call(signal.SIGTERM)

    def test_sigint_during_call(self):
        self.signal_during_call(signal.SIGINT)

    def test_stdin_eof_kills_background_leftovers(self):
        s = self.start()
        s.initialize()
        sc = s.run("sleep 300 & echo started", timeout=10)
        self.assertEqual(sc["output"], "started")
        self.assertTrue(wait_until(lambda: s.find_procs(is_sleep(300)), 5))
        s.close_stdin()
        rc = s.wait_exit(5)
        self.assertEqual(rc, 0)
        self.assertTrue(wait_until(lambda: not tagged_procs(s.tag), 1.0),
                        "left behind: %r" % tagged_procs(s.tag))

    def test_sigterm_kills_background_leftovers(self):
        s = self.start()
        s.initialize()
        sc = s.run("(sleep 301 &); bash -c 'setsid sleep 302 >/dev/null 2>&1 </dev/null &'; echo ok",
                   timeout=10)
        self.assertEqual(sc["output"], "ok", sc)
        self.assertTrue(wait_until(lambda: len(s.find_procs(lambda p: p.comm == "sleep")) >= 2, 5))
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.wait_exit(2.0), 0)
        self.assertTrue(wait_until(lambda: not tagged_procs(s.tag), 0.5),
                        "left behind: %r" % tagged_procs(s.tag))

    def test_sigterm_idle(self):
        s = self.start()
        s.initialize()
        s.run("echo warm")
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.wait_exit(2.0), 0)

    def test_stdout_closed_by_client(self):
        """SIGPIPE is ignored: the server notices the closed pipe and exits cleanly."""
        s = self.start(reader=False)
        s.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}\n')
        s.proc.stdout.close()
        try:
            s.send_call({"command": "sleep 0.2; echo into-the-void"})
            s.send({"jsonrpc": "2.0", "id": "p", "method": "ping"})
        except swclient.ServerGone:
            pass
        rc = s.wait_exit(5)
        self.assertIsNotNone(rc, "server keeps running with its stdout closed")
        self.assertNotEqual(rc, -signal.SIGPIPE, "killed by SIGPIPE")


# ============================================================================ command line

class CommandLineTests(ServerTest):

    def run_bin(self, *args, env=None, timeout=10):
        tag = uuid.uuid4().hex
        e = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "SHELLWIRE_"))}
        e[swclient.TAG_VAR] = tag
        e["SHELLWIRE_STATE_DIR"] = tempfile.mkdtemp(prefix="swtest-cli-")
        e.update(env or {})
        self.addCleanup(lambda: shutil.rmtree(e["SHELLWIRE_STATE_DIR"], ignore_errors=True))
        p = subprocess.run([swclient.BIN, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           env=e, timeout=timeout)
        self.assertEqual(tagged_procs(tag), [])
        return p

    def test_print_tools(self):
        p = self.run_bin("--print-tools")
        self.assertEqual(p.returncode, 0, p.stderr)
        data = json.loads(p.stdout)
        tools = data["tools"] if isinstance(data, dict) else data
        self.assertEqual([t["name"] for t in tools], EXPECTED_TOOLS)
        self.assertIn("inputSchema", tools[0])

    def test_version(self):
        p = self.run_bin("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"\d+\.\d+\.\d+")

    def test_help(self):
        p = self.run_bin("--help")
        self.assertEqual(p.returncode, 0)
        text = p.stdout.decode()
        self.assertIn("--timeout", text)
        self.assertIn("TERMINAL_TIMEOUT", text)

    BAD = [
        ({"TERMINAL_TIMEOUT": "abc"}, [], "TERMINAL_TIMEOUT"),
        ({"TERMINAL_TIMEOUT": "0"}, [], "TERMINAL_TIMEOUT"),
        ({"SHELLWIRE_MAX_OUTPUT_CHARS": "-1"}, [], "SHELLWIRE_MAX_OUTPUT_CHARS"),
        ({"SHELLWIRE_MAX_OUTPUT_CHARS": "12abc"}, [], "SHELLWIRE_MAX_OUTPUT_CHARS"),
        ({"TERMINAL_ENV": "nonsense"}, [], "TERMINAL_ENV"),
        ({"TERMINAL_CWD": "relative/path"}, [], "TERMINAL_CWD"),
        ({}, ["--timeout", "0"], "--timeout"),
        ({}, ["--timeout=-3"], "--timeout"),
        ({}, ["--bogus-flag"], "--bogus-flag"),
        ({}, ["--timeout"], "--timeout"),
        ({}, ["stray-argument"], "stray-argument"),
    ]

    def test_malformed_configuration(self):
        for env, args, name in self.BAD:
            with self.subTest(env=env, args=args):
                s = self.start(args=args, env=env)
                rc = s.wait_exit(5)           # stdin stays open: a server that runs would hang
                self.assertIsNotNone(rc, "server started despite a bad %s" % name)
                self.assertNotEqual(rc, 0)
                self.assertIn(name, s.stderr_tail())
                self.assertEqual(s.lines, 0, "something was written to stdout")


if __name__ == "__main__":
    swclient.main()
