#!/usr/bin/env python3
"""Docs stay true to the code: every configuration variable the code reads is documented
in docs/configuration.md and the man page; every flag of --help is in both; the installed
files exist. Standard library only."""
import os, re, subprocess, sys

SRC = os.environ.get("SHELLWIRE_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
BIN = os.environ.get("SHELLWIRE_BIN") or os.path.join(SRC, "build", "shellwire")
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def read(rel):
    with open(os.path.join(SRC, rel), encoding="utf-8") as f:
        return f.read()


code = ""
for d in ("server", "backends"):
    for name in sorted(os.listdir(os.path.join(SRC, d))):
        if name.endswith((".c", ".h")):
            code += read(os.path.join(d, name))
variables = set(re.findall(r'"((?:TERMINAL|SHELLWIRE)_[A-Z_]+)"', code))
config_md, man = read("docs/configuration.md"), read("docs/shellwire.1")
check(len(variables) >= 10, "found only %d variables in the code: %s" % (len(variables), variables))
for v in sorted(variables):
    check("`%s`" % v in config_md, "%s is read by the code but missing from docs/configuration.md" % v)
    check(v in man, "%s is missing from the man page" % v)

help_text = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10).stdout
flags = set(re.findall(r"--([a-z][a-z-]+)", help_text))
check(len(flags) >= 10, "--help lists only %r" % flags)
for fl in sorted(flags):
    check("--" + fl in config_md or fl in ("help", "version", "print-tools", "check"),
          "--%s is missing from docs/configuration.md" % fl)
    check("\\-\\-" + fl.replace("-", "\\-") in man, "--%s is missing from the man page" % fl)

version = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10).stdout
meson_version = re.search(r"version\s*:\s*'([^']+)'", read("meson.build")).group(1)
check(version.strip() == "shellwire " + meson_version, "--version says %r, meson.build %r" % (version, meson_version))
for rel in ("README.md", "LICENSE", "docs/architecture.md", "docs/backends.md", "docs/protocol.md",
            "docs/performance.md", "docs/shellwire.1"):
    check(os.path.exists(os.path.join(SRC, rel)), rel + " is missing")
    check(rel in read("meson.build") or rel in ("docs/shellwire.1",) and "install_man" in read("meson.build"),
          rel + " is not installed by meson.build")

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
