#!/usr/bin/env python3
"""test_rabbitmq_cluster: a 2-node RabbitMQ 3.10 cluster on one machine (classic_config, the same
epmd and cookie), TLS client-certificate login on both, mqtt.brokers = [B, A]. The agent connects
to B; B is killed with SIGKILL; the agent fails over to A within seconds and stays there: the
cluster's default settings must not pin it to the dead node (a QoS 1 subscription of a clean
session is a durable queue on the node that made it, and A refuses to subscribe to it while B is
down). On A the agent's status is published again and a command is answered."""

import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erlang_brokers  # noqa: E402
import harness  # noqa: E402

FAILOVER_S = 15  # loss, backoff, B refused, TLS and 3.1.1 with A
STAY_S = 4


class RabbitMQCluster(erlang_brokers.BrokerScenario):
    kind = "rabbitmq"

    def test_killed_node_fails_over_to_the_other_and_stays(self):
        env = self.env
        t0 = time.monotonic()
        a = erlang_brokers.RabbitMQ(env, users=[env.node], name="rabbit-a").start()
        env.brokers.append(a)
        b = erlang_brokers.RabbitMQ(env, users=[env.node], name="rabbit-b", cluster_with=a).start()
        env.brokers.append(b)
        print("cluster up in %.1f s (a %.1f s, b %.1f s)" % (time.monotonic() - t0, a.start_s, b.start_s))
        v311 = {"version": "mqttv311"}
        telemetry_a = env.subscriber(a, topic=env.topic("telemetry"), **v311)
        status_a = env.subscriber(a, topic=env.topic("status"), qos=1, **v311)
        replies_a = env.subscriber(a, topic=env.topic("cmd/reply"), qos=1, **v311)

        path = env.config(1)
        with open(path) as f:
            cfg = json.load(f)
        del cfg["mqtt"]["host"], cfg["mqtt"]["port"]
        first, second = "localhost:%d" % b.port, "127.0.0.1:%d" % a.port
        cfg["mqtt"]["brokers"] = [first, second]
        harness.write_atomic(path, json.dumps(cfg, indent=2) + "\n")
        agent = env.agent(path)
        agent.wait_log(r"notice: connected to MQTT broker %s \(MQTT 3\.1\.1" % re.escape(first), timeout=20)
        # Published via B, received on A: one cluster.
        self.assertIsNotNone(telemetry_a.wait_count("/telemetry", 1, timeout=10),
                             "telemetry published via B did not reach a subscriber on A: no cluster?")

        mark = time.monotonic()
        line = agent.line_count()
        b.kill9()
        agent.wait_log(r"connected to MQTT broker %s" % re.escape(second), timeout=FAILOVER_S, start=line)
        print("failover to A %.1f s after B was killed" % (time.monotonic() - mark))
        time.sleep(STAY_S)
        st = self.status()["broker"]
        self.assertEqual((st["state"], st["current"], st["connects"]), ("connected", second, 2),
                         "the agent did not stay on A:\n%s" % "\n".join(agent.log_lines()[line:][-20:]))
        self.assertIsNotNone(status_a.wait_doc("/status", lambda d: d.get("state") == "online", since=mark,
                                               timeout=5), "no online status published again via A")
        self.publish(a, '{"id":"after-failover","op":"status"}', "-V", "311")
        got = replies_a.wait_doc("/cmd/reply", lambda d: d.get("id") == "after-failover", timeout=10)
        self.assertIsNotNone(got, "a command via A was not answered: %s" % replies_a.describe())
        print("test ran %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    harness.main()
