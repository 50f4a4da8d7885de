#!/usr/bin/env python3
"""test_prometheus: the fleet recipe of docs/deploy.md ("Watching the fleet with Prometheus") end to
end: mosquitto, render-agent publishing gauges, Debian's prometheus-mqtt-exporter with the shipped
packaging/examples/mqtt-exporter.yaml and Prometheus with packaging/examples/prometheus.yml, all on
loopback ports; the series are queried back from Prometheus's HTTP API with their node, region, slot
and scale labels, and a session reserved and started over the control socket shows as held."""

import json
import os
import re
import sys
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "examples")
EXPORTER = "/usr/bin/prometheus-mqtt-exporter"
PROMETHEUS = "/usr/bin/prometheus"


def query(port, promql):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": promql}))
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body.get("status") == "success", body
    return body["data"]["result"]


class Prometheus(harness.IntegrationTest):
    def exporter_config(self, broker):
        pki = self.env.pki
        with open(os.path.join(EXAMPLES, "mqtt-exporter.yaml")) as f:
            text = f.read()
        # Only where the broker is and which certificate to present change; the mapping is the shipped one.
        for key, value in (("server", "ssl://localhost:%d" % broker.port), ("ca_cert", pki["ca"]),
                           ("client_cert", pki["client_cert"]), ("client_key", pki["client_key"])):
            text, n = re.subn(r"(?m)^(  %s:) .*$" % key, r"\1 " + value, text)
            self.assertEqual(n, 1, key)
        path = self.env.path("mqtt-exporter.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def prometheus_config(self, exporter_port):
        with open(os.path.join(EXAMPLES, "prometheus.yml")) as f:
            text = f.read()
        text = text.replace("scrape_interval: 15s", "scrape_interval: 1s")
        text = text.replace('"localhost:9641"', '"127.0.0.1:%d"' % exporter_port)
        self.assertIn("127.0.0.1:%d" % exporter_port, text)
        path = self.env.path("prometheus.yml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_slot_usage_and_held_sessions_reach_prometheus_with_labels(self):
        env = self.env
        for b in (EXPORTER, PROMETHEUS):
            self.assertTrue(os.access(b, os.X_OK), "%s missing: scripts/test installs RA_TEST_PACKAGES" % b)
        broker = env.broker()
        cfg = env.config(broker.port, interval_ms=200)
        with open(cfg) as f:
            doc = json.load(f)
        doc["sampling"]["gauges_every"] = 1
        with open(cfg, "w") as f:
            json.dump(doc, f)
        agent = env.agent(cfg)
        agent.wait_connected()

        exp_port, prom_port = harness.free_port(), harness.free_port()
        exporter = harness.Proc(env, "prometheus-mqtt-exporter",
                                [EXPORTER, "-config", self.exporter_config(broker), "-listen-address", "127.0.0.1",
                                 "-listen-port", str(exp_port)])
        prom = harness.Proc(env, "prometheus",
                            [PROMETHEUS, "--config.file=" + self.prometheus_config(exp_port),
                             "--storage.tsdb.path=" + env.path("prometheus-data"),
                             "--web.listen-address=127.0.0.1:%d" % prom_port])

        sock = env.path("agent.sock")
        self.assertTrue(harness.wait_for(lambda: os.path.exists(sock), 5), "no control socket")
        r = harness.control_ask(sock, "reserve", user="alice", slot="s0")
        self.assertTrue(r.get("ok", "session" in r), r)
        session = r.get("session")
        self.assertTrue(session, r)
        r = harness.control_ask(sock, "start", session=session)
        self.assertNotIn("error", r, r)

        def held():
            try:
                return query(prom_port, 'render_slot_held{slot="s0"} == 1')
            except OSError:
                return []

        ok = harness.wait_for(held, 40, interval=0.5, what="s0 held in Prometheus")
        self.assertTrue(ok, "no render_slot_held{slot=\"s0\"} == 1 in Prometheus\n--- exporter ---\n%s\n"
                        "--- prometheus ---\n%s" % (harness.tail(exporter.stderr()), harness.tail(prom.stderr())))
        series = held()[0]["metric"]
        self.assertEqual((series.get("node"), series.get("region"), series.get("slot"), series.get("scale")),
                         (env.node, env.region, "s0", "cpu-4"), series)
        self.assertNotIn("topic", series)

        self.assertTrue(harness.wait_for(lambda: query(prom_port, "render_host_sessions_held == 1"), 20, 0.5))
        host = query(prom_port, "render_host_sessions_held")[0]
        self.assertEqual((host["metric"].get("node"), host["metric"].get("region")), (env.node, env.region))
        self.assertNotIn("slot", host["metric"])
        idle = query(prom_port, 'render_slot_held{slot="s1"}')
        self.assertEqual([float(s["value"][1]) for s in idle], [0.0])
        self.assertEqual(idle[0]["metric"].get("scale"), "cpu-8")
        # The harness overrides cpu-4 to 1 vCPU: the limit travels with the usage.
        limit = query(prom_port, 'render_slot_limit_vcpu{slot="s0"}')
        self.assertEqual([float(s["value"][1]) for s in limit], [1.0])
        self.assertTrue(harness.wait_for(lambda: query(prom_port, "render_host_cpu_util_pct"), 20, 0.5))
        cores = query(prom_port, "render_host_cpu_cores")
        self.assertEqual(float(cores[0]["value"][1]), float(harness.proc_stat_cores()))


if __name__ == "__main__":
    harness.main()
