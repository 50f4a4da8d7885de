#!/usr/bin/env python3
"""bench_drain: how fast a node empties its metering spool into a loopback TLS mosquitto.

The agent makes records with the broker down (admission cycles over the control socket: a
session_start and a session_end each), then the broker comes back and a fresh agent is started
on the same state (a restart during an outage, the harder case); the time until the spool holds
nothing unacknowledged is measured: records published at QoS 1 and acknowledged per second.

Two backlogs, one after the other:
- signed ahead: the agent had the time to sign the records while the broker was away (at most
  half of one core, idle time: agent/metering/signing.c), and the signatures outlived the restart in the
  signature cache; draining is then publishing.
- unsigned: the signature cache is deleted before the restart, so each record is signed as it is
  published (mbedtls ES256, ~0.35 ms): the case of a backlog made faster than signing ahead goes.
Prints a table; never a pass/fail.

Usage: bench_drain.py [RECORDS]   (RA_AGENT, RA_CTL: the binaries; see tests/integration/harness.py)
"""

import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402


def status(sock):
    try:
        c = harness.ControlConn(sock)
        st = c.call("status")["status"]
        c.close()
        return st
    except (OSError, ConnectionError):
        return None


def metering(sock):
    st = status(sock)
    return st["metering"] if st else None


def make_backlog(sock, want, first_user):
    """Admission cycles until the spool holds `want` records; returns (records, seconds, users)."""
    c = harness.ControlConn(sock)
    t0 = time.monotonic()
    n = first_user
    while metering(sock)["spool"]["pending"] < want:
        for _ in range(100):
            n += 1
            s = c.call("reserve", user="u%d" % n, slot="s0")["session"]
            c.call("start", session=s)
            c.call("end", session=s)
    made_s = time.monotonic() - t0
    c.close()
    return metering(sock)["spool"]["pending"], made_s, n


def drain(env, broker, cfg, agent, sock, delete_cache):
    """The broker back, the agent restarted on the same state: seconds until nothing is pending."""
    broker.restart()
    # A consumer: over MQTT 5, a record nobody subscribed to stays in the spool (PUBACK 0x10,
    # docs/metering.md) and is offered again one at a time, which is not a drain.
    env.subscriber(broker, topic=env.topic("metering"), qos=1)
    # A fresh agent connects at once; the old one may be deep in its reconnect backoff.
    agent.proc.kill()
    if delete_cache:
        os.unlink(env.path("state", "signatures"))
    agent = env.agent(cfg, args=["--log-level", "notice"])
    agent.wait_connected()
    t1 = time.monotonic()
    harness.wait_for(lambda: (metering(sock) or {"spool": {"pending": 1}})["spool"]["pending"] == 0, 600,
                     interval=0.02, what="spool drained")
    drain_s = time.monotonic() - t1
    return agent, drain_s, metering(sock)["signatures"], harness.cpu_seconds(agent.pid)


def main():
    want = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    with harness.Env("bench-drain") as env:
        broker = env.broker()
        cfg = env.config(broker.port, slots=[{"id": "s%d" % i, "scale": "cpu-4"} for i in range(2)],
                         # No pace (metering.redeliver_per_s 0): this measures how fast a node can
                         # drain; the paced rate a fleet uses is bench/fleet_sim's.
                         extra={"metering": {"window_s": 3600, "inflight": 256, "redeliver_per_s": 0}},
                         interval_ms=1000)
        agent = env.agent(cfg, args=["--log-level", "notice"])
        agent.wait_connected()
        sock = env.path("agent.sock")
        harness.wait_for(lambda: status(sock) and all(s.get("conformant") for s in status(sock)["slots"]), 10,
                         what="slots planned")
        users = 0
        rows = []
        for label, cold in (("signed ahead", False), ("unsigned", True)):
            broker.stop()
            pending, made_s, users = make_backlog(sock, want, users)
            t0 = time.monotonic()
            if not cold:
                last = metering(sock)["next_seq"] - 1
                harness.wait_for(lambda: metering(sock)["signatures"]["ahead_upto"] >= last, 600, interval=0.05,
                                 what="the backlog signed ahead")
            ahead_s = time.monotonic() - t0
            agent, drain_s, sig, cpu = drain(env, broker, cfg, agent, sock, cold)
            rows.append((label, pending, made_s, ahead_s, drain_s, sig, cpu))
        print("%-36s %14s %14s" % ("backlog", rows[0][0], rows[1][0]))
        for name, fmt, get in (
                ("records in the spool", "%d", lambda r: r[1]),
                ("made and spooled, records/s", "%.0f", lambda r: r[1] / r[2]),
                ("signing ahead caught up after, s", "%.2f", lambda r: r[3]),
                ("drained in, s", "%.2f", lambda r: r[4]),
                ("drain rate, records/s", "%.0f", lambda r: r[1] / r[4]),
                ("signatures from the cache", "%d", lambda r: r[5]["from_cache"]),
                ("signed when published", "%d", lambda r: r[5]["at_publish"]),
                ("agent CPU, start + drain, s", "%.2f", lambda r: r[6])):
            print("%-36s %14s %14s" % (name, fmt % get(rows[0]), fmt % get(rows[1])))


if __name__ == "__main__":
    main()
