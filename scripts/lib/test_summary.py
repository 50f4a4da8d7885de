#!/usr/bin/env python3
"""test_summary.py: the closing table of scripts/test: how many tests each stage ran, passed,
failed and skipped (from ctest's JUnit files), and every skipped check by name and reason (from
the skip logs that tu_skip, harness.main and note_skip write).

Usage: test_summary.py [--ci] STAGE=JUNIT_XML[,SKIP_LOG] ...
  A stage whose JUnit file is missing did not run (the script stopped before it) and is said so.
  --ci: exit 1 when anything was skipped that this machine can run: every skip fails, except a
        "qemu-user:" reason in a stage named arm64 (a limit of the emulator, not of the machine),
        and a ctest test reported as skipped with no logged reason fails too.
The last line is "total: N passed, N failed, N skipped".
"""

import os
import sys
import xml.etree.ElementTree as ET


def read_junit(path):
    """(passed, failed, skipped test names) of one ctest --output-junit file."""
    passed, failed, skipped = 0, [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        status = case.get("status", "")
        if case.find("skipped") is not None or status in ("notrun", "disabled"):
            skipped.append(name)
        elif case.find("failure") is not None or case.find("error") is not None or status == "fail":
            failed.append(name)
        else:
            passed += 1
    return passed, failed, skipped


def read_skips(path):
    """[(suite, check, reason)] of a skip log; none when it does not exist."""
    if not path or not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                out.append(tuple(parts))
            elif line.strip():
                out.append(("?", "?", "malformed skip log line in %s: %r" % (path, line)))
    return out


def main(argv):
    ci = "--ci" in argv
    stages = [a for a in argv if a != "--ci"]
    totals = [0, 0, 0]
    bad = []
    print("==> summary")
    print("%-22s %7s %7s %7s" % ("stage", "passed", "failed", "skipped"))
    listed = []
    for spec in stages:
        stage, _, files = spec.partition("=")
        junit, _, skiplog = files.partition(",")
        if not os.path.exists(junit):
            print("%-22s (did not run)" % stage)
            continue
        passed, failed, skipped = read_junit(junit)
        logged = read_skips(skiplog)
        totals[0] += passed
        totals[1] += len(failed)
        totals[2] += len(skipped)
        print("%-22s %7d %7d %7d" % (stage, passed, len(failed), len(skipped)))
        for name in failed:
            listed.append("  FAILED   %s: %s" % (stage, name))
        for suite, check, reason in logged:
            allowed = stage == "arm64" and reason.startswith("qemu-user:")
            listed.append("  skipped  %s: %s %s: %s%s" % (stage, suite, check, reason,
                                                          " (the emulator's limit)" if allowed else ""))
            if not allowed:
                bad.append("%s %s" % (suite, check))
        for name in skipped:
            if not any(suite == name for suite, _, _ in logged):
                listed.append("  skipped  %s: %s: no reason was logged" % (stage, name))
                bad.append(name)
    for line in listed:
        print(line)
    status = 0
    if ci and bad:
        print("FAIL: CI=true: %d check(s) skipped that this machine can run: %s" % (len(bad), ", ".join(bad)))
        status = 1
    print("total: %d passed, %d failed, %d skipped" % tuple(totals))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
