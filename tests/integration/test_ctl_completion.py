#!/usr/bin/env python3
"""test_ctl_completion: the bash completion the package installs for render-agentctl, run in a
real bash: commands (events, top, bundle among them), each command's options, file names where
a path goes, and the running agent's slot ids after --slot and unblock."""

import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging",
                      "render-agentctl.bash-completion")
SLOTS = [{"id": "s0", "scale": "cpu-4"}, {"id": "s1", "scale": "cpu-8"}]


class Completion(harness.IntegrationTest):
    def complete(self, *words):
        """What completing the last of `words` offers (sorted)."""
        arr = " ".join("'%s'" % w for w in ("render-agentctl",) + words)
        script = '. "$1"; COMP_WORDS=(%s); COMP_CWORD=%d; _render_agentctl; printf "%%s\\n" "${COMPREPLY[@]}"' % (
            arr, len(words))
        env = dict(os.environ, PATH=os.path.dirname(harness.ctl_binary()) + ":" + os.environ["PATH"])
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", SCRIPT], capture_output=True,
                           text=True, timeout=20, env=env, cwd=self.env.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(w for w in r.stdout.splitlines() if w)

    def test_every_command_and_option_of_the_help_completes(self):
        # --help is made from the ops table (and the commands that are not ops): the completion's
        # list is written by hand, so it is held to it here, command by command.
        r = subprocess.run([harness.ctl_binary(), "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        body = r.stdout.split("\nOptions:")[0]
        helped = {}
        for line in body.splitlines():
            m = re.match(r"^  ([a-z][a-z-]*)(.*)$", line)
            if m:
                usage = m.group(2).split("   ")[0]  # the text after three spaces is its help
                helped[m.group(1)] = set(re.findall(r"--[a-z-]+", usage))
                if "TARGET" in usage:
                    helped[m.group(1)] |= {"--session", "--user", "--slot"}
        self.assertGreater(len(helped), 20, body)
        self.assertEqual(self.complete(""), sorted(helped))
        for cmd, opts in sorted(helped.items()):
            if cmd in ("unblock", "top"):  # a slot id; nothing
                continue
            got = set(self.complete(cmd, "--"))
            self.assertTrue(opts <= got, "%s: --help has %s, completion offers %s" % (cmd, sorted(opts), sorted(got)))

    def test_commands_options_files_and_slot_ids_complete(self):
        self.assertEqual(self.complete("e"), ["end", "enroll", "events"])
        self.assertEqual(self.complete("t"), ["top"])
        self.assertEqual(self.complete("b"), ["bundle"])
        self.assertIn("sessions", self.complete(""))
        self.assertEqual(self.complete("--s"), ["--socket"])
        self.assertEqual(self.complete("events", "--"), ["--follow", "--since"])
        self.assertEqual(self.complete("--json", "bundle", "--"),
                         ["--config", "--journal-lines", "--output", "--records"])
        self.assertEqual(self.complete("heartbeat", "alice", "--i"), ["--input"])
        open(self.env.path("bundle-here.tar.gz"), "w").close()
        self.assertEqual(self.complete("bundle", "-o", "bundle-h"), ["bundle-here.tar.gz"])
        self.assertEqual(self.complete("events", "--since", ""), [])
        # Slot ids come from the running agent named by --socket.
        env = self.env
        broker = env.broker()
        agent = env.agent(env.config(broker.port, interval_ms=500, slots=SLOTS))
        agent.wait_connected()
        sock = env.path("agent.sock")
        harness.wait_for(lambda: os.path.exists(sock), 10, what="control socket")
        self.assertEqual(self.complete("--socket", sock, "reserve", "alice", "--slot", ""), ["s0", "s1"])
        self.assertEqual(self.complete("--socket", sock, "unblock", "s"), ["s0", "s1"])
        self.assertEqual(self.complete("--socket", env.path("nothing.sock"), "unblock", ""), [])


if __name__ == "__main__":
    harness.main()
