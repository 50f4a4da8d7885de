#!/usr/bin/env python3
"""test_rabbitmq: the agent against a real RabbitMQ 3.10 (rabbitmq_mqtt speaks MQTT 3.1.1 only, and
closes the connection on an MQTT 5 CONNECT without a CONNACK), TLS with client-certificate login
(ssl_cert_login, CN). With mqtt.protocol left at "auto" the agent falls back to 3.1.1 and says why;
sessions run; a status command is answered on cmd/reply (3.1.1 has no response topic); a
subscriber with a persistent session (clean session off, QoS 1: a durable queue) gets every
metering record, seq contiguous, across a kill -9 and restart of the broker; the will (status
offline, "connection lost") fires when the agent is killed with SIGKILL."""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erlang_brokers  # noqa: E402
import harness  # noqa: E402


class RabbitMQ(erlang_brokers.BrokerScenario):
    kind = "rabbitmq"

    def test_auto_falls_back_to_3_1_1_and_nothing_is_lost_across_a_broker_restart(self):
        broker = erlang_brokers.RabbitMQ(self.env, users=[self.env.node])

        def command(cid):
            self.publish(broker, '{"id":"%s","op":"status"}' % cid, "-V", "311")

        self.run_scenario(broker, {"version": "mqttv311"}, 4,
                          r'mqtt\.protocol "auto": the broker closed the connection after an MQTT 5 CONNECT '
                          r'without a CONNACK', command, "cmd/reply")


if __name__ == "__main__":
    harness.main()
