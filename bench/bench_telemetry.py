#!/usr/bin/env python3
"""bench_telemetry: the bytes of telemetry one node publishes per second at the defaults
(sampling.interval_ms 1000, telemetry.interval_ms 10000), with 8 slots and one GPU (tests/fakes'
NVML), measured on a real subscriber of a real TLS mosquitto. Issue 20's budget: <= 300 B/s.

Two hosts, each a --root copy of the x86-cpu fixture with the machine's own /proc/stat and
/proc/meminfo linked in (real CPU and memory figures):
  idle  8 slots, no session: no slot cgroup, no slot interface, no GPU process;
  busy  8 sessions: each slot's cgroup (CPU time, memory moving every 100 ms), its veth carrying
        a stream of 5-9 Mbps, a GPU process with one NVENC stream per slot, the GPU's utilisation
        changing every sample: every gauge varies, so every one is [last, min, max, avg].
Prints, per host: telemetry payload bytes per second and per document, the status document's size
and how often it was published, and the same node publishing every sample (telemetry.interval_ms
1000) for comparison. Installs nothing; never a pass/fail.

Usage: bench_telemetry.py [SECONDS]  (default 60 per run; RA_AGENT, RA_CTL, RA_FAKE_NVML: see
       tests/integration/harness.py)
"""

import os
import shutil
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

N_SLOTS = 8
STEP_S = 0.1
CG = "sys/fs/cgroup/render.slice"


def rewrite(path, text):
    """In place, in one write: the agent keeps some of these files open, as it keeps the kernel's."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, text.encode(), 0)
        os.ftruncate(fd, len(text))
    finally:
        os.close(fd)


class Host:
    """The --root tree and, when busy, a thread that moves its figures every STEP_S."""

    def __init__(self, env, busy):
        self.root = env.path("host")
        self.busy = busy
        self.stop = threading.Event()
        shutil.copytree(os.path.join(harness.FIXTURES, "x86-cpu"), self.root, symlinks=True)
        for name in ("stat", "meminfo"):
            os.unlink(os.path.join(self.root, "proc", name))
            os.symlink("/proc/" + name, os.path.join(self.root, "proc", name))
        shutil.rmtree(os.path.join(self.root, CG))
        os.makedirs(os.path.join(self.root, CG))
        self.tx = [10 ** 9] * N_SLOTS
        self.cpu = [10 ** 9] * N_SLOTS
        self.step = 0
        if busy:
            for i in range(N_SLOTS):
                d = os.path.join(self.root, CG, "slot-%d.scope" % i)
                os.makedirs(d)
                rewrite(os.path.join(d, "cpu.max"), "400000 100000\n")
                rewrite(os.path.join(d, "memory.max"), "17179869184\n")
                rewrite(os.path.join(d, "pids.current"), "%d\n" % (30 + i))
                os.makedirs(os.path.join(self.root, "proc", str(2000 + i)), exist_ok=True)
                rewrite(os.path.join(self.root, "proc", str(2000 + i), "cgroup"),
                        "0::/render.slice/slot-%d.scope\n" % i)
        self.move()

    def move(self):
        self.step += 1
        rows = [("lo", 48213377, 48213377), ("eth0", 9876543210 + self.step * 250000, 1234567890 + self.step * 9000)]
        for i in range(N_SLOTS):
            if self.busy:
                self.tx[i] += 62500 + 12500 * ((self.step + i) % 5)  # 5-9 Mbps
                rows.append(("veth-s%d" % i, 10 ** 8 + self.step * 4000, self.tx[i]))
                self.cpu[i] += 100000 + 50000 * ((self.step * (i + 1)) % 4)
                d = os.path.join(self.root, CG, "slot-%d.scope" % i)
                rewrite(os.path.join(d, "cpu.stat"), "usage_usec %d\nuser_usec 1\nsystem_usec 1\n" % self.cpu[i])
                rewrite(os.path.join(d, "memory.current"), "%d\n" % (4294967296 + 4096 * ((self.step * 7 + i) % 50)))
        rewrite(os.path.join(self.root, "proc/net/dev"),
                "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n" + "".join(
                    "%10s: %20d 0 0 0 0 0 0 0 %20d 0 0 0 0 0 0 0\n" % r for r in rows))

    def run(self):
        while not self.stop.wait(STEP_S):
            self.move()


def gpu(busy):
    g = {"name": "NVIDIA L40S", "uuid": "GPU-5c1e0a7e-1111-2222-3333-444455556666", "pci": "0000:01:00.0",
         "device": 0x26B9, "util": "55/61/48/70/52" if busy else 0, "memutil": 20, "enc": 10, "dec": 5,
         "vram_total": 48305799168, "vram_used": 25769803776, "power_mw": 250000, "temp": 60, "sm": 2520,
         "sm_max": 2520, "throttle": 0}
    if busy:
        g["procs"] = ",".join("%d:%d" % (2000 + i, (i + 1) << 30) for i in range(N_SLOTS))
        g["encs"] = ",".join("%d:h264:1920x1080:60:4200" % (2000 + i) for i in range(N_SLOTS))
    else:
        g["procs"] = "none"
        g["encs"] = "none"
    return g


def measure(busy, telemetry_ms, seconds):
    with harness.Env("bench-tele") as env:
        host = Host(env, busy)
        script = harness.write_nvml_script(env.path("nvml.script"), [gpu(busy)])
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("#"))
        slots = [{"id": "slot-%d" % i, "scale": "M", "cgroup": "render.slice/slot-%d.scope" % i,
                  "iface": "veth-s%d" % i, "gpu": 0} for i in range(N_SLOTS)]
        cfg = env.config(broker.port, interval_ms=1000, telemetry_ms=telemetry_ms, slots=slots,
                         extra={"gpu": {"nvml_library": harness.fake_nvml_library()},
                                "scales": {"M": {"vcpu": 1, "ram_gb": 1, "gpu_fp32_tflops": 1, "vram_gb": 1}}})
        th = threading.Thread(target=host.run, daemon=True)
        th.start()
        agent = env.agent(cfg, args=["--root", host.root], extra_env={"FAKE_NVML_SCRIPT": script})
        agent.wait_connected()
        period = (telemetry_ms or 10000) / 1000.0
        if not sub.wait_count("/telemetry", 2, timeout=3 * period + 10):
            raise AssertionError("no telemetry\n%s" % env.describe())
        t0 = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
        host.stop.set()
        th.join()
        tele = [len(p.encode()) for t, topic, p in sub.snapshot() if t0 <= t < t1 and topic.endswith("/telemetry")]
        if os.environ.get("RA_TELE_SHOW"):  # the last document, to see where the bytes go
            print([p for t, topic, p in sub.snapshot() if topic.endswith("/telemetry")][-1])
        status = [len(p.encode()) for t, topic, p in sub.snapshot() if topic.endswith("/status")]
        status_in = [1 for t, topic, _ in sub.snapshot() if t0 <= t < t1 and topic.endswith("/status")]
        agent.stop()
        per_doc = sum(tele) / max(len(tele), 1)
        return {"docs": len(tele), "per_doc": per_doc, "per_s": per_doc / period, "window_per_s": sum(tele) / (t1 - t0),
                "status": status[-1] if status else 0, "status_in_window": len(status_in)}


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    if not harness.fake_nvml_library():
        sys.exit("bench_telemetry: RA_FAKE_NVML (tests/fakes' libfake_nvml.so) is not set")
    print("telemetry of one node: 8 slots, 1 GPU (fake NVML), sampling every 1 s, %d s a run, payload "
          "bytes on a subscriber" % seconds)
    print("%-6s %-22s %6s %12s %14s %14s %16s" % ("host", "telemetry.interval_ms", "docs", "bytes/doc",
                                                 "bytes/s", "(in window)", "status bytes (n)"))
    for busy in [b == "busy" for b in os.environ.get("RA_TELE_HOSTS", "idle busy").split()]:
        for ms in [int(x) for x in os.environ.get("RA_TELE_MS", "0 1000").split()]:
            r = measure(busy, ms, seconds)
            print("%-6s %-22s %6d %12.0f %14.1f %14.1f %10d (%d)" % (
                "busy" if busy else "idle", "10000 (default)" if ms == 0 else str(ms), r["docs"], r["per_doc"],
                r["per_s"], r["window_per_s"], r["status"], r["status_in_window"]))
    print("budget (issue 20): <= 300 bytes/s per node at the defaults")


if __name__ == "__main__":
    main()
