#!/usr/bin/env python3
"""test_fleet_sim: bench/fleet_sim --quick runs and its figures make sense. Five agents against one
TLS mosquitto, with the default pacing and with it off: steady load measured (broker CPU and
memory, messages and bytes per second, metering latency), then the broker killed and restarted at
once and after an outage with a backlog: every agent connected again, every record at the
consumer with seq contiguous, the default reconnect window spreading the reconnects."""

import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FLEET_SIM = os.path.join(harness.SOURCE_DIR, "bench", "fleet_sim")
AGENTS = 5


class FleetSim(harness.IntegrationTest):
    def test_quick_run_brings_every_agent_back_and_delivers_every_record(self):
        env = dict(os.environ, RA_AGENT=harness.agent_binary())
        p = subprocess.Popen([sys.executable, FLEET_SIM, "--quick"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, stdin=subprocess.DEVNULL)
        try:
            out, err = p.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            p.terminate()  # SIGTERM: fleet_sim kills the agents and brokers it started
            out, err = p.communicate(timeout=15)
        context = "exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (p.returncode, harness.tail(out),
                                                                       harness.tail(err, 30))
        self.assertEqual(p.returncode, 0, context)
        results = {}
        for line in out.splitlines():
            if line.startswith("RESULT "):
                d = json.loads(line[len("RESULT "):])
                results[d["pacing"]] = d
        self.assertEqual(sorted(results), ["defaults", "off"], context)
        for pacing, d in results.items():
            with self.subTest(pacing=pacing):
                self.assertTrue(d["ok"], d["problems"])
                self.assertEqual(d["agents"], AGENTS)
                st = d["steady"]
                # The broker's CPU over 8 s of five agents is a tick or two of /proc/PID/stat (10 ms):
                # present, and positive over its life (the agents' handshakes, all they sent).
                self.assertGreaterEqual(st["broker_cpu_pct"], 0)
                for key in ("broker_cpu_s_since_start", "broker_rss_bytes", "broker_pss_bytes", "agents_cpu_pct",
                            "msgs_per_s", "bytes_per_s", "telemetry_bytes_per_node_s", "metering_records",
                            "metering_latency_p50_ms", "status_bytes_avg"):
                    self.assertGreater(st[key], 0, "%s: %s" % (key, st))
                self.assertGreaterEqual(st["metering_latency_p99_ms"], st["metering_latency_p50_ms"])
                # Every agent publishes telemetry once a second.
                self.assertAlmostEqual(st["by_leaf"]["telemetry"]["msgs_per_s"], AGENTS, delta=1.5)
                self.assertLess(st["broker_pss_bytes"], st["broker_rss_bytes"] + 1)
                for kind in ("restart", "outage"):
                    s = d[kind]
                    self.assertEqual(s["back"], AGENTS, s)
                    self.assertGreater(s["delivered_s"], 0, s)
                    self.assertGreaterEqual(s["delivered_s"], s["all_back_s"], s)
                    self.assertGreaterEqual(s["peak_broker_cpu_pct"], 0, s)
                self.assertGreater(d["outage"]["pending_at_restart"], 0, d["outage"])
                self.assertEqual(d["records_missing"], 0)
                # Sessions start and end, and report their bytes: minute records too.
                for kind in ("session_start", "session_end", "bandwidth_minute"):
                    self.assertIn(kind, d["metering_by_type"])
                self.assertGreater(d["records"], d["outage"]["backlog_made"])
        # The default window (5 s) spreads the reconnects after an immediate restart: five draws
        # span under 0.5 s with probability ~5e-4. With the window off they come back at once.
        self.assertGreater(results["defaults"]["restart"]["spread_s"], 0.5, results["defaults"]["restart"])
        self.assertLess(results["off"]["restart"]["all_back_s"], 3.0, results["off"]["restart"])


if __name__ == "__main__":
    harness.main()
