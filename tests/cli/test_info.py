"""Cost accounting at the paper's sizes and the ``salrt`` command line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from salrt.cli import main
from salrt.cost import cost_report


@pytest.fixture(scope="module")
def paper():
    return cost_report()


def test_papers_convention_matches_table6(paper):
    # thop on the reference model at 224x384: 187,312,152,312 MACs and 76,577,185 parameters
    assert paper.paper_macs == 187_312_152_312
    assert paper.paper_params == 76_577_185


def test_full_flops(paper):
    f = paper.flops
    assert f["video_encoder"] == pytest.approx(255.6e9, rel=2e-3)
    assert f["audio_encoder"] == pytest.approx(
        51.25e9, rel=2e-3
    )  # the reference's 51.6 G includes its discarded patch embedding
    # the reference's denoiser step is 152.7 G; salrt's head runs its 3x3 convolution's channel
    # mixing before the bilinear resizes of the side outputs (same function up to rounding): 19.4 G fewer
    assert f["denoiser_step"] + f["audio_alignment"] == pytest.approx(133.35e9, rel=5e-3)
    assert paper.flops_per_clip == pytest.approx(paper.flops_encoders + 4 * f["denoiser_step"])
    assert sum(paper.params.values()) == 76_446_785


def test_info_table(capsys):
    assert main(["info", "diffsal"]) == 0
    out = capsys.readouterr().out
    assert "76.58M" in out and "187.31G" in out and "denoiser" in out


def test_info_json_steps(capsys):
    assert main(["info", "diffsal", "--config", "tiny", "--steps", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps"] == 2
    assert data["flops_per_clip"] == pytest.approx(data["flops_encoders"] + 2 * data["flops"]["denoiser_step"])


def test_info_other_shape(capsys):
    assert main(["info", "diffsal", "--video-shape", "3x16x256x448", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["height"] == 256 and data["config"]["audio_width"] == 224


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["info", "nomodel"], "unknown model"),
        (["info", "diffsal", "--video-shape", "3x16x100x384"], "multiple of 32"),
        (["info", "diffsal", "--video-shape", "abc"], "invalid shape"),
        (["info", "diffsal", "--audio-shape", "2x9x112x192"], "1xSxHxW"),
        (["info", "diffsal", "--steps", "0"], "--steps"),
    ],
)
def test_cli_errors_one_line(argv, msg):
    proc = subprocess.run([sys.executable, "-m", "salrt.cli", *argv], capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["run", "encode", "eval", "export", "bench", "train", "demo", "info", "serve"])
def test_help_states_each_default_once(command: str) -> None:
    """No option's help says "(default: ...)" twice or "(default: None)" (argparse's formatter adds one
    to text that already names its default)."""
    import re

    from salrt.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices[command].format_help()
    options = re.split(r"\n  (?=-)", text)
    assert [o.split()[0] for o in options if o.count("default") > 1] == []
    assert "(default: None)" not in text and "(default: False)" not in text
