#!/usr/bin/env python3
"""test_reconnect: the broker is killed with SIGKILL and restarted on the same port; the agent
reconnects by itself, does not busy-loop while the broker is gone, and logs the failure once."""

import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

INTERVAL_MS = 500
OUTAGE_S = 5.0
MAX_CPU_S = 0.5


class Reconnect(harness.IntegrationTest):
    def test_broker_killed_and_restarted(self):
        env = self.env
        broker = env.broker()
        cfg = env.config(broker.port, interval_ms=INTERVAL_MS)
        agent = env.agent(cfg)
        agent.wait_connected()
        sub = env.subscriber(broker)
        self.assertIsNotNone(sub.wait_count("/telemetry", 2, timeout=10), "no telemetry before the outage")
        seq_before = int(sub.docs("/telemetry")[-1][1]["seq"])

        # Outage: kill -9, so the broker says nothing on its way out.
        mark = agent.line_count()
        broker.kill9()
        agent.wait_log(r"warning: lost the MQTT connection to localhost:%d" % broker.port, timeout=10, start=mark)
        cpu0 = harness.cpu_seconds(agent.pid)
        t0 = time.monotonic()
        time.sleep(OUTAGE_S)
        cpu = harness.cpu_seconds(agent.pid) - cpu0
        self.assertTrue(agent.alive(), "agent died while the broker was down")
        print("agent CPU time during %.1f s without a broker: %.3f s" % (OUTAGE_S, cpu))
        self.assertLess(cpu, MAX_CPU_S, "agent used %.2f s of CPU in %.1f s without a broker (busy loop?)" %
                        (cpu, time.monotonic() - t0))

        # Retries happen (debug lines), but each reason is a warning only once.
        failure = r"MQTT broker localhost:%d: cannot connect: (.*?)(; reconnecting.*)?$" % broker.port
        agent.wait_log(r"debug: " + failure, timeout=20, start=mark)  # the second identical failure
        reasons = {}
        for line in agent.matches(r"warning: " + failure, start=mark):
            reason = re.search(failure, line).group(1)
            reasons[reason] = reasons.get(reason, 0) + 1
        self.assertTrue(reasons, "no warning about the refused connection")
        self.assertEqual(set(reasons.values()), {1},
                         "the same failure was logged at warning level more than once: %s" % reasons)
        lost = agent.matches(r"warning: lost the MQTT connection", start=mark)
        self.assertEqual(len(lost), 1, lost)
        attempts = agent.matches(re.escape("debug: MQTT broker localhost:%d: " % broker.port), start=mark)
        self.assertGreaterEqual(len(attempts), 1)
        # Telemetry is "latest wins": nothing arrives while the broker is down (the subscriber
        # lost its broker too, so this mostly shows the agent did not crash on publish).
        self.assertTrue(agent.alive())

        # The broker comes back on the same port: the agent reconnects on its own.
        mark2 = agent.line_count()
        broker.restart()
        late = env.subscriber(broker)
        agent.wait_log(r"notice: connected to MQTT broker localhost:%d" % broker.port, timeout=70, start=mark2)
        on = late.wait_doc("/status", lambda d: d.get("state") == "online", timeout=10)
        self.assertIsNotNone(on, "status not republished as online after the reconnect")
        self.assertIsNotNone(late.wait_count("/telemetry", 3, timeout=10), "telemetry did not resume")
        seqs = [int(d["seq"]) for t, d in late.docs("/telemetry")]
        self.assertGreater(seqs[0], seq_before, "seq went backwards across the reconnect: %d -> %s" %
                           (seq_before, seqs))
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), seqs)
        # The retained status was lost with the non-persistent broker; it is there again now.
        self.assertEqual(on[1].get("slots")[0]["id"], "s0")

        rc, _ = agent.terminate(timeout=2)
        self.assertEqual(rc, 0)
        agent.check_sanitizers()

    def test_broker_hung(self):
        # A broker that stops answering (SIGSTOP: TCP stays up, nothing comes back) is noticed
        # by the MQTT keepalive, and the agent reconnects once the broker runs again.
        keepalive = 5
        env = self.env
        broker = env.broker()
        agent = env.agent(env.config(broker.port, interval_ms=INTERVAL_MS, keepalive_s=keepalive))
        agent.wait_connected()
        mark = agent.line_count()
        t0 = time.monotonic()
        broker.proc.send(signal.SIGSTOP)
        try:
            agent.wait_log(r"warning: lost the MQTT connection to localhost:%d: no answer to keepalive ping" %
                           broker.port, timeout=4 * keepalive, start=mark)
            took = time.monotonic() - t0
            # PINGREQ after one keepalive without traffic from the broker, give up after another.
            self.assertLess(took, 3.5 * keepalive, "hung broker noticed only after %.1f s" % took)
            self.assertTrue(agent.alive())
        finally:
            broker.proc.send(signal.SIGCONT)
        agent.wait_log(r"connected to MQTT broker localhost:%d" % broker.port, timeout=70, start=mark)
        sub = env.subscriber(broker)
        self.assertIsNotNone(sub.wait_doc("/status", lambda d: d.get("state") == "online", timeout=10))
        self.assertIsNotNone(sub.wait_count("/telemetry", 2, timeout=10), "telemetry did not resume")
        rc, _ = agent.terminate(timeout=2)
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    harness.main()
