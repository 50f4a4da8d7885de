#!/usr/bin/env python3
"""test_footprint: what the render-agent binary makes every host keep in memory, checked on the built
file (readelf, no agent run): each loaded page of the binary and each library it names costs every
agent's USS and PSS (docs/performance.md, render-agent vs collectd). Large read-only tables belong in
.bss, where pages that are only read are the kernel's one shared zero page."""

import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# libm functions that unoptimised builds call and optimised ones inline (-O1 and up: none is called).
LIBM_AT_O0 = {"floor", "copysign", "fabs"}

# The main thread's stack a running agent has touched (Rss of [stack]): start-up's deepest frames,
# about 28 KiB; struct agent (55 KB) on it made 80.
STACK_MAX = 48 * 1024

# A read-only object this large is 4+ pages of the binary that every agent maps; zeros belong in .bss.
RODATA_OBJECT_MAX = 16 * 1024


def readelf(*args):
    r = subprocess.run(["readelf", "-W"] + list(args) + [harness.agent_binary()], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise AssertionError("readelf %s failed: %s" % (" ".join(args), r.stderr))
    return r.stdout


def read_only_sections():
    """{index: name} of the sections loaded and not writable (.rodata, .eh_frame, ...)."""
    out = {}
    for m in re.finditer(r"^\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+(\S*)",
                         readelf("-S"), re.M):
        flags = m.group(3)
        if "A" in flags and "W" not in flags and "X" not in flags:
            out[m.group(1)] = m.group(2)
    return out


class Footprint(harness.IntegrationTest):
    needs_mqtt = False

    def test_no_large_read_only_object(self):
        if ".symtab" not in readelf("-S"):
            self.skipTest("render-agent has no symbol table (stripped)")
        ro = read_only_sections()
        self.assertIn(".rodata", ro.values())
        big = []
        for line in readelf("-s").splitlines():
            f = line.split()
            # Num: Value Size Type Bind Vis Ndx Name
            if len(f) >= 8 and f[3] == "OBJECT" and f[6] in ro and int(f[2], 0) > RODATA_OBJECT_MAX:
                big.append("%s (%s bytes in %s)" % (f[7], f[2], ro[f[6]]))
        self.assertEqual(big, [], "read-only objects over %d bytes in render-agent: every agent maps their pages; "
                         "a table of zeros belongs in .bss" % RODATA_OBJECT_MAX)

    def test_no_libm_unless_unoptimised(self):
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", readelf("-d"))
        undefined = {line.split()[7].split("@")[0] for line in readelf("--dyn-syms").splitlines()
                     if len(line.split()) >= 8 and line.split()[6] == "UND"}
        libm = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                                 "/lib/aarch64-linux-gnu/libm.so.6", "/lib64/libm.so.6") if os.path.exists(p)), None)
        if not libm:
            self.skipTest("no libm.so.6 found to list its functions")
        r = subprocess.run(["nm", "-D", "--defined-only", libm], capture_output=True, text=True, timeout=30)
        in_libm = {line.split()[-1].split("@")[0] for line in r.stdout.splitlines() if line.strip()}
        called = sorted(undefined & in_libm - {"__errno_location"})
        self.assertEqual(sorted(set(called) - LIBM_AT_O0), [],
                         "render-agent calls libm for these; json/jsonnum.h has jsonnum_round")
        if not called:
            self.assertFalse([n for n in needed if n.startswith("libm.so")],
                             "render-agent calls nothing in libm but names it: link with --as-needed")


class Running(harness.IntegrationTest):
    def test_main_stack_stays_small_with_8_slots(self):
        # The same limit holds in ASan builds (measured: 28-32 KiB with the agent static, 72 KiB with
        # it back on the stack), so the check runs in every build scripts/test makes.
        env = self.env
        broker = env.broker()
        slots = [{"id": "s%d" % i, "scale": "cpu-4"} for i in range(8)]
        agent = env.agent(env.config(broker.port, interval_ms=200, slots=slots))
        agent.wait_connected()
        sub = env.subscriber(broker)
        self.assertTrue(sub.wait_count("/telemetry", 3, timeout=15), env.describe())
        stack, name = None, ""
        with open("/proc/%d/smaps" % agent.pid) as f:
            for line in f:
                if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                    name = line.split()[-1]
                elif name == "[stack]" and line.startswith("Rss:"):
                    stack = int(line.split()[1]) * 1024
        self.assertIsNotNone(stack, "no [stack] in smaps")
        self.assertLessEqual(stack, STACK_MAX, "render-agent's main stack: %d KiB touched (large frames or "
                             "structs on it stay in every agent's USS)" % (stack // 1024))


if __name__ == "__main__":
    harness.main()
