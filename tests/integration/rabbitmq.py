"""rabbitmq.py: a real RabbitMQ node (Debian's rabbitmq-server, rabbitmq_mqtt plugin) for the
integration tests: MQTT over TLS on a free loopback port, client certificates required and taken
as the user name (ssl_cert_login, CN), AMQP off. Everything it keeps (mnesia, logs, cookie, config)
is in the test's directory, and its Erlang port mapper is a private epmd on a port of its own
(ERL_EPMD_PORT), so it clashes with neither a system RabbitMQ nor another test. Both processes are
started as harness.Procs (their own process groups) and stopped by PID."""

import json
import os
import shutil
import socket
import time

import harness

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the Debian wrapper in /usr/sbin would su to rabbitmq
# Erlang boots slowly on a loaded 2-core machine: about 15 s idle, more with tests in parallel.
START_TIMEOUT_S = float(os.environ.get("RA_RABBITMQ_START_S", "75"))


def missing():
    """Why RabbitMQ cannot run here ("" when it can)."""
    if not os.path.exists(SERVER) or not shutil.which("epmd"):
        return ("rabbitmq-server is not installed (scripts/test installs RA_RUN_PACKAGES from "
                "scripts/lib/common.sh)")
    return ""


def _accepting(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RabbitMQ:
    """One node. `users`: the certificate CNs allowed in (each gets every permission on "/")."""

    def __init__(self, env, users, name="rabbit"):
        self.env = env
        self.name = name
        self.dir = env.path(name)
        self.port = harness.free_port()
        self.epmd_port = harness.free_port()
        self.dist_port = harness.free_port()
        self.node = "ra%d%s@localhost" % (os.getpid(), name)
        self.proc = self.epmd = None
        os.makedirs(self.dir, exist_ok=True)
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
        ]
        with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        with open(os.path.join(d, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_mqtt].\n")
        open(os.path.join(d, "rabbitmq-env.conf"), "w").close()  # not /etc/rabbitmq's

    def _vars(self):
        d = self.dir
        return {
            "HOME": d,  # the Erlang cookie
            "ERL_EPMD_PORT": str(self.epmd_port),
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

    def start(self, timeout=START_TIMEOUT_S):
        """Starts epmd (once) and the node; returns once MQTT/TLS is accepted on self.port."""
        t0 = time.monotonic()
        if self.epmd is None or not self.epmd.alive():
            self.epmd = harness.Proc(self.env, "epmd", ["epmd", "-port", str(self.epmd_port)])
            if not harness.wait_for(lambda: _accepting(self.epmd_port), 10):
                raise AssertionError("epmd did not listen on port %d within 10 s (ERL_EPMD_PORT)\n%s" %
                                     (self.epmd_port, harness.tail(self.epmd.stderr())))
        self.proc = harness.Proc(self.env, "rabbitmq", [SERVER], env_vars=self._vars())
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise AssertionError("rabbitmq-server (node %s) exited with %s before its MQTT/TLS listener on "
                                     "127.0.0.1:%d started\n%s" % (self.node, self.proc.popen.poll(), self.port,
                                                                   harness.tail(self.log())))
            if _accepting(self.port):
                self.start_s = time.monotonic() - t0
                return self
            time.sleep(0.2)
        raise AssertionError("rabbitmq-server (node %s) did not accept MQTT/TLS on 127.0.0.1:%d within %.0f s "
                             "(RA_RABBITMQ_START_S; Erlang is slow on a loaded machine)\n%s" %
                             (self.node, self.port, timeout, harness.tail(self.log())))

    def kill9(self):
        """SIGKILL to the node's process group (the wrapper script and beam.smp)."""
        if self.proc:
            self.proc.kill()
            # beam.smp is the wrapper's child: its listener goes when it is gone.
            if not harness.wait_for(lambda: not _accepting(self.port), 10):
                raise AssertionError("RabbitMQ node %s still accepts on port %d 10 s after SIGKILL" %
                                     (self.node, self.port))

    def restart(self, timeout=START_TIMEOUT_S):
        """A new node process on the same data (mnesia), name and port."""
        return self.start(timeout)

    def stop(self):
        for p in (self.proc, self.epmd):
            if p:
                p.kill()

    def log(self):
        return "\n".join(p.stdout() + p.stderr() for p in self.env.procs if p.name == "rabbitmq")
