#!/usr/bin/env python3
"""test_reconnect_storm: a broker restart does not bring the fleet back as a thundering herd.
Eight agents lose a mosquitto killed with SIGKILL and restarted: their reconnects spread over
mqtt.reconnect_window_ms instead of landing in the first second; an agent with a metering backlog
delivers it at metering.redeliver_per_s, seq 1..N contiguous at the subscriber, nothing lost,
after its cmd subscription and retained status."""

import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_metering import SLOTS, b64url_json  # noqa: E402

AGENTS = 8
WINDOW_MS = 8000
RATE = 20  # metering.redeliver_per_s
BURST = RATE // 10 + 1  # what the meter lets go at once (agent/metering/meter.c)


class ReconnectStorm(harness.IntegrationTest):
    def fleet_config(self, broker, i, extra):
        """Agent i's config: its own node id, state dir and control socket."""
        path = self.env.config(broker.port, name="agent-%d.json" % i, interval_ms=1000, slots=SLOTS, extra=extra)
        with open(path) as f:
            cfg = json.load(f)
        cfg["node"]["id"] = "node-%d" % i
        cfg["state_dir"] = self.env.path("state-%d" % i)
        cfg["control"]["socket"] = self.env.path("agent-%d.sock" % i)
        cfg["mqtt"]["reconnect_window_ms"] = WINDOW_MS
        harness.write_atomic(path, json.dumps(cfg, indent=2) + "\n")
        return path

    def test_reconnects_after_a_broker_restart_spread_over_the_window(self):
        env = self.env
        broker = env.broker()
        agents = [env.agent(self.fleet_config(broker, i, None)) for i in range(AGENTS)]
        for a in agents:
            a.wait_connected(timeout=30)
        marks = [a.line_count() for a in agents]
        broker.kill9()
        t0 = time.monotonic()
        broker.restart()
        back = {}
        deadline = t0 + WINDOW_MS / 1000 + 15
        while len(back) < AGENTS and time.monotonic() < deadline:
            for i, a in enumerate(agents):
                if i not in back and a.matches(r"connected to MQTT broker", start=marks[i]):
                    back[i] = time.monotonic() - t0
            time.sleep(0.05)
        self.assertEqual(len(back), AGENTS, "agents back: %s" % sorted(back))
        times = sorted(back.values())
        spread = times[-1] - times[0]
        sys.stderr.write("reconnect times after the broker restart (s): %s; spread %.2f s over a %.1f s window\n"
                         % (" ".join("%.2f" % t for t in times), spread, WINDOW_MS / 1000))
        # Full jitter over 8 s: 8 draws span under 2 s with probability ~4e-4; the old 0.5 s
        # backoff put all of them in the first second.
        self.assertGreater(spread, 2.0)
        self.assertLess(sum(1 for t in times if t < 1.0), AGENTS)
        self.assertLess(times[-1], WINDOW_MS / 1000 + 5)

    def test_backlog_after_a_restart_goes_out_at_the_paced_rate_and_complete(self):
        env = self.env
        broker = env.broker()
        extra = {"metering": {"window_s": 2, "late_s": 0, "redeliver_per_s": RATE}}
        cfg = self.fleet_config(broker, 0, extra)
        sock = env.path("agent-0.sock")
        agent = env.agent(cfg)
        agent.wait_connected()
        harness.wait_for(lambda: all(s.get("conformant") for s in self.status(sock)["slots"]), 10,
                         what="slots planned")
        broker.stop()
        c = harness.ControlConn(sock)
        for n in range(30):  # records wait in the spool while the broker is away
            s = c.call("reserve", user="u%d" % n)["session"]
            self.assertTrue(c.call("start", session=s)["ok"])
            self.assertTrue(c.call("end", session=s, reason="churn")["ok"])
        c.close()
        backlog = self.status(sock)["metering"]["spool"]["pending"]
        self.assertGreaterEqual(backlog, 60)
        # A fresh agent connects at once (the one running may be deep in its reconnect backoff; killed
        # before the broker is back, so that none of its retries publishes ahead of the fresh one).
        agent.proc.kill()
        broker.restart()
        sub = env.subscriber(broker, topic="render/v1/eu-test-1/node-0/metering", qos=1)
        agent = env.agent(cfg)
        agent.wait_connected()

        def drained():
            st = (self.up(sock) or {}).get("metering")
            return st and st["spool"]["pending"] == 0 and st["owed"] == 0 and st["next_seq"] > 1
        harness.wait_for(drained, 20 + backlog / RATE, what="spool drained")
        last = self.status(sock)["metering"]["next_seq"] - 1
        harness.wait_for(lambda: len(self.first_arrivals(sub)) >= last, 15, what="%d records" % last)
        first = self.first_arrivals(sub)
        self.assertEqual(sorted(first), harness.seqs_through(first, last))
        ts = sorted(first.values())
        took = ts[-1] - ts[0]
        rate = (len(ts) - BURST) / took if took > 0 else float("inf")
        sys.stderr.write("backlog of %d records delivered in %.2f s: %.1f records/s after a burst of %d "
                         "(metering.redeliver_per_s %d)\n" % (len(ts), took, rate, BURST, RATE))
        # At the cap, give or take the loop's timer slack and the broker's round trips.
        self.assertLess(rate, RATE * 1.1)
        self.assertGreater(rate, RATE * 0.6)
        # On connect the cmd subscription and the retained status go first, the backlog after.
        log = broker.proc.stderr().splitlines()

        def first(pattern):
            hits = [i for i, line in enumerate(log) if pattern in line]
            self.assertTrue(hits, "no /%s/ in the broker's log" % pattern)
            return hits[0]
        sub_at = first("Received SUBSCRIBE from node-0")
        status_at = first("Received PUBLISH from node-0 (d0, q1, r1")
        metering_at = first("node-0/metering'")
        self.assertLess(sub_at, metering_at)
        self.assertLess(status_at, metering_at)

    def first_arrivals(self, sub):
        """seq -> when it first arrived (a redelivery repeats a seq)."""
        out = {}
        for t, _, payload in sub.on("/metering"):
            seq = b64url_json(json.loads(payload)["payload"])["seq"]
            out.setdefault(seq, t)
        return out

    def status(self, sock):
        c = harness.ControlConn(sock)
        try:
            return c.call("status")["status"]
        finally:
            c.close()

    def up(self, sock):
        try:
            return self.status(sock)
        except (OSError, ConnectionError):
            return None


if __name__ == "__main__":
    harness.main()
