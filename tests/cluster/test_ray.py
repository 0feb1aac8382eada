"""Ray batch jobs (``--ray``) on a local cluster bound to 127.0.0.1, two workers, tiny config:
outputs equal a plain single-input run, a killed worker's input is retried elsewhere without
mixed or duplicated outputs, --resume skips complete inputs only, URLs through fsspec, bad
input and an unreachable cluster reported in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from salrt.cli import main  # noqa: E402
from salrt.cluster import Item, connect, run_job  # noqa: E402
from salrt.io import make_clip  # noqa: E402
from salrt.runtime import Source  # noqa: E402
from salrt.sinks.sets import RunOutputs  # noqa: E402
from salrt.spec import RunSpec  # noqa: E402

TINY = ["--config", "tiny", "--random-weights"]


@pytest.fixture(scope="module")
def cluster():
    connect(None, num_cpus=2)
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"  # loopback only
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("ray_in")
    return [make_clip(d / f"v{i}.mp4", seed=i, seconds=1.2 + 0.4 * i, width=96, height=64).path for i in range(3)]


def _plain(video: Path, out: Path) -> np.ndarray:
    assert main(["run", str(video), "-o", str(out), *TINY, "--outputs", "npy", "--quiet"]) == 0
    return np.load(out / f"{video.stem}_maps.npy")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal maps up to one uint8 step on a few pixels (workers run torch with their own thread count)."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return a.shape == b.shape and d.max() <= 1 and (d > 0).mean() < 1e-3


def test_run_resume_and_a_damaged_output(cluster, videos: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    lst = tmp_path / "list.txt"
    lst.write_text(f"# catalogue\n{videos[2]}\n\n")
    args = ["run", "--ray", str(videos[0]), str(videos[1]), "--input-list", str(lst), "-o", str(out), *TINY]
    args += ["--outputs", "npy,overlay", "--ray-workers", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 done, 0 already complete, 0 failed" in text
    for v in videos:
        assert _same(np.load(out / f"{v.stem}_maps.npy"), _plain(v, tmp_path / f"plain_{v.stem}"))
        rec = json.loads((out / "_salrt_job" / f"{v.stem}.json").read_text())
        assert rec["status"] == "done" and {f["file"] for f in rec["files"]} >= {
            f"{v.stem}_maps.npy",
            f"{v.stem}_overlay.mp4",
        }
    assert not (out / ".salrt-staging").exists()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    assert main([*args, "--resume"]) == 0
    assert "0 done, 3 already complete" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()} == before
    broken = out / f"{videos[1].stem}_maps.npy"  # an output cut short: that input runs again
    broken.write_bytes(broken.read_bytes()[:-5000])
    assert main([*args, "--resume"]) == 0
    assert "1 done, 2 already complete" in capsys.readouterr().out
    assert _same(np.load(broken), np.load(tmp_path / f"plain_{videos[1].stem}" / f"{videos[1].stem}_maps.npy"))


def test_a_killed_worker_is_replaced_and_its_input_retried(cluster, videos: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    sources = [Source.of(str(v)) for v in videos]
    items = [Item(i, s, Path(s.path).stem) for i, s in enumerate(sources)]
    victim = items[2].stem  # the longest input
    killed = []

    def on_event(kind: str, info: dict) -> None:
        if kind == "started" and info["stem"] == victim and info["attempt"] == 1:
            partial = out / ".salrt-staging" / f"{victim}.1" / f"{victim}_maps.npy"

            def kill_when_writing() -> None:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if partial.exists() and partial.stat().st_size > 20 * 64 * 128:
                        os.kill(info["pid"], signal.SIGKILL)  # mid-input, with a partial output on disk
                        killed.append(info["pid"])
                        return
                    time.sleep(0.02)

            threading.Thread(target=kill_when_writing, daemon=True).start()

    report = run_job(
        items,
        RunOutputs(("npy",), {"inputs": []}),
        str(out),
        spec=RunSpec(model="diffsal", config="tiny", random_weights=True, backend="torch"),
        options={"steps": 4},
        workers=2,
        on_event=on_event,
    )
    assert killed, "the worker was not caught mid-input"
    assert report.retried == 1 and report.replaced_workers == 1 and not report.errors
    rec = json.loads((out / "_salrt_job" / f"{victim}.json").read_text())
    assert rec["attempt"] == 2 and rec["worker_pid"] != killed[0]
    for v in videos:
        got = np.load(out / f"{v.stem}_maps.npy")
        assert _same(got, _plain(v, tmp_path / f"plain_{v.stem}"))  # replaced, not mixed or appended
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["_salrt_job"] + [f"{v.stem}{s}" for v in videos for s in ("_maps.npy", ".json")]
    )


def test_url_output_bad_input_and_encode(cluster, videos: list[Path], tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    url = f"file://{tmp_path / 'remote'}"
    args = ["run", "--ray", str(videos[0]), str(bad), "-o", url, *TINY, "--outputs", "npz", "--ray-workers", "2"]
    assert main([*args, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.mp4" in err[0]
    remote = tmp_path / "remote"
    assert (
        np.load(remote / "v0_maps.npz")["maps"].shape[0]
        == json.loads((remote / "_salrt_job" / "v0.json").read_text())["frames"]
    )
    assert json.loads((remote / "_salrt_job" / "broken.json").read_text())["status"] == "failed"
    enc = tmp_path / "enc"
    assert main(["encode", "--ray", str(videos[0]), str(videos[1]), "-o", str(enc), *TINY, "--quiet"]) == 0
    import av

    for v in videos[:2]:
        with av.open(str(v)) as src, av.open(str(enc / f"{v.stem}.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == sum(1 for _ in src.decode(video=0))


def test_unreachable_cluster_is_one_line(tmp_path: Path, videos: list[Path], capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.monotonic()
    args = ["run", "--ray", f"127.0.0.1:{port}", str(videos[0]), "-o", str(tmp_path / "o"), *TINY, "--timeout", "2"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in err
    assert time.monotonic() - t < 20
