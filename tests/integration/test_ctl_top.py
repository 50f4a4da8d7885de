#!/usr/bin/env python3
"""test_ctl_top: `render-agentctl top` in a real terminal (tmux: send-keys, capture-pane) against a
real agent: the host line and one line per slot with its user, state and bars, a key re-sorts, q
quits and gives the terminal back; and the plain table, once, when stdout is not a terminal."""

import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SLOTS = [{"id": "s0", "scale": "cpu-4", "iface": "lo"}, {"id": "s1", "scale": "cpu-8"}]


class CtlTop(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        env = self.env
        broker = env.broker()
        self.agent = env.agent(env.config(broker.port, interval_ms=500, slots=SLOTS))
        self.agent.wait_connected()
        self.sock = env.path("agent.sock")
        harness.wait_for(lambda: os.path.exists(self.sock), 10, what="control socket")
        for argv in (["reserve", "alice", "--slot", "s1"], ["start", "alice"]):
            r = env.run([harness.ctl_binary(), "--socket", self.sock] + argv)
            self.assertEqual(r.returncode, 0, r.stderr)

    def tmux(self, *args, check=True):
        r = subprocess.run(["tmux", "-L", self.tmux_sock] + list(args), capture_output=True, text=True,
                           timeout=10)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top").stdout

    def wait_screen(self, pred, what):
        got = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = self.screen()
            if pred(got):
                return got
            time.sleep(0.1)
        self.fail("%s: the screen shows:\n%s" % (what, got))

    def test_top_in_a_terminal_shows_each_slot_resorts_on_a_key_and_quits_on_q(self):
        self.assertTrue(shutil.which("tmux"), "tmux not installed (scripts/lib/common.sh RA_RUN_PACKAGES)")
        self.tmux_sock = "ra-top-%d" % os.getpid()
        self.addCleanup(lambda: self.tmux("kill-server", check=False))
        done = self.env.path("top.exit")
        # The pane runs top, then records its exit status and waits, so that the screen it left
        # (the terminal given back) can be read after it quit.
        cmd = "%s --socket %s top; echo $? > %s; echo TOP-EXITED; sleep 30" % (
            harness.ctl_binary(), self.sock, done)
        self.tmux("new-session", "-d", "-s", "top", "-x", "200", "-y", "30", cmd)
        got = self.wait_screen(lambda s: "s1" in s and "alice" in s, "no slot lines")
        self.assertRegex(got, r"render-agent \S+ +node %s in %s" % (self.env.node, self.env.region))
        self.assertRegex(got, r"(?m)^host +CPU ")
        self.assertRegex(got, r"(?m)^SLOT +SCALE +STATE +USER +AGE +CPU +MEMORY +VRAM +GPU +BANDWIDTH +FPS +LAT_MS +CAP_FPS +VIEWERS")
        self.assertRegex(got, r"(?m)^s0 +cpu-4 +free +- +- ")
        self.assertRegex(got, r"(?m)^s1 +cpu-8 +active +alice +\d+m\d\ds ")
        self.assertIn("sorted by slot", got)
        # It refreshes: the clock in the header moves on.
        first = got.splitlines()[0]
        self.wait_screen(lambda s: s.splitlines()[0] != first, "the view did not refresh within 10 s")
        self.tmux("send-keys", "-t", "top", "b")
        self.wait_screen(lambda s: "sorted by bandwidth" in s, "b did not sort by bandwidth")
        self.tmux("send-keys", "-t", "top", "q")
        got = self.wait_screen(lambda s: "TOP-EXITED" in s, "q did not quit")
        self.assertEqual(open(done).read().strip(), "0")
        self.assertNotIn("SLOT", got)  # the alternate screen is gone: the shell's screen is back
        self.assertTrue(self.agent.alive())

    def test_top_prints_a_plain_table_once_when_stdout_is_not_a_terminal(self):
        r = self.env.run([harness.ctl_binary(), "--socket", self.sock, "top"], timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\033", r.stdout)
        self.assertNotIn("keys:", r.stdout)
        lines = r.stdout.splitlines()
        self.assertRegex(r.stdout, r"(?m)^SLOT +SCALE +STATE +USER")
        self.assertEqual([line.split()[0] for line in lines if line.startswith("s")], ["s0", "s1"])
        self.assertRegex(r.stdout, r"(?m)^s1 +cpu-8 +active +alice ")
        r = self.env.run([harness.ctl_binary(), "--socket", self.sock, "top", "extra"], timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn('top: unexpected argument "extra"', r.stderr)


if __name__ == "__main__":
    harness.main()
