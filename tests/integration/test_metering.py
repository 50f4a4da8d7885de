#!/usr/bin/env python3
"""test_metering: billing records with real processes. Sessions, viewers, push and bytes make
signed records that arrive on .../metering and that render-agentctl verify accepts (signatures,
contiguous seq, hash chain); the broker is down for a minute while sessions churn and the agent is
kill -9'd several times: once the broker is back every record of every acknowledged session
arrives, seq is contiguous from 1 and the chain verifies, redeliveries carrying the same seq; bytes
reported while the agent is kill -9'd between reports are all in the minute records, once; a
spool that hits a file size limit raises an alarm, refuses new sessions, corrupts nothing, and
delivers everything once the limit is gone."""

import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import not_clock  # noqa: E402
from test_sessions import code  # noqa: E402

SLOTS = [{"id": "s0", "scale": "cpu-4"}, {"id": "s1", "scale": "cpu-8"}]
METERING = {"metering": {"window_s": 2, "late_s": 0}}
OUTAGE_S = float(os.environ.get("RA_OUTAGE_S", "60"))


def b64url_json(s):
    import base64
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


class Metering(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.lines = []

    def records(self, sub, unique=False):
        """(line, payload) of every record received so far; unique: one per seq (at least once
        delivery repeats records, with the same seq and bytes)."""
        out, seen = [], set()
        for _, topic, payload in sub.on("/metering"):
            p = b64url_json(json.loads(payload)["payload"])
            if unique and p["seq"] in seen:
                continue
            seen.add(p["seq"])
            out.append((payload, p))
        return out

    def verify(self, lines):
        """render-agentctl verify over the lines; returns (exit status, its JSON summary)."""
        path = self.env.path("records-%d.jws" % len(self.lines))
        self.lines.append(path)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = self.env.run([harness.ctl_binary(), "verify", "--json", "--cert", self.env.pki["client_cert"], path])
        try:
            return r.returncode, json.loads(r.stdout)
        except ValueError:
            raise AssertionError("verify printed no JSON (exit %d): %s %s" % (r.returncode, r.stdout, r.stderr))

    def status(self, sock):
        c = harness.ControlConn(sock)
        st = c.call("status")["status"]
        c.close()
        return st

    def up(self, sock):
        """The agent answers on its control socket (after a restart the old socket file may linger)."""
        try:
            return self.status(sock)
        except (OSError, ConnectionError):
            return None

    def start(self, cfg, wrapper=None):
        """An agent connected to the broker with its slots planned; (agent, control socket)."""
        agent = self.env.agent(cfg, wrapper=wrapper)
        agent.wait_connected()
        sock = self.env.path("agent.sock")
        harness.wait_for(lambda: all(s.get("conformant") for s in self.status(sock)["slots"]), 10,
                         what="slots planned")
        return agent, sock

    def test_records_are_signed_chained_and_verify(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        cfg = env.config(broker.port, slots=SLOTS, extra=METERING)
        agent, sock = self.start(cfg)
        c = harness.ControlConn(sock)
        sess = c.call("reserve", user="alice", client_ip="192.0.2.10")["session"]
        self.assertTrue(c.call("start", session=sess)["ok"])
        self.assertTrue(c.call("viewer_join", session=sess, viewer="vic", role="viewer")["ok"])
        r = c.call("report_bytes", session=sess, counters=[{"flow": "player", "bytes": 750000},
                                                          {"flow": "viewer", "peer": "vic", "bytes": 250000},
                                                          {"flow": "push", "peer": "rtmp-a", "bytes": 125000}])
        self.assertTrue(r["ok"], r)
        time.sleep(2.5)  # a whole 2 s concurrency window with alice in it
        self.assertTrue(c.call("end", session=sess, reason="user_quit")["ok"])
        c.close()
        # Stopping closes the open minute as a partial bandwidth_minute: every record is out.
        start = agent.line_count()
        agent.terminate(timeout=5)
        agent = env.agent(cfg)
        agent.wait_connected(start=0)
        want = {"session_start", "viewer_join", "push_start", "push_stop", "viewer_leave", "session_end",
                "concurrency_window", "bandwidth_minute"}
        harness.wait_for(lambda: want <= {p["type"] for _, p in self.records(sub)}, 15,
                         what="every record type (%s)" % sorted({p["type"] for _, p in self.records(sub)}))
        recs = self.records(sub, unique=True)
        by_type = {}
        for _, p in recs:
            by_type.setdefault(p["type"], []).append(p)
        for _, p in recs:
            self.assertEqual((p["v"], p["node"], p["region"]), (1, env.node, env.region))
            self.assertRegex(p["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        s0 = by_type["session_start"][0]
        self.assertEqual((s0["slot"], s0["scale"], s0["user"], s0["session"], s0["client_ip"]),
                         ("s0", "cpu-4", "alice", sess, "192.0.2.10"))
        end = by_type["session_end"][0]
        self.assertEqual((end["reason"], end["session"]), ("user_quit", sess))
        self.assertGreater(end["duration_s"], 2.0)
        self.assertEqual(by_type["push_start"][0]["target"], "rtmp-a")
        self.assertEqual(by_type["viewer_leave"][0]["reason"], "session_end")
        peaks = [w["peak"] for w in by_type["concurrency_window"]]
        self.assertIn(1, peaks)  # alice occupied a slot in some whole window
        bw = [m for m in by_type["bandwidth_minute"] if m["slot"] == "s0"]
        self.assertEqual(sum(m["player"]["bytes"] for m in bw), 750000)
        self.assertEqual(sum(m["viewers"]["bytes"] for m in bw), 250000)
        self.assertEqual(sum(m["push"]["bytes"] for m in bw), 125000)
        # Each minute record is alice's session's. Her end closed the minute she was in (session_end,
        # and partial: cut short). When a minute turned while she played (the 2.5 s above can span
        # one), that minute closed on its own before her end: no session_end, a minute before hers.
        end_minute = end["ts"][:17] + "00Z"
        ended = [m for m in bw if m["session_end"]]
        self.assertLessEqual(len(ended), 1, bw)
        for m in bw:
            self.assertEqual((m["session"], m["user"], m["scale"]), (sess, "alice", "cpu-4"), m)
            if m["session_end"]:
                self.assertTrue(m["partial"], m)
            else:
                self.assertLess(m["minute"], end_minute, m)
                self.assertTrue(all(m["seq"] < e["seq"] for e in ended), bw)
            for flow in ("player", "viewers", "push"):
                if m[flow]["bytes"] == 0:
                    self.assertNotIn("kbps", m[flow])
                    continue
                series = m[flow]["kbps"]  # kbit/s per wall-clock second of the minute
                self.assertEqual(len(series), 60)
                self.assertTrue(all(isinstance(x, int) and x >= 0 for x in series), series)
                bits = (m[flow]["bytes"] - m[flow]["late_bytes"]) * 8
                self.assertLessEqual(abs(sum(series) * 1000 - bits), 500 * 60, (flow, m))
                if m[flow]["late_bytes"] == 0:
                    self.assertEqual(max(series), round(m[flow]["peak_mbps"] * 1000), (flow, m))
        seqs_of = {p["type"]: p["seq"] for _, p in recs}
        self.assertLess(max(m["seq"] for m in bw), seqs_of["session_end"])
        # seq 1..N contiguous across the restart, the chain intact, every signature good.
        seqs = sorted({p["seq"] for _, p in recs})
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        rc, summary = self.verify([line for line, _ in recs])
        self.assertEqual(rc, 0, summary)

    def test_broker_outage_and_kill_9_lose_nothing(self):
        env = self.env
        broker = env.broker()
        cfg = env.config(broker.port, slots=SLOTS, extra=METERING)
        agent, sock = self.start(cfg)
        broker.stop()
        acked = set()  # sessions whose start and end the agent acknowledged
        kills = 0
        t_end = time.monotonic() + OUTAGE_S
        n = 0
        while time.monotonic() < t_end:
            try:
                c = harness.ControlConn(sock, timeout=5)
                for _ in range(5):
                    n += 1
                    user = "u%d" % n
                    r = c.call("reserve", user=user)
                    if not r["ok"]:
                        continue
                    s = r["session"]
                    if c.call("start", session=s)["ok"] and c.call("end", session=s, reason="churn")["ok"]:
                        acked.add(s)
                c.close()
            except (OSError, ConnectionError, ValueError):
                pass
            time.sleep(0.2)
            if time.monotonic() > t_end - OUTAGE_S + (kills + 1) * OUTAGE_S / 4 and kills < 3:
                agent.proc.kill()  # SIGKILL, while records wait in the spool for the broker
                kills += 1
                agent = env.agent(cfg)
                harness.wait_for(lambda: self.up(sock), 10, what="agent back")
        self.assertEqual(kills, 3)
        self.assertGreater(len(acked), 20)
        broker.restart()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        # A fresh agent connects at once (the one running may be deep in its reconnect backoff).
        agent.proc.kill()
        agent = env.agent(cfg)
        agent.wait_connected()
        st = None
        # The backlog goes out at metering.redeliver_per_s (default 50 a second).
        backlog = ((self.up(sock) or {}).get("metering") or {}).get("spool", {}).get("pending", 0)

        def delivered():
            nonlocal st
            st = (self.up(sock) or {}).get("metering")
            return st is not None and st["spool"]["pending"] == 0 and st["owed"] == 0 and st["next_seq"] > 1

        harness.wait_for(delivered, 30 + backlog / 50, what="spool drained")
        last = st["next_seq"] - 1
        harness.wait_for(lambda: len({p["seq"] for _, p in self.records(sub)}) >= last, 15,
                         what="%d records at the subscriber" % last)
        recs = self.records(sub)
        seqs = sorted({p["seq"] for _, p in recs})
        self.assertEqual(seqs, harness.seqs_through(seqs, last))
        started = {p["session"] for _, p in recs if p["type"] == "session_start"}
        ended = {p["session"] for _, p in recs if p["type"] == "session_end"}
        self.assertEqual(acked - started, set())
        self.assertEqual(acked - ended, set())
        # Redeliveries (at least once) carry the same seq and the same bytes: verify says so.
        rc, summary = self.verify([line for line, _ in recs])
        self.assertEqual(rc, 0, summary)
        # The backlog was signed ahead in the gaps between sessions, and the signatures outlived the
        # kills: the fresh agent published most of it from the cache (and verify took those too).
        self.assertGreater(st["signatures"]["from_cache"], last // 2, st["signatures"])

    def test_acknowledged_bytes_survive_kill_9_into_minute_records_once(self):
        """report_bytes while the agent is reloaded (its meter restarted) and kill -9'd six times:
        the bandwidth_minute records hold exactly the bytes the acknowledged reports moved (the
        counters of the last acknowledged report), none twice, each push target's apart as well as
        together; each push target is announced once."""
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        cfg = env.config(broker.port, slots=SLOTS, extra=METERING)
        agent, sock = self.start(cfg)
        c = harness.ControlConn(sock)
        sess = c.call("reserve", user="alice", slot="s0")["session"]
        self.assertTrue(c.call("start", session=sess)["ok"])
        self.assertTrue(c.call("viewer_join", session=sess, viewer="vic")["ok"])
        value = {"player": 0, "vic": 0, "rtmp-a": 0, "rtmp-b": 0}
        acked = dict(value)  # the counters of the last report the agent acknowledged
        reports = kills = 0

        def report():
            nonlocal acked, reports
            for k in value:
                value[k] += 40000 + 1000 * (reports % 7)
            value["rtmp-b"] -= 25000 - 300 * (reports % 5)  # another rate: a stream of its own
            req = [{"flow": "player", "bytes": value["player"]},
                   {"flow": "viewer", "peer": "vic", "bytes": value["vic"]},
                   {"flow": "push", "peer": "rtmp-a", "bytes": value["rtmp-a"]},
                   {"flow": "push", "peer": "rtmp-b", "bytes": value["rtmp-b"]}]
            try:
                r = c.call("report_bytes", session=sess, counters=req)
                self.assertTrue(r["ok"], r)
                acked = dict(value)
                reports += 1
                self.assertEqual(r["bytes"], {"player": acked["player"], "viewers": acked["vic"],
                                              "push": acked["rtmp-a"] + acked["rtmp-b"]})
            except (OSError, ConnectionError, ValueError):
                pass  # killed under the report: not acknowledged, its bytes come with the next one

        # A reload that restarts the meter (another window) makes the open minutes records: then a
        # kill must not bring their bytes back a second time.
        for _ in range(5):
            report()
        start = agent.line_count()
        env.config(broker.port, slots=SLOTS, extra={"metering": {"window_s": 4, "late_s": 0}})
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"notice: configuration reloaded", timeout=10, start=start)
        report()
        agent.proc.kill()
        agent = env.agent(cfg)
        harness.wait_for(lambda: self.up(sock), 10, what="agent back")
        c.close()
        c = harness.ControlConn(sock)
        next_kill = time.monotonic() + 3
        while kills < 5 or time.monotonic() < next_kill:  # reports go on after the last kill too
            report()
            time.sleep(0.05)
            if kills < 5 and time.monotonic() > next_kill:
                agent.proc.kill()  # SIGKILL, between (or during) reports
                kills += 1
                agent = env.agent(cfg)
                harness.wait_for(lambda: self.up(sock), 10, what="agent back")
                c.close()
                c = harness.ControlConn(sock)
                next_kill = time.monotonic() + 2 + kills % 3
        self.assertTrue(c.call("end", session=sess)["ok"])
        c.close()
        # Stopping makes the open minutes partial records; a fresh agent delivers what is left.
        agent.terminate(timeout=5)
        agent = env.agent(cfg)
        agent.wait_connected()
        st = None
        # The backlog goes out at metering.redeliver_per_s (default 50 a second).
        backlog = ((self.up(sock) or {}).get("metering") or {}).get("spool", {}).get("pending", 0)

        def delivered():
            nonlocal st
            st = (self.up(sock) or {}).get("metering")
            return st is not None and st["spool"]["pending"] == 0 and st["owed"] == 0
        harness.wait_for(delivered, 30 + backlog / 50, what="spool drained")
        last = st["next_seq"] - 1
        harness.wait_for(lambda: len({p["seq"] for _, p in self.records(sub)}) >= last, 15,
                         what="%d records at the subscriber" % last)
        recs = [p for _, p in self.records(sub, unique=True)]
        minutes = [p for p in recs if p["type"] == "bandwidth_minute" and p["slot"] == "s0"]
        billed = {f: sum(m[f]["bytes"] for m in minutes) for f in ("player", "viewers", "push")}
        for t in ("rtmp-a", "rtmp-b"):
            billed[t] = sum(m["push"]["targets"].get(t, {}).get("bytes", 0) for m in minutes)
        self.assertEqual(billed, {"player": acked["player"], "viewers": acked["vic"],
                                  "push": acked["rtmp-a"] + acked["rtmp-b"], "rtmp-a": acked["rtmp-a"],
                                  "rtmp-b": acked["rtmp-b"]},
                         "%d reports acknowledged, %d kills" % (reports, kills))
        for m in minutes:  # every record: the targets are the push flow, to the byte
            targets = m["push"]["targets"]
            self.assertEqual(sum(t["bytes"] for t in targets.values()), m["push"]["bytes"], m)
            self.assertEqual(sum(t["late_bytes"] for t in targets.values()), m["push"]["late_bytes"], m)
        pushes = [p for p in recs if p["type"] in ("push_start", "push_stop")]
        self.assertEqual(sorted((p["type"], p["target"]) for p in pushes),
                         [("push_start", "rtmp-a"), ("push_start", "rtmp-b"), ("push_stop", "rtmp-a"),
                          ("push_stop", "rtmp-b")], pushes)
        seqs = sorted(p["seq"] for p in recs)
        self.assertEqual(seqs, harness.seqs_through(seqs, last))
        rc, summary = self.verify([line for line, _ in self.records(sub, unique=True)])
        self.assertEqual(rc, 0, summary)

    def test_spool_at_a_file_size_limit_fails_closed_and_loses_nothing(self):
        env = self.env
        broker = env.broker()
        events = env.subscriber(broker, topic=env.topic("events"), qos=1)
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        # Thousands of records made in seconds: at the default pace (50 a second) their delivery
        # would take over a minute; pacing has its own test (test_reconnect_storm), this one is
        # about the size limit, so the cap is lifted.
        extra = {"metering": dict(METERING["metering"], redeliver_per_s=0)}
        cfg = env.config(broker.port, slots=SLOTS, extra=extra)
        # No file may grow past 800 kB: the slot state (two 260 KiB regions) fits, a spool segment
        # (they roll over at 4 MiB) takes ~2,000 records, then every append gets EFBIG; acks do not
        # make room in the segment being written.
        agent, sock = self.start(cfg, wrapper=["prlimit", "--fsize=800000:unlimited"])
        c = harness.ControlConn(sock)
        refused = None
        acked = set()
        for i in range(5000):
            r = c.call("reserve", user="f%d" % i, slot="s0")
            if r["ok"]:
                s = r["session"]
                # The spool may fill between the reserve and the start: the start is refused then,
                # and the reservation given back is no session (no records, nothing acknowledged).
                r = c.call("start", session=s)
                if not r["ok"]:
                    self.assertTrue(c.call("end", session=s)["ok"])
            if not r["ok"]:
                refused = r
                break
            if c.call("end", session=s)["ok"]:
                acked.add(s)
        self.assertIsNotNone(refused, "the spool never filled")
        self.assertEqual(code(refused), "NO_IDLE")
        self.assertIn("cannot be spooled", refused["error"]["message"], refused)
        st = self.status(sock)["metering"]
        self.assertIn("cannot be spooled", st["refusing_sessions"])
        self.assertTrue(st["spool"]["full"])
        self.assertGreater(st["owed"], 0)
        alarm = events.wait_doc("/events", lambda d: d.get("event") == "metering_alarm" and not_clock(d), timeout=10)
        self.assertIsNotNone(alarm, events.describe())
        self.assertEqual(alarm[1]["alarm"], "spool_full")
        self.assertIn("File too large", alarm[1]["message"])
        # The limit goes: the records that waited move into the spool, sessions are admitted again.
        r = env.run(["prlimit", "--pid", str(agent.pid), "--fsize=unlimited:unlimited"])
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_for(lambda: "refusing_sessions" not in self.status(sock)["metering"], 10,
                         what="sessions admitted again")
        c.close()
        c = harness.ControlConn(sock)
        self.assertTrue(c.call("reserve", user="after", slot="s0")["ok"])
        c.close()
        harness.wait_for(lambda: self.status(sock)["metering"]["spool"]["pending"] == 0 and
                         self.status(sock)["metering"]["owed"] == 0, 30, what="drained")
        last = self.status(sock)["metering"]["next_seq"] - 1
        harness.wait_for(lambda: len({p["seq"] for _, p in self.records(sub)}) >= last, 15, what="all records")
        recs = self.records(sub)
        seqs = sorted({p["seq"] for _, p in recs})
        self.assertEqual(seqs, harness.seqs_through(seqs, last))
        started = {p["session"] for _, p in recs if p["type"] == "session_start"}
        ended = {p["session"] for _, p in recs if p["type"] == "session_end"}
        self.assertEqual(acked - started, set())
        self.assertEqual(acked - ended, set())
        self.assertEqual(self.status(sock)["metering"]["lost"], 0)
        rc, summary = self.verify([line for line, _ in recs])
        self.assertEqual(rc, 0, summary)


    def test_a_session_reserved_for_a_project_carries_it_into_its_records(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        slots = [{"id": "s0", "scale": "cpu-4"}, {"id": "s1", "scale": "cpu-8", "project": "zeta"}]
        agent, sock = self.start(env.config(broker.port, slots=slots, extra=METERING))
        ctl = [harness.ctl_binary(), "--socket", sock]
        r = env.run(ctl + ["reserve", "alice", "--project", "acme", "--app", "racer", "--slot", "s1"])
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("FORBIDDEN: slot s1 is bound to project zeta; project acme cannot use it", r.stderr)
        r = env.run(ctl + ["reserve", "alice", "--project", "acme", "--app", "racer"])
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout, r"^reserve: slot s0 is reserved, user alice, session [0-9a-f]{32}, "
                                   r"project acme, app racer")
        self.assertEqual(env.run(ctl + ["start", "--user", "alice"]).returncode, 0)
        c = harness.ControlConn(sock)
        bob = c.call("reserve", user="bob")  # no project: the bound slot's
        self.assertEqual((bob["slot"], bob["project"]), ("s1", "zeta"), bob)
        self.assertTrue(c.call("start", user="bob")["ok"])
        time.sleep(2.5)  # a whole 2 s concurrency window with both in it
        for user in ("alice", "bob"):
            self.assertTrue(c.call("end", user=user, reason="user_quit")["ok"])
        c.close()

        def ends():
            return [p for _, p in self.records(sub, unique=True) if p["type"] == "session_end"]
        harness.wait_for(lambda: len(ends()) == 2, 15, what="both session_end records")
        by_type = {}
        for _, p in self.records(sub, unique=True):
            by_type.setdefault(p["type"], []).append(p)
        starts = {p["user"]: p for p in by_type["session_start"]}
        self.assertEqual((starts["alice"]["project"], starts["alice"]["app"]), ("acme", "racer"))
        self.assertEqual(starts["bob"]["project"], "zeta")
        self.assertNotIn("app", starts["bob"])
        self.assertEqual({(p["user"], p["project"]) for p in ends()}, {("alice", "acme"), ("bob", "zeta")})
        # Some whole window had both: each project's peak in its slot's scale.
        both = [w for w in by_type.get("concurrency_window", []) if len(w["by_project"]) == 2]
        self.assertTrue(both, by_type.get("concurrency_window"))
        self.assertEqual(both[0]["by_project"]["acme"]["cpu-4"]["peak"], 1)
        self.assertEqual(both[0]["by_project"]["zeta"]["cpu-8"]["peak"], 1)
        agent.terminate(timeout=5)

if __name__ == "__main__":
    harness.main()
