#!/usr/bin/env python3
"""test_reload: SIGHUP reloads the config only when it is valid as a whole. A broken file is
rejected with its problems (FILE:LINE:COL) and the agent carries on; a valid change (a third
slot) is applied and the status is republished."""

import json
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

INTERVAL_MS = 200


class Reload(harness.IntegrationTest):
    def test_sighup_broken_then_valid(self):
        env = self.env
        broker = env.broker()
        cfg = env.config(broker.port, interval_ms=INTERVAL_MS)
        with open(cfg) as f:
            good = f.read()
        agent = env.agent(cfg)
        agent.wait_connected()
        sub = env.subscriber(broker)
        first = sub.wait_doc("/status", lambda d: d.get("state") == "online", timeout=10)
        self.assertIsNotNone(first)
        self.assertEqual(len(first[1]["slots"]), 2)

        # 1. A syntax error: a missing comma, so line 3 column 5 holds a key where ',' or '}' belongs.
        lines = good.splitlines()
        self.assertEqual(lines[1], '  "node": {')
        broken_lines = ["{", '  "node": {"id": "%s", "region": "%s"}' % (env.node, env.region),
                        '    "oops": 1'] + lines[5:]
        harness.write_atomic(cfg, "\n".join(broken_lines) + "\n")
        mark = agent.line_count()
        t_hup = time.monotonic()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"reload of %s rejected" % re.escape(cfg), timeout=10, start=mark)
        problems = agent.matches(re.escape(cfg) + r":\d+:\d+: syntax error", start=mark)
        self.assertEqual(len(problems), 1, "no FILE:LINE:COL syntax error logged")
        self.assertIn("err: %s:3:5: syntax error near '\"oops\": 1'" % cfg, problems[0])
        self.assertRegex(agent.matches(r"rejected", start=mark)[0],
                         r"err: reload of .* rejected \(1 problem\); the running configuration stays in force")
        self.assertTrue(agent.alive(), "agent exited on a broken config")
        # Telemetry goes on, seq unbroken, and the status is not republished.
        t1 = time.monotonic()
        self.assertIsNotNone(sub.wait_count("/telemetry", 4, since=t1, timeout=10), "telemetry stopped")
        seqs = [int(d["seq"]) for _, d in sub.docs("/telemetry")]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "seq broken across reload: %s" % seqs)
        self.assertEqual(sub.on("/status", since=t_hup), [], "status republished after a rejected reload")
        r = env.run([harness.ctl_binary(), "--socket", env.path("agent.sock"), "--json", "status"])
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)["status"]
        self.assertEqual(len(st["slots"]), 2)
        self.assertEqual(st["broker"]["state"], "connected")

        # 2. Another kind of problem: valid JSON, invalid value. Rejected the same way.
        bad = json.loads(good)
        bad["sampling"]["interval_ms"] = 5
        harness.write_atomic(cfg, json.dumps(bad, indent=2))
        mark = agent.line_count()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"reload of %s rejected" % re.escape(cfg), timeout=10, start=mark)
        self.assertEqual(len(agent.matches(re.escape("%s: sampling.interval_ms: must be 100..60000 (got 5)" % cfg),
                                           start=mark)), 1)
        self.assertTrue(agent.alive())

        # 3. A valid change: a third slot. Applied; the status is republished with 3 slots,
        # the broker connection is kept (same node and TLS files).
        new = json.loads(good)
        new["slots"].append({"id": "s2", "scale": "cpu-16"})
        harness.write_atomic(cfg, json.dumps(new, indent=2))
        mark = agent.line_count()
        t_hup = time.monotonic()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"notice: configuration reloaded from %s \(3 slots\)$" % re.escape(cfg), timeout=10,
                       start=mark)
        got = sub.wait_doc("/status", lambda d: d.get("state") == "online" and len(d.get("slots", [])) == 3,
                           since=t_hup, timeout=10)
        self.assertIsNotNone(got, "no status with 3 slots after the reload")
        self.assertEqual([s["id"] for s in got[1]["slots"]], ["s0", "s1", "s2"])
        # As configured (the plan's verdict on it, measured, may follow in a later status).
        self.assertEqual({k: got[1]["slots"][2][k] for k in ("id", "scale")}, {"id": "s2", "scale": "cpu-16"})
        self.assertNotIn("cgroup", got[1]["slots"][2])
        self.assertEqual(agent.matches(r"connected to MQTT broker", start=mark), [], "reconnected needlessly")
        # Telemetry lists the new slot.
        t2 = time.monotonic()
        tel = sub.wait_doc("/telemetry", lambda d: len(d.get("slots", [])) == 3, since=t2, timeout=10)
        self.assertIsNotNone(tel, "telemetry does not list the third slot")
        # A late subscriber gets the new status (it replaced the retained one).
        late = env.subscriber(broker)
        ret = late.wait_doc("/status", timeout=5)
        self.assertIsNotNone(ret)
        self.assertEqual(len(ret[1]["slots"]), 3, ret[1])

        rc, _ = agent.terminate(timeout=1.0)
        self.assertEqual(rc, 0)
        agent.check_sanitizers()

    def test_a_config_without_slots_waits_until_no_slot_is_held(self):
        """A file without slots is rejected while a slot is held (here only reserved), and taken
        once it is free again."""
        env = self.env
        broker = env.broker()
        cfg = env.config(broker.port, interval_ms=INTERVAL_MS)
        agent = env.agent(cfg)
        agent.wait_connected()
        c = harness.ControlConn(env.path("agent.sock"))
        self.assertTrue(harness.wait_for(lambda: c.call("reserve", user="alice").get("ok"), 10), agent.log())
        empty = json.loads(harness.read_text(cfg))
        empty["slots"] = []
        harness.write_atomic(cfg, json.dumps(empty, indent=2))
        mark = agent.line_count()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"reload of %s rejected.*no slots while sessions are held" % re.escape(cfg), timeout=10,
                       start=mark)
        self.assertTrue(c.call("end", user="alice")["ok"])
        mark = agent.line_count()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"notice: configuration reloaded from %s \(0 slots" % re.escape(cfg), timeout=10, start=mark)
        c.close()
        self.assertEqual(agent.terminate(timeout=1.0)[0], 0)
        agent.check_sanitizers()

    def test_sighup_new_broker_and_socket(self):
        # A reload that changes the broker and the control socket: the old broker is told
        # "offline/reconfigured", the new one gets the status and telemetry, and the control
        # socket moves (the old path is removed).
        env = self.env
        b1 = env.broker()
        b2 = env.broker()
        cfg = env.config(b1.port, interval_ms=INTERVAL_MS)
        agent = env.agent(cfg)
        agent.wait_connected()
        s1 = env.subscriber(b1)
        s2 = env.subscriber(b2)
        self.assertIsNotNone(s1.wait_count("/telemetry", 1, timeout=10))
        old_sock = env.path("agent.sock")
        new_sock = env.path("run2", "ctl.sock")
        self.assertTrue(os.path.exists(old_sock))
        with open(cfg) as f:
            c = json.load(f)
        c["mqtt"]["port"] = b2.port
        c["control"]["socket"] = new_sock
        harness.write_atomic(cfg, json.dumps(c, indent=2))
        mark = agent.line_count()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"configuration reloaded from .* \(2 slots, broker connection renewed\)", timeout=10,
                       start=mark)
        agent.wait_log(r"connected to MQTT broker localhost:%d" % b2.port, timeout=20, start=mark)
        off = s1.wait_doc("/status", lambda d: d.get("state") == "offline", timeout=10)
        self.assertIsNotNone(off, "old broker not told the agent left")
        self.assertEqual(off[1].get("reason"), "reconfigured", off[1])
        self.assertIsNotNone(s2.wait_doc("/status", lambda d: d.get("state") == "online", timeout=10))
        self.assertIsNotNone(s2.wait_count("/telemetry", 3, timeout=10), "no telemetry on the new broker")
        t = time.monotonic()
        time.sleep(1.0)
        self.assertEqual(s1.on("/telemetry", since=t), [], "telemetry still goes to the old broker")
        self.assertFalse(os.path.exists(old_sock), "old control socket left behind")
        r = env.run([harness.ctl_binary(), "--socket", new_sock, "--json", "status"])
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)["status"]["broker"]
        self.assertEqual((st["port"], st["state"]), (b2.port, "connected"), st)
        rc, _ = agent.terminate(timeout=1.0)
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    harness.main()
