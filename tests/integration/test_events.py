#!/usr/bin/env python3
"""test_events: the events topic with a real broker: a slot that cannot have its scale raises
slot_nonconformant (also after the agent connects late), and real traffic over a slot's interface
above its cap raises bandwidth_over_cap after the configured seconds, then bandwidth_normal once
the traffic stops; a signal hovering at the cap raises nothing.

The slot's interface is a veth pair of the test's own (one end in a network namespace of its own,
iproute2), so that the kernel's counters it reads carry the test's traffic and nothing else: on
loopback, the other tests' brokers and agents running beside it (ctest -j) moved several Mbit/s
and set the 1 Mbit/s cap off early."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SCALES = {
    # A slot with a 1 Mbps cap, on the test's own interface.
    "lo-1": {"class": "x86-cpu", "vcpu": 1, "ram_gb": 1, "bandwidth_mbps": 1},
    # A scale no test machine can give.
    "huge": {"class": "x86-cpu", "vcpu": 1024, "ram_gb": 1, "bandwidth_mbps": 6},
}


class Link:
    """A veth pair: `name` here (10.R.R.1/30), its peer in a namespace of its own (10.R.R.2), which
    answers nothing: what the test sends out of `name` is all `name` carries."""

    def __init__(self):
        n = os.getpid() % 60000
        self.name, self.ns = "raev%d" % n, "raev%d" % n
        self.local, self.peer = "10.%d.%d.1" % (200 + n // 10000 % 50, n % 250), "10.%d.%d.2" % (200 + n // 10000 % 50, n % 250)
        self.close()  # left over from a run that was killed
        for cmd in (["ip", "netns", "add", self.ns],
                    ["ip", "link", "add", self.name, "type", "veth", "peer", "name", self.name + "p"],
                    ["ip", "link", "set", self.name + "p", "netns", self.ns],
                    ["ip", "addr", "add", self.local + "/30", "dev", self.name],
                    ["ip", "link", "set", self.name, "up"],
                    ["ip", "-n", self.ns, "addr", "add", self.peer + "/30", "dev", self.name + "p"],
                    ["ip", "-n", self.ns, "link", "set", self.name + "p", "up"]):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                self.close()
                raise AssertionError("%s: %s" % (" ".join(cmd), r.stderr.strip()))

    def close(self):
        subprocess.run(["ip", "link", "del", self.name], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=10)


def blast(stop, mbps, link):
    """Sends UDP datagrams out of the link's interface at about `mbps` until `stop` is set."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"x" * 1200
    per_tick = max(1, int(mbps * 1e6 / 8 / len(payload) / 100))  # 100 bursts a second
    try:
        while not stop.is_set():
            for _ in range(per_tick):
                try:
                    s.sendto(payload, (link.peer, 9))
                except OSError:
                    pass
            time.sleep(0.01)
    finally:
        s.close()


class Events(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.link = Link()
        self.addCleanup(self.link.close)

    def test_nonconformant_slot_and_bandwidth_hysteresis(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker)
        cfg = env.config(broker.port, interval_ms=250,
                         slots=[{"id": "s0", "scale": "lo-1", "iface": self.link.name}, {"id": "s1", "scale": "huge"}],
                         extra={"scales": SCALES, "events": {"bandwidth_over_s": 2, "bandwidth_under_s": 2}})
        agent = env.agent(cfg)
        agent.wait_connected()

        found = sub.wait_doc("/events", lambda d: d.get("event") == "slot_nonconformant", timeout=10)
        self.assertIsNotNone(found, "no slot_nonconformant\n" + sub.describe())
        ev = found[1]
        self.assertEqual(ev["slot"], "s1")
        self.assertEqual(ev["scale"], "huge")
        self.assertRegex(ev["reason"], r"^vcpu: needs 1024, \d+ left of \d+ \(short by \d+\)$")
        self.assertEqual((ev["v"], ev["type"], ev["node"], ev["region"]), (1, "event", env.node, env.region))
        # The verdicts are facts: in the retained status, not in telemetry.
        st = sub.wait_doc("/status", lambda d: "conformant" in d["slots"][1], timeout=5)[1]
        self.assertFalse(st["slots"][1]["conformant"])
        self.assertEqual(st["slots"][1]["nonconformant"], ev["reason"])
        self.assertTrue(st["slots"][0]["conformant"])

        # A quiet interface: under the cap, no bandwidth event.
        time.sleep(1.5)
        self.assertEqual([d for _, d in sub.docs("/events") if d["event"].startswith("bandwidth")], [])

        # 8 Mbps of real traffic for 4 s: over the 1 Mbps cap for 2 s in a row -> one event.
        stop = threading.Event()
        t0 = time.monotonic()
        th = threading.Thread(target=blast, args=(stop, 8, self.link), daemon=True)
        th.start()
        try:
            found = sub.wait_doc("/events", lambda d: d.get("event") == "bandwidth_over_cap", timeout=10)
        finally:
            time.sleep(max(0, 4 - (time.monotonic() - t0)))
            stop.set()
            th.join()
        self.assertIsNotNone(found, "no bandwidth_over_cap\n" + sub.describe())
        took, over = found[0] - t0, found[1]
        self.assertGreaterEqual(took, 2.0, "raised after %.2f s, before the 2 s hysteresis" % took)
        self.assertEqual((over["slot"], over["cap_mbps"], over["for_s"]), ("s0", 1, 2))
        self.assertGreater(over["mbps"], 1)
        tele = sub.wait_doc("/telemetry", lambda d: d["slots"][0].get("bandwidth_over_cap") is True, timeout=5)[1]
        self.assertGreater(harness.gauge(tele["slots"][0]["net"]["mbps"], "max"), 1)

        normal = sub.wait_doc("/events", lambda d: d.get("event") == "bandwidth_normal", timeout=10)
        self.assertIsNotNone(normal, "no bandwidth_normal\n" + sub.describe())
        kinds = [d["event"] for _, d in sub.docs("/events") if d["event"].startswith("bandwidth")]
        self.assertEqual(kinds, ["bandwidth_over_cap", "bandwidth_normal"])
        self.assertEqual(agent.terminate(timeout=2.0)[0], 0)
        agent.check_sanitizers()

    def test_a_reload_while_over_the_cap_still_clears(self):
        """Over the cap, SIGHUP, then quiet: bandwidth_normal still comes (before, a reload started
        the watch over and the slot stayed over its cap for every consumer)."""
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker)
        cfg = env.config(broker.port, interval_ms=250, slots=[{"id": "s0", "scale": "lo-1", "iface": self.link.name}],
                         extra={"scales": SCALES, "events": {"bandwidth_over_s": 2, "bandwidth_under_s": 2}})
        agent = env.agent(cfg)
        agent.wait_connected()
        stop = threading.Event()
        th = threading.Thread(target=blast, args=(stop, 8, self.link), daemon=True)
        th.start()
        try:
            found = sub.wait_doc("/events", lambda d: d.get("event") == "bandwidth_over_cap", timeout=10)
            self.assertIsNotNone(found, "no bandwidth_over_cap\n" + sub.describe())
            mark = agent.line_count()
            agent.proc.send(signal.SIGHUP)
            agent.wait_log(r"configuration reloaded", start=mark)
        finally:
            stop.set()
            th.join()
        normal = sub.wait_doc("/events", lambda d: d.get("event") == "bandwidth_normal", timeout=10)
        self.assertIsNotNone(normal, "no bandwidth_normal after the reload\n" + sub.describe())
        self.assertEqual(normal[1]["slot"], "s0")
        kinds = [d["event"] for _, d in sub.docs("/events") if d["event"].startswith("bandwidth")]
        self.assertEqual(kinds, ["bandwidth_over_cap", "bandwidth_normal"])
        self.assertEqual(agent.terminate(timeout=2.0)[0], 0)
        agent.check_sanitizers()


if __name__ == "__main__":
    harness.main()
