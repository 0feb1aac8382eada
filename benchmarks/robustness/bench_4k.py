"""Memory and stop latency of ``salrt run`` at high resolution, every output on.

    python benchmarks/robustness/bench_4k.py [--width 3840 --height 2160 --seconds 2]

Runs the tiny config on a generated clip twice: to the end (peak RSS of the salrt process, sampled
from /proc every 50 ms), and with SIGTERM half-way (seconds from the signal to the exit, and the
outputs checked readable). Results: ``<out>/highres_<W>x<H>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # the fault harness lives with the tests
from support.faults import check_outputs, process_resources, salrt_command  # noqa: E402

from salrt.io import make_clip


def run(cmd: list[str], stop_after: float | None) -> dict:
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, t0, signalled = 0.0, time.monotonic(), None
    while p.poll() is None:
        try:
            peak = max(peak, process_resources(p.pid)["rss_mb"])
        except (FileNotFoundError, ProcessLookupError, KeyError):
            pass
        if stop_after is not None and signalled is None and time.monotonic() - t0 >= stop_after:
            p.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
        time.sleep(0.05)
    end = time.monotonic()
    err = p.stderr.read()
    return {
        "returncode": p.returncode,
        "wall_s": round(end - t0, 2),
        "peak_rss_mb": peak,
        "stop_latency_s": round(end - signalled, 2) if signalled else None,
        "messages": [ln for ln in err.splitlines() if ln.startswith("salrt:")],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=3840)
    ap.add_argument("--height", type=int, default=2160)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("-o", "--output", default="benchmarks/results/robustness")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        clip = make_clip(
            Path(d) / "big.mp4", seed=1, width=args.width, height=args.height, seconds=args.seconds, ground_truth=False
        )
        full = run(salrt_command([str(clip.path)], Path(d) / "full"), None)
        full["outputs_readable"], full["problems"], full["frames_in_npy"] = check_outputs(Path(d) / "full")
        stop = run(salrt_command([str(clip.path)], Path(d) / "stop"), full["wall_s"] / 2)
        stop["outputs_readable"], stop["problems"], stop["frames_in_npy"] = check_outputs(Path(d) / "stop")
    res = {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "input": f"{args.width}x{args.height} H.264 25 fps, {clip.n_frames} frames",
        "outputs": "overlay,png,npy,npz",
        "config": "tiny, random weights, 1 step",
        "to_the_end": full,
        "sigterm_half_way": stop,
    }
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"highres_{args.width}x{args.height}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
