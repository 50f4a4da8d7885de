#!/usr/bin/env python3
"""test_notify: the sd_notify protocol as systemd (Type=notify, WatchdogSec=) sees it: READY=1,
STATUS= lines, WATCHDOG=1 at the pace WATCHDOG_USEC asks for, STOPPING=1 and exit 0 on SIGTERM;
and without NOTIFY_SOCKET the agent runs normally and says nothing about it."""

import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

WATCHDOG_USEC = 400000


class Notify(harness.IntegrationTest):
    def test_ready_status_watchdog_stopping(self):
        env = self.env
        broker = env.broker()
        notify = env.notify_socket()
        cfg = env.config(broker.port, interval_ms=500)
        agent = env.agent(cfg, notify=notify, extra_env={"WATCHDOG_USEC": str(WATCHDOG_USEC)})

        self.assertIsNotNone(notify.wait_key("READY", "1", timeout=10), "no READY=1")
        st = notify.wait_key("STATUS", timeout=5)
        self.assertIsNotNone(st, "no STATUS=")
        self.assertRegex(st[0][1], r"^STATUS=Connecting to localhost:%d$" % broker.port)
        connected = notify.wait_key("STATUS", "Connected to localhost:%d; sampling every 500 ms, telemetry every 500 ms" % broker.port,
                                    timeout=15)
        self.assertIsNotNone(connected, "no STATUS=Connected ...")
        # READY=1 comes once, with the first STATUS, not before the loop runs.
        ready = notify.with_key("READY")
        self.assertEqual(len(ready), 1, ready)

        # Watchdog: systemd wants WATCHDOG=1 within every WATCHDOG_USEC; sd-event sends it at
        # about half of that. Count them over 2 s and check no gap exceeds the timeout.
        t0 = time.monotonic()
        time.sleep(2.0)
        pings = [t for t, _ in notify.with_key("WATCHDOG", since=t0) if t < t0 + 2.0]
        self.assertGreaterEqual(len(pings), 3, "%d WATCHDOG=1 in 2 s with WATCHDOG_USEC=%d" %
                                (len(pings), WATCHDOG_USEC))
        self.assertTrue(all(line == "WATCHDOG=1" for _, line in notify.with_key("WATCHDOG")))
        # No gap may reach the watchdog timeout (systemd would kill the service); 0.2 s of slack
        # for this test's own receiving thread on a loaded machine.
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertLess(max(gaps), WATCHDOG_USEC / 1e6 + 0.2, "watchdog gaps (s): %s" % gaps)

        # SIGTERM: STOPPING=1, exit 0 within 1 s.
        t_term = time.monotonic()
        rc, took = agent.terminate(timeout=1.0)
        self.assertIsNotNone(rc, "still running 1 s after SIGTERM")
        self.assertEqual(rc, 0)
        self.assertIsNotNone(notify.wait_key("STOPPING", "1", since=t_term, timeout=2), "no STOPPING=1")
        agent.check_sanitizers()
        # Nothing from the agent says READY again after STOPPING.
        self.assertEqual(notify.with_key("READY", since=t_term), [])

    def test_reload_notifications(self):
        # SIGHUP: RELOADING=1 (with MONOTONIC_USEC=, which Type=notify-reload in systemd >= 253
        # needs to tie the reload to its request), then READY=1 when done, also after a rejected
        # reload (otherwise systemd waits for the reload to finish until its timeout).
        env = self.env
        broker = env.broker()
        notify = env.notify_socket()
        cfg = env.config(broker.port, interval_ms=500)
        agent = env.agent(cfg, notify=notify)
        self.assertIsNotNone(notify.wait_key("READY", "1", timeout=10), "no READY=1")
        agent.wait_connected()
        for label, text in (("valid", None), ("broken", "{ not json\n")):
            if text is not None:
                harness.write_atomic(cfg, text)
            t_hup = time.monotonic()
            before_us = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
            agent.proc.send(signal.SIGHUP)
            self.assertIsNotNone(notify.wait_key("READY", "1", since=t_hup, timeout=10),
                                 "%s reload: no READY=1 after SIGHUP" % label)
            after_us = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
            grams = [d for t, d in notify.snapshot() if t >= t_hup]
            reloading = [d for d in grams if "RELOADING=1" in d.split("\n")]
            self.assertEqual(len(reloading), 1, "%s reload: datagrams %r" % (label, grams))
            self.assertLess(grams.index(reloading[0]),
                            [i for i, d in enumerate(grams) if "READY=1" in d.split("\n")][0])
            mono = [ln for ln in reloading[0].split("\n") if ln.startswith("MONOTONIC_USEC=")]
            self.assertEqual(len(mono), 1, "%s reload: RELOADING=1 without MONOTONIC_USEC=: %r" %
                             (label, reloading[0]))
            self.assertTrue(before_us <= int(mono[0].split("=", 1)[1]) <= after_us, mono)
        self.assertTrue(agent.alive())

    def test_without_notify_socket(self):
        env = self.env
        broker = env.broker()
        cfg = env.config(broker.port, interval_ms=200)
        agent = env.agent(cfg)  # NOTIFY_SOCKET and WATCHDOG_USEC removed from the environment
        agent.wait_connected()
        sub = env.subscriber(broker)
        self.assertIsNotNone(sub.wait_count("/telemetry", 3, timeout=10), "no telemetry without NOTIFY_SOCKET")
        rc, _ = agent.terminate(timeout=1.0)
        self.assertEqual(rc, 0)
        agent.check_sanitizers()
        noise = [line for line in agent.log_lines()
                 if re.search(r"(?i)notify|watchdog|READY=", line.replace(env.dir, "<tmp>"))]
        self.assertEqual(noise, [], "the agent talks about sd_notify without NOTIFY_SOCKET")
        # The clock_unsynced alarm is about the host (a CI runner's clock may be undisciplined), not
        # about sd_notify: it is the one complaint allowed.
        self.assertEqual([line for line in agent.matches(r": (warning|err|crit|alert|emerg): ")
                          if "metering: the wall clock is unsynchronised" not in line], [])


if __name__ == "__main__":
    harness.main()
