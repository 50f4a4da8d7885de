#!/usr/bin/env python3
"""test_doctor: `render-agentctl doctor` against a real agent and mosquitto (TLS, mutual auth): a
healthy node passes every check; each failure a technician meets is produced and named with its fix
(broker down with records backing up in the spool, a wrong CA, a certificate about to expire, an
unsynchronised clock, a missing cgroup, a private key open to others), also with no agent running.
The clock's state comes from tests/integration/fake_adjtimex.c (LD_PRELOAD), for the agent and for
doctor; losing sync makes the agent raise an event and mark its billing records."""

import base64
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SLOTS = [{"id": "s0", "scale": "cpu-4", "iface": "lo"}]


def payload(jws):
    """The record inside one flattened JWS from .../metering."""
    p = jws["payload"]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def window_record(pred):
    return lambda jws: "payload" in jws and payload(jws).get("type") == "concurrency_window" and pred(payload(jws))


class Doctor(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.lib = harness.preload_library("RA_FAKE_ADJTIMEX", "libfake_adjtimex.so")
        if not self.lib:
            self.fail("RA_FAKE_ADJTIMEX (tests/integration/fake_adjtimex.c, built) is not set")
        self.clock = self.env.path("adjtimex")
        self.set_clock("synced 300")
        self.sock = self.env.path("agent.sock")

    def set_clock(self, text):
        harness.write_atomic(self.clock, text + "\n")

    def preload(self):
        # fake_adjtimex is built without sanitizers, so it comes before ASan's runtime: allowed.
        return {"LD_PRELOAD": self.lib, "RA_FAKE_ADJTIMEX_FILE": self.clock,
                "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:verify_asan_link_order=0"}

    def start(self, broker, **kw):
        cfg = self.env.config(broker.port, interval_ms=300, slots=kw.pop("slots", SLOTS), **kw)
        agent = self.env.agent(cfg, extra_env=self.preload())
        self.assertTrue(harness.wait_for(lambda: os.path.exists(self.sock), 10), "no control socket")
        return cfg, agent

    def ctl(self, *args):
        r = self.env.run([harness.ctl_binary(), "--socket", self.sock] + list(args), timeout=20,
                         env_vars=self.preload())
        self.assertEqual(r.stderr.replace("==", ""), r.stderr)  # no sanitizer report
        return r

    def doctor(self, *args):
        """doctor --json: (exit status, {check: [finding, ..]}, the document)."""
        r = self.ctl("doctor", "--json", *args)
        doc = json.loads(r.stdout)
        by = {}
        for f in doc["checks"]:
            by.setdefault(f["check"], []).append(f)
        return r.returncode, by, doc

    def only(self, by, check):
        self.assertIn(check, by)
        self.assertEqual(len(by[check]), 1, by[check])
        return by[check][0]

    def expect(self, by, check, result, evidence=(), fix=()):
        """The one finding of `check` has this result, and its evidence and fix hold these texts."""
        f = self.only(by, check)
        self.assertEqual(f["result"], result, f)
        for text in evidence:
            self.assertIn(text, f["evidence"])
        for text in fix:
            self.assertIn(text, f["fix"])
        return f

    def status(self):
        r = self.ctl("--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)["status"]

    def test_healthy_node_passes_every_check(self):
        broker = self.env.broker()
        # A consumer takes the records: should an hour turn in the test, its window record is not
        # left in the spool unreceived (PUBACK 0x10), which the spool check rightly warns of.
        self.env.subscriber(broker, topic=self.env.topic("metering"), qos=1)
        cfg, agent = self.start(broker)
        agent.wait_connected()
        self.assertTrue(harness.wait_for(lambda: self.status()["slots"][0].get("conformant"), 15),
                        "slot s0 never measured conformant")
        rc, by, doc = self.doctor()
        failing = [f for f in doc["checks"] if f["result"] != "PASS"]
        self.assertEqual(failing, [])
        self.assertEqual(rc, 0)
        self.assertEqual(doc["result"], "PASS")
        self.assertTrue(doc["agent_running"])
        for check in ("agent", "config", "clock", "state_dir", "certificate", "cert_name", "signing_key",
                      "interface", "broker", "conformance", "spool", "clock_steps", "cert_chain"):
            self.assertIn(check, by)
        self.assertIn("synchronised", self.only(by, "clock")["evidence"])
        self.assertIn("connected to localhost:%d" % broker.port, self.only(by, "broker")["evidence"])
        # The text report: one line per check and the summary.
        r = self.ctl("doctor")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"(?m)^PASS  clock +synchronised")
        self.assertRegex(r.stdout, r"(?m)^PASS: \d+ passed, 0 warnings, 0 failed$")
        # The clock is in the agent's status too.
        self.assertEqual(self.status()["clock"]["synced"], True)
        self.assertEqual(self.status()["clock"]["est_error_us"], 300)

    def test_broker_down_fails_and_the_spool_backlog_warns(self):
        broker = self.env.broker()
        cfg, agent = self.start(broker)
        agent.wait_connected()
        broker.kill9()
        self.assertTrue(harness.wait_for(lambda: self.status()["broker"]["state"] != "connected", 10))
        self.assertEqual(self.ctl("reserve", "alice", "--slot", "s0").returncode, 0)
        self.assertEqual(self.ctl("start", "--user", "alice").returncode, 0)
        self.assertTrue(harness.wait_for(lambda: self.status()["metering"]["spool"]["pending"] >= 1, 10))
        self.assertTrue(harness.wait_for(lambda: self.status()["broker"]["last_error"] != "", 15))
        rc, by, doc = self.doctor()
        self.assertEqual(rc, 2, doc)
        self.expect(by, "broker", "FAIL", ["localhost:%d" % broker.port], ["start the broker"])
        s = self.expect(by, "spool", "WARN", fix=["broker"])
        self.assertRegex(s["evidence"], r"backlog: [1-9]\d* record\(s\) unacknowledged.*broker link is down")
        # The oldest unacknowledged record's age is in status and in the evidence.
        self.assertTrue(harness.wait_for(lambda: "oldest_pending_ts" in self.status()["metering"]["spool"], 10))
        sp = self.status()["metering"]["spool"]
        self.assertRegex(sp["oldest_pending_ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        self.assertGreaterEqual(sp["oldest_pending_age_s"], 0)
        self.assertLess(sp["oldest_pending_age_s"], 120)
        rc, by, doc = self.doctor()
        self.assertRegex(self.only(by, "spool")["evidence"], r"the oldest made \d+ s ago \(\d{4}-")

    def test_wrong_ca_names_the_tls_reason_and_the_ca_file(self):
        broker = self.env.broker()
        cfg, agent = self.start(broker, ca=self.env.pki["rogue_ca"])
        self.assertTrue(harness.wait_for(lambda: "verification" in self.status()["broker"]["last_error"], 20),
                        "the agent never reported the failed verification")
        rc, by, doc = self.doctor()
        self.assertEqual(rc, 2, doc)
        self.expect(by, "broker", "FAIL", ["the broker's certificate failed verification"], ["mqtt.tls.ca_file"])
        # This node's certificate does not chain to that CA either.
        self.expect(by, "cert_chain", "WARN", ["does not verify against %s" % self.env.pki["rogue_ca"]],
                    ["fleet CA"])

    def test_certificate_expiring_within_the_warned_days_warns(self):
        broker = self.env.broker()
        cfg, agent = self.start(broker)
        agent.wait_connected()
        # scripts/dev-pki issues 30-day certificates.
        rc, by, doc = self.doctor("--warn-days", "45")
        c = self.expect(by, "certificate", "WARN", fix=["renew"])
        self.assertRegex(c["evidence"], r"expires in (29|30) days .*within the 45 days")
        self.assertEqual(rc, 1, doc)
        rc, by, doc = self.doctor("--warn-days", "10")
        self.assertEqual(self.only(by, "certificate")["result"], "PASS")
        r = self.ctl("doctor", "--warn-days", "soon")
        self.assertEqual(r.returncode, 3)
        self.assertIn("--warn-days \"soon\"", r.stderr)

    def test_unsynchronised_clock_fails_raises_an_event_and_marks_records(self):
        broker = self.env.broker()
        sub = self.env.subscriber(broker, topic=self.env.topic("#"))
        cfg, agent = self.start(broker, extra={"metering": {"window_s": 1, "late_s": 0}})
        agent.wait_connected()
        self.assertTrue(sub.wait_doc("metering", window_record(lambda r: r["clock_synced"] and
                                                               r["clock_est_error_us"] == 300), timeout=10),
                        "no window record marked synchronised")
        self.set_clock("unsynced")
        ev = sub.wait_doc("events", lambda d: d.get("event") == "metering_alarm" and d.get("alarm") ==
                          "clock_unsynced", timeout=10)
        self.assertTrue(ev, "no clock_unsynced event")
        self.assertIn("marked clock_synced false", ev[1]["message"])
        # A window closed on the unsynchronised clock is still made, and says so.
        self.assertTrue(sub.wait_doc("metering", window_record(lambda r: not r["clock_synced"] and
                                                               r["clock_est_error_us"] == 16000000), timeout=10),
                        "no window record marked unsynchronised")
        rc, by, doc = self.doctor()
        self.assertEqual(rc, 2, doc)
        self.expect(by, "clock", "FAIL", ["STA_UNSYNC"], ["NTP"])
        self.assertFalse(self.status()["clock"]["synced"])
        self.set_clock("synced 200")
        self.assertTrue(sub.wait_doc("events", lambda d: d.get("event") == "metering_alarm_cleared" and
                                     d.get("alarm") == "clock_unsynced", timeout=10), "no clear event")
        self.assertTrue(self.status()["clock"]["synced"])

    def test_a_wall_clock_step_is_named_with_its_age(self):
        step_lib = harness.preload_library("RA_FAKE_CLOCK", "libfake_clock.so")
        self.assertTrue(step_lib, "RA_FAKE_CLOCK (tests/integration/fake_clock.c, built) is not set")
        offset = self.env.path("clock-offset")
        harness.write_atomic(offset, "0\n")
        broker = self.env.broker()
        cfg = self.env.config(broker.port, interval_ms=300, slots=SLOTS)
        env = self.preload()
        env.update({"LD_PRELOAD": self.lib + " " + step_lib, "RA_FAKE_CLOCK_FILE": offset})
        self.env.agent(cfg, extra_env=env).wait_connected()
        harness.write_atomic(offset, "+600\n")
        self.assertTrue(harness.wait_for(lambda: self.status()["metering"]["clock_steps"]["forward"] == 1, 10),
                        "the agent never saw the step")
        rc, by, doc = self.doctor()
        f = self.expect(by, "clock_steps", "WARN", ["1 forward, 0 back", "clock_step true"], ["chronyc tracking"])
        self.assertRegex(f["evidence"], r"stepped \d+ s ago")
        self.assertEqual(rc, 1, doc)

    def test_gpus_answering_pass_and_a_missing_one_fails(self):
        nvml = harness.fake_nvml_library()
        self.assertTrue(nvml, "RA_FAKE_NVML (tests/fakes' libfake_nvml.so) is not set")
        script = harness.write_nvml_script(self.env.path("nvml.script"), [
            {"name": "NVIDIA A10G", "uuid": "GPU-3f1c9a52-7d0e-4b8e-9c11-5a2b6c7d8e01", "pci": "0000:00:1e.0",
             "device": 0x2237, "util": 37, "vram_total": 24146608128, "vram_used": 8053063680}])
        broker = self.env.broker()
        slots = [{"id": "s0", "scale": "cpu-4", "iface": "lo", "gpu": 0}, {"id": "s1", "scale": "cpu-4", "gpu": 1}]
        cfg = self.env.config(broker.port, interval_ms=300, slots=slots, extra={"gpu": {"nvml_library": nvml}})
        env = self.preload()
        env["FAKE_NVML_SCRIPT"] = script
        self.env.agent(cfg, extra_env=env).wait_connected()
        self.assertTrue(harness.wait_for(lambda: self.status()["sampling"]["ticks"] >= 2, 10))
        rc, by, doc = self.doctor()
        gpus = {f["evidence"].split(":")[0]: f for f in by.get("gpu", [])}
        self.assertEqual(gpus["slot s0"]["result"], "PASS", by.get("gpu"))
        self.assertEqual(gpus["slot s0"]["evidence"], "slot s0: GPU 0 answers")
        self.assertEqual(gpus["slot s1"]["result"], "FAIL")
        self.assertIn("no such GPU on this host", gpus["slot s1"]["evidence"])
        self.assertIn("nvidia-smi", gpus["slot s1"]["fix"])
        self.assertEqual(rc, 2, doc)

    def test_missing_cgroup_and_open_key_fail_without_an_agent(self):
        broker = self.env.broker()
        slots = [{"id": "s0", "scale": "cpu-4", "cgroup": "ra-doctor-missing.slice/s0", "iface": "ra-nosuch0"}]
        cfg = self.env.config(broker.port, slots=slots)
        os.chmod(self.env.pki["client_key"], 0o644)
        rc, by, doc = self.doctor("--config", cfg)
        self.assertEqual(rc, 2, doc)
        self.assertFalse(doc["agent_running"])
        self.expect(by, "agent", "FAIL", ["not running"], ["systemctl start render-agent"])
        self.expect(by, "config", "PASS")
        self.expect(by, "cgroup", "FAIL", ["/sys/fs/cgroup/ra-doctor-missing.slice/s0 is missing"], ["Delegate=yes"])
        self.expect(by, "interface", "FAIL", ["ra-nosuch0 is not present"])
        self.expect(by, "signing_key", "FAIL", ["mode 0644"], ["chmod 600"])
        # Without the agent, the broker is tried on TCP.
        self.expect(by, "broker", "PASS", ["answers on TCP"])
        self.assertNotIn("spool", by)

    def test_key_opened_to_others_while_the_agent_runs_fails(self):
        broker = self.env.broker()
        cfg, agent = self.start(broker)
        agent.wait_connected()
        os.chmod(self.env.pki["client_key"], 0o640)
        rc, by, doc = self.doctor()
        self.expect(by, "signing_key", "FAIL", ["open to its group"], ["chmod 600"])
        self.assertEqual(rc, 2)


if __name__ == "__main__":
    harness.main()
