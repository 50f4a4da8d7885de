#!/usr/bin/env python3
"""test_ejabberd: the agent against a real ejabberd 23.01 (mod_mqtt, MQTT 5), TLS with the client
certificate as the login (tls_verify: the CN is the user). With mqtt.protocol "auto" the agent
stays on MQTT 5; sessions run; a status command with an MQTT 5 response topic and correlation data
is answered there; a subscriber with a persistent session gets every metering record, seq
contiguous, across a kill -9 and restart of the broker (ejabberd keeps sessions in RAM and loses
them: the records come through because MQTT 5's PUBACK 0x10, no matching subscribers, keeps them
on the node until the consumer is back); the will fires when the agent is killed with SIGKILL."""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import erlang_brokers  # noqa: E402
import harness  # noqa: E402


class Ejabberd(erlang_brokers.BrokerScenario):
    kind = "ejabberd"

    def test_mqtt5_with_client_certificates_and_nothing_is_lost_across_a_broker_restart(self):
        broker = erlang_brokers.Ejabberd(self.env)
        user = self.env.node  # the client certificate's CN

        def command(cid):
            self.publish(broker, '{"id":"%s","op":"status"}' % cid, "-V", "5", "-u", user,
                         "-D", "publish", "response-topic", self.env.topic("cmd/reply/7"),
                         "-D", "publish", "correlation-data", "corr-7")

        self.run_scenario(broker, {"username": user}, 5, r'mqtt\.protocol "auto": the broker answered MQTT 5',
                          command, "cmd/reply/7")


if __name__ == "__main__":
    harness.main()
