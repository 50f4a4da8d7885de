#!/usr/bin/env python3
"""test_no_consumer: nobody subscribes to .../metering. mosquitto 2 answers each MQTT 5 QoS 1
publish with PUBACK 0x10 (No matching subscribers): the records were received by nobody, so they
stay in the agent's spool, a metering_alarm no_consumer goes out on events, the status (control
socket, render-agentctl status, the MQTT status command) says so, and the records are offered again
one at a time with backoff, without hammering the broker. Once a subscriber comes, every record
arrives (seq contiguous from 1, chain and signatures verified) and the alarm is cleared."""

import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import not_clock  # noqa: E402

SLOTS = [{"id": "s0", "scale": "cpu-4"}, {"id": "s1", "scale": "cpu-8"}]
METERING = {"metering": {"window_s": 2, "late_s": 0}}


def b64url_json(s):
    import base64
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


class NoConsumer(harness.IntegrationTest):
    def status(self, sock):
        c = harness.ControlConn(sock)
        st = c.call("status")["status"]
        c.close()
        return st

    def metering_publishes(self, broker):
        """How many PUBLISHes on .../metering the broker received from the agent (its log)."""
        pat = re.compile(r"Received PUBLISH from %s .*'%s'" % (re.escape(self.env.node),
                                                                re.escape(self.env.topic("metering"))))
        return len(pat.findall(broker.log()))

    def mqtt_status(self, broker, replies, n):
        """The status document, asked for over MQTT (3.1.1: the reply goes to .../cmd/reply)."""
        pki = self.env.pki
        r = self.env.run(["mosquitto_pub", "-h", "localhost", "-p", str(broker.port), "--cafile", pki["ca"],
                          "--cert", pki["client_cert"], "--key", pki["client_key"], "-q", "1", "-V", "311",
                          "-t", self.env.topic("cmd"), "-m", '{"id":"st%d","op":"status"}' % n])
        self.assertEqual(r.returncode, 0, r.stderr)
        got = replies.wait_doc("/cmd/reply", lambda d: d.get("id") == "st%d" % n, timeout=10)
        self.assertIsNotNone(got, replies.describe())
        return got[1]["status"]

    def test_records_nobody_received_stay_spooled_until_a_subscriber_comes(self):
        env = self.env
        broker = env.broker()
        events = env.subscriber(broker, topic=env.topic("events"), qos=1)
        replies = env.subscriber(broker, topic=env.topic("cmd/reply"), qos=1)
        cfg = env.config(broker.port, slots=SLOTS, extra=METERING)
        agent = env.agent(cfg)
        agent.wait_connected()
        sock = env.path("agent.sock")
        self.assertTrue(harness.wait_for(lambda: all(s.get("conformant") for s in self.status(sock)["slots"]),
                                         10), "slots not planned")
        c = harness.ControlConn(sock)
        acked = set()
        for user in ("alice", "bob", "carol"):
            s = c.call("reserve", user=user)["session"]
            self.assertTrue(c.call("start", session=s)["ok"])
            self.assertTrue(c.call("end", session=s, reason="done")["ok"])
            acked.add(s)
        c.close()

        # Nobody received them: an alarm, and they stay in the spool.
        alarm = events.wait_doc("/events", lambda d: d.get("event") == "metering_alarm" and not_clock(d), timeout=10)
        self.assertIsNotNone(alarm, events.describe())
        print("alarm: %s" % alarm[1]["message"])
        self.assertEqual(alarm[1]["alarm"], "no_consumer")
        self.assertIn(env.topic("metering"), alarm[1]["message"])
        self.assertIn("0x10", alarm[1]["message"])
        # The spool's sync runs on a worker: records wait in the journal (in slots.state) until it
        # ends, for a moment.
        self.assertTrue(harness.wait_for(lambda: self.status(sock)["metering"]["owed"] == 0, 5),
                        self.status(sock)["metering"])
        m = self.status(sock)["metering"]
        self.assertTrue(m["no_consumer"], m)
        self.assertRegex(m["no_consumer_since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(m["acked"], 0, m)
        self.assertGreaterEqual(m["spool"]["pending"], 6, m)  # 3 starts + 3 ends at least
        self.assertEqual(m["spool"]["pending"], m["next_seq"] - 1, m)
        r = env.run([harness.ctl_binary(), "--socket", sock, "status"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"metering +NO CONSUMER since \d{4}-\d\d-\d\dT\S+: \d+ records held")
        self.assertTrue(self.mqtt_status(broker, replies, 1)["metering"]["no_consumer"])

        # Offered again, one record at a time with a growing wait (0.5..1 s, 1..2 s, 2..4 s, ...):
        # the broker is not hammered.
        first = self.metering_publishes(broker)
        self.assertTrue(harness.wait_for(lambda: self.metering_publishes(broker) > first, 15),
                        "records are not offered again:\n%s" % harness.tail(broker.log()))
        before = self.metering_publishes(broker)
        time.sleep(8)
        offers = self.metering_publishes(broker) - before
        print("metering publishes without a consumer: %d at first, then %d in 8 s" % (first, offers))
        self.assertLessEqual(offers, 5, "the broker is hammered")
        m = self.status(sock)["metering"]
        self.assertEqual((m["acked"], m["lost"]), (0, 0), m)
        self.assertTrue(m["no_consumer"], m)
        self.assertEqual(len([d for _, d in events.docs("/events") if d.get("event") == "metering_alarm" and not_clock(d)]), 1,
                         "the alarm is raised once: %s" % events.describe())

        # A consumer subscribes: the next offer is received, everything held follows.
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        cleared = events.wait_doc("/events", lambda d: d.get("event") == "metering_alarm_cleared", timeout=70)
        self.assertIsNotNone(cleared, events.describe())
        print("cleared: %s" % cleared[1]["message"])
        self.assertEqual(cleared[1]["alarm"], "no_consumer")
        st = {}

        def drained():
            st.update(self.status(sock)["metering"])
            return st["spool"]["pending"] == 0 and st["in_flight"] == 0 and st["owed"] == 0

        self.assertTrue(harness.wait_for(drained, 20), "spool not drained: %s" % st)
        self.assertFalse(st["no_consumer"], st)
        self.assertNotIn("no_consumer_since", st)
        last = st["next_seq"] - 1
        self.assertTrue(harness.wait_for(lambda: {p["seq"] for _, p in self.records(sub)} >= set(range(1, last + 1)),
                                         15), "not all %d records at the subscriber:\n%s" % (last, sub.describe()))
        recs = self.records(sub)
        seqs = sorted({p["seq"] for _, p in recs})
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        started = {p["session"] for _, p in recs if p["type"] == "session_start"}
        ended = {p["session"] for _, p in recs if p["type"] == "session_end"}
        self.assertEqual(acked - started, set())
        self.assertEqual(acked - ended, set())
        path = env.path("records.jws")
        with open(path, "w") as f:
            f.write("\n".join(line for line, _ in recs) + "\n")
        r = env.run([harness.ctl_binary(), "verify", "--json", "--cert", env.pki["client_cert"], path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(self.mqtt_status(broker, replies, 2)["metering"]["no_consumer"])
        r = env.run([harness.ctl_binary(), "--socket", sock, "status"])
        self.assertNotIn("NO CONSUMER", r.stdout)

    def records(self, sub):
        """(line, payload) of every record received so far."""
        return [(payload, b64url_json(json.loads(payload)["payload"])) for _, _, payload in sub.on("/metering")]


if __name__ == "__main__":
    harness.main()
