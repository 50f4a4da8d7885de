"""erlang_brokers.py: real Erlang MQTT brokers from Debian's packages for the integration tests:
RabbitMQ 3.10 (rabbitmq_mqtt, MQTT 3.1.1 only) and ejabberd 23.01 (mod_mqtt, MQTT 5). Each listens
for MQTT over TLS on a free loopback port, requires a client certificate and takes the user from
it. Everything a node keeps (mnesia, logs, cookie, config) is in the test's directory, and its
Erlang port mapper is a private epmd on a port of its own (ERL_EPMD_PORT), so it clashes with
neither a system broker nor another test. The processes are harness.Procs (their own process
groups), stopped by PID; start-up waits are bounded and say what did not start."""

import base64
import json
import os
import shutil
import time

import harness

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # /usr/sbin's wrapper would su to rabbitmq
EJABBERD_LIBS = "/usr/lib/x86_64-linux-gnu"
# Erlang boots slowly on a loaded 2-core machine: RabbitMQ takes about 10 s idle, more with tests in
# parallel; ejabberd about 1 s.
START_TIMEOUT_S = float(os.environ.get("RA_ERLANG_BROKER_START_S", "75"))


def missing(kind):
    """Why the broker `kind` ("rabbitmq", "ejabberd") cannot run here ("" when it can)."""
    if not shutil.which("epmd") and not os.path.exists("/usr/bin/epmd"):
        return "epmd is not installed (Erlang: scripts/test installs RA_TEST_PACKAGES)"
    if kind == "rabbitmq" and not os.path.exists(RABBITMQ_SERVER):
        return "rabbitmq-server is not installed (scripts/test installs RA_TEST_PACKAGES)"
    if kind == "ejabberd" and not any(d.startswith("ejabberd-") for d in os.listdir(EJABBERD_LIBS)):
        return "ejabberd is not installed (scripts/test installs RA_TEST_PACKAGES)"
    return ""


class ErlangBroker:
    """One node: a private epmd, then the broker, until MQTT/TLS is accepted on self.port."""

    kind = "?"

    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.dir = env.path(name)
        self.port = harness.free_port()
        self.epmd_port = harness.free_port()
        self.dist_port = harness.free_port()
        self.node = "ra%d%s@localhost" % (os.getpid(), name)
        self.proc = self.epmd = None
        self.epmd_owner = self  # cluster members share the first one's epmd (node names are per host)
        self.start_s = 0.0
        os.makedirs(self.dir, exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def argv_and_vars(self):
        raise NotImplementedError

    def start(self, timeout=START_TIMEOUT_S):
        """Starts epmd (once) and the node; returns once MQTT/TLS is accepted on self.port."""
        t0 = time.monotonic()
        if self.epmd_owner is self and (self.epmd is None or not self.epmd.alive()):
            self.epmd = harness.Proc(self.env, "epmd", ["epmd", "-port", str(self.epmd_port)])
            if not harness.wait_for(lambda: harness.accepting(self.epmd_port), 10):
                raise AssertionError("epmd did not listen on port %d within 10 s (ERL_EPMD_PORT)\n%s" %
                                     (self.epmd_port, harness.tail(self.epmd.stderr())))
        argv, env_vars = self.argv_and_vars()
        env_vars.update({"HOME": self.dir, "ERL_EPMD_PORT": str(self.epmd_port)})  # HOME: the Erlang cookie
        self.proc = harness.Proc(self.env, self.kind, argv, env_vars=env_vars)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise AssertionError("%s (node %s) exited with %s before its MQTT/TLS listener on 127.0.0.1:%d "
                                     "started\n%s" % (self.kind, self.node, self.proc.popen.poll(), self.port,
                                                      harness.tail(self.log())))
            if harness.accepting(self.port):
                self.start_s = time.monotonic() - t0
                return self
            time.sleep(0.2)
        raise AssertionError("%s (node %s) did not accept MQTT/TLS on 127.0.0.1:%d within %.0f s "
                             "(RA_ERLANG_BROKER_START_S; Erlang is slow on a loaded machine)\n%s" %
                             (self.kind, self.node, self.port, timeout, harness.tail(self.log())))

    def kill9(self):
        """SIGKILL to the node's process group (a wrapper script, beam.smp and its helpers)."""
        if self.proc:
            self.proc.kill()
            # beam.smp may be a wrapper's child: its listener goes when it is gone.
            if not harness.wait_for(lambda: not harness.accepting(self.port), 10):
                raise AssertionError("%s node %s still accepts on port %d 10 s after SIGKILL" %
                                     (self.kind, self.node, self.port))

    def restart(self, timeout=START_TIMEOUT_S):
        """A new node process on the same data, name and port."""
        return self.start(timeout)

    def stop(self):
        for p in (self.proc, self.epmd if self.epmd_owner is self else None):
            if p:
                p.kill()

    def log(self):
        return "\n".join(p.stdout() + p.stderr() for p in self.env.procs if p.name == self.kind)


class RabbitMQ(ErlangBroker):
    """A RabbitMQ node. `users`: the certificate CNs let in (each with every permission on "/")."""

    kind = "rabbitmq"

    def __init__(self, env, users, name="rabbit", cluster_with=None):
        """cluster_with: a started RabbitMQ this node joins at its first start (classic_config):
        the same epmd and Erlang cookie."""
        super().__init__(env, name)
        self.cluster = []
        if cluster_with:
            self.epmd_owner = cluster_with
            self.epmd_port = cluster_with.epmd_port
            self.cluster = [cluster_with.node, self.node]
        with open(self.path(".erlang.cookie"), "w") as f:
            f.write("RAINTEGRATIONCOOKIE%d" % os.getpid())
        os.chmod(self.path(".erlang.cookie"), 0o400)
        self._write_config(users)

    def _write_config(self, users):
        pki = self.env.pki
        d = self.dir
        defs = {"vhosts": [{"name": "/"}],
                "users": [{"name": u, "password_hash": "", "tags": [],
                           "hashing_algorithm": "rabbit_password_hashing_sha256"} for u in users],
                "permissions": [{"user": u, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
                                for u in users]}
        with open(os.path.join(d, "definitions.json"), "w") as f:
            json.dump(defs, f)
        conf = [
            "listeners.tcp = none",
            "mqtt.listeners.tcp = none",
            "mqtt.listeners.ssl.1 = 127.0.0.1:%d" % self.port,
            "ssl_options.cacertfile = %s" % pki["ca"],
            "ssl_options.certfile = %s" % pki["server_cert"],
            "ssl_options.keyfile = %s" % pki["server_key"],
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = true",
            "mqtt.ssl_cert_login = true",
            "ssl_cert_login_from = common_name",
            "mqtt.allow_anonymous = false",
            "loopback_users = none",
            "load_definitions = %s" % os.path.join(d, "definitions.json"),
            "log.file = false",
            "log.console = true",
            "log.console.level = info",
        ] + (["cluster_formation.peer_discovery_backend = classic_config"] +
             ["cluster_formation.classic_config.nodes.%d = %s" % (i + 1, n) for i, n in enumerate(self.cluster)])
        with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        with open(os.path.join(d, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_mqtt].\n")
        open(os.path.join(d, "rabbitmq-env.conf"), "w").close()  # not /etc/rabbitmq's

    def argv_and_vars(self):
        d = self.dir
        return [RABBITMQ_SERVER], {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": os.path.join(d, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(d, "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(d, "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": os.path.join(d, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
            "RABBITMQ_PID_FILE": os.path.join(d, "rabbitmq.pid"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(d, "plugins-expand"),
        }


class Ejabberd(ErlangBroker):
    """An ejabberd node with mod_mqtt on TLS. tls_verify: the client certificate must chain to the
    test CA (c2s_cafile), and its CN (a user name; the host is "localhost") must be the MQTT user:
    the CONNECT's user name, or its client id when it gives none (as the agent). Sessions, retained
    messages and subscriptions live in RAM: a restart loses them."""

    kind = "ejabberd"

    def __init__(self, env, name="ejabberd"):
        super().__init__(env, name)
        pki = env.pki
        os.makedirs(self.path("db"), exist_ok=True)
        os.makedirs(self.path("log"), exist_ok=True)
        conf = "\n".join([
            "hosts: [localhost]",
            "loglevel: info",
            "certfiles: [%s, %s]" % (json.dumps(pki["server_cert"]), json.dumps(pki["server_key"])),
            "c2s_cafile: %s" % json.dumps(pki["ca"]),
            "listen:",
            "  - port: %d" % self.port,
            "    ip: \"127.0.0.1\"",
            "    module: mod_mqtt",
            "    tls: true",
            "    tls_verify: true",
            "modules:",
            "  mod_mqtt: {}",
        ])
        with open(self.path("ejabberd.yml"), "w") as f:
            f.write(conf + "\n")

    def argv_and_vars(self):
        # What ejabberdctl foreground runs, without its su to the ejabberd user (who could not read
        # the test's directory) and with the node's own epmd.
        argv = ["erl", "-sname", self.node, "-noinput", "-start_epmd", "false", "-mnesia", "dir",
                json.dumps(self.path("db")), "-kernel", "inet_dist_listen_min", str(self.dist_port),
                "inet_dist_listen_max", str(self.dist_port), "-s", "ejabberd"]
        return argv, {
            "EJABBERD_CONFIG_PATH": self.path("ejabberd.yml"),
            "EJABBERD_LOG_PATH": self.path("log", "ejabberd.log"),
            "EJABBERD_PID_PATH": self.path("ejabberd.pid"),
            "ERL_LIBS": EJABBERD_LIBS,
            "ERL_CRASH_DUMP": self.path("erl_crash.dump"),
            "CONTRIB_MODULES_CONF_DIR": self.path("modules.d"),
        }

    def log(self):
        return super().log() + "\n" + harness.read_text(self.path("log", "ejabberd.log"))


# The agent's reconnect backoff (full jitter, doubling) reaches a 32 s cap while RabbitMQ restarts.
RECONNECT_S = 45


class BrokerScenario(harness.IntegrationTest):
    """Issue 17's checks against one broker, for test_rabbitmq and test_ejabberd: the agent connects
    with mqtt.protocol "auto" (the log says which version and why), sessions run, a command is
    answered, a subscriber with a persistent session gets every metering record, seq contiguous,
    across a kill -9 and restart of the broker, and the will fires on the agent's kill -9."""

    kind = "?"
    slots = [{"id": "s0", "scale": "cpu-4"}, {"id": "s1", "scale": "cpu-8"}]

    def setUp(self):
        why = missing(self.kind)
        if why:
            self.fail(why)
        super().setUp()

    def status(self):
        c = harness.ControlConn(self.env.path("agent.sock"))
        st = c.call("status")["status"]
        c.close()
        return st

    def sessions(self, users):
        """Reserves, starts and ends one session per user over the control socket: 2 records each."""
        c = harness.ControlConn(self.env.path("agent.sock"))
        for user in users:
            s = c.call("reserve", user=user)["session"]
            self.assertTrue(c.call("start", session=s)["ok"])
            self.assertTrue(c.call("end", session=s, reason="done")["ok"])
        c.close()

    @staticmethod
    def seqs(*subs):
        out = set()
        for sub in subs:
            for _, _, payload in sub.on("/metering"):
                p = json.loads(payload)["payload"]
                out.add(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["seq"])
        return sorted(out)

    def run_scenario(self, broker, sub_kw, version, why_re, command, reply_leaf):
        """sub_kw: what subscribers need (MQTT version, user name); version: the MQTT version the
        agent must land on (4 or 5) and why_re its reason in the log; command(id): sends a status
        command whose reply goes to the topic ending in reply_leaf."""
        env = self.env
        t0 = time.monotonic()
        env.brokers.append(broker.start())
        print("%s up in %.1f s" % (self.kind, broker.start_s))
        sub_kw = dict(sub_kw, qos=1)
        consumer = dict(sub_kw, topic=env.topic("metering"), client_id="metering-consumer", clean=False)
        meter = env.subscriber(broker, **consumer)
        # Nothing but the consumer may take metering: with MQTT 5 a record any subscriber got is
        # delivered (PUBACK 0), and leaves the node.
        watch = env.subscriber(broker, topic=env.topic("status"), **sub_kw)
        replies = env.subscriber(broker, topic=env.topic(reply_leaf), **sub_kw)

        agent = env.agent(env.config(broker.port, slots=self.slots))
        agent.wait_log(r"notice: connected to MQTT broker localhost:%d \(MQTT %s: %s" %
                       (broker.port, "5" if version == 5 else r"3\.1\.1", why_re), timeout=20)
        self.assertEqual(agent.matches(r"cause is not the MQTT version"), [])
        harness.wait_for(lambda: all(s.get("conformant") for s in self.status()["slots"]), 10)
        st = self.status()["broker"]
        self.assertEqual((st["mqtt_version"], st["connects"]), (version, 1), st)
        proto = st["protocols"]["localhost:%d" % broker.port]
        self.assertEqual((proto["mqtt"], proto["known"]), ("5" if version == 5 else "3.1.1", True), st)
        self.assertIsNotNone(watch.wait_doc("/status", lambda d: d.get("state") == "online", timeout=10),
                             watch.describe())

        self.sessions(["alice", "bob"])
        command("st1")
        reply = replies.wait_doc(reply_leaf, lambda d: d.get("id") == "st1", timeout=10)
        self.assertIsNotNone(reply, replies.describe())
        self.assertEqual(reply[1]["status"]["node"], env.node)
        self.assertIsNotNone(meter.wait_count("/metering", 4, timeout=10), meter.describe())

        # The broker dies without a word; sessions go on (records wait in the spool); it comes back
        # on the same data. mosquitto_sub exits when its connection is lost: the consumer comes back
        # as a new client with the same id, after the agent may already have published.
        broker.kill9()
        self.sessions(["carol", "dave", "erin"])
        broker.restart()
        mark = time.monotonic()
        print("%s back in %.1f s" % (self.kind, broker.start_s))
        watch = env.subscriber(broker, topic=env.topic("status"), **sub_kw)
        harness.wait_for(lambda: self.status()["broker"]["state"] == "connected", RECONNECT_S, interval=0.3)
        meter2 = env.subscriber(broker, **consumer)
        st = {}

        def drained():
            st.update(self.status()["metering"])
            return st["spool"]["pending"] == 0 and st["in_flight"] == 0 and st["next_seq"] > 1

        self.assertTrue(harness.wait_for(drained, RECONNECT_S, interval=0.3), "spool not drained: %s" % st)
        print("agent reconnected and delivered its spool %.1f s after the broker was back" %
              (time.monotonic() - mark))
        # The consumer subscribed after the agent was back: with MQTT 5 the broker said nobody took
        # the first records (PUBACK 0x10), and the node kept them until it came.
        if version == 5:
            self.assertTrue(agent.matches(r"MQTT 5 PUBACK reason 0x10"), harness.tail(agent.log()))
        # The version the broker answered was kept: no second fallback after the restart.
        self.assertEqual(len(agent.matches(r"again with MQTT 3\.1\.1")), 1 if version == 4 else 0,
                         harness.tail(agent.log()))
        last = st["next_seq"] - 1
        self.assertGreaterEqual(last, 10)  # 5 sessions, a start and an end each
        harness.wait_for(lambda: len(self.seqs(meter, meter2)) >= last, 20)
        self.assertEqual(self.seqs(meter, meter2), list(range(1, last + 1)), "%s\n%s\n%s" % (
            meter2.describe(30), "\n".join(meter2.debug[-20:]), harness.tail(meter2.proc.stderr())))

        # kill -9: the broker publishes the agent's will, the retained offline status.
        since = time.monotonic()
        agent.proc.kill()
        will = watch.wait_doc("/status", lambda d: d.get("state") == "offline", since=since, timeout=15)
        self.assertIsNotNone(will, watch.describe())
        self.assertEqual(will[1]["reason"], "connection lost", will[1])
        print("test ran %.1f s" % (time.monotonic() - t0))

    def publish(self, broker, payload, *extra):
        pki = self.env.pki
        r = self.env.run(["mosquitto_pub", "-h", "localhost", "-p", str(broker.port), "--cafile", pki["ca"],
                          "--cert", pki["client_cert"], "--key", pki["client_key"], "-q", "1",
                          "-t", self.env.topic("cmd"), "-m", payload] + list(extra))
        self.assertEqual(r.returncode, 0, r.stderr)
