#!/usr/bin/env python3
"""test_telemetry_interval: sampling every 200 ms, telemetry every 2 s (ten samples a document),
against loads whose every sample is known:

  - a slot's interface (veth-s0 in a --root copy of the x86-cpu fixture, its /proc/net/dev
    rewritten in place as the kernel's is) moves exactly 5,000,000 bytes in a 2 s burst: the
    documents' byte totals add up to exactly that, and the burst's rate shows as the gauge's max;
  - the fake NVML answers 20 % and 80 % utilisation in turn: each document's GPU gauge is
    [last, min, max, avg] with min 20 and max 80, not an average that hides both;
  - what the GPU is, the slot's scale and interface and the host's interfaces are in the retained
    status, published once, not in telemetry.
"""

import json
import os
import shutil
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SAMPLING_MS = 200
TELEMETRY_MS = 2000
SAMPLES = TELEMETRY_MS // SAMPLING_MS
BURST_STEPS, STEP_BYTES, STEP_S = 40, 125000, 0.05  # 5,000,000 bytes in 2 s: 20 Mbps
GPU = {"name": "NVIDIA A10G", "uuid": "GPU-3f1c9a52-7d0e-4b8e-9c11-5a2b6c7d8e01", "pci": "0000:00:1e.0",
       "device": 0x2237, "util": "20/80", "memutil": 10, "vram_total": 24146608128, "vram_used": 4294967296}


class NetDev:
    """root/proc/net/dev with fixed-width counters, rewritten in place in one write: the agent
    keeps the file open, as it keeps the kernel's."""

    def __init__(self, path):
        self.path = path
        self.tx = 1000000
        self.write()

    def write(self):
        rows = [("lo", 48213377, 48213377), ("eth0", 9876543210, 1234567890), ("veth-s0", 734003200, self.tx)]
        text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n" + "".join(
            "%8s: %20d 0 0 0 0 0 0 0 %20d 0 0 0 0 0 0 0\n" % (n, rx, tx) for n, rx, tx in rows)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, text.encode(), 0)
            os.ftruncate(fd, len(text))
        finally:
            os.close(fd)


class TelemetryInterval(harness.IntegrationTest):
    def test_aggregates_carry_every_sample_and_facts_go_to_status(self):
        env = self.env
        lib = harness.fake_nvml_library()
        self.assertTrue(lib, "RA_FAKE_NVML (tests/fakes' libfake_nvml.so) is not set")
        root = env.path("host")
        shutil.copytree(os.path.join(harness.FIXTURES, "x86-cpu"), root, symlinks=True)
        dev = NetDev(os.path.join(root, "proc/net/dev"))
        script = harness.write_nvml_script(env.path("nvml.script"), [GPU])
        broker = env.broker()
        sub = env.subscriber(broker)
        slots = [{"id": "s0", "scale": "cpu-4", "iface": "veth-s0", "gpu": 0}]
        cfg = env.config(broker.port, interval_ms=SAMPLING_MS, telemetry_ms=TELEMETRY_MS, slots=slots,
                         extra={"gpu": {"nvml_library": lib}})
        agent = env.agent(cfg, args=["--root", root], extra_env={"FAKE_NVML_SCRIPT": script})
        agent.wait_connected()

        # Two documents before the burst: the counters have a base, then the load starts.
        self.assertTrue(sub.wait_count("/telemetry", 2, timeout=15), "no telemetry\n" + env.describe())
        t_burst = time.monotonic()
        for _ in range(BURST_STEPS):
            dev.tx += STEP_BYTES
            dev.write()
            time.sleep(STEP_S)
        t_end = time.monotonic()
        # ...and two whole intervals after it, quiet again.
        self.assertTrue(sub.wait_count("/telemetry", 2, since=t_end + TELEMETRY_MS / 1000.0, timeout=15),
                        "telemetry stopped\n" + env.describe())
        msgs = sub.on("/telemetry")
        docs = [json.loads(p) for _, _, p in msgs]

        # One document per interval, each of ten samples; none lost, so the totals must add up.
        for d in docs:
            self.assertEqual((d["v"], d["interval_ms"], d["samples"]), (2, TELEMETRY_MS, SAMPLES), d)
        seqs = [d["seq"] for d in docs]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + SAMPLES * len(seqs), SAMPLES)), seqs)
        gaps = [b[0] - a[0] for a, b in zip(msgs, msgs[1:])]
        self.assertTrue(all(1.0 <= g <= 3.0 for g in gaps), "seconds between documents: %s" % gaps)

        # Every byte the interface moved is in exactly one document.
        tx = [d["slots"][0]["net"].get("tx_bytes", 0) for d in docs]
        self.assertEqual(sum(tx), BURST_STEPS * STEP_BYTES, "tx_bytes per document: %s" % tx)
        self.assertEqual(tx[-1], 0, tx)
        # The burst's 20 Mbps is the max of its documents' bandwidth gauge; the quiet end is 0.
        peak = max(harness.gauge(d["slots"][0]["net"]["mbps"], "max") for d in docs)
        self.assertGreater(peak, 10, [d["slots"][0]["net"]["mbps"] for d in docs])
        self.assertEqual(docs[-1]["slots"][0]["net"]["mbps"], 0.0, docs[-1]["slots"][0])
        # The host's list leaves the slot's interface to the slot, and lo and eth0, which moved
        # nothing, out.
        self.assertEqual([d["net"] for d in docs[1:]], [[]] * (len(docs) - 1))

        # The GPU alternated 20/80 %: each document has both, as min and max, not only a mean.
        for d in docs[1:]:
            for util in (d["gpus"][0]["util_pct"], d["slots"][0]["gpu"]["util_pct"]):
                self.assertIsInstance(util, list, d["gpus"])
                last, lo, hi, avg = util
                self.assertEqual((lo, hi), (20.0, 80.0), util)
                self.assertIn(last, (20.0, 80.0), util)
                self.assertTrue(20.0 < avg < 80.0, util)
            # What held still is one number.
            self.assertEqual(d["gpus"][0]["vram_used_kib"], GPU["vram_used"] // 1024, d["gpus"])

        # Facts are the status's: a late subscriber gets them retained; telemetry has none.
        late = env.subscriber(broker)
        st = late.wait_doc("/status", timeout=5)
        self.assertIsNotNone(st, "no retained status")
        st = st[1]
        self.assertEqual((st["gpus"][0]["name"], st["gpus"][0]["uuid"]), (GPU["name"], GPU["uuid"]), st)
        self.assertEqual((st["slots"][0]["scale"], st["slots"][0]["iface"]), ("cpu-4", "veth-s0"), st)
        self.assertEqual(st["interfaces"], ["lo", "eth0", "veth-s0"])
        self.assertEqual((st["sampling_interval_ms"], st["telemetry_interval_ms"]), (SAMPLING_MS, TELEMETRY_MS))
        for _, _, p in msgs:
            for fact in ('"name"', '"uuid"', '"scale"', '"conformant"', '"veth-s0"', '"catalog"'):
                self.assertNotIn(fact, p)
        # Nothing changed during the run: the status was not published again with the telemetry.
        self.assertEqual(sub.on("/status", since=t_burst), [], "status republished though no fact changed")
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    harness.main()
