#!/usr/bin/env python3
"""The dangerous-command guard through the terminal tool (SPEC §6): hardline commands are
refused with status "blocked" in every mode and never run; approval commands give
"pending_approval" under SHELLWIRE_APPROVAL=ask (the default, without elicitation), are
refused under deny and run under off or when their rule key is in the allowlist file;
look-alikes run; background commands are guarded too; the bubblewrap backend skips
approval but not the hardline list. Also output redaction (SHELLWIRE_REDACT): token shapes
are masked in results, saved full outputs and process logs. The pattern table itself is covered by the C unit
test tests/unit/test_guard.c. Standard library only."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swclient  # noqa: E402


class GuardTests(swclient.ServerTest):
    def marker_cmd(self, s, prefix, name):
        """A dangerous-looking command that would leave a file behind if it ran."""
        path = os.path.join(s.tmp, name)
        return "%s; touch %s" % (prefix, path), path

    def test_hardline_blocked_and_not_run(self):
        for mode in ("ask", "deny", "off"):
            with self.subTest(mode=mode):
                s = self.start(env={"SHELLWIRE_APPROVAL": mode})
                path = os.path.join(s.tmp, "ran")
                sc = s.run("touch %s; rm -rf /" % path)
                self.assertEqual((sc["status"], sc["exit_code"]), ("blocked", -1), sc)
                self.assertIn("rm_root", sc["error"])
                self.assertFalse(os.path.exists(path), "a blocked command ran")
                sc = s.run("bash -c 'reboot'", background=True)
                self.assertEqual(sc["status"], "blocked", sc)

    def test_approval_modes(self):
        s = self.start()
        cmd, path = self.marker_cmd(s, "git push --force origin nowhere 2>/dev/null", "ask")
        sc = s.run(cmd)
        self.assertEqual(sc["status"], "pending_approval", sc)
        self.assertEqual(sc["approval_key"], "git_push_force")
        self.assertIn("SHELLWIRE_APPROVAL=off", sc["error"])
        self.assertIn("allowlist", sc["error"])
        self.assertFalse(os.path.exists(path))

        d = self.start(env={"SHELLWIRE_APPROVAL": "deny"})
        cmd, path = self.marker_cmd(d, "git push --force origin nowhere 2>/dev/null", "deny")
        sc = d.run(cmd)
        self.assertEqual(sc["status"], "blocked", sc)
        self.assertIn("deny", sc["error"])
        self.assertFalse(os.path.exists(path))

        o = self.start(env={"SHELLWIRE_APPROVAL": "off"})
        cmd, path = self.marker_cmd(o, "git push --force origin nowhere 2>/dev/null", "off")
        sc = o.run(cmd)
        self.assertIsNone(sc["error"], sc)
        self.assertTrue(os.path.exists(path), "approval off did not run the command")

    def test_allowlist_file(self):
        s = self.start()
        with open(os.path.join(s.state_dir, "allowlist"), "w") as f:
            f.write("# allowed rules\nrm_recursive\n")
        target = os.path.join(s.tmp, "junk")
        os.makedirs(os.path.join(target, "deep"))
        sc = s.run("rm -r %s" % target)
        self.assertIsNone(sc["error"], sc)
        self.assertFalse(os.path.exists(target))
        sc = s.run("rm -f %s" % os.path.join(s.tmp, "nothing"))      # a different rule
        self.assertEqual(sc["status"], "pending_approval", sc)

    def test_allowlist_survives_restart(self):
        s = self.start(env={"SHELLWIRE_APPROVAL": "ask"})
        s.initialize(capabilities={"elicitation": {}})
        rid = s.send_call({"command": "git reset --hard 2>/dev/null; echo one"})
        req = s.wait_request("elicitation/create")
        s.send({"jsonrpc": "2.0", "id": req["id"],
                "result": {"action": "accept", "content": {"decision": "always"}}})
        self.assertEqual(s.wait_response(rid)["result"]["structuredContent"]["output"], "one")
        s.stop()
        t = self.start(env={"SHELLWIRE_STATE_DIR": s.state_dir})
        self.assertEqual(t.run("git reset --hard 2>/dev/null; echo two")["output"], "two")

    def test_look_alikes_run(self):
        s = self.start()
        for cmd in ('echo "rm -rf / and git push --force are dangerous"',
                    "grep -c 'DROP TABLE' /dev/null",
                    "git commit -m 'reboot' --dry-run 2>/dev/null; true",
                    "kill -0 $$", "ls /etc >/dev/null", "chmod 755 ."):
            with self.subTest(command=cmd):
                sc = s.run(cmd)
                self.assertIsNone(sc["error"], sc)
                self.assertNotIn("status", sc)

    def test_bubblewrap_skips_approval_not_hardline(self):
        home = os.path.join("/var/tmp", "swguard-%d" % os.getpid())
        os.makedirs(home, exist_ok=True)
        self.addCleanup(lambda: os.system("rm -rf %s" % home))
        s = self.start(env={"TERMINAL_ENV": "bubblewrap", "TERMINAL_CWD": home})
        os.makedirs(os.path.join(home, "build", "x"), exist_ok=True)
        sc = s.run("rm -rf %s/build && echo gone" % home)
        self.assertEqual((sc["error"], sc["output"]), (None, "gone"), sc)
        sc = s.run("rm -rf /")
        self.assertEqual(sc["status"], "blocked", sc)


class ElicitationTests(swclient.ServerTest):
    """A client that declares elicitation is asked; its answer decides."""

    def client(self):
        s = self.start()
        s.initialize(capabilities={"elicitation": {}})
        return s

    def ask_and_answer(self, s, command, answer):
        rid = s.send_call({"command": command})
        req = s.wait_request("elicitation/create")
        p = req["params"]
        self.assertIn(command.split(";")[0], p["message"])
        self.assertEqual(p["requestedSchema"]["properties"]["decision"]["enum"],
                         ["once", "session", "always", "deny"])
        if answer is not None:
            s.send({"jsonrpc": "2.0", "id": req["id"], "result": answer})
        return s.wait_response(rid)["result"]["structuredContent"], req

    def test_once_runs_then_asks_again(self):
        s = self.client()
        path = os.path.join(s.tmp, "once")
        cmd = "git push --force origin nowhere 2>/dev/null; touch %s" % path
        sc, _ = self.ask_and_answer(s, cmd, {"action": "accept", "content": {"decision": "once"}})
        self.assertIsNone(sc["error"], sc)
        self.assertTrue(os.path.exists(path))
        os.unlink(path)
        sc, _ = self.ask_and_answer(s, cmd, {"action": "decline"})
        self.assertEqual(sc["status"], "blocked", sc)
        self.assertFalse(os.path.exists(path), "a declined command ran")

    def test_session_and_always(self):
        s = self.client()
        sc, _ = self.ask_and_answer(s, "git reset --hard 2>/dev/null; echo a",
                                    {"action": "accept", "content": {"decision": "session"}})
        self.assertEqual(sc["output"], "a")
        self.assertEqual(s.run("git reset --hard 2>/dev/null; echo b")["output"], "b")
        self.assertEqual(s.requests, [], "asked again in the same session")
        sc, _ = self.ask_and_answer(s, "git clean -fd 2>/dev/null; echo c",
                                    {"action": "accept", "content": {"decision": "always"}})
        self.assertEqual(sc["output"], "c")
        with open(os.path.join(s.state_dir, "allowlist")) as f:
            self.assertIn("git_clean_force", f.read().split())

    def test_cancel_and_error_answers_refuse(self):
        s = self.client()
        for answer in ({"action": "cancel"}, {"action": "accept", "content": {"decision": "deny"}},
                       {"action": "accept", "content": {}}):
            with self.subTest(answer=answer):
                sc, _ = self.ask_and_answer(s, "rm -r %s/nothing-here" % s.tmp, answer)
                self.assertEqual(sc["status"], "blocked", sc)
        rid = s.send_call({"command": "rm -r %s/nothing" % s.tmp})
        req = s.wait_request("elicitation/create")
        s.send({"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": "no"}})
        self.assertEqual(s.wait_response(rid)["result"]["structuredContent"]["status"], "blocked")

    def test_unanswered_question_refuses_after_the_timeout(self):
        s = self.start(env={"SHELLWIRE_APPROVAL_TIMEOUT": "2"})
        s.initialize(capabilities={"elicitation": {}})
        path = os.path.join(s.tmp, "never-created")
        t0 = time.monotonic()
        rid = s.send_call({"command": "rm -f x; touch %s" % path})
        req = s.wait_request("elicitation/create")
        r = s.wait_response(rid, timeout=20)
        took = time.monotonic() - t0
        sc = r["result"]["structuredContent"]
        self.assertEqual(sc["status"], "blocked", sc)
        self.assertGreaterEqual(took, 1.9, "refused before the user had the configured 2 s")
        self.assertLess(took, 10, "the question outlived its timeout: %.1fs" % took)
        self.assertTrue(any(m.get("method") == "notifications/cancelled" and
                            m["params"]["requestId"] == req["id"] for _, m in s.notifications),
                        "the unanswered question was not withdrawn")
        # A late answer changes nothing and breaks nothing.
        s.send({"jsonrpc": "2.0", "id": req["id"], "result": {"action": "accept", "content": {"decision": "always"}}})
        s.ping()
        self.assertFalse(os.path.exists(path))
        self.assertFalse(os.path.exists(os.path.join(s.state_dir, "allowlist")))

    def test_cancelled_call_cancels_the_question(self):
        s = self.client()
        path = os.path.join(s.tmp, "never")
        rid = s.send_call({"command": "rm -f x; touch %s" % path})
        req = s.wait_request("elicitation/create")
        s.notify("notifications/cancelled", {"requestId": rid})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(m.get("method") == "notifications/cancelled" and m["params"]["requestId"] == req["id"]
                   for _, m in s.notifications):
                break
            time.sleep(0.05)
        else:
            self.fail("the elicitation was not cancelled")
        s.send({"jsonrpc": "2.0", "id": req["id"], "result": {"action": "accept", "content": {"decision": "once"}}})
        s.ping()
        self.assertFalse(os.path.exists(path))
        self.assertFalse(s.has_response(rid), "a cancelled call was answered")


class SudoTests(swclient.ServerTest):
    """SUDO_PASSWORD: sudo words in command position get -S -p '' and one password line
    each on stdin; the password is never on a command line or in the commands' environment,
    and never in the result. A fake sudo (absolute path) shows what a real one would get."""

    def fake_sudo(self, s):
        d = os.path.join(s.tmp, "bin")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "sudo")
        with open(path, "w") as f:
            f.write('#!/bin/sh\necho "args:$*"\nIFS= read -r pw; [ "$pw" = "$WANT" ] && echo "password ok"\n'
                    'cat /proc/$$/cmdline | tr "\\0" " "; echo; env | grep -c SUDO_PASSWORD\n')
        os.chmod(path, 0o755)
        return path

    def test_rewrite_and_stdin(self):
        s = self.start(env={"SUDO_PASSWORD": "s3cret-pw", "WANT": "s3cret-pw"})
        sudo = self.fake_sudo(s)
        sc = s.run("%s id; echo sudo; %s -u root true" % (sudo, sudo))
        lines = sc["output"].split("\n")
        self.assertEqual(lines[0], "args:-S -p  id", sc)
        self.assertIn("password ok", lines)
        self.assertNotIn("s3cret-pw", sc["output"])
        self.assertIn("0", lines, "SUDO_PASSWORD reached the command's environment")
        self.assertIn("args:-S -p  -u root true", lines)
        self.assertIn("sudo", lines, "an echoed word 'sudo' was rewritten")

    def test_background_gets_the_password_too(self):
        s = self.start(env={"SUDO_PASSWORD": "s3cret-pw", "WANT": "s3cret-pw"})
        sudo = self.fake_sudo(s)
        bg = s.run("%s id" % sudo, background=True)
        w = s.process("wait", session_id=bg["session_id"])
        self.assertIn("args:-S -p  id", w["output"])
        self.assertIn("password ok", w["output"])

    def test_sudo_dash_s_without_password_refused(self):
        s = self.start(env={"WANT": "x"})
        sudo = self.fake_sudo(s)
        for cmd in ("echo hunter2 | %s -S id" % sudo, "%s -u root -S true" % sudo, "%s --stdin id" % sudo):
            with self.subTest(command=cmd):
                sc = s.run(cmd)
                self.assertEqual(sc["status"], "blocked", sc)
        self.assertIsNone(s.run("echo 'sudo -S is a flag'")["error"])

    def test_no_password_no_rewrite(self):
        s = self.start(env={"WANT": "x"})
        sudo = self.fake_sudo(s)
        sc = s.run("%s id </dev/null" % sudo)
        self.assertTrue(sc["output"].startswith("args:id"), sc)


class LandlockTests(swclient.ServerTest):
    """SHELLWIRE_CONFINE=landlock: commands cannot read the state directory (other than
    their own environment's files), everything else works as on the plain local backend."""

    def test_state_dir_hidden_rest_works(self):
        s = self.start(env={"SHELLWIRE_CONFINE": "landlock"})
        secret = os.path.join(s.state_dir, "secret.txt")
        with open(secret, "w") as f:
            f.write("TOPSECRET-%d\n" % os.getpid())
        sc = s.run("cat %s; echo done" % secret)
        self.assertNotIn("TOPSECRET", sc["output"])
        self.assertIn("Permission denied", sc["output"])
        work = os.path.join(s.tmp, "work")      # not s.tmp itself: it holds the state dir
        os.makedirs(work)
        sc = s.run("echo data > %s/out.txt && cat %s/out.txt; export KEPT=yes; greet() { echo hi; }"
                   % (work, work))
        self.assertEqual(sc["output"], "data")
        self.assertEqual(s.run('echo "$KEPT"; greet')["output"], "yes\nhi")
        sc = s.run("cp %s %s/copy 2>&1; echo rc=$?" % (secret, work))
        self.assertIn("rc=1", sc["output"])
        self.assertFalse(os.path.exists(os.path.join(work, "copy")))
        sc = s.run("touch %s/new-in-state 2>&1; echo rc=$?" % s.state_dir)
        self.assertIn("rc=1", sc["output"])
        bg = s.run("cat %s; echo bg-done" % secret, background=True)
        w = s.process("wait", session_id=bg["session_id"])
        self.assertIn("bg-done", w["output"])
        self.assertNotIn("TOPSECRET", w["output"])

    def test_hide_paths_and_auto(self):
        keydir = os.path.join("/var/tmp", "swhide-%d" % os.getpid())
        os.makedirs(keydir, exist_ok=True)
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", keydir]))
        key = os.path.join(keydir, "server.key")
        with open(key, "w") as f:
            f.write("KEYMATERIAL\n")
        with open(os.path.join(keydir, "public.txt"), "w") as f:
            f.write("public\n")
        s = self.start(env={"SHELLWIRE_CONFINE": "auto", "SHELLWIRE_HIDE_PATHS": key})
        sc = s.run("cat %s; cat %s/public.txt" % (key, keydir))
        self.assertNotIn("KEYMATERIAL", sc["output"])
        self.assertIn("public", sc["output"])

    def test_bad_value_refused(self):
        r = subprocess.run([swclient.BIN],
                           env=dict(os.environ, SHELLWIRE_CONFINE="selinux"), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("SHELLWIRE_CONFINE", r.stderr)
        self.assertEqual(r.stdout, "")


SK = "sk-" + "abcdefghijklmnopqrstuvwx"          # built here so no literal token sits in the tree
GHP = "ghp_" + "abcdefghijklmnopqrstuvwxyz0123456789"


class RedactTests(swclient.ServerTest):
    def test_result_masked(self):
        s = self.start()
        sc = s.run("echo key=%s gh=%s short=sk-abc; echo https://bob:hunter2@example.com/x; "
                   "printf 'Authorization: Bearer abcdef0123456789xyz\\n'" % (SK, GHP))
        out = sc["output"]
        self.assertIn("key=sk-abc...uvwx", out)
        self.assertIn("gh=ghp_ab...6789", out)
        self.assertIn("https://bob:***@example.com/x", out)
        self.assertIn("Bearer abcdef...9xyz", out)
        self.assertNotIn(SK, out)
        self.assertNotIn("hunter2", out)
        self.assertIn("short=sk-abc", out, "a word that is not a token shape was changed")

    def test_private_key_block_masked(self):
        s = self.start()
        body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 3
        sc = s.run("printf -- '-----BEGIN PRIVATE KEY-----\\n%s\\n-----END PRIVATE KEY-----\\n'" % body)
        self.assertNotIn(body, sc["output"])
        self.assertIn("-----BEGIN PRIVATE KEY-----", sc["output"])

    def test_token_split_across_reads(self):
        s = self.start()
        half = len(SK) // 2
        sc = s.run("printf 'key=%s'; sleep 0.3; printf '%s\\n'" % (SK[:half], SK[half:]))
        self.assertEqual(sc["output"], "key=sk-abc...uvwx")

    def test_redaction_off(self):
        s = self.start(env={"SHELLWIRE_REDACT": "0"})
        self.assertEqual(s.run("echo %s" % SK)["output"], SK)

    def test_saved_output_and_process_log_masked(self):
        s = self.start(env={"SHELLWIRE_MAX_OUTPUT_CHARS": "1000"})
        sc = s.run("echo %s; seq 1 2000" % SK)
        path = sc["full_output_path"]
        with open(path) as f:
            saved = f.read()
        self.assertIn("sk-abc...uvwx", saved)
        self.assertNotIn(SK, saved)
        bg = s.run("echo %s" % SK, background=True)
        w = s.process("wait", session_id=bg["session_id"])
        self.assertEqual(w["output"], "sk-abc...uvwx")
        self.assertEqual(s.process("log", session_id=bg["session_id"])["output"], "sk-abc...uvwx")


if __name__ == "__main__":
    swclient.main()
