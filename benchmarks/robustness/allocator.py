"""Allocator probe: two ``salrt run --live`` processes side by side on a looping MPEG-TS pipe
(tiny config, random weights, every output on), one with glibc's default malloc, one with the
environment given (e.g. ``GLIBC_TUNABLES``); RSS and anonymous RSS per minute, glibc's
``malloc_stats()`` (bytes held and in use, per arena) every 5 minutes through gdb, and at the end
one ``malloc_trim(0)`` per process with the RSS before and after.

    python benchmarks/robustness/allocator.py 30 '{"A": {}, "B": {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072"}}' --live --stride 1

Writes ``probe.log`` (JSON lines) and each process's ``err.txt`` (its stderr, with the
``malloc_stats`` reports) under /tmp/mem2; needs gdb. Results of the run above:
``benchmarks/results/robustness/allocator/``.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # the paced feeder lives with the tests
from support.faults import looping_feeder, salrt_command

from salrt.io import make_clip

minutes = float(sys.argv[1])
variants = json.loads(sys.argv[2])
extra = sys.argv[3:]
root = Path("/tmp/mem2")
clip = make_clip(root / "loop.ts", seed=3, seconds=4.0, width=96, height=64)
procs = {}
for name, envs in variants.items():
    d = root / name
    d.mkdir(exist_ok=True)
    src = subprocess.Popen(looping_feeder(clip.path, 4.0, minutes * 60), stdout=subprocess.PIPE)
    env = dict(os.environ, **envs)
    p = subprocess.Popen(
        salrt_command(["-"], d / "out", *extra),
        stdin=src.stdout,
        stderr=open(d / "err.txt", "w"),
        stdout=subprocess.DEVNULL,
        env=env,
    )
    src.stdout.close()
    procs[name] = (p, d)


def status(pid):
    kv = {ln.split(":")[0]: ln.split(":")[1].strip() for ln in open(f"/proc/{pid}/status") if ":" in ln}
    return int(kv["VmRSS"].split()[0]) // 1024, int(kv["RssAnon"].split()[0]) // 1024


def gdb(pid, *cmds):
    args = ["gdb", "-p", str(pid), "-batch"] + [a for c in cmds for a in ("-ex", c)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120).stdout


t0 = time.time()
k = 0
log = open(root / "probe.log", "a")
while all(p.poll() is None for p, _ in procs.values()) and time.time() - t0 < minutes * 60 - 90:
    row = {"t": round((time.time() - t0) / 60, 1)}
    for name, (p, _d) in procs.items():
        row[name] = status(p.pid)
        if k % 5 == 2:
            gdb(p.pid, "call (void)malloc_stats()")
    print(json.dumps(row), file=log, flush=True)
    k += 1
    time.sleep(60)
for name, (p, _d) in procs.items():
    before = status(p.pid)
    gdb(p.pid, "call (int)malloc_trim(0)")
    time.sleep(2)
    after = status(p.pid)
    print(json.dumps({"trim": name, "before": before, "after": after}), file=log, flush=True)
    gdb(p.pid, "call (void)malloc_stats()")
for p, _ in procs.values():
    p.wait()
