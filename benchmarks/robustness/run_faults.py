"""Long variants of salrt's fault suites (short ones run in CI: tests/test_faults.py).

    python benchmarks/robustness/run_faults.py --fuzz 200 --kills 20 --soak-minutes 30 --stall

- fuzz: N mutated files (byte flips, truncations, zeroed ranges, swapped boxes, header-only, wrong
  extensions) across mp4/mkv/webm/avi/ts through ``salrt run`` with every output on; counts of
  clean ends, hangs, tracebacks and unreadable outputs;
- kills: SIGKILL at N random moments of a run with every output on; every output readable after;
- soak: a looping live source through a pipe for M minutes (tiny config, ``--live``): RSS, open
  file descriptors and threads of the salrt process, per minute;
- stall: a loopback HTTP source that stops sending for 5 s and resumes (reconnect and gap), and
  one that never resumes (reported after the retry budget, another input unaffected).

Results: ``<out>/faults.json`` and ``<out>/faults.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # the fault harness lives with the tests
from support.faults import (  # noqa: E402
    CONTAINERS,
    MUTATIONS,
    StallingServer,
    check_outputs,
    looping_feeder,
    mutate,
    run_case,
    salrt_command,
    sample_while,
)

from salrt.io import make_clip

SMALL = dict(width=96, height=64)


def fuzz(n: int, d: Path, jobs: int) -> dict:
    rng = np.random.default_rng(2026)
    src = {
        ext: make_clip(d / f"src.{ext}", seed=1, seconds=1.0, **SMALL, **kw).path.read_bytes()
        for ext, kw in CONTAINERS.items()
    }
    exts = list(CONTAINERS)
    cases = []
    for k in range(n):
        ext, kind = exts[k % len(exts)], MUTATIONS[(k // len(exts)) % len(MUTATIONS)]
        data = mutate(src[ext], kind, rng)
        suffix = exts[(k + 1 + int(rng.integers(0, len(exts) - 1))) % len(exts)] if kind == "extension" else ext
        f = d / f"fuzz{k:03d}.{suffix}"
        f.write_bytes(data)
        cases.append((f"{kind}/{ext}", f, d / f"fo{k:03d}"))
    with ThreadPoolExecutor(jobs) as ex:
        results = list(ex.map(lambda c: run_case(c[0], salrt_command([str(c[1])], c[2]), c[2], timeout=120), cases))
    by_kind: dict[str, dict[str, int]] = {}
    for r in results:
        k = by_kind.setdefault(r.case.split("/")[0], {"runs": 0, "exit_0": 0, "exit_1": 0, "failures": 0})
        k["runs"] += 1
        k["exit_0"] += r.returncode == 0
        k["exit_1"] += r.returncode == 1
        k["failures"] += not (r.clean_exit and r.outputs_ok)
    return {
        "files": n,
        "containers": exts,
        "mutations": list(MUTATIONS),
        "exit_0": sum(r.returncode == 0 for r in results),
        "exit_1": sum(r.returncode == 1 for r in results),
        "hangs": sum(r.returncode is None for r in results),
        "tracebacks": sum(any("traceback" in p for p in r.problems) for r in results),
        "unreadable_outputs": sum(not r.outputs_ok for r in results),
        "clean": sum(r.clean_exit and r.outputs_ok for r in results),
        "by_mutation": by_kind,
        "failures": [
            {"case": r.case, "rc": r.returncode, "problems": r.problems}
            for r in results
            if not (r.clean_exit and r.outputs_ok)
        ],
        "max_seconds": max(r.seconds for r in results),
    }


def kills(n: int, d: Path) -> dict:
    clip = make_clip(d / "kill.mp4", seed=2, seconds=8.0, **SMALL)
    rng = np.random.default_rng(7)
    results = []
    for k in range(n):
        out = d / f"ko{k:02d}"
        at = float(rng.uniform(2.0, 9.0))
        r = run_case(f"kill@{at:.2f}s", salrt_command([str(clip.path)], out), out, timeout=120, kill_after=at)
        results.append(
            {
                "after_s": round(at, 2),
                "rc": r.returncode,
                "frames_in_npy": r.frames,
                "ok": r.clean_exit and r.outputs_ok,
                "problems": r.problems,
            }
        )
    return {
        "runs": n,
        "outputs_readable": sum(r["ok"] for r in results),
        "killed_mid_run": sum(r["rc"] == -signal.SIGKILL for r in results),
        "runs_detail": results,
    }


def soak(minutes: float, d: Path) -> dict:
    clip = make_clip(d / "loop.ts", seed=3, seconds=4.0, **SMALL)
    feeder = looping_feeder(clip.path, 4.0, minutes * 60)
    src = subprocess.Popen(feeder, stdout=subprocess.PIPE)
    out = d / "soak"
    p = subprocess.Popen(
        salrt_command(["-"], out, "--live", "--outputs", "overlay,npy"),
        stdin=src.stdout,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    src.stdout.close()
    rows = sample_while(p, 60.0, lambda: src.poll() is not None)
    p.wait(timeout=300)
    src.wait(timeout=30)
    ok, problems, frames = check_outputs(out)
    stats = json.loads((out / "run_stats.json").read_text())
    return {
        "minutes": minutes,
        "per_minute": rows,
        "returncode": p.returncode,
        "frames_out": stats["frames_out"][0],
        "dropped_clips": stats["dropped_clips"][0],
        "outputs_readable": ok,
        "problems": problems,
    }


def stall(d: Path) -> dict:
    clip = make_clip(d / "live.ts", seed=4, seconds=4.0, **SMALL)
    data = clip.path.read_bytes()
    res: dict = {}
    with StallingServer(data, rate=len(data) / 4.0, stall_at=len(data) // 2, stall_s=5.0) as srv:
        out = d / "stall"
        p = subprocess.Popen(
            salrt_command([srv.url], out, "--live", "--timeout", "2", "--retries", "3"),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        t0 = time.monotonic()
        while time.monotonic() - t0 < 90 and srv.connections < 2:
            time.sleep(0.1)
        sent = srv.sent
        while time.monotonic() - t0 < 90 and srv.sent < sent + len(data):
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=60)[1]
        stats = json.loads((out / "run_stats.json").read_text())
        res["resumes"] = {
            "stall_s": 5.0,
            "read_timeout_s": 2.0,
            "returncode": p.returncode,
            "connections": srv.connections,
            "gaps_reported_s": stats["stream_gaps_s"][0],
            "frames_out": stats["frames_out"][0],
            "outputs_readable": check_outputs(out)[0],
            "messages": [ln for ln in err.splitlines() if ln.startswith("salrt:")],
        }
    other = make_clip(d / "other.mp4", seed=5, seconds=1.0, **SMALL)
    with StallingServer(data, rate=len(data) / 4.0, stall_at=len(data) // 2, stall_s=float("inf")) as srv:
        out = d / "never"
        t0 = time.monotonic()
        r = subprocess.run(
            salrt_command([srv.url, str(other.path)], out, "--timeout", "2", "--retries", "2"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        stats = json.loads((out / "run_stats.json").read_text())
        res["never_resumes"] = {
            "returncode": r.returncode,
            "seconds": round(time.monotonic() - t0, 1),
            "frames_out": stats["frames_out"],
            "other_input_frames": other.n_frames,
            "messages": [ln for ln in r.stderr.splitlines() if ln.startswith("salrt:")],
        }
    return res


def markdown(res: dict) -> str:
    lines = [f"# salrt fault suites ({res['date']}, {res['machine']})", "", f"Command: `{res['command']}`", ""]
    if "fuzz" in res:
        f = res["fuzz"]
        lines += [
            "## Media fuzzer",
            "",
            f"{f['files']} mutated files ({', '.join(f['containers'])}; "
            f"{', '.join(f['mutations'])}): exit 0 {f['exit_0']}, exit 1 (one-line error) {f['exit_1']}, "
            f"hangs {f['hangs']}, tracebacks {f['tracebacks']}, unreadable outputs {f['unreadable_outputs']}; "
            f"clean {f['clean']}/{f['files']}; slowest run {f['max_seconds']} s.",
            "",
            "| mutation | runs | exit 0 | exit 1 | failures |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {v['runs']} | {v['exit_0']} | {v['exit_1']} | {v['failures']} |"
            for k, v in f["by_mutation"].items()
        ]
        lines.append("")
    if "kills" in res:
        k = res["kills"]
        lines += [
            "## SIGKILL at random moments",
            "",
            f"{k['runs']} runs, {k['killed_mid_run']} killed mid-run, "
            f"every output readable afterwards in {k['outputs_readable']}/{k['runs']}.",
            "",
        ]
    if "soak" in res:
        s = res["soak"]
        lines += [
            "## Soak (looping live pipe, tiny config)",
            "",
            f"{s['minutes']} minutes, {s['frames_out']} frames "
            f"written, {s['dropped_clips']} clips dropped (live mode), outputs readable: {s['outputs_readable']}.",
            "",
            "| minute | RSS MB | fds | threads |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r['t_s'] / 60:.0f} | {r['rss_mb']} | {r['fds']} | {r['threads']} |" for r in s["per_minute"]]
        lines.append("")
    if "stall" in res:
        s = res["stall"]
        lines += [
            "## Stalled network source",
            "",
            f"Resumes after {s['resumes']['stall_s']} s: exit "
            f"{s['resumes']['returncode']} (SIGTERM), gaps reported {s['resumes']['gaps_reported_s']} s, "
            f"{s['resumes']['frames_out']} frames, outputs readable {s['resumes']['outputs_readable']}.",
            f"Never resumes: exit {s['never_resumes']['returncode']} after {s['never_resumes']['seconds']} s, "
            f"frames {s['never_resumes']['frames_out']} (other input: {s['never_resumes']['other_input_frames']}).",
            "",
            *[f"    {m}" for m in s["resumes"]["messages"] + s["never_resumes"]["messages"]],
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fuzz", type=int, default=200, help="mutated files (0: skip)")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILL runs (0: skip)")
    ap.add_argument("--soak-minutes", type=float, default=30.0, help="soak length (0: skip)")
    ap.add_argument("--stall", action="store_true", help="run the stall tests")
    ap.add_argument("--jobs", type=int, default=2, help="fuzz runs at once")
    ap.add_argument("-o", "--output", default="benchmarks/results/robustness")
    args = ap.parse_args()
    res: dict = {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {__import__('os').cpu_count()} cores".strip(),
    }
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for key, enabled, fn in (
            ("fuzz", args.fuzz, lambda: fuzz(args.fuzz, d, args.jobs)),
            ("kills", args.kills, lambda: kills(args.kills, d)),
            ("stall", args.stall, lambda: stall(d)),
            ("soak", args.soak_minutes, lambda: soak(args.soak_minutes, d)),
        ):
            if enabled:
                t0 = time.monotonic()
                res[key] = fn()
                res[key]["wall_s"] = round(time.monotonic() - t0, 1)
                print(f"{key}: done in {res[key]['wall_s']} s", flush=True)
                (out / "faults.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "faults.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
