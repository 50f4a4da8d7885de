#!/usr/bin/env python3
"""test_cli: render-agent's one-shot modes. --check-config prints exact, editor-friendly messages
and exits 0/1; --probe --root DIR [--config FILE] prints one JSON document whose values are the
fixture files' contents (the expectation is computed here by parsing the fixtures, not hard-coded:
/proc, amdgpu and Mali sysfs, cgroup v2 and v1), and on a corrupt fixture exits 1 naming the file
on stderr and in "errors"."""

import ctypes
import functools
import json
import os
import re
import shutil
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

METRIC_FILES = ("proc/stat", "proc/meminfo", "proc/net/dev")
# Corrupt fixtures are named after the file they break (tests/fixtures/hosts/corrupt/<prefix>-...).
# The GPU and cgroup ones (amd-*, mali-*, cgroup-*) are in CORRUPT_GPU_CGROUP_FILES below.
CORRUPT_PREFIX_FILES = {
    "stat": ["proc/stat"],
    "meminfo": ["proc/meminfo"],
    "netdev": ["proc/net/dev"],
    "arch": ["proc/sys/kernel/arch"],
    "gpu": ["sys/class/drm/card0/device/vendor", "sys/class/drm/card0/device/class"],
    "empty": ["proc/stat", "proc/meminfo", "proc/net/dev"],
}
# GPU and cgroup fixtures: the one file each breaks, which --probe must name. A GPU sample reports
# its first problem only: amd-dpm-garbage's gpu_busy_percent of 250 comes before its pp_dpm_sclk.
# cgroup files are read only for configured slots (a slot whose cgroup is the file's directory),
# a /proc/<pid>/cgroup file only for the processes of a GPU that slots share.
CORRUPT_GPU_CGROUP_FILES = {
    "amd-bad-device-id": "sys/class/drm/card0/device/device",
    "amd-dpm-garbage": "sys/class/drm/card0/device/gpu_busy_percent",
    "amd-vram-garbage": "sys/class/drm/card0/device/mem_info_vram_total",
    "mali-load-garbage": "sys/class/devfreq/fb000000.gpu/load",
    "cgroup-cpustat-garbage": "sys/fs/cgroup/render.slice/slot-0.scope/cpu.stat",
    "cgroup-memmax-garbage": "sys/fs/cgroup/render.slice/slot-0.scope/memory.max",
    "cgroup-pidfile-garbage": "proc/77/cgroup",
}
# Fixtures whose broken file a known agent bug leaves out of "errors" and the exit status (the value
# says whether stderr names it at least); give such a bug an expectedFailure test. None at present.
KNOWN_UNREPORTED = {}


def names_file(error, broken):
    """An error about `broken` starts with its path, or (a GPU backend that failed to open as a
    whole) with "GPU backend <name>: " and then its path."""
    return re.match(r"(GPU backend \w+: )?/%s: " % re.escape(broken), error) is not None


# The healthy host the corrupt GPU/cgroup trees are laid over, so that theirs is the only problem.
BASE_FIXTURE = "x86-cpu"


@functools.lru_cache(maxsize=None)
def host_has_nvml():
    """NVML ignores --root: on a host with the NVIDIA driver, a --probe without a config naming
    another library sees this host's NVIDIA GPUs next to the fixture's."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        return True
    except OSError:
        return False


def read_fixture(root, rel):
    with open(os.path.join(root, rel), "rb") as f:
        return f.read().decode("utf-8", "replace")


def first_line_text(raw):
    """hal_gpu_sysfs_copy_text(): the first line, trailing blanks and NULs dropped."""
    line = raw.split("\n", 1)[0]
    return line.rstrip(" \t\0")


def hz_to_mhz(hz):
    return hz // 1000000 + (1 if hz % 1000000 >= 500000 else 0)


def fp32_members(vendor, device, name):
    t = harness.fp32_tflops(vendor, device, name)
    return {"fp32_tflops": None if t is None else harness.fixed(t, 1),
            "fp32_source": "unknown" if t is None else "table"}


def expected_amdgpu(root):
    """gpus[] members for the fixture's amdgpu cards (AMD, display class), by card number."""
    drm = os.path.join(root, "sys/class/drm")
    if not os.path.isdir(drm):
        return []
    cards = sorted(int(c[4:]) for c in os.listdir(drm) if re.fullmatch(r"card\d+", c))
    out = []
    for n in cards:
        rel = "sys/class/drm/card%d/device" % n
        dev = os.path.join(root, rel)

        def attr(name):
            p = os.path.join(dev, name)
            return read_fixture(root, os.path.join(rel, name)) if os.path.isfile(p) else None
        if not os.path.isdir(dev) or attr("vendor") is None or int(attr("vendor"), 16) != 0x1002:
            continue
        if attr("class") is None or int(attr("class"), 16) >> 16 != 0x03:
            continue
        device = int(attr("device"), 16)
        g = {"backend": "amdgpu"}
        name = first_line_text(attr("product_name") or "")
        g["name"] = name or "AMD GPU 0x%04x" % device
        if attr("unique_id") is not None:
            g["uuid"] = first_line_text(attr("unique_id"))
        bus = None
        if os.path.islink(dev):
            bus = os.path.basename(os.readlink(dev))
        elif attr("uevent") is not None:
            for line in attr("uevent").splitlines():
                if line.startswith("PCI_SLOT_NAME="):
                    bus = line.split("=", 1)[1]
                    break
        if bus:
            g["pci_bus_id"] = bus
        if attr("gpu_busy_percent") is not None:
            g["util_pct"] = float(int(attr("gpu_busy_percent")))
        if attr("mem_busy_percent") is not None:
            g["mem_util_pct"] = float(int(attr("mem_busy_percent")))
        if attr("mem_info_vram_total") is not None and attr("mem_info_vram_used") is not None:
            g["vram_total_bytes"] = int(attr("mem_info_vram_total"))
            g["vram_used_bytes"] = int(attr("mem_info_vram_used"))
        hw = os.path.join(dev, "hwmon")
        nums = sorted(int(h[5:]) for h in os.listdir(hw) if re.fullmatch(r"hwmon\d+", h)) \
            if os.path.isdir(hw) else []
        if nums:
            h = "hwmon/hwmon%d/" % nums[0]
            uw = attr(h + "power1_average") or attr(h + "power1_input")
            if uw is not None:
                g["power_w"] = harness.fixed(int(uw) / 1e6, 1)
            if attr(h + "temp1_input") is not None:
                g["temp_c"] = harness.fixed(int(attr(h + "temp1_input")) / 1000.0, 1)
        if attr("pp_dpm_sclk") is not None:
            levels = [line.split() for line in attr("pp_dpm_sclk").splitlines() if line.strip()]
            mhz = [int(lv[1][:-3]) for lv in levels]
            cur = [int(lv[1][:-3]) for lv in levels if lv[2:] == ["*"]]
            if cur:
                g["clock_mhz"] = cur[0]
            g["clock_max_mhz"] = max(mhz)
        g.update(fp32_members(0x1002, device, g["name"]))
        out.append(g)
    return out


def expected_mali(root):
    """The gpus[] member for the fixture's Mali GPU (kbase misc/mali0 and/or a GPU devfreq)."""
    kbase = "sys/class/misc/mali0/device"
    has_kbase = os.path.isdir(os.path.join(root, kbase))
    dfroot = os.path.join(root, "sys/class/devfreq")
    df, name = None, ""
    if os.path.isdir(dfroot):
        for n in sorted(x for x in os.listdir(dfroot) if not x.startswith(".")):
            compat_p = os.path.join(dfroot, n, "device/of_node/compatible")
            compat = None
            if not re.search("mali|gpu", n, re.I):
                compat = read_fixture(dfroot, os.path.join(n, "device/of_node/compatible")) \
                    if os.path.isfile(compat_p) else None
                if compat is None or not re.search("mali|gpu", compat, re.I):
                    continue
            df = "sys/class/devfreq/" + n
            name = first_line_text(compat.split("\0", 1)[0]) if compat else ""
            name = name or n
            break
    if not has_kbase and df is None:
        return []

    def attr(d, f):
        p = os.path.join(root, d, f)
        return read_fixture(root, os.path.join(d, f)) if os.path.isfile(p) else None
    if has_kbase:
        info = attr(kbase, "gpuinfo")
        if info is not None and first_line_text(info):
            name = first_line_text(info)
        name = name or "Mali GPU"
    g = {"backend": "mali", "name": name, "shared_memory": True}
    util = (attr(kbase, "utilization") or attr(kbase, "gpu_utilization")) if has_kbase else None
    if util is not None:
        g["util_pct"] = float(int(util))
    if df is not None:
        if attr(df, "cur_freq") is not None:
            g["clock_mhz"] = hz_to_mhz(int(attr(df, "cur_freq")))
        if attr(df, "max_freq") is not None:
            g["clock_max_mhz"] = hz_to_mhz(int(attr(df, "max_freq")))
        if util is None and attr(df, "load") is not None:
            g["util_pct"] = float(int(attr(df, "load").split("@")[0]))
    g.update(fp32_members(0, 0, name))
    return [g]


def expected_gpus(root):
    """Backends in the agent's order (NVML: none in a fixture; amdgpu; Mali), numbered across."""
    gpus = expected_amdgpu(root) + expected_mali(root)
    return [dict(g, index=i) for i, g in enumerate(gpus)]


class Cli(harness.IntegrationTest):
    needs_mqtt = False

    def agent(self, *args):
        r = self.env.run([harness.agent_binary()] + list(args), timeout=20)
        self.assertIsNone(harness.SANITIZER_RE.search(r.stderr), "sanitizer report:\n" + r.stderr)
        return r

    def write_cfg(self, name, text):
        path = self.env.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def base_cfg(self):
        with open(self.env.config(8883, name="base.json")) as f:
            return json.loads(f.read())

    def check_fails(self, path, *expected_lines):
        r = self.agent("--check-config", "--config", path)
        self.assertEqual(r.returncode, 1, "exit %d for %s\n%s%s" % (r.returncode, path, r.stdout, r.stderr))
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        for e in expected_lines:
            self.assertIn(e, lines, "expected line missing from --check-config output:\n  %s\ngot:\n%s" %
                          (e, r.stderr))
        n = len(lines) - 1
        self.assertEqual(lines[-1], "%s: %d problem%s" % (path, n, "" if n == 1 else "s"), r.stderr)
        return lines

    # ---------------------------------------------------------------- --check-config

    def test_check_config_valid(self):
        path = self.env.config(8883, name="good.json")
        r = self.agent("--check-config", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "%s: valid: node %s in region %s, 2 slots, broker localhost:8883 "
                                   "(TLS, mutual auth)" % (path, self.env.node, self.env.region))
        # Then the capacity plan for this host: both slots fit (the harness scales them down).
        self.assertRegex(lines[1], r"^plan for this host \(\S+, x86-(cpu|gpu), \d+ vCPU, [\d.]+ GB RAM, \d+ GPUs?\):$")
        self.assertRegex(lines[2], r"^  s0 +cpu-4 +meets$")
        self.assertRegex(lines[3], r"^  s1 +cpu-8 +meets$")
        self.assertEqual(len(lines), 4, r.stdout)
        self.assertEqual(r.stderr, "")

    def test_check_config_plan_reports_capacity_and_refuses_wrong_platform(self):
        cfg = self.base_cfg()
        cfg.pop("scales", None)
        cfg["scales"] = {"arm-a1": {"class": "arm", "vcpu": 1, "ram_gb": 1, "bandwidth_mbps": 6}}
        cfg["slots"] = [{"id": "s0", "scale": "cpu-16"}]
        path = self.write_cfg("big.json", json.dumps(cfg, indent=2))
        r = self.agent("--check-config", "--config", path)
        # Too little capacity is a fact about this host: reported, exit 0 (on hosts under 16 cores).
        if os.cpu_count() < 16:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"  s0 +cpu-16 +FAILS: vcpu: needs 16, \d+ left of \d+ \(short by \d+\)")
            self.assertIn("1 of 1 slots do not meet their scale on this host", r.stdout)
        # A scale for another platform is a mistake in the file: exit 1.
        cfg["slots"] = [{"id": "s0", "scale": "arm-a1"}]
        path = self.write_cfg("arm.json", json.dumps(cfg, indent=2))
        r = self.agent("--check-config", "--config", path)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stdout, r"  s0 +arm-a1 +FAILS: ARM scale arm-a1 on a x86-(cpu|gpu) host")
        self.assertIn("%s: 1 slot with a scale for another platform (see above)" % path, r.stderr)

    def test_check_config_bad_value(self):
        cfg = self.base_cfg()
        cfg["mqtt"]["port"] = 70000
        path = self.write_cfg("port.json", json.dumps(cfg, indent=2))
        lines = self.check_fails(path, "%s: mqtt.port: must be 1..65535 (got 70000)" % path)
        self.assertEqual(len(lines), 2, lines)

    def test_check_config_every_problem_listed(self):
        cfg = self.base_cfg()
        cfg["mqtt"]["prot"] = 8883                          # unknown key (typo)
        cfg["mqtt"]["tls"]["cert_file"] = "missing.crt"      # relative: resolved against the config's dir
        cfg["sampling"]["interval_ms"] = 50
        cfg["node"]["id"] = "bad/id"
        cfg["slots"].append({"id": "s0", "scale": "XXL"})
        path = self.write_cfg("many.json", json.dumps(cfg, indent=2))
        missing = self.env.path("missing.crt")
        self.check_fails(
            path,
            "%s: mqtt.prot: unknown key" % path,
            "%s: mqtt.tls.cert_file: cannot read %s: No such file or directory" % (path, missing),
            "%s: sampling.interval_ms: must be 100..60000 (got 50)" % path,
            '%s: node.id: must be 1..64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit '
            '(got "bad/id")' % path,
            '%s: slots[2].scale: unknown scale "XXL" (the catalog has S, M, L, cpu-4, cpu-8, cpu-16 and what '
            '"scales" defines)' % path,
            '%s: slots[2].id: "s0" is already the id of slots[0]' % path,
        )

    def test_check_config_missing_file(self):
        path = self.env.path("does-not-exist.json")
        self.check_fails(path, "%s: cannot read: No such file or directory" % path)

    def test_check_config_syntax_error_position(self):
        # A missing ',' between members: the next key, line 3 column 5, is where it goes wrong.
        text = '{\n  "node": {"id": "n1", "region": "r1"}\n    "mqtt": {"host": "h"}\n}\n'
        path = self.write_cfg("syntax.json", text)
        lines = self.check_fails(path, '%s:3:5: syntax error near \'"mqtt": {"host": "h"}\'' % path)
        self.assertEqual(len(lines), 2, lines)
        # Trailing garbage after the object.
        path = self.write_cfg("garbage.json", '{\n  "node": {}\n}\nxx\n')
        self.check_fails(path, "%s:4:1: syntax error near 'xx'" % path)
        # Cut off: the end of the file is the position.
        path = self.write_cfg("cut.json", '{\n  "node": {"id": "n1",')
        self.check_fails(path, "%s:2:23: syntax error: unexpected end of file" % path)

    def test_check_config_syntax_error_at_unquoted_key(self):
        # An unquoted key at line 3 column 5. The column must point at the 'o' of oops.
        path = self.write_cfg("key.json", '{\n  "node": {"id": "n1", "region": "r1"},\n    oops: 1\n}\n')
        self.check_fails(path, "%s:3:5: syntax error near 'oops: 1'" % path)

    def test_check_config_syntax_error_at_end_of_line(self):
        # A trailing comma: the '}' at line 2 column 22 is the error, and it is not the end of the file.
        path = self.write_cfg("comma.json", '{\n  "node": {"id": "a",}\n}\n')
        r = self.agent("--check-config", "--config", path)
        self.assertEqual(r.returncode, 1)
        self.assertNotIn("unexpected end of file", r.stderr, "a mid-file error reported as end of file")
        self.assertIn("%s:2:22: syntax error near '}'" % path, r.stderr.splitlines())

    # ---------------------------------------------------------------- --probe

    def expected_probe(self, root):
        """The JSON --probe must print for a fixture tree, computed from the files."""
        def read(rel):
            with open(os.path.join(root, rel)) as f:
                return f.read()

        doc = {"v": 1}
        arch = read("proc/sys/kernel/arch").rstrip("\n")
        gpus = 0
        drm = os.path.join(root, "sys/class/drm")
        if os.path.isdir(drm):
            for card in os.listdir(drm):
                if not re.fullmatch(r"card\d+", card):
                    continue
                dev = os.path.join(drm, card, "device")
                if not os.path.exists(os.path.join(dev, "vendor")):
                    continue
                vendor = int(read(os.path.join("sys/class/drm", card, "device/vendor")).strip(), 16)
                cls = int(read(os.path.join("sys/class/drm", card, "device/class")).strip(), 16)
                if vendor in (0x10DE, 0x1002) and cls >> 16 == 0x03:
                    gpus += 1
        if arch == "aarch64" or arch.startswith("arm"):
            klass = "arm"
        elif arch in ("x86_64", "x86") or re.fullmatch(r"i[3-6]86", arch):
            klass = "x86-gpu" if gpus else "x86-cpu"
        else:
            klass = "unknown"
        doc["platform"] = {"arch": arch, "class": klass}

        cores, agg = 0, None
        for line in read("proc/stat").splitlines():
            f = line.split()
            if f and f[0] == "cpu":
                agg = [int(x) for x in f[1:]]
            elif f and re.fullmatch(r"cpu\d+", f[0]):
                cores += 1
        doc["cpu"] = {"cores": cores, "total_jiffies": sum(agg[:8]), "idle_jiffies": agg[3] + agg[4]}

        mem = {}
        for line in read("proc/meminfo").splitlines():
            k, _, v = line.partition(":")
            mem[k] = v.split()
        if "MemAvailable" in mem:
            doc["memory"] = {"total_bytes": int(mem["MemTotal"][0]) * 1024,
                             "available_bytes": int(mem["MemAvailable"][0]) * 1024}
        else:  # before Linux 3.14: the kernel's estimate, less the zones' low watermarks
            est = sum(int(mem[k][0]) * 1024 for k in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable"))
            try:
                low = sum(int(f[1]) for f in (ln.split() for ln in read("proc/zoneinfo").splitlines())
                          if len(f) == 2 and f[0] == "low")
            except FileNotFoundError:
                low = 0
            doc["memory"] = {"total_bytes": int(mem["MemTotal"][0]) * 1024,
                             "available_bytes": max(0, est - low * os.sysconf("SC_PAGE_SIZE")),
                             "available_estimated": True}

        net = []
        for line in read("proc/net/dev").splitlines()[2:]:
            name, _, rest = line.partition(":")
            v = rest.split()
            net.append({"iface": name.strip(), "rx_bytes": int(v[0]), "tx_bytes": int(v[8])})
        doc["net"] = net
        doc["gpus"] = expected_gpus(root)
        return doc

    def probe(self, root, config=None, env_vars=None):
        """--probe --root root [--config config]: (CompletedProcess, parsed document or None), its
        GPUs fresh and without "age_ms". GPUs a host NVML adds (see host_has_nvml) are dropped, and the class they add undone."""
        args = ["--probe", "--root", root] + (["--config", config] if config else [])
        r = self.env.run([harness.agent_binary()] + args, timeout=20, env_vars=env_vars)
        self.assertIsNone(harness.SANITIZER_RE.search(r.stderr), "sanitizer report:\n" + r.stderr)
        doc = None
        if r.stdout.strip():
            self.assertEqual(r.stdout.count("\n"), 1, "not one line: %r" % r.stdout[:500])
            doc = json.loads(r.stdout)
            # Each GPU's sample age varies with the worker thread: checked, then left out.
            if isinstance(doc.get("gpus"), list):
                doc["gpus"] = harness.gpus_fresh(doc["gpus"], 5000)
            fake = env_vars and "FAKE_NVML_SCRIPT" in env_vars
            if not fake and host_has_nvml() and isinstance(doc.get("gpus"), list):
                mine = [g for g in doc["gpus"] if g.get("backend") != "nvml"]
                if len(mine) != len(doc["gpus"]):
                    doc["gpus"] = [dict(g, index=i) for i, g in enumerate(mine)]
                    try:
                        fixture_class = self.expected_probe(root)["platform"]["class"]
                    except (OSError, TypeError, KeyError, ValueError):  # a corrupt fixture
                        fixture_class = None
                    if doc["platform"]["class"] == "x86-gpu" and fixture_class == "x86-cpu":
                        doc["platform"]["class"] = "x86-cpu"
        return r, doc

    def slot_config(self, name, slots, gpu=None):
        return self.env.config(8883, name=name, slots=slots, extra={"gpu": gpu} if gpu else None)

    def test_probe_fixtures(self):
        profiles = sorted(p for p in os.listdir(harness.FIXTURES) if p != "corrupt")
        self.assertTrue(profiles, "no fixtures under %s" % harness.FIXTURES)
        for profile in profiles:
            root = os.path.join(harness.FIXTURES, profile)
            with self.subTest(profile=profile):
                r, got = self.probe(root)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "")
                exp = self.expected_probe(root)
                self.assertNotIn("errors", got)
                self.assertEqual(got, exp)

    def test_probe_x86_cpu_exact(self):
        root = os.path.join(harness.FIXTURES, "x86-cpu")
        r, got = self.probe(root)
        self.assertEqual(r.returncode, 0, r.stderr)
        exp = self.expected_probe(root)
        self.assertEqual(got, exp)
        # 64-bit counters are printed as exact integers, not doubles.
        for n in exp["net"]:
            self.assertIn('"rx_bytes":%d' % n["rx_bytes"], r.stdout)

    def test_probe_gpu_fixtures_exact(self):
        """amdgpu (two V620s behind an ASPEED BMC card) and Mali (kbase + devfreq) sysfs trees:
        every metric the files hold, and nothing else."""
        for profile, backend, n, klass in (("x86-gpu-amd", "amdgpu", 2, "x86-gpu"), ("arm-mali", "mali", 1, "arm")):
            root = os.path.join(harness.FIXTURES, profile)
            with self.subTest(profile=profile):
                r, got = self.probe(root)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "")
                exp = self.expected_probe(root)
                # The expectation is computed; make sure it found what the fixture is about.
                self.assertEqual([g["backend"] for g in exp["gpus"]], [backend] * n)
                self.assertEqual(exp["platform"]["class"], klass)
                self.assertEqual(got["gpus"], exp["gpus"])
                self.assertEqual(got, exp)
        # Spot checks of the conversions against the raw files (µW -> W, m°C -> °C, Hz -> MHz).
        amd = os.path.join(harness.FIXTURES, "x86-gpu-amd")
        g = self.probe(amd)[1]["gpus"][0]
        dev = "sys/class/drm/card1/device/"
        self.assertEqual(g["power_w"], int(read_fixture(amd, dev + "hwmon/hwmon3/power1_average")) / 1e6)
        self.assertEqual(g["temp_c"], int(read_fixture(amd, dev + "hwmon/hwmon3/temp1_input")) / 1e3)
        self.assertIn('"vram_used_bytes":%d' % g["vram_used_bytes"], self.probe(amd)[0].stdout)
        mali = os.path.join(harness.FIXTURES, "arm-mali")
        g = self.probe(mali)[1]["gpus"][0]
        self.assertEqual(g["clock_max_mhz"] * 1000000,
                         int(read_fixture(mali, "sys/class/devfreq/fb000000.gpu/max_freq")))

    def cgroup_slots(self):
        return [
            {"id": "s0", "scale": "cpu-4", "cgroup": "render.slice/slot-0.scope", "iface": "veth-s0"},
            {"id": "s1", "scale": "cpu-8", "cgroup": "render.slice/slot-1.scope"},
            {"id": "s2", "scale": "cpu-8", "cgroup": "render.slice/slot-2.scope"},  # no session: absent
            {"id": "s3", "scale": "cpu-4"},
        ]

    def expected_slots(self, root, slots):
        net = {n["iface"]: n for n in self.expected_probe(root)["net"]}
        out = []
        for sl in slots:
            e = {"id": sl["id"], "scale": sl["scale"]}
            if "cgroup" in sl:
                e.update(harness.cgroup_expected(root, sl["cgroup"]))
            if "iface" in sl:
                e["net"] = net[sl["iface"]]
            out.append(e)
        return out

    def test_probe_config_cgroup_v2(self):
        root = os.path.join(harness.FIXTURES, "x86-cpu")
        slots = self.cgroup_slots()
        r, got = self.probe(root, self.slot_config("cg2.json", slots))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        exp = self.expected_probe(root)
        exp["slots"] = self.expected_slots(root, slots)
        self.assertEqual(got, exp)
        s0, s1, s2 = (exp["slots"][i] for i in range(3))
        # The computed expectation covers what the fixture is about: limits, "max", an absent scope.
        self.assertEqual(set(s0["cgroup"]), {"cpu_usage_usec", "cpu_quota_cores", "memory_bytes",
                                             "memory_max_bytes", "pids"})
        self.assertEqual(set(s1["cgroup"]), {"cpu_usage_usec", "memory_bytes", "pids"})  # memory.max "max"
        self.assertEqual(s2, {"id": "s2", "scale": "cpu-8", "cgroup_state": "absent"})
        self.assertEqual(read_fixture(root, "sys/fs/cgroup/render.slice/slot-1.scope/memory.max").strip(), "max")
        self.assertNotIn("cgroup_state", got["slots"][3])

    def test_probe_config_cgroup_v1(self):
        root = os.path.join(harness.FIXTURES, "x86-cpu-cgv1")
        slots = self.cgroup_slots()
        r, got = self.probe(root, self.slot_config("cg1.json", slots))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        exp = self.expected_probe(root)
        exp["slots"] = self.expected_slots(root, slots)
        self.assertEqual(got, exp)
        s0, s1 = exp["slots"][0]["cgroup"], exp["slots"][1]["cgroup"]
        # slot-1 has no quota (-1), no limit (PAGE_COUNTER_MAX), no pids cgroup.
        self.assertEqual(set(s0), {"cpu_usage_usec", "cpu_quota_cores", "memory_bytes", "memory_max_bytes", "pids"})
        self.assertEqual(set(s1), {"cpu_usage_usec", "memory_bytes"})

    def test_probe_corrupt_fixtures(self):
        base = os.path.join(harness.FIXTURES, "corrupt")
        self.assertTrue(os.listdir(base), "no corrupt fixtures under %s" % base)
        tried, left = 0, []
        for name in sorted(os.listdir(base)):
            root = os.path.join(base, name)
            broken = CORRUPT_PREFIX_FILES.get(name.split("-")[0])
            if not os.path.isdir(root):
                continue
            if name in CORRUPT_GPU_CGROUP_FILES:
                tried += 1
                with self.subTest(fixture=name):
                    self.check_corrupt_gpu_cgroup(name, root, CORRUPT_GPU_CGROUP_FILES[name])
                continue
            if broken is None:
                left.append(name)
                continue
            tried += 1
            with self.subTest(fixture=name):
                self.check_corrupt(root, broken)
        self.assertGreater(tried, 0)
        if left:
            print("\n  (corrupt fixtures for files --probe does not read, not checked here: %s)" % ", ".join(left))

    def check_corrupt(self, root, broken):
        """--probe on a tree where the files in `broken` (those present) are damaged: exit 1,
        the damaged file named on stderr and, when a JSON document is printed, in "errors"."""
        broken = [f for f in broken if os.path.exists(os.path.join(root, f))]
        self.assertTrue(broken, "fixture %s lacks the file its name says is broken" % root)
        r = self.agent("--probe", "--root", root)
        self.assertEqual(r.returncode, 1, "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout, r.stderr))
        named = [f for f in broken if "/" + f in r.stderr]
        self.assertTrue(named, "stderr names none of %s:\n%s" % (broken, r.stderr))
        metric = [f for f in broken if f in METRIC_FILES]
        if not r.stdout.strip():
            # Nothing sampled: the platform itself could not be told (arch, GPU ids).
            self.assertEqual(metric, [], "no JSON although a metric file is what is broken")
            return
        self.assertEqual(r.stdout.count("\n"), 1, r.stdout)
        doc = json.loads(r.stdout)
        errors = doc.get("errors")
        self.assertIsInstance(errors, list, doc)
        for e in errors:
            self.assertIn(e, r.stderr, "error %r is not on stderr" % e)
        for f in metric:
            mine = [e for e in errors if e.startswith("/" + f + ":")]
            self.assertEqual(len(mine), 1, "%s not named in errors: %s" % (f, errors))
            self.assertNotIn("No such file", mine[0])
            section = {"proc/stat": "cpu", "proc/meminfo": "memory", "proc/net/dev": "net"}[f]
            self.assertNotIn(section, doc, "a metric whose file is corrupt is still in the document")

    def corrupt_args(self, name, broken):
        """--config (and environment) that make --probe read `broken`: a slot whose cgroup is the
        file's directory; for /proc/<pid>/cgroup, two slots sharing a GPU (the fake NVML's) that
        lists the process."""
        m = re.fullmatch(r"sys/fs/cgroup/(.+)/[^/]+", broken)
        if m:
            return self.slot_config(name + ".json", [{"id": "s0", "scale": "cpu-4", "cgroup": m.group(1)}]), None
        m = re.fullmatch(r"proc/(\d+)/cgroup", broken)
        if m:
            lib = harness.fake_nvml_library()
            self.assertTrue(lib, "RA_FAKE_NVML (tests/fakes' libfake_nvml.so) is not set")
            script = harness.write_nvml_script(self.env.path(name + ".nvml"), [{
                "name": "NVIDIA L4", "uuid": "GPU-1", "pci": "0000:00:1f.0", "device": 0x27B8,
                "procs": "%s:1073741824" % m.group(1)}])
            slots = [{"id": "s0", "scale": "cpu-4", "cgroup": "render.slice/slot-0.scope", "gpu": 0},
                     {"id": "s1", "scale": "cpu-4", "cgroup": "render.slice/slot-1.scope", "gpu": 0}]
            return self.slot_config(name + ".json", slots, gpu={"nvml_library": lib}), {"FAKE_NVML_SCRIPT": script}
        return None, None

    def overlay(self, name, root):
        """The healthy BASE_FIXTURE with the corrupt tree copied over it."""
        dst = self.env.path("overlay-" + name)
        shutil.copytree(os.path.join(harness.FIXTURES, BASE_FIXTURE), dst, symlinks=True)
        shutil.copytree(root, dst, symlinks=True, dirs_exist_ok=True)
        return dst

    def check_corrupt_gpu_cgroup(self, name, root, broken, strict=None):
        """A corrupt GPU or cgroup file: --probe exits 1 and names it on stderr and in "errors",
        both on the fixture as it is (which lacks /proc: those files are named too) and laid over a
        healthy host, where it must be the only error and everything else is still there."""
        if strict is None:
            strict = name not in KNOWN_UNREPORTED
        self.assertTrue(os.path.exists(os.path.join(root, broken)), "fixture %s lacks %s" % (root, broken))
        config, env_vars = self.corrupt_args(name, broken)
        r, doc = self.probe(root, config, env_vars)
        self.assertEqual(r.returncode, 1, "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout, r.stderr))
        if strict or KNOWN_UNREPORTED[name]:
            self.assertIn("/" + broken + ":", r.stderr)
        self.assertIsNotNone(doc, "no JSON document:\n" + r.stderr)
        for e in doc.get("errors", []):
            self.assertIn(e, r.stderr, "error %r is not on stderr" % e)
        mine = [e for e in doc.get("errors", []) if names_file(e, broken)]
        if strict:
            self.assertEqual(len(mine), 1, "%s not named in errors: %s" % (broken, doc.get("errors")))

        over = self.overlay(name, root)
        r, doc = self.probe(over, config, env_vars)
        self.assertIsNotNone(doc, "no JSON document:\n" + r.stderr)
        for section in ("cpu", "memory", "net"):
            self.assertIn(section, doc)
        if not strict:
            return
        self.assertEqual(r.returncode, 1, "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout, r.stderr))
        errors = doc.get("errors", [])
        self.assertEqual(len(errors), 1, errors)
        self.assertTrue(names_file(errors[0], broken), errors)
        self.assertNotIn("No such file", errors[0])
        self.assertIn(errors[0], r.stderr)
        if broken.startswith("sys/fs/cgroup/"):
            self.assertEqual(doc["slots"][0], {"id": "s0", "scale": "cpu-4", "cgroup_state": "error",
                                               "cgroup_error": errors[0]})
        elif errors[0].startswith("GPU backend "):
            # The backend could not open at all: no GPU from it, and the probe says why.
            self.assertEqual(doc["gpus"], [])
        elif broken.startswith("sys/"):
            # A partial GPU sample: the error on the GPU, its other metrics still there.
            carriers = [g for g in doc["gpus"] if g.get("error") == errors[0]]
            self.assertEqual(len(carriers), 1, doc["gpus"])
            self.assertTrue(set(carriers[0]) & {"util_pct", "temp_c", "clock_mhz"}, carriers[0])

    def test_probe_gpu_backend_open_failure_is_an_error(self):
        """A GPU backend that fails to open (amdgpu on a malformed PCI device id) is an error of the
        probe: named in "errors" and on stderr, exit 1."""
        name = "amd-bad-device-id"
        self.check_corrupt_gpu_cgroup(name, os.path.join(harness.FIXTURES, "corrupt", name),
                                      CORRUPT_GPU_CGROUP_FILES[name], strict=True)

    def test_probe_malformed_pid_cgroup_is_an_error(self):
        """A malformed /proc/<pid>/cgroup of a GPU process is an error of the probe (a process that
        exited is not): its VRAM cannot be attributed, and the probe says why."""
        name = "cgroup-pidfile-garbage"
        self.check_corrupt_gpu_cgroup(name, os.path.join(harness.FIXTURES, "corrupt", name),
                                      CORRUPT_GPU_CGROUP_FILES[name], strict=True)


if __name__ == "__main__":
    harness.main()
