"""Ctrl-C at any moment of start-up (imports, parsing, model loading) ends with one line and exit
130, never a Python traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salrt.io import make_clip


@pytest.mark.parametrize("delay", [0.4, 0.9, 1.6])
def test_ctrl_c_during_start_up(tmp_path: Path, delay: float) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=1, seconds=2.0, width=96, height=64)
    code = "import sys; from salrt.entry import main; sys.exit(main())"
    args = [
        "run",
        str(clip.path),
        "-o",
        str(tmp_path / "o"),
        "--config",
        "tiny",
        "--random-weights",
        "--backend",
        "torch",
    ]
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (p.returncode, err[-2000:])
    assert "Traceback" not in err and "interrupted" in err
