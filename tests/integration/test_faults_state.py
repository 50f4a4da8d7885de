#!/usr/bin/env python3
"""test_faults_state: faults on the host under a running agent, each with its outcome checked
(docs/reliability.md). The state dir's disk fills up (a 3 MiB tmpfs in a private mount namespace):
new sessions are refused (fail closed), nothing on disk is corrupted, everything is delivered once
there is room again; an agent that starts on an all-but-full disk refuses new sessions from its
first op until there is room; kill -9 at random points while sessions churn and records flow, several times:
every acknowledged session is still held or has its records, seq contiguous; the wall clock steps
forward an hour and back ten seconds (tests/integration/fake_clock.c): no window twice, windows
aligned, reservations expire by the monotonic clock; a corrupt slots.state: every slot BLOCKED until
an operator unblocks it; a corrupt record in the middle of the spool: quarantined, an alarm, the rest
delivered; the GPU's sysfs directory and a slot's interface vanish under --root: the agent runs on,
reports both, and serves sessions."""

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import not_clock  # noqa: E402
from test_faults_link import FaultTest, decode, fake_clock_library  # noqa: E402
from test_sessions import code, read_slot_state  # noqa: E402

SPOOL_MAGIC = b"\xf5RA1"  # docs/spool.md, "Record format"


def spool_records(path):
    """[(offset, length, id)] of the records in one spool segment, read as docs/spool.md says."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + 20 <= len(data) and data[off:off + 4] == SPOOL_MAGIC:
        length, rid = struct.unpack_from("<IQ", data, off + 4)
        out.append((off, length, rid))
        off += 20 + length
    return out


class Churn:
    """Sessions through reserve/start/end in a thread until stopped (or the agent dies under it):
    which starts and ends were acknowledged, and which sessions were started and not yet ended."""

    def __init__(self, sock, prefix):
        self.sock, self.prefix = sock, prefix
        self.lock = threading.Lock()
        self.started, self.ended, self.held = {}, {}, {}  # session -> user
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        rng = random.Random(self.prefix)
        n = 0
        try:
            c = harness.ControlConn(self.sock, timeout=5)
        except OSError:
            return
        try:
            while not self.stop.is_set():
                n += 1
                user = "%s%d" % (self.prefix, n)
                r = c.call("reserve", user=user)
                if not r["ok"]:
                    time.sleep(0.01)
                    continue
                s = r["session"]
                if not c.call("start", session=s)["ok"]:
                    continue
                with self.lock:
                    self.started[s] = self.held[s] = user
                time.sleep(rng.random() * 0.02)
                with self.lock:
                    del self.held[s]  # from the moment the end is sent it may have happened
                if c.call("end", session=s, reason="churn")["ok"]:
                    with self.lock:
                        self.ended[s] = user
        except (OSError, ConnectionError, ValueError, AssertionError):
            pass  # killed under us
        finally:
            c.close()

    def join(self):
        self.stop.set()
        self.thread.join(timeout=10)


class StateFaults(FaultTest):
    def admitting(self):
        """The agent answers and its meter refuses no session (a status that does not come is no
        answer: under load a status request may time out)."""
        st = self.status()
        return st is not None and "metering" in st and "refusing_sessions" not in st["metering"]

    def test_disk_full_fails_closed_and_recovers(self):
        env = self.env
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("a private tmpfs needs root and unshare (util-linux)")
        broker = env.broker()
        events = env.subscriber(broker, topic=env.topic("events"), qos=1)
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        state = env.path("state")
        os.mkdir(state, 0o700)
        # The agent's own mount namespace, with a 3 MiB tmpfs on its state dir: this machine's disks
        # are not touched; the test reaches the files through /proc/PID/root.
        wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t tmpfs -o size=3m,mode=0700 ra-faults "$0" && exec "$@"', state]
        probe = subprocess.run(wrapper + ["true"], capture_output=True, text=True, timeout=10)
        if probe.returncode != 0:
            self.skipTest("no private tmpfs here (a container without CAP_SYS_ADMIN?): %s" % probe.stderr.strip())
        agent = self.start(self.config(broker.port), wrapper=wrapper)
        root = "/proc/%d/root" % agent.pid
        acked = self.churn(5, "roomy")
        c = harness.ControlConn(self.sock())
        holder = c.call("reserve", user="holder")["session"]
        self.assertTrue(c.call("start", session=holder)["ok"])
        c.close()
        self.drained()
        # The disk fills up. Acknowledged records stay in the spool's segment until it rolls over
        # (docs/spool.md), so every new record needs room, broker or not.
        filler = root + state + "/filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        # New sessions get NO_IDLE: a record that cannot be spooled must not be promised.
        refused, n = None, 0
        c = harness.ControlConn(self.sock())
        for i in range(400):
            r = c.call("reserve", user="full%d" % i)
            if not r["ok"]:
                refused = r
                break
            s = r["session"]
            if c.call("start", session=s)["ok"] and c.call("end", session=s, reason="churn")["ok"]:
                acked[s] = "full%d" % i
                n += 1
        self.assertIsNotNone(refused, "a full disk never refused a session")
        print("disk full: %d session(s) fitted, then %s: %s" % (n, code(refused), refused["error"]["message"]))
        self.assertEqual(code(refused), "NO_IDLE", refused)
        self.assertIn("No space left on device", refused["error"]["message"])
        st = self.status()
        self.assertTrue(agent.alive())
        m = st["metering"]
        # Refused before a record failed: the room is measured before each op that opens billing.
        self.assertIn("new sessions need 256 KiB", m["refusing_sessions"])
        self.assertEqual(m["lost"], 0, m)
        self.assertIn("No space left on device", m["refusing_sessions"])
        # A session already held still ends: its records go into slots.state with the state if the
        # spool cannot take them (status: owed), never dropped.
        self.assertTrue(c.call("end", session=holder)["ok"])
        acked[holder] = "holder"
        c.close()
        alarm = events.wait_doc("/events", lambda d: d.get("event") == "metering_alarm" and not_clock(d), timeout=10)
        self.assertIsNotNone(alarm, events.describe())
        self.assertEqual(alarm[1]["alarm"], "spool_full")
        # The state file still reads (both copies checked).
        self.assertIsNotNone(read_slot_state(root + state + "/slots.state"), "slots.state unreadable")
        # Room again: sessions are admitted, and everything made is delivered.
        os.unlink(filler)
        self.assertTrue(harness.wait_for(self.admitting, 15,
                         what="sessions admitted again"))
        acked = self.churn(3, "again", acked)
        self.assertEqual(len([u for u in acked.values() if u.startswith("again")]), 3)
        self.all_delivered(sub, acked, timeout=60)

    def test_a_start_on_a_full_disk_refuses_new_sessions_until_there_is_room(self):
        env = self.env
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("a private tmpfs needs root and unshare (util-linux)")
        broker = env.broker()
        state = env.path("state")
        os.mkdir(state, 0o700)
        # The agent starts (again) on a disk that is all but full: 192 KiB left of a 3 MiB tmpfs,
        # less than the 256 KiB the spool must have for new sessions (docs/metering.md).
        wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t tmpfs -o size=3m,mode=0700 ra-faults "$0" && '
                   'head -c %d /dev/zero > "$0/filler" && exec "$@"' % (3 * 1024 * 1024 - 192 * 1024), state]
        probe = subprocess.run(wrapper + ["true"], capture_output=True, text=True, timeout=10)
        if probe.returncode != 0:
            self.skipTest("no private tmpfs here (a container without CAP_SYS_ADMIN?): %s" % probe.stderr.strip())
        agent = self.start(self.config(broker.port), wrapper=wrapper)
        root = "/proc/%d/root" % agent.pid
        # Refused from the very first op, before any record failed to write.
        c = harness.ControlConn(self.sock())
        r = c.call("reserve", user="early")
        self.assertEqual(code(r), "NO_IDLE", r)
        self.assertIn("No space left on device", r["error"]["message"])
        self.assertIn("new sessions need 256 KiB", r["error"]["message"])
        m = self.status()["metering"]
        self.assertIn("new sessions need 256 KiB", m["refusing_sessions"])
        self.assertEqual(m["records_made"], 0, m)
        # Room again: admitted without a restart.
        os.unlink(root + state + "/filler")
        self.assertTrue(harness.wait_for(self.admitting, 15,
                         what="sessions admitted again"))
        r = c.call("reserve", user="later")
        self.assertTrue(r["ok"], r)
        self.assertTrue(c.call("start", session=r["session"])["ok"])
        c.close()
        self.assertTrue(agent.alive())

    def test_kill_9_at_random_points_loses_no_acknowledged_session(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        cfg = self.config(broker.port)
        rng = random.Random(int(os.environ.get("RA_FAULT_SEED", "8")))
        started, ended = {}, {}
        agent = self.start(cfg)
        for it in range(8):
            churn = Churn(self.sock(), "k%d-" % it)
            time.sleep(0.3 + rng.random() * 1.5)
            with churn.lock:
                agent.proc.kill()  # SIGKILL, wherever the agent is: mid-commit, mid-publish, mid-ack
                held = dict(churn.held)
            churn.join()
            started.update(churn.started)
            ended.update(churn.ended)
            agent = self.start(cfg)
            # Every session whose start was acknowledged and whose end was not sent is still held.
            c = harness.ControlConn(self.sock())
            slots = {s.get("session"): s for s in c.call("slots")["slots"]}
            for s, user in held.items():
                self.assertIn(s, slots, "iteration %d: acked session %s of %s lost" % (it, s, user))
                self.assertEqual(slots[s]["user"], user)
                self.assertIn(slots[s]["state"], ("active", "grace"))
            users = [s["user"] for s in slots.values() if "user" in s]
            self.assertEqual(len(users), len(set(users)), slots)
            # Whatever the kill left held (also ends that were sent but not acknowledged) is ended
            # now, so that the next round finds free slots.
            for s in slots.values():
                if s.get("session") and c.call("end", session=s["session"], reason="after_kill")["ok"] and \
                        s["state"] != "reserved":
                    ended[s["session"]] = s["user"]
            c.close()
            print("iteration %d: %d started, %d ended, %d held at the kill" %
                  (it, len(churn.started), len(churn.ended), len(held)))
        self.assertGreater(len(started), 50)
        recs = self.all_delivered(sub, timeout=60)
        types = {}
        for _, _, p in recs.values():
            types.setdefault(p["type"], set()).add(p.get("session"))
        self.assertEqual(set(started) - types["session_start"], set(), "a started session has no record")
        self.assertEqual(set(ended) - types["session_end"], set(), "an ended session has no record")

    def fake_clock_file(self):
        """A file whose offset (seconds) the agent's wall clock follows; "+0" for now."""
        path = self.env.path("clock")
        harness.write_atomic(path, "+0\n")
        return path

    def fake_clock_env(self, path):
        lib = fake_clock_library()
        if not lib:
            self.fail("RA_FAKE_CLOCK (tests/integration/fake_clock.c, built) is not set")
        # The library is built without sanitizers, so it comes before ASan's runtime: allowed here.
        return {"LD_PRELOAD": lib, "RA_FAKE_CLOCK_FILE": path,
                "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:verify_asan_link_order=0"}

    def test_wall_clock_steps(self):
        env = self.env
        clock = self.fake_clock_file()
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        cfg = self.config(broker.port, extra={"sessions": {"lock_ttl_s": 4}})
        self.start(cfg, extra_env=self.fake_clock_env(clock))
        c = harness.ControlConn(self.sock())
        self.assertTrue(c.call("reserve", user="alice", slot="s0")["ok"])
        self.assertTrue(c.call("start", user="alice")["ok"])  # occupancy 1 through both steps
        time.sleep(3)

        def reserved(user):
            return any(s.get("user") == user and s["state"] == "reserved" for s in c.call("slots")["slots"])

        # Forward an hour with a reservation open: it still has its 4 s (monotonic), not 4 s - 1 h.
        self.assertTrue(c.call("reserve", user="bob", slot="s1")["ok"])
        t0 = time.monotonic()
        harness.write_atomic(clock, "+3600\n")
        time.sleep(1.5)
        self.assertTrue(reserved("bob"), "a wall clock step forward expired a reservation")
        harness.wait_for(lambda: not reserved("bob"), 8, interval=0.2)
        took = time.monotonic() - t0
        self.assertFalse(reserved("bob"))
        self.assertGreater(took, 2.5, "expired %.1f s after a 4 s reservation" % took)
        time.sleep(3)
        # Back ten seconds: windows already sent are not sent again, and a reservation still
        # expires after its 4 s rather than 14.
        self.assertTrue(c.call("reserve", user="carol", slot="s1")["ok"])
        t0 = time.monotonic()
        harness.write_atomic(clock, "+3590\n")
        harness.wait_for(lambda: not reserved("carol"), 10, interval=0.2)
        took = time.monotonic() - t0
        self.assertLess(took, 7, "a reservation outlived its 4 s by the step back (%.1f s)" % took)
        time.sleep(14)  # the wall clock catches up with the last window closed
        self.assertTrue(c.call("end", user="alice")["ok"])
        c.close()
        recs = self.all_delivered(sub)
        windows = [p for _, _, p in (recs[s] for s in sorted(recs)) if p["type"] == "concurrency_window"]
        starts = [w["window_start"] for w in windows]
        self.assertEqual(len(starts), len(set(starts)), "a window was emitted twice: %s" % starts)
        self.assertEqual(starts, sorted(starts), "windows out of order: %s" % starts)
        for w in windows:
            self.assertRegex(w["window_start"], r":\d[02468]Z$", "window not aligned to 2 s: %s" % w)
        jumped = [w for w in windows if w["windows"] > 1]
        self.assertEqual(len(jumped), 1, windows)
        self.assertTrue(jumped[0]["clock_step"])
        self.assertTrue(1790 <= jumped[0]["windows"] <= 1800, jumped[0])
        self.assertEqual(jumped[0]["peak"], 1, "alice played through the skipped windows")
        stretched = [w for w in windows if w["covered_s"] > 2.5]
        self.assertEqual(len(stretched), 1, "the step back must stretch one window: %s" % windows)
        self.assertTrue(stretched[0]["clock_step"])
        self.assertTrue(10 <= stretched[0]["covered_s"] <= 14, stretched[0])

    def test_session_duration_ignores_a_clock_step(self):
        # session_end.duration_s comes from the monotonic clock for a session started in this run:
        # a session that lives through a step of the wall clock is not billed the step.
        env = self.env
        clock = self.fake_clock_file()
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        self.start(self.config(broker.port), extra_env=self.fake_clock_env(clock))
        c = harness.ControlConn(self.sock())
        self.assertTrue(c.call("reserve", user="alice")["ok"])
        self.assertTrue(c.call("start", user="alice")["ok"])
        time.sleep(1)
        harness.write_atomic(clock, "+3600\n")
        time.sleep(1)
        self.assertTrue(c.call("end", user="alice")["ok"])
        c.close()
        got = sub.wait_doc("/metering", lambda d: decode(json.dumps(d))[2]["type"] == "session_end", timeout=10)
        self.assertIsNotNone(got, sub.describe())
        duration = decode(json.dumps(got[1]))[2]["duration_s"]
        print("session of about 2 s across a +3600 s step: duration_s %.1f" % duration)
        self.assertLess(duration, 10)

    def test_corrupt_state_file_blocks_every_slot_until_unblocked(self):
        env = self.env
        broker = env.broker()
        cfg = self.config(broker.port)
        agent = self.start(cfg)
        c = harness.ControlConn(self.sock())
        self.assertTrue(c.call("reserve", user="alice")["ok"])
        self.assertTrue(c.call("start", user="alice")["ok"])
        c.close()
        self.assertEqual(agent.stop(), 0)
        path = env.path("state", "slots.state")
        with open(path, "r+b") as f:  # both copies: a header byte of each
            for off in (0, 256 * 1024 + 4096):
                f.seek(off + 8)
                f.write(b"\xff\xff")
        agent = self.start(cfg)
        agent.wait_log(r"err.*slots\.state", timeout=5)
        st = self.status()
        self.assertEqual([s["state"] for s in st["slots"]], ["blocked", "blocked"], st["slots"])
        self.assertTrue(st["sessions"].get("last_error"), st["sessions"])
        kept = [n for n in os.listdir(env.path("state")) if n.startswith("slots.state.corrupt-")]
        self.assertEqual(len(kept), 1, os.listdir(env.path("state")))
        c = harness.ControlConn(self.sock())
        self.assertEqual(code(c.call("reserve", user="bob")), "NO_IDLE")
        c.close()
        # An operator vouches for s1 (render-agentctl unblock): it takes sessions again; s0 does not.
        r = env.run([harness.ctl_binary(), "--socket", self.sock(), "unblock", "s1"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        c = harness.ControlConn(self.sock())
        r = c.call("reserve", user="bob")
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["slot"], "s1")
        self.assertEqual(code(c.call("reserve", user="carol")), "NO_IDLE")
        c.close()
        # ... and that is what a restart finds.
        self.assertEqual(agent.stop(), 0)
        self.start(cfg)
        st = self.status()
        self.assertEqual([s["state"] for s in st["slots"]], ["blocked", "reserved"], st["slots"])

    def test_corrupt_spool_record_is_quarantined_and_the_rest_delivered(self):
        env = self.env
        port = harness.free_port()
        cfg = self.config(port)
        agent = self.start(cfg, connected=False)  # no broker yet: every record stays in the spool
        acked = self.churn(10, "q")
        last = self.status()["metering"]["next_seq"] - 1
        self.assertEqual(agent.stop(), 0)  # closes the open window as a partial record too
        spool = env.path("state", "spool")
        segs = sorted(n for n in os.listdir(spool) if n.startswith("seg-"))
        recs = spool_records(os.path.join(spool, segs[-1]))
        off, length, rid = recs[len(recs) // 2]
        with open(os.path.join(spool, segs[-1]), "r+b") as f:
            f.seek(off + 20 + length // 2)  # a flipped byte in the payload: the CRC no longer matches
            b = f.read(1)
            f.seek(off + 20 + length // 2)
            f.write(bytes([b[0] ^ 0x55]))
        broker = env.broker(port)
        events = env.subscriber(broker, topic=env.topic("events"), qos=1)
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        agent = self.start(cfg)
        alarm = events.wait_doc("/events", lambda d: d.get("event") == "metering_alarm" and not_clock(d), timeout=10)
        self.assertIsNotNone(alarm, events.describe())
        print("alarm: %s" % alarm[1]["message"])
        self.assertIn("quarantined", alarm[1]["message"])
        self.assertIn(str(rid), alarm[1]["message"])
        self.assertEqual(len(os.listdir(os.path.join(spool, "quarantine"))), 1)
        last = self.drained()
        got = self.wait_records(sub, last - 1)
        self.check_stream(got, last, lost={rid})
        types = {}
        for _, _, p in got.values():
            types.setdefault(p["type"], set()).add(p.get("session"))
        missing = (set(acked) - types["session_start"]) | (set(acked) - types["session_end"])
        self.assertLessEqual(len(missing), 1, "more than the corrupt record is missing: %s" % missing)
        rc, summary = self.verify(got, env.pki["client_cert"])
        # The one gap is the quarantined record: across it the chain cannot be checked, and it is not broken.
        self.assertEqual((summary["gaps"], summary["missing"], summary["chain_breaks"]), (1, 1, 0), summary)
        self.assertEqual(summary["nodes"][0]["gaps"], [{"from": rid, "to": rid}], summary)

    def test_gpu_and_interface_vanishing_under_the_agent(self):
        env = self.env
        root = env.path("host")
        shutil.copytree(os.path.join(harness.FIXTURES, "x86-gpu-amd"), root, symlinks=True)
        broker = env.broker()
        sub = env.subscriber(broker)
        slots = [{"id": "s0", "scale": "cpu-4", "iface": "veth-s0", "gpu": 0},
                 {"id": "s1", "scale": "cpu-8", "iface": "veth-s1"}]
        agent = self.start(self.config(broker.port, slots=slots, interval_ms=200), args=["--root", root])

        def telemetry(pred, timeout=10):
            got = sub.wait_doc("/telemetry", pred, since=time.monotonic(), timeout=timeout)
            self.assertIsNotNone(got, sub.describe())
            return got[1]

        tele = telemetry(lambda d: len(d.get("gpus", [])) == 2)
        # What each GPU is: the retained status's.
        st = sub.wait_doc("/status", lambda d: len(d.get("gpus", [])) == 2, timeout=10)
        self.assertIsNotNone(st, sub.describe())
        names = sorted(g["name"] for g in st[1]["gpus"])
        index_of = {g["name"]: g["index"] for g in st[1]["gpus"]}
        # One of the two GPUs falls off the bus: its sysfs device directory goes (card2, the one
        # without a product name), the other one carries on.
        shutil.rmtree(os.path.join(root, "sys/class/drm/card2/device"))
        ev = sub.wait_doc("/events", lambda d: d.get("event") == "gpu_lost", timeout=10)
        self.assertIsNotNone(ev, sub.describe())
        print("gpu_lost: %s" % ev[1])
        gone = ev[1]["name"]
        self.assertIn(gone, names)
        self.assertTrue(ev[1].get("reason"), ev[1])
        tele = telemetry(lambda d: any(g["index"] != index_of[gone] and "util_pct" in g for g in d.get("gpus", [])))
        # veth-s0 is deleted: its line leaves /proc/net/dev (rewritten in place: the agent keeps
        # the file open, as it keeps the real one).
        dev = os.path.join(root, "proc/net/dev")
        with open(dev) as f:
            lines = [line for line in f if not line.lstrip().startswith("veth-s0:")]
        with open(dev, "r+") as f:
            f.write("".join(lines))
            f.truncate()
        # The status says the interface is gone; telemetry has no figures for it, the other slot's
        # interface is still measured.
        st = sub.wait_doc("/status", lambda d: any(s.get("iface_found") is False for s in d.get("slots", [])),
                          timeout=10)
        self.assertIsNotNone(st, sub.describe())
        self.assertEqual([s["id"] for s in st[1]["slots"] if s.get("iface_found") is False], ["s0"])
        tele = telemetry(lambda d: all("net" not in s for s in d["slots"] if s["id"] == "s0"))
        s1 = [s for s in tele["slots"] if s["id"] == "s1"][0]
        self.assertIn("net", s1, "the other slot's interface must still be measured")
        self.assertIn("memory", tele, "the host is still sampled")
        # The agent runs on, serves sessions and reports what it lost.
        time.sleep(1)
        self.assertTrue(agent.alive())
        c = harness.ControlConn(self.sock())
        self.assertTrue(c.call("reserve", user="alice", slot="s1")["ok"])
        c.close()
        st = self.status()
        self.assertEqual(st["broker"]["state"], "connected")
        rc = agent.stop()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    harness.main()
