#!/usr/bin/env python3
"""test_security: issue 16's four ways in, with real unprivileged users (made here with useradd,
removed at the end; run as root). control.allow group: entries match the groups a peer had when it
connected, never those of whoever holds its pid at request time; one user of the socket group
cannot take every control connection (a limit per uid, a reserve for peers allowed to change
sessions, a deadline on a request line); a retained command is not run again after a restart, an
"id" is run once and an "expires" is kept; a slot cgroup of "." is refused before it could SIGKILL
every process of the cgroup root."""

import json
import os
import select
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PY = "/usr/bin/python3"
FIXTURE_ROOT = os.path.join(harness.FIXTURES, "x86-cpu")
ONE_SLOT = [{"id": "s0", "scale": "cpu-4"}]

# One request, one reply line on stdout.
ONE = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline(), end="", flush=True)
"""

# Connects, hands the connection to a child and exits (printing its pid). The child sends the
# request once told "go" on stdin and prints the reply.
HANDOFF = r"""
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
if os.fork():
    print(os.getpid(), flush=True)
    os._exit(0)
if sys.stdin.readline() != "go\n":
    os._exit(1)
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline(), end="", flush=True)
"""

# Opens n connections and says (one JSON line) how many the agent kept and what the others were
# told. Told "go", it starts a request line on every kept one and trickles a byte into each every
# 0.2 s, and says (one JSON line) after how long and with what line the agent closed each.
FLOOD = r"""
import json, select, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    conns.append(s)
time.sleep(1.5)
held, refused = [], []
for s in conns:
    if select.select([s], [], [], 0)[0]:
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        refused.append(data.decode())
        s.close()
    else:
        held.append(s)
print(json.dumps({"held": len(held), "refused": refused}), flush=True)
if sys.stdin.readline() != "go\n":
    sys.exit(1)
t0 = time.monotonic()
for s in held:
    s.sendall(b'{"op":')
closed, lines = {}, {}
while len(closed) < len(held) and time.monotonic() - t0 < 15:
    for i, s in enumerate(held):
        if i in closed:
            continue
        try:
            if select.select([s], [], [], 0)[0]:
                data = s.recv(4096)
                if not data:
                    closed[i] = time.monotonic() - t0
                    continue
                lines[i] = lines.get(i, "") + data.decode()
            s.sendall(b" ")
        except OSError:
            closed[i] = time.monotonic() - t0
    time.sleep(0.2)
print(json.dumps({"closed_after": sorted(closed.values()), "open": len(held) - len(closed),
                  "lines": sorted(set(lines.values()))}), flush=True)
"""


def run_cmd(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), r.returncode, r.stderr))


def code(reply):
    return None if reply["ok"] else reply["error"]["code"]


class Security(harness.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        cls.made_users, cls.made_groups = [], []
        if os.geteuid() != 0:
            return
        tag = os.getpid()
        cls.sock_group = "ra-sec-sock-%d" % tag  # may connect to the socket (as render-agent)
        cls.ops_group = "ra-sec-ops-%d" % tag    # in control.allow
        cls.ro = "ra-sec-ro-%d" % tag            # socket group only
        cls.op = "ra-sec-op-%d" % tag            # socket group, and the ops group as a supplementary one
        try:
            for g in (cls.sock_group, cls.ops_group):
                run_cmd(["groupadd", g])
                cls.made_groups.append(g)
            for user, groups in ((cls.ro, [cls.sock_group]), (cls.op, [cls.sock_group, cls.ops_group])):
                cls.made_users.append(user)
                cls.made_groups.append(user)
                run_cmd(["useradd", "--system", "-M", "-U", "-s", "/usr/sbin/nologin", "-G", ",".join(groups),
                         user])
        except BaseException:
            cls.tearDownClass()  # unittest does not when setUpClass fails
            raise
        import grp
        import pwd
        cls.sock_gid = grp.getgrnam(cls.sock_group).gr_gid
        cls.ops_gid = grp.getgrnam(cls.ops_group).gr_gid
        cls.ro_uid = pwd.getpwnam(cls.ro).pw_uid
        cls.op_uid, cls.op_gid = pwd.getpwnam(cls.op).pw_uid, pwd.getpwnam(cls.op).pw_gid

    @classmethod
    def tearDownClass(cls):
        # -f: a process of the user that has not been reaped yet must not keep the user alive.
        for u in cls.made_users:
            r = subprocess.run(["userdel", "-f", u], capture_output=True, text=True)
            if r.returncode != 0:
                sys.stderr.write("warning: cannot remove user %s: %s" % (u, r.stderr))
        for g in cls.made_groups:
            if subprocess.run(["getent", "group", g], capture_output=True).returncode == 0:
                subprocess.run(["groupdel", g], capture_output=True)

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root: the test makes users and groups and runs as them")
        for tool in ("setpriv", "useradd"):
            if not shutil.which(tool):
                self.skipTest("%s not installed" % tool)

    # ------------------------------------------------------------------------------------ helpers

    def track(self, p):
        """Kills and reaps p at the end of the test, closing its pipes."""
        def done():
            p.kill()
            p.wait()
            for f in (p.stdin, p.stdout):
                if f:
                    f.close()
        self.addCleanup(done)
        return p

    def as_user(self, user):
        return ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--"]

    def start_agent(self, broker, extra=None, slots=ONE_SLOT, args=None):
        control = {"socket": self.env.path("agent.sock"), "allow": ["group:" + self.ops_group]}
        control.update((extra or {}).pop("control", {}))
        cfg = self.env.config(broker.port, interval_ms=500, slots=slots, extra=dict(extra or {}, control=control))
        agent = self.env.agent(cfg, args=args)
        agent.wait_connected()
        sock = self.env.path("agent.sock")
        harness.wait_for(lambda: os.path.exists(sock), 10, what="control socket")
        # As the socket unit sets it up: group render-agent (here the socket group), mode 0660.
        os.chmod(self.env.dir, 0o711)
        os.chown(sock, 0, self.sock_gid)
        os.chmod(sock, 0o660)
        return agent, sock, cfg

    def request(self, who, sock, op, **fields):
        r = subprocess.run(self.as_user(who) + [PY, "-c", ONE, sock, json.dumps(dict(fields, op=op))],
                           capture_output=True, text=True, timeout=20, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def handoff(self, user, sock, op):
        """Starts HANDOFF as user; returns (its child, the pid that connected, reaped)."""
        p = self.track(subprocess.Popen(self.as_user(user) + [PY, "-c", HANDOFF, sock, json.dumps({"op": op})],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/"))
        pid = int(p.stdout.readline())
        self.assertEqual(pid, p.pid)  # setpriv execs: the pid that connected is Popen's
        self.assertEqual(p.wait(timeout=10), 0)
        return p, pid

    def go(self, p):
        p.stdin.write("go\n")
        p.stdin.flush()
        ready = select.select([p.stdout], [], [], 10)[0]
        self.assertTrue(ready, "no reply from the handed-off connection")
        return json.loads(p.stdout.readline())

    def hold_pid(self, pid, groups, uid, gid):
        """Forks a process with exactly `pid` (ns_last_pid) that takes uid, gid and groups and
        waits; returns the pipe end that releases it, or None when another process got the pid."""
        r, w = os.pipe()
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
        except OSError as e:
            os.close(r)
            os.close(w)
            self.skipTest("cannot choose the next pid (/proc/sys/kernel/ns_last_pid: %s)" % e)
        child = os.fork()
        if child == 0:
            try:
                os.close(w)
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(uid)
                os.read(r, 1)
            finally:
                os._exit(0)
        os.close(r)
        if child != pid:
            os.close(w)
            os.waitpid(child, 0)
            return None
        self.addCleanup(lambda: os.waitpid(child, 0))
        self.addCleanup(lambda: os.close(w))

        def in_place():
            status = harness.read_text("/proc/%d/status" % pid)
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            return (fields["Uid"].split()[0] == str(uid) and
                    [int(g) for g in fields["Groups"].split()] == list(groups))
        self.assertTrue(harness.wait_for(in_place, 5), "pid %d did not take uid %d and groups %s" % (pid, uid, groups))
        return w

    # -------------------------------------------------------------------------------------- tests

    def test_group_entries_match_the_groups_at_connect(self):
        broker = self.env.broker()
        agent, sock, _ = self.start_agent(broker)
        # A supplementary group in control.allow lets its members change sessions; the socket
        # group alone lets them read.
        self.assertTrue(self.request(self.op, sock, "drain")["ok"])
        self.assertTrue(self.request(self.op, sock, "undrain")["ok"])
        self.assertTrue(self.request(self.ro, sock, "slots")["ok"])
        r = self.request(self.ro, sock, "drain")
        self.assertEqual(code(r), "FORBIDDEN", r)
        self.assertIn("uid %d is not root, the agent's user, or in control.allow" % self.ro_uid,
                      r["error"]["message"])
        # The connection of an allowed user, handed to a child after its maker exited: who connected
        # decides, not whether that pid is still there.
        p, _ = self.handoff(self.op, sock, "drain")
        r = self.go(p)
        self.assertTrue(r["ok"], r)
        self.assertEqual(code(harness.control_ask(sock, "reserve", user="zoe")), "DRAINING")
        self.assertTrue(agent.alive())

    def test_a_reused_pid_does_not_lend_its_groups(self):
        broker = self.env.broker()
        agent, sock, _ = self.start_agent(broker)
        for _ in range(5):
            # A socket-group user not in control.allow connects, hands the fd on and exits...
            p, pid = self.handoff(self.ro, sock, "drain")
            # ...and its pid goes to a process of the allowed group.
            release = self.hold_pid(pid, [self.ops_gid], self.op_uid, self.op_gid)
            if release is None:
                continue
            r = self.go(p)
            self.assertEqual(code(r), "FORBIDDEN", "a reused pid lent its groups to the peer: %s" % r)
            self.assertTrue(harness.control_ask(sock, "reserve", user="zoe")["ok"])  # not drained
            self.assertTrue(agent.alive())
            return
        self.skipTest("another process took the freed pid five times over")

    def test_one_user_cannot_take_every_control_connection(self):
        env = self.env
        broker = env.broker()
        agent, sock, cfg = self.start_agent(broker, slots=ONE_SLOT + [{"id": "s1", "scale": "cpu-4"}])

        def flood():
            p = self.track(subprocess.Popen(self.as_user(self.ro) + [PY, "-c", FLOOD, sock, "70"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/"))
            ready = select.select([p.stdout], [], [], 20)[0]
            self.assertTrue(ready, "the flood did not report")
            return p, json.loads(p.stdout.readline())

        # By default a uid outside control.allow holds 8 connections at once.
        p, got = flood()
        self.assertEqual(got["held"], 8, got)
        self.assertEqual(set(got["refused"]), {
            '{"id":null,"ok":false,"error":{"code":"SLOW_DOWN","message":"too many control connections for '
            'uid %d (at most 8 at once)"}}\n' % self.ro_uid}, got)
        r = self.request(self.op, sock, "reserve", user="alice")
        self.assertTrue(r["ok"], r)
        p.kill()
        p.wait()
        # With the most one uid may hold (48), the last 16 connections stay for those allowed to
        # change sessions: the orchestrator still gets in, and so does root.
        with open(cfg) as f:
            doc = json.load(f)
        doc["control"]["clients_per_user"] = 48
        harness.write_atomic(cfg, json.dumps(doc))
        start = agent.line_count()
        agent.proc.send(harness.signal.SIGHUP)
        agent.wait_log(r"configuration reloaded", start=start)
        p, got = flood()
        self.assertEqual(got["held"], 48, got)
        self.assertEqual(set(got["refused"]), {
            '{"id":null,"ok":false,"error":{"code":"SLOW_DOWN","message":"too many control clients"}}\n'}, got)
        r = self.request(self.op, sock, "reserve", user="bob")
        self.assertTrue(r["ok"], r)
        self.assertTrue(harness.control_ask(sock, "status")["ok"])
        # Bytes trickled into a line do not keep it open: each is closed 5 s after its line began.
        p.stdin.write("go\n")
        p.stdin.flush()
        ready = select.select([p.stdout], [], [], 30)[0]
        self.assertTrue(ready, "the trickle did not report")
        got = json.loads(p.stdout.readline())
        self.assertEqual(got["open"], 0, got)
        self.assertGreaterEqual(min(got["closed_after"]), 4.5, got)
        self.assertLessEqual(max(got["closed_after"]), 8.0, got)
        self.assertEqual(got["lines"], ['{"id":null,"ok":false,"error":{"code":"BAD_REQUEST","message":'
                                        '"request line not complete within 5 s; connection closed"}}\n'], got)
        self.assertTrue(self.request(self.ro, sock, "status")["ok"])  # room again
        self.assertTrue(agent.alive())

    def test_a_retained_command_is_not_run_again_after_a_restart(self):
        env = self.env
        broker = env.broker()
        sub = env.subscriber(broker, topic=env.topic("cmd/reply"), qos=1)
        agent, sock, cfg = self.start_agent(broker)
        pki = env.pki

        def pub(payload, *extra):
            argv = ["mosquitto_pub", "-h", "localhost", "-p", str(broker.port), "--cafile", pki["ca"],
                    "--cert", pki["client_cert"], "--key", pki["client_key"], "-q", "1", "-V", "311",
                    "-t", env.topic("cmd"), "-m", payload] + list(extra)
            r = env.run(argv)
            self.assertEqual(r.returncode, 0, r.stderr)

        def reply(cid):
            got = sub.wait_doc("/cmd/reply", lambda d: d.get("id") == cid, timeout=10)
            self.assertIsNotNone(got, sub.describe())
            return got[1]

        c = harness.ControlConn(sock)
        self.assertTrue(c.call("reserve", user="alice")["ok"])
        self.assertTrue(c.call("start", user="alice")["ok"])
        # Sent with the retain flag, the command is carried out once, as it is sent...
        pub('{"id":"r1","op":"disconnect","user":"alice","reason":"abuse"}', "-r")
        self.assertEqual(reply("r1")["state"], "free")
        session = c.call("reserve", user="alice")["session"]
        self.assertTrue(c.call("start", user="alice")["ok"])
        c.close()
        # ...and not again when the broker hands it to the restarted agent's new subscription.
        agent.stop()
        agent2 = env.agent(cfg)
        agent2.wait_connected()

        def slot():
            return harness.control_ask(sock, "slots")["slots"][0]
        harness.wait_for(lambda: agent2.matches(r"retained MQTT command ignored") or slot().get("session") != session,
                         10, what="the retained command delivered")
        time.sleep(0.5)
        s = slot()
        self.assertEqual((s.get("user"), s.get("session")), ("alice", session), "the retained command ran again: %s" % s)
        self.assertIn(s["state"], ("active", "grace"))
        agent2.wait_log(r"retained MQTT command ignored \(\d+ bytes\)")
        # An id is carried out once; a command past its "expires" not at all.
        pub('{"id":"once-1","op":"drain"}')
        self.assertTrue(reply("once-1")["ok"])
        pub('{"id":"once-1","op":"drain"}')
        sub.wait_count("/cmd/reply", 3, timeout=10)
        dup = [d for _, d in sub.docs("/cmd/reply") if d.get("id") == "once-1"]
        self.assertEqual(len(dup), 2, dup)
        self.assertEqual(dup[1]["error"]["code"], "DUPLICATE", dup)
        pub(json.dumps({"id": "late-1", "op": "undrain", "expires": int(time.time()) - 60}))
        r = reply("late-1")
        self.assertEqual(r["error"]["code"], "EXPIRED", r)
        self.assertEqual(code(harness.control_ask(sock, "reserve", user="zoe")), "DRAINING")
        pub("", "-r")  # the retained command, cleared

    def test_a_slot_cgroup_of_dot_is_refused_before_it_kills_anything(self):
        env = self.env
        broker = env.broker()
        # A host tree whose cgroup root lists a process of an unprivileged user (the fixture's
        # cgroup root has no cgroup.kill: its pids are SIGKILLed one by one, as on old kernels).
        root = env.path("host")
        shutil.copytree(FIXTURE_ROOT, root, symlinks=True)
        victim = self.track(subprocess.Popen(self.as_user(self.ro) + ["sleep", "60"], cwd="/"))
        with open(os.path.join(root, "sys/fs/cgroup/cgroup.procs"), "w") as f:
            f.write("%d\n" % victim.pid)
        slots = [{"id": "s0", "scale": "cpu-4", "cgroup": "./."}]
        cfg = env.config(broker.port, interval_ms=500, slots=slots,
                         extra={"sessions": {"enforcement": "cgroup_kill"}})
        want = ('slots[0].cgroup: "./." (slot s0) is the root of the cgroup mount itself; a slot\'s cgroup '
                'must be strictly below it, e.g. "render.slice/slot-0.scope"')
        agent = env.agent(cfg, args=["--root", root])
        sock = env.path("agent.sock")
        harness.wait_for(lambda: not agent.alive() or os.path.exists(sock), 15, what="agent started or gone")
        if agent.alive():
            # It took the config: what that costs, shown before the test fails.
            harness.wait_for(lambda: harness.control_ask(sock, "status")["status"]["slots"][0].get("conformant"), 10,
                             what="slot admissible")
            c = harness.ControlConn(sock)
            c.call("reserve", user="alice")
            c.call("start", user="alice")
            c.call("end", user="alice")
            time.sleep(1)
            self.assertIsNone(victim.poll(), "ending a session SIGKILLed a process of the cgroup root")
            self.fail("the agent started with slot cgroup \"./.\"")
        self.assertNotEqual(agent.proc.wait(5), 0)
        agent.wait_log(r"%s" % harness.re.escape(want))
        for cg in (".", "./", "./."):
            slots[0]["cgroup"] = cg
            path = env.config(broker.port, name="check.json", slots=slots)
            r = env.run([harness.agent_binary(), "--check-config", "--config", path])
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn('slots[0].cgroup: "%s" (slot s0) is the root of the cgroup mount itself' % cg, r.stderr)
        self.assertIsNone(victim.poll())


if __name__ == "__main__":
    harness.main()
