"""harness.py: shared helpers for render-agent's integration tests (Python 3 standard library only).

Each test gets an Env: a temporary directory (removed at the end), a throwaway PKI made with
scripts/dev-pki, and helpers that start real processes (mosquitto with TLS mutual auth,
mosquitto_sub, render-agent). Every process an Env starts is killed when the Env is cleaned up,
whatever happened, and every wait has a timeout, so no test can hang.

Binary paths come from the environment, as ctest passes them:
  RA_AGENT       render-agent            (default: <build>/agent/render-agent, see below)
  RA_CTL         render-agentctl
  RA_FAKE_NVML   tests/fakes' libfake_nvml.so, a scripted NVML (default: <build>/tests/fakes/)
  RA_SOURCE_DIR  the source tree (default: two levels above this file)

Sanitizer builds: agents run with ASAN_OPTIONS=detect_leaks=1:abort_on_error=0, and when an
agent exits its stderr is checked for AddressSanitizer / LeakSanitizer / UBSan reports; any
report fails the test.
"""

import atexit
import functools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("RA_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
AGENT = os.environ.get("RA_AGENT", "")
CTL = os.environ.get("RA_CTL", "")
FAKE_NVML = os.environ.get("RA_FAKE_NVML", "")
FIXTURES = os.path.join(SOURCE_DIR, "tests", "fixtures", "hosts")
DEV_PKI = os.path.join(SOURCE_DIR, "scripts", "dev-pki")

SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|LeakSanitizer|runtime error:")
LOG_TAIL_LINES = 60

# Every process started by any Env, so that atexit can kill what a crashing test left behind.
_ALL_PROCS = []


def _kill_all_left_over():
    for p in _ALL_PROCS:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


atexit.register(_kill_all_left_over)


def _default_binary(name):
    for cand in (os.path.join(SOURCE_DIR, "build", "agent", name),):
        if os.access(cand, os.X_OK):
            return cand
    return ""


def agent_binary():
    return AGENT or _default_binary("render-agent")


def ctl_binary():
    return CTL or _default_binary("render-agentctl")


def fake_nvml_library():
    """The scripted NVML test double (tests/fakes/fake_nvml.c), or "" when it is not built."""
    if FAKE_NVML:
        return FAKE_NVML
    cand = os.path.join(SOURCE_DIR, "build", "tests", "fakes", "libfake_nvml.so")
    return cand if os.path.isfile(cand) else ""


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepting(port):
    """Whether something accepts TCP connections on 127.0.0.1:port now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns something truthy; returns it, or None after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def seqs_through(seqs, last):
    """The seqs a stream that holds 1..last shows, contiguous: 1..max(last, the highest of seqs).
    `last` comes from a status; the agent goes on making window records, and one made after that
    status may have arrived before seqs were read."""
    return list(range(1, max(max(seqs, default=0), last) + 1))


def tail(text, n=LOG_TAIL_LINES):
    lines = text.splitlines()
    if len(lines) > n:
        lines = ["[... %d lines before ...]" % (len(lines) - n)] + lines[-n:]
    return "\n".join(lines)


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def cpu_seconds(pid):
    """utime + stime of a process, in seconds, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = data[data.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of the whole line
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def smaps_rollup(pid):
    """{"Rss": bytes, "Pss": bytes, ...} of a process, from /proc/PID/smaps_rollup."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            parts = v.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[k] = int(parts[0]) * 1024
    return out


def host_root(dest, cores):
    """A copy of the x86-cpu fixture host at dest with `cores` CPUs in /proc/stat (the fixture's
    eight, repeated), so that that many 1-vCPU slots meet their scale. Returns dest."""
    shutil.copytree(os.path.join(FIXTURES, "x86-cpu"), dest)
    path = os.path.join(dest, "proc", "stat")
    lines = read_text(path).splitlines()
    cpu_lines = [line for line in lines if line.startswith("cpu") and line[3:4].isdigit()]
    rest = [line for line in lines if not (line.startswith("cpu") and line[3:4].isdigit())]
    cpus = [cpu_lines[i % len(cpu_lines)].replace("cpu%d " % (i % len(cpu_lines)), "cpu%d " % i, 1)
            for i in range(cores)]
    write_atomic(path, "\n".join(rest[:1] + cpus + rest[1:]) + "\n")
    return dest


def proc_stat_cores():
    with open("/proc/stat") as f:
        return sum(1 for line in f if re.match(r"cpu\d+\s", line))


def proc_meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            parts = v.split()
            if parts and parts[-1] == "kB":
                out[k] = int(parts[0]) * 1024
    return out


def proc_net_dev():
    """{iface: (rx_bytes, tx_bytes)} from /proc/net/dev."""
    out = {}
    with open("/proc/net/dev") as f:
        for line in f.readlines()[2:]:
            name, _, rest = line.partition(":")
            v = rest.split()
            out[name.strip()] = (int(v[0]), int(v[8]))
    return out


# --------------------------------------------------------------------------------------------
# GPUs: the fake NVML's script, and what the agent must make of it


def write_nvml_script(path, gpus, extra_lines=()):
    """Writes a FAKE_NVML_SCRIPT (format: tests/fakes/fake_nvml.c) describing `gpus`, a list of
    dicts with the fake's keys (name uuid pci device util memutil enc dec vram_total vram_used
    vram_reserved power_mw temp sm sm_max throttle procs gprocs encs fbcs err.CALL). Returns path."""
    lines = ["# written by %s" % os.path.basename(sys.argv[0])] + list(extra_lines)
    for i, g in enumerate(gpus):
        items = []
        for k, v in g.items():
            if isinstance(v, int) and k in ("device", "throttle"):
                v = "0x%x" % v
            items.append("%s=%s" % (k, v))
        lines.append("gpu %d %s" % (i, " ".join(items)))
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def _parse_procs(v):
    """[(pid, bytes or None)] from the fake's PID:BYTES,... / none / gen:N."""
    if v is None or v == "none":
        return []
    if v.startswith("gen:"):
        return [(1000 + k, (k + 1) << 20) for k in range(int(v[4:]))]
    out = []
    for item in v.split(","):
        pid, _, b = item.partition(":")
        out.append((int(pid), None if b == "-" else int(b, 0)))
    return out


def nvml_processes(g):
    """The agent's merged process list of a scripted GPU: compute then graphics processes, one
    entry per pid, the larger known VRAM figure of the two (None: the driver does not say)."""
    merged = []
    for pid, b in _parse_procs(g.get("procs")) + _parse_procs(g.get("gprocs")):
        for e in merged:
            if e[0] == pid:
                if e[1] is None or (b is not None and b > e[1]):
                    e[1] = b
                break
        else:
            merged.append([pid, b])
    return merged


def fixed(v, decimals):
    """A float as the agent prints it: printf("%.*f") of the same double, read back."""
    return float("%.*f" % (decimals, v))


def gpus_fresh(gpus, max_age_ms):
    """gpus[] without each entry's "age_ms" (the GPU worker's sample age, which varies), after
    checking that every entry is fresh: aged at most max_age_ms and not marked stale."""
    out = []
    for g in gpus:
        g = dict(g)
        age = g.pop("age_ms", None)
        if not isinstance(age, int) or not 0 <= age <= max_age_ms or "stale" in g:
            raise AssertionError("GPU %s is not fresh (age_ms %r, max %d): %r" % (g.get("index"), age,
                                                                                   max_age_ms, g))
        out.append(g)
    return out


def nvml_expected(g, index, with_procs=False):
    """The gpus[] member the agent must publish for scripted GPU g (fault-free: every key given)."""
    dom, bus, dev = [int(x, 16) for x in re.match(r"([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.",
                                                   g["pci"]).groups()]
    tf = fp32_tflops(0x10DE, g["device"], g["name"])
    d = {
        "index": index, "backend": "nvml", "name": g["name"], "uuid": g["uuid"],
        "pci_bus_id": "%04x:%02x:%02x.0" % (dom, bus, dev),
        "util_pct": fixed(g["util"], 1), "mem_util_pct": fixed(g["memutil"], 1),
        "enc_pct": fixed(g["enc"], 1), "dec_pct": fixed(g["dec"], 1),
        "vram_total_bytes": g["vram_total"], "vram_used_bytes": g["vram_used"],
        # The fake exports nvmlDeviceGetMemoryInfo_v2: the driver's reserve is shown apart.
        "vram_reserved_bytes": g.get("vram_reserved", 0),
        "power_w": fixed(g["power_mw"] / 1000.0, 1), "temp_c": fixed(g["temp"], 1),
        "clock_mhz": g["sm"], "clock_max_mhz": g["sm_max"], "throttle_reasons": g["throttle"],
        "fp32_tflops": None if tf is None else fixed(tf, 1),
        "fp32_source": "unknown" if tf is None else "table",
    }
    procs = nvml_processes(g)
    if g.get("procs") is not None or g.get("gprocs") is not None:
        d["process_count"] = len(procs)
        if with_procs:
            d["processes"] = [{"pid": p} if b is None else {"pid": p, "vram_bytes": b} for p, b in procs]
    return d


def gauge(v, which="last"):
    """A telemetry gauge's last, min, max or avg: a number when every sample of the interval had
    it, else [last, min, max, avg] (docs/topics.md)."""
    if isinstance(v, list):
        return v[("last", "min", "max", "avg").index(which)]
    return v


# What a GPU is (the retained status's gpus[]) as against what it does (telemetry's gpus[]).
GPU_FACT_KEYS = ("backend", "name", "uuid", "pci_bus_id", "shared_memory", "vram_total_bytes",
                 "vram_reserved_bytes", "clock_max_mhz", "fp32_tflops", "fp32_source")


def gpu_facts(g):
    """The status's entry for the gpus[] entry g of nvml_expected (index and facts)."""
    return {k: v for k, v in g.items() if k == "index" or k in GPU_FACT_KEYS}


def gpu_figures(g):
    """The telemetry entry (one sample per document) for the gpus[] entry g of nvml_expected: memory
    in KiB there (docs/topics.md)."""
    out = {k: v for k, v in g.items() if k not in GPU_FACT_KEYS}
    if "vram_used_bytes" in out:
        out["vram_used_kib"] = out.pop("vram_used_bytes") // 1024
    return out


_FP32 = None


def _fp32_tables():
    """hal/gpu_tflops.c's by_id and by_name tables, read from the source (the figures are the
    datasheets'; the tests check that the agent applies them, not the figures themselves)."""
    global _FP32
    if _FP32 is None:
        src = read_text(os.path.join(SOURCE_DIR, "hal", "gpu_tflops.c"))
        vendors = {"PCI_VENDOR_NVIDIA": 0x10DE, "PCI_VENDOR_AMD": 0x1002}
        by_id = {(vendors[v], int(d, 16)): float(t) for v, d, t in
                 re.findall(r"\{\s*(PCI_VENDOR_\w+),\s*(0x[0-9a-fA-F]+),\s*([0-9.]+)\s*\}", src)}
        by_name = [(n, float(t)) for n, t in re.findall(r'\{\s*"([^"]+)",\s*([0-9.]+)\s*\}', src)]
        if not by_id or not by_name:
            raise AssertionError("cannot read the FP32 tables from hal/gpu_tflops.c")
        _FP32 = (by_id, by_name)
    return _FP32


def fp32_tflops(vendor, device, name):
    """What hal_gpu_fp32_tflops() answers: by PCI id, else by name as whole words; None if unknown."""
    by_id, by_name = _fp32_tables()
    if (vendor, device) in by_id:
        return by_id[(vendor, device)]
    for n, t in by_name:
        if re.search(r"(?<![A-Za-z0-9])%s(?![A-Za-z0-9])" % re.escape(n), name or "", re.IGNORECASE):
            return t
    return None


def cgroup_expected(root, path):
    """The members --probe --config prints for a slot whose cgroup is `path`, computed from the
    cgroup files under `root` (v2 when sys/fs/cgroup/cgroup.controllers exists, else v1):
    {"cgroup": {...}} with raw counters, or {"cgroup_state": "absent"} when the cgroup is not there.
    Only for well-formed trees: malformed files are the corrupt fixtures' business."""
    cg = os.path.join(root, "sys", "fs", "cgroup")

    def value(d, name):
        p = os.path.join(d, name)
        return read_text(p).strip() if os.path.isfile(p) else None

    out = {}
    if os.path.exists(os.path.join(cg, "cgroup.controllers")):
        d = os.path.join(cg, path)
        if not os.path.isdir(d):
            return {"cgroup_state": "absent"}
        stat = value(d, "cpu.stat")
        if stat is not None:
            usage = [line.split()[1] for line in stat.splitlines() if line.split()[:1] == ["usage_usec"]]
            out["cpu_usage_usec"] = int(usage[0])
        if value(d, "memory.current") is not None:
            out["memory_bytes"] = int(value(d, "memory.current"))
        mx = value(d, "memory.max")
        if mx is not None and mx != "max":  # "max": no limit, and no member
            out["memory_max_bytes"] = int(mx)
        if value(d, "pids.current") is not None:
            out["pids"] = int(value(d, "pids.current"))
        cpumax = value(d, "cpu.max")
        if cpumax is not None and cpumax.split()[0] != "max":
            quota, period = cpumax.split()
            out["cpu_quota_cores"] = fixed(int(quota) / int(period), 2)
        return {"cgroup": out}

    def hier(*names):
        for n in names:
            d = os.path.join(cg, n, path)
            if os.path.isdir(d):
                return d
        return None
    acct, cpu = hier("cpu,cpuacct", "cpuacct"), hier("cpu,cpuacct", "cpu")
    mem, pids = hier("memory"), hier("pids")
    if not (acct or cpu or mem or pids):
        return {"cgroup_state": "absent"}
    if acct and value(acct, "cpuacct.usage") is not None:
        out["cpu_usage_usec"] = int(value(acct, "cpuacct.usage")) // 1000  # v1 counts nanoseconds
    if cpu and value(cpu, "cpu.cfs_quota_us") not in (None, "-1"):
        out["cpu_quota_cores"] = fixed(int(value(cpu, "cpu.cfs_quota_us")) / int(value(cpu, "cpu.cfs_period_us")), 2)
    if mem:
        if value(mem, "memory.usage_in_bytes") is not None:
            out["memory_bytes"] = int(value(mem, "memory.usage_in_bytes"))
        lim = value(mem, "memory.limit_in_bytes")
        # v1 says "no limit" as PAGE_COUNTER_MAX: LONG_MAX rounded down to a page.
        if lim is not None and int(lim) < 2 ** 63 - 1 - 2 ** 20:
            out["memory_max_bytes"] = int(lim)
    if pids and value(pids, "pids.current") is not None:
        out["pids"] = int(value(pids, "pids.current"))
    return {"cgroup": out}


# --------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process with stdout and stderr captured to files in the test's directory."""

    def __init__(self, env, name, argv, env_vars=None, stdout=True):
        self.env = env
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(env.dir, "%s.%d.out" % (name, len(env.procs)))
        self.err_path = os.path.join(env.dir, "%s.%d.err" % (name, len(env.procs)))
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        e = dict(os.environ)
        if env_vars:
            for k, v in env_vars.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out if stdout else subprocess.PIPE,
                                      stderr=self._err, env=e, cwd=env.dir, start_new_session=True)
        self.pid = self.popen.pid
        self.returncode = None
        env.procs.append(self)
        _ALL_PROCS.append(self.popen)

    def alive(self):
        return self.popen.poll() is None

    def stderr(self):
        return read_text(self.err_path)

    def stdout(self):
        return read_text(self.out_path)

    def send(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Exit status, or None when it is still running after `timeout` s."""
        try:
            self.returncode = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Asks it to stop, then kills it after `timeout` s. Returns the exit status."""
        if self.alive():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                self.kill()
        self.returncode = self.popen.wait(timeout=10)
        self._close()
        return self.returncode

    def kill(self):
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.popen.kill()
        self.returncode = self.popen.wait(timeout=10)
        self._close()
        return self.returncode

    def _close(self):
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:
                pass


class Broker:
    """mosquitto on 127.0.0.1:port with TLS and mutual authentication (client certificates).
    extra_conf: more mosquitto.conf lines (persistence for bench/fleet_sim's restarts); log_types:
    what it logs (tests read its packet log; a benchmark logs less, since that costs the broker CPU)."""

    def __init__(self, env, port=None, extra_conf=(), log_types=("all",)):
        self.env = env
        self.port = port
        self.extra_conf = list(extra_conf)
        self.log_types = list(log_types)
        self.proc = None
        self.generation = 0

    def _write_conf(self):
        pki = self.env.pki
        self.conf = os.path.join(self.env.dir, "mosquitto.%d.conf" % self.port)
        lines = [
            "per_listener_settings true",
            "persistence false",
            "log_dest stderr",
        ] + ["log_type %s" % t for t in self.log_types] + [
            "listener %d 127.0.0.1" % self.port,
            "cafile %s" % pki["ca"],
            "certfile %s" % pki["server_cert"],
            "keyfile %s" % pki["server_key"],
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
            # A QoS 1 subscriber that falls behind a burst (a race of 32 clients) loses nothing.
            "max_queued_messages 0",
        ] + self.extra_conf
        if os.geteuid() == 0:
            lines.insert(0, "user root")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10.0):
        pinned = self.port is not None
        for _ in range(1 if pinned else 5):
            if not pinned:
                self.port = free_port()
            self._write_conf()
            self.generation += 1
            self.proc = Proc(self.env, "mosquitto", ["mosquitto", "-c", self.conf])
            if self._wait_accepting(timeout):
                return self
            self.proc.kill()
        raise AssertionError("mosquitto did not accept connections on 127.0.0.1:%s within %.0f s\n%s" %
                             (self.port, timeout, tail(self.proc.stderr())))

    def _wait_accepting(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def kill9(self):
        if self.proc:
            self.proc.kill()

    def stop(self):
        if self.proc:
            self.proc.stop()

    def restart(self, timeout=10.0):
        """Starts a new mosquitto on the same port (retrying while the port is still busy)."""
        deadline = time.monotonic() + timeout
        while True:
            self._write_conf()
            self.generation += 1
            self.proc = Proc(self.env, "mosquitto", ["mosquitto", "-c", self.conf])
            if self._wait_accepting(max(1.0, deadline - time.monotonic())):
                return self
            self.proc.kill()
            if time.monotonic() >= deadline:
                raise AssertionError("mosquitto did not come back on port %d\n%s" %
                                     (self.port, tail(self.proc.stderr())))
            time.sleep(0.2)

    def log(self):
        return "\n".join(p.stderr() for p in self.env.procs if p.name == "mosquitto")


class Subscriber:
    """mosquitto_sub on render/# collecting (monotonic time, topic, payload) in a thread."""

    def __init__(self, env, broker, topic="render/#", cert=None, key=None, qos=0, version="mqttv5", client_id=None,
                 clean=True, username=None):
        self.env = env
        self.broker = broker
        self.messages = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client_id = client_id or "sub-%d-%d" % (os.getpid(), len(env.procs))
        self.topic_root = topic.split("#")[0].split("+")[0] or ""
        pki = env.pki
        # stdbuf: mosquitto_sub's debug lines (SUBACK) are otherwise block-buffered into the pipe.
        argv = (["stdbuf", "-oL"] if shutil.which("stdbuf") else []) + ["mosquitto_sub", "-h", "localhost", "-p", str(broker.port), "--cafile", pki["ca"],
                "--cert", cert or pki["client_cert"], "--key", key or pki["client_key"], "-t", topic, "-v",
                "-V", version, "-i", self.client_id, "-d", "-q", str(qos)] + ([] if clean else ["-c"]) + (["-u", username] if username else [])
        self.proc = Proc(env, "mosquitto_sub", argv, stdout=False)
        self.debug = []
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        f = self.proc.popen.stdout
        for raw in iter(f.readline, b""):
            now = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("Client %s " % self.client_id) or line.startswith("Subscribed (mid"):
                self.debug.append(line)
                if "received SUBACK" in line:
                    self.subscribed.set()
                continue
            topic, _, payload = line.partition(" ")
            if not topic.startswith(self.topic_root):
                self.debug.append(line)  # mosquitto_sub's own errors ("OpenSSL Error ...") go to stdout too
                continue
            with self.lock:
                self.messages.append((now, topic, payload))

    def wait_subscribed(self, timeout=10.0):
        if not self.subscribed.wait(timeout):
            raise AssertionError("mosquitto_sub did not get a SUBACK within %.0f s\n%s\n%s" %
                                 (timeout, "\n".join(self.debug[-20:]), tail(self.proc.stderr())))
        return self

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def on(self, topic_suffix, since=None):
        """Messages whose topic ends with topic_suffix, received at or after `since`."""
        return [m for m in self.snapshot() if m[1].endswith(topic_suffix) and (since is None or m[0] >= since)]

    def docs(self, topic_suffix, since=None):
        """(time, parsed JSON) for messages on a topic; unparsable payloads fail the test."""
        out = []
        for t, topic, payload in self.on(topic_suffix, since):
            try:
                out.append((t, json.loads(payload)))
            except ValueError:
                raise AssertionError("payload on %s is not JSON: %r" % (topic, payload[:300]))
        return out

    def wait_doc(self, topic_suffix, pred=lambda d: True, since=None, timeout=10.0):
        """The first JSON document on a topic that satisfies pred, or None after timeout."""
        def find():
            for t, d in self.docs(topic_suffix, since):
                if pred(d):
                    return (t, d)
            return None
        return wait_for(find, timeout)

    def wait_count(self, topic_suffix, n, since=None, timeout=10.0):
        return wait_for(lambda: len(self.on(topic_suffix, since)) >= n, timeout)

    def describe(self, n=15):
        msgs = self.snapshot()
        lines = ["%d messages received by %s; last %d:" % (len(msgs), self.client_id, min(n, len(msgs)))]
        for t, topic, payload in msgs[-n:]:
            lines.append("  %.3f %s %s" % (t, topic, payload[:200]))
        return "\n".join(lines)

    def stop(self):
        self.proc.stop(timeout=2)
        self.thread.join(timeout=2)
        try:
            self.proc.popen.stdout.close()
        except Exception:
            pass


class Notify:
    """A NOTIFY_SOCKET: an AF_UNIX datagram socket collecting (monotonic time, datagram)."""

    def __init__(self, env):
        self.path = os.path.join(env.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.datagrams = []
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.datagrams.append((time.monotonic(), data.decode("utf-8", "replace")))

    def snapshot(self):
        with self.lock:
            return list(self.datagrams)

    def assignments(self, since=None):
        """(time, "KEY=value") for every line of every datagram."""
        out = []
        for t, d in self.snapshot():
            if since is not None and t < since:
                continue
            for line in d.split("\n"):
                if line:
                    out.append((t, line))
        return out

    def with_key(self, key, since=None):
        return [(t, line) for t, line in self.assignments(since) if line.startswith(key + "=")]

    def wait_key(self, key, value=None, since=None, timeout=10.0, count=1):
        def ok():
            hits = [x for x in self.with_key(key, since) if value is None or x[1] == "%s=%s" % (key, value)]
            return hits if len(hits) >= count else None
        return wait_for(ok, timeout)

    def describe(self, n=30):
        lines = ["notify datagrams (last %d):" % n]
        for t, d in self.snapshot()[-n:]:
            lines.append("  %.3f %r" % (t, d))
        return "\n".join(lines)

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


class ControlConn:
    """The tests' one control-socket client: JSON lines out and in (docs/protocol.md).

    call() numbers its requests (unless given an "id") and checks the reply answers that number;
    request() puts a JSON object on the wire as it is, send() bytes as they are, and line() reads
    the next line, for tests that speak the protocol wrongly on purpose."""

    def __init__(self, path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A timeout makes the socket non-blocking, and a Unix connect() then fails with EAGAIN
        # while the listen backlog is full: retry until the deadline instead.
        self.s.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.s.connect(path)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        except OSError:
            self.s.close()  # the agent is down, or not listening yet
            raise
        self.buf = b""
        self.next_id = 0

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        """The next line from the agent, parsed."""
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("agent closed the control connection (unread: %r)" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, obj):
        """obj on the wire as it is; the reply."""
        self.send(json.dumps(obj).encode() + b"\n")
        return self.line()

    def raw(self, data):
        """Bytes on the wire as they are; the reply."""
        self.send(data)
        return self.line()

    def call(self, op, **fields):
        if "id" in fields:
            return self.request(dict(fields, op=op))
        self.next_id += 1
        reply = self.request(dict(fields, id=self.next_id, op=op))
        assert reply.get("id") == self.next_id, reply
        return reply

    def close(self):
        self.s.close()


def control_ask(path, op, **fields):
    """One request on a control connection of its own; the reply."""
    c = ControlConn(path)
    try:
        return c.call(op, **fields)
    finally:
        c.close()


class Agent:
    """render-agent --config FILE --log-level debug, with its stderr in a file."""

    def __init__(self, env, config_path, extra_env=None, args=None, wrapper=None):
        self.env = env
        self.config_path = config_path
        e = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
             "UBSAN_OPTIONS": "print_stacktrace=1",
             "NOTIFY_SOCKET": None, "WATCHDOG_USEC": None, "WATCHDOG_PID": None,
             "JOURNAL_STREAM": None, "LISTEN_FDS": None, "LISTEN_PID": None}
        if extra_env:
            e.update(extra_env)
        # wrapper: a command that execs the agent in place (prlimit ...), so the pid stays the agent's.
        argv = list(wrapper or []) + [agent_binary(), "--config", config_path, "--log-level", "debug"] + (args or [])
        self.proc = Proc(env, "render-agent", argv, env_vars=e)
        self.pid = self.proc.pid
        self.checked = False

    def log(self):
        return self.proc.stderr()

    def log_lines(self):
        return self.log().splitlines()

    def count(self, regex):
        r = re.compile(regex)
        return sum(1 for line in self.log_lines() if r.search(line))

    def matches(self, regex, start=0):
        r = re.compile(regex)
        return [line for line in self.log_lines()[start:] if r.search(line)]

    def line_count(self):
        return len(self.log_lines())

    def wait_log(self, regex, timeout=10.0, start=0, count=1):
        """Waits for `count` log lines (from line `start` on) matching regex; fails the test with
        the log's tail when they do not come, or when the agent exits first."""
        r = re.compile(regex)

        def ok():
            hits = [line for line in self.log_lines()[start:] if r.search(line)]
            if len(hits) >= count:
                return hits
            if not self.proc.alive():
                return "exited"
            return None
        hits = wait_for(ok, timeout)
        if hits == "exited":
            hits = [line for line in self.log_lines()[start:] if r.search(line)]
            if len(hits) >= count:
                return hits
            raise AssertionError("render-agent exited (status %s) before logging /%s/\n--- agent log ---\n%s" %
                                 (self.proc.popen.poll(), regex, tail(self.log())))
        if not hits:
            raise AssertionError("render-agent did not log /%s/ (x%d) within %.0f s\n--- agent log ---\n%s" %
                                 (regex, count, timeout, tail(self.log())))
        return hits

    def wait_connected(self, timeout=20.0, start=0):
        return self.wait_log(r"connected to MQTT broker", timeout=timeout, start=start)

    def alive(self):
        return self.proc.alive()

    def terminate(self, timeout=1.0):
        """SIGTERM; returns (exit status or None if still running after timeout, seconds taken)."""
        t0 = time.monotonic()
        self.proc.send(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        return rc, time.monotonic() - t0

    def stop(self):
        rc = self.proc.stop(timeout=5)
        self.check_sanitizers()
        return rc

    def check_sanitizers(self):
        """Fails when the agent's stderr holds a sanitizer report (only meaningful once it exited)."""
        self.checked = True
        bad = [i for i, line in enumerate(self.log_lines()) if SANITIZER_RE.search(line)]
        if bad:
            lines = self.log_lines()
            excerpt = "\n".join(lines[max(0, bad[0] - 5):bad[0] + 40])
            raise AssertionError("sanitizer report in render-agent's stderr (pid %d):\n%s" % (self.pid, excerpt))


# --------------------------------------------------------------------------------------------
# The per-test environment


class Env:
    """One test's temp dir, PKI and processes. Use as a context manager, or call cleanup()."""

    _pki_cache = {}

    def __init__(self, name="ra", node="node-1", region="eu-test-1"):
        self.dir = tempfile.mkdtemp(prefix="ra-it-%s-" % name)
        self.node = node
        self.region = region
        self.procs = []
        self.agents = []
        self.subscribers = []
        self.notifies = []
        self.brokers = []
        self._pki = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    @property
    def pki(self):
        if self._pki is None:
            self._pki = make_pki(os.path.join(self.dir, "pki"), self.node)
        return self._pki

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def topic(self, leaf):
        return "render/v1/%s/%s/%s" % (self.region, self.node, leaf)

    def broker(self, port=None, extra_conf=(), log_types=("all",)):
        b = Broker(self, port, extra_conf, log_types).start()
        self.brokers.append(b)
        return b

    def client_cert(self, name, cn, days=30, env_vars=None):
        """A new P-256 key and client certificate (CN = cn) from this Env's test CA, as files
        <dir>/name.crt and name.key: (cert, key). env_vars: for openssl (a moved clock)."""
        pki, d = self.pki, self.path(name)
        with open(d + ".ext", "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        for argv in (["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", d + ".key"],
                     ["openssl", "req", "-new", "-key", d + ".key", "-subj", "/CN=" + cn, "-out", d + ".csr"],
                     ["openssl", "x509", "-req", "-in", d + ".csr", "-CA", pki["ca"], "-CAkey",
                      os.path.join(pki["dir"], "ca.key"), "-set_serial", str(random.randrange(1 << 60)),
                      "-days", str(days), "-extfile", d + ".ext", "-out", d + ".crt"]):
            r = self.run(argv, env_vars=env_vars)
            if r.returncode != 0:
                raise AssertionError("%s failed (%d): %s" % (" ".join(argv[:2]), r.returncode, r.stderr))
        os.chmod(d + ".key", 0o600)
        return d + ".crt", d + ".key"

    def subscriber(self, broker, **kw):
        s = Subscriber(self, broker, **kw)
        self.subscribers.append(s)
        return s.wait_subscribed()

    def notify_socket(self):
        n = Notify(self)
        self.notifies.append(n)
        return n

    def config(self, broker_port, name="agent.json", interval_ms=200, slots=None, ca=None, cert=None, key=None,
               keepalive_s=30, extra=None, telemetry_ms=None):
        """Writes an agent config; returns its path. Telemetry is published every sample unless
        telemetry_ms says otherwise (0: the agent's default, 10 s): most tests read it to see a
        sample's figures."""
        pki = self.pki
        if slots is None:
            slots = default_slots()
        cfg = {
            "node": {"id": self.node, "region": self.region},
            "sampling": {"interval_ms": interval_ms},
            "telemetry": {"interval_ms": interval_ms if telemetry_ms is None else telemetry_ms},
            "mqtt": {
                "host": "localhost",
                "port": broker_port,
                "keepalive_s": keepalive_s,
                "tls": {"ca_file": ca or pki["ca"], "cert_file": cert or pki["client_cert"],
                        "key_file": key or pki["client_key"]},
            },
            # The published cpu-4/cpu-8 need more cores than a 2-core test machine has; these
            # overrides (a catalog feature) keep the default slots conformant, so a test's log
            # holds no capacity warnings it did not ask for.
            "scales": {"cpu-4": {"vcpu": 1, "ram_gb": 1}, "cpu-8": {"vcpu": 1, "ram_gb": 1}},
            "state_dir": self.path("state"),
            "control": {"socket": self.path("agent.sock")},
            "slots": slots,
        }
        if telemetry_ms == 0:
            del cfg["telemetry"]
        if extra:
            cfg.update(extra)
        path = self.path(name)
        write_atomic(path, json.dumps(cfg, indent=2) + "\n")
        return path

    def agent(self, config_path, notify=None, extra_env=None, args=None, wrapper=None):
        e = dict(extra_env or {})
        if notify is not None:
            e["NOTIFY_SOCKET"] = notify.path
        a = Agent(self, config_path, e, args, wrapper)
        self.agents.append(a)
        return a

    def run(self, argv, timeout=20.0, env_vars=None):
        """Runs a short command to completion; returns CompletedProcess (text)."""
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env_vars:
            e.update(env_vars)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              env=e, cwd=self.dir)

    def describe(self):
        """Everything useful for a failure message: agent logs, broker log, messages, notify."""
        parts = []
        for a in self.agents:
            parts.append("--- render-agent pid %d (%s) stderr ---\n%s" %
                         (a.pid, "running" if a.alive() else "exit %s" % a.proc.popen.poll(), tail(a.log())))
        for b in self.brokers:
            parts.append("--- %s (port %s) log ---\n%s" % (getattr(b, "kind", "mosquitto"), b.port, tail(b.log(), 25)))
        for s in self.subscribers:
            parts.append("--- subscriber ---\n" + s.describe())
        for n in self.notifies:
            parts.append("--- " + n.describe())
        return "\n".join(parts)

    def cleanup(self):
        """Stops agents (SIGTERM, so LeakSanitizer reports), then everything else; removes the dir.
        Raises AssertionError if an agent's stderr holds a sanitizer report."""
        errors = []
        for a in self.agents:
            try:
                a.proc.stop(timeout=5)
            except Exception as e:
                errors.append("cannot stop agent %d: %s" % (a.pid, e))
        for a in self.agents:
            try:
                a.check_sanitizers()
            except AssertionError as e:
                errors.append(str(e))
        for s in self.subscribers:
            try:
                s.stop()
            except Exception:
                pass
        for p in self.procs:
            try:
                p.kill()
            except Exception:
                pass
        for n in self.notifies:
            n.close()
        if os.environ.get("RA_KEEP_TMP"):
            sys.stderr.write("keeping %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


def preload_library(env_name, file_name):
    """A test preload library (tests/integration/fake_*.c) as ctest names it in env_name, else the one
    a default build made, else "" (the test then fails, naming env_name)."""
    lib = os.environ.get(env_name, "")
    if not lib:
        cand = os.path.join(SOURCE_DIR, "build", "tests", "integration", file_name)
        lib = cand if os.path.isfile(cand) else ""
    return lib


def not_clock(event):
    """False for the clock_unsynced alarm: an agent on a host whose clock no NTP daemon disciplines
    (a container, a CI runner) raises it at start, beside the alarm a test waits for."""
    return event.get("alarm") != "clock_unsynced"


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def default_slots():
    return [
        {"id": "s0", "scale": "cpu-4", "iface": "lo"},
        {"id": "s1", "scale": "cpu-8", "gpu": 0},
    ]


def make_pki(dirpath, node):
    """scripts/dev-pki DIR NODE: CA, server (localhost), client (CN=node), rogue CA + client."""
    r = subprocess.run(["bash", DEV_PKI, dirpath, node], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("dev-pki failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    p = {
        "dir": dirpath,
        "ca": os.path.join(dirpath, "ca.crt"),
        "server_cert": os.path.join(dirpath, "server.crt"),
        "server_key": os.path.join(dirpath, "server.key"),
        "client_cert": os.path.join(dirpath, "client.crt"),
        "client_key": os.path.join(dirpath, "client.key"),
        "rogue_ca": os.path.join(dirpath, "rogue-ca.crt"),
        "rogue_client_cert": os.path.join(dirpath, "rogue-client.crt"),
        "rogue_client_key": os.path.join(dirpath, "rogue-client.key"),
    }
    for k, v in p.items():
        if k != "dir" and not os.path.isfile(v):
            raise AssertionError("dev-pki did not make %s" % v)
    return p


# --------------------------------------------------------------------------------------------
# unittest glue


class IntegrationTest(unittest.TestCase):
    """Base class: self.env is a fresh Env per test; a failing test prints the agent logs, the
    broker log, the messages received and the notify datagrams. Sanitizer reports in any agent's
    stderr fail the test at cleanup."""

    needs_mqtt = True

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for name, fn in list(vars(cls).items()):
            if name.startswith("test") and callable(fn):
                setattr(cls, name, _dump_on_failure(fn))

    def setUp(self):
        missing = []
        if not agent_binary():
            missing.append("RA_AGENT (render-agent binary) is not set")
        if self.needs_mqtt:
            for tool in ("mosquitto", "mosquitto_sub", "openssl"):
                if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
                    missing.append("%s not installed" % tool)
        if missing:
            self.fail("; ".join(missing))
        self.env = Env(self.id().split(".")[-1].replace("test_", "")[:20])
        self.addCleanup(self.env.cleanup)


def _dump_on_failure(fn):
    @functools.wraps(fn)
    def wrapper(self, *a, **kw):
        try:
            return fn(self, *a, **kw)
        except BaseException:
            env = getattr(self, "env", None)
            if env is not None:
                sys.stderr.write("\n===== %s failed; context =====\n%s\n===== end of context =====\n" %
                                 (self.id(), env.describe()))
            raise
    return wrapper


class SuiteTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise SuiteTimeout("test script ran longer than %d s; giving up (every process it started is killed)" %
                       SCRIPT_DEADLINE_S)


def _on_term(signum, frame):
    _kill_all_left_over()
    sys.exit(128 + signum)


# ctest gives each script 120 s; fail cleanly (logs shown, processes killed) before that.
SCRIPT_DEADLINE_S = int(os.environ.get("RA_SCRIPT_DEADLINE_S", "105"))


def main():
    """Runs the calling module's tests; exits non-zero on any failure."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(SCRIPT_DEADLINE_S)
    if "/usr/sbin" not in os.environ.get("PATH", ""):
        os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    prog = unittest.main(module="__main__", exit=False, verbosity=2)
    if not prog.result.wasSuccessful():
        sys.exit(1)
    # A skipped test is not a passed test: each skip is named in RA_SKIP_LOG (scripts/test's
    # summary) and the script exits 77, which ctest reports as skipped (SKIP_RETURN_CODE).
    suite = "integration." + os.path.splitext(os.path.basename(sys.argv[0]))[0][len("test_"):]
    log = os.environ.get("RA_SKIP_LOG")
    for test, reason in prog.result.skipped:
        print("SKIP: %s: %s: %s" % (suite, test.id().split(".")[-1], reason), file=sys.stderr)
        if log:
            with open(log, "a") as f:
                f.write("%s\t%s\t%s\n" % (suite, test.id().split(".")[-1], " ".join(str(reason).split())))
    sys.exit(77 if prog.result.skipped else 0)
