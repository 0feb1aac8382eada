"""Fault injection for salrt's robustness suites (tests run short variants, ``benchmarks/robustness``
the long ones): media mutations, a run of the CLI checked for a clean end and readable outputs,
a loopback HTTP server that stalls, and process resource sampling.

Every check here is what a user would see: the exit code, one-line errors without a traceback,
no hang past a timeout, and every output file left readable.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MUTATIONS = ("flip", "truncate", "zero", "swap", "header", "extension")
# the containers the fuzzer mutates, with what make_clip needs to write each
CONTAINERS: dict[str, dict[str, Any]] = {
    "mp4": {},
    "mkv": {},
    "webm": {"video_codec": "libvpx-vp9", "sample_rate": 48000},
    "avi": {"video_codec": "mpeg4"},
    "ts": {},
}


def looping_feeder(path: str | Path, clip_seconds: float, seconds: float) -> list[str]:
    """A command writing ``path`` (an MPEG-TS clip of ``clip_seconds``) to stdout over and over,
    paced at the clip's real time, for ``seconds``: a live pipe source."""
    code = (
        "import sys, time\n"
        "d = open(sys.argv[1], 'rb').read()\n"
        "pace, end = float(sys.argv[2]) * 18800 / len(d), time.time() + float(sys.argv[3])\n"
        "while time.time() < end:\n"
        "    for k in range(0, len(d), 18800):\n"
        "        sys.stdout.buffer.write(d[k:k + 18800]); sys.stdout.flush(); time.sleep(pace)\n"
    )
    return [sys.executable, "-c", code, str(path), str(clip_seconds), str(seconds)]


def _mp4_boxes(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the top-level ISO-BMFF boxes (empty when ``data`` is not one)."""
    out, off = [], 0
    while off + 8 <= len(data):
        size = int.from_bytes(data[off : off + 4], "big")
        if size == 1 and off + 16 <= len(data):
            size = int.from_bytes(data[off + 8 : off + 16], "big")
        if size < 8 or off + size > len(data):
            break
        out.append((off, size))
        off += size
    return out


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """A damaged copy of a media file's bytes.

    ``flip``: 1-64 random bytes XORed; ``truncate``: cut at 5-95 %; ``zero``: a zeroed range;
    ``swap``: two top-level boxes exchanged (MP4/MOV) or two 4 KiB blocks (other containers);
    ``header``: only the first 1-8 KiB; ``extension``: unchanged bytes (the caller renames).
    """
    b = bytearray(data)
    n = len(b)
    if kind == "flip":
        for i in rng.integers(0, n, int(rng.integers(1, 65))):
            b[i] ^= int(rng.integers(1, 256))
    elif kind == "truncate":
        b = b[: int(n * rng.uniform(0.05, 0.95))]
    elif kind == "zero":
        start, length = int(rng.integers(0, n)), int(rng.integers(16, max(17, n // 8)))
        b[start : start + length] = bytes(len(b[start : start + length]))
    elif kind == "swap":
        boxes = _mp4_boxes(data)
        if len(boxes) >= 2:
            i, j = sorted(rng.choice(len(boxes), 2, replace=False))
            (oi, si), (oj, sj) = boxes[i], boxes[j]
            b = bytearray(data[:oi] + data[oj : oj + sj] + data[oi + si : oj] + data[oi : oi + si] + data[oj + sj :])
        elif n > 3 * 4096:
            i, j = sorted(rng.choice(n // 4096, 2, replace=False))
            bi, bj = bytes(b[i * 4096 : (i + 1) * 4096]), bytes(b[j * 4096 : (j + 1) * 4096])
            b[i * 4096 : (i + 1) * 4096], b[j * 4096 : (j + 1) * 4096] = bj, bi
    elif kind == "header":
        b = b[: int(rng.integers(1024, 8193))]
    elif kind != "extension":
        raise ValueError(f"unknown mutation {kind!r}: {', '.join(MUTATIONS)}")
    return bytes(b)


@dataclasses.dataclass
class RunResult:
    """How one CLI run ended and whether its outputs are readable."""

    case: str
    returncode: int | None  # None: killed after the timeout (a hang)
    seconds: float
    clean_exit: bool  # 0 or 1 (or 130 / -9 when stopped on purpose), no traceback, one line per message
    outputs_ok: bool
    problems: list[str]
    frames: int  # maps in the .npy (0 when none)


def check_outputs(out: Path) -> tuple[bool, list[str], int]:
    """Every file in ``out`` readable: .npy (np.load + mmap), .npz, .mp4 (decoded to the end), .png,
    .json; no temporary file left with a final name. Returns (ok, problems, frames in the .npy)."""
    import av

    problems: list[str] = []
    frames = 0
    for p in sorted(out.rglob("*")) if out.exists() else []:
        if p.is_dir():
            continue
        try:
            if p.name.endswith(".tmp"):
                continue  # an unfinished temporary (never under a final name)
            if p.suffix == ".npy":
                a = np.load(p, mmap_mode="r")
                _ = np.asarray(a[-1]) if a.shape[0] else None
                frames = max(frames, a.shape[0]) if not p.name.endswith(".partial.npy") else frames
            elif p.suffix == ".npz":
                with np.load(p) as z:
                    _ = z["maps"].shape
            elif p.suffix in (".mp4", ".png"):
                with av.open(str(p)) as c:
                    for _ in c.decode(video=0):
                        pass
            elif p.suffix == ".json":
                json.loads(p.read_text())
        except Exception as exc:
            problems.append(f"{p.name}: {type(exc).__name__}: {exc}")
    return not problems, problems, frames


def salrt_command(inputs: list[str], out: Path, *extra: str) -> list[str]:
    """``python -m salrt.cli run INPUTS -o OUT`` with the tiny config, random weights, every output."""
    return [
        sys.executable,
        "-m",
        "salrt.cli",
        "run",
        *inputs,
        "-o",
        str(out),
        "--config",
        "tiny",
        "--random-weights",
        "--steps",
        "1",
        "--outputs",
        "overlay,png,npy,npz",
        *extra,
    ]


def _clean_messages(stderr: str) -> list[str]:
    bad = []
    if "Traceback" in stderr:
        bad.append("traceback on stderr")
    if "internal error" in stderr:
        bad.append("internal error: " + next(ln for ln in stderr.splitlines() if "internal error" in ln))
    return bad


def run_case(
    case: str,
    cmd: list[str],
    out: Path,
    timeout: float,
    stdin: bytes | None = None,
    kill_after: float | None = None,
    sig: int = signal.SIGKILL,
) -> RunResult:
    """Run ``cmd`` (optionally killed with ``sig`` after ``kill_after`` s) and check how it ended."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    if stdin is not None:
        threading.Thread(target=_feed, args=(p, stdin), daemon=True).start()
    killed = False
    try:
        if kill_after is not None:
            try:
                p.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                p.send_signal(sig)
                killed = True
        p.wait(timeout=timeout)
        rc: int | None = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = None
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    problems = _clean_messages(err)
    allowed = {0, 1} | ({130, -signal.SIGKILL, -sig} if killed else set())
    if rc is None:
        problems.append(f"hang: still running after {timeout:g} s")
    elif rc not in allowed:
        problems.append(f"exit code {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    ok, out_problems, frames = check_outputs(out)
    return RunResult(case, rc, round(time.monotonic() - t0, 2), not problems, ok, problems + out_problems, frames)


def _feed(p: subprocess.Popen, data: bytes) -> None:
    try:
        p.stdin.write(data)
        p.stdin.close()
    except (BrokenPipeError, OSError):
        pass


class StallingServer:
    """A loopback HTTP server streaming ``data`` (MPEG-TS) in a loop at ``rate`` bytes/s, as a live
    source: once ``stall_at`` bytes are out it sends nothing, on any connection, for ``stall_s``
    seconds (``math.inf``: never again); a reconnect continues from where the stream was."""

    def __init__(self, data: bytes, rate: float, stall_at: int | None = None, stall_s: float = 0.0) -> None:
        self.data, self.rate, self.stall_at, self.stall_s = data, rate, stall_at, stall_s
        self.pos = 0  # next byte of ``data`` (it loops)
        self.sent = 0
        self.connections = 0
        self.stall_until: float | None = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                with outer.lock:
                    outer.connections += 1
                    me = outer.connections  # a newer connection takes the stream over
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                chunk = 188 * 20
                try:
                    while not outer.closing and me == outer.connections:
                        if outer.stall_at is not None and outer.sent >= outer.stall_at and outer.stall_until is None:
                            outer.stall_until = time.monotonic() + outer.stall_s  # one pause
                        while outer.stall_until and time.monotonic() < outer.stall_until and not outer.closing:
                            time.sleep(0.05)
                        self.wfile.write(outer.data[outer.pos : outer.pos + chunk])
                        outer.pos = (outer.pos + chunk) % len(outer.data)
                        outer.sent += chunk
                        time.sleep(chunk / outer.rate)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.closing = False
        self.lock = threading.Lock()
        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/live.ts"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StallingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing = True
        self.httpd.shutdown()
        self.httpd.server_close()


def process_resources(pid: int) -> dict[str, float]:
    """RSS (MB), open file descriptors and threads of a running process (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def sample_while(p: subprocess.Popen, every_s: float, until: Callable[[], bool]) -> list[dict[str, float]]:
    """Resources of ``p`` every ``every_s`` seconds while it runs and ``until()`` is False."""
    rows, t0 = [], time.monotonic()
    while p.poll() is None and not until():
        try:
            rows.append({"t_s": round(time.monotonic() - t0, 1), **process_resources(p.pid)})
        except (FileNotFoundError, ProcessLookupError, KeyError):
            break
        time.sleep(every_s)
    return rows
