"""Soak of live streams with the model busy, every output on: RSS (total and anonymous), open
file descriptors and threads of each ``salrt run`` process per minute, the processes at once:

- ``live``: ``--live`` on a looping MPEG-TS pipe at real-time pace (drops clips when behind);
- ``backpressure``: the same pipe without ``--live`` at a stride the machine keeps up with (no drop);
- ``live-no-release``: the control, ``live`` without handing freed heap memory back to the OS
  (``--release-memory-s 0``; see :mod:`salrt.memory`).

    python benchmarks/robustness/soak.py --minutes 120 -o benchmarks/results/robustness/soak

Tiny config, random weights (memory, not quality, is measured). Results: ``soak.json``,
``soak.md`` and ``soak.png`` (RSS per minute) in the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # the fault harness lives with the tests
from support.faults import looping_feeder, salrt_command  # noqa: E402

from salrt.io import make_clip  # noqa: E402

RUNS = {  # name: (salrt run arguments, environment)
    "live": (["--live", "--stride", "1"], {}),
    "backpressure": (["--stride", "2"], {}),
    # the control: the same live run without handing freed heap memory back (salrt.memory)
    "live-no-release": (["--live", "--stride", "1", "--release-memory-s", "0"], {}),
}


def resources(pid: int) -> dict[str, float]:
    kv = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        kv[k] = v.strip()
    return {
        "rss_mb": round(int(kv["VmRSS"].split()[0]) / 1024, 1),
        "anon_mb": round(int(kv["RssAnon"].split()[0]) / 1024, 1),
        "threads": int(kv["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def one(name: str, run: tuple[list[str], dict], clip: Path, minutes: float, d: Path, rows: list[dict]) -> dict:
    extra, env = run
    feeder = subprocess.Popen(looping_feeder(clip, 4.0, minutes * 60), stdout=subprocess.PIPE)
    out = d / name
    p = subprocess.Popen(
        salrt_command(["-"], out, *extra, "--steps", "1"),
        stdin=feeder.stdout,
        stderr=open(f"{out}.err", "w"),
        stdout=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    feeder.stdout.close()
    t0 = time.monotonic()
    while p.poll() is None and feeder.poll() is None:
        try:
            rows.append({"t_min": round((time.monotonic() - t0) / 60, 2), **resources(p.pid)})
        except (FileNotFoundError, ProcessLookupError, KeyError):
            break
        time.sleep(60.0)
    p.wait(timeout=600)
    feeder.wait(timeout=60)
    stats = json.loads((out / "run_stats.json").read_text())
    media = stats["media"][0] or {}
    return {
        "args": extra,
        "env": env,
        "returncode": p.returncode,
        "frames_out": stats["frames_out"][0],
        "dropped_clips": stats["dropped_clips"][0],
        "latency_ms": stats["latency_ms"],
        "max_buffered_frames": media.get("max_buffered_frames"),
        "clips_short_audio": media.get("clips_short_audio"),
        "errors": stats["errors"],
    }


def growth(rows: list[dict], key: str, after_min: float = 10.0) -> float | None:
    """Percent growth of ``key`` from the first sample at or after ``after_min`` to the last."""
    late = [r for r in rows if r["t_min"] >= after_min]
    if len(late) < 2:
        return None
    return round(100.0 * (late[-1][key] - late[0][key]) / late[0][key], 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("-o", "--output", default="benchmarks/results/robustness/soak")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"which runs, comma-separated: {'; '.join(RUNS)}")
    args = ap.parse_args()
    runs = {k: RUNS[k] for k in args.runs.split(",")}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "config": "tiny DiffSal, random weights, 1 step, 96x64 H.264+AAC MPEG-TS looped at real-time pace, "
        "outputs overlay,png,npy,npz",
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clip = make_clip(d / "loop.ts", seed=3, seconds=4.0, width=96, height=64).path
        rows: dict[str, list[dict]] = {k: [] for k in runs}
        results: dict[str, dict] = {}
        threads = [
            threading.Thread(target=lambda k=k: results.__setitem__(k, one(k, runs[k], clip, args.minutes, d, rows[k])))
            for k in runs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for k in runs:
        r = results[k]
        r["per_minute"] = rows[k]
        r["rss_growth_after_10_min_pct"] = growth(rows[k], "rss_mb")
        r["anon_growth_after_10_min_pct"] = growth(rows[k], "anon_mb")
        res["runs"][k] = r
    (out / "soak.json").write_text(json.dumps(res, indent=1))
    (out / "soak.md").write_text(markdown(res))
    plot(res, out / "soak.png")
    print((out / "soak.md").read_text())


def markdown(res: dict) -> str:
    lines = [
        "# Soak: live streams, model busy, every output on",
        "",
        f"`{res['command']}` on {res['date']}, {res['machine']}; {res['config']}.",
        "",
        "| run | minutes | frames out | clips dropped | max buffered frames | RSS growth after minute 10 | "
        "anonymous RSS growth | fds (min-max) | threads (min-max) | p99 latency ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, r in res["runs"].items():
        rows = r["per_minute"]
        fds = [x["fds"] for x in rows] or [0]
        th = [x["threads"] for x in rows] or [0]
        lines.append(
            f"| {k} (`{' '.join(r['args'])}`{''.join(f' {a}={b}' for a, b in r.get('env', {}).items())}) | {rows[-1]['t_min'] if rows else 0:.0f} | {r['frames_out']} | "
            f"{r['dropped_clips']} | {r['max_buffered_frames']} | {r['rss_growth_after_10_min_pct']}% | "
            f"{r['anon_growth_after_10_min_pct']}% | {min(fds)}-{max(fds)} | {min(th)}-{max(th)} | "
            f"{r['latency_ms']['p99']} |"
        )
    lines += ["", "Per minute (RSS MB / anonymous MB / fds / threads):", ""]
    for k, r in res["runs"].items():
        lines.append(f"- {k}: " + ", ".join(
            f"{x['t_min']:.0f}: {x['rss_mb']:.0f}/{x['anon_mb']:.0f}/{x['fds']}/{x['threads']}" for x in r["per_minute"]
        ))  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, r in res["runs"].items():
        t = [x["t_min"] for x in r["per_minute"]]
        ax.plot(t, [x["rss_mb"] for x in r["per_minute"]], label=f"{k}: RSS")
        ax.plot(t, [x["anon_mb"] for x in r["per_minute"]], "--", label=f"{k}: anonymous")
    ax.set_xlabel("minutes")
    ax.set_ylabel("MB")
    ax.set_title("salrt run soak (tiny config, every output on)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
