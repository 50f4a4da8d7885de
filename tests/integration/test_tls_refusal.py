#!/usr/bin/env python3
"""test_tls_refusal: TLS mutual authentication fails both ways and the agent says why.
(a) the agent does not trust the broker (ca_file = a rogue CA): "certificate verify failed";
(b) the broker does not trust the agent (client certificate from a rogue CA): the broker drops
    the connection before CONNACK. In both cases nothing is published and the agent stays up.
(c) a plaintext port and (d) an expired broker certificate are named as such (issue 16)."""

import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OBSERVE_S = 3.0


class TlsRefusal(harness.IntegrationTest):
    def _never_connects(self, agent, sub, explained_re):
        """Waits for the first warning about the broker; checks it and every later one says why
        (explained_re), that each reason is a warning once, and that nothing got through."""
        first = agent.wait_log(r"warning: MQTT broker localhost:\d+: ", timeout=15)[0]
        time.sleep(OBSERVE_S)  # more attempts happen meanwhile (backoff 0.5 s, 1 s, ...)
        self.assertTrue(agent.alive(), "agent exited after a TLS failure")
        warnings = agent.matches(r"warning: MQTT broker localhost:\d+: ")
        attempts = agent.matches(r"(warning|debug): MQTT broker localhost:\d+: ")
        self.assertGreaterEqual(len(attempts), 2, "the agent stopped retrying:\n" + "\n".join(attempts))
        unexplained = [w for w in warnings if not re.search(explained_re, w)]
        self.assertEqual(unexplained, [], "warnings that do not say /%s/ (of %d attempts):\n%s" %
                         (explained_re, len(attempts), "\n".join(unexplained)))
        self.assertEqual(len(warnings), 1, "the same refusal was logged at warning level %d times in %d attempts:"
                         "\n%s" % (len(warnings), len(attempts), "\n".join(warnings)))
        self.assertEqual(agent.matches(r"connected to MQTT broker|received CONNACK"), [])
        self.assertEqual(sub.on("/telemetry"), [], "telemetry arrived although TLS should have failed")
        self.assertEqual(sub.on("/status"), [], "status arrived although TLS should have failed")
        # The failure is on the control socket too, for the field engineer.
        r = self.env.run([harness.ctl_binary(), "--socket", self.env.path("agent.sock"), "--json", "status"])
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)["status"]["broker"]
        self.assertIn(st["state"], ("backoff", "connecting"), st)
        self.assertEqual(st["connects"], 0, st)
        return first

    def test_agent_distrusts_broker(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker)
        cfg = env.config(broker.port, ca=env.pki["rogue_ca"])
        agent = env.agent(cfg)
        self._never_connects(agent, sub, r"certificate verify failed")

    def test_broker_distrusts_agent(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker)
        cfg = env.config(broker.port, cert=env.pki["rogue_client_cert"], key=env.pki["rogue_client_key"])
        agent = env.agent(cfg)
        # link.c says "... before CONNACK: the broker dropped the connection; does it trust this
        # client certificate" or quotes the TLS alert OpenSSL saw (e.g. "tlsv1 alert unknown ca").
        self._never_connects(agent, sub, r"dropped the connection|alert|client certificate")
        # A refused certificate is not taken for a broker that cannot parse MQTT 5 (mqtt.protocol
        # "auto" tries 3.1.1 only after a connection that TLS let through closed in order).
        self.assertEqual(agent.matches(r"MQTT 3\.1\.1"), [], "a TLS refusal taken for the MQTT version")

    def test_plaintext_port_is_named_not_the_client_certificate(self):
        """A plaintext MQTT listener closes on the TLS ClientHello without a byte of TLS: the
        agent says so, and does not blame its client certificate."""
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker)
        plain = harness.free_port()
        conf = env.path("plain.conf")
        with open(conf, "w") as f:
            f.write("%slistener %d 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n" %
                    ("user root\n" if os.geteuid() == 0 else "", plain))
        p = harness.Proc(env, "mosquitto", ["mosquitto", "-c", conf])
        self.assertTrue(harness.wait_for(lambda: harness.accepting(plain), 10), p.stderr())
        agent = env.agent(env.config(plain))
        first = self._never_connects(agent, sub, r"without answering the TLS handshake .*is localhost:%d a TLS "
                                     r"listener\? A plaintext MQTT port does this" % plain)
        self.assertNotIn("client certificate", first)

    def test_expired_broker_certificate_is_named(self):
        env = self.env
        pki = env.pki
        d = pki["dir"]
        ext = os.path.join(d, "expired.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        csr = os.path.join(d, "expired.csr")
        for argv in (["openssl", "req", "-new", "-key", pki["server_key"], "-subj", "/CN=localhost", "-out", csr],
                     # -days -1: not after is a day before now
                     ["openssl", "x509", "-req", "-in", csr, "-CA", pki["ca"], "-CAkey", os.path.join(d, "ca.key"),
                      "-CAcreateserial", "-days", "-1", "-extfile", ext, "-out", pki["server_cert"]]):
            r = env.run(argv)
            self.assertEqual(r.returncode, 0, r.stderr)
        broker = env.broker()
        agent = env.agent(env.config(broker.port))
        first = agent.wait_log(r"warning: MQTT broker localhost:\d+: ", timeout=15)[0]
        self.assertRegex(first, r"the broker's certificate failed verification: certificate has expired: check "
                         r"its validity dates, and this host's clock")
        self.assertTrue(agent.alive())


if __name__ == "__main__":
    harness.main()
