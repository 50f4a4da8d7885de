#!/usr/bin/env python3
"""test_faults_link: faults between the agent and its broker, each with its outcome checked on the
billing stream (docs/reliability.md). A broker that hangs (SIGSTOP) while sessions churn: keepalive
notices, the agent reconnects once it runs again, and every record arrives; a slow broker (a TCP
proxy: 300 ms each way, 16 KiB/s): records still arrive, seq contiguous, no reconnect, and session ops
are not slowed down; the client certificate rotated on disk + SIGHUP: the agent reconnects with
it, the records' kid changes, and old and new records each verify with their own certificate; an
expired client certificate: the broker refuses, the agent says why and keeps every record until a
valid certificate comes. FaultTest (no tests of its own) is the helper test_faults_state.py uses."""

import base64
import hashlib
import json
import os
import queue
import random
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SLOTS = [{"id": "s0", "scale": "cpu-4"}, {"id": "s1", "scale": "cpu-8"}]
METERING = {"metering": {"window_s": 2, "late_s": 0}}


def fake_clock_library():
    """tests/integration/fake_clock.c built as a preload library, or "" (RA_FAKE_CLOCK from ctest)."""
    return harness.preload_library("RA_FAKE_CLOCK", "libfake_clock.so")


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def decode(line):
    """(protected header, payload bytes, payload) of one JWS line from .../metering."""
    jws = json.loads(line)
    raw = b64url(jws["payload"])
    return json.loads(b64url(jws["protected"])), raw, json.loads(raw)


class FaultTest(harness.IntegrationTest):
    """Helpers: an agent with metering on a 2 s window, session churn over the control socket, and
    the checks that make "nothing billable lost" precise on what the subscriber received."""

    def sock(self):
        return self.env.path("agent.sock")

    def status(self, timeout=5.0):
        """The agent's status document, or None while it does not answer (restarting, killed)."""
        try:
            c = harness.ControlConn(self.sock(), timeout=timeout)
            try:
                return c.call("status")["status"]
            finally:
                c.close()
        except (OSError, ConnectionError, ValueError, KeyError):
            return None

    def config(self, port, slots=None, extra=None, **kw):
        doc = dict(METERING)
        doc.update(extra or {})
        return self.env.config(port, slots=slots or SLOTS, extra=doc, **kw)

    def start(self, cfg, connected=True, **kw):
        """An agent on cfg whose slots are planned (admissible); connected: wait for the broker."""
        agent = self.env.agent(cfg, **kw)
        if connected:
            agent.wait_connected()
        harness.wait_for(lambda: all(s.get("conformant") for s in (self.status() or {"slots": [{}]})["slots"]),
                         15, what="slots planned")
        return agent

    def churn(self, n, prefix, acked=None):
        """n sessions through reserve/start/end; returns {session: user} of those whose start and
        end were both acknowledged (added to acked when given)."""
        acked = {} if acked is None else acked
        c = harness.ControlConn(self.sock(), timeout=10)
        try:
            for i in range(n):
                user = "%s%d" % (prefix, i)
                r = c.call("reserve", user=user)
                if not r["ok"]:
                    continue
                s = r["session"]
                if c.call("start", session=s)["ok"] and c.call("end", session=s, reason="churn")["ok"]:
                    acked[s] = user
        finally:
            c.close()
        return acked

    def drained(self, timeout=40):
        """Waits until every record made is acknowledged by the broker; returns the last seq."""
        st = {}

        def done():
            s = self.status()
            if not s or "metering" not in s:
                return None
            st.update(s["metering"])
            return st["spool"]["pending"] == 0 and st["in_flight"] == 0 and st["owed"] == 0
        if not harness.wait_for(done, timeout, interval=0.2):
            raise AssertionError("metering did not drain within %d s: %s" % (timeout, st))
        return st["next_seq"] - 1

    def records(self, sub):
        """{seq: (line, header, payload)} received; a redelivery must be byte for byte the record
        already received (at least once, never two versions of one seq)."""
        out = {}
        for _, _, line in sub.on("/metering"):
            hdr, raw, p = decode(line)
            prev = out.get(p["seq"])
            if prev is not None:
                self.assertEqual(b64url(json.loads(prev[0])["payload"]), raw,
                                 "seq %d delivered twice with different contents" % p["seq"])
                continue
            out[p["seq"]] = (line, hdr, p)
        return out

    def wait_records(self, sub, last, timeout=20):
        if not harness.wait_for(lambda: len(self.records(sub)) >= last, timeout):
            have = sorted(self.records(sub))
            raise AssertionError("%d of %d records at the subscriber; missing %s" %
                                 (len(have), last, sorted(set(range(1, last + 1)) - set(have))[:20]))
        return self.records(sub)

    def check_stream(self, recs, last, acked=None, lost=()):
        """seq 1..last all there (but `lost`), the hash chain intact, each acked session's start
        and end records present. Records past `last` (a window that closed after the status that
        gave it, and arrived before this read) must be contiguous too."""
        want = [s for s in harness.seqs_through(recs, last) if s not in lost]
        self.assertEqual(sorted(recs), want, "seq not contiguous")
        for s in want:
            if s - 1 in recs:
                prev = hashlib.sha256(b64url(json.loads(recs[s - 1][0])["payload"])).hexdigest()
                self.assertEqual(recs[s][2]["prev"], prev, "hash chain broken at seq %d" % s)
        if acked:
            by_type = {}
            for _, _, p in recs.values():
                by_type.setdefault(p["type"], set()).add(p.get("session"))
            self.assertEqual(set(acked) - by_type.get("session_start", set()), set(), "session_start lost")
            self.assertEqual(set(acked) - by_type.get("session_end", set()), set(), "session_end lost")

    def all_delivered(self, sub, acked=None, cert=None, timeout=40):
        """Waits until the spool is drained and the subscriber has every record; checks the stream
        (check_stream) and, unless cert is False, that render-agentctl verify passes it with cert
        (default: the test PKI's client certificate). Returns the records by seq."""
        last = self.drained(timeout)
        recs = self.wait_records(sub, last)
        self.check_stream(recs, last, acked)
        if cert is not False:
            rc, summary = self.verify(recs, cert or self.env.pki["client_cert"])
            self.assertEqual(rc, 0, summary)
        return recs

    def verify(self, recs, cert):
        """render-agentctl verify --json --cert CERT over the records; returns its summary."""
        path = self.env.path("verify-%d.jws" % random.randrange(1 << 30))
        with open(path, "w") as f:
            f.write("".join(recs[s][0] + "\n" for s in sorted(recs)))
        r = self.env.run([harness.ctl_binary(), "verify", "--json", "--cert", cert, path])
        try:
            return r.returncode, json.loads(r.stdout)
        except ValueError:
            raise AssertionError("verify printed no JSON (exit %d): %s %s" % (r.returncode, r.stdout, r.stderr))

    def issue_client_cert(self, name, clock_offset_s=0, days=30):
        """A new P-256 key and client certificate (CN = the node) from the test CA: (cert, key).
        clock_offset_s: openssl runs with its wall clock moved (fake_clock), to make one that has
        already expired."""
        env = None
        if clock_offset_s:
            lib = fake_clock_library()
            if not lib:
                self.fail("RA_FAKE_CLOCK (tests/integration/fake_clock.c, built) is not set")
            with open(self.env.path(name + ".clock"), "w") as f:
                f.write("%+d\n" % clock_offset_s)
            env = {"LD_PRELOAD": lib, "RA_FAKE_CLOCK_FILE": self.env.path(name + ".clock")}
        return self.env.client_cert(name, self.env.node, days=days, env_vars=env)

    def install_cert(self, cert, key):
        """Puts cert and key where the agent's config points (device.crt, device.key), atomically."""
        for src, dst in ((cert, "device.crt"), (key, "device.key")):
            with open(src, "rb") as f:
                data = f.read()
            tmp = self.env.path(dst + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.env.path(dst))
        return self.env.path("device.crt"), self.env.path("device.key")


class SlowProxy:
    """A TCP proxy on 127.0.0.1 between the agent and its broker, both ways: every chunk arrives
    `delay` s after it was sent (latency, pipelined), and at most `rate` bytes/s get through: a
    broker far away on a congested link."""

    def __init__(self, target_port, delay=0.3, rate=16384):
        self.target = target_port
        self.delay, self.rate = delay, rate
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.stop = threading.Event()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                a, _ = self.lsock.accept()
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self.socks += [a, b]
            for src, dst in ((a, b), (b, a)):
                q = queue.Queue()
                threading.Thread(target=self._read, args=(src, q), daemon=True).start()
                threading.Thread(target=self._write, args=(dst, q), daemon=True).start()

    def _read(self, src, q):
        try:
            while not self.stop.is_set():
                data = src.recv(4096)
                q.put((time.monotonic() + self.delay, data))
                if not data:
                    return
        except OSError:
            q.put((0, b""))

    def _write(self, dst, q):
        try:
            while True:
                due, data = q.get()
                if not data:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                dst.sendall(data)
                time.sleep(len(data) / self.rate)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        for s in [self.lsock] + self.socks:
            try:
                s.close()
            except OSError:
                pass


class LinkFaults(FaultTest):
    def test_hung_broker_loses_no_record(self):
        # SIGSTOP: TCP stays up and nothing comes back. test_reconnect.test_broker_hung shows the
        # keepalive notices it; here sessions churn meanwhile, and every record must arrive.
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        agent = self.start(self.config(broker.port, keepalive_s=5))
        acked = self.churn(5, "before")
        mark = agent.line_count()
        broker.proc.send(signal.SIGSTOP)
        try:
            acked = self.churn(10, "hung", acked)  # the control socket does not wait for the broker
            agent.wait_log(r"lost the MQTT connection .*no answer to keepalive ping", timeout=25, start=mark)
            acked = self.churn(10, "gone", acked)
            st = self.status()
            self.assertGreater(st["metering"]["spool"]["pending"], 0, st["metering"])
        finally:
            broker.proc.send(signal.SIGCONT)
        agent.wait_log(r"connected to MQTT broker", timeout=70, start=mark)
        acked = self.churn(5, "after", acked)
        self.assertEqual(len(acked), 30)
        self.all_delivered(sub, acked)
        self.assertEqual(self.status()["metering"]["lost"], 0)

    def test_slow_broker_delivers_everything_without_reconnecting(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        proxy = SlowProxy(broker.port, delay=0.3, rate=16384)
        self.addCleanup(proxy.close)
        agent = self.start(self.config(proxy.port, keepalive_s=10))
        # Session ops answer at local speed: the slow broker is the meter's problem, not theirs.
        worst = 0.0
        acked = {}
        for i in range(12):
            t0 = time.monotonic()
            self.churn(1, "slow%d-" % i, acked)
            worst = max(worst, time.monotonic() - t0)
        print("slowest reserve/start/end cycle behind a 600 ms round trip, 16 KiB/s broker: %.3f s" % worst)
        self.assertLess(worst, 1.0, "session ops waited for the slow broker")
        st = self.status()
        self.assertGreater(st["metering"]["records_made"], st["metering"]["acked"], "the broker was not slow")
        self.all_delivered(sub, acked, timeout=60)
        st = self.status()
        self.assertEqual(st["broker"]["connects"], 1, "slow is not dead: no reconnect (%s)" % st["broker"])
        self.assertEqual(agent.count(r"lost the MQTT connection"), 0)

    def test_rotated_certificate_reconnects_and_both_keys_verify(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        old_cert, old_key = self.install_cert(env.pki["client_cert"], env.pki["client_key"])
        old_copy = env.path("old.crt")
        with open(old_cert, "rb") as f, open(old_copy, "wb") as g:
            g.write(f.read())
        agent = self.start(self.config(broker.port, cert=old_cert, key=old_key))
        kid_old = self.status()["metering"]["kid"]
        acked = self.churn(5, "old")
        self.drained()  # these went out signed with the old key
        new_cert, new_key = self.issue_client_cert("rotated")
        self.install_cert(new_cert, new_key)
        mark = agent.line_count()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"configuration reloaded .*broker connection renewed", start=mark)
        agent.wait_log(r"connected to MQTT broker", start=mark)
        kid_new = self.status()["metering"]["kid"]
        self.assertNotEqual(kid_new, kid_old, "the records' kid did not follow the new certificate")
        acked = self.churn(5, "new", acked)
        recs = self.all_delivered(sub, acked, cert=False)  # two keys: verified one by one below
        kids = {}
        for s, (_, hdr, _) in recs.items():
            kids.setdefault(hdr["kid"], []).append(s)
        self.assertEqual(set(kids), {kid_old, kid_new}, kids.keys())
        self.assertLess(max(kids[kid_old]), min(kids[kid_new]), "old and new keys interleave")
        # Each record verifies with its own certificate: with either one, the only bad lines are
        # the other key's, none has a bad signature, and the chain runs across the rotation.
        for cert, mine, other in ((old_copy, kid_old, kid_new), (new_cert, kid_new, kid_old)):
            rc, summary = self.verify(recs, cert)
            self.assertEqual(summary["kid"], mine, summary)
            self.assertEqual(summary["records"], len(kids[mine]), summary)
            bad = {k: v for k, v in summary["bad_lines"].items() if v}
            self.assertEqual(bad, {"wrong_key": len(kids[other])}, summary)

    def test_expired_certificate_is_refused_and_records_wait(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("metering"), qos=1)
        cert, key = self.install_cert(*self.issue_client_cert("expired", clock_offset_s=-10 * 86400, days=1))
        cfg = self.config(broker.port, cert=cert, key=key)
        agent = self.start(cfg, connected=False)
        # The agent reads its own certificate: the log and the status say it expired, and when.
        agent.wait_log(r"err: mqtt.tls.cert_file \S+ expired on \d{4}-\d\d-\d\dT", timeout=10)
        first = agent.wait_log(r"warning: MQTT broker localhost:\d+: ", timeout=15)[0]
        print("refusal as logged: %s" % first)
        self.assertRegex(first, r"expired|dropped the connection|client certificate")
        acked = self.churn(6, "waiting")
        time.sleep(2)  # more attempts, a window or two closes
        self.assertTrue(agent.alive())
        st = self.status()
        self.assertIn(st["broker"]["state"], ("backoff", "connecting"), st["broker"])
        self.assertEqual(st["broker"]["connects"], 0)
        self.assertTrue(st["broker"]["last_error"], st["broker"])
        self.assertTrue(st["broker"]["cert_expired"], st["broker"])
        self.assertRegex(st["broker"]["cert_not_after"], r"^\d{4}-\d\d-\d\dT")
        # The spool's sync runs on a worker: owed records are in slots.state until it ends.
        self.assertTrue(harness.wait_for(lambda: self.status()["metering"]["owed"] == 0, 5), self.status())
        m = self.status()["metering"]
        self.assertEqual((m["acked"], m["lost"]), (0, 0), m)
        self.assertGreaterEqual(m["spool"]["pending"], 12, m)  # 6 starts + 6 ends, kept on disk
        self.assertEqual(sub.on("/metering"), [])
        # A valid certificate (same paths) and SIGHUP: everything kept goes out, signed with it.
        new_cert, _ = self.install_cert(*self.issue_client_cert("renewed"))
        mark = agent.line_count()
        agent.proc.send(signal.SIGHUP)
        agent.wait_log(r"connected to MQTT broker", timeout=20, start=mark)
        self.all_delivered(sub, acked, cert=new_cert)


if __name__ == "__main__":
    harness.main()
