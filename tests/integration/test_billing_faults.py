#!/usr/bin/env python3
"""test_billing_faults: the billing-grade fault suite (issue 14). Real mosquitto (TLS, MQTT 5), a
real agent on a private tmpfs state dir, an independent consumer (tests/jose/consumer.mjs: MQTT.js,
a persistent session, each record fsync'ed to a file BEFORE its PUBACK) and a load driver that logs
every op the agent acknowledged. Faults come at moments drawn from a seed: broker kill -9 and
restart, broker SIGSTOP/SIGCONT, agent kill -9 and restart (also while a backlog is redelivered and
while the disk is full), the state dir's disk full, the consumer killed for a while. Then every
fault is healed, the load ends its sessions, and once the consumer has every record the verdict is
computed from the consumer's file and the driver's log alone, with nothing of the project's code
but one extra `render-agentctl verify --cert` row:

  - every acknowledged start has its session_start, every acknowledged end its session_end, every
    acknowledged viewer_join/viewer_leave its record (same session, same viewer);
  - seq 1..N without a gap; a seq received twice is byte-identical; the hash chain holds (prev =
    SHA-256 of the previous record's payload bytes, docs/metering.md); every signature verifies
    (ES256, jose via tests/jose/verify.mjs, kid = the certificate's thumbprint);
  - no slot double-booked in the records; no session_start or viewer_join made, and no start or
    viewer_join acknowledged, while the disk was full (the driver's timeline);
  - the bytes in bandwidth_minute records are >= 99.9 % of the bytes acknowledged to report_bytes,
    per flow, and never more than were reported.

The broker runs without persistence, as harness.py starts it: what it queues for a consumer that
is away is in its memory only, so a broker kill -9 then would lose records the agent rightly let go
of (a broker's loss, not the agent's). The broker is therefore killed only while the consumer is
connected; the consumer asks for a receive maximum of 65535, so that what the broker acknowledged
to the agent is already written to the consumer's socket rather than queued.

Each seed prints its fault plan and a verdict table; a failing seed fails its own test method
(test_seed_<seed>) with the seed and the failing rows in the message. Run one seed again with
RA_FAULT_SEEDS=<seed>.

Besides harness.py's variables it reads:
  RA_FAULT_SEEDS   comma-separated seeds (default: 1,2,3,4,5)
  RA_FAULT_LOAD_S  seconds of load per seed at the least (default 40; the faults may take longer)
  RA_FAULT_KINDS   the faults to draw from (default all: broker_kill, broker_stop, agent_kill,
                   agent_kill_redelivery, disk_full, disk_full_kill, consumer_down); "none" runs
                   the load alone, a control that must pass on any agent
  RA_JOSE_DIR      where `npm ci` installs tests/jose (jose and mqtt) for node
"""

import base64
import datetime
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_jose import jose_dir  # noqa: E402
from test_sessions import code  # noqa: E402

SCRIPT_START = time.monotonic()
DEFAULT_SEEDS = "1,2,3,4,5"
LOAD_S = float(os.environ.get("RA_FAULT_LOAD_S", "40"))
SEED_OVERHEAD_S = 50  # set-up, healing, the final sessions, the drain and the verdict, typically
DRAIN_TIMEOUT_S = 60  # the consumer gets every record within this after everything is healed
WORKERS = 5  # load clients, on 4 slots: one is often refused for want of a slot
FIXTURE_ROOT = os.path.join(harness.FIXTURES, "x86-cpu")  # 8 cores: four 1-vCPU slots conform
SLOTS = [{"id": "s%d" % i, "scale": "cpu-4"} for i in range(4)]
# A tmpfs smaller than two spool segments (2 x 4 MiB, agent/metering/spool.h): the spool cannot prepare a
# preallocated one, so once the file system is full the spool has no room but what the agent keeps
# for itself (and the rest of its last page), and "the disk is full" in the driver's timeline is
# "the spool has no room to open billing".
TMPFS_KIB = 6 * 1024
ZEROS = "0" * 64
BYTES_FLOOR = 0.999  # billed >= 99.9 % of what report_bytes acknowledged


def parse_seeds(text):
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit("RA_FAULT_SEEDS must be comma-separated integers, got %r" % text)
    if not seeds:
        raise SystemExit("RA_FAULT_SEEDS names no seed: %r" % text)
    return seeds


SEEDS = parse_seeds(os.environ.get("RA_FAULT_SEEDS") or DEFAULT_SEEDS)
ALL_FAULTS = ("broker_kill", "broker_stop", "agent_kill", "agent_kill_redelivery", "disk_full", "disk_full_kill",
              "consumer_down")


def parse_kinds(text):
    if text.strip() == "none":
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in ALL_FAULTS]
    if bad:
        raise SystemExit("RA_FAULT_KINDS: unknown fault(s) %s (known: %s, or none)" % (bad, ", ".join(ALL_FAULTS)))
    return kinds


FAULT_KINDS = parse_kinds(os.environ.get("RA_FAULT_KINDS") or ",".join(ALL_FAULTS))


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def rfc3339_epoch(ts):
    """Seconds since the epoch of a record's ts (RFC 3339 UTC with milliseconds)."""
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()


def fmt_t(t, t0):
    return "%+.2fs" % (t - t0)


# --------------------------------------------------------------------------------------------
# The private tmpfs, the consumer


class Tmpfs:
    """A tmpfs on the state dir in a mount namespace of its own, held by a sleeping process so that
    it outlives every agent run: agents enter it with nsenter, the test reaches it through
    /proc/HOLDER/root. This machine's disks are not touched."""

    def __init__(self, env, state):
        missing = [t for t in ("unshare", "nsenter", "mount") if not shutil.which(t)]
        if os.geteuid() != 0 or missing:
            raise AssertionError("a private tmpfs needs root and util-linux (uid %d, missing: %s); this suite "
                                 "cannot run without one" % (os.geteuid(), ", ".join(missing) or "nothing"))
        os.mkdir(state, 0o700)
        self.holder = harness.Proc(env, "tmpfs-holder", [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o size=%dk,mode=0700 ra-billing "$0" && echo mounted && exec sleep 100000' % TMPFS_KIB,
            state])
        harness.wait_for(lambda: "mounted" in self.holder.stdout() or not self.holder.alive(), 10)
        if "mounted" not in self.holder.stdout():
            raise AssertionError("cannot make a private tmpfs on %s (root with CAP_SYS_ADMIN is needed): %s" %
                                 (state, self.holder.stderr().strip() or "no output"))
        self.dir = "/proc/%d/root%s" % (self.holder.pid, state)
        st = os.statvfs(self.dir)
        if abs(st.f_blocks * st.f_frsize - TMPFS_KIB * 1024) > 64 * 1024:
            raise AssertionError("%s is not the %d KiB tmpfs (%d bytes)" % (self.dir, TMPFS_KIB,
                                                                           st.f_blocks * st.f_frsize))
        self.filler = os.path.join(self.dir, "filler")

    def wrapper(self):
        """Runs a program in the tmpfs's mount namespace (nsenter execs it: the pid stays its own)."""
        return ["nsenter", "--mount=/proc/%d/ns/mnt" % self.holder.pid, "--"]

    def fill(self):
        """Writes a file until the file system has not one byte left; returns its size."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        total = 0
        try:
            for chunk in (1 << 16, 4096, 512, 1):
                buf = b"\0" * chunk
                while True:
                    try:
                        total += os.write(fd, buf)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return total

    def free(self):
        os.unlink(self.filler)

    def is_full(self):
        return os.path.exists(self.filler)


class Consumer:
    """node consumer.mjs: one run after another, all appending to one file."""

    def __init__(self, env, jose, broker, out):
        self.env, self.jose, self.broker, self.out = env, jose, broker, out
        self.proc = None
        self.client_id = "billing-consumer-%d" % os.getpid()

    def start(self):
        pki = self.env.pki
        self.proc = harness.Proc(self.env, "consumer", [
            "node", os.path.join(self.jose, "consumer.mjs"), "--url", "mqtts://localhost:%d" % self.broker.port,
            "--ca", pki["ca"], "--cert", pki["client_cert"], "--key", pki["client_key"],
            "--client-id", self.client_id, "--topic", self.env.topic("metering"), "--out", self.out])
        return self

    def events(self):
        return self.proc.stdout().splitlines() if self.proc else []

    def ready(self):
        """Connected with its subscription in place, as far as its last words say."""
        ev = [e for e in self.events() if e.startswith(("connected", "subscribed", "closed"))]
        return self.proc is not None and self.proc.alive() and bool(ev) and ev[-1] == "subscribed"

    def wait_ready(self, timeout=20):
        if not harness.wait_for(self.ready, timeout):
            raise AssertionError("the consumer did not subscribe within %d s:\n%s\n%s" %
                                 (timeout, "\n".join(self.events()[-20:]), harness.tail(self.proc.stderr())))

    def kill(self):
        self.proc.kill()

    def size(self):
        """Bytes of records stored so far (each written and fsynced before its PUBACK)."""
        try:
            return os.path.getsize(self.out)
        except OSError:
            return 0


def read_consumer_file(path):
    """([(line number, the record's JWS line)], torn lines): one entry per PUBLISH stored."""
    out, torn = [], []
    with open(path, "r", encoding="utf-8", errors="surrogateescape") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                out.append((n, entry["payload"]))
            except (ValueError, KeyError, TypeError):
                torn.append(n)  # a run killed mid-write; that record was not acknowledged
    return out, torn


# --------------------------------------------------------------------------------------------
# The load driver


class Driver:
    """WORKERS clients, each on its own control connection, running sessions: reserve, start,
    viewer_join/viewer_leave, report_bytes with growing counters (player, viewers, push), end.
    Every request is logged (JSON lines) with its reply, or with none when the connection broke
    under it (an unknown outcome); faults and the disk's timeline go to the same log."""

    def __init__(self, sock, seed, log_path):
        self.sock, self.seed = sock, seed
        self.log_f = open(log_path, "w")
        self.lock = threading.Lock()
        self.stop_load = threading.Event()  # end the sessions held, then stop
        self.abort = threading.Event()  # stop now (the test is over or failed)
        self.threads = []
        self.stats = {"ok": 0, "refused": 0, "unknown": 0}

    def log(self, entry):
        with self.lock:
            self.log_f.write(json.dumps(entry) + "\n")
            self.log_f.flush()

    def note(self, what, **kw):
        self.log(dict(kw, kind="fault", what=what, t=time.time()))

    def start(self):
        for k in range(WORKERS):
            t = threading.Thread(target=self._worker, args=(k,), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self, timeout):
        """Lets every worker end its session; True when all did within timeout."""
        self.stop_load.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def close(self):
        self.abort.set()
        self.stop_load.set()
        for t in self.threads:
            t.join(5)
        with self.lock:
            self.log_f.close()

    # -- one worker

    def _connect(self, w):
        while not self.abort.is_set():
            try:
                w["c"] = harness.ControlConn(self.sock, timeout=5)
                return True
            except OSError:
                time.sleep(0.05)  # the agent is down (killed, restarting)
        return False

    def _op(self, w, op, **fields):
        """The reply, or None when the outcome is unknown (the connection broke, or the test ends)."""
        if w.get("c") is None and not self._connect(w):
            return None
        t_send = time.time()
        try:
            reply = w["c"].call(op, **fields)
        except (OSError, ConnectionError, ValueError, AssertionError) as e:
            try:
                w["c"].close()
            except OSError:
                pass
            w["c"] = None
            self.log({"kind": "op", "w": w["k"], "op": op, "req": fields, "t_send": t_send, "t_reply": None,
                      "reply": None, "error": "%s: %s" % (type(e).__name__, e)})
            with self.lock:
                self.stats["unknown"] += 1
            return None
        self.log({"kind": "op", "w": w["k"], "op": op, "req": fields, "t_send": t_send, "t_reply": time.time(),
                  "reply": reply})
        with self.lock:
            self.stats["ok" if reply.get("ok") else "refused"] += 1
        return reply

    def _worker(self, k):
        rng = random.Random("%d-%d" % (self.seed, k))
        w = {"k": k, "c": None}
        n = 0
        try:
            while not self.stop_load.is_set() and not self.abort.is_set():
                n += 1
                self._session(w, rng, "u%d-%d.s%d" % (k, n, self.seed))
        finally:
            if w.get("c"):
                w["c"].close()

    def _report(self, w, s):
        """One report_bytes: every counter grows; a viewer the agent says is not in the session is
        dropped and the report sent again without it. The reply, or None (unknown)."""
        rng = s["rng"]
        keys = [(f, p) for f, p in s["counters"] if f != "viewer" or p in s["joined"]]
        for key in keys:
            s["counters"][key] += rng.randint(*s["step"][key])
        while True:
            counters = []
            for f, p in keys:
                if f == "viewer" and p not in s["joined"]:
                    continue  # dropped below: the agent says it is not in the session
                counters.append({"flow": f, "peer": p, "bytes": s["counters"][(f, p)]} if p else
                                {"flow": f, "bytes": s["counters"][(f, p)]})
            r = self._op(w, "report_bytes", session=s["id"], counters=counters)
            if r is None or r["ok"] or code(r) != "SESSION_NOT_FOUND" or "viewer" not in r["error"]["message"]:
                return r
            gone = [v for v in s["joined"] if v in r["error"]["message"]]
            if not gone:
                return r
            s["joined"].discard(gone[0])

    def _session(self, w, rng, user):
        r = self._op(w, "reserve", user=user, client_ip="192.0.2.%d" % (w["k"] + 1))
        if r is None or not r["ok"]:
            time.sleep(rng.uniform(0.05, 0.2))
            return
        s = {"id": r["session"], "rng": rng, "joined": set(), "counters": {("player", None): 0}, "step": {}}
        s["step"][("player", None)] = (20000, 200000)
        if rng.random() < 0.6:
            target = "rtmp-%d" % rng.randint(1, 3)
            s["counters"][("push", target)] = 0
            s["step"][("push", target)] = (5000, 60000)
        r = self._op(w, "start", session=s["id"])
        if r is not None and r["ok"]:
            until = time.monotonic() + rng.uniform(1.0, 4.0)
            while time.monotonic() < until and not self.stop_load.is_set():
                time.sleep(rng.uniform(0.1, 0.3))
                x = rng.random()
                if x < 0.15 and len(s["joined"]) < 2:
                    viewer = "v%d" % rng.randint(1, 3)
                    if viewer in s["joined"]:
                        continue
                    r = self._op(w, "viewer_join", session=s["id"], viewer=viewer, role="viewer")
                    if r is not None and r["ok"]:
                        s["joined"].add(viewer)
                        s["counters"].setdefault(("viewer", viewer), 0)
                        s["step"][("viewer", viewer)] = (10000, 100000)
                elif x < 0.25 and s["joined"]:
                    viewer = sorted(s["joined"])[rng.randrange(len(s["joined"]))]
                    r = self._report(w, s)  # a viewer's last bytes go before its leave
                    if r is not None:
                        s["joined"].discard(viewer)  # from here it may have left
                        r = self._op(w, "viewer_leave", session=s["id"], viewer=viewer)
                else:
                    r = self._report(w, s)
                if r is None:
                    break  # the agent went away: end the session once it is back
            if r is not None:
                self._report(w, s)  # the last bytes, when nothing was lost on the way
        # The end (also of a start refused, or of one whose outcome is unknown): until it is
        # acknowledged or the agent says there is no such session.
        for _ in range(200):
            if self.abort.is_set():
                return
            r = self._op(w, "end", session=s["id"], reason="done")
            if r is not None and (r["ok"] or code(r) in ("SESSION_NOT_FOUND", "BAD_REQUEST", "FORBIDDEN")):
                return
            time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# The verdict: the consumer's file and the driver's log, nothing else but one render-agentctl row


class VerdictFailure(AssertionError):
    """A seed's verdict has failing rows (the message holds the seed and the table)."""


class Verdict:
    def __init__(self, seed):
        self.seed = seed
        self.rows = []  # (check, ok, summary, [failing items])
        self.info = []

    def row(self, check, ok, summary, items=()):
        self.rows.append((check, bool(ok), summary, list(items)))

    def failed(self):
        return [r for r in self.rows if not r[1]]

    def table(self, show_items=8):
        lines = ["seed %d verdict:" % self.seed]
        for check, ok, summary, items in self.rows:
            lines.append("  %-50s %-4s  %s" % (check, "ok" if ok else "FAIL", summary))
            if not ok:
                for it in items[:show_items]:
                    lines.append("  %50s       - %s" % ("", it))
                if len(items) > show_items:
                    lines.append("  %50s       ... %d more" % ("", len(items) - show_items))
        for i in self.info:
            lines.append("  note: %s" % i)
        return "\n".join(lines)


def decode_records(entries, node, region):
    """Parses every stored line. Returns (unique: {seq: (line, payload bytes, payload)}, duplicates,
    conflicts [(seq, first line no, other line no)], bad [(line no, why)])."""
    unique, dups, conflicts, bad = {}, 0, [], []
    for n, line in entries:
        try:
            jws = json.loads(line)
            if set(jws) != {"protected", "payload", "signature"}:
                raise ValueError("members %s, not protected/payload/signature" % sorted(jws))
            hdr = json.loads(b64url(jws["protected"]))
            if hdr.get("alg") != "ES256" or not hdr.get("kid"):
                raise ValueError("protected header %s" % hdr)
            raw = b64url(jws["payload"])
            p = json.loads(raw)
            for m, t in (("v", int), ("type", str), ("node", str), ("region", str), ("seq", int), ("prev", str),
                         ("ts", str)):
                if not isinstance(p.get(m), t):
                    raise ValueError("payload member %s missing or not %s" % (m, t.__name__))
            if (p["node"], p["region"]) != (node, region):
                raise ValueError("node/region %s/%s, not %s/%s" % (p["node"], p["region"], node, region))
            rfc3339_epoch(p["ts"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            bad.append((n, str(e)))
            continue
        seen = unique.get(p["seq"])
        if seen is None:
            unique[p["seq"]] = (line, raw, p, n)
        elif seen[0] == line:
            dups += 1
        else:
            conflicts.append((p["seq"], seen[3], n))
    return unique, dups, conflicts, bad


def flow_bytes(rec, flow):
    """The bytes of one flow in a bandwidth_minute record: {"bytes": N}, or per target/peer a list
    or an object of such. Raises ValueError for a shape this reader does not know."""
    v = rec.get(flow)
    if v is None:
        return 0
    if isinstance(v, dict) and isinstance(v.get("bytes"), int):
        return v["bytes"]
    if isinstance(v, list) and all(isinstance(x, dict) and isinstance(x.get("bytes"), int) for x in v):
        return sum(x["bytes"] for x in v)
    if isinstance(v, dict) and v and all(isinstance(x, dict) and isinstance(x.get("bytes"), int) for x in v.values()):
        return sum(x["bytes"] for x in v.values())
    raise ValueError("bandwidth_minute seq %s: %s is %s" % (rec.get("seq"), flow, json.dumps(v)[:200]))


def judge(seed, env, jose, consumer_path, driver_log, last_seq, ctl):
    v = Verdict(seed)
    entries, torn = read_consumer_file(consumer_path)
    if torn:
        v.info.append("%d torn line(s) in the consumer's file (a run killed mid-write): lines %s" %
                      (len(torn), torn[:10]))
    unique, dups, conflicts, bad = decode_records(entries, env.node, env.region)
    v.info.append("%d PUBLISHes stored, %d unique records, %d byte-identical redeliveries" %
                  (len(entries), len(unique), dups))
    v.row("every stored record is a record of this node", not bad, "%d bad" % len(bad),
          ["line %d: %s" % b for b in bad])

    # seq 1..N, duplicates identical, the chain
    top = max(unique) if unique else 0
    missing = [s for s in range(1, max(top, last_seq) + 1) if s not in unique]
    v.row("seq 1..N contiguous (N >= agent's last %d)" % last_seq, not missing and top >= last_seq,
          "N = %d, %d missing" % (top, len(missing)), ["seq %d missing" % s for s in missing])
    v.row("a seq received twice is byte-identical", not conflicts, "%d conflicts" % len(conflicts),
          ["seq %d: line %d differs from line %d" % c for c in conflicts])
    breaks = []
    for s in sorted(unique):
        want = ZEROS if s == 1 else (hashlib.sha256(unique[s - 1][1]).hexdigest() if s - 1 in unique else None)
        if want is not None and unique[s][2]["prev"] != want:
            breaks.append("seq %d: prev %s, SHA-256 of seq %d's payload is %s" %
                          (s, unique[s][2]["prev"][:16], s - 1, want[:16]))
    v.row("hash chain (prev = SHA-256 of previous payload)", not breaks, "%d breaks" % len(breaks), breaks)

    # signatures, with jose (tests/jose/verify.mjs): one line per unique record
    lines = [unique[s][0] for s in sorted(unique)]
    r = subprocess.run(["node", os.path.join(jose, "verify.mjs"), "--cert", env.pki["client_cert"]],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300)
    sig_bad = []
    try:
        res = json.loads(r.stdout)["results"]
        if len(res) != len(lines):
            sig_bad.append("verify.mjs answered %d results for %d records" % (len(res), len(lines)))
        for x in res:
            s = sorted(unique)[x["line"] - 1]
            if not x["ok"]:
                sig_bad.append("seq %d: %s" % (s, x["error"]))
            elif not x["kid_ok"]:
                sig_bad.append("seq %d: kid %s is not the certificate's" % (s, x["kid"]))
            elif x["payload"].encode() != unique[s][1]:
                sig_bad.append("seq %d: jose's payload differs from the line's" % s)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        sig_bad.append("verify.mjs failed (exit %d, %s): %s %s" % (r.returncode, e, r.stdout[-300:], r.stderr[-300:]))
    v.row("signatures ES256, kid = certificate (jose)", not sig_bad, "%d checked, %d bad" % (len(lines), len(sig_bad)),
          sig_bad)

    # the one row that runs project code
    path = env.path("verify-input.jws")
    with open(path, "w") as f:
        f.write("".join(line + "\n" for _, line in entries))
    r = env.run([ctl, "verify", "--json", "--cert", env.pki["client_cert"], path], timeout=300)
    try:
        summ = json.loads(r.stdout)
        ok = r.returncode == 0 and summ.get("ok") is True
        detail = "exit %d: gaps %s, chain_breaks %s, conflicts %s, bad %s" % (
            r.returncode, summ.get("gaps"), summ.get("chain_breaks"), summ.get("conflicts"), summ.get("bad_lines"))
    except ValueError:
        ok, detail = False, "exit %d, no JSON: %s %s" % (r.returncode, r.stdout[-200:], r.stderr[-200:])
    v.row("render-agentctl verify --cert (project code)", ok, detail)

    # what the driver was told, against the records
    log = []
    with open(driver_log) as f:
        for line in f:
            log.append(json.loads(line))
    ops = [e for e in log if e["kind"] == "op"]
    recs = [unique[s][2] for s in sorted(unique)]
    by_type = {}
    for p in recs:
        by_type.setdefault(p["type"], []).append(p)
    slot_of = {}  # session -> slot, from the reserve replies
    for e in ops:
        if e["op"] == "reserve" and e["reply"] and e["reply"]["ok"]:
            slot_of[e["reply"]["session"]] = e["reply"]["slot"]

    def acked(op, event):
        return [e for e in ops
                if e["op"] == op and e["reply"] and e["reply"]["ok"] and e["reply"].get("event") == event]

    starts = acked("start", "start")
    rec_start = {p["session"]: p for p in by_type.get("session_start", [])}
    miss = []
    for e in starts:
        s = e["req"]["session"]
        if s not in rec_start:
            miss.append("start of %s (%s, slot %s) acked at %s: no session_start" %
                        (s, e["reply"].get("user"), e["reply"].get("slot"), fmt_t(e["t_reply"], log[0]["t"])))
        elif rec_start[s]["slot"] != e["reply"]["slot"]:
            miss.append("session %s: started on %s, its session_start says %s" % (s, e["reply"]["slot"],
                                                                                  rec_start[s]["slot"]))
    v.row("acked start -> session_start", not miss, "%d acked, %d without" % (len(starts), len(miss)), miss)

    ends = acked("end", "ending")
    rec_end = {p["session"] for p in by_type.get("session_end", [])}
    miss = ["end of %s (%s, slot %s) acked at %s: no session_end" %
            (e["req"]["session"], e["reply"].get("user"), e["reply"].get("slot"), fmt_t(e["t_reply"], log[0]["t"]))
            for e in ends if e["req"]["session"] not in rec_end]
    v.row("acked end -> session_end", not miss, "%d acked, %d without" % (len(ends), len(miss)), miss)

    miss, n_acked = [], 0
    for op in ("viewer_join", "viewer_leave"):
        want = {}
        for e in acked(op, op):
            key = (e["req"]["session"], e["req"]["viewer"])
            want.setdefault(key, []).append(e)
        have = {}
        for p in by_type.get(op, []):
            key = (p["session"], p["viewer"])
            have[key] = have.get(key, 0) + 1
        for key, es in want.items():
            n_acked += len(es)
            if have.get(key, 0) < len(es):
                miss.append("%s %s of %s: %d acked (last at %s), %d record(s)" %
                            (op, key[1], key[0], len(es), fmt_t(es[-1]["t_reply"], log[0]["t"]), have.get(key, 0)))
    v.row("acked viewer_join/leave -> record", not miss, "%d acked, %d short" % (n_acked, len(miss)), miss)

    # one session per slot at any point of the record stream
    holder, double, orphan = {}, [], []
    for p in recs:
        if p["type"] == "session_start":
            cur = holder.get(p["slot"])
            if cur is not None and cur != p["session"]:
                double.append("seq %d: %s starts on %s while %s holds it (no session_end)" %
                              (p["seq"], p["session"], p["slot"], cur))
            holder[p["slot"]] = p["session"]
        elif p["type"] == "session_end":
            if holder.get(p["slot"]) == p["session"]:
                del holder[p["slot"]]
            else:
                orphan.append(p["seq"])
    v.row("no slot double-booked", not double, "%d overlaps" % len(double), double)
    if orphan:
        v.info.append("session_end without a session_start before it: seq %s" % orphan[:10])
    if holder:
        v.info.append("sessions still open at the end of the stream: %s" % holder)

    # nothing opened while the disk was full (the driver's timeline)
    full, t_full = [], None
    for e in log:
        if e["kind"] == "fault" and e["what"] == "disk_full":
            t_full = e["t"]
        elif e["kind"] == "fault" and e["what"] == "disk_room" and t_full is not None:
            full.append((t_full, e["t"]))
            t_full = None
    opened = []
    for a, b in full:
        for e in acked("start", "start") + acked("viewer_join", "viewer_join"):
            if a < e["t_send"] and e["t_reply"] < b:
                opened.append("%s %s acked at %s, disk full from %s to %s" %
                              (e["op"], e["req"]["session"], fmt_t(e["t_reply"], log[0]["t"]), fmt_t(a, log[0]["t"]),
                               fmt_t(b, log[0]["t"])))
        for p in by_type.get("session_start", []) + by_type.get("viewer_join", []):
            t = rfc3339_epoch(p["ts"])
            if a < t < b:
                opened.append("seq %d %s of %s made at %s, disk full from %s to %s" %
                              (p["seq"], p["type"], p["session"], fmt_t(t, log[0]["t"]), fmt_t(a, log[0]["t"]),
                               fmt_t(b, log[0]["t"])))
    v.row("nothing opened while the disk was full", not opened,
          "%d full period(s), %d opened" % (len(full), len(opened)), opened)

    # bytes: acknowledged (the last acked value of each counter) <= billed <= reported
    acked_max, sent_max = {}, {}
    for e in ops:
        if e["op"] != "report_bytes" or (e["reply"] is not None and not e["reply"]["ok"]):
            continue
        for ctr in e["req"]["counters"]:
            flow = {"player": "player", "viewer": "viewers", "push": "push"}[ctr["flow"]]
            key = (e["req"]["session"], flow, ctr.get("peer"))
            sent_max[key] = max(sent_max.get(key, 0), ctr["bytes"])
            if e["reply"] is not None:
                acked_max[key] = max(acked_max.get(key, 0), ctr["bytes"])
    billed, shape_bad = {"player": 0, "viewers": 0, "push": 0}, []
    billed_slot = {}
    for p in by_type.get("bandwidth_minute", []):
        for flow in billed:
            try:
                b = flow_bytes(p, flow)
            except ValueError as e:
                shape_bad.append(str(e))
                continue
            billed[flow] += b
            billed_slot[(p.get("slot"), flow)] = billed_slot.get((p.get("slot"), flow), 0) + b
    if shape_bad:
        v.row("bandwidth_minute records readable", False, "%d not understood" % len(shape_bad), shape_bad)
    bad, parts = [], []
    for flow in billed:
        a = sum(x for (s, f, _), x in acked_max.items() if f == flow)
        hi = sum(x for (s, f, _), x in sent_max.items() if f == flow)
        parts.append("%s %.1f%%" % (flow, 100.0 * billed[flow] / a if a else 100.0))
        if billed[flow] < BYTES_FLOOR * a:
            bad.append("%s: %d B billed, %d B acknowledged (%.2f%%)" % (flow, billed[flow], a,
                                                                        100.0 * billed[flow] / a))
        if billed[flow] > hi:
            bad.append("%s: %d B billed, more than the %d B ever reported" % (flow, billed[flow], hi))
    if bad:
        for (slot, flow), b in sorted(billed_slot.items()):
            a = sum(x for (s, f, _), x in acked_max.items() if f == flow and slot_of.get(s) == slot)
            bad.append("slot %s %s: %d B billed of %d B acknowledged" % (slot, flow, b, a))
    v.row("billed bytes >= 99.9% of acked, <= reported", not bad, "billed/acked: " + ", ".join(parts), bad)

    unknown = sum(1 for e in ops if e["reply"] is None)
    v.info.append("driver: %d ops, %d acked, %d refused, %d with no reply (the agent died under them)" %
                  (len(ops), sum(1 for e in ops if e["reply"] and e["reply"]["ok"]),
                   sum(1 for e in ops if e["reply"] and not e["reply"]["ok"]), unknown))
    counts = {t: len(ps) for t, ps in sorted(by_type.items())}
    v.info.append("records by type: %s" % counts)
    return v


# --------------------------------------------------------------------------------------------
# The test


class BillingFaults(harness.IntegrationTest):
    verdicts = {}

    @classmethod
    def tearDownClass(cls):
        if cls.verdicts:
            print("\n==== billing fault suite: %d seed(s) ====" % len(cls.verdicts))
            for seed, v in sorted(cls.verdicts.items()):
                fails = [r[0] for r in v.failed()]
                print("seed %-6d %s" % (seed, "PASS" if not fails else "FAIL: " + "; ".join(fails)))

    # -- the agent

    def sock(self):
        return self.env.path("agent.sock")

    def status(self):
        try:
            c = harness.ControlConn(self.sock(), timeout=3)
            try:
                return c.call("status")["status"]
            finally:
                c.close()
        except (OSError, ConnectionError, ValueError, KeyError):
            return None

    def start_agent(self, what):
        """An agent run (inside the tmpfs's namespace) that answers on its socket; None (with the
        failure noted) when it exits or does not answer."""
        agent = self.env.agent(self.cfg, wrapper=self.tmpfs.wrapper(), args=["--root", FIXTURE_ROOT])
        if harness.wait_for(lambda: self.status() is not None or not agent.alive(), 30) and agent.alive():
            self.agent = agent
            return agent
        self.trouble.append("%s: the agent %s\n%s" % (what, "exited (status %s)" % agent.proc.popen.poll()
                                                      if not agent.alive() else "did not answer within 30 s",
                                                      harness.tail(agent.log(), 25)))
        self.driver.note("agent_did_not_start", during=what)
        agent.proc.kill()
        self.agent = None
        return None

    def kill_agent(self):
        if self.agent is not None:
            self.agent.proc.kill()
            self.driver.note("agent_kill9", pid=self.agent.pid)
        self.agent = None

    def last_seq(self):
        """next_seq - 1 from `render-agentctl --json status`."""
        r = self.env.run([harness.ctl_binary(), "--socket", self.sock(), "--json", "status"], timeout=10)
        if r.returncode != 0:
            return None
        doc = json.loads(r.stdout)
        return doc.get("status", doc)["metering"]["next_seq"] - 1

    # -- faults

    def plan(self, rng):
        """The seed's faults, in order, each with its gap before it and its durations: every kind
        once, in an order drawn from the seed, and one more of a kind drawn too."""
        kinds = [k for k in FAULT_KINDS if k != "disk_full" or "disk_full_kill" not in FAULT_KINDS]
        rng.shuffle(kinds)
        extra = [k for k in ("agent_kill", "broker_stop", "disk_full", "broker_kill") if k in FAULT_KINDS]
        if extra:
            kinds.insert(rng.randrange(len(kinds) + 1), rng.choice(extra))
        out = []
        for k in kinds:
            f = {"kind": k, "gap": rng.uniform(0.5, 2.0)}
            if k in ("broker_kill", "agent_kill_redelivery"):
                f["down"] = rng.uniform(1.5, 3.5)
                if k == "agent_kill_redelivery":
                    f["then"] = rng.uniform(0.0, 0.4)  # after the agent is back on the broker
            elif k == "broker_stop":
                f["down"] = rng.uniform(1.0, 8.0)  # past the 5 s keepalive or not
            elif k == "agent_kill":
                f["down"] = rng.uniform(0.1, 1.0)
            elif k in ("disk_full", "disk_full_kill"):
                f["before"] = rng.uniform(1.0, 2.5)
                f["after"] = rng.uniform(1.0, 2.5)
            elif k == "consumer_down":
                f["down"] = rng.uniform(2.0, 5.0)
            out.append(f)
        return out

    def run_fault(self, f):
        d = self.driver
        k = f["kind"]
        if k in ("broker_kill", "agent_kill_redelivery"):
            # The broker holds in memory what it queues for a consumer (no persistence) and
            # acknowledges a QoS 1 publish once it has queued it: a kill -9 between that PUBACK and
            # the write to the consumer loses a record the agent rightly let go of, a broker's loss
            # and not the agent's (seen once in ~30 seeds). So the consumer is connected, the agent
            # is held (SIGSTOP) until the consumer has stored everything the broker took, then the
            # broker is killed and the agent let go: what it had in flight goes out again.
            self.consumer.wait_ready()
            held = self.agent is not None and self.agent.proc.alive()
            if held:
                self.agent.proc.send(signal.SIGSTOP)
            size, since, until = -1, time.monotonic(), time.monotonic() + 10
            while time.monotonic() < until and time.monotonic() - since < 0.5:
                if self.consumer.size() != size:
                    size, since = self.consumer.size(), time.monotonic()
                time.sleep(0.05)
            self.broker.kill9()
            if held:
                self.agent.proc.send(signal.SIGCONT)
            d.note("broker_kill9")
            time.sleep(f["down"])
            start = self.agent.line_count() if self.agent else 0
            self.broker.restart()
            d.note("broker_back")
            if k == "agent_kill_redelivery" and self.agent is not None:
                # Back on the broker, the agent sends the backlog: kill it in the middle of that.
                try:
                    self.agent.wait_connected(timeout=30, start=start)
                except AssertionError as e:
                    self.trouble.append("agent_kill_redelivery: %s" % str(e)[:2000])
                time.sleep(f["then"])
                self.kill_agent()
                self.start_agent("restart after a kill -9 during redelivery")
        elif k == "broker_stop":
            self.broker.proc.send(signal.SIGSTOP)
            d.note("broker_sigstop")
            time.sleep(f["down"])
            self.broker.proc.send(signal.SIGCONT)
            d.note("broker_sigcont")
        elif k == "agent_kill":
            self.kill_agent()
            time.sleep(f["down"])
            self.start_agent("restart after a kill -9")
        elif k in ("disk_full", "disk_full_kill"):
            n = self.tmpfs.fill()
            d.note("disk_full", filler_bytes=n)
            time.sleep(f["before"])
            if k == "disk_full_kill":
                self.kill_agent()
                self.start_agent("restart after a kill -9 on a full disk")
            time.sleep(f["after"])
            d.note("disk_room")
            self.tmpfs.free()
            if self.agent is None:
                self.start_agent("restart once the disk has room")
        elif k == "consumer_down":
            self.consumer.kill()
            d.note("consumer_kill9")
            time.sleep(f["down"])
            self.consumer.start()
            d.note("consumer_back")

    def heal(self):
        """Everything back: the disk has room, the broker runs, the consumer and the agent are up."""
        if self.tmpfs.is_full():
            self.driver.note("disk_room")
            self.tmpfs.free()
        if self.broker.proc.alive():
            self.broker.proc.send(signal.SIGCONT)
        else:
            self.broker.restart()
        if not self.consumer.proc.alive():
            self.consumer.start()
        if self.agent is None or not self.agent.alive():
            self.start_agent("healing")

    # -- one seed

    def run_seed(self, seed):
        env = self.env
        left = harness.SCRIPT_DEADLINE_S - (time.monotonic() - SCRIPT_START)
        if left < LOAD_S + SEED_OVERHEAD_S:
            self.fail("seed %d not run: %.0f s left of RA_SCRIPT_DEADLINE_S=%d, a seed needs about %.0f s" %
                      (seed, left, harness.SCRIPT_DEADLINE_S, LOAD_S + SEED_OVERHEAD_S))
        jose = jose_dir()
        shutil.copy(os.path.join(harness.SOURCE_DIR, "tests", "jose", "consumer.mjs"), jose)
        rng = random.Random(seed)
        self.trouble = []
        self.tmpfs = Tmpfs(env, env.path("state"))
        self.broker = env.broker()
        out = env.path("consumer.jsonl")
        self.consumer = Consumer(env, jose, self.broker, out).start()
        self.consumer.wait_ready()
        self.cfg = env.config(self.broker.port, slots=SLOTS, interval_ms=1000, keepalive_s=5,
                              extra={"metering": {"window_s": 2}})
        self.driver = Driver(self.sock(), seed, env.path("driver.jsonl"))
        self.addCleanup(self.driver.close)
        self.driver.note("begin", seed=seed)
        self.agent = None
        if not self.start_agent("first start"):
            self.fail("seed %d: the agent did not start:\n%s" % (seed, "\n".join(self.trouble)))
        self.agent.wait_connected()
        harness.wait_for(lambda: all(s.get("conformant") for s in (self.status() or {"slots": [{}]})["slots"]),
                         15, what="slots planned")
        plan = self.plan(rng)
        print("seed %d plan: %s" % (seed, ", ".join(
            "%s(%s)" % (f["kind"], " ".join("%s=%.2f" % (k, x) for k, x in f.items() if k != "kind")) for f in plan)))
        t0 = time.monotonic()
        self.driver.start()
        ran = []
        for f in plan:
            time.sleep(f["gap"])
            self.driver.note("fault_begin", fault=f["kind"])
            self.run_fault(f)
            ran.append(f["kind"])
            if self.agent is not None and not self.agent.alive():
                self.trouble.append("after %s the agent exited by itself (status %s)\n%s" %
                                    (f["kind"], self.agent.proc.popen.poll(), harness.tail(self.agent.log(), 25)))
                self.driver.note("agent_exited")
                self.agent = None
                self.start_agent("restart after it exited")
        time.sleep(max(0.0, LOAD_S - (time.monotonic() - t0)))
        self.heal()
        self.consumer.wait_ready()
        if not self.driver.finish(timeout=30):
            self.trouble.append("the load did not end its sessions within 30 s")
        print("seed %d: %.0f s of load, faults run: %s; driver: %s" %
              (seed, time.monotonic() - t0, ", ".join(ran) or "none", self.driver.stats))
        # A clean stop writes the open minutes and window (partial); the next run delivers them.
        if self.agent is not None:
            rc = self.agent.stop()
            if rc != 0:
                self.trouble.append("the agent's clean stop exited %s" % rc)
        self.agent = None
        self.start_agent("the drain")
        last = None
        if self.agent is not None:
            self.agent.wait_connected(timeout=30)
            last = self.last_seq()

        def caught_up():
            have = {p for p in self.seqs(out)}
            return last is not None and all(s in have for s in range(1, last + 1))
        drain = min(DRAIN_TIMEOUT_S, harness.SCRIPT_DEADLINE_S - (time.monotonic() - SCRIPT_START) - 30)
        if not harness.wait_for(caught_up, max(drain, 1), interval=0.5):
            self.trouble.append("the consumer did not get seq 1..%s within %.0f s" % (last, drain))
        v = judge(seed, env, jose, out, env.path("driver.jsonl"), last or 0, harness.ctl_binary())
        v.row("every fault healed, the agent came back each time", not self.trouble,
              "%d problem(s)" % len(self.trouble), self.trouble)
        BillingFaults.verdicts[seed] = v
        if os.environ.get("RA_KEEP_TMP"):
            print("seed %d: consumer file %s, driver log %s" % (seed, out, env.path("driver.jsonl")))
        failed = v.failed()
        if not failed:
            print(v.table())
            return
        raise VerdictFailure("seed %d FAILED (run it again with RA_FAULT_SEEDS=%d): %s\n%s" %
                             (seed, seed, "; ".join("%s: %s" % (r[0], r[2]) for r in failed), v.table(show_items=20)))

    @staticmethod
    def seqs(path):
        out = []
        for _, line in read_consumer_file(path)[0]:
            try:
                out.append(json.loads(b64url(json.loads(line)["payload"]))["seq"])
            except (ValueError, KeyError, TypeError):
                pass
        return out


def seed_test(seed):
    """test_seed_<seed>. A verdict that fails says all there is to say; anything else (a process
    that would not start, the script's deadline) also shows the processes' logs."""
    def test(self):
        try:
            self.run_seed(seed)
        except VerdictFailure:
            raise
        except BaseException:
            sys.stderr.write("\n===== seed %d failed before its verdict; context =====\n%s\n===== end of context "
                             "=====\n" % (seed, self.env.describe()))
            raise
    test.__name__ = "test_seed_%d" % seed
    test.__doc__ = "load and faults from seed %d; the consumer's records against the driver's acks" % seed
    return test


for _seed in SEEDS:
    setattr(BillingFaults, "test_seed_%d" % _seed, seed_test(_seed))


if __name__ == "__main__":
    harness.main()
