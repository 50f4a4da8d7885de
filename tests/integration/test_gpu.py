#!/usr/bin/env python3
"""test_gpu: NVIDIA GPUs through NVML, with tests/fakes' scripted NVML library (RA_FAKE_NVML) loaded
by the agent's real dlopen path (config gpu.nvml_library, script in FAKE_NVML_SCRIPT).

The agent runs with --root on the x86-cpu fixture: no DRM card there, so the GPUs it finds are the
fake NVML's only and the platform class turns x86-gpu because of them, whatever this machine has.
Expectations are computed from the script (harness.nvml_expected), never hard-coded twice.

  - two GPUs: every telemetry document carries exactly the scripted values, the retained status
    says x86-gpu and what each GPU is, NVML is initialised once, not per tick, and shut down at exit;
  - one GPU lost: it keeps its identity and an "error", has no metrics, the other GPU keeps all of
    its values, and the agent warns once, naming the GPU, not once per tick;
  - --probe --config: gpus[] with processes (pid, vram_bytes), and the slots' "gpu" member
    (dedicated: util, VRAM and NVENC sessions of the GPU; shared: VRAM and NVENC sessions of the
    slot's processes by cgroup);
  - render-agentctl sessions (and the sessions op) show each stream's FPS and encode latency, and
    each NvFBC capture's FPS and latency (fbc_sessions, attributed like the NVENC sessions);
  - a gpu.nvml_library that does not exist: the agent runs quietly as a CPU host.
"""

import base64
import json
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

INTERVAL_MS = 200
# A GPU sample is the worker's last complete one: about a tick old, never past the 1 s deadline.
FRESH_MS = 1000
ROOT = os.path.join(harness.FIXTURES, "x86-cpu")

# An AWS G5-like A10G and a G6-like L4. Every metric the fake offers is given, so that the agent
# must report each one (the A10G's 512 MiB driver reserve apart from its used VRAM, through _v2); process lists exercise the merge of compute and graphics processes (4242
# is in both, the larger figure wins; 4250's figure is not available).
A10G = {
    "name": "NVIDIA A10G", "uuid": "GPU-3f1c9a52-7d0e-4b8e-9c11-5a2b6c7d8e01", "pci": "0000:00:1e.0",
    "device": 0x2237, "util": 37, "memutil": 12, "enc": 5, "dec": 3,
    "vram_total": 24146608128, "vram_used": 8053063680, "vram_reserved": 536870912, "power_mw": 187512, "temp": 61,
    "sm": 1710, "sm_max": 1710, "throttle": 0x24,
    "procs": "4242:1073741824,4250:-", "gprocs": "4242:2147483648,4301:268435456",
    "encs": "4242:h264:1920x1080:60:4200,4301:hevc:2560x1440:58:6100",
    "fbcs": "4242:hwenc:1920x1080:59:1800,4301:tosys:2560x1440:57:2500",
}
L4 = {
    "name": "NVIDIA L4", "uuid": "GPU-9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4", "pci": "0000:00:1f.0",
    "device": 0x27B8, "util": 88, "memutil": 40, "enc": 0, "dec": 17,
    "vram_total": 24152899584, "vram_used": 20401094656, "power_mw": 71250, "temp": 74,
    "sm": 2040, "sm_max": 2040, "throttle": 0x1,
    "procs": "4343:3221225472", "gprocs": "none",
}
# Two MIG devices of GPU 0 (index 1 empty), as the fake scripts them, and what the agent reports.
MIG_LINES = (
    "mig 0 0 uuid=MIG-4f0a6c1e-8d2b-5e3f-9a71-0c4d5e6f7a81 gi=1 ci=0 vram_total=10200547328 "
    "vram_used=1073741824 procs=4242:1000000000 gprocs=4242:1073741824,4250:-",
    "mig 0 2 uuid=MIG-9b3c2d1e-0f4a-5b6c-8d7e-1f2a3b4c5d6e gi=2 ci=0 vram_total=20401094656 "
    "vram_used=0 procs=none gprocs=none",
)


def mig_expected(with_procs):
    devs = [
        {"index": 0, "uuid": "MIG-4f0a6c1e-8d2b-5e3f-9a71-0c4d5e6f7a81", "gpu_instance_id": 1,
         "compute_instance_id": 0, "util": "unsupported", "vram_total_bytes": 10200547328,
         "vram_used_bytes": 1073741824, "process_count": 2,
         "processes": [{"pid": 4242, "vram_bytes": 1073741824}, {"pid": 4250}]},
        {"index": 2, "uuid": "MIG-9b3c2d1e-0f4a-5b6c-8d7e-1f2a3b4c5d6e", "gpu_instance_id": 2,
         "compute_instance_id": 0, "util": "unsupported", "vram_total_bytes": 20401094656,
         "vram_used_bytes": 0, "process_count": 0, "processes": []},
    ]
    if not with_procs:
        for d in devs:
            del d["processes"]
    return devs


def encs_expected(encs, pids=None, kind="codec"):
    """A slot's "encoder_sessions" for the fake's encs string (only those of `pids` when given), or
    with kind="type" its "fbc_sessions" for an fbcs string."""
    out = []
    for item in encs.split(","):
        pid, codec, res, fps, lat = item.split(":")
        w, h = res.split("x")
        if pids is None or int(pid) in pids:
            out.append({"pid": int(pid), kind: codec, "width": int(w), "height": int(h),
                        "avg_fps": int(fps), "avg_latency_us": int(lat)})
    return out


def fbcs_expected(fbcs, pids=None):
    return encs_expected(fbcs, pids, kind="type")


def encoder_expected(encs, kind="codec"):
    """Telemetry's slots[].gpu.encoder (NvFBC: capture) for one sample a document: the slowest
    stream's FPS and the worst latency."""
    e = encs_expected(encs, kind=kind)
    return {"fps": min(x["avg_fps"] for x in e), "latency_us": max(x["avg_latency_us"] for x in e)}


METRIC_CALLS = ("util", "memory", "encoder", "decoder", "power", "temp", "clock", "maxclock", "throttle",
                "procs", "gprocs")
METRIC_KEYS = ("util_pct", "mem_util_pct", "enc_pct", "dec_pct", "vram_total_bytes", "vram_used_bytes", "vram_used_kib",
               "power_w", "temp_c", "clock_mhz", "clock_max_mhz", "throttle_reasons", "process_count",
               "processes")
# Anything at warning level or above, as the agent writes it to stderr...
WARN_RE = r"^render-agent: (warning|err|error|crit|alert|emerg)\b"
# ... about GPUs (other warnings, such as a slot's scale not fitting the fixture, are not ours).
GPU_WARN_RE = WARN_RE + r".*(?i:gpu|nvml|nvidia)"


def lost(g):
    """g as a GPU that fell off the bus: identity still answers, every metric call GPU_IS_LOST."""
    d = dict(g)
    for c in METRIC_CALLS:
        d["err." + c] = "GPU_IS_LOST"
    return d


class GpuTelemetry(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.lib = harness.fake_nvml_library()
        if not self.lib:
            self.fail("RA_FAKE_NVML (tests/fakes' libfake_nvml.so) is not set")

    def start(self, gpus, nvml_library=None, slots=None, extra_lines=()):
        env = self.env
        script = harness.write_nvml_script(env.path("nvml.script"), gpus, extra_lines)
        self.nvml_log = env.path("nvml.log")
        broker = env.broker()
        # Every metering record from the first on (verify wants the whole chain).
        self.meter = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        cfg = self.cfg = env.config(broker.port, interval_ms=INTERVAL_MS, slots=slots,
                                    extra={"gpu": {"nvml_library": nvml_library or self.lib}})
        agent = env.agent(cfg, args=["--root", ROOT],
                          extra_env={"FAKE_NVML_SCRIPT": script, "FAKE_NVML_LOG": self.nvml_log})
        agent.wait_connected()
        sub = env.subscriber(broker)
        return agent, sub

    def telemetry(self, sub, n, since=None):
        got = sub.wait_count("/telemetry", n, since=since, timeout=n * INTERVAL_MS / 1000.0 * 3 + 5)
        self.assertTrue(got, "fewer than %d telemetry documents" % n)
        return [d for t, d in sub.docs("/telemetry", since=since)]

    def status(self, sub):
        got = sub.wait_doc("/status", lambda d: d.get("state") == "online", timeout=10)
        self.assertIsNotNone(got, "no retained online status")
        return got[1]

    def nvml_calls(self, what):
        return [line for line in harness.read_text(self.nvml_log).splitlines() if line == what]

    def test_two_gpus_exact_values(self):
        agent, sub = self.start([A10G, L4])
        st = self.status(sub)
        self.assertEqual((st["platform"]["arch"], st["platform"]["class"]), ("x86_64", "x86-gpu"), st)
        agent.wait_log(r"\b2 GPUs found")

        expected = [harness.nvml_expected(A10G, 0), harness.nvml_expected(L4, 1)]
        # The figures the table must give these two ids (NVIDIA's datasheet / AWS's A10 floor).
        self.assertEqual([e["fp32_tflops"] for e in expected], [31.2, 30.3])
        self.assertEqual(expected[0]["process_count"], 3)  # 4242 once, 4250, 4301
        # What each GPU is, and that slot s1 has GPU 0 to itself, is in the retained status.
        got = sub.wait_doc("/status", lambda d: len(d.get("gpus", [])) == 2, timeout=10)
        self.assertIsNotNone(got, "no status with the GPUs\n" + sub.describe())
        self.assertEqual(got[1]["gpus"], [harness.gpu_facts(e) for e in expected])
        self.assertEqual((got[1]["slots"][1]["gpu"], got[1]["slots"][1]["gpu_shared"]), (0, False))
        got = sub.wait_doc("/status", lambda d: "encoder_sessions" in d["slots"][1], timeout=10)
        self.assertIsNotNone(got, "no status with slot s1's NVENC streams\n" + sub.describe())
        self.assertEqual(got[1]["slots"][1]["encoder_sessions"],
                         [{k: e[k] for k in ("pid", "codec", "width", "height")} for e in encs_expected(A10G["encs"])])
        t0 = time.monotonic()
        docs = self.telemetry(sub, 5, since=t0)
        for d in docs:
            self.assertEqual(harness.gpus_fresh(d["gpus"], FRESH_MS), [harness.gpu_figures(e) for e in expected])
            # Slot s1 is configured with GPU 0 (harness.default_slots) and has it to itself.
            # ... and so every NVENC session of it: FPS and encode latency per stream.
            # (the streams themselves are in the status: pid, codec, size)
            self.assertEqual(d["slots"][1]["gpu"], {"util_pct": expected[0]["util_pct"],
                                                   "vram_used_kib": A10G["vram_used"] // 1024,
                                                   "encoder": encoder_expected(A10G["encs"]),
                                                   "capture": encoder_expected(A10G["fbcs"], kind="type")},
                             d["slots"])
            self.assertNotIn("gpu", d["slots"][0])
        # Telemetry lists no processes, only their count (the probe lists them).
        self.assertNotIn("processes", docs[-1]["gpus"][0])
        self.assertEqual(agent.matches(GPU_WARN_RE), [])
        # NVML is initialised once at start, not per tick; a process list is fetched once per tick.
        self.assertEqual(len(self.nvml_calls("init")), 1, harness.read_text(self.nvml_log))
        self.assertEqual(self.nvml_calls("shutdown"), [])
        self.assertEqual(agent.stop(), 0)
        self.assertEqual(len(self.nvml_calls("shutdown")), 1, harness.read_text(self.nvml_log))

    def test_mig_devices_in_status_and_their_figures_in_the_one_sample_document(self):
        a100 = {k: v for k, v in A10G.items() if k not in ("util", "memutil", "procs", "gprocs", "encs", "fbcs")}
        a100.update(name="NVIDIA A100-SXM4-40GB", device=0x20B0, migmode=1, mig_max=7)
        agent, sub = self.start([a100], extra_lines=MIG_LINES)
        # What each MIG device is: in the retained status, beside the GPU it is part of.
        got = sub.wait_doc("/status", lambda d: len(d.get("gpus", [])) == 1, timeout=10)
        self.assertIsNotNone(got, "no status with the GPU\n" + sub.describe())
        facts = [{k: v for k, v in d.items() if k not in ("vram_used_bytes", "process_count")}
                 for d in mig_expected(with_procs=False)]
        self.assertEqual(got[1]["gpus"][0]["mig"], {"enabled": True, "devices": facts})
        # What each does: the one-sample document (render-agentctl telemetry) has every figure.
        doc = harness.control_ask(self.env.path("agent.sock"), "telemetry")["telemetry"]
        self.assertEqual(doc["gpus"][0]["mig"], {"enabled": True, "devices": mig_expected(with_procs=False)})
        self.assertEqual(agent.matches(GPU_WARN_RE), [])
        self.assertEqual(agent.stop(), 0)

    def test_lost_gpu_reported_once_other_keeps_values(self):
        agent, sub = self.start([A10G, lost(L4)])
        st = self.status(sub)
        self.assertEqual(st["platform"]["class"], "x86-gpu")

        good = harness.nvml_expected(A10G, 0)
        full = harness.nvml_expected(L4, 1)
        ident = {k: full[k] for k in ("index", "backend", "name", "uuid", "pci_bus_id", "fp32_tflops",
                                      "fp32_source")}
        # The lost GPU keeps its identity (in the status: what a GPU is does not change when it is lost).
        got = sub.wait_doc("/status", lambda d: len(d.get("gpus", [])) == 2, timeout=10)
        self.assertIsNotNone(got, "no status with the GPUs\n" + sub.describe())
        self.assertEqual(got[1]["gpus"], [harness.gpu_facts(good), ident])
        t0 = time.monotonic()
        docs = self.telemetry(sub, 10, since=t0)  # 2 s: ten ticks, each meeting the lost GPU again
        for d in docs:
            self.assertEqual(harness.gpus_fresh(d["gpus"], FRESH_MS)[0], harness.gpu_figures(good))
            g = harness.gpus_fresh(d["gpus"], FRESH_MS)[1]
            self.assertEqual({k: v for k, v in g.items() if k != "error"}, {"index": 1}, g)
            for k in METRIC_KEYS:
                self.assertNotIn(k, g)
            self.assertRegex(g.get("error", ""), r"^nvml\w+ on GPU 1 \(0000:00:1f\.0\): GPU is lost "
                                                 r"\(NVML error 15\)$")
            self.assertIn("util_pct", d["slots"][1]["gpu"])

        warns = agent.matches(GPU_WARN_RE)
        about1 = [w for w in warns if re.search(r"GPU 1 \(NVIDIA L4\).*GPU is lost", w)]
        self.assertEqual(len(about1), 1, "want one warning about the lost GPU, got:\n" + "\n".join(warns))
        self.assertIn(docs[-1]["gpus"][1]["error"], about1[0])
        self.assertEqual([w for w in warns if w not in about1], [], "other warnings:\n" + "\n".join(warns))
        self.assertEqual(len(self.nvml_calls("init")), 1)

    def test_ctl_sessions_show_each_stream_fps_and_encode_latency(self):
        agent, sub = self.start([A10G], slots=[{"id": "s0", "scale": "cpu-4", "gpu": 0}])
        sock = self.env.path("agent.sock")
        c = harness.ControlConn(sock)
        self.addCleanup(c.close)
        harness.wait_for(lambda: c.call("reserve", user="alice").get("ok"), 10, what="slot s0 admissible")
        sess = c.call("sessions")["sessions"]
        self.assertTrue(c.call("start", session=sess[0]["session"])["ok"])
        harness.wait_for(lambda: "encoder_sessions" in c.call("sessions")["sessions"][0], 5, what="encoder sessions")
        s0 = c.call("sessions")["sessions"][0]
        self.assertEqual((s0["slot"], s0["user"]), ("s0", "alice"))
        self.assertEqual(s0["encoder_sessions"], encs_expected(A10G["encs"]))
        self.assertEqual(s0["fbc_sessions"], fbcs_expected(A10G["fbcs"]))
        r = self.env.run([harness.ctl_binary(), "--socket", sock, "sessions"], timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nvenc: pid 4242 h264 1920x1080, 60 fps, latency 4.2 ms\n", r.stdout)
        self.assertIn("nvenc: pid 4301 hevc 2560x1440, 58 fps, latency 6.1 ms\n", r.stdout)
        self.assertIn("nvfbc: pid 4242 hwenc 1920x1080, 59 fps, latency 1.8 ms\n", r.stdout)
        self.assertIn("nvfbc: pid 4301 tosys 2560x1440, 57 fps, latency 2.5 ms\n", r.stdout)
        self.assertEqual(agent.stop(), 0)

    def start_streaming(self):
        """One slot s0 with the A10G to itself (two NVENC streams and two captures, the same every
        tick), alice's session started on it and its stream sessions seen: (agent, control, session)."""
        agent, _ = self.start([A10G], slots=[{"id": "s0", "scale": "cpu-4", "gpu": 0}])
        c = harness.ControlConn(self.env.path("agent.sock"))
        self.addCleanup(c.close)
        harness.wait_for(lambda: c.call("reserve", user="alice").get("ok"), 10, what="slot s0 admissible")
        sess = c.call("sessions")["sessions"][0]["session"]
        self.assertTrue(c.call("start", session=sess)["ok"])
        harness.wait_for(lambda: "fbc_sessions" in c.call("sessions")["sessions"][0], 5, what="stream sessions")
        return agent, c, sess

    def session_end_record(self):
        """The first session_end on the metering topic: (its line as published, its payload)."""
        def session_end():
            for _, topic, payload in self.meter.on("/metering"):
                b64 = json.loads(payload)["payload"]
                p = json.loads(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))
                if p["type"] == "session_end":
                    return payload, p
            return None
        return harness.wait_for(session_end, 10, what="the session_end record")

    def test_session_end_streams_span_a_reload_that_makes_a_new_meter(self):
        # Adding a slot makes a new meter (its billing windows follow the slots); the running
        # session's stream summary lives in its slot object and goes on with it.
        agent, c, sess = self.start_streaming()
        time.sleep(10 * INTERVAL_MS / 1000.0)
        with open(self.cfg) as f:
            new = json.load(f)
        new["slots"].append({"id": "s1", "scale": "cpu-4"})
        harness.write_atomic(self.cfg, json.dumps(new))
        mark = agent.line_count()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"notice: configuration reloaded from .* \(2 slots\)$", timeout=10, start=mark)
        time.sleep(2 * INTERVAL_MS / 1000.0)
        self.assertTrue(c.call("end", session=sess, reason="user_quit")["ok"])
        _, end = self.session_end_record()
        # About twelve ticks: the ten before the reload count (a new meter that started the summary
        # over would have two or three).
        self.assertGreaterEqual(end["streams"]["ticks"], 8, end["streams"])
        self.assertEqual(end["streams"]["encoder"]["samples"], 2 * end["streams"]["ticks"], end["streams"])
        self.assertEqual(agent.stop(), 0)

    def test_session_end_carries_stream_quality_and_verifies(self):
        agent, c, sess = self.start_streaming()
        env = self.env
        meter = self.meter
        time.sleep(5 * INTERVAL_MS / 1000.0)
        self.assertTrue(c.call("end", session=sess, reason="user_quit")["ok"])
        line, end = self.session_end_record()
        st = end["streams"]
        ticks = st["ticks"]
        self.assertGreaterEqual(ticks, 3, st)
        # Every tick saw the same figures: the averages are those of the scripted sessions.
        self.assertEqual(st, {
            "ticks": ticks,
            "encoder": {"sessions": 2, "samples": 2 * ticks, "avg_fps": 59, "min_fps": 58,
                        "avg_latency_us": 5150, "max_latency_us": 6100},
            "fbc": {"sessions": 2, "samples": 2 * ticks, "avg_fps": 58, "min_fps": 57,
                    "avg_latency_us": 2150, "max_latency_us": 2500},
        })
        # Signed and chained like every record: verify takes it, and so does the reference biller.
        recs = []
        for _, topic, payload in meter.on("/metering"):
            b64 = json.loads(payload)["payload"]
            p = json.loads(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))
            recs.append((p["seq"], payload))
        lines = [l for _, l in sorted(dict(recs).items())]
        path = env.path("records.jws")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = env.run([harness.ctl_binary(), "verify", "--json", "--cert", env.pki["client_cert"], path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = env.run([sys.executable, os.path.join(harness.SOURCE_DIR, "scripts", "bill"), "--json", path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(agent.stop(), 0)

    def test_top_shows_each_slot_vram_fps_and_encode_latency(self):
        # s0 has the A10G to itself (its two NVENC streams); s1 has no GPU.
        agent, sub = self.start([A10G], slots=[{"id": "s0", "scale": "S", "gpu": 0}, {"id": "s1", "scale": "cpu-4"}])
        sock = self.env.path("agent.sock")
        harness.wait_for(lambda: os.path.exists(sock), 10, what="control socket")
        vram_pct = "%4.0f%%" % (A10G["vram_used"] / 4e9 * 100)  # scale S: 4 GB of VRAM

        def top():
            r = self.env.run([harness.ctl_binary(), "--socket", sock, "top"], timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout if re.search(r"(?m)^s0 .* 58 ", r.stdout) else None
        out = harness.wait_for(top, 10, what="top with s0's encoder sessions")
        self.assertRegex(out, r"(?m)^SLOT +SCALE +STATE +USER +AGE +CPU +MEMORY +VRAM +GPU +BANDWIDTH +FPS +LAT_MS +CAP_FPS +VIEWERS$")
        s0 = [line for line in out.splitlines() if line.startswith("s0 ")][0]
        s1 = [line for line in out.splitlines() if line.startswith("s1 ")][0]
        self.assertIn(vram_pct, s0)
        # The slowest stream's FPS and the worst encode latency (58 fps at 6.1 ms; 60 at 4.2 ms), and
        # the slowest capture (57 fps; 59).
        self.assertRegex(s0, r" 58 +6\.1 +57 0$")
        self.assertRegex(s1, r" - +- +- 0$")
        self.assertEqual(agent.stop(), 0)

    def test_missing_library_is_a_quiet_cpu_host(self):
        missing = self.env.path("no-such-dir", "libnvidia-ml.so.1")
        agent, sub = self.start([A10G], nvml_library=missing)
        st = self.status(sub)
        self.assertEqual((st["platform"]["arch"], st["platform"]["class"]), ("x86_64", "x86-cpu"), st)
        docs = self.telemetry(sub, 3, since=time.monotonic())
        for d in docs:
            self.assertEqual(d["gpus"], [])
            self.assertEqual(d["slots"][1]["gpu"], {"error": "no such GPU on this host"})
        agent.wait_log(r"\b0 GPUs found")
        self.assertTrue(agent.alive())
        # hal/gpu_nvml.c: a library dlopen() cannot load means "no NVIDIA GPU here" (-ENODEV), which
        # hal_gpus_open() skips without a word: a CPU host must not warn about NVML every start,
        # nor mention it at all (at debug level neither).
        self.assertEqual(agent.matches(r"(?i)nvml|nvidia|libnvidia|" + re.escape(missing)), [])
        self.assertEqual(agent.matches(WARN_RE + r".*(?i:GPU backend)"), [])
        self.assertFalse(os.path.exists(self.nvml_log), "the fake was loaded after all")
        self.assertEqual(agent.stop(), 0)


class GpuProbe(harness.IntegrationTest):
    needs_mqtt = False

    def setUp(self):
        super().setUp()
        self.lib = harness.fake_nvml_library()
        if not self.lib:
            self.fail("RA_FAKE_NVML (tests/fakes' libfake_nvml.so) is not set")

    def probe(self, root, slots, gpus, nvml_library=None, extra_lines=()):
        env = self.env
        script = harness.write_nvml_script(env.path("nvml.script"), gpus, extra_lines)
        cfg = env.config(8883, name="probe.json", slots=slots,
                         extra={"gpu": {"nvml_library": nvml_library or self.lib}})
        r = env.run([harness.agent_binary(), "--probe", "--root", root, "--config", cfg],
                    env_vars={"FAKE_NVML_SCRIPT": script})
        self.assertIsNone(harness.SANITIZER_RE.search(r.stderr), "sanitizer report:\n" + r.stderr)
        return r

    def test_probe_processes_and_slot_gpus(self):
        # GPU 1 is shared by s1 and s2: its processes are billed to the slot whose cgroup holds
        # them, from the fixture's /proc/<pid>/cgroup (4242: slot-0.scope, 4343: slot-1.scope).
        # 4250 is listed by the driver but has no /proc entry (it exited): billed to nobody.
        # NVENC sessions go the same way: 4242's to s1, 4343's to s2, 4250's to nobody.
        l4 = dict(L4, procs="4242:1073741824,4343:536870912,4250:4096", gprocs="4242:2147483648,4343:-",
                  encs="4343:av1:3840x2160:30:9100,4250:h264:1280x720:60:3000,4242:hevc:1920x1080:60:4800",
                  fbcs="4250:tosys:1280x720:60:700,4343:cuda:3840x2160:31:2600,4242:hwenc:1920x1080:60:1500")
        slots = [
            {"id": "s0", "scale": "cpu-4", "gpu": 0},
            {"id": "s1", "scale": "cpu-8", "cgroup": "render.slice/slot-0.scope", "gpu": 1},
            {"id": "s2", "scale": "cpu-8", "cgroup": "render.slice/slot-1.scope", "gpu": 1},
            {"id": "s3", "scale": "cpu-4", "gpu": 7},
        ]
        r = self.probe(ROOT, slots, [A10G, l4])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        doc = json.loads(r.stdout)
        self.assertEqual((doc["platform"]["arch"], doc["platform"]["class"]), ("x86_64", "x86-gpu"))
        exp = [harness.nvml_expected(A10G, 0, with_procs=True), harness.nvml_expected(l4, 1, with_procs=True)]
        self.assertEqual(harness.gpus_fresh(doc["gpus"], FRESH_MS), exp)
        self.assertEqual(exp[0]["processes"], [{"pid": 4242, "vram_bytes": 2147483648}, {"pid": 4250},
                                               {"pid": 4301, "vram_bytes": 268435456}])
        self.assertNotIn("errors", doc)
        self.assertEqual(doc["slots"], [
            {"id": "s0", "scale": "cpu-4",
             "gpu": {"index": 0, "shared": False, "util_pct": harness.fixed(A10G["util"], 1),
                     "vram_used_bytes": A10G["vram_used"], "encoder_sessions": encs_expected(A10G["encs"]),
                     "fbc_sessions": fbcs_expected(A10G["fbcs"])}},
            dict({"id": "s1", "scale": "cpu-8", "gpu": {"index": 1, "shared": True, "vram_used_bytes": 2147483648,
                                                        "encoder_sessions": encs_expected(l4["encs"], {4242}),
                                                        "fbc_sessions": fbcs_expected(l4["fbcs"], {4242})}},
                 **harness.cgroup_expected(ROOT, "render.slice/slot-0.scope")),
            dict({"id": "s2", "scale": "cpu-8", "gpu": {"index": 1, "shared": True, "vram_used_bytes": 536870912,
                                                        "encoder_sessions": encs_expected(l4["encs"], {4343}),
                                                        "fbc_sessions": fbcs_expected(l4["fbcs"], {4343})}},
                 **harness.cgroup_expected(ROOT, "render.slice/slot-1.scope")),
            {"id": "s3", "scale": "cpu-4", "gpu": {"index": 7, "error": "no such GPU on this host"}},
        ])

    def test_probe_mig_devices_with_their_own_memory_and_processes(self):
        # An A100 in MIG mode: no utilisation on the parent (NVML does not support it there), two
        # MIG devices around an empty index, each with its own memory and processes.
        a100 = {k: v for k, v in A10G.items() if k not in ("util", "memutil", "procs", "gprocs", "encs", "fbcs")}
        a100.update(name="NVIDIA A100-SXM4-40GB", device=0x20B0, migmode=1, mig_max=7)
        r = self.probe(ROOT, [], [a100], extra_lines=MIG_LINES)
        self.assertEqual(r.returncode, 0, r.stderr)
        g = json.loads(r.stdout)["gpus"][0]
        self.assertNotIn("util_pct", g)
        self.assertEqual(g["mig"], {"enabled": True, "devices": mig_expected(with_procs=True)})

    def test_probe_vgpu_guest_says_so_and_leaves_out_what_does_not_apply(self):
        # A vGPU guest's L4-6Q: the host-side figures (power, temperature, clocks, throttle
        # reasons) do not apply and the driver refuses them; the rest is the vGPU's own.
        l4q = {k: v for k, v in L4.items() if k not in ("power_mw", "temp", "sm", "sm_max", "throttle")}
        l4q.update(name="NVIDIA L4-6Q", vram_total=6442450944, vram_used=1073741824, virt=2)
        r = self.probe(ROOT, [], [l4q])
        self.assertEqual(r.returncode, 0, r.stderr)
        g = json.loads(r.stdout)["gpus"][0]
        self.assertEqual(g["virtualization"], "vgpu")
        self.assertEqual((g["util_pct"], g["vram_total_bytes"]), (harness.fixed(L4["util"], 1), 6442450944))
        for key in ("power_w", "temp_c", "clock_mhz", "clock_max_mhz", "throttle_reasons", "error"):
            self.assertNotIn(key, g)

    def test_probe_lost_gpu_is_an_error(self):
        r = self.probe(ROOT, [{"id": "s0", "scale": "cpu-4", "gpu": 1}], [A10G, lost(L4)])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(harness.gpus_fresh(doc["gpus"], FRESH_MS)[0], harness.nvml_expected(A10G, 0, with_procs=True))
        err = doc["gpus"][1]["error"]
        self.assertIn("GPU is lost", err)
        self.assertEqual(doc["errors"], [err])
        self.assertIn(err, r.stderr)
        self.assertEqual(doc["slots"], [{"id": "s0", "scale": "cpu-4", "gpu": {"index": 1, "shared": False}}])

    def test_probe_missing_library(self):
        r = self.probe(ROOT, [{"id": "s0", "scale": "cpu-4", "gpu": 0}], [A10G],
                       nvml_library=self.env.path("missing", "libnvidia-ml.so.1"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        doc = json.loads(r.stdout)
        self.assertEqual((doc["platform"]["arch"], doc["platform"]["class"]), ("x86_64", "x86-cpu"))
        self.assertEqual(doc["gpus"], [])
        self.assertEqual(doc["slots"], [{"id": "s0", "scale": "cpu-4",
                                         "gpu": {"index": 0, "error": "no such GPU on this host"}}])


if __name__ == "__main__":
    harness.main()
