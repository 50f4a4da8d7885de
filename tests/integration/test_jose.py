#!/usr/bin/env python3
"""test_jose: signed metering records interoperate with jose, a JOSE library independent of ours (from
npm, run by node), both ways; render-agentctl enroll makes a key and a CSR that openssl accepts and a CA
can certify; render-agentctl verify gives the right verdict on good, reordered, redelivered, tampered,
gapped, conflicting and broken streams, and on records that name another node than the certificate's CN.

Besides harness.py's variables it reads (ctest passes them):
  RA_JWS_SIGN_TOOL  tests/tools/jws_sign_tool: our signer as a filter (payload lines in, records out)
  RA_JOSE_DIR       where `npm ci` installs tests/jose (a directory in the build tree)
"""

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

JOSE_SRC = os.path.join(harness.SOURCE_DIR, "tests", "jose")
ZEROS = "0" * 64


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def payload_of(record_line):
    return unb64url(json.loads(record_line)["payload"])


def chain_payloads(node, n, first_seq=1, prev=ZEROS, region="r1", types=("session_start", "bandwidth_minute")):
    """n record payloads (bytes) of one node, chained, in the documented member order."""
    out = []
    for k in range(n):
        seq = first_seq + k
        p = ('{"v":1,"type":"%s","node":"%s","region":"%s","seq":%d,"prev":"%s","ts":"2026-12-01T13:%02d:%02d.%03dZ",'
             '"slot":"s0","bytes":%d}' % (types[k % len(types)], node, region, seq, prev, k // 60 % 60, k % 60, k,
                                          1000 * k)).encode()
        out.append(p)
        prev = sha256_hex(p)
    return out


_npm_ready = None


def jose_dir():
    """tests/jose installed with `npm ci` in the build tree (once per run, again when the lock changes)."""
    global _npm_ready
    if _npm_ready:
        return _npm_ready
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise AssertionError("%s is not installed (scripts/test installs nodejs and npm)" % tool)
    d = os.environ.get("RA_JOSE_DIR") or os.path.join(harness.SOURCE_DIR, "build", "jose-interop")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(JOSE_SRC, "package-lock.json"), "rb") as f:
        lock = f.read()
    stamp = os.path.join(d, ".installed-lock-sha256")
    if harness.read_text(stamp) != sha256_hex(lock) or not os.path.isdir(os.path.join(d, "node_modules", "jose")):
        for name in ("package.json", "package-lock.json", "verify.mjs", "sign.mjs"):
            shutil.copy(os.path.join(JOSE_SRC, name), d)
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=d, capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("npm ci in %s failed (%d):\n%s%s" % (d, r.returncode, r.stdout, r.stderr))
        harness.write_atomic(stamp, sha256_hex(lock))
    else:
        for name in ("verify.mjs", "sign.mjs"):  # scripts may change without the lock changing
            shutil.copy(os.path.join(JOSE_SRC, name), d)
    _npm_ready = d
    return d


def tool(var, name):
    path = os.environ.get(var) or os.path.join(harness.SOURCE_DIR, "build", "tests", "tools", name)
    if not os.access(path, os.X_OK):
        raise AssertionError("%s: %s is not built (set %s)" % (name, path, var))
    return path


class Jose(harness.IntegrationTest):
    needs_mqtt = False

    def setUp(self):
        super().setUp()
        self.jose = jose_dir()
        self.sign_tool = tool("RA_JWS_SIGN_TOOL", "jws_sign_tool")
        self.ctl_argv = self._ctl_argv()

    def _ctl_argv(self):
        ctl = harness.ctl_binary()
        if not ctl:
            self.fail("RA_CTL (render-agentctl) is not set")
        return [ctl]

    def ctl(self, *args, stdin=None):
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        r = subprocess.run(self.ctl_argv + list(args), input=stdin, capture_output=True, text=True, timeout=60,
                           env=e, cwd=self.env.dir)
        self.assertNotRegex(r.stderr, harness.SANITIZER_RE)
        return r

    def run_ok(self, argv, stdin=None, cwd=None):
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd or self.env.dir)
        self.assertEqual(r.returncode, 0, "%s failed (%d):\n%s%s" % (argv[:3], r.returncode, r.stdout, r.stderr))
        return r.stdout

    def enroll(self, node="node-1"):
        """Enrols into a temp dir and has the CSR signed by the throwaway CA: (dir, key, cert)."""
        d = self.env.path("state")
        r = self.ctl("enroll", "--node", node, "--dir", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        pki = self.env.pki
        ext = self.env.path("client.ext")
        with open(ext, "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        self.run_ok(["openssl", "x509", "-req", "-in", os.path.join(d, "device.csr"), "-CA", pki["ca"], "-CAkey",
                     os.path.join(pki["dir"], "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", ext, "-out",
                     os.path.join(d, "device.crt")])
        return d, os.path.join(d, "device.key"), os.path.join(d, "device.crt")

    def sign_ours(self, key, payloads, cert=None):
        argv = [self.sign_tool, "--key", key] + (["--cert", cert] if cert else [])
        out = self.run_ok(argv, stdin=b"\n".join(payloads).decode() + "\n")
        return out.splitlines()

    def jose_verify(self, lines, flag, path):
        out = self.run_ok(["node", os.path.join(self.jose, "verify.mjs"), flag, path], stdin="\n".join(lines) + "\n")
        return json.loads(out)

    def cert_kid(self, cert):
        der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], capture_output=True,
                             check=True).stdout
        return b64url(hashlib.sha256(der).digest())

    def verify(self, lines, *args):
        return self.ctl("verify", *args, stdin="\n".join(lines) + "\n")

    def test_enroll_makes_a_private_key_and_a_csr_openssl_accepts(self):
        d, key, _ = self.enroll("render-eu-0001")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        r = subprocess.run(["openssl", "req", "-verify", "-noout", "-text", "-in", os.path.join(d, "device.csr")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"verify OK|self-signature ok")
        self.assertRegex(r.stdout, r"Subject: CN ?= ?render-eu-0001\n")
        self.assertIn("ecdsa-with-SHA256", r.stdout)
        self.assertIn("NIST CURVE: P-256", r.stdout)
        with open(key) as f:
            old = f.read()

        # A second enrolment keeps the key, and says why.
        r = self.ctl("enroll", "--node", "render-eu-0001", "--dir", d)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s/device.key exists: not replacing a device key" % d, r.stderr)
        with open(key) as f:
            self.assertEqual(f.read(), old)

        # --force replaces it, and the node id may come from the config (whose TLS files need not exist yet).
        cfg = self.env.path("agent.json")
        harness.write_atomic(cfg, json.dumps({"node": {"id": "from-config", "region": "r1"},
                                              "mqtt": {"host": "x", "tls": {"cert_file": "nope.crt"}}}))
        r = self.ctl("enroll", "--config", cfg, "--dir", d, "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("wrote %s/device.key" % d, r.stdout)
        self.assertIn("mqtt.tls.cert_file", r.stdout)
        with open(key) as f:
            self.assertNotEqual(f.read(), old)
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        r = subprocess.run(["openssl", "req", "-noout", "-subject", "-in", os.path.join(d, "device.csr")],
                           capture_output=True, text=True)
        self.assertRegex(r.stdout, r"CN ?= ?from-config")

        self.assertEqual(self.ctl("enroll", "--node", "a/b", "--dir", d).returncode, 1)
        self.assertEqual(self.ctl("enroll", "--bogus").returncode, 2)

    def test_our_records_verify_with_jose(self):
        d, key, cert = self.enroll()
        lines = self.sign_ours(key, chain_payloads("node-1", 5), cert=cert)
        doc = self.jose_verify(lines, "--cert", cert)
        self.assertEqual(doc["kid"], self.cert_kid(cert))
        self.assertEqual(len(doc["results"]), 5)
        for k, res in enumerate(doc["results"]):
            self.assertTrue(res["ok"], res)
            self.assertTrue(res["kid_ok"], res)
            rec = json.loads(res["payload"])
            self.assertEqual((rec["v"], rec["node"], rec["seq"]), (1, "node-1", k + 1))
        # The exact member order of the documented payload.
        self.assertEqual(list(json.loads(doc["results"][0]["payload"]))[:7],
                         ["v", "type", "node", "region", "seq", "prev", "ts"])

        # Key only (no certificate): the kid is the key's, and jose agrees with our definition of it.
        pub = self.env.path("device.pub")
        self.run_ok(["openssl", "pkey", "-in", key, "-pubout", "-out", pub])
        doc = self.jose_verify(self.sign_ours(key, chain_payloads("node-1", 2)), "--spki", pub)
        self.assertTrue(all(r["ok"] and r["kid_ok"] for r in doc["results"]), doc)

        # The chain as the agent will build it (jws_sign_tool --chain): jose verifies it, we do too.
        out = self.run_ok([self.sign_tool, "--key", key, "--cert", cert, "--chain", "--node", "node-1", "--region",
                           "r1"], stdin='{"type":"session_start","slot":"s0"}\n{"type":"session_end","slot":"s0"}\n')
        doc = self.jose_verify(out.splitlines(), "--cert", cert)
        self.assertTrue(all(r["ok"] and r["kid_ok"] for r in doc["results"]), doc)
        self.assertEqual(json.loads(doc["results"][1]["payload"])["prev"],
                         sha256_hex(doc["results"][0]["payload"].encode()))
        r = self.verify(out.splitlines(), "--cert", cert)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # A tampered record fails with jose too.
        bad = json.loads(lines[2])
        bad["payload"] = b64url(payload_of(lines[2]).replace(b'"seq":3', b'"seq":9'))
        doc = self.jose_verify([json.dumps(bad)], "--cert", cert)
        self.assertFalse(doc["results"][0]["ok"], doc)
        self.assertIn("signature verification failed", doc["results"][0]["error"])

    def test_jose_records_verify_with_ours(self):
        d, key, cert = self.enroll()
        p8 = self.env.path("device.p8")
        self.run_ok(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", key, "-out", p8])
        payloads = chain_payloads("node-1", 6)
        out = self.run_ok(["node", os.path.join(self.jose, "sign.mjs"), "--key", p8, "--kid", self.cert_kid(cert)],
                          stdin=b"\n".join(payloads).decode() + "\n")
        lines = out.splitlines()
        self.assertEqual(list(json.loads(lines[0])), ["signature", "payload", "protected"])  # jose's order
        r = self.verify(lines, "--cert", cert)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("records: 6 good of 6 lines; 6 unique, 0 duplicates", r.stdout)
        self.assertIn("result: OK", r.stdout)
        # The same records through our --key path: jose signed with the certificate's kid, which a bare
        # key cannot vouch for; the refusal says which kid it expected.
        r = self.verify(lines, "--key", key)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not name the verification key", r.stdout)

    def test_verify_verdicts_on_broken_streams(self):
        d, key, cert = self.enroll()
        payloads = chain_payloads("node-1", 8)
        good = self.sign_ours(key, payloads, cert=cert)

        def verdict(lines, *extra):
            r = self.verify(lines, "--cert", cert, *extra)
            self.assertIn(r.returncode, (0, 1), r.stderr)
            return r

        r = verdict(good)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("node node-1 (region r1): seq 1..8: 8 unique, 0 duplicates", r.stdout)
        self.assertIn("types: bandwidth_minute 4, session_start 4", r.stdout)

        # Reordered, with blank lines: still complete.
        r = verdict(list(reversed(good)) + ["", "   "])
        self.assertEqual(r.returncode, 0, r.stdout)

        # Redelivered (identical): counted, fine.
        r = verdict(good + [good[3], good[3]])
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("8 unique, 2 duplicates", r.stdout)

        # Tampered: the payload changed under its signature.
        bad = json.loads(good[4])
        bad["payload"] = b64url(payload_of(good[4]).replace(b'"bytes":4000', b'"bytes":1'))
        r = verdict(good[:4] + [json.dumps(bad, separators=(",", ":"))] + good[5:])
        self.assertEqual(r.returncode, 1)
        self.assertIn("line 5: signature does not verify", r.stdout)
        self.assertIn("gaps: 1 (1 seq missing): 5", r.stdout)  # the bad record does not count

        # Gapped.
        r = verdict(good[:2] + good[5:])
        self.assertEqual(r.returncode, 1)
        self.assertIn("gaps: 1 (3 seq missing): 3..5", r.stdout)

        # Conflict: a second, different, validly signed seq 4.
        other = payloads[3].replace(b'"bytes":3000', b'"bytes":3001')
        r = verdict(good + self.sign_ours(key, [other], cert=cert))
        self.assertEqual(r.returncode, 1)
        self.assertIn("conflicts (same seq, different payload): 1", r.stdout)

        # Chain break: seq 6 re-signed with a prev that is not seq 5's hash.
        broken = payloads[5].replace(sha256_hex(payloads[4]).encode(), sha256_hex(b"elsewhere").encode())
        r = verdict(good[:5] + self.sign_ours(key, [broken], cert=cert) + good[6:])
        self.assertEqual(r.returncode, 1)
        self.assertIn("seq 6 (line 6): prev is not the SHA-256 of seq 5 (line 5)", r.stdout)

        # alg none and lines that are no JWS are reported by line number; the rest is still checked.
        none = json.dumps({"protected": b64url(b'{"alg":"none"}'), "payload": json.loads(good[1])["payload"],
                           "signature": ""})
        r = verdict([good[0], none, "hello", good[1]] + good[2:], "--json")
        self.assertEqual(r.returncode, 1)
        doc = json.loads(r.stdout)
        self.assertEqual((doc["ok"], doc["records"], doc["lines"]), (False, 8, 10))
        self.assertEqual(doc["bad_lines"]["alg_refused"], 1)
        self.assertEqual(doc["bad_lines"]["not_jws"], 1)
        self.assertEqual([p["line"] for p in doc["bad_line_list"]], [2, 3])

        # Without a key nothing can pass, and it says so.
        r = self.verify(good)
        self.assertEqual(r.returncode, 1)
        self.assertIn("signatures cannot be checked", r.stderr)
        self.assertIn("NOT CHECKED", r.stdout)

        # A file argument, and usage errors.
        path = self.env.path("records.jws")
        with open(path, "w") as f:
            f.write("\n".join(good) + "\n")
        self.assertEqual(self.ctl("verify", "--cert", cert, path).returncode, 0)
        self.assertEqual(self.ctl("verify", "--cert", cert, "--key", key, path).returncode, 2)
        self.assertEqual(self.ctl("verify", "--cert", cert, path, path).returncode, 2)
        r = self.ctl("verify", "--cert", key, path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a certificate", r.stderr)

    def test_verify_flags_a_record_of_another_node_than_the_certificate(self):
        d, key, cert = self.enroll("node-1")
        payloads = chain_payloads("node-1", 4)
        # node-1's complete chain, and a complete chain of node-2's signed with node-1's key: every
        # signature holds, but the certificate vouches for node-1 only.
        lines = self.sign_ours(key, payloads[:2] + chain_payloads("node-2", 2) + payloads[2:], cert=cert)
        r = self.verify(lines, "--cert", cert)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("node: every record must name node-1, the certificate's CN", r.stdout)
        self.assertIn('line 3: seq 1: node "node-2" is not the certificate\'s CN "node-1"', r.stdout)
        self.assertIn('line 4: seq 2: node "node-2" is not the certificate\'s CN "node-1"', r.stdout)
        self.assertIn("node node-1 (region r1): seq 1..4: 4 unique, 0 duplicates", r.stdout)
        self.assertNotIn("node node-2", r.stdout)  # the foreign records do not count
        self.assertIn("result: FAILED: 2 bad lines;", r.stdout)
        r = self.verify(lines, "--cert", cert, "--json")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual((doc["ok"], doc["cert_cn"], doc["bad_lines"]["wrong_node"]), (False, "node-1", 2), doc)
        self.assertEqual([(p["line"], p["kind"]) for p in doc["bad_line_list"]],
                         [(3, "wrong_node"), (4, "wrong_node")])
        self.assertEqual([n["node"] for n in doc["nodes"]], ["node-1"])

        # All of node-1's own records pass.
        self.assertEqual(self.verify(self.sign_ours(key, payloads, cert=cert), "--cert", cert).returncode, 0)

        # A certificate for the same key whose CN names no node cannot say which node it vouches for.
        for subj, why in (("/O=acme", "the certificate's subject has no CN"),
                          ("/CN=node 1", "the certificate's CN is not a node name")):
            csr, odd = self.env.path("odd.csr"), self.env.path("odd.crt")
            self.run_ok(["openssl", "req", "-new", "-key", key, "-subj", subj, "-out", csr])
            self.run_ok(["openssl", "x509", "-req", "-in", csr, "-CA", self.env.pki["ca"], "-CAkey",
                         os.path.join(self.env.pki["dir"], "ca.key"), "-CAcreateserial", "-days", "2", "-out", odd])
            r = self.verify(lines, "--cert", odd)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("%s: %s" % (odd, why), r.stderr)
            self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    harness.main()
