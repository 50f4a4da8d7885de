#!/usr/bin/env python3
"""test_ctl_bundle: `render-agentctl bundle` from a real agent: the tar.gz unpacks to the manifest,
version, the config with secrets removed (file names kept), status/spec/slots/sessions/telemetry/
events as JSON, --probe, the spool's figures and its newest records' headers (no payload), and
holds no PEM private key nor any line of the key files; without an agent it still holds what can
be read, and says what it left out."""

import glob
import json
import os
import sys
import tarfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ONE_SLOT = [{"id": "s0", "scale": "cpu-4"}]


def unpack(path, into):
    with tarfile.open(path, "r:gz") as t:
        names = t.getnames()
        t.extractall(into, filter="data")
    top = {n.split("/")[0] for n in names}
    assert len(top) == 1, top
    return os.path.join(into, top.pop())


def key_lines(path):
    """The base64 lines of a PEM key: none of them may be in a bundle."""
    return [line for line in open(path).read().splitlines() if line and not line.startswith("-----")]


class CtlBundle(harness.IntegrationTest):
    def bundle(self, sock, *args):
        out = self.env.path("b.tar.gz")
        r = self.env.run([harness.ctl_binary(), "--socket", sock, "bundle", "-o", out, "--journal-lines", "50"] +
                         list(args), timeout=60)
        return r, out

    def assert_no_secret(self, root, secrets):
        for path in glob.glob(os.path.join(root, "*")):
            data = open(path, "rb").read().decode("utf-8", "replace")
            self.assertNotIn("PRIVATE KEY-----", data, path)
            for s in secrets:
                self.assertNotIn(s, data, path)

    def test_bundle_from_a_running_agent_holds_the_evidence_and_no_key(self):
        env = self.env
        broker = env.broker()
        cfg = env.config(broker.port, interval_ms=500, slots=ONE_SLOT,
                         extra={"metering": {"window_s": 2, "late_s": 0}})
        agent = env.agent(cfg)
        agent.wait_connected()
        sock = env.path("agent.sock")
        harness.wait_for(lambda: os.path.exists(sock), 10, what="control socket")
        for argv in (["reserve", "alice"], ["start", "alice"], ["end", "alice"]):
            r = env.run([harness.ctl_binary(), "--socket", sock] + argv)
            self.assertEqual(r.returncode, 0, r.stderr)
        r, out = self.bundle(sock)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), out)
        root = unpack(out, env.path("unpacked"))
        files = sorted(os.listdir(root))
        for f in ("manifest.json", "version.txt", "config.json", "status.json", "spec.json", "slots.json",
                  "sessions.json", "telemetry.json", "events.json", "probe.json", "spool.json"):
            self.assertIn(f, files)
        manifest = json.load(open(os.path.join(root, "manifest.json")))
        listed = sorted(f["file"] for f in manifest["files"])
        self.assertEqual(listed, sorted(f for f in files if f != "manifest.json"))
        left_out = {f["file"]: f["why"] for f in manifest["left_out"]}
        self.assertEqual(left_out.get("doctor.json"), "render-agentctl doctor is not in this build")
        config = json.load(open(os.path.join(root, "config.json")))
        self.assertEqual(config["mqtt"]["tls"]["key_file"], env.pki["client_key"])  # where, not what
        status = json.load(open(os.path.join(root, "status.json")))
        self.assertEqual(status["status"]["pid"], agent.pid)
        events = [e["event"] for e in json.load(open(os.path.join(root, "events.json")))["events"]]
        self.assertIn("session_end", events)
        probe = json.load(open(os.path.join(root, "probe.json")))
        self.assertEqual(probe["platform"]["arch"], os.uname().machine)
        spool = json.load(open(os.path.join(root, "spool.json")))
        self.assertTrue(spool["last_records"], spool)
        types = [rec.get("type") for rec in spool["last_records"]]
        self.assertIn("session_start", types, spool)
        for rec in spool["last_records"]:
            self.assertEqual((rec["v"], rec["node"]), (1, env.node), rec)
            self.assertIn("seq", rec)
            self.assertNotIn("user", rec)
            self.assertIn(rec["type"], ("session_start", "session_end", "concurrency_window", "bandwidth_minute",
                                        "session_usage"), rec)
        self.assertNotIn("alice", open(os.path.join(root, "spool.json")).read())  # no payload, so no user
        self.assert_no_secret(root, key_lines(env.pki["client_key"]) + key_lines(env.pki["server_key"]))
        self.assertTrue(agent.alive())

    def test_bundle_without_an_agent_scrubs_secrets_and_says_what_is_missing(self):
        env = self.env
        key = env.pki["client_key"]
        cfg = env.path("weird.json")
        with open(cfg, "w") as f:
            json.dump({"node": {"id": "n1"}, "mqtt": {"password": "hunter2-secret", "tls": {"key_file": key},
                                                      "api_token": "tok-123456"},
                       "inline": open(key).read(), "state_dir": env.path("nostate")}, f)
        r, _ = self.bundle(env.path("absent.sock"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cannot talk to render-agent", r.stderr)
        root = unpack(env.path("b.tar.gz"), env.path("u1"))
        left_out = {f["file"]: f["why"] for f in json.load(open(os.path.join(root, "manifest.json")))["left_out"]}
        self.assertIn("the agent did not answer", left_out["status.json"])
        self.assertIn("no config path", left_out["config.json"])
        os.remove(env.path("b.tar.gz"))
        r, _ = self.bundle(env.path("absent.sock"), "--config", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        root = unpack(env.path("b.tar.gz"), env.path("u2"))
        config = json.load(open(os.path.join(root, "config.json")))
        self.assertEqual(config["mqtt"]["password"], "(removed)")
        self.assertEqual(config["mqtt"]["api_token"], "(removed)")
        self.assertEqual(config["inline"], "(removed)")
        self.assertEqual(config["mqtt"]["tls"]["key_file"], key)
        self.assert_no_secret(root, ["hunter2-secret", "tok-123456"] + key_lines(key))


if __name__ == "__main__":
    harness.main()
