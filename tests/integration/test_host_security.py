#!/usr/bin/env python3
"""test_host_security: issue 16's host side, with real processes. The exec enforcement hook
inherits stdin, stdout and stderr and no other descriptor (not the TLS connection to the broker);
the agent refuses, at start-up and in --check-config, a control socket directory another user owns
or may write, a state_dir open to others, a TLS key readable by group or others, and a
control.socket where another process listens (a stale socket is still replaced)."""

import os
import re
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ONE_SLOT = [{"id": "s0", "scale": "cpu-4"}]
OTHER_UID = 4242


class HostSecurity(harness.IntegrationTest):
    def check_config(self, cfg):
        return self.env.run([harness.agent_binary(), "--check-config", "--config", cfg])

    def test_exec_hook_inherits_only_stdin_stdout_stderr_and_no_ignored_signals(self):
        env = self.env
        broker = env.broker()
        out = env.path("hook.fds")
        hook = env.path("hook.sh")
        # ls's own descriptor on /proc/<its pid>/fd is the one expected extra.
        with open(hook, "w") as f:
            f.write("#!/bin/sh\ngrep SigIgn /proc/self/status > %s.sig\n"
                    "ls -l /proc/self/fd/ > %s.tmp 2>&1\nmv %s.tmp %s\n" % (out, out, out, out))
        os.chmod(hook, 0o755)
        extra = {"sessions": {"enforcement": "exec", "enforcement_exec": [hook], "enforcement_timeout_s": 5}}
        cfg = env.config(broker.port, interval_ms=500, slots=ONE_SLOT, extra=extra)
        agent = env.agent(cfg)
        agent.wait_connected()
        sock = env.path("agent.sock")

        def admissible():
            try:
                c = harness.ControlConn(sock)
                st = c.call("status")["status"]
                c.close()
                return all(s.get("conformant") for s in st["slots"])
            except OSError:
                return False
        self.assertTrue(harness.wait_for(admissible, 10), env.describe())
        c = harness.ControlConn(sock)
        session = c.call("reserve", user="alice")["session"]
        self.assertTrue(c.call("start", session=session)["ok"])
        self.assertTrue(c.call("end", session=session, reason="kicked")["ok"])
        self.assertTrue(harness.wait_for(lambda: os.path.exists(out), 10), "the hook did not run:\n" + agent.log())
        c.close()
        fds = {}
        for line in harness.read_text(out).splitlines():
            m = re.search(r"\s(\d+) -> (.*)$", line)
            if m:
                fds[int(m.group(1))] = m.group(2)
        self.assertEqual(sorted(fd for fd in fds if fd <= 2), [0, 1, 2], fds)
        self.assertEqual(fds[0], "/dev/null")
        others = {fd: t for fd, t in fds.items() if fd > 2 and not re.fullmatch(r"/proc/\d+/fd", t)}
        self.assertEqual(others, {}, "the hook inherited the agent's descriptors:\n" + harness.read_text(out))
        # Nor its ignored signals (SIGPIPE, SIGXFSZ): a hook's pipeline must die of SIGPIPE as usual.
        self.assertEqual(harness.read_text(out + ".sig").split(), ["SigIgn:", "0" * 16])

    def test_live_control_socket_is_not_taken_over_a_stale_one_is(self):
        env = self.env
        broker = env.broker()
        sock = env.path("agent.sock")
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(sock)
        other.listen(4)
        cfg = env.config(broker.port, slots=ONE_SLOT)
        agent = env.agent(cfg)
        self.assertEqual(agent.proc.wait(15), 1, agent.log())
        agent.check_sanitizers()
        self.assertRegex(agent.log(), r"err: cannot start: control\.socket: %s is a live socket: process %d \(" %
                         (re.escape(sock), os.getpid()))
        # The other process still has its socket.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(sock)
        conn, _ = other.accept()
        conn.close()
        c.close()
        # Once nobody listens there, the file left behind is replaced.
        other.close()
        self.assertTrue(os.path.exists(sock))
        agent = env.agent(cfg)
        agent.wait_connected()
        c = harness.ControlConn(sock)
        self.assertIn("status", c.call("status"))
        c.close()

    def test_check_config_and_start_refuse_paths_other_users_control(self):
        env = self.env
        if os.geteuid() != 0:
            self.fail("this test runs as root (it gives directories to uid %d)" % OTHER_UID)
        broker = env.broker()
        run = env.path("run")
        state = env.path("state")
        os.mkdir(run, 0o755)
        os.mkdir(state, 0o700)
        sock = os.path.join(run, "agent.sock")
        cfg = env.config(broker.port, slots=ONE_SLOT, extra={"control": {"socket": sock}})
        r = self.check_config(cfg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        cases = [
            (lambda: os.chown(run, OTHER_UID, OTHER_UID), lambda: os.chown(run, 0, 0),
             r"control\.socket: directory %s is owned by uid %d, not by root or the agent's user \(uid 0\)" %
             (re.escape(run), OTHER_UID)),
            (lambda: os.chmod(run, 0o1777), lambda: os.chmod(run, 0o755),
             r"control\.socket: directory %s is mode 1777, writable by every user" % re.escape(run)),
            (lambda: os.chmod(state, 0o770), lambda: os.chmod(state, 0o700),
             r"state_dir: directory %s is mode 0770, writable by its group" % re.escape(state)),
            (lambda: os.chown(state, OTHER_UID, 0), lambda: os.chown(state, 0, 0),
             r"state_dir: directory %s is owned by uid %d" % (re.escape(state), OTHER_UID)),
            (lambda: os.chmod(env.pki["client_key"], 0o644), lambda: os.chmod(env.pki["client_key"], 0o600),
             r"mqtt\.tls\.key_file: %s is mode 0644, open to every user: .*\(chmod 600 %s\)" %
             (re.escape(env.pki["client_key"]), re.escape(env.pki["client_key"]))),
        ]
        for spoil, mend, expected in cases:
            spoil()
            r = self.check_config(cfg)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertRegex(r.stderr, "%s: %s" % (re.escape(cfg), expected))
            self.assertRegex(r.stderr, r"%s: 1 problem\n" % re.escape(cfg))
            agent = env.agent(cfg)
            self.assertEqual(agent.proc.wait(15), 1, agent.log())
            agent.check_sanitizers()
            self.assertRegex(agent.log(), "err: cannot start: " + expected)
            self.assertFalse(os.path.exists(sock), "the agent made its socket in a directory it refused")
            mend()
        r = self.check_config(cfg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    harness.main()
