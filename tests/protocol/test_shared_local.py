#!/usr/bin/env python3
"""The shared backend behaviour list (backend_suite.py) against the local backend: the
reference every other backend is compared with, and a check that the list itself passes
where the behaviour is known to be right. Standard library only. Run as

    SHELLWIRE_BIN=build/shellwire python3 tests/protocol/test_shared_local.py [filter ...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_suite  # noqa: E402
import swclient  # noqa: E402


class LocalShared(swclient.ServerTest, backend_suite.SharedBehaviour):

    def start_server(self, **env):
        s = self.start(env=env)
        s.initialize()
        return s

    def sandbox_procs(self):
        return [" ".join(p.cmdline) for s in self.servers for p in s.descendants()]


if __name__ == "__main__":
    swclient.main()
