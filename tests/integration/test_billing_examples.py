#!/usr/bin/env python3
"""test_billing_examples: the pricing's three examples rebuilt from records real agents published
(docs/metering.md, "Worked example: the pricing's three examples from published records").

Two real agents (node-a, node-b: 40 slots each, so 74 sessions need both), a real mosquitto (TLS,
MQTT 5) and the consumer of tests/jose/consumer.mjs (MQTT.js, each record fsync'ed to a file before
its PUBACK) subscribed to both nodes' metering topics. Over the control sockets:

  1. hourly peak 74: project acme runs 25, then 10, then 74 sessions across the two nodes, in one
     60 s window (the hour in thirds, in scaled time), while project zeta runs 4 sessions on node-a,
     then 6 on node-b (its true peak 6; its nodes' window peaks add up to 10);
  2. host exclusion: an acme host plays at 5 Mbit/s with 2 joined viewers at 5 Mbit/s each: 10 billed;
     a viewer-flow report naming the host is refused;
  3. the month's fee: acme's viewers peak at 10, 80, 70, 75 and 60 Mbit/s on five UTC days (each of
     days 2..5 summed from both nodes in the same seconds), zeta's at 4 (and its push at 8) the same
     seconds: 295 / 31 x 12.67 = 120.569 USD for acme.

The agents' wall clock is moved to those days with tests/integration/fake_clock.c (LD_PRELOAD: the
wall clock only, by whole seconds; monotonic clocks and timers untouched; docs/metering.md "Clock
steps" says how the agent takes a step). Bytes are reported in bursts that lie inside one wall-clock
second (a report that moves nothing, then one with a second's bytes ~0.4 s later), so each burst puts
exactly its bytes into that second; bursts are 2 s apart, so a burst that slips into the next second
cannot add to another, and each day repeats until one burst was seen whole.

Then scripts/bill reads the consumer's file and must print: acme's hour peak 74 (zeta's 6), day 1's
viewers 10 Mbit/s (the player's 5 apart), the five daily peaks, and 120.569 USD. render-agentctl verify
checks each node's records first. A second class checks scripts/bill itself on records written by
hand: exact peaks across nodes, ties at one instant, carried occupancy, and its errors.
"""

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_faults_link import fake_clock_library  # noqa: E402
from test_jose import jose_dir  # noqa: E402
from test_sessions import code  # noqa: E402

BILL = os.path.join(harness.SOURCE_DIR, "scripts", "bill")
NODES = ("node-a", "node-b")
SLOTS_PER_NODE = 40
PRICE, DAYS = "12.67", 31
DAY_OFFSETS = (1, 3, 8, 15, 22)  # days from today: inside the test certificates' 30 days
# Viewers' Mbit/s per day: node-a's share + node-b's (day 1 is the host example, on node-a only).
ACME_VIEWERS = ((10, 0), (50, 30), (40, 30), (45, 30), (30, 30))
ZETA_VIEWER_MBPS, ZETA_PUSH_MBPS = 4, 8
BURST_TRIES = 6


def bytes_per_s(mbps):
    """Bytes in one second at mbps Mbit/s (whole: the rates here are multiples of 8 kbit/s)."""
    return int(round(mbps * 125000))


def payload_of(stored_line):
    """The record of one line of the consumer's file (a stored PUBLISH of a flattened JWS)."""
    b64 = json.loads(json.loads(stored_line)["payload"])["payload"]
    return json.loads(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))


def epoch(d, hour=10):
    return int(datetime.datetime(d.year, d.month, d.day, hour, tzinfo=datetime.timezone.utc).timestamp())


def run_bill(*args, stdin=None):
    return subprocess.run([sys.executable, BILL] + list(args), input=stdin, capture_output=True, text=True,
                          timeout=60)


class Node:
    """One agent: its config, control connection and sessions."""

    def __init__(self, name, agent, sock):
        self.name, self.agent, self.sock = name, agent, sock
        self.c = harness.ControlConn(sock, timeout=20)

    def close(self):
        self.c.close()

    def call(self, op, **kw):
        return self.c.call(op, **kw)

    def must(self, op, **kw):
        r = self.c.call(op, **kw)
        if not r["ok"]:
            raise AssertionError("%s: %s %s refused: %s" % (self.name, op, kw, r))
        return r

    def open(self, users, project):
        """reserve + start for each user; returns their sessions."""
        out = []
        for u in users:
            s = self.must("reserve", user=u, project=project)["session"]
            self.must("start", session=s)
            out.append(s)
        return out

    def end(self, sessions):
        for s in sessions:
            self.must("end", session=s, reason="done")


class Stream:
    """A session whose streaming process reports bytes: player, viewers, push targets."""

    def __init__(self, node, session, rates):
        self.node, self.session = node, session
        self.rates = rates  # {(flow, peer or None): Mbit/s}
        self.counters = {k: 0 for k in rates}

    def report(self, advance):
        if advance:
            for k, mbps in self.rates.items():
                self.counters[k] += bytes_per_s(mbps)
        counters = [dict(flow=f, bytes=v, **({"peer": p} if p else {})) for (f, p), v in self.counters.items()]
        self.node.must("report_bytes", session=self.session, counters=counters)


class BillingExamples(harness.IntegrationTest):

    def make_root(self):
        """x86-cpu's captured host with 48 cores, so that 40 1-vCPU slots meet their scale."""
        return harness.host_root(self.env.path("root"), 48)

    def set_clock(self, agent_epoch_at, real_at):
        """Moves the agents' wall clock (whole seconds) so that it reads agent_epoch_at when the
        real clock reads real_at."""
        harness.write_atomic(self.clock, "%+d\n" % (agent_epoch_at - real_at))

    def status(self, node):
        c = harness.ControlConn(node.sock, timeout=10)
        try:
            return c.call("status")["status"]
        finally:
            c.close()

    def burst(self, streams):
        """Puts one second's bytes of every stream into one wall-clock second; True when it was seen
        to fit in it (every report sent and answered between .12 and .88 of that second)."""
        s = int(time.time()) + 1
        time.sleep(max(0.0, s + 0.15 - time.time()))
        t0 = time.time()
        for st in streams:
            st.report(False)  # moves nothing: the next report's bytes are spread from here
        for st in streams:
            st.report(True)
        t1 = time.time()
        time.sleep(max(0.0, s + 2 - time.time()))  # the next burst is 2 s on: no second shared
        return int(t0) == s and t0 - s >= 0.12 and t1 - s <= 0.88

    def bursts(self, streams, what):
        for _ in range(BURST_TRIES):
            if self.burst(streams):
                return
        self.fail("%s: no burst of reports fitted in one second in %d tries (machine too busy)" % (what, BURST_TRIES))

    def test_the_pricing_examples_come_out_of_published_records(self):
        env = self.env
        lib = fake_clock_library()
        if not lib:
            self.fail("RA_FAKE_CLOCK (tests/integration/fake_clock.c, built) is not set")
        today = datetime.datetime.now(datetime.timezone.utc).date()
        days = [today + datetime.timedelta(days=k) for k in DAY_OFFSETS]
        self.clock = env.path("clock")
        self.set_clock(epoch(days[0]) - 600, int(time.time()))  # day 1, 09:50, until the first phase
        jose = jose_dir()
        shutil.copy(os.path.join(harness.SOURCE_DIR, "tests", "jose", "consumer.mjs"), jose)
        broker = env.broker()
        out = env.path("consumer.jsonl")
        consumer = harness.Proc(env, "consumer", [
            "node", os.path.join(jose, "consumer.mjs"), "--url", "mqtts://localhost:%d" % broker.port,
            "--ca", env.pki["ca"], "--cert", env.pki["client_cert"], "--key", env.pki["client_key"],
            "--client-id", "billing-examples-%d" % os.getpid(), "--topic", "render/v1/%s/+/metering" % env.region,
            "--out", out])
        if not harness.wait_for(lambda: "subscribed" in consumer.stdout() or not consumer.alive(), 20) or \
                "subscribed" not in consumer.stdout():
            self.fail("the consumer did not subscribe:\n%s\n%s" % (consumer.stdout(), consumer.stderr()))
        root = self.make_root()
        nodes, certs = {}, {}
        for name in NODES:
            cert, key = env.client_cert(name, name)
            certs[name] = cert
            sock = env.path(name + ".sock")
            cfg = env.config(broker.port, name=name + ".json", interval_ms=1000, cert=cert, key=key,
                             slots=[{"id": "s%d" % i, "scale": "cpu-4"} for i in range(SLOTS_PER_NODE)],
                             extra={"node": {"id": name, "region": env.region}, "state_dir": env.path(name + "-state"),
                                    "control": {"socket": sock}, "metering": {"window_s": 60},
                                    "scales": {"cpu-4": {"vcpu": 1, "ram_gb": 1}}})
            agent = env.agent(cfg, args=["--root", root], extra_env={
                "LD_PRELOAD": lib, "RA_FAKE_CLOCK_FILE": self.clock,
                # fake_clock is built without sanitizers, so it comes before ASan's runtime: allowed.
                "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:verify_asan_link_order=0"})
            agent.wait_connected()
            nodes[name] = agent, sock
        for name, (agent, sock) in nodes.items():
            nodes[name] = Node(name, agent, sock)
            self.addCleanup(nodes[name].close)
            if not harness.wait_for(lambda: all(s.get("conformant") for s in self.status(nodes[name])["slots"]), 15):
                self.fail("%s: not every slot meets its scale: %s" % (name, self.status(nodes[name])["slots"]))
        a, b = nodes["node-a"], nodes["node-b"]

        # 1. Day 1, 10:00: the hour in thirds, 25, 10, 74 (2 s each, scaled), in one 60 s window.
        t = int(time.time()) + 2
        self.set_clock(epoch(days[0]), t)
        time.sleep(max(0.0, t + 0.2 - time.time()))
        t_phase = time.time()
        acme_a = a.open(["a%02d" % i for i in range(13)], "acme")
        acme_b = b.open(["b%02d" % i for i in range(12)], "acme")
        zeta_a = a.open(["za%d" % i for i in range(4)], "zeta")
        time.sleep(2)
        a.end(acme_a[5:])  # 10 acme sessions left
        b.end(acme_b[5:])
        a.end(zeta_a)
        acme_a, acme_b = acme_a[:5], acme_b[:5]
        time.sleep(2)
        zeta_b = b.open(["zb%d" % i for i in range(6)], "zeta")
        acme_a += a.open(["a%02d" % i for i in range(13, 48)], "acme")  # 40 on node-a
        acme_b += b.open(["b%02d" % i for i in range(12, 41)], "acme")  # 34 on node-b
        self.assertEqual(len(acme_a) + len(acme_b), 74)
        time.sleep(2)
        a.end(acme_a)
        b.end(acme_b)
        b.end(zeta_b)
        self.assertLess(time.time() - t_phase, 55, "the three thirds did not fit in one 60 s window")

        # 2. Day 1: the host example. The host's own stream is the player flow; a viewer flow naming
        # the host is refused and counts nothing.
        s = a.open(["host1"], "acme")[0]
        for v in ("viewer1", "viewer2"):
            a.must("viewer_join", session=s, viewer=v)
        r = a.call("report_bytes", session=s, counters=[{"flow": "viewer", "peer": "host1", "bytes": 10 ** 6}])
        self.assertEqual(code(r), "BAD_REQUEST", r)
        self.assertIn("host", r["error"]["message"])
        host = Stream(a, s, {("player", None): 5, ("viewer", "viewer1"): 5, ("viewer", "viewer2"): 5})
        self.bursts([host], "day 1")
        a.end([s])

        # 3. Days 2..5: acme's viewers on both nodes in the same seconds; zeta beside them on node-b.
        for k in range(1, 5):
            t = int(time.time()) + 2
            self.set_clock(epoch(days[k]), t)
            time.sleep(max(0.0, t + 0.3 - time.time()))
            share_a, share_b = ACME_VIEWERS[k]
            streams = []
            for node, share, user in ((a, share_a, "ha%d" % k), (b, share_b, "hb%d" % k)):
                s = node.open([user], "acme")[0]
                for v in ("v1", "v2"):
                    node.must("viewer_join", session=s, viewer=v)
                streams.append(Stream(node, s, {("player", None): 5, ("viewer", "v1"): share / 2,
                                                ("viewer", "v2"): share / 2}))
            s = b.open(["z%d" % k], "zeta")[0]
            b.must("viewer_join", session=s, viewer="zv")
            streams.append(Stream(b, s, {("player", None): 5, ("viewer", "zv"): ZETA_VIEWER_MBPS,
                                         ("push", "rtmp-z"): ZETA_PUSH_MBPS}))
            self.bursts(streams, "day %d" % (k + 1))
            for st in streams:
                st.node.end([st.session])
        # Two minutes on, so the last windows close (a forward step closes the open one).
        self.set_clock(epoch(days[4]) + 180, int(time.time()))
        time.sleep(2.5)

        # Every record of both nodes at the consumer, then verify and bill.
        last = {}
        for name, node in nodes.items():
            def drained():
                m = self.status(node)["metering"]
                return m["spool"]["pending"] == 0 and m["in_flight"] == 0 and m["owed"] == 0 and m["next_seq"] - 1
            last[name] = harness.wait_for(drained, 30, interval=0.2)
            self.assertTrue(last[name], "%s: metering did not drain" % name)

        def received():
            have = {}
            for line in harness.read_text(out).splitlines():
                try:
                    p = payload_of(line)
                except (ValueError, KeyError):
                    continue  # a line torn by a kill: none here
                have.setdefault(p["node"], set()).add(p["seq"])
            return all(set(range(1, last[n] + 1)) <= have.get(n, set()) for n in NODES)
        self.assertTrue(harness.wait_for(received, 30, interval=0.3), "the consumer did not get every record")
        for name in NODES:
            path = env.path(name + ".jws")
            with open(path, "w") as f:
                for line in harness.read_text(out).splitlines():
                    if payload_of(line)["node"] == name:
                        f.write(json.loads(line)["payload"] + "\n")
            r = env.run([harness.ctl_binary(), "verify", "--cert", certs[name], path])
            self.assertEqual(r.returncode, 0, "%s: verify: %s%s" % (name, r.stdout, r.stderr))

        r = run_bill("--price", PRICE, "--days", str(DAYS), "--from", days[0].isoformat(), out)
        print(r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run_bill("--json", "--price", PRICE, "--days", str(DAYS), "--from", days[0].isoformat(), out)
        self.assertEqual(r.returncode, 0, r.stderr)
        bill = json.loads(r.stdout)
        acme, zeta = bill["projects"]["acme"], bill["projects"]["zeta"]
        hour1 = days[0].isoformat() + "T10:00Z"
        h = {x["hour"]: x for x in acme["hours"]}[hour1]
        self.assertEqual((h["peak"], h["nodes"]), (74, list(NODES)), h)
        self.assertEqual(h["windows"]["window_sum"], 74, h)  # 40 + 34, at one time
        h = {x["hour"]: x for x in zeta["hours"]}[hour1]
        self.assertEqual(h["peak"], 6, h)  # never 4 + 6: node-a's 4 had ended
        self.assertEqual(h["windows"]["window_sum"], 10, h)
        for d in days[1:]:
            h = {x["hour"]: x for x in zeta["hours"]}[d.isoformat() + "T10:00Z"]
            self.assertEqual((h["peak"], h["nodes"], h["windows"]["status"]), (1, ["node-b"], "agrees"), h)
        got = {x["day"]: x for x in acme["days"]}
        self.assertEqual(sorted(got), [d.isoformat() for d in days])
        self.assertEqual(got[days[0].isoformat()]["player"]["peak_mbps"], "5.000")  # the host, not billed
        self.assertEqual([got[d.isoformat()]["viewers"]["peak_mbps"] for d in days],
                         ["10.000", "80.000", "70.000", "75.000", "60.000"])
        self.assertTrue(all(got[d.isoformat()]["push"]["peak_kbps"] == 0 for d in days))
        period = acme["periods"][0]
        self.assertEqual((period["days"], period["viewers"]["sum_of_daily_peaks_mbps"], period["viewers"]["fee"]),
                         (31, "295.000", "120.569"), period)
        got = {x["day"]: x for x in zeta["days"]}
        self.assertEqual([(got[d.isoformat()]["viewers"]["peak_mbps"], got[d.isoformat()]["push"]["peak_mbps"])
                          for d in days[1:]], [("4.000", "8.000")] * 4)


# --------------------------------------------------------------------------------------------
# scripts/bill on records written by hand


def rec(node, seq, typ, ts, **kw):
    return dict(v=1, type=typ, node=node, region="r", seq=seq, prev="0" * 64, ts=ts, **kw)


def session(node, seq, sid, project, started, ended):
    return [rec(node, seq, "session_start", started, session=sid, project=project, started=started),
            rec(node, seq + 1, "session_end", ended, session=sid, project=project, started=started, ended=ended)]


def minute(node, seq, project, at, flow, kbps_at):
    kbps = [0] * 60
    for k, v in kbps_at.items():
        kbps[k] = v
    return rec(node, seq, "bandwidth_minute", at, minute=at, project=project, session="x",
               **{flow: {"bytes": sum(kbps) * 125, "peak_mbps": max(kbps) / 1000, "late_bytes": 0, "kbps": kbps}})


class BillTool(unittest.TestCase):
    def bill(self, records, *args, raw=None):
        text = raw if raw is not None else "".join(json.dumps(r) + "\n" for r in records)
        r = run_bill("--json", *args, "-", stdin=text)
        return r.returncode, (json.loads(r.stdout) if r.returncode in (0, 1) else None), r.stderr

    def hours(self, doc, project):
        return {h["hour"][11:16]: h["peak"] for h in doc["projects"][project]["hours"]}

    def test_concurrency_is_simultaneous_sessions_across_nodes_not_a_sum_of_node_peaks(self):
        recs = (session("x", 1, "s1", "p", "2027-03-01T10:00:00.000Z", "2027-03-01T10:10:00.000Z") +
                session("y", 1, "s2", "p", "2027-03-01T10:20:00.000Z", "2027-03-01T10:30:00.000Z") +
                session("y", 3, "s3", "p", "2027-03-01T10:25:00.000Z", "2027-03-01T10:26:00.000Z"))
        rc, doc, err = self.bill(recs)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hours(doc, "p"), {"10:00": 2})

    def test_a_handover_at_one_instant_counts_once_and_an_instant_session_counts(self):
        recs = (session("x", 1, "s1", "p", "2027-03-01T10:00:00.000Z", "2027-03-01T10:05:00.000Z") +
                session("x", 3, "s2", "p", "2027-03-01T10:05:00.000Z", "2027-03-01T10:06:00.000Z") +
                session("x", 5, "s3", "q", "2027-03-01T10:07:00.000Z", "2027-03-01T10:07:00.000Z"))
        rc, doc, err = self.bill(recs)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hours(doc, "p"), {"10:00": 1})
        self.assertEqual(self.hours(doc, "q"), {"10:00": 1})

    def test_occupancy_is_carried_through_hours_and_a_session_ending_on_the_hour_is_not_in_the_next(self):
        recs = (session("x", 1, "s1", "p", "2027-03-01T09:30:00.000Z", "2027-03-01T12:00:00.000Z") +
                session("x", 3, "s2", "p", "2027-03-01T09:40:00.000Z", "2027-03-01T11:00:00.000Z"))
        rc, doc, err = self.bill(recs)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.hours(doc, "p"), {"09:00": 2, "10:00": 2, "11:00": 1})

    def test_daily_peaks_sum_nodes_second_by_second_and_the_fee_counts_days_without_traffic_as_zero(self):
        recs, n = [], 0
        for day, (x, y) in zip((1, 2, 3, 4, 5), ((10000, 0), (50000, 30000), (40000, 30000), (45000, 30000),
                                                 (30000, 30000))):
            at = "2027-03-%02dT10:00:00Z" % day
            n += 1
            recs.append(minute("x", n, "p", at, "viewers", {17: x, 18: 5000}))
            recs.append(minute("y", n, "p", at, "viewers", {17: y, 19: 60000}) if y else
                        minute("y", n, "p", at, "player", {17: 99000}))
            recs.append(minute("z", n, "other", at, "viewers", {17: 500000}))
        rc, doc, err = self.bill(recs, "--price", "12.67")  # March: 31 days
        self.assertEqual(rc, 0, err)
        p = doc["projects"]["p"]
        self.assertEqual([d["viewers"]["peak_mbps"] for d in p["days"]],
                         ["10.000", "80.000", "70.000", "75.000", "60.000"])
        self.assertEqual(p["periods"][0]["viewers"]["fee"], "120.569")
        self.assertEqual(p["periods"][0]["period"], "2027-03")

    def test_duplicates_count_once_and_every_input_form_is_read(self):
        import base64

        def b64(b):
            return base64.urlsafe_b64encode(b).decode().rstrip("=")
        r1 = rec("x", 1, "session_start", "2027-03-01T10:00:00.000Z", session="s1", project="p",
                 started="2027-03-01T10:00:00.000Z")
        payload = json.dumps(r1).encode()
        jws = {"protected": b64(b'{"alg":"ES256","kid":"k"}'), "payload": b64(payload), "signature": "c2ln"}
        lines = [json.dumps(jws), "%s.%s.%s" % (jws["protected"], jws["payload"], "c2ln"),
                 json.dumps({"recv_ms": 1, "topic": "render/v1/r/x/metering", "payload": json.dumps(jws)}),
                 json.dumps({"recv_ms": 1, "topic": "render/v1/r/x/events", "payload": "{}"}), ""]
        rc, doc, err = self.bill(None, raw="\n".join(lines) + "\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual((doc["records"]["records"], doc["records"]["duplicates"], doc["records"]["skipped"]),
                         (1, 2, 1))
        self.assertIn("no session_end", err)

    def test_bad_input_is_refused_naming_the_line(self):
        good = json.dumps(rec("x", 1, "session_start", "2027-03-01T10:00:00.000Z", session="s1",
                              started="2027-03-01T10:00:00.000Z"))
        for bad, want in (("not a record", "<stdin>:2: not JSON and not a compact JWS"),
                          (json.dumps(rec("x", 2, "session_start", "yesterday")), "<stdin>:2: payload ts"),
                          (json.dumps({k: v for k, v in rec("x", 2, "t", "2027-03-01T10:00:00Z").items()
                                       if k != "seq"}), "<stdin>:2: not a record"),
                          (json.dumps(dict(json.loads(good), project="zz")), "<stdin>:2: node x seq 1: another "
                                                                             "payload than the one at <stdin>:1"),
                          (json.dumps(dict(minute("x", 2, "p", "2027-03-01T10:00:00Z", "viewers", {}),
                                           viewers={"bytes": 1, "kbps": [1] * 59})),
                           "<stdin>:2: viewers.kbps: want 60 whole numbers")):
            rc, _, err = self.bill(None, raw=good + "\n" + bad + "\n")
            self.assertEqual(rc, 2, err)
            self.assertIn(want, err)

    def test_records_on_an_unsynchronised_clock_are_noted_or_with_the_option_fail(self):
        at = "2027-03-01T10:00:00Z"
        recs = [dict(minute("x", 1, "p", at, "viewers", {3: 1000}), clock_synced=True, clock_est_error_us=200),
                dict(minute("x", 2, "p", "2027-03-01T10:01:00Z", "viewers", {3: 3000}), clock_synced=False,
                     clock_est_error_us=1500000),
                dict(minute("y", 1, "p", at, "viewers", {3: 1000}), clock_synced=True)]
        rc, doc, err = self.bill(recs)
        self.assertEqual(rc, 0, err)
        self.assertIn("node x: 1 of 2 window and minute record(s) were made on a clock the kernel did not call "
                      "synchronised (clock_synced: false; worst estimated error 1500.000 ms)", err)
        self.assertNotIn("node y:", err)
        self.assertEqual(doc["records"]["nodes"]["x"]["clock_unsynced"], 1)
        self.assertEqual(doc["projects"]["p"]["days"][0]["viewers"]["peak_mbps"], "3.000")  # still billed
        rc, doc, err = self.bill(recs, "--require-synced-clock")
        self.assertEqual(rc, 1, err)
        self.assertIn("check failed: node x: 1 of 2", err)
        rc, _, err = self.bill(None, raw=json.dumps(dict(recs[0], clock_synced="yes")) + "\n")
        self.assertEqual(rc, 2, err)
        self.assertIn("<stdin>:1: clock_synced: want true or false", err)

    def test_a_seq_gap_is_a_failed_check(self):
        recs = [rec("x", 1, "t", "2027-03-01T10:00:00.000Z"), rec("x", 3, "t", "2027-03-01T10:00:01.000Z")]
        rc, doc, err = self.bill(recs)
        self.assertEqual(rc, 1, err)
        self.assertIn("node x: 1 seq(s) missing between 1 and 3", err)


if __name__ == "__main__":
    harness.main()
