#!/usr/bin/env python3
"""test_rabbitmq: the agent against a real RabbitMQ 3.10 (rabbitmq_mqtt speaks MQTT 3.1.1 only, and
closes the connection on an MQTT 5 CONNECT without a CONNACK), TLS with client-certificate login.
With mqtt.protocol left at "auto" the agent falls back to 3.1.1 and says why; sessions run; a
command is answered on cmd/reply; a subscriber with a persistent session (clean session off, QoS 1)
gets every metering record, seq contiguous, across a kill -9 and restart of the broker; the will
(status offline, "connection lost") fires when the agent is killed with SIGKILL."""

import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rabbitmq  # noqa: E402
from test_sessions import Client  # noqa: E402

SLOTS = [{"id": "s0", "scale": "cpu-4"}, {"id": "s1", "scale": "cpu-8"}]
RECONNECT_S = 40  # the agent's backoff grows to 16 s and more during the broker's ~15 s restart


def b64url_json(s):
    import base64
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


class RabbitMQ(harness.IntegrationTest):
    def setUp(self):
        why = rabbitmq.missing()
        if why:
            self.fail(why)
        super().setUp()

    def status(self, sock):
        c = Client(sock)
        st = c.call("status")["status"]
        c.close()
        return st

    def sessions(self, sock, users):
        """Reserves, starts and ends one session per user over the control socket: 2 records each."""
        c = Client(sock)
        for user in users:
            s = c.call("reserve", user=user)["session"]
            self.assertTrue(c.call("start", session=s)["ok"])
            self.assertTrue(c.call("end", session=s, reason="done")["ok"])
        c.close()

    def seqs(self, *subs):
        return sorted({b64url_json(json.loads(p)["payload"])["seq"] for sub in subs for _, _, p in sub.on("/metering")})

    def test_auto_falls_back_to_3_1_1_and_nothing_is_lost_across_a_broker_restart(self):
        env = self.env
        t0 = time.monotonic()
        broker = rabbitmq.RabbitMQ(env, users=[env.node]).start()
        env.brokers.append(broker)
        print("RabbitMQ up in %.1f s" % broker.start_s)
        v311 = {"version": "mqttv311", "qos": 1}
        consumer = {"topic": env.topic("metering"), "client_id": "metering-consumer", "clean": False}
        meter = env.subscriber(broker, **consumer, **v311)
        watch = env.subscriber(broker, topic=env.topic("#"), **v311)

        agent = env.agent(env.config(broker.port, slots=SLOTS))
        agent.wait_log(r'notice: connected to MQTT broker localhost:%d \(MQTT 3\.1\.1: mqtt\.protocol "auto": the '
                       r'broker closed the connection after an MQTT 5 CONNECT without a CONNACK' % broker.port,
                       timeout=20)
        self.assertEqual(agent.matches(r"cause is not the MQTT version"), [])
        sock = env.path("agent.sock")
        harness.wait_for(lambda: all(s.get("conformant") for s in self.status(sock)["slots"]), 10,
                         what="slots planned")
        st = self.status(sock)["broker"]
        self.assertEqual((st["mqtt_version"], st["connects"]), (4, 1), st)
        self.assertEqual(st["protocols"]["localhost:%d" % broker.port]["mqtt"], "3.1.1", st)
        self.assertIs(st["protocols"]["localhost:%d" % broker.port]["known"], True, st)
        self.assertIsNotNone(watch.wait_doc("/status", lambda d: d.get("state") == "online", timeout=10),
                             watch.describe())

        # Sessions, and a command answered on cmd/reply (3.1.1 has no response topic).
        self.sessions(sock, ["alice", "bob"])
        pki = env.pki
        r = env.run(["mosquitto_pub", "-h", "localhost", "-p", str(broker.port), "--cafile", pki["ca"],
                     "--cert", pki["client_cert"], "--key", pki["client_key"], "-q", "1", "-V", "311",
                     "-t", env.topic("cmd"), "-m", '{"id":"st1","op":"status"}'])
        self.assertEqual(r.returncode, 0, r.stderr)
        reply = watch.wait_doc("/cmd/reply", lambda d: d.get("id") == "st1", timeout=10)
        self.assertIsNotNone(reply, watch.describe())
        self.assertEqual(reply[1]["status"]["node"], env.node)
        self.assertIsNotNone(meter.wait_count("/metering", 4, timeout=10), meter.describe())

        # The broker dies without a word; sessions go on (records wait in the spool); it comes back
        # on the same data and the persistent subscriber's queue with it. mosquitto_sub exits when
        # its connection is lost: the consumer comes back as a new one with the same client id,
        # after the agent may already have published into its queue.
        broker.kill9()
        self.sessions(sock, ["carol", "dave", "erin"])
        broker.restart()
        print("RabbitMQ back in %.1f s" % broker.start_s)
        mark = time.monotonic()
        watch = env.subscriber(broker, topic=env.topic("#"), **v311)
        harness.wait_for(lambda: self.status(sock)["broker"]["state"] == "connected", RECONNECT_S, interval=0.3,
                         what="agent reconnected")
        meter2 = env.subscriber(broker, **consumer, **v311)
        st = {}

        def drained():
            st.update(self.status(sock)["metering"])
            return st["spool"]["pending"] == 0 and st["in_flight"] == 0 and st["next_seq"] > 1

        self.assertTrue(harness.wait_for(drained, RECONNECT_S, interval=0.3), "spool not drained: %s" % st)
        print("agent reconnected and delivered its spool %.1f s after the broker was back" % (time.monotonic() - mark))
        last = st["next_seq"] - 1
        self.assertGreaterEqual(last, 10)  # 5 sessions, a start and an end each
        harness.wait_for(lambda: len(self.seqs(meter, meter2)) >= last, 20,
                         what="%d records at the subscriber" % last)
        self.assertEqual(self.seqs(meter, meter2), list(range(1, last + 1)), "%s\n%s\n%s" % (
            meter2.describe(30), "\n".join(meter2.debug[-20:]), harness.tail(meter2.proc.stderr())))

        # kill -9: RabbitMQ publishes the agent's will, the retained offline status.
        since = time.monotonic()
        agent.proc.kill()
        will = watch.wait_doc("/status", lambda d: d.get("state") == "offline", since=since, timeout=15)
        self.assertIsNotNone(will, watch.describe())
        self.assertEqual(will[1]["reason"], "connection lost", will[1])
        print("test ran %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    harness.main()
