#!/usr/bin/env python3
"""test_failover: mqtt.brokers with two real TLS brokers. The agent connects to the first; when
it is killed, telemetry goes on through the second within seconds and `render-agentctl status`
names the broker in use; the agent stays there when the first comes back, and when the second
goes it tries the second again, then the first. The dev PKI's server certificate names both
localhost and 127.0.0.1, so the two entries ("localhost:P1", "127.0.0.1:P2") also show that each
broker's certificate is checked against its own host."""

import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

INTERVAL_MS = 200
FAILOVER_S = 5.0  # "within a few seconds": loss, the first retry (spread over RECONNECT_WINDOW_MS),
#                   one refusal, TLS
RECONNECT_WINDOW_MS = 1000  # the default 5 s spreads a fleet's reconnects; one agent needs none
MAX_CPU_S = 0.5


class Failover(harness.IntegrationTest):
    def brokers_config(self, entries):
        """The harness's config with mqtt.brokers = entries in place of mqtt.host/port."""
        path = self.env.config(1, interval_ms=INTERVAL_MS)
        with open(path) as f:
            cfg = json.load(f)
        del cfg["mqtt"]["host"], cfg["mqtt"]["port"]
        cfg["mqtt"]["brokers"] = entries
        cfg["mqtt"]["reconnect_window_ms"] = RECONNECT_WINDOW_MS
        harness.write_atomic(path, json.dumps(cfg, indent=2) + "\n")
        return path

    def status(self):
        r = self.env.run([harness.ctl_binary(), "--socket", self.env.path("agent.sock"), "--json", "status"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)["status"]["broker"]

    def wait_status(self, pred, timeout=5.0):
        got = harness.wait_for(lambda: (lambda st: st if pred(st) else None)(self.status()), timeout, interval=0.2)
        return got or self.status()

    def test_killed_broker_fails_over_and_the_agent_stays(self):
        env = self.env
        b1, b2 = env.broker(), env.broker()
        first, second = "localhost:%d" % b1.port, "127.0.0.1:%d" % b2.port
        agent = env.agent(self.brokers_config([first, second]))
        agent.wait_log(r"notice: connected to MQTT broker %s " % re.escape(first), timeout=20)
        sub1, sub2 = env.subscriber(b1), env.subscriber(b2)
        self.assertIsNotNone(sub1.wait_count("/telemetry", 2, timeout=10), "no telemetry through the first broker")
        st = self.wait_status(lambda s: s.get("state") == "connected")
        self.assertEqual(st.get("current"), first, st)
        self.assertEqual(sub2.on("/telemetry"), [], "telemetry went to the second broker while the first was up")
        seq_before = int(sub1.docs("/telemetry")[-1][1]["seq"])

        # The first broker dies without a word: telemetry resumes through the second.
        mark = agent.line_count()
        t0 = time.monotonic()
        b1.kill9()
        got = sub2.wait_count("/telemetry", 1, timeout=FAILOVER_S)
        took = time.monotonic() - t0
        print("failover: first telemetry through the second broker %.2f s after the first was killed" % took)
        self.assertIsNotNone(got, "no telemetry through %s within %.0f s of killing %s" % (second, FAILOVER_S, first))
        agent.wait_log(r"notice: connected to MQTT broker %s " % re.escape(second), timeout=1, start=mark)
        self.assertIsNotNone(sub2.wait_doc("/status", lambda d: d.get("state") == "online", timeout=5),
                             "no online status published on the second broker")
        seqs = [int(d["seq"]) for t, d in sub2.docs("/telemetry")]
        self.assertGreater(seqs[0], seq_before, "seq went backwards across the failover")
        st = self.wait_status(lambda s: s.get("current") == second)
        self.assertEqual(st.get("current"), second, st)
        self.assertEqual(st.get("state"), "connected", st)
        self.assertEqual(st.get("connects"), 2, st)

        # The first broker comes back: the agent stays where it is.
        b1.restart()
        late1 = env.subscriber(b1)
        n2 = len(sub2.on("/telemetry"))
        time.sleep(2.0)
        self.assertEqual(agent.matches(r"connected to MQTT broker", start=mark),
                         agent.matches(r"notice: connected to MQTT broker %s " % re.escape(second), start=mark),
                         "the agent moved although its broker was fine")
        self.assertGreater(len(sub2.on("/telemetry")), n2, "telemetry stopped on the second broker")
        self.assertEqual(late1.on("/telemetry"), [], "telemetry went back to the first broker")
        self.assertEqual(self.status().get("current"), second)

        # The second goes: the agent tries it again first (it was the one working), then the first.
        mark = agent.line_count()
        b2.kill9()
        hits = agent.wait_log(r"notice: connected to MQTT broker %s " % re.escape(first), timeout=FAILOVER_S,
                              start=mark)
        lines = agent.log_lines()[mark:]
        done = lines.index(hits[0])
        retried = [i for i, line in enumerate(lines[:done])
                   if re.search(r"(warning|debug): MQTT broker %s: .*trying %s next" %
                                (re.escape(second), re.escape(first)), line)]
        self.assertTrue(retried, "after losing %s the agent did not try it again before %s:\n%s" %
                        (second, first, "\n".join(lines[:done + 1])))
        lost = [line for line in lines[:done] if "lost the MQTT connection to %s:" % second in line]
        self.assertEqual(len(lost), 1, lines[:done + 1])
        self.assertIsNotNone(late1.wait_count("/telemetry", 1, timeout=5), "no telemetry back on the first broker")
        self.assertEqual(self.wait_status(lambda s: s.get("current") == first).get("current"), first)

        rc, _ = agent.terminate(timeout=2)
        self.assertEqual(rc, 0)
        agent.check_sanitizers()

    def agent_behind_dead_broker(self, second_host):
        """An agent with brokers [localhost:<nobody listens>, second_host:<a live broker>]."""
        b2 = self.env.broker()
        first, second = "localhost:%d" % harness.free_port(), "%s:%d" % (second_host, b2.port)
        return self.env.agent(self.brokers_config([first, second])), first, second, b2

    def test_first_broker_down_at_start(self):
        agent, first, second, b2 = self.agent_behind_dead_broker("127.0.0.1")
        agent.wait_log(r"notice: connected to MQTT broker %s " % re.escape(second), timeout=FAILOVER_S + 5)
        agent.wait_log(r"warning: MQTT broker %s: .*; trying %s next" % (re.escape(first), re.escape(second)),
                       timeout=1)
        sub = self.env.subscriber(b2)
        self.assertIsNotNone(sub.wait_count("/telemetry", 2, timeout=10))
        st = self.wait_status(lambda s: s.get("state") == "connected")
        self.assertEqual(st.get("current"), second, st)
        self.assertEqual(st.get("last_error"), "", st)

    def test_each_broker_certificate_must_name_its_own_host(self):
        # "127.1" reaches the broker on 127.0.0.1, but its certificate names localhost and
        # 127.0.0.1, not "127.1": after the first (well-named, down) broker, the agent must check
        # the second against the host it dials now, and refuse it.
        agent, first, second, b2 = self.agent_behind_dead_broker("127.1")
        agent.wait_log(r"warning: MQTT broker %s: the broker's certificate does not name 127\.1: " %
                       re.escape(second), timeout=10)
        time.sleep(1.5)
        self.assertEqual(agent.matches(r"connected to MQTT broker"), [])
        self.assertEqual(self.status().get("connects"), 0)

    def test_every_broker_down_backs_off_between_rounds(self):
        env = self.env
        p1, p2 = harness.free_port(), harness.free_port()
        first, second = "localhost:%d" % p1, "127.0.0.1:%d" % p2
        agent = env.agent(self.brokers_config([first, second]))
        agent.wait_log(r"MQTT broker %s: .*every broker failed; retrying from %s after a backoff" %
                       (re.escape(second), re.escape(first)), timeout=10)
        cpu0 = harness.cpu_seconds(agent.pid)
        time.sleep(3.0)
        cpu = harness.cpu_seconds(agent.pid) - cpu0
        print("agent CPU time during 3 s with every broker down: %.3f s" % cpu)
        self.assertLess(cpu, MAX_CPU_S, "busy loop with every broker down?")
        # Each broker's refusal is a warning once per cause; the repeats are debug lines.
        for name in (first, second):
            failure = r"MQTT broker %s: (.*?); (trying|every broker failed)" % re.escape(name)
            reasons = [re.search(failure, line).group(1) for line in agent.matches(r"warning: " + failure)]
            self.assertTrue(reasons, "no warning about %s" % name)
            self.assertEqual(len(reasons), len(set(reasons)), "a cause was a warning more than once: %s" % reasons)
        self.assertGreaterEqual(len(agent.matches(r"debug: MQTT broker %s: " % re.escape(first))), 1)
        st = self.status()
        self.assertIn(st.get("state"), ("backoff", "connecting"), st)
        self.assertIn(st.get("current"), (first, second), st)
        self.assertRegex(st.get("last_error", ""), r"^(%s|%s): " % (re.escape(first), re.escape(second)))

        # The second comes up: the next round reaches it.
        mark = agent.line_count()
        b2 = harness.Broker(env, p2).start()
        env.brokers.append(b2)
        agent.wait_log(r"notice: connected to MQTT broker %s " % re.escape(second), timeout=15, start=mark)


if __name__ == "__main__":
    harness.main()
