#!/usr/bin/env python3
"""Runs a shell pipeline and prints `<seconds> <peak RSS MiB of the largest process>` on stderr.

Peak RSS is the largest single process's high-water mark among the command's children
(getrusage(RUSAGE_CHILDREN).ru_maxrss), which for `tidemark run` is tidemark itself.
"""
import resource
import subprocess
import sys
import time

if len(sys.argv) < 2:
    sys.exit("usage: measure.py 'shell command'")
started = time.monotonic()
proc = subprocess.run(["bash", "-o", "pipefail", "-c", sys.argv[1]])
elapsed = time.monotonic() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{elapsed:.2f} {peak_kib / 1024:.1f}", file=sys.stderr)
sys.exit(proc.returncode)
