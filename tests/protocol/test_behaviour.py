#!/usr/bin/env python3
"""Behaviour tests for the shellwire `terminal` tool on the local backend (SPEC sections 2, 3,
5, 6, 7): state between calls, stdin/pagers/stream merging, exit codes, timeouts and tree
killing, background grandchildren, foreground-server guidance, output limits, UTF-8 and ANSI
cleaning, task isolation, ordering, configuration, secrets and a vanished working directory.
Standard library only; run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_behaviour.py [name-filter ...]
"""

import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swclient  # noqa: E402
from swclient import ServerTest, wait_until  # noqa: E402

LIMIT = 50000
NOTICE_RE = re.compile(r"\n\n\.\.\. \[OUTPUT TRUNCATED - (\d+) chars omitted out of (\d+) total\] \.\.\.\n\n")


def shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


def sleeps(*secs):
    want = {"sleep %s" % s for s in secs}
    return lambda p: any(w in " ".join(p.cmdline) for w in want)


class BehaviourTest(ServerTest):

    def session(self, **kw):
        s = self.start(**kw)
        s.initialize()
        return s

    def check_truncated(self, sc, total, limit=LIMIT, char="a"):
        """Head/tail truncation with an exact notice (SPEC 3 and 7)."""
        out = sc["output"]
        m = NOTICE_RE.search(out)
        self.assertIsNotNone(m, "no truncation notice in %r..." % out[:200])
        omitted, said_total = int(m.group(1)), int(m.group(2))
        head, tail = out[:m.start()], out[m.end():]
        self.assertEqual(said_total, total)
        self.assertEqual(sc.get("output_total_chars"), total, {k: v for k, v in sc.items() if k != "output"})
        self.assertEqual(len(head) + len(tail) + omitted, total, "notice numbers do not add up")
        self.assertLessEqual(len(head) + len(tail), limit)
        self.assertLessEqual(abs(len(head) - 0.4 * limit), 0.01 * limit + 1, len(head))
        self.assertLessEqual(abs(len(tail) - 0.6 * limit), 0.01 * limit + 1, len(tail))
        if char:
            self.assertEqual(head, char * len(head))
            self.assertEqual(tail, char * len(tail))
        self.assertLessEqual(len(out), limit + 100)
        self.assertIsInstance(sc.get("truncation_note"), str)


# ============================================================================ state

class StateTests(BehaviourTest):

    def test_cd_persists_and_cwd_key(self):
        s = self.session()
        sub = os.path.join(s.cwd, "sub")
        sc = s.run("mkdir -p sub/deeper && cd sub")
        self.assertOk(sc)
        self.assertEqual(sc.get("cwd"), sub)
        sc = s.run("pwd")
        self.assertEqual(sc["output"], sub)
        self.assertNotIn("cwd", sc, "cwd reported although it did not change")
        sc = s.run("cd .")
        self.assertNotIn("cwd", sc)
        sc = s.run("cd deeper; false")          # non-zero exit still keeps the cd
        self.assertEqual(sc["exit_code"], 1)
        self.assertEqual(sc.get("cwd"), os.path.join(sub, "deeper"))
        sc = s.run("cd ../.. && echo back")
        self.assertEqual(sc.get("cwd"), s.cwd)
        self.assertEqual(s.run("pwd")["output"], s.cwd)

    def test_odd_directory_names(self):
        """Newlines, non-ASCII and marker look-alikes in the cwd survive the cwd marker."""
        s = self.session()
        for name in ("a\nb", "ünï dir 😀", "x__SHELLWIRE_CWD_y", "q'uo\"te $HOME"):
            with self.subTest(name=name):
                path = os.path.join(s.cwd, name)
                os.mkdir(path)
                sc = s.run("cd -- %s && printf 'no newline'" % shq(path))
                self.assertEqual(sc.get("cwd"), path, sc)
                self.assertEqual(sc["output"], "no newline")
                self.assertEqual(s.run("pwd")["output"], path)
                s.run("cd %s" % shq(s.cwd))

    def test_export_persists(self):
        s = self.session()
        self.assertOk(s.run("export FOO='a b  c'; export N=42"))
        self.assertEqual(s.run('echo "[$FOO][$N]"')["output"], "[a b  c][42]")
        self.assertEqual(s.run("bash -c 'echo $N'")["output"], "42", "not exported to children")

    def test_unset_persists(self):
        """Removing a variable, function or alias made in an earlier call sticks."""
        s = self.session()
        self.assertOk(s.run("export GONE=1 KEPT=2; gonefn() { :; }; alias gonea='echo a'"))
        self.assertEqual(s.run('echo "[${GONE-unset}]"')["output"], "[1]")
        self.assertOk(s.run("unset GONE; unset -f gonefn; unalias gonea"))
        sc = s.run('echo "[${GONE-unset}][$KEPT]"; type -t gonefn; alias gonea 2>/dev/null; echo end')
        self.assertEqual(sc["output"], "[unset][2]\nend", "an unset/unset -f/unalias came back")

    def test_unset_of_inherited_variable_persists(self):
        s = self.session(env={"SW_INHERITED": "from-server"})
        self.assertEqual(s.run('echo "[${SW_INHERITED-unset}]"')["output"], "[from-server]")
        self.assertEqual(s.run('unset SW_INHERITED; echo "[${SW_INHERITED-unset}]"')["output"], "[unset]")
        self.assertEqual(s.run('echo "[${SW_INHERITED-unset}]"')["output"], "[unset]",
                         "an unset of an inherited variable came back in the next call")

    def test_function_persists(self):
        s = self.session()
        self.assertOk(s.run('greet() { echo "hi $1"; }'))
        self.assertEqual(s.run("greet bob")["output"], "hi bob")
        self.assertEqual(s.run("type -t greet")["output"], "function")

    def test_alias_persists(self):
        s = self.session()
        self.assertOk(s.run("alias sayit='echo aliased'"))
        sc = s.run("sayit now")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "aliased now")

    def test_source_file(self):
        s = self.session()
        os.makedirs(os.path.join(s.cwd, "venv", "bin"))
        with open(os.path.join(s.cwd, "venv", "bin", "mytool"), "w") as f:
            f.write("#!/bin/sh\necho tool-ok\n")
        os.chmod(os.path.join(s.cwd, "venv", "bin", "mytool"), 0o755)
        with open(os.path.join(s.cwd, "activate.sh"), "w") as f:
            f.write('export SRC_VAR=42\nexport PATH="$PWD/venv/bin:$PATH"\n'
                    'srcfn() { echo "fn:$SRC_VAR"; }\nalias srca="echo alias-from-file"\n')
        self.assertOk(s.run("source ./activate.sh"))
        self.assertEqual(s.run("srcfn")["output"], "fn:42")
        self.assertEqual(s.run("echo $SRC_VAR")["output"], "42")
        self.assertEqual(s.run("srca")["output"], "alias-from-file")
        self.assertEqual(s.run("mytool")["output"], "tool-ok")

    def test_unexported_variables_do_not_persist(self):
        # Observed and documented behaviour (tool description): only exported variables carry over.
        s = self.session()
        self.assertEqual(s.run('LOCALV=1; echo "[$LOCALV]"')["output"], "[1]")
        self.assertEqual(s.run('echo "[${LOCALV-unset}]"')["output"], "[unset]")

    def test_workdir_applies_to_one_call(self):
        s = self.session()
        other = os.path.join(s.cwd, "other")
        os.mkdir(other)
        sc = s.run("pwd", workdir=other)
        self.assertEqual(sc["output"], other)
        self.assertNotIn("cwd", sc)
        sc = s.run("cd / && pwd", workdir=other)
        self.assertEqual(sc["output"], "/")
        self.assertNotIn("cwd", sc, "a cd inside a workdir call must not move the session")
        self.assertEqual(s.run("pwd")["output"], s.cwd)

    def test_calls_take_turns_in_arrival_order(self):
        s = self.session()
        os.mkdir(os.path.join(s.cwd, "later"))
        a = s.send_call({"command": "sleep 1; cd later; export ORDER=first"})
        b = s.send_call({"command": 'echo "$PWD $ORDER"'})
        self.assertOk(s.wait_response(a)["result"]["structuredContent"])
        out = s.wait_response(b)["result"]["structuredContent"]["output"]
        self.assertEqual(out, os.path.join(s.cwd, "later") + " first")


# ============================================================================ I/O

class IOTests(BehaviourTest):

    def test_stdin_is_dev_null(self):
        s = self.session()
        t0 = time.monotonic()
        sc = s.run("cat", timeout=20)
        self.assertLess(time.monotonic() - t0, 5, "cat waited for input")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "")
        self.assertEqual(s.run("read x; echo rc=$?")["output"], "rc=1")
        self.assertEqual(s.run("readlink /proc/self/fd/0")["output"], "/dev/null")

    def test_pagers(self):
        s = self.session(env={"PAGER": "less", "GIT_PAGER": "less"})
        self.assertEqual(s.run('echo "$PAGER $GIT_PAGER"')["output"], "cat cat")

    def test_stdout_stderr_merged_in_order(self):
        s = self.session()
        self.assertEqual(s.run("echo a; echo b >&2; echo c")["output"], "a\nb\nc")
        sc = s.run("for i in $(seq 1 200); do echo o$i; echo e$i >&2; done")
        want = "\n".join("o%d\ne%d" % (i, i) for i in range(1, 201))
        self.assertEqual(sc["output"], want)

    def test_output_trimmed(self):
        s = self.session()
        self.assertEqual(s.run("printf 'x\\n\\n\\n'")["output"], "x")
        self.assertEqual(s.run("true")["output"], "")

    def test_marker_lookalike_output_kept(self):
        s = self.session()
        sc = s.run("echo __SHELLWIRE_CWD_0000__/etc__SHELLWIRE_CWD_0000__; echo tail")
        self.assertIn("__SHELLWIRE_CWD_0000__/etc", sc["output"])
        self.assertTrue(sc["output"].endswith("tail"))
        self.assertNotIn("cwd", sc)


# ============================================================================ exit codes

class ExitCodeTests(BehaviourTest):

    def test_exit_codes_and_meanings(self):
        s = self.session()
        sc = s.run("exit 7")
        self.assertOk(sc, 7)
        self.assertIs(s.call({"command": "exit 7"})["result"]["isError"], False)
        sc = s.run("false")
        self.assertOk(sc, 1)
        self.assertNotIn("exit_code_meaning", sc)
        sc = s.run("grep -r no-such-text-zz /dev/null")
        self.assertOk(sc, 1)
        self.assertIsInstance(sc.get("exit_code_meaning"), str)
        self.assertTrue(sc["exit_code_meaning"])
        sc = s.run("diff /etc/hostname /etc/passwd > /dev/null")
        self.assertOk(sc, 1)
        self.assertIn("exit_code_meaning", sc)
        sc = s.run("[ -f /no/such/file ]")
        self.assertOk(sc, 1)
        self.assertIn("exit_code_meaning", sc)
        sc = s.run("echo fine")
        self.assertNotIn("exit_code_meaning", sc)

    def test_killed_by_signal(self):
        s = self.session()
        sc = s.run("kill -9 $$")
        self.assertOk(sc, 137)
        meaning = sc.get("exit_code_meaning", "")
        self.assertIn("signal", meaning.lower())
        self.assertIn("9", meaning)
        self.assertIn("KILL", meaning)
        sc = s.run("kill -TERM $$")
        self.assertOk(sc, 143)
        self.assertIn("TERM", sc.get("exit_code_meaning", ""))
        self.assertEqual(s.run("echo alive")["output"], "alive")


# ============================================================================ timeouts

class TimeoutTests(BehaviourTest):

    def test_timeout_kills_whole_tree(self):
        s = self.session()
        t0 = time.monotonic()
        sc = s.run("echo begun; bash -c 'sleep 101 & sleep 102 & setsid sleep 103 & wait'",
                   timeout=1)
        dt = time.monotonic() - t0
        self.assertIsNone(sc["error"], sc)
        self.assertEqual(sc["exit_code"], 124)
        self.assertTrue(sc["output"].endswith("[Command timed out after 1s]"), sc["output"])
        self.assertEqual(sc["output"], "begun\n[Command timed out after 1s]")
        self.assertNotIn("exit_code_meaning", sc)
        self.assertLess(dt, 4.0, "a 1 s timeout took %.1fs" % dt)
        gone = wait_until(lambda: not s.find_procs(sleeps(101, 102, 103)), 1.0)
        self.assertTrue(gone, "survivors: %r" % s.find_procs(sleeps(101, 102, 103)))
        # The environment survives a timeout.
        self.assertEqual(s.run("echo next")["output"], "next")

    def test_timeout_keeps_state_of_earlier_calls(self):
        s = self.session()
        s.run("export KEEP=yes; mkdir -p d && cd d")
        sc = s.run("echo partial; sleep 20", timeout=1)
        self.assertEqual(sc["exit_code"], 124)
        self.assertEqual(sc["output"], "partial\n[Command timed out after 1s]")
        self.assertEqual(s.run('echo "$KEEP $PWD"')["output"], "yes " + os.path.join(s.cwd, "d"))

    def test_default_timeout_from_config(self):
        s = self.session(env={"TERMINAL_TIMEOUT": "1"})
        t0 = time.monotonic()
        sc = s.run("sleep 104")
        self.assertEqual(sc["exit_code"], 124)
        self.assertTrue(sc["output"].endswith("[Command timed out after 1s]"), sc)
        self.assertLess(time.monotonic() - t0, 4.0)


class PromptReturnTests(BehaviourTest):
    """A background grandchild holding stdout must not hold the call (SPEC 3)."""

    def check_prompt(self, command, want):
        s = self.session()
        s.run("true")                           # the environment exists already
        t0 = time.monotonic()
        sc = s.run(command, timeout=20)
        dt = time.monotonic() - t0
        self.assertOk(sc)
        self.assertEqual(sc["output"], want)
        self.assertLess(dt, 1.0, "%r took %.2fs" % (command, dt))
        self.assertTrue(wait_until(lambda: s.find_procs(sleeps(300)), 2), "the sleep did not start")
        return s

    def test_ampersand_then_echo(self):
        self.check_prompt("sleep 300 & echo started", "started")

    def test_subshell_background(self):
        self.check_prompt("(sleep 300 &) ; echo x", "x")

    def test_and_list_background(self):
        self.check_prompt("true && sleep 300 & echo z", "z")

    def test_setsid_background(self):
        self.check_prompt("setsid sleep 300 & echo y", "y")


class GuidanceTests(BehaviourTest):

    REFUSED = ["python3 -m http.server", "npm run dev", "uvicorn app:app", "sleep 10 &",
               "nohup sleep 10", "cd /tmp && python3 -m http.server 8000", "FOO=1 npm start"]

    def test_foreground_servers_refused(self):
        s = self.session()
        for cmd in self.REFUSED:
            with self.subTest(command=cmd):
                t0 = time.monotonic()
                r = s.call({"command": cmd, "timeout": 30})
                self.assertLess(time.monotonic() - t0, 3)
                sc = self.assertToolError(r, "background")
                self.assertEqual(sc.get("status"), "error")
        self.assertEqual(s.find_procs(sleeps(10)), [], "a refused command ran anyway")

    def test_lookalikes_run(self):
        s = self.session()
        with open(os.path.join(s.cwd, "app.py"), "w") as f:
            f.write("import uvicorn\n")
        sc = s.run("python3 -m http.server --help", timeout=30)
        self.assertOk(sc)
        self.assertIn("usage", sc["output"].lower())
        sc = s.run('echo "npm run dev"')
        self.assertOk(sc)
        self.assertEqual(sc["output"], "npm run dev")
        sc = s.run('grep -r "uvicorn" .')
        self.assertOk(sc)
        self.assertEqual(sc["output"], "./app.py:import uvicorn")
        sc = s.run("echo 'sleep 10 &'")
        self.assertEqual(sc["output"], "sleep 10 &")


# ============================================================================ output

class OutputTests(BehaviourTest):

    def test_huge_output_bounded(self):
        s = self.session()
        total = 300000000
        t0 = time.monotonic()
        sc = s.run("head -c %d /dev/zero | tr '\\0' 'a'" % total, timeout=120)
        dt = time.monotonic() - t0
        hwm = s.vm_kb("VmHWM")
        self.assertOk(sc)
        self.check_truncated(sc, total)
        self.assertLessEqual(len(sc["output"]), 50100)
        path = sc.get("full_output_path")
        self.assertIsInstance(path, str, sc.keys())
        self.assertTrue(os.path.isfile(path), path)
        self.assertTrue(os.path.realpath(path).startswith(os.path.realpath(s.state_dir)), path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        size = os.path.getsize(path)
        self.assertGreaterEqual(size, 5000000)
        self.assertLessEqual(size, 5000000 + 200, "saved output not capped")
        with open(path, "rb") as f:
            self.assertEqual(f.read(1000), b"a" * 1000)
        self.assertIn(path, sc["truncation_note"])
        self.assertIsNotNone(hwm)
        self.assertLess(hwm, 64 * 1024, "server peak RSS %d kB for 300 MB of output" % hwm)
        print("\n    300 MB output: %.1fs, server VmHWM %d kB, spill %d bytes" % (dt, hwm, size),
              end=" ", flush=True)

    def test_exact_limit_not_truncated(self):
        s = self.session()
        sc = s.run("head -c 50000 /dev/zero | tr '\\0' b")
        self.assertOk(sc)
        self.assertEqual(sc["output"], "b" * 50000)
        for k in ("output_total_chars", "full_output_path", "truncation_note"):
            self.assertNotIn(k, sc)

    def test_one_over_limit_truncated(self):
        s = self.session()
        sc = s.run("head -c 50001 /dev/zero | tr '\\0' b")
        self.assertOk(sc)
        self.check_truncated(sc, 50001, char="b")
        with open(sc["full_output_path"], "rb") as f:
            self.assertEqual(f.read(), b"b" * 50001)

    def test_limit_counts_characters_not_bytes(self):
        s = self.session()
        sc = s.run("python3 -c \"import sys; sys.stdout.write('é' * 60000)\"", timeout=30)
        self.assertOk(sc)
        self.check_truncated(sc, 60000, char="é")
        sc = s.run("python3 -c \"import sys; sys.stdout.write('€' * 50000)\"", timeout=30)
        self.assertEqual(sc["output"], "€" * 50000)
        self.assertNotIn("output_total_chars", sc)

    def test_binary_output(self):
        s = self.session()
        r = s.call({"command": "head -c 100000 /dev/urandom"})
        sc = r["result"]["structuredContent"]
        self.assertOk(sc)
        out = sc["output"]
        self.assertIn("\ufffd", out)
        out.encode("utf-8")                                   # no lone surrogates
        self.assertEqual(json.loads(json.dumps(out)), out)
        self.assertEqual(s.run("echo after-binary")["output"], "after-binary")

    def test_invalid_utf8_replaced(self):
        s = self.session()
        sc = s.run(r"printf 'ok \xff\xfe end \xc3\x28 é \xe2\x82\xac'")
        self.assertEqual(sc["output"], "ok \ufffd\ufffd end \ufffd( é €")

    def test_ansi_removed(self):
        s = self.session()
        self.assertEqual(s.run(r"printf '\033[1;31mred\033[0m\n'")["output"], "red")
        sc = s.run(r"printf '\033]0;title\007plain\033[2K \033[38;5;202mcolour\033[m\n'")
        self.assertEqual(sc["output"], "plain colour")
        sc = s.run("ls --color=always / | head -3")
        self.assertNotIn("\x1b", sc["output"])

    def test_configured_limit(self):
        s = self.session(env={"SHELLWIRE_MAX_OUTPUT_CHARS": "1000"})
        sc = s.run("head -c 1000 /dev/zero | tr '\\0' c")
        self.assertEqual(sc["output"], "c" * 1000)
        sc = s.run("head -c 1001 /dev/zero | tr '\\0' c")
        self.check_truncated(sc, 1001, limit=1000, char="c")
        s2 = self.session(args=["--max-output-chars", "2000"])
        sc = s2.run("head -c 5000 /dev/zero | tr '\\0' d")
        self.check_truncated(sc, 5000, limit=2000, char="d")


# ============================================================================ environments

class EnvironmentTests(BehaviourTest):

    def test_task_ids_isolated(self):
        s = self.session()
        for d in ("da", "db"):
            os.mkdir(os.path.join(s.cwd, d))
        sc = s.run("cd da && export WHO=a", task_id="a")
        self.assertEqual(sc.get("cwd"), os.path.join(s.cwd, "da"))
        self.assertEqual(s.run('echo "$PWD [${WHO-}]"', task_id="b")["output"], s.cwd + " []")
        s.run("cd db && export WHO=b", task_id="b")
        self.assertEqual(s.run('echo "$PWD $WHO"', task_id="a")["output"], os.path.join(s.cwd, "da") + " a")
        self.assertEqual(s.run('echo "$PWD $WHO"', task_id="b")["output"], os.path.join(s.cwd, "db") + " b")
        self.assertEqual(s.run('echo "$PWD [${WHO-}]"')["output"], s.cwd + " []")

    def test_fixture_calls_are_sequential(self):
        def tc(rid, command):
            return {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                    "params": {"name": "terminal", "arguments": {"command": command}}}
        calls = [tc(1, "mkdir -p seqdir && cd seqdir"), tc(2, "pwd"),
                 tc(3, "sleep 0.5; export SEQ=one"), tc(4, 'echo "[$SEQ]"'),
                 tc(5, "sleep 0.3; cd .."), tc(6, "pwd")]
        calls += [tc(1000 + k, "echo %d >> order.txt" % k) for k in range(40)]
        for k in range(1, 7):               # nested: each pwd must see every earlier cd
            calls += [tc(100 + k, "mkdir -p n%d && cd n%d" % (k, k)), tc(200 + k, "pwd")]
        fd, path = tempfile.mkstemp(prefix="swfixture-", suffix=".jsonl")
        with os.fdopen(fd, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in calls))
        self.addCleanup(os.unlink, path)
        s = self.start(stdin_file=path)
        self.assertEqual(s.wait_exit(20), 0)
        def output(rid):
            return s.responses_for(rid)[0]["result"]["structuredContent"]["output"]
        try:
            with open(os.path.join(s.cwd, "order.txt")) as f:
                order = f.read().split()
        except FileNotFoundError:
            order = "order.txt was written elsewhere (an append ran before the 'cd ..')"
        got = {"outputs": {i: output(i) for i in range(1, 7)},
               "appends": order,
               "nested pwd": [output(200 + k) for k in range(1, 7)]}
        want = {"outputs": {1: "", 2: os.path.join(s.cwd, "seqdir"), 3: "", 4: "[one]", 5: "", 6: s.cwd},
                "appends": [str(k) for k in range(40)],
                "nested pwd": [os.path.join(s.cwd, *["n%d" % j for j in range(1, k + 1)])
                               for k in range(1, 7)]}
        self.assertEqual(got, want, "calls of one environment did not run in arrival order")

    def test_back_to_back_calls_keep_order(self):
        s = self.session()
        s.run("true")
        ids = list(range(5000, 5040))
        s.send_raw("".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
            "name": "terminal", "arguments": {"command": "echo %d >> order.txt" % (i - 5000)}}}) + "\n"
            for i in ids))                     # one write: the server reads them all at once
        for i in ids:
            self.assertOk(s.wait_response(i)["result"]["structuredContent"])
        with open(os.path.join(s.cwd, "order.txt")) as f:
            self.assertEqual(f.read().split(), [str(k) for k in range(40)], "calls ran out of order")

    def test_terminal_cwd_and_flag(self):
        base = tempfile.mkdtemp(prefix="swtest-cwd-")
        self.addCleanup(lambda: shutil.rmtree(base, ignore_errors=True))
        d1, d2 = os.path.join(base, "one"), os.path.join(base, "two")
        os.mkdir(d1)
        os.mkdir(d2)
        s = self.session(env={"TERMINAL_CWD": d1})
        self.assertEqual(s.run("pwd")["output"], d1)
        s = self.session(args=["--cwd", d2])
        self.assertEqual(s.run("pwd")["output"], d2)
        s = self.session(args=["--cwd", d2], env={"TERMINAL_CWD": d1})
        self.assertEqual(s.run("pwd")["output"], d2, "the flag must win over the variable")

    def test_secrets_not_passed(self):
        env = {"OPENAI_API_KEY": "sk-test", "GITHUB_TOKEN": "x", "ANTHROPIC_API_KEY": "anthro-zz",
               "MODAL_TOKEN_SECRET": "modal-zz", "HARMLESS_VAR": "visible"}
        s = self.session(env=env)
        out = s.run("env")["output"]
        for name in ("OPENAI_API_KEY", "GITHUB_TOKEN", "ANTHROPIC_API_KEY", "MODAL_TOKEN_SECRET"):
            self.assertNotIn(name, out)
        self.assertIn("HARMLESS_VAR=visible", out)
        self.assertEqual(s.run('echo "[${GITHUB_TOKEN-unset}]"')["output"], "[unset]")

    def test_pass_env(self):
        s = self.session(env={"OPENAI_API_KEY": "sk-test", "GITHUB_TOKEN": "x",
                              "SHELLWIRE_PASS_ENV": "GITHUB_TOKEN"})
        out = s.run("env")["output"]
        self.assertIn("GITHUB_TOKEN=x", out.splitlines())
        self.assertNotIn("OPENAI_API_KEY", out)

    def test_deleted_session_cwd(self):
        s = self.session()
        gone = os.path.join(s.cwd, "gone")
        sc = s.run("mkdir gone && cd gone")
        self.assertEqual(sc.get("cwd"), gone)
        self.assertOk(s.run('rmdir "%s"' % gone, task_id="other"))
        sc = s.run("echo should-not-run")
        # Observed: exit 126 and bash's own message, e.g.
        #   "bash: line 1: cd: /tmp/swtest-.../cwd/gone: No such file or directory"
        self.assertEqual(sc["exit_code"], 126, sc)
        self.assertNotIn("should-not-run", sc["output"])
        text = sc["output"] + (sc.get("error") or "")
        self.assertIn(gone, text)
        self.assertRegex(text.lower(), r"no such file|does not exist|no longer exists|deleted|removed")
        # workdir still runs a command elsewhere.
        self.assertEqual(s.run("pwd", workdir=s.cwd)["output"], s.cwd)

    def test_deleted_session_cwd_recovers_with_cd(self):
        s = self.session()
        gone = os.path.join(s.cwd, "gone2")
        s.run("mkdir gone2 && cd gone2")
        os.rmdir(gone)
        self.assertEqual(s.run("true")["exit_code"], 126)
        # The natural fix, an absolute cd, must get the session out of the vanished directory.
        sc = s.run("cd %s && pwd" % s.cwd)
        self.assertOk(sc)
        self.assertEqual(sc["output"], s.cwd)
        self.assertEqual(s.run("pwd")["output"], s.cwd)


if __name__ == "__main__":
    swclient.main()
