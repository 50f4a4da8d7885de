#!/usr/bin/env python3
"""test_control_input: what comes in on the control socket, with a real agent (issue 16). A change
sent just before the client shuts its side down (shutdown(SHUT_WR), `nc -N`) is carried out and
answered; a request with a key twice or a second object after it is refused and not run, and an
"id" that is not UTF-8 is not echoed; control.read keeps user ids and client addresses from
socket-group members it does not list (real unprivileged users made with useradd, run as root);
--check-config names a bad control.read entry."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PY = "/usr/bin/python3"
ONE_SLOT = [{"id": "s0", "scale": "cpu-4"}]

# One request, one reply line on stdout (run as another user).
ONE = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline(), end="", flush=True)
"""


def run_cmd(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), r.returncode, r.stderr))


def raw(path, data, half_close=False, timeout=10.0):
    """Sends bytes on a connection of its own; returns every byte the agent sent until it closed
    the connection, or until `timeout` passed without it doing so (then with what came)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            got += chunk
            if not half_close and got.endswith(b"\n"):
                break
        return got
    finally:
        s.close()


def code(reply):
    return None if reply["ok"] else reply["error"]["code"]


class ControlInput(harness.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        cls.made_users, cls.made_groups = [], []
        if os.geteuid() != 0 or not shutil.which("useradd"):
            return
        tag = os.getpid()
        cls.sock_group = "ra-ci-sock-%d" % tag  # may connect to the socket (as render-agent)
        cls.read_group = "ra-ci-read-%d" % tag  # in control.read
        cls.ops_group = "ra-ci-ops-%d" % tag    # in control.allow
        cls.ro = "ra-ci-ro-%d" % tag            # socket group only
        cls.reader = "ra-ci-rd-%d" % tag        # socket group, and the read group as a supplementary one
        cls.op = "ra-ci-op-%d" % tag            # socket group, and the ops group
        try:
            for g in (cls.sock_group, cls.read_group, cls.ops_group):
                run_cmd(["groupadd", g])
                cls.made_groups.append(g)
            for user, groups in ((cls.ro, [cls.sock_group]), (cls.reader, [cls.sock_group, cls.read_group]),
                                 (cls.op, [cls.sock_group, cls.ops_group])):
                cls.made_users.append(user)
                cls.made_groups.append(user)
                run_cmd(["useradd", "--system", "-M", "-U", "-s", "/usr/sbin/nologin", "-G", ",".join(groups),
                         user])
        except BaseException:
            cls.tearDownClass()  # unittest does not when setUpClass fails
            raise
        import grp
        cls.sock_gid = grp.getgrnam(cls.sock_group).gr_gid

    @classmethod
    def tearDownClass(cls):
        for u in cls.made_users:
            r = subprocess.run(["userdel", "-f", u], capture_output=True, text=True)
            if r.returncode != 0:
                sys.stderr.write("warning: cannot remove user %s: %s" % (u, r.stderr))
        for g in cls.made_groups:
            if subprocess.run(["getent", "group", g], capture_output=True).returncode == 0:
                subprocess.run(["groupdel", g], capture_output=True)

    def start_agent(self, control=None):
        env = self.env
        broker = env.broker()
        ctl = {"socket": env.path("agent.sock")}
        ctl.update(control or {})
        cfg = env.config(broker.port, interval_ms=500, slots=ONE_SLOT, extra={"control": ctl})
        agent = env.agent(cfg)
        agent.wait_connected()
        sock = env.path("agent.sock")
        harness.wait_for(lambda: os.path.exists(sock), 10, what="control socket")
        return agent, sock, cfg

    def needs_users(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: the test makes users and groups and runs as them")
        for tool in ("setpriv", "useradd"):
            if not shutil.which(tool):
                self.skipTest("%s not installed" % tool)

    def request(self, who, sock, op, **fields):
        """One request as user `who`; the reply line as it came (text)."""
        r = subprocess.run(["setpriv", "--reuid", who, "--regid", who, "--init-groups", "--", PY, "-c", ONE, sock,
                            json.dumps(dict(fields, op=op))], capture_output=True, text=True, timeout=20, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    # -------------------------------------------------------------------------------------- tests

    def test_a_change_sent_before_a_half_close_is_carried_out_and_answered(self):
        agent, sock, _ = self.start_agent()
        # `echo '{"op":"reserve",...}' | nc -NU agent.sock`: the reply waits for the state to be
        # written, which comes after the agent has read the end of the input.
        got = raw(sock, b'{"id":1,"op":"reserve","user":"alice","client_ip":"192.0.2.10"}\n', half_close=True)
        self.assertTrue(got.endswith(b"\n"), "no reply before the agent closed the connection: %r" % got)
        lines = got.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        r = json.loads(lines[0])
        self.assertTrue(r["ok"], r)
        self.assertEqual((r["id"], r["user"], r["state"]), (1, "alice", "reserved"))
        slot = harness.control_ask(sock, "slots")["slots"][0]
        self.assertEqual((slot["state"], slot["user"]), ("reserved", "alice"))
        got = raw(sock, b'{"id":2,"op":"drain"}\n', half_close=True)
        self.assertTrue(got.endswith(b"\n"), "no reply before the agent closed the connection: %r" % got)
        self.assertTrue(json.loads(got)["ok"], got)
        self.assertEqual(code(harness.control_ask(sock, "reserve", user="bob")), "DRAINING")
        self.assertTrue(agent.alive())

    def test_a_key_twice_or_a_second_object_is_refused_and_not_run(self):
        agent, sock, _ = self.start_agent()
        r = json.loads(raw(sock, b'{"id":1,"op":"drain","op":"status"}\n'))
        self.assertEqual(r, {"id": None, "ok": False, "error": {
            "code": "BAD_REQUEST", "message": 'request has the key "op" twice in the top-level object'}})
        r = json.loads(raw(sock, b'{"id":2,"op":"drain"} {"op":"status"}\n'))
        self.assertEqual(r, {"id": None, "ok": False, "error": {
            "code": "BAD_REQUEST",
            "message": "request has data after its JSON object, at byte 22 (one object per line)"}})
        self.assertFalse(harness.control_ask(sock, "status")["status"]["sessions"]["draining"])
        self.assertTrue(harness.control_ask(sock, "reserve", user="bob")["ok"])  # not drained
        # An id that is not UTF-8 is not echoed: the reply is UTF-8 and says where the byte was.
        got = raw(sock, b'{"id":"\xff\xfe","op":"status"}\n')
        r = json.loads(got.decode("utf-8"))
        self.assertEqual((r["id"], r["error"]["message"]), (None, "request is not valid UTF-8: byte 0xFF at byte 7"))
        got = raw(sock, b'{"id":"\\u001b]0;owned\\u0007","op":"status"}\n')
        r = json.loads(got)
        self.assertEqual((r["id"], r["error"]["message"]), (None, '"id" has a control character (U+001B)'))
        self.assertTrue(agent.alive())

    def test_control_read_keeps_user_ids_and_addresses_from_unlisted_socket_members(self):
        self.needs_users()
        agent, sock, cfg = self.start_agent({"allow": ["group:" + self.ops_group],
                                             "read": ["group:" + self.read_group]})
        os.chmod(self.env.dir, 0o711)
        os.chown(sock, 0, self.sock_gid)
        os.chmod(sock, 0o660)
        r = harness.control_ask(sock, "reserve", user="alice", client_ip="192.0.2.10")
        self.assertTrue(r["ok"], r)
        # A socket-group member not in control.read nor control.allow reads the slots and the
        # health, without who is on them.
        for op in ("slots", "sessions", "status"):
            line = self.request(self.ro, sock, op)
            r = json.loads(line)
            self.assertTrue(r["ok"], r)
            self.assertTrue(r.get("redacted"), r)
            self.assertNotIn("alice", line)
            self.assertNotIn("192.0.2.10", line)
        slot = json.loads(self.request(self.ro, sock, "slots"))["slots"][0]
        self.assertEqual(slot["state"], "reserved")
        self.assertNotIn("user", slot)
        # control.read (a supplementary group), control.allow and root read everything.
        for who in (self.reader, self.op):
            r = json.loads(self.request(who, sock, "slots"))
            self.assertNotIn("redacted", r)
            self.assertEqual((r["slots"][0]["user"], r["slots"][0]["client_ip"]), ("alice", "192.0.2.10"), who)
        r = harness.control_ask(sock, "sessions")
        self.assertNotIn("redacted", r)
        self.assertEqual(r["sessions"][0]["user"], "alice")
        # control.read changes nothing about who may change sessions.
        r = json.loads(self.request(self.reader, sock, "drain"))
        self.assertEqual(code(r), "FORBIDDEN", r)
        # Without control.read (after a reload), every socket-group member reads everything again.
        with open(cfg) as f:
            doc = json.load(f)
        del doc["control"]["read"]
        harness.write_atomic(cfg, json.dumps(doc))
        start = agent.line_count()
        agent.proc.send(harness.signal.SIGHUP)
        agent.wait_log(r"configuration reloaded", start=start)
        r = json.loads(self.request(self.ro, sock, "slots"))
        self.assertNotIn("redacted", r)
        self.assertEqual(r["slots"][0]["user"], "alice")
        self.assertTrue(agent.alive())

    def test_check_config_names_a_bad_control_read_entry(self):
        env = self.env
        for entries, want in (
                (["group:ra-no-such-group-ci"], 'control.read[0]: no group "ra-no-such-group-ci" on this host'),
                (["uid:0", "operators"],
                 'control.read[1]: must be "user:NAME", "group:NAME", "uid:N" or "gid:N"'),
                ("group:root", "control.read: must be an array of at most 32 entries")):
            path = env.config(1883, name="check.json", slots=ONE_SLOT, extra={"control": {"read": entries}})
            r = env.run([harness.agent_binary(), "--check-config", "--config", path])
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(want, r.stderr)
        path = env.config(1883, name="check.json", slots=ONE_SLOT, extra={"control": {"read": ["uid:0", "group:root"]}})
        r = env.run([harness.agent_binary(), "--check-config", "--config", path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    harness.main()
