#!/usr/bin/env python3
"""compare_collectd: render-agent and collectd (Debian's collectd-core) doing the same job side by side.

Both sample CPU, memory and network interfaces once a second and publish to the same loopback
mosquitto (TLS with client certificates, as in production; --plain: clear-text MQTT for both),
at the same time, for SECONDS (default 60). render-agent runs with 8 slots (the host's interfaces
given to the first ones); collectd with its cpu, memory, interface and load plugins at Interval 1
and its mqtt write plugin. Measured per process, from /proc: CPU seconds (utime + stime of
/proc/PID/stat) over the whole run and over the SECONDS window after both publish, peak RSS
(VmHWM), threads, PSS and USS at the end, and where they go: /proc/PID/smaps summed per part (the
program's own file, heap, stack, other anonymous memory, each shared library), the same way for
both; on a mosquitto_sub: the messages and bytes each published in the window. Prints a table with
the ratios; never a pass/fail. Installs nothing (scripts/bench does).

Usage: compare_collectd.py [SECONDS] [--plain]
       (RA_AGENT, RA_CTL: the binaries; see tests/integration/harness.py; RA_SMAPS_DIR: a folder to
       copy both processes' /proc/PID/smaps into at the end, as agent.smaps and collectd.smaps;
       RA_COLLECTD_THREADS: collectd's ReadThreads and WriteThreads, default its own 5 and 5)
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

COLLECTD = shutil.which("collectd") or "/usr/sbin/collectd"
PLUGIN_DIR = "/usr/lib/collectd"
TYPES_DB = "/usr/share/collectd/types.db"
N_SLOTS = 8
WARMUP_S = 3  # after both publish: first samples, TLS session set up, plan made
MIB = 1024.0 * 1024.0


class Broker(harness.Broker):
    """The harness's TLS broker; with plain_port, also a clear-text listener for the two clients
    (the subscriber keeps using TLS, so it costs the same in both modes)."""

    plain_port = None

    def _write_conf(self):
        super()._write_conf()
        if self.plain_port:
            with open(self.conf, "a") as f:
                f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % self.plain_port)


def proc_stat_cpu(pid):
    """utime + stime: what the issue asks for, in clock ticks (10 ms) of the whole process."""
    return harness.cpu_seconds(pid)


def proc_run_cpu(pid):
    """The scheduler's runtime of each thread (/proc/PID/task/*/schedstat, ns), summed: exact where
    ticks are too coarse for a process that runs a fraction of a millisecond a second. Threads that
    ended are not counted (collectd's are started once and kept)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def proc_status(pid):
    """VmRSS and VmHWM in bytes, Threads, from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
            elif k == "Threads":
                out[k] = int(v)
    return out


SMAPS_FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty")


def smaps_parts(pid, plugin_dir=None):
    """/proc/PID/smaps summed per part, in bytes of each of SMAPS_FIELDS: the program's own file
    ("binary"), its plugins ("plugins": the files under plugin_dir, collectd's own code kept in
    separate files), each other shared library by file name, "heap"
    ([heap]), "stack" ([stack]), "anon" (anonymous mappings: malloc's mmapped blocks, thread
    stacks, libraries' .bss beyond their file) and "kernel" ([vdso], [vvar]...). Every mapping
    counts in exactly one part, so the parts add up to the totals of smaps_rollup."""
    exe = os.path.realpath("/proc/%d/exe" % pid)
    parts = {}
    cur = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's line: address range ... path
                head = line.split(None, 5)
                name = head[5].strip() if len(head) > 5 else ""
                if name == exe:
                    key = "binary"
                elif plugin_dir and name.startswith(plugin_dir + "/"):
                    key = "plugins"
                elif name == "[heap]":
                    key = "heap"
                elif name.startswith("[stack"):
                    key = "stack"
                elif name.startswith("["):
                    key = "kernel"
                elif not name:
                    key = "anon"
                else:
                    key = os.path.basename(name)
                cur = parts.setdefault(key, dict.fromkeys(SMAPS_FIELDS, 0))
            else:
                k, _, v = line.partition(":")
                if cur is not None and k in SMAPS_FIELDS:
                    cur[k] += int(v.split()[0]) * 1024
    return parts


def uss(m):
    return m["Private_Clean"] + m["Private_Dirty"]


def proc_pss(pid, plugin_dir=None):
    """In bytes: the proportional set size (shared pages split among the processes that map them),
    the unique set size (Private_Clean + Private_Dirty: pages no other process maps, what the process
    alone costs the host; both move with what else runs) and their parts (smaps_parts)."""
    parts = smaps_parts(pid, plugin_dir)
    out = {"parts": parts, "Pss": sum(m["Pss"] for m in parts.values()),
           "USS": sum(uss(m) for m in parts.values())}
    # The kernel's own sums, read right after: the parts must add up to them (a mapping the parser
    # missed would hide memory from the breakdown), up to what the process touched in between.
    roll = {"Pss": 0, "USS": 0}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "Pss":
                roll["Pss"] = int(v.split()[0]) * 1024
            elif k in ("Private_Clean", "Private_Dirty"):
                roll["USS"] += int(v.split()[0]) * 1024
    for k in roll:
        if abs(roll[k] - out[k]) > 64 * 1024:
            print("compare_collectd: pid %d: the parts of smaps give %s %.0f KiB, smaps_rollup %.0f KiB" %
                  (pid, k, out[k] / 1024, roll[k] / 1024))
    # Of the USS, the clean pages of shared-library files (.so) that no other process maps right now:
    # on a host where another process loads the same library (libsystemd: systemd itself) they are
    # shared and leave the USS; relocated pages (written at load time: Private_Dirty) stay private
    # everywhere.
    out["USS_so"] = sum(m["Private_Clean"] for k, m in parts.items() if ".so" in k)
    return out


def group_parts(parts):
    """The breakdown's rows: own (binary, heap, stack, anon), then each library's clean (unshared
    code) and dirty (relocated, written data) pages, libraries under 8 KiB of USS and 8 KiB of PSS
    folded into "other libraries"."""
    rows = {}
    for k, m in parts.items():
        if ".so" in k:
            if uss(m) < 8192 and m["Pss"] < 8192:
                k = "other libraries"
            r = rows.setdefault(k, {"USS": 0, "clean": 0, "dirty": 0, "Pss": 0, "Rss": 0})
        else:
            r = rows.setdefault(k, {"USS": 0, "clean": 0, "dirty": 0, "Pss": 0, "Rss": 0})
        r["USS"] += uss(m)
        r["clean"] += m["Private_Clean"]
        r["dirty"] += m["Private_Dirty"]
        r["Pss"] += m["Pss"]
        r["Rss"] += m["Rss"]
    return rows


def print_breakdown(pss):
    """Where each process's USS and PSS go, per part, KiB: USS (private clean / private dirty), PSS,
    RSS. Own parts first, then libraries by USS."""
    print("where the memory goes at the end, KiB: USS = private clean + private dirty; PSS; RSS")
    print("%-26s %30s   %30s" % ("", "render-agent", "collectd"))
    print("%-26s %30s   %30s" % ("part", "USS (clean+dirty)   PSS   RSS", "USS (clean+dirty)   PSS   RSS"))
    g = {who: group_parts(pss[who]["parts"]) for who in ("agent", "collectd")}
    own = ["binary", "plugins", "heap", "stack", "anon", "kernel"]
    libs = sorted({k for who in g for k in g[who] if k not in own and k != "other libraries"},
                  key=lambda k: -max(g["agent"].get(k, {"USS": 0})["USS"], g["collectd"].get(k, {"USS": 0})["USS"]))
    order = own + libs + ["other libraries"]

    def cell(r):
        if r is None:
            return "%30s" % "-"
        return "%6.0f (%4.0f+%4.0f) %6.0f %6.0f" % (r["USS"] / 1024, r["clean"] / 1024, r["dirty"] / 1024,
                                                    r["Pss"] / 1024, r["Rss"] / 1024)

    for k in order:
        if k in g["agent"] or k in g["collectd"]:
            print("%-26s %30s   %30s" % (k[:26], cell(g["agent"].get(k)), cell(g["collectd"].get(k))))
    for name, keys in (("own (program, heap, stacks)", own), ("libraries", libs + ["other libraries"])):
        tot = {}
        for who in g:
            t = {"USS": 0, "clean": 0, "dirty": 0, "Pss": 0, "Rss": 0}
            for k in keys:
                for f in t:
                    t[f] += g[who].get(k, {}).get(f, 0)
            tot[who] = t
        print("%-26s %30s   %30s" % (name[:26], cell(tot["agent"]), cell(tot["collectd"])))


def collectd_conf(env, port, plain):
    """Debian's defaults (ReadThreads 5, WriteThreads 5; RA_COLLECTD_THREADS=N sets both to N, to see
    how much of collectd's memory its threads are), four read plugins at Interval 1 and the mqtt
    writer; logs to stderr."""
    pki = env.pki
    threads = os.environ.get("RA_COLLECTD_THREADS")
    threads = "ReadThreads %d\nWriteThreads %d\n" % (int(threads), int(threads)) if threads else ""
    tls = "" if plain else """    CACert "%s"
    CertificateFile "%s"
    CertificateKeyFile "%s"
    TLSProtocol "tlsv1.2"
""" % (pki["ca"], pki["client_cert"], pki["client_key"])
    text = """Hostname "bench"
FQDNLookup false
BaseDir "%(dir)s"
PIDFile "%(dir)s/collectd.pid"
PluginDir "%(plugins)s"
TypesDB "%(types)s"
Interval 1
%(threads)sLoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File STDERR
  Timestamp true
</Plugin>
LoadPlugin cpu
LoadPlugin memory
LoadPlugin interface
LoadPlugin load
LoadPlugin mqtt
<Plugin mqtt>
  <Publish "bench">
    Host "localhost"
    Port "%(port)d"
    ClientId "collectd-bench"
    Prefix "collectd"
    QoS 0
%(tls)s  </Publish>
</Plugin>
""" % {"dir": env.path("collectd"), "plugins": PLUGIN_DIR, "types": TYPES_DB, "port": port, "tls": tls,
            "threads": threads}
    os.makedirs(env.path("collectd"), exist_ok=True)
    path = env.path("collectd.conf")
    harness.write_atomic(path, text)
    return path


def agent_config(env, port, plain):
    ifaces = sorted(harness.proc_net_dev())
    slots = []
    for i in range(N_SLOTS):
        s = {"id": "s%d" % i, "scale": "cpu-4"}
        if i < len(ifaces):
            s["iface"] = ifaces[i]
        slots.append(s)
    extra = {}
    if plain:
        pki = env.pki
        extra["mqtt"] = {"host": "localhost", "port": port, "tls": False}
        # Metering signs with the device key, which plain MQTT does not name.
        extra["metering"] = {"key_file": pki["client_key"], "cert_file": pki["client_cert"]}
    return env.config(port, interval_ms=1000, slots=slots, extra=extra), slots


def status(env):
    r = env.run([harness.ctl_binary(), "--socket", env.path("agent.sock"), "--json", "status"])
    if r.returncode != 0:
        raise AssertionError("render-agentctl status failed: %s" % r.stderr)
    return json.loads(r.stdout)["status"]


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return "%s, %d CPUs, Linux %s" % (model, os.cpu_count(), os.uname().release)


def row(name, a, c, fmt="%.3f", ratio=True):
    ra = fmt % a if a is not None else "-"
    rc = fmt % c if c is not None else "-"
    rr = "%.3f" % (a / c) if ratio and a is not None and c else ""
    print("%-38s %14s %14s %10s" % (name, ra, rc, rr))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    plain = "--plain" in sys.argv[1:]
    seconds = int(args[0]) if args else 60
    for f in (COLLECTD, os.path.join(PLUGIN_DIR, "mqtt.so"), TYPES_DB):
        if not os.path.exists(f):
            sys.exit("compare_collectd: %s is missing: install collectd-core (scripts/bench does)" % f)
    with harness.Env("bench-collectd") as env:
        b = Broker(env)
        if plain:
            b.plain_port = harness.free_port()
        b.start()
        env.brokers.append(b)
        port = b.plain_port or b.port
        sub = env.subscriber(b, topic="#")
        cfg, slots = agent_config(env, port, plain)
        agent = env.agent(cfg, args=["--log-level", "info"])
        cd = harness.Proc(env, "collectd", [COLLECTD, "-f", "-C", collectd_conf(env, port, plain)])
        agent.wait_connected()
        if not sub.wait_count("/telemetry", 1, timeout=15):
            raise AssertionError("no telemetry from render-agent\n%s" % env.describe())
        if not harness.wait_for(lambda: any(m[1].startswith("collectd/") for m in sub.snapshot()), 15):
            raise AssertionError("nothing from collectd within 15 s\n--- collectd ---\n%s" % harness.tail(cd.stderr()))
        time.sleep(WARMUP_S)

        t0 = time.monotonic()
        cpu0 = {"agent": proc_stat_cpu(agent.pid), "collectd": proc_stat_cpu(cd.pid)}
        run0 = {"agent": proc_run_cpu(agent.pid), "collectd": proc_run_cpu(cd.pid)}
        time.sleep(seconds)
        t1 = time.monotonic()
        cpu1 = {"agent": proc_stat_cpu(agent.pid), "collectd": proc_stat_cpu(cd.pid)}
        run1 = {"agent": proc_run_cpu(agent.pid), "collectd": proc_run_cpu(cd.pid)}
        st = {"agent": proc_status(agent.pid), "collectd": proc_status(cd.pid)}
        pss = {"agent": proc_pss(agent.pid), "collectd": proc_pss(cd.pid, PLUGIN_DIR)}
        me = status(env)["self"]
        msgs = {"agent": [0, 0], "collectd": [0, 0]}
        for t, topic, payload in sub.snapshot():
            if t0 <= t < t1:
                who = "agent" if topic.startswith("render/") else "collectd" if topic.startswith("collectd/") else None
                if who:
                    msgs[who][0] += 1
                    msgs[who][1] += len(payload.encode())
        if not cd.alive():
            raise AssertionError("collectd exited during the run\n%s" % harness.tail(cd.stderr()))
        cd_errors = [line for line in cd.stderr().splitlines() if re.search(r"\[error\]|\[warning\]", line)]

        win = t1 - t0
        print("render-agent vs collectd, side by side: %d s at 1 Hz, one loopback mosquitto (%s)" %
              (seconds, "plain MQTT" if plain else "TLS, client certificates"))
        print("machine: %s" % machine())
        print("render-agent: %d slots (%d with an interface), telemetry every 1000 ms, metering on; "
              "collectd %s: cpu, memory, interface, load, mqtt (QoS 0), %s" %
              (len(slots), sum(1 for s in slots if "iface" in s), collectd_version(),
               "%s read and write threads" % os.environ["RA_COLLECTD_THREADS"]
               if os.environ.get("RA_COLLECTD_THREADS") else "its default 5 read and 5 write threads"))
        print()
        print("%-38s %14s %14s %10s" % ("", "render-agent", "collectd", "ratio"))
        run = {k: run1[k] - run0[k] for k in run1}
        row("CPU s, whole run (utime+stime, ticks)", cpu1["agent"], cpu1["collectd"])
        row("CPU s, %d s window (utime+stime, ticks)" % seconds, cpu1["agent"] - cpu0["agent"],
            cpu1["collectd"] - cpu0["collectd"])
        row("CPU s, whole run (schedstat, ns)", run1["agent"], run1["collectd"])
        row("CPU s, %d s window (schedstat, ns)" % seconds, run["agent"], run["collectd"])
        row("CPU ms per second (window, schedstat)", 1000 * run["agent"] / win, 1000 * run["collectd"] / win, "%.3f")
        row("peak RSS, MiB (VmHWM)", st["agent"]["VmHWM"] / MIB, st["collectd"]["VmHWM"] / MIB, "%.2f")
        row("RSS at the end, MiB (VmRSS)", st["agent"]["VmRSS"] / MIB, st["collectd"]["VmRSS"] / MIB, "%.2f")
        row("  of which anonymous (RssAnon)", st["agent"]["RssAnon"] / MIB, st["collectd"]["RssAnon"] / MIB, "%.2f")
        row("  of which file-backed (RssFile)", st["agent"]["RssFile"] / MIB, st["collectd"]["RssFile"] / MIB,
            "%.2f")
        row("PSS at the end, MiB (shared pages split)", pss["agent"]["Pss"] / MIB, pss["collectd"]["Pss"] / MIB,
            "%.2f")
        row("USS at the end, MiB (private pages only)", pss["agent"]["USS"] / MIB, pss["collectd"]["USS"] / MIB,
            "%.2f")
        own = {who: sum(uss(m) for k, m in pss[who]["parts"].items() if ".so" not in k) for who in pss}
        row("  own: program, heap, stacks, anonymous", own["agent"] / MIB, own["collectd"] / MIB, "%.2f")
        row("  libraries' written pages (relocated)", (pss["agent"]["USS"] - pss["agent"]["USS_so"] - own["agent"]) / MIB,
            (pss["collectd"]["USS"] - pss["collectd"]["USS_so"] - own["collectd"]) / MIB, "%.2f")
        row("  libraries' code no other process maps", pss["agent"]["USS_so"] / MIB, pss["collectd"]["USS_so"] / MIB,
            "%.2f")
        # USS counts a library's code only while no other process maps it, so it moves with what
        # else runs; this row counts the code of the libraries only one of the two loads as if
        # nothing else on the host mapped them (what a host running neither systemd's nor another
        # program's copy of them pays).
        alone = {}
        for who, other in (("agent", "collectd"), ("collectd", "agent")):
            alone[who] = pss[who]["USS"] + sum(m["Rss"] - uss(m) for k, m in pss[who]["parts"].items()
                                               if ".so" in k and k not in pss[other]["parts"])
        row("USS with the libraries only it loads unshared", alone["agent"] / MIB, alone["collectd"] / MIB,
            "%.2f")
        row("threads", st["agent"]["Threads"], st["collectd"]["Threads"], "%d", ratio=False)
        row("messages published per second", msgs["agent"][0] / win, msgs["collectd"][0] / win, "%.1f")
        row("payload bytes published per second", msgs["agent"][1] / win, msgs["collectd"][1] / win, "%.0f")
        print()
        print("render-agent's own report (self): cpu %.3f s, peak RSS %.2f MiB, tick %d us (max %d us in the "
              "last minute)" % (me.get("cpu_usec", 0) / 1e6, me.get("peak_rss_bytes", 0) / MIB,
                                me.get("tick_usec", 0), me.get("tick_max_usec", 0)))
        cpu_ratio = run["agent"] / max(run["collectd"], 1e-9)
        # Memory is judged by what each costs the host beyond shared libraries (USS, PSS): RSS counts
        # the OpenSSL that libmosquitto maps, which is not the agent's own.
        print("targets (issue 15): CPU <= 1/5 of collectd's (window, schedstat): %s (%.3f); USS <= collectd's: %s "
              "(%.2f vs %.2f MiB; own part, beyond shared libraries: %s, %.2f vs %.2f); PSS <= collectd's: %s "
              "(%.2f vs %.2f MiB)" %
              ("met" if cpu_ratio <= 1 / 5 else "NOT met", cpu_ratio,
               "met" if pss["agent"]["USS"] <= pss["collectd"]["USS"] else "NOT met", pss["agent"]["USS"] / MIB,
               pss["collectd"]["USS"] / MIB,
               "met" if own["agent"] <= own["collectd"] else "NOT met", own["agent"] / MIB, own["collectd"] / MIB,
               "met" if pss["agent"]["Pss"] <= pss["collectd"]["Pss"] else "NOT met", pss["agent"]["Pss"] / MIB,
               pss["collectd"]["Pss"] / MIB))
        print()
        print_breakdown(pss)
        if os.environ.get("RA_SMAPS_DIR"):
            for who, proc in (("agent", agent), ("collectd", cd)):
                shutil.copyfile("/proc/%d/smaps" % proc.pid, os.path.join(os.environ["RA_SMAPS_DIR"], who + ".smaps"))
        if cd_errors:
            print("collectd complained (%d lines), first: %s" % (len(cd_errors), cd_errors[0]))
        cd.stop()


def collectd_version():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "collectd-core"], capture_output=True,
                             text=True, timeout=10).stdout
        return out or "?"
    except (OSError, ValueError):
        return "?"


if __name__ == "__main__":
    main()
