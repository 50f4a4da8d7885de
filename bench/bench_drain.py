#!/usr/bin/env python3
"""bench_drain: how fast a node empties its metering spool into a loopback TLS mosquitto.

The agent makes records with the broker down (admission cycles over the control socket: a
session_start and a session_end each), then the broker comes back and the time until the spool
holds nothing unacknowledged is measured: records signed (ES256), published at QoS 1 and
acknowledged per second. Prints a table; never a pass/fail.

Usage: bench_drain.py [RECORDS]   (RA_AGENT, RA_CTL: the binaries; see tests/integration/harness.py)
"""

import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
from test_sessions import Client  # noqa: E402


def status(sock):
    try:
        c = Client(sock)
        st = c.call("status")["status"]
        c.close()
        return st
    except (OSError, ConnectionError):
        return None


def main():
    want = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    with harness.Env("bench-drain") as env:
        broker = env.broker()
        cfg = env.config(broker.port, slots=[{"id": "s%d" % i, "scale": "cpu-4"} for i in range(2)],
                         extra={"metering": {"window_s": 3600, "inflight": 256}}, interval_ms=1000)
        agent = env.agent(cfg, args=["--log-level", "notice"])
        agent.wait_connected()
        sock = env.path("agent.sock")
        harness.wait_for(lambda: status(sock) and all(s.get("conformant") for s in status(sock)["slots"]), 10,
                         what="slots planned")
        broker.stop()
        c = Client(sock)
        t0 = time.monotonic()
        n = 0
        while status(sock)["metering"]["spool"]["pending"] < want:
            for _ in range(100):
                n += 1
                s = c.call("reserve", user="u%d" % n, slot="s0")["session"]
                c.call("start", session=s)
                c.call("end", session=s)
        made_s = time.monotonic() - t0
        c.close()
        pending = status(sock)["metering"]["spool"]["pending"]
        broker.restart()
        # A fresh agent connects at once; the old one may be deep in its reconnect backoff.
        agent.proc.kill()
        agent = env.agent(cfg, args=["--log-level", "notice"])
        agent.wait_connected()
        t1 = time.monotonic()
        harness.wait_for(lambda: (status(sock) or {"metering": {"spool": {"pending": 1}}})["metering"]["spool"]
                         ["pending"] == 0, 600, interval=0.02, what="spool drained")
        drain_s = time.monotonic() - t1
        cpu = harness.cpu_seconds(agent.pid)
        print("%-44s %s" % ("records in the spool", pending))
        print("%-44s %.0f records/s (%d admission cycles, broker down)" % ("made and spooled", pending / made_s, n))
        print("%-44s %.2f s" % ("drained (signed, published QoS 1, acked)", drain_s))
        print("%-44s %.0f records/s" % ("drain rate", pending / drain_s))
        print("%-44s %.2f s" % ("agent CPU during start + drain", cpu))


if __name__ == "__main__":
    main()
