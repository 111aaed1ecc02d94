#!/usr/bin/env python3
"""The breakdown of one copy (see breakdown.sh): statements by kind on each server, per phase,
with the server's own time for them; round trips; and, for tidemark, the time of each step kind
and its state-store calls.

    breakdown.py DIR

DIR holds what breakdown.sh captured for one contender: `source.general.tsv`,
`destination.general.tsv` (the general log: time, thread, command, the statement's first
characters), `source.slow.tsv`, `destination.slow.tsv` (the slow log at long_query_time = 0:
start, thread, seconds, the statement's first characters), and for tidemark `tidemark.log` (its
stderr with TIDEMARK_LOG=tidemark::steps=debug,tidemark::metering=debug).
"""
import collections
import datetime
import os
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def kind_of(command, text):
    """A statement's kind: the command for anything but a query, else its leading words, with
    information_schema's table named for SELECTs of the catalog."""
    if command not in ("Query", "Execute", "Prepare"):
        return command
    t = " ".join(text.split()).upper()
    t = re.sub(r"^/\*!\d*\s*(.*?)\*/", r"\1", t).strip()
    t = re.sub(r"^/\*.*?\*/\s*", "", t)
    prefix = "" if command == "Query" else command.lower() + " "
    m = re.search(r"INFORMATION_SCHEMA\.(\w+)", t)
    if t.startswith("SELECT") and m:
        return prefix + "SELECT information_schema." + m.group(1)
    if t.startswith("EXPLAIN"):
        return prefix + "EXPLAIN"
    if t.startswith("SELECT @@") or t.startswith("SELECT CONNECTION_ID") or t.startswith("SELECT VERSION"):
        return prefix + "SELECT @@variables"
    if t.startswith("SELECT") and re.search(r"\bCRC32\b", t):
        return prefix + "SELECT checksum"
    if t.startswith("SELECT") and "LIMIT 1 OFFSET" in t:
        return prefix + "SELECT key walk"
    if t.startswith("SELECT") and "COALESCE(LENGTH" in t:
        return prefix + "SELECT row-size sample"
    if t.startswith("SELECT 1 FROM"):
        return prefix + "SELECT 1 (probe)"
    if t.startswith("SELECT") and "MIN(" in t and "MAX(" in t:
        return prefix + "SELECT min/max"
    for words in ("SHOW CREATE TABLE", "SHOW CREATE", "SHOW GLOBAL STATUS", "SHOW", "CREATE TABLE",
                  "CREATE DATABASE", "CREATE OR REPLACE", "ALTER TABLE", "RENAME TABLE",
                  "DROP TABLE", "DROP DATABASE", "SET SESSION", "SET NAMES", "SET",
                  "START TRANSACTION", "BEGIN", "COMMIT", "ROLLBACK", "INSERT", "REPLACE",
                  "LOAD DATA", "DELETE", "USE", "FLUSH", "UNLOCK", "LOCK", "SAVEPOINT",
                  "RELEASE SAVEPOINT", "SELECT"):
        if t.startswith(words):
            return prefix + words
    return prefix + (t.split(" ")[0] if t else "(empty)")


def ts(text):
    text = text.strip().replace("T", " ").rstrip("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            pass
    raise ValueError(text)


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def phases(log_path):
    """Tidemark's steps from its log: (kind, n, start, end, work_ms, handled_ms); the state
    store's counts; the phase windows."""
    steps, store, totals = [], [], {}
    if not os.path.exists(log_path):
        return steps, store, totals, []
    for line in open(log_path, encoding="utf-8", errors="replace"):
        line = ANSI.sub("", line)
        m = re.match(r"^(\S+)\s+DEBUG\s+(tidemark::\w+): (.*)$", line.strip())
        if not m:
            continue
        at, target, rest = ts(m.group(1)), m.group(2), m.group(3)
        fields = dict(re.findall(r"(\w+)=(\S+)", rest))
        if target == "tidemark::steps":
            handled = float(fields["handled_ms"])
            steps.append((fields["kind"], int(fields["n"]), at - datetime.timedelta(milliseconds=handled),
                          at, float(fields["work_ms"]), handled))
        elif target == "tidemark::metering" and "method" in fields:
            store.append((fields["method"], int(fields["calls"]), int(fields["records"])))
        elif target == "tidemark::metering":
            totals = {k: int(v) for k, v in fields.items() if v.isdigit()}
    windows = []
    for kind, name in (("Schema", "schema"), ("Chunk", "copy"), ("Finalize", "finalize")):
        these = [s for s in steps if s[0] == kind]
        if these:
            windows.append((name, min(s[2] for s in these), max(s[3] for s in these)))
    return steps, store, totals, windows


def phase_of(at, windows):
    for name, start, end in windows:
        if start <= at <= end:
            return name
    if windows and at < windows[0][1]:
        return "before"
    return "between" if windows and at < windows[-1][2] else "after"


def report(directory):
    steps, store, totals, windows = phases(os.path.join(directory, "tidemark.log"))
    names = [w[0] for w in windows] or ["all"]
    extra = ["before", "between", "after"] if windows else []
    for server in ("source", "destination"):
        general = read_tsv(os.path.join(directory, f"{server}.general.tsv"))
        slow = read_tsv(os.path.join(directory, f"{server}.slow.tsv"))
        counts = collections.Counter()
        seconds = collections.Counter()
        per_phase = collections.Counter()
        for row in general:
            if len(row) < 3:
                continue
            kind = kind_of(row[2], row[3] if len(row) > 3 else "")
            phase = phase_of(ts(row[0]), windows) if windows else "all"
            counts[(phase, kind)] += 1
            per_phase[phase] += 1
        for row in slow:
            if len(row) < 4:
                continue
            kind = kind_of("Query", row[3])
            phase = phase_of(ts(row[0]), windows) if windows else "all"
            seconds[(phase, kind)] += float(row[2])
        total = sum(counts.values())
        print(f"\n{server}: {total} round trips (commands in the general log), "
              f"{sum(seconds.values()):.2f} s of statements (slow log)")
        for phase in names + extra:
            kinds = sorted({k for (p, k) in counts if p == phase} | {k for (p, k) in seconds if p == phase},
                           key=lambda k: (-counts[(phase, k)], k))
            if not kinds:
                continue
            phase_s = sum(v for (p, _), v in seconds.items() if p == phase)
            print(f"  {phase}: {per_phase[phase]} round trips, {phase_s:.2f} s")
            for k in kinds:
                print(f"    {counts[(phase, k)]:7d}  {seconds[(phase, k)]:8.3f} s  {k}")
    if steps:
        print("\ntidemark steps:")
        by_kind = collections.defaultdict(list)
        for s in steps:
            by_kind[s[0]].append(s)
        for kind, these in by_kind.items():
            work = sum(s[4] for s in these)
            handled = sum(s[5] for s in these)
            print(f"  {kind:9s} {len(these):5d} steps  work {work / 1000:8.3f} s  "
                  f"handled {handled / 1000:8.3f} s  (mean {handled / len(these):7.1f} ms)")
        for name, start, end in windows:
            print(f"  phase {name:9s} {(end - start).total_seconds():7.3f} s wall")
        if windows:
            print(f"  schema start to finalize end {(windows[-1][2] - windows[0][1]).total_seconds():7.3f} s")
    if store:
        print("\ntidemark state store (calls, records):")
        for method, calls, records in store:
            print(f"  {calls:7d} {records:8d}  {method}")
        if totals:
            print(f"  reads {totals.get('reads', 0)}, writes {totals.get('writes', 0)}, "
                  f"records written {totals.get('records_written', 0)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: breakdown.py DIR")
    report(sys.argv[1])
