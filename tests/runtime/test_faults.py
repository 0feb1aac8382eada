"""Fault suites, short variants (the long ones: benchmarks/robustness/run_faults.py): mutated media,
SIGKILL at random moments, a stalling network stream, a looping live source."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from support.faults import (
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


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("src")
    return {
        ext: make_clip(d / f"s.{ext}", seed=1, seconds=0.8, **SMALL, **kw).path.read_bytes()
        for ext, kw in CONTAINERS.items()
    }


def test_mutations_change_the_bytes(sources: dict[str, bytes]) -> None:
    rng = np.random.default_rng(0)
    for kind in MUTATIONS:
        out = mutate(sources["mp4"], kind, rng)
        assert (out == sources["mp4"]) == (kind == "extension"), kind


def test_fuzzed_media_end_cleanly(tmp_path: Path, sources: dict[str, bytes]) -> None:
    """Every mutated file: exit 0 or a one-line error, no traceback, no hang, outputs readable."""
    rng = np.random.default_rng(1)
    exts = list(CONTAINERS)
    failures = []
    for k in range(10):
        ext, kind = exts[k % len(exts)], MUTATIONS[k % len(MUTATIONS)]
        data = mutate(sources[ext], kind, rng)
        suffix = exts[(k + 1) % len(exts)] if kind == "extension" else ext
        f = tmp_path / f"case{k}.{suffix}"
        f.write_bytes(data)
        r = run_case(f"{kind}/{ext}", salrt_command([str(f)], tmp_path / f"o{k}"), tmp_path / f"o{k}", timeout=90)
        if not (r.clean_exit and r.outputs_ok):
            failures.append((r.case, r.returncode, r.problems))
    assert not failures, failures


def test_sigkill_at_random_moments_leaves_readable_outputs(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "k.mp4", seed=2, seconds=4.0, **SMALL)
    rng = np.random.default_rng(2)
    for k in range(3):
        out = tmp_path / f"o{k}"
        r = run_case(
            f"kill{k}", salrt_command([str(clip.path)], out), out, timeout=90, kill_after=float(rng.uniform(2.5, 5.0))
        )
        assert r.clean_exit and r.outputs_ok, r.problems


def test_stalled_stream_reconnects_and_reports_the_gap(tmp_path: Path) -> None:
    """A live source stops sending for 3 s (read timeout 1 s): the run reconnects, continues, and
    reports the gap; stopped with SIGTERM as a live run is."""
    clip = make_clip(tmp_path / "live.ts", seed=3, seconds=4.0, **SMALL)
    data = clip.path.read_bytes()
    out = tmp_path / "o"
    with StallingServer(data, rate=len(data) / 4.0, stall_at=len(data) // 2, stall_s=3.0) as srv:
        p = subprocess.Popen(
            salrt_command([srv.url], out, "--live", "--timeout", "1", "--retries", "3"),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and srv.connections < 2:
            time.sleep(0.1)
        sent = srv.sent
        while time.monotonic() < deadline and srv.sent < sent + len(data) // 2:  # 2 s of the stream after it
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=60)[1]
    assert p.returncode == 130, err
    assert "no data for" in err and "reconnected" in err and "Traceback" not in err
    stats = json.loads((out / "run_stats.json").read_text())
    assert stats["stream_gaps_s"][0] and stats["stream_gaps_s"][0][0] >= 1.0
    ok, problems, frames = check_outputs(out)
    assert ok, problems
    assert frames == stats["frames_out"][0] > 0


def test_stream_that_never_resumes_is_reported_others_finish(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "live.ts", seed=4, seconds=4.0, **SMALL)
    other = make_clip(tmp_path / "other.mp4", seed=5, seconds=0.8, **SMALL)
    data = clip.path.read_bytes()
    with StallingServer(data, rate=len(data) / 4.0, stall_at=len(data) // 2, stall_s=float("inf")) as srv:
        out = tmp_path / "o"
        r = subprocess.run(
            salrt_command([srv.url, str(other.path)], out, "--timeout", "1", "--retries", "2"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("salrt: error:")]
    assert len(errors) == 1 and "stream lost after" in errors[0] and "Traceback" not in r.stderr
    assert np.load(out / "other_maps.npy").shape[0] == other.n_frames


def test_looping_live_source_keeps_resources_flat(tmp_path: Path) -> None:
    """Short soak: a live pipe looping a clip for ~20 s; threads and file descriptors constant,
    memory bounded (the 30-minute figures are in benchmarks/results/robustness)."""
    clip = make_clip(tmp_path / "loop.ts", seed=6, seconds=2.0, **SMALL)
    feeder = looping_feeder(clip.path, 2.0, 20)
    src = subprocess.Popen(feeder, stdout=subprocess.PIPE)
    out = tmp_path / "o"
    p = subprocess.Popen(
        salrt_command(["-"], out, "--live"), stdin=src.stdout, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    src.stdout.close()
    time.sleep(6)  # past start-up
    rows = sample_while(p, 2.0, lambda: src.poll() is not None)  # while the source is live
    p.wait(timeout=60)
    src.wait(timeout=10)
    err = p.stderr.read().decode()
    assert p.returncode in (0, 1) and "Traceback" not in err, err
    assert len(rows) >= 4, rows
    # FFmpeg's codec threads come and go by a few; nothing accumulates (second half vs first half)
    half = len(rows) // 2

    def mean(key: str, part: list[dict]) -> float:
        return sum(r[key] for r in part) / len(part)

    assert mean("threads", rows[half:]) <= mean("threads", rows[:half]) + 2, rows
    assert max(r["fds"] for r in rows) - min(r["fds"] for r in rows) <= 2, rows
    assert max(r["rss_mb"] for r in rows) - rows[0]["rss_mb"] < 64
    ok, problems, frames = check_outputs(out)
    assert ok and frames > 50, problems  # live mode drops clips when the CPU is busy


def test_sigterm_stops_quickly_with_readable_outputs(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "t.mp4", seed=7, seconds=6.0, **SMALL)
    out = tmp_path / "o"
    r = run_case("term", salrt_command([str(clip.path)], out), out, timeout=60, kill_after=4.0, sig=signal.SIGTERM)
    assert r.returncode == 130 and r.clean_exit and r.outputs_ok, r.problems
