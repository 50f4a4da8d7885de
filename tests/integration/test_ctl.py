#!/usr/bin/env python3
"""test_ctl: render-agentctl against a running agent (text and --json), its exit codes (3 for an
unreachable agent, 2 for usage), and the control socket's JSON-lines protocol spoken directly:
malformed and oversized requests get an error reply and the connection and the agent go on."""

import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MAX_LINE = 64 * 1024


class Ctl(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        env = self.env
        self.broker = env.broker()
        self.agent = env.agent(env.config(self.broker.port, interval_ms=500))
        self.agent.wait_connected()
        self.sock = env.path("agent.sock")
        self.assertTrue(harness.wait_for(lambda: os.path.exists(self.sock), 5), "no control socket")

    def ctl(self, *args, env_vars=None):
        return self.env.run([harness.ctl_binary()] + list(args), timeout=10, env_vars=env_vars)

    def test_status_text_and_json(self):
        env = self.env
        r = self.ctl("--socket", self.sock, "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertRegex(r.stdout, r"render-agent \S+ \(pid %d\), node %s in %s, " %
                         (self.agent.pid, env.node, env.region))
        self.assertRegex(r.stdout, r"broker +localhost:%d TLS, connected \(MQTT 5, 1 connects\)" % self.broker.port)
        self.assertIn("config    %s" % self.agent.config_path, r.stdout)
        self.assertIn('mqtt      localhost:%d: MQTT 5 (mqtt.protocol "auto": the broker answered MQTT 5)\n'
                      % self.broker.port, r.stdout)
        self.assertRegex(r.stdout, r"sessions +0 active, 0 grace, 0 reserved, 0 ending, 2 free, 0 blocked\n"
                         r"  slots +2\n +s0 +scale cpu-4 +free +- +iface lo\n +s1 +scale cpu-8 +free +- +iface -")

        r = self.ctl("--socket", self.sock, "--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertIs(doc["ok"], True)
        self.assertEqual(doc["id"], 1)
        st = doc["status"]
        self.assertEqual(st["node"], env.node)
        self.assertEqual(st["region"], env.region)
        self.assertEqual(st["pid"], self.agent.pid)
        self.assertEqual(st["broker"]["state"], "connected")
        self.assertEqual(st["broker"]["port"], self.broker.port)
        self.assertIs(st["broker"]["tls"], True)
        self.assertEqual(st["broker"]["mqtt_version"], 5)
        self.assertEqual(st["broker"]["protocols"], {"localhost:%d" % self.broker.port: {
            "mqtt": "5", "known": True, "why": 'mqtt.protocol "auto": the broker answered MQTT 5'}})
        self.assertEqual(st["sampling"]["interval_ms"], 500)
        self.assertGreaterEqual(st["sampling"]["ticks"], 1)
        self.assertEqual([s["id"] for s in st["slots"]], ["s0", "s1"])

        # RENDER_AGENT_SOCKET names the socket when --socket is not given.
        r = self.ctl("--json", "status", env_vars={"RENDER_AGENT_SOCKET": self.sock})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIs(json.loads(r.stdout)["ok"], True)

    def test_exit_codes(self):
        missing = self.env.path("nope", "agent.sock")
        r = self.ctl("--socket", missing, "status")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("render-agentctl: cannot talk to render-agent on %s: No such file or directory" % missing,
                      r.stderr)

        r = self.ctl("--socket", self.sock, "frobnicate")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('render-agentctl: unknown command "frobnicate"', r.stderr)
        self.assertIn("Usage: render-agentctl", r.stderr)

        r = self.ctl("--socket", self.sock)
        self.assertEqual(r.returncode, 2, "no command: %s" % r.stderr)
        r = self.ctl("--bogus-option", "status")
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.ctl("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("Exit status", r.stdout)
        self.assertTrue(self.agent.alive())

    def test_socket_protocol(self):
        c = harness.ControlConn(self.sock)
        try:
            # Not JSON: BAD_REQUEST, and the same connection answers the next request.
            c.send(b"this is not json\n")
            r = c.line()
            self.assertIs(r["ok"], False, r)
            self.assertEqual(r["error"]["code"], "BAD_REQUEST", r)
            self.assertIsNone(r["id"])
            self.assertTrue(r["error"]["message"])
            r = c.request({"id": 7, "op": "status"})
            self.assertIs(r["ok"], True, r)
            self.assertEqual(r["id"], 7)
            self.assertEqual(r["status"]["node"], self.env.node)

            # JSON but not a request: no "op"; an unknown op; an array. The id comes back.
            r = c.request({"id": "a"})
            self.assertEqual((r["ok"], r["id"], r["error"]["code"]), (False, "a", "BAD_REQUEST"), r)
            r = c.request({"id": 8, "op": "reboot-the-world"})
            self.assertEqual((r["ok"], r["id"], r["error"]["code"]), (False, 8, "BAD_REQUEST"), r)
            self.assertIn("unknown op", r["error"]["message"])
            c.send(b"[1,2,3]\n")
            r = c.line()
            self.assertEqual(r["error"]["code"], "BAD_REQUEST", r)

            # Two requests in one write: two replies, in order.
            c.send(b'{"id":1,"op":"status"}\n{"id":2,"op":"status"}\n')
            self.assertEqual([c.line()["id"], c.line()["id"]], [1, 2])

            # A request split across writes is reassembled.
            c.send(b'{"id":3,')
            time.sleep(0.2)
            c.send(b'"op":"status"}\n')
            self.assertEqual(c.line()["id"], 3)

            # Oversized: a line longer than 64 KiB gets one error reply; the rest of that line is
            # skipped, and the connection keeps working.
            big = b'{"id":9,"op":"status","pad":"' + b"x" * (MAX_LINE + 40000) + b'"}\n'
            c.send(big + b'{"id":10,"op":"status"}\n')
            r = c.line()
            self.assertIs(r["ok"], False, r)
            self.assertEqual(r["error"]["code"], "BAD_REQUEST", r)
            self.assertIn("longer than", r["error"]["message"])
            r = c.line()
            self.assertEqual((r["ok"], r["id"]), (True, 10), r)

            # Exactly at the limit (65536 bytes before the newline) is still a request.
            head = b'{"id":11,"op":"status","pad":"'
            tail = b'"}'
            line = head + b"y" * (MAX_LINE - len(head) - len(tail)) + tail
            self.assertEqual(len(line), MAX_LINE)
            c.send(line + b"\n")
            r = c.line()
            self.assertEqual((r["ok"], r["id"]), (True, 11), r)

            # One byte over: refused.
            line = head + b"y" * (MAX_LINE + 1 - len(head) - len(tail)) + tail
            c.send(line + b"\n")
            r = c.line()
            self.assertEqual(r["error"]["code"], "BAD_REQUEST", r)
            r = c.request({"id": 12, "op": "status"})
            self.assertEqual((r["ok"], r["id"]), (True, 12), r)

            # A NUL byte inside a line.
            c.send(b'{"id":13,\x00"op":"status"}\n')
            r = c.line()
            self.assertEqual(r["error"]["code"], "BAD_REQUEST", r)
            self.assertEqual(c.request({"id": 14, "op": "status"})["id"], 14)
        finally:
            c.close()

        # The agent still serves new clients, and a client that hangs up mid-line is harmless.
        c2 = harness.ControlConn(self.sock)
        c2.send(b'{"id":1,"op":"sta')
        c2.close()
        c3 = harness.ControlConn(self.sock)
        try:
            self.assertIs(c3.request({"id": 1, "op": "status"})["ok"], True)
        finally:
            c3.close()
        self.assertTrue(self.agent.alive())
        r = self.ctl("--socket", self.sock, "status")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_many_clients(self):
        # More clients than the agent takes at once (64): the extra ones get SLOW_DOWN or wait;
        # none hangs, and afterwards the agent serves normally.
        conns = []
        try:
            for _ in range(70):
                conns.append(harness.ControlConn(self.sock, timeout=5))
            answered = 0
            for c in conns:
                try:
                    r = c.request({"id": 1, "op": "status"})
                except (OSError, AssertionError):
                    continue  # the busy reply came and the socket was closed
                if r.get("ok") or r.get("error", {}).get("code") == "SLOW_DOWN":
                    answered += 1
            self.assertGreaterEqual(answered, 64)
        finally:
            for c in conns:
                c.close()
        time.sleep(0.2)
        r = self.ctl("--socket", self.sock, "--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.agent.alive())


if __name__ == "__main__":
    harness.main()
